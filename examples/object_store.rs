//! object_store 0.13 (the storage layer of DataFusion 55, delta-rs 1.0 and polars 0.55) on Azure
//! Blob storage with this crate's credential: build the `MicrosoftAzure` store once, then hand it
//! to your engine (see the end of `main`).
//!
//! Azure: set `AZURE_STORAGE_ACCOUNT_URL` (e.g. `https://myaccount.blob.core.windows.net`) and
//! `AZURE_STORAGE_CONTAINER` (an existing container); the credential is
//! `DefaultAzureCredential::new(None)` (in a pod: the workload identity), which needs "Storage Blob
//! Data Contributor" on the account.
//!
//! Local (default): the embedded emulator plays Entra ID and the cluster's OIDC issuer; Azurite
//! (from `tests/azurite`: `npm ci --prefix tests/azurite`, Node.js 20) plays Blob storage over HTTPS
//! with `--oauth basic`, so every bearer token is checked.
//!
//! ```sh
//! cargo run --example object_store --features object_store_0_13
//! ```
//!
//! For object_store 0.14 (lance), enable `object_store_0_14` and use that version's types; the
//! adapter is the same.

#[path = "../tests/it/common/azurite.rs"]
mod azurite;
mod common;

use azure_identity_k8s::DefaultAzureCredential;
use azure_identity_k8s::integrations::object_store::TokenCredentialProvider;
use futures::TryStreamExt;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path;
use object_store::{Certificate, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};
use object_store_0_13 as object_store;
use std::sync::Arc;

/// What an engine does with the store: write an object, list, read it back.
async fn run(store: &dyn ObjectStore) -> object_store::Result<()> {
    let path = Path::from("example/hello.txt");
    let content = format!(
        "hello from a Kubernetes workload identity at {}\n",
        time::OffsetDateTime::now_utc()
    );
    store
        .put(&path, PutPayload::from(content.into_bytes()))
        .await?;
    println!("put {path}");
    let listed: Vec<_> = store
        .list(Some(&Path::from("example")))
        .try_collect()
        .await?;
    for meta in listed {
        println!("  {} ({} bytes)", meta.location, meta.size);
    }
    let bytes = store.get(&path).await?.bytes().await?;
    println!("got: {}", String::from_utf8_lossy(&bytes).trim_end());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _local; // the local emulator and Azurite, stopped when main returns
    let store = if let Ok(account_url) = std::env::var("AZURE_STORAGE_ACCOUNT_URL") {
        let container = std::env::var("AZURE_STORAGE_CONTAINER")
            .map_err(|_| "set AZURE_STORAGE_CONTAINER to an existing container")?;
        let credential = DefaultAzureCredential::new(None)?;
        // Instead of `.with_use_azure_cli(..)` / object_store's own workload identity:
        MicrosoftAzureBuilder::new()
            .with_url(format!("{}/{container}", account_url.trim_end_matches('/')))
            .with_credentials(Arc::new(TokenCredentialProvider::new(credential)))
            .build()?
    } else {
        let (store, local) = local_store().await?;
        _local = local;
        store
    };
    run(&store).await?;

    // DataFusion: ctx.register_object_store(&Url::parse("az://CONTAINER")?, Arc::new(store));
    // delta-rs:   pass the store to DeltaTableBuilder::with_storage_backend(Arc::new(store), url).
    Ok(())
}

/// The store against a local Azurite, as the same builder would make it for a real account: the
/// account endpoint (not `with_use_emulator`, which ignores `with_credentials`) and the CA that
/// signed Azurite's certificate.
async fn local_store() -> Result<
    (
        object_store::azure::MicrosoftAzure,
        (common::LocalPod, azurite::Azurite),
    ),
    Box<dyn std::error::Error>,
> {
    let pod = common::LocalPod::start().await?;
    let credential = pod.credential()?;
    let azurite =
        azurite::Azurite::start_with_container(&pod.emu, "example", credential.clone()).await?;
    println!(
        "started Azurite at {} with container example",
        azurite.endpoint
    );
    let store = MicrosoftAzureBuilder::new()
        .with_account(azurite::ACCOUNT)
        .with_container_name("example")
        .with_endpoint(azurite.account_url())
        .with_client_options(
            ClientOptions::new()
                .with_root_certificate(Certificate::from_pem(pod.emu.ca_pem().as_bytes())?),
        )
        .with_credentials(Arc::new(TokenCredentialProvider::new(credential)))
        .build()?;
    Ok((store, (pod, azurite)))
}
