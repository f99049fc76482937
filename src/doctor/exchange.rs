//! Checks 10 and 11, `scope` and `exchange`: a real token request through the credential, and
//! the federated identity credential that would match the token.

use super::{Check, CheckId, Doctor, MatchingFederatedCredential, Status, fmt_time};
use crate::config::ResolvedConfig;
use crate::credential::WorkloadIdentityCredential;
use crate::error::{CredentialError, ErrorCategory};
use crate::jwt::DecodedJwt;
use crate::scope::suggested_scope;
use crate::scope::validate_scopes;
use crate::shell::shell_quote;
use azure_core::credentials::TokenCredential as _;
use std::borrow::Cow;
use std::sync::Arc;

/// Check 10: the test scope has the form the credential accepts.
pub(super) fn check_scope(d: &mut Doctor, scope: &str) -> bool {
    match validate_scopes(&[scope]) {
        Ok(()) => {
            d.push(Check::new(
                CheckId::Scope,
                Status::Ok,
                format!("{scope} has the <resource>/.default form"),
            )) == Status::Ok
        }
        Err(e) => {
            // The credential's own problem, fix and URL; the command to rerun with as a detail.
            let mut check = Check::new(CheckId::Scope, Status::Fail, e.facts().to_string())
                .detail("scope", scope.to_string());
            if let Some(s) = suggested_scope(scope) {
                check = check.detail("rerun with", format!("--scope {}", shell_quote(&s)));
            }
            d.push(check.error(&e));
            false
        }
    }
}

/// The federated credential that would match this token, with `audience` from
/// [`AudienceVerdict::credential_audience`](crate::assertion::token_file::AudienceVerdict::credential_audience).
pub(super) fn matching_fic(
    jwt: &DecodedJwt,
    audience: &str,
) -> Option<MatchingFederatedCredential> {
    let c = &jwt.claims;
    Some(MatchingFederatedCredential {
        issuer: c.iss.clone()?,
        subject: c.sub.clone()?,
        audience: audience.to_string(),
    })
}

/// The federated credential to create for this token, with the commands; empty for a token
/// without `iss` or `sub`, which no federated credential can match.
pub(super) fn fic_fix(config: &ResolvedConfig, jwt: &DecodedJwt, audience: &str) -> String {
    let c = &jwt.claims;
    let (Some(iss), Some(sub)) = (c.iss.as_deref(), c.sub.as_deref()) else {
        return String::new();
    };
    // Escaped for the report (see `crate::escape`); a value that needs it can match no
    // federated credential anyway, so no command is printed for it.
    let (iss, sub) = (crate::escape::escape(iss), crate::escape::escape(sub));
    let printable = matches!((&iss, &sub), (Cow::Borrowed(_), Cow::Borrowed(_)));
    let slash = if iss.ends_with('/') {
        "The issuer ends with '/': the credential's issuer must too."
    } else {
        "The issuer has no trailing slash: the credential's must not have one either."
    };
    let commands = crate::setup::SetupInput::from_claims(c)
        .ok()
        .filter(|_| printable)
        .map(|input| crate::setup::SetupInput {
            audience: audience.to_string(),
            client_id: Some(config.client_id.value.clone()),
            tenant_id: Some(config.tenant_id.value.clone()),
            ..input
        })
        .and_then(|input| crate::setup::plan(&input).ok())
        .map(|p| {
            format!(
                "\nFor a user-assigned managed identity:\n  {}\nFor an app registration:\n  {}",
                p.az_identity_command, p.az_app_command
            )
        })
        .unwrap_or_default();
    format!(
        "Give application {client} a federated identity credential with exactly (case-sensitive):\n  issuer:   {iss}\n  subject:  {sub}\n  audience: {audience}\n{slash} \
         The namespace and service account in the subject are the pod's. A credential created in the last few minutes may still be propagating; \
         wait a minute and retry.{commands}",
        client = config.client_id.value,
    )
}

pub(super) async fn check(
    d: &mut Doctor,
    credential: Result<Arc<WorkloadIdentityCredential>, CredentialError>,
    scope: &str,
    config: &ResolvedConfig,
    fic_fix: String,
) {
    let base = |status, summary: String| {
        Check::new(CheckId::Exchange, status, summary)
            .detail(
                "endpoint",
                config
                    .token_endpoint()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
            )
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
            if let Some(claims) = access_token_claims(token.token.secret()) {
                for (label, key) in [
                    ("token aud", "aud"),
                    ("token tid", "tid"),
                    ("token appid", "appid"),
                    ("token oid", "oid"),
                ] {
                    if let Some(v) = claims.get(key).and_then(|v| v.as_str()) {
                        c = c.detail(label, v.to_string());
                    }
                }
            }
            d.push(c);
        }
        Err(e) => {
            let Some(err) = e.downcast_ref::<CredentialError>().cloned() else {
                d.push(
                    base(Status::Fail, e.to_string())
                        .fix("Unexpected error; rerun with RUST_LOG=azure_identity_k8s=debug,azure_core=debug for each request and answer."),
                );
                return;
            };
            let codes = err.aadsts_codes().to_vec();
            let summary = match (err.category(), codes.first()) {
                // The credential's first line: the entry's key fact with its values.
                (ErrorCategory::Entra, _) => err.headline().to_string(),
                (ErrorCategory::Transport, _) => "the token endpoint could not be reached".into(),
                (ErrorCategory::Timeout, _) => "the token endpoint did not answer in time".into(),
                (ErrorCategory::InvalidResponse, _) => {
                    "the token endpoint's answer is not Entra's".into()
                }
                _ => "the credential failed".into(),
            };
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
            ) && !fic_fix.is_empty()
            {
                c = c.detail("matching credential", fic_fix);
            }
            c.aadsts = codes;
            d.push(c.error(&err));
        }
    }
}

fn access_token_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
