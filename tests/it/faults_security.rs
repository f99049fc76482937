//! Security properties, as tests: a non-HTTPS authority is refused at construction, a redirect
//! from the token endpoint is not followed (the assertion goes nowhere else), the response body
//! read is capped, and tokens whose audience makes them AWS or cluster credentials are refused
//! unless explicitly allowed.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::{CredentialError, ErrorCategory, WorkloadIdentityCredential};
use entra_emulator::{Endpoint, Fault, ServiceAccountToken};

async fn err(cred: &WorkloadIdentityCredential) -> CredentialError {
    cred.get_token(&[STORAGE], None)
        .await
        .expect_err("must fail")
        .downcast_ref::<CredentialError>()
        .expect("a CredentialError")
        .clone()
}

#[tokio::test]
async fn a_non_https_authority_is_refused_at_construction() {
    let fx = Fixture::new().await;
    let http = fx.emu.authority_host().replace("https://", "http://");
    for env in [
        Env::from_pairs([("AZURE_AUTHORITY_HOST", http.clone())]),
        Env::from_pairs([("AZURE_AUTHORITY_HOST", "ftp://login.example".to_string())]),
    ] {
        let options = azure_identity_k8s::WorkloadIdentityCredentialOptions {
            env,
            ..fx.options()
        };
        let e = WorkloadIdentityCredential::new(Some(options)).expect_err("refused");
        let e = e
            .downcast_ref::<CredentialError>()
            .expect("a CredentialError");
        assert_eq!(e.category(), ErrorCategory::InvalidConfiguration, "{e}");
        assert!(
            e.message().contains("HTTPS") || e.message().contains("https"),
            "{e}"
        );
    }
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn redirects_from_the_token_endpoint_are_not_followed() {
    let fx = Fixture::new().await;
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    // Somewhere else on the same server, so a followed redirect would show up in the log.
    let elsewhere = format!("{}/elsewhere/oauth2/v2.0/token", fx.emu.authority_host());
    for (i, status) in [301u16, 302, 303, 307, 308].into_iter().enumerate() {
        fx.emu
            .push_fault(Endpoint::Token, Fault::Redirect(status, elsewhere.clone()));
        let scope = format!("api://app-{i}/.default");
        let e = cred
            .get_token(&[scope.as_str()], None)
            .await
            .expect_err("a redirect is not a token");
        let e = e.downcast_ref::<CredentialError>().unwrap();
        assert_eq!(e.http_status().map(u16::from), Some(status), "{e}");
        assert!(e.message().contains(&status.to_string()), "{e}");
        assert_eq!(fx.emu.request_count(Endpoint::Token), i + 1, "{status}");
    }
    assert!(
        fx.emu
            .requests()
            .iter()
            .all(|r| !r.path.contains("elsewhere")),
        "a redirect was followed"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Other), 0);
}

#[tokio::test]
async fn the_response_body_is_capped_at_256_kib() {
    let fx = Fixture::new().await;
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    const CAP: usize = 256 * 1024;
    // One byte over the cap, with a success status: refused on size, whatever it contains.
    for (i, (status, size, over)) in [
        (200u16, CAP + 1, true),
        (200, 64 * 1024 * 1024, true),
        (500, CAP + 1, true),
        (200, CAP, false),
    ]
    .into_iter()
    .enumerate()
    {
        fx.emu
            .push_fault(Endpoint::Token, Fault::Oversized(status, size));
        let scope = format!("api://big-{i}/.default");
        let e = cred.get_token(&[scope.as_str()], None).await.unwrap_err();
        let e = e.downcast_ref::<CredentialError>().unwrap();
        assert_eq!(e.category(), ErrorCategory::InvalidResponse, "{e}");
        assert_eq!(e.http_status().map(u16::from), Some(status), "{e}");
        assert_eq!(
            e.message().contains("larger than 262144 bytes"),
            over,
            "{size} bytes: {e}"
        );
    }
}

#[tokio::test]
async fn foreign_audience_tokens_are_refused_by_default() {
    let fx = Fixture::new().await;
    for aud in [
        "sts.amazonaws.com",
        "https://sts.amazonaws.com/",
        "sts.us-east-1.amazonaws.com",
        "pods.eks.amazonaws.com",
        "https://kubernetes.default.svc",
        "https://kubernetes.default.svc.cluster.local",
        "kubernetes.default.svc",
    ] {
        // Even when the Entra audience is there too.
        fx.write_token(&ServiceAccountToken {
            audiences: vec!["api://AzureADTokenExchange".into(), aud.into()],
            ..Default::default()
        });
        let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
        let e = err(&cred).await;
        assert_eq!(e.category(), ErrorCategory::Assertion, "{aud}: {e}");
        assert!(
            e.message().contains("refused") && e.message().contains("#foreign-audience"),
            "{aud}: {e}"
        );
    }
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        0,
        "no foreign token left the pod"
    );
    // Opting in sends it (with a warning).
    fx.write_token(&ServiceAccountToken {
        audiences: vec![
            "api://AzureADTokenExchange".into(),
            "sts.amazonaws.com".into(),
        ],
        ..Default::default()
    });
    let options = azure_identity_k8s::WorkloadIdentityCredentialOptions {
        allow_foreign_audience: true,
        ..fx.options()
    };
    let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
    cred.get_token(&[STORAGE], None)
        .await
        .expect("sent when allowed");
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}
