//! `doctor` against the emulator: for each common misconfiguration, the first failed check is the
//! right one and its fix names the exact values to use.
// `..Default::default()` covers `DoctorOptions::aws`, which exists only with feature `aws`.
#![cfg_attr(not(feature = "aws"), allow(clippy::needless_update))]

use crate::common::*;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::doctor::{self, CheckId, DoctorOptions, Report, Status};
use azure_identity_k8s::{ProblemId, WorkloadIdentityCredentialOptions};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_emulator::{Endpoint, FederatedCredential, ProjectedVolume, ServiceAccountToken};

async fn run(options: WorkloadIdentityCredentialOptions, scope: &str) -> Report {
    doctor::run(DoctorOptions {
        credential: options,
        scope: scope.to_string(),
        skip_exchange: false,
        ..Default::default()
    })
    .await
}

/// The first failure is `id`, and what it reports (summary, fix, details: for the AADSTS70021
/// family the matching credential, for a bad scope the option to rerun with) names every needle.
#[track_caller]
fn assert_fails_at(report: &Report, id: CheckId, needles: &[&str]) {
    let first = report
        .first_failure()
        .unwrap_or_else(|| panic!("no failure:\n{report}"));
    assert_eq!(
        first.id, id,
        "first failure is {} not {id}:\n{report}",
        first.id
    );
    assert!(!report.ok);
    let mut fix = first
        .fix
        .clone()
        .unwrap_or_else(|| panic!("{id} has no fix:\n{report}"));
    fix = format!("{}\n{fix}", first.summary);
    for (_, v) in &first.details {
        fix = format!("{fix}\n{v}");
    }
    for n in needles {
        assert!(fix.contains(n), "the fix of {id} lacks {n:?}:\n{report}");
    }
    // Reports are read far from the repository: they link the absolute, versioned URL.
    let text = report.to_string();
    assert!(
        !text.contains("docs/") && !text.contains(".md"),
        "a repository path in the report:\n{text}"
    );
    if let Some(problem) = first.problem_id {
        let url = first
            .url
            .as_deref()
            .expect("a check with a problem has a URL");
        assert_eq!(url, problem.documentation_url());
        assert!(
            url.starts_with("https://docs.rs/azure_identity_k8s/"),
            "{url}"
        );
        assert!(text.contains(&format!("see: {url}")), "{text}");
    }
}

fn status(report: &Report, id: CheckId) -> Status {
    report
        .check(id)
        .unwrap_or_else(|| panic!("no {id} check:\n{report}"))
        .status
}

#[tokio::test]
async fn a_healthy_setup_passes_every_check() {
    let fx = Fixture::new().await;
    // The kubelet's atomic-writer layout, as in a pod.
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
    let report = run(opts, STORAGE).await;
    assert!(report.ok, "{report}");
    for c in &report.checks {
        assert_eq!(c.status, Status::Ok, "{}:\n{report}", c.id);
    }
    let order: Vec<&str> = report.checks.iter().map(|c| c.id.name()).collect();
    assert_eq!(
        order,
        [
            "configuration",
            "token-file",
            "jwt",
            "audience",
            "expiry",
            "issuer",
            "discovery",
            "jwks",
            "signature",
            "scope",
            "exchange"
        ]
    );
    let detail = |id: CheckId, label: &str| {
        report
            .check(id)
            .unwrap()
            .details
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(
        detail(CheckId::Configuration, "client id").contains("from option"),
        "{report}"
    );
    assert!(
        detail(CheckId::Configuration, "authority").contains("env AZURE_AUTHORITY_HOST"),
        "{report}"
    );
    assert!(
        detail(CheckId::TokenFile, "layout").contains("..data"),
        "{report}"
    );
    assert_eq!(detail(CheckId::Jwt, "namespace"), "default");
    assert_eq!(detail(CheckId::Jwt, "service account"), "workload");
    assert_eq!(detail(CheckId::Jwt, "pod"), "workload-7d4b9c");
    assert_eq!(detail(CheckId::Exchange, "token appid"), CLIENT);
    assert_eq!(
        detail(CheckId::Exchange, "token aud"),
        "https://storage.azure.com"
    );
    let m = report.matching_federated_credential.as_ref().unwrap();
    assert_eq!(m.issuer, fx.issuer.url());
    assert_eq!(m.subject, "system:serviceaccount:default:workload");
    assert_eq!(m.audience, "api://AzureADTokenExchange");
    // The text form never shows the token.
    let text = report.to_string();
    assert!(
        !text.contains(&vol.current_token()) && !report.to_json().contains(&vol.current_token())
    );
    assert!(text.contains("doctor: OK"), "{text}");
}

#[tokio::test]
async fn json_output_parses_and_carries_the_same_checks() {
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken::new("prod", "workload"));
    let report = run(fx.options(), STORAGE).await;
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["scope"], STORAGE);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), report.checks.len());
    let exchange = checks.iter().find(|c| c["id"] == "exchange").unwrap();
    assert_eq!(exchange["status"], "fail");
    assert_eq!(exchange["aadsts"], serde_json::json!([70021]));
    assert_eq!(exchange["problem_id"], "aadsts70021");
    assert!(exchange.get("docs").is_none(), "no repository path");
    assert_eq!(
        exchange["url"],
        ProblemId::Aadsts(70021).documentation_url().as_str()
    );
    assert_eq!(
        checks.iter().find(|c| c["id"] == "jwt").unwrap()["details"]["namespace"],
        "prod"
    );
    assert_eq!(
        v["matching_federated_credential"]["subject"],
        "system:serviceaccount:prod:workload"
    );
}

#[tokio::test]
async fn issuer_typo_in_the_federated_credential() {
    let fx = Fixture::new().await;
    fx.emu.remove_federated_credentials(TENANT, CLIENT);
    let typo = fx.issuer.url().to_lowercase();
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(typo, ServiceAccountToken::default().subject()),
    );
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &[
            &fx.issuer.url(),
            "system:serviceaccount:default:workload",
            "api://AzureADTokenExchange",
            "no trailing slash",
            "az identity federated-credential create",
        ],
    );
    assert_eq!(report.first_failure().unwrap().aadsts, vec![70021]);
    // Everything local was fine.
    assert_eq!(report.count(Status::Fail), 1, "{report}");
}

#[tokio::test]
async fn trailing_slash_on_the_federated_credential() {
    let fx = Fixture::new().await;
    fx.emu.remove_federated_credentials(TENANT, CLIENT);
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(
            format!("{}/", fx.issuer.url()),
            ServiceAccountToken::default().subject(),
        ),
    );
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &[
            &format!("issuer:   {}\n", fx.issuer.url()),
            "no trailing slash",
        ],
    );
}

#[tokio::test]
async fn trailing_slash_on_the_cluster_issuer() {
    let fx = Fixture::new().await;
    let issuer = fx.emu.add_issuer("/clusters/blue/");
    assert!(issuer.url().ends_with('/'));
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(
            issuer.url().trim_end_matches('/'),
            ServiceAccountToken::default().subject(),
        ),
    );
    std::fs::write(&fx.token_path, issuer.mint(&ServiceAccountToken::default())).unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_eq!(status(&report, CheckId::Issuer), Status::Warn, "{report}");
    assert!(
        report
            .check(CheckId::Issuer)
            .unwrap()
            .fix
            .as_deref()
            .unwrap()
            .contains("must end with '/' too")
    );
    assert_eq!(status(&report, CheckId::Discovery), Status::Ok, "{report}");
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &[&issuer.url(), "ends with '/'"],
    );
}

#[tokio::test]
async fn wrong_namespace_and_wrong_service_account() {
    let fx = Fixture::new().await;
    for (sa, subject) in [
        (
            ServiceAccountToken::new("prod", "workload"),
            "system:serviceaccount:prod:workload",
        ),
        (
            ServiceAccountToken::new("default", "api"),
            "system:serviceaccount:default:api",
        ),
    ] {
        fx.write_token(&sa);
        let report = run(fx.options(), STORAGE).await;
        assert_fails_at(
            &report,
            CheckId::Exchange,
            &[
                &format!("subject:  {subject}\n"),
                &format!("--subject {subject}"),
            ],
        );
        // The summary is the credential's first line: the key fact with its values.
        let summary = &report.check(CheckId::Exchange).unwrap().summary;
        assert!(
            summary.starts_with(
                "Entra ID rejected the token request: no federated identity credential on application"
            ) && summary.contains(&format!("subject {subject},"))
                && summary.ends_with("(AADSTS70021)"),
            "{report}"
        );
        assert_eq!(
            report
                .matching_federated_credential
                .as_ref()
                .unwrap()
                .subject,
            subject
        );
    }
}

#[tokio::test]
async fn wrong_audience_fails_locally_and_never_reaches_entra() {
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken {
        audiences: vec!["api://other".into()],
        ..Default::default()
    });
    // The default expected audience: the credential sends the token (as azure_identity does), so
    // doctor warns and lets Entra decide (here: no federated credential with api://other).
    let report = run(fx.options(), STORAGE).await;
    assert_eq!(status(&report, CheckId::Audience), Status::Warn, "{report}");
    // The token is sent with its own audience, so the credential to create carries that one.
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &["audience: api://other\n", "--audiences api://other"],
    );
    let fic = report.matching_federated_credential.clone().unwrap();
    assert_eq!(fic.audience, "api://other", "{report}");
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
    // Created as suggested, the federated credential matches.
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential {
            name: "custom-audience".into(),
            issuer: fic.issuer,
            subject: fic.subject,
            audiences: vec![fic.audience],
            valid_after: std::time::Duration::ZERO,
        },
    );
    let report = run(fx.options(), STORAGE).await;
    assert_eq!(status(&report, CheckId::Exchange), Status::Ok, "{report}");
    let sent = fx.emu.request_count(Endpoint::Token);
    assert_eq!(sent, 2);
    // The expected audience set: refused locally, as the credential refuses it.
    let mut opts = fx.options();
    opts.expected_audience = Some("api://AzureADTokenExchange".into());
    let report = run(opts, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Audience,
        &[
            "serviceAccountToken.audience to api://AzureADTokenExchange",
            "AZURE_FEDERATED_TOKEN_AUDIENCE=api://other",
        ],
    );
    assert_eq!(status(&report, CheckId::Exchange), Status::Skip);
    assert_eq!(fx.emu.request_count(Endpoint::Token), sent);

    fx.write_token(&ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Audience,
        &[
            "dedicated projected token",
            "audience: api://AzureADTokenExchange",
        ],
    );
    assert!(
        report.first_failure().unwrap().summary.contains("IRSA"),
        "{report}"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Token), sent);
}

#[tokio::test]
async fn expired_and_unrotated_tokens() {
    let fx = Fixture::new().await;
    let now = time::OffsetDateTime::now_utc();
    fx.write_token(&ServiceAccountToken {
        issued_at: Some(now - time::Duration::hours(3)),
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Expiry,
        &["rotate the file", "projected serviceAccountToken volume"],
    );
    assert_eq!(status(&report, CheckId::Exchange), Status::Skip);

    // 55 minutes into a 60-minute token: still valid, but the kubelet should have replaced it at 48.
    fx.write_token(&ServiceAccountToken {
        issued_at: Some(now - time::Duration::minutes(55)),
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    assert!(report.ok, "{report}");
    assert_eq!(status(&report, CheckId::Expiry), Status::Warn, "{report}");
    assert!(
        report
            .check(CheckId::Expiry)
            .unwrap()
            .fix
            .as_deref()
            .unwrap()
            .contains("rotate the file")
    );
    assert_eq!(status(&report, CheckId::Exchange), Status::Ok, "{report}");
}

/// AADSTS70023 caught locally: a projected token living longer than Entra's 86400 s.
#[tokio::test]
async fn a_token_living_longer_than_a_day_is_caught_before_entra() {
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken {
        lifetime: std::time::Duration::from_secs(86_401),
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Expiry,
        &["86401 s", "86400", "expirationSeconds", "AADSTS70023"],
    );
    assert_eq!(
        report.first_failure().unwrap().problem_id,
        Some(ProblemId::Aadsts(70023))
    );
    // The credential sends it (only Entra refuses it): the exchange runs.
    assert_ne!(status(&report, CheckId::Exchange), Status::Skip, "{report}");

    // Exactly a day is accepted.
    fx.write_token(&ServiceAccountToken {
        lifetime: std::time::Duration::from_secs(86_400),
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    assert_eq!(status(&report, CheckId::Expiry), Status::Ok, "{report}");
}

/// AADSTS5002738 caught locally: an ES256-signed token (Entra verifies only RS256/384/512).
#[tokio::test]
async fn an_ecdsa_signed_token_is_caught_before_entra() {
    let fx = Fixture::new().await;
    let token = fx.write_token(&ServiceAccountToken::default());
    let (_, rest) = token.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"ES256","kid":"{}"}}"#,
        fx.issuer.signing_kid()
    ));
    std::fs::write(&fx.token_path, format!("{header}.{rest}")).unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Jwt,
        &[
            "ES256",
            "RS256, RS384 or RS512",
            "AADSTS5002738",
            "--service-account-signing-key-file",
        ],
    );
    // The issuer side is still examined; the signature cannot be checked as Entra would.
    assert_eq!(status(&report, CheckId::Discovery), Status::Ok, "{report}");
    assert_eq!(status(&report, CheckId::Jwks), Status::Ok, "{report}");
    assert_eq!(
        status(&report, CheckId::Signature),
        Status::Skip,
        "{report}"
    );
}

#[tokio::test]
async fn issuer_discovery_unreachable() {
    let fx = Fixture::new().await;
    fx.issuer.set_discovery_available(false);
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Discovery,
        &["public internet", &self_managed_url("publish")],
    );
    assert!(
        report.first_failure().unwrap().summary.contains("HTTP 404"),
        "{report}"
    );
    assert_eq!(status(&report, CheckId::Jwks), Status::Skip);
    // Entra's view agrees: AADSTS90061.
    assert_eq!(
        report.check(CheckId::Exchange).unwrap().aadsts,
        vec![90061],
        "{report}"
    );
}

/// The absolute, versioned URL of a section of docs/self-managed.md on docs.rs (which has it).
fn self_managed_url(anchor: &str) -> String {
    assert!(
        include_str!("../../docs/self-managed.md").contains(&format!("<a id=\"{anchor}\"></a>")),
        "docs/self-managed.md has no anchor {anchor:?}"
    );
    format!(
        "https://docs.rs/azure_identity_k8s/{0}/azure_identity_k8s/guides/self_managed/index.html#{anchor}",
        env!("CARGO_PKG_VERSION")
    )
}

#[tokio::test]
async fn an_http_issuer_links_the_self_managed_issuer_step() {
    let fx = Fixture::new().await;
    let iss = format!("http://127.0.0.1:{}", closed_local_port());
    let token = fx
        .issuer
        .sign_claims(&ServiceAccountToken::default().claims(&iss));
    std::fs::write(&fx.token_path, format!("{token}\n")).unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Issuer,
        &[
            "only over HTTPS",
            "--service-account-issuer",
            &self_managed_url("issuer"),
        ],
    );
    assert_eq!(status(&report, CheckId::Discovery), Status::Skip);
}

#[tokio::test]
async fn issuer_discovery_at_a_closed_port_names_connection_refused() {
    let fx = Fixture::new().await;
    // A token whose issuer is a port nothing listens on.
    let port = closed_local_port();
    let iss = format!("https://127.0.0.1:{port}");
    let token = fx
        .issuer
        .sign_claims(&ServiceAccountToken::default().claims(&iss));
    std::fs::write(&fx.token_path, format!("{token}\n")).unwrap();
    let report = run(fx.options(), STORAGE).await;
    let check = report.check(CheckId::Discovery).expect("a discovery check");
    assert_eq!(check.status, Status::Fail, "{report}");
    assert_eq!(
        check.summary,
        format!("GET {iss}/.well-known/openid-configuration: connection refused ({iss})"),
        "{report}"
    );
    let fix = check.fix.as_deref().expect("a fix");
    for needle in [
        format!("Nothing accepts connections on 127.0.0.1:{port}"),
        format!("now {iss}"),
        format!("`curl -sv {iss}/.well-known/openid-configuration`"),
        "HTTPS_PROXY".to_string(),
    ] {
        assert!(fix.contains(&needle), "the fix lacks {needle:?}:\n{report}");
    }
    assert_eq!(
        check.problem_id,
        Some(azure_identity_k8s::ProblemId::TransportConnectionRefused)
    );
    assert!(
        check
            .url
            .as_deref()
            .is_some_and(|u| u.ends_with("#transport-connection-refused")),
        "{report}"
    );
    assert_eq!(status(&report, CheckId::Jwks), Status::Skip);
}

#[tokio::test]
async fn jwks_without_the_signing_key() {
    let fx = Fixture::new().await;
    let old = fx.issuer.signing_kid();
    fx.issuer.add_key();
    fx.issuer.retire_key(&old);
    // The token on disk was signed with the retired key.
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Jwks,
        &["kubectl get --raw /openid/v1/jwks", "rotation"],
    );
    assert!(
        report.first_failure().unwrap().summary.contains(&old),
        "{report}"
    );
    assert_eq!(status(&report, CheckId::Signature), Status::Skip);
    assert_eq!(
        report.check(CheckId::Exchange).unwrap().aadsts,
        vec![7000272],
        "{report}"
    );
}

#[tokio::test]
async fn a_tampered_token_fails_signature_verification() {
    let fx = Fixture::new().await;
    let token = fx.write_token(&ServiceAccountToken::default());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["kubernetes.io"]["pod"]["name"] = "someone-else".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    std::fs::write(&fx.token_path, forged).unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(&report, CheckId::Signature, &["JWKS is stale"]);
    assert_eq!(
        report.check(CheckId::Exchange).unwrap().aadsts,
        vec![700027],
        "{report}"
    );
}

#[tokio::test]
async fn unknown_tenant_and_unknown_client_id() {
    let fx = Fixture::new().await;
    let mut opts = fx.options();
    opts.tenant_id = Some("00000000-0000-0000-0000-000000000000".into());
    let report = run(opts, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &[
            "00000000-0000-0000-0000-000000000000",
            "az account show --query tenantId",
            "AZURE_AUTHORITY_HOST",
        ],
    );
    assert_eq!(report.first_failure().unwrap().aadsts, vec![90002]);
    // Entra's own words come from the error's fields (entra_description, trace id), not its text.
    let details = &report.first_failure().unwrap().details;
    let entra = details.iter().find(|(k, _)| k == "entra").map(|(_, v)| v);
    assert!(
        entra.is_some_and(|v| v.starts_with("AADSTS90002")),
        "{report}"
    );

    let mut opts = fx.options();
    opts.client_id = Some("11111111-1111-1111-1111-111111111111".into());
    let report = run(opts, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &[
            "the client id is 11111111-1111-1111-1111-111111111111",
            "not the object id",
        ],
    );
    assert_eq!(report.first_failure().unwrap().aadsts, vec![700016]);
}

/// A client id or tenant id that resolves but is not a GUID: the configuration check warns with
/// the catalogue's entry for a malformed value (invalid-configuration, its URL), the one the
/// credential gives when it refuses a value, in the report and in its JSON.
#[tokio::test]
async fn a_client_id_or_tenant_id_that_is_not_a_guid_warns_with_the_invalid_configuration_entry() {
    use azure_core::credentials::TokenCredential as _;
    let fx = Fixture::new().await;
    // The credential's refusal of a malformed value: the entry and URL doctor must give.
    let mut malformed = fx.options();
    malformed.tenant_id = Some("contoso/tenant".into());
    let refused = azure_identity_k8s::WorkloadIdentityCredential::new(Some(malformed))
        .expect_err("a tenant id with '/' is refused");
    let refused = refused
        .downcast_ref::<azure_identity_k8s::CredentialError>()
        .expect("a CredentialError");
    assert_eq!(refused.problem_id(), Some(ProblemId::InvalidConfiguration));
    let url = refused.documentation_url().expect("a URL").to_string();
    assert!(url.ends_with("#invalid-configuration"), "{url}");

    for (client, tenant, needles) in [
        (
            "my-app",
            TENANT,
            &["The client id \"my-app\"", "is not a GUID", "appId"][..],
        ),
        (
            CLIENT,
            "contoso",
            &[
                "The tenant id \"contoso\"",
                "neither a GUID nor a domain name",
            ][..],
        ),
    ] {
        let opts = || {
            let mut o = fx.options();
            o.client_id = Some(client.into());
            o.tenant_id = Some(tenant.into());
            o
        };
        // The credential takes these values (Entra decides), so doctor only warns.
        let credential = azure_identity_k8s::WorkloadIdentityCredential::new(Some(opts()))
            .expect("the credential accepts the value");
        assert!(credential.get_token(&[STORAGE], None).await.is_err());
        let report = run(opts(), STORAGE).await;
        let check = report
            .check(CheckId::Configuration)
            .expect("a configuration check");
        assert_eq!(check.status, Status::Warn, "{report}");
        assert_eq!(
            check.problem_id,
            Some(ProblemId::InvalidConfiguration),
            "{report}"
        );
        assert_eq!(check.url.as_deref(), Some(url.as_str()), "{report}");
        let fix = check
            .fix
            .as_deref()
            .unwrap_or_else(|| panic!("no fix:\n{report}"));
        for n in needles {
            assert!(fix.contains(n), "the fix lacks {n:?}: {fix}");
        }
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        let json = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "configuration")
            .unwrap();
        assert_eq!(json["status"], "warn");
        assert_eq!(json["problem_id"], "invalid-configuration");
        assert_eq!(json["url"], url.as_str());
    }
}

/// The credential's audience rules: with the default expected audience a token for another cloud
/// is sent (as azure_identity sends it) and doctor warns with the cloud fix; once the expected
/// audience is set, it is refused before anything is sent.
#[tokio::test]
async fn wrong_cloud_is_named_and_refused_locally_when_the_audience_is_set() {
    let fx = Fixture::new().await;
    let cloud_fix = [
        "AZURE_AUTHORITY_HOST=https://login.microsoftonline.com",
        "api://AzureADTokenExchangeUSGov",
    ];
    let mut opts = fx.options();
    opts.env = Env::from_pairs([("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]);
    let report = run(opts, STORAGE).await;
    let audience = report.check(CheckId::Audience).unwrap();
    assert_eq!(audience.status, Status::Warn, "{report}");
    for n in cloud_fix {
        assert!(audience.fix.as_deref().unwrap().contains(n), "{report}");
    }
    assert_ne!(status(&report, CheckId::Exchange), Status::Skip, "{report}");

    let mut opts = fx.options();
    opts.env = Env::from_pairs([("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]);
    opts.expected_audience = Some("api://AzureADTokenExchangeUSGov".into());
    let requests = fx.emu.request_count(Endpoint::Token);
    let report = run(opts, STORAGE).await;
    assert_fails_at(&report, CheckId::Audience, &cloud_fix);
    assert_eq!(status(&report, CheckId::Exchange), Status::Skip);
    assert_eq!(fx.emu.request_count(Endpoint::Token), requests);
}

#[tokio::test]
async fn unreachable_authority() {
    let fx = Fixture::new().await;
    // A port nothing listens on.
    let port = closed_local_port();
    let mut opts = fx.options();
    opts.env = Env::from_pairs([("AZURE_AUTHORITY_HOST", format!("https://127.0.0.1:{port}"))]);
    let report = run(opts, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Exchange,
        &[
            &format!("Nothing accepts connections on 127.0.0.1:{port}"),
            &format!("now https://127.0.0.1:{port}"),
            "egress",
        ],
    );
    // The credential's own classified cause: the same problem as its error.
    assert_eq!(
        report.first_failure().unwrap().problem_id,
        Some(ProblemId::TransportConnectionRefused)
    );
}

#[tokio::test]
async fn bad_scope() {
    let fx = Fixture::new().await;
    let report = run(fx.options(), "https://storage.azure.com").await;
    assert_fails_at(
        &report,
        CheckId::Scope,
        &["--scope https://storage.azure.com/.default"],
    );
    assert_eq!(status(&report, CheckId::Exchange), Status::Skip);
    let report = run(fx.options(), "User.Read openid").await;
    assert_fails_at(&report, CheckId::Scope, &["<resource>/.default"]);
    // A delegated permission: the resource's .default, as the credential's own error says.
    for permission in [
        "https://graph.microsoft.com/User.Read",
        "User.Read",
        "https://graph.microsoft.com/Mail.Send",
    ] {
        let report = run(fx.options(), permission).await;
        assert_fails_at(
            &report,
            CheckId::Scope,
            &["--scope https://graph.microsoft.com/.default"],
        );
        let check = report.check(CheckId::Scope).unwrap();
        assert_eq!(
            check.fix.as_deref(),
            Some("request https://graph.microsoft.com/.default."),
            "{report}"
        );
    }
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn nothing_configured_still_examines_what_it_can() {
    let fx = Fixture::new().await;
    let opts = WorkloadIdentityCredentialOptions {
        env: Env::from_pairs([(
            "AZURE_FEDERATED_TOKEN_FILE",
            fx.token_path.display().to_string(),
        )]),
        well_known_token_paths: Vec::new(),
        credential_options: fx.options().credential_options,
        ..Default::default()
    };
    let report = run(opts, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Configuration,
        &["AZURE_CLIENT_ID", "azure.workload.identity/use"],
    );
    assert_eq!(status(&report, CheckId::TokenFile), Status::Ok, "{report}");
    assert_eq!(status(&report, CheckId::Signature), Status::Ok, "{report}");
    assert_eq!(status(&report, CheckId::Exchange), Status::Skip, "{report}");
}

/// A configuration that does not resolve shows the same lines as one that does (defaults
/// included, values unquoted), and the fix names each missing value with how to set it.
#[tokio::test]
async fn a_failing_configuration_shows_every_value_and_names_each_missing_one() {
    let fx = Fixture::new().await;
    let details = |report: &Report| -> std::collections::HashMap<String, String> {
        report
            .check(CheckId::Configuration)
            .unwrap()
            .details
            .iter()
            .cloned()
            .collect()
    };
    let opts = |env: Env| WorkloadIdentityCredentialOptions {
        env,
        well_known_token_paths: Vec::new(),
        credential_options: fx.options().credential_options,
        ..Default::default()
    };

    // Nothing at all.
    let report = run(opts(Env::from_pairs::<&str, &str>([])), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Configuration,
        &[
            "set AZURE_CLIENT_ID (or the option client_id)",
            "--query clientId -o tsv",
            "set AZURE_TENANT_ID (or the option tenant_id)",
            "az account show --query tenantId -o tsv",
            "set AZURE_FEDERATED_TOKEN_FILE (or the option token_file_path)",
            "azure.workload.identity/use",
        ],
    );
    let d = details(&report);
    assert_eq!(
        d["client id"], "not set (option or env AZURE_CLIENT_ID)",
        "{report}"
    );
    assert!(d["token file"].starts_with("not set"), "{report}");
    assert_eq!(
        d["authority"], "https://login.microsoftonline.com (from default)",
        "{report}"
    );
    assert_eq!(
        d["expected audience"], "api://AzureADTokenExchange (from default)",
        "{report}"
    );

    // Client and tenant ids only: the token file is the one missing value, and named alone.
    let report = run(
        opts(Env::from_pairs([
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us"),
        ])),
        STORAGE,
    )
    .await;
    assert_fails_at(
        &report,
        CheckId::Configuration,
        &[
            "no token file.",
            "set AZURE_FEDERATED_TOKEN_FILE (or the option token_file_path) to the file of the pod's projected serviceAccountToken volume",
        ],
    );
    let fix = report
        .check(CheckId::Configuration)
        .unwrap()
        .fix
        .clone()
        .unwrap();
    assert!(!fix.contains("AZURE_CLIENT_ID"), "{fix}");
    let d = details(&report);
    assert_eq!(
        d["client id"],
        format!("{CLIENT} (from env AZURE_CLIENT_ID)")
    );
    assert_eq!(
        d["tenant id"],
        format!("{TENANT} (from env AZURE_TENANT_ID)")
    );
    assert_eq!(
        d["token file"],
        "not set (option or env AZURE_FEDERATED_TOKEN_FILE, or a webhook path)"
    );
    assert_eq!(
        d["authority"],
        "https://login.microsoftonline.us (from env AZURE_AUTHORITY_HOST)"
    );
    assert_eq!(
        d["expected audience"],
        "api://AzureADTokenExchangeUSGov (from default)"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn missing_and_garbage_token_files() {
    let fx = Fixture::new().await;
    std::fs::remove_file(&fx.token_path).unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::TokenFile,
        &[
            "projected serviceAccountToken volume",
            "AZURE_FEDERATED_TOKEN_FILE",
        ],
    );
    std::fs::write(&fx.token_path, "secret-garbage\n").unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(&report, CheckId::Jwt, &["serviceAccountToken projection"]);
    let summary = &report.check(CheckId::Jwt).unwrap().summary;
    assert!(
        summary
            .starts_with("the token file does not hold a service-account token: it is not a JWT:"),
        "{report}"
    );
    assert_eq!(summary.matches("JWT").count(), 1, "{report}");
    assert!(!report.to_json().contains("secret-garbage"));
}

/// doctor reads the token file with the credential's own rules: a device is not a regular file,
/// a file that is too large is refused unread, and another credential's file is refused.
#[cfg(unix)]
#[tokio::test]
async fn the_token_file_is_read_with_the_credentials_rules() {
    let fx = Fixture::new().await;
    let mut opts = fx.options();
    opts.token_file_path = Some("/dev/zero".into());
    let report = run(opts, STORAGE).await;
    assert_fails_at(&report, CheckId::TokenFile, &[]);
    let check = report.check(CheckId::TokenFile).unwrap();
    assert!(
        check
            .summary
            .starts_with("/dev/zero is a character device, not a regular file"),
        "{report}"
    );
    assert_eq!(check.summary.matches("/dev/zero").count(), 1, "{report}");
    assert_eq!(check.problem_id, Some(ProblemId::TokenFileNotARegularFile));

    // A symlink loop: the fix is a command that shows where the (shell-quoted) path leads.
    let looping = fx.dir.path().join("loop token");
    std::os::unix::fs::symlink(fx.dir.path().join("loop back"), &looping).unwrap();
    std::os::unix::fs::symlink(&looping, fx.dir.path().join("loop back")).unwrap();
    let mut opts = fx.options();
    opts.token_file_path = Some(looping.clone());
    let report = run(opts, STORAGE).await;
    let quoted = format!("'{}'", looping.display());
    assert_fails_at(
        &report,
        CheckId::TokenFile,
        &[&format!("`ls -l {quoted}; readlink -f {quoted}`")],
    );

    std::fs::write(&fx.token_path, vec![b'a'; 70 * 1024]).unwrap();
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(&report, CheckId::TokenFile, &[]);

    fx.write_token(&ServiceAccountToken::default());
    let mut opts = fx.options();
    opts.env = Env::from_pairs([
        ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            fx.token_path.display().to_string(),
        ),
    ]);
    let report = run(opts, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::TokenFile,
        &["dedicated projected token", "AZURE_FEDERATED_TOKEN_FILE"],
    );
    assert!(
        report
            .check(CheckId::TokenFile)
            .unwrap()
            .summary
            .contains("refused"),
        "{report}"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn skip_exchange_sends_nothing() {
    let fx = Fixture::new().await;
    let report = doctor::run(DoctorOptions {
        credential: fx.options(),
        scope: STORAGE.into(),
        skip_exchange: true,
        ..Default::default()
    })
    .await;
    assert!(report.ok, "{report}");
    assert_eq!(status(&report, CheckId::Exchange), Status::Skip);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

/// Issue 20: no text the crate prints offers a foreign audience as a value to configure. Every
/// error, doctor report (text and JSON) and setup output for the foreign cases (the AWS audience,
/// the issuer-URL audience of a self-managed default token, the default token path), each with
/// and without that audience configured as the expected one.
#[tokio::test]
async fn no_text_offers_a_foreign_audience() {
    use azure_core::credentials::TokenCredential as _;
    use azure_identity_k8s::setup::{SetupInput, plan};
    let fx = Fixture::new().await;
    let iss = fx.issuer.url();
    let foreign = ["sts.amazonaws.com".to_string(), iss.clone()];
    let offers = crate::common::offers_audience;
    let mut texts: Vec<(String, String)> = Vec::new();
    for aud in &foreign {
        fx.write_token(&ServiceAccountToken {
            audiences: vec![aud.clone()],
            ..Default::default()
        });
        let configured = |o: &mut WorkloadIdentityCredentialOptions| {
            o.expected_audience = Some(aud.clone());
        };
        for expected in [false, true] {
            let mut o = fx.options();
            if expected {
                configured(&mut o);
            }
            let e = match azure_identity_k8s::WorkloadIdentityCredential::new(Some(o)) {
                Ok(c) => c.get_token(&[STORAGE], None).await.unwrap_err(),
                Err(e) => e,
            };
            texts.push((format!("error {aud} {expected}"), e.to_string()));
            let mut o = fx.options();
            if expected {
                configured(&mut o);
            }
            let report = run(o, STORAGE).await;
            let m = report.matching_federated_credential.clone();
            assert!(m.is_none_or(|m| m.audience != *aud), "{report}");
            texts.push((format!("doctor {aud} {expected}"), report.to_string()));
            texts.push((format!("doctor json {aud} {expected}"), report.to_json()));
        }
        // setup: the audience given, and read from the token.
        let input = SetupInput {
            issuer: iss.clone(),
            namespace: "billing".into(),
            service_account: "billing-api".into(),
            audience: aud.clone(),
            ..Default::default()
        };
        let refused = plan(&input).expect_err("setup refuses a foreign audience");
        assert!(
            refused.to_string().contains("--allow-foreign-audience"),
            "{refused}"
        );
        texts.push((format!("setup {aud}"), refused.to_string()));
        let from_token = SetupInput::from_token_file(&fx.token_path).unwrap();
        let out = plan(&from_token).unwrap();
        texts.push((format!("setup from token {aud}"), out.to_string()));
        texts.push((
            format!("setup json {aud}"),
            serde_json::to_string(&out).unwrap(),
        ));
    }
    // The default service-account token's path.
    let mut o = fx.options();
    o.token_file_path = Some("/var/run/secrets/kubernetes.io/serviceaccount/token".into());
    let report = run(o, STORAGE).await;
    texts.push(("doctor default path".into(), report.to_string()));
    for (what, text) in &texts {
        for f in &foreign {
            assert!(!offers(text, f), "{what} offers {f}:\n{text}");
        }
    }
    // With the opt-in, setup prints it with the risk and the application settings.
    let out = plan(&SetupInput {
        issuer: iss.clone(),
        namespace: "billing".into(),
        service_account: "billing-api".into(),
        audience: "sts.amazonaws.com".into(),
        allow_foreign_audience: true,
        ..Default::default()
    })
    .unwrap();
    let risk = out
        .notes
        .iter()
        .find(|n| n.starts_with("RISK"))
        .expect("the risk");
    assert!(
        risk.contains("AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE=true"),
        "{risk}"
    );
    assert!(
        out.kubernetes_yaml
            .contains("AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE")
    );
}

/// Issue 20: the opt-in is reachable from the environment and honoured by the credential and
/// doctor alike; with only the opt-in, the fix names the second setting.
#[tokio::test]
async fn the_foreign_audience_opt_in_comes_from_the_environment() {
    use azure_core::credentials::TokenCredential as _;
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken {
        audiences: vec![
            "api://AzureADTokenExchange".into(),
            "sts.amazonaws.com".into(),
        ],
        ..Default::default()
    });
    let env = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("AZURE_AUTHORITY_HOST".to_string(), fx.emu.authority_host())];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_pairs(pairs)
    };
    let allow = ("AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE", "true");
    let aud = (
        "AZURE_FEDERATED_TOKEN_AUDIENCE",
        "api://AzureADTokenExchange",
    );
    let mut o = fx.options();
    o.env = env(&[allow, aud]);
    let credential = azure_identity_k8s::WorkloadIdentityCredential::new(Some(o)).unwrap();
    credential
        .get_token(&[STORAGE], None)
        .await
        .expect("sent with the opt-in");
    let mut o = fx.options();
    o.env = env(&[allow, aud]);
    let report = run(o, STORAGE).await;
    assert!(report.ok, "{report}");
    assert_eq!(status(&report, CheckId::Audience), Status::Warn, "{report}");
    // Only the opt-in, and a token without the expected audience: refused, and the fix says what
    // else to set (by name, not by a foreign value).
    fx.write_token(&ServiceAccountToken {
        audiences: vec!["sts.amazonaws.com".into()],
        ..Default::default()
    });
    let mut o = fx.options();
    o.env = env(&[allow]);
    let report = run(o, STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Audience,
        &[
            "AZURE_FEDERATED_TOKEN_AUDIENCE (or expected_audience)",
            "allow_foreign_audience",
        ],
    );
}

/// Issue 20, wording: an expired token inside the clock skew is not "valid for another -6s"; a
/// file written after its token expired is not blamed on the kubelet; a refused default token
/// shows whose token it is.
#[tokio::test]
async fn expiry_and_refusal_wording() {
    let fx = Fixture::new().await;
    let now = time::OffsetDateTime::now_utc();
    fx.write_token(&ServiceAccountToken {
        issued_at: Some(now - time::Duration::minutes(62)),
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    let expiry = report.check(CheckId::Expiry).unwrap();
    assert!(expiry.summary.starts_with("expired 2m"), "{report}");
    assert!(!expiry.summary.contains("-"), "{report}");

    fx.write_token(&ServiceAccountToken {
        issued_at: Some(now - time::Duration::hours(2)),
        ..Default::default()
    });
    let report = run(fx.options(), STORAGE).await;
    assert_fails_at(
        &report,
        CheckId::Expiry,
        &["written after the token had expired"],
    );
    assert!(
        !report
            .to_string()
            .contains("The kubelet is not rotating it"),
        "{report}"
    );

    fx.write_token(&ServiceAccountToken::default());
    let mut o = fx.options();
    o.env = Env::from_pairs([
        ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            fx.token_path.display().to_string(),
        ),
    ]);
    let report = run(o, STORAGE).await;
    let check = report.check(CheckId::TokenFile).unwrap();
    let detail = |k: &str| {
        check
            .details
            .iter()
            .find(|(l, _)| l == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(detail("its iss"), Some(fx.issuer.url()), "{report}");
    assert_eq!(
        detail("its aud").as_deref(),
        Some("api://AzureADTokenExchange"),
        "{report}"
    );
}

/// Issue 20: a program logs a doctor report itself on its first failure, once per process.
#[tokio::test]
async fn a_program_logs_one_doctor_report_on_its_first_failure() {
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken::new("prod", "workload"));
    let logs = LogCapture::default();
    let options = || DoctorOptions {
        credential: fx.options(),
        scope: STORAGE.into(),
        ..Default::default()
    };
    let (first, second) = {
        let _guard = logs.install();
        (
            doctor::log_report_once(options()).await,
            doctor::log_report_once(options()).await,
        )
    };
    assert!(first && !second);
    let text = logs.text();
    assert!(
        text.contains("doctor: Entra ID rejected the token request"),
        "{text}"
    );
    assert!(text.contains("problem_id=aadsts70021"), "{text}");
    assert_eq!(text.matches("doctor report").count(), 1, "{text}");
}
