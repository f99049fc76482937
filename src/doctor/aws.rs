//! The `aws-sts` check (cargo feature `aws`): the assertion is a JWT from AWS STS
//! `GetWebIdentityToken` instead of a token file. It replaces the `token-file`, `jwt`,
//! `audience` and `expiry` checks; the issuer-side checks and the exchange then run on that JWT.

use super::claims::alg_problem;
use super::{Check, CheckId, Doctor, Inputs, Status, fmt_duration, fmt_time, opt};
use crate::assertion::STS_ANSWER_FIX;
use crate::assertion::{
    AssertionSource as _, AwsStsError, AwsWebIdentitySource, AwsWebIdentitySourceOptions,
};
use crate::clock::Clock;
use crate::config::ResolvedConfig;
use crate::error::CredentialError;
use crate::jwt::{self, DecodedJwt};
use crate::problem::ProblemId;
use crate::shell::shell_quote;
use std::sync::Arc;

/// What the `aws-sts` check produced.
pub(super) struct Sts {
    /// The validated source, holding the probed JWT in its cache (for the exchange).
    pub source: Option<Arc<AwsWebIdentitySource>>,
    /// The JWT and its decoded form, when STS issued a usable one.
    pub jwt: Option<(String, DecodedJwt)>,
}

fn failure(e: &CredentialError) -> Check {
    let what = e.message();
    let sts = std::error::Error::source(e).and_then(|s| s.downcast_ref::<AwsStsError>());
    let summary = match sts.and_then(AwsStsError::code) {
        Some(code) => format!("AWS STS GetWebIdentityToken failed with {code}"),
        None => what.lines().next().unwrap_or(what).to_string(),
    };
    let mut c = Check::new(CheckId::AwsSts, Status::Fail, summary);
    match sts {
        Some(sts) => {
            c = c
                .detail("aws error code", opt(sts.code()))
                .detail(
                    "http status",
                    sts.http_status()
                        .map_or_else(|| "(none)".to_string(), |s| s.to_string()),
                )
                .detail("request id", opt(sts.request_id()))
                .detail("aws message", opt(sts.message()));
        }
        None => c = c.detail("error", what.to_string()),
    }
    // The credential's own problem, fix and URL.
    c.error(e)
}

/// Validate the options, ask STS for a JWT, and report what Entra will see.
pub(super) async fn check_sts(
    d: &mut Doctor,
    options: AwsWebIdentitySourceOptions,
    inputs: &Inputs,
    clock: Arc<dyn Clock>,
) -> Sts {
    let source = match AwsWebIdentitySource::with_clock(options, clock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            d.push(failure(&e));
            return Sts {
                source: None,
                jwt: None,
            };
        }
    };
    // As `WorkloadIdentityCredential::from_aws` does: unless the options name one, request the
    // credential's expected audience.
    source.default_audience(&inputs.expected_audience);
    let (probe, assertion) = match source.probe_and_keep().await {
        Ok(p) => p,
        Err(e) => {
            d.push(failure(&e).detail("source", source.describe()));
            return Sts {
                source: Some(source),
                jwt: None,
            };
        }
    };
    let token = assertion.secret().to_string();
    let decoded = match jwt::decode(&token) {
        Ok(j) => j,
        Err(shape) => {
            d.push(
                Check::new(
                    CheckId::AwsSts,
                    Status::Fail,
                    format!("AWS STS answered something that is not a JWT: {shape}"),
                )
                .fix(STS_ANSWER_FIX)
                .problem(ProblemId::AwsSts),
            );
            return Sts {
                source: Some(source),
                jwt: None,
            };
        }
    };
    let h = &decoded.header;
    let mut check = Check::new(
        CheckId::AwsSts,
        Status::Ok,
        format!("AWS STS issued a web identity token for {}", probe.subject),
    )
    .detail("source", source.describe())
    .detail("region", probe.region.clone());
    if let Some(url) = &probe.endpoint_url {
        check = check.detail("endpoint", url.clone());
    }
    check = check
        .detail("issuer", probe.issuer.clone())
        .detail("subject", probe.subject.clone())
        .detail("audience", probe.audiences.join(", "))
        .detail("alg", opt(h.alg.as_deref()))
        .detail("kid", opt(h.kid.as_deref()))
        .detail(
            "expires",
            format!(
                "{} (in {})",
                fmt_time(probe.expires_at),
                fmt_duration(probe.expires_at - d.now)
            ),
        );
    let mut fatal = Vec::new();
    let mut notes = Vec::new();
    let alg = alg_problem(h.alg.as_deref());
    if probe.issuer.is_empty() || probe.subject.is_empty() || probe.audiences.is_empty() {
        fatal.push("The token lacks iss, sub or aud; Entra needs all three. Check that the STS endpoint is AWS STS.".into());
    }
    if probe.subject.contains(":assumed-role/") {
        notes.push(format!(
            "The subject {} is a session ARN; the federated credential must use exactly this value.",
            probe.subject
        ));
    }
    if h.kid.is_none() {
        notes
            .push("No kid in the header: Entra cannot pick the key from the issuer's JWKS.".into());
    }
    if probe.expires_at <= d.now {
        fatal.push(
            "STS issued a token that has already expired: check this machine's clock (NTP).".into(),
        );
    }
    let ok = fatal.is_empty();
    if let (Some(alg), true) = (&alg, ok) {
        // AADSTS5002738, caught here: the catalogue's problem and fix (the AWS one).
        check.status = Status::Fail;
        check.summary = alg.clone();
        if !notes.is_empty() {
            check = check.detail("remarks", notes.join("\n"));
        }
        check = check
            .fix(crate::entra::catalogue::AWS_RS256_FIX)
            .problem(ProblemId::Aadsts(5002738));
    } else if !ok {
        check.status = Status::Fail;
        check.summary = "the STS token cannot be a valid Entra assertion".into();
        fatal.extend(alg);
        fatal.extend(notes);
        check = check.fix(fatal.join("\n")).problem(ProblemId::AwsSts);
    } else if !notes.is_empty() {
        check.status = Status::Warn;
        check = check.fix(notes.join("\n"));
    }
    d.push(check);
    Sts {
        source: Some(source),
        jwt: ok.then_some((token, decoded)),
    }
}

/// The federated credential an STS token needs: the account's issuer, the role ARN, the audience.
pub(super) fn fic_fix(config: &ResolvedConfig, jwt: &DecodedJwt, audience: &str) -> String {
    let c = &jwt.claims;
    let iss = c.iss.clone().unwrap_or_default();
    let sub = c.sub.clone().unwrap_or_default();
    let client = &config.client_id.value;
    let role: String = sub
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                ch
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    let name = format!("aws-{role}");
    let parameters = serde_json::json!({
        "name": name,
        "issuer": iss,
        "subject": sub,
        "audiences": [audience],
    });
    let q = |v: &str| shell_quote(v);
    format!(
        "Give application {client} a federated identity credential with exactly (case-sensitive):\n  issuer:   {iss}\n  subject:  {sub}\n  audience: {audience}\n\
         The issuer is the AWS account's outbound-federation issuer (`aws iam get-outbound-web-identity-federation-info`, no trailing slash); \
         the subject is the ARN of the IAM role the workload runs as (the role, with its path, not an assumed-role session). \
         A credential created in the last few minutes may still be propagating; wait a minute and retry.\n\
         For a user-assigned managed identity:\n  az identity federated-credential create --name {} --identity-name <identity> --resource-group <group> \
         --issuer {} --subject {} --audiences {}\n\
         For an app registration:\n  az ad app federated-credential create --id {} --parameters {}",
        q(&name),
        q(&iss),
        q(&sub),
        q(audience),
        q(client),
        q(&parameters.to_string()),
    )
}
