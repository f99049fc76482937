//! [`plan`]: the inputs checked, the federated identity credential and the `az` commands; the
//! Kubernetes and Terraform text comes from [`super::render`].

use super::render;
use super::{FederatedCredentialSpec, SetupError, SetupInput, SetupOutput, parse_subject};
use crate::assertion::ForeignAudience;
use crate::cloud::{Cloud, default_audience_for};
use crate::config::{
    AUDIENCE_PUBLIC, AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE, AZURE_FEDERATED_TOKEN_AUDIENCE,
};
use crate::jwt::Claims;
use crate::problem::Page;
use crate::shell::shell_quote;

/// Issuer hosts that can only be resolved inside a cluster or a private network, which Entra
/// can never reach (also `doctor`'s issuer check).
pub(crate) fn private_issuer_host(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    h == "kubernetes.default.svc"
        || h == "kubernetes"
        || h.ends_with(".svc")
        || h.ends_with(".cluster.local")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || !h.contains('.') && h != "localhost" && h.parse::<std::net::IpAddr>().is_err()
}

/// A shell argument: the value when known, else a variable the user sets first.
fn shell_value(v: Option<&str>, var: &str, missing: &mut Vec<String>) -> String {
    match v {
        Some(v) => shell_quote(v),
        None => {
            missing.push(var.to_string());
            format!("\"${var}\"")
        }
    }
}

fn is_k8s_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A federated credential's name from `raw`: letters, digits, '-' and '_' (anything else
/// becomes '-'), at most 120 characters.
pub(crate) fn credential_name(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(120)
        .collect()
}

/// The federated identity credential matching a token's `issuer` and `subject`: a Kubernetes
/// service account's (named `k8s-<namespace>-<name>`) or an AWS IAM role's (`aws-<role>`);
/// `None` for another subject.
pub(crate) fn federated_credential(
    issuer: &str,
    subject: &str,
    audience: &str,
) -> Option<FederatedCredentialSpec> {
    let (name, description) = match parse_subject(subject) {
        Some((ns, sa)) => (
            format!("k8s-{ns}-{sa}"),
            format!("Kubernetes service account {ns}/{sa}"),
        ),
        None if subject.starts_with("arn:") => {
            let role = subject.rsplit('/').next().unwrap_or_default();
            (format!("aws-{role}"), format!("AWS IAM role {subject}"))
        }
        None => return None,
    };
    Some(FederatedCredentialSpec {
        name: credential_name(&name),
        issuer: issuer.to_string(),
        subject: subject.to_string(),
        audiences: vec![audience.to_string()],
        description,
    })
}

/// The `az` commands that create `fic` on a user-assigned managed identity and on an app
/// registration (with the latter's `--parameters` JSON). A value `input` leaves `None` (identity
/// name, resource group, app id) becomes a shell variable, whose name is added to `missing`.
pub(crate) fn az_commands(
    fic: &FederatedCredentialSpec,
    input: &SetupInput,
    missing: &mut Vec<String>,
) -> (String, String, serde_json::Value) {
    let audiences: Vec<String> = fic.audiences.iter().map(|a| shell_quote(a)).collect();
    let identity = format!(
        "az identity federated-credential create --name {} --identity-name {} --resource-group {} --issuer {} --subject {} --audiences {}",
        shell_quote(&fic.name),
        shell_value(input.identity_name.as_deref(), "IDENTITY_NAME", missing),
        shell_value(input.resource_group.as_deref(), "RESOURCE_GROUP", missing),
        shell_quote(&fic.issuer),
        shell_quote(&fic.subject),
        audiences.join(" "),
    );
    let parameters = serde_json::json!({
        "name": fic.name,
        "issuer": fic.issuer,
        "subject": fic.subject,
        "description": fic.description,
        "audiences": fic.audiences,
    });
    let app_id = input
        .app_object_id
        .as_deref()
        .or(input.client_id.as_deref());
    let app = format!(
        "az ad app federated-credential create --id {} --parameters {}",
        shell_value(app_id, "APP_ID", missing),
        shell_quote(&parameters.to_string()),
    );
    (identity, app, parameters)
}

/// Compute everything to create for `input`: the federated identity credential (name, issuer,
/// subject `system:serviceaccount:<namespace>:<service account>`, one audience), the `az`
/// commands, the Kubernetes YAML and the Terraform, with every value shell- or HCL-quoted. A
/// value left `None` (client id, tenant id, identity name, ...) appears as a shell variable
/// (`"$IDENTITY_NAME"`) and a note says to set it. Pure: reads nothing, sends nothing.
///
/// # Errors
///
/// [`SetupError`] naming the input and what it must be: an empty issuer, or one that is not an
/// `https://` URL or contains whitespace; a namespace or service account that is not a
/// Kubernetes name; an issuer in quotes, or whose host exists only inside a cluster or private
/// network; an audience that is foreign (AWS STS, EKS Pod Identity, the API server, the issuer
/// itself: docs/security.md) unless `allow_foreign_audience`; an audience or optional value that
/// is empty or contains whitespace; a credential name that is not 3-120 letters, digits, `-` or
/// `_`.
pub fn plan(input: &SetupInput) -> Result<SetupOutput, SetupError> {
    let (issuer, ns, sa) = (
        input.issuer.as_str(),
        input.namespace.as_str(),
        input.service_account.as_str(),
    );
    // The authority's cloud decides the default audience (the public cloud's without one).
    let authority = input.authority_host.as_deref().map(url::Url::parse);
    let default = match &authority {
        Some(Ok(url)) => default_audience_for(url),
        _ => AUDIENCE_PUBLIC,
    };
    let audience = match input.audience.as_str() {
        "" => default,
        a => a,
    };
    let parsed = url::Url::parse(issuer.trim_matches(['"', '\'']));
    let host = parsed
        .as_ref()
        .ok()
        .and_then(|u| u.host_str())
        .unwrap_or_default();
    // The one rule of docs/security.md: an audience is foreign by itself or as the issuer's own.
    let foreign = ForeignAudience::first_in_claims(&Claims {
        iss: Some(issuer.to_string()),
        aud: vec![audience.to_string()],
        ..Default::default()
    });
    let name = input
        .credential_name
        .clone()
        .unwrap_or_else(|| credential_name(&format!("k8s-{ns}-{sa}")));
    let spaced = |v: &str| v.chars().any(char::is_whitespace);
    let https = parsed
        .as_ref()
        .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some());
    let quoted = issuer.len() > 1 && issuer.trim_matches(['"', '\'']).len() + 2 == issuer.len();
    let optional = [
        ("client id", &input.client_id),
        ("tenant id", &input.tenant_id),
        ("identity name", &input.identity_name),
        ("resource group", &input.resource_group),
        ("app object id", &input.app_object_id),
    ]
    .into_iter()
    .find_map(|(what, v)| Some((what, v.as_deref().filter(|v| v.is_empty() || spaced(v))?)));
    // The first input that cannot work, in this order.
    for (refused, why) in [
        (issuer.is_empty(), "no issuer: pass --issuer (EKS: `aws eks describe-cluster --name <cluster> --query cluster.identity.oidc.issuer --output text`)".to_string()),
        (spaced(issuer), format!("the issuer {issuer:?} contains whitespace; Entra compares it exactly")),
        (quoted && https, format!("the issuer {issuer:?} is wrapped in quotes (as `aws eks describe-cluster` prints it without `--output text`); pass it without them: --issuer {}", issuer.trim_matches(['"', '\'']))),
        (!https || quoted, format!("the issuer {issuer:?} is not an https:// URL; Entra only accepts HTTPS issuers")),
        (private_issuer_host(host), format!(
            "the issuer host {host} exists only inside the cluster or a private network; Entra fetches the issuer's /.well-known/openid-configuration from the public internet and can never reach it. Give the cluster a public issuer (see {})",
            Page::SelfManaged.url("issuer")
        )),
        (!is_k8s_name(ns, 63) || ns.contains('.'), format!("the namespace {ns:?} is not a Kubernetes namespace name (lowercase letters, digits, '-')")),
        (!is_k8s_name(sa, 253), format!("the service account {sa:?} is not a Kubernetes name (lowercase letters, digits, '-', '.')")),
        (matches!(authority, Some(Err(_))), format!("the authority host {:?} is not a URL such as https://login.microsoftonline.us", input.authority_host.as_deref().unwrap_or_default())),
        (spaced(audience), format!("the audience {audience:?} contains whitespace")),
        (foreign.is_some() && !input.allow_foreign_audience, foreign.map(|f| format!(
            "refused: the audience {audience:?} makes the token a credential for {}; a federated identity credential with it would have Entra accept that credential. Leave the audience out (the default is {}) and mount a dedicated projected token for Entra; to print it anyway, with the risk, pass --allow-foreign-audience",
            f.describe(), default
        )).unwrap_or_default()),
        (optional.is_some(), optional.map(|(what, v)| format!("the {what} {v:?} is empty or contains whitespace")).unwrap_or_default()),
        (
            name.len() < 3 || credential_name(&name) != name || !name.starts_with(|c: char| c.is_ascii_alphanumeric()),
            format!("the credential name {name:?} must be 3-120 letters, digits, '-' or '_', starting with a letter or digit"),
        ),
    ] {
        if refused {
            return Err(SetupError(why));
        }
    }
    let fic = FederatedCredentialSpec {
        name,
        issuer: issuer.to_string(),
        subject: format!("system:serviceaccount:{ns}:{sa}"),
        audiences: vec![audience.to_string()],
        description: format!("Kubernetes service account {ns}/{sa}"),
    };

    let mut notes = Vec::new();
    if issuer.ends_with('/') {
        notes.push("The issuer ends with '/'; it is kept, because Entra compares issuers exactly. EKS issuers have no trailing slash: check that this is the token's iss.".to_string());
    }
    if let Some(f) = foreign {
        notes.push(format!(
            "RISK (--allow-foreign-audience): every token with the audience {audience} is also a credential for {}, and Entra now accepts it too. The application must set {AZURE_FEDERATED_TOKEN_AUDIENCE}={} and {AZURE_FEDERATED_TOKEN_ALLOW_FOREIGN_AUDIENCE}=true (or expected_audience and allow_foreign_audience).",
            f.describe(), shell_quote(audience)
        ));
    } else if audience != AUDIENCE_PUBLIC && Cloud::of_audience(audience).is_none() {
        notes.push(format!("The audience is {audience}: the projected token and the credential use it; set {AZURE_FEDERATED_TOKEN_AUDIENCE}={} in the pod.", shell_quote(audience)));
    }

    let mut missing = Vec::new();
    let (az_identity_command, az_app_command, app_parameters) =
        az_commands(&fic, input, &mut missing);
    if !missing.is_empty() {
        notes.push(format!(
            "Set {} in your shell before running the az commands (or pass --identity-name, --resource-group, --client-id).",
            missing.join(", ")
        ));
    }

    // Kubernetes.
    if input.client_id.is_none() || input.tenant_id.is_none() {
        notes.push("Replace REPLACE-WITH-CLIENT-ID / REPLACE-WITH-TENANT-ID in the YAML (or pass --client-id and --tenant-id).".into());
    }
    let (kubernetes_yaml, doctor_job_yaml) = render::kubernetes(input, audience);
    let (terraform_azuread, terraform_azurerm) = render::terraform(input, &fic);

    Ok(SetupOutput {
        federated_credential: fic,
        az_identity_command,
        az_app_command,
        app_parameters,
        kubernetes_yaml,
        doctor_job_yaml,
        terraform_azuread,
        terraform_azurerm,
        notes,
    })
}
