//! The catalogue of Entra's errors: for each AADSTS code with a section of its own in
//! docs/troubleshooting.md, the facts (from the token, the configuration and the answer) and the
//! fix, as a command or value. The problem is [`ProblemId::Aadsts`](crate::ProblemId::Aadsts);
//! the fixes of the exchange's other failures (transport, an answer that is not Entra's) are here
//! too.

use super::ErrorContext;
use crate::assertion::ForeignAudience;
use crate::cloud::{Cloud, other_cloud};
use crate::config::{
    AUDIENCE_PUBLIC, AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_AUDIENCE, CLIENT_ID_COMMANDS,
    TENANT_ID_COMMAND,
};
use crate::escape::escape;
use crate::jwt::{Claims, Header};
use crate::problem::ProblemId;

/// Entra's limit on the lifetime (`exp - iat`) of an external token, in seconds (AADSTS70023).
pub(crate) const MAX_EXTERNAL_TOKEN_LIFETIME_S: i64 = 86_400;

/// The fix of AADSTS50027, and of AADSTS70021 for a token without `iss`, `sub` or `aud`, for an
/// AWS STS web-identity token.
const AWS_MALFORMED_FIX: &str = "send the JWT exactly as AWS STS GetWebIdentityToken returns it (it has iss, sub, aud, iat and exp); \
     `AwsWebIdentitySource::probe()` fetches one and shows its issuer, subject and audience.";
/// What an AWS STS web-identity token's issuer must be, for a fix: the command that prints it.
const AWS_ISSUER_IS: &str = "the token's issuer must be the AWS account's outbound identity federation issuer, which \
     `aws iam get-outbound-web-identity-federation-info` prints (https://<id>.tokens.sts.global.api.aws, no trailing slash), and the \
     federated credential's issuer must equal it";
/// The fix of AADSTS5002738 for an AWS STS web-identity token (also `doctor`'s `aws-sts` check).
pub(crate) const AWS_RS256_FIX: &str = "request an RSA signature from AWS STS: SigningAlgorithm=RS256 (signing_algorithm in AwsWebIdentitySourceOptions, its default).";

/// Whether the assertion is an AWS STS web-identity token (feature `aws`): its subject is the
/// caller's IAM role ARN (`arn:aws:iam::…`, `arn:aws-us-gov:…`, `arn:aws-cn:…`), where a
/// projected service-account token's is `system:serviceaccount:…`. Picks each entry's fix.
fn from_aws_sts(ctx: &ErrorContext<'_>) -> bool {
    ctx.claims
        .and_then(|c| c.sub.as_deref())
        .is_some_and(|sub| sub.starts_with("arn:aws"))
}

/// One catalogue entry, filled in with this request's values.
pub(crate) struct Problem {
    /// The entry's key fact with its values, one line for the message's first line (e.g.
    /// "tenant 1111… was not found at https://login.microsoftonline.com"): the same for every
    /// retry of the fault (no trace id, no time). `None` for a code without an entry, whose first
    /// line stays the generic one.
    pub(crate) headline: Option<String>,
    /// The details, on the lines after the first: values from the token, the configuration and
    /// the answer. May be empty.
    pub(crate) facts: String,
    /// What to change: a command or a value.
    pub(crate) fix: String,
}

impl Problem {
    fn new(headline: impl Into<String>, facts: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            headline: Some(headline.into()),
            facts: facts.into(),
            fix: fix.into(),
        }
    }
}

/// The catalogue entry for Entra's AADSTS `code`, with the values of this request.
pub(crate) fn entra_problem(code: u32, ctx: &ErrorContext<'_>) -> Problem {
    // Values from the token, escaped (see `crate::escape`): a claim never adds a line.
    let claim =
        |c: fn(&Claims) -> Option<&str>| escape(ctx.claims.and_then(c).unwrap_or("(unknown)"));
    let (iss, sub) = (claim(|c| c.iss.as_deref()), claim(|c| c.sub.as_deref()));
    let origin = escape(ctx.origin);
    let aud = ctx
        .claims
        .map(Claims::audiences_display)
        .unwrap_or_else(|| "(unknown)".into());
    let authority = ctx.endpoint.origin().ascii_serialization();
    let client = ctx.client_id;
    let app = format!(
        "application (client id) {client} in tenant {}",
        ctx.tenant_id
    );
    let aws = from_aws_sts(ctx);
    // The catalogue's fix of a code, where it needs no values (for a service-account token).
    let fix_of = |code| ProblemId::Aadsts(code).fix().unwrap_or_default();
    let malformed_fix = if aws {
        AWS_MALFORMED_FIX
    } else {
        fix_of(50027)
    };
    match code {
        70021 | 700211 | 700212 | 700213 | 7002137 | 7002138 => {
            let which = match code {
                700211 => "Its issuer does not match.",
                700212 => "Its audience does not match.",
                700213 | 7002137 | 7002138 => "Its subject does not match.",
                _ => "No federated credential has exactly this issuer, subject and audience.",
            };
            let (what, shape) = if aws {
                (
                    "the AWS web-identity token",
                    "the issuer is the AWS account's https://<id>.tokens.sts.global.api.aws URL; the subject is the IAM role ARN",
                )
            } else {
                (
                    "the service-account token",
                    "an EKS issuer has no trailing slash; the subject is system:serviceaccount:<namespace>:<service account>",
                )
            };
            let auds = ctx.claims.map(|c| c.aud.as_slice()).unwrap_or_default();
            let cloud =
                other_cloud(auds, ctx.endpoint).map(|c| (c.authority_host, c.exchange_audience));
            // A token without iss, sub or aud (the credential sends it, as azure_identity does):
            // no federated credential can match it; the fix is a proper projected token.
            let missing: Vec<_> = ctx
                .claims
                .map(missing_claims)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| *c != "exp")
                .collect();
            if !missing.is_empty() {
                return Problem::new(
                    format!(
                        "the token has no usable {}, so no federated identity credential on application {client} can match it",
                        missing.join(", ")
                    ),
                    format!(
                        "The token ({origin}) has:\n    issuer:   {iss}\n    subject:  {sub}\n    audience: {aud}"
                    ),
                    malformed_fix,
                );
            }
            let headline = match (code, cloud) {
                (_, Some((host, cloud_aud))) => format!(
                    "the token's audience {cloud_aud} is for the cloud at {host}, but the authority is {authority}"
                ),
                (700211, None) => format!(
                    "no federated identity credential on application {client} has the token's issuer {iss}"
                ),
                (700212, None) => format!(
                    "no federated identity credential on application {client} has the token's audience {aud}"
                ),
                (700213 | 7002137 | 7002138, None) => format!(
                    "no federated identity credential on application {client} has the token's subject {sub}"
                ),
                (_, None) => format!(
                    "no federated identity credential on application {client} matches issuer {iss}, subject {sub}, audience {aud}"
                ),
            };
            let fix = match (ctx.claims.and_then(ForeignAudience::first_in_claims), cloud) {
                (Some(foreign), _) => format!(
                    "the federated credential's issuer and subject must equal these values exactly (case-sensitive; {shape}); \
                     its audience must not be this token's, which makes the token a credential for {}. Mount a dedicated projected token \
                     with audience {AUDIENCE_PUBLIC} and use it for Entra.",
                    foreign.describe()
                ),
                (None, Some((host, cloud_aud))) => format!(
                    "the token is for the exchange audience {cloud_aud} of the cloud at {host}, but the authority is {authority}: \
                     set {AZURE_AUTHORITY_HOST}={host} (the audience is right for that cloud; do not change it)."
                ),
                (None, None)
                    if !auds.is_empty()
                        && !auds.iter().any(|a| Cloud::of_audience(a).is_some()) =>
                {
                    format!(
                        "the token's audience is {aud}, not the recommended {AUDIENCE_PUBLIC}: either add {aud} to the federated \
                         credential's audiences (with the issuer and subject above, exactly; {shape}), or set the projected volume's \
                         serviceAccountToken.audience to {AUDIENCE_PUBLIC}, the federated credential's default; setting \
                         {AZURE_FEDERATED_TOKEN_AUDIENCE} makes the credential check the audience before sending."
                    )
                }
                (None, None) => format!(
                    "create or correct the federated credential so that its issuer, subject and audience equal these values exactly \
                     (case-sensitive; {shape}); `azure-identity-k8s setup` prints the command. A credential created in the last few \
                     minutes may still be propagating."
                ),
            };
            Problem::new(
                headline,
                format!(
                    "Entra found no federated identity credential on {app} that matches {what}. {which}\n  \
                     The token ({origin}) has:\n    issuer:   {iss}\n    subject:  {sub}\n    audience: {aud}"
                ),
                fix,
            )
        }
        700024 => {
            let (iat, exp) = ctx
                .claims
                .map(|c| (fmt_opt(c.issued_at()), fmt_opt(c.expires_at())))
                .unwrap_or_else(|| ("(unknown)".into(), "(unknown)".into()));
            let fix = if aws {
                "check this machine's clock (NTP, chrony): STS stamps iat and exp with AWS's time, and the credential fetches a \
                 fresh token before the cached one expires (the lifetime is duration in AwsWebIdentitySourceOptions, 300 s by \
                 default); do not hand a stored copy of the token to the credential."
                    .to_owned()
            } else {
                format!(
                    "make the kubelet rotate the file ({origin}: a projected serviceAccountToken volume, not a copy), do not keep the token \
                     read once, and check this node's clock (NTP, chrony)."
                )
            };
            Problem::new(
                format!(
                    "the token is outside its validity period as Entra sees it (issued at {iat}, expires at {exp})"
                ),
                format!(
                    "The token comes from {origin}; Entra compares its times with its own clock."
                ),
                fix,
            )
        }
        90061 => {
            let disco = format!(
                "{}/.well-known/openid-configuration",
                iss.trim_end_matches('/')
            );
            Problem::new(
                format!(
                    "Entra could not fetch the issuer's discovery document {disco} or its JWKS"
                ),
                "Entra fetches both from the public internet, from the URL the token's issuer names.",
                if aws {
                    format!(
                        "{AWS_ISSUER_IS}; `aws iam enable-outbound-web-identity-federation` turns the issuer on if the account has none. \
                         AWS publishes its discovery document and JWKS publicly, so with the right issuer the failure is transient: retry."
                    )
                } else {
                    "publish the discovery document and JWKS at a public HTTPS URL (EKS issuers are public; a self-managed cluster can use a \
                     public S3 bucket). A private issuer such as https://kubernetes.default.svc can never work."
                        .to_owned()
                },
            )
        }
        50027 => {
            let missing = ctx.claims.map(missing_claims).unwrap_or_default();
            let headline = if missing.is_empty() {
                "the assertion is malformed: not a JWT Entra can parse, or without a claim it needs (exp, iss, sub, aud)".to_string()
            } else {
                format!(
                    "the token has no usable {}, which Entra needs",
                    missing.join(", ")
                )
            };
            Problem::new(
                headline,
                format!(
                    "Entra needs a JWT with exp, iss, sub and aud; the token comes from {origin}."
                ),
                malformed_fix,
            )
        }
        700027 | 900384 => Problem::new(
            format!(
                "the token's signature does not verify with the keys published by its issuer {iss}"
            ),
            format!(
                "Entra could not validate the token's signature (kid {}, alg {}) with the JWKS of its issuer.",
                header_field(ctx, |h| h.kid.as_deref()),
                header_field(ctx, |h| h.alg.as_deref()),
            ),
            if aws {
                format!(
                    "send the JWT exactly as AWS STS returned it (the JWKS is AWS's, public at the issuer's /.well-known/jwks.json, and \
                     cannot be changed); {AWS_ISSUER_IS}."
                )
            } else {
                "publish the key that signs service-account tokens (RS256, matching kid) in the issuer's JWKS: `kubectl get --raw /openid/v1/jwks` \
                 prints the API server's keys; after a signing-key rotation publish the new key too."
                    .to_owned()
            },
        ),
        7000272 => Problem::new(
            format!(
                "the token's signing key (kid {}) is not in the JWKS of its issuer {iss}",
                header_field(ctx, |h| h.kid.as_deref())
            ),
            if aws {
                "The JWKS of an AWS outbound identity federation issuer is AWS's and public; the token was not signed by that issuer's keys."
            } else {
                "The service-account signing key was rotated (or added) on a self-managed issuer without republishing the JWKS."
            },
            if aws {
                format!(
                    "send the JWT exactly as AWS STS returned it, fetched afresh; {AWS_ISSUER_IS}."
                )
            } else {
                fix_of(code).to_owned()
            },
        ),
        70023 => {
            let lifetime = ctx
                .claims
                .and_then(|c| Some((c.expires_at()? - c.issued_at()?).whole_seconds()))
                .map(|s| format!("{s} s"))
                .unwrap_or_else(|| "(unknown)".into());
            Problem::new(
                format!(
                    "the token lives {lifetime} (exp - iat); Entra accepts at most {MAX_EXTERNAL_TOKEN_LIFETIME_S} s for an external token"
                ),
                format!("The token comes from {origin}."),
                if aws {
                    "set duration in AwsWebIdentitySourceOptions (STS DurationSeconds) to at most 3600 s; 300 s is the default."
                } else {
                    fix_of(70023)
                },
            )
        }
        5002738 => Problem::new(
            format!(
                "the token is signed with {}; Entra accepts only RS256, RS384 or RS512 for a client assertion",
                header_field(ctx, |h| h.alg.as_deref())
            ),
            "An EC-signed token (alg ES256 or ES384 in its header) cannot be a client assertion.",
            if aws { AWS_RS256_FIX } else { fix_of(code) },
        ),
        700016 => Problem::new(
            format!(
                "no application with client id {client} in tenant {} at {authority}",
                ctx.tenant_id
            ),
            "The client id names neither an app registration nor a user-assigned managed identity there.",
            format!(
                "the client id is {client}: set AZURE_CLIENT_ID to the application's or user-assigned managed identity's client id (appId, \
                 not the object id), printed by {CLIENT_ID_COMMANDS}; if the identity is in another tenant or cloud, correct \
                 AZURE_TENANT_ID or {AZURE_AUTHORITY_HOST}."
            ),
        ),
        90002 | 90023 => Problem::new(
            format!("tenant {} was not found at {authority}", ctx.tenant_id),
            "The tenant id is the directory (tenant) id, a GUID, or one of its verified domain names.",
            format!(
                "the tenant id is {}: set AZURE_TENANT_ID to the directory id printed by `{TENANT_ID_COMMAND}`; if the tenant is in a \
                 sovereign cloud set {AZURE_AUTHORITY_HOST} to it ({} or {}).",
                ctx.tenant_id,
                crate::cloud::US_GOVERNMENT.authority_host,
                crate::cloud::CHINA.authority_host,
            ),
        ),
        1002012 | 70011 => Problem::new(
            format!(
                "the scope {:?} is not one resource with the /.default suffix",
                ctx.scope
            ),
            "The client-credentials flow takes exactly one resource with the /.default suffix.",
            crate::scope::scope_fix(Some(ctx.scope)),
        ),
        50196 => Problem::new(
            "Entra detected a loop: this client sent too many identical requests",
            "",
            fix_of(code),
        ),
        7000215 | 7000222 => Problem::new(
            "a client secret was sent instead of (or along with) the assertion",
            "",
            fix_of(code),
        ),
        _ => Problem {
            headline: None,
            facts: "Entra answered with an error code this crate has no entry for.".into(),
            fix: fix_of(code).into(),
        },
    }
}

/// The claims Entra needs that `claims` lacks (or holds in a form it cannot use: an `exp` that
/// is no representable date, an empty `aud`), in the order exp, iss, sub, aud.
pub(crate) fn missing_claims(claims: &Claims) -> Vec<&'static str> {
    [
        ("exp", claims.expires_at().is_none()),
        ("iss", claims.iss.is_none()),
        ("sub", claims.sub.is_none()),
        ("aud", claims.aud.is_empty()),
    ]
    .into_iter()
    .filter_map(|(name, missing)| missing.then_some(name))
    .collect()
}

/// A header field of the assertion, or "(unknown)".
fn header_field<'a>(
    ctx: &ErrorContext<'a>,
    field: impl Fn(&'a Header) -> Option<&'a str>,
) -> &'a str {
    ctx.header.and_then(field).unwrap_or("(unknown)")
}

fn fmt_opt(t: Option<time::OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "(unknown)".into())
}
