//! Check 1, `configuration`: the credential's configuration, value by value, with the source of each.

use super::{Check, CheckId, Doctor, Inputs, Status, with_source};
use crate::assertion::foreign::denied_paths;
use crate::config::ValueSource;
use crate::config::{
    self, AZURE_AUTHORITY_HOST, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_AUDIENCE,
    AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID, ConfigInputs,
};
use crate::credential::WorkloadIdentityCredentialOptions;
use azure_core::http::Url;
use std::path::PathBuf;

pub(super) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
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
                    "The client id {:?} (from {}) is not a GUID. Use the application's or user-assigned managed identity's client id (appId), e.g. `az identity show -n <identity> -g <group> --query clientId -o tsv`.",
                    c.client_id.value, c.client_id.source
                ));
            }
            if !is_guid(&c.tenant_id.value) && !c.tenant_id.value.contains('.') {
                warnings.push(format!(
                    "The tenant id {:?} (from {}) is neither a GUID nor a domain name; use the directory id from `az account show --query tenantId -o tsv`.",
                    c.tenant_id.value, c.tenant_id.source
                ));
            }
            if !warnings.is_empty() {
                check.status = Status::Warn;
                check.summary = "configured, but a value looks wrong".into();
                check = check.fix(warnings.join("\n"));
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
            let anchor = if e.is_not_configured() {
                "not-configured"
            } else {
                "invalid-configuration"
            };
            let mut check = Check::new(
                CheckId::Configuration,
                Status::Fail,
                e.message().to_string(),
            )
            .docs(anchor);
            for (label, option, var) in [
                ("client id", o.client_id.as_deref(), AZURE_CLIENT_ID),
                ("tenant id", o.tenant_id.as_deref(), AZURE_TENANT_ID),
                ("authority", None, AZURE_AUTHORITY_HOST),
                (
                    "expected audience",
                    o.expected_audience.as_deref(),
                    AZURE_FEDERATED_TOKEN_AUDIENCE,
                ),
            ] {
                let shown = match (option, o.env.var(var)) {
                    (Some(v), _) => format!("{v:?} (from option)"),
                    (None, Some(v)) => format!("{v:?} (from env {var})"),
                    (None, None) => format!("not set (option or env {var})"),
                };
                check = check.detail(label, shown);
            }
            let fix = if e.is_not_configured() && aws {
                format!(
                    "Set the missing value: env {AZURE_CLIENT_ID} and {AZURE_TENANT_ID} (or --client-id and --tenant-id). \
                     With AWS outbound federation no token file is needed."
                )
            } else if e.is_not_configured() {
                format!(
                    "Set the missing value. In the pod spec: env {AZURE_CLIENT_ID}, {AZURE_TENANT_ID} and {AZURE_FEDERATED_TOKEN_FILE} \
                     (`azure-identity-k8s setup` prints a Deployment with them), or with the Azure Workload Identity webhook label the pod \
                     azure.workload.identity/use: \"true\" and annotate its ServiceAccount with azure.workload.identity/client-id."
                )
            } else {
                "Correct the value named above at its source (option or environment variable)."
                    .to_string()
            };
            check = check.fix(fix);
            // Best effort, so the token can still be examined.
            let token_file = if aws {
                None
            } else {
                config::locate_token_file(
                    o.token_file_path.as_deref(),
                    &o.env,
                    &o.well_known_token_paths,
                )
            };
            if let Some(t) = &token_file {
                check = check.detail("token file", with_source(&t.value.display(), &t.source));
            }
            d.push(check);
            let explicit = o
                .expected_audience
                .clone()
                .or_else(|| o.env.var(AZURE_FEDERATED_TOKEN_AUDIENCE));
            let audience_explicit = explicit.is_some();
            let expected_audience = explicit
                .or_else(|| {
                    o.env
                        .var(AZURE_AUTHORITY_HOST)
                        .and_then(|a| Url::parse(&a).ok())
                        .map(|u| config::default_audience_for(&u).to_string())
                })
                .unwrap_or_else(|| config::AUDIENCE_PUBLIC.to_string());
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
