//! Checks 10 and 11, `scope` and `exchange`: a real token request through the credential, and
//! the federated identity credential that would match the token.

use super::{Check, CheckId, Doctor, MatchingFederatedCredential, Status, fmt_time};
use crate::config::ResolvedConfig;
use crate::credential::WorkloadIdentityCredential;
use crate::error::{CredentialError, ErrorCategory};
use crate::escape::escape;
use crate::jwt::decode_part;
use crate::scope::{suggested_scope, validate_scopes};
use crate::setup::{self, SetupInput};
use crate::shell::shell_quote;
use azure_core::credentials::TokenCredential as _;
use std::borrow::Cow;
use std::sync::Arc;

/// Check 10: the test scope has the form the credential accepts.
pub(super) fn check_scope(d: &mut Doctor, scope: &str) -> bool {
    let Err(e) = validate_scopes(&[scope]) else {
        let summary = format!("{scope} has the <resource>/.default form");
        return d.push(Check::new(CheckId::Scope, Status::Ok, summary)) == Status::Ok;
    };
    // The credential's own problem, fix and URL; the command to rerun with as a detail.
    let mut check = Check::new(CheckId::Scope, Status::Fail, e.facts().to_string())
        .detail("scope", scope.to_string());
    if let Some(s) = suggested_scope(scope) {
        check = check.detail("rerun with", format!("--scope {}", shell_quote(&s)));
    }
    d.push(check.error(&e));
    false
}

/// The federated credential to create for this token (a service-account token, or an AWS STS
/// JWT, whose subject is a role ARN: the account's issuer, the role ARN), with the commands that
/// create it.
fn fic_fix(config: &ResolvedConfig, m: &MatchingFederatedCredential) -> String {
    let (iss, sub, audience) = (m.issuer.as_str(), m.subject.as_str(), &m.audience);
    let client = &config.client_id.value;
    let about = if sub.starts_with("arn:") {
        "The issuer is the AWS account's outbound-federation issuer (`aws iam get-outbound-web-identity-federation-info`, no trailing slash); \
         the subject is the ARN of the IAM role the workload runs as (the role, with its path, not an assumed-role session)."
    } else if iss.ends_with('/') {
        "The issuer ends with '/': the credential's issuer must too. The namespace and service account in the subject are the pod's."
    } else {
        "The issuer has no trailing slash: the credential's must not have one either. The namespace and service account in the subject are the pod's."
    };
    // Escaped for the report (see `crate::escape`); a value that needs it can match no
    // federated credential anyway, so no command is printed for it.
    let (iss, sub) = (escape(iss), escape(sub));
    let commands = match (
        &iss,
        &sub,
        setup::federated_credential(&iss, &sub, audience),
    ) {
        (Cow::Borrowed(_), Cow::Borrowed(_), Some(fic)) => {
            let known = SetupInput {
                client_id: Some(client.clone()),
                tenant_id: Some(config.tenant_id.value.clone()),
                ..Default::default()
            };
            let (identity, app, _) = setup::az_commands(&fic, &known, &mut Vec::new());
            format!(
                "\nFor a user-assigned managed identity:\n  {identity}\nFor an app registration:\n  {app}"
            )
        }
        _ => String::new(),
    };
    format!(
        "Give application {client} a federated identity credential with exactly (case-sensitive):\n  issuer:   {iss}\n  subject:  {sub}\n  audience: {audience}\n{about} \
         A credential created in the last few minutes may still be propagating; wait a minute and retry.{commands}"
    )
}

pub(super) async fn check(
    d: &mut Doctor,
    credential: Result<Arc<WorkloadIdentityCredential>, CredentialError>,
    scope: &str,
    config: &ResolvedConfig,
    matching: Option<&MatchingFederatedCredential>,
) {
    let base = |status, summary: String| {
        Check::new(CheckId::Exchange, status, summary)
            .detail("endpoint", config.token_endpoint().to_string())
            .detail("client id", config.client_id.value.clone())
            .detail("scope", scope.to_string())
    };
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            d.push(base(Status::Fail, e.facts().to_string()).error(&e));
            return;
        }
    };
    let started = std::time::Instant::now();
    let result = credential.get_token(&[scope], None).await;
    let elapsed = format!("{} ms", started.elapsed().as_millis());
    match result {
        Ok(token) => {
            let mut c = base(
                Status::Ok,
                format!("Entra ID issued an access token for {scope}"),
            )
            .detail("expires", fmt_time(token.expires_on))
            .detail("took", elapsed);
            // The access token's (unverified) identity claims, never the token.
            let payload = token.token.secret().split('.').nth(1).and_then(decode_part);
            let claims: serde_json::Value =
                (payload.and_then(|p| serde_json::from_slice(&p).ok())).unwrap_or_default();
            for (label, key) in [
                ("token aud", "aud"),
                ("token tid", "tid"),
                ("token appid", "appid"),
                ("token oid", "oid"),
            ] {
                if let Some(v) = claims[key].as_str() {
                    c = c.detail(label, v.to_string());
                }
            }
            d.push(c);
        }
        Err(e) => {
            let Some(err) = e.downcast_ref::<CredentialError>() else {
                d.push(
                    base(Status::Fail, e.to_string())
                        .fix("Unexpected error; rerun with RUST_LOG=azure_identity_k8s=debug,azure_core=debug for each request and answer."),
                );
                return;
            };
            let codes = err.aadsts_codes();
            // The credential's first line: the problem with its key values.
            let summary = err.headline().into_owned();
            let mut c = base(Status::Fail, summary).detail("took", elapsed);
            if let Some(s) = err.http_status() {
                c = c.detail("http status", u16::from(s).to_string());
            }
            // Entra's own words and the ids to quote to support; the explanation is the fix below.
            match err.entra_description() {
                Some(said) if err.category() == ErrorCategory::Entra => {
                    c = c.detail("entra", said.to_string());
                    if let (Some(t), Some(corr)) = (err.trace_id(), err.correlation_id()) {
                        c = c.detail("trace id", format!("{t}, correlation id {corr}"));
                    }
                }
                _ => c = c.detail("error", err.message().to_string()),
            }
            // The 70021 family: the federated credential that would match, and the commands
            // that create it (doctor has the token; the fix is the credential's).
            if matches!(
                codes.first(),
                Some(70021 | 700211 | 700212 | 700213 | 7002137 | 7002138)
            ) && let Some(m) = matching
            {
                c = c.detail("matching credential", fic_fix(config, m));
            }
            c.aadsts = codes.to_vec();
            d.push(c.error(err));
        }
    }
}
