//! Check 1, `configuration`: the credential's configuration, value by value, with the source of each.

use super::{Check, CheckId, Doctor, Inputs, Status, with_source};
use crate::assertion::foreign::denied_paths;
use crate::config::{
    self, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_AUDIENCE, AZURE_FEDERATED_TOKEN_FILE,
    AZURE_TENANT_ID, CLIENT_ID_COMMANDS, ConfigInputs, Sourced, TENANT_ID_COMMAND, ValueSource,
};
use crate::credential::WorkloadIdentityCredentialOptions;
use crate::problem::ProblemId;
use azure_core::http::Url;
use std::path::PathBuf;

pub(super) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A value as shown in a detail: quoted (escaped) only when whitespace or control characters
/// would otherwise be invisible.
fn shown(v: &str) -> String {
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

/// A value with its source, or that it is not set and where it would come from.
fn sourced_or_missing(v: Option<&Sourced<String>>, var: &str) -> String {
    match v {
        Some(v) => with_source(&shown(&v.value), &v.source),
        None => format!("not set (option or env {var})"),
    }
}

/// What stands in for the token file when the assertion comes from AWS STS.
const AWS_ASSERTION: &str = "AWS STS GetWebIdentityToken (see `aws-sts`)";

pub(super) fn check(d: &mut Doctor, o: &WorkloadIdentityCredentialOptions, aws: bool) -> Inputs {
    // As the credential does for a custom assertion source: no token file is needed.
    let placeholder = PathBuf::from(AWS_ASSERTION);
    let inputs = ConfigInputs {
        client_id: o.client_id.as_deref(),
        tenant_id: o.tenant_id.as_deref(),
        token_file_path: if aws {
            Some(placeholder.as_path())
        } else {
            o.token_file_path.as_deref()
        },
        cloud: o.credential_options.client_options.cloud.as_deref(),
        expected_audience: o.expected_audience.as_deref(),
        well_known_token_paths: &o.well_known_token_paths,
        env: &o.env,
    };
    match config::resolve(&inputs) {
        Ok(c) => {
            let mut check = Check::new(
                CheckId::Configuration,
                Status::Ok,
                if aws {
                    "client id and tenant id are configured; the assertion comes from AWS STS"
                } else {
                    "client id, tenant id and token file are configured"
                },
            )
            .detail(
                "client id",
                with_source(&c.client_id.value, &c.client_id.source),
            )
            .detail(
                "tenant id",
                with_source(&c.tenant_id.value, &c.tenant_id.source),
            )
            .detail(
                if aws { "assertion" } else { "token file" },
                if aws {
                    AWS_ASSERTION.to_string()
                } else {
                    with_source(&c.token_file.value.display(), &c.token_file.source)
                },
            )
            .detail(
                "authority",
                with_source(
                    &c.authority_host.value.as_str().trim_end_matches('/'),
                    &c.authority_host.source,
                ),
            )
            .detail(
                "expected audience",
                with_source(&c.expected_audience.value, &c.expected_audience.source),
            );
            if let Ok(ep) = c.token_endpoint() {
                check = check.detail("token endpoint", ep.to_string());
            }
            let mut warnings = Vec::new();
            if !is_guid(&c.client_id.value) {
                warnings.push(format!(
                    "The client id {:?} (from {}) is not a GUID. Use the application's or user-assigned managed identity's client id (appId), printed by {CLIENT_ID_COMMANDS}.",
                    c.client_id.value, c.client_id.source
                ));
            }
            if !is_guid(&c.tenant_id.value) && !c.tenant_id.value.contains('.') {
                warnings.push(format!(
                    "The tenant id {:?} (from {}) is neither a GUID nor a domain name; use the directory id printed by `{TENANT_ID_COMMAND}`.",
                    c.tenant_id.value, c.tenant_id.source
                ));
            }
            if !warnings.is_empty() {
                // The entry of a malformed value, as the credential's own refusals carry it.
                check.status = Status::Warn;
                check.summary = "configured, but a value looks wrong".into();
                check = check
                    .fix(warnings.join("\n"))
                    .problem(ProblemId::InvalidConfiguration);
            }
            d.push(check);
            let token_file = (!aws).then(|| c.token_file.clone());
            let expected_audience = c.expected_audience.value.clone();
            Inputs {
                audience_explicit: c.expected_audience.source != ValueSource::Default,
                config: Some(c),
                token_file,
                expected_audience,
                allow_foreign_audience: o.allow_foreign_audience,
                denied_paths: denied_paths(&o.env),
            }
        }
        Err(e) => {
            // The credential's own problem, fix and URL; the details add every value with its
            // source (or the default that applies).
            let mut check =
                Check::new(CheckId::Configuration, Status::Fail, e.facts().to_string()).error(&e);
            let client = config::pick(o.client_id.as_deref(), &o.env, AZURE_CLIENT_ID);
            check = check.detail(
                "client id",
                sourced_or_missing(client.as_ref(), AZURE_CLIENT_ID),
            );
            let tenant = config::pick(o.tenant_id.as_deref(), &o.env, AZURE_TENANT_ID);
            check = check.detail(
                "tenant id",
                sourced_or_missing(tenant.as_ref(), AZURE_TENANT_ID),
            );
            // Best effort, so the token can still be examined.
            let token_file = if aws {
                check = check.detail("assertion", AWS_ASSERTION);
                None
            } else {
                let t = config::locate_token_file(
                    o.token_file_path.as_deref(),
                    &o.env,
                    &o.well_known_token_paths,
                );
                let shown = match &t {
                    Some(t) => with_source(&t.value.display(), &t.source),
                    None => format!(
                        "not set (option or env {AZURE_FEDERATED_TOKEN_FILE}, or a webhook path)"
                    ),
                };
                check = check.detail("token file", shown);
                t
            };
            let authority = config::authority_host_raw(
                o.credential_options.client_options.cloud.as_deref(),
                &o.env,
            );
            let authority_url = authority
                .as_ref()
                .ok()
                .and_then(|a| Url::parse(&a.value).ok());
            check = check.detail(
                "authority",
                match &authority {
                    Ok(a) => with_source(&shown(a.value.trim_end_matches('/')), &a.source),
                    Err(e) => e.message().to_string(),
                },
            );
            let explicit = config::pick(
                o.expected_audience.as_deref(),
                &o.env,
                AZURE_FEDERATED_TOKEN_AUDIENCE,
            );
            let audience_explicit = explicit.is_some();
            let audience = explicit.unwrap_or_else(|| Sourced {
                value: authority_url
                    .as_ref()
                    .map(crate::cloud::default_audience_for)
                    .unwrap_or(config::AUDIENCE_PUBLIC)
                    .to_string(),
                source: ValueSource::Default,
            });
            check = check.detail(
                "expected audience",
                with_source(&shown(&audience.value), &audience.source),
            );
            d.push(check);
            let expected_audience = audience.value;
            Inputs {
                config: None,
                token_file,
                expected_audience,
                audience_explicit,
                allow_foreign_audience: o.allow_foreign_audience,
                denied_paths: denied_paths(&o.env),
            }
        }
    }
}
