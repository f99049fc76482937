//! Checks 3 to 5, `jwt`, `audience` and `expiry`: the assertion's header and claims.

use super::{Check, CheckId, Doctor, Inputs, Status, fmt_duration, fmt_time, opt, opt_time};
use crate::assertion::token_file::{
    AudienceVerdict, CLOCK_FIX, CLOCK_SKEW, NOT_ROTATING_FIX, audience_fix, decode_token,
    dedicated_token_fix,
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
/// The longest lifetime (`exp - iat`) Entra accepts on an external token: 86400 s. A longer one
/// fails with AADSTS70023.
pub(super) const MAX_ASSERTION_LIFETIME: Duration =
    Duration::seconds(catalogue::MAX_EXTERNAL_TOKEN_LIFETIME_S);

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
    let mut check = Check::new(CheckId::Jwt, Status::Ok, "a service-account JWT")
        .detail("alg", opt(h.alg.as_deref()))
        .detail("kid", opt(h.kid.as_deref()))
        .detail("iss", opt(c.iss.as_deref()))
        .detail("sub", opt(c.sub.as_deref()))
        .detail("aud", c.audiences_display())
        .detail("iat", opt_time(c.issued_at()))
        .detail("exp", opt_time(c.expires_at()))
        .detail("namespace", opt(k.namespace.as_deref()))
        .detail(
            "service account",
            opt(k.serviceaccount.as_ref().and_then(|s| s.name.as_deref())),
        )
        .detail("pod", opt(k.pod.as_ref().and_then(|s| s.name.as_deref())));
    let mut problems = Vec::new();
    // Entra refuses these, but the credential sends the token (as azure_identity does): the
    // issuer checks and the exchange still run, and this check carries the catalogue entry of
    // Entra's answer, in the order Entra checks: the federated credential's match (iss, sub,
    // aud: AADSTS70021), the algorithm (AADSTS5002738), then exp (AADSTS50027).
    let missing = catalogue::missing_claims(c);
    let unmatched: Vec<_> = missing.iter().filter(|m| **m != "exp").copied().collect();
    let mut alg = alg_problem(h.alg.as_deref());
    let mut no_exp = missing.contains(&"exp").then(|| match c.exp {
        None => "the token has no exp, which Entra needs (else AADSTS50027)".to_string(),
        Some(exp) => format!(
            "the token's exp {exp} is not a representable date, and Entra needs a valid exp (else AADSTS50027)"
        ),
    });
    if let (Some(sub), Some(ns), Some(sa)) = (
        c.sub.as_deref(),
        k.namespace.as_deref(),
        k.serviceaccount.as_ref().and_then(|s| s.name.as_deref()),
    ) {
        let expected = format!("system:serviceaccount:{ns}:{sa}");
        if sub != expected {
            problems.push(format!("sub is {sub:?} but the kubernetes.io claim says {expected:?}; the federated credential must use the sub value."));
        }
    } else if c.kubernetes.is_none() {
        problems.push("No kubernetes.io claim: this is not a bound (projected) service-account token. Legacy Secret-based tokens never expire and should not be used.".into());
    }
    if h.kid.is_none() {
        problems
            .push("No kid in the header: Entra cannot pick the key from the issuer's JWKS.".into());
    }
    let entry = if !unmatched.is_empty() {
        Some((
            format!(
                "the token has no usable {}, so no federated identity credential can match it (else AADSTS70021)",
                unmatched.join(", ")
            ),
            catalogue::MALFORMED_FIX,
            ProblemId::Aadsts(70021),
        ))
    } else if let Some(alg) = alg.take() {
        Some((
            alg,
            catalogue::RSA_SIGNING_KEY_FIX,
            ProblemId::Aadsts(5002738),
        ))
    } else {
        no_exp
            .take()
            .map(|summary| (summary, catalogue::MALFORMED_FIX, ProblemId::Aadsts(50027)))
    };
    // What Entra would refuse next, once the first is fixed.
    problems.extend(alg.into_iter().chain(no_exp));
    match entry {
        // Caught here: the catalogue's problem and fix; other remarks as details.
        Some((summary, fix, problem)) => {
            check.status = Status::Fail;
            check.summary = summary;
            if !problems.is_empty() {
                check = check.detail("remarks", problems.join("\n"));
            }
            check = check.fix(fix).problem(problem);
        }
        None if !problems.is_empty() => {
            check.status = Status::Warn;
            check.summary = "a JWT, with remarks".into();
            check = check.fix(problems.join("\n"));
        }
        None => {}
    }
    d.push(check);
    Some(decoded)
}

/// Check 4, with the credential's audience rules ([`AudienceVerdict`]); `false` when the
/// credential refuses the token.
pub(super) fn check_audience(d: &mut Doctor, jwt: &DecodedJwt, inputs: &Inputs) -> bool {
    let c = &jwt.claims;
    let expected = &inputs.expected_audience;
    let base = |status, summary: String| {
        Check::new(CheckId::Audience, status, summary)
            .detail("token aud", c.audiences_display())
            .detail("expected", expected.clone())
    };
    let dedicated = dedicated_token_fix(expected);
    let (status, summary) = match AudienceVerdict::of(
        c,
        expected,
        inputs.audience_explicit,
        inputs.allow_foreign_audience,
    ) {
        AudienceVerdict::Expected => {
            d.push(base(Status::Ok, format!("the token carries {expected}")));
            return true;
        }
        AudienceVerdict::AllowedForeign(foreign) => {
            d.push(
                base(
                    Status::Warn,
                    format!(
                        "sent because allow_foreign_audience is set, though the token is also a credential for {}",
                        foreign.describe()
                    ),
                )
                .fix(dedicated.clone())
                .problem(ProblemId::ForeignAudience),
            );
            return true;
        }
        AudienceVerdict::Foreign(foreign)
        | AudienceVerdict::AllowedForeignWithoutExpected(foreign) => {
            d.push(
                base(
                    Status::Fail,
                    format!(
                        "refused: the token's audience makes it a credential for {}",
                        foreign.describe()
                    ),
                )
                .fix(dedicated.clone())
                .problem(ProblemId::ForeignAudience),
            );
            return false;
        }
        AudienceVerdict::Mismatch => (
            Status::Fail,
            format!(
                "refused: the token's audience is {}, not {expected}",
                c.audiences_display()
            ),
        ),
        // As azure_identity: sent; Entra accepts it only if the federated credential has it.
        AudienceVerdict::Custom => (
            Status::Warn,
            format!(
                "the token's audience is {}, not the default {expected}; sent, and the federated credential must have it",
                c.audiences_display()
            ),
        ),
    };
    // The credential's fix for the same token, authority and expected audience.
    let authority = inputs.config.as_ref().map(|cfg| &cfg.authority_host.value);
    let fix = audience_fix(c, expected, authority);
    d.push(
        base(status, summary)
            .fix(fix)
            .problem(ProblemId::AudienceMismatch),
    );
    status != Status::Fail
}

/// Check 5; `false` when the credential refuses the token locally (expired, not yet valid, no
/// `exp`).
pub(super) fn check_expiry(d: &mut Doctor, jwt: &DecodedJwt) -> bool {
    let c = &jwt.claims;
    let now = d.now;
    let Some(exp) = c.expires_at() else {
        // The credential sends it (Entra refuses it: see `jwt`), so the exchange still runs.
        d.skip(CheckId::Expiry, "the token has no usable exp (see `jwt`)");
        return true;
    };
    let mut check = Check::new(CheckId::Expiry, Status::Ok, String::new()).detail(
        "expires",
        format!("{} (in {})", fmt_time(exp), fmt_duration(exp - now)),
    );
    let rotate_by = c.issued_at().map(|iat| {
        let lifetime = exp - iat;
        let deadline = iat + std::cmp::min(lifetime * ROTATION_FRACTION, ROTATION_CAP);
        (iat, lifetime, deadline)
    });
    if let Some((iat, lifetime, deadline)) = rotate_by {
        check = check
            .detail(
                "issued",
                format!("{} ({} ago)", fmt_time(iat), fmt_duration(now - iat)),
            )
            .detail("lifetime", fmt_duration(lifetime))
            .detail("kubelet replaces it by", fmt_time(deadline));
    }
    if exp + CLOCK_SKEW < now {
        check.status = Status::Fail;
        check.summary = format!("the token expired {} ago", fmt_duration(now - exp));
        d.push(check.fix(NOT_ROTATING_FIX).problem(ProblemId::TokenExpired));
        return false;
    }
    if let Some(nbf) = c.not_before()
        && nbf > now + CLOCK_SKEW
    {
        check.status = Status::Fail;
        check.summary = format!(
            "the token is not valid before {} ({} from now)",
            fmt_time(nbf),
            fmt_duration(nbf - now)
        );
        d.push(check.fix(CLOCK_FIX).problem(ProblemId::TokenNotYetValid));
        return false;
    }
    if let Some((_, lifetime, _)) = rotate_by
        && lifetime > MAX_ASSERTION_LIFETIME
    {
        // Entra refuses it (AADSTS70023), but the credential sends it: the exchange still runs.
        check.status = Status::Fail;
        check.summary = format!(
            "valid, but its lifetime (exp - iat) of {} s is over the {} s Entra accepts for an external token (else AADSTS70023)",
            lifetime.whole_seconds(),
            MAX_ASSERTION_LIFETIME.whole_seconds()
        );
        d.push(
            check
                .fix(catalogue::LIFETIME_FIX)
                .problem(ProblemId::Aadsts(70023)),
        );
        return true;
    }
    if let Some((_, _, deadline)) = rotate_by
        && now > deadline + ROTATION_GRACE
    {
        check.status = Status::Warn;
        check.summary = format!(
            "valid, but {} past the time the kubelet should have replaced it",
            fmt_duration(now - deadline)
        );
        d.push(check.fix(NOT_ROTATING_FIX).problem(ProblemId::TokenExpired));
        return true;
    }
    check.summary = format!("valid for another {}", fmt_duration(exp - now));
    d.push(check);
    true
}
