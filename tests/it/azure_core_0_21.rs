//! The azure_core 0.21 adapter: the token and its expiry passed through, the error's text and
//! `CredentialError` kept, and the legacy `azure_storage_blobs` 0.21 client against Azurite over
//! HTTPS with our credential, next to the 0.21-era `WorkloadIdentityCredential` that reads the
//! token file once.

use crate::common::azurite::Azurite;
use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_core_0_21::auth::TokenCredential as _;
use azure_core_0_21::error::ErrorKind;
use azure_identity_k8s::integrations::azure_core_0_21::TokenCredentialAdapter;
use azure_identity_k8s::{CredentialError, ProblemId, WorkloadIdentityCredential};
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use entra_emulator::{Endpoint, ProjectedVolume, ServiceAccountToken};
use futures::StreamExt;
use std::sync::Arc;

#[tokio::test]
async fn the_adapter_passes_the_credentials_token_and_expiry_through() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let adapter = TokenCredentialAdapter::new(credential.clone());
    let old = adapter.get_token(&[STORAGE]).await.unwrap();
    let new = credential.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(old.token.secret(), new.token.secret());
    assert_eq!(old.expires_on, new.expires_on);
    assert_eq!(
        claims(old.token.secret())["aud"],
        "https://storage.azure.com"
    );

    // clear_cache is a no-op: the next token is the cached one, still one exchange.
    adapter.clear_cache().await.unwrap();
    let again = adapter.get_token(&[STORAGE]).await.unwrap();
    assert_eq!(again.token.secret(), new.token.secret());
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
    let debug = format!("{adapter:?}");
    assert!(debug.starts_with("TokenCredentialAdapter"), "{debug}");
    assert!(!debug.contains(new.token.secret()), "{debug}");
}

#[tokio::test]
async fn a_failure_keeps_the_credentials_text_and_its_credential_error() {
    let fx = Fixture::new().await;
    let (credential, text) = fx.unfederated_credential().await;
    let err = TokenCredentialAdapter::new(credential)
        .get_token(&[STORAGE])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Credential);
    assert_eq!(err.to_string(), text);
    let ours = err
        .downcast_ref::<azure_core::Error>()
        .and_then(|e| e.downcast_ref::<CredentialError>())
        .expect("the 1.x error, and ours behind it");
    assert_eq!(ours.problem_id(), Some(ProblemId::Aadsts(70021)));
    assert!(ours.fix().is_some());
}

/// The 0.21 clients' HTTP client (azure_core 0.21 implements `HttpClient` for reqwest 0.12),
/// trusting only the emulator's CA (Azurite's certificate is one of its).
fn http_client(fx: &Fixture) -> Arc<dyn azure_core_0_21::HttpClient> {
    let ca = reqwest_0_12::Certificate::from_pem(fx.emu.ca_pem().as_bytes()).unwrap();
    let client = reqwest_0_12::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .no_proxy()
        .build()
        .unwrap();
    Arc::new(client)
}

/// Container `name` of Azurite's account through `azure_storage_blobs` 0.21, authorized by
/// `credential` (a 0.21 `TokenCredential`).
fn container(
    fx: &Fixture,
    azurite: &Azurite,
    credential: Arc<dyn azure_core_0_21::auth::TokenCredential>,
    name: &str,
) -> ContainerClient {
    let location = CloudLocation::Custom {
        account: crate::common::azurite::ACCOUNT.to_string(),
        uri: azurite.account_url(),
    };
    ClientBuilder::with_location(location, StorageCredentials::token_credential(credential))
        .transport(azure_core_0_21::TransportOptions::new(http_client(fx)))
        .retry(azure_core_0_21::RetryOptions::none())
        .container_client(name)
}

fn start_azurite(fx: &Fixture) -> Azurite {
    let (cert, key) = fx.emu.issue_server_cert();
    Azurite::start(&cert, &key).unwrap_or_else(|e| panic!("{e}"))
}

/// Uploads `names` (each blob's content names it), reads one back and lists them all.
async fn put_get_list(container: &ContainerClient, names: &[&str]) -> azure_core_0_21::Result<()> {
    for name in names {
        container
            .blob_client(*name)
            .put_block_blob(format!("content of {name}"))
            .await?;
    }
    let first = container.blob_client(names[0]).get_content().await?;
    assert_eq!(first, format!("content of {}", names[0]).into_bytes());
    let mut listed = Vec::new();
    let mut pages = container.list_blobs().into_stream();
    while let Some(page) = pages.next().await {
        listed.extend(page?.blobs.blobs().map(|b| b.name.clone()));
    }
    listed.sort();
    assert_eq!(listed, names);
    Ok(())
}

#[tokio::test]
async fn the_legacy_blob_client_puts_gets_and_lists_with_our_credential() {
    let fx = Fixture::new().await;
    let azurite = start_azurite(&fx);
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let container = container(
        &fx,
        &azurite,
        TokenCredentialAdapter::new(credential),
        "legacy",
    );
    container.create().await.expect("container create");
    put_get_list(&container, &["a.txt", "b/c.txt", "d.bin"])
        .await
        .expect("put, get, list");
    // One exchange served every request; the token was for Storage.
    assert_eq!(fx.emu.token_request_count_for_scope(STORAGE), 1);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

/// The 24-hour failure. The emulator judges an assertion's `exp` by its clock (the real one, with
/// Entra's 5-minute skew), so the pod's day is played by the tokens' times: the pod started 25
/// hours ago, when the kubelet wrote a token valid for 24 hours (EKS's lifetime), which expired
/// an hour ago; the kubelet has rotated the file since. Both credentials were created at the
/// pod's start. azure_identity 0.21's `WorkloadIdentityCredential::create` reads
/// `AZURE_FEDERATED_TOKEN_FILE` once with `read_to_string` and keeps the text; the test makes the
/// same read (it does not set the process environment) and passes it to `new`.
#[tokio::test]
async fn after_rotation_the_0_21_credential_fails_with_the_token_it_read_and_the_adapter_works() {
    let fx = Fixture::new().await;
    let azurite = start_azurite(&fx);
    let volume = ProjectedVolume::create(
        &fx.dir.path().join("projected"),
        "azure-identity-token",
        fx.issuer.clone(),
        ServiceAccountToken {
            issued_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(25)),
            lifetime: std::time::Duration::from_secs(24 * 3600),
            ..Default::default()
        },
    )
    .unwrap();
    let token_path = volume.token_path();
    let first = volume.current_token();
    let legacy_credential = || {
        azure_identity_0_21::WorkloadIdentityCredential::new(
            http_client(&fx),
            fx.emu.authority_host().parse().unwrap(),
            TENANT.to_string(),
            CLIENT.to_string(),
            std::fs::read_to_string(&token_path).unwrap(),
        )
    };

    // At the pod's start: both credentials, each as its SDK line builds it.
    let legacy = legacy_credential();
    let ours = WorkloadIdentityCredential::new(Some(
        azure_identity_k8s::WorkloadIdentityCredentialOptions {
            token_file_path: Some(token_path.clone()),
            ..fx.options()
        },
    ))
    .unwrap();

    // 25 hours later the file holds a fresh token.
    let rotated = volume.rotate_now().unwrap();

    // The 0.21 credential still sends the token it read at the start, and Entra refuses it.
    let log = LogCapture::default();
    let stale = container(&fx, &azurite, Arc::new(legacy), "stale");
    let err = {
        let _guard = log.install();
        stale
            .create()
            .await
            .expect_err("the token read at start expired")
    };
    assert_eq!(err.kind(), &ErrorKind::Credential, "{err}");
    assert!(log.text().contains("AADSTS700024"), "{}", log.text());
    assert_eq!(assertions_sent(&fx), [(400, first.clone())]);

    // The adapter's credential reads the rotated file.
    let fresh = container(&fx, &azurite, TokenCredentialAdapter::new(ours), "fresh");
    fresh
        .create()
        .await
        .expect("container create after rotation");
    put_get_list(&fresh, &["after-rotation.txt"])
        .await
        .expect("put, get, list after rotation");
    assert_eq!(assertions_sent(&fx), [(400, first), (200, rotated)]);

    // A 0.21 credential created now, from the rotated file, works: what failed is only the
    // token the first one kept.
    let rebuilt = container(&fx, &azurite, Arc::new(legacy_credential()), "stale");
    rebuilt.create().await.expect("a freshly read token works");
}

/// `(status, client_assertion)` of every token request the emulator answered, in order.
fn assertions_sent(fx: &Fixture) -> Vec<(u16, String)> {
    fx.emu
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| (r.status, r.form["client_assertion"].clone()))
        .collect()
}
