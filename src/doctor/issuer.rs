//! Checks 6 to 9, `issuer`, `discovery`, `jwks` and `signature`: what Entra fetches from the
//! issuer (discovery document, JWKS), fetched from here, and the token's RSA signature verified
//! as Entra verifies it. The only checks with no counterpart in the credential.

use super::claims::ENTRA_ALGORITHMS;
use super::{Check, CheckId, Doctor, Status, opt};
use crate::http::{Failure, SendError, send_capped};
use crate::jwt::{DecodedJwt, decode_part};
use crate::problem::{Page, ProblemId};
use crate::setup::private_issuer_host;
use azure_core::http::{ClientOptions, Context, Method, Pipeline, Request, Url, headers};
use futures::future::{Either, select};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The checks of this module, in order.
pub(super) const CHECKS: &[CheckId] = &[
    CheckId::Issuer,
    CheckId::Discovery,
    CheckId::Jwks,
    CheckId::Signature,
];
/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How long one fetch may take (Entra itself gives up quickly too).
const FETCH_TIMEOUT_SECS: i64 = 10;

/// The fields of an OpenID discovery document that Entra uses.
#[derive(Deserialize)]
struct Discovery {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    id_token_signing_alg_values_supported: Option<Vec<String>>,
}

/// A JWKS.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// One key of a JWKS (the RSA fields only).
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// Why a fetch failed: its first line, the transport cause when there was no answer, and what it
/// means for a discovery document.
struct FetchError(String, Option<Failure>, &'static str);

/// GET `url` once (the doctor reports what it sees rather than retrying for minutes) through
/// the credential's transport and TLS roots, within [`FETCH_TIMEOUT_SECS`], and parse its JSON.
async fn get_json<T: DeserializeOwned>(pipeline: &Pipeline, url: &Url) -> Result<T, FetchError> {
    const UNREACHABLE: &str = "The discovery document could not be fetched from here.";
    let not_json = |e: &dyn std::fmt::Display| {
        let message = format!("an answer that is not the expected JSON ({e})");
        FetchError(message, None, "The discovery document is not valid JSON.")
    };
    let mut req = Request::new(url.clone(), Method::Get);
    req.insert_header(headers::ACCEPT, "application/json");
    let ctx = Context::new();
    let fetch = Box::pin(send_capped(pipeline, &ctx, &mut req, MAX_DOCUMENT_BYTES));
    let timeout = azure_core::async_runtime::get_async_runtime()
        .sleep(azure_core::time::Duration::seconds(FETCH_TIMEOUT_SECS));
    let (status, _, body) = match select(fetch, timeout).await {
        Either::Left((Ok(answer), _)) => answer,
        Either::Left((Err(SendError::TooLarge { .. }), _)) => {
            return Err(not_json(&format!("larger than {MAX_DOCUMENT_BYTES} bytes")));
        }
        Either::Left((Err(SendError::Transport(e) | SendError::BrokeOff { error: e, .. }), _)) => {
            let failure = Failure::of(url, &e);
            let message = format!("{} ({})", failure.words(), failure.origin);
            return Err(FetchError(message, Some(failure), UNREACHABLE));
        }
        Either::Right(_) => {
            let message = format!("no answer within {FETCH_TIMEOUT_SECS} s");
            return Err(FetchError(message, None, UNREACHABLE));
        }
    };
    if !status.is_success() {
        let message = format!("HTTP {}", u16::from(status));
        let what = "The issuer does not serve a discovery document at this URL.";
        return Err(FetchError(message, None, what));
    }
    serde_json::from_slice(&body).map_err(|e| not_json(&e))
}

/// Verify a compact JWS signed with `alg` (RS256, RS384 or RS512) against an RSA JWK, as Entra
/// does.
fn verify_rsa(jwt: &str, alg: &str, key: &Jwk) -> Result<(), String> {
    use aws_lc_rs::signature::{
        RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
        RsaPublicKeyComponents,
    };
    let algorithm = match alg {
        "RS256" => &RSA_PKCS1_2048_8192_SHA256,
        "RS384" => &RSA_PKCS1_2048_8192_SHA384,
        "RS512" => &RSA_PKCS1_2048_8192_SHA512,
        other => return Err(format!("{other} is not an RSA PKCS#1 signature")),
    };
    if key.kty.as_deref() != Some("RSA") {
        return Err(format!(
            "the published key has kty {:?}, not \"RSA\"",
            key.kty.as_deref().unwrap_or("(none)")
        ));
    }
    let n = key.n.as_deref().and_then(decode_part);
    let n = n.ok_or("the published key has no valid modulus `n`")?;
    let e = key.e.as_deref().and_then(decode_part);
    let e = e.ok_or("the published key has no valid exponent `e`")?;
    let (signing_input, sig) = jwt
        .rsplit_once('.')
        .ok_or("the token has no signature part")?;
    let sig = decode_part(sig).ok_or("the token's signature is not base64url")?;
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(algorithm, signing_input.as_bytes(), &sig)
        .map_err(|_| "the signature does not verify with this key".to_string())
}

/// `check` with `problems` as its fix and `problem` as its entry, at least warned; unchanged
/// without problems.
fn with_problems(mut check: Check, problems: Vec<String>, problem: ProblemId) -> Check {
    if problems.is_empty() {
        return check;
    }
    check.status = check.status.max(Status::Warn);
    check.fix(problems.join("\n")).problem(problem)
}

/// Checks 6 to 9 in order; `Err` with why the checks that did not run are skipped.
pub(super) async fn check(
    d: &mut Doctor,
    token: &str,
    jwt: &DecodedJwt,
    client_options: ClientOptions,
) -> Result<(), &'static str> {
    let iss = jwt.claims.iss.clone().ok_or("the token has no iss")?;
    // For messages: escaped (see `crate::escape`).
    let iss_shown = crate::escape::escape(&iss).into_owned();
    let issuer_step = Page::SelfManaged.url("issuer");

    // 6. issuer form
    let mut check = Check::new(CheckId::Issuer, Status::Ok, "an HTTPS issuer")
        .detail("iss", format!("{iss:?}"));
    let parsed = Url::parse(&iss);
    let mut problems = Vec::new();
    if iss.chars().any(char::is_whitespace) {
        problems.push(
            "The issuer contains whitespace. Fix kube-apiserver's --service-account-issuer value."
                .to_string(),
        );
    }
    match &parsed {
        Err(e) => problems.push(format!("The issuer is not a URL ({e}); Entra needs an https:// URL.")),
        Ok(u) if u.scheme() != "https" => problems.push(format!(
            "The issuer uses {}://; Entra fetches the discovery document only over HTTPS. Set kube-apiserver --service-account-issuer to an https:// URL that serves it (see {issuer_step}).",
            u.scheme(),
        )),
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            if private_issuer_host(host) {
                problems.push(format!(
                    "The issuer host {host} exists only inside the cluster or a private network; Entra fetches {iss_shown}/.well-known/openid-configuration from the public internet. Give the cluster a public issuer (see {issuer_step})."
                ));
            }
            if host.starts_with("oidc.eks.") && host.ends_with(".amazonaws.com") {
                check = check.detail("kind", "EKS cluster issuer");
            } else if host.starts_with("s3.") || host.contains(".s3.") || host.contains(".s3-") {
                check = check.detail("kind", "issuer published on S3 (self-managed cluster)");
            }
        }
    }
    let slash = iss.ends_with('/');
    if slash {
        problems.push("The issuer ends with '/'. That is allowed, but the federated credential's issuer must end with '/' too (exact match). EKS issuers have no trailing slash.".to_string());
    } else {
        check = check.detail(
            "trailing slash",
            "none: the federated credential's issuer must have none either",
        );
    }
    // Entra refuses every problem but a trailing slash, which the federated credential must match.
    d.push(match problems.len() {
        1 if slash => with_problems(check, problems, ProblemId::Aadsts(700211))
            .outcome(Status::Warn, "an HTTPS issuer with a trailing slash"),
        0 => check,
        _ => with_problems(check, problems, ProblemId::Aadsts(90061))
            .outcome(Status::Fail, "Entra cannot use this issuer"),
    });
    if !parsed.is_ok_and(|u| u.scheme() == "https") {
        return Err("the issuer is not an https:// URL");
    }

    // 7. discovery
    let pipeline = crate::http::one_shot_pipeline(client_options);
    let disco_url = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        iss.trim_end_matches('/')
    ))
    .map_err(|_| "no discovery URL can be built from the issuer")?;
    // A fetch that got no answer: the cause's fix (from this pod) and its section; else publishing.
    let failed = |id: CheckId, what: &str, FetchError(message, cause, _), url: &Url| {
        let (fix, problem) = match &cause {
            Some(f) => (
                format!(
                    "{what} {} Entra fetches it from the public internet, not from this pod: if others can fetch it, \
                     only this pod's network is at fault.",
                    f.fix(
                        &format!("the issuer (the token's iss claim; now {iss_shown})"),
                        url.as_str()
                    )
                ),
                f.cause,
            ),
            None => (
                format!(
                    "{what} Entra fetches {disco_url} and then its jwks_uri from the public internet, anonymously, over HTTPS. \
                     On EKS the issuer always serves them (check the cluster's issuer URL); on a self-managed cluster publish both documents, \
                     e.g. to a public S3 bucket (see {}).",
                    Page::SelfManaged.url("publish")
                ),
                ProblemId::Aadsts(90061),
            ),
        };
        Check::new(id, Status::Fail, format!("GET {url}: {message}"))
            .detail("url", url.to_string())
            .fix(fix)
            .problem(problem)
    };
    let disco: Discovery = match get_json(&pipeline, &disco_url).await {
        Ok(v) => v,
        Err(e) => {
            d.push(failed(CheckId::Discovery, e.2, e, &disco_url));
            return Err("no discovery document");
        }
    };
    let mut check = Check::new(
        CheckId::Discovery,
        Status::Ok,
        format!("{disco_url} is served"),
    )
    .detail("url", disco_url.to_string())
    .detail("issuer", opt(disco.issuer.as_deref()))
    .detail("jwks_uri", opt(disco.jwks_uri.as_deref()));
    let mut problems = Vec::new();
    if disco.issuer.as_deref() != Some(iss.as_str()) {
        problems.push(format!(
            "The document's issuer {} differs from the token's iss {iss:?}; OpenID Connect requires them to be equal. Publish a discovery document whose issuer is exactly the --service-account-issuer value.",
            disco.issuer.as_deref().map_or_else(|| "(absent)".into(), |i| format!("{i:?}"))
        ));
    }
    if let Some(algs) = &disco.id_token_signing_alg_values_supported
        && !algs.iter().any(|a| ENTRA_ALGORITHMS.contains(&a.as_str()))
    {
        problems.push(format!(
            "id_token_signing_alg_values_supported is {algs:?}; Entra needs one of {ENTRA_ALGORITHMS:?}."
        ));
    }
    let jwks_url = match disco.jwks_uri.as_deref().map(Url::parse) {
        Some(Ok(u)) if u.scheme() == "https" => Some(u),
        Some(Ok(u)) => {
            check = check.outcome(Status::Fail, "the jwks_uri is not HTTPS");
            problems.push(format!(
                "jwks_uri uses {}://; Entra fetches it only over HTTPS.",
                u.scheme()
            ));
            None
        }
        _ => {
            check = check.outcome(Status::Fail, "the discovery document has no valid jwks_uri");
            problems.push(
                "Add a jwks_uri (an https:// URL of the JWKS) to the discovery document.".into(),
            );
            None
        }
    };
    d.push(with_problems(check, problems, ProblemId::Aadsts(90061)));
    let jwks_url = jwks_url.ok_or("no usable jwks_uri")?;

    // 8. JWKS
    let jwks: Jwks = match get_json(&pipeline, &jwks_url).await {
        Ok(v) => v,
        Err(e) => {
            let what = "The JWKS could not be fetched.";
            d.push(failed(CheckId::Jwks, what, e, &jwks_url));
            return Err("no JWKS");
        }
    };
    let kids: Vec<&str> = jwks
        .keys
        .iter()
        .map(|k| k.kid.as_deref().unwrap_or("(no kid)"))
        .collect();
    let kid = jwt.header.kid.as_deref();
    let key = match kid {
        Some(kid) => jwks.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    };
    let check = Check::new(
        CheckId::Jwks,
        Status::Ok,
        "the JWKS holds the token's signing key",
    )
    .detail("url", jwks_url.to_string())
    .detail("token kid", opt(kid))
    .detail(
        "published kids",
        if kids.is_empty() {
            "(none)".into()
        } else {
            kids.join(", ")
        },
    );
    let Some(key) = key else {
        let summary = match kid {
            Some(k) => format!(
                "the JWKS does not contain the key {k} that signed this token: after a signing-key rotation, publish the new key before the API server signs with it"
            ),
            None => "the token has no kid and the JWKS has several keys".into(),
        };
        // What Entra answers for it: AADSTS7000272, with the catalogue's fix.
        let check = check.outcome(Status::Fail, summary);
        d.push(check.problem(ProblemId::Aadsts(7000272)));
        return Err("the signing key is not published");
    };
    d.push(match &key.alg {
        Some(alg) if !ENTRA_ALGORITHMS.contains(&alg.as_str()) => check
            .outcome(Status::Warn, "the JWKS holds the token's signing key")
            .fix(format!(
                "The published key says alg {alg}; Entra verifies only {ENTRA_ALGORITHMS:?}."
            )),
        _ => check,
    });

    // 9. signature
    let alg = jwt
        .header
        .alg
        .as_deref()
        .filter(|a| ENTRA_ALGORITHMS.contains(a));
    let alg = alg.ok_or("the token is not signed with an algorithm Entra verifies (see `jwt`)")?;
    d.push(match verify_rsa(token, alg, key) {
        Ok(()) => Check::new(
            CheckId::Signature,
            Status::Ok,
            format!("the {alg} signature verifies with the published key"),
        ),
        Err(e) => Check::new(CheckId::Signature, Status::Fail, format!("signature verification failed: {e}"))
            .detail("kid", opt(kid))
            .fix(
                "The key published under this kid is not the key that signed the token: the JWKS is stale or was copied from another cluster. \
                 Republish the JWKS from the API server (`kubectl get --raw /openid/v1/jwks`).",
            )
            .problem(ProblemId::Aadsts(700027)),
    });
    Ok(())
}
