//! Shared fixture: an emulator with one tenant, one application, one EKS-shaped issuer and a
//! federated credential for `system:serviceaccount:default:workload`. `aws`: the AWS outbound
//! federation fixture; `azurite`: Azurite's Blob service for the storage tests.
#![allow(dead_code)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod azurite;

use azure_core::http::{ClientOptions, RetryOptions};
use azure_identity::ClientAssertionCredentialOptions;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::{RefreshPolicy, WorkloadIdentityCredentialOptions};
use entra_emulator::{Emulator, FederatedCredential, Issuer, ServiceAccountToken};
use std::path::PathBuf;
use std::sync::Arc;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";
pub const STORAGE: &str = "https://storage.azure.com/.default";
pub const VAULT: &str = "https://vault.azure.net/.default";

pub struct Fixture {
    pub emu: Emulator,
    pub issuer: Issuer,
    pub dir: tempfile::TempDir,
    pub token_path: PathBuf,
}

impl Fixture {
    pub async fn new() -> Self {
        let emu = Emulator::start().await.expect("emulator starts");
        let issuer = emu.add_eks_issuer();
        emu.add_tenant(TENANT);
        emu.add_application(TENANT, CLIENT);
        emu.add_federated_credential(
            TENANT,
            CLIENT,
            FederatedCredential::new(issuer.url(), ServiceAccountToken::default().subject()),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let token_path = dir.path().join("azure-identity-token");
        let fx = Self {
            emu,
            issuer,
            dir,
            token_path,
        };
        fx.write_token(&ServiceAccountToken::default());
        fx
    }

    /// Mint a token and write it (plain file) to `token_path`; returns it.
    pub fn write_token(&self, sa: &ServiceAccountToken) -> String {
        let t = self.issuer.mint(sa);
        std::fs::write(&self.token_path, format!("{t}\n")).expect("write token");
        t
    }

    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(self.emu.transport()),
            // Error-path tests want one request per attempt; retries are the cache's business.
            retry: RetryOptions::none(),
            ..Default::default()
        }
    }

    /// Options pointing at the emulator, with an empty environment.
    pub fn options(&self) -> WorkloadIdentityCredentialOptions {
        WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: self.client_options(),
            },
            client_id: Some(CLIENT.into()),
            tenant_id: Some(TENANT.into()),
            token_file_path: Some(self.token_path.clone()),
            env: Env::from_pairs([("AZURE_AUTHORITY_HOST", self.emu.authority_host())]),
            refresh_policy: RefreshPolicy {
                attempt_timeout: azure_core::time::Duration::seconds(5),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

impl Fixture {
    /// The pod's environment as the workload identity webhook sets it, with only the workload
    /// identity source enabled for `DefaultAzureCredential` (nothing probes IMDS or runs a tool).
    pub fn pod_env(&self) -> Env {
        Env::from_pairs([
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                self.token_path.display().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", self.emu.authority_host()),
            (
                "AZURE_TOKEN_CREDENTIALS",
                "WorkloadIdentityCredential".to_string(),
            ),
        ])
    }

    /// Removes the federated credential (Entra then answers AADSTS70021) and returns a fresh
    /// credential with the error text its exchange gives.
    pub async fn unfederated_credential(
        &self,
    ) -> (Arc<azure_identity_k8s::WorkloadIdentityCredential>, String) {
        use azure_core::credentials::TokenCredential;
        self.emu.remove_federated_credentials(TENANT, CLIENT);
        let credential =
            azure_identity_k8s::WorkloadIdentityCredential::new(Some(self.options())).unwrap();
        let err = credential
            .get_token(&[STORAGE], None)
            .await
            .expect_err("no federated credential");
        (credential, err.to_string())
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_local_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Decode the claims of a JWT (test helper; no verification).
/// The `CredentialError` behind an error returned at the `TokenCredential` boundary.
pub fn credential_error(e: &azure_core::Error) -> azure_identity_k8s::CredentialError {
    e.downcast_ref::<azure_identity_k8s::CredentialError>()
        .expect("source is CredentialError")
        .clone()
}

pub fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("3 parts");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("b64"),
    )
    .expect("json")
}

/// Makes a test's thread-local subscriber see every event it enables, whatever other tests do on
/// other threads: sets, once per process, a global subscriber that records nothing and keeps every
/// callsite's cached interest at "sometimes". Without it, tracing-core caches a callsite as "never"
/// when the callsite is first hit on a thread with no subscriber of its own while exactly one
/// thread-local subscriber is registered (it then asks only the hitting thread's), and a test
/// capturing logs then misses that callsite's records (seen under load as a missing WARN in
/// `aws::one_sts_failure_is_one_warn_record` and `jwt_cache`). Call before `set_default`.
pub fn keep_callsites_live() {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        let nothing = tracing_subscriber::filter::dynamic_filter_fn(|_, _| false);
        let global = tracing_subscriber::registry().with(nothing);
        tracing::subscriber::set_global_default(global).expect("no other global subscriber");
    });
}

/// Collects everything `tracing` emits (at TRACE) while alive.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        self.install_filtered("trace")
    }
    /// Collect what `directives` (`RUST_LOG` syntax, for `EnvFilter`) let through.
    pub fn install_filtered(&self, directives: &str) -> tracing::subscriber::DefaultGuard {
        keep_callsites_live();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(sub)
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether `text` offers the audience `f` as a value to configure: a variable, a flag, a
/// YAML/HCL/JSON value, a matching credential (issue 20: no text offers a foreign audience).
pub fn offers_audience(text: &str, f: &str) -> bool {
    let q = serde_json::to_string(f).unwrap();
    [
        format!("AZURE_FEDERATED_TOKEN_AUDIENCE={f}"),
        format!("AZURE_FEDERATED_TOKEN_AUDIENCE='{f}'"),
        format!("--audiences {f}"),
        format!("--audiences '{f}'"),
        format!("audience to {f}"),
        format!("with audience {f}"),
        format!("{{audience: {f},"),
        format!("audience: {q}"),
        format!("audience            = [{q}]"),
        format!("audiences      = [{q}]"),
        format!("\"audiences\":[{q}]"),
    ]
    .iter()
    .any(|o| text.contains(o.as_str()))
        || text
            .lines()
            .any(|l| l.trim_start() == format!("audience: {f}"))
}
