"""A full control-plane run (API, CLI, real ffmpeg publishing, rotation, viewer tokens played through
the edge, webhooks, API keys, a restart) and then a search of every log line for every secret it
created: stream keys, API keys, viewer tokens, the webhook secret, the token signing keys. None may
appear in logs, in API listings or in webhook bodies."""
import json

import sfapi
import sfharness as h


def test_no_secret_in_logs_or_listings(make_server, module_procs, clip12, tmp_path):
    secrets = {}
    with sfapi.Receiver(status=200) as rx:
        hooks = [f"--webhooks.on_publish={rx.url('/publish')}", f"--webhooks.on_publish_done={rx.url('/done')}",
                 "--webhooks.retry_base=100ms"]
        srv = make_server(role="all", args=hooks)
        api = sfapi.Api(srv)
        secrets["admin api key"] = srv.admin_api_key()
        secrets["webhook secret"] = (srv.store.parent / "webhook-secret").read_text().strip()
        for line in (srv.store.parent / "token-keys").read_text().split(","):
            secrets["token key"] = line.strip().split(":", 1)[-1]

        made = api.create_stream("secretcam", visibility="token")
        secrets["first stream key"] = made["key"]["key"]
        pub = module_procs.add(h.ffmpeg_publish(clip12, srv.url(made["key"]["key"]), tmp_path / "a.log"))
        srv.wait_live("secretcam")
        rot = api.ok("POST", f"/api/streams/secretcam/keys/{made['key']['id']}/rotate", {"grace_s": 1}, expect=201)
        secrets["rotated stream key"] = rot["key"]
        extra = api.ok("POST", "/api/streams/secretcam/keys", expect=201)
        secrets["extra stream key"] = extra["key"]
        assert api("DELETE", f"/api/streams/secretcam/keys/{extra['id']}")[0] == 204
        p = h.run([h.BIN, "streams", "create", "clicam", "--api", srv.api_url(), "--api-key", srv.admin_api_key()],
                  timeout=20)
        assert p.returncode == 0, p.stderr
        secrets["cli stream key"] = p.stdout.strip().splitlines()[-1]
        tokens_key = api.api_key("issuer", "tokens")
        secrets["tokens api key"] = tokens_key
        issuer = sfapi.Api.__new__(sfapi.Api)
        issuer.base, issuer.key = api.base, tokens_key
        tok = issuer.ok("POST", "/api/streams/secretcam/tokens", {"ttl_s": 300}, expect=201)
        secrets["viewer token"] = tok["token"]
        ip_tok = issuer.ok("POST", "/api/streams/secretcam/tokens", {"client_ip": "127.0.0.1"}, expect=201)
        secrets["ip viewer token"] = ip_tok["token"]
        ingest_key = api.api_key("ingest", "ingest")
        secrets["ingest api key"] = ingest_key
        assert sfapi.call(api.base, "POST", "/api/ingest/check", ingest_key, {"key": rot["key"]})[1]["allow"]

        # The token the API issued plays through the edge; without it the stream is refused.
        assert tok["playback_url"].startswith(f"http://127.0.0.1:{srv.edge_port}/live/secretcam/master.m3u8?token=")
        h.wait_until(lambda: h.http_get(tok["playback_url"])[0] == 200, 15, "token playback via the edge")
        assert h.http_get(tok["playback_url"].split("?")[0])[0] == 403
        assert h.http_get(ip_tok["playback_url"])[0] == 200

        pub.stop()
        h.wait_until(lambda: srv.stream("secretcam") is None, 10, "publish ended")
        pub2 = module_procs.add(h.ffmpeg_publish(clip12, srv.url(rot["key"]), tmp_path / "b.log"))
        srv.wait_live("secretcam")
        pub2.stop()
        h.wait_until(lambda: len(rx.got("/done")) >= 2, 10, "two on_publish_done")
        assert len(rx.got("/publish")) >= 2

        listings = [api("GET", p)[2] for p in ["/api/streams", "/api/streams/secretcam", "/api/streams/secretcam/keys",
                                                "/api/apikeys", "/api/webhooks/deliveries", "/api/whoami"]]
        hook_bodies = [r["body"].decode(errors="replace") for r in rx.requests]
        # A restart, so start-up and shutdown logging are searched too.
        assert srv.stop() == 0
        again = h.Server(srv.workdir, role="all", args=hooks)
        again.start()
        try:
            assert sfapi.Api(again).ok("GET", "/api/whoami")["scopes"] == ["admin"]
        finally:
            assert again.stop() == 0

    logs = {}
    for path in srv.workdir.glob("server-*"):
        logs[path.name] = path.read_text(errors="replace")
    assert len(logs) >= 4 and all(v for k, v in logs.items() if k.endswith(".log"))
    assert sum(len(v) for v in logs.values()) > 5000  # a real run's worth of logging was searched
    everything = json.dumps(secrets)
    assert len(secrets) >= 11, everything
    for what, secret in secrets.items():
        assert len(secret) >= 16, what
        for name, text in logs.items():
            assert secret not in text, f"{what} appears in {name}"
        for text in listings:
            assert secret not in text, f"{what} appears in an API listing"
        for text in hook_bodies:
            assert secret not in text, f"{what} appears in a webhook body"
    # The log does say what happened, by id.
    text = "".join(logs.values())
    for fragment in ("stream created", "stream key rotated", "viewer token issued", "API key created",
                     "on_publish answered", made["key"]["id"], rot["id"]):
        assert fragment in text, fragment
