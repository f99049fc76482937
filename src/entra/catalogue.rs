//! The catalogue of Entra's errors: for each AADSTS code with a section of its own in
//! docs/troubleshooting.md, the facts (from the token, the configuration and the answer) and the
//! fix, as a command or value. The problem is [`ProblemId::Aadsts`](crate::ProblemId::Aadsts).
//!
//! Texts are templates: `{name}` is this request's value of that name (see [`entra_problem`]);
//! a fix without values is its entry's [`ProblemId::fix`], which `doctor` gives too.

use super::ErrorContext;
use crate::assertion::ForeignAudience;
use crate::cloud::{CHINA, Cloud, US_GOVERNMENT, other_cloud};
use crate::config::{
    AUDIENCE_PUBLIC, AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_AUDIENCE, CLIENT_ID_COMMANDS,
    TENANT_ID_COMMAND,
};
use crate::escape::escape;
use crate::jwt::{Claims, Header};
use crate::problem::ProblemId;

/// Entra's limit on the lifetime (`exp - iat`) of an external token, in seconds (AADSTS70023).
pub(crate) const MAX_EXTERNAL_TOKEN_LIFETIME_S: i64 = 86_400;

/// The fix of AADSTS5002738 for an AWS STS web-identity token (also `doctor`'s `aws-sts` check).
pub(crate) const AWS_RS256_FIX: &str = "request an RSA signature from AWS STS: SigningAlgorithm=RS256 (signing_algorithm in AwsWebIdentitySourceOptions, its default).";
/// The fix of AADSTS50027, and of AADSTS70021 for a token without `iss`, `sub` or `aud`, for an
/// AWS STS web-identity token.
pub(crate) const AWS_MALFORMED_FIX: &str = "send the JWT exactly as AWS STS GetWebIdentityToken returns it (it has iss, sub, aud, iat and exp); \
     `AwsWebIdentitySource::probe()` fetches one and shows its issuer, subject and audience.";
/// What an AWS STS web-identity token's issuer must be, for a fix: the command that prints it.
const AWS_ISSUER_IS: &str = "the token's issuer must be the AWS account's outbound identity federation issuer, which \
     `aws iam get-outbound-web-identity-federation-info` prints (https://<id>.tokens.sts.global.api.aws, no trailing slash), and the \
     federated credential's issuer must equal it";
/// The facts of a federated credential mismatch: the token's claims.
const TOKEN_HAS: &str =
    "The token ({origin}) has:\n    issuer:   {iss}\n    subject:  {sub}\n    audience: {aud}";

/// Entra's errors that come and go with a correct configuration, so an attempt sends its request
/// once more after one (and the cache remembers it only briefly, as a transient error): a
/// federated credential still propagating (700211, 700212, 700213; 700213 also intermittently,
/// about 2 % of exchanges in kedacore/keda#8152), a new issuer key before Entra refetches the JWKS
/// (7000272), an issuer's discovery endpoint that is slow to answer (90061, 50166, 501661). See
/// docs/reliability.md.
pub(crate) const POSSIBLY_TRANSIENT: &[u32] =
    &[700211, 700212, 700213, 7000272, 90061, 50166, 501661];

/// One catalogue entry, filled in with this request's values.
pub(crate) struct Problem {
    /// The entry's key fact with its values, one line for the message's first line (e.g.
    /// "tenant 1111… was not found at https://login.microsoftonline.com"): the same for every
    /// retry of the fault (no trace id, no time).
    pub(crate) headline: String,
    /// The details, on the lines after the first: values from the token, the configuration and
    /// the answer. May be empty.
    pub(crate) facts: String,
    /// What to change: a command or a value.
    pub(crate) fix: String,
}

/// The catalogue entry for Entra's AADSTS `code`, with the values of this request; `None` for a
/// code without an entry. Each entry's fix depends on where the token comes from: an AWS STS
/// web-identity token (feature `aws`: its subject is the IAM role ARN, `arn:aws…`) or a projected
/// service-account token (`system:serviceaccount:…`).
pub(crate) fn entra_problem(code: u32, ctx: &ErrorContext<'_>) -> Option<Problem> {
    let claims = ctx.claims;
    // Values from the token, escaped (see `crate::escape`): a claim never adds a line.
    let claim = |c: fn(&Claims) -> Option<&str>| escape(claims.and_then(c).unwrap_or("(unknown)"));
    let (iss, sub) = (claim(|c| c.iss.as_deref()), claim(|c| c.sub.as_deref()));
    let header = |f: fn(&Header) -> Option<&str>| ctx.header.and_then(f).unwrap_or("(unknown)");
    let date = |t: Option<time::OffsetDateTime>| {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        (t.and_then(|t| t.format(rfc3339).ok())).unwrap_or_else(|| "(unknown)".into())
    };
    let lifetime = claims.and_then(|c| Some((c.expires_at()? - c.issued_at()?).whole_seconds()));
    let aws = claims
        .and_then(|c| c.sub.as_deref())
        .is_some_and(|s| s.starts_with("arn:aws"));
    let auds = claims.map(|c| c.aud.as_slice()).unwrap_or_default();
    let cloud = other_cloud(auds, ctx.endpoint);
    let missing = claims.map(missing_claims).unwrap_or_default();
    let unmatched: Vec<_> = missing.iter().copied().filter(|c| *c != "exp").collect();
    let fix_of = |code| ProblemId::Aadsts(code).fix().unwrap_or_default().to_owned();
    // The fix for an AWS STS token, else the entry's own.
    let aws_or = |fix: String| if aws { fix } else { fix_of(code) };
    let malformed_fix = if aws {
        AWS_MALFORMED_FIX.into()
    } else {
        fix_of(50027)
    };
    let (headline, facts, fix): (&str, String, String) = match code {
        // A token without iss, sub or aud (the credential sends it, as azure_identity does): no
        // federated credential can match it; the fix is a proper projected token.
        70021 | 700211 | 700212 | 700213 | 7002137 | 7002138 if !unmatched.is_empty() => (
            "the token has no usable {unmatched}, so no federated identity credential on application {client} can match it",
            TOKEN_HAS.into(),
            malformed_fix,
        ),
        70021 | 700211 | 700212 | 700213 | 7002137 | 7002138 => {
            let shape = match aws {
                true => "the issuer is the AWS account's https://<id>.tokens.sts.global.api.aws URL; the subject is the IAM role ARN",
                false => "an EKS issuer has no trailing slash; the subject is system:serviceaccount:<namespace>:<service account>",
            };
            let headline = match (code, cloud) {
                (_, Some(_)) => "the token's audience {cloud_aud} is for the cloud at {cloud_host}, but the authority is {authority}",
                (700211, None) => "no federated identity credential on application {client} has the token's issuer {iss}",
                (700212, None) => "no federated identity credential on application {client} has the token's audience {aud}",
                (700213 | 7002137 | 7002138, None) => "no federated identity credential on application {client} has the token's subject {sub}",
                (_, None) => "no federated identity credential on application {client} matches issuer {iss}, subject {sub}, audience {aud}",
            };
            let which = match code {
                700211 => "Its issuer does not match.",
                700212 => "Its audience does not match.",
                70021 => "No federated credential has exactly this issuer, subject and audience.",
                _ => "Its subject does not match.",
            };
            let facts = format!(
                "Entra found no federated identity credential on {{app}} that matches {{what}}. {which}\n  {TOKEN_HAS}"
            );
            let custom = !auds.is_empty() && !auds.iter().any(|a| Cloud::of_audience(a).is_some());
            let fix = match (claims.and_then(ForeignAudience::first_in_claims), cloud) {
                (Some(_), _) => format!(
                    "the federated credential's issuer and subject must equal these values exactly (case-sensitive; {shape}); \
                     its audience must not be this token's, which makes the token a credential for {{foreign}}. Mount a dedicated \
                     projected token with audience {AUDIENCE_PUBLIC} and use it for Entra."
                ),
                (None, Some(_)) => format!(
                    "the token is for the exchange audience {{cloud_aud}} of the cloud at {{cloud_host}}, but the authority is \
                     {{authority}}: set {AZURE_AUTHORITY_HOST}={{cloud_host}} (the audience is right for that cloud; do not change it)."
                ),
                (None, None) if custom => format!(
                    "the token's audience is {{aud}}, not the recommended {AUDIENCE_PUBLIC}: either add {{aud}} to the federated \
                     credential's audiences (with the issuer and subject above, exactly; {shape}), or set the projected volume's \
                     serviceAccountToken.audience to {AUDIENCE_PUBLIC}, the federated credential's default; setting \
                     {AZURE_FEDERATED_TOKEN_AUDIENCE} makes the credential check the audience before sending."
                ),
                (None, None) => format!(
                    "create or correct the federated credential so that its issuer, subject and audience equal these values exactly \
                     (case-sensitive; {shape}); `azure-identity-k8s setup` prints the command. A credential created in the last few \
                     minutes may still be propagating."
                ),
            };
            (headline, facts, fix)
        }
        700024 => (
            "the token is outside its validity period as Entra sees it (issued at {iat}, expires at {exp})",
            "The token comes from {origin}; Entra compares its times with its own clock.".into(),
            match aws {
                true => "check this machine's clock (NTP, chrony): STS stamps iat and exp with AWS's time, and the credential fetches a \
                 fresh token before the cached one expires (the lifetime is duration in AwsWebIdentitySourceOptions, 300 s by \
                 default); do not hand a stored copy of the token to the credential.".to_owned(),
                false => "make the kubelet rotate the file ({origin}: a projected serviceAccountToken volume, not a copy), do not keep the token \
                     read once, and check this node's clock (NTP, chrony).".to_owned(),
            },
        ),
        90061 => (
            "Entra could not fetch the issuer's discovery document {disco} or its JWKS",
            "Entra fetches both from the public internet, from the URL the token's issuer names.".into(),
            match aws {
                true => format!("{AWS_ISSUER_IS}; `aws iam enable-outbound-web-identity-federation` turns the issuer on if the account has none. \
                         AWS publishes its discovery document and JWKS publicly, so with the right issuer the failure is transient: retry."),
                false => "publish the discovery document and JWKS at a public HTTPS URL (EKS issuers are public; a self-managed cluster can use a \
                     public S3 bucket). A private issuer such as https://kubernetes.default.svc can never work.".to_owned(),
            },
        ),
        50027 => (
            match missing.is_empty() {
                true => "the assertion is malformed: not a JWT Entra can parse, or without a claim it needs (exp, iss, sub, aud)",
                false => "the token has no usable {missing}, which Entra needs",
            },
            "Entra needs a JWT with exp, iss, sub and aud; the token comes from {origin}.".into(),
            malformed_fix,
        ),
        700027 | 900384 => (
            "the token's signature does not verify with the keys published by its issuer {iss}",
            "Entra could not validate the token's signature (kid {kid}, alg {alg}) with the JWKS of its issuer.".into(),
            match aws {
                true => format!("send the JWT exactly as AWS STS returned it (the JWKS is AWS's, public at the issuer's /.well-known/jwks.json, and \
                     cannot be changed); {AWS_ISSUER_IS}."),
                false => "publish the key that signs service-account tokens (RS256, matching kid) in the issuer's JWKS: `kubectl get --raw /openid/v1/jwks` \
                 prints the API server's keys; after a signing-key rotation publish the new key too.".to_owned(),
            },
        ),
        7000272 => (
            "the token's signing key (kid {kid}) is not in the JWKS of its issuer {iss}",
            match aws {
                true => "The JWKS of an AWS outbound identity federation issuer is AWS's and public; the token was not signed by that issuer's keys.",
                false => "The service-account signing key was rotated (or added) on a self-managed issuer without republishing the JWKS.",
            }
            .into(),
            aws_or(format!("send the JWT exactly as AWS STS returned it, fetched afresh; {AWS_ISSUER_IS}.")),
        ),
        70023 => (
            "the token lives {lifetime} (exp - iat); Entra accepts at most {max_lifetime} s for an external token",
            "The token comes from {origin}.".into(),
            aws_or("set duration in AwsWebIdentitySourceOptions (STS DurationSeconds) to at most 3600 s; 300 s is the default.".into()),
        ),
        5002738 => (
            "the token is signed with {alg}; Entra accepts only RS256, RS384 or RS512 for a client assertion",
            "An EC-signed token (alg ES256 or ES384 in its header) cannot be a client assertion.".into(),
            aws_or(AWS_RS256_FIX.into()),
        ),
        700016 => (
            "no application with client id {client} in tenant {tenant} at {authority}",
            "The client id names neither an app registration nor a user-assigned managed identity there.".into(),
            format!("the client id is {{client}}: set AZURE_CLIENT_ID to the application's or user-assigned managed identity's client id (appId, \
                 not the object id), printed by {CLIENT_ID_COMMANDS}; if the identity is in another tenant or cloud, correct \
                 AZURE_TENANT_ID or {AZURE_AUTHORITY_HOST}."),
        ),
        90002 | 90023 => (
            "tenant {tenant} was not found at {authority}",
            "The tenant id is the directory (tenant) id, a GUID, or one of its verified domain names.".into(),
            format!("the tenant id is {{tenant}}: set AZURE_TENANT_ID to the directory id printed by `{TENANT_ID_COMMAND}`; if the tenant is in a \
                 sovereign cloud set {AZURE_AUTHORITY_HOST} to it ({} or {}).", US_GOVERNMENT.authority_host, CHINA.authority_host),
        ),
        1002012 | 70011 => (
            "the scope {scope} is not one resource with the /.default suffix",
            "The client-credentials flow takes exactly one resource with the /.default suffix.".into(),
            "{scope_fix}".into(),
        ),
        70003 => (
            "Entra does not support the request's grant type",
            "A federated credential is used through the client-credentials grant with a JWT client assertion.".into(),
            fix_of(code),
        ),
        50196 => ("Entra detected a loop: this client sent too many identical requests", String::new(), fix_of(code)),
        7000215 | 7000222 => ("a client secret was sent instead of (or along with) the assertion", String::new(), fix_of(code)),
        _ => return None,
    };
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "iss" => iss.to_string(),
            "sub" => sub.to_string(),
            "aud" => claims.map_or_else(|| "(unknown)".into(), Claims::audiences_display),
            "origin" => escape(ctx.origin).into_owned(),
            "client" => ctx.client_id.to_owned(),
            "tenant" => ctx.tenant_id.to_owned(),
            "authority" => ctx.endpoint.origin().ascii_serialization(),
            "app" => format!(
                "application (client id) {} in tenant {}",
                ctx.client_id, ctx.tenant_id
            ),
            "what" if aws => "the AWS web-identity token".into(),
            "what" => "the service-account token".into(),
            "unmatched" => unmatched.join(", "),
            "missing" => missing.join(", "),
            "cloud_host" => cloud?.authority_host.to_owned(),
            "cloud_aud" => cloud?.exchange_audience.to_owned(),
            "iat" => date(claims.and_then(Claims::issued_at)),
            "exp" => date(claims.and_then(Claims::expires_at)),
            "kid" => header(|h| h.kid.as_deref()).to_owned(),
            "alg" => header(|h| h.alg.as_deref()).to_owned(),
            "foreign" => claims
                .and_then(ForeignAudience::first_in_claims)?
                .describe()
                .to_owned(),
            "scope_fix" => crate::scope::scope_fix(Some(ctx.scope)),
            "lifetime" => lifetime.map_or_else(|| "(unknown)".into(), |s| format!("{s} s")),
            "max_lifetime" => MAX_EXTERNAL_TOKEN_LIFETIME_S.to_string(),
            "disco" => format!(
                "{}/.well-known/openid-configuration",
                iss.trim_end_matches('/')
            ),
            "scope" => format!("{:?}", ctx.scope),
            _ => return None,
        })
    };
    let render = |template: &str| fill(template, &value);
    Some(Problem {
        headline: render(headline),
        facts: render(&facts),
        fix: render(&fix),
    })
}

/// `template` with each `{name}` replaced by `value(name)`, in one pass (a value is never read
/// as a template); a name without a value stays as written.
pub(super) fn fill(template: &str, value: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|c| open + c);
        let filled = close.and_then(|c| Some((c, value(&rest[open + 1..c])?)));
        let end = filled.as_ref().map_or(open + 1, |(c, _)| c + 1);
        out.push_str(&rest[..open]);
        match filled {
            Some((_, v)) => out.push_str(&v),
            None => out.push('{'),
        }
        rest = &rest[end..];
    }
    out + rest
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
