//! `setup::plan`: the values in every artefact, valid YAML and JSON, HCL-shaped Terraform.

use azure_identity_k8s::setup::{SetupInput, plan};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const CLIENT: &str = "3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn full() -> SetupInput {
    SetupInput {
        issuer: ISSUER.into(),
        namespace: "payments".into(),
        service_account: "billing-api".into(),
        client_id: Some(CLIENT.into()),
        tenant_id: Some(TENANT.into()),
        identity_name: Some("billing".into()),
        resource_group: Some("rg-prod".into()),
        ..Default::default()
    }
}

fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect()
}

/// Terraform as HCL: top-level `data`/`resource` blocks with `key = value` attributes, balanced
/// braces, string values double-quoted or references.
#[track_caller]
fn assert_hcl_shaped(text: &str) {
    let mut depth = 0;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if line == "}" {
            depth -= 1;
            assert!(depth >= 0, "unbalanced: {text}");
            continue;
        }
        if depth == 0 {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert!(
                matches!(parts[0], "data" | "resource") && parts.len() == 4 && parts[3] == "{",
                "not a block header: {line}"
            );
            assert!(
                parts[1].starts_with('"') && parts[2].starts_with('"'),
                "{line}"
            );
            depth += 1;
            continue;
        }
        let (key, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not an attribute: {line}"));
        assert!(
            key.trim()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'),
            "{line}"
        );
        let value = value.trim();
        let ok = (value.starts_with('"')
            && value.ends_with('"')
            && serde_json::from_str::<String>(value).is_ok())
            || (value.starts_with('[') && serde_json::from_str::<Vec<String>>(value).is_ok())
            || value.starts_with("data.");
        assert!(ok, "bad value: {line}");
    }
    assert_eq!(depth, 0, "unbalanced: {text}");
}

#[test]
fn every_artefact_carries_the_same_values() {
    let out = plan(&full()).unwrap();
    let subject = "system:serviceaccount:payments:billing-api";
    assert_eq!(out.federated_credential.issuer, ISSUER);
    assert_eq!(out.federated_credential.subject, subject);
    assert_eq!(
        out.federated_credential.audiences,
        ["api://AzureADTokenExchange"]
    );
    assert_eq!(out.federated_credential.name, "k8s-payments-billing-api");
    assert_eq!(
        out.az_identity_command,
        format!(
            "az identity federated-credential create --name k8s-payments-billing-api --identity-name billing --resource-group rg-prod --issuer {ISSUER} --subject {subject} --audiences api://AzureADTokenExchange"
        )
    );
    // The --parameters JSON, as the shell will pass it.
    let json = out
        .az_app_command
        .split_once("--parameters '")
        .unwrap()
        .1
        .strip_suffix('\'')
        .unwrap();
    let params: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(params, out.app_parameters);
    assert_eq!(params["issuer"], ISSUER);
    assert_eq!(params["subject"], subject);
    assert_eq!(
        params["audiences"],
        serde_json::json!(["api://AzureADTokenExchange"])
    );
    assert!(out.az_app_command.starts_with(&format!(
        "az ad app federated-credential create --id {CLIENT} "
    )));
    assert!(out.notes.is_empty(), "{:?}", out.notes);

    let docs = yaml_docs(&out.kubernetes_yaml);
    assert_eq!(docs[0]["metadata"]["name"], "billing-api");
    assert_eq!(
        docs[0]["metadata"]["annotations"]["azure.workload.identity/tenant-id"],
        TENANT
    );
    assert_eq!(docs[1]["kind"], "Deployment");
    assert_eq!(docs[1]["metadata"]["namespace"], "payments");

    assert_hcl_shaped(&out.terraform_azuread);
    assert_hcl_shaped(&out.terraform_azurerm);
    for tf in [&out.terraform_azuread, &out.terraform_azurerm] {
        assert!(tf.contains(&format!("\"{ISSUER}\"")), "{tf}");
        assert!(tf.contains(&format!("\"{subject}\"")), "{tf}");
        assert!(tf.contains("[\"api://AzureADTokenExchange\"]"), "{tf}");
    }
    assert!(out.terraform_azuread.contains("resource \"azuread_application_federated_identity_credential\" \"k8s_payments_billing_api\""));
    assert!(
        out.terraform_azuread
            .contains(&format!("client_id = \"{CLIENT}\""))
    );
    assert!(out.terraform_azurerm.contains(
        "resource \"azurerm_federated_identity_credential\" \"k8s_payments_billing_api\""
    ));
    assert!(
        out.terraform_azurerm
            .contains("name                = \"billing\"")
    );
    assert!(
        out.terraform_azurerm
            .contains("resource_group_name = \"rg-prod\"")
    );

    // The text form holds every piece.
    let text = out.to_string();
    for piece in [
        &out.az_identity_command,
        &out.az_app_command,
        &out.terraform_azurerm,
    ] {
        assert!(text.contains(piece.as_str()));
    }
}

#[test]
fn app_object_id_and_sovereign_audience() {
    let out = plan(&SetupInput {
        app_object_id: Some("0f0e0d0c-0000-0000-0000-000000000001".into()),
        audience: "api://AzureADTokenExchangeUSGov".into(),
        ..full()
    })
    .unwrap();
    assert!(
        out.terraform_azuread
            .contains("application_id = \"/applications/0f0e0d0c-0000-0000-0000-000000000001\""),
        "{}",
        out.terraform_azuread
    );
    assert!(
        !out.terraform_azuread
            .contains("data \"azuread_application\"")
    );
    assert_hcl_shaped(&out.terraform_azuread);
    assert!(
        out.az_app_command
            .contains("--id 0f0e0d0c-0000-0000-0000-000000000001")
    );
    let docs = yaml_docs(&out.kubernetes_yaml);
    let pod = &docs[1]["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "api://AzureADTokenExchangeUSGov"
    );
    let env = pod["containers"][0]["env"].as_array().unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "AZURE_AUTHORITY_HOST"
            && e["value"] == "https://login.microsoftonline.us"),
        "{env:?}"
    );
}

#[test]
fn a_trailing_slash_is_kept_and_noted() {
    let out = plan(&SetupInput {
        issuer: format!("{ISSUER}/"),
        ..full()
    })
    .unwrap();
    assert_eq!(out.federated_credential.issuer, format!("{ISSUER}/"));
    assert!(
        out.notes.iter().any(|n| n.contains("ends with '/'")),
        "{:?}",
        out.notes
    );
}

#[test]
fn from_the_live_token() {
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "system:serviceaccount:prod:api", "aud": ["sts.amazonaws.com"],
        "exp": 1, "iat": 0, "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "api"}}
    });
    let jwt = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{jwt}\n")).unwrap();
    let input = SetupInput::from_token_file(&path).unwrap();
    assert_eq!(
        (
            input.issuer.as_str(),
            input.namespace.as_str(),
            input.service_account.as_str()
        ),
        (ISSUER, "prod", "api")
    );
    // An IRSA token's audience is not carried over: the plan recommends a dedicated one.
    let out = plan(&input).unwrap();
    assert_eq!(
        out.federated_credential.audiences,
        ["api://AzureADTokenExchange"]
    );
    assert!(out.notes.iter().any(|n| n.contains("IDENTITY_NAME")));

    std::fs::write(&path, "garbage").unwrap();
    assert!(
        SetupInput::from_token_file(&path)
            .unwrap_err()
            .to_string()
            .contains("does not hold a service-account token: it is not a JWT")
    );
}

/// Issue 20, setup gaps: a cluster-internal issuer is refused, a quoted one is recognised with
/// the fix, AZURE_AUTHORITY_HOST picks the cloud's audience and is set in the pod, the azurerm
/// Terraform names its provider versions, and the doctor Job runs as the workload.
#[test]
fn setup_refuses_internal_and_quoted_issuers_and_honours_the_authority() {
    for internal in [
        "https://kubernetes.default.svc",
        "https://kubernetes.default.svc.cluster.local",
    ] {
        let e = plan(&SetupInput {
            issuer: internal.into(),
            ..full()
        })
        .unwrap_err();
        assert!(e.to_string().contains("inside the cluster"), "{e}");
    }
    let e = plan(&SetupInput {
        issuer: format!("\"{ISSUER}\""),
        ..full()
    })
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("without them: --issuer {ISSUER}")),
        "{e}"
    );
    for (authority, audience) in [
        (
            "https://login.microsoftonline.us",
            "api://AzureADTokenExchangeUSGov",
        ),
        (
            "https://login.partner.microsoftonline.cn",
            "api://AzureADTokenExchangeChina",
        ),
    ] {
        let out = plan(&SetupInput {
            authority_host: Some(authority.into()),
            ..full()
        })
        .unwrap();
        assert_eq!(out.federated_credential.audiences, [audience]);
        let docs = yaml_docs(&out.kubernetes_yaml);
        let env = &docs[1]["spec"]["template"]["spec"]["containers"][0]["env"];
        let authority_env = env
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "AZURE_AUTHORITY_HOST");
        assert_eq!(authority_env.unwrap()["value"], authority);
        assert!(
            !out.kubernetes_yaml
                .contains("AZURE_FEDERATED_TOKEN_AUDIENCE")
        );
    }
    let out = plan(&full()).unwrap();
    assert!(
        out.terraform_azurerm
            .contains("azurerm provider 3.x or 4.x")
    );
    let job = yaml_docs(&out.doctor_job_yaml);
    assert_eq!(job.len(), 1);
    assert_eq!(job[0]["kind"], "Job");
    assert_eq!(job[0]["metadata"]["namespace"], "payments");
    let pod = &job[0]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "billing-api");
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["containers"][0]["args"], serde_json::json!(["doctor"]));
    assert_eq!(pod["containers"][0]["env"][0]["value"], CLIENT);
    assert_eq!(
        pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"],
        "api://AzureADTokenExchange"
    );
    assert!(out.to_string().contains("kind: Job"));
}
