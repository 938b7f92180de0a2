"""Viewer tokens, end to end: the origin and the edge enforce them without calling the API.

One `all` server (ingest, origin, edge, API) with fixed token keys; ffmpeg publishes a protected
stream ("prot", visibility token) and a public one ("pub"), both created through the REST API. A
standalone `streamflex edge` with the same keys sits in front of the origin (it has no store: it
learns which objects are protected from the origin's X-SF-Access marker). Players are real: ffprobe
and ffmpeg play HLS and DASH with a token in the multivariant/MPD URL only; everything else they
fetch carries the token because the server wrote it into the playlists. Expired, forged,
unknown-key, other-stream, wrong-IP and missing tokens get 403; the public stream is unaffected.
"""
import json
import re
import time
import urllib.request

import pytest

import sfharness as h

KEYS = "k2:second-secret-for-tests-0123456789,k1:first-secret-for-tests-0123456789"
PROT, PUB = "prot", "pub"


def api_call(base, key, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (json.loads(text) if text.startswith("{") else text)


def local_token(srv, stream, ttl=600, ip=None):
    """A token from `streamflex viewer-token`, signed with the configured keys (no API)."""
    args = [h.BIN, "viewer-token", stream, f"--ttl={ttl}", f"--store.path={srv.store}", f"--auth.token_keys={KEYS}"]
    if ip:
        args.append(f"--ip={ip}")
    p = h.run(args, timeout=15, env=srv.env, cwd=srv.workdir)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def env(module_servers, module_procs, clip30, tmp_path_factory):
    work = tmp_path_factory.mktemp("tokens")
    api_port = h.free_port()
    srv = h.start_all(module_servers, args=[f"--api.listen={h.HOST}:{api_port}", f"--auth.token_keys={KEYS}",
                                            "--auth.visibility_refresh=200ms"])
    api = f"http://{h.HOST}:{api_port}"
    admin_key_path = srv.workdir / "admin-api-key"
    h.wait_until(lambda: admin_key_path.exists() and admin_key_path.read_text().strip(), 10, "admin-api-key")
    admin = admin_key_path.read_text().strip()
    keys = {}
    for name, visibility in ((PROT, "token"), (PUB, "public")):
        status, body = api_call(api, admin, "POST", "/api/streams", {"name": name, "visibility": visibility})
        assert status == 201, (status, body)
        keys[name] = body["key"]["key"]
    for name in (PROT, PUB):
        module_procs.add(h.ffmpeg_publish_looped(clip30, srv.url(keys[name]), work / f"ffmpeg-{name}.log"))
    for name in (PROT, PUB):
        srv.wait_live(name, 15)
    edge = h.start_edge(module_servers, [f"{h.HOST}:{srv.origin_port}"], args=[f"--auth.token_keys={KEYS}"])
    status, body = api_call(api, admin, "POST", f"/api/streams/{PROT}/tokens", {"ttl_s": 600})
    assert status == 201, (status, body)
    env = {"srv": srv, "edge": edge, "api": api, "admin": admin, "work": work, "api_token": body}

    # A complete segment at the origin, so players find something to play.
    token = body["token"]

    def segment_listed():
        status, text, _ = h.http_get(f"{srv.origin}/live/{PROT}/video/index.m3u8?token={token}")
        return status == 200 and len(h.MediaPlaylist(text).segments) >= 2
    h.wait_until(segment_listed, 20, "two complete segments of the protected stream")
    _, text, _ = h.http_get(f"{srv.origin}/live/{PROT}/video/index.m3u8?token={token}")
    env["init"] = "video/" + h.MediaPlaylist(text).segments[0]["map"].split("?")[0]
    return env


def bases(env):
    return {"origin": env["srv"].origin, "edge": env["edge"].edge}


def get(url, headers=None):
    status, hdrs, body = h.http_request(url, headers=headers)
    return status, hdrs, body.decode(errors="replace")


def uris(playlist):
    """Every URI a playlist names: URI lines and URI="..." attributes."""
    out = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    out += re.findall(r'URI="([^"]*)"', playlist)
    return out


def test_api_token_carries_a_playback_url_with_the_token(env):
    t = env["api_token"]
    assert t["token"] and t["expires_ms"] > time.time() * 1000 + 590_000
    assert f"token={t['token']}" in t["playback_url"] and f"/live/{PROT}/" in t["playback_url"]
    status, _, _ = get(t["playback_url"])
    assert status == 200, t["playback_url"]


@pytest.mark.parametrize("where", ["origin", "edge"])
def test_playlists_carry_the_token_into_every_url(env, where):
    base = bases(env)[where]
    token = env["api_token"]["token"]
    status, hdrs, master = get(f"{base}/live/{PROT}/master.m3u8?token={token}")
    assert status == 200, master
    assert hdrs.get("x-sf-access") == "token"
    named = uris(master)
    assert named and all(f"token={token}" in u for u in named), master
    video = next(u for u in named if u.startswith("video/"))
    status, _, media = get(f"{base}/live/{PROT}/{video}")
    assert status == 200, media
    pl = h.MediaPlaylist(media)
    assert pl.segments and pl.hint and pl.reports, media
    named = uris(media)
    assert any(u.startswith("init") for u in named) and any(".p" in u for u in named), media
    assert all(u.endswith(f"token={token}") for u in named), media
    # Every object the playlist names is served with the token it carries, and refused without it.
    seg = pl.segments[-1]["uri"]
    status, _, _ = get(f"{base}/live/{PROT}/video/{seg}")
    assert status == 200
    bare = seg.split("?")[0]
    status, _, body = get(f"{base}/live/{PROT}/video/{bare}")
    assert status == 403 and "required" in body


@pytest.mark.parametrize("where", ["origin", "edge"])
def test_mpd_templates_carry_the_token(env, where):
    base = bases(env)[where]
    token = env["api_token"]["token"]
    status, hdrs, mpd = get(f"{base}/live/{PROT}/manifest.mpd?token={token}")
    assert status == 200, mpd
    templates = re.findall(r'(?:media|initialization)="([^"]*)"', mpd)
    assert templates and all(t.endswith(f"token={token}") for t in templates), mpd
    status, _, _ = get(f"{base}/live/{PROT}/manifest.mpd")
    assert status == 403


def refused_tokens(env):
    srv = env["srv"]
    good = local_token(srv, PROT)
    expired = local_token(srv, PROT, ttl=1)
    sig = good.rsplit(".", 1)
    forged = sig[0] + "." + ("A" if sig[1][0] != "A" else "B") + sig[1][1:]
    other_stream = local_token(srv, PUB)
    wrong_ip = local_token(srv, PROT, ip="192.0.2.77")
    # Signed with a key the servers do not have, under an id they know.
    p = h.run([h.BIN, "viewer-token", PROT, f"--store.path={srv.store}",
               "--auth.token_keys=k2:an-attackers-secret-0123456789"], timeout=15, env=srv.env, cwd=srv.workdir)
    assert p.returncode == 0, p.stderr
    unknown_secret = p.stdout.strip()
    p = h.run([h.BIN, "viewer-token", PROT, f"--store.path={srv.store}",
               "--auth.token_keys=k9:an-attackers-secret-0123456789"], timeout=15, env=srv.env, cwd=srv.workdir)
    unknown_key = p.stdout.strip()
    time.sleep(1.5)  # the 1 s token expires
    return {"missing": "", "expired": expired, "forged": forged, "other-stream": other_stream, "wrong-ip": wrong_ip,
            "wrong-secret": unknown_secret, "unknown-key": unknown_key, "garbage": "not-a-token"}


@pytest.fixture(scope="module")
def bad_tokens(env):
    return refused_tokens(env)


@pytest.mark.parametrize("where", ["origin", "edge"])
@pytest.mark.parametrize("kind", ["missing", "expired", "forged", "other-stream", "wrong-ip", "wrong-secret",
                                  "unknown-key", "garbage"])
def test_bad_tokens_get_403(env, bad_tokens, where, kind):
    base = bases(env)[where]
    token = bad_tokens[kind]
    query = f"?token={token}" if token else ""
    for path in ("master.m3u8", "video/index.m3u8", "manifest.mpd", env["init"]):
        status, hdrs, body = get(f"{base}/live/{PROT}/{path}{query}")
        assert status == 403, (kind, where, path, status, body[:200])
        assert "no-store" in hdrs.get("cache-control", "")


def test_ip_bound_token_plays_from_its_address(env):
    token = local_token(env["srv"], PROT, ip="127.0.0.1")
    for base in bases(env).values():
        status, _, body = get(f"{base}/live/{PROT}/master.m3u8?token={token}")
        assert status == 200, body


def test_tokens_from_the_cli_and_the_api_are_interchangeable(env):
    token = local_token(env["srv"], PROT)
    for base in bases(env).values():
        status, _, _ = get(f"{base}/live/{PROT}/master.m3u8?token={token}")
        assert status == 200


def test_edge_caches_protected_objects_once_for_all_tokens(env):
    edge = env["edge"].edge
    a, b = env["api_token"]["token"], local_token(env["srv"], PROT)
    status, _, media = get(f"{edge}/live/{PROT}/video/index.m3u8?token={a}")
    assert status == 200
    seg = h.MediaPlaylist(media).segments[0]["uri"].split("?")[0]
    status, first, _ = get(f"{edge}/live/{PROT}/video/{seg}?token={a}")
    assert status == 200
    status, second, _ = get(f"{edge}/live/{PROT}/video/{seg}?token={b}")
    assert status == 200 and second.get("x-cache") == "HIT", second
    # Cached, yet still refused without a token.
    status, third, _ = get(f"{edge}/live/{PROT}/video/{seg}")
    assert status == 403


@pytest.mark.parametrize("where", ["origin", "edge"])
def test_ffprobe_and_ffmpeg_play_hls_with_a_token(env, where):
    base = bases(env)[where]
    token = env["api_token"]["token"]
    url = f"{base}/live/{PROT}/master.m3u8?token={token}"
    probe = h.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", url], timeout=60)
    assert probe.returncode == 0, probe.stderr
    kinds = sorted(s["codec_type"] for s in json.loads(probe.stdout)["streams"])
    assert "video" in kinds and "audio" in kinds, kinds
    out = env["work"] / f"hls-{where}.mp4"
    p = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", url, "-t", "3", "-c", "copy", str(out)],
              timeout=90)
    assert p.returncode == 0, p.stderr
    got = h.probe_streams(out)
    assert float(h.ffprobe(out, "-show_format")["format"]["duration"]) >= 2.0
    assert got["video"]["codec_name"] == "h264"
    # Without the token the same player is refused.
    p = h.run(["ffprobe", "-v", "error", "-show_streams", f"{base}/live/{PROT}/master.m3u8"], timeout=60)
    assert p.returncode != 0 and "403" in p.stderr, p.stderr


@pytest.mark.parametrize("where", ["origin", "edge"])
def test_ffmpeg_plays_dash_with_a_token(env, where):
    base = bases(env)[where]
    token = env["api_token"]["token"]
    out = env["work"] / f"dash-{where}.mp4"
    p = h.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y", "-i",
               f"{base}/live/{PROT}/manifest.mpd?token={token}", "-t", "2", "-map", "0:v:0", "-c", "copy", str(out)],
              timeout=90)
    assert p.returncode == 0, p.stderr
    assert h.probe_streams(out)["video"]["codec_name"] == "h264"


@pytest.mark.parametrize("where", ["origin", "edge"])
def test_public_stream_is_unaffected(env, where):
    base = bases(env)[where]
    status, hdrs, master = get(f"{base}/live/{PUB}/master.m3u8")
    assert status == 200 and hdrs.get("x-sf-access") == "public"
    assert "token=" not in master
    probe = h.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", f"{base}/live/{PUB}/master.m3u8"],
                  timeout=60)
    assert probe.returncode == 0, probe.stderr


def test_visibility_change_applies_without_restart(env):
    api, admin = env["api"], env["admin"]
    status, body = api_call(api, admin, "PATCH", f"/api/streams/{PUB}", {"visibility": "token"})
    assert status == 200, body
    try:
        h.wait_until(lambda: get(f"{env['srv'].origin}/live/{PUB}/master.m3u8")[0] == 403, 5,
                     "public stream made token-only is refused without a token")
        token = local_token(env["srv"], PUB)
        status, _, _ = get(f"{env['srv'].origin}/live/{PUB}/master.m3u8?token={token}")
        assert status == 200
    finally:
        status, body = api_call(api, admin, "PATCH", f"/api/streams/{PUB}", {"visibility": "public"})
        assert status == 200, body
    h.wait_until(lambda: get(f"{env['srv'].origin}/live/{PUB}/master.m3u8")[0] == 200, 5, "public again")


def test_token_secrets_never_reach_the_logs(env):
    log = env["srv"].log_text() + env["edge"].log_text()
    for secret in ("second-secret-for-tests", "first-secret-for-tests", env["api_token"]["token"]):
        assert secret not in log
