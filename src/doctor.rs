//! The checks behind `azure-identity-k8s doctor`: from "it fails" to "it works".
//!
//! [`run`] walks the whole path a token takes, in order, and returns a [`Report`]: one [`Check`]
//! per step with its outcome, what it looked at, and for every warning or failure the exact fix.
//!
//! | # | check | looks at |
//! |---|---|---|
//! | 1 | `configuration` | client id, tenant id, token file, authority, expected audience, and which source supplied each (option, environment variable, well-known path, default) |
//! | 2 | `token-file` | path, symlink layout (the kubelet's `..data` atomic writer), age, readable, size |
//! | 3 | `jwt` | the token is a JWT; `alg`, `kid`, `iss`, `sub`, `aud`, `iat`, `exp`, the `kubernetes.io` namespace, service account and pod |
//! | 4 | `audience` | the expected audience is in `aud`; AWS and cluster audiences are refused |
//! | 5 | `expiry` | not expired; not older than 80 % of its lifetime (else the kubelet is not rotating it) |
//! | 6 | `issuer` | HTTPS, no whitespace, trailing slash, a name Entra can resolve |
//! | 7 | `discovery` | `{iss}/.well-known/openid-configuration` fetched from here over HTTPS |
//! | 8 | `jwks` | its `jwks_uri` fetched, and the token's `kid` in it |
//! | 9 | `signature` | the RS256/RS384/RS512 signature verified with that key, as Entra does |
//! | 10 | `scope` | the test scope has the `<resource>/.default` form |
//! | 11 | `exchange` | a real token request through [`WorkloadIdentityCredential`]; on an Entra error, the AADSTS code explained and the federated credential that would match |
//!
//! With cargo feature `aws` and `DoctorOptions::aws` set, the assertion is a JWT from AWS STS
//! `GetWebIdentityToken` (IAM outbound identity federation, [`aws_outbound`](crate::aws_outbound)) instead of a
//! token file: checks 2 to 5 are replaced by one `aws-sts` check (the options, then a JWT from
//! STS with its issuer, role-ARN subject, audience and expiry, or the AWS error code and its fix),
//! checks 6 to 9 run on that JWT's issuer and `kid`, and the exchange goes through the credential
//! of `WorkloadIdentityCredential::from_aws`, with the same JWT. On AADSTS70021 the fix names the
//! federated credential to create: the account's issuer, the role ARN, the audience.
//!
//! A check whose input is missing (no token, no JWKS, ...) is skipped, and says why. The exchange
//! runs whenever the token passes the local checks, even if the issuer looks unreachable from
//! here: Entra's view (from the public internet) is the one that counts.
//!
//! ```no_run
//! # async fn example() {
//! use azure_identity_k8s::doctor::{self, DoctorOptions};
//! let report = doctor::run(DoctorOptions::default()).await;
//! print!("{report}");
//! if let Some(first) = report.first_failure() {
//!     eprintln!("fix {} first: {}", first.id, first.fix.as_deref().unwrap_or(""));
//! }
//! # }
//! ```

#[cfg(feature = "aws")]
mod aws;
mod claims;
mod configuration;
mod exchange;
mod issuer;
mod oidc;
mod report;
#[cfg(test)]
mod tests;
mod token_file;

pub use crate::scope::suggested_scope;
pub use report::{Check, CheckId, MatchingFederatedCredential, Report, Status};

use crate::assertion::foreign::ForeignPath;
use crate::assertion::token_file::AudienceVerdict;
use crate::clock::{Clock, SystemClock};
use crate::config::{ResolvedConfig, Sourced, ValueSource};
use crate::credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use std::path::PathBuf;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The scope of the test exchange when none is given: Azure Storage exists in every cloud, and
/// Entra issues an app-only token for it whether or not the identity has any role there.
pub const DEFAULT_SCOPE: &str = crate::cloud::STORAGE_SCOPE;

/// What to check.
#[derive(Debug)]
pub struct DoctorOptions {
    /// The credential's options, exactly as the application passes them (transport, client id,
    /// environment, ...). Unset values fall back to the environment as in the credential.
    pub credential: WorkloadIdentityCredentialOptions,
    /// The scope of the test exchange. Default [`DEFAULT_SCOPE`].
    pub scope: String,
    /// Do not contact Entra (the exchange is reported as skipped).
    pub skip_exchange: bool,
    /// Check AWS outbound identity federation instead of a token file: the assertion comes from
    /// AWS STS `GetWebIdentityToken` with these options, as with
    /// [`WorkloadIdentityCredential::from_aws`]. Default: unset.
    #[cfg(feature = "aws")]
    pub aws: Option<crate::assertion::AwsWebIdentitySourceOptions>,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            credential: WorkloadIdentityCredentialOptions::default(),
            scope: DEFAULT_SCOPE.to_string(),
            skip_exchange: false,
            #[cfg(feature = "aws")]
            aws: None,
        }
    }
}

/// Run every check, in order. Never panics and never returns early: the report says what failed.
///
/// Reads the token file (or, with `options.aws`, asks AWS STS for a JWT), fetches the issuer's
/// discovery document and JWKS over HTTPS, and, unless `options.skip_exchange`, sends one token
/// request to Entra through a [`WorkloadIdentityCredential`] built from `options.credential`.
pub async fn run(options: DoctorOptions) -> Report {
    run_with_clock(options, Arc::new(SystemClock)).await
}

/// The values the token checks need, from the resolved configuration or, when resolution failed,
/// from whatever could be found.
struct Inputs {
    config: Option<ResolvedConfig>,
    token_file: Option<Sourced<PathBuf>>,
    expected_audience: String,
    /// Whether the user set the expected audience (option or environment variable): only then
    /// does the credential refuse a token without it.
    audience_explicit: bool,
    /// `allow_foreign_audience` of the credential's options.
    allow_foreign_audience: bool,
    /// The well-known credential files the credential refuses to read.
    denied_paths: Vec<(PathBuf, ForeignPath)>,
}

struct Doctor {
    now: OffsetDateTime,
    checks: Vec<Check>,
}

impl Doctor {
    fn push(&mut self, check: Check) -> Status {
        let s = check.status;
        self.checks.push(check);
        s
    }

    fn skip(&mut self, id: CheckId, why: &str) {
        self.checks
            .push(Check::new(id, Status::Skip, format!("skipped: {why}")));
    }
}

pub(crate) async fn run_with_clock(
    #[cfg_attr(not(feature = "aws"), allow(unused_mut))] mut options: DoctorOptions,
    clock: Arc<dyn Clock>,
) -> Report {
    #[cfg(feature = "aws")]
    let aws_options = options.aws.take();
    #[cfg(feature = "aws")]
    let mut aws_source = None;
    let DoctorOptions {
        credential,
        scope,
        skip_exchange,
        ..
    } = options;
    let mut d = Doctor {
        now: clock.now(),
        checks: Vec::new(),
    };
    let client_options = credential.credential_options.client_options.clone();

    // 1. configuration
    #[cfg(feature = "aws")]
    let inputs = configuration::check(&mut d, &credential, aws_options.is_some());
    #[cfg(not(feature = "aws"))]
    let inputs = configuration::check(&mut d, &credential, false);
    let mut usable = inputs.config.is_some();
    // The audience the federated credential must carry (the JWT's own, or the credential's
    // audience verdict on the token file).
    let mut fic_audience = inputs.expected_audience.clone();

    // 2-5, or aws-sts: the assertion
    #[cfg_attr(not(feature = "aws"), allow(unused_labels))]
    let (token, decoded) = 'assertion: {
        #[cfg(feature = "aws")]
        if let Some(o) = aws_options {
            let sts = aws::check_sts(&mut d, o, &inputs, clock.clone()).await;
            aws_source = sts.source;
            usable &= sts.jwt.is_some();
            if let Some(aud) = sts.jwt.as_ref().and_then(|(_, j)| j.claims.aud.first()) {
                fic_audience = aud.clone();
            }
            break 'assertion sts.jwt.unzip();
        }
        let (token, decoded) = token_file::file_assertion(&mut d, &inputs, &mut usable);
        if let Some(jwt) = &decoded {
            fic_audience = AudienceVerdict::of(
                &jwt.claims,
                &inputs.expected_audience,
                inputs.audience_explicit,
                inputs.allow_foreign_audience,
            )
            .credential_audience(&jwt.claims, &inputs.expected_audience);
        }
        (token, decoded)
    };

    // 6-9. issuer, discovery, JWKS, signature
    match (&token, &decoded) {
        (Some(token), Some(jwt)) => issuer::check(&mut d, token, jwt, client_options).await,
        _ => {
            for id in [
                CheckId::Issuer,
                CheckId::Discovery,
                CheckId::Jwks,
                CheckId::Signature,
            ] {
                d.skip(id, "no token");
            }
        }
    }

    // 10. scope
    let scope_ok = exchange::check_scope(&mut d, &scope);

    // 11. exchange
    if skip_exchange {
        d.skip(CheckId::Exchange, "not requested (--no-exchange)");
    } else if !usable {
        d.skip(CheckId::Exchange, "the credential would refuse this configuration or token locally; fix the failures above first");
    } else if !scope_ok {
        d.skip(CheckId::Exchange, "the scope is invalid");
    } else if let (Some(config), Some(jwt)) = (&inputs.config, &decoded) {
        #[cfg_attr(not(feature = "aws"), allow(unused_labels))]
        let (built, fix) = 'built: {
            #[cfg(feature = "aws")]
            if let Some(source) = aws_source {
                break 'built (
                    WorkloadIdentityCredential::from_aws_source(credential, source, clock),
                    aws::fic_fix(config, jwt, &fic_audience),
                );
            }
            (
                WorkloadIdentityCredential::build(credential, None, clock),
                exchange::fic_fix(config, jwt, &fic_audience),
            )
        };
        exchange::check(&mut d, built, &scope, config, fix).await;
    }

    let matching_federated_credential = decoded
        .as_ref()
        .and_then(|jwt| exchange::matching_fic(jwt, &fic_audience));
    let ok = !d.checks.iter().any(|c| c.status == Status::Fail);
    Report {
        ok,
        scope,
        checks: d.checks,
        matching_federated_credential,
    }
}

pub(super) fn source_text(source: &ValueSource) -> String {
    match source {
        ValueSource::Options => "option".into(),
        ValueSource::EnvVar(v) => format!("env {v}"),
        ValueSource::WellKnownPath => "discovered webhook path".into(),
        ValueSource::Default => "default".into(),
    }
}

pub(super) fn with_source<T: std::fmt::Display>(v: &T, source: &ValueSource) -> String {
    format!(
        "{} (from {})",
        crate::escape::escape(&v.to_string()),
        source_text(source)
    )
}

pub(super) fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub(super) fn fmt_duration(d: Duration) -> String {
    let s = d.whole_seconds().abs();
    let sign = if d.is_negative() { "-" } else { "" };
    if s >= 86400 {
        format!("{sign}{}d{:02}h", s / 86400, (s % 86400) / 3600)
    } else if s >= 3600 {
        format!("{sign}{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{sign}{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{sign}{s}s")
    }
}

pub(super) fn opt(s: Option<&str>) -> String {
    // A value from the token: escaped (see `crate::escape`).
    s.map(|s| crate::escape::escape(s).into_owned())
        .unwrap_or_else(|| "(absent)".into())
}

pub(super) fn opt_time(t: Option<OffsetDateTime>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "(absent)".into())
}
