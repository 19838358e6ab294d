//! The dependency rule, checked on the source: `routes`/`mcp` → `tools` →
//! `ingest` → `store` → `db`, with `domain`, `analytics` and `chart` at the
//! bottom. A `use` that
//! points back up fails here, naming the file. Inside `mcp/`, the files'
//! imports form no circle, and only the transports know HTTP.

use crate::helpers::project_dir;

/// For each layer, the modules it must not name.
const RULES: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "analytics",
            "cache",
            "db",
            "ingest",
            "mcp",
            "metrics",
            "models",
            "routes",
            "store",
            "tools",
        ],
    ),
    (
        "analytics",
        &[
            "cache", "db", "mcp", "metrics", "models", "routes", "store", "tools",
        ],
    ),
    (
        "chart.rs",
        &[
            "cache", "db", "mcp", "metrics", "models", "routes", "store", "tools",
        ],
    ),
    // Settings know nothing they configure: the gate, the pool, the cache
    // read their types from here (a circle through the gate once).
    (
        "config.rs",
        &[
            "cache", "db", "gate", "ingest", "mcp", "metrics", "routes", "store", "tools",
        ],
    ),
    ("models", &["mcp", "routes", "store", "tools"]),
    ("db", &["ingest", "mcp", "routes", "store", "tools"]),
    (
        "store",
        &["cache", "ingest", "mcp", "metrics", "routes", "tools"],
    ),
    ("cache", &["ingest", "mcp", "routes", "store", "tools"]),
    ("ingest", &["cli", "fixtures", "mcp", "routes", "tools"]),
    ("metrics.rs", &["mcp", "routes", "tools"]),
    ("tools", &["fixtures", "mcp", "routes"]),
    ("mcp", &["fixtures", "routes"]),
];

fn sources(path: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            sources(&entry.path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

#[test]
fn imports_point_down() {
    let src = project_dir().join("src");
    let mut broken = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        sources(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for module in *forbidden {
                let needle = format!("crate::{module}::");
                let braced = format!("crate::{{{module}");
                if text.contains(&needle) || text.contains(&braced) {
                    broken.push(format!("{} names crate::{module}", file.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports that run back up:\n{}",
        broken.join("\n")
    );
}

#[test]
fn all_sql_lives_in_store_and_db() {
    let src = project_dir().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("store")) && !f.starts_with(src.join("db")))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            [
                "sql_query(",
                "insert_into(",
                "diesel::update(",
                "diesel::delete(",
            ]
            .iter()
            .any(|call| text.contains(call))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "SQL outside store/ and db/: {offenders:?}"
    );
}

/// The `mcp/` files a file names, through `super::` or `crate::mcp::`.
fn mcp_imports(text: &str, files: &std::collections::BTreeSet<String>) -> Vec<String> {
    let mut named = std::collections::BTreeSet::new();
    for prefix in ["super::", "crate::mcp::"] {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            if let Some(list) = rest.strip_prefix('{') {
                // `use super::{a, b::{c, d}}`: the names at the first depth.
                let mut depth = 1;
                let mut word = String::new();
                for c in list.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    if c.is_alphanumeric() || c == '_' {
                        word.push(c);
                    } else {
                        if depth == 1 || (depth == 2 && c == '{') {
                            named.insert(std::mem::take(&mut word));
                        }
                        word.clear();
                    }
                }
                named.insert(word);
            } else {
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                named.insert(word);
            }
        }
    }
    named.into_iter().filter(|n| files.contains(n)).collect()
}

#[test]
fn mcp_files_import_in_one_direction() {
    let dir = project_dir().join("src/mcp");
    let mut paths = Vec::new();
    sources(&dir, &mut paths);
    let stem = |p: &std::path::Path| p.file_stem().unwrap().to_string_lossy().into_owned();
    let files: std::collections::BTreeSet<String> = paths
        .iter()
        .map(|p| stem(p))
        .filter(|s| s != "mod")
        .collect();
    let mut edges = std::collections::BTreeMap::new();
    for path in &paths {
        let name = stem(path);
        if name == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let named: Vec<String> = mcp_imports(&text, &files)
            .into_iter()
            .filter(|n| *n != name)
            .collect();
        edges.insert(name, named);
    }
    // A circle is a path back to where it started: depth-first, with the
    // path kept to print it.
    fn walk(
        at: &str,
        edges: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut circle = path[i..].to_vec();
            circle.push(at.to_owned());
            return Some(circle);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(circle) = walk(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for file in edges.keys() {
        if let Some(circle) = walk(file, &edges, &mut Vec::new(), &mut done) {
            panic!("src/mcp imports in a circle: {}", circle.join(" -> "));
        }
    }
    // The core knows no transport: only the transports name them or HTTP.
    let transports = ["http", "stdio"];
    let mut broken = Vec::new();
    for (file, named) in &edges {
        if transports.contains(&file.as_str()) {
            continue;
        }
        for t in transports {
            if named.iter().any(|n| n == t) {
                broken.push(format!("{file}.rs names the {t} transport"));
            }
        }
        let text = std::fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap();
        for http in [
            "rocket::http",
            "rocket::response",
            "rocket::request",
            "rocket::data",
            "rocket::State",
            "rocket::{",
        ] {
            if text.contains(http) {
                broken.push(format!("{file}.rs names {http}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "HTTP in the protocol core:\n{}",
        broken.join("\n")
    );
}

#[test]
fn imports_are_read_from_use_lists() {
    let files = ["call", "dispatch", "outcome"]
        .map(String::from)
        .into_iter()
        .collect();
    assert_eq!(
        mcp_imports(
            "use super::call::{self, Peek};\nuse super::{dispatch, outcome::{Stop, pending}};\nuse super::*;",
            &files
        ),
        ["call", "dispatch", "outcome"]
    );
}
