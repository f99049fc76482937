//! Checks 6 to 9, `issuer`, `discovery`, `jwks` and `signature`: what Entra fetches from the
//! issuer, fetched from here, and the token's signature verified as Entra does.

use super::claims::ENTRA_ALGORITHMS;
use super::oidc::{self, FetchError, Fetcher, Jwk};
use super::{Check, CheckId, Doctor, Status, opt};
use crate::jwt::DecodedJwt;
use crate::problem::{Page, ProblemId};
use azure_core::http::Url;

/// Issuer hosts that can only be resolved inside a cluster or a private network.
pub(super) fn private_issuer_host(host: &str) -> bool {
    let h = host.trim_end_matches('.');
    h == "kubernetes.default.svc"
        || h == "kubernetes"
        || h.ends_with(".svc")
        || h.ends_with(".cluster.local")
        || h.ends_with(".local")
        || h.ends_with(".internal")
        || !h.contains('.') && h != "localhost" && h.parse::<std::net::IpAddr>().is_err()
}

pub(super) async fn check(
    d: &mut Doctor,
    token: &str,
    jwt: &DecodedJwt,
    client_options: azure_core::http::ClientOptions,
) {
    let Some(iss) = jwt.claims.iss.clone() else {
        for id in [
            CheckId::Issuer,
            CheckId::Discovery,
            CheckId::Jwks,
            CheckId::Signature,
        ] {
            d.skip(id, "the token has no iss");
        }
        return;
    };
    // For messages: escaped (see `crate::escape`).
    let iss_shown = crate::escape::escape(&iss).into_owned();

    // 6. issuer form
    let mut check =
        Check::new(CheckId::Issuer, Status::Ok, String::new()).detail("iss", format!("{iss:?}"));
    let parsed = Url::parse(&iss);
    let mut fatal = Vec::new();
    let mut notes = Vec::new();
    if iss.trim() != iss || iss.chars().any(char::is_whitespace) {
        fatal.push(
            "The issuer contains whitespace. Fix kube-apiserver's --service-account-issuer value."
                .to_string(),
        );
    }
    match &parsed {
        Err(e) => fatal.push(format!("The issuer is not a URL ({e}); Entra needs an https:// URL.")),
        Ok(u) if u.scheme() != "https" => fatal.push(format!(
            "The issuer uses {}://; Entra fetches the discovery document only over HTTPS. Set kube-apiserver --service-account-issuer to an https:// URL that serves it (see {}).",
            u.scheme(),
            Page::SelfManaged.url("issuer")
        )),
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            if private_issuer_host(host) {
                fatal.push(format!(
                    "The issuer host {host} exists only inside the cluster or a private network; Entra fetches {iss_shown}/.well-known/openid-configuration from the public internet. Give the cluster a public issuer (see {}).",
                    Page::SelfManaged.url("issuer")
                ));
            }
            if host.starts_with("oidc.eks.") && host.ends_with(".amazonaws.com") {
                check = check.detail("kind", "EKS cluster issuer");
            } else if host.starts_with("s3.") || host.contains(".s3.") || host.contains(".s3-") {
                check = check.detail("kind", "issuer published on S3 (self-managed cluster)");
            }
        }
    }
    if iss.ends_with('/') {
        notes.push("The issuer ends with '/'. That is allowed, but the federated credential's issuer must end with '/' too (exact match). EKS issuers have no trailing slash.".to_string());
    } else {
        check = check.detail(
            "trailing slash",
            "none: the federated credential's issuer must have none either",
        );
    }
    if !fatal.is_empty() {
        check.status = Status::Fail;
        check.summary = "Entra cannot use this issuer".into();
        fatal.extend(notes);
        d.push(
            check
                .fix(fatal.join("\n"))
                .problem(ProblemId::Aadsts(90061)),
        );
    } else if !notes.is_empty() {
        check.status = Status::Warn;
        check.summary = "an HTTPS issuer with a trailing slash".into();
        d.push(
            check
                .fix(notes.join("\n"))
                .problem(ProblemId::Aadsts(700211)),
        );
    } else {
        check.summary = "an HTTPS issuer".into();
        d.push(check);
    }
    if parsed
        .as_ref()
        .map(|u| u.scheme() != "https")
        .unwrap_or(true)
    {
        for id in [CheckId::Discovery, CheckId::Jwks, CheckId::Signature] {
            d.skip(id, "the issuer is not an https:// URL");
        }
        return;
    }

    // 7. discovery
    let fetcher = Fetcher::new(client_options);
    let Ok(disco_url) = oidc::discovery_url(&iss) else {
        for id in [CheckId::Discovery, CheckId::Jwks, CheckId::Signature] {
            d.skip(id, "no discovery URL can be built from the issuer");
        }
        return;
    };
    let publish_fix = |what: &str| {
        format!(
            "{what} Entra fetches {disco_url} and then its jwks_uri from the public internet, anonymously, over HTTPS. \
             On EKS the issuer always serves them (check the cluster's issuer URL); on a self-managed cluster publish both documents, \
             e.g. to a public S3 bucket (see {}).",
            Page::SelfManaged.url("publish")
        )
    };
    // A fetch that got no answer: the cause's fix (from this pod) and its section; else publishing.
    let fetch_fix = |what: &str, e: &FetchError, url: &Url| match e {
        FetchError::Transport(f) => (
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
        _ => (publish_fix(what), ProblemId::Aadsts(90061)),
    };
    let disco: oidc::Discovery = match fetcher.get_json(&disco_url).await {
        Ok(v) => v,
        Err(e) => {
            let what = match &e {
                FetchError::Transport(_) | FetchError::TimedOut => {
                    "The discovery document could not be fetched from here."
                }
                FetchError::Status(_) => {
                    "The issuer does not serve a discovery document at this URL."
                }
                FetchError::Body(_) => "The discovery document is not valid JSON.",
            };
            let (fix, problem) = fetch_fix(what, &e, &disco_url);
            d.push(
                Check::new(
                    CheckId::Discovery,
                    Status::Fail,
                    format!("GET {disco_url}: {e}"),
                )
                .detail("url", disco_url.to_string())
                .fix(fix)
                .problem(problem),
            );
            d.skip(CheckId::Jwks, "no discovery document");
            d.skip(CheckId::Signature, "no discovery document");
            return;
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
            disco.issuer.as_deref().map(|i| format!("{i:?}")).unwrap_or_else(|| "(absent)".into())
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
            check.status = Status::Fail;
            check.summary = "the jwks_uri is not HTTPS".into();
            problems.push(format!(
                "jwks_uri uses {}://; Entra fetches it only over HTTPS.",
                u.scheme()
            ));
            None
        }
        _ => {
            check.status = Status::Fail;
            check.summary = "the discovery document has no valid jwks_uri".into();
            problems.push(
                "Add a jwks_uri (an https:// URL of the JWKS) to the discovery document.".into(),
            );
            None
        }
    };
    if !problems.is_empty() {
        if check.status == Status::Ok {
            check.status = Status::Warn;
        }
        check = check
            .fix(problems.join("\n"))
            .problem(ProblemId::Aadsts(90061));
    }
    d.push(check);
    let Some(jwks_url) = jwks_url else {
        d.skip(CheckId::Jwks, "no usable jwks_uri");
        d.skip(CheckId::Signature, "no usable jwks_uri");
        return;
    };

    // 8. JWKS
    let jwks: oidc::Jwks = match fetcher.get_json(&jwks_url).await {
        Ok(v) => v,
        Err(e) => {
            let (fix, problem) = fetch_fix("The JWKS could not be fetched.", &e, &jwks_url);
            d.push(
                Check::new(CheckId::Jwks, Status::Fail, format!("GET {jwks_url}: {e}"))
                    .detail("url", jwks_url.to_string())
                    .fix(fix)
                    .problem(problem),
            );
            d.skip(CheckId::Signature, "no JWKS");
            return;
        }
    };
    let kids: Vec<String> = jwks
        .keys
        .iter()
        .map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".into()))
        .collect();
    let kid = jwt.header.kid.clone();
    let key: Option<Jwk> = match &kid {
        Some(kid) => jwks
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .cloned(),
        None if jwks.keys.len() == 1 => jwks.keys.first().cloned(),
        None => None,
    };
    let base = Check::new(CheckId::Jwks, Status::Ok, String::new())
        .detail("url", jwks_url.to_string())
        .detail("token kid", opt(kid.as_deref()))
        .detail(
            "published kids",
            if kids.is_empty() {
                "(none)".into()
            } else {
                kids.join(", ")
            },
        );
    let Some(key) = key else {
        let mut c = base;
        c.status = Status::Fail;
        c.summary = match &kid {
            Some(k) => format!("the JWKS does not contain the key {k} that signed this token"),
            None => "the token has no kid and the JWKS has several keys".into(),
        };
        d.push(
            c.fix(
                "Publish the current service-account signing key in the JWKS (`kubectl get --raw /openid/v1/jwks` prints the keys the API server uses; copy that document to the jwks_uri). \
                 After a signing-key rotation, publish the new key before the API server signs with it, and keep the old one until its tokens have expired.",
            )
            .problem(ProblemId::Aadsts(700027)),
        );
        d.skip(CheckId::Signature, "the signing key is not published");
        return;
    };
    let mut c = base;
    c.summary = "the JWKS holds the token's signing key".into();
    if let Some(alg) = &key.alg
        && !ENTRA_ALGORITHMS.contains(&alg.as_str())
    {
        c.status = Status::Warn;
        c = c.fix(format!(
            "The published key says alg {alg}; Entra verifies only {ENTRA_ALGORITHMS:?}."
        ));
    }
    d.push(c);

    // 9. signature
    let Some(alg) = jwt
        .header
        .alg
        .as_deref()
        .filter(|a| ENTRA_ALGORITHMS.contains(a))
    else {
        d.skip(
            CheckId::Signature,
            "the token is not signed with an algorithm Entra verifies (see `jwt`)",
        );
        return;
    };
    match oidc::verify_rsa(token, alg, &key) {
        Ok(()) => {
            d.push(Check::new(
                CheckId::Signature,
                Status::Ok,
                format!("the {alg} signature verifies with the published key"),
            ));
        }
        Err(e) => {
            d.push(
                Check::new(CheckId::Signature, Status::Fail, format!("signature verification failed: {e}"))
                    .detail("kid", opt(kid.as_deref()))
                    .fix(
                        "The key published under this kid is not the key that signed the token: the JWKS is stale or was copied from another cluster. \
                         Republish the JWKS from the API server (`kubectl get --raw /openid/v1/jwks`).",
                    )
                    .problem(ProblemId::Aadsts(700027)),
            );
        }
    }
}
