"""Envoy -> filter -> gRPC -> collector -> query API, with the real collector binary: a request
through Envoy appears in `GET /v1/traces` within 2 s with its tenant, model, usage, cost and
findings; the collector going down does not touch traffic, and what was queued arrives once it
is back."""
import json
import signal
import time
import urllib.request
import uuid

import openai

from conftest import INGEST_TOKEN
from test_envoy import post


def forwarding(collector, **extra) -> dict:
    return {
        "tenant": {"sources": [{"from": "header", "name": "x-tenant-id"}]},
        "collector": {"cluster": "tollgate_collector", "token": INGEST_TOKEN, "flush_interval_ms": 100,
                      "timeout_ms": 1000, **extra},
    }


def wait_for(collector, request_id: str, timeout: float = 2.0) -> dict:
    deadline = time.time() + timeout
    while True:
        status, body = collector.get(f"/v1/traces/{request_id}")
        if status == 200:
            return body
        assert time.time() < deadline, f"{request_id} not in the collector after {timeout} s: {status} {body}"
        time.sleep(0.05)


def test_a_request_through_envoy_is_queryable_within_two_seconds(gateway_factory, collector, recorder):
    gw = gateway_factory(forwarding(collector), collector=collector.address)
    client = openai.OpenAI(base_url=f"{gw.base}/v1", api_key="sk-test", max_retries=0)
    rid = f"e2e-{uuid.uuid4()}"
    sent = time.time()
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "my card is 4111 1111 1111 1111"}],
        extra_headers={"x-request-id": rid, "x-tenant-id": "team-a",
                       "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    t = wait_for(collector, rid, timeout=2.0)
    assert time.time() - sent < 2.5
    assert t["tenant"] == "team-a" and t["tenant_source"] == "header"
    assert t["model"] == "gpt-4o-mini" and t["provider"] == "openai"
    assert t["usage"]["input_tokens"] == 21 and t["usage"]["output_tokens"] == 17
    assert t["cost_micro_usd"] > 0
    assert t["outcome"] == "redacted" and [f["rule_id"] for f in t["findings"]] == ["pii.card"]
    assert t["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert t["user_agent"].startswith("OpenAI/Python")
    # the card's groups and the prompt's words (a bare "4111" also occurs by chance in the
    # received_at timestamp's nanoseconds: this failed once on CI for that)
    dumped = json.dumps(t)
    assert "4111 1111" not in dumped and "my card" not in dumped, "no text reaches the collector"
    # and the query API finds it by its filters
    status, page = collector.get("/v1/traces?tenant=team-a&rule_id=pii.card")
    assert status == 200 and rid in [x["request_id"] for x in page["traces"]]
    status, usage = collector.get("/v1/usage?group_by=tenant,model")
    row = next(r for r in usage["rows"] if r["group"] == {"tenant": "team-a", "model": "gpt-4o-mini"})
    assert row["requests"] >= 1 and row["input_tokens"] >= 21


def dropped(gw) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.admin}/stats?filter=tollgate.collector", timeout=5) as r:
        for line in r.read().decode().splitlines():
            name, _, value = line.partition(": ")
            if name.endswith("tollgate.collector.dropped"):
                return int(value)
    return 0


def test_collector_down_for_60_s_then_back_every_summary_delivered_or_counted(gateway_factory, collector, recorder):
    """The issue's scenario: the collector is gone for a minute under steady traffic. Requests
    are unaffected; the queue (capacity 50 here) keeps the newest summaries and delivers them
    once the collector is back; the rest are counted as dropped. Nothing is unaccounted for."""
    gw = gateway_factory(forwarding(collector, queue_capacity=50, batch_size=10), collector=collector.address)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}).encode()
    rid = f"warm-{uuid.uuid4()}"
    assert post(gw, "/v1/chat/completions", body, {"x-request-id": rid})[0] == 200
    wait_for(collector, rid)
    time.sleep(1.2)
    dropped_before = dropped(gw)
    collector.kill(signal.SIGKILL)
    ids = []
    try:
        started = time.time()
        while time.time() - started < 60:
            rid = f"down-{uuid.uuid4()}"
            t = time.time()
            status, _ = post(gw, "/v1/chat/completions", body, {"x-request-id": rid})
            assert status == 200, "traffic is unaffected while the collector is down"
            assert time.time() - t < 1.0, "and not slowed by it"
            ids.append(rid)
            time.sleep(0.5)
    finally:
        collector.start()
    assert len(ids) >= 100
    # once back: wait until the queue has drained (backoff is at most 10 s)
    deadline = time.time() + 30
    while True:
        stored = sum(1 for rid in ids if collector.get(f"/v1/traces/{rid}")[0] == 200)
        lost = dropped(gw) - dropped_before
        if stored + lost == len(ids) or time.time() > deadline:
            break
        time.sleep(1)
    assert stored + lost == len(ids), f"{stored} stored + {lost} dropped != {len(ids)} sent"
    assert stored >= 40, "the queue's newest summaries were delivered"
    assert stored <= 60, "the queue held no more than its capacity (plus a batch in flight)"
    # the newest are the ones kept
    assert collector.get(f"/v1/traces/{ids[-1]}")[0] == 200
    assert collector.get(f"/v1/traces/{ids[0]}")[0] == 404


def test_the_openapi_document_is_valid_and_matches_the_api(collector):
    from openapi_spec_validator import validate
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.http}/v1/openapi.json", timeout=5) as r:
        doc = json.loads(r.read())
    validate(doc)  # raises on an invalid OpenAPI 3.1 document
    # every documented query parameter is accepted by the running API (none is "unknown")
    for path, item in doc["paths"].items():
        if "{" in path or path.endswith("openapi.json"):
            continue
        for param in item["get"].get("parameters", []):
            status, body = collector.get(f"{path}?{param['name']}=x")
            assert not (status == 400 and "unknown parameter" in body.get("detail", "")), (path, param["name"])


def test_the_same_path_with_clickhouse_storage(gateway_factory, clickhouse_collector, recorder):
    """`tollgate-collector --storage clickhouse://...`: Envoy -> filter -> collector -> ClickHouse -> API."""
    c = clickhouse_collector
    gw = gateway_factory(forwarding(c), collector=c.address)
    client = openai.OpenAI(base_url=f"{gw.base}/v1", api_key="sk-test", max_retries=0)
    rid = f"ch-{uuid.uuid4()}"
    tenant = f"team-ch-{gw.mode}"  # the ClickHouse collector is shared by both modes' runs
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "my card is 4111 1111 1111 1111"}],
        extra_headers={"x-request-id": rid, "x-tenant-id": tenant})
    t = wait_for(c, rid, timeout=2.0)
    assert (t["tenant"], t["model"], t["outcome"]) == (tenant, "gpt-4o-mini", "redacted")
    assert t["usage"]["input_tokens"] == 21 and t["cost_micro_usd"] > 0
    # the daily rollup is filled by a materialized view; under the load of the whole suite it was
    # once seen a moment after the trace, so the row is awaited (bounded) rather than assumed
    row, deadline = None, time.monotonic() + 5.0
    while row is None and time.monotonic() < deadline:
        status, usage = c.get("/v1/usage?group_by=tenant&bucket=day")
        assert status == 200
        row = next((r for r in usage["rows"] if r["group"] == {"tenant": tenant}), None)
        if row is None:
            time.sleep(0.1)
    assert row is not None, f"no usage row for {tenant}: {usage}"
    assert row["requests"] == 1 and row["input_tokens"] == 21
    status, findings = c.get("/v1/findings?by=rule")
    assert any(r["group"] == {"rule": "pii.card"} for r in findings["rows"])
