//! The structured data of the credential's errors against the emulator over HTTPS: problem id,
//! AADSTS codes, HTTP status, Entra's error and description, trace and correlation ids, fix and
//! documentation URL; the first line of the message is the same for every retry of one fault.

mod common;

use azure_core::credentials::TokenCredential;
use azure_identity_k8s::{
    CredentialError, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use common::*;

const UNKNOWN_CLIENT: &str = "00000000-0000-0000-0000-00000000dead";

async fn fresh_error(options: WorkloadIdentityCredentialOptions) -> CredentialError {
    // A fresh credential per attempt: the cache would otherwise hand back the same error.
    let err = WorkloadIdentityCredential::new(Some(options))
        .expect("configured")
        .get_token(&[STORAGE], None)
        .await
        .expect_err("must fail");
    err.downcast_ref::<CredentialError>()
        .expect("source is CredentialError")
        .clone()
}

#[tokio::test]
async fn retries_of_one_fault_share_the_first_line_and_id_but_not_the_trace_ids() {
    let fx = Fixture::new().await;
    let options = || {
        let mut o = fx.options();
        o.client_id = Some(UNKNOWN_CLIENT.into());
        o
    };
    let a = fresh_error(options()).await;
    let b = fresh_error(options()).await;
    let first = |e: &CredentialError| e.to_string().lines().next().unwrap_or_default().to_owned();
    assert_eq!(first(&a), first(&b));
    for e in [&a, &b] {
        assert_eq!(e.problem_id(), Some("aadsts700016"), "{e}");
        assert_eq!(e.aadsts_codes(), &[700016]);
        assert_eq!(e.http_status().map(u16::from), Some(400));
        assert_eq!(e.entra_error(), Some("unauthorized_client"));
        assert!(
            e.entra_description()
                .is_some_and(|d| d.starts_with("AADSTS700016:")),
            "{e:?}"
        );
        let url = e.documentation_url().expect("a documentation URL");
        assert_eq!(
            url,
            format!(
                "https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/troubleshooting/index.html#aadsts700016",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(e.to_string().contains(url), "{e}");
        assert!(
            e.fix().is_some_and(
                |f| f.contains("AZURE_CLIENT_ID") && f.contains("--query clientId -o tsv")
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(UNKNOWN_CLIENT), "{e}");
        let trace = e.trace_id().expect("Entra's trace id");
        let correlation = e.correlation_id().expect("Entra's correlation id");
        assert!(!first(e).contains(trace) && !first(e).contains(correlation));
    }
    // The emulator, like Entra, gives every answer a new trace id.
    assert_ne!(a.trace_id(), b.trace_id());
    assert_eq!(a.fix(), b.fix());
}

#[tokio::test]
async fn local_faults_carry_their_id_and_url() {
    let fx = Fixture::new().await;
    let e = {
        let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
        let err = cred
            .get_token(&["https://graph.microsoft.com/User.Read"], None)
            .await
            .expect_err("not a .default scope");
        err.downcast_ref::<CredentialError>().unwrap().clone()
    };
    assert_eq!(e.problem_id(), Some("invalid-scope"));
    assert!(
        e.documentation_url()
            .is_some_and(|u| u.ends_with("/troubleshooting/index.html#invalid-scope")),
        "{e:?}"
    );
    assert_eq!(e.trace_id(), None);
    assert_eq!(e.http_status(), None);
}
