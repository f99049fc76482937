//! [`plan`]: the inputs checked, the federated identity credential and the `az` commands; the
//! Kubernetes and Terraform text comes from [`super::render`].

use super::render;
use super::{FederatedCredentialSpec, SetupError, SetupInput, SetupOutput, parse_subject};
use crate::config::AUDIENCE_PUBLIC;
use crate::shell::shell_quote;

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
/// Kubernetes name; an audience or optional value that is empty or contains whitespace; a
/// credential name that is not 3-120 letters, digits, `-` or `_`.
pub fn plan(input: &SetupInput) -> Result<SetupOutput, SetupError> {
    let (issuer, ns, sa) = (
        input.issuer.as_str(),
        input.namespace.as_str(),
        input.service_account.as_str(),
    );
    let audience = match input.audience.as_str() {
        "" => AUDIENCE_PUBLIC,
        a => a,
    };
    let name = input
        .credential_name
        .clone()
        .unwrap_or_else(|| credential_name(&format!("k8s-{ns}-{sa}")));
    let spaced = |v: &str| v.chars().any(char::is_whitespace);
    let https =
        url::Url::parse(issuer).is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some());
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
        (!https, format!("the issuer {issuer:?} is not an https:// URL; Entra only accepts HTTPS issuers")),
        (!is_k8s_name(ns, 63) || ns.contains('.'), format!("the namespace {ns:?} is not a Kubernetes namespace name (lowercase letters, digits, '-')")),
        (!is_k8s_name(sa, 253), format!("the service account {sa:?} is not a Kubernetes name (lowercase letters, digits, '-', '.')")),
        (spaced(audience), format!("the audience {audience:?} contains whitespace")),
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
    if audience != AUDIENCE_PUBLIC {
        notes.push(format!("The audience is {audience}: the projected token and the credential use it; outside Azure Government and Azure China set AZURE_FEDERATED_TOKEN_AUDIENCE={} in the pod.", shell_quote(audience)));
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
    let kubernetes_yaml = render::kubernetes_yaml(input, audience);
    let terraform_azuread = render::terraform_azuread(input, &fic);
    let terraform_azurerm = render::terraform_azurerm(input, &fic);

    Ok(SetupOutput {
        federated_credential: fic,
        az_identity_command,
        az_app_command,
        app_parameters,
        kubernetes_yaml,
        terraform_azuread,
        terraform_azurerm,
        notes,
    })
}
