"""Shared fixtures: servers on free ports, pre-encoded clips, child processes stopped by PID."""
import os
import pathlib
import signal

import pytest

import sfharness as h


def pytest_sessionstart(session):
    if not (os.path.isfile(h.BIN) and os.access(h.BIN, os.X_OK)):
        raise pytest.UsageError(f"streamflex binary not found at {h.BIN} (set STREAMFLEX_BIN)")


@pytest.fixture(scope="session")
def clip10():
    return h.encode_clip(10)


@pytest.fixture(scope="session")
def clip12():
    return h.encode_clip(12)


@pytest.fixture(scope="session")
def clip8():
    return h.encode_clip(8)


class ServerPool:
    """Starts servers for one test (or module) and checks each exits 0 on SIGTERM at the end."""

    def __init__(self, base):
        self.base = pathlib.Path(base)
        self.servers = []

    def __call__(self, start=True, **kw):
        srv = h.Server(self.base / f"srv{len(self.servers)}", **kw)
        self.servers.append(srv)
        if start:
            srv.start()
        return srv

    def close(self):
        problems = []
        for s in self.servers:
            if s.alive():
                rc = s.stop(signal.SIGTERM, 5)
                if rc != 0:
                    problems.append(f"{' '.join(s.cmd)} exited {rc} on SIGTERM; log tail:\n{s.log_tail()}")
        return problems


class ProcPool:
    def __init__(self):
        self.procs = []

    def add(self, p):
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            p.stop(signal.SIGINT, 5)


@pytest.fixture
def make_server(tmp_path):
    pool = ServerPool(tmp_path)
    yield pool
    problems = pool.close()
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def procs():
    pool = ProcPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory):
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    yield pool
    problems = pool.close()
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture(scope="module")
def module_procs():
    pool = ProcPool()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def clip30():
    return h.encode_clip(30)


@pytest.fixture(scope="session")
def browser_deps():
    """tests/browser with its pinned npm packages (npm ci when node_modules is missing) and Chromium."""
    if not os.access(h.CHROMIUM, os.X_OK):
        pytest.fail(f"{h.CHROMIUM} not found: apt-get install -y chromium (or set SF_CHROMIUM)")
    return h.ensure_node_modules()
