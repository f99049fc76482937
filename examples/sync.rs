//! Tokens in synchronous code (feature `blocking`): a librdkafka-style OAUTHBEARER refresh
//! callback and an r2d2-style `connect`, both plain functions running on their own threads, get
//! tokens from one `BlockingTokenCredential`. No `#[tokio::main]` in the application.
//!
//! Local (default): the embedded emulator plays Entra ID and the cluster's OIDC issuer; it runs on
//! a runtime of its own, as a remote service would.
//!
//! ```sh
//! cargo run --example sync --features blocking
//! ```
//!
//! Azure: when `AZURE_CLIENT_ID` is set the credential is `DefaultAzureCredential::new(None)` (in a
//! pod: the workload identity) and the scope is `$SCOPE`, e.g.
//! `https://<namespace>.servicebus.windows.net/.default` for Event Hubs' Kafka endpoint.

mod common;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::DefaultAzureCredential;
use azure_identity_k8s::blocking::BlockingTokenCredential;
use std::error::Error;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What rdkafka's `ClientContext::generate_oauth_token` returns: the token, its expiry in
/// milliseconds since the epoch, and the principal name.
struct OAuthToken {
    token: String,
    lifetime_ms: i64,
    principal_name: String,
}

/// The Kafka client's context (`rdkafka::ClientContext` with `ENABLE_REFRESH_OAUTH_TOKEN = true`):
/// librdkafka calls `generate_oauth_token` on the thread that polls the client.
struct KafkaContext {
    credential: Arc<BlockingTokenCredential>,
    scope: String,
}

impl KafkaContext {
    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        let token = self.credential.get_token(&[&self.scope], None)?;
        Ok(OAuthToken {
            token: token.token.secret().to_owned(),
            lifetime_ms: (token.expires_on.unix_timestamp_nanos() / 1_000_000) as i64,
            // Kafka's SASL principal; Event Hubs ignores it, librdkafka wants it non-empty.
            principal_name: "azure-identity-k8s".into(),
        })
    }
}

/// An r2d2 `ManageConnection::connect`: a database that takes the token as its password.
fn connect(credential: &BlockingTokenCredential, scope: &str) -> Result<usize, Box<dyn Error>> {
    let password = credential.get_token(&[scope], None)?;
    // e.g. postgres::Config::new().password(password.token.secret()).connect(..)
    Ok(password.token.secret().len())
}

fn run(credential: Arc<dyn TokenCredential>, scope: String) -> Result<(), Box<dyn Error>> {
    // One wrapper for the process; its runtime starts on the first call.
    let credential = Arc::new(BlockingTokenCredential::new(credential, None)?);
    let kafka = KafkaContext {
        credential: Arc::clone(&credential),
        scope: scope.clone(),
    };
    let kafka_thread =
        std::thread::spawn(move || kafka.generate_oauth_token(None).map_err(|e| e.to_string()));
    let pool_threads: Vec<_> = (0..4)
        .map(|_| {
            let credential = Arc::clone(&credential);
            let scope = scope.clone();
            std::thread::spawn(move || connect(&credential, &scope).map_err(|e| e.to_string()))
        })
        .collect();

    let token = kafka_thread.join().expect("kafka thread")?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    println!(
        "OAUTHBEARER token for {scope}: {} bytes, valid for {} s more, principal {:?}",
        token.token.len(),
        (token.lifetime_ms - now_ms) / 1000,
        token.principal_name
    );
    for pool in pool_threads {
        let bytes = pool.join().expect("pool thread")?;
        println!("pool connection authenticated with a {bytes}-byte token");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os("AZURE_CLIENT_ID").is_some() {
        let scope = std::env::var("SCOPE")
            .map_err(|_| "set SCOPE, e.g. https://<namespace>.servicebus.windows.net/.default")?;
        return run(DefaultAzureCredential::new(None)?, scope);
    }
    // The emulator, on its own runtime for as long as the program runs.
    let service = tokio::runtime::Runtime::new()?;
    let pod = service.block_on(common::LocalPod::start())?;
    let credential = pod.credential()?;
    let result = run(
        credential,
        "https://myns.servicebus.windows.net/.default".into(),
    );
    if result.is_ok() {
        println!(
            "{} token request(s) reached Entra for 5 callers",
            pod.emu.request_count(entra_emulator::Endpoint::Token)
        );
    }
    result
}
