//! Alert delivery: every anomaly opening and closing goes to each configured sink — a generic
//! webhook (JSON, signed with HMAC-SHA256 over the timestamp and the body, so a receiver can
//! check origin and refuse replays) or a Slack incoming webhook — with retries and doubling
//! backoff. Each delivery's status (pending, delivered, failed), attempts and last error are
//! recorded in the store and served with the anomaly.

use super::driver::Notice;
use super::Anomaly;
use crate::config::SinkConfig;
use crate::metrics::CollectorMetrics;
use crate::storage::{Delivery, Storage};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Header carrying the signature: `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "x-tollgate-signature";
/// Header carrying the signing time (unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-tollgate-timestamp";
/// Header naming the delivery (`<anomaly id>:<event>`), the same on every retry.
pub const DELIVERY_HEADER: &str = "x-tollgate-delivery";

/// The signature of `body` sent at `timestamp` (unix seconds) with `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook body.
pub fn webhook_body(notice: &Notice, sent_ns: i64) -> Vec<u8> {
    let value = serde_json::json!({
        "type": format!("anomaly.{}", notice.event),
        "sent_at": crate::time::format_nanos(sent_ns),
        "anomaly": notice.anomaly,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// One line for people (Slack).
pub fn summary_line(event: &str, a: &Anomaly) -> String {
    let series = match &a.model {
        Some(m) => format!("tenant `{}`, model `{m}`", a.tenant),
        None => format!("tenant `{}`", a.tenant),
    };
    match (event, a.kind) {
        ("closed", _) => format!(
            "Tollgate anomaly closed: {series}, {} ({} buckets)",
            a.metric, a.buckets
        ),
        (_, super::AnomalyKind::Rule) => format!(
            "Tollgate alert: {series}, {} ({} in the last bucket)",
            a.metric, a.observed
        ),
        (_, kind) => format!(
            "Tollgate anomaly: {series}, {} {}: {:.0} against a baseline of {:.0} (z {:.1})",
            a.metric,
            kind.as_str(),
            a.observed,
            a.baseline_mean,
            a.z_score
        ),
    }
}

/// Alerts waiting per sink.
const SINK_QUEUE: usize = 256;

fn sink_name(sink: &SinkConfig) -> &str {
    match sink {
        SinkConfig::Webhook { name, .. } | SinkConfig::Slack { name, .. } => name,
    }
}

/// Delivers notices to the sinks, each on its own queue.
pub struct Notifier<S> {
    storage: S,
    sinks: Vec<SinkConfig>,
    attempts: u32,
    backoff: Duration,
    client: reqwest::Client,
    metrics: Arc<CollectorMetrics>,
}

impl<S: Storage> Notifier<S> {
    pub fn new(
        storage: S,
        sinks: Vec<SinkConfig>,
        attempts: u32,
        backoff: Duration,
        metrics: Arc<CollectorMetrics>,
    ) -> Self {
        Notifier {
            storage,
            sinks,
            attempts: attempts.max(1),
            backoff,
            client: reqwest::Client::new(),
            metrics,
        }
    }

    /// Delivers until the channel closes: each sink has its own queue and task, so a slow or
    /// dead receiver delays only its own alerts. A sink whose queue is full gets the alert
    /// recorded as failed.
    pub async fn run(self, mut notices: mpsc::Receiver<Notice>) {
        let this = Arc::new(self);
        let mut queues = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for sink in this.sinks.clone() {
            let (tx, mut rx) = mpsc::channel::<Notice>(SINK_QUEUE);
            let worker = this.clone();
            let name = sink_name(&sink).to_string();
            tasks.spawn(async move {
                while let Some(notice) = rx.recv().await {
                    worker.deliver(&sink, &notice).await;
                }
            });
            queues.push((name, tx));
        }
        while let Some(notice) = notices.recv().await {
            for (name, tx) in &queues {
                if tx.try_send(notice.clone()).is_err() {
                    tracing::warn!(sink = %name, anomaly = %notice.anomaly.id, "alert queue of this sink is full; the alert is dropped");
                    this.metrics.alert(name, "failed");
                    let dropped = Delivery {
                        anomaly_id: notice.anomaly.id.clone(),
                        event: notice.event.to_string(),
                        sink: name.clone(),
                        status: "failed".into(),
                        attempts: 0,
                        last_error: Some("the sink's alert queue was full".into()),
                        updated_ns: crate::time::now_ns(),
                    };
                    if let Err(e) = this.storage.put_deliveries(vec![dropped]).await {
                        tracing::warn!(error = %e, "recording an alert delivery failed");
                    }
                }
            }
        }
        drop(queues);
        while tasks.join_next().await.is_some() {}
    }

    /// One notice to one sink, retried; its status recorded after every attempt.
    pub async fn deliver(&self, sink: &SinkConfig, notice: &Notice) -> Delivery {
        let name = sink_name(sink).to_string();
        let mut delivery = Delivery {
            anomaly_id: notice.anomaly.id.clone(),
            event: notice.event.to_string(),
            sink: name.clone(),
            status: "pending".into(),
            attempts: 0,
            last_error: None,
            updated_ns: crate::time::now_ns(),
        };
        let mut wait = self.backoff;
        loop {
            delivery.attempts += 1;
            let result = self.send(sink, notice).await;
            delivery.updated_ns = crate::time::now_ns();
            match result {
                Ok(()) => {
                    delivery.status = "delivered".into();
                    delivery.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(sink = %name, anomaly = %notice.anomaly.id, attempt = delivery.attempts, error = %e, "alert delivery failed");
                    delivery.last_error = Some(e);
                    delivery.status = if delivery.attempts >= self.attempts {
                        "failed".into()
                    } else {
                        "pending".into()
                    };
                }
            }
            if let Err(e) = self.storage.put_deliveries(vec![delivery.clone()]).await {
                tracing::warn!(error = %e, "recording an alert delivery failed");
            }
            match delivery.status.as_str() {
                "delivered" => {
                    self.metrics.alert(&name, "sent");
                    return delivery;
                }
                "failed" => {
                    self.metrics.alert(&name, "failed");
                    return delivery;
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
            }
        }
    }

    async fn send(&self, sink: &SinkConfig, notice: &Notice) -> Result<(), String> {
        let request = match sink {
            SinkConfig::Webhook {
                url,
                secret,
                timeout_ms,
                ..
            } => {
                let now = crate::time::now_ns();
                let body = webhook_body(notice, now);
                let timestamp = now.div_euclid(1_000_000_000);
                self.client
                    .post(url)
                    .timeout(Duration::from_millis(*timeout_ms))
                    .header("content-type", "application/json")
                    .header(TIMESTAMP_HEADER, timestamp.to_string())
                    .header(SIGNATURE_HEADER, signature(secret, timestamp, &body))
                    .header(
                        DELIVERY_HEADER,
                        format!("{}:{}", notice.anomaly.id, notice.event),
                    )
                    .body(body)
            }
            SinkConfig::Slack { url, .. } => {
                let body =
                    serde_json::json!({ "text": summary_line(notice.event, &notice.anomaly) });
                self.client
                    .post(url)
                    .timeout(Duration::from_millis(5_000))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).unwrap_or_default())
            }
        };
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        let a = signature("0123456789abcdef", 1_795_000_000, b"{}");
        assert!(a.starts_with("v1=") && a.len() == 3 + 64, "{a}");
        assert_ne!(a, signature("0123456789abcdef", 1_795_000_001, b"{}"));
        assert_ne!(a, signature("0123456789abcdef", 1_795_000_000, b"{ }"));
        assert_ne!(a, signature("0123456789abcdeF", 1_795_000_000, b"{}"));
    }
}
