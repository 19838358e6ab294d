//! Static bearer tokens, for installations without an identity provider:
//! `MCP_AUTH_TOKEN` (every scope) and the tokens file
//! (`MCP_AUTH_TOKENS_FILE`), whose lines hold only each token's SHA-256, so
//! the file holds no secret:
//!
//! ```text
//! # sha256-of-token                                                  scopes…          name
//! 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 timeseries:read grafana-agent
//! ```

use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Scopes;

pub type Digest32 = [u8; 32];

pub fn sha256(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(digest: &Digest32) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Digest32> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// One accepted token.
#[derive(Clone)]
pub struct Entry {
    pub digest: Digest32,
    pub scopes: Scopes,
    pub name: String,
}

/// The static tokens, matched by digest.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl Tokens {
    /// `MCP_AUTH_TOKEN` (every scope, named `MCP_AUTH_TOKEN`) and the
    /// tokens file's lines.
    pub fn new(token: Option<&str>, file: Option<&Path>) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            entries.push(Entry {
                digest: sha256(token),
                scopes: Scopes::all(),
                name: "MCP_AUTH_TOKEN".into(),
            });
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("MCP_AUTH_TOKENS_FILE {}: {e}", path.display()))?;
            entries.extend(
                parse(&text)
                    .map_err(|e| format!("MCP_AUTH_TOKENS_FILE {}: {e}", path.display()))?,
            );
        }
        Ok(Tokens { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry whose digest is `digest`. Every entry is compared, in
    /// constant time, so the answer's timing says nothing of which matched.
    pub fn find(&self, digest: &Digest32) -> Option<&Entry> {
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(digest)) && found.is_none() {
                found = Some(entry);
            }
        }
        found
    }
}

/// The file's lines: `#` comments and blank lines are skipped; a bad line
/// is named by its number.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: String| format!("line {}: {why}", n + 1);
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some((hash, rest)) = fields.split_first() else {
            continue;
        };
        let digest = unhex(hash).ok_or_else(|| {
            at(
                "the first field must be the token's SHA-256 in hex (64 characters); \
                `mcp-server token new` prints such a line"
                    .into(),
            )
        })?;
        let (name, scopes) = match rest.split_last() {
            Some((name, scopes)) if !scopes.is_empty() && Scopes::named(name).is_none() => {
                (name, scopes)
            }
            Some((name, _)) if Scopes::named(name).is_some() => {
                return Err(at(format!(
                    "the last field is the token's name, not a scope ({name})"
                )));
            }
            _ => {
                return Err(at(format!(
                    "expected `sha256 scope… name`; give at least one scope (of {})",
                    Scopes::all()
                )));
            }
        };
        let mut set = Scopes::empty();
        for scope in scopes {
            set |= Scopes::parse_name(scope).map_err(at)?;
        }
        entries.push(Entry {
            digest,
            scopes: set,
            name: (*name).to_owned(),
        });
    }
    Ok(entries)
}

/// A fresh token (256 random bits, URL-safe) and its tokens-file line.
pub fn new_token(scopes: Scopes, name: &str) -> (String, String) {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!(
        "mcp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let line = format!("{} {scopes} {name}", hex(&sha256(&token)));
    (token, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_line_parses_back_to_its_digest() {
        let (token, line) = new_token(Scopes::READ | Scopes::ANALYTICS, "agent");
        let entries = parse(&format!("# comment\n\n{line}\n")).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].digest, sha256(&token));
        assert_eq!(entries[0].scopes, Scopes::READ | Scopes::ANALYTICS);
        assert_eq!(entries[0].name, "agent");
        let tokens = Tokens { entries };
        assert!(tokens.find(&sha256(&token)).is_some());
        assert!(tokens.find(&sha256("other")).is_none());
    }

    #[test]
    fn bad_lines_are_named() {
        let hash = hex(&sha256("t"));
        for (text, says) in [
            (
                "nothex timeseries:read me".to_owned(),
                "line 1: the first field",
            ),
            (format!("{hash} me"), "at least one scope"),
            (format!("{hash} timeseries:read"), "not a scope"),
            (
                format!("\n{hash} timeseries:admin me"),
                "line 2: unknown scope",
            ),
        ] {
            let e = parse(&text).err().unwrap();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
