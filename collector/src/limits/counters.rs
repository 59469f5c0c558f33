//! The shared limit counters in Redis. A counter's key names its domain, the start of its fixed
//! window and its descriptor (`tollgate:limit:<domain>:<window start ms>:<key=value,...>`); it
//! expires a minute after its window ends, so settlements of calls that ran past the end still
//! find it, and a companion `<key>#meta` holds its limit and window end (for the budget API).
//! Reserving is one script over all of a request's counters: every one must fit, then every one
//! is incremented; settling adds a signed difference to one counter, never below zero. A money
//! counter can be seeded from the collector's stored spend before its first reservation.

use std::fmt::Write as _;

/// Prefix of every counter key.
pub const KEY_PREFIX: &str = "tollgate:limit:";

/// How long a counter outlives its window (ms).
const GRACE_MS: u64 = 60_000;

/// All of them fit, or none is counted: `KEYS` the counters, `ARGV` (amount, limit, ttl ms,
/// window end ms) per key. Returns the index (1-based) of the first counter that does not fit
/// (0: all fit), then each counter's value (after the increments when admitted, before
/// otherwise).
const RESERVE: &str = r"
local n = #KEYS
local used = {}
local over = 0
for i = 1, n do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if over == 0 and used[i] + tonumber(ARGV[4*i-3]) > tonumber(ARGV[4*i-2]) then over = i end
end
if over == 0 then
  for i = 1, n do
    local amount = tonumber(ARGV[4*i-3])
    used[i] = redis.call('INCRBY', KEYS[i], amount)
    if redis.call('PTTL', KEYS[i]) == -1 then redis.call('PEXPIRE', KEYS[i], ARGV[4*i-1]) end
    redis.call('SET', KEYS[i] .. '#meta', ARGV[4*i-2] .. ' ' .. ARGV[4*i], 'PX', ARGV[4*i-1])
  end
end
local out = {over}
for i = 1, n do out[#out+1] = used[i] end
return out
";

/// Adds `ARGV[1]` (signed) to an existing counter, never below zero; 0 when it has expired.
const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 1
";

/// One counter a reservation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub key: String,
    pub amount: u64,
    pub limit: u64,
    /// The window's end (unix ms).
    pub window_end_ms: u64,
}

/// What a reservation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The first ask that did not fit (nothing was counted), or `None` (all were).
    pub refused: Option<usize>,
    /// Each counter's value after (admitted) or before (refused) the request.
    pub used: Vec<u64>,
}

/// The parts of a counter key of Tollgate's filter: (domain, window start ms, tenant, limit
/// id); `None` for keys of other descriptors.
pub fn parse_key(key: &str) -> Option<(&str, u64, &str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (domain, rest) = rest.split_once(':')?;
    let (start, entries) = rest.split_once(':')?;
    let entries = entries.strip_prefix("tenant=")?;
    let (tenant, limit) = entries.rsplit_once(",limit=")?;
    Some((domain, start.parse().ok()?, tenant, limit))
}

/// The key of a counter: domain, window start, and the descriptor's entries.
pub fn counter_key(domain: &str, window_start_ms: u64, entries: &[(&str, &str)]) -> String {
    let mut key = format!("{KEY_PREFIX}{domain}:{window_start_ms}:");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        let _ = write!(key, "{k}={v}");
    }
    key
}

/// The Redis counters. The connection is made at the first call (a Redis that is down when
/// the collector starts only makes those calls fail) and kept, reconnecting on its own.
#[derive(Clone)]
pub struct Counters {
    client: redis::Client,
    redis: std::sync::Arc<tokio::sync::OnceCell<redis::aio::ConnectionManager>>,
    reserve: std::sync::Arc<redis::Script>,
    settle: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counters")
    }
}

impl Counters {
    /// Counters at `url` (`redis://host:port/db`); an invalid URL is an error now, an
    /// unreachable server at the first call.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        Ok(Counters {
            client: redis::Client::open(url)?,
            redis: std::sync::Arc::default(),
            reserve: std::sync::Arc::new(redis::Script::new(RESERVE)),
            settle: std::sync::Arc::new(redis::Script::new(SETTLE)),
        })
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        self.redis
            .get_or_try_init(|| self.client.get_connection_manager())
            .await
            .cloned()
    }

    /// Reserves every ask or none.
    pub async fn reserve(&self, asks: &[Ask], now_ms: u64) -> redis::RedisResult<Reserved> {
        let mut call = self.reserve.prepare_invoke();
        for a in asks {
            call.key(&a.key)
                .arg(a.amount)
                .arg(a.limit)
                .arg(a.window_end_ms.saturating_sub(now_ms) + GRACE_MS)
                .arg(a.window_end_ms);
        }
        let mut con = self.connection().await?;
        let out: Vec<i64> = call.invoke_async(&mut con).await?;
        let over = out.first().copied().unwrap_or(0);
        let used = out
            .iter()
            .skip(1)
            .map(|v| u64::try_from(*v).unwrap_or(0))
            .collect();
        Ok(Reserved {
            refused: usize::try_from(over).ok().filter(|i| *i > 0).map(|i| i - 1),
            used,
        })
    }

    /// Adds `delta` to the counter `key`; false when it has expired.
    pub async fn settle(&self, key: &str, delta: i64) -> redis::RedisResult<bool> {
        let mut con = self.connection().await?;
        let found: i64 = self
            .settle
            .key(key)
            .arg(delta)
            .invoke_async(&mut con)
            .await?;
        Ok(found == 1)
    }

    /// Sets a counter that does not exist yet to `value` (a money counter from stored spend);
    /// false when it already existed.
    pub async fn seed(&self, ask: &Ask, value: u64, now_ms: u64) -> redis::RedisResult<bool> {
        let mut con = self.connection().await?;
        let ttl = ask.window_end_ms.saturating_sub(now_ms) + GRACE_MS;
        let set: Option<String> = redis::cmd("SET")
            .arg(&ask.key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query_async(&mut con)
            .await?;
        Ok(set.is_some())
    }

    /// Every counter of the current windows with its limit: (key, used, limit, window end ms).
    pub async fn list(&self, now_ms: u64) -> redis::RedisResult<Vec<(String, u64, u64, u64)>> {
        let mut con = self.connection().await?;
        let mut metas: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{KEY_PREFIX}*#meta"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await?;
            metas.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut out = Vec::new();
        for chunk in metas.chunks(500) {
            let counters: Vec<&str> = chunk
                .iter()
                .map(|m| m.strip_suffix("#meta").unwrap_or(m))
                .collect();
            let values: Vec<Option<u64>> = redis::cmd("MGET")
                .arg(&counters)
                .query_async(&mut con)
                .await?;
            let meta: Vec<Option<String>> =
                redis::cmd("MGET").arg(chunk).query_async(&mut con).await?;
            for ((key, used), meta) in counters.iter().zip(values).zip(meta) {
                let Some((limit, end)) = meta.as_deref().and_then(|m| m.split_once(' ')) else {
                    continue;
                };
                let (Ok(limit), Ok(end)) = (limit.parse::<u64>(), end.parse::<u64>()) else {
                    continue;
                };
                if end > now_ms {
                    out.push((key.to_string(), used.unwrap_or(0), limit, end));
                }
            }
        }
        Ok(out)
    }

    /// Whether a counter exists.
    pub async fn exists(&self, key: &str) -> redis::RedisResult<bool> {
        let mut con = self.connection().await?;
        redis::cmd("EXISTS").arg(key).query_async(&mut con).await
    }
}
