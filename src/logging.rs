//! Logging through `env_logger`, with secrets taken out of every line at
//! every level: bearer credentials (Rocket's debug request dump prints the
//! `Authorization` header) and the configured auth token wherever it shows.

use std::borrow::Cow;
use std::io::Write;

/// Rocket logs four or five INFO lines per request through `log`; below
/// WARN it is noise unless RUST_LOG names `rocket` itself.
const QUIET_ROCKET: &str = "rocket=warn";

/// Installs the logger: `RUST_LOG` (default `info`), secrets redacted.
pub fn init() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let token = std::env::var("MCP_AUTH_TOKEN")
        .or_else(|_| std::env::var("ROCKET_MCP_AUTH_TOKEN"))
        .ok()
        .filter(|t| !t.is_empty());
    env_logger::Builder::new()
        .parse_filters(&format!("{QUIET_ROCKET},{filter}"))
        .format(move |buf, record| {
            let line = record.args().to_string();
            let line = redact(&line, token.as_deref());
            writeln!(
                buf,
                "[{} {:<5} {}] {line}",
                buf.timestamp(),
                record.level(),
                record.target()
            )
        })
        .init();
}

/// Logs an internal failure under a fresh id and returns the id: the client
/// gets the id to quote, the log keeps the cause.
pub fn incident(cause: impl std::fmt::Display) -> String {
    let id = format!("{:08x}", rand::random::<u32>());
    log::error!("request failed (error id {id}): {cause}");
    id
}

/// `text` with every `Bearer <credential>` and every occurrence of `token`
/// replaced by `***`.
pub fn redact<'a>(text: &'a str, token: Option<&str>) -> Cow<'a, str> {
    let lower = text.to_ascii_lowercase();
    let has_bearer = lower.contains("bearer ");
    let has_token = token.is_some_and(|t| text.contains(t));
    if !has_bearer && !has_token {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("bearer ") {
        let start = search + found + "bearer ".len();
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';'))
            .map_or(text.len(), |n| start + n);
        out.push_str(&text[rest..start]);
        out.push_str("***");
        rest = end;
        search = end.max(start);
    }
    out.push_str(&text[rest..]);
    match token {
        Some(t) if out.contains(t) => Cow::Owned(out.replace(t, "***")),
        _ => Cow::Owned(out),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn bearer_credentials_and_the_token_never_reach_a_log_line() {
        let dump = r#""authorization": "Bearer s3cret","#;
        assert_eq!(redact(dump, None), r#""authorization": "Bearer ***","#);
        assert_eq!(
            redact("authorization: bearer abc def", None),
            "authorization: bearer *** def"
        );
        assert_eq!(
            redact("token=s3cret in a URL", Some("s3cret")),
            "token=*** in a URL"
        );
        assert_eq!(redact("nothing here", Some("s3cret")), "nothing here");
        assert_eq!(redact("Bearer", None), "Bearer");
    }
}
