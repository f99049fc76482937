//! Issue 20's acceptance: the path of a typical (wrong) internal how-to, replayed on the emulator.
//! Each wrong step (the federated credential and token audience `sts.amazonaws.com`, the default
//! service-account token's path, an RFC 8693 token-exchange request, relying on the
//! `eks.amazonaws.com/role-arn` annotation) gets a message that leads to the safe setup (a
//! dedicated projected token with audience `api://AzureADTokenExchange` in
//! `AZURE_FEDERATED_TOKEN_FILE`, the client-credentials request) and never offers the foreign
//! audience; then the safe setup `setup::plan` prints (its federated credential and pod
//! environment) gets a token from the emulator. The default token found with nothing configured
//! is `token_file`'s unit test (its path cannot be staged here).

use crate::common::*;
use crate::guides::deployment_wiring;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::config::{AUDIENCE_PUBLIC, Env};
use azure_identity_k8s::setup::{SetupInput, plan};
use azure_identity_k8s::{
    CredentialError, ProblemId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use entra_emulator::{Endpoint, Fault, FederatedCredential, ServiceAccountToken};
use serde::Deserialize as _;

const AWS_AUDIENCE: &str = "sts.amazonaws.com";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/billing-api";

/// The credential's error for `options`, at construction or at the first token request.
async fn error_of(options: WorkloadIdentityCredentialOptions) -> CredentialError {
    credential_error(&match WorkloadIdentityCredential::new(Some(options)) {
        Err(e) => e,
        Ok(c) => c.get_token(&[STORAGE], None).await.unwrap_err(),
    })
}

/// The error leads to the safe setup: its fix names a dedicated token with the exchange audience
/// and the variable that points at it, and no text of it offers a foreign audience.
#[track_caller]
fn assert_leads_to_safe_setup(e: &CredentialError, foreign: &[&str]) {
    let fix = e.fix().expect("a fix");
    assert!(
        fix.contains(&format!(
            "mount a dedicated projected token with audience {AUDIENCE_PUBLIC}"
        )) && fix.contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{e}"
    );
    for f in foreign {
        assert!(!offers_audience(e.message(), f), "offers {f}: {e}");
    }
}

/// Step 1: the federated credential and the projected token with the AWS audience. `setup`
/// refuses to print such a credential and names the default; the credential refuses the token,
/// whether or not `AZURE_FEDERATED_TOKEN_AUDIENCE` names the AWS audience, before sending it.
#[tokio::test]
async fn the_aws_audience_is_refused_and_the_exchange_audience_named() {
    let fx = Fixture::new().await;
    let refused = plan(&SetupInput {
        issuer: fx.issuer.url(),
        namespace: "billing".into(),
        service_account: "billing-api".into(),
        audience: AWS_AUDIENCE.into(),
        ..Default::default()
    })
    .expect_err("a foreign audience is refused")
    .to_string();
    assert!(
        refused.contains("Leave the audience out") && refused.contains(AUDIENCE_PUBLIC),
        "{refused}"
    );
    assert!(!offers_audience(&refused, AWS_AUDIENCE), "{refused}");

    fx.write_token(&ServiceAccountToken {
        audiences: vec![AWS_AUDIENCE.into()],
        ..Default::default()
    });
    for configured in [None, Some(AWS_AUDIENCE)] {
        let e = error_of(WorkloadIdentityCredentialOptions {
            expected_audience: configured.map(Into::into),
            ..fx.options()
        })
        .await;
        assert_eq!(e.problem_id(), Some(ProblemId::ForeignAudience), "{e}");
        assert!(e.message().contains("AWS STS"), "{e}");
        assert_leads_to_safe_setup(&e, &[AWS_AUDIENCE]);
    }
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

/// Step 2: `AZURE_FEDERATED_TOKEN_FILE` at the default service-account token (a credential of
/// the cluster), refused before it is read.
#[tokio::test]
async fn the_default_token_path_is_refused_with_the_dedicated_token_fix() {
    let fx = Fixture::new().await;
    let env = Env::from_pairs([
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/kubernetes.io/serviceaccount/token".to_string(),
        ),
    ]);
    let e = error_of(WorkloadIdentityCredentialOptions {
        client_id: None,
        tenant_id: None,
        token_file_path: None,
        env,
        ..fx.options()
    })
    .await;
    assert_eq!(e.problem_id(), Some(ProblemId::ForeignAudience), "{e}");
    assert!(
        e.message()
            .contains("it is the pod's default service-account token")
            && e.message().contains("the Kubernetes API server"),
        "{e}"
    );
    assert_leads_to_safe_setup(&e, &[&fx.issuer.url()]);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

/// Step 3: the how-to's RFC 8693 request gets Entra's words only (AADSTS70003, no advice); the
/// crate's entry for that answer gives the client-credentials request the credential sends.
#[tokio::test]
async fn the_token_exchange_grant_gets_entras_words_and_the_client_credentials_fix() {
    let fx = Fixture::new().await;
    let token = fx.issuer.mint(&ServiceAccountToken::default());
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("client_id", CLIENT),
            ("subject_token", token.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("scope", STORAGE),
        ])
        .finish();
    let answer = fx
        .emu
        .reqwest_client()
        .post(format!(
            "{}/{TENANT}/oauth2/v2.0/token",
            fx.emu.authority_host()
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error_codes"][0], 70003, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS70003: The app requested an unsupported grant type 'urn:ietf:params:oauth:grant-type:token-exchange'."),
        "{description}"
    );
    assert!(!description.contains("client_credentials"), "{description}");

    fx.emu.set_fault(
        Endpoint::Token,
        Some(Fault::Entra {
            status: 400,
            error: "unsupported_grant_type".into(),
            code: 70003,
            message: "The app requested an unsupported grant type 'urn:ietf:params:oauth:grant-type:token-exchange'.".into(),
        }),
    );
    let e = error_of(fx.options()).await;
    assert_eq!(e.problem_id(), Some(ProblemId::Aadsts(70003)), "{e}");
    let fix = e.fix().unwrap();
    assert!(
        fix.contains("grant_type=client_credentials")
            && fix.contains("client_assertion")
            && fix.contains("WorkloadIdentityCredential sends exactly this"),
        "{fix}"
    );
    assert!(e.documentation_url().unwrap().ends_with("#aadsts70003"));
}

/// Step 4: the `eks.amazonaws.com/role-arn` annotation makes EKS set `AWS_ROLE_ARN` and
/// `AWS_WEB_IDENTITY_TOKEN_FILE` (the IRSA token, at
/// /var/run/secrets/eks.amazonaws.com/serviceaccount/token in a pod, staged here), and nothing
/// for Azure: the credential is not configured (a chain moves on), says it found the IRSA token
/// and did not use it, why, its claims, and the safe setup.
#[tokio::test]
async fn the_role_arn_annotation_alone_configures_nothing_for_azure() {
    let fx = Fixture::new().await;
    let irsa = fx.dir.path().join("eks.amazonaws.com-serviceaccount-token");
    let sa = ServiceAccountToken {
        audiences: vec![AWS_AUDIENCE.into()],
        ..ServiceAccountToken::new("billing", "billing-api")
    };
    std::fs::write(&irsa, fx.issuer.mint(&sa)).unwrap();
    let env = Env::from_pairs([
        ("AWS_ROLE_ARN", ROLE_ARN.to_string()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", irsa.display().to_string()),
        ("AWS_STS_REGIONAL_ENDPOINTS", "regional".to_string()),
    ]);
    let e = error_of(WorkloadIdentityCredentialOptions {
        client_id: None,
        tenant_id: None,
        token_file_path: None,
        env,
        ..fx.options()
    })
    .await;
    assert!(e.is_not_configured(), "{e}");
    let text = e.message();
    assert!(
        text.contains(&format!(
            "found the IRSA token named by AWS_WEB_IDENTITY_TOKEN_FILE ({}) and did not use it, because it is a credential for AWS STS",
            irsa.display()
        )) && text.contains(&format!(
            "its issuer is {}, subject system:serviceaccount:billing:billing-api, audience {AWS_AUDIENCE}",
            fx.issuer.url()
        )) && !text.contains("no token file"),
        "{text}"
    );
    assert!(
        e.fix().unwrap().contains("set AZURE_CLIENT_ID")
            && e.fix().unwrap().contains("set AZURE_TENANT_ID"),
        "{e}"
    );
    assert_leads_to_safe_setup(&e, &[AWS_AUDIENCE]);
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

/// The safe setup as `setup` prints it works end to end: its federated credential on the
/// application, the pod's variables and projected token as its Deployment wires them (beside the
/// IRSA variables the role-arn annotation still sets), a token from the credential.
#[tokio::test]
async fn the_safe_setup_printed_by_setup_gets_a_token() {
    let fx = Fixture::new().await;
    fx.emu.remove_federated_credentials(TENANT, CLIENT);
    let out = plan(&SetupInput {
        issuer: fx.issuer.url(),
        namespace: "billing".into(),
        service_account: "billing-api".into(),
        client_id: Some(CLIENT.into()),
        tenant_id: Some(TENANT.into()),
        ..Default::default()
    })
    .unwrap();
    let fic = &out.federated_credential;
    assert_eq!(fic.audiences, [AUDIENCE_PUBLIC]);
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(&fic.issuer, &fic.subject).with_audiences(&fic.audiences),
    );

    let docs: Vec<serde_yaml_ng::Value> =
        serde_yaml_ng::Deserializer::from_str(&out.kubernetes_yaml)
            .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
            .collect();
    let (wiring, namespace, account) = deployment_wiring(&docs);
    // The kubelet's token for the pod's service account, as the projection asks for it.
    let sa = ServiceAccountToken {
        audiences: vec![wiring.audience.clone()],
        lifetime: std::time::Duration::from_secs(wiring.lifetime_s),
        ..ServiceAccountToken::new(&namespace, &account)
    };
    assert_eq!(sa.subject(), fic.subject);
    let token_file = fx.dir.path().join(&wiring.file_name);
    std::fs::write(&token_file, fx.issuer.mint(&sa)).unwrap();
    let irsa = fx.dir.path().join("irsa-token");
    std::fs::write(
        &irsa,
        fx.issuer.mint(&ServiceAccountToken {
            audiences: vec![AWS_AUDIENCE.into()],
            ..sa.clone()
        }),
    )
    .unwrap();
    let env = Env::from_pairs([
        ("AZURE_CLIENT_ID", wiring.client_id.clone()),
        ("AZURE_TENANT_ID", wiring.tenant_id.clone()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
        ("AWS_ROLE_ARN", ROLE_ARN.to_string()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", irsa.display().to_string()),
    ]);
    let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        client_id: None,
        tenant_id: None,
        token_file_path: None,
        env,
        ..fx.options()
    }))
    .unwrap();
    let token = credential.get_token(&[STORAGE], None).await.unwrap();
    assert!(!token.token.secret().is_empty());
    assert_eq!(fx.emu.request_count(Endpoint::Token), 1);
}
