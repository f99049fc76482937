//! Starts Azurite's Blob service (npm `azurite`, pinned in `tests/azurite/package.json`) on
//! 127.0.0.1 over HTTPS with `--oauth basic`, with a certificate the caller provides (in tests,
//! one signed by the emulator's CA), on a port Azurite picks. Killed on drop.
//!
//! Shared by the `azurite`, `object_store` and `opendal` tests and the storage examples and
//! benchmark (through `#[path]`). The npm package stays in `tests/azurite/`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Azurite's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";

/// How long Azurite may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Azurite Blob service.
pub struct Azurite {
    child: Child,
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Azurite {
    /// The account URL: `https://127.0.0.1:PORT/devstoreaccount1` (no trailing slash: the
    /// storage client appends `/container`).
    pub fn account_url(&self) -> String {
        format!("{}/{ACCOUNT}", self.endpoint)
    }

    /// The directory holding `node_modules/azurite` (this crate's `tests/azurite`).
    pub fn package_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("azurite")
    }

    /// Azurite's Blob entry point, or a message saying how to install it.
    pub fn main_js() -> Result<PathBuf, String> {
        let main = Self::package_dir().join("node_modules/azurite/dist/src/blob/main.js");
        if main.is_file() {
            Ok(main)
        } else {
            Err(format!(
                "Azurite is not installed ({} is missing). Install it with `npm ci --prefix tests/azurite` \
                 (needs Node.js 20 and npm), or run `bash scripts/test.sh`, which does it.",
                main.display()
            ))
        }
    }

    /// Start Azurite with `cert_pem` (chain) and `key_pem` for 127.0.0.1.
    pub fn start(cert_pem: &str, key_pem: &str) -> Result<Azurite, String> {
        let main = Self::main_js()?;
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, cert_pem).map_err(|e| format!("write cert: {e}"))?;
        std::fs::write(&key, key_pem).map_err(|e| format!("write key: {e}"))?;
        let location = dir.path().join("data");
        let mut child = Command::new("node")
            .arg(&main)
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--oauth", "basic"])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"])
            .arg("--location")
            .arg(&location)
            .args(debug_log_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run `node` ({e}): Azurite needs Node.js 20 on PATH (and `npm ci --prefix tests/azurite`)"
                )
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel::<Result<String, String>>();
        let tx_err = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("successfully listens on ").nth(1) {
                    let _ = tx.send(Ok(url.trim().to_string()));
                }
            }
            let _ = tx.send(Err("Azurite exited before it listened".to_string()));
        });
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
                if line.contains("Exit due to") {
                    let _ = tx_err.send(Err(all.clone()));
                }
            }
        });
        let mut azurite = Azurite {
            child,
            endpoint: String::new(),
            _dir: dir,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(endpoint)) => {
                azurite.endpoint = endpoint;
                Ok(azurite)
            }
            Ok(Err(e)) => Err(format!("Azurite did not start: {e}")),
            Err(_) => Err(format!(
                "Azurite did not listen within {} s",
                START_TIMEOUT.as_secs()
            )),
        }
    }
}

impl Azurite {
    /// Azurite with a certificate from `emu`'s CA, and container `name` created with
    /// `azure_storage_blob`, authorized by `credential` (object_store and OpenDAL work inside an
    /// existing container).
    pub async fn start_with_container(
        emu: &entra_emulator::Emulator,
        name: &str,
        credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    ) -> Result<Azurite, String> {
        let (cert, key) = emu.issue_server_cert();
        let azurite = Self::start(&cert, &key)?;
        let options = azure_storage_blob::BlobServiceClientOptions {
            client_options: azure_core::http::ClientOptions {
                transport: Some(emu.transport()),
                ..Default::default()
            },
            ..Default::default()
        };
        let create = async {
            let url = azure_core::http::Url::parse(&azurite.account_url())?;
            azure_storage_blob::BlobServiceClient::new(url, Some(credential), Some(options))?
                .blob_container_client(name)
                .create(None)
                .await
        };
        create
            .await
            .map_err(|e| format!("cannot create container {name} in Azurite: {e}"))?;
        Ok(azurite)
    }
}

/// `count` blocks of `len` bytes, each different from the others (a misplaced block is caught).
pub fn distinct_blocks(count: u8, len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|seed| {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        })
        .collect()
}

/// `--debug FILE` when `AZURITE_DEBUG_LOG` names a file (read only; for diagnosing failures).
fn debug_log_args() -> Vec<String> {
    match std::env::var("AZURITE_DEBUG_LOG") {
        Ok(path) if !path.is_empty() => vec!["--debug".to_string(), path],
        _ => Vec::new(),
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
