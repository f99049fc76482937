//! The configuration's errors and their fixes: what is missing or malformed, and the value or
//! command that corrects it.

use super::{
    AUDIENCE_PUBLIC, AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE,
    AZURE_TENANT_ID, CLIENT_ID_COMMANDS, Sourced, TENANT_ID_COMMAND, ValueSource,
    WEBHOOK_TOKEN_PATH_PRE_1_6,
};
use crate::error::CredentialError;
use crate::problem::ProblemId;
use std::path::PathBuf;

/// Each missing value (client id, tenant id, token file) with how to set it: the variable, the
/// option, and the command that prints the value.
pub(super) fn not_configured(missing: &[(&str, String)]) -> CredentialError {
    let (what, how): (Vec<&str>, Vec<&str>) = missing.iter().map(|(w, h)| (*w, h.as_str())).unzip();
    CredentialError::new(
        ProblemId::NotConfigured,
        format!(
            "WorkloadIdentityCredential is not configured: no {}.",
            what.join(", no ")
        ),
    )
    .named(None)
    .with_fix(format!(
        "{}. In a pod, the Azure Workload Identity webhook sets them when the pod has the label \
         azure.workload.identity/use: \"true\" and its ServiceAccount the annotation azure.workload.identity/client-id; \
         without the webhook, set them in the pod spec (`azure-identity-k8s setup` prints a Deployment with them).",
        how.join("; ")
    ))
}

/// A malformed value: `what` names it, `problem` says what is wrong with it, `fix` gives the
/// value or command that corrects it.
pub(super) fn invalid(what: &str, problem: &str, fix: impl Into<String>) -> CredentialError {
    invalid_in("WorkloadIdentityCredential", what, problem, fix)
}

/// [`invalid`] for the credential named `credential` (e.g. a chain's `EnvironmentCredential`).
pub(super) fn invalid_in(
    credential: &'static str,
    what: &str,
    problem: &str,
    fix: impl Into<String>,
) -> CredentialError {
    CredentialError::new(
        ProblemId::InvalidConfiguration,
        format!("invalid {what}: {problem}."),
    )
    .named(Some(credential))
    .with_fix(fix)
}

/// Set `var` (or the option) to the value `command` prints.
fn set_to(var: &str, option: &str, value: &str) -> String {
    format!("set {var} (or the option {option}) to {value}")
}

/// The fix of a missing or malformed client id.
pub(super) fn client_id_fix() -> String {
    set_to(
        AZURE_CLIENT_ID,
        "client_id",
        &format!(
            "the application's or user-assigned managed identity's client id (appId, not the object id), printed by {CLIENT_ID_COMMANDS}"
        ),
    )
}

/// The fix of a missing or malformed tenant id.
pub(super) fn tenant_id_fix() -> String {
    set_to(
        AZURE_TENANT_ID,
        "tenant_id",
        &format!("the directory (tenant) id printed by `{TENANT_ID_COMMAND}`"),
    )
}

/// The fix of a missing or empty token file path; `tried`: the webhook paths looked for.
pub(super) fn token_file_fix(tried: &[PathBuf]) -> String {
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    set_to(
        AZURE_FEDERATED_TOKEN_FILE,
        "token_file_path",
        &format!(
            "the file of the pod's projected serviceAccountToken volume (audience {AUDIENCE_PUBLIC}), <mountPath>/<path>, e.g. {WEBHOOK_TOKEN_PATH_PRE_1_6}{}",
            if tried.is_empty() {
                String::new()
            } else {
                format!(" (the webhook's paths {} do not exist)", tried.join(", "))
            }
        ),
    )
}

/// The fix of a malformed authority host: the cloud's host, or this one over HTTPS.
pub(super) fn authority_fix(raw: &Sourced<String>, https: Option<String>) -> String {
    let hosts = crate::cloud::authority_hosts();
    let value = match https {
        Some(h) => format!("{h}, the tenant's cloud: {hosts}"),
        None => format!("the tenant's cloud: {hosts}"),
    };
    match raw.source {
        ValueSource::Options => format!("set the cloud option's authority_host to {value}"),
        _ => format!("set {AZURE_AUTHORITY_HOST} to {value}"),
    }
}
