//! The collector's configuration: a YAML or JSON file, then `TOLLGATE_COLLECTOR_*` environment
//! variables, then command-line flags, each overriding the one before. Unknown fields are
//! rejected and every error names the field.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// gRPC ingest listener (the filter's `collector` cluster points here).
    pub grpc_listen: SocketAddr,
    /// HTTP listener of the query API (`/v1/...`), health and metrics.
    pub http_listen: SocketAddr,
    pub storage: StorageConfig,
    /// Bearer tokens the gateway may present on ingest. Empty: ingest is open (only for
    /// loopback or a trusted network; the collector logs a warning).
    pub ingest_tokens: Vec<String>,
    /// The bootstrap admin API key (`Authorization: Bearer <key>` on the query API). Empty:
    /// the query API is open (the collector logs a warning).
    pub admin_key: Option<String>,
    /// Traces older than this are deleted in the background (0: keep forever).
    pub retention_days: u32,
    /// Largest ingest message accepted (bytes).
    pub max_message_bytes: usize,
    /// Batches being written at once; more get `UNAVAILABLE` (the filter retries).
    pub max_concurrent_batches: usize,
    /// How long shutdown may take before the collector exits anyway (ms).
    pub shutdown_timeout_ms: u64,
    /// Per-tenant anomaly detection and alerting (docs/anomalies.md).
    pub anomaly: AnomalyConfig,
    /// Limits shared by several Envoys (docs/limits.md).
    pub limits: LimitsConfig,
}

/// The `limits` section: where the shared limit counters live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Redis holding the counters (`redis://127.0.0.1:6379/0`). Absent: the rate-limit and
    /// settlement services answer `UNAVAILABLE`, and filters use their own counters.
    pub redis: Option<String>,
}

/// The `anomaly` section: the detector's parameters, its schedule, and where alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// Run the detector.
    pub enabled: bool,
    /// Length of a time bucket (seconds).
    pub bucket_seconds: u64,
    /// How long after a bucket ends it is evaluated, for summaries still on their way (seconds).
    pub grace_seconds: u64,
    /// After the collector starts, or ingest turns batches away, how long to wait before
    /// scoring, while the gateways deliver what they held (seconds).
    pub hold_seconds: u64,
    /// Half-life of the baselines, in buckets.
    pub half_life_buckets: f64,
    /// |z| at or above which a bucket deviates.
    pub threshold: f64,
    /// Deviating buckets in a row before an anomaly opens.
    pub consecutive: u32,
    /// A spike is at least this many times the baseline, a drop at most its inverse.
    pub min_ratio: f64,
    /// Buckets a baseline needs before it can raise anything.
    pub warmup_buckets: u32,
    /// Normal buckets in a row that close an anomaly.
    pub cooldown_buckets: u32,
    /// Mean requests per bucket below which a series is not judged.
    pub min_requests: f64,
    /// Fewest requests in a bucket for its error / block rate and p95 latency to count.
    pub min_rate_requests: u64,
    /// Watch each tenant × model as well as each tenant.
    pub per_model: bool,
    /// Raise drops (traffic stopping) as well as spikes.
    pub detect_drops: bool,
    /// Forget a series idle this many buckets.
    pub forget_after_buckets: u32,
    /// Blocked injections from one tenant in one bucket that make a burst (0: off).
    pub injection_burst: u64,
    /// Raise an anomaly for any secret found in a response.
    pub secret_in_response: bool,
    /// Save the detector's state every this many buckets (and at shutdown).
    pub checkpoint_buckets: u32,
    /// With no saved state, learn from this many buckets of stored history first.
    pub history_buckets: u32,
    /// Where openings and closings are sent.
    pub sinks: Vec<SinkConfig>,
    /// Tries per delivery before it is recorded as failed.
    pub delivery_attempts: u32,
    /// Delay before the first retry (ms); doubled each time.
    pub retry_backoff_ms: u64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        let d = crate::anomaly::DetectorSettings::default();
        AnomalyConfig {
            enabled: true,
            bucket_seconds: 60,
            grace_seconds: 30,
            hold_seconds: 30,
            half_life_buckets: d.half_life_buckets,
            threshold: d.threshold,
            consecutive: d.consecutive,
            min_ratio: d.min_ratio,
            warmup_buckets: d.warmup_buckets,
            cooldown_buckets: d.cooldown_buckets,
            min_requests: d.min_requests,
            min_rate_requests: d.min_rate_requests,
            per_model: d.per_model,
            detect_drops: d.detect_drops,
            forget_after_buckets: d.forget_after_buckets,
            injection_burst: d.injection_burst,
            secret_in_response: d.secret_in_response,
            checkpoint_buckets: 15,
            history_buckets: 120,
            sinks: Vec::new(),
            delivery_attempts: 5,
            retry_backoff_ms: 1000,
        }
    }
}

impl AnomalyConfig {
    /// The detector's parameters.
    pub fn settings(&self) -> crate::anomaly::DetectorSettings {
        crate::anomaly::DetectorSettings {
            bucket_ns: i64::try_from(self.bucket_seconds.saturating_mul(1_000_000_000))
                .unwrap_or(i64::MAX),
            half_life_buckets: self.half_life_buckets,
            threshold: self.threshold,
            consecutive: self.consecutive,
            min_ratio: self.min_ratio,
            warmup_buckets: self.warmup_buckets,
            cooldown_buckets: self.cooldown_buckets,
            min_requests: self.min_requests,
            min_rate_requests: self.min_rate_requests,
            per_model: self.per_model,
            detect_drops: self.detect_drops,
            forget_after_buckets: self.forget_after_buckets,
            injection_burst: self.injection_burst,
            secret_in_response: self.secret_in_response,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let a = |f: &str| format!("anomaly.{f}");
        if !(1..=86_400).contains(&self.bucket_seconds) {
            return Err(err(&a("bucket_seconds"), "must be between 1 and 86400"));
        }
        if self.grace_seconds > 3_600 {
            return Err(err(&a("grace_seconds"), "must be at most 3600"));
        }
        if self.hold_seconds > 3_600 {
            return Err(err(&a("hold_seconds"), "must be at most 3600"));
        }
        if !(self.min_requests >= 0.0 && self.min_requests.is_finite()) {
            return Err(err(&a("min_requests"), "must be a number, 0 or more"));
        }
        if self.forget_after_buckets == 0 {
            return Err(err(&a("forget_after_buckets"), "must be at least 1"));
        }
        if !(self.half_life_buckets > 0.0 && self.half_life_buckets.is_finite()) {
            return Err(err(&a("half_life_buckets"), "must be a positive number"));
        }
        if !(self.threshold > 0.0 && self.threshold.is_finite()) {
            return Err(err(&a("threshold"), "must be a positive number"));
        }
        if !(self.min_ratio >= 1.0 && self.min_ratio.is_finite()) {
            return Err(err(&a("min_ratio"), "must be at least 1"));
        }
        if self.consecutive == 0 || self.cooldown_buckets == 0 || self.checkpoint_buckets == 0 {
            let f = if self.consecutive == 0 {
                "consecutive"
            } else if self.cooldown_buckets == 0 {
                "cooldown_buckets"
            } else {
                "checkpoint_buckets"
            };
            return Err(err(&a(f), "must be at least 1"));
        }
        if self.delivery_attempts == 0 {
            return Err(err(&a("delivery_attempts"), "must be at least 1"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let field = |f: &str| format!("anomaly.sinks[{i}].{f}");
            let (name, url) = match sink {
                SinkConfig::Webhook {
                    name,
                    url,
                    secret,
                    timeout_ms,
                } => {
                    if secret.len() < 16 {
                        return Err(err(&field("secret"), "needs at least 16 characters"));
                    }
                    if !(1..=60_000).contains(timeout_ms) {
                        return Err(err(&field("timeout_ms"), "must be between 1 and 60000"));
                    }
                    (name, url)
                }
                SinkConfig::Slack { name, url } => (name, url),
            };
            if name.is_empty() || !names.insert(name.clone()) {
                return Err(err(&field("name"), "must be present and unique"));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err(&field("url"), "must be an http:// or https:// URL"));
            }
        }
        Ok(())
    }
}

/// One alert destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum SinkConfig {
    /// JSON POST signed with HMAC-SHA256 (`x-tollgate-signature`, `x-tollgate-timestamp`).
    Webhook {
        name: String,
        url: String,
        /// The shared signing secret (at least 16 characters).
        secret: String,
        /// Per-attempt timeout (ms).
        #[serde(default = "default_sink_timeout_ms")]
        timeout_ms: u64,
    },
    /// A Slack incoming webhook.
    Slack { name: String, url: String },
}

fn default_sink_timeout_ms() -> u64 {
    5_000
}

/// Where traces are stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "backend", rename_all = "lowercase")]
pub enum StorageConfig {
    /// Embedded SQLite (the default).
    Sqlite {
        #[serde(default = "default_db")]
        path: PathBuf,
    },
    /// ClickHouse over HTTP (`http://host:8123`) in `database`; API keys stay in a local
    /// SQLite file (`keys_path`).
    Clickhouse {
        url: String,
        #[serde(default = "default_ch_database")]
        database: String,
        #[serde(default = "default_keys_path")]
        keys_path: PathBuf,
        /// Most rows in one INSERT.
        #[serde(default = "default_batch_rows")]
        batch_rows: usize,
        /// How long the writer gathers ingested batches into one INSERT (ms).
        #[serde(default = "default_flush_interval_ms")]
        flush_interval_ms: u64,
        /// Most rows waiting for the writer; ingest beyond that gets `UNAVAILABLE`.
        #[serde(default = "default_queue_rows")]
        queue_rows: usize,
    },
}

fn default_batch_rows() -> usize {
    100_000
}

fn default_flush_interval_ms() -> u64 {
    200
}

fn default_queue_rows() -> usize {
    500_000
}

fn default_ch_database() -> String {
    "tollgate".to_string()
}

fn default_keys_path() -> PathBuf {
    PathBuf::from("tollgate-keys.db")
}

impl StorageConfig {
    /// From a `--storage` value: `clickhouse://host:8123/database`, `sqlite:///path/to.db` or a
    /// plain path (SQLite).
    pub fn parse(s: &str) -> Result<StorageConfig, ConfigError> {
        if let Some(rest) = s.strip_prefix("clickhouse://") {
            let (host, database) = rest.split_once('/').unwrap_or((rest, "tollgate"));
            if host.is_empty() {
                return Err(err("storage", "clickhouse://host:port/database"));
            }
            return Ok(StorageConfig::Clickhouse {
                url: format!("http://{host}"),
                database: if database.is_empty() {
                    "tollgate".into()
                } else {
                    database.to_string()
                },
                keys_path: default_keys_path(),
                batch_rows: default_batch_rows(),
                flush_interval_ms: default_flush_interval_ms(),
                queue_rows: default_queue_rows(),
            });
        }
        let path = s.strip_prefix("sqlite://").unwrap_or(s);
        if path.is_empty() {
            return Err(err(
                "storage",
                "a SQLite path or clickhouse://host:port/database",
            ));
        }
        Ok(StorageConfig::Sqlite { path: path.into() })
    }
}

fn default_db() -> PathBuf {
    PathBuf::from("tollgate-collector.db")
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Sqlite { path: default_db() }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 7317)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 7318)),
            storage: StorageConfig::default(),
            ingest_tokens: Vec::new(),
            admin_key: None,
            retention_days: 30,
            max_message_bytes: 4 << 20,
            max_concurrent_batches: 64,
            shutdown_timeout_ms: 10_000,
            anomaly: AnomalyConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// A configuration error, naming the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid collector config at `{field}`: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_string(),
        message: message.into(),
    }
}

impl CollectorConfig {
    /// Parses a YAML or JSON document (JSON is YAML).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(CollectorConfig::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error_free(de)
    }

    /// Applies `TOLLGATE_COLLECTOR_*` variables from `vars`.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (k, v) in vars {
            let Some(name) = k.strip_prefix("TOLLGATE_COLLECTOR_") else {
                continue;
            };
            match name {
                "GRPC_LISTEN" => {
                    self.grpc_listen = v.parse().map_err(|e| err(&k, format!("{e}")))?;
                }
                "HTTP_LISTEN" => {
                    self.http_listen = v.parse().map_err(|e| err(&k, format!("{e}")))?;
                }
                "DB" => self.storage = StorageConfig::Sqlite { path: v.into() },
                "STORAGE" => self.storage = StorageConfig::parse(&v)?,
                "INGEST_TOKENS" => {
                    self.ingest_tokens = v
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect();
                }
                "ADMIN_KEY" => self.admin_key = Some(v).filter(|k| !k.is_empty()),
                "REDIS" => self.limits.redis = Some(v).filter(|u| !u.is_empty()),
                "RETENTION_DAYS" => {
                    self.retention_days = v.parse().map_err(|e| err(&k, format!("{e}")))?;
                }
                _ => return Err(err(&k, "unknown variable")),
            }
        }
        Ok(())
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.grpc_listen == self.http_listen && self.grpc_listen.port() != 0 {
            return Err(err("http_listen", "must differ from grpc_listen"));
        }
        if !(1024..=(256 << 20)).contains(&self.max_message_bytes) {
            return Err(err(
                "max_message_bytes",
                "must be between 1 KiB and 256 MiB",
            ));
        }
        if !(1..=4096).contains(&self.max_concurrent_batches) {
            return Err(err("max_concurrent_batches", "must be between 1 and 4096"));
        }
        if let StorageConfig::Clickhouse {
            batch_rows,
            flush_interval_ms,
            queue_rows,
            ..
        } = &self.storage
        {
            if !(1..=1_000_000).contains(batch_rows) {
                return Err(err("storage.batch_rows", "must be between 1 and 1000000"));
            }
            if *flush_interval_ms > 60_000 {
                return Err(err("storage.flush_interval_ms", "must be at most 60000"));
            }
            if queue_rows < batch_rows || *queue_rows > 100_000_000 {
                return Err(err(
                    "storage.queue_rows",
                    "must be at least batch_rows and at most 100000000",
                ));
            }
        }
        self.anomaly.validate()?;
        if self.ingest_tokens.iter().any(|t| t.len() < 16) {
            return Err(err(
                "ingest_tokens",
                "each token needs at least 16 characters",
            ));
        }
        if self.admin_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(err("admin_key", "needs at least 16 characters"));
        }
        if let Some(url) = &self.limits.redis {
            if let Err(e) = redis::Client::open(url.as_str()) {
                return Err(err("limits.redis", format!("not a Redis URL: {e}")));
            }
        }
        Ok(())
    }
}

/// Deserialises with the failing field's path in the error.
fn serde_path_to_error_free(
    de: serde_yaml::Deserializer<'_>,
) -> Result<CollectorConfig, ConfigError> {
    CollectorConfig::deserialize(de).map_err(|e| {
        let field = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "(root)".into());
        ConfigError {
            field,
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_env_and_errors() {
        let c = CollectorConfig::from_yaml("").unwrap();
        assert_eq!(c.grpc_listen.port(), 7317);
        let mut c = CollectorConfig::from_yaml(
            "grpc_listen: 0.0.0.0:9000\nstorage: {backend: sqlite, path: /tmp/x.db}\nretention_days: 7\n",
        )
        .unwrap();
        assert_eq!(c.retention_days, 7);
        c.apply_env([
            (
                "TOLLGATE_COLLECTOR_INGEST_TOKENS".to_string(),
                "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb".to_string(),
            ),
            ("PATH".to_string(), "/bin".to_string()),
        ])
        .unwrap();
        assert_eq!(c.ingest_tokens.len(), 2);
        assert!(c.validate().is_ok());
        let e = CollectorConfig::from_yaml("retention_dayz: 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention_dayz"), "{e}");
        let e = c
            .apply_env([("TOLLGATE_COLLECTOR_NOPE".to_string(), "1".to_string())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TOLLGATE_COLLECTOR_NOPE"), "{e}");
        c.ingest_tokens = vec!["short".into()];
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ingest_tokens"));
    }

    #[test]
    fn anomaly_settings_parse_and_are_checked() {
        let c = CollectorConfig::from_yaml(
            "anomaly:\n  bucket_seconds: 300\n  threshold: 4\n  sinks:\n    - {kind: webhook, name: ops, url: 'https://hooks.example.com/x', secret: 0123456789abcdef}\n    - {kind: slack, name: chat, url: 'https://hooks.slack.com/services/T/B/X'}\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        let s = c.anomaly.settings();
        assert_eq!(s.bucket_ns, 300_000_000_000);
        assert_eq!(s.threshold, 4.0);
        assert_eq!(c.anomaly.sinks.len(), 2);
        for (yaml, field) in [
            ("bucket_seconds: 0", "anomaly.bucket_seconds"),
            ("threshold: -1", "anomaly.threshold"),
            ("min_ratio: 0.5", "anomaly.min_ratio"),
            ("consecutive: 0", "anomaly.consecutive"),
            (
                "sinks: [{kind: webhook, name: a, url: 'http://x', secret: short}]",
                "anomaly.sinks[0].secret",
            ),
            (
                "sinks: [{kind: slack, name: a, url: 'ftp://x'}]",
                "anomaly.sinks[0].url",
            ),
            (
                "sinks: [{kind: slack, name: a, url: 'http://x'}, {kind: slack, name: a, url: 'http://y'}]",
                "anomaly.sinks[1].name",
            ),
        ] {
            let c = CollectorConfig::from_yaml(&format!("anomaly: {{{yaml}}}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{yaml}: {e}");
        }
        let e = CollectorConfig::from_yaml("anomaly: {treshold: 3}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("treshold"), "{e}");
    }

    #[test]
    fn clickhouse_writer_settings_parse_and_are_checked() {
        let c = CollectorConfig::from_yaml(
            "storage: {backend: clickhouse, url: 'http://ch:8123', batch_rows: 5000, flush_interval_ms: 50, queue_rows: 20000}\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        let StorageConfig::Clickhouse {
            batch_rows,
            flush_interval_ms,
            queue_rows,
            database,
            ..
        } = &c.storage
        else {
            panic!("{:?}", c.storage);
        };
        assert_eq!(
            (
                *batch_rows,
                *flush_interval_ms,
                *queue_rows,
                database.as_str()
            ),
            (5000, 50, 20000, "tollgate")
        );
        for (yaml, field) in [
            ("batch_rows: 0", "storage.batch_rows"),
            ("batch_rows: 1000, queue_rows: 10", "storage.queue_rows"),
            ("flush_interval_ms: 600000", "storage.flush_interval_ms"),
        ] {
            let c = CollectorConfig::from_yaml(&format!(
                "storage: {{backend: clickhouse, url: 'http://ch:8123', {yaml}}}\n"
            ))
            .unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{yaml}: {e}");
        }
        let e = CollectorConfig::from_yaml(
            "storage: {backend: clickhouse, url: 'http://ch:8123', batch_rowz: 1}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("batch_rowz"), "{e}");
    }
}
