//! OpenDAL 0.59 (`services-azblob`) on Azure Blob storage with this crate's credential: the
//! adapter goes into `Azblob::credential_provider_chain`, in place of OpenDAL's own providers.
//!
//! Azure: set `AZURE_STORAGE_ACCOUNT_URL` (e.g. `https://myaccount.blob.core.windows.net`) and
//! `AZURE_STORAGE_CONTAINER` (an existing container); the credential is
//! `DefaultAzureCredential::new(None)` (in a pod: the workload identity), which needs "Storage Blob
//! Data Contributor" on the account.
//!
//! Local (default): the embedded emulator plays Entra ID and the cluster's OIDC issuer; Azurite
//! (from `tests/azurite`: `npm ci --prefix tests/azurite`, Node.js 20) plays Blob storage over HTTPS
//! with `--oauth basic`. OpenDAL takes Azurite's CA through its HTTP transport (a reqwest client).
//!
//! ```sh
//! cargo run --example opendal --features opendal
//! ```

#[path = "../tests/it/common/azurite.rs"]
mod azurite;
mod common;

use azure_core::credentials::TokenCredential;
use azure_identity_k8s::DefaultAzureCredential;
use azure_identity_k8s::integrations::opendal::TokenCredentialProvider;
use opendal::services::Azblob;
use opendal::{HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;
use reqsign_core::ProvideCredentialChain;
use std::sync::Arc;

/// The operator for `container` at `account_url`, every request signed with a token from
/// `credential`.
fn operator(
    account_url: &str,
    container: &str,
    credential: Arc<dyn TokenCredential>,
) -> opendal::Result<Operator> {
    let builder = Azblob::default()
        .endpoint(account_url)
        .container(container)
        .credential_provider_chain(
            ProvideCredentialChain::new().push(TokenCredentialProvider::new(credential)),
        );
    Operator::new(builder)
}

async fn run(op: &Operator) -> opendal::Result<()> {
    let content = format!(
        "hello from a Kubernetes workload identity at {}\n",
        time::OffsetDateTime::now_utc()
    );
    op.write("example/hello.txt", content).await?;
    println!("wrote example/hello.txt");
    for entry in op.list("example/").await? {
        println!("  {}", entry.path());
    }
    let bytes = op.read("example/hello.txt").await?.to_vec();
    println!("read: {}", String::from_utf8_lossy(&bytes).trim_end());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(account_url) = std::env::var("AZURE_STORAGE_ACCOUNT_URL") {
        let container = std::env::var("AZURE_STORAGE_CONTAINER")
            .map_err(|_| "set AZURE_STORAGE_CONTAINER to an existing container")?;
        let credential = DefaultAzureCredential::new(None)?;
        run(&operator(&account_url, &container, credential)?).await?;
        return Ok(());
    }

    let pod = common::LocalPod::start().await?;
    let credential = pod.credential()?;
    let azurite =
        azurite::Azurite::start_with_container(&pod.emu, "example", credential.clone()).await?;
    println!(
        "started Azurite at {} with container example",
        azurite.endpoint
    );
    let op = operator(&azurite.account_url(), "example", credential)?;
    // Trust the CA that signed Azurite's certificate (OpenDAL's default client trusts the system's).
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pod.emu.ca_pem().as_bytes())?])
        .build()?;
    let ctx = op
        .context()
        .with_http_transport(HttpTransporter::new(ReqwestTransport::new(client)));
    run(&op.with_context(ctx)).await?;
    Ok(())
}
