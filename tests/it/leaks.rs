//! No secret (service-account token, client assertion, access token) appears in logs captured at
//! TRACE, in error messages (Display and Debug), or in the Debug output of any public type.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::WorkloadIdentityCredential;
use entra_emulator::{Endpoint, Fault, ServiceAccountToken};

/// The distinctive parts of a JWT: its claims and its signature.
fn fragments(jwt: &str) -> Vec<String> {
    jwt.split('.')
        .skip(1)
        .map(|p| p[..p.len().min(40)].to_string())
        .collect()
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} contains a secret fragment {s:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_debug() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let fx = Fixture::new().await;
    let sa_token = std::fs::read_to_string(&fx.token_path)
        .unwrap()
        .trim()
        .to_string();
    let mut secrets = fragments(&sa_token);

    let options = fx.options();
    let options_debug = format!("{options:?}");
    let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
    let token = cred.get_token(&[STORAGE], None).await.unwrap();
    secrets.extend(fragments(token.token.secret()));
    let mut texts = vec![
        ("credential Debug", format!("{cred:?}")),
        ("options Debug", options_debug),
        ("AccessToken Debug", format!("{token:?}")),
    ];

    // Error paths: an Entra rejection (70021), a gateway page, a bad file, a foreign audience.
    fx.write_token(&ServiceAccountToken::new("other-ns", "workload"));
    let wrong_sub = std::fs::read_to_string(&fx.token_path)
        .unwrap()
        .trim()
        .to_string();
    secrets.extend(fragments(&wrong_sub));
    let e = cred.get_token(&[VAULT], None).await.unwrap_err();
    texts.push(("70021 Display", e.to_string()));
    texts.push(("70021 Debug", format!("{e:?}")));

    fx.write_token(&ServiceAccountToken::default());
    let fresh = std::fs::read_to_string(&fx.token_path)
        .unwrap()
        .trim()
        .to_string();
    secrets.extend(fragments(&fresh));
    fx.emu.push_fault(Endpoint::Token, Fault::Html(502));
    let e = cred
        .get_token(&["https://graph.microsoft.com/.default"], None)
        .await
        .unwrap_err();
    texts.push(("502 Display", e.to_string()));
    texts.push(("502 Debug", format!("{e:?}")));

    let irsa = fx.write_token(&ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..Default::default()
    });
    secrets.extend(fragments(&irsa));
    let e = cred
        .get_token(&["https://management.azure.com/.default"], None)
        .await
        .unwrap_err();
    texts.push(("foreign Display", e.to_string()));

    std::fs::write(&fx.token_path, format!("{sa_token}garbage.extra")).unwrap();
    let e = cred
        .get_token(&["api://app/.default"], None)
        .await
        .unwrap_err();
    texts.push(("garbage Display", e.to_string()));
    texts.push(("garbage Debug", format!("{e:?}")));

    let log_text = logs.text();
    assert!(
        log_text.contains("token request failed"),
        "logging was captured:\n{log_text}"
    );
    texts.push(("TRACE logs", log_text));
    for (what, text) in &texts {
        assert_clean(what, text, &secrets);
    }
}
