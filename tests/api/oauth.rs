//! The server as an OAuth 2.1 resource server, against a real authorization
//! server (oidc-provider, tests/oauth/provider.mjs): tokens from its real
//! flows, and tokens signed with its key for the cases no flow issues.
//!
//! The server-side checks of the MCP authorization specification
//! (2025-11-25; unchanged for servers in 2026-07-28), and where each is
//! tested:
//! - [x] 401 for a request without a token, on every method: `no_token_is_401_on_every_method`
//! - [x] `WWW-Authenticate: Bearer` with `resource_metadata` and `scope` on a 401: same
//! - [x] protected-resource metadata (RFC 9728) at the path-suffixed and root well-known
//!   URIs, naming the resource, its authorization server, scopes and bearer methods:
//!   `protected_resource_metadata_is_served_at_both_paths`
//! - [x] tokens whose audience is another resource are refused (RFC 8707): `refused_tokens`
//! - [x] expired, not yet valid, foreign issuer, `alg: none`, HS256 keyed with the public
//!   key, a tampered payload: `refused_tokens`
//! - [x] 403 `insufficient_scope` with `scope` and `resource_metadata` for a call beyond
//!   the token's scopes: `scopes_decide_what_a_token_lists_and_calls`
//! - [x] tokens are not passed on: the server only verifies them (no upstream calls
//!   exist), and no log line carries one: `the_token_is_never_logged_but_its_subject_is`

use std::time::{Duration, Instant};

use rocket::http::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const TOOLS: usize = 19;
const READ_TOOLS: usize = 12;

async fn resource_server(
    db: &TestDatabase,
    provider: &Provider,
    extra: &[(&str, Value)],
) -> TestApp {
    let mut fig = figment(&db.url, None)
        .merge(("mcp_oauth_issuer", provider.issuer.as_str()))
        .merge(("mcp_oauth_audience", AUDIENCE))
        .merge(("mcp_oauth_jwks_min_refetch_secs", 0));
    for (k, v) in extra {
        fig = fig.merge((*k, v.clone()));
    }
    TestApp::try_spawn(fig).await.expect("application starts")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn header<'a>(ex: &'a Exchange, name: &str) -> Option<&'a str> {
    ex.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A 2026 request carrying `token`.
async fn call(app: &TestApp, token: &str, method: &str, params: Value) -> Exchange {
    let auth = bearer(token);
    app.modern_with(1, method, params, json!({}), &[("Authorization", &auth)])
        .await
}

async fn tool_names(app: &TestApp, token: &str) -> Vec<String> {
    let ex = call(app, token, "tools/list", json!({})).await;
    assert_eq!(ex.status, 200, "{}", ex.body);
    ex.response()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn ingest(series: &str) -> Value {
    json!({ "name": "ingest_timeseries", "arguments": {
        "series": series, "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1.0 }] } })
}

fn list_series() -> Value {
    json!({ "name": "list_series", "arguments": {} })
}

/// `mcp_<name>{outcome="<outcome>"}` from `/metrics`.
async fn counter(app: &TestApp, name: &str, outcome: &str) -> u64 {
    let text = app.metrics_text().await;
    let want = format!("mcp_{name}{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&want))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[rocket::async_test]
async fn protected_resource_metadata_is_served_at_both_paths() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let app = resource_server(&db, &provider, &[]).await;
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, prm) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(prm["resource"], AUDIENCE);
        assert_eq!(prm["authorization_servers"], json!([provider.issuer]));
        assert_eq!(
            prm["scopes_supported"],
            json!(["timeseries:read", "timeseries:write", "analytics:run"])
        );
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    }
    // Without an issuer there is no metadata to give.
    let plain = TestApp::spawn(&db, None).await;
    let response = plain
        .client
        .get("/.well-known/oauth-protected-resource/mcp")
        .dispatch()
        .await;
    assert_eq!(response.status().code, 404);
}

#[rocket::async_test]
async fn no_token_is_401_on_every_method() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let app = resource_server(&db, &provider, &[]).await;
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }).to_string();
    for method in [Method::Post, Method::Get, Method::Delete] {
        let ex = app
            .mcp(
                method,
                &body,
                &[ACCEPT_BOTH, ("Content-Type", "application/json")],
            )
            .await;
        assert_eq!(ex.status, 401, "{method}: {}", ex.body);
        let challenge = header(&ex, "WWW-Authenticate").expect("a challenge");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(
                r#"resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp""#
            ),
            "{challenge}"
        );
        assert!(
            challenge.contains(r#"scope="timeseries:read""#),
            "{challenge}"
        );
        assert!(
            !challenge.contains("error="),
            "no token is no error: {challenge}"
        );
    }
    let wrong = call(&app, "not-a-jwt", "tools/list", json!({})).await;
    assert_eq!(wrong.status, 401);
    assert!(
        header(&wrong, "WWW-Authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[rocket::async_test]
async fn scopes_decide_what_a_token_lists_and_calls() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let app = resource_server(&db, &provider, &[]).await;
    let every = provider
        .client_credentials(
            "agent",
            AUDIENCE,
            "timeseries:read timeseries:write analytics:run",
        )
        .await
        .unwrap();
    assert_eq!(tool_names(&app, &every).await.len(), TOOLS);
    let ex = call(&app, &every, "tools/call", ingest("oauth.agent")).await;
    assert_eq!(ex.status, 200, "{}", ex.body);
    assert_eq!(ex.response()["result"]["structuredContent"]["written"], 1);

    let read = provider
        .client_credentials("reader", AUDIENCE, "timeseries:read")
        .await
        .unwrap();
    let names = tool_names(&app, &read).await;
    assert_eq!(names.len(), READ_TOOLS, "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "ingest_timeseries" || n == "train_model")
    );
    assert_eq!(
        call(&app, &read, "tools/call", list_series()).await.status,
        200
    );
    for (params, scope) in [
        (ingest("oauth.reader"), "timeseries:write"),
        (
            json!({ "name": "detect_anomalies", "arguments": { "series": "oauth.agent" } }),
            "analytics:run",
        ),
    ] {
        let ex = call(&app, &read, "tools/call", params).await;
        assert_eq!(ex.status, 403, "{}", ex.body);
        let challenge = header(&ex, "WWW-Authenticate").unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(r#"scope="timeseries:read {scope}""#)),
            "the scope to ask for keeps what the token has: {challenge}"
        );
        assert!(challenge.contains("resource_metadata=\""), "{challenge}");
        assert_eq!(ex.response()["error"]["code"], -32003, "{}", ex.body);
    }
    // The client may not ask for more than it is registered for.
    assert!(
        provider
            .client_credentials("reader", AUDIENCE, "timeseries:write")
            .await
            .is_err()
    );
    // 2025 sessions: the same rules, and a session belongs to its subject.
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": "t", "version": "1" } } })
    .to_string();
    let as_reader = bearer(&read);
    let base = [ACCEPT_BOTH, ("Content-Type", "application/json")];
    let mut headers = base.to_vec();
    headers.push(("Authorization", &as_reader));
    let opened = app.mcp(Method::Post, &init, &headers).await;
    let session = opened.session.expect("a session");
    headers.push(("Mcp-Session-Id", &session));
    headers.push(("MCP-Protocol-Version", "2025-11-25"));
    let msg = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ingest("s") });
    assert_eq!(
        app.mcp(Method::Post, &msg.to_string(), &headers)
            .await
            .status,
        403
    );
    let as_agent = bearer(&every);
    headers[2] = ("Authorization", &as_agent);
    let foreign = app.mcp(Method::Post, &msg.to_string(), &headers).await;
    assert_eq!(
        foreign.status, 404,
        "another subject's session: {}",
        foreign.body
    );
}

#[rocket::async_test]
async fn refused_tokens() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let app = resource_server(&db, &provider, &[]).await;
    let now = now();
    let claims = |overrides: Value| {
        let mut c = json!({ "iss": provider.issuer, "aud": AUDIENCE, "sub": "mallory",
            "scope": "timeseries:read", "iat": now, "exp": now + 300 });
        for (k, v) in overrides.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // The forged-but-valid control passes: the cases below fail for their reason alone.
    let valid = provider.sign(&claims(json!({})), &provider.kid);
    assert_eq!(
        call(&app, &valid, "tools/list", json!({})).await.status,
        200
    );

    let other_audience = provider
        .client_credentials("agent", "http://other.example/mcp", "timeseries:read")
        .await
        .unwrap();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT", "kid": provider.kid })),
        b64(&claims(json!({})))
    );
    let hs256 = {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(provider.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(&provider.public_pem()).unwrap(),
        )
        .unwrap()
    };
    let tampered = {
        let read = provider
            .client_credentials("reader", AUDIENCE, "timeseries:read")
            .await
            .unwrap();
        let parts: Vec<&str> = read.split('.').collect();
        use base64::Engine;
        let mut payload: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        payload["scope"] = "timeseries:read timeseries:write analytics:run".into();
        format!("{}.{}.{}", parts[0], b64(&payload), parts[2])
    };
    for (what, token, says) in [
        (
            "expired",
            provider.sign(&claims(json!({ "exp": now - 120 })), &provider.kid),
            "expired",
        ),
        (
            "not yet valid",
            provider.sign(&claims(json!({ "nbf": now + 600 })), &provider.kid),
            "not valid yet",
        ),
        ("another audience", other_audience, "not for this resource"),
        (
            "another issuer",
            provider.sign(
                &claims(json!({ "iss": "http://evil.example" })),
                &provider.kid,
            ),
            "not issued by",
        ),
        (
            "no exp",
            provider.sign(&claims(json!({ "exp": null })), &provider.kid),
            "exp",
        ),
        ("alg none", none, "supported algorithm"),
        ("HS256 keyed with the public key", hs256, "not accepted"),
        ("a tampered payload", tampered, "signature"),
    ] {
        let ex = call(&app, &token, "tools/list", json!({})).await;
        assert_eq!(ex.status, 401, "{what}: {}", ex.body);
        let challenge = header(&ex, "WWW-Authenticate").unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        // The reason, in the description (not `error="invalid_token"`).
        let description = challenge
            .split_once(r#"error_description=""#)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(d, _)| d)
            .unwrap_or_default();
        assert!(description.contains(says), "{what}: {challenge}");
    }
}

#[rocket::async_test]
async fn a_user_token_by_authorization_code_and_pkce() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let app = resource_server(&db, &provider, &[]).await;
    let token = provider.authorization_code(AUDIENCE, "openid timeseries:read", "alice");
    let ex = call(&app, &token, "tools/call", list_series()).await;
    assert_eq!(ex.status, 200, "{}", ex.body);
    app.mcp_state().log.flush().await;
    let logged = db.count(
        "SELECT count(*) AS n FROM mcp_request_logs
          WHERE auth_subject = 'alice' AND auth_client_id = 'sdk' AND tool_name = 'list_series'",
    );
    assert_eq!(logged, 1);
    let leaked = db.count(&format!(
        "SELECT count(*) AS n FROM mcp_request_logs WHERE params::text LIKE '%{}%'",
        &token[token.len() - 20..]
    ));
    assert_eq!(leaked, 0);
}

#[rocket::async_test]
async fn a_rotated_key_is_fetched_once_and_the_cache_answers_after() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let app = resource_server(&db, &provider, &[]).await;
    let first = provider
        .client_credentials("reader", AUDIENCE, "timeseries:read")
        .await
        .unwrap();
    assert_eq!(
        call(&app, &first, "tools/list", json!({})).await.status,
        200
    );
    let fetched = counter(&app, "auth_jwks_fetches_total", "ok").await;
    assert!(fetched >= 1);
    // The same token again: validated once, then answered from the cache.
    let cached = counter(&app, "auth_requests_total", "cached").await;
    assert_eq!(
        call(&app, &first, "tools/list", json!({})).await.status,
        200
    );
    assert_eq!(
        counter(&app, "auth_requests_total", "cached").await,
        cached + 1
    );

    // Signed by the current key, presented after the rotation.
    let old = provider.sign(
        &json!({ "iss": provider.issuer, "aud": AUDIENCE, "sub": "s", "exp": now() + 60 }),
        &provider.kid,
    );
    let provider = provider.restart(true);
    let rotated = provider
        .client_credentials("reader", AUDIENCE, "timeseries:read")
        .await
        .unwrap();
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid,
        jsonwebtoken::decode_header(&first).unwrap().kid
    );
    let again = provider
        .client_credentials("reader", AUDIENCE, "timeseries:read")
        .await
        .unwrap();
    for token in [&rotated, &again] {
        assert_eq!(call(&app, token, "tools/list", json!({})).await.status, 200);
    }
    assert_eq!(
        counter(&app, "auth_jwks_fetches_total", "ok").await,
        fetched + 1,
        "the new kid is fetched once"
    );
    // Tokens of the old key stay good: it is still published.
    assert_eq!(call(&app, &old, "tools/list", json!({})).await.status, 200);
}

#[rocket::async_test]
async fn with_the_provider_stopped_cached_keys_serve_and_new_keys_fail_fast() {
    let db = TestDatabase::migrated();
    let mut provider = Provider::start();
    // Refetches rate-limited, as in production.
    let app = resource_server(
        &db,
        &provider,
        &[("mcp_oauth_jwks_min_refetch_secs", json!(60))],
    )
    .await;
    let claims = json!({ "iss": provider.issuer, "aud": AUDIENCE, "sub": "s",
        "scope": "timeseries:read", "exp": now() + 300 });
    let warm = provider.sign(&claims, &provider.kid);
    assert_eq!(call(&app, &warm, "tools/list", json!({})).await.status, 200);
    provider.stop();
    // A token never seen before, signed by a cached key.
    let mut fresh_claims = claims.clone();
    fresh_claims["sub"] = "t".into();
    let fresh = provider.sign(&fresh_claims, &provider.kid);
    assert_eq!(
        call(&app, &fresh, "tools/list", json!({})).await.status,
        200
    );
    // A key we never saw: refused at once, not after retries.
    let fetches = counter(&app, "auth_jwks_fetches_total", "failed").await
        + counter(&app, "auth_jwks_fetches_total", "ok").await;
    let started = Instant::now();
    for _ in 0..3 {
        let unknown = provider.sign(&claims, "kid-nobody-published");
        let ex = call(&app, &unknown, "tools/list", json!({})).await;
        assert_eq!(ex.status, 401, "{}", ex.body);
        assert!(header(&ex, "WWW-Authenticate").unwrap().contains("no key"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let after = counter(&app, "auth_jwks_fetches_total", "failed").await
        + counter(&app, "auth_jwks_fetches_total", "ok").await;
    assert!(
        after - fetches <= 1,
        "refetches are rate-limited: {fetches} -> {after}"
    );
}

#[rocket::async_test]
async fn static_tokens_carry_their_scopes() {
    use mcp_server::auth::{Scopes, tokens::new_token};
    let db = TestDatabase::migrated();
    let (reader, read_line) = new_token(Scopes::READ, "dashboard");
    let (writer, write_line) = new_token(Scopes::WRITE, "collector");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("# tokens\n{read_line}\n{write_line}\n")).unwrap();
    let fig = figment(&db.url, None)
        .merge(("mcp_auth_tokens_file", file.to_str().unwrap()))
        .merge(("mcp_auth_token", "every-scope-token"));
    let app = TestApp::try_spawn(fig).await.unwrap();
    assert_eq!(tool_names(&app, "every-scope-token").await.len(), TOOLS);
    assert_eq!(tool_names(&app, &reader).await.len(), READ_TOOLS);
    assert_eq!(tool_names(&app, &writer).await, ["ingest_timeseries"]);
    assert_eq!(
        call(&app, &reader, "tools/call", ingest("st")).await.status,
        403
    );
    assert_eq!(
        call(&app, &writer, "tools/call", ingest("st")).await.status,
        200
    );
    assert_eq!(
        call(&app, &writer, "tools/call", list_series())
            .await
            .status,
        403
    );
    assert_eq!(
        call(&app, "mcp_guess", "tools/list", json!({}))
            .await
            .status,
        401
    );
    app.mcp_state().log.flush().await;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM mcp_request_logs WHERE auth_subject = 'collector'"),
        3
    );

    // A bad line stops the start, naming it.
    std::fs::write(&file, format!("{read_line}\nnot a line\n")).unwrap();
    let fig = figment(&db.url, None).merge(("mcp_auth_tokens_file", file.to_str().unwrap()));
    // (An uninspected Rocket error aborts the process when dropped.)
    let refused = match TestApp::try_spawn(fig).await {
        Ok(_) => false,
        Err(e) => matches!(e.kind(), rocket::error::ErrorKind::FailedFairings(_)),
    };
    assert!(refused, "a bad tokens file stops the start");
}

#[rocket::async_test]
async fn read_only_mode_does_not_register_writers() {
    let db = TestDatabase::migrated();
    let fig = figment(&db.url, None)
        .merge(("mcp_read_only", true))
        .merge(("mcp_auth_token", "every-scope-token"));
    let app = TestApp::try_spawn(fig).await.unwrap();
    // Whatever the token says.
    assert_eq!(
        tool_names(&app, "every-scope-token").await.len(),
        READ_TOOLS
    );
    let ex = call(&app, "every-scope-token", "tools/call", ingest("ro")).await;
    assert_eq!(ex.response()["error"]["code"], -32602, "{}", ex.body);
}

#[test]
fn the_token_is_never_logged_but_its_subject_is() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let token = provider.sign(
        &json!({ "iss": provider.issuer, "aud": AUDIENCE, "sub": "logged-subject",
            "scope": "timeseries:read", "exp": now() + 300 }),
        &provider.kid,
    );
    let server = ServerProcess::start(
        &db,
        &[
            ("RUST_LOG", "debug,rocket=debug"),
            ("MCP_OAUTH_ISSUER", &provider.issuer),
            ("MCP_OAUTH_AUDIENCE", AUDIENCE),
        ],
    );
    let status = list_series_over_tcp(server.port, &token);
    assert!(status.contains("200"), "{status}");
    // The request log row is written within its flush interval.
    std::thread::sleep(Duration::from_millis(1500));
    let logs = server.stop();
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "a log line carries the token");
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM mcp_request_logs WHERE auth_subject = 'logged-subject'"
        ),
        1
    );
}

/// `list_series` by 2026 rules on a real socket, with `token`; the status line.
fn list_series_over_tcp(port: u16, token: &str) -> String {
    use std::io::{Read, Write};
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_series","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: list_series\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn sighup_reloads_the_tokens_file_and_a_bad_one_keeps_the_old() {
    use mcp_server::auth::{Scopes, tokens::new_token};
    let db = TestDatabase::migrated();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let (first, first_line) = new_token(Scopes::READ, "first");
    let (second, second_line) = new_token(Scopes::READ, "second");
    std::fs::write(&file, format!("{first_line}\n")).unwrap();
    let server = ServerProcess::start(&db, &[("MCP_AUTH_TOKENS_FILE", file.to_str().unwrap())]);
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(list_series_over_tcp(server.port, &first).contains("200"));
    assert!(list_series_over_tcp(server.port, &second).contains("401"));
    std::fs::write(&file, format!("{second_line}\n")).unwrap();
    hup();
    assert!(list_series_over_tcp(server.port, &second).contains("200"));
    assert!(
        list_series_over_tcp(server.port, &first).contains("401"),
        "revoked"
    );
    std::fs::write(&file, "not a line\n").unwrap();
    hup();
    assert!(
        list_series_over_tcp(server.port, &second).contains("200"),
        "kept"
    );
    // Emptied, the file accepts no token: it never opens the server.
    std::fs::write(&file, "# nobody\n").unwrap();
    hup();
    assert!(list_series_over_tcp(server.port, &second).contains("401"));
    let logs = server.stop();
    assert!(logs.contains("tokens file not reloaded"), "{logs}");
}

#[test]
fn a_public_address_without_auth_is_warned_about() {
    let db = TestDatabase::migrated();
    let open = ServerProcess::start(&db, &[("ROCKET_ADDRESS", "0.0.0.0")]);
    assert!(open.stop().contains("with no authentication"));
    let guarded = ServerProcess::start(
        &db,
        &[("ROCKET_ADDRESS", "0.0.0.0"), ("MCP_AUTH_TOKEN", "t0ken")],
    );
    assert!(!guarded.stop().contains("with no authentication"));
    let local = ServerProcess::start(&db, &[]);
    assert!(!local.stop().contains("with no authentication"));
}

/// The TypeScript SDK client discovers everything from the 401 and signs
/// in (tests/oauth/sdk_client.mjs).
#[test]
fn the_typescript_sdk_follows_the_401_and_steps_into_insufficient_scope() {
    let db = TestDatabase::migrated();
    let provider = Provider::start();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let _server = ServerProcess::start_on(
        &db,
        port,
        &[
            ("MCP_OAUTH_ISSUER", &provider.issuer),
            ("MCP_OAUTH_AUDIENCE", &url),
        ],
    );
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oauth/sdk_client.mjs"
        ))
        .arg(&url)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("sdk-client: OK"), "{said}");
}

/// A JWT costs no Redis command: the hit path stays one `EVALSHA`, with
/// the token verified once and then found in process.
#[rocket::async_test]
async fn a_jwt_adds_no_redis_command_to_a_cache_hit() {
    let db = TestDatabase::migrated();
    let redis = OwnRedis::start();
    let provider = Provider::start();
    let fig = figment(&db.url, Some(&redis.url()))
        .merge(("mcp_oauth_issuer", provider.issuer.as_str()))
        .merge(("mcp_oauth_audience", AUDIENCE));
    let app = TestApp::try_spawn(fig).await.unwrap();
    let token = provider
        .client_credentials("agent", AUDIENCE, "timeseries:read timeseries:write")
        .await
        .unwrap();
    assert_eq!(
        call(&app, &token, "tools/call", ingest("hot.jwt"))
            .await
            .status,
        200
    );
    let stats = json!({ "name": "compute_statistics", "arguments": { "series": "hot.jwt" } });
    assert_eq!(
        call(&app, &token, "tools/call", stats.clone()).await.status,
        200
    );
    assert_eq!(redis.cli(&["CONFIG", "RESETSTAT"]), "OK");
    const HITS: u64 = 20;
    for _ in 0..HITS {
        let ex = call(&app, &token, "tools/call", stats.clone()).await;
        assert_eq!(
            ex.response()["result"]["structuredContent"]["cached"],
            true,
            "{}",
            ex.body
        );
    }
    let calls = crate::hot_paths::command_calls(&redis);
    assert_eq!(calls.get("evalsha"), Some(&HITS), "{calls:?}");
    let others: u64 = calls
        .iter()
        .filter(|(c, _)| {
            !["evalsha", "get", "set", "config|resetstat", "ping"].contains(&c.as_str())
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        others, 0,
        "the 2026 lane has no session to refresh: {calls:?}"
    );
}
