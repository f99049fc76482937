//! Environment variables that are not UTF-8, through the public API (`Env::from_os_pairs` carries
//! them as the operating system gives them, like the process environment): a configuration value
//! is refused, naming the variable, its value shown lossily and the fix, before anything is sent;
//! the token file's path is a path, which on Linux may be any bytes, and is used as it is.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::{
    CredentialError, ErrorCategory, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;

/// The pod's environment as the webhook sets it, with `var` replaced by `value`.
fn pod_env_with(fx: &Fixture, var: &str, value: OsString) -> Env {
    let mut pairs: Vec<(OsString, OsString)> = vec![
        ("AZURE_CLIENT_ID".into(), CLIENT.into()),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        (
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            fx.token_path.clone().into_os_string(),
        ),
        (
            "AZURE_AUTHORITY_HOST".into(),
            fx.emu.authority_host().into(),
        ),
    ];
    pairs.retain(|(k, _)| k != var);
    pairs.push((var.into(), value));
    Env::from_os_pairs(pairs)
}

/// Options that take every value from `env` (no client id, tenant id or token file option).
fn from_env(fx: &Fixture, env: Env) -> WorkloadIdentityCredentialOptions {
    let mut o = fx.options();
    o.client_id = None;
    o.tenant_id = None;
    o.token_file_path = None;
    o.env = env;
    o
}

#[tokio::test]
async fn a_configuration_variable_that_is_not_utf8_is_refused_naming_it_and_its_fix() {
    let fx = Fixture::new().await;
    let cases: [(&str, &[u8], &str, &str); 4] = [
        (
            "AZURE_CLIENT_ID",
            b"\xff\xfe",
            "\"\u{fffd}\u{fffd}\"",
            "set AZURE_CLIENT_ID (or the option client_id) to the application's",
        ),
        (
            "AZURE_TENANT_ID",
            b"72f988bf-\xff",
            "\"72f988bf-\u{fffd}\"",
            "set AZURE_TENANT_ID (or the option tenant_id) to the directory (tenant) id",
        ),
        (
            "AZURE_AUTHORITY_HOST",
            b"https://\xff",
            "\"https://\u{fffd}\"",
            "https://login.microsoftonline.us",
        ),
        (
            "AZURE_FEDERATED_TOKEN_AUDIENCE",
            b"api://AzureADTokenExchange\xff",
            "\"api://AzureADTokenExchange\u{fffd}\"",
            "set AZURE_FEDERATED_TOKEN_AUDIENCE to the token's audience, e.g. api://AzureADTokenExchange",
        ),
    ];
    for (var, bytes, lossy, fix) in cases {
        let env = pod_env_with(&fx, var, OsString::from_vec(bytes.to_vec()));
        let e = WorkloadIdentityCredential::new(Some(from_env(&fx, env)))
            .expect_err("a variable that is not UTF-8 is refused when the credential is built");
        let e = e
            .downcast_ref::<CredentialError>()
            .unwrap_or_else(|| panic!("{var}: not a CredentialError: {e}"));
        assert_eq!(e.category(), ErrorCategory::InvalidConfiguration, "{e}");
        assert_eq!(
            e.problem_id().map(|p| p.to_string()).as_deref(),
            Some("invalid-configuration"),
            "{e}"
        );
        assert!(!e.is_transient(), "{e}");
        let first = e.message().lines().next().unwrap();
        assert!(
            first.contains(&format!(
                "the environment variable {var} is set, but its value is not valid UTF-8 ({lossy}"
            )),
            "{var}: {e}"
        );
        let f = e.fix().unwrap_or_else(|| panic!("{var}: no fix: {e}"));
        assert!(f.contains(fix), "{var}: the fix lacks {fix:?}: {f}");
        assert!(
            e.message().contains(f),
            "{var}: the message lacks the fix: {e}"
        );
        assert!(
            e.documentation_url()
                .is_some_and(|u| u.ends_with("#invalid-configuration")),
            "{e:?}"
        );
    }
    assert!(fx.emu.requests().is_empty(), "a request was sent");
}

/// A variable the credential does not read, because the option gives the value, is not refused.
#[tokio::test]
async fn a_variable_that_is_not_utf8_is_ignored_when_the_option_gives_the_value() {
    let fx = Fixture::new().await;
    let env = pod_env_with(&fx, "AZURE_CLIENT_ID", OsString::from_vec(b"\xff".to_vec()));
    let mut options = from_env(&fx, env);
    options.client_id = Some(CLIENT.into());
    WorkloadIdentityCredential::new(Some(options))
        .expect("the option wins over the variable")
        .get_token(&[STORAGE], None)
        .await
        .expect("a token");
    assert_eq!(fx.emu.request_count(entra_emulator::Endpoint::Token), 1);
}

/// `AZURE_FEDERATED_TOKEN_FILE` naming a file whose name is not UTF-8 (legal on Linux) is read;
/// a missing one is named lossily in the error the constructor returns.
#[tokio::test]
async fn a_token_file_path_that_is_not_utf8_is_used_as_given() {
    let fx = Fixture::new().await;
    let mut name = b"azure-identity-token-".to_vec();
    name.push(0xff);
    let path = fx.dir.path().join(OsString::from_vec(name));
    std::fs::copy(&fx.token_path, &path).expect("copy the token");
    let env = pod_env_with(&fx, "AZURE_FEDERATED_TOKEN_FILE", path.into_os_string());
    let token = WorkloadIdentityCredential::new(Some(from_env(&fx, env)))
        .expect("a path that is not UTF-8 is a path")
        .get_token(&[STORAGE], None)
        .await
        .expect("a token from the file at that path");
    assert_eq!(
        claims(token.token.secret())["aud"],
        "https://storage.azure.com"
    );
    assert_eq!(fx.emu.request_count(entra_emulator::Endpoint::Token), 1);

    let missing = fx
        .dir
        .path()
        .join(OsString::from_vec(b"missing-\xfe".to_vec()));
    let env = pod_env_with(&fx, "AZURE_FEDERATED_TOKEN_FILE", missing.into_os_string());
    let e = WorkloadIdentityCredential::new(Some(from_env(&fx, env)))
        .expect_err("no file there: the credential is not built");
    let e = e
        .downcast_ref::<CredentialError>()
        .expect("a CredentialError");
    assert_eq!(e.category(), ErrorCategory::TokenFile, "{e}");
    assert!(
        e.message()
            .lines()
            .next()
            .unwrap()
            .contains("missing-\u{fffd}"),
        "{e}"
    );
    assert_eq!(fx.emu.request_count(entra_emulator::Endpoint::Token), 1);
}

/// The chain reads variables too: `AZURE_TOKEN_CREDENTIALS` that is not UTF-8 is refused when
/// the chain is built (not taken as unset, which would mean every source); with a client secret
/// set, the Environment source names its variable that is not UTF-8 (the authority host: not the
/// public cloud in silence; the secret itself: without its value).
#[tokio::test]
async fn the_chain_names_its_variables_that_are_not_utf8() {
    use azure_identity_k8s::{DefaultAzureCredential, DefaultAzureCredentialOptions};
    let fx = Fixture::new().await;
    let chain = |pairs: Vec<(&str, OsString)>| {
        DefaultAzureCredential::new(Some(DefaultAzureCredentialOptions {
            client_options: fx.client_options(),
            env: Env::from_os_pairs(pairs),
            ..Default::default()
        }))
    };
    let e = chain(vec![(
        "AZURE_TOKEN_CREDENTIALS",
        OsString::from_vec(b"prod\xff".to_vec()),
    )])
    .expect_err("refused when the chain is built");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "DefaultAzureCredential: invalid AZURE_TOKEN_CREDENTIALS: the environment variable \
             AZURE_TOKEN_CREDENTIALS is set, but its value is not valid UTF-8 (\"prod\u{fffd}\""
        ),
        "{text}"
    );
    assert!(
        text.contains("set AZURE_TOKEN_CREDENTIALS to prod, dev or"),
        "{text}"
    );

    let secret = OsString::from("s3cr3t-value");
    for (var, value, shown) in [
        (
            "AZURE_AUTHORITY_HOST",
            OsString::from_vec(b"https://login.microsoftonline.us\xff".to_vec()),
            "(\"https://login.microsoftonline.us\u{fffd}\"",
        ),
        (
            "AZURE_CLIENT_SECRET",
            OsString::from_vec(b"s3cr3t-\xff".to_vec()),
            "(not shown: it is a secret)",
        ),
    ] {
        let mut pairs = vec![
            (
                "AZURE_TOKEN_CREDENTIALS",
                OsString::from("EnvironmentCredential"),
            ),
            ("AZURE_TENANT_ID", TENANT.into()),
            ("AZURE_CLIENT_ID", CLIENT.into()),
            ("AZURE_CLIENT_SECRET", secret.clone()),
            ("AZURE_AUTHORITY_HOST", fx.emu.authority_host().into()),
        ];
        pairs.retain(|(k, _)| *k != var);
        pairs.push((var, value));
        let e = chain(pairs)
            .expect("the chain is built")
            .get_token(&[STORAGE], None)
            .await
            .expect_err("the Environment source is configured but broken");
        let text = format!("{e}");
        assert!(
            text.contains(&format!(
                "EnvironmentCredential: invalid {var}: the environment variable {var} is set, \
                 but its value is not valid UTF-8 {shown}"
            )),
            "{var}: {text}"
        );
        assert!(!text.contains("s3cr3t"), "a secret in the error: {text}");
    }
    assert!(fx.emu.requests().is_empty(), "a request was sent");
}

/// `AWS_WEB_IDENTITY_TOKEN_FILE` is a path too: the IRSA token at a path that is not UTF-8 is
/// still recognised, and not sent to Entra as the federated token.
#[tokio::test]
async fn an_irsa_token_path_that_is_not_utf8_is_still_refused_as_foreign() {
    let fx = Fixture::new().await;
    let irsa = fx
        .dir
        .path()
        .join(OsString::from_vec(b"irsa-token-\xff".to_vec()));
    std::fs::copy(&fx.token_path, &irsa).expect("copy the token");
    let mut env = vec![
        ("AZURE_CLIENT_ID".into(), CLIENT.into()),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        (
            "AZURE_AUTHORITY_HOST".into(),
            fx.emu.authority_host().into(),
        ),
        (
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            irsa.clone().into_os_string(),
        ),
    ];
    env.push(("AWS_WEB_IDENTITY_TOKEN_FILE".into(), irsa.into_os_string()));
    let env = Env::from_os_pairs::<OsString, OsString>(env);
    let e = match WorkloadIdentityCredential::new(Some(from_env(&fx, env))) {
        Err(e) => e,
        Ok(c) => c
            .get_token(&[STORAGE], None)
            .await
            .expect_err("the IRSA token is refused"),
    };
    let text = e.to_string();
    assert!(
        text.contains("refused to read")
            && text.contains("it is the IRSA token named by AWS_WEB_IDENTITY_TOKEN_FILE")
            && text.contains("irsa-token-\u{fffd}"),
        "{text}"
    );
    assert!(fx.emu.requests().is_empty(), "a request was sent");
}
