//! Proves the drop-in promise: code written for `azure_identity::WorkloadIdentityCredential`
//! compiles against this crate after changing only the `use` line, and one table of scenarios
//! runs through both crates against the same emulator. Every scenario azure_identity 1.0 gets a
//! token for, this crate gets one for too (except the documented security refusals); every
//! scenario it refuses, this crate refuses no later (at `new()` < locally at `get_token` < after
//! asking Entra) and with a message that names the cause. README.md's migration section shows the
//! table (checked below).

mod official {
    use azure_identity::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
    include!("drop_in/body.rs");
    include!("drop_in/attempt.rs");
}

mod ours {
    use azure_identity_k8s::{WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
    include!("drop_in/body.rs");
    include!("drop_in/attempt.rs");
}

mod custom_assertion;
mod custom_source;
mod refusals;

use crate::common::*;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::AccessToken;
use entra_emulator::{
    AccessTokenOptions, Endpoint, FederatedCredential, ProjectedVolume, ServiceAccountToken,
};
use std::path::PathBuf;
use std::sync::Arc;

fn client_options(fx: &Fixture) -> azure_core::http::ClientOptions {
    // The authority comes from the cloud configuration, which both crates read (no process
    // environment is touched).
    let mut custom = CustomConfiguration::default();
    custom.authority_host = fx.emu.authority_host();
    let mut o = fx.client_options();
    o.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
    o
}

#[tokio::test]
async fn the_same_source_works_with_both_crates() {
    let fx = Fixture::new().await;
    // azure_identity 1.0 sends the file's content untrimmed, so give it a file without the
    // trailing newline that kubelet-written files may have (ours trims; tests/it/credential.rs).
    let t = std::fs::read_to_string(&fx.token_path).unwrap();
    std::fs::write(&fx.token_path, t.trim()).unwrap();
    let theirs = official::get_storage_token(
        client_options(&fx),
        CLIENT.into(),
        TENANT.into(),
        fx.token_path.clone(),
    )
    .await
    .expect("azure_identity gets a token from the emulator");
    let mine = ours::get_storage_token(
        client_options(&fx),
        CLIENT.into(),
        TENANT.into(),
        fx.token_path.clone(),
    )
    .await
    .expect("azure_identity_k8s gets a token from the emulator");
    assert_eq!(
        claims(theirs.token.secret())["aud"],
        claims(mine.token.secret())["aud"]
    );
    assert_eq!(claims(mine.token.secret())["appid"], CLIENT);
}

/// What one crate did with one scenario.
pub enum Attempt {
    /// `new()` failed.
    New(azure_core::Error),
    /// `get_token` failed.
    GetToken(azure_core::Error),
    /// A token: both crates return azure_core's `AccessToken` (its value is not inspected).
    Token(#[allow(dead_code)] AccessToken),
}

/// Where a scenario ended, earliest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Refused by `new()`.
    New,
    /// Refused by `get_token` before any request.
    Local,
    /// Refused after asking the token endpoint.
    Entra,
    /// A token.
    Token,
}

/// The expected outcome for one crate: the stage, and a text its error must contain.
type Expect = (Stage, &'static str);

/// What a scenario's setup hands to both crates.
struct Setup {
    path: PathBuf,
    client: &'static str,
    scope: &'static str,
    /// Runs between `new()` and `get_token` (a rotation).
    between: Option<fn(&Fixture)>,
}

impl Setup {
    fn file(path: PathBuf) -> Self {
        Self {
            path,
            client: CLIENT,
            scope: STORAGE,
            between: None,
        }
    }
}

pub(crate) struct Scenario {
    name: &'static str,
    setup: fn(&Fixture) -> Setup,
    theirs: Expect,
    ours: Expect,
    /// Why this crate refuses what azure_identity accepts (README: remaining differences).
    difference: Option<&'static str>,
}

const FOREIGN: &str = "a security refusal: the token is also a credential for AWS or the cluster; sending it to Entra hands that credential to a third party (docs/security.md)";

fn write(fx: &Fixture, sa: &ServiceAccountToken, suffix: &str) -> PathBuf {
    let t = fx.issuer.mint(sa);
    std::fs::write(&fx.token_path, format!("{t}{suffix}")).unwrap();
    fx.token_path.clone()
}

fn with_audience(fx: &Fixture, aud: &str) -> PathBuf {
    fx.emu.remove_federated_credentials(TENANT, CLIENT);
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(fx.issuer.url(), ServiceAccountToken::default().subject())
            .with_audiences([aud]),
    );
    let sa = ServiceAccountToken {
        audiences: vec![aud.into()],
        ..Default::default()
    };
    write(fx, &sa, "")
}

fn expired() -> ServiceAccountToken {
    ServiceAccountToken {
        issued_at: Some(time::OffsetDateTime::now_utc() - time::Duration::hours(3)),
        ..Default::default()
    }
}

fn volume(fx: &Fixture, sa: ServiceAccountToken) -> PathBuf {
    let vol = ProjectedVolume::create(
        &fx.dir.path().join("projected"),
        "azure-identity-token",
        fx.issuer.clone(),
        sa,
    )
    .unwrap();
    vol.token_path()
}

fn rotate(fx: &Fixture) {
    // What the kubelet's atomic writer does: a new timestamped directory, `..data` swapped.
    let dir = fx.dir.path().join("projected");
    let data = dir.join("..rotated");
    std::fs::create_dir_all(&data).unwrap();
    let fresh = fx.issuer.mint(&ServiceAccountToken::default());
    std::fs::write(data.join("azure-identity-token"), fresh).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink("..rotated", &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

/// The table. README.md's migration section shows it; keep them in step.
pub(crate) fn scenarios() -> Vec<Scenario> {
    use Stage::*;
    vec![
        Scenario {
            name: "token as the kubelet writes it",
            setup: |fx| Setup::file(write(fx, &ServiceAccountToken::default(), "")),
            theirs: (Token, ""),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "token file ending in a newline",
            setup: |fx| Setup::file(write(fx, &ServiceAccountToken::default(), "\n")),
            theirs: (Entra, "AADSTS50027"),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "CRLF-terminated token file",
            setup: |fx| Setup::file(write(fx, &ServiceAccountToken::default(), "\r\n")),
            theirs: (Entra, "AADSTS50027"),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "custom audience",
            setup: |fx| Setup::file(with_audience(fx, "api://my-custom-audience")),
            theirs: (Token, ""),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "numbers as strings in Entra's answer",
            setup: |fx| {
                fx.emu.set_access_token_options(AccessTokenOptions {
                    numbers_as_strings: true,
                    ..Default::default()
                });
                Setup::file(write(fx, &ServiceAccountToken::default(), ""))
            },
            theirs: (Entra, "expected i64"),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "rotation between new() and get_token",
            setup: |fx| Setup {
                between: Some(rotate),
                ..Setup::file(volume(fx, ServiceAccountToken::default()))
            },
            theirs: (Token, ""),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "expired at new(), rotated before get_token",
            setup: |fx| Setup {
                between: Some(rotate),
                ..Setup::file(volume(fx, expired()))
            },
            theirs: (Entra, "AADSTS700024"),
            ours: (Token, ""),
            difference: None,
        },
        Scenario {
            name: "missing token file",
            setup: |fx| Setup::file(fx.dir.path().join("no-such-token")),
            theirs: (New, "failed to read federated token"),
            ours: (New, "does not exist"),
            difference: None,
        },
        Scenario {
            name: "token path is a directory",
            setup: |fx| Setup::file(fx.dir.path().to_path_buf()),
            theirs: (New, "failed to read federated token"),
            ours: (New, "is a directory"),
            difference: None,
        },
        Scenario {
            name: "empty token file",
            setup: |fx| {
                std::fs::write(&fx.token_path, "").unwrap();
                Setup::file(fx.token_path.clone())
            },
            theirs: (Entra, ""),
            ours: (Local, "is empty"),
            difference: None,
        },
        Scenario {
            name: "expired token",
            setup: |fx| Setup::file(write(fx, &expired(), "")),
            theirs: (Entra, "AADSTS700024"),
            ours: (Local, "expired at"),
            difference: None,
        },
        Scenario {
            name: "unknown client id",
            setup: |fx| Setup {
                client: "00000000-0000-0000-0000-00000000dead",
                ..Setup::file(write(fx, &ServiceAccountToken::default(), ""))
            },
            theirs: (Entra, "AADSTS700016"),
            ours: (
                Entra,
                "no application with client id 00000000-0000-0000-0000-00000000dead in tenant",
            ),
            difference: None,
        },
        Scenario {
            name: "wrong federated credential (subject)",
            setup: |fx| {
                let sa = ServiceAccountToken {
                    service_account: "other".into(),
                    ..Default::default()
                };
                Setup::file(write(fx, &sa, ""))
            },
            theirs: (Entra, "AADSTS70021"),
            ours: (Entra, "subject:  system:serviceaccount:default:other"),
            difference: None,
        },
        Scenario {
            name: "scope without /.default",
            setup: |fx| Setup {
                scope: "https://storage.azure.com/user_impersonation",
                ..Setup::file(write(fx, &ServiceAccountToken::default(), ""))
            },
            theirs: (Entra, "AADSTS1002012"),
            ours: (Local, "<resource>/.default"),
            difference: None,
        },
        Scenario {
            name: "IRSA token (audience sts.amazonaws.com)",
            setup: |fx| Setup::file(with_audience(fx, "sts.amazonaws.com")),
            theirs: (Token, ""),
            ours: (Local, "credential for AWS STS"),
            difference: Some(FOREIGN),
        },
        Scenario {
            name: "self-managed cluster's default token (audience = issuer)",
            setup: |fx| {
                let iss = fx.issuer.url();
                Setup::file(with_audience(fx, &iss))
            },
            theirs: (Token, ""),
            ours: (Local, "its own issuer"),
            difference: Some(FOREIGN),
        },
    ]
}

fn stage_of(a: &Attempt, requests: usize) -> (Stage, String) {
    match a {
        Attempt::New(e) => (Stage::New, e.to_string()),
        Attempt::GetToken(e) if requests == 0 => (Stage::Local, e.to_string()),
        Attempt::GetToken(e) => (Stage::Entra, e.to_string()),
        Attempt::Token(_) => (Stage::Token, String::new()),
    }
}

/// azure_core's `ErrorKind::HttpResponse` found by walking `source()`: (status, error_code).
fn http_response(a: &Attempt) -> Option<(u16, Option<String>)> {
    let (Attempt::New(e) | Attempt::GetToken(e)) = a else {
        return None;
    };
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(az) = err.downcast_ref::<azure_core::Error>()
            && let azure_core::error::ErrorKind::HttpResponse {
                status, error_code, ..
            } = az.kind()
        {
            return Some((u16::from(*status), error_code.clone()));
        }
        cur = err.source();
    }
    None
}

async fn run(s: &Scenario, official_crate: bool) -> (Stage, String, Attempt) {
    let fx = Fixture::new().await;
    let setup = (s.setup)(&fx);
    let before = fx.emu.request_count(Endpoint::Token);
    let fx = Arc::new(fx);
    let between: Box<dyn FnOnce() + Send> = match setup.between {
        Some(f) => {
            let fx = fx.clone();
            Box::new(move || f(&fx))
        }
        None => Box::new(|| {}),
    };
    let args = (
        client_options(&fx),
        setup.client.to_string(),
        TENANT.to_string(),
        setup.path.clone(),
    );
    let attempt = if official_crate {
        official::attempt(args.0, args.1, args.2, args.3, setup.scope, between).await
    } else {
        ours::attempt(args.0, args.1, args.2, args.3, setup.scope, between).await
    };
    let requests = fx.emu.request_count(Endpoint::Token) - before;
    let (stage, message) = stage_of(&attempt, requests);
    (stage, message, attempt)
}

#[tokio::test]
async fn one_table_through_both_crates() {
    for s in scenarios() {
        let (theirs, their_msg, their_attempt) = run(&s, true).await;
        let (ours, our_msg, our_attempt) = run(&s, false).await;
        let name = s.name;
        assert_eq!(theirs, s.theirs.0, "{name}: azure_identity: {their_msg}");
        assert!(
            their_msg.contains(s.theirs.1),
            "{name}: azure_identity: {their_msg}"
        );
        assert_eq!(ours, s.ours.0, "{name}: azure_identity_k8s: {our_msg}");
        assert!(
            our_msg.contains(s.ours.1),
            "{name}: azure_identity_k8s: {our_msg}"
        );
        match (theirs, s.difference) {
            // What azure_identity accepts, we accept, unless it is a documented refusal.
            (Stage::Token, None) => assert_eq!(ours, Stage::Token, "{name}"),
            (Stage::Token, Some(_)) => assert!(ours <= Stage::Local, "{name}: refused locally"),
            // What it refuses, we refuse no later, and our message says how to fix it.
            (_, _) => {
                assert!(
                    ours == Stage::Token || ours <= theirs,
                    "{name}: {ours:?} > {theirs:?}"
                );
                if ours != Stage::Token {
                    assert!(
                        our_msg.contains("/troubleshooting/index.html#"),
                        "{name}: no fix: {our_msg}"
                    );
                }
            }
        }
        // An Entra refusal carries azure_core's HttpResponse kind, with the status and AADSTS
        // codes, in our error chain. azure_identity 1.0 has it only when Entra's description
        // has no JSON escape (its error body borrows strings); when it has it, they agree.
        if ours == Stage::Entra {
            let mine = http_response(&our_attempt);
            let (status, code) = mine
                .clone()
                .unwrap_or_else(|| panic!("{name}: no HttpResponse"));
            assert!((400..500).contains(&status), "{name}: {status}");
            assert!(
                code.is_some_and(|c| our_msg.contains(&format!("AADSTS{c}"))),
                "{name}"
            );
            if let Some(t) = http_response(&their_attempt) {
                assert_eq!(mine, Some(t), "{name}");
            }
        }
    }
}

#[test]
fn the_readme_shows_the_table() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("## Migrating from azure_identity")
        .expect("migration section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for s in scenarios() {
        assert!(
            section.contains(&format!("| {} |", s.name)),
            "README's migration table lacks {:?}",
            s.name
        );
    }
}
