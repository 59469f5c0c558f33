"""Envoy with and without the Tollgate filter, in the same run (docs/benchmarks.md).

Two Envoys (`--concurrency 1`, pinned to CPU 0) share one upstream; the load generator and the
upstream are pinned to CPU 1. For each case the two are measured in interleaved pairs (the order
alternates), and the report gives the median of the pairs: request rate, the ratio with/without,
p50 latency and the p50 added by the filter, and for streams the time to the first text byte.
It ends with each Envoy's resident memory, whose difference is what the filter's VMs cost.

    make bench-envoy            # builds everything, then runs this, in both request-hold modes
    python3 tests/bench/envoy_compare.py --pairs 5 --millis 3000 --mode strict
    python3 tests/bench/envoy_compare.py --cases agent --json agent.json

Cases: `2KB` and `64KB` chat bodies (every request a text never seen before: each message
carries a number unique to the request), `agent` (an agent conversation
of 20 turns replayed turn by turn, each request resending the history, every replay a new
conversation) and `stream`.

`--memory-workers N` then measures what one more worker costs: Envoys with and without the
filter at `--concurrency 1` and `N`, each loaded with every case over 4·N connections (so every
worker's VM analyses requests), and reports (RSS difference at N − at 1) / (N − 1): the
resident memory one worker VM adds, the main thread's VM and compiled code shared by all
excluded.

`--mode default` is the Wasm config Istio's WasmPlugin renders (the body hold, ADR 0013);
`--mode strict` sets allow_on_headers_stop_iteration and request_hold.mode "headers".
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "envoy"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import render  # noqa: E402

LOADGEN = REPO / "target" / "release" / "tollgate-loadgen"
WASM = REPO / "target" / "wasm32-wasip1" / "release" / "tollgate_filter.wasm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: int, argv: list) -> list:
    return ["taskset", "-c", str(cpu), *argv] if os.cpu_count() and os.cpu_count() > 1 else argv


def envoy_binary() -> str:
    from conftest import envoy_binary as find
    return find()


def benign_prompts() -> list[str]:
    # one JSON document per "\n": texts hold U+2028 and other breaks that splitlines() splits on
    text = (REPO / "eval" / "corpus" / "benign.jsonl").read_text()
    return [json.loads(l)["text"] for l in text.split("\n") if l.strip()]


def chat_body(size: int) -> bytes:
    """A chat body of about `size` bytes; `@CONV@` in every message makes it a new text on every
    request (tollgate-loadgen), so no message is ever found in the filter's history cache."""
    prompts = benign_prompts()
    messages = [{"role": "system", "content": "You are a helpful assistant for Acme Corp. Answer concisely."}]
    total, i = 200, 0
    while total < size:
        p = "[@CONV@] " + prompts[i % len(prompts)][: size - total + 1]
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": p})
        total += len(p.encode()) + 40
        i += 1
    return json.dumps({"model": "gpt-4o-mini", "messages": messages}).encode()


def agent_conversation(turns: int = 20) -> list[bytes]:
    """The requests of one agent conversation, turn by turn, each resending the whole history:
    a system prompt and a task, then per turn a tool call, its ~3 KB result (benign prompts)
    and, before the last, the agent's note, growing to about 64 KB. `@CONV@` in each tool result
    becomes a number unique to each replay (tollgate-loadgen), so every replay is a conversation
    the filter has not seen, whose history repeats only within itself."""
    prompts = benign_prompts()
    results, next_prompt = [], 0
    for _ in range(turns):
        text = ""
        while len(text) < 3000:
            text += prompts[next_prompt % len(prompts)] + "\n"
            next_prompt += 1
        results.append(text[:3000])
    bodies = []
    for turn in range(1, turns + 1):
        messages = [
            {"role": "system", "content": "You are a coding agent for Acme Corp. Use the tools to read the repository; never push to main."},
            {"role": "user", "content": "Go through the notes and summarise each."},
        ]
        for t in range(turn):
            call = f"call_{t}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call, "type": "function", "function": {"name": "read_file", "arguments": json.dumps({"path": f"notes/{t}.md"})}}]})
            messages.append({"role": "tool", "tool_call_id": call, "content": f"[run @CONV@] {results[t]}"})
            if t + 1 < turn:
                messages.append({"role": "assistant", "content": f"Note {t} read; moving on to the next one."})
        bodies.append(json.dumps({"model": "gpt-4o-mini", "messages": messages}, separators=(",", ":")).encode())
    return bodies


class Envoy:
    def __init__(self, upstream_port: int, with_filter: bool, workdir: Path, plugin_config: str = "{}",
                 header_hold: bool = False, wasm: Path = WASM, concurrency: int = 1):
        self.port, self.admin = free_port(), free_port()
        name = ("with" if with_filter else "without") + (f"-{concurrency}" if concurrency > 1 else "")
        cfg = workdir / f"envoy-{name}.yaml"
        cfg.write_text(render.render(str(wasm), self.port, self.admin, f"http://127.0.0.1:{upstream_port}", plugin_config,
                                     access_log="/dev/null", with_filter=with_filter, header_hold=header_hold))
        self.log = open(workdir / f"envoy-{name}.log", "w")
        self.proc = subprocess.Popen(pinned(0, [envoy_binary(), "-c", str(cfg), "--concurrency", str(concurrency),
                                                "--use-dynamic-base-id", "-l", "warning"]),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Envoy ({name}) did not start; see {workdir}")

    def rss_kib(self) -> int:
        # taskset execs envoy, so the pid is Envoy's
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def vm_memory_bytes(self) -> int:
        """The filter's own report of one VM's linear memory (a gauge set every second)."""
        time.sleep(1.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stats?filter=vm_memory_bytes", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.strip().endswith(tuple("0123456789")) and "vm_memory_bytes" in line:
                    return int(line.rsplit(":", 1)[1])
        return 0

    def connections_per_worker(self) -> list[int]:
        """Connections each worker accepted on the listener (Envoy's per-worker listener stats)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stats?filter=worker_.*downstream_cx_total",
                                    timeout=5) as r:
            return [int(line.rsplit(":", 1)[1]) for line in r.read().decode().splitlines()
                    if line.startswith("listener.") and ":" in line]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def load(port: int, body: Path, connections: int, millis: int, marker: str | None) -> dict:
    # a .jsonl file holds a conversation's turns, sent in order
    kind = "--conversation" if body.suffix == ".jsonl" else "--body"
    argv = [str(LOADGEN), "run", "--port", str(port), kind, str(body), "--connections", str(connections),
            "--millis", str(millis), "--warmup-millis", "500"]
    if marker:
        argv += ["--first-token-marker", marker]
    out = subprocess.run(pinned(1, argv), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def memory_per_worker(n: int, upstream_port: int, work: Path, plugin_config: str, strict: bool, wasm: Path,
                      bodies: list) -> dict:
    """Resident memory the filter adds at 1 and `n` workers, after loading every worker."""
    added = {}
    for workers in (1, n):
        pair = {"with": Envoy(upstream_port, True, work, plugin_config, header_hold=strict, wasm=wasm,
                              concurrency=workers),
                "without": Envoy(upstream_port, False, work, concurrency=workers)}
        try:
            for e in pair.values():
                for body, marker in bodies:
                    load(e.port, body, 4 * workers, 1500, marker)
            rss = {k: e.rss_kib() for k, e in pair.items()}
            served = pair["with"].connections_per_worker()
        finally:
            for e in pair.values():
                e.stop()
        added[workers] = rss["with"] - rss["without"]
        print(f"memory at {workers} worker(s): {rss}; connections per worker with the filter: {served}",
              file=sys.stderr)
        if len(served) < workers or min(served) == 0:
            raise RuntimeError(f"not every worker was loaded ({served}): the per-worker figure would be low")
    return {"added_1": added[1], "added_n": added[n], "per_worker": (added[n] - added[1]) / (n - 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--millis", type=int, default=3000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--plugin-config", help="JSON file with the filter configuration (default: none)")
    ap.add_argument("--cases", default="2KB,64KB,agent,stream",
                    help="comma-separated subset of 2KB,64KB,agent,stream")
    ap.add_argument("--mode", choices=["default", "strict"], default="default",
                    help="request hold: default (as a WasmPlugin renders it) or strict (header hold)")
    ap.add_argument("--wasm", type=Path, default=WASM, help="the filter to measure (default: the built one)")
    ap.add_argument("--before-request-hold", action="store_true",
                    help="the filter predates request_hold (an older build, for a same-day baseline): "
                         "strict mode sets only the Envoy field")
    ap.add_argument("--memory-workers", type=int, default=0,
                    help="also measure the resident memory one more worker VM adds (Envoys at 1 and N workers)")
    a = ap.parse_args()
    for path in (LOADGEN, a.wasm):
        if not path.exists():
            print(f"{path} is missing: run `make bench-envoy`", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    # the request bodies first: nothing is started before they exist
    cases = []
    wanted = set(a.cases.split(","))
    for label, size in [("2KB", 2 << 10), ("64KB", 64 << 10)]:
        if label not in wanted:
            continue
        f = work / f"body-{label}.json"
        f.write_bytes(chat_body(size))
        cases.append((f"chat {label}", f, None))
    if "agent" in wanted:
        f = work / "agent-20-turns.jsonl"
        f.write_bytes(b"\n".join(agent_conversation()) + b"\n")
        cases.append(("agent, 20 turns resent (to ~64KB)", f, None))
    if "stream" in wanted:
        f = work / "body-stream.json"
        body = json.loads(chat_body(2 << 10))
        body["stream"] = True
        f.write_text(json.dumps(body, separators=(",", ":")))
        cases.append(("stream 2KB, 20 events", f, "Hello"))
    upstream_port = free_port()
    # streamed answers are paced 1 ms per event, as a provider's tokens are
    upstream = subprocess.Popen(pinned(1, [str(LOADGEN), "upstream", "--port", str(upstream_port),
                                           "--events", "20", "--event-delay-us", "1000"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    plugin_config = Path(a.plugin_config).read_text() if a.plugin_config else "{}"
    strict = a.mode == "strict"
    if strict and not a.before_request_hold:
        cfg = json.loads(plugin_config)
        cfg["request_hold"] = {"mode": "headers", **cfg.get("request_hold", {})}
        plugin_config = json.dumps(cfg)
    envoys = {"with": Envoy(upstream_port, True, work, plugin_config, header_hold=strict, wasm=a.wasm),
              "without": Envoy(upstream_port, False, work)}
    results = {}
    try:
        for name, bodyfile, marker in cases:
            runs = {"with": [], "without": [], "with_c1": [], "without_c1": []}
            for i in range(a.pairs):
                order = ["with", "without"] if i % 2 == 0 else ["without", "with"]
                for which in order:
                    runs[which].append(load(envoys[which].port, bodyfile, a.connections, a.millis, marker))
                # one connection: latency without queueing (what one client sees on an idle proxy)
                for which in order:
                    runs[which + "_c1"].append(load(envoys[which].port, bodyfile, 1, a.millis // 2, marker))
            results[name] = runs
            print(f"{name}: done", file=sys.stderr)
        memory = {k: e.rss_kib() for k, e in envoys.items()}
        vm_memory = envoys["with"].vm_memory_bytes()
        for e in envoys.values():
            e.stop()
        envoys = {}
        per_worker = (memory_per_worker(a.memory_workers, upstream_port, work, plugin_config, strict, a.wasm,
                                        [(f, m) for _, f, m in cases])
                      if a.memory_workers > 1 else None)
    finally:
        for e in envoys.values():
            e.stop()
        upstream.terminate()

    def med(runs, key):
        return statistics.median(r[key] for r in runs)

    print(f"mode: {a.mode}, filter: {a.wasm}")
    lines = [f"| case | req/s without | req/s with | ratio ({a.connections} connections) | p50 without / with, 1 connection (µs) | added p50 (µs) | first token p50 without / with, 1 connection (µs) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, runs in results.items():
        w, wo = runs["with"], runs["without"]
        w1, wo1 = runs["with_c1"], runs["without_c1"]
        ratios = [x["rps"] / y["rps"] for x, y in zip(w, wo)]
        added = [x["p50_us"] - y["p50_us"] for x, y in zip(w1, wo1)]
        ftt = f'{med(wo1, "first_token_p50_us"):.0f} / {med(w1, "first_token_p50_us"):.0f}' if "stream" in name else "–"
        errors = sum(r["errors"] for r in w + wo + w1 + wo1)
        lines.append(f"| {name} | {med(wo, 'rps'):.0f} | {med(w, 'rps'):.0f} | {statistics.median(ratios):.2f} | "
                     f"{med(wo1, 'p50_us'):.0f} / {med(w1, 'p50_us'):.0f} | {statistics.median(added):.0f} | {ftt} |"
                     + (f" ({errors} non-200)" if errors else ""))
    lines.append("")
    lines.append(f"Envoy resident memory after the run: without the filter {memory['without'] / 1024:.1f} MiB, "
                 f"with {memory['with'] / 1024:.1f} MiB (difference {(memory['with'] - memory['without']) / 1024:.1f} MiB: "
                 f"the filter's VMs on the main thread and the one worker, V8 included); each VM's linear "
                 f"memory (`tollgate_vm_memory_bytes`): {vm_memory / 2**20:.1f} MiB.")
    if per_worker:
        lines.append("")
        lines.append(f"Per worker VM (Envoys at 1 and {a.memory_workers} workers, loaded): resident memory with "
                     f"− without the filter {per_worker['added_1'] / 1024:.1f} MiB at 1 worker, "
                     f"{per_worker['added_n'] / 1024:.1f} MiB at {a.memory_workers}: "
                     f"**{per_worker['per_worker'] / 1024:.1f} MiB per additional worker VM**.")
    print("\n".join(lines))
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "memory_kib": memory, "vm_memory_bytes": vm_memory,
                                            "per_worker_kib": per_worker}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
