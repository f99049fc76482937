//! Checks 3 to 5, `jwt`, `audience` and `expiry`: the assertion's header and claims.

use super::{
    Check, CheckId, Doctor, Inputs, Status, fmt_duration, fmt_time, opt, opt_time, with_source,
};
use crate::assertion::token_file::{AudienceVerdict, CLOCK_SKEW};
use crate::config::{
    self, AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_AUDIENCE, AZURE_FEDERATED_TOKEN_FILE,
};
use crate::entra::catalogue;
use crate::jwt::{self, DecodedJwt};
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
pub(super) const MAX_ASSERTION_LIFETIME: Duration = Duration::seconds(86_400);

/// What is wrong when Entra would refuse a token signed with `alg` (AADSTS5002738); `fix` says
/// how to get an RSA signature where the token comes from.
pub(super) fn alg_problem(alg: Option<&str>, fix: &str) -> Option<String> {
    match alg {
        Some(a) if ENTRA_ALGORITHMS.contains(&a) => None,
        other => Some(format!(
            "The token is signed with {}, but Entra accepts only RS256, RS384 or RS512 (else AADSTS5002738). Fix: {fix}",
            opt(other)
        )),
    }
}

/// What is wrong when the token lives longer than Entra accepts (AADSTS70023), with the fix.
pub(super) fn lifetime_problem(lifetime: Duration) -> Option<String> {
    (lifetime > MAX_ASSERTION_LIFETIME).then(|| {
        format!(
            "The token's lifetime (exp - iat) is {} s, over the {} s Entra accepts for an external token (else AADSTS70023). Fix: {}",
            lifetime.whole_seconds(),
            MAX_ASSERTION_LIFETIME.whole_seconds(),
            catalogue::LIFETIME_FIX
        )
    })
}

pub(super) fn check_jwt(d: &mut Doctor, token: &str) -> Option<DecodedJwt> {
    let decoded = match jwt::decode(token) {
        Ok(j) => j,
        Err(shape) => {
            d.push(
                Check::new(CheckId::Jwt, Status::Fail, format!("the token file does not hold a service-account token: {shape}"))
                    .fix("Point the token file at the JWT written by the kubelet for a serviceAccountToken projection.")
                    .docs("token-file-not-a-jwt"),
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
    let mut fatal = false;
    // Entra refuses it, but the credential sends it: the issuer checks and the exchange still run.
    let alg = alg_problem(h.alg.as_deref(), catalogue::RSA_SIGNING_KEY_FIX);
    if let Some(p) = &alg {
        problems.push(p.clone());
    }
    if c.iss.is_none() || c.sub.is_none() || c.aud.is_empty() || c.exp.is_none() {
        fatal = true;
        problems.push("The token lacks iss, sub, aud or exp; Entra needs all four. Use a projected serviceAccountToken.".into());
    }
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
    if !problems.is_empty() {
        let refused = fatal || alg.is_some();
        check.status = if refused { Status::Fail } else { Status::Warn };
        check.summary = if refused {
            "the JWT cannot be a valid Entra assertion".into()
        } else {
            "a JWT, with remarks".into()
        };
        check = check.fix(problems.join("\n"));
        if alg.is_some() && !fatal {
            check = check.docs("aadsts5002738");
        }
    }
    d.push(check);
    (!fatal).then_some(decoded)
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
    let dedicated = format!(
        "Mount a dedicated projected token for Entra (serviceAccountToken: {{audience: {expected}, expirationSeconds: 3600, path: azure-identity-token}}) and point {AZURE_FEDERATED_TOKEN_FILE} at it; keep this token for what it is for."
    );
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
                .fix(dedicated)
                .docs("foreign-audience"),
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
                .fix(dedicated)
                .docs("foreign-audience"),
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
    let mut fix = format!(
        "Set the projected volume's serviceAccountToken.audience to {expected}; or, if the federated credential deliberately uses {}, set {AZURE_FEDERATED_TOKEN_AUDIENCE}={} (or expected_audience).",
        c.aud
            .first()
            .map(String::as_str)
            .unwrap_or("another audience"),
        c.aud.first().map(String::as_str).unwrap_or("<audience>")
    );
    // A cloud mismatch: the token is for one cloud's exchange audience, the authority another's.
    let clouds = [
        (config::AUDIENCE_PUBLIC, "https://login.microsoftonline.com"),
        (config::AUDIENCE_US_GOV, "https://login.microsoftonline.us"),
        (config::AUDIENCE_CHINA, "https://login.chinacloudapi.cn"),
    ];
    if let Some((aud, host)) = clouds.iter().find(|(a, _)| c.aud.iter().any(|x| x == a))
        && clouds.iter().any(|(a, _)| a == expected)
    {
        let authority = inputs
            .config
            .as_ref()
            .map(|cfg| {
                with_source(
                    &cfg.authority_host.value.as_str().trim_end_matches('/'),
                    &cfg.authority_host.source,
                )
            })
            .unwrap_or_else(|| "(unknown)".into());
        fix = format!(
            "The token's audience {aud} is the exchange audience of the cloud at {host}, but the authority is {authority}, which expects {expected}. \
             If the identity lives in that cloud, set {AZURE_AUTHORITY_HOST}={host}; otherwise set the projected volume's audience to {expected}."
        );
    }
    d.push(base(status, summary).fix(fix).docs("audience-mismatch"));
    status != Status::Fail
}

/// Check 5; `false` when the credential refuses the token locally (expired, not yet valid, no
/// `exp`).
pub(super) fn check_expiry(d: &mut Doctor, jwt: &DecodedJwt) -> bool {
    let c = &jwt.claims;
    let now = d.now;
    let Some(exp) = c.expires_at() else {
        d.push(
            Check::new(CheckId::Expiry, Status::Fail, "the token has no exp")
                .fix("Use a projected serviceAccountToken; it always expires."),
        );
        return false;
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
    let not_rotating = "The kubelet is not rotating this file: make sure it is a projected serviceAccountToken volume (not a copied Secret or a file baked into the image), that the kubelet on the node is healthy (`kubectl describe pod`, kubelet logs), and that nothing reads the token once and keeps it.";
    if exp + CLOCK_SKEW < now {
        check.status = Status::Fail;
        check.summary = format!("the token expired {} ago", fmt_duration(now - exp));
        d.push(check.fix(not_rotating).docs("token-expired"));
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
        d.push(check.fix("This machine's clock (or the API server's) is wrong; check NTP (chrony) on the node.").docs("token-not-yet-valid"));
        return false;
    }
    if let Some((_, lifetime, _)) = rotate_by
        && let Some(problem) = lifetime_problem(lifetime)
    {
        // Entra refuses it, but the credential sends it: the exchange still runs.
        check.status = Status::Fail;
        check.summary = format!(
            "valid, but its lifetime {} is over Entra's limit of 24 h",
            fmt_duration(lifetime)
        );
        d.push(check.fix(problem).docs("aadsts70023"));
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
        d.push(check.fix(not_rotating).docs("token-expired"));
        return true;
    }
    check.summary = format!("valid for another {}", fmt_duration(exp - now));
    d.push(check);
    true
}
