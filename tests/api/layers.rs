//! The dependency rule, checked on the source: `routes`/`mcp` → `tools` →
//! `store` → `db`, with `domain`, `analytics` and `chart` at the bottom. A `use` that
//! points back up fails here, naming the file.

use crate::helpers::project_dir;

/// For each layer, the modules it must not name.
const RULES: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "analytics",
            "cache",
            "db",
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
    ("models", &["mcp", "routes", "store", "tools"]),
    ("db", &["mcp", "routes", "store", "tools"]),
    ("store", &["cache", "mcp", "metrics", "routes", "tools"]),
    ("cache", &["mcp", "routes", "store", "tools"]),
    ("metrics.rs", &["mcp", "routes", "tools"]),
    ("tools", &["mcp", "routes"]),
    ("mcp", &["routes"]),
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
