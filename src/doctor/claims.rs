//! Checks 3 to 5, `jwt`, `audience` and `expiry`: the assertion's header and claims, judged by
//! the credential's own checks ([`decode_token`], [`TokenFileSource::check_audience`],
//! [`TokenFileSource::check_times`]) and by what Entra refuses (the catalogue's entries and fixes).

use super::{Check, CheckId, Doctor, Status, fmt_duration, fmt_from_now, fmt_time, opt};
use crate::assertion::TokenFileSource;
use crate::assertion::token_file::{AudienceVerdict, CLOCK_SKEW, decode_token};
use crate::entra::catalogue;
use crate::jwt::DecodedJwt;
use crate::problem::ProblemId;
use std::time::SystemTime;
use time::Duration;

/// The kubelet replaces a projected token at 80 % of its lifetime, or after 24 h.
const ROTATION_FRACTION: f64 = 0.8;
const ROTATION_CAP: Duration = Duration::hours(24);
/// A little slack past the kubelet's deadline before calling it late (its sync period + jitter).
const ROTATION_GRACE: Duration = Duration::minutes(2);

/// The JWS algorithms Entra accepts on a client assertion; any other fails with AADSTS5002738.
pub(super) const ENTRA_ALGORITHMS: [&str; 3] = ["RS256", "RS384", "RS512"];

/// `check` judged by what Entra would refuse in `jwt` although the credential sends it (as
/// azure_identity does), in the order Entra checks: the federated credential's match (iss, sub,
/// aud: AADSTS70021), the algorithm (AADSTS5002738), then exp (AADSTS50027). Failed with the
/// first refusal, its catalogue entry and the fix the credential gives for Entra's answer (for an
/// AWS STS token, the AWS one); what Entra would refuse next once that is fixed and the `remarks`
/// (and a missing `kid`) as details. Else warned with the remarks as the fix.
pub(super) fn judged(
    mut check: Check,
    jwt: &DecodedJwt,
    mut remarks: Vec<String>,
    aws: bool,
) -> Check {
    let (alg, c) = (jwt.header.alg.as_deref(), &jwt.claims);
    let missing = catalogue::missing_claims(c);
    let unmatched: Vec<_> = missing.iter().filter(|m| **m != "exp").copied().collect();
    let mut refusals = Vec::new();
    if !unmatched.is_empty() {
        refusals.push((
            format!(
                "the token has no usable {}, so no federated identity credential can match it (else AADSTS70021)",
                unmatched.join(", ")
            ),
            ProblemId::Aadsts(70021),
        ));
    }
    if !alg.is_some_and(|a| ENTRA_ALGORITHMS.contains(&a)) {
        refusals.push((
            format!(
                "the token is signed with {}, but Entra accepts only RS256, RS384 or RS512 (else AADSTS5002738)",
                opt(alg)
            ),
            ProblemId::Aadsts(5002738),
        ));
    }
    if missing.contains(&"exp") {
        refusals.push((
            match c.exp {
                None => "the token has no exp, which Entra needs (else AADSTS50027)".to_string(),
                Some(exp) => format!(
                    "the token's exp {exp} is not a representable date, and Entra needs a valid exp (else AADSTS50027)"
                ),
            },
            ProblemId::Aadsts(50027),
        ));
    }
    if jwt.header.kid.is_none() {
        remarks
            .push("No kid in the header: Entra cannot pick the key from the issuer's JWKS.".into());
    }
    let mut refusals = refusals.into_iter();
    let Some((summary, problem)) = refusals.next() else {
        if !remarks.is_empty() {
            check.status = Status::Warn;
            check = check.fix(remarks.join("\n"));
        }
        return check;
    };
    remarks.extend(refusals.map(|(summary, _)| summary));
    if !remarks.is_empty() {
        check = check.detail("remarks", remarks.join("\n"));
    }
    // AADSTS50027's fix also for a token AADSTS70021 cannot match.
    let fix = match problem {
        ProblemId::Aadsts(5002738) if aws => catalogue::AWS_RS256_FIX,
        ProblemId::Aadsts(5002738) => problem.fix().unwrap_or_default(),
        _ if aws => catalogue::AWS_MALFORMED_FIX,
        _ => ProblemId::Aadsts(50027).fix().unwrap_or_default(),
    };
    check
        .outcome(Status::Fail, summary)
        .fix(fix)
        .problem(problem)
}

/// Check 3: the token is a JWT; its header and claims, and what Entra would refuse.
pub(super) fn check_jwt(d: &mut Doctor, token: &str) -> Option<DecodedJwt> {
    let decoded = match decode_token(token) {
        Ok(j) => j,
        Err(problem) => {
            let summary = format!("the token file {}", problem.what);
            let check = Check::new(CheckId::Jwt, Status::Fail, summary);
            d.push(check.fix(problem.fix).problem(problem.problem));
            return None;
        }
    };
    let (h, c) = (&decoded.header, &decoded.claims);
    let k = c.kubernetes.clone().unwrap_or_default();
    let sa = k.serviceaccount.as_ref().and_then(|s| s.name.as_deref());
    let time = |t: Option<time::OffsetDateTime>| t.map_or_else(|| "(absent)".into(), fmt_time);
    let check = Check::new(CheckId::Jwt, Status::Ok, "a service-account JWT")
        .detail("alg", opt(h.alg.as_deref()))
        .detail("kid", opt(h.kid.as_deref()))
        .detail("iss", opt(c.iss.as_deref()))
        .detail("sub", opt(c.sub.as_deref()))
        .detail("aud", c.audiences_display())
        .detail("iat", time(c.issued_at()))
        .detail("exp", time(c.expires_at()))
        .detail("namespace", opt(k.namespace.as_deref()))
        .detail("service account", opt(sa))
        .detail("pod", opt(k.pod.as_ref().and_then(|s| s.name.as_deref())));
    let mut remarks = Vec::new();
    match (c.sub.as_deref(), k.namespace.as_deref(), sa) {
        (Some(sub), Some(ns), Some(sa)) => {
            let expected = format!("system:serviceaccount:{ns}:{sa}");
            if sub != expected {
                remarks.push(format!("sub is {sub:?} but the kubernetes.io claim says {expected:?}; the federated credential must use the sub value."));
            }
        }
        _ if c.kubernetes.is_none() => remarks.push("No kubernetes.io claim: this is not a bound (projected) service-account token. Legacy Secret-based tokens never expire and should not be used.".into()),
        _ => {}
    }
    d.push(judged(check, &decoded, remarks, false));
    Some(decoded)
}

/// Check 4: the credential's own audience check ([`TokenFileSource::check_audience`]: its
/// refusal, problem and fix), and what it only warns about; `false` when it refuses the token.
pub(super) fn check_audience(d: &mut Doctor, jwt: &DecodedJwt, source: &TokenFileSource) -> bool {
    let (c, expected) = (&jwt.claims, &source.expected_audience);
    let aud = c.audiences_display();
    let check = Check::new(
        CheckId::Audience,
        Status::Ok,
        format!("the token carries {expected}"),
    )
    .detail("token aud", aud.clone())
    .detail("expected", expected.clone());
    let verdict = source.verdict(c);
    let warning = match verdict {
        AudienceVerdict::AllowedForeign(foreign) => format!(
            "sent because allow_foreign_audience is set, though the token is also a credential for {}",
            foreign.describe()
        ),
        // As azure_identity: sent; Entra accepts it only if the federated credential has it.
        AudienceVerdict::Custom => format!(
            "the token's audience is {aud}, not the default {expected}; sent, and the federated credential must have it"
        ),
        _ => String::new(),
    };
    d.push(match source.check_audience(c) {
        Err(e) => check.refused(&e),
        Ok(()) if warning.is_empty() => check,
        // The credential's entry and fix for what it sends with a warning.
        Ok(()) => {
            let (problem, fix) = source.audience_problem(c, verdict);
            check
                .outcome(Status::Warn, warning)
                .fix(fix)
                .problem(problem)
        }
    }) != Status::Fail
}

/// Check 5: the credential's own time check ([`TokenFileSource::check_times`]: expired, not yet
/// valid), then what Entra refuses (a lifetime over a day) and a file the kubelet should have
/// replaced; `false` when the credential refuses the token.
pub(super) fn check_expiry(
    d: &mut Doctor,
    jwt: &DecodedJwt,
    source: &TokenFileSource,
    modified: Option<SystemTime>,
) -> bool {
    let (c, now) = (&jwt.claims, d.now);
    let Some(exp) = c.expires_at() else {
        // The credential sends it (Entra refuses it: see `jwt`), so the exchange still runs.
        d.skip(
            &[CheckId::Expiry],
            "the token has no usable exp (see `jwt`)",
        );
        return true;
    };
    // An expired token within the clock skew is still sent: "expired", never "valid for -6s".
    let (state, summary) = match exp - now {
        left if left.is_negative() => {
            let state = format!(
                "expired {} ago, within the {} clock skew the credential and Entra allow",
                fmt_duration(-left),
                fmt_duration(CLOCK_SKEW)
            );
            (state.clone(), state)
        }
        left => (
            "valid".into(),
            format!("valid for another {}", fmt_duration(left)),
        ),
    };
    let mut check =
        Check::new(CheckId::Expiry, Status::Ok, summary).detail("expires", fmt_from_now(exp, now));
    // (lifetime, when the kubelet should have replaced it)
    let rotation = c.issued_at().map(|iat| {
        let lifetime = exp - iat;
        (
            iat,
            lifetime,
            iat + std::cmp::min(lifetime * ROTATION_FRACTION, ROTATION_CAP),
        )
    });
    if let Some((iat, lifetime, deadline)) = rotation {
        check = check
            .detail("issued", fmt_from_now(iat, now))
            .detail("lifetime", fmt_duration(lifetime))
            .detail("kubelet replaces it by", fmt_time(deadline));
    }
    let max_lifetime = Duration::seconds(catalogue::MAX_EXTERNAL_TOKEN_LIFETIME_S);
    let refused = source.check_times(c, modified).err();
    let check = match (&refused, rotation) {
        (Some(e), _) => check.refused(e),
        // Entra refuses it (AADSTS70023), but the credential sends it: the exchange still runs.
        (None, Some((_, lifetime, _))) if lifetime > max_lifetime => check
            .outcome(
                Status::Fail,
                format!(
                    "{state}, but its lifetime (exp - iat) of {} s is over the {} s Entra accepts for an external token (else AADSTS70023)",
                    lifetime.whole_seconds(),
                    max_lifetime.whole_seconds()
                ),
            )
            .problem(ProblemId::Aadsts(70023)),
        (None, Some((_, _, deadline))) if now > deadline + ROTATION_GRACE => check
            .outcome(
                Status::Warn,
                format!(
                    "{state}, but {} past the time the kubelet should have replaced it",
                    fmt_duration(now - deadline)
                ),
            )
            .problem(ProblemId::TokenExpired),
        _ => check,
    };
    d.push(check);
    refused.is_none()
}
