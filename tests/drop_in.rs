//! Proves the drop-in promise: code written for `azure_identity::WorkloadIdentityCredential`
//! compiles against this crate after changing only the `use` line, and both get a token from the
//! same emulator.

mod common;

mod official {
    use azure_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
    include!("drop_in/body.rs");
}

mod ours {
    use azure_identity_k8s::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
    include!("drop_in/body.rs");
}

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use common::*;
use std::sync::Arc;

fn client_options(fx: &Fixture) -> azure_core::http::ClientOptions {
    // The authority comes from the cloud configuration, which both crates read (no process
    // environment is touched).
    let mut custom = CustomConfiguration::default();
    custom.authority_host = fx.emu.authority_host();
    let mut o = fx.client_options();
    o.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    o
}

#[tokio::test]
async fn the_same_source_works_with_both_crates() {
    let fx = Fixture::new().await;
    // azure_identity 1.0 sends the file's content untrimmed, so give it a file without the
    // trailing newline that kubelet-written files may have (ours trims; tests/credential.rs).
    let t = std::fs::read_to_string(&fx.token_path).unwrap();
    std::fs::write(&fx.token_path, t.trim()).unwrap();
    let theirs = official::get_storage_token(
        client_options(&fx),
        CLIENT.into(),
        TENANT.into(),
        fx.token_path.clone(),
    )
    .await
    .expect("azure_identity gets a token from the emulator");
    let mine = ours::get_storage_token(
        client_options(&fx),
        CLIENT.into(),
        TENANT.into(),
        fx.token_path.clone(),
    )
    .await
    .expect("azure_identity_k8s gets a token from the emulator");
    assert_eq!(
        claims(theirs.token.secret())["aud"],
        claims(mine.token.secret())["aud"]
    );
    assert_eq!(claims(mine.token.secret())["appid"], CLIENT);
}
