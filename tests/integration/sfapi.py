"""A small client of the StreamFlex REST API for the integration tests (urllib, no dependencies),
and a local webhook receiver (http.server on 127.0.0.1) that records what it is sent."""
import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.error
import urllib.request

import sfharness as h


def call(base, method, path, key=None, body=None, raw=None, headers=None, timeout=10):
    """Returns (status, parsed JSON or None, raw text). HTTP errors are returned, not raised."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return status, parsed, text


class Api:
    def __init__(self, server, key=None):
        self.base = server.api_url()
        self.key = key if key is not None else server.admin_api_key()

    def __call__(self, method, path, body=None, key="default", **kw):
        return call(self.base, method, path, self.key if key == "default" else key, body, **kw)

    def ok(self, method, path, body=None, expect=200, **kw):
        status, j, text = self(method, path, body, **kw)
        assert status == expect, (method, path, status, text)
        return j

    def create_stream(self, name, **settings):
        return self.ok("POST", "/api/streams", {"name": name, **settings}, expect=201)

    def api_key(self, name, *scopes):
        return self.ok("POST", "/api/apikeys", {"name": name, "scopes": list(scopes)}, expect=201)["key"]


class Receiver:
    """Records POSTs; answers with `status` (or the result of `decide(request)`) after `delay`."""

    def __init__(self, status=200, delay=0.0, body=b"", decide=None):
        self.status, self.delay, self.body, self.decide = status, delay, body, decide
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(n)
                rec = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": data}
                with outer.lock:
                    outer.requests.append(rec)
                    status = outer.decide(rec) if outer.decide else outer.status
                if outer.delay:
                    time.sleep(outer.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json" if outer.body else "text/plain")
                    self.send_header("Content-Length", str(len(outer.body)))
                    self.end_headers()
                    self.wfile.write(outer.body)
                except OSError:
                    pass  # the caller gave up waiting

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((h.HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/hook"):
        return f"http://{h.HOST}:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def got(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


def signature_ok(secret, rec):
    want = "sha256=" + hmac.new(secret.encode(), rec["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(rec["headers"].get("x-streamflex-signature", ""), want)
