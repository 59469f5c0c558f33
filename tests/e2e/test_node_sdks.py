"""The official OpenAI and Anthropic *Node* SDKs (pinned in tests/e2e/node) through the gateway, in
both request-hold modes: answers, streams, typed errors for blocks, redaction at the upstream, and
no call waiting on the filter. Node's SDKs send compact JSON, so a redacted value has no
whitespace to borrow from: the default mode's fit rule is what keeps the length."""
import json
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"


def run_node(gw) -> dict:
    node = shutil.which("node")
    assert node, "node is missing (.ci/run installs it)"
    assert (NODE_DIR / "node_modules" / "openai").exists(), "run `make e2e-deps` (npm ci in tests/e2e/node)"
    out = subprocess.run([node, str(NODE_DIR / "clients.mjs"), gw.base], capture_output=True, text=True,
                         timeout=120, cwd=NODE_DIR)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_node_sdks_through_the_gateway(gateway_factory, recorder):
    gw = gateway_factory({"policy": {"categories": {"pii": "redact"}}})
    r = run_node(gw)
    for name, result in r.items():
        assert result["ms"] < 5000, f"{name} waited {result['ms']:.0f} ms"
    assert r["chat"]["ok"] and r["chat"]["text"], r["chat"]
    assert r["redact"]["ok"], r["redact"]
    assert r["stream"]["ok"] and r["stream"]["text"] == "Sure, the test card is [CARD_1] and that is all.", r["stream"]
    assert r["stream"]["usage"]["completion_tokens"] == 17
    assert r["anthropic"]["ok"] and r["anthropic"]["text"] == "Hello from the mock model.", r["anthropic"]
    assert r["anthropic_stream"]["ok"] and r["anthropic_stream"]["text"] == "Hello from the mock model."
    assert r["anthropic_stream"]["usage"]["output_tokens"] == 15
    for name in ("block", "anthropic_block"):
        b = r[name]
        assert not b["ok"] and b["status"] == 403 and b["error"] == "PermissionDeniedError", b
        assert b["rule"] and b["rule"].startswith("pi."), b
    # what the upstream saw of the redacted call
    seen = [q for q in recorder.requests if b"mail" in q["body"]]
    assert len(seen) == 1
    body = seen[0]["body"]
    assert int(seen[0]["headers"]["content-length"]) == len(body)
    text = json.loads(body)["messages"][0]["content"]
    assert "4111" not in text and "a@b.co" not in text, text
    assert not any(b"Ignore all previous" in q["body"] for q in recorder.requests + recorder.aborted)
