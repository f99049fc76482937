//! Shared by the fault matrix, the cache-trust tests and the soak: an emulator, a token file, a
//! credential on a manual clock, and a counter of the exchange's refresh attempts.
use azure_core::credentials::{AccessToken, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions};
use azure_identity::ClientAssertionCredentialOptions;
use azure_identity_k8s::test_util::ManualClock;
use azure_identity_k8s::{
    CredentialError, Env, RefreshPolicy, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use entra_emulator::{Emulator, FederatedCredential, Issuer, ServiceAccountToken};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::OffsetDateTime;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";
pub const STORAGE: &str = "https://storage.azure.com/.default";
/// `RefreshPolicy::max_backoff` in the matrix and the soak (and so the cap on `Retry-After`):
/// short enough that an absurd `Retry-After` met in the advisory window ends before the
/// mandatory one.
pub const MATRIX_MAX_BACKOFF_SECS: i64 = 120;

/// Counts the refresh attempts from the exchange's `tracing` events: "refreshing access token"
/// when an attempt starts, "acquired access token" / "token refresh failed" when it ends.
#[derive(Clone, Default)]
pub struct Attempts(Arc<AttemptCounts>);

#[derive(Default)]
pub struct AttemptCounts {
    started: AtomicUsize,
    succeeded: AtomicUsize,
    failed: AtomicUsize,
}

impl Attempts {
    /// Install as the thread's subscriber. The tests run on a current-thread runtime, so the
    /// spawned attempts run (and log) on this thread too.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }
    pub fn started(&self) -> usize {
        self.0.started.load(Ordering::SeqCst)
    }
    pub fn succeeded(&self) -> usize {
        self.0.succeeded.load(Ordering::SeqCst)
    }
    pub fn failed(&self) -> usize {
        self.0.failed.load(Ordering::SeqCst)
    }
    /// Wait (for real: the attempts talk to the emulator over HTTPS) until every started
    /// attempt has ended.
    pub async fn settle(&self) {
        // Let a just-spawned attempt start (and announce itself) first.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.started() != self.succeeded() + self.failed() {
            assert!(
                std::time::Instant::now() < deadline,
                "an attempt did not end within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Attempts {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !event
            .metadata()
            .target()
            .starts_with("azure_identity_k8s::entra")
        {
            return;
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        let counter = if m.0.starts_with("refreshing access token") {
            &self.0.started
        } else if m.0.starts_with("acquired access token") {
            &self.0.succeeded
        } else if m.0.starts_with("token refresh failed") {
            &self.0.failed
        } else {
            return;
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// The real current time, whole seconds (the start of every manual clock).
pub fn real_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now - time::Duration::nanoseconds(i64::from(now.nanosecond()))
}

/// A service-account token valid for 2 h of real time from now.
pub fn sa() -> ServiceAccountToken {
    ServiceAccountToken {
        lifetime: std::time::Duration::from_secs(2 * 3600),
        ..Default::default()
    }
}

pub struct Bench {
    pub emu: Emulator,
    pub issuer: Issuer,
    pub dir: tempfile::TempDir,
}

impl Bench {
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
        Self { emu, issuer, dir }
    }

    /// A fresh token file (valid token) named `name` in the bench's directory.
    pub fn token_file(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        self.write_valid(&path);
        path
    }

    pub fn write_valid(&self, path: &std::path::Path) -> String {
        if path.is_dir() {
            std::fs::remove_dir(path).expect("remove dir");
        }
        let t = self.issuer.mint(&sa());
        std::fs::write(path, format!("{t}\n")).expect("write token");
        t
    }

    /// Options for the emulator: no HTTP retries (one request per attempt; retrying is the
    /// cache's job), a short attempt bound.
    pub fn options(&self, token_file: PathBuf) -> WorkloadIdentityCredentialOptions {
        WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: ClientOptions {
                    transport: Some(self.emu.transport()),
                    retry: RetryOptions::none(),
                    ..Default::default()
                },
            },
            client_id: Some(CLIENT.into()),
            tenant_id: Some(TENANT.into()),
            token_file_path: Some(token_file),
            env: Env::from_pairs([("AZURE_AUTHORITY_HOST", self.emu.authority_host())]),
            refresh_policy: RefreshPolicy {
                attempt_timeout: azure_core::time::Duration::milliseconds(400),
                max_backoff: azure_core::time::Duration::seconds(MATRIX_MAX_BACKOFF_SECS),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A credential on a manual clock that starts at the real current time.
    pub fn credential(
        &self,
        options: WorkloadIdentityCredentialOptions,
    ) -> (Arc<WorkloadIdentityCredential>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(real_now()));
        let cred = WorkloadIdentityCredential::with_clock(Some(options), clock.clone())
            .expect("credential builds");
        (cred, clock)
    }
}

pub type Outcome = Result<AccessToken, CredentialError>;

/// `get_token` for [`STORAGE`], awaited.
pub async fn get(cred: &WorkloadIdentityCredential) -> Outcome {
    cred.get_token(&[STORAGE], None)
        .await
        .map_err(into_credential_error)
}

/// `get_token` for [`STORAGE`] polled once: `None` when the caller would have to wait.
pub fn get_now(cred: &WorkloadIdentityCredential) -> Option<Outcome> {
    use futures::FutureExt as _;
    cred.get_token(&[STORAGE], None)
        .now_or_never()
        .map(|r| r.map_err(into_credential_error))
}

pub fn into_credential_error(e: azure_core::Error) -> CredentialError {
    e.downcast_ref::<CredentialError>()
        .cloned()
        .unwrap_or_else(|| panic!("not a CredentialError: {e:?}"))
}

pub fn secs(s: i64) -> time::Duration {
    time::Duration::seconds(s)
}
