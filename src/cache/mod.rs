//! `Cache`: Redis when `REDIS_URL` is set, an in-process cache otherwise.
//!
//! With Redis, every replica's requests share one multiplexed connection
//! (see `redis_link`); nothing blocks a thread. A Redis outage never fails a
//! request: reads miss, writes are dropped, one warning
//! is logged per 30 s, and Redis is left alone for a few seconds after each
//! failure (so a dead or hung Redis adds no latency) before it is tried again.
//!
//! Redis is a cache this server does not own: it may be flushed, restarted
//! empty, restored from an older snapshot, or hung. Freshness never rests on
//! a counter that only Redis holds. Every key embeds a random epoch and a
//! random per-series version token: a write replaces the series' token, a
//! flushed or evicted token comes back as a new random one (never a value
//! used before), and a restarted Redis (new `run_id`) gets a new epoch (see
//! `redis_link`).

mod redis_link;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::{info, warn};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::config::Settings;
use redis_link::{EPOCH_KEY, Link, renew_epoch, token};

/// How long Redis is skipped after a failure before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(5);
const WARN_EVERY: Duration = Duration::from_secs(30);

fn version_key(scope: &str) -> String {
    format!("mcp:cache:version:{scope}")
}

/// One round trip per lookup: reads (or creates, from the fresh token in
/// ARGV[1]) the epoch and the scope's version token, builds the entry's key
/// from them, and reads the entry.
const LOOKUP: &str = r"
local epoch = redis.call('GET', KEYS[1])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[1], epoch) end
local version = redis.call('GET', KEYS[2])
if not version then version = ARGV[1]; redis.call('SET', KEYS[2], version) end
local key = 'c:' .. epoch .. ':' .. ARGV[2] .. ':' .. version .. ':' .. ARGV[3]
return {key, redis.call('GET', key)}
";

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
        link: Link,
        lookup: redis::Script,
    },
    Memory {
        entries: moka::sync::Cache<String, Entry>,
        counters: Mutex<HashMap<String, i64>>,
    },
}

/// Which store backs the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Shared by every replica.
    Redis,
    /// This process only.
    Memory,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Redis => "redis",
            BackendKind::Memory => "memory",
        }
    }
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
    /// An invalidation did not reach Redis: bump the epoch before reading.
    dirty: AtomicBool,
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
            Some(url) => Cache::redis(url, settings.redis_timeout()),
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

    /// Starts even when Redis is down: the connection is made on first use.
    pub fn redis(url: &str, timeout: Duration) -> Result<Cache, CacheConfigError> {
        let client = redis::Client::open(url).map_err(|e| CacheConfigError(e.to_string()))?;
        info!("cache: Redis at {}", crate::config::redact_url(url));
        Ok(Cache::with_backend(Backend::Redis {
            link: Link::new(client, timeout),
            lookup: redis::Script::new(LOOKUP),
        }))
    }

    fn with_backend(backend: Backend) -> Cache {
        Cache {
            backend,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            down_until: Mutex::new(None),
            dirty: AtomicBool::new(false),
            last_warning: Mutex::new(None),
        }
    }

    pub fn backend(&self) -> BackendKind {
        match self.backend {
            Backend::Redis { .. } => BackendKind::Redis,
            Backend::Memory { .. } => BackendKind::Memory,
        }
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The shared connection, unless Redis is in its back-off window or an
    /// invalidation that was lost while it was away must first renew the
    /// epoch. `None` when skipped or failed.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        let Backend::Redis { link, .. } = &self.backend else {
            return None;
        };
        if self.down_until.lock().is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let mut conn = match link.get().await {
            Ok(c) => c,
            Err(e) => return self.failed(&e),
        };
        if self.dirty.load(Ordering::Acquire) {
            if let Err(e) = renew_epoch(&mut conn).await {
                return self.failed(&e);
            }
            self.dirty.store(false, Ordering::Release);
        }
        Some(conn)
    }

    /// A command failed: drop the connection, leave Redis alone a while.
    fn failed<R>(&self, error: &redis::RedisError) -> Option<R> {
        if let Backend::Redis { link, .. } = &self.backend {
            link.reset();
        }
        *self.down_until.lock() = Some(Instant::now() + RETRY_AFTER);
        self.warn(&error.to_string());
        None
    }

    /// Runs one command's future; `None` when Redis is skipped or failed.
    async fn with_redis<R, F>(&self, op: impl FnOnce(MultiplexedConnection) -> F) -> Option<R>
    where
        F: Future<Output = redis::RedisResult<R>>,
    {
        let conn = self.connection().await?;
        match op(conn).await {
            Ok(r) => Some(r),
            Err(e) => self.failed(&e),
        }
    }

    fn warn(&self, error: &str) {
        let mut last = self.last_warning.lock();
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            warn!("Redis unavailable, continuing without cache: {error}");
            *last = Some(Instant::now());
        }
    }

    /// A value by key, telling a miss (`Ok(None)`) from an unreachable
    /// Redis (`Err`). Not counted in the hit/miss figures.
    pub async fn fetch(&self, key: &str) -> Result<Option<String>, CacheDown> {
        match &self.backend {
            Backend::Memory { entries, .. } => Ok(entries.get(key).map(|e| e.value)),
            Backend::Redis { .. } => self
                .with_redis(|mut c| async move { c.get::<_, Option<String>>(key).await })
                .await
                .ok_or(CacheDown),
        }
    }

    /// [`Cache::fetch`] that also restarts the entry's TTL, in one round
    /// trip (`GETEX`).
    pub async fn fetch_touch(&self, key: &str, ttl: Duration) -> Result<Option<String>, CacheDown> {
        match &self.backend {
            Backend::Memory { .. } => self.fetch(key).await,
            Backend::Redis { .. } => {
                let expiry = redis::Expiry::EX(ttl.as_secs().max(1));
                self.with_redis(
                    |mut c| async move { c.get_ex::<_, Option<String>>(key, expiry).await },
                )
                .await
                .ok_or(CacheDown)
            }
        }
    }

    pub async fn set(&self, key: &str, value: &str, ttl: Duration) {
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
                self.with_redis(
                    |mut c| async move { c.set_ex::<_, _, ()>(key, value, secs).await },
                )
                .await;
            }
        }
    }

    /// Publishes `payload` on `channel` for every replica's [`Cache::relay`].
    /// `Err` with the in-process backend or when Redis is away: the caller
    /// then delivers on this replica only.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), CacheDown> {
        match &self.backend {
            Backend::Memory { .. } => Err(CacheDown),
            Backend::Redis { .. } => self
                .with_redis(|mut c| async move { c.publish::<_, _, ()>(channel, payload).await })
                .await
                .ok_or(CacheDown),
        }
    }

    /// Hands every message published on `channel` (by any replica, this one
    /// included) to `deliver`, from a task that resubscribes after Redis
    /// restarts or drops the connection. Messages published while it is
    /// away are lost. `false` with the in-process backend.
    pub fn relay(&self, channel: &'static str, deliver: impl Fn(String) + Send + 'static) -> bool {
        let Backend::Redis { link, .. } = &self.backend else {
            return false;
        };
        let (client, wait) = (link.client().clone(), link.timeout());
        rocket::tokio::spawn(async move {
            use rocket::futures::StreamExt;
            loop {
                let subscribed = rocket::tokio::time::timeout(wait * 2, async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(channel).await?;
                    redis::RedisResult::Ok(pubsub)
                })
                .await;
                match subscribed {
                    Ok(Ok(pubsub)) => {
                        let mut messages = pubsub.into_on_message();
                        while let Some(msg) = messages.next().await {
                            if let Ok(payload) = msg.get_payload::<String>() {
                                deliver(payload);
                            }
                        }
                        warn!("Redis subscription to {channel} ended; resubscribing");
                    }
                    Ok(Err(e)) => warn!("Redis subscription to {channel} failed: {e}"),
                    Err(_) => warn!("Redis subscription to {channel} timed out"),
                }
                rocket::tokio::time::sleep(RETRY_AFTER.min(Duration::from_secs(1))).await;
            }
        });
        true
    }

    /// Looks up the entry `rest` of data derived from `scope` (a series,
    /// say): the key it lives under for the scope's current version, and its
    /// value if cached. `None` means "do not use the cache now". Counted in
    /// the hit/miss figures.
    pub async fn lookup(&self, scope: &str, rest: &str) -> Option<(String, Option<String>)> {
        let found = match &self.backend {
            Backend::Memory { counters, entries } => {
                let version = counters.lock().get(scope).copied().unwrap_or(0);
                let key = format!("c:{scope}:{version}:{rest}");
                let value = entries.get(&key).map(|e| e.value);
                Some((key, value))
            }
            Backend::Redis { lookup, .. } => {
                let mut invocation = lookup.key(EPOCH_KEY);
                invocation
                    .key(version_key(scope))
                    .arg(token())
                    .arg(scope)
                    .arg(rest);
                self.with_redis(|mut c| async move {
                    invocation
                        .invoke_async::<(String, Option<String>)>(&mut c)
                        .await
                })
                .await
            }
        };
        if let Some((_, value)) = &found {
            let counter = if value.is_some() {
                &self.hits
            } else {
                &self.misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Makes everything cached under each of `scopes` stale (call after a
    /// write): each scope gets a new random version token, all in one round
    /// trip.
    pub async fn invalidate<S: AsRef<str>>(&self, scopes: &[S]) {
        if scopes.is_empty() {
            return;
        }
        match &self.backend {
            Backend::Memory { counters, .. } => {
                let mut counters = counters.lock();
                for scope in scopes {
                    *counters.entry(scope.as_ref().to_owned()).or_insert(0) += 1;
                }
            }
            Backend::Redis { .. } => {
                let pairs: Vec<(String, String)> = scopes
                    .iter()
                    .map(|s| (version_key(s.as_ref()), token()))
                    .collect();
                if self
                    .with_redis(|mut c| async move { c.mset::<_, _, ()>(&pairs).await })
                    .await
                    .is_none()
                {
                    // Renew the epoch before anything is read again.
                    self.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Pings Redis whatever the back-off state, and ends the back-off when it
    /// answers, so `/health` both reports and speeds up recovery.
    pub async fn health(&self) -> CacheHealth {
        let Backend::Redis { link, .. } = &self.backend else {
            return CacheHealth {
                backend: "memory",
                reachable: true,
                error: None,
            };
        };
        let ping = match link.get().await {
            Ok(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await,
            Err(e) => Err(e),
        };
        match ping {
            Ok(_) => {
                *self.down_until.lock() = None;
                CacheHealth {
                    backend: "redis",
                    reachable: true,
                    error: None,
                }
            }
            Err(e) => {
                // The cause (which may name the host) goes to the log only.
                self.failed::<()>(&e);
                CacheHealth {
                    backend: "redis",
                    reachable: false,
                    error: Some("Redis is not reachable".into()),
                }
            }
        }
    }
}

/// Cache-aside for data derived from `scope`: returns the cached value when
/// there is one for the scope's current version, else computes, stores and
/// returns it. The flag says whether it came from the cache.
pub async fn cache_aside<T, E, F>(
    cache: &Cache,
    scope: &str,
    rest: &str,
    ttl: Duration,
    compute: F,
) -> Result<(T, bool), E>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: Future<Output = Result<T, E>>,
{
    let looked = cache.lookup(scope, rest).await;
    if let Some((_, Some(text))) = &looked
        && let Ok(value) = serde_json::from_str(text)
    {
        return Ok((value, true));
    }
    let value = compute.await?;
    if let Some((key, _)) = looked
        && let Ok(text) = serde_json::to_string(&value)
    {
        cache.set(&key, &text, ttl).await;
    }
    Ok((value, false))
}
