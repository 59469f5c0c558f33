"""The request hold (ADR 0013) in a real Envoy: what the upstream sees in each mode, that no
request waits on the filter, and the strict mode's watchdog on an Envoy that does not deliver the
body to a paused filter (the Wasm config Istio's WasmPlugin renders)."""
import json
import time
import urllib.request

import pytest

from conftest import Gateway
from test_envoy import oai, prometheus


def post(gw, body: bytes, timeout: float = 15.0, headers: dict | None = None):
    """A raw POST (compact JSON, as the Node SDKs send it); (status, body, seconds)."""
    req = urllib.request.Request(f"{gw.base}/v1/chat/completions", data=body, method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), time.monotonic() - start
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - start


def compact(content: str, **extra) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra},
                      separators=(",", ":")).encode()


REDACT = {"policy": {"categories": {"pii": "redact"}}}


def test_a_redacted_body_matches_the_length_the_upstream_was_told(gateway_factory, recorder):
    gw = gateway_factory(REDACT)
    # a short address: its placeholder would be longer than the value
    sent = compact("write to a@b.co or 4111 1111 1111 1111")
    status, _, _ = post(gw, sent)
    assert status == 200
    seen = recorder.last()
    assert int(seen["headers"]["content-length"]) == len(seen["body"])
    text = json.loads(seen["body"])["messages"][0]["content"]
    assert "a@b.co" not in text and "4111" not in text, text
    if gw.mode == "default":
        # the headers went on before the body was read: same length, shorter replacements
        assert len(seen["body"]) == len(sent)
        assert text.startswith("write to ") and "[CARD_1]" in text, text
    else:
        assert text == "write to [EMAIL_1] or [CARD_1]"


def test_tags_become_upstream_headers_only_in_strict_mode(gateway_factory, recorder):
    gw = gateway_factory({"policy": {"categories": {"pii": "tag"}}})
    status, _, _ = post(gw, compact("my mail is jane.doe@example.com"), headers={"x-request-id": f"tag-{gw.mode}"})
    assert status == 200
    headers = {k.lower(): v for k, v in recorder.last()["headers"].items()}
    summary = gw.summary(f"tag-{gw.mode}")
    assert summary["outcome"] == "tagged"
    if gw.mode == "strict":
        assert "pii.email" in headers["x-tollgate-findings"]
        assert float(headers["x-tollgate-risk"]) >= 0
    else:
        # the documented difference: the headers had gone on; the tag is in the summary only
        assert "x-tollgate-findings" not in headers
    assert recorder.last()["body"] == compact("my mail is jane.doe@example.com"), "tagging changes no byte"


def test_no_request_waits_on_the_filter(gateway_factory, recorder):
    gw = gateway_factory(REDACT)
    times = []
    for i in range(20):
        status, _, seconds = post(gw, compact(f"question {i}: is 4111 1111 1111 1111 valid?"), timeout=5)
        assert status == 200
        times.append(seconds)
    # the mock answers at once; a held request would take the client's timeout
    assert max(times) < 1.0, times
    times.sort()
    assert times[len(times) // 2] < 0.1, times


def test_an_sdk_stream_request_with_inject_usage_goes_upstream_whole(gateway_factory, recorder):
    gw = gateway_factory({"inject_stream_usage": True, **REDACT})
    stream = oai(gw).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi, I am jo@x.io"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    seen = recorder.last()
    body = json.loads(seen["body"])
    assert body["stream_options"] == {"include_usage": True}
    assert "jo@x.io" not in body["messages"][0]["content"]
    if gw.mode == "default":
        assert "content-length" not in {k.lower() for k in seen["headers"]}, "sent chunked"


@pytest.fixture(scope="module")
def deaf_strict_gateway(mock):
    """Strict mode configured on an Envoy without allow_on_headers_stop_iteration (as a
    WasmPlugin renders it): the host never delivers the body to the paused filter."""
    gw = Gateway(mock[0], {"request_hold": {"mode": "headers", "release_after_ms": 300}, **REDACT},
                 mode="default", header_hold=False)
    assert gw.wait_ready(), gw.logs()[-3000:]
    yield gw
    gw.stop()


def test_strict_mode_on_a_host_that_ignores_the_pause_is_released_then_falls_back(deaf_strict_gateway, recorder):
    gw = deaf_strict_gateway
    times = []
    for i in range(6):
        sent = compact(f"call {i}: my card is 4111 1111 1111 1111")
        status, _, seconds = post(gw, sent, timeout=10)
        assert status == 200
        seen = recorder.last()
        assert "4111" not in seen["body"].decode() and len(seen["body"]) == len(sent), \
            "released requests take the default path: redacted, same length"
        times.append(seconds)
    # the first three wait for the watchdog (300 ms, checked on a 100 ms tick), no longer
    assert all(0.25 <= t < 1.5 for t in times[:3]), times
    # then the VM stops pausing headers: no wait at all
    assert all(t < 0.2 for t in times[3:]), times
    deadline = time.time() + 5
    while True:
        p = prometheus(gw)
        released = sum(v for k, v in p.items() if k.startswith("tollgate_header_hold_released"))
        fallback = sum(v for k, v in p.items() if k.startswith("tollgate_header_hold_fallback"))
        if released >= 3 and fallback == 1 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert released == 3 and fallback == 1, {k: v for k, v in p.items() if "header_hold" in k}
    logs = gw.logs()
    assert logs.count("does not deliver the body") == 1, "the fix is logged once"
    assert "allow_on_headers_stop_iteration: true" in logs
