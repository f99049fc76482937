#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

// Modules from the bottom up: util, keys, tls, http (request/reply), faults, log → kube,
// directory (state) → entra, resources, sts, control (handlers) → server (router) → lib, and
// projected beside them.
mod control;
mod directory;
mod entra;
mod faults;
mod http;
mod keys;
mod kube;
mod log;
mod projected;
mod resources;
mod server;
mod sts;
mod tls;
mod util;

pub use directory::{AccessTokenOptions, FederatedCredential};
pub use entra::{CLOCK_SKEW, JWT_BEARER};
pub use faults::{Endpoint, Fault, Gate, RetryAfter};
pub use kube::{AZURE_AD_TOKEN_EXCHANGE, Issuer, ServiceAccountToken};
pub use log::RequestRecord;
pub use projected::ProjectedVolume;
pub use resources::{GRAPH_AUDIENCE, KEY_VAULT_AUDIENCE};
pub use sts::{AwsAccount, AwsRole, STS_API_VERSION, StsError};

use server::State;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Options for [`Emulator::start_with`].
#[derive(Clone, Debug, Default)]
pub struct EmulatorOptions {
    /// Port on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
}

/// A running emulator. Clones share the server, which runs until [`shutdown`](Self::shutdown)
/// or until the last clone is dropped.
#[derive(Clone)]
pub struct Emulator {
    handle: Arc<Handle>,
}

struct Handle {
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("authority_host", &self.handle.state.authority)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts an emulator on an ephemeral port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Emulator> {
        Self::start_with(EmulatorOptions::default()).await
    }

    /// Starts an emulator with `options`.
    pub async fn start_with(options: EmulatorOptions) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let port = listener.local_addr()?.port();
        // RSA key generation and the process-wide certificates are CPU work: keep it off the
        // async workers.
        let state = tokio::task::spawn_blocking(move || {
            tls::server_config();
            Arc::new(State::new(port))
        })
        .await
        .map_err(std::io::Error::other)?;
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, state.clone(), rx));
        Ok(Emulator {
            handle: Arc::new(Handle {
                state,
                shutdown: tx,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    fn state(&self) -> &State {
        &self.handle.state
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, directory::Registry> {
        self.state().directory.registry.lock().unwrap()
    }

    /// `https://127.0.0.1:PORT` (no trailing slash): the value for `AZURE_AUTHORITY_HOST`.
    pub fn authority_host(&self) -> String {
        self.state().authority.clone()
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn base_url(&self) -> url::Url {
        url::Url::parse(&format!("{}/", self.state().authority)).expect("valid URL")
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.state().port
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem(&self) -> String {
        tls::pki().ca_pem.clone()
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path` (for `SSL_CERT_FILE` and friends).
    pub fn write_ca_pem(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.ca_pem())
    }

    /// A server certificate signed by the emulator's CA, for another local HTTPS server (e.g.
    /// Azurite's `--cert`/`--key`) that clients trusting [`ca_pem`](Self::ca_pem) must accept:
    /// `(certificate chain PEM (leaf, then CA), private key PKCS#8 PEM)`. SANs: 127.0.0.1,
    /// localhost, ::1. It is the emulator's own serving certificate (one per process).
    pub fn issue_server_cert(&self) -> (String, String) {
        let pki = tls::pki();
        (pki.leaf_chain_pem.clone(), pki.leaf_key_pem.clone())
    }

    /// A reqwest client that trusts only the emulator's CA, with no proxy and no redirects.
    pub fn reqwest_client(&self) -> reqwest::Client {
        tls::client_builder().build().expect("reqwest client")
    }

    /// An azure_core transport over [`reqwest_client`](Self::reqwest_client), for
    /// `ClientOptions::transport`.
    pub fn transport(&self) -> azure_core::http::Transport {
        azure_core::http::Transport::new(Arc::new(self.reqwest_client()))
    }

    /// An azure_core cloud configuration whose authority host is the emulator.
    pub fn cloud(&self) -> azure_core::cloud::CloudConfiguration {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = self.authority_host();
        custom.into()
    }

    /// `ClientOptions` with [`transport`](Self::transport) and [`cloud`](Self::cloud) set, for
    /// azure_identity credentials and Azure SDK clients.
    pub fn client_options(&self) -> azure_core::http::ClientOptions {
        azure_core::http::ClientOptions {
            transport: Some(self.transport()),
            cloud: Some(Arc::new(self.cloud())),
            ..Default::default()
        }
    }

    /// Stops the server and closes every connection (held and hanging requests included).
    pub async fn shutdown(&self) {
        self.handle.shutdown.send_replace(true);
        let task = self.handle.task.lock().unwrap().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    // ----- cluster side -----

    /// Adds an OIDC issuer served at `path` (e.g. `/id/EXAMPLED539D4633E53DE1B71EXAMPLE`, the
    /// EKS shape, or `/s3/my-bucket`); its URL is `authority_host + path`, kept exactly (a
    /// trailing `/` stays). Adding an existing path returns the existing issuer.
    pub fn add_issuer(&self, path: &str) -> Issuer {
        self.state().issuers.add(path)
    }

    /// Adds an issuer shaped like EKS: `/id/` and 32 uppercase hex characters.
    pub fn add_eks_issuer(&self) -> Issuer {
        self.state().issuers.add_eks()
    }

    // ----- AWS side (IAM outbound identity federation) -----

    /// Adds an AWS account with outbound identity federation enabled: an issuer at
    /// `/<uuid>.tokens.sts.global.api.aws` (discovery at `/.well-known/openid-configuration`,
    /// keys at `/.well-known/jwks.json`) whose tokens STS `GetWebIdentityToken` mints for the
    /// account's roles ([`AwsAccount::add_role`]). Adding an existing id returns that account.
    pub fn add_aws_account(&self, account_id: &str) -> AwsAccount {
        let issuer = self.add_issuer(&format!("/{}.tokens.sts.global.api.aws", util::uuid_v4()));
        self.state().sts.add_account(account_id, issuer)
    }

    /// `https://127.0.0.1:PORT/sts`: the STS endpoint URL (aws-config `endpoint_url`, or
    /// `AWS_ENDPOINT_URL_STS`). Any region is accepted.
    pub fn sts_endpoint_url(&self) -> String {
        format!("{}{}", self.state().authority, sts::STS_PATH)
    }

    /// Queues an STS error answered to the next valid `GetWebIdentityToken` call (after the
    /// caller's credentials were recognised).
    pub fn push_sts_error(&self, error: StsError) {
        self.state().sts.errors.lock().unwrap().push_back(error);
    }

    /// How many web identity tokens STS has issued.
    pub fn sts_tokens_issued(&self) -> usize {
        self.state().sts.issued.load(Ordering::SeqCst)
    }

    // ----- Entra side -----

    /// Registers a tenant (the first one becomes the tenant of Key Vault challenges).
    pub fn add_tenant(&self, tenant_id: &str) {
        self.registry().add_tenant(tenant_id);
    }

    /// Registers an application (or user-assigned managed identity) client id, creating the
    /// tenant if needed.
    pub fn add_application(&self, tenant_id: &str, client_id: &str) {
        self.registry().add_application(tenant_id, client_id);
    }

    /// Adds a federated identity credential, creating the tenant and application if needed.
    /// A credential with the same issuer and subject is replaced.
    pub fn add_federated_credential(
        &self,
        tenant_id: &str,
        client_id: &str,
        fic: FederatedCredential,
    ) {
        self.registry().add_fic(tenant_id, client_id, fic);
    }

    /// Moves this emulator's clock for federated credentials' validity
    /// ([`FederatedCredential::valid_after`]) `by` ahead (other checks keep the real clock).
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.registry().clock_offset += by;
    }

    /// Removes every federated credential of an application (the application stays).
    pub fn remove_federated_credentials(&self, tenant_id: &str, client_id: &str) {
        self.registry().remove_fics(tenant_id, client_id);
    }

    /// Enforces Entra's limit on an external token's lifetime (`exp - iat`, 86400 s at Entra):
    /// a longer assertion is refused with AADSTS70023. Off (`None`) by default, so that tests
    /// and soaks with long-lived projected tokens run unchanged.
    pub fn set_max_assertion_lifetime(&self, limit: Option<std::time::Duration>) {
        *self
            .state()
            .directory
            .max_assertion_lifetime
            .lock()
            .unwrap() = limit;
    }

    /// Sets the shape of successful token responses.
    pub fn set_access_token_options(&self, options: AccessTokenOptions) {
        *self.state().directory.token_options.lock().unwrap() = options;
    }

    /// The public keys that sign access tokens (a JWKS), also served at
    /// `/{tenant}/discovery/v2.0/keys`.
    pub fn entra_signing_jwks(&self) -> serde_json::Value {
        self.state().directory.jwks()
    }

    /// Issues an access token directly, bypassing the token endpoint (for resource API tests).
    pub fn issue_access_token(
        &self,
        tenant_id: &str,
        client_id: &str,
        resource: &str,
        lifetime: std::time::Duration,
    ) -> String {
        self.state()
            .directory
            .issue_access_token(tenant_id, client_id, resource, lifetime)
    }

    /// Stores a secret version for the Key Vault-like API; returns its version id.
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        self.state().secrets.set(name, value)
    }

    // ----- faults -----

    /// Queues a one-shot fault: the next request to `endpoint` gets it (queued faults are
    /// consumed in order and take precedence over the persistent one).
    pub fn push_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.state().faults.push(endpoint, fault);
    }

    /// Sets (or clears, with `None`) the fault every request to `endpoint` gets.
    pub fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        self.state().faults.set(endpoint, fault);
    }

    /// Gives `fault` to `per_mille` (0 to 1000) of the requests to `endpoint` not taken by a
    /// queued fault (those that draw none get the persistent one, if any): request `n` (0-based,
    /// in arrival order, counted from this call) gets it when the `n`th output of SplitMix64
    /// seeded with `seed`, modulo 1000, is below `per_mille`; the same seed gives the same
    /// sequence. Replaces the fault at a rate set before. E.g. AADSTS700213 on 2 % of the
    /// exchanges: `set_fault_rate(Endpoint::Token, Fault::Entra { .. }, 20, 7)`.
    pub fn set_fault_rate(&self, endpoint: Endpoint, fault: Fault, per_mille: u16, seed: u64) {
        self.state()
            .faults
            .set_rate(endpoint, fault, per_mille, seed);
    }

    /// How many requests to `endpoint` got the fault set by
    /// [`set_fault_rate`](Self::set_fault_rate) (0 when none is set).
    pub fn rate_faults_injected(&self, endpoint: Endpoint) -> usize {
        self.state().faults.injected(endpoint)
    }

    /// Clears every queued, persistent and at-a-rate fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    // ----- observation -----

    /// How many requests reached `endpoint` since the start or the last
    /// [`reset_counters`](Self::reset_counters) (including pending and faulted ones).
    pub fn request_count(&self, endpoint: Endpoint) -> usize {
        self.state().log.count(|r| r.endpoint == endpoint)
    }

    /// How many token requests carried `client_id`.
    pub fn token_request_count_for_client(&self, client_id: &str) -> usize {
        self.state()
            .log
            .count(|r| r.endpoint == Endpoint::Token && r.client_id.as_deref() == Some(client_id))
    }

    /// How many token requests carried exactly `scope`.
    pub fn token_request_count_for_scope(&self, scope: &str) -> usize {
        self.state()
            .log
            .count(|r| r.endpoint == Endpoint::Token && r.scope.as_deref() == Some(scope))
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state().log.all()
    }

    /// Clears the request log (and so every counter).
    pub fn reset_counters(&self) {
        self.state().log.clear();
    }
}
