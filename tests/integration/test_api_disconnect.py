"""Revoking a stream key, or deleting its stream, ends the live publish that uses it (`streamflex
all`, ingest in-process); rotating a key does not cut its live publisher, even with no grace."""
import time

import pytest

import sfapi
import sfharness as h


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(role="all", record=False)


@pytest.fixture(scope="module")
def api(srv):
    return sfapi.Api(srv)


def publish(srv, procs, clip, key, tmp_path, name):
    p = procs.add(h.ffmpeg_publish_looped(clip, srv.url(key), tmp_path / f"{name}.log"))
    return p


def key_of(api, name, **settings):
    created = api.create_stream(name, profile="passthrough", **settings)
    return created["key"]["id"], created["key"]["key"]


def gone(srv, name, proc, timeout=8):
    h.wait_until(lambda: srv.stream(name) is None, timeout, f"{name} no longer live")
    # ffmpeg sees its connection closed and exits on its own.
    h.wait_until(lambda: not proc.alive(), timeout, "ffmpeg exited")


def test_revoking_the_key_disconnects_its_live_publisher(srv, api, procs, clip10, tmp_path):
    key_id, key = key_of(api, "cut1")
    other_id, other = key_of(api, "keep1")
    p = publish(srv, procs, clip10, key, tmp_path, "cut1")
    q = publish(srv, procs, clip10, other, tmp_path, "keep1")
    srv.wait_live("cut1")
    srv.wait_live("keep1")
    assert api("DELETE", f"/api/streams/cut1/keys/{key_id}")[0] == 204
    gone(srv, "cut1", p)
    assert srv.logs("publisher disconnected by the control plane", stream="cut1", reason="key_revoked")
    assert api.ok("GET", "/api/streams/cut1")["live"]["publishing"] is False
    # Another stream's publisher is untouched.
    time.sleep(1)
    assert srv.stream("keep1") is not None and q.alive()


def test_deleting_the_stream_disconnects_its_live_publisher(srv, api, procs, clip10, tmp_path):
    _, key = key_of(api, "cut2")
    p = publish(srv, procs, clip10, key, tmp_path, "cut2")
    srv.wait_live("cut2")
    assert api("DELETE", "/api/streams/cut2")[0] == 204
    gone(srv, "cut2", p)
    assert srv.logs("publisher disconnected by the control plane", stream="cut2", reason="stream_deleted")


def test_rotation_does_not_cut_the_live_publisher(srv, api, procs, clip10, tmp_path):
    key_id, key = key_of(api, "rot1")
    p = publish(srv, procs, clip10, key, tmp_path, "rot1")
    srv.wait_live("rot1")
    rotated = api.ok("POST", f"/api/streams/rot1/keys/{key_id}/rotate", {"grace_s": 0}, expect=201)
    assert rotated
    time.sleep(2)
    assert srv.stream("rot1") is not None and p.alive()
