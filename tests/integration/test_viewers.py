"""Current viewers per stream in `streamflex all`: counted by the edge players are sent to (distinct
token, else client address and User-Agent, seen in the last 10 s), shown by the API as live.viewers
and exported as streamflex_stream_viewers. Other edges fetching through it are not viewers."""
import time

import pytest

import sfapi
import sfharness as h


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(role="all", record=False)


def player(srv, procs, stream, agent, tmp_path):
    url = f"http://{h.HOST}:{srv.edge_port}/live/{stream}/master.m3u8"
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-user_agent", agent, "-i", url,
           "-t", "60", "-c", "copy", "-f", "null", "-"]
    return procs.add(h.Proc(cmd, tmp_path / f"{agent}.log"))


def viewers(api, stream):
    return api.ok("GET", f"/api/streams/{stream}")["live"]["viewers"]


def test_players_are_counted_while_they_watch(srv, procs, clip10, tmp_path):
    api = sfapi.Api(srv)
    watched = api.create_stream("watched", profile="passthrough")["key"]["key"]
    quiet = api.create_stream("quiet", profile="passthrough")["key"]["key"]
    procs.add(h.ffmpeg_publish_looped(clip10, srv.url(watched), tmp_path / "pub1.log"))
    procs.add(h.ffmpeg_publish_looped(clip10, srv.url(quiet), tmp_path / "pub2.log"))
    srv.wait_live("watched")
    srv.wait_live("quiet")
    h.wait_until(lambda: h.http_request(f"http://{h.HOST}:{srv.edge_port}/live/watched/master.m3u8")[0] == 200,
                 15, "watched playable at the edge")
    time.sleep(11)  # the readiness probe above was a viewer too: let it leave the window
    players = [player(srv, procs, "watched", f"player-{i}", tmp_path) for i in range(3)]
    h.wait_until(lambda: viewers(api, "watched") == 3, 20, "3 viewers of watched")
    # Another edge fetching through this one (Via) is not a viewer.
    for _ in range(5):
        h.http_request(f"http://{h.HOST}:{srv.edge_port}/live/watched/master.m3u8",
                       headers={"Via": "1.1 shield-x", "User-Agent": "shield"})
    assert viewers(api, "watched") == 3
    assert viewers(api, "quiet") == 0
    assert srv.metric("streamflex_stream_viewers", stream="watched") == 3
    assert all(p.alive() for p in players)
    for p in players:
        p.stop()
    h.wait_until(lambda: viewers(api, "watched") == 0, 15, "no viewers once the players left")


def test_a_stream_not_live_has_no_viewer_count(srv):
    api = sfapi.Api(srv)
    api.create_stream("offline", profile="passthrough")
    assert viewers(api, "offline") is None
