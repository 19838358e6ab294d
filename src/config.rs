//! Typed settings: compiled-in defaults, overridden by `Rocket.toml`
//! profiles (optional: the server behaves the same wherever it starts), then
//! by `ROCKET_*` variables and the names operators already use
//! (`DATABASE_URL`, `REDIS_URL`, …). Both kinds of variable win in every
//! profile.

use std::time::Duration;

use rocket::figment::{
    Figment, Profile,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Environment variables read besides Rocket's own `ROCKET_*` ones.
/// The docker-compose drift test checks the compose file against this list.
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "RUST_LOG",
    "DB_POOL_SIZE",
    "DB_MIN_IDLE",
    "DB_CONNECT_TIMEOUT_SECS",
    "DB_CHECKOUT_TIMEOUT_SECS",
    "DB_STARTUP_TIMEOUT_SECS",
    "DB_STATEMENT_TIMEOUT_SECS",
    "DB_TASK_STATEMENT_TIMEOUT_SECS",
    "TIMESCALE_COMPRESS_AFTER_DAYS",
    "MIGRATION_LOCK_TIMEOUT_SECS",
    "REDIS_TIMEOUT_MS",
    "MCP_AUTH_TOKEN",
    "MCP_AUTH_TOKENS_FILE",
    "MCP_OAUTH_ISSUER",
    "MCP_OAUTH_AUDIENCE",
    "MCP_OAUTH_JWKS_URL",
    "MCP_OAUTH_JWKS_MIN_REFETCH_SECS",
    "MCP_READ_ONLY",
    "MCP_STATE_SECRET",
    "MCP_ALLOWED_HOSTS",
    "MCP_ALLOWED_ORIGINS",
    "MCP_SESSION_TTL_SECS",
    "MCP_BODY_BUDGET_MIB",
    "MCP_HEADER_TIMEOUT_SECS",
    "MCP_BODY_TIMEOUT_SECS",
    "MCP_CONFORMANCE_FIXTURES",
    "METRICS_SNAPSHOT_SECS",
    "INGEST_MAX_SERIES_PER_REQUEST",
    "INGEST_MAX_DECODED_MIB",
    "INGEST_NON_FINITE",
    "ROLLUP_FOLD_AFTER_SECS",
    "QUERY_MAX_SAMPLES",
    "RETENTION_RAW_DAYS",
    "RETENTION_HOURS_DAYS",
    "RETENTION_DAYS_DAYS",
    "RETENTION_INTERVAL_SECS",
    "RETENTION_OVERRIDES",
];

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/mcp_server";

/// How long the slow-client gate (src/gate.rs) waits for a request's
/// headers, and between pieces of its body. A setting's type, so it lives
/// with the settings and the gate reads it.
#[derive(Debug, Clone, Copy)]
pub struct GateLimits {
    pub header: Duration,
    pub body_idle: Duration,
}

// No `Debug`: it would print the auth token.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    pub database_url: String,
    /// Unset or empty: in-process cache.
    pub redis_url: Option<String>,
    pub db_pool_size: u32,
    pub db_min_idle: u32,
    /// libpq `connect_timeout` for each connection attempt.
    pub db_connect_timeout_secs: u64,
    /// How long a request waits for a pooled connection before it is
    /// answered busy (a retryable tool error; 503 from `/health`).
    pub db_checkout_timeout_secs: u64,
    /// How long start-up keeps retrying an unreachable database.
    pub db_startup_timeout_secs: u64,
    /// `statement_timeout` of every pooled connection: a tool call's SQL
    /// statement that runs longer is cancelled and told what to do instead.
    pub db_statement_timeout_secs: u64,
    /// The same for calls run as MCP tasks, which nobody waits on.
    pub db_task_statement_timeout_secs: u64,
    /// On TimescaleDB's TSL edition: chunks older than this many days are
    /// moved to the columnstore by its compression policy.
    pub timescale_compress_after_days: u32,
    /// How long a replica waits for another one's migration run.
    pub migration_lock_timeout_secs: u64,
    pub redis_timeout_ms: u64,
    /// Bearer token required on `/mcp` when set, with every scope. Never logged.
    pub mcp_auth_token: Option<String>,
    /// Lines of `sha256-of-token scope… name`: more static tokens, each
    /// with its scopes.
    pub mcp_auth_tokens_file: Option<String>,
    /// An OAuth 2.1 authorization server whose JWT access tokens are taken.
    pub mcp_oauth_issuer: Option<String>,
    /// This server's canonical URI, which tokens must name in `aud`.
    pub mcp_oauth_audience: Option<String>,
    /// The issuer's JWKS, when its metadata cannot be discovered.
    pub mcp_oauth_jwks_url: Option<String>,
    /// A token signed by an unknown key fetches the JWKS again at most
    /// once per this many seconds.
    pub mcp_oauth_jwks_min_refetch_secs: u64,
    /// Serve only the tools that read: ingest and the analytics that write
    /// run records are not registered at all.
    #[serde(deserialize_with = "flag")]
    pub mcp_read_only: bool,
    /// Key that seals MCP 2026 `requestState` (at least 32 bytes), the same on
    /// every replica so a retry may land on any of them. Unset: a random key
    /// per process. Never logged.
    pub mcp_state_secret: Option<String>,
    /// Comma-separated `Host` values accepted besides loopback names.
    pub mcp_allowed_hosts: String,
    /// Comma-separated `Origin` values accepted besides loopback origins.
    pub mcp_allowed_origins: String,
    /// Idle time after which an MCP session expires.
    pub mcp_session_ttl_secs: u64,
    /// Bytes of `/mcp` request bodies in flight at once (MiB); past it, 503.
    pub mcp_body_budget_mib: u32,
    /// A request head must arrive within this (slow clients are dropped).
    pub mcp_header_timeout_secs: u64,
    /// A request body may not pause longer than this between chunks.
    pub mcp_body_timeout_secs: u64,
    /// Registers the conformance suite's fixtures (tests only).
    #[serde(deserialize_with = "flag")]
    pub mcp_conformance_fixtures: bool,
    /// Interval of `performance_metrics` snapshots (0: only at shutdown).
    pub metrics_snapshot_secs: u64,
    /// Distinct series one write request may carry (remote write, line
    /// protocol); past it, 413 and nothing written.
    pub ingest_max_series_per_request: usize,
    /// Bytes (MiB) a compressed ingest body may inflate to.
    pub ingest_max_decoded_mib: u32,
    /// A Prometheus sample of NaN or ±Inf: `skip` the sample (counted), or
    /// `reject` the request (400). Prometheus' own summaries report NaN
    /// quantiles whenever nothing was observed, so with `reject` it loses
    /// every batch that holds one. Staleness markers are always skipped.
    pub ingest_non_finite: crate::domain::batch::NonFinite,
    /// An hour's raw points fold into the rollups this long after it ends,
    /// and the hour of a series' newest point once nothing was written to
    /// the series for this long; until then readers summarise them from
    /// the points.
    pub rollup_fold_after_secs: u64,
    /// Raw samples one PromQL query (`/api/v1/query`, `query_range`) may
    /// read, 16 bytes each held while it runs; past it, 422.
    pub query_max_samples: u64,
    /// Days of raw points kept; unset: forever. Older points go once their
    /// hours are folded; the hourly and daily rollups stay.
    #[serde(deserialize_with = "optional_days")]
    pub retention_raw_days: Option<u32>,
    /// Days of hourly rollups kept; unset: forever. Hours go only where the
    /// raw points are gone, so it needs `retention_raw_days`, no larger.
    #[serde(deserialize_with = "optional_days")]
    pub retention_hours_days: Option<u32>,
    /// Days of daily rollups kept; unset: forever. Needs
    /// `retention_hours_days`, no larger. Nothing older is kept at all.
    #[serde(deserialize_with = "optional_days")]
    pub retention_days_days: Option<u32>,
    /// The retention worker runs soon after start, then this often.
    pub retention_interval_secs: u64,
    /// Per-metric exceptions to `retention_raw_days`, the first that
    /// matches a series' metric wins.
    pub retention_overrides: Vec<RetentionRule>,
}

/// One per-metric retention setting: `{ metric = "node_*", raw_days = 7 }`
/// (a glob: `*` and `?`), or `{ regex = "^go_.*", raw_days = 1,
/// hours_days = 90 }`; a level left out is kept forever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_days: Option<u32>,
}

/// Days kept of each level (raw points, hourly and daily rollups); `None`:
/// forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    pub raw: Option<u32>,
    pub hours: Option<u32>,
    pub days: Option<u32>,
}

impl Keep {
    /// Refuses a level kept longer than a coarser one: a level answers only
    /// where the finer ones are gone, so hours need raw retention no longer
    /// than theirs, and days need hours'.
    /// `prefix` names the settings: `retention_` or a rule's none.
    pub fn checked(self, prefix: &str) -> Result<Keep, String> {
        let levels = [
            ("raw_days", self.raw),
            ("hours_days", self.hours),
            ("days_days", self.days),
        ];
        if let Some((name, _)) = levels.iter().find(|(_, d)| *d == Some(0)) {
            return Err(format!(
                "{prefix}{name} must be at least 1 (unset keeps forever)"
            ));
        }
        for pair in levels.windows(2) {
            let [(finer, f), (coarser, c)] = pair else {
                continue;
            };
            if c.is_some_and(|c| f.is_none_or(|f| f > c)) {
                return Err(format!(
                    "{prefix}{coarser} needs {prefix}{finer} set and no larger: a level \
                     is dropped only where the finer one is gone"
                ));
            }
        }
        Ok(self)
    }
}

impl RetentionRule {
    /// A rule's pattern, anchored: its glob (`*`, `?`) or its regex.
    pub fn pattern(&self) -> Result<regex::Regex, String> {
        let source = match (&self.metric, &self.regex) {
            (Some(glob), None) => format!(
                "^{}$",
                regex::escape(glob).replace(r"\*", ".*").replace(r"\?", ".")
            ),
            (None, Some(regex)) => format!("^(?:{regex})$"),
            _ => return Err("each rule names either `metric` (a glob) or `regex`".into()),
        };
        self.keep()?;
        regex::Regex::new(&source).map_err(|e| e.to_string())
    }

    pub fn keep(&self) -> Result<Keep, String> {
        Keep {
            raw: self.raw_days,
            hours: self.hours_days,
            days: self.days_days,
        }
        .checked("")
    }
}

/// A number of days, or unset: empty (compose passes `${VAR:-}`) or absent.
fn optional_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Days {
        Int(u32),
        Text(String),
    }
    match Option::<Days>::deserialize(d)? {
        None => Ok(None),
        Some(Days::Int(n)) => Ok(Some(n)),
        Some(Days::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Days::Text(t)) => {
            t.trim().parse().map(Some).map_err(|_| {
                serde::de::Error::custom(format!("expected a number of days, got {t:?}"))
            })
        }
    }
}

/// `1`, `true`, `yes`, `on` (any case) or a TOML boolean.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
        Flag::Text(t) => matches!(t.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"),
    })
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            redis_url: None,
            db_pool_size: 16,
            db_min_idle: 2,
            db_connect_timeout_secs: 5,
            db_checkout_timeout_secs: 5,
            db_startup_timeout_secs: 60,
            db_statement_timeout_secs: 30,
            db_task_statement_timeout_secs: 600,
            timescale_compress_after_days: 7,
            migration_lock_timeout_secs: 300,
            redis_timeout_ms: 500,
            mcp_auth_token: None,
            mcp_auth_tokens_file: None,
            mcp_oauth_issuer: None,
            mcp_oauth_audience: None,
            mcp_oauth_jwks_url: None,
            mcp_oauth_jwks_min_refetch_secs: 30,
            mcp_read_only: false,
            mcp_state_secret: None,
            mcp_allowed_hosts: String::new(),
            mcp_allowed_origins: String::new(),
            mcp_session_ttl_secs: 1800,
            mcp_body_budget_mib: 64,
            mcp_header_timeout_secs: 30,
            mcp_body_timeout_secs: 30,
            mcp_conformance_fixtures: false,
            metrics_snapshot_secs: 60,
            ingest_max_series_per_request: 100_000,
            ingest_max_decoded_mib: 64,
            ingest_non_finite: crate::domain::batch::NonFinite::Skip,
            rollup_fold_after_secs: 300,
            query_max_samples: 5_000_000,
            retention_raw_days: None,
            retention_hours_days: None,
            retention_days_days: None,
            retention_interval_secs: 3600,
            retention_overrides: Vec::new(),
        }
    }
}

impl Settings {
    /// The retention of metrics that no override matches.
    pub fn retention_keep(&self) -> Result<Keep, String> {
        Keep {
            raw: self.retention_raw_days,
            hours: self.retention_hours_days,
            days: self.retention_days_days,
        }
        .checked("retention_")
    }

    /// Rocket's own composition (defaults, `Rocket.toml`, `ROCKET_*`) with
    /// our compiled-in defaults under the file and the operators' variable
    /// names over everything. Variables are global: a `[release]` value in
    /// `Rocket.toml` never hides them.
    pub fn figment() -> Figment {
        let profile = Profile::from_env_or("ROCKET_PROFILE", rocket::Config::DEFAULT_PROFILE);
        Figment::from(rocket::Config::default())
            .merge(Serialized::defaults(Settings::default()))
            .merge(Serialized::defaults(compiled::Limits::default()))
            .merge(
                Serialized::default("db_startup_timeout_secs", 15)
                    .profile(Profile::const_new("debug")),
            )
            .merge(
                Serialized::default("db_startup_timeout_secs", 120)
                    .profile(Profile::const_new("release")),
            )
            .merge(Serialized::default("cli_colors", false).profile(Profile::const_new("release")))
            .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
            .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
            .merge(Env::raw().only(ENV_VARS).global())
            .select(profile)
    }

    /// The settings as JSON with every secret replaced (for `mcp-server config`).
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        value["database_url"] = redact_url(&self.database_url).into();
        if let Some(url) = &self.redis_url {
            value["redis_url"] = redact_url(url).into();
        }
        if self.mcp_auth_token.is_some() {
            value["mcp_auth_token"] = "***".into();
        }
        if self.mcp_state_secret.is_some() {
            value["mcp_state_secret"] = "***".into();
        }
        value
    }

    pub fn from_figment(figment: &Figment) -> Result<Settings, String> {
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        // Empty means unset (compose passes `${VAR:-}`).
        for optional in [
            &mut settings.redis_url,
            &mut settings.mcp_auth_tokens_file,
            &mut settings.mcp_oauth_issuer,
            &mut settings.mcp_oauth_audience,
            &mut settings.mcp_oauth_jwks_url,
        ] {
            if optional.as_deref().is_some_and(|u| u.trim().is_empty()) {
                *optional = None;
            }
        }
        settings
            .retention_keep()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        for rule in &settings.retention_overrides {
            rule.pattern()
                .map_err(|e| format!("invalid configuration: retention_overrides: {e}"))?;
        }
        if settings.db_pool_size == 0 {
            return Err("invalid configuration: db_pool_size must be at least 1".into());
        }
        settings.db_min_idle = settings.db_min_idle.min(settings.db_pool_size);
        if settings
            .mcp_state_secret
            .as_deref()
            .is_some_and(str::is_empty)
        {
            settings.mcp_state_secret = None;
        }
        if let Some(secret) = &settings.mcp_state_secret
            && secret.len() < 32
        {
            return Err(format!(
                "invalid configuration: mcp_state_secret must be at least 32 bytes (got {})",
                secret.len()
            ));
        }
        Ok(settings)
    }

    /// Some credential is asked of HTTP clients.
    pub fn requires_auth(&self) -> bool {
        self.mcp_auth_token
            .as_deref()
            .is_some_and(|t| !t.is_empty())
            || self.mcp_auth_tokens_file.is_some()
            || self.mcp_oauth_issuer.is_some()
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.db_connect_timeout_secs.max(1))
    }
    pub fn checkout_timeout(&self) -> Duration {
        Duration::from_secs(self.db_checkout_timeout_secs.max(1))
    }
    pub fn statement_timeout(&self) -> Duration {
        Duration::from_secs(self.db_statement_timeout_secs.max(1))
    }
    pub fn task_statement_timeout(&self) -> Duration {
        Duration::from_secs(self.db_task_statement_timeout_secs.max(1))
    }
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_secs(self.db_startup_timeout_secs)
    }
    pub fn migration_lock_timeout(&self) -> Duration {
        Duration::from_secs(self.migration_lock_timeout_secs)
    }
    pub fn gate_limits(&self) -> GateLimits {
        GateLimits {
            header: Duration::from_secs(self.mcp_header_timeout_secs.max(1)),
            body_idle: Duration::from_secs(self.mcp_body_timeout_secs.max(1)),
        }
    }
    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms.max(10))
    }
}

/// Rocket settings whose stock defaults do not fit this server.
mod compiled {
    use serde::Serialize;

    #[derive(Serialize)]
    pub struct Limits {
        limits: Bodies,
    }

    #[derive(Serialize)]
    struct Bodies {
        json: &'static str,
        bytes: &'static str,
        string: &'static str,
        /// Remote write and line protocol bodies, as sent (compressed).
        ingest: &'static str,
    }

    impl Default for Limits {
        /// Ingest calls carry up to 100,000 points in one JSON body.
        fn default() -> Self {
            Limits {
                limits: Bodies {
                    json: "32 MiB",
                    bytes: "32 MiB",
                    string: "1 MiB",
                    ingest: "32 MiB",
                },
            }
        }
    }
}

/// `url` with its password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.into()
        }
        Ok(u) => u.into(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}
