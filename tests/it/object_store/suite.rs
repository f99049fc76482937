// The object_store suite, included once per version by `tests/it/object_store.rs` with the version
// imported as `object_store`.

use crate::common::*;
use crate::common::azurite::{ACCOUNT, Azurite, distinct_blocks};
use azure_identity_k8s::integrations::object_store::TokenCredentialProvider;
use azure_identity_k8s::{
    CredentialError, DefaultAzureCredential, DefaultAzureCredentialOptions, ErrorCategory,
    WorkloadIdentityCredential,
};
use entra_emulator::Endpoint;
use futures::TryStreamExt;
use object_store::azure::{AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{
    Certificate, ClientOptions, CredentialProvider, ObjectStore, ObjectStoreExt, PutMode,
    PutPayload,
};
use std::sync::Arc;

type Provider = TokenCredentialProvider<AzureCredential>;

/// The store as a user builds it for a real account, pointed at Azurite: the account endpoint
/// (not `with_use_emulator`, which ignores `with_credentials`), the emulator's CA as root.
fn store(fx: &Fixture, azurite: &Azurite, container: &str, provider: Provider) -> MicrosoftAzure {
    let ca = Certificate::from_pem(fx.emu.ca_pem().as_bytes()).expect("CA PEM");
    MicrosoftAzureBuilder::new()
        .with_account(ACCOUNT)
        .with_container_name(container)
        .with_endpoint(azurite.account_url())
        .with_client_options(ClientOptions::new().with_root_certificate(ca))
        .with_credentials(Arc::new(provider))
        .build()
        .expect("build store")
}

#[tokio::test]
async fn put_get_range_list_multipart_conditional_create_and_delete_with_our_token() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "data", credential.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = store(&fx, &azurite, "data", Provider::new(credential));

    // put, get, ranged get
    let small = Path::from("dir/small.txt");
    store
        .put(&small, PutPayload::from_static(b"hello, object_store"))
        .await
        .expect("put");
    let got = store.get(&small).await.expect("get").bytes().await.unwrap();
    assert_eq!(&got[..], b"hello, object_store");
    let range = store.get_range(&small, 7..19).await.expect("ranged get");
    assert_eq!(&range[..], b"object_store");

    // multipart: three 4 MiB parts (12 MiB)
    let big = Path::from("dir/big.bin");
    let parts = distinct_blocks(3, 4 << 20);
    let mut upload = store.put_multipart(&big).await.expect("start multipart");
    for part in &parts {
        upload
            .put_part(PutPayload::from(part.clone()))
            .await
            .expect("put part");
    }
    upload.complete().await.expect("complete multipart");
    let whole = store
        .get(&big)
        .await
        .expect("get big")
        .bytes()
        .await
        .unwrap();
    assert_eq!(whole.len(), 12 << 20);
    assert!(whole[..] == parts.concat()[..], "multipart content differs");

    // list
    let mut listed: Vec<String> = store
        .list(Some(&Path::from("dir")))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list");
    listed.sort();
    assert_eq!(listed, ["dir/big.bin", "dir/small.txt"]);

    // conditional create: the second one is refused
    let once = Path::from("once.txt");
    store
        .put_opts(
            &once,
            PutPayload::from_static(b"first"),
            PutMode::Create.into(),
        )
        .await
        .expect("create");
    let err = store
        .put_opts(
            &once,
            PutPayload::from_static(b"second"),
            PutMode::Create.into(),
        )
        .await
        .expect_err("a second create must fail");
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err:?}"
    );
    let kept = store.get(&once).await.unwrap().bytes().await.unwrap();
    assert_eq!(&kept[..], b"first");

    // delete
    store.delete(&small).await.expect("delete");
    let err = store.get(&small).await.expect_err("deleted");
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{err:?}"
    );

    // One exchange served every request (including the container creation).
    assert_eq!(fx.emu.token_request_count_for_scope(STORAGE), 1);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}

#[tokio::test]
async fn the_chain_works_behind_the_adapter() {
    let fx = Fixture::new().await;
    let chain = DefaultAzureCredential::new(Some(DefaultAzureCredentialOptions {
        client_options: fx.client_options(),
        env: fx.pod_env(),
        ..Default::default()
    }))
    .unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "chain", chain.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = store(&fx, &azurite, "chain", Provider::new(chain.clone()));
    let path = Path::from("x");
    store
        .put(&path, PutPayload::from_static(b"x"))
        .await
        .expect("put");
    assert_eq!(store.head(&path).await.expect("head").size, 1);
    assert_eq!(chain.selected_source(), Some("WorkloadIdentityCredential"));
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_with_azurites_reason() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "refused", credential.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A genuine token, for Key Vault.
    let provider = Provider::new(credential).with_scope(VAULT);
    assert_eq!(provider.scope(), VAULT);
    let store = store(&fx, &azurite, "refused", provider);
    let err = store
        .put(&Path::from("no"), PutPayload::from_static(b"no"))
        .await
        .expect_err("a Key Vault token must not open Storage");
    let text = err.to_string();
    assert!(text.contains("403"), "{text}");
    assert!(text.contains("AuthenticationFailed"), "{text}");
    assert!(text.contains("Invalid token audience"), "{text}");
    assert_eq!(fx.emu.token_request_count_for_scope(VAULT), 1);
}

#[tokio::test]
async fn our_error_keeps_its_text_and_data_through_object_store() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let azurite = Azurite::start_with_container(&fx.emu, "errors", credential)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (credential, expected) = fx.unfederated_credential().await;
    let store = store(&fx, &azurite, "errors", Provider::new(credential));

    let err = store.get(&Path::from("any")).await.expect_err("no token");
    // The text: object_store's prefix, then the credential's own message.
    assert!(
        err.to_string().contains(&expected),
        "{err}\n---\n{expected}"
    );
    // The data: object_store's Generic error holding the credential's error.
    let object_store::Error::Generic { store, source } = &err else {
        panic!("expected Error::Generic, got {err:?}");
    };
    assert_eq!(*store, "MicrosoftAzure");
    let ours = source
        .downcast_ref::<azure_core::Error>()
        .and_then(|e| e.downcast_ref::<CredentialError>())
        .unwrap_or_else(|| panic!("no CredentialError in {source:?}"));
    assert_eq!(ours.category(), ErrorCategory::Entra);
    assert!(ours.aadsts_codes().contains(&70021), "{ours:?}");
    assert_eq!(ours.http_status().map(u16::from), Some(400));
    assert!(!ours.is_transient());
}

#[tokio::test]
async fn the_same_credential_is_handed_out_while_the_token_is_unchanged() {
    let fx = Fixture::new().await;
    let credential = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let provider = Provider::new(credential);
    let first = provider.get_credential().await.unwrap();
    for _ in 0..100 {
        let again = provider.get_credential().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }
    let AzureCredential::BearerToken(token) = &*first else {
        panic!("not a bearer token");
    };
    assert_eq!(claims(token)["aud"], "https://storage.azure.com");
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
    // Debug names the scope, never the token.
    let debug = format!("{provider:?}");
    assert!(debug.contains(STORAGE), "{debug}");
    assert!(!debug.contains(token.as_str()), "{debug}");
}
