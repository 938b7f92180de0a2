"""The REST API against the real binary (`streamflex all`) over HTTP: every route, every scope rule,
stream settings, key rotation and revocation, viewer tokens, 400/404/409/413 answers and hostile
names, the admin key bootstrap and a restart that keeps every stream and key."""
import json
import os
import stat
import time

import pytest

import rtmp_client
import sfapi
import sfharness as h


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(role="all")


@pytest.fixture(scope="module")
def api(srv):
    return sfapi.Api(srv)


def publish_status(srv, key):
    """Publishes `key` with the minimal RTMP client; returns the onStatus code."""
    c = rtmp_client.RtmpClient(srv.rtmp_port)
    with c:
        return c.publish(key).get("code")


# ---- admin key bootstrap ----------------------------------------------------------------------

def test_admin_key_written_once_with_mode_0600_and_never_logged(srv, api):
    path = srv.store.parent / "admin-api-key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = srv.admin_api_key()
    assert key.startswith("sfa_") and len(key) > 40
    assert api.ok("GET", "/api/whoami")["scopes"] == ["admin"]
    assert srv.logs("admin API key created; read it from the file", path=str(path))
    assert key not in srv.log_text()


# ---- streams ------------------------------------------------------------------------------------

def test_stream_lifecycle(srv, api):
    created = api.create_stream("life", visibility="token", latency="hls", part_target_ms=400,
                                segment_target_ms=4000, takeover=True, profile="passthrough")
    s, key = created["stream"], created["key"]
    assert (s["name"], s["visibility"], s["latency"], s["part_target_ms"], s["segment_target_ms"], s["takeover"],
            s["profile"]) == ("life", "token", "hls", 400, 4000, True, "passthrough")
    assert s["rtmp_url"] == f"rtmp://127.0.0.1:{srv.rtmp_port}/live"
    assert s["playback_url"] == f"http://127.0.0.1:{srv.edge_port}/live/life/master.m3u8"
    assert s["live"]["publishing"] is False and s["live"]["viewers"] is None
    assert key["key"].startswith("sfk_") and key["id"]
    assert api.ok("GET", "/api/streams/life") == s
    assert "life" in [x["name"] for x in api.ok("GET", "/api/streams")["streams"]]
    patched = api.ok("PATCH", "/api/streams/life", {"visibility": "public", "takeover": False})
    assert patched["visibility"] == "public" and patched["takeover"] is False and patched["latency"] == "hls"
    assert patched["created_ms"] == s["created_ms"] and patched["updated_ms"] >= s["updated_ms"]
    # The key listing never shows the secret.
    status, _, text = api("GET", "/api/streams/life/keys")
    assert status == 200 and key["key"] not in text
    assert api("DELETE", "/api/streams/life")[0] == 204
    assert api("GET", "/api/streams/life")[0] == 404
    assert api("DELETE", "/api/streams/life")[0] == 404
    assert publish_status(srv, key["key"]) == "NetStream.Publish.Unauthorized"


def test_duplicate_stream_is_409(api):
    api.create_stream("dup")
    status, j, _ = api("POST", "/api/streams", {"name": "dup"})
    assert status == 409 and "error" in j


@pytest.mark.parametrize("body, field", [
    ({"name": "s1", "visibility": "secret"}, "visibility"),
    ({"name": "s1", "latency": "dash"}, "latency"),
    ({"name": "s1", "part_target_ms": 5}, "part_target_ms"),
    ({"name": "s1", "part_target_ms": "500"}, "part_target_ms"),
    ({"name": "s1", "segment_target_ms": 300}, "segment_target_ms"),
    ({"name": "s1", "part_target_ms": 2001}, "part_target_ms"),
    ({"name": "s1", "segment_target_ms": 10001}, "segment_target_ms"),
    ({"name": "s1", "part_target_ms": 1500, "segment_target_ms": 1000}, "segment_target_ms"),
    ({"name": "s1", "takeover": "yes"}, "takeover"),
    ({"name": "s1", "colour": "red"}, "colour"),
    ({"name": ""}, "name"),
    ({"name": "a" * 65}, "name"),
    ({"visibility": "public"}, "name"),
])
def test_invalid_settings_are_400_naming_the_field(api, body, field):
    status, j, _ = api("POST", "/api/streams", body)
    assert status == 400 and field in j["error"], j
    assert api("GET", "/api/streams/s1")[0] == 404


def test_patch_validates_and_keeps_the_stream(api):
    api.create_stream("patchme")
    assert api("PATCH", "/api/streams/patchme", {"latency": "smooth"})[0] == 400
    assert api("PATCH", "/api/streams/patchme", {"name": "other"})[0] == 400
    assert api("PATCH", "/api/streams/nosuch", {"latency": "hls"})[0] == 404
    assert api.ok("GET", "/api/streams/patchme")["latency"] == "ll-hls"


# ---- malformed, oversized and hostile input --------------------------------------------------------

@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1,2]", b"\"str\"", b"{\"name\": \"x\",}", b"\xff\xfe{}"])
def test_malformed_json_is_400(api, raw):
    status, j, _ = api("POST", "/api/streams", raw=raw)
    assert status == 400 and "error" in j


def test_oversized_body_is_413(api):
    status, j, _ = api("POST", "/api/streams", raw=b'{"name":"big","x":"' + b"a" * 100_000 + b'"}')
    assert status == 413 and "error" in j
    # Far larger: refused from the Content-Length alone, by the HTTP server, before the body.
    import socket
    with socket.create_connection((h.HOST, int(api.base.rsplit(":", 1)[1])), timeout=5) as s:
        s.sendall(b"POST /api/streams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + api.key.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 8000000\r\n\r\n{")
        assert s.recv(100).startswith(b"HTTP/1.1 413")
    assert api("GET", "/api/streams/big")[0] == 404


def test_deeply_nested_json_is_refused_without_harm(api):
    assert api("POST", "/api/streams", raw=b"[" * 30000 + b"]" * 30000)[0] == 400
    assert api("POST", "/api/streams", raw=b'{"a":' * 10000 + b"1" + b"}" * 10000)[0] == 400
    assert api("GET", "/api/whoami")[0] == 200


HOSTILE = ["x'; DROP TABLE streams;--", "a' OR '1'='1", "\"; DELETE FROM stream_keys; --", "../../etc/passwd",
           "a b", "%00", "name\r\nX-Injected: 1", "é"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_and_change_nothing(api, name):
    if api("GET", "/api/streams/victim")[0] == 404:
        api.create_stream("victim")
    before = api.ok("GET", "/api/streams")
    status, j, _ = api("POST", "/api/streams", {"name": name})
    assert status == 400 and "error" in j
    quoted = urllib_quote(name)
    for method, path in [("GET", f"/api/streams/{quoted}"), ("DELETE", f"/api/streams/{quoted}"),
                         ("GET", f"/api/streams/{quoted}/keys"), ("DELETE", f"/api/streams/victim/keys/{quoted}"),
                         ("POST", f"/api/streams/victim/keys/{quoted}/rotate"), ("DELETE", f"/api/apikeys/{quoted}")]:
        status, _, _ = api(method, path)
        assert status in (400, 404), (method, path, status)
    after = api.ok("GET", "/api/streams")
    assert [s["name"] for s in after["streams"]] == [s["name"] for s in before["streams"]]
    assert api.ok("GET", "/api/streams/victim/keys")["keys"][0]["state"] == "active"


def urllib_quote(s):
    import urllib.parse
    return urllib.parse.quote(s, safe="")


def test_unknown_routes_and_methods(api):
    assert api("GET", "/api/nothing")[0] == 404
    assert api("PUT", "/api/streams")[0] == 405
    assert api("POST", "/api/whoami")[0] == 405


# ---- stream keys ------------------------------------------------------------------------------------

def test_keys_create_list_revoke(srv, api):
    first = api.create_stream("keyed")["key"]
    second = api.ok("POST", "/api/streams/keyed/keys", expect=201)
    keys = api.ok("GET", "/api/streams/keyed/keys")["keys"]
    assert [k["id"] for k in keys] == [first["id"], second["id"]]
    assert all(k["state"] == "active" and k["expires_ms"] is None and k["revoked_ms"] is None for k in keys)
    assert api("DELETE", f"/api/streams/keyed/keys/{first['id']}")[0] == 204
    assert api("DELETE", f"/api/streams/keyed/keys/{first['id']}")[0] == 409
    assert api("DELETE", "/api/streams/keyed/keys/nosuchid")[0] == 404
    keys = {k["id"]: k for k in api.ok("GET", "/api/streams/keyed/keys")["keys"]}
    assert keys[first["id"]]["state"] == "revoked" and keys[first["id"]]["revoked_ms"]
    assert publish_status(srv, first["key"]) == "NetStream.Publish.Unauthorized"
    assert publish_status(srv, second["key"]) == "NetStream.Publish.Start"
    assert api("POST", "/api/streams/nosuch/keys")[0] == 404


def test_rotation_grace_with_ffmpeg(srv, api, module_procs, clip8, tmp_path):
    """The old key publishes (real ffmpeg) during its grace and is refused after; the new one works."""
    old = api.create_stream("rotating")["key"]
    rot = api.ok("POST", f"/api/streams/rotating/keys/{old['id']}/rotate", {"grace_s": 4}, expect=201)
    assert rot["old"]["id"] == old["id"] and rot["key"] != old["key"]
    assert abs(rot["old"]["expires_ms"] - (time.time() * 1000 + 4000)) < 2000
    states = {k["id"]: k["state"] for k in api.ok("GET", "/api/streams/rotating/keys")["keys"]}
    assert states == {old["id"]: "grace", rot["id"]: "active"}
    assert api("POST", f"/api/streams/rotating/keys/{old['id']}/rotate")[0] == 409

    pub = module_procs.add(h.ffmpeg_publish(clip8, srv.url(old["key"]), tmp_path / "old.log"))
    live = srv.wait_live("rotating", timeout=10)
    assert live["key_id"] == old["id"]
    assert api.ok("GET", "/api/streams/rotating")["live"]["publishing"] is True
    pub.stop()
    h.wait_until(lambda: srv.stream("rotating") is None, 10, "publish ended")

    h.wait_until(lambda: time.time() * 1000 > rot["old"]["expires_ms"] + 100, 10, "grace over")
    states = {k["id"]: k["state"] for k in api.ok("GET", "/api/streams/rotating/keys")["keys"]}
    assert states == {old["id"]: "revoked", rot["id"]: "active"}
    refused = module_procs.add(h.ffmpeg_publish(clip8, srv.url(old["key"]), tmp_path / "late.log"))
    assert refused.wait(15) != 0
    assert publish_status(srv, rot["key"]) == "NetStream.Publish.Start"


def test_rotate_validates_grace(api):
    k = api.create_stream("gracecheck")["key"]
    for bad in ({"grace_s": -1}, {"grace_s": "10"}, {"grace_s": 10**9}, {"other": 1}):
        assert api("POST", f"/api/streams/gracecheck/keys/{k['id']}/rotate", bad)[0] == 400
    assert api("POST", "/api/streams/gracecheck/keys/nosuch/rotate", {})[0] == 404


# ---- live state -------------------------------------------------------------------------------------

def test_live_state_from_ingest(srv, api, module_procs, clip8, tmp_path):
    key = api.create_stream("livecam")["key"]["key"]
    module_procs.add(h.ffmpeg_publish(clip8, srv.url(key), tmp_path / "pub.log"))
    srv.wait_live("livecam")

    def measured():
        live = api.ok("GET", "/api/streams/livecam")["live"]
        return live if live["publishing"] and live["fps"] and live["bitrate_bps"] else None
    live = h.wait_until(measured, 10, "live statistics")
    assert (live["width"], live["height"]) == (1280, 720)
    assert live["video_codec"] == "h264" and live["audio_codec"] == "aac"
    assert 20 <= live["fps"] <= 40
    assert 0.5 <= live["keyframe_interval_s"] <= 2
    assert live["since_ms"] <= time.time() * 1000


# ---- viewer tokens ----------------------------------------------------------------------------------

def test_token_issuance(srv, api):
    api.create_stream("paid", visibility="token")
    t0 = time.time()
    tok = api.ok("POST", "/api/streams/paid/tokens", {"ttl_s": 120}, expect=201)
    assert abs(tok["expires_ms"] - (t0 + 120) * 1000) < 3000
    assert tok["playback_url"] == f"http://127.0.0.1:{srv.edge_port}/live/paid/master.m3u8?token={tok['token']}"
    assert all(c.isalnum() or c in "-_.~" for c in tok["token"])
    bound = api.ok("POST", "/api/streams/paid/tokens", {"client_ip": "203.0.113.7"}, expect=201)
    assert bound["token"] != tok["token"]
    default = api.ok("POST", "/api/streams/paid/tokens", expect=201)
    assert abs(default["expires_ms"] - (t0 + 3600) * 1000) < 5000
    for bad in ({"ttl_s": 0}, {"ttl_s": "60"}, {"ttl_s": 10**9}, {"client_ip": "not-an-ip"}, {"x": 1}):
        assert api("POST", "/api/streams/paid/tokens", bad)[0] == 400, bad
    assert api("POST", "/api/streams/nosuch/tokens", {})[0] == 404


# ---- API keys and scopes ----------------------------------------------------------------------------

def test_api_keys_create_list_get_revoke(api):
    created = api.ok("POST", "/api/apikeys", {"name": "ci", "scopes": ["streams", "tokens"]}, expect=201)
    assert created["key"].startswith("sfa_") and created["scopes"] == ["streams", "tokens"]
    status, j, text = api("GET", "/api/apikeys")
    assert status == 200 and created["key"] not in text
    assert created["id"] in [k["id"] for k in j["apikeys"]]
    got = api.ok("GET", f"/api/apikeys/{created['id']}")
    assert got["name"] == "ci" and got["revoked_ms"] is None
    ci = sfapi.Api.__new__(sfapi.Api)
    ci.base, ci.key = api.base, created["key"]
    assert ci.ok("GET", "/api/whoami")["id"] == created["id"]
    assert api("DELETE", f"/api/apikeys/{created['id']}")[0] == 204
    assert ci("GET", "/api/whoami")[0] == 401
    assert api.ok("GET", f"/api/apikeys/{created['id']}")["revoked_ms"]
    assert api("DELETE", f"/api/apikeys/{created['id']}")[0] == 404
    for bad in ({"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []}, {"name": "", "scopes": ["admin"]},
                {"scopes": ["admin"]}, {"name": "x"}, {"name": "x", "scopes": "admin"}):
        assert api("POST", "/api/apikeys", bad)[0] == 400, bad


def example_path(path):
    return path.replace("{name}", "scopecheck").replace("{id}", "nosuchid")


def test_every_route_checks_its_scope(api):
    """For every authenticated route: no key 401, a bad key 401, each scope 403 unless it is allowed."""
    api.create_stream("scopecheck")
    keys = {s: api.api_key(f"scope-{s}", s) for s in ("streams", "tokens", "ingest")}
    keys["admin"] = api.key
    doc = api.ok("GET", "/api/openapi.json", key=None)
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or op.get("security") == []:
                continue
            m, p = method.upper(), example_path(path)
            body = {} if m in ("POST", "PATCH") else None
            assert sfapi.call(api.base, m, p, None, body)[0] == 401, (m, p)
            assert sfapi.call(api.base, m, p, "sfa_" + "0" * 48, body)[0] == 401, (m, p)
            assert sfapi.call(api.base, m, p, "", body, headers={"Authorization": "Basic Zm9vOmJhcg=="})[0] == 401
            allowed = set(op["x-scopes"]) | {"admin"} if op["x-scopes"] else set(keys)
            for scope, key in keys.items():
                status = sfapi.call(api.base, m, p, key, body)[0]
                if scope in allowed:
                    assert status not in (401, 403), (m, p, scope, status)
                else:
                    assert status == 403, (m, p, scope, status)
            checked += 1
    assert checked >= 16
    # The scope sets of the contract, spelled out.
    ops = {(m.upper(), p): op.get("x-scopes") for p, item in doc["paths"].items() for m, op in item.items()
           if m != "parameters"}
    assert ops[("POST", "/api/streams/{name}/tokens")] == ["tokens"]
    assert ops[("GET", "/api/streams")] == ["streams", "tokens"]
    assert ops[("POST", "/api/streams")] == ["streams"]
    assert ops[("GET", "/api/apikeys")] == ["admin"]
    assert ops[("GET", "/api/webhooks/deliveries")] == ["streams"]


def test_ingest_check_route(srv, api):
    key = api.create_stream("checked")["key"]
    ingest_key = api.api_key("ingest-1", "ingest")
    ok = sfapi.call(api.base, "POST", "/api/ingest/check", ingest_key, {"key": key["key"], "app": "live"})
    assert ok[0] == 200 and ok[1] == {"allow": True, "stream": "checked", "key_id": key["id"], "takeover": False,
                                      "profile": "", "latency": "ll-hls", "part_target_ms": 500,
                                      "segment_target_ms": 2000}
    no = sfapi.call(api.base, "POST", "/api/ingest/check", ingest_key, {"key": "sfk_wrong"})
    assert no[0] == 200 and no[1] == {"allow": False}
    assert sfapi.call(api.base, "POST", "/api/ingest/check", ingest_key, {})[0] == 400


# ---- dashboard ----------------------------------------------------------------------------------------

def test_dashboard_or_nothing_at_root(srv):
    status, body, ctype = h.http_get(srv.api_url("/"))
    dist = h.pathlib.Path(os.environ.get("SF_SOURCE_DIR", ".")) / "web" / "dashboard" / "dist" / "index.html"
    if dist.exists():
        assert status == 200 and "text/html" in ctype
        assert h.http_get(srv.api_url("/streams/some-client-route"))[0] == 200
    else:
        assert status == 404


# ---- restart ----------------------------------------------------------------------------------------

def test_restart_keeps_every_stream_and_key(make_server):
    first = make_server(role="all")
    a = sfapi.Api(first)
    made = {}
    for i in range(3):
        made[f"keep{i}"] = a.create_stream(f"keep{i}", visibility="token" if i else "public", part_target_ms=300 + i)
    extra = a.ok("POST", "/api/streams/keep0/keys", expect=201)
    rot = a.ok("POST", f"/api/streams/keep1/keys/{made['keep1']['key']['id']}/rotate", {"grace_s": 600}, expect=201)
    scoped = a.api_key("survivor", "tokens")
    admin_key = first.admin_api_key()
    streams_before = a.ok("GET", "/api/streams")["streams"]
    keys_before = {n: a.ok("GET", f"/api/streams/{n}/keys")["keys"] for n in made}
    assert first.stop() == 0

    third = h.Server(first.workdir, role="all")
    third.start()
    try:
        assert third.admin_api_key() == admin_key
        b = sfapi.Api(third)
        strip = lambda ss: [{k: v for k, v in s.items() if k not in ("live", "rtmp_url", "playback_url")} for s in ss]
        assert strip(b.ok("GET", "/api/streams")["streams"]) == strip(streams_before)
        for n in made:
            assert b.ok("GET", f"/api/streams/{n}/keys")["keys"] == keys_before[n]
        assert sfapi.call(b.base, "GET", "/api/whoami", scoped)[0] == 200
        for name, key in [("keep0", made["keep0"]["key"]["key"]), ("keep0", extra["key"]),
                          ("keep1", made["keep1"]["key"]["key"]), ("keep1", rot["key"]),
                          ("keep2", made["keep2"]["key"]["key"])]:
            c = rtmp_client.RtmpClient(third.rtmp_port)
            with c:
                assert c.publish(key).get("code") == "NetStream.Publish.Start", name
            h.wait_until(lambda: third.stream(name) is None, 10, f"{name} ended")
        assert len(third.logs("admin API key created; read it from the file")) == 0
    finally:
        assert third.stop() == 0


def test_unknown_profile_is_400_naming_the_known_ones(api):
    status, j, _ = api("POST", "/api/streams", {"name": "prof", "profile": "nosuch"})
    assert status == 400 and "passthrough" in j["error"], j
    api.create_stream("prof", profile="passthrough")
    assert api("PATCH", "/api/streams/prof", {"profile": "nosuch"})[0] == 400
    assert api.ok("PATCH", "/api/streams/prof", {"profile": "default"})["profile"] == "default"


def test_each_stream_gets_its_own_ladder(make_server, procs, clip8, tmp_path):
    """A stream set to a configured ladder is transcoded with it; one left at "default" follows
    transcode.profile (passthrough in these tests)."""
    srv = make_server(role="all", args=["--transcode.profiles=tiny=low:320x180@15:200k"])
    api = sfapi.Api(srv)
    tiny = api.create_stream("tinycam", profile="tiny")["key"]["key"]
    plain = api.create_stream("plaincam")["key"]["key"]
    procs.add(h.ffmpeg_publish(clip8, srv.url(tiny), tmp_path / "tiny.log"))
    procs.add(h.ffmpeg_publish(clip8, srv.url(plain), tmp_path / "plain.log"))
    srv.wait_log("stream opened", timeout=10, stream="tinycam", profile="tiny")

    def master(name):
        status, body, _ = h.http_get(f"http://127.0.0.1:{srv.edge_port}/live/{name}/master.m3u8")
        return body if status == 200 and "RESOLUTION" in body else None
    assert "RESOLUTION=320x180" in h.wait_until(lambda: master("tinycam"), 20, "tinycam playlist")
    assert "RESOLUTION=1280x720" in h.wait_until(lambda: master("plaincam"), 20, "plaincam playlist")
    assert not srv.logs("stream opened", stream="plaincam")
