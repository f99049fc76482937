//! The legacy Blob SDK (`azure_storage_blobs` 0.21, on azure_core 0.21) with this crate's
//! credential: the one-line change is the `StorageCredentials` (see `main`).
//!
//! Azure: set `AZURE_STORAGE_ACCOUNT` (the account name) and `AZURE_STORAGE_CONTAINER` (an
//! existing container); the credential is `DefaultAzureCredential::new(None)` (in a pod: the
//! workload identity), which needs "Storage Blob Data Contributor" on the account.
//!
//! Local (default): the embedded emulator plays Entra ID and the cluster's OIDC issuer; Azurite
//! (from `tests/azurite`: `npm ci --prefix tests/azurite`, Node.js 20) plays Blob storage over HTTPS
//! with `--oauth basic`, so every bearer token is checked.
//!
//! ```sh
//! cargo run --example legacy_blob --features azure_core_0_21
//! ```

#[path = "../tests/it/common/azurite.rs"]
mod azurite;
mod common;

use azure_identity_k8s::DefaultAzureCredential;
use azure_identity_k8s::integrations::azure_core_0_21::TokenCredentialAdapter;
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use futures::StreamExt;
use std::sync::Arc;

/// What a service does with the container: write a blob, list, read it back.
async fn run(container: &ContainerClient) -> azure_core_0_21::Result<()> {
    let blob = container.blob_client("example/hello.txt");
    let content = format!(
        "hello from a Kubernetes workload identity at {}\n",
        time::OffsetDateTime::now_utc()
    );
    blob.put_block_blob(content).await?;
    println!("put example/hello.txt");
    let mut pages = container.list_blobs().prefix("example/").into_stream();
    while let Some(page) = pages.next().await {
        for listed in page?.blobs.blobs() {
            let size = listed.properties.content_length;
            println!("  {} ({size} bytes)", listed.name);
        }
    }
    let bytes = blob.get_content().await?;
    println!("got: {}", String::from_utf8_lossy(&bytes).trim_end());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _local; // the local emulator and Azurite, stopped when main returns
    let container = if let Ok(account) = std::env::var("AZURE_STORAGE_ACCOUNT") {
        let container = std::env::var("AZURE_STORAGE_CONTAINER")
            .map_err(|_| "set AZURE_STORAGE_CONTAINER to an existing container")?;
        let credential = DefaultAzureCredential::new(None)?;
        // Was: StorageCredentials::token_credential(Arc::new(
        //          azure_identity::WorkloadIdentityCredential::create(options)?))
        let credentials =
            StorageCredentials::token_credential(TokenCredentialAdapter::new(credential));
        ClientBuilder::new(account, credentials).container_client(container)
    } else {
        let (container, local) = local_container().await?;
        _local = local;
        container
    };
    run(&container).await?;
    Ok(())
}

/// The container client against a local Azurite, as the same builder would make it for a real
/// account: Azurite's account URL as a custom location, and an HTTP client (reqwest 0.12, the one
/// azure_core 0.21 implements `HttpClient` for) that trusts the CA that signed Azurite's
/// certificate.
async fn local_container()
-> Result<(ContainerClient, (common::LocalPod, azurite::Azurite)), Box<dyn std::error::Error>> {
    let pod = common::LocalPod::start().await?;
    let credential = pod.credential()?;
    let azurite =
        azurite::Azurite::start_with_container(&pod.emu, "example", credential.clone()).await?;
    println!(
        "started Azurite at {} with container example",
        azurite.endpoint
    );
    let http_client = reqwest_0_12::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest_0_12::Certificate::from_pem(
            pod.emu.ca_pem().as_bytes(),
        )?)
        .build()?;
    let location = CloudLocation::Custom {
        account: azurite::ACCOUNT.to_string(),
        uri: azurite.account_url(),
    };
    let credentials = StorageCredentials::token_credential(TokenCredentialAdapter::new(credential));
    let container = ClientBuilder::with_location(location, credentials)
        .transport(azure_core_0_21::TransportOptions::new(Arc::new(
            http_client,
        )))
        .container_client("example");
    Ok((container, (pod, azurite)))
}
