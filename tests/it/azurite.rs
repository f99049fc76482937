//! The real `azure_storage_blob` client against Azurite (npm, pinned in `tests/azurite/`), started
//! here over HTTPS with a certificate from the emulator's CA and `--oauth basic`. The bearer token
//! comes from our credential exchanging a projected service-account token at the emulator (no
//! hand-minted token). If Node or Azurite is missing these tests FAIL, saying how to install it.

use crate::common::azurite::Azurite;
use crate::common::*;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientOptions, RequestContent, Transport, Url};
use azure_identity_k8s::{
    DefaultAzureCredential, DefaultAzureCredentialOptions, Env, WorkloadIdentityCredential,
};
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use entra_emulator::Endpoint;
use futures::TryStreamExt;
use std::sync::Arc;

fn start_azurite(fx: &Fixture) -> Azurite {
    let (cert, key) = fx.emu.issue_server_cert();
    Azurite::start(&cert, &key).unwrap_or_else(|e| panic!("{e}"))
}

/// A transport trusting only the emulator's CA, without automatic decompression (the storage
/// client's partitioned downloads need the raw bytes).
fn storage_transport(fx: &Fixture) -> Transport {
    let ca = reqwest::Certificate::from_pem(fx.emu.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .no_gzip()
        .no_deflate()
        .build()
        .unwrap();
    Transport::new(Arc::new(client))
}

fn service(
    fx: &Fixture,
    azurite: &Azurite,
    credential: Arc<dyn TokenCredential>,
) -> BlobServiceClient {
    let options = BlobServiceClientOptions {
        client_options: ClientOptions {
            transport: Some(storage_transport(fx)),
            ..Default::default()
        },
        ..Default::default()
    };
    BlobServiceClient::new(
        Url::parse(&azurite.account_url()).unwrap(),
        Some(credential),
        Some(options),
    )
    .unwrap()
}

#[tokio::test]
async fn blob_client_creates_uploads_downloads_and_lists_with_a_workload_identity_token() {
    let fx = Fixture::new().await;
    let azurite = start_azurite(&fx);
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let service = service(&fx, &azurite, credential);

    let container = service.blob_container_client("wi-container");
    container.create(None).await.expect("container create");
    let names = ["a.txt", "b/c.txt", "d.bin"];
    for (i, name) in names.iter().enumerate() {
        container
            .blob_client(name)
            .upload(
                RequestContent::from(format!("content {i} of {name}").into_bytes()),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("upload {name}: {e}"));
    }
    let downloaded = container
        .blob_client("b/c.txt")
        .download(None)
        .await
        .expect("download")
        .body
        .collect()
        .await
        .unwrap();
    assert_eq!(&downloaded[..], b"content 1 of b/c.txt");

    let mut listed = Vec::new();
    let mut pager = container.list_blobs(None).unwrap();
    while let Some(item) = pager.try_next().await.expect("list") {
        listed.push(item.name.unwrap_or_default());
    }
    listed.sort();
    assert_eq!(listed, ["a.txt", "b/c.txt", "d.bin"]);

    // One exchange served every request; the token was for Storage.
    assert_eq!(fx.emu.token_request_count_for_scope(STORAGE), 1);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn default_azure_credential_on_eks_works_with_the_blob_client() {
    let fx = Fixture::new().await;
    let azurite = start_azurite(&fx);
    let env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            fx.token_path.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
        // Only the production sources, so nothing probes IMDS or runs a tool here.
        (
            "AZURE_TOKEN_CREDENTIALS",
            "WorkloadIdentityCredential".to_string(),
        ),
    ]);
    let credential = DefaultAzureCredential::new(Some(DefaultAzureCredentialOptions {
        client_options: fx.client_options(),
        env,
        ..Default::default()
    }))
    .unwrap();
    let service = service(&fx, &azurite, credential.clone());
    let container = service.blob_container_client("dac-container");
    container.create(None).await.expect("container create");
    assert!(container.exists().await.unwrap());
    assert_eq!(
        credential.selected_source(),
        Some("WorkloadIdentityCredential")
    );
}

/// Asks the real credential for a token for another resource than the one requested: the token
/// is genuine (signed by the emulator's Entra) but its audience is Key Vault's.
#[derive(Debug)]
struct WrongResource {
    inner: Arc<WorkloadIdentityCredential>,
    scope: &'static str,
}

#[async_trait::async_trait]
impl TokenCredential for WrongResource {
    async fn get_token(
        &self,
        _: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.inner.get_token(&[self.scope], options).await
    }
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_and_the_error_says_so() {
    let fx = Fixture::new().await;
    let azurite = start_azurite(&fx);
    let inner = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let service = service(
        &fx,
        &azurite,
        Arc::new(WrongResource {
            inner,
            scope: VAULT,
        }),
    );
    let err = service
        .blob_container_client("refused")
        .create(None)
        .await
        .expect_err("a Key Vault token must not open Storage");
    assert_eq!(err.http_status().map(u16::from), Some(403), "{err:?}");
    // What the caller reads (Display) carries Azurite's reason.
    let text = err.to_string();
    assert!(text.contains("AuthenticationFailed"), "{text}");
    assert!(text.contains("Invalid token audience"), "{text}");
    assert_eq!(fx.emu.token_request_count_for_scope(VAULT), 1);
}
