//! The credential against the emulator over HTTPS: happy path, rotation, every bad input and
//! every Entra error family, asserting on the messages users read.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::{
    CredentialError, ErrorCategory, RefreshPolicy, WorkloadIdentityCredential,
};
use entra_emulator::{Endpoint, Fault, FederatedCredential, ProjectedVolume, ServiceAccountToken};

async fn token_err(fx: &Fixture, scope: &str) -> CredentialError {
    // A missing or non-regular token file already fails `new()`, as with azure_identity.
    let err = match WorkloadIdentityCredential::new(Some(fx.options())) {
        Ok(cred) => cred.get_token(&[scope], None).await.expect_err("must fail"),
        Err(e) => e,
    };
    assert!(
        matches!(err.kind(), azure_core::error::ErrorKind::Credential),
        "{err:?}"
    );
    err.downcast_ref::<CredentialError>()
        .expect("source is CredentialError")
        .clone()
}

#[tokio::test]
async fn gets_a_token_for_the_requested_resource_and_caches_it() {
    let fx = Fixture::new().await;
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let t = cred.get_token(&[STORAGE], None).await.unwrap();
    let c = claims(t.token.secret());
    assert_eq!(c["aud"], "https://storage.azure.com");
    assert_eq!(c["appid"], CLIENT);
    assert_eq!(c["tid"], TENANT);
    let remaining = t.expires_on - time::OffsetDateTime::now_utc();
    assert!(remaining > time::Duration::minutes(55), "{remaining}");
    let again = cred.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(again.token.secret(), t.token.secret());
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        1,
        "second call served from cache"
    );
    // What was sent: the client-credentials grant with the JWT assertion, verbatim (trimmed).
    let req = fx
        .emu
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::Token)
        .unwrap();
    assert_eq!(req.form["grant_type"], "client_credentials");
    assert_eq!(
        req.form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(req.form["scope"], STORAGE);
    assert_eq!(req.form["client_id"], CLIENT);
    assert_eq!(
        req.form["client_assertion"],
        std::fs::read_to_string(&fx.token_path).unwrap().trim()
    );
}

#[tokio::test]
async fn numbers_as_strings_and_refresh_in_are_accepted() {
    let fx = Fixture::new().await;
    fx.emu
        .set_access_token_options(entra_emulator::AccessTokenOptions {
            numbers_as_strings: true,
            refresh_in: Some(std::time::Duration::from_secs(1800)),
            ..Default::default()
        });
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    let t = cred.get_token(&[VAULT], None).await.unwrap();
    assert_eq!(claims(t.token.secret())["aud"], "https://vault.azure.net");
}

#[tokio::test]
async fn a_rotated_token_file_is_used_by_the_next_exchange() {
    let fx = Fixture::new().await;
    let vol_dir = fx.dir.path().join("volume");
    std::fs::create_dir(&vol_dir).unwrap();
    let vol = ProjectedVolume::create(
        &vol_dir,
        "azure-identity-token",
        fx.issuer.clone(),
        ServiceAccountToken::default(),
    )
    .unwrap();
    let mut opts = fx.options();
    opts.token_file_path = Some(vol.token_path());
    let cred = WorkloadIdentityCredential::new(Some(opts)).unwrap();
    let first = vol.current_token();
    cred.get_token(&[STORAGE], None).await.unwrap();
    let second = vol.rotate_now().unwrap();
    assert_ne!(first, second);
    cred.get_token(&[VAULT], None).await.unwrap();
    let sent: Vec<String> = fx
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.form["client_assertion"].clone())
        .collect();
    assert_eq!(sent, vec![first, second]);
}

#[tokio::test]
async fn bad_token_files_fail_locally_with_their_own_message() {
    let fx = Fixture::new().await;
    let expired = ServiceAccountToken {
        issued_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(3)),
        ..Default::default()
    };
    type Case = (&'static str, Box<dyn Fn(&Fixture)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "missing",
            Box::new(|f: &Fixture| std::fs::remove_file(&f.token_path).unwrap()),
            "does not exist",
        ),
        (
            "empty",
            Box::new(|f: &Fixture| std::fs::write(&f.token_path, "").unwrap()),
            "is empty",
        ),
        (
            "garbage",
            Box::new(|f: &Fixture| std::fs::write(&f.token_path, "not-a-token\n").unwrap()),
            "3 dot-separated parts",
        ),
        (
            "expired",
            Box::new(move |f: &Fixture| {
                f.write_token(&expired);
            }),
            "expired at",
        ),
        // Another (non-foreign) audience is sent, as azure_identity sends it, unless the expected
        // audience is set: tests/it/drop_in.rs ("custom audience") and assertion::token_file's tests.
        (
            "IRSA audience",
            Box::new(|f: &Fixture| {
                f.write_token(&ServiceAccountToken {
                    audiences: vec!["sts.amazonaws.com".into()],
                    ..Default::default()
                });
            }),
            "refused",
        ),
        (
            "directory",
            Box::new(|f: &Fixture| {
                std::fs::remove_file(&f.token_path).unwrap();
                std::fs::create_dir(&f.token_path).unwrap();
            }),
            "is a directory",
        ),
    ];
    for (name, setup, needle) in cases {
        if fx.token_path.is_dir() {
            std::fs::remove_dir(&fx.token_path).unwrap();
        }
        fx.write_token(&ServiceAccountToken::default());
        setup(&fx);
        let e = token_err(&fx, STORAGE).await;
        assert!(e.message().contains(needle), "{name}: {e}");
        assert!(
            e.message().contains(&fx.token_path.display().to_string()),
            "{name} names the file: {e}"
        );
        assert!(
            matches!(
                e.category(),
                ErrorCategory::TokenFile | ErrorCategory::Assertion
            ),
            "{name}: {e:?}"
        );
    }
    assert_eq!(
        fx.emu.request_count(Endpoint::Token),
        0,
        "nothing bad was sent to Entra"
    );
}

#[tokio::test]
async fn fic_mismatches_name_the_tokens_issuer_subject_and_audience() {
    let fx = Fixture::new().await;
    // The federated credential has a trailing slash on the issuer: the classic EKS mistake.
    fx.emu.remove_federated_credentials(TENANT, CLIENT);
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(
            format!("{}/", fx.issuer.url()),
            ServiceAccountToken::default().subject(),
        ),
    );
    let e = token_err(&fx, STORAGE).await;
    assert_eq!(e.aadsts_codes(), &[70021]);
    assert_eq!(e.http_status().map(u16::from), Some(400));
    assert!(!e.is_transient());
    let m = e.message();
    for needle in [
        fx.issuer.url().as_str(),
        "system:serviceaccount:default:workload",
        "api://AzureADTokenExchange",
        "#aadsts70021",
        "trailing slash",
    ] {
        assert!(m.contains(needle), "missing {needle}: {m}");
    }
}

#[tokio::test]
async fn wrong_namespace_is_reported_with_the_tokens_subject() {
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken::new("payments", "workload"));
    let e = token_err(&fx, STORAGE).await;
    assert_eq!(e.aadsts_codes(), &[70021]);
    assert!(
        e.message()
            .contains("system:serviceaccount:payments:workload"),
        "{e}"
    );
}

#[tokio::test]
async fn unknown_client_and_tenant() {
    let fx = Fixture::new().await;
    let mut o = fx.options();
    o.client_id = Some("00000000-0000-0000-0000-00000000dead".into());
    let e = WorkloadIdentityCredential::new(Some(o))
        .unwrap()
        .get_token(&[STORAGE], None)
        .await
        .unwrap_err();
    let e = e.downcast_ref::<CredentialError>().unwrap();
    assert_eq!(e.aadsts_codes(), &[700016]);
    assert!(
        e.message().contains("00000000-0000-0000-0000-00000000dead")
            && e.message().contains("object id"),
        "{e}"
    );

    let mut o = fx.options();
    o.tenant_id = Some("contoso.onmicrosoft.com".into());
    let e = WorkloadIdentityCredential::new(Some(o))
        .unwrap()
        .get_token(&[STORAGE], None)
        .await
        .unwrap_err();
    let e = e.downcast_ref::<CredentialError>().unwrap();
    assert_eq!(e.aadsts_codes(), &[90002]);
    assert!(
        e.message().contains("contoso.onmicrosoft.com")
            && e.message().contains("AZURE_AUTHORITY_HOST"),
        "{e}"
    );
}

#[tokio::test]
async fn unreachable_issuer_discovery_is_90061_with_the_url() {
    let fx = Fixture::new().await;
    fx.issuer.set_discovery_available(false);
    let e = token_err(&fx, STORAGE).await;
    assert_eq!(e.aadsts_codes(), &[90061]);
    assert!(
        e.message().contains(&format!(
            "{}/.well-known/openid-configuration",
            fx.issuer.url()
        )),
        "{e}"
    );
}

#[tokio::test]
async fn retired_signing_key_is_a_signature_error() {
    let fx = Fixture::new().await;
    let old = fx.issuer.signing_kid();
    fx.issuer.add_key();
    fx.issuer.retire_key(&old);
    // The file still holds a token signed with the retired key.
    let e = token_err(&fx, STORAGE).await;
    assert_eq!(e.aadsts_codes(), &[7000272]);
    assert!(e.message().contains("JWKS"), "{e}");
}

#[tokio::test]
async fn bad_scopes_are_refused_before_any_request() {
    let fx = Fixture::new().await;
    for (scopes, needle) in [
        (vec![], "no scope"),
        (
            vec!["https://storage.azure.com"],
            "https://storage.azure.com/.default",
        ),
        (vec![STORAGE, VAULT], "one resource at a time"),
    ] {
        let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
        let e = cred.get_token(&scopes, None).await.unwrap_err();
        let e = e.downcast_ref::<CredentialError>().unwrap();
        assert_eq!(e.category(), ErrorCategory::InvalidScope);
        assert!(e.message().contains(needle), "{scopes:?}: {e}");
    }
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn unparseable_answers_keep_the_status_and_say_what_came_back() {
    let fx = Fixture::new().await;
    for (fault, status, needle, transient) in [
        (Fault::Html(502), Some(502), "HTML", true),
        (Fault::Status(503), Some(503), "non-JSON text", true),
        (Fault::Empty(400), Some(400), "empty body", false),
        (
            Fault::Oversized(500, 1024 * 1024),
            Some(500),
            "larger than",
            true,
        ),
        (Fault::Truncated, None, "broke off", true),
        (Fault::Reset, None, "failed before Entra answered", true),
    ] {
        fx.emu.push_fault(Endpoint::Token, fault.clone());
        let e = token_err(&fx, STORAGE).await;
        assert_eq!(e.http_status().map(u16::from), status, "{fault:?}: {e}");
        assert!(e.message().contains(needle), "{fault:?}: {e}");
        assert_eq!(e.is_transient(), transient, "{fault:?}: {e}");
    }
}

#[tokio::test]
async fn a_hung_endpoint_fails_within_the_bound() {
    let fx = Fixture::new().await;
    fx.emu.set_fault(Endpoint::Token, Some(Fault::Hang));
    let mut o = fx.options();
    o.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(1);
    let cred = WorkloadIdentityCredential::new(Some(o)).unwrap();
    let e = cred.get_token(&[STORAGE], None).await.unwrap_err();
    let e = e.downcast_ref::<CredentialError>().unwrap();
    assert_eq!(e.category(), ErrorCategory::Timeout, "{e}");
    assert!(e.is_transient());
    assert!(e.message().contains("attempt_timeout"), "{e}");
}

#[tokio::test]
async fn throttling_reports_retry_after() {
    let fx = Fixture::new().await;
    fx.emu.push_fault(
        Endpoint::Token,
        Fault::Throttle {
            retry_after: entra_emulator::RetryAfter::Seconds(60),
        },
    );
    let e = token_err(&fx, STORAGE).await;
    assert_eq!(e.http_status().map(u16::from), Some(429));
    assert!(
        e.is_transient() && e.message().contains("Retry-After: 60"),
        "{e}"
    );
}

/// `RefreshPolicy::validate`, which the credential runs when it is built (from the cache's unit
/// tests: the words are the credential's).
#[test]
fn refresh_policy_is_validated_with_the_field_named() {
    use time::Duration;
    assert!(RefreshPolicy::default().validate().is_ok());
    let cases = [
        (
            RefreshPolicy {
                attempt_timeout: Duration::ZERO,
                ..Default::default()
            },
            "RefreshPolicy::attempt_timeout is 0 s but must be positive",
        ),
        (
            RefreshPolicy {
                failure_backoff: Duration::seconds(-1),
                ..Default::default()
            },
            "RefreshPolicy::failure_backoff is -1 s but must be positive",
        ),
        (
            RefreshPolicy {
                mandatory_margin: Duration::seconds(-5),
                ..Default::default()
            },
            "RefreshPolicy::mandatory_margin is -5 s but must not be negative",
        ),
        (
            RefreshPolicy {
                permanent_error_ttl: Duration::seconds(-1),
                ..Default::default()
            },
            "RefreshPolicy::permanent_error_ttl is -1 s but must be positive",
        ),
        (
            RefreshPolicy {
                max_jitter: Duration::seconds(-1),
                ..Default::default()
            },
            "RefreshPolicy::max_jitter",
        ),
        (
            RefreshPolicy {
                max_backoff: Duration::seconds(5),
                ..Default::default()
            },
            "RefreshPolicy::max_backoff is 5 s but must be at least failure_backoff (10 s)",
        ),
    ];
    for (policy, needle) in cases {
        let e = policy.validate().unwrap_err();
        assert_eq!(e.category(), ErrorCategory::InvalidConfiguration);
        assert!(e.message().contains(needle), "{e}");
        assert!(e.message().contains("refresh_policy"), "{e}");
    }
    // A zero error TTL: the error says why it is refused.
    let default_but = |set: fn(&mut RefreshPolicy)| {
        let mut p = RefreshPolicy::default();
        set(&mut p);
        p
    };
    for (policy, field, default) in [
        (
            default_but(|p| p.permanent_error_ttl = Duration::ZERO),
            "permanent_error_ttl",
            5,
        ),
        (
            default_but(|p| p.transient_error_ttl = Duration::ZERO),
            "transient_error_ttl",
            1,
        ),
    ] {
        let e = policy.validate().unwrap_err();
        let expected = format!(
            "RefreshPolicy::{field} is 0 s but must be positive: with no valid token cached, a zero \
             TTL remembers no error, so every call during an outage sends a request to Entra \
             (default {default} s)"
        );
        assert!(e.message().contains(&expected), "{e}");
    }
}

/// The DEBUG record of an attempt's start names why it starts as a string label, as before the
/// reason was typed (`reason="miss"` on a cold cache). On azure_core's default retry policy, as
/// users run it.
#[tokio::test]
async fn an_attempt_logs_its_reason_as_a_label() {
    let fx = Fixture::new().await;
    let mut options = fx.options();
    options.credential_options.client_options.retry = azure_core::http::RetryOptions::default();
    let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
    let logs = LogCapture::default();
    {
        let _guard = logs.install();
        cred.get_token(&[STORAGE], None).await.unwrap();
    }
    let logged = logs.text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("refreshing access token") && l.contains("reason=\"miss\"")),
        "{logged}"
    );
}
