//! OpenDAL 0.59 (`services-azblob`) against Azurite (HTTPS, `--oauth basic`, a certificate from
//! the emulator's CA) with `integrations::opendal::TokenCredentialProvider` over this crate's
//! credential. OpenDAL takes the CA through its HTTP transport: a reqwest client trusting it.
//! If Node or Azurite is missing these tests FAIL, saying how to install it.

use crate::common::azurite::{Azurite, distinct_blocks};
use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::integrations::opendal::TokenCredentialProvider;
use azure_identity_k8s::{CredentialError, ErrorCategory, WorkloadIdentityCredential};
use entra_emulator::Endpoint;
use opendal::services::Azblob;
use opendal::{ErrorKind, HttpTransporter, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;
use reqsign_azure_storage::Credential;
use reqsign_core::{Context, ProvideCredential, ProvideCredentialChain};

/// The operator as a user builds it, with the emulator's CA in its HTTP transport.
fn operator(
    fx: &Fixture,
    azurite: &Azurite,
    container: &str,
    provider: TokenCredentialProvider,
) -> Operator {
    let builder = Azblob::default()
        .endpoint(&azurite.account_url())
        .container(container)
        .credential_provider_chain(ProvideCredentialChain::new().push(provider));
    let ca = reqwest::Certificate::from_pem(fx.emu.ca_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .build()
        .unwrap();
    let op = Operator::new(builder).expect("operator");
    let ctx = op
        .context()
        .with_http_transport(HttpTransporter::new(ReqwestTransport::new(client)));
    op.with_context(ctx)
}

#[tokio::test]
async fn write_read_range_list_multipart_conditional_create_and_delete_with_our_token() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "data", credential.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let op = operator(
        &fx,
        &azurite,
        "data",
        TokenCredentialProvider::new(credential),
    );

    op.write("dir/small.txt", &b"hello, opendal"[..])
        .await
        .expect("write");
    let got = op.read("dir/small.txt").await.expect("read").to_vec();
    assert_eq!(got, b"hello, opendal");
    let range = op
        .read_with("dir/small.txt")
        .range(7..14)
        .await
        .expect("ranged read")
        .to_vec();
    assert_eq!(range, b"opendal");

    // multipart (block list): three 4 MiB blocks, 12 MiB
    let parts = distinct_blocks(3, 4 << 20);
    let mut writer = op
        .writer_with("dir/big.bin")
        .chunk(4 << 20)
        .await
        .expect("writer");
    for part in &parts {
        writer.write(part.clone()).await.expect("write part");
    }
    writer.close().await.expect("close");
    let whole = op.read("dir/big.bin").await.expect("read big").to_vec();
    assert_eq!(whole.len(), 12 << 20);
    assert!(whole == parts.concat(), "multipart content differs");

    let mut listed: Vec<String> = op
        .list_with("dir/")
        .recursive(true)
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.path().to_string())
        .filter(|p| !p.ends_with('/'))
        .collect();
    listed.sort();
    assert_eq!(listed, ["dir/big.bin", "dir/small.txt"]);

    op.write_with("once.txt", &b"first"[..])
        .if_not_exists(true)
        .await
        .expect("create");
    let err = op
        .write_with("once.txt", &b"second"[..])
        .if_not_exists(true)
        .await
        .expect_err("a second create must fail");
    assert_eq!(err.kind(), ErrorKind::ConditionNotMatch, "{err:?}");
    assert_eq!(op.read("once.txt").await.unwrap().to_vec(), b"first");

    op.delete("dir/small.txt").await.expect("delete");
    let err = op.stat("dir/small.txt").await.expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");

    assert_eq!(fx.emu.token_request_count_for_scope(STORAGE), 1);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_with_azurites_reason() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "refused", credential.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let provider = TokenCredentialProvider::new(credential).with_scope(VAULT);
    assert_eq!(provider.scope(), VAULT);
    let op = operator(&fx, &azurite, "refused", provider);
    let err = op
        .write("no", &b"no"[..])
        .await
        .expect_err("a Key Vault token must not open Storage");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err:?}");
    // OpenDAL keeps Azurite's error code and message (not its AuthenticationErrorDetail, which
    // names the audience: tests/it/object_store.rs shows that one).
    let text = format!("{err}");
    assert!(text.contains("status: 403"), "{text}");
    assert!(text.contains("AuthenticationFailed"), "{text}");
    assert!(
        text.contains("Server failed to authenticate the request"),
        "{text}"
    );
    assert_eq!(fx.emu.token_request_count_for_scope(VAULT), 1);
}

#[tokio::test]
async fn the_credential_carries_the_tokens_real_expiry() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let token = credential.get_token(&[STORAGE], None).await.unwrap();
    let provider = TokenCredentialProvider::new(credential);
    let provided = provider
        .provide_credential(&Context::new())
        .await
        .expect("provide")
        .expect("some credential");
    let Credential::BearerToken {
        token: bearer,
        expires_in,
    } = &provided
    else {
        panic!("not a bearer token: {provided:?}");
    };
    assert_eq!(bearer, token.token.secret());
    let expires = expires_in.expect("an expiry");
    let expires_ms = i128::from(expires.as_second()) * 1000
        + i128::from(expires.subsec_nanosecond() / 1_000_000);
    assert_eq!(
        expires_ms,
        token.expires_on.unix_timestamp_nanos() / 1_000_000
    );
    // Debug never shows the token.
    assert!(!format!("{provider:?} {provided:?}").contains(bearer.as_str()));
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn our_error_keeps_its_text_and_data_and_reaches_the_logs_through_opendal() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "errors", credential)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (credential, expected) = fx.unfederated_credential().await;

    // Directly: reqsign's error carries the text, the kind and the CredentialError.
    let provider = TokenCredentialProvider::new(credential.clone());
    let err = provider
        .provide_credential(&Context::new())
        .await
        .expect_err("no token");
    assert_eq!(err.to_string(), expected);
    assert_eq!(err.kind(), reqsign_core::ErrorKind::PermissionDenied);
    assert!(!err.is_retryable());
    let ours = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<azure_core::Error>())
        .and_then(|e| e.downcast_ref::<CredentialError>())
        .unwrap_or_else(|| panic!("no CredentialError in {err:?}"));
    assert_eq!(ours.category(), ErrorCategory::Entra);
    assert!(ours.aadsts_codes().contains(&70021), "{ours:?}");

    // Through OpenDAL: its credential chain drops the error, so the adapter logs it.
    let logs = LogCapture::default();
    let _guard = logs.install();
    let op = operator(
        &fx,
        &azurite,
        "errors",
        TokenCredentialProvider::new(credential),
    );
    let err = op.read("any").await.expect_err("no token");
    let text = format!("{err:?}");
    assert!(text.contains("failed to load signing credential"), "{text}");
    let logged = logs.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("AADSTS70021"), "{logged}");
}
