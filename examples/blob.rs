//! The real `azure_storage_blob` client with this crate's credential: create a container, upload,
//! download, list.
//!
//! Local (default): the embedded emulator plays Entra ID and the cluster's OIDC issuer, and
//! Azurite plays Blob storage over HTTPS with `--oauth basic`, so the bearer token is checked.
//! Azurite is started from `tests/azurite` (install it once with `npm ci --prefix tests/azurite`;
//! Node.js 20), with a certificate from the emulator's CA. To use an Azurite you started yourself
//! over HTTPS with `--oauth basic`, set `AZURITE_BLOB_URL` (e.g.
//! `https://127.0.0.1:10000/devstoreaccount1`) and `AZURITE_CA_FILE` (the PEM its certificate
//! chains to).
//!
//! ```sh
//! cargo run --example blob
//! ```
//!
//! Azure: set `AZURE_STORAGE_ACCOUNT_URL` (e.g. `https://myaccount.blob.core.windows.net`); the
//! credential is `DefaultAzureCredential::new(None)` (in a pod: the workload identity), and the
//! identity needs "Storage Blob Data Contributor" on the account. `AZURE_STORAGE_CONTAINER` names
//! the container (default `azure-identity-k8s-example`).

#[path = "../tests/it/common/azurite.rs"]
mod azurite;

mod common;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, RequestContent, Transport, Url};
use azure_identity_k8s::DefaultAzureCredential;
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use common::LocalPod;
use futures::TryStreamExt;
use std::sync::Arc;

async fn run(
    account_url: &str,
    container_name: &str,
    credential: Arc<dyn TokenCredential>,
    client_options: ClientOptions,
) -> azure_core::Result<()> {
    let service = BlobServiceClient::new(
        Url::parse(account_url)?,
        Some(credential),
        Some(BlobServiceClientOptions {
            client_options,
            ..Default::default()
        }),
    )?;
    let container = service.blob_container_client(container_name);
    if container.exists().await? {
        println!("container {container_name} exists");
    } else {
        container.create(None).await?;
        println!("created container {container_name}");
    }
    let blob = container.blob_client("hello.txt");
    let content = format!(
        "hello from a Kubernetes workload identity at {}\n",
        time::OffsetDateTime::now_utc()
    );
    blob.upload(RequestContent::from(content.clone().into_bytes()), None)
        .await?;
    println!("uploaded hello.txt ({} bytes)", content.len());
    let downloaded = blob.download(None).await?.body.collect().await?;
    println!(
        "downloaded: {}",
        String::from_utf8_lossy(&downloaded).trim_end()
    );
    let mut pager = container.list_blobs(None)?;
    println!("blobs in {container_name}:");
    while let Some(item) = pager.try_next().await? {
        println!("  {}", item.name.unwrap_or_default());
    }
    Ok(())
}

/// A reqwest transport trusting `pems` only, without automatic decompression (the storage client's
/// downloads need the raw bytes).
fn transport_trusting(pems: &[String]) -> Result<Transport, Box<dyn std::error::Error>> {
    let mut certs = Vec::new();
    for pem in pems {
        certs.extend(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
    }
    let client = reqwest::Client::builder()
        .tls_certs_only(certs)
        .no_proxy()
        .no_gzip()
        .no_deflate()
        .build()?;
    Ok(Transport::new(Arc::new(client)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(account_url) = std::env::var("AZURE_STORAGE_ACCOUNT_URL") {
        let container = std::env::var("AZURE_STORAGE_CONTAINER")
            .unwrap_or_else(|_| "azure-identity-k8s-example".into());
        let credential = DefaultAzureCredential::new(None)?;
        run(
            &account_url,
            &container,
            credential.clone(),
            ClientOptions::default(),
        )
        .await?;
        println!(
            "authenticated with {}",
            credential.selected_source().unwrap_or("?")
        );
        return Ok(());
    }

    // The cluster and Entra side: an EKS-shaped issuer, an app with a federated credential, and
    // the projected token the kubelet would write.
    let pod = LocalPod::start().await?;
    let emu = &pod.emu;
    let credential = pod.credential()?;

    // The storage side: your Azurite, or one started here.
    let mut trusted = vec![emu.ca_pem()];
    let _started;
    let account_url = match std::env::var("AZURITE_BLOB_URL") {
        Ok(url) => {
            if let Ok(ca_file) = std::env::var("AZURITE_CA_FILE") {
                trusted.push(std::fs::read_to_string(ca_file)?);
            }
            url
        }
        Err(_) => {
            let (cert, key) = emu.issue_server_cert();
            let started = azurite::Azurite::start(&cert, &key).map_err(|e| {
                format!(
                    "{e}\n(or set AZURITE_BLOB_URL and AZURITE_CA_FILE to use your own Azurite)"
                )
            })?;
            println!("started Azurite at {}", started.endpoint);
            let url = started.account_url();
            _started = started;
            url
        }
    };
    let client_options = ClientOptions {
        transport: Some(transport_trusting(&trusted)?),
        ..Default::default()
    };
    run(&account_url, "example", credential, client_options).await?;
    println!(
        "every request carried a token our credential got from the emulator for https://storage.azure.com"
    );
    Ok(())
}
