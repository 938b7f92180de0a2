#!/usr/bin/python3
"""A small controllable HTTP/1.1 upstream for the edge benchmarks (edge_cache_hit, edge_coalescing).
Standard library only; one asyncio loop; keep-alive; 127.0.0.1 only.

  GET /healthz          200 "ok" (Cache-Control: no-store), not counted (edges probe it)
  GET /_stats           JSON {path: requests received}, not counted
  GET <slow prefix>...  counted; answered --slow-ms after the request arrived with --slow-bytes of
                        body and --slow-cache-control; every answer is appended to --log as a JSON
                        line {"path", "recv_ns", "answer_ns", "sent_ns", "wall"} where the *_ns are
                        CLOCK_MONOTONIC nanoseconds (time.monotonic_ns(), the clock
                        bench/coalesce_client.cpp reads): answer_ns just before the response is
                        handed to the kernel, sent_ns once it all was.
  GET <other path>      counted; the file <root>/<path> with --cache-control, else 404 (no-store).
"""

import argparse
import asyncio
import json
import os
import sys
import time

TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "video/mp4",
         ".txt": "text/plain"}


class Upstream:
    def __init__(self, args):
        self.args = args
        self.counts = {}
        self.files = {}
        self.slow_body = bytes((i * 131 + 7) & 0xFF for i in range(args.slow_bytes))
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def file(self, path):
        if path not in self.files:
            full = os.path.realpath(os.path.join(self.args.root, path.lstrip("/")))
            root = os.path.realpath(self.args.root)
            data = None
            if full.startswith(root + os.sep) and os.path.isfile(full):
                with open(full, "rb") as f:
                    data = f.read()
            self.files[path] = data
        return self.files[path]

    @staticmethod
    def head(status, ctype, length, cache_control, keep_alive):
        reason = {200: "OK", 404: "Not Found", 400: "Bad Request"}.get(status, "OK")
        return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {length}\r\n"
                f"Cache-Control: {cache_control}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
                ).encode()

    async def handle(self, reader, writer):
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    break
                recv_ns = time.monotonic_ns()
                lines = raw.decode("latin-1").split("\r\n")
                parts = lines[0].split()
                if len(parts) != 3:
                    break
                method, target, version = parts
                headers = {}
                for ln in lines[1:]:
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                path = target.split("?", 1)[0]
                body = b""
                if path == "/healthz":
                    status, ctype, cc, body = 200, "text/plain", "no-store", b"ok\n"
                elif path == "/_stats":
                    status, ctype, cc = 200, "application/json", "no-store"
                    body = json.dumps(self.counts).encode()
                else:
                    self.counts[path] = self.counts.get(path, 0) + 1
                    if path.startswith(self.args.slow_prefix):
                        await asyncio.sleep(max(0.0, self.args.slow_ms / 1000 - (time.monotonic_ns() - recv_ns) / 1e9))
                        status, ctype, cc, body = 200, "video/iso.segment", self.args.slow_cache_control, self.slow_body
                    else:
                        data = self.file(path)
                        if data is None:
                            status, ctype, cc, body = 404, "text/plain", "no-store", b"not found\n"
                        else:
                            status, cc, body = 200, self.args.cache_control, data
                            ctype = TYPES.get(os.path.splitext(path)[1], "application/octet-stream")
                data = self.head(status, ctype, len(body), cc, keep) + (body if method != "HEAD" else b"")
                answer_ns = time.monotonic_ns()
                writer.write(data)
                await writer.drain()
                if path.startswith(self.args.slow_prefix) and self.log:
                    self.log.write(json.dumps({"path": path, "recv_ns": recv_ns, "answer_ns": answer_ns,
                                               "sent_ns": time.monotonic_ns(), "wall": time.time(),
                                               "via": headers.get("via", ""), "bytes": len(body)}) + "\n")
                if not keep:
                    break
        except ConnectionError:
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--root", default=".")
    ap.add_argument("--cache-control", default="public, max-age=60")
    ap.add_argument("--slow-prefix", default="/slow/")
    ap.add_argument("--slow-ms", type=float, default=500)
    ap.add_argument("--slow-bytes", type=int, default=100000)
    ap.add_argument("--slow-cache-control", default="public, max-age=60")
    ap.add_argument("--log", default="")
    args = ap.parse_args()
    up = Upstream(args)
    server = await asyncio.start_server(up.handle, "127.0.0.1", args.port, backlog=4096, limit=65536)
    print(f"edge_upstream listening on 127.0.0.1:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
