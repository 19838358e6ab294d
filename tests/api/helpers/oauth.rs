//! A real authorization server: `tests/oauth/provider.mjs` (oidc-provider)
//! on a loopback port, started and stopped by the test that uses it. Its
//! npm packages are installed beside it on first use.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// The resource (our `aud`) the tests' server is configured as.
pub const AUDIENCE: &str = "http://127.0.0.1:8000/mcp";

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth")
}

/// `npm ci` once per checkout; concurrent tests wait for the first.
fn installed() {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if here().join("node_modules/oidc-provider").is_dir() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "-q"])
        .current_dir(here())
        .status()
        .expect("npm runs");
    assert!(status.success(), "npm ci in tests/oauth failed");
}

pub struct Provider {
    pub issuer: String,
    /// The signing key's id.
    pub kid: String,
    port: u16,
    keys: tempfile::TempDir,
    child: Option<Child>,
}

impl Provider {
    pub fn start() -> Provider {
        installed();
        let keys = tempfile::tempdir().unwrap();
        Self::launch(keys, 0, false)
    }

    fn keys_file(keys: &tempfile::TempDir) -> PathBuf {
        keys.path().join("jwks.json")
    }

    fn launch(keys: tempfile::TempDir, port: u16, rotate: bool) -> Provider {
        let mut cmd = Command::new("node");
        cmd.arg(here().join("provider.mjs"))
            .arg(Self::keys_file(&keys))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if rotate {
            cmd.arg("--rotate");
        }
        // Node 20 has been seen to deadlock on start now and then on a
        // loaded machine (its main thread on a mutex, nothing listening):
        // a start that prints nothing within 20 s is killed and tried again.
        let mut tries = 0;
        let (child, line) = loop {
            tries += 1;
            let mut child = cmd.spawn().expect("node runs");
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = stdout.read_line(&mut line);
                let _ = tx.send(line);
                // Kept open: a write to a closed stdout would end the provider.
                std::io::copy(&mut stdout, &mut std::io::sink())
            });
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => break (child, line),
                Err(_) if tries < 3 => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(_) => panic!("the provider printed nothing in 20 s, {tries} times"),
            }
        };
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the provider did not start ({e}): {line:?}"));
        let issuer = started["issuer"].as_str().unwrap().to_owned();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Provider {
            issuer,
            kid: started["kid"].as_str().unwrap().to_owned(),
            port,
            keys,
            child: Some(child),
        }
    }

    /// Stops it; its port is free afterwards.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The same issuer again, on the same port; with `rotate`, signing
    /// with a new key (the old one still published).
    pub fn restart(mut self, rotate: bool) -> Provider {
        self.stop();
        let keys = std::mem::replace(&mut self.keys, tempfile::tempdir().unwrap());
        Self::launch(keys, self.port, rotate)
    }

    /// An access token by client credentials.
    pub async fn client_credentials(
        &self,
        client: &str,
        resource: &str,
        scope: &str,
    ) -> Result<String, Value> {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the provider answers");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().map(str::to_owned).ok_or(body)
    }

    /// An access token for `user` by authorization code + PKCE, the
    /// sign-in and consent driven headlessly (tests/oauth/headless.mjs).
    pub fn authorization_code(&self, resource: &str, scope: &str, user: &str) -> String {
        let out = Command::new("node")
            .arg(here().join("headless.mjs"))
            .args([&self.issuer, resource, scope, user])
            .output()
            .expect("node runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A token signed with the provider's own key (`kid` as given), for
    /// the claims no real flow would issue: expired, not yet valid …
    pub fn sign(&self, claims: &Value, kid: &str) -> String {
        let pem = std::fs::read(Self::keys_file(&self.keys).with_extension("json.pem")).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
    }

    /// The signing key's public half in PEM (for the HS256 confusion case).
    pub fn public_pem(&self) -> Vec<u8> {
        std::fs::read(Self::keys_file(&self.keys).with_extension("json.pub.pem")).unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
