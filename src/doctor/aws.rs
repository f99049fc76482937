//! The `aws-sts` check (cargo feature `aws`): the assertion is a JWT from AWS STS
//! `GetWebIdentityToken` instead of a token file. It replaces the `token-file`, `jwt`,
//! `audience` and `expiry` checks; the issuer-side checks and the exchange then run on that JWT.

use super::claims::judged;
use super::{Check, CheckId, Doctor, Found, Inputs, Status, fmt_from_now, opt};
use crate::assertion::STS_ANSWER_FIX;
use crate::assertion::{
    AssertionSource as _, AwsStsError, AwsWebIdentitySource, AwsWebIdentitySourceOptions,
};
use crate::clock::Clock;
use crate::error::CredentialError;
use crate::jwt;
use crate::problem::ProblemId;
use std::sync::Arc;

/// A failure of the source: STS's code, status, request id and message; the credential's own
/// problem, fix and URL.
fn failure(e: &CredentialError) -> Check {
    let what = e.message();
    let sts = std::error::Error::source(e).and_then(|s| s.downcast_ref::<AwsStsError>());
    let summary = match sts.and_then(AwsStsError::code) {
        Some(code) => format!("AWS STS GetWebIdentityToken failed with {code}"),
        None => what.lines().next().unwrap_or(what).to_string(),
    };
    let c = Check::new(CheckId::AwsSts, Status::Fail, summary);
    match sts {
        Some(sts) => c
            .detail("aws error code", opt(sts.code()))
            .detail(
                "http status",
                sts.http_status()
                    .map_or_else(|| "(none)".to_string(), |s| s.to_string()),
            )
            .detail("request id", opt(sts.request_id()))
            .detail("aws message", opt(sts.message())),
        None => c.detail("error", what.to_string()),
    }
    .error(e)
}

/// Validate the options, ask STS for a JWT, and report what Entra will see.
pub(super) async fn check(
    d: &mut Doctor,
    options: AwsWebIdentitySourceOptions,
    inputs: &Inputs,
    clock: Arc<dyn Clock>,
) -> Found {
    let source = match AwsWebIdentitySource::with_clock(options, clock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            d.push(failure(&e));
            return Found::default();
        }
    };
    // As `WorkloadIdentityCredential::from_aws` does: unless the options name one, request the
    // credential's expected audience.
    source.default_audience(&inputs.expected_audience);
    let mut found = Found {
        source: Some(source.clone()),
        ..Found::default()
    };
    let (probe, assertion) = match source.probe_and_keep().await {
        Ok(p) => p,
        Err(e) => {
            d.push(failure(&e).detail("source", source.describe()));
            return found;
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
            return found;
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
        .detail("expires", fmt_from_now(probe.expires_at, d.now));
    let notes = (probe.subject.contains(":assumed-role/"))
        .then(|| format!(
            "The subject {} is a session ARN; the federated credential must use exactly this value.",
            probe.subject
        ))
        .into_iter()
        .collect();
    // What Entra would refuse, as for a service-account token, with the AWS fixes; a token
    // without iss, sub or aud (AADSTS70021 comes first), or already expired, is not sent.
    let expired = probe.expires_at <= d.now;
    let check = if expired {
        check
            .outcome(
                Status::Fail,
                "the STS token cannot be a valid Entra assertion",
            )
            .fix("STS issued a token that has already expired: check this machine's clock (NTP).")
            .problem(ProblemId::AwsSts)
    } else {
        judged(check, &decoded, notes, true)
    };
    let sent = !expired && check.problem_id != Some(ProblemId::Aadsts(70021));
    d.push(check);
    if sent {
        found.audience = decoded.claims.aud.first().cloned().unwrap_or_default();
        found.jwt = Some((token, decoded));
        found.usable = true;
    }
    found
}
