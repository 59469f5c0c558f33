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
        if self.ingest_tokens.iter().any(|t| t.len() < 16) {
            return Err(err(
                "ingest_tokens",
                "each token needs at least 16 characters",
            ));
        }
        if self.admin_key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(err("admin_key", "needs at least 16 characters"));
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
