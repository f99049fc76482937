//! Checks 3 to 5, `jwt`, `audience` and `expiry`: the assertion's header and claims, judged by
//! the credential's rules ([`decode_token`], [`AudienceVerdict`], [`CLOCK_SKEW`]) and by what
//! Entra refuses (the catalogue's entries and fixes).

use super::{Check, CheckId, Doctor, Inputs, Status, fmt_duration, fmt_from_now, fmt_time, opt};
use crate::assertion::token_file::{
    AudienceVerdict, CLOCK_SKEW, audience_fix, decode_token, dedicated_token_fix,
};
use crate::entra::catalogue;
use crate::jwt::DecodedJwt;
use crate::problem::ProblemId;
use time::Duration;

/// The kubelet replaces a projected token at 80 % of its lifetime, or after 24 h.
const ROTATION_FRACTION: f64 = 0.8;
const ROTATION_CAP: Duration = Duration::hours(24);
/// A little slack past the kubelet's deadline before calling it late (its sync period + jitter).
const ROTATION_GRACE: Duration = Duration::minutes(2);

/// The JWS algorithms Entra accepts on a client assertion; any other fails with AADSTS5002738.
pub(super) const ENTRA_ALGORITHMS: [&str; 3] = ["RS256", "RS384", "RS512"];

/// What is wrong when Entra would refuse a token signed with `alg` (AADSTS5002738; the fix is
/// the catalogue's, by where the token comes from).
pub(super) fn alg_problem(alg: Option<&str>) -> Option<String> {
    match alg {
        Some(a) if ENTRA_ALGORITHMS.contains(&a) => None,
        other => Some(format!(
            "the token is signed with {}, but Entra accepts only RS256, RS384 or RS512 (else AADSTS5002738)",
            opt(other)
        )),
    }
}

/// The remark on a token without `kid` (checks `jwt` and `aws-sts`).
pub(super) const NO_KID: &str =
    "No kid in the header: Entra cannot pick the key from the issuer's JWKS.";

/// Check 3: the token is a JWT; its header and claims, and what Entra would refuse.
pub(super) fn check_jwt(d: &mut Doctor, token: &str) -> Option<DecodedJwt> {
    let decoded = match decode_token(token) {
        Ok(j) => j,
        Err(problem) => {
            d.push(
                Check::new(
                    CheckId::Jwt,
                    Status::Fail,
                    format!("the token file {}", problem.what),
                )
                .fix(problem.fix)
                .problem(problem.problem),
            );
            return None;
        }
    };
    let (h, c) = (&decoded.header, &decoded.claims);
    let k = c.kubernetes.clone().unwrap_or_default();
    let sa = k.serviceaccount.as_ref().and_then(|s| s.name.as_deref());
    let time = |t: Option<time::OffsetDateTime>| t.map_or_else(|| "(absent)".into(), fmt_time);
    let mut check = Check::new(CheckId::Jwt, Status::Ok, "a service-account JWT")
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
    // Entra refuses these, but the credential sends the token (as azure_identity does): the
    // issuer checks and the exchange still run, and this check carries the catalogue entry of
    // Entra's answer, in the order Entra checks: the federated credential's match (iss, sub,
    // aud: AADSTS70021), the algorithm (AADSTS5002738), then exp (AADSTS50027).
    let missing = catalogue::missing_claims(c);
    let unmatched: Vec<_> = missing.iter().filter(|m| **m != "exp").copied().collect();
    // The catalogue's fix of a code (AADSTS50027's also for a token AADSTS70021 cannot match).
    let fix_of = |code| ProblemId::Aadsts(code).fix().unwrap_or_default();
    let mut refusals = Vec::new();
    if !unmatched.is_empty() {
        refusals.push((
            format!(
                "the token has no usable {}, so no federated identity credential can match it (else AADSTS70021)",
                unmatched.join(", ")
            ),
            fix_of(50027),
            ProblemId::Aadsts(70021),
        ));
    }
    if let Some(alg) = alg_problem(h.alg.as_deref()) {
        refusals.push((alg, fix_of(5002738), ProblemId::Aadsts(5002738)));
    }
    if missing.contains(&"exp") {
        let summary = match c.exp {
            None => "the token has no exp, which Entra needs (else AADSTS50027)".to_string(),
            Some(exp) => format!(
                "the token's exp {exp} is not a representable date, and Entra needs a valid exp (else AADSTS50027)"
            ),
        };
        refusals.push((summary, fix_of(50027), ProblemId::Aadsts(50027)));
    }
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
    if h.kid.is_none() {
        remarks.push(NO_KID.into());
    }
    let mut refusals = refusals.into_iter();
    if let Some((summary, fix, problem)) = refusals.next() {
        // Caught here: the catalogue's problem and fix; what Entra would refuse next, once the
        // first is fixed, and other remarks as details.
        remarks.extend(refusals.map(|(summary, ..)| summary));
        if !remarks.is_empty() {
            check = check.detail("remarks", remarks.join("\n"));
        }
        check = check
            .outcome(Status::Fail, summary)
            .fix(fix)
            .problem(problem);
    } else if !remarks.is_empty() {
        check = check
            .outcome(Status::Warn, "a JWT, with remarks")
            .fix(remarks.join("\n"));
    }
    d.push(check);
    Some(decoded)
}

/// Check 4, with the credential's audience rules ([`AudienceVerdict`]) and fixes; `false` when
/// the credential refuses the token.
pub(super) fn check_audience(d: &mut Doctor, jwt: &DecodedJwt, inputs: &Inputs) -> bool {
    let c = &jwt.claims;
    let expected = &inputs.expected_audience;
    let (aud, dedicated) = (c.audiences_display(), dedicated_token_fix(expected));
    // The credential's fix for the same token, authority and expected audience.
    let authority = inputs.config.as_ref().map(|cfg| &cfg.authority_host.value);
    let (status, summary, fix, problem) = match AudienceVerdict::of(
        c,
        expected,
        inputs.audience_explicit,
        inputs.allow_foreign_audience,
    ) {
        AudienceVerdict::Expected => (
            Status::Ok,
            format!("the token carries {expected}"),
            None,
            None,
        ),
        AudienceVerdict::AllowedForeign(foreign) => (
            Status::Warn,
            format!(
                "sent because allow_foreign_audience is set, though the token is also a credential for {}",
                foreign.describe()
            ),
            Some(dedicated),
            Some(ProblemId::ForeignAudience),
        ),
        AudienceVerdict::Foreign(foreign)
        | AudienceVerdict::AllowedForeignWithoutExpected(foreign) => (
            Status::Fail,
            format!(
                "refused: the token's audience makes it a credential for {}",
                foreign.describe()
            ),
            Some(dedicated),
            Some(ProblemId::ForeignAudience),
        ),
        AudienceVerdict::Mismatch => (
            Status::Fail,
            format!("refused: the token's audience is {aud}, not {expected}"),
            Some(audience_fix(c, expected, authority)),
            Some(ProblemId::AudienceMismatch),
        ),
        // As azure_identity: sent; Entra accepts it only if the federated credential has it.
        AudienceVerdict::Custom => (
            Status::Warn,
            format!(
                "the token's audience is {aud}, not the default {expected}; sent, and the federated credential must have it"
            ),
            Some(audience_fix(c, expected, authority)),
            Some(ProblemId::AudienceMismatch),
        ),
    };
    let mut check = Check::new(CheckId::Audience, status, summary)
        .detail("token aud", aud)
        .detail("expected", expected.clone());
    if let (Some(fix), Some(problem)) = (fix, problem) {
        check = check.fix(fix).problem(problem);
    }
    d.push(check) != Status::Fail
}

/// Check 5; `false` when the credential refuses the token locally (expired, not yet valid).
pub(super) fn check_expiry(d: &mut Doctor, jwt: &DecodedJwt) -> bool {
    let (c, now) = (&jwt.claims, d.now);
    let Some(exp) = c.expires_at() else {
        // The credential sends it (Entra refuses it: see `jwt`), so the exchange still runs.
        d.skip(
            &[CheckId::Expiry],
            "the token has no usable exp (see `jwt`)",
        );
        return true;
    };
    let mut check = Check::new(
        CheckId::Expiry,
        Status::Ok,
        format!("valid for another {}", fmt_duration(exp - now)),
    )
    .detail("expires", fmt_from_now(exp, now));
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
    let (check, usable) = match (c.not_before(), rotation) {
        _ if exp + CLOCK_SKEW < now => (
            check
                .outcome(
                    Status::Fail,
                    format!("the token expired {} ago", fmt_duration(now - exp)),
                )
                .problem(ProblemId::TokenExpired),
            false,
        ),
        (Some(nbf), _) if nbf > now + CLOCK_SKEW => (
            check
                .outcome(
                    Status::Fail,
                    format!(
                        "the token is not valid before {} ({} from now)",
                        fmt_time(nbf),
                        fmt_duration(nbf - now)
                    ),
                )
                .problem(ProblemId::TokenNotYetValid),
            false,
        ),
        // Entra refuses it (AADSTS70023), but the credential sends it: the exchange still runs.
        (_, Some((_, lifetime, _))) if lifetime > max_lifetime => (
            check
                .outcome(
                    Status::Fail,
                    format!(
                        "valid, but its lifetime (exp - iat) of {} s is over the {} s Entra accepts for an external token (else AADSTS70023)",
                        lifetime.whole_seconds(),
                        max_lifetime.whole_seconds()
                    ),
                )
                .problem(ProblemId::Aadsts(70023)),
            true,
        ),
        (_, Some((_, _, deadline))) if now > deadline + ROTATION_GRACE => (
            check
                .outcome(
                    Status::Warn,
                    format!(
                        "valid, but {} past the time the kubelet should have replaced it",
                        fmt_duration(now - deadline)
                    ),
                )
                .problem(ProblemId::TokenExpired),
            true,
        ),
        _ => (check, true),
    };
    d.push(check);
    usable
}
