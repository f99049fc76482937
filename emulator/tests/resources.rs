//! Graph-like and Key Vault-like APIs validating the emulator's access tokens.

mod common;
use common::*;
use entra_emulator::{Endpoint, KEY_VAULT_AUDIENCE};
use std::time::Duration;

async fn token_for(s: &Setup, scope: &str) -> String {
    let a = post_form(
        s,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", scope),
            ("client_assertion_type", entra_emulator::JWT_BEARER),
            ("client_assertion", &s.issuer.mint(&s.sa)),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn graph_service_principal_and_application() {
    let s = setup().await;
    let base = s.emu.authority_host();
    let url = format!("{base}/v1.0/servicePrincipals(appId='{CLIENT}')");
    // no token
    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v = r.json_value().await.unwrap();
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    // a token for another audience
    let storage = token_for(&s, STORAGE).await;
    let r = s
        .client
        .get(&url)
        .bearer_auth(&storage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // the right audience
    let graph = token_for(&s, "https://graph.microsoft.com/.default").await;
    let r = s.client.get(&url).bearer_auth(&graph).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = r.json_value().await.unwrap();
    assert_eq!(v["appId"], CLIENT);
    assert_eq!(v["servicePrincipalType"], "Application");
    let r = s
        .client
        .get(format!("{base}/v1.0/applications(appId='{CLIENT}')"))
        .bearer_auth(&graph)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json_value().await.unwrap()["appId"], CLIENT);
    let r = s
        .client
        .get(format!(
            "{base}/v1.0/applications(appId='00000000-0000-0000-0000-00000000abcd')"
        ))
        .bearer_auth(&graph)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // expired and forged tokens
    let expired = s.emu.issue_access_token(
        TENANT,
        CLIENT,
        "https://graph.microsoft.com",
        Duration::ZERO,
    );
    let r = s
        .client
        .get(&url)
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let mut parts: Vec<&str> = graph.split('.').collect();
    parts[2] = "AAAA";
    let r = s
        .client
        .get(&url)
        .bearer_auth(parts.join("."))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let graph_requests: Vec<_> = s
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::Graph)
        .collect();
    assert_eq!(graph_requests.len(), 7);
    assert_eq!(graph_requests[2].client_id.as_deref(), Some(CLIENT));
    assert_eq!(
        graph_requests[2].scope.as_deref(),
        Some("https://graph.microsoft.com")
    );
}

#[tokio::test]
async fn key_vault_challenge_then_secret() {
    let s = setup().await;
    let v1 = s.emu.set_secret("db-password", "first");
    let v2 = s.emu.set_secret("db-password", "s3cr3t");
    assert_ne!(v1, v2);
    let base = s.emu.authority_host();
    let url = format!("{base}/secrets/db-password?api-version=2025-07-01");
    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(
        challenge,
        format!("Bearer authorization=\"{base}/{TENANT}\", resource=\"{KEY_VAULT_AUDIENCE}\"")
    );
    // the client derives the scope from the challenge's resource
    let token = token_for(&s, &format!("{KEY_VAULT_AUDIENCE}/.default")).await;
    let r = s.client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = r.json_value().await.unwrap();
    assert_eq!(v["value"], "s3cr3t");
    assert_eq!(v["id"], format!("{base}/secrets/db-password/{v2}"));
    assert_eq!(v["attributes"]["enabled"], true);
    // a specific version, and the SDK's empty-version form `/secrets/name/`
    let r = s
        .client
        .get(format!(
            "{base}/secrets/db-password/{v1}?api-version=2025-07-01"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json_value().await.unwrap()["value"], "first");
    let r = s
        .client
        .get(format!(
            "{base}/secrets/db-password/?api-version=2025-07-01"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json_value().await.unwrap()["value"], "s3cr3t");
    // unknown secret, wrong audience
    let r = s
        .client
        .get(format!("{base}/secrets/nope?api-version=2025-07-01"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json_value().await.unwrap()["error"]["code"],
        "SecretNotFound"
    );
    let storage = token_for(&s, STORAGE).await;
    let r = s
        .client
        .get(&url)
        .bearer_auth(&storage)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
}
