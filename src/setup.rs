//! What to create so that a service account can sign in to Entra ID: the logic of
//! `azure-identity-k8s setup`.
//!
//! [`plan`] turns an issuer, a namespace and a service account (read from the live token with
//! [`SetupInput::from_token_file`], or given) into everything to create, as values and as text:
//!
//! - the federated identity credential (issuer, subject, audience) and the commands that create it
//!   on a user-assigned managed identity (`az identity federated-credential create`) or an app
//!   registration (`az ad app federated-credential create --parameters <json>`);
//! - a Kubernetes ServiceAccount and a Deployment with the projected token volume (audience
//!   `api://AzureADTokenExchange`, `expirationSeconds: 3600`) and the environment variables;
//! - Terraform: `azuread_application_federated_identity_credential` and
//!   `azurerm_federated_identity_credential`.
//!
//! ```
//! use azure_identity_k8s::setup::{plan, SetupInput};
//! let out = plan(&SetupInput {
//!     issuer: "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE".into(),
//!     namespace: "prod".into(),
//!     service_account: "api".into(),
//!     client_id: Some("3b4f4f9e-0c3a-4d6e-9f55-6f2b1c0e2a11".into()),
//!     ..Default::default()
//! })
//! .unwrap();
//! assert_eq!(out.federated_credential.subject, "system:serviceaccount:prod:api");
//! print!("{out}");
//! ```

use crate::config::{AUDIENCE_CHINA, AUDIENCE_PUBLIC, AUDIENCE_US_GOV, WEBHOOK_TOKEN_PATH_PRE_1_6};
use crate::jwt::{self, Claims};
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// Where the generated Deployment mounts the token (the webhook's long-standing path, which the
/// credential also finds on its own).
const MOUNT_DIR: &str = "/var/run/secrets/azure/tokens";
const TOKEN_FILE_NAME: &str = "azure-identity-token";

/// What the federated credential and the pod are for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupInput {
    /// The cluster's OIDC issuer, exactly as in the tokens' `iss` (EKS: no trailing slash).
    pub issuer: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's service account.
    pub service_account: String,
    /// The audience of the token and the credential. Empty means `api://AzureADTokenExchange`.
    pub audience: String,
    /// Client id of the app registration or user-assigned managed identity.
    pub client_id: Option<String>,
    /// Tenant id.
    pub tenant_id: Option<String>,
    /// Name of the user-assigned managed identity (for `az identity` and azurerm).
    pub identity_name: Option<String>,
    /// Resource group of the managed identity.
    pub resource_group: Option<String>,
    /// Object id of the app registration (azuread; else the client id is used).
    pub app_object_id: Option<String>,
    /// Name of the federated credential. Default `k8s-<namespace>-<service account>`.
    pub credential_name: Option<String>,
}

/// A setup problem (an input that cannot work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(String);

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

impl SetupInput {
    /// Issuer, namespace and service account from a service-account token's claims; the audience
    /// is the token's when it is an Entra exchange audience, else `api://AzureADTokenExchange`.
    pub fn from_claims(claims: &Claims) -> Result<Self, SetupError> {
        let issuer = claims
            .iss
            .clone()
            .ok_or_else(|| SetupError("the token has no iss claim".into()))?;
        let sub = claims
            .sub
            .clone()
            .ok_or_else(|| SetupError("the token has no sub claim".into()))?;
        let (namespace, service_account) = parse_subject(&sub).ok_or_else(|| {
            SetupError(format!("the token's sub {sub:?} is not system:serviceaccount:<namespace>:<name>; is it a Kubernetes service-account token?"))
        })?;
        let audience = claims
            .aud
            .iter()
            .find(|a| [AUDIENCE_PUBLIC, AUDIENCE_US_GOV, AUDIENCE_CHINA].contains(&a.as_str()))
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            issuer,
            namespace,
            service_account,
            audience,
            ..Default::default()
        })
    }

    /// As [`from_claims`](Self::from_claims), reading the token file (the live token in a pod).
    pub fn from_token_file(path: &Path) -> Result<Self, SetupError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SetupError(format!(
                "cannot read the token file {}: {e}",
                path.display()
            ))
        })?;
        let decoded = jwt::decode(text.trim()).map_err(|e| {
            SetupError(format!(
                "the token file {} does not hold a JWT: {e}",
                path.display()
            ))
        })?;
        Self::from_claims(&decoded.claims)
    }
}

/// `system:serviceaccount:<namespace>:<name>` → (namespace, name).
pub fn parse_subject(sub: &str) -> Option<(String, String)> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, sa) = rest.split_once(':')?;
    (!ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .then(|| (ns.to_string(), sa.to_string()))
}

/// The federated identity credential to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FederatedCredentialSpec {
    /// Its name (3-120 characters: letters, digits, '-', '_').
    pub name: String,
    /// Issuer: the token's `iss`, exactly.
    pub issuer: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// Audiences (one value).
    pub audiences: Vec<String>,
    /// A description.
    pub description: String,
}

/// Everything to create.
#[derive(Debug, Clone, Serialize)]
pub struct SetupOutput {
    /// The federated credential.
    pub federated_credential: FederatedCredentialSpec,
    /// `az identity federated-credential create ...` (user-assigned managed identity).
    pub az_identity_command: String,
    /// `az ad app federated-credential create --id ... --parameters '<json>'` (app registration).
    pub az_app_command: String,
    /// The `--parameters` JSON of `az ad app federated-credential create`.
    pub app_parameters: serde_json::Value,
    /// ServiceAccount + Deployment (two YAML documents).
    pub kubernetes_yaml: String,
    /// `azuread_application_federated_identity_credential` (app registration).
    pub terraform_azuread: String,
    /// `azurerm_federated_identity_credential` (user-assigned managed identity).
    pub terraform_azurerm: String,
    /// Remarks about the input (trailing slash, non-default audience, placeholders to fill in).
    pub notes: Vec<String>,
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
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

/// A double-quoted string, valid in YAML and HCL.
fn dq(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn hcl(s: &str) -> String {
    dq(s).replace("${", "$${").replace("%{", "%%{")
}

fn is_k8s_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn credential_name(ns: &str, sa: &str) -> String {
    let raw = format!("k8s-{ns}-{sa}");
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(120);
    name
}

fn authority_for(audience: &str) -> Option<&'static str> {
    match audience {
        AUDIENCE_US_GOV => Some("https://login.microsoftonline.us"),
        AUDIENCE_CHINA => Some("https://login.chinacloudapi.cn"),
        _ => None,
    }
}

/// Compute everything to create for `input`.
pub fn plan(input: &SetupInput) -> Result<SetupOutput, SetupError> {
    let issuer = input.issuer.as_str();
    if issuer.is_empty() {
        return Err(SetupError("no issuer: pass --issuer (EKS: `aws eks describe-cluster --name <cluster> --query cluster.identity.oidc.issuer --output text`)".into()));
    }
    if issuer.chars().any(char::is_whitespace) {
        return Err(SetupError(format!(
            "the issuer {issuer:?} contains whitespace; Entra compares it exactly"
        )));
    }
    match url::Url::parse(issuer) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
        _ => {
            return Err(SetupError(format!(
                "the issuer {issuer:?} is not an https:// URL; Entra only accepts HTTPS issuers"
            )));
        }
    }
    if !is_k8s_name(&input.namespace, 63) || input.namespace.contains('.') {
        return Err(SetupError(format!(
            "the namespace {:?} is not a Kubernetes namespace name (lowercase letters, digits, '-')",
            input.namespace
        )));
    }
    if !is_k8s_name(&input.service_account, 253) {
        return Err(SetupError(format!(
            "the service account {:?} is not a Kubernetes name (lowercase letters, digits, '-', '.')",
            input.service_account
        )));
    }
    let audience = if input.audience.is_empty() {
        AUDIENCE_PUBLIC.to_string()
    } else {
        input.audience.clone()
    };
    if audience.chars().any(char::is_whitespace) {
        return Err(SetupError(format!(
            "the audience {audience:?} contains whitespace"
        )));
    }
    for (what, v) in [
        ("client id", &input.client_id),
        ("tenant id", &input.tenant_id),
        ("identity name", &input.identity_name),
        ("resource group", &input.resource_group),
        ("app object id", &input.app_object_id),
    ] {
        if let Some(v) = v
            && (v.is_empty() || v.chars().any(char::is_whitespace))
        {
            return Err(SetupError(format!(
                "the {what} {v:?} is empty or contains whitespace"
            )));
        }
    }
    let (ns, sa) = (input.namespace.as_str(), input.service_account.as_str());
    let subject = format!("system:serviceaccount:{ns}:{sa}");
    let name = input
        .credential_name
        .clone()
        .unwrap_or_else(|| credential_name(ns, sa));
    if name.len() < 3
        || name.len() > 120
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(SetupError(format!(
            "the credential name {name:?} must be 3-120 letters, digits, '-' or '_', starting with a letter or digit"
        )));
    }
    let description = format!("Kubernetes service account {ns}/{sa}");
    let fic = FederatedCredentialSpec {
        name: name.clone(),
        issuer: issuer.to_string(),
        subject: subject.clone(),
        audiences: vec![audience.clone()],
        description: description.clone(),
    };

    let mut notes = Vec::new();
    if issuer.ends_with('/') {
        notes.push("The issuer ends with '/'; it is kept, because Entra compares issuers exactly. EKS issuers have no trailing slash: check that this is the token's iss.".to_string());
    }
    if audience != AUDIENCE_PUBLIC {
        notes.push(format!("The audience is {audience}: the projected token and the credential use it; outside Azure Government and Azure China set AZURE_FEDERATED_TOKEN_AUDIENCE={audience} in the pod."));
    }

    // az: user-assigned managed identity.
    let mut missing = Vec::new();
    let az_identity_command = format!(
        "az identity federated-credential create --name {} --identity-name {} --resource-group {} --issuer {} --subject {} --audiences {}",
        shell_quote(&name),
        shell_value(
            input.identity_name.as_deref(),
            "IDENTITY_NAME",
            &mut missing
        ),
        shell_value(
            input.resource_group.as_deref(),
            "RESOURCE_GROUP",
            &mut missing
        ),
        shell_quote(issuer),
        shell_quote(&subject),
        shell_quote(&audience),
    );
    // az: app registration.
    let app_parameters = serde_json::json!({
        "name": name,
        "issuer": issuer,
        "subject": subject,
        "description": description,
        "audiences": [audience],
    });
    let app_id = input
        .app_object_id
        .as_deref()
        .or(input.client_id.as_deref());
    let az_app_command = format!(
        "az ad app federated-credential create --id {} --parameters {}",
        shell_value(app_id, "APP_ID", &mut missing),
        shell_quote(&app_parameters.to_string()),
    );
    if !missing.is_empty() {
        notes.push(format!(
            "Set {} in your shell before running the az commands (or pass --identity-name, --resource-group, --client-id).",
            missing.join(", ")
        ));
    }

    // Kubernetes.
    let client = input
        .client_id
        .clone()
        .unwrap_or_else(|| "REPLACE-WITH-CLIENT-ID".into());
    let tenant = input
        .tenant_id
        .clone()
        .unwrap_or_else(|| "REPLACE-WITH-TENANT-ID".into());
    if input.client_id.is_none() || input.tenant_id.is_none() {
        notes.push("Replace REPLACE-WITH-CLIENT-ID / REPLACE-WITH-TENANT-ID in the YAML (or pass --client-id and --tenant-id).".into());
    }
    let authority_env = authority_for(&audience)
        .map(|a| {
            format!(
                "            - name: AZURE_AUTHORITY_HOST\n              value: {}\n",
                dq(a)
            )
        })
        .unwrap_or_default();
    let audience_env = if audience != AUDIENCE_PUBLIC && authority_for(&audience).is_none() {
        format!(
            "            - name: AZURE_FEDERATED_TOKEN_AUDIENCE\n              value: {}\n",
            dq(&audience)
        )
    } else {
        String::new()
    };
    let token_path = format!("{MOUNT_DIR}/{TOKEN_FILE_NAME}");
    debug_assert_eq!(token_path, WEBHOOK_TOKEN_PATH_PRE_1_6);
    let kubernetes_yaml = format!(
        r#"# Without the Azure Workload Identity webhook: the projected token and the variables are spelled out.
# With the webhook, keep the ServiceAccount, drop `env` and `volumes`/`volumeMounts`, and add the pod
# label azure.workload.identity/use: "true".
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {sa_q}
  namespace: {ns_q}
  annotations:
    azure.workload.identity/client-id: {client_q}
    azure.workload.identity/tenant-id: {tenant_q}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {sa_q}
  namespace: {ns_q}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {sa_q}
  template:
    metadata:
      labels:
        app: {sa_q}
    spec:
      serviceAccountName: {sa_q}
      containers:
        - name: app
          image: REPLACE-WITH-YOUR-IMAGE
          env:
            - name: AZURE_CLIENT_ID
              value: {client_q}
            - name: AZURE_TENANT_ID
              value: {tenant_q}
            - name: AZURE_FEDERATED_TOKEN_FILE
              value: {path_q}
{authority_env}{audience_env}          volumeMounts:
            - name: azure-identity-token
              mountPath: {mount_q}
              readOnly: true
      volumes:
        - name: azure-identity-token
          projected:
            sources:
              - serviceAccountToken:
                  audience: {aud_q}
                  expirationSeconds: 3600
                  path: {file_q}
"#,
        sa_q = dq(sa),
        ns_q = dq(ns),
        client_q = dq(&client),
        tenant_q = dq(&tenant),
        path_q = dq(&token_path),
        mount_q = dq(MOUNT_DIR),
        aud_q = dq(&audience),
        file_q = dq(TOKEN_FILE_NAME),
    );

    // Terraform.
    let tf_name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (app_data, app_ref) = match (&input.app_object_id, &input.client_id) {
        (Some(oid), _) => (String::new(), hcl(&format!("/applications/{oid}"))),
        (None, client) => (
            format!(
                "data \"azuread_application\" \"workload\" {{\n  client_id = {}\n}}\n\n",
                hcl(client.as_deref().unwrap_or("REPLACE-WITH-CLIENT-ID"))
            ),
            "data.azuread_application.workload.id".to_string(),
        ),
    };
    let terraform_azuread = format!(
        "# azuread provider 3.x (application_id is the application's resource id, /applications/<object id>).\n\
         {app_data}resource \"azuread_application_federated_identity_credential\" {tf} {{\n  \
         application_id = {app_ref}\n  \
         display_name   = {name_h}\n  \
         description    = {desc_h}\n  \
         audiences      = [{aud_h}]\n  \
         issuer         = {iss_h}\n  \
         subject        = {sub_h}\n}}\n",
        tf = dq(&tf_name),
        name_h = hcl(&name),
        desc_h = hcl(&description),
        aud_h = hcl(&audience),
        iss_h = hcl(issuer),
        sub_h = hcl(&subject),
    );
    let terraform_azurerm = format!(
        "data \"azurerm_user_assigned_identity\" \"workload\" {{\n  \
         name                = {id_name}\n  \
         resource_group_name = {rg}\n}}\n\n\
         resource \"azurerm_federated_identity_credential\" {tf} {{\n  \
         name                = {name_h}\n  \
         resource_group_name = data.azurerm_user_assigned_identity.workload.resource_group_name\n  \
         parent_id           = data.azurerm_user_assigned_identity.workload.id\n  \
         audience            = [{aud_h}]\n  \
         issuer              = {iss_h}\n  \
         subject             = {sub_h}\n}}\n",
        id_name = hcl(input
            .identity_name
            .as_deref()
            .unwrap_or("REPLACE-WITH-IDENTITY-NAME")),
        rg = hcl(input
            .resource_group
            .as_deref()
            .unwrap_or("REPLACE-WITH-RESOURCE-GROUP")),
        tf = dq(&tf_name),
        name_h = hcl(&name),
        aud_h = hcl(&audience),
        iss_h = hcl(issuer),
        sub_h = hcl(&subject),
    );

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

impl fmt::Display for SetupOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fic = &self.federated_credential;
        writeln!(f, "# Federated identity credential")?;
        writeln!(f, "#   issuer:   {}", fic.issuer)?;
        writeln!(f, "#   subject:  {}", fic.subject)?;
        writeln!(f, "#   audience: {}", fic.audiences.join(", "))?;
        for n in &self.notes {
            writeln!(f, "# Note: {n}")?;
        }
        writeln!(f, "\n# 1a. On a user-assigned managed identity:")?;
        writeln!(f, "{}", self.az_identity_command)?;
        writeln!(f, "\n# 1b. Or on an app registration:")?;
        writeln!(f, "{}", self.az_app_command)?;
        writeln!(f, "\n# 2. Kubernetes (kubectl apply -f -):")?;
        write!(f, "{}", self.kubernetes_yaml)?;
        writeln!(f, "\n# 3a. Terraform, app registration:")?;
        write!(f, "{}", self.terraform_azuread)?;
        writeln!(f, "\n# 3b. Terraform, user-assigned managed identity:")?;
        write!(f, "{}", self.terraform_azurerm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SetupInput {
        SetupInput {
            issuer: "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC".into(),
            namespace: "prod".into(),
            service_account: "api".into(),
            ..Default::default()
        }
    }

    #[test]
    fn subjects_parse() {
        assert_eq!(
            parse_subject("system:serviceaccount:a:b"),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(parse_subject("arn:aws:iam::1:role/x"), None);
        assert_eq!(parse_subject("system:serviceaccount:a:"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("https://x/y"), "https://x/y");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(hcl("a${b}"), r#""a$${b}""#);
    }

    #[test]
    fn bad_inputs_are_refused() {
        for (mutate, needle) in [
            (
                Box::new(|i: &mut SetupInput| i.issuer = "http://x".into())
                    as Box<dyn Fn(&mut SetupInput)>,
                "https",
            ),
            (
                Box::new(|i: &mut SetupInput| i.issuer = "https://x \n".into()),
                "whitespace",
            ),
            (
                Box::new(|i: &mut SetupInput| i.namespace = "Prod".into()),
                "namespace",
            ),
            (
                Box::new(|i: &mut SetupInput| i.service_account = String::new()),
                "service account",
            ),
        ] {
            let mut i = input();
            mutate(&mut i);
            let e = plan(&i).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn unknown_values_become_shell_variables() {
        let out = plan(&input()).unwrap();
        assert!(
            out.az_identity_command
                .contains("--identity-name \"$IDENTITY_NAME\""),
            "{}",
            out.az_identity_command
        );
        assert!(
            out.az_app_command.contains("--id \"$APP_ID\""),
            "{}",
            out.az_app_command
        );
        assert!(out.notes.iter().any(|n| n.contains("IDENTITY_NAME")));
    }
}
