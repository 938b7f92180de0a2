"""Webhooks with a real local HTTP receiver: on_publish allows, denies, times out (the configured
default applies), nginx-rtmp style form bodies; on_publish_done is retried with backoff; bodies
are signed with HMAC-SHA256; every delivery is visible in the API."""
import json
import time
import urllib.parse

import pytest

import rtmp_client
import sfapi
import sfharness as h

SECRET = "test-webhook-secret-123"


def publish_code(srv, key):
    c = rtmp_client.RtmpClient(srv.rtmp_port)
    with c:
        return c.publish(key).get("code")


def hook_server(make_server, rx, *extra):
    return make_server(role="all", args=[f"--webhooks.on_publish={rx.url('/publish')}",
                                         f"--webhooks.secret={SECRET}", *extra])


def deliveries(api):
    return api.ok("GET", "/api/webhooks/deliveries")["deliveries"]


def test_on_publish_allow_and_deny_by_status(make_server):
    verdict = {"allow": True}
    with sfapi.Receiver(decide=lambda rec: 200 if verdict["allow"] else 403) as rx:
        srv = hook_server(make_server, rx)
        api = sfapi.Api(srv)
        key = api.create_stream("hooked")["key"]
        assert publish_code(srv, key["key"]) == "NetStream.Publish.Start"
        h.wait_until(lambda: srv.stream("hooked") is None, 10, "publish ended")
        verdict["allow"] = False
        assert publish_code(srv, key["key"]) == "NetStream.Publish.Unauthorized"
        calls = rx.got("/publish")
        assert len(calls) == 2
        for rec in calls:
            assert rec["headers"]["content-type"] == "application/json"
            assert rec["headers"]["x-streamflex-event"] == "on_publish"
            assert sfapi.signature_ok(SECRET, rec)
            body = json.loads(rec["body"])
            assert body["call"] == "publish" and body["name"] == "hooked" and body["stream"] == "hooked"
            assert body["app"] == "live" and body["addr"] == "127.0.0.1" and body["key_id"] == key["id"]
            assert key["key"] not in rec["body"].decode()
        # A wrong key never reaches the hook.
        assert publish_code(srv, "sfk_wrong") == "NetStream.Publish.Unauthorized"
        assert len(rx.got("/publish")) == 2
        d = [x for x in deliveries(api) if x["event"] == "on_publish"]
        assert [(x["state"], x["outcome"], x["last_status"]) for x in d] == [("delivered", "deny", 403),
                                                                              ("delivered", "allow", 200)]
        assert d[0]["url"] == rx.url("/publish") and d[0]["stream"] == "hooked"


def test_on_publish_json_answer_can_deny(make_server):
    with sfapi.Receiver(status=200, body=b'{"allow": false}') as rx:
        srv = hook_server(make_server, rx)
        key = sfapi.Api(srv).create_stream("jsondeny")["key"]["key"]
        assert publish_code(srv, key) == "NetStream.Publish.Unauthorized"


@pytest.mark.parametrize("default, code", [("deny", "NetStream.Publish.Unauthorized"),
                                           ("allow", "NetStream.Publish.Start")])
def test_on_publish_timeout_applies_the_default(make_server, default, code):
    with sfapi.Receiver(status=200, delay=3.0) as rx:
        srv = hook_server(make_server, rx, "--webhooks.timeout=400ms", f"--webhooks.on_publish_default={default}")
        api = sfapi.Api(srv)
        key = api.create_stream("slow")["key"]["key"]
        t0 = time.monotonic()
        assert publish_code(srv, key) == code
        assert time.monotonic() - t0 < 2.5
        d = deliveries(api)[0]
        assert d["event"] == "on_publish" and d["state"] == "failed" and d["outcome"] == default
        assert d["last_error"]


def test_on_publish_unreachable_applies_the_default(make_server):
    port = h.free_port()  # nothing listens there
    srv = make_server(role="all", args=[f"--webhooks.on_publish=http://127.0.0.1:{port}/x", "--webhooks.timeout=500ms"])
    key = sfapi.Api(srv).create_stream("nohook")["key"]["key"]
    assert publish_code(srv, key) == "NetStream.Publish.Unauthorized"


def test_form_bodies_like_nginx_rtmp(make_server):
    with sfapi.Receiver(status=204) as rx:
        srv = hook_server(make_server, rx, "--webhooks.format=form")
        key = sfapi.Api(srv).create_stream("formcam")["key"]
        assert publish_code(srv, key["key"]) == "NetStream.Publish.Start"
        rec = rx.got("/publish")[0]
        assert rec["headers"]["content-type"] == "application/x-www-form-urlencoded"
        form = dict(urllib.parse.parse_qsl(rec["body"].decode()))
        assert (form["call"], form["name"], form["app"], form["addr"]) == ("publish", "formcam", "live", "127.0.0.1")
        assert sfapi.signature_ok(SECRET, rec)


def test_on_publish_done_is_retried_until_delivered(make_server):
    attempts = []

    def decide(rec):
        attempts.append(time.monotonic())
        return 500 if len(attempts) < 3 else 200

    with sfapi.Receiver(decide=decide) as rx:
        srv = make_server(role="all", args=[f"--webhooks.on_publish_done={rx.url('/done')}",
                                            f"--webhooks.secret={SECRET}", "--webhooks.retry_base=200ms",
                                            "--webhooks.timeout=10s"])
        api = sfapi.Api(srv)
        key = api.create_stream("donecam")["key"]
        c = rtmp_client.RtmpClient(srv.rtmp_port)
        with c:
            assert c.publish(key["key"]).get("code") == "NetStream.Publish.Start"
            srv.wait_live("donecam", tracks=False)
        h.wait_until(lambda: len(rx.got("/done")) >= 3, 10, "three on_publish_done attempts")
        calls = rx.got("/done")
        assert len({c["body"] for c in calls}) == 1  # the same body each time
        body = json.loads(calls[0]["body"])
        assert body["call"] == "publish_done" and body["name"] == "donecam" and body["key_id"] == key["id"]
        assert body["reason"] and body["duration_ms"] >= 0
        assert all(sfapi.signature_ok(SECRET, c) for c in calls)
        assert calls[0]["headers"]["x-streamflex-event"] == "on_publish_done"
        # Backoff: 200 ms, then 400 ms.
        assert attempts[1] - attempts[0] >= 0.15 and attempts[2] - attempts[1] >= 0.3

        def delivered():
            d = [x for x in deliveries(api) if x["event"] == "on_publish_done"]
            return d if d and d[0]["state"] == "delivered" else None
        d = h.wait_until(delivered, 5, "delivery recorded")[0]
        assert d["attempts"] == 3 and d["last_status"] == 200 and d["stream"] == "donecam", d
        assert str(d["id"]) == calls[0]["headers"]["x-streamflex-delivery"]


def test_on_publish_done_gives_up_after_max_attempts(make_server):
    with sfapi.Receiver(status=503) as rx:
        srv = make_server(role="all", args=[f"--webhooks.on_publish_done={rx.url('/done')}",
                                            "--webhooks.retry_base=50ms", "--webhooks.max_attempts=2",
                                            "--webhooks.timeout=10s"])
        api = sfapi.Api(srv)
        key = api.create_stream("failcam")["key"]["key"]
        c = rtmp_client.RtmpClient(srv.rtmp_port)
        with c:
            assert c.publish(key).get("code") == "NetStream.Publish.Start"
            srv.wait_live("failcam", tracks=False)

        def failed():
            d = [x for x in deliveries(api) if x["event"] == "on_publish_done"]
            return d if d and d[0]["state"] == "failed" else None
        d = h.wait_until(failed, 10, "delivery failed")[0]
        assert d["attempts"] == 2 and d["last_status"] == 503 and d["last_error"] == "HTTP 503", d
        assert len(rx.got("/done")) == 2, (d, rx.requests)
        # The secret was generated and kept beside the store, mode 0600, only its path logged.
        secret_file = srv.store.parent / "webhook-secret"
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
        assert secret_file.read_text().strip() not in srv.log_text()
        assert sfapi.signature_ok(secret_file.read_text().strip(), rx.got("/done")[0])


def test_publish_ended_by_shutdown_is_still_reported(make_server):
    with sfapi.Receiver(status=200) as rx:
        srv = make_server(role="all", args=[f"--webhooks.on_publish_done={rx.url('/done')}"])
        key = sfapi.Api(srv).create_stream("stopcam")["key"]["key"]
        c = rtmp_client.RtmpClient(srv.rtmp_port)
        with c:
            assert c.publish(key).get("code") == "NetStream.Publish.Start"
            srv.wait_live("stopcam", tracks=False)
            assert srv.stop() == 0
        calls = rx.got("/done")
        assert len(calls) == 1
        body = json.loads(calls[0]["body"])
        assert body["name"] == "stopcam" and body["reason"] == "shutdown"
