"""Per-tenant limits (issue 14, ADR 0017), configured with `examples/limits.json`: every tenant
(from `x-tenant-id`) may make 10 requests and use 5,000 tokens a minute.

- Per Envoy: one Envoy with two workers; the counters live in the VM id's shared data, so both
  workers count in one place.
- Shared: two Envoys ask the collector over Envoy's rate-limit protocol, the collector counts in
  a real Redis; a silent service falls back to each Envoy's counters, or refuses, as configured.

Each test uses tenants of its own (the windows are a minute long and the Envoys are shared), and
starts its burst early enough in a minute that the burst cannot straddle two windows."""
import datetime
import http.client
import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

from conftest import INGEST_TOKEN, REPO, Collector, Gateway, RedisServer, free_port
from test_envoy import prometheus

LIMITS = json.loads((REPO / "examples" / "limits.json").read_text())


@pytest.fixture(scope="module")
def limited(mock, envoy_mode):
    gw = Gateway(mock[0], LIMITS, mode=envoy_mode, workers=2)
    assert gw.wait_ready(), f"Envoy did not become ready:\n{gw.logs()[-4000:]}"
    yield gw
    gw.stop()


def tenant(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def early_in_a_minute(burst_seconds: float = 8.0):
    """Waits, if needed, until a burst of `burst_seconds` fits inside the current UTC minute."""
    now = datetime.datetime.now(datetime.timezone.utc)
    left = 60 - now.second - now.microsecond / 1e6
    if left < burst_seconds:
        time.sleep(left + 0.2)


def post(gw, tenant_id: str, body: dict, path: str = "/v1/chat/completions", delay_ms: int = 0,
         request_id: str = "") -> tuple[int, dict, dict]:
    """One request on its own connection: status, lower-case headers, JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    headers = {"content-type": "application/json", "x-tenant-id": tenant_id}
    if delay_ms:
        headers["x-mock-delay-ms"] = str(delay_ms)
    if request_id:
        headers["x-request-id"] = request_id
    try:
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        r = conn.getresponse()
        data = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        if "json" not in headers.get("content-type", ""):
            return r.status, headers, {"text": data.decode(errors="replace")}
        return r.status, headers, json.loads(data or b"{}")
    finally:
        conn.close()


def chat(max_tokens: int | None = None, stream: bool = False) -> dict:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def burst(gw, tenant_id: str, n: int, body: dict, delay_ms: int) -> list[tuple[int, dict, dict]]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: post(gw, tenant_id, body, delay_ms=delay_ms), range(n)))


def test_thirty_concurrent_requests_get_exactly_ten_answers_and_twenty_openai_429s(limited, recorder):
    before = limited.stats(r"listener\..*worker_.*downstream_cx_total")
    early_in_a_minute()
    team = tenant("team-a")
    results = burst(limited, team, 30, chat(max_tokens=50), delay_ms=300)
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200] * 10 + [429] * 20, statuses
    for status, headers, body in results:
        assert headers["x-ratelimit-limit-requests"] == "10"
        if status == 200:
            assert 0 <= int(headers["x-ratelimit-remaining-requests"]) < 10
            assert headers["x-ratelimit-limit-tokens"] == "5000"
            assert body["choices"][0]["message"]["content"]
        else:
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert body["error"]["type"] == "requests"
            assert 1 <= int(headers["retry-after"]) <= 60
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert headers["x-tollgate-rule"] == "requests/minute"
    served = [r for r in recorder.requests if r["headers"].get("x-tenant-id") == team]
    assert len(served) == 10, "the refused requests never reached the upstream"
    # Envoy counts refusals per limit (summed over both workers, handed over about once a second)
    series = 'tollgate_rate_limited{limit="requests/minute"}'
    deadline = time.time() + 15
    while prometheus(limited).get(series, 0) < 20 and time.time() < deadline:
        time.sleep(0.25)
    assert prometheus(limited).get(series, 0) == 20
    # both workers took connections, so the count was shared, not per worker
    after = limited.stats(r"listener\..*worker_.*downstream_cx_total")
    grew = {k for k in after if after[k] > before.get(k, 0)}
    assert any("worker_0" in k for k in grew) and any("worker_1" in k for k in grew), (before, after)

    # the official SDKs raise their own rate-limit errors for the exhausted tenant
    client = openai.OpenAI(base_url=f"{limited.base}/v1", api_key="sk-test", max_retries=0, timeout=15,
                           default_headers={"x-tenant-id": team})
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                       messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "rate_limit_exceeded"
    claude = anthropic.Anthropic(base_url=limited.base, api_key="sk-ant-test", max_retries=0, timeout=15,
                                 default_headers={"x-tenant-id": team})
    with pytest.raises(anthropic.RateLimitError) as err:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=5,
                               messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["error"]["type"] == "rate_limit_error"

    # another tenant is unaffected
    status, headers, _ = post(limited, tenant("team-b"), chat(max_tokens=50))
    assert status == 200
    assert headers["x-ratelimit-remaining-requests"] == "9"
    # the summary names the limit that refused
    rid = uuid.uuid4().hex
    status, _, _ = post(limited, team, chat(max_tokens=5), request_id=rid)
    assert status == 429
    summary = limited.summary(rid)
    assert summary["outcome"] == "rate_limited" and summary["rate_limited"] == "requests/minute"


def test_token_reservations_never_sum_past_the_budget_and_settle_to_the_usage(limited):
    early_in_a_minute()
    team = tenant("team-t")
    # each reserves its input estimate + max_tokens (about 1,010): four fit in 5,000, a fifth not
    results = burst(limited, team, 8, chat(max_tokens=1000), delay_ms=1500)
    ok = [h for s, h, _ in results if s == 200]
    refused = [(h, b) for s, h, b in results if s == 429]
    assert len(ok) == 4 and len(refused) == 4, [s for s, _, _ in results]
    for headers, body in refused:
        assert body["error"]["type"] == "tokens" and body["error"]["code"] == "rate_limit_exceeded"
        assert headers["x-tollgate-rule"] == "total_tokens/minute"
        assert int(headers["x-ratelimit-remaining-tokens"]) < 1010
    # while held, the reservations left less than one more request's worth
    assert min(int(h["x-ratelimit-remaining-tokens"]) for h in ok) < 1010
    # the four answered with 38 tokens each (the mock's usage): settled, the rest is free again
    status, headers, _ = post(limited, team, chat(max_tokens=1000))
    assert status == 200
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    assert 5000 - 4 * 38 - 1100 <= remaining <= 5000 - 4 * 38 - 1000, remaining


def test_streams_settle_at_their_end_and_when_the_client_goes_away(limited):
    early_in_a_minute(12)
    team = tenant("team-s")
    # a whole stream: settled to its reported usage (21 + 17)
    status, _, body = post(limited, team, chat(max_tokens=1000, stream=True))
    assert status == 200 and "[DONE]" in body["text"]
    status, headers, _ = post(limited, team, chat(max_tokens=1000))
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    # without settling the stream, at most 5,000 - 2 x 1,000 would be left
    assert remaining >= 5000 - 38 - 38 - 1100, remaining

    # a client that leaves after the first bytes of a slow stream
    rid = uuid.uuid4().hex
    body = json.dumps(chat(max_tokens=1000, stream=True))
    sock = socket.create_connection(("127.0.0.1", limited.port), timeout=10)
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  f"x-tenant-id: {team}\r\nx-request-id: {rid}\r\nx-mock-pace-ms: 400\r\n"
                  f"content-length: {len(body)}\r\n\r\n{body}").encode())
    assert b" 200 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "
    sock.close()
    summary = limited.summary(rid, timeout=10)  # written when Envoy saw the exchange end
    assert summary["stream_incomplete"] is True
    status, headers, _ = post(limited, team, chat(max_tokens=1))
    assert status == 200
    left = int(headers["x-ratelimit-remaining-tokens"])
    # the abandoned stream's 1,000-token reservation was replaced by its small estimate: still
    # held, at most 5,000 - 2 x 38 - 1,000 would be left
    assert left >= 5000 - 2 * 38 - 300, (left, remaining)


def shared_config(on_unreachable: str = "local") -> dict:
    limits = {**LIMITS["tenant_limits"], "shared": {
        "cluster": "tollgate_collector", "token": INGEST_TOKEN, "on_unreachable": on_unreachable}}
    return {**LIMITS, "tenant_limits": limits}


@pytest.fixture(scope="module")
def two_envoys(mock, envoy_mode):
    """Two Envoys (one worker each) sharing the collector's counters in a real Redis."""
    redis = RedisServer()
    collector = Collector(env={"TOLLGATE_COLLECTOR_REDIS": redis.url})
    gws = [Gateway(mock[0], shared_config(), collector=collector.address, mode=envoy_mode) for _ in range(2)]
    for gw in gws:
        assert gw.wait_ready(), f"Envoy did not become ready:\n{gw.logs()[-4000:]}"
    gws[0].collector = collector
    yield gws
    for gw in gws:
        gw.stop()
    collector.stop()
    redis.stop()


def test_two_envoys_share_one_count_through_the_collector_and_redis(two_envoys, recorder):
    early_in_a_minute()
    team = tenant("team-shared")
    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(
            lambda i: post(two_envoys[i % 2], team, chat(max_tokens=50), delay_ms=300), range(30)))
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [200] * 10 + [429] * 20, statuses
    for status, headers, body in results:
        if status == 429:
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert 1 <= int(headers["retry-after"]) <= 60
            assert headers["x-tollgate-rule"] == "requests/minute"
        else:
            assert headers["x-ratelimit-limit-requests"] == "10"
    served = [r for r in recorder.requests if r["headers"].get("x-tenant-id") == team]
    assert len(served) == 10


def budget(collector, team: str, limit: str) -> dict:
    status, body = collector.get(f"/v1/budgets?tenant={team}")
    assert status == 200 and body["enabled"] is True, body
    rows = [b for b in body["budgets"] if b["limit"] == limit]
    assert len(rows) == 1, body
    return rows[0]


def settled(collector, team: str, limit: str, ok, timeout: float = 10.0) -> dict:
    """The budget row once `ok(row)` holds (settlements leave with each Envoy's next tick)."""
    deadline = time.time() + timeout
    while True:
        row = budget(collector, team, limit)
        if ok(row) or time.time() > deadline:
            return row
        time.sleep(0.2)


def test_shared_reservations_settle_at_the_end_of_calls_streams_and_disconnects(two_envoys):
    early_in_a_minute(15)
    collector = two_envoys[0].collector
    team = tenant("team-settle")
    # a call and a whole stream, through either Envoy: each settles to the mock's 21 + 17
    status, _, _ = post(two_envoys[0], team, chat(max_tokens=1000))
    assert status == 200
    status, _, body = post(two_envoys[1], team, chat(max_tokens=1000, stream=True))
    assert status == 200 and "[DONE]" in body["text"]
    row = settled(collector, team, "total_tokens/minute", lambda r: r["used"] == 2 * 38)
    assert row["used"] == 2 * 38, row
    assert row["limit_value"] == 5000 and row["remaining"] == 5000 - 76
    assert budget(collector, team, "requests/minute")["used"] == 2
    # a client that leaves a slow stream: its 1,000-token reservation becomes its estimate
    rid = uuid.uuid4().hex
    raw = json.dumps(chat(max_tokens=1000, stream=True))
    sock = socket.create_connection(("127.0.0.1", two_envoys[1].port), timeout=10)
    sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  f"x-tenant-id: {team}\r\nx-request-id: {rid}\r\nx-mock-pace-ms: 400\r\n"
                  f"content-length: {len(raw)}\r\n\r\n{raw}").encode())
    assert b" 200 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "
    held = budget(collector, team, "total_tokens/minute")["used"]
    assert held > 76 + 1000, "reserved while the stream runs"
    sock.close()
    assert two_envoys[1].summary(rid, timeout=10)["stream_incomplete"] is True
    row = settled(collector, team, "total_tokens/minute", lambda r: r["used"] < 76 + 300)
    assert 76 < row["used"] < 76 + 300, row


def test_a_silent_limit_service_falls_back_to_local_counters_or_refuses(mock, envoy_mode):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: every call fails at once
    local = Gateway(mock[0], shared_config("local"), collector=dead, mode=envoy_mode)
    refuse = Gateway(mock[0], shared_config("refuse"), collector=dead, mode=envoy_mode)
    try:
        for gw in (local, refuse):
            assert gw.wait_ready(), gw.logs()[-4000:]
        early_in_a_minute()
        team = tenant("team-fallback")
        started = time.time()
        statuses = [post(local, team, chat(max_tokens=50))[0] for _ in range(12)]
        assert statuses == [200] * 10 + [429] * 2, statuses
        status, headers, body = post(refuse, team, chat(max_tokens=50))
        assert status == 429 and "unavailable" in body["error"]["message"]
        assert headers["retry-after"] == "1"
        assert time.time() - started < 20, "no request waited long for the silent service"
        # each fallback is counted, so an operator sees Envoys counting alone
        def fallbacks():
            m = prometheus(local)
            return sum(m.get(f'tollgate_limits_shared_calls{{result="{r}"}}', 0) for r in ("failed", "not_sent"))
        deadline = time.time() + 15
        while fallbacks() < 12 and time.time() < deadline:
            time.sleep(0.25)
        assert fallbacks() == 12
    finally:
        local.stop()
        refuse.stop()
