//! The catalogue's acceptance test: for every entry that both the credential and `doctor` can
//! meet, one setup drives the credential (over HTTPS against the emulator, default options) and
//! `doctor::run` with the same options; both must carry the same problem id, fix and URL, and the
//! URL's anchor must exist on its page. Entries only one side can meet (or that 127.0.0.1 cannot
//! produce) are listed with the reason; an entry neither covered nor listed fails the test, so a
//! new entry cannot be forgotten.

use super::*;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::doctor::{self, CheckId, DoctorOptions, Report, Status};
use azure_identity_k8s::{ProblemId, RefreshPolicy};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_emulator::{Endpoint, Fault};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What the credential and doctor are given (each side gets its own, from the same setup).
struct Given {
    options: WorkloadIdentityCredentialOptions,
    scope: &'static str,
    #[cfg(feature = "aws")]
    aws: Option<azure_identity_k8s::assertion::AwsWebIdentitySourceOptions>,
}

/// The options users run, pointing at the emulator: `WorkloadIdentityCredentialOptions::default()`
/// (its retry options and refresh policy) with the emulator's HTTPS transport.
fn defaults(fx: &Fixture) -> WorkloadIdentityCredentialOptions {
    let mut o = WorkloadIdentityCredentialOptions {
        client_id: Some(CLIENT.into()),
        tenant_id: Some(TENANT.into()),
        token_file_path: Some(fx.token_path.clone()),
        env: Env::from_pairs([("AZURE_AUTHORITY_HOST", fx.emu.authority_host())]),
        ..Default::default()
    };
    o.credential_options.client_options.transport = Some(fx.emu.transport());
    o
}

fn given(options: WorkloadIdentityCredentialOptions) -> Given {
    Given {
        options,
        scope: STORAGE,
        #[cfg(feature = "aws")]
        aws: None,
    }
}

fn with_token(fx: &Fixture, sa: ServiceAccountToken) -> Given {
    fx.write_token(&sa);
    given(defaults(fx))
}

fn with_file(fx: &Fixture, content: &[u8]) -> Given {
    std::fs::write(&fx.token_path, content).unwrap();
    given(defaults(fx))
}

fn with_path(fx: &Fixture, path: std::path::PathBuf) -> Given {
    let mut o = defaults(fx);
    o.token_file_path = Some(path);
    given(o)
}

/// Entra answers `code` (a code the emulator's validation cannot produce on its own).
fn entra_says(fx: &Fixture, status: u16, error: &str, code: u32) -> Given {
    fx.emu.set_fault(
        Endpoint::Token,
        Some(Fault::Entra {
            status,
            error: error.into(),
            code,
            message: format!("Emulated answer with code {code}."),
        }),
    );
    given(defaults(fx))
}

/// A valid token whose header says `alg`.
fn with_alg(fx: &Fixture, alg: &str) -> Given {
    let token = fx.write_token(&ServiceAccountToken::default());
    let (_, rest) = token.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"{alg}","kid":"{}"}}"#,
        fx.issuer.signing_kid()
    ));
    std::fs::write(&fx.token_path, format!("{header}.{rest}")).unwrap();
    given(defaults(fx))
}

/// A validly signed token without the claim `name`.
fn without_claim(fx: &Fixture, name: &str) -> Given {
    let mut claims = ServiceAccountToken::default().claims(&fx.issuer.url());
    claims.as_object_mut().unwrap().remove(name);
    with_file(fx, fx.issuer.sign_claims(&claims).as_bytes())
}

/// A port on 127.0.0.1 nothing listens on, the same for both sides of a scenario.
fn closed_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(closed_local_port)
}

/// A server on 127.0.0.1 (the same for both sides) that answers every connection with `reply`
/// and closes it: nothing (a closed connection), or plain text where TLS is expected.
fn local_server(slot: &'static OnceLock<u16>, reply: &'static [u8]) -> u16 {
    *slot.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = std::io::Write::write_all(&mut stream, reply);
            }
        });
        port
    })
}

/// The authority at `https://127.0.0.1:<port>`.
fn authority_at(fx: &Fixture, port: u16) -> Given {
    let mut o = defaults(fx);
    o.env = Env::from_pairs([("AZURE_AUTHORITY_HOST", format!("https://127.0.0.1:{port}"))]);
    given(o)
}

type Setup = fn(&Fixture) -> Given;

/// The entries both sides meet with a token file: (problem, doctor's checks that carry it, setup).
fn scenarios() -> Vec<(ProblemId, &'static [CheckId], Setup)> {
    use CheckId::*;
    vec![
        (ProblemId::NotConfigured, &[Configuration], |fx| {
            let mut o = defaults(fx);
            o.client_id = None;
            given(o)
        }),
        (ProblemId::InvalidConfiguration, &[Configuration], |fx| {
            let mut o = defaults(fx);
            o.env = Env::from_pairs([(
                "AZURE_AUTHORITY_HOST",
                fx.emu.authority_host().replace("https://", "http://"),
            )]);
            given(o)
        }),
        (ProblemId::InvalidScope, &[Scope], |fx| Given {
            scope: "https://graph.microsoft.com/User.Read",
            ..given(defaults(fx))
        }),
        (ProblemId::TokenFileMissing, &[TokenFile], |fx| {
            with_path(fx, fx.dir.path().join("nowhere"))
        }),
        (ProblemId::TokenFileUnreadable, &[TokenFile], |fx| {
            let looping = fx.dir.path().join("loop");
            let back = fx.dir.path().join("loop back");
            let _ = std::os::unix::fs::symlink(&back, &looping);
            let _ = std::os::unix::fs::symlink(&looping, &back);
            with_path(fx, looping)
        }),
        (ProblemId::TokenFileIsADirectory, &[TokenFile], |fx| {
            with_path(fx, fx.dir.path().to_path_buf())
        }),
        (ProblemId::TokenFileNotARegularFile, &[TokenFile], |fx| {
            with_path(fx, "/dev/zero".into())
        }),
        (ProblemId::TokenFileEmpty, &[TokenFile], |fx| {
            with_file(fx, b" \n")
        }),
        (ProblemId::TokenFileNotAJwt, &[Jwt], |fx| {
            with_file(fx, b"not-a-service-account-token")
        }),
        (ProblemId::TokenExpired, &[Expiry], |fx| {
            with_token(
                fx,
                ServiceAccountToken {
                    issued_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(3)),
                    ..Default::default()
                },
            )
        }),
        (ProblemId::TokenNotYetValid, &[Expiry], |fx| {
            with_token(
                fx,
                ServiceAccountToken {
                    issued_at: Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1)),
                    ..Default::default()
                },
            )
        }),
        (ProblemId::AudienceMismatch, &[Audience], |fx| {
            fx.write_token(&ServiceAccountToken {
                audiences: vec!["api://other".into()],
                ..Default::default()
            });
            let mut o = defaults(fx);
            o.expected_audience = Some("api://AzureADTokenExchange".into());
            given(o)
        }),
        // A US Government token against the public authority, the expected audience set: both
        // say to set the authority host.
        (ProblemId::AudienceMismatch, &[Audience], |fx| {
            fx.write_token(&ServiceAccountToken {
                audiences: vec!["api://AzureADTokenExchangeUSGov".into()],
                ..Default::default()
            });
            let mut o = defaults(fx);
            o.expected_audience = Some("api://AzureADTokenExchange".into());
            given(o)
        }),
        (ProblemId::ForeignAudience, &[Audience], |fx| {
            with_token(
                fx,
                ServiceAccountToken {
                    audiences: vec!["sts.amazonaws.com".into()],
                    ..Default::default()
                },
            )
        }),
        // The file named by AWS_WEB_IDENTITY_TOKEN_FILE: refused before it is read.
        (ProblemId::ForeignAudience, &[TokenFile], |fx| {
            let mut o = defaults(fx);
            o.env = Env::from_pairs([
                ("AZURE_AUTHORITY_HOST", fx.emu.authority_host()),
                (
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    fx.token_path.display().to_string(),
                ),
            ]);
            given(o)
        }),
        (ProblemId::TransportConnectionRefused, &[Exchange], |fx| {
            authority_at(fx, closed_port())
        }),
        (ProblemId::TransportConnectionReset, &[Exchange], |fx| {
            static CLOSING: OnceLock<u16> = OnceLock::new();
            authority_at(fx, local_server(&CLOSING, b""))
        }),
        (ProblemId::TransportTls, &[Exchange], |fx| {
            static PLAIN_TEXT: OnceLock<u16> = OnceLock::new();
            authority_at(
                fx,
                local_server(&PLAIN_TEXT, b"HTTP/1.1 400 Bad Request\r\n\r\n"),
            )
        }),
        // An answer that breaks off.
        (ProblemId::TransportConnectionReset, &[Exchange], |fx| {
            fx.emu.set_fault(Endpoint::Token, Some(Fault::Truncated));
            given(defaults(fx))
        }),
        // The default transport trusts the system's roots, not the emulator's CA.
        (
            ProblemId::TransportUntrustedCertificate,
            &[Exchange],
            |fx| {
                let mut o = defaults(fx);
                o.credential_options.client_options.transport = None;
                given(o)
            },
        ),
        // The one option that is not the default: a 2 s bound instead of 30 s.
        (ProblemId::Timeout, &[Exchange], |fx| {
            fx.emu.set_fault(Endpoint::Token, Some(Fault::Hang));
            let mut o = defaults(fx);
            o.refresh_policy = RefreshPolicy {
                attempt_timeout: azure_core::time::Duration::seconds(2),
                ..Default::default()
            };
            given(o)
        }),
        (ProblemId::InvalidResponse, &[Exchange], |fx| {
            fx.emu.set_fault(Endpoint::Token, Some(Fault::Html(404)));
            given(defaults(fx))
        }),
        // Entra's answers, from the emulator's own validation.
        (ProblemId::Aadsts(90002), &[Exchange], |fx| {
            let mut o = defaults(fx);
            o.tenant_id = Some("contoso.onmicrosoft.com".into());
            given(o)
        }),
        (ProblemId::Aadsts(700016), &[Exchange], |fx| {
            let mut o = defaults(fx);
            o.client_id = Some(UNKNOWN_CLIENT.into());
            given(o)
        }),
        (ProblemId::Aadsts(70021), &[Exchange], |fx| {
            fx.emu.remove_federated_credentials(TENANT, CLIENT);
            given(defaults(fx))
        }),
        // A US Government token against the public authority (no expected audience set).
        (ProblemId::Aadsts(70021), &[Exchange], |fx| {
            with_token(
                fx,
                ServiceAccountToken {
                    audiences: vec!["api://AzureADTokenExchangeUSGov".into()],
                    ..Default::default()
                },
            )
        }),
        (ProblemId::Aadsts(90061), &[Exchange], |fx| {
            fx.issuer.set_discovery_available(false);
            given(defaults(fx))
        }),
        (ProblemId::Aadsts(7000272), &[Exchange], |fx| {
            let old = fx.issuer.signing_kid();
            if fx.issuer.add_key() != old {
                fx.issuer.retire_key(&old);
            }
            given(defaults(fx))
        }),
        (ProblemId::Aadsts(700027), &[Exchange], |fx| {
            let token = fx.write_token(&ServiceAccountToken::default());
            let (head, _) = token.rsplit_once('.').unwrap();
            with_file(
                fx,
                format!("{head}.{}", URL_SAFE_NO_PAD.encode([7u8; 256])).as_bytes(),
            )
        }),
        // Caught by doctor before Entra, with the credential's entry for Entra's answer.
        (ProblemId::Aadsts(70023), &[Expiry, Exchange], |fx| {
            fx.emu
                .set_max_assertion_lifetime(Some(std::time::Duration::from_secs(86_400)));
            with_token(
                fx,
                ServiceAccountToken {
                    lifetime: std::time::Duration::from_secs(2 * 86_400),
                    ..Default::default()
                },
            )
        }),
        (ProblemId::Aadsts(5002738), &[Jwt, Exchange], |fx| {
            with_alg(fx, "ES256")
        }),
        // A validly signed token without exp: the credential sends it, Entra refuses it.
        (ProblemId::Aadsts(50027), &[Jwt, Exchange], |fx| {
            let mut claims = ServiceAccountToken::default().claims(&fx.issuer.url());
            claims.as_object_mut().unwrap().remove("exp");
            with_file(fx, fx.issuer.sign_claims(&claims).as_bytes())
        }),
        // A validly signed token with exp 1e300 (no representable date): sent, 50027.
        (ProblemId::Aadsts(50027), &[Jwt, Exchange], |fx| {
            let mut claims = ServiceAccountToken::default().claims(&fx.issuer.url());
            claims["exp"] = serde_json::json!(1e300);
            with_file(fx, fx.issuer.sign_claims(&claims).as_bytes())
        }),
        // Tokens without iss, sub or aud (or with aud []), or with no claims at all: the
        // credential sends them (as azure_identity does) and no federated credential matches.
        (ProblemId::Aadsts(70021), &[Jwt, Exchange], |fx| {
            without_claim(fx, "iss")
        }),
        (ProblemId::Aadsts(70021), &[Jwt, Exchange], |fx| {
            without_claim(fx, "sub")
        }),
        (ProblemId::Aadsts(70021), &[Jwt, Exchange], |fx| {
            without_claim(fx, "aud")
        }),
        (ProblemId::Aadsts(70021), &[Jwt, Exchange], |fx| {
            let mut claims = ServiceAccountToken::default().claims(&fx.issuer.url());
            claims["aud"] = serde_json::json!([]);
            with_file(fx, fx.issuer.sign_claims(&claims).as_bytes())
        }),
        (ProblemId::Aadsts(70021), &[Jwt, Exchange], |fx| {
            with_file(fx, fx.issuer.sign_claims(&serde_json::json!({})).as_bytes())
        }),
        // Entra's answers the emulator's validation does not give (or the credential's local
        // checks never let through), answered in Entra's shape.
        (ProblemId::Aadsts(700211), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_client", 700211)
        }),
        (ProblemId::Aadsts(700212), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_client", 700212)
        }),
        (ProblemId::Aadsts(700213), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_client", 700213)
        }),
        (ProblemId::Aadsts(7002137), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_client", 7002137)
        }),
        (ProblemId::Aadsts(7002138), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_client", 7002138)
        }),
        (ProblemId::Aadsts(700024), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_client", 700024)
        }),
        (ProblemId::Aadsts(900384), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_request", 900384)
        }),
        (ProblemId::Aadsts(90023), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_request", 90023)
        }),
        (ProblemId::Aadsts(1002012), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_scope", 1002012)
        }),
        (ProblemId::Aadsts(70011), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_scope", 70011)
        }),
        (ProblemId::Aadsts(70003), &[Exchange], |fx| {
            entra_says(fx, 400, "unsupported_grant_type", 70003)
        }),
        (ProblemId::Aadsts(50196), &[Exchange], |fx| {
            entra_says(fx, 400, "invalid_request", 50196)
        }),
    ]
}

/// The entries this test does not drive, and why: only one side can meet them, or 127.0.0.1
/// cannot produce them.
fn not_driven() -> BTreeMap<String, &'static str> {
    let mut listed = BTreeMap::from([
        (
            ProblemId::ClientAssertionSource.to_string(),
            "only a custom source (WorkloadIdentityCredential::with_client_assertion) fails this way; doctor examines the token file or AWS STS, never a custom source",
        ),
        (
            ProblemId::EntraError.to_string(),
            "Entra's error answers always carry error_codes; only a server answering in OAuth's shape without them gives it (src/entra/tests.rs); doctor's exchange check would carry it through Check::error like every exchange error",
        ),
    ]);
    // Both sides meet these through the same classifier (src/http/cause.rs, whose unit tests
    // build each cause's error chain), but 127.0.0.1 cannot produce them without changing the
    // machine or the process environment.
    for (p, why) in [
        (
            ProblemId::Transport,
            "the generic entry: an error the classifier (src/http/cause.rs) cannot name, a request abandoned with its dropped runtime, or a panicking transport; 127.0.0.1 gives only causes it names",
        ),
        (
            ProblemId::TransportDns,
            "a failing name lookup needs the machine's resolver (without a DNS server a lookup can hang instead of failing)",
        ),
        (
            ProblemId::TransportCertificateName,
            "the emulator's certificate names 127.0.0.1, ::1 and localhost, the only names that reach it",
        ),
        (
            ProblemId::TransportCertificateExpired,
            "the emulator's CA issues only current certificates",
        ),
        (
            ProblemId::TransportProxy,
            "the default transport reads HTTPS_PROXY from the process environment, which a test must not change",
        ),
        (
            ProblemId::TransportTimedOut,
            "a connect time-out needs an address that drops packets; 127.0.0.1 answers or refuses at once",
        ),
    ] {
        listed.insert(p.to_string(), why);
    }
    if !cfg!(feature = "aws") {
        for p in [
            ProblemId::AwsAccessDenied,
            ProblemId::AwsFederationDisabled,
            ProblemId::AwsCredentials,
            ProblemId::AwsThrottling,
            ProblemId::AwsRegion,
            ProblemId::AwsLimits,
            ProblemId::AwsSts,
        ] {
            listed.insert(p.to_string(), "needs cargo feature aws (tested with it)");
        }
    }
    listed
}

/// The credential's error for `given`: at construction, else from `get_token`.
async fn credential_error(given: Given) -> CredentialError {
    #[cfg(feature = "aws")]
    let built = match given.aws {
        Some(aws) => WorkloadIdentityCredential::from_aws(Some(given.options), aws),
        None => WorkloadIdentityCredential::new(Some(given.options)),
    };
    #[cfg(not(feature = "aws"))]
    let built = WorkloadIdentityCredential::new(Some(given.options));
    let err = match built {
        Ok(c) => c
            .get_token(&[given.scope], None)
            .await
            .expect_err("must fail"),
        Err(e) => e,
    };
    err.downcast_ref::<CredentialError>()
        .expect("source is CredentialError")
        .clone()
}

async fn doctor_report(given: Given) -> Report {
    doctor::run(DoctorOptions {
        credential: given.options,
        scope: given.scope.to_string(),
        skip_exchange: false,
        #[cfg(feature = "aws")]
        aws: given.aws,
    })
    .await
}

/// Where `problem` does not carry the same id, fix and URL on both sides, or its anchor is
/// missing: what differs.
fn compare(
    problem: ProblemId,
    checks: &[CheckId],
    e: &CredentialError,
    report: &Report,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut differ = |what: String| wrong.push(format!("{problem}: {what}"));
    if e.problem_id() != Some(problem) {
        differ(format!("the credential says {:?}: {e}", e.problem_id()));
    }
    let (Some(fix), Some(url)) = (e.fix(), e.documentation_url()) else {
        differ(format!("the credential's error lacks a fix or URL: {e}"));
        return wrong;
    };
    if !e.message().contains(&format!("Fix: {fix}")) || !e.message().contains(url) {
        differ(format!("the message does not state the fix and URL: {e}"));
    }
    if url != problem.documentation_url() {
        differ(format!("URL {url}"));
    }
    let (page, anchor) = url.rsplit_once('#').expect("an anchor");
    let doc = if page.ends_with("/aws_outbound/index.html") {
        include_str!("../../../docs/aws-outbound.md")
    } else {
        include_str!("../../../docs/troubleshooting.md")
    };
    if !doc.contains(&format!("<a id=\"{anchor}\"></a>")) {
        differ(format!("no section {anchor:?} on {page}"));
    }
    for id in checks {
        let Some(c) = report.check(*id) else {
            differ(format!("doctor ran no {id} check:\n{report}"));
            continue;
        };
        if matches!(c.status, Status::Ok | Status::Skip) {
            differ(format!("doctor's {id} is {:?}:\n{report}", c.status));
        } else if c.problem_id != Some(problem)
            || c.fix.as_deref() != Some(fix)
            || c.url.as_deref() != Some(url)
        {
            differ(format!(
                "doctor's {id} carries {:?}, fix {:?}, url {:?}; the credential {fix:?}, {url}",
                c.problem_id, c.fix, c.url
            ));
        }
    }
    wrong
}

/// The credential's error and doctor's report on one fresh emulator, `setup` run once per side
/// (options are not Clone); both sides run at once.
async fn both_sides(setup: impl Fn(&Fixture) -> Given) -> (CredentialError, Report) {
    let fx = Fixture::new().await;
    let (mine, doctors) = (setup(&fx), setup(&fx));
    tokio::join!(credential_error(mine), doctor_report(doctors))
}

#[tokio::test]
async fn the_credential_and_doctor_agree_on_every_entry() {
    // Every entry at once (most of the time is spent waiting for retries), but the time-out
    // alone: its 2 s bound must not be spent on the other entries' work.
    let (alone, together): (Vec<_>, Vec<_>) = scenarios()
        .into_iter()
        .partition(|(problem, ..)| *problem == ProblemId::Timeout);
    let run = |(problem, checks, setup): (ProblemId, &'static [CheckId], Setup)| async move {
        let (e, report) = both_sides(setup).await;
        (problem, compare(problem, checks, &e, &report))
    };
    let mut results = futures::future::join_all(together.into_iter().map(run)).await;
    for scenario in alone {
        results.push(run(scenario).await);
    }
    #[cfg(feature = "aws")]
    for (problem, setup) in aws::scenarios() {
        let fixture = crate::common::aws::Aws::new().await;
        let (mine, doctors) = (setup(&fixture), setup(&fixture));
        let (e, report) = tokio::join!(credential_error(mine), doctor_report(doctors));
        results.push((problem, compare(problem, &[CheckId::AwsSts], &e, &report)));
    }
    let covered: Vec<ProblemId> = results.iter().map(|(p, _)| *p).collect();
    let mut wrong: Vec<String> = results.into_iter().flat_map(|(_, w)| w).collect();
    // Every entry of the catalogue is covered, or listed with the reason only one side meets it.
    let listed = not_driven();
    for p in ProblemId::all() {
        let is_listed = listed.contains_key(&p.to_string());
        match (covered.contains(&p), is_listed) {
            (false, false) => wrong.push(format!("{p}: neither covered nor listed")),
            (true, true) => wrong.push(format!("{p}: covered, yet listed as not driven")),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::common::aws::{Aws, ROLE};
    use entra_emulator::StsError;

    type AwsSetup = fn(&Aws) -> Given;

    fn from_sts(fx: &Aws) -> Given {
        let mut options = defaults(&fx.fx);
        options.token_file_path = None;
        Given {
            aws: Some(fx.aws_options()),
            ..given(options)
        }
    }

    /// STS answers `code` to the next `n` calls (the AWS SDK retries throttling).
    fn sts_says(fx: &Aws, status: u16, code: &str, n: usize) -> Given {
        for _ in 0..n {
            fx.fx
                .emu
                .push_sts_error(StsError::new(status, code, "Emulated."));
        }
        from_sts(fx)
    }

    /// The AWS entries, all met at doctor's `aws-sts` check.
    pub(super) fn scenarios() -> Vec<(ProblemId, AwsSetup)> {
        vec![
            (ProblemId::AwsAccessDenied, |fx| {
                fx.account.set_role_allowed(ROLE, false);
                from_sts(fx)
            }),
            (ProblemId::AwsFederationDisabled, |fx| {
                fx.account.set_outbound_federation_enabled(false);
                from_sts(fx)
            }),
            (ProblemId::AwsCredentials, |fx| {
                fx.account.expire_role_credentials(ROLE);
                from_sts(fx)
            }),
            (ProblemId::AwsThrottling, |fx| {
                sts_says(fx, 400, "Throttling", 3)
            }),
            (ProblemId::AwsRegion, |fx| {
                sts_says(fx, 403, "RegionDisabledException", 1)
            }),
            (ProblemId::AwsSts, |fx| {
                sts_says(fx, 400, "SomeFutureStsError", 1)
            }),
            (ProblemId::AwsLimits, |fx| {
                let mut g = from_sts(fx);
                if let Some(aws) = g.aws.as_mut() {
                    aws.duration = std::time::Duration::from_secs(30);
                }
                g
            }),
        ]
    }
}
