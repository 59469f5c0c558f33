//! The gRPC ingest service (`tollgate.v1.Collector/Ingest`). A call is authenticated by a
//! bearer token, validated whole (one bad summary rejects the batch with `INVALID_ARGUMENT`
//! naming it), admitted only while fewer than `max_concurrent_batches` are being written
//! (`UNAVAILABLE` otherwise, which the filter retries with backoff), and acknowledged only
//! after the storage has committed it.

use crate::metrics::CollectorMetrics;
use crate::storage::{Storage, StorageError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tollgate_proto::v1::collector_server::Collector;
use tollgate_proto::v1::{IngestRequest, IngestResponse, TraceSummary};
use tonic::{Request, Response, Status};

/// Longest `request_id` / `tenant` accepted.
const MAX_ID_BYTES: usize = 256;

/// The bearer tokens a gateway may present (ingest and the limit services), kept as SHA-256
/// digests and compared in constant time. Empty: every call is accepted.
#[derive(Clone)]
pub struct BearerTokens(Arc<Vec<[u8; 32]>>);

impl BearerTokens {
    pub fn new(tokens: &[String]) -> Self {
        BearerTokens(Arc::new(
            tokens
                .iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
        ))
    }

    /// Whether the call carries one of the tokens (`authorization: Bearer <token>`).
    pub fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if self.0.is_empty() {
            return Ok(());
        }
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| -> [u8; 32] { Sha256::digest(t.trim().as_bytes()).into() });
        let Some(presented) = presented else {
            return Err(Status::unauthenticated("missing bearer token"));
        };
        // compare digests without an early exit
        let ok = self.0.iter().fold(false, |acc, t| {
            acc | (t
                .iter()
                .zip(presented.iter())
                .fold(0u8, |d, (a, b)| d | (a ^ b))
                == 0)
        });
        if ok {
            Ok(())
        } else {
            Err(Status::unauthenticated("unknown bearer token"))
        }
    }
}

/// The ingest service over a storage backend.
pub struct IngestService<S> {
    storage: S,
    tokens: BearerTokens,
    permits: Arc<Semaphore>,
    metrics: Arc<CollectorMetrics>,
}

impl<S> IngestService<S> {
    pub fn new(
        storage: S,
        tokens: &[String],
        max_concurrent_batches: usize,
        metrics: Arc<CollectorMetrics>,
    ) -> Self {
        IngestService {
            storage,
            tokens: BearerTokens::new(tokens),
            permits: Arc::new(Semaphore::new(max_concurrent_batches)),
            metrics,
        }
    }
}

/// Why a summary is refused, naming the field.
pub fn validate(index: usize, s: &TraceSummary) -> Result<(), String> {
    let field = |name: &str, why: &str| format!("summaries[{index}].{name}: {why}");
    if s.request_id.is_empty() {
        return Err(field("request_id", "must not be empty"));
    }
    if s.request_id.len() > MAX_ID_BYTES {
        return Err(field("request_id", "longer than 256 bytes"));
    }
    if s.tenant.is_empty() || s.tenant.len() > MAX_ID_BYTES {
        return Err(field("tenant", "must be 1 to 256 bytes"));
    }
    if s.start_unix_nanos <= 0 {
        return Err(field(
            "start_unix_nanos",
            "must be a unix time in nanoseconds",
        ));
    }
    if s.end_unix_nanos != 0 && s.end_unix_nanos < s.start_unix_nanos {
        return Err(field("end_unix_nanos", "before start_unix_nanos"));
    }
    if s.cost_micro_usd < 0 {
        return Err(field("cost_micro_usd", "must not be negative"));
    }
    if !(0.0..=1.0).contains(&s.risk_score) {
        return Err(field("risk_score", "must be within 0..1"));
    }
    Ok(())
}

#[tonic::async_trait]
impl<S: Storage + Clone> Collector for IngestService<S> {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        if let Err(e) = self.tokens.check(&request) {
            self.metrics.rejected("unauthenticated");
            return Err(e);
        }
        let batch = request.into_inner().summaries;
        for (i, s) in batch.iter().enumerate() {
            if let Err(why) = validate(i, s) {
                self.metrics.rejected("invalid");
                tracing::info!(reason = %why, "ingest batch rejected");
                return Err(Status::invalid_argument(why));
            }
        }
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.rejected("busy");
            return Err(Status::unavailable("collector busy, retry later"));
        };
        let n = batch.len();
        let started = Instant::now();
        match self.storage.insert(batch).await {
            Ok(accepted) => {
                self.metrics.committed(n, started.elapsed());
                Ok(Response::new(IngestResponse {
                    accepted: u32::try_from(accepted).unwrap_or(u32::MAX),
                }))
            }
            Err(StorageError::Unavailable(e)) => {
                self.metrics.rejected("storage_unavailable");
                tracing::warn!(error = %e, "storage unavailable");
                Err(Status::unavailable("storage unavailable, retry later"))
            }
            Err(StorageError::Invalid(e)) => {
                self.metrics.rejected("invalid");
                Err(Status::invalid_argument(e))
            }
            Err(StorageError::Internal(e)) => {
                self.metrics.rejected("internal");
                tracing::error!(error = %e, "storage failure");
                Err(Status::internal("storage failure"))
            }
        }
    }
}
