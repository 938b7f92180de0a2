"""Browser players on a token-protected stream, through the edge, with nothing special.

hls.js (the player page, given the token once as ?token=) and dash.js (given the MPD URL with
?token=) play a stream whose visibility is "token" in headless Chromium (tests/browser/play.mjs).
Every playlist, init segment, part and segment they fetch must be answered 200: the token reached
them only through the URLs the server wrote.
"""
import json
import urllib.request

import pytest

import sfharness as h

PLAY_SECONDS = 10
STREAM = "members"


@pytest.fixture(scope="module")
def env(module_servers, module_procs, clip30, tmp_path_factory):
    api_port = h.free_port()
    srv = h.start_all(module_servers, args=[f"--api.listen={h.HOST}:{api_port}"])
    api = f"http://{h.HOST}:{api_port}"
    key_file = srv.workdir / "admin-api-key"
    h.wait_until(lambda: key_file.exists() and key_file.read_text().strip(), 10, "admin-api-key")
    admin = key_file.read_text().strip()

    def post(path, body):
        req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read().decode())

    key = post("/api/streams", {"name": STREAM, "visibility": "token"})["key"]["key"]
    module_procs.add(h.ffmpeg_publish_looped(clip30, srv.url(key), tmp_path_factory.mktemp("vtb") / "ffmpeg.log"))
    srv.wait_live(STREAM, 15)
    token = post(f"/api/streams/{STREAM}/tokens", {"ttl_s": 600})["token"]

    def ready():
        status, body, _ = h.http_get(f"{srv.edge}/live/{STREAM}/video/index.m3u8?token={token}")
        return status == 200 and "#EXTINF" in body
    h.wait_until(ready, 15, "a complete segment")
    status, _, _ = h.http_get(f"{srv.edge}/live/{STREAM}/master.m3u8")
    assert status == 403
    artifacts = h.artifact_dir("viewer-tokens-browser")
    print(f"\nbrowser artifacts: {artifacts}")
    return {"srv": srv, "token": token, "artifacts": artifacts}


def check(result, what):
    assert not result.get("error"), f"{what}: {result['error']}\n{result.get('_stderr', '')}"
    final = result["final"]
    assert final and not final["fatalErrors"], (final, result["failed"][:10])
    assert final["playing"] and final["framesDecoded"] > 100, final
    refused = [f for f in result["failed"] if f.startswith("403")]
    assert not refused, f"{what}: requests refused: {refused[:10]}"
    kinds = result["requests"]
    assert kinds.get("media", {}).get("count", 0) > 0 and kinds.get("init", {}).get("count", 0) > 0, kinds


def test_hls_js_plays_a_protected_stream_from_the_token_in_the_page_url(env, browser_deps, capsys):
    srv = env["srv"]
    url = f"{srv.edge}/?stream={STREAM}&token={env['token']}"
    result = h.run_node_json("play.mjs", ["hls", url, PLAY_SECONDS, env["artifacts"]], timeout=PLAY_SECONDS + 60,
                             artifacts=env["artifacts"])
    check(result, "hls.js")
    with capsys.disabled():
        print(f"\n[viewer-tokens-browser] hls.js: latency {result['final']['latency']} s, "
              f"requests { {k: (v['count'], v['byStatus']) for k, v in result['requests'].items()} }")


def test_dash_js_plays_a_protected_stream_from_the_token_in_the_mpd_url(env, browser_deps, capsys):
    srv = env["srv"]
    mpd = f"{srv.edge}/live/{STREAM}/manifest.mpd?token={env['token']}"
    result = h.run_node_json("play.mjs", ["dash", mpd, PLAY_SECONDS, env["artifacts"]], timeout=PLAY_SECONDS + 60,
                             artifacts=env["artifacts"])
    check(result, "dash.js")
    with capsys.disabled():
        print(f"\n[viewer-tokens-browser] dash.js: latency {result['final']['latency']} s, "
              f"requests { {k: (v['count'], v['byStatus']) for k, v in result['requests'].items()} }")
