//! `Cache`: Redis when `REDIS_URL` is set, an in-process cache otherwise.
//!
//! All methods block (Redis I/O): call them from blocking tasks. A Redis
//! outage never fails a request: reads miss, writes are dropped, one warning
//! is logged per 30 s, and Redis is left alone for a few seconds after each
//! failure (so a dead Redis adds no latency) before it is tried again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::r2d2::{NopErrorHandler, Pool};
use log::{info, warn};
use redis::Commands;
use serde::Serialize;

use crate::config::Settings;

/// How long Redis is skipped after a failure before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(5);
const WARN_EVERY: Duration = Duration::from_secs(30);
/// Bound on the in-process backend.
const MEMORY_CAPACITY: u64 = 100_000;

#[derive(Clone)]
struct Entry {
    value: String,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

enum Backend {
    Redis {
        pool: Pool<redis::Client>,
        timeout: Duration,
    },
    Memory {
        entries: moka::sync::Cache<String, Entry>,
        counters: Mutex<HashMap<String, i64>>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheHealth {
    pub backend: &'static str,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Cache {
    backend: Backend,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Redis is skipped until this instant after a failure.
    down_until: Mutex<Option<Instant>>,
    last_warning: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cache unavailable")]
pub struct CacheDown;

#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL is invalid: {0} (expected redis://[:password@]host[:port][/db])")]
pub struct CacheConfigError(String);

impl Cache {
    pub fn from_settings(settings: &Settings) -> Result<Cache, CacheConfigError> {
        match settings.redis_url.as_deref() {
            Some(url) => Cache::redis(url, settings.redis_pool_size, settings.redis_timeout()),
            None => {
                info!("REDIS_URL not set: using the in-process cache");
                Ok(Cache::memory())
            }
        }
    }

    pub fn memory() -> Cache {
        let entries = moka::sync::Cache::builder()
            .max_capacity(MEMORY_CAPACITY)
            .expire_after(PerEntryTtl)
            .build();
        Cache::with_backend(Backend::Memory {
            entries,
            counters: Mutex::new(HashMap::new()),
        })
    }

    /// Starts even when Redis is down: the pool connects lazily.
    pub fn redis(url: &str, pool_size: u32, timeout: Duration) -> Result<Cache, CacheConfigError> {
        let client = redis::Client::open(url).map_err(|e| CacheConfigError(e.to_string()))?;
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(timeout)
            // Outages are reported by our rate-limited warning instead.
            .error_handler(Box::new(NopErrorHandler))
            .build_unchecked(client);
        info!("cache: Redis at {}", crate::config::redact_url(url));
        Ok(Cache::with_backend(Backend::Redis { pool, timeout }))
    }

    fn with_backend(backend: Backend) -> Cache {
        Cache {
            backend,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            down_until: Mutex::new(None),
            last_warning: Mutex::new(None),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis { .. } => "redis",
            Backend::Memory { .. } => "memory",
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Runs `op` against Redis unless it is in its back-off window; `None`
    /// when skipped or failed.
    fn with_redis<R>(
        &self,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> Option<R> {
        let Backend::Redis { pool, timeout } = &self.backend else {
            return None;
        };
        if lock(&self.down_until).is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let result = pool
            .get_timeout(*timeout)
            .map_err(|e| e.to_string())
            .and_then(|mut conn| {
                let _ = conn.set_read_timeout(Some(*timeout));
                let _ = conn.set_write_timeout(Some(*timeout));
                op(&mut conn).map_err(|e| e.to_string())
            });
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                *lock(&self.down_until) = Some(Instant::now() + RETRY_AFTER);
                self.warn(&e);
                None
            }
        }
    }

    fn warn(&self, error: &str) {
        let mut last = lock(&self.last_warning);
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            warn!("Redis unavailable, continuing without cache: {error}");
            *last = Some(Instant::now());
        }
    }

    /// Like [`Cache::get`], but tells a miss (`Ok(None)`) from an
    /// unreachable Redis (`Err`). Not counted in the hit/miss figures.
    pub fn fetch(&self, key: &str) -> Result<Option<String>, CacheDown> {
        match &self.backend {
            Backend::Memory { entries, .. } => Ok(entries.get(key).map(|e| e.value)),
            Backend::Redis { .. } => self
                .with_redis(|c| c.get::<_, Option<String>>(key))
                .ok_or(CacheDown),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let found = self.fetch(key).ok().flatten();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub fn set(&self, key: &str, value: &str, ttl: Duration) {
        match &self.backend {
            Backend::Memory { entries, .. } => entries.insert(
                key.to_owned(),
                Entry {
                    value: value.to_owned(),
                    ttl,
                },
            ),
            Backend::Redis { .. } => {
                let secs = ttl.as_secs().max(1);
                self.with_redis(|c| c.set_ex::<_, _, ()>(key, value, secs));
            }
        }
    }

    pub fn delete(&self, key: &str) {
        match &self.backend {
            Backend::Memory { entries, .. } => entries.invalidate(key),
            Backend::Redis { .. } => {
                self.with_redis(|c| c.del::<_, ()>(key));
            }
        }
    }

    /// Increments a counter that never expires; `None` when Redis is down.
    pub fn incr(&self, key: &str) -> Option<i64> {
        match &self.backend {
            Backend::Memory { counters, .. } => {
                let mut counters = lock(counters);
                let n = counters.entry(key.to_owned()).or_insert(0);
                *n += 1;
                Some(*n)
            }
            Backend::Redis { .. } => self.with_redis(|c| c.incr::<_, _, i64>(key, 1)),
        }
    }

    /// Reads a counter written by [`Cache::incr`] (0 when never incremented).
    pub fn counter(&self, key: &str) -> Option<i64> {
        match &self.backend {
            Backend::Memory { counters, .. } => Some(lock(counters).get(key).copied().unwrap_or(0)),
            Backend::Redis { .. } => self
                .with_redis(|c| c.get::<_, Option<i64>>(key))
                .map(|v| v.unwrap_or(0)),
        }
    }

    /// Pings Redis whatever the back-off state, and ends the back-off when it
    /// answers, so `/health` both reports and speeds up recovery.
    pub fn health(&self) -> CacheHealth {
        let Backend::Redis { pool, timeout } = &self.backend else {
            return CacheHealth {
                backend: "memory",
                reachable: true,
                error: None,
            };
        };
        let ping = pool
            .get_timeout(*timeout)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                let _ = c.set_read_timeout(Some(*timeout));
                redis::cmd("PING")
                    .query::<String>(&mut *c)
                    .map_err(|e| e.to_string())
            });
        match ping {
            Ok(_) => {
                *lock(&self.down_until) = None;
                CacheHealth {
                    backend: "redis",
                    reachable: true,
                    error: None,
                }
            }
            Err(e) => {
                *lock(&self.down_until) = Some(Instant::now() + RETRY_AFTER);
                CacheHealth {
                    backend: "redis",
                    reachable: false,
                    error: Some(e),
                }
            }
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// data; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
