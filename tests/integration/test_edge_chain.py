"""An edge chain under load: origin <- shield edge <- two edges, viewers on both edges.

One `all` server is the origin (ffmpeg publishes the 30 s clip to it, looped so the stream outlives
the viewers); a `streamflex edge` is the shield, asking the origin through a counting proxy that
records every request the shield makes; two more edges take the shield as their upstream;
`streamflex loadgen` plays LL-HLS on each edge (VIEWERS viewers each for DURATION).
"""
import collections
import json
import os
import re

import pytest

import sfharness as h

VIEWERS = int(os.environ.get("SF_EDGE_CHAIN_VIEWERS", "1000"))  # per edge
DURATION = int(os.environ.get("SF_EDGE_CHAIN_SECONDS", "30"))
STREAM = "chain"


@pytest.fixture(scope="module")
def chain(module_servers, module_procs, clip30, tmp_path_factory):
    if not h.loadgen_available():
        pytest.fail("streamflex loadgen is not available in this build")
    work = tmp_path_factory.mktemp("chain")
    origin = h.start_all(module_servers)
    proxy = h.CountingProxy(origin.origin_port)
    shield = h.start_edge(module_servers, [f"{h.HOST}:{proxy.port}"], edge_id="shield")
    edges = [h.start_edge(module_servers, [f"{h.HOST}:{shield.edge_port}"], edge_id=f"edge{i}") for i in (1, 2)]
    key = origin.create_key(STREAM)
    module_procs.add(h.ffmpeg_publish_looped(clip30, origin.url(key), work / "ffmpeg.log"))
    origin.wait_live(STREAM, 10)

    # Asked of the origin itself, so nothing is cached at the edges before the viewers come.
    def segment_listed():
        status, body, _ = h.http_get(f"{origin.origin}/live/{STREAM}/video/index.m3u8")
        return status == 200 and h.MediaPlaylist(body).segments
    h.wait_until(segment_listed, 10, "a complete segment at the origin")

    runs = []
    for i, e in enumerate(edges):
        out = work / f"loadgen{i}.json"
        runs.append((h.start_loadgen(f"{e.edge}/live/{STREAM}/master.m3u8", VIEWERS, f"{DURATION}s", out,
                                     work / f"loadgen{i}.log"), out))
    summaries = [h.loadgen_summary(p, out, DURATION + 30) for p, out in runs]
    try:
        yield {"origin": origin, "shield": shield, "edges": edges, "proxy": proxy.snapshot(),
               "summaries": summaries, "origin_metrics": origin.metrics(), "shield_metrics": shield.metrics(),
               "edge_metrics": [e.metrics() for e in edges]}
    finally:
        proxy.stop()


def brief(s):
    return {k: s[k] for k in ("viewers", "requests", "downloads", "stalls", "errors", "startup", "part_age")}


def test_every_viewer_on_both_edges_plays_without_an_error(chain):
    for i, s in enumerate(chain["summaries"]):
        print(f"edge{i + 1}: {json.dumps(brief(s))}")
    for s in chain["summaries"]:
        assert s["_exit"] == 0
        assert s["viewers"]["started"] == VIEWERS, brief(s)
        assert s["viewers"]["failed"] == 0, brief(s)
        assert s["error_count"] == 0, s["errors"]
        assert s["downloads"]["parts"] >= VIEWERS * (DURATION - 10) * 2 * 0.9, "viewers did not follow the parts"


def test_origin_served_no_more_parts_than_it_published(chain):
    m = chain["origin_metrics"]
    served = m.get("streamflex_origin_requests_total", kind="part", code="200")
    published = m.get("streamflex_origin_parts_published_total")
    viewers_parts = sum(s["downloads"]["parts"] for s in chain["summaries"])
    print(f"origin: {served:.0f} part requests answered 200, {published:.0f} parts published; "
          f"viewers downloaded {viewers_parts} parts through the edges")
    assert published > 0
    assert served <= published


def test_shield_asked_the_origin_at_most_once_per_object(chain):
    reqs = chain["proxy"]
    counts = collections.Counter(target for method, target, status in reqs if not target.startswith("/healthz"))
    # Media objects and blocking playlist reloads (one key per _HLS_msn/_HLS_part) are immutable
    # answers: one request each. Plain playlist reloads may come again when max-age has passed.
    once = {t: n for t, n in counts.items()
            if re.search(r"\.(m4s|mp4)$", t) or "_HLS_msn=" in t}
    repeated = {t: n for t, n in once.items() if n > 1}
    statuses = collections.Counter(status for _, _, status in reqs)
    print(f"shield -> origin: {len(reqs)} requests, {len(once)} distinct media objects and blocking reloads, "
          f"statuses {dict(statuses)}; plain playlists: "
          f"{ {t: n for t, n in counts.items() if t not in once} }")
    assert once, "the shield made no media request to the origin"
    assert not repeated, f"asked more than once: {dict(list(repeated.items())[:10])}"
