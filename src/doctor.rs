//! The checks behind `azure-identity-k8s doctor`: from "it fails" to "it works". A library
//! module (feature `doctor`), so that a program can diagnose itself at start-up too.
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
//! A program can also log a report itself where a token request first fails:
//! [`log_report_once`].
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
mod report;
#[cfg(test)]
mod tests;
mod token_file;

pub use crate::scope::suggested_scope;
pub use report::{Check, CheckId, MatchingFederatedCredential, Report, Status};

use crate::assertion::token_file::fmt_time;
use crate::assertion::{AssertionSource, TokenFileSource};
use crate::clock::{Clock, SystemClock};
use crate::config::{ResolvedConfig, ValueSource};
use crate::credential::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use crate::escape::escape;
use crate::jwt::DecodedJwt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// What the token checks need: the resolved configuration (when it resolves), the expected
/// audience, and the credential's own source for the token file with where its path came from.
struct Inputs {
    config: Option<ResolvedConfig>,
    #[cfg(feature = "aws")]
    expected_audience: String,
    token_file: Option<(TokenFileSource, ValueSource)>,
}

/// What the assertion checks (token file, or AWS STS) found.
#[derive(Default)]
struct Found {
    /// The token and its decoded form, when there is one to examine.
    jwt: Option<(String, DecodedJwt)>,
    /// Whether the credential would send it.
    usable: bool,
    /// The audience the matching federated credential must carry.
    audience: String,
    /// The assertion source the exchange uses instead of the token file: the validated STS
    /// source, holding the probed JWT and its audience.
    source: Option<Arc<dyn AssertionSource>>,
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

    /// Report each of `ids` that has not run yet as skipped, because of `why`.
    fn skip(&mut self, ids: &[CheckId], why: &str) {
        for id in ids {
            if self.checks.iter().all(|c| c.id != *id) {
                self.checks
                    .push(Check::new(*id, Status::Skip, format!("skipped: {why}")));
            }
        }
    }
}

/// Run every check, in order. Never panics and never returns early: the report says what failed.
///
/// Reads the token file (or, with `options.aws`, asks AWS STS for a JWT), fetches the issuer's
/// discovery document and JWKS over HTTPS, and, unless `options.skip_exchange`, sends one token
/// request to Entra through a [`WorkloadIdentityCredential`] built from `options.credential`.
pub async fn run(options: DoctorOptions) -> Report {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut d = Doctor {
        now: clock.now(),
        checks: Vec::new(),
    };
    let credential = options.credential;
    #[cfg(feature = "aws")]
    let aws = options.aws;
    #[cfg(not(feature = "aws"))]
    let aws: Option<std::convert::Infallible> = None;

    // 1. configuration
    let inputs = configuration::check(&mut d, &credential, aws.is_some());
    // 2-5 (or aws-sts): the assertion
    let found = match aws {
        None => token_file::check(&mut d, &inputs),
        #[cfg(feature = "aws")]
        Some(o) => aws::check(&mut d, o, &inputs, clock.clone()).await,
    };
    // 6-9. issuer, discovery, JWKS, signature
    if let Some((token, jwt)) = &found.jwt {
        let client_options = credential.credential_options.client_options.clone();
        if let Err(why) = issuer::check(&mut d, token, jwt, client_options).await {
            d.skip(issuer::CHECKS, why);
        }
    }
    d.skip(issuer::CHECKS, "no token");
    // 10, 11. scope, exchange
    let scope_ok = exchange::check_scope(&mut d, &options.scope);
    let skip = if options.skip_exchange {
        Some("not requested (--no-exchange)")
    } else if !found.usable || inputs.config.is_none() {
        Some(
            "the credential would refuse this configuration or token locally; fix the failures above first",
        )
    } else if !scope_ok {
        Some("the scope is invalid")
    } else {
        None
    };
    let matching_federated_credential = found.jwt.as_ref().and_then(|(_, jwt)| {
        Some(MatchingFederatedCredential {
            issuer: jwt.claims.iss.clone()?,
            subject: jwt.claims.sub.clone()?,
            audience: found.audience.clone(),
        })
    });
    match (skip, &inputs.config, &found.jwt) {
        (None, Some(config), Some(_)) => {
            // The credential built as the application builds it.
            let built = WorkloadIdentityCredential::build(credential, found.source.clone(), clock);
            let matching = matching_federated_credential.as_ref();
            exchange::check(&mut d, built, &options.scope, config, matching).await;
        }
        (why, ..) => d.skip(&[CheckId::Exchange], why.unwrap_or("no token")),
    }

    Report {
        ok: !d.checks.iter().any(|c| c.status == Status::Fail),
        scope: options.scope,
        checks: d.checks,
        matching_federated_credential,
    }
}

/// Log one doctor report, the first time it is called in the process (later calls return
/// `false` at once): a WARN record per check that warned or failed (`check`, `status`,
/// `problem_id`, `fix`, `url` as fields, its summary as the message), then one with the whole
/// report as one line of JSON. Call it where `get_token` fails, and the pod's own logs hold the
/// diagnosis made with its token, network and clock; no second binary is needed. Runs as [`run`]
/// (one token request to Entra unless `options.skip_exchange`).
///
/// ```no_run
/// # async fn example(credential: std::sync::Arc<azure_identity_k8s::WorkloadIdentityCredential>) {
/// use azure_core::credentials::TokenCredential as _;
/// use azure_identity_k8s::doctor::{self, DoctorOptions};
/// if credential.get_token(&["https://storage.azure.com/.default"], None).await.is_err() {
///     doctor::log_report_once(DoctorOptions::default()).await;
/// }
/// # }
/// ```
pub async fn log_report_once(options: DoctorOptions) -> bool {
    static RAN: AtomicBool = AtomicBool::new(false);
    if RAN.swap(true, Ordering::SeqCst) {
        return false;
    }
    let report = run(options).await;
    for c in report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Warn | Status::Fail))
    {
        tracing::warn!(
            check = %c.id,
            status = ?c.status,
            problem_id = c.problem_id.map(tracing::field::display),
            fix = c.fix.as_deref().map(|f| tracing::field::display(escape(f))),
            url = c.url.as_deref(),
            "doctor: {}",
            escape(&c.summary)
        );
    }
    let json = serde_json::to_string(&report).unwrap_or_default();
    tracing::warn!(ok = report.ok, report = %json, "doctor report");
    true
}

/// A value and where it came from: `value (from env AZURE_CLIENT_ID)`, the value escaped.
fn with_source<T: std::fmt::Display>(v: &T, source: &ValueSource) -> String {
    let from = match source {
        ValueSource::Options => "option".into(),
        ValueSource::EnvVar(v) => format!("env {v}"),
        ValueSource::WellKnownPath => "discovered webhook path".into(),
        ValueSource::Default => "default".into(),
    };
    format!("{} (from {from})", escape(&v.to_string()))
}

/// `1d02h`, `1h02m`, `1m30s`, `5s`, negative with a `-`.
fn fmt_duration(d: Duration) -> String {
    let s = d.whole_seconds().abs();
    let sign = if d.is_negative() { "-" } else { "" };
    match s {
        86400.. => format!("{sign}{}d{:02}h", s / 86400, (s % 86400) / 3600),
        3600.. => format!("{sign}{}h{:02}m", s / 3600, (s % 3600) / 60),
        60.. => format!("{sign}{}m{:02}s", s / 60, s % 60),
        _ => format!("{sign}{s}s"),
    }
}

/// A time and how far it is from now: `2026-01-01T00:00:00Z (in 5m00s)` or `(... ago)`.
fn fmt_from_now(t: OffsetDateTime, now: OffsetDateTime) -> String {
    if t >= now {
        format!("{} (in {})", fmt_time(t), fmt_duration(t - now))
    } else {
        format!("{} ({} ago)", fmt_time(t), fmt_duration(now - t))
    }
}

/// A value from the token, escaped, or `(absent)`.
fn opt(s: Option<&str>) -> String {
    s.map(|s| escape(s).into_owned())
        .unwrap_or_else(|| "(absent)".into())
}
