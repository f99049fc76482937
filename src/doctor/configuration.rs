//! Check 1, `configuration`: the credential's configuration, value by value, with the source of each.

use super::{Check, CheckId, Doctor, Inputs, Status, with_source};
use crate::assertion::TokenFileSource;
use crate::cloud::{PUBLIC, default_audience_for};
use crate::config::{
    self, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_AUDIENCE, AZURE_FEDERATED_TOKEN_FILE,
    AZURE_TENANT_ID, CLIENT_ID_COMMANDS, Sourced, TENANT_ID_COMMAND, ValueSource,
};
use crate::credential::WorkloadIdentityCredentialOptions;
use crate::problem::ProblemId;
use azure_core::http::Url;
use std::path::Path;
use std::sync::Arc;

pub(super) fn is_guid(s: &str) -> bool {
    s.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// A value with its source, quoted (escaped) only when whitespace or control characters would
/// otherwise be invisible; or that it is not set and where it would come from.
fn shown<T: AsRef<str>>(v: Option<&Sourced<T>>, missing: &str) -> String {
    match v.map(|v| (v.value.as_ref(), &v.source)) {
        Some((v, from)) if v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            with_source(&format!("{v:?}"), from)
        }
        Some((v, from)) => with_source(&v, from),
        None => format!("not set (option or env {missing})"),
    }
}

/// What stands in for the token file when the assertion comes from AWS STS.
const AWS_ASSERTION: &str = "AWS STS GetWebIdentityToken (see `aws-sts`)";

/// The credential's own resolution ([`config::resolve`]) and token-file source; each value is
/// shown with its source whether or not resolution succeeds (found by the same functions
/// resolution uses), so that the token can still be examined.
pub(super) fn check(d: &mut Doctor, o: &WorkloadIdentityCredentialOptions, aws: bool) -> Inputs {
    let (env, cloud) = (&o.env, o.credential_options.client_options.cloud.as_deref());
    // As the credential does for a custom assertion source: no token file is needed.
    let resolved = o.resolve(aws.then_some(Path::new(AWS_ASSERTION)));
    let client = config::pick(o.client_id.as_deref(), env, AZURE_CLIENT_ID);
    let tenant = config::pick(o.tenant_id.as_deref(), env, AZURE_TENANT_ID);
    let (path, well_known) = (o.token_file_path.as_deref(), &o.well_known_token_paths);
    let token_file = config::locate_token_file(path, env, well_known).filter(|_| !aws);
    let authority = match &resolved {
        Ok(c) => Ok(Sourced::new(
            c.authority_host.value.to_string(),
            c.authority_host.source.clone(),
        )),
        Err(_) => config::authority_host_raw(cloud, env),
    };
    let url = authority
        .as_ref()
        .ok()
        .and_then(|a| Url::parse(&a.value).ok());
    let explicit = config::pick(
        o.expected_audience.as_deref(),
        env,
        AZURE_FEDERATED_TOKEN_AUDIENCE,
    );
    let audience = explicit.unwrap_or_else(|| {
        let default = url
            .as_ref()
            .map_or(PUBLIC.exchange_audience, default_audience_for);
        Sourced::new(default.to_string(), ValueSource::Default)
    });

    let mut check = Check::new(CheckId::Configuration, Status::Ok, "")
        .detail("client id", shown(client.as_ref(), AZURE_CLIENT_ID))
        .detail("tenant id", shown(tenant.as_ref(), AZURE_TENANT_ID))
        .detail(
            if aws { "assertion" } else { "token file" },
            match &token_file {
                _ if aws => AWS_ASSERTION.to_string(),
                Some(t) => with_source(&t.value.display(), &t.source),
                None => format!(
                    "not set (option or env {AZURE_FEDERATED_TOKEN_FILE}, or a webhook path)"
                ),
            },
        )
        .detail(
            "authority",
            match &authority {
                Ok(a) => {
                    let trimmed = a.value.trim_end_matches('/');
                    shown(Some(&Sourced::new(trimmed, a.source.clone())), "")
                }
                Err(e) => e.message().to_string(),
            },
        )
        .detail("expected audience", shown(Some(&audience), ""));
    let config = match resolved {
        // The credential's own problem, fix and URL.
        Err(e) => {
            d.push(check.outcome(Status::Fail, e.facts()).error(&e));
            None
        }
        Ok(c) => {
            check = check.detail("token endpoint", c.token_endpoint().to_string());
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
            d.push(if warnings.is_empty() {
                check.outcome(
                    Status::Ok,
                    if aws {
                        "client id and tenant id are configured; the assertion comes from AWS STS"
                    } else {
                        "client id, tenant id and token file are configured"
                    },
                )
            } else {
                // The entry of a malformed value, as the credential's own refusals carry it.
                check
                    .outcome(Status::Warn, "configured, but a value looks wrong")
                    .fix(warnings.join("\n"))
                    .problem(ProblemId::InvalidConfiguration)
            });
            Some(c)
        }
    };
    // The credential's own source for this file, audience and authority.
    let token_file = token_file.map(|t| {
        let allow = env.allow_foreign_audience(o.allow_foreign_audience);
        let clock = Arc::new(crate::clock::SystemClock);
        let source = TokenFileSource::configured(t.value, &audience, allow, url, env, clock);
        (source, t.source)
    });
    Inputs {
        config,
        #[cfg(feature = "aws")]
        expected_audience: audience.value,
        token_file,
    }
}
