"""Envoy -> filter -> collector -> anomaly detector -> webhook: steady traffic through Envoy
teaches a tenant's baseline (one-second buckets so the test takes seconds, not hours), then the
same calls switch to a model sixteen times dearer; the cost spike appears in
`GET /v1/anomalies` and reaches a local webhook receiver, whose HMAC-SHA256 signature over
`<timestamp>.<body>` checks out."""
import hashlib
import hmac
import http.server
import json
import threading
import time

import openai

from conftest import Collector
from test_collector import forwarding

SECRET = "e2e-webhook-secret-0123456789abcdef"


class Receiver(http.server.ThreadingHTTPServer):
    """Records every POST: headers, body, and whether the signature is right."""

    def __init__(self):
        self.got = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                ts = self.headers["x-tollgate-timestamp"]
                want = "v1=" + hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
                fresh = abs(time.time() - int(ts)) < 300  # replays older than 5 minutes are refused
                outer.got.append({"headers": dict(self.headers), "body": json.loads(body),
                                  "signed": hmac.compare_digest(want, self.headers["x-tollgate-signature"]),
                                  "fresh": fresh})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


def test_a_cost_spike_through_envoy_is_raised_and_delivered_to_a_signed_webhook(gateway_factory, tmp_path):
    receiver = Receiver()
    config = tmp_path / "collector.json"
    config.write_text(json.dumps({"anomaly": {
        "bucket_seconds": 1, "grace_seconds": 1, "hold_seconds": 1, "warmup_buckets": 5, "half_life_buckets": 5,
        "min_requests": 1, "history_buckets": 0, "per_model": False,
        "sinks": [{"kind": "webhook", "name": "e2e", "url": receiver.url, "secret": SECRET}],
        "delivery_attempts": 3, "retry_backoff_ms": 100}}))
    collector = Collector(config=str(config))
    try:
        gw = gateway_factory(forwarding(collector), collector=collector.address)
        client = openai.OpenAI(base_url=f"{gw.base}/v1", api_key="sk-test", max_retries=0)

        def call(model: str):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}],
                                           extra_headers={"x-tenant-id": "spiky"})

        def run(model: str, seconds: float, per_second: int = 8):
            end = time.time() + seconds
            while time.time() < end:
                started = time.time()
                for _ in range(per_second):
                    call(model)
                time.sleep(max(0.0, 1.0 - (time.time() - started)))

        run("gpt-4o-mini", 10)
        status, body = collector.get("/v1/anomalies?tenant=spiky")
        assert status == 200 and body["anomalies"] == [], f"steady traffic raised {body}"
        spike_started = time.time()
        anomaly = None
        while anomaly is None and time.time() - spike_started < 15:
            run("gpt-4o", 1)
            status, body = collector.get("/v1/anomalies?tenant=spiky&state=open&metric=cost_micro_usd")
            assert status == 200
            anomaly = next(iter(body["anomalies"]), None)
        assert anomaly is not None, "no cost anomaly:\n" + collector.logs()[-3000:]
        assert anomaly["kind"] == "spike" and anomaly["state"] == "open"
        assert anomaly["observed"] > 5 * anomaly["baseline_mean"], anomaly
        assert anomaly["z_score"] >= 3
        # delivered, signed, recorded
        deadline = time.time() + 10
        while not any(g["body"]["anomaly"]["id"] == anomaly["id"] for g in receiver.got) and time.time() < deadline:
            time.sleep(0.1)
        sent = [g for g in receiver.got if g["body"]["anomaly"]["id"] == anomaly["id"]]
        assert sent, f"nothing delivered: {receiver.got}"
        assert sent[0]["signed"] and sent[0]["fresh"]
        assert sent[0]["body"]["type"] == "anomaly.opened"
        assert sent[0]["headers"]["x-tollgate-delivery"] == f"{anomaly['id']}:opened"
        deadline = time.time() + 5
        while time.time() < deadline:
            _, body = collector.get(f"/v1/anomalies?tenant=spiky&metric=cost_micro_usd")
            deliveries = body["anomalies"][0]["deliveries"]
            if deliveries and deliveries[0]["status"] == "delivered":
                break
            time.sleep(0.1)
        assert deliveries[0]["sink"] == "e2e" and deliveries[0]["status"] == "delivered", deliveries
        metrics = collector.metrics()
        assert 'tollgate_collector_anomalies_raised_total{metric="cost_micro_usd"}' in metrics
        assert 'tollgate_collector_alerts_sent_total{sink="e2e"}' in metrics
    finally:
        collector.stop()
        receiver.shutdown()
