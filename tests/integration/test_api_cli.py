"""`streamflex streams|keys|tokens|apikeys|deliveries` against the API of a running server, and an
ingest running alone that checks publish keys with the API over HTTP (with its short cache) and
whose live state the api role reads from the ingest's admin address."""
import json
import time

import pytest

import rtmp_client
import sfapi
import sfharness as h


def cli(srv, *args, key=None, env_key=None, timeout=20):
    env = dict(srv.env)
    env.pop("STREAMFLEX_API_KEY", None)
    if env_key:
        env["STREAMFLEX_API_KEY"] = env_key
    extra = ["--api", srv.api_url()] + (["--api-key", key] if key else [])
    return h.run([h.BIN, *args, *extra], timeout=timeout, env=env, cwd=srv.workdir)


def last_line(p):
    return [l for l in p.stdout.splitlines() if l.strip()][-1].strip()


def first_json(p):
    """The JSON document the command printed before any secret line."""
    text = p.stdout
    return json.JSONDecoder().raw_decode(text)[0]


@pytest.fixture(scope="module")
def srv(module_servers):
    return module_servers(role="all")


def test_streams_commands(srv):
    k = srv.admin_api_key()
    p = cli(srv, "streams", "create", "clicam", "--visibility", "token", "--part-target-ms", "300", env_key=k)
    assert p.returncode == 0, p.stderr
    key = last_line(p)
    assert key.startswith("sfk_")
    created = first_json(p)
    assert created["stream"]["visibility"] == "token" and created["stream"]["part_target_ms"] == 300
    p = cli(srv, "streams", "list", key=k)
    assert p.returncode == 0 and "clicam" in [s["name"] for s in first_json(p)["streams"]]
    p = cli(srv, "streams", "update", "clicam", "--latency", "hls", "--takeover", "true", key=k)
    assert p.returncode == 0, p.stderr
    got = first_json(cli(srv, "streams", "get", "clicam", key=k))
    assert got["latency"] == "hls" and got["takeover"] is True
    c = rtmp_client.RtmpClient(srv.rtmp_port)
    with c:
        assert c.publish(key).get("code") == "NetStream.Publish.Start"
    p = cli(srv, "streams", "create", "clicam", key=k)
    assert p.returncode == 1 and "409" in p.stderr
    p = cli(srv, "streams", "delete", "clicam", key=k)
    assert p.returncode == 0, p.stderr
    assert cli(srv, "streams", "get", "clicam", key=k).returncode == 1


def test_keys_commands_through_the_api(srv):
    k = srv.admin_api_key()
    api = sfapi.Api(srv)
    first = api.create_stream("clikeys")["key"]
    p = cli(srv, "keys", "create", "clikeys", key=k)
    assert p.returncode == 0, p.stderr
    second = last_line(p)
    assert second.startswith("sfk_") and second != first["key"]
    p = cli(srv, "keys", "rotate", "clikeys", first["id"], "--grace", "0", key=k)
    assert p.returncode == 0, p.stderr
    third = last_line(p)
    assert first_json(p)["old"]["id"] == first["id"]
    listed = first_json(cli(srv, "keys", "list", "clikeys", key=k))["keys"]
    assert [x["state"] for x in listed] == ["revoked", "active", "active"]
    second_id = listed[1]["id"]
    assert cli(srv, "keys", "revoke", "clikeys", second_id, key=k).returncode == 0
    states = [x["state"] for x in first_json(cli(srv, "keys", "list", "clikeys", key=k))["keys"]]
    assert states == ["revoked", "revoked", "active"]
    c = rtmp_client.RtmpClient(srv.rtmp_port)
    with c:
        assert c.publish(third).get("code") == "NetStream.Publish.Start"
    # Without --api, `keys` still works on the local store file.
    p = h.run([h.BIN, "keys", "list", "clikeys", f"--store.path={srv.store}"], timeout=15, env=srv.env)
    assert p.returncode == 0 and p.stdout.count("clikeys") == 3


def test_tokens_apikeys_and_deliveries_commands(srv):
    k = srv.admin_api_key()
    sfapi.Api(srv).create_stream("clitok")
    p = cli(srv, "tokens", "create", "clitok", "--ttl", "60", "--client-ip", "203.0.113.9", key=k)
    assert p.returncode == 0, p.stderr
    tok = first_json(p)
    assert last_line(p) == tok["token"] and tok["playback_url"].endswith("?token=" + tok["token"])
    p = cli(srv, "apikeys", "create", "cli-ci", "--scope", "streams", "--scope", "tokens", key=k)
    assert p.returncode == 0, p.stderr
    ci = last_line(p)
    assert ci.startswith("sfa_")
    listed = first_json(cli(srv, "apikeys", "list", key=k))["apikeys"]
    ci_id = [x["id"] for x in listed if x["name"] == "cli-ci"][0]
    # The new key works with its scopes and not beyond.
    assert cli(srv, "streams", "list", key=ci).returncode == 0
    p = cli(srv, "apikeys", "list", key=ci)
    assert p.returncode == 1 and "403" in p.stderr
    assert cli(srv, "deliveries", "--limit", "5", key=ci).returncode == 0
    assert cli(srv, "apikeys", "revoke", ci_id, key=k).returncode == 0
    p = cli(srv, "streams", "list", key=ci)
    assert p.returncode == 1 and "401" in p.stderr


def test_client_errors_are_clear(srv):
    p = cli(srv, "streams", "list")
    assert p.returncode == 2 and "STREAMFLEX_API_KEY" in p.stderr
    p = h.run([h.BIN, "streams", "list", "--api", f"http://127.0.0.1:{h.free_port()}", "--api-key", "x"], timeout=20)
    assert p.returncode == 1 and "cannot reach the API" in p.stderr
    p = cli(srv, "streams", "create", "bad name!", key=srv.admin_api_key())
    assert p.returncode == 1 and "400" in p.stderr


def test_ingest_alone_asks_the_api(make_server):
    api_srv = make_server(role="api")
    api = sfapi.Api(api_srv)
    ingest_key = api.api_key("edge-ingest", "ingest")
    ing = make_server(role="ingest", args=[f"--ingest.api_url={api_srv.api_url()}", "--ingest.api_cache=1s"],
                      env={"STREAMFLEX_INGEST_API_KEY": ingest_key})
    key = api.create_stream("remote")["key"]
    c = rtmp_client.RtmpClient(ing.rtmp_port)
    with c:
        assert c.publish(key["key"]).get("code") == "NetStream.Publish.Start"
        assert ing.wait_live("remote", tracks=False)["key_id"] == key["id"]
    h.wait_until(lambda: ing.stream("remote") is None, 10, "publish ended")
    assert not (ing.store.exists()), "ingest alone must not open a store"
    c = rtmp_client.RtmpClient(ing.rtmp_port)
    with c:
        assert c.publish("sfk_not_a_key").get("code") == "NetStream.Publish.Unauthorized"
    # A revoked key stops working once the cached answer is older than ingest.api_cache.
    assert api("DELETE", f"/api/streams/remote/keys/{key['id']}")[0] == 204
    time.sleep(1.2)  # the cache's lifetime, configured above
    c = rtmp_client.RtmpClient(ing.rtmp_port)
    with c:
        assert c.publish(key["key"]).get("code") == "NetStream.Publish.Unauthorized"
    # A wrong ingest API key is not a grant.
    bad = make_server(role="ingest", args=[f"--ingest.api_url={api_srv.api_url()}", "--ingest.api_key=sfa_wrong"])
    new_key = api.ok("POST", "/api/streams/remote/keys", expect=201)["key"]
    c = rtmp_client.RtmpClient(bad.rtmp_port)
    with c:
        assert c.publish(new_key).get("code") == "NetStream.Publish.Unauthorized"
    assert ingest_key not in ing.log_text() and new_key not in bad.log_text()


def test_api_alone_reads_live_state_from_a_remote_ingest(make_server):
    ing = make_server(role="ingest", start=False)
    api_srv = make_server(role="api", args=[f"--api.ingest_admin_url=http://127.0.0.1:{ing.admin_port}"])
    # The same store file: ingest checks keys in it, the API manages them (both processes at once).
    ing.cmd = [f"--store.path={api_srv.store}" if a.startswith("--store.path=") else a for a in ing.cmd]
    ing.start()
    api = sfapi.Api(api_srv)
    key = api.create_stream("watched")["key"]["key"]
    c = rtmp_client.RtmpClient(ing.rtmp_port)
    with c:
        assert c.publish(key).get("code") == "NetStream.Publish.Start"
        ing.wait_live("watched", tracks=False)
        live = h.wait_until(lambda: api.ok("GET", "/api/streams/watched")["live"]["publishing"] or None, 5,
                            "remote live state")
        assert live is True
