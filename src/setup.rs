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

mod plan;
mod render;
#[cfg(test)]
mod tests;

pub use crate::shell::shell_quote;
pub use plan::plan;
pub(crate) use plan::{az_commands, federated_credential, private_issuer_host};

use crate::assertion::file_read::FileProblem;
use crate::assertion::token_file::{AudienceVerdict, read_token};
use crate::cloud::{Cloud, PUBLIC};
use crate::jwt::Claims;
use serde::Serialize;
use std::fmt;
use std::path::Path;

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
    /// The Entra authority host (`AZURE_AUTHORITY_HOST`), for a sovereign cloud: it picks the
    /// default audience and is set in the pod. Default: the public cloud's.
    pub authority_host: Option<String>,
    /// Print a foreign audience (AWS STS, EKS Pod Identity, the API server, the issuer itself)
    /// with its risk instead of refusing it (`--allow-foreign-audience`). Default `false`.
    pub allow_foreign_audience: bool,
}

/// A setup problem: an input that cannot work. `Display` names the input, what it holds and what
/// it must be (e.g. "the issuer \"http://x\" is not an https:// URL; ...").
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
    /// is the one the credential would send the token with: the token's Entra exchange audience
    /// (any cloud), else its own custom audience (sent with a warning), else
    /// `api://AzureADTokenExchange` (a foreign token, such as an IRSA one, is never sent).
    ///
    /// # Errors
    ///
    /// [`SetupError`] when `iss` or `sub` is missing, or `sub` is not
    /// `system:serviceaccount:<namespace>:<name>`.
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
        // The credential's own audience verdict, with no audience configured: an Entra exchange
        // audience of any cloud is expected; another (not a foreign) one is sent as it is, so
        // the federated credential must carry it.
        let expected = claims
            .aud
            .iter()
            .map(String::as_str)
            .find(|a| Cloud::of_audience(a).is_some())
            .unwrap_or(PUBLIC.exchange_audience);
        let audience = AudienceVerdict::of(claims, expected, false, false)
            .credential_audience(claims, expected);
        Ok(Self {
            issuer,
            namespace,
            service_account,
            audience,
            ..Default::default()
        })
    }

    /// As [`from_claims`](Self::from_claims), reading the token file (the live token in a pod,
    /// e.g. the path in `AZURE_FEDERATED_TOKEN_FILE`) with the credential's rules: a regular file
    /// of at most 64 KiB, surrounding whitespace trimmed. The token is decoded without verifying
    /// its signature.
    ///
    /// # Errors
    ///
    /// [`SetupError`] when the file cannot be read, does not hold a JWT (described by its shape,
    /// never its content), or its claims lack `iss` or a Kubernetes `sub`.
    pub fn from_token_file(path: &Path) -> Result<Self, SetupError> {
        // The credential's own reading rules: a regular file, bounded, trimmed, a JWT.
        let shown = crate::escape::path(path);
        let error = |p: FileProblem| SetupError(format!("the token file {shown} {}", p.what));
        Self::from_claims(&read_token(path).map_err(error)?.claims)
    }
}

/// `system:serviceaccount:<namespace>:<name>` → (namespace, name).
pub(crate) fn parse_subject(sub: &str) -> Option<(String, String)> {
    let rest = sub.strip_prefix("system:serviceaccount:")?;
    let (ns, sa) = rest.split_once(':')?;
    (!ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .then(|| (ns.to_string(), sa.to_string()))
}

/// The federated identity credential to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// A Job that runs `azure-identity-k8s doctor` with the workload's service account, token
    /// volume and variables (image `REPLACE-WITH-DOCTOR-IMAGE`: the CLI's image).
    pub doctor_job_yaml: String,
    /// `azuread_application_federated_identity_credential` (app registration).
    pub terraform_azuread: String,
    /// `azurerm_federated_identity_credential` (user-assigned managed identity).
    pub terraform_azurerm: String,
    /// Remarks about the input (trailing slash, non-default audience, placeholders to fill in).
    pub notes: Vec<String>,
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
        writeln!(
            f,
            "\n# 2b. Doctor in the pod's place (kubectl apply -f -, then kubectl logs job/<name>):"
        )?;
        write!(f, "{}", self.doctor_job_yaml)?;
        writeln!(f, "\n# 3a. Terraform, app registration:")?;
        write!(f, "{}", self.terraform_azuread)?;
        writeln!(f, "\n# 3b. Terraform, user-assigned managed identity:")?;
        write!(f, "{}", self.terraform_azurerm)
    }
}
