//! Leak scan over every error path: each token-endpoint fault, each bad token file, the issuer's
//! discovery down, a foreign audience and an Entra rejection, all captured at TRACE. No
//! service-account token, client assertion or access token (nor a distinctive fragment of one)
//! may appear in the logs, in any error's `Display` or `Debug` (the `azure_core::Error` and the
//! `CredentialError` inside), or in the `Debug` of the public types involved.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::assertion::{AssertionSource, TokenFileSource};
use azure_identity_k8s::{RefreshPolicy, WorkloadIdentityCredential};
use entra_emulator::{Endpoint, Fault, RetryAfter, ServiceAccountToken};

/// Distinctive fragments of a JWT: the start of its claims and of its signature, and the whole.
fn fragments(jwt: &str) -> Vec<String> {
    let mut v: Vec<String> = jwt
        .split('.')
        .skip(1)
        .filter(|p| p.len() >= 16)
        .map(|p| p[..p.len().min(32)].to_string())
        .collect();
    v.push(jwt.to_string());
    v
}

#[tokio::test]
async fn no_secret_leaks_on_any_error_path() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let fx = Fixture::new().await;
    let mut secrets: Vec<String> = Vec::new();
    let mut texts: Vec<(String, String)> = Vec::new();

    let options = || {
        let mut o = fx.options();
        o.refresh_policy = RefreshPolicy {
            attempt_timeout: azure_core::time::Duration::milliseconds(300),
            ..Default::default()
        };
        o
    };
    // A credential per error path (built before the path is set up: construction checks that the
    // token file exists): an error is remembered for a few seconds, which would hide the next path.
    let fresh = || WorkloadIdentityCredential::new(Some(options())).unwrap();
    let good = |fx: &Fixture, secrets: &mut Vec<String>| {
        let t = fx.write_token(&ServiceAccountToken::default());
        secrets.extend(fragments(&t));
    };
    good(&fx, &mut secrets);
    let opts = options();
    texts.push(("options Debug".into(), format!("{opts:?}")));
    let cred = WorkloadIdentityCredential::new(Some(opts)).unwrap();
    // A first token, so the access-token format is among the secrets.
    let first = cred.get_token(&[VAULT], None).await.unwrap();
    secrets.extend(fragments(first.token.secret()));
    texts.push(("AccessToken Debug".into(), format!("{first:?}")));

    let record = |what: String, e: azure_core::Error, texts: &mut Vec<(String, String)>| {
        texts.push((format!("{what} Display"), e.to_string()));
        texts.push((format!("{what} Debug"), format!("{e:?}")));
        if let Some(ce) = e.downcast_ref::<azure_identity_k8s::CredentialError>() {
            texts.push((format!("{what} CredentialError Debug"), format!("{ce:?}")));
            texts.push((format!("{what} CredentialError"), ce.message().to_string()));
        }
    };

    // Token-endpoint faults (a valid assertion is sent each time).
    let faults = [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Throttle {
            retry_after: RetryAfter::Seconds(30),
        },
        Fault::Throttle {
            retry_after: RetryAfter::HttpDate(30),
        },
        Fault::Hang,
        Fault::Reset,
        Fault::Truncated,
        Fault::Html(502),
        Fault::Empty(503),
        Fault::Oversized(200, 512 * 1024),
        Fault::Redirect(307, format!("{}/elsewhere", fx.emu.authority_host())),
    ];
    for fault in faults {
        fx.emu.push_fault(Endpoint::Token, fault.clone());
        let e = fresh().get_token(&[STORAGE], None).await.unwrap_err();
        record(format!("{fault:?}"), e, &mut texts);
    }

    // Entra rejections: no matching federated credential; issuer discovery down.
    let other = fx.write_token(&ServiceAccountToken::new("other-ns", "workload"));
    secrets.extend(fragments(&other));
    let e = fresh().get_token(&[STORAGE], None).await.unwrap_err();
    record("AADSTS70021".into(), e, &mut texts);
    good(&fx, &mut secrets);
    fx.issuer.set_discovery_available(false);
    let e = fresh().get_token(&[STORAGE], None).await.unwrap_err();
    record("AADSTS90061".into(), e, &mut texts);
    fx.issuer.set_discovery_available(true);

    // Bad token files. Each garbage variant contains a real token's parts.
    let sa = std::fs::read_to_string(&fx.token_path)
        .unwrap()
        .trim()
        .to_string();
    let parts: Vec<&str> = sa.split('.').collect();
    let expired = fx.issuer.mint(&ServiceAccountToken {
        issued_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(3)),
        ..Default::default()
    });
    let foreign = fx.issuer.mint(&ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..Default::default()
    });
    let wrong_aud = fx.issuer.mint(&ServiceAccountToken {
        audiences: vec!["api://other".into()],
        ..Default::default()
    });
    for t in [&expired, &foreign, &wrong_aud] {
        secrets.extend(fragments(t));
    }
    let contents: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("whitespace", b" \n\t".to_vec()),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]).into_bytes(),
        ),
        ("four parts", format!("{sa}.{}", parts[2]).into_bytes()),
        ("bad header", format!("x{sa}").into_bytes()),
        (
            "bad claims",
            format!("{}.x{}.{}", parts[0], parts[1], parts[2]).into_bytes(),
        ),
        ("bad signature", format!("{sa}!!").into_bytes()),
        ("not UTF-8", [sa.as_bytes(), &[0xff, 0xfe]].concat()),
        ("expired", expired.clone().into_bytes()),
        ("foreign audience", foreign.clone().into_bytes()),
        ("wrong audience", wrong_aud.clone().into_bytes()),
        ("oversized", sa.repeat(100).into_bytes()),
    ];
    for (what, bytes) in contents {
        let c = fresh();
        std::fs::write(&fx.token_path, &bytes).unwrap();
        let e = c.get_token(&[STORAGE], None).await.unwrap_err();
        record(format!("file {what}"), e, &mut texts);
        // The source itself, as doctor uses it.
        let source = TokenFileSource::new(&fx.token_path, "api://AzureADTokenExchange", false);
        texts.push((format!("file {what} source Debug"), format!("{source:?}")));
        texts.push((format!("file {what} describe"), source.describe()));
        if let Err(e) = source.assertion().await {
            texts.push((format!("file {what} assertion"), format!("{e} {e:?}")));
        }
    }
    let (missing, directory) = (fresh(), fresh());
    std::fs::remove_file(&fx.token_path).unwrap();
    let e = missing.get_token(&[STORAGE], None).await.unwrap_err();
    record("file missing".into(), e, &mut texts);
    std::fs::create_dir(&fx.token_path).unwrap();
    let e = directory.get_token(&[STORAGE], None).await.unwrap_err();
    record("file directory".into(), e, &mut texts);
    std::fs::remove_dir(&fx.token_path).unwrap();

    // Recovery, so the success path's logs are in the capture too; then the Debug of the parts.
    good(&fx, &mut secrets);
    let t = cred.get_token(&[STORAGE], None).await.unwrap();
    secrets.extend(fragments(t.token.secret()));
    let assertion = TokenFileSource::new(&fx.token_path, "api://AzureADTokenExchange", false)
        .assertion()
        .await
        .unwrap();
    texts.push(("Assertion Debug".into(), format!("{assertion:?}")));
    texts.push(("credential Debug".into(), format!("{cred:?}")));

    let log_text = logs.text();
    for needle in ["token refresh failed", "acquired access token"] {
        assert!(log_text.contains(needle), "logs were captured: {needle}");
    }
    texts.push(("TRACE logs".into(), log_text));
    assert!(texts.len() > 80, "{} texts", texts.len());
    for (what, text) in &texts {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{what} contains a secret fragment {s:?}:\n{text}"
            );
        }
    }
}
