//! No Docker engine runs in CI: these checks keep docker-compose.yml and the
//! Dockerfile in step with what the binary actually reads and serves.

use clap::Parser;
use mcp_server::cli::Cli;
use mcp_server::config::ENV_VARS;
use serde_norway::Value;

use crate::helpers::project_dir;

fn compose() -> Value {
    let text = std::fs::read_to_string(project_dir().join("docker-compose.yml")).unwrap();
    serde_norway::from_str(&text).expect("docker-compose.yml is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// `${VAR:-default}` → `default`, as compose would expand it with VAR unset.
fn expand(s: &str) -> String {
    let mut out = s.to_owned();
    while let Some(start) = out.find("${") {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let inner = &out[start + 2..start + len];
        let default = inner
            .split_once(":-")
            .map(|(_, d)| d)
            .unwrap_or("")
            .to_owned();
        out.replace_range(start..=start + len, &default);
    }
    out
}

#[test]
fn the_server_service_matches_what_the_binary_reads() {
    let file = compose();
    let services = &file["services"];
    let server = &services["mcp-server"];

    let env = server["environment"]
        .as_mapping()
        .expect("environment is a mapping");
    for key in env.keys().filter_map(Value::as_str) {
        assert!(
            ENV_VARS.contains(&key) || key.starts_with("ROCKET_"),
            "docker-compose.yml sets {key}, which the server never reads"
        );
    }
    let get = |k: &str| {
        expand(
            env.get(k)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{k} unset")),
        )
    };
    assert_eq!(
        get("ROCKET_ADDRESS"),
        "0.0.0.0",
        "a container must listen beyond loopback"
    );
    let port = get("ROCKET_PORT");
    assert_eq!(port, "8000");
    let published: Vec<String> = strings(&server["ports"])
        .iter()
        .map(|p| expand(p))
        .collect();
    assert_eq!(
        published,
        [format!("127.0.0.1:{port}:{port}")],
        "published on loopback unless the operator says otherwise (MCP_PUBLISH_ADDRESS)"
    );
    let image = services["timescaledb"]["image"].as_str().unwrap();
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
    assert!(
        tag.chars().next().is_some_and(|c| c.is_ascii_digit()) && !tag.contains("latest"),
        "the TimescaleDB image is pinned to a version: {image}"
    );

    let db = url::Url::parse(&get("DATABASE_URL")).unwrap();
    assert_eq!(db.host_str(), Some("timescaledb"));
    let pg_env = &services["timescaledb"]["environment"];
    assert_eq!(
        Some(db.path().trim_start_matches('/')),
        pg_env["POSTGRES_DB"].as_str()
    );
    assert_eq!(
        Some(db.password().unwrap_or_default()),
        Some(expand(pg_env["POSTGRES_PASSWORD"].as_str().unwrap()).as_str())
    );

    let redis = url::Url::parse(&get("REDIS_URL")).unwrap();
    assert_eq!(redis.host_str(), Some("redis"));
    let redis_cmd = strings(&services["redis"]["command"]).join(" ");
    let password = redis.password().expect("REDIS_URL carries the password");
    assert!(
        expand(&redis_cmd).contains(&format!("--requirepass {password}")),
        "{redis_cmd}"
    );

    for dep in ["timescaledb", "redis"] {
        assert_eq!(
            server["depends_on"][dep]["condition"].as_str(),
            Some("service_healthy")
        );
        assert!(
            !services[dep]["healthcheck"]["test"].is_null(),
            "{dep} needs a healthcheck"
        );
    }
    assert!(
        strings(&services["timescaledb"]["healthcheck"]["test"])
            .join(" ")
            .contains("pg_isready")
    );
    assert!(
        services["timescaledb"]["image"]
            .as_str()
            .unwrap()
            .contains("timescale")
    );
    assert_eq!(server["restart"].as_str(), Some("unless-stopped"));

    let health = strings(&server["healthcheck"]["test"]);
    assert!(
        health
            .iter()
            .any(|a| a == &format!("http://127.0.0.1:{port}/health")),
        "{health:?}"
    );
    let health_cmd: Vec<&str> = health.iter().skip(1).map(String::as_str).collect();
    Cli::try_parse_from(&health_cmd).expect("healthcheck command parses");
    let command = strings(&server["command"]);
    Cli::try_parse_from(&command).expect("compose command is a valid mcp-server command line");
}

#[test]
fn the_dockerfile_runs_the_binary_as_non_root_with_a_healthcheck() {
    let text = std::fs::read_to_string(project_dir().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(
        lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 2,
        "multi-stage"
    );
    assert!(lines.contains(&"EXPOSE 8000"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("USER ") && !l.contains("root"))
    );
    assert!(text.contains("CMD [\"mcp-server\", \"healthcheck\"]"));
    assert!(text.contains("ROCKET_PORT=8000"));
    let cmd = lines.iter().rev().find(|l| l.starts_with("CMD ")).unwrap();
    let argv: Vec<String> = serde_json::from_str(cmd.trim_start_matches("CMD ")).unwrap();
    Cli::try_parse_from(&argv).expect("Dockerfile CMD is a valid mcp-server command line");
}
