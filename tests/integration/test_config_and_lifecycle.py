"""Configuration (flags, environment, TOML), roles, help, signals and the keys command."""
import json
import os
import pathlib
import signal

import pytest

import rtmp_client
import sfharness as h


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLEX_")}
    env.update(extra)
    return env


def run_streamflex(args, tmp_path, env=None, timeout=15):
    """Runs the binary to completion with safe ports; a server that starts instead is killed at the deadline."""
    safe = [f"--store.path={tmp_path / 'store.db'}", f"--admin.listen={h.HOST}:{h.free_port()}",
            f"--ingest.rtmp_listen={h.HOST}:{h.free_port()}"]
    return h.run([h.BIN, *args[:1], *safe, *args[1:]], timeout=timeout, env=env or clean_env(), cwd=tmp_path)


def test_all_role_without_config_file_serves_health_ready_and_metrics(make_server):
    # Only the ports are given; everything else is the embedded default (store under the cwd).
    srv = make_server(role="all", defaults=False, start=False)
    srv.cmd += [f"--admin.listen={h.HOST}:{srv.admin_port}", f"--ingest.rtmp_listen={h.HOST}:{srv.rtmp_port}"]
    srv.start()
    for path in ("/healthz", "/readyz"):
        status, _, _ = h.http_get(srv.admin_url(path))
        assert status == 200, path
    status, body, ctype = h.http_get(srv.admin_url("/metrics"))
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    m = h.Metrics(body)
    assert not m.bad_lines, m.bad_lines
    assert "# TYPE streamflex_ingest_connections_total counter" in body
    assert m.has("streamflex_ingest_connections_active") and m.has("streamflex_ingest_streams_live")
    assert srv.logs("streamflex started", role="all")
    assert srv.streams() == []  # --demo.enabled=false: no demo publisher
    assert (srv.workdir / "streamflex-data" / "streamflex.db").exists()


def test_bad_flag_value_exits_2_naming_key(tmp_path):
    p = run_streamflex(["ingest", "--ingest.max_connections=abc"], tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "ingest.max_connections" in p.stderr


def test_bad_env_value_exits_2_naming_key(tmp_path):
    p = run_streamflex(["ingest"], tmp_path, env=clean_env(STREAMFLEX_INGEST_IDLE_TIMEOUT="banana"))
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "ingest.idle_timeout" in p.stderr


def test_unknown_flag_exits_2_naming_key(tmp_path):
    p = run_streamflex(["ingest", "--ingest.no_such_key=1"], tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "ingest.no_such_key" in p.stderr


@pytest.mark.parametrize("line,key", [
    ('max_connections = "lots"', "ingest.max_connections"),
    ("idle_timeout = true", "ingest.idle_timeout"),
    ("handshake_timeout = [1, 2]", "ingest.handshake_timeout"),
    ("no_such_key = 1", "ingest.no_such_key"),
])
def test_bad_toml_value_exits_2_naming_key(tmp_path, line, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f"[ingest]\n{line}\n")
    p = h.run([h.BIN, f"--config={cfg}", "ingest", f"--admin.listen={h.HOST}:{h.free_port()}",
               f"--ingest.rtmp_listen={h.HOST}:{h.free_port()}", f"--store.path={tmp_path / 'store.db'}"],
              timeout=15, env=clean_env(), cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert key in p.stderr


def write_toml(path, rtmp_port, admin_port, store):
    path.write_text(f'[ingest]\nrtmp_listen = "{h.HOST}:{rtmp_port}"\nhandshake_timeout = "2s"\n\n'
                    f'[admin]\nlisten = "{h.HOST}:{admin_port}"\n\n[store]\npath = "{store}"\n')
    return path


def test_config_env_var_names_toml_file(make_server, tmp_path):
    srv = make_server(start=False, defaults=False)
    cfg = write_toml(tmp_path / "sf.toml", srv.rtmp_port, srv.admin_port, srv.store)
    srv.env["STREAMFLEX_CONFIG"] = str(cfg)
    srv.start()
    assert srv.wait_log("RTMP listening")["port"] == srv.rtmp_port


def test_toml_file_values_apply(make_server, tmp_path):
    srv = make_server(start=False, defaults=False)
    cfg = write_toml(tmp_path / "sf.toml", srv.rtmp_port, srv.admin_port, srv.store)
    srv.cmd.insert(1, f"--config={cfg}")
    srv.start()
    listening = srv.wait_log("RTMP listening")
    assert listening["port"] == srv.rtmp_port, listening
    with rtmp_client.RtmpClient(srv.rtmp_port) as c:
        c.handshake()
    key = srv.create_key("cam")  # the store path from the file is the one the server uses
    info, c = None, rtmp_client.RtmpClient(srv.rtmp_port)
    with c:
        info = c.publish(key)
    assert info["code"] == "NetStream.Publish.Start", info


def test_env_overrides_file_and_flag_overrides_env(make_server, tmp_path):
    file_port, env_port = h.free_port(), h.free_port()
    srv = make_server(start=False, defaults=False)
    cfg = write_toml(tmp_path / "sf.toml", file_port, srv.admin_port, srv.store)
    srv.cmd.insert(1, f"--config={cfg}")
    srv.env["STREAMFLEX_INGEST_RTMP_LISTEN"] = f"{h.HOST}:{env_port}"
    srv.start()
    assert srv.wait_log("RTMP listening")["port"] == env_port
    assert srv.stop() == 0

    srv2 = make_server(start=False, defaults=False)
    cfg2 = write_toml(tmp_path / "sf2.toml", file_port, srv2.admin_port, srv2.store)
    srv2.cmd.insert(1, f"--config={cfg2}")
    srv2.cmd.append(f"--ingest.rtmp_listen={h.HOST}:{srv2.rtmp_port}")
    srv2.env["STREAMFLEX_INGEST_RTMP_LISTEN"] = f"{h.HOST}:{env_port}"
    srv2.start()
    assert srv2.wait_log("RTMP listening")["port"] == srv2.rtmp_port


@pytest.mark.parametrize("role", ["analytics", "director"])
def test_unimplemented_role_exits_nonzero_saying_not_implemented(tmp_path, role):
    p = run_streamflex([role], tmp_path)
    assert p.returncode != 0, p.stderr
    assert "not implemented" in p.stderr, p.stderr


def test_ingest_help_lists_rtmp_listen(tmp_path):
    p = h.run([h.BIN, "ingest", "--help"], timeout=10, env=clean_env(), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "--ingest.rtmp_listen" in p.stdout


def test_config_command_prints_key_table(tmp_path):
    p = h.run([h.BIN, "config"], timeout=10, env=clean_env(), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    for key in ("ingest.rtmp_listen", "ingest.record_dir", "admin.listen", "store.path", "STREAMFLEX_INGEST_IDLE_TIMEOUT"):
        assert key in p.stdout, key


def test_sigterm_with_live_publisher_exits_0_within_5s(make_server, procs, clip12, tmp_path):
    srv = make_server()
    key = srv.create_key("cam")
    pub = procs.add(h.ffmpeg_publish(clip12, srv.url(key), tmp_path / "ffmpeg.log"))
    srv.wait_live("cam")
    h.wait_until(lambda: srv.stream("cam")["stats"]["video_frames"] >= 30, 5, "1 s of frames")
    rc = srv.stop(signal.SIGTERM, timeout=5)
    assert rc == 0 and srv.stop_seconds is not None, (rc, srv.log_tail())
    stopped = srv.logs("publish stopped", stream="cam")
    assert stopped and stopped[0]["reason"] == "shutdown", srv.log_tail()
    assert srv.logs("stopped", component="app")
    pub.wait(10)  # the encoder notices its server went away


def test_every_log_line_is_json_with_ts_level_component_msg(server):
    key = server.create_key("cam")
    with rtmp_client.RtmpClient(server.rtmp_port) as c:
        assert c.publish(key)["code"] == "NetStream.Publish.Start"
    with rtmp_client.RtmpClient(server.rtmp_port) as c:
        assert c.publish("wrong")["code"] == "NetStream.Publish.Unauthorized"
    server.wait_log("publish stopped", stream="cam")
    assert server.stop() == 0
    lines = [l for l in server.log_text().splitlines() if l.strip()]
    assert len(lines) >= 5
    for line in lines:
        rec = json.loads(line)
        assert {"ts", "level", "component", "msg"} <= rec.keys(), line
        assert rec["level"] in ("debug", "info", "warn", "error"), line
    assert "wrong" not in server.log_text() and key not in server.log_text()


def test_sigint_exits_0_within_5s(server):
    rc = server.stop(signal.SIGINT, timeout=5)
    assert rc == 0 and server.stop_seconds is not None, (rc, server.log_tail())
    assert server.logs("stopped", component="app")


def test_keys_create_prints_key_last_and_list_never_shows_it(tmp_path):
    store = tmp_path / "store.db"
    keys = lambda *a: h.run([h.BIN, "keys", *a, f"--store.path={store}"], timeout=15, env=clean_env(), cwd=tmp_path)
    p = keys("create", "cam")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.rstrip("\n").splitlines()
    key = lines[-1]
    assert key.strip() == key and len(key) >= 16 and " " not in key, lines
    p2 = keys("create", "cam2", "--takeover")
    key2 = p2.stdout.rstrip("\n").splitlines()[-1]
    assert p2.returncode == 0 and key2 != key
    listing = keys("list")
    assert listing.returncode == 0, listing.stderr
    assert "cam" in listing.stdout and "cam2" in listing.stdout
    assert key not in listing.stdout and key2 not in listing.stdout and key not in listing.stderr


def test_keys_create_rejects_bad_stream_name(tmp_path):
    p = h.run([h.BIN, "keys", "create", "bad name/..", f"--store.path={tmp_path / 'store.db'}"], timeout=15,
              env=clean_env(), cwd=tmp_path)
    assert p.returncode != 0 and "stream" in p.stderr, (p.returncode, p.stderr)


def test_readme_configuration_reference_lists_every_key_with_its_default(tmp_path):
    # The README's table is the configuration reference users read; it must match the binary.
    out = h.run([h.BIN, "config"], timeout=10, env=clean_env(), cwd=tmp_path)
    assert out.returncode == 0
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = [line for line in out.stdout.splitlines() if line.startswith("| `")]
    assert len(rows) > 20
    missing = [row for row in rows if row not in readme]
    assert not missing, "README configuration table is out of date:\n" + "\n".join(missing)
