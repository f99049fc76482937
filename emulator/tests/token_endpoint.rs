//! The token endpoint: success, every AADSTS code, Entra's validation order.

mod common;
use common::*;
use entra_emulator::{
    AccessTokenOptions, Endpoint, FederatedCredential, JWT_BEARER, ServiceAccountToken,
};
use std::time::Duration;

#[tokio::test]
async fn issues_access_token() {
    let s = setup().await;
    let a = request_token(&s, &s.issuer.mint(&s.sa)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 3599);
    assert_eq!(a.body["ext_expires_in"], 3599);
    assert!(a.body.get("refresh_in").is_none());
    let token = a.body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["aud"], "https://storage.azure.com");
    assert_eq!(c["iss"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["appid"], CLIENT);
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["ver"], "1.0");
    assert!(c["oid"].is_string() && c["sub"] == c["oid"]);
    let h = header(token);
    assert_eq!(h["alg"], "RS256");
    let kid = h["kid"].as_str().unwrap();
    let jwks = s.emu.entra_signing_jwks();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    );
    // the same oid for the same client every time
    let again = request_token(&s, &s.issuer.mint(&s.sa)).await;
    assert_eq!(
        claims(again.body["access_token"].as_str().unwrap())["oid"],
        c["oid"]
    );
    // Entra fetched discovery then JWKS
    assert_eq!(s.emu.request_count(Endpoint::Token), 2);
    assert_eq!(s.emu.request_count(Endpoint::Discovery), 2);
    assert_eq!(s.emu.request_count(Endpoint::Jwks), 2);
    let r = s.emu.requests();
    let tok: Vec<_> = r.iter().filter(|r| r.endpoint == Endpoint::Token).collect();
    assert_eq!(tok[0].status, 200);
    assert_eq!(tok[0].client_id.as_deref(), Some(CLIENT));
    assert_eq!(tok[0].scope.as_deref(), Some(STORAGE));
    assert_eq!(tok[0].form["grant_type"], "client_credentials");
    assert_eq!(s.emu.token_request_count_for_client(CLIENT), 2);
    assert_eq!(s.emu.token_request_count_for_scope(STORAGE), 2);
    s.emu.reset_counters();
    assert_eq!(s.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn access_token_options() {
    let s = setup().await;
    s.emu.set_access_token_options(AccessTokenOptions {
        lifetime: Duration::from_secs(7200),
        refresh_in: Some(Duration::from_secs(3600)),
        numbers_as_strings: true,
        ..Default::default()
    });
    let a = request_token(&s, &s.issuer.mint(&s.sa)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["expires_in"], "7200");
    assert_eq!(a.body["ext_expires_in"], "7200");
    assert_eq!(a.body["refresh_in"], "3600");
    let c = claims(a.body["access_token"].as_str().unwrap());
    let exp = c["exp"].as_i64().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((exp - now - 7200).abs() < 60);
}

#[tokio::test]
async fn unknown_tenant_is_90002() {
    let s = setup().await;
    let a = post_form(
        &s,
        "00000000-0000-0000-0000-000000000001",
        &[("client_id", CLIENT)],
    )
    .await;
    a.assert_entra_error(400, "invalid_request", 90002);
    assert!(
        a.description()
            .contains("Tenant '00000000-0000-0000-0000-000000000001' not found")
    );
}

#[tokio::test]
async fn unknown_client_is_700016() {
    let s = setup().await;
    let other = "11111111-2222-3333-4444-555555555555";
    let a = post_form(
        &s,
        TENANT,
        &[("client_id", other), ("grant_type", "client_credentials")],
    )
    .await;
    a.assert_entra_error(400, "unauthorized_client", 700016);
    assert!(a.description().contains(&format!(
        "Application with identifier '{other}' was not found in the directory '{TENANT}'"
    )));
    // tenant and client ids compare case-insensitively (GUIDs)
    let token = s.issuer.mint(&s.sa);
    let upper_client = CLIENT.to_uppercase();
    let upper_tenant = TENANT.to_uppercase();
    let a = post_form(
        &s,
        &upper_tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &upper_client),
            ("scope", STORAGE),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &token),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn grant_type_errors() {
    let s = setup().await;
    let token = s.issuer.mint(&s.sa);
    let a = post_form(
        &s,
        TENANT,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("client_id", CLIENT),
            ("subject_token", &token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("scope", STORAGE),
        ],
    )
    .await;
    a.assert_entra_error(400, "unsupported_grant_type", 70003);
    // Exactly Entra's first line, no advice Entra does not give.
    assert_eq!(
        a.description().lines().next().unwrap(),
        "AADSTS70003: The app requested an unsupported grant type 'urn:ietf:params:oauth:grant-type:token-exchange'.",
        "{}",
        a.description()
    );
    let a = post_form(&s, TENANT, &[("client_id", CLIENT)]).await;
    a.assert_entra_error(400, "invalid_request", 900144);
    assert!(a.description().contains("'grant_type'"));
}

#[tokio::test]
async fn client_authentication_errors() {
    let s = setup().await;
    let token = s.issuer.mint(&s.sa);
    let base = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("scope", STORAGE),
    ];
    let a = post_form(&s, TENANT, &base).await;
    a.assert_entra_error(401, "invalid_client", 7000216);
    let mut with_secret = base.to_vec();
    with_secret.push(("client_secret", "hunter2"));
    post_form(&s, TENANT, &with_secret)
        .await
        .assert_entra_error(401, "invalid_client", 7000215);
    let mut no_type = base.to_vec();
    no_type.push(("client_assertion", &token));
    let a = post_form(&s, TENANT, &no_type).await;
    a.assert_entra_error(400, "invalid_request", 900144);
    assert!(a.description().contains("'client_assertion_type'"));
    let mut wrong_type = no_type.clone();
    wrong_type.push((
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    ));
    let a = post_form(&s, TENANT, &wrong_type).await;
    a.assert_entra_error(401, "invalid_client", 70002);
    assert!(a.description().contains(JWT_BEARER));
}

async fn with_scope(s: &Setup, scope: &str) -> Answer {
    let token = s.issuer.mint(&s.sa);
    post_form(
        s,
        TENANT,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &token),
        ],
    )
    .await
}

#[tokio::test]
async fn scope_errors() {
    let s = setup().await;
    let a = with_scope(&s, "https://storage.azure.com/user_impersonation").await;
    a.assert_entra_error(400, "invalid_scope", 1002012);
    assert!(
        a.description()
            .contains("https://storage.azure.com/user_impersonation")
    );
    assert!(a.description().contains("/.default"));
    let a = with_scope(&s, "https://storage.azure.com").await;
    a.assert_entra_error(400, "invalid_scope", 1002012);
    let a = with_scope(
        &s,
        "https://storage.azure.com/.default https://graph.microsoft.com/.default",
    )
    .await;
    a.assert_entra_error(400, "invalid_scope", 70011);
    let a = with_scope(&s, "https://graph.microsoft.com/.default").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        claims(a.body["access_token"].as_str().unwrap())["aud"],
        "https://graph.microsoft.com"
    );
}

#[tokio::test]
async fn malformed_assertion_is_50027() {
    let s = setup().await;
    for bad in [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
    ] {
        let a = request_token(&s, bad).await;
        a.assert_entra_error(401, "invalid_client", 50027);
    }
    // Entra did not go to the issuer for these
    assert_eq!(s.emu.request_count(Endpoint::Discovery), 0);
}

#[tokio::test]
async fn fic_mismatch_is_70021_and_echoes_claims() {
    let s = setup().await;
    // wrong subject
    let other = ServiceAccountToken::new("prod", "api");
    let a = request_token(&s, &s.issuer.mint(&other)).await;
    a.assert_entra_error(400, "invalid_client", 70021);
    let d = a.description();
    assert!(d.contains("No matching federated identity record found for presented assertion."));
    assert!(
        d.contains(&format!("Assertion Issuer: '{}'", s.issuer.url())),
        "{d}"
    );
    assert!(
        d.contains("Assertion Subject: 'system:serviceaccount:prod:api'"),
        "{d}"
    );
    assert!(
        d.contains("Assertion Audience: 'api://AzureADTokenExchange'"),
        "{d}"
    );
    // wrong audience
    let sts = ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..s.sa.clone()
    };
    let a = request_token(&s, &s.issuer.mint(&sts)).await;
    a.assert_entra_error(400, "invalid_client", 70021);
    assert!(
        a.description()
            .contains("Assertion Audience: 'sts.amazonaws.com'")
    );
    // the FIC is case-sensitive and a trailing slash matters
    s.emu.remove_federated_credentials(TENANT, CLIENT);
    s.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(format!("{}/", s.issuer.url()), s.sa.subject()),
    );
    request_token(&s, &s.issuer.mint(&s.sa))
        .await
        .assert_entra_error(400, "invalid_client", 70021);
    s.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(s.issuer.url(), s.sa.subject().to_uppercase()),
    );
    request_token(&s, &s.issuer.mint(&s.sa))
        .await
        .assert_entra_error(400, "invalid_client", 70021);
    // any aud of the token array matching the FIC audience is enough
    s.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(s.issuer.url(), s.sa.subject()),
    );
    let multi = ServiceAccountToken {
        audiences: vec![
            "sts.amazonaws.com".into(),
            "api://AzureADTokenExchange".into(),
        ],
        ..s.sa.clone()
    };
    assert_eq!(request_token(&s, &s.issuer.mint(&multi)).await.status, 200);
    // a FIC with another audience
    s.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(s.issuer.url(), "system:serviceaccount:irsa:app")
            .with_audiences(["sts.amazonaws.com"]),
    );
    let irsa = ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..ServiceAccountToken::new("irsa", "app")
    };
    assert_eq!(request_token(&s, &s.issuer.mint(&irsa)).await.status, 200);
}

#[tokio::test]
async fn discovery_unavailable_is_90061() {
    let s = setup().await;
    s.issuer.set_discovery_available(false);
    let a = request_token(&s, &s.issuer.mint(&s.sa)).await;
    a.assert_entra_error(400, "invalid_client", 90061);
    assert!(
        a.description()
            .contains("Request to External OIDC endpoint failed.")
    );
    s.issuer.set_discovery_available(true);
    assert_eq!(request_token(&s, &s.issuer.mint(&s.sa)).await.status, 200);
    // a JWKS fault alone is enough
    s.emu
        .push_fault(Endpoint::Jwks, entra_emulator::Fault::Status(503));
    request_token(&s, &s.issuer.mint(&s.sa))
        .await
        .assert_entra_error(400, "invalid_client", 90061);
}

#[tokio::test]
async fn unreachable_issuer_is_90061() {
    let s = setup().await;
    // an issuer on a port nobody listens on
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let iss = format!("https://127.0.0.1:{dead}/id/DEAD");
    s.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(&iss, s.sa.subject()),
    );
    // an http:// issuer is never fetched
    let http_iss = s.emu.authority_host().replace("https://", "http://") + "/id/PLAIN";
    s.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(&http_iss, s.sa.subject()),
    );
    let fake = fake_token(&http_iss, &s.sa.subject());
    request_token(&s, &fake)
        .await
        .assert_entra_error(400, "invalid_client", 90061);
    let fake = fake_token(&iss, &s.sa.subject());
    request_token(&s, &fake)
        .await
        .assert_entra_error(400, "invalid_client", 90061);
}

/// An unsigned-looking JWT with the given iss/sub (signature garbage).
fn fake_token(iss: &str, sub: &str) -> String {
    use base64::Engine as _;
    let e = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    format!(
        "{}.{}.c2ln",
        e(serde_json::json!({"alg": "RS256", "kid": "x"})),
        e(
            serde_json::json!({"iss": iss, "sub": sub, "aud": ["api://AzureADTokenExchange"], "exp": now + 600, "iat": now, "nbf": now})
        )
    )
}

#[tokio::test]
async fn key_rotation_and_retired_key_is_7000272() {
    let s = setup().await;
    let first = s.issuer.signing_kid();
    let old_token = s.issuer.mint(&s.sa);
    let second = s.issuer.add_key();
    assert_ne!(first, second);
    assert_eq!(
        s.issuer.published_kids(),
        vec![first.clone(), second.clone()]
    );
    let new_token = s.issuer.mint(&s.sa);
    assert_eq!(header(&new_token)["kid"], second.as_str());
    assert!(header(&new_token).get("typ").is_none());
    // both verify while both are published
    assert_eq!(request_token(&s, &old_token).await.status, 200);
    assert_eq!(request_token(&s, &new_token).await.status, 200);
    s.issuer.retire_key(&first);
    let a = request_token(&s, &old_token).await;
    a.assert_entra_error(401, "invalid_client", 7000272);
    assert!(a.description().contains(&format!("kid: '{first}'")));
    assert_eq!(request_token(&s, &new_token).await.status, 200);
}

#[tokio::test]
async fn forged_signature_is_700027() {
    let s = setup().await;
    let token = s.issuer.mint(&s.sa);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // a token from another issuer's key, presented under this issuer's kid
    let other = s.emu.add_issuer("/s3/other-bucket");
    let foreign = other.mint(&s.sa);
    parts[2] = foreign.split('.').nth(2).unwrap().to_owned();
    request_token(&s, &parts.join("."))
        .await
        .assert_entra_error(401, "invalid_client", 700027);
    // alg other than RS256
    use base64::Engine as _;
    let kid = s.issuer.signing_kid();
    parts[0] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::json!({"alg": "HS256", "kid": kid}).to_string());
    request_token(&s, &parts.join("."))
        .await
        .assert_entra_error(401, "invalid_client", 700027);
}

#[tokio::test]
async fn expired_or_future_assertion_is_700024() {
    let s = setup().await;
    let now = time::OffsetDateTime::now_utc();
    let expired = ServiceAccountToken {
        issued_at: Some(now - time::Duration::hours(2)),
        ..s.sa.clone()
    };
    let a = request_token(&s, &s.issuer.mint(&expired)).await;
    a.assert_entra_error(400, "invalid_client", 700024);
    assert!(
        a.description()
            .contains("Client assertion is not within its valid time range.")
    );
    assert!(a.description().contains("Current time: "));
    assert!(a.description().contains("expiry time of assertion "));
    let future = ServiceAccountToken {
        issued_at: Some(now + time::Duration::minutes(30)),
        ..s.sa.clone()
    };
    request_token(&s, &s.issuer.mint(&future))
        .await
        .assert_entra_error(400, "invalid_client", 700024);
    // within the 5-minute skew: accepted
    let slightly = ServiceAccountToken {
        issued_at: Some(now - time::Duration::seconds(3600 + 120)),
        ..s.sa.clone()
    };
    assert_eq!(
        request_token(&s, &s.issuer.mint(&slightly)).await.status,
        200
    );
}

#[tokio::test]
async fn correlation_id_is_echoed_and_get_is_rejected() {
    let s = setup().await;
    let resp = s
        .client
        .post(format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            s.emu.authority_host()
        ))
        .header("client-request-id", "abc-123")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=nobody")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json_value().await.unwrap();
    assert_eq!(v["correlation_id"], "abc-123");
    let resp = s
        .client
        .get(format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            s.emu.authority_host()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn entra_discovery() {
    let s = setup().await;
    let host = s.emu.authority_host();
    let doc: serde_json::Value = s
        .client
        .get(format!(
            "{host}/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap()
        .json_value()
        .await
        .unwrap();
    assert_eq!(
        doc["token_endpoint"],
        format!("{host}/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(doc["issuer"], format!("{host}/{TENANT}/v2.0"));
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, format!("{host}/{TENANT}/discovery/v2.0/keys"));
    let keys: serde_json::Value = s
        .client
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json_value()
        .await
        .unwrap();
    assert_eq!(keys, s.emu.entra_signing_jwks());
    let r = s
        .client
        .get(format!("{host}/nope/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.emu.request_count(Endpoint::EntraDiscovery), 3);
}

#[tokio::test]
async fn issuer_documents() {
    let s = setup().await;
    let url = s.issuer.url();
    assert!(url.starts_with(&format!("{}/id/", s.emu.authority_host())));
    let id = url.rsplit('/').next().unwrap();
    assert_eq!(id.len(), 32);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    let doc: serde_json::Value = s
        .client
        .get(s.issuer.discovery_url())
        .send()
        .await
        .unwrap()
        .json_value()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], url);
    assert_eq!(doc["jwks_uri"], format!("{url}/keys"));
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
    let jwks: serde_json::Value = s
        .client
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json_value()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], s.issuer.signing_kid());
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    // self-managed shape
    let s3 = s.emu.add_issuer("/s3/my-bucket");
    assert_eq!(s3.url(), format!("{}/s3/my-bucket", s.emu.authority_host()));
    let doc: serde_json::Value = s
        .client
        .get(s3.discovery_url())
        .send()
        .await
        .unwrap()
        .json_value()
        .await
        .unwrap();
    assert_eq!(doc["jwks_uri"], format!("{}/openid/v1/jwks", s3.url()));
    // unavailable
    s3.set_discovery_available(false);
    let r = s.client.get(s3.discovery_url()).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // the minted claims
    let sa = ServiceAccountToken::new("ns1", "sa1");
    let c = claims(&s3.mint(&sa));
    assert_eq!(c["iss"], s3.url());
    assert_eq!(c["sub"], "system:serviceaccount:ns1:sa1");
    assert_eq!(c["aud"], serde_json::json!(["api://AzureADTokenExchange"]));
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(c["nbf"], c["iat"]);
    assert_eq!(c["jti"].as_str().unwrap().len(), 36);
    let k = &c["kubernetes.io"];
    assert_eq!(k["namespace"], "ns1");
    assert_eq!(k["serviceaccount"]["name"], "sa1");
    assert_eq!(k["pod"]["name"], "workload-7d4b9c");
    assert_eq!(k["node"]["name"], "ip-10-0-1-23.ec2.internal");
    for p in ["serviceaccount", "pod", "node"] {
        assert_eq!(k[p]["uid"].as_str().unwrap().len(), 36);
    }
    assert!(k["warnafter"].is_i64());
}

/// A federated credential not propagated yet: AADSTS700213 until its `valid_after` has passed on
/// this emulator's clock (moved by `advance_clock`, not by sleeping; other emulators keep theirs).
#[tokio::test]
async fn a_fic_valid_after_a_delay_is_700213_until_then() {
    let s = setup().await;
    let other = setup().await;
    for emu in [&s.emu, &other.emu] {
        emu.add_federated_credential(
            TENANT,
            CLIENT,
            FederatedCredential::new(s.issuer.url(), s.sa.subject())
                .with_valid_after(Duration::from_secs(10)),
        );
    }
    let a = request_token(&s, &s.issuer.mint(&s.sa)).await;
    a.assert_entra_error(400, "invalid_client", 700213);
    assert!(
        a.description()
            .contains("presented assertion subject 'system:serviceaccount:default:workload'"),
        "{}",
        a.description()
    );
    s.emu.advance_clock(Duration::from_secs(9));
    request_token(&s, &s.issuer.mint(&s.sa))
        .await
        .assert_entra_error(400, "invalid_client", 700213);
    s.emu.advance_clock(Duration::from_secs(2));
    assert_eq!(request_token(&s, &s.issuer.mint(&s.sa)).await.status, 200);
    let a = request_token(&other, &s.issuer.mint(&s.sa)).await;
    a.assert_entra_error(400, "invalid_client", 700213);
}
