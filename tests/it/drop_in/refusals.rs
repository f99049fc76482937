//! The security boundary and the token-file read, through the public API against the emulator:
//! every refusal happens before a request, so the emulator sees none.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::{
    ErrorCategory, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use entra_emulator::{Endpoint, FederatedCredential, ServiceAccountToken};
use std::path::{Path, PathBuf};

// The credentials for something else that the credential refuses to read (docs/security.md).
const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
const DEFAULT_SERVICE_ACCOUNT_TOKEN_PATH: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";
const EKS_POD_IDENTITY_TOKEN_PATH: &str =
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token";

/// A token with `aud`, accepted by the emulator (so only a local refusal stops it).
fn write_accepted(fx: &Fixture, aud: &str) {
    fx.emu.add_federated_credential(
        TENANT,
        CLIENT,
        FederatedCredential::new(fx.issuer.url(), ServiceAccountToken::default().subject())
            .with_audiences([aud]),
    );
    fx.write_token(&ServiceAccountToken {
        audiences: vec![aud.into()],
        ..Default::default()
    });
}

/// No message suggests sending a foreign audience.
fn assert_suggests_no_foreign_audience(m: &str, aud: &str) {
    for bad in [
        format!("AZURE_FEDERATED_TOKEN_AUDIENCE={aud}"),
        format!("AZURE_FEDERATED_TOKEN_AUDIENCE to {aud}"),
        format!("audience: {aud}"),
        format!("audience to {aud}"),
        format!("add {aud}"),
    ] {
        assert!(!m.contains(&bad), "suggests {bad:?}: {m}");
    }
}

#[tokio::test]
async fn foreign_audiences_are_refused_before_any_request() {
    let fx = Fixture::new().await;
    let iss = fx.issuer.url();
    for (aud, allow, needle) in [
        ("sts.amazonaws.com", false, "AWS STS"),
        ("STS.AMAZONAWS.COM", false, "AWS STS"),
        ("http://sts.amazonaws.com", false, "AWS STS"),
        ("https://sts-fips.us-east-1.amazonaws.com", false, "AWS STS"),
        ("sts.eu-west-1.api.aws", false, "AWS STS"),
        ("pods.eks.amazonaws.com", false, "EKS Pod Identity"),
        ("https://Kubernetes.Default.Svc", false, "Kubernetes API"),
        (iss.as_str(), false, "its own issuer"),
        (&format!("{iss}/"), false, "its own issuer"),
        // allow_foreign_audience does not also switch off the expected-audience check.
        (
            "sts.amazonaws.com",
            true,
            "does not include the expected audience",
        ),
        (iss.as_str(), true, "does not include the expected audience"),
    ] {
        write_accepted(&fx, aud);
        let mut options = fx.options();
        options.allow_foreign_audience = allow;
        let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
        let e = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
        let m = e.message();
        assert!(
            m.contains(needle) && m.contains("#foreign-audience"),
            "{aud}: {m}"
        );
        assert_eq!(e.category(), ErrorCategory::Assertion);
        assert_suggests_no_foreign_audience(m, aud);
        assert_eq!(
            fx.emu.request_count(Endpoint::Token),
            0,
            "{aud}: nothing sent"
        );
    }
}

#[tokio::test]
async fn well_known_credential_files_are_refused_by_path() {
    let fx = Fixture::new().await;
    // A perfectly good Entra token sits in the IRSA file: refused by its path alone.
    let irsa = fx.dir.path().join("irsa-token");
    std::fs::copy(&fx.token_path, &irsa).unwrap();
    let env = |extra: Option<(&str, String)>| {
        let mut pairs = vec![("AZURE_AUTHORITY_HOST".to_string(), fx.emu.authority_host())];
        pairs.extend(extra.map(|(k, v)| (k.to_string(), v)));
        Env::from_pairs(pairs)
    };
    let irsa_env = || {
        env(Some((
            AWS_WEB_IDENTITY_TOKEN_FILE,
            irsa.display().to_string(),
        )))
    };
    for (path, env, needle) in [
        (irsa.clone(), irsa_env(), AWS_WEB_IDENTITY_TOKEN_FILE),
        (
            PathBuf::from(DEFAULT_SERVICE_ACCOUNT_TOKEN_PATH),
            env(None),
            "default service-account token",
        ),
        (
            PathBuf::from("/run/secrets/kubernetes.io/serviceaccount/token"),
            env(None),
            "default service-account token",
        ),
        (
            PathBuf::from(EKS_POD_IDENTITY_TOKEN_PATH),
            env(None),
            "EKS Pod Identity token",
        ),
    ] {
        let options = WorkloadIdentityCredentialOptions {
            token_file_path: Some(path.clone()),
            env,
            ..fx.options()
        };
        let e = WorkloadIdentityCredential::new(Some(options)).unwrap_err();
        let m = credential_error(&e).message().to_string();
        assert!(
            m.contains("refused to read") && m.contains(needle),
            "{}: {m}",
            path.display()
        );
    }
    // Swapped in after new(): a symlink to the IRSA file is refused at the exchange.
    let link = fx.dir.path().join("token-link");
    std::os::unix::fs::symlink(&fx.token_path, &link).unwrap();
    let options = WorkloadIdentityCredentialOptions {
        token_file_path: Some(link.clone()),
        env: irsa_env(),
        ..fx.options()
    };
    let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&irsa, &link).unwrap();
    let e = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
    assert!(e.message().contains("refused to read"), "{e}");
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0, "nothing sent");
}

/// Live token-file reader threads (named `token-file-read`) in this process.
fn reader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "token-file-read")
        .count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mkfifo(p: &Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// /dev/zero and a FIFO: refused at `new()`, and when swapped in afterwards refused at every
/// exchange, with bounded memory and threads, and nothing sent.
#[tokio::test]
async fn devices_and_fifos_give_a_prompt_error_with_bounded_memory_and_threads() {
    let fx = Fixture::new().await;
    let fifo = fx.dir.path().join("fifo");
    mkfifo(&fifo);
    for (path, needle) in [
        (PathBuf::from("/dev/zero"), "character device"),
        (fifo.clone(), "named pipe (FIFO)"),
    ] {
        let options = WorkloadIdentityCredentialOptions {
            token_file_path: Some(path.clone()),
            ..fx.options()
        };
        let e = WorkloadIdentityCredential::new(Some(options)).unwrap_err();
        let e = credential_error(&e);
        assert!(e.message().contains(needle), "{}: {e}", path.display());
        assert_eq!(e.category(), ErrorCategory::TokenFile);
    }
    // The configured path becomes /dev/zero, then a FIFO (no writer ever opens it), after new().
    let link = fx.dir.path().join("token-link");
    std::os::unix::fs::symlink(&fx.token_path, &link).unwrap();
    let options = WorkloadIdentityCredentialOptions {
        token_file_path: Some(link.clone()),
        ..fx.options()
    };
    let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
    let rss = rss_kib();
    for (target, needle) in [
        (Path::new("/dev/zero"), "character device"),
        (fifo.as_path(), "named pipe"),
    ] {
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(target, &link).unwrap();
        for i in 0..20 {
            // Distinct scopes: each is a new exchange, not a cached error.
            let scope = format!("https://r{i}.{}.example/.default", needle.len());
            let e = credential_error(&cred.get_token(&[&scope], None).await.unwrap_err());
            assert!(e.message().contains(needle), "{e}");
        }
    }
    assert!(
        rss_kib() < rss + 32 * 1024,
        "memory grew: {} -> {} KiB",
        rss,
        rss_kib()
    );
    // 40 attempts, none left a thread behind (other tests' brief reads allow a little slack).
    assert!(reader_threads() <= 3, "{} reader threads", reader_threads());
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn new_fails_like_azure_identity_when_the_file_is_missing_but_rereads_it_every_time() {
    let fx = Fixture::new().await;
    let missing = fx.dir.path().join("not-yet");
    let options = WorkloadIdentityCredentialOptions {
        token_file_path: Some(missing.clone()),
        ..fx.options()
    };
    let e = WorkloadIdentityCredential::new(Some(options)).unwrap_err();
    let e = credential_error(&e);
    assert_eq!(e.category(), ErrorCategory::TokenFile);
    assert!(!e.is_not_configured(), "configured, but broken: {e}");
    assert!(
        e.message().contains("does not exist")
            && e.message().contains(&missing.display().to_string()),
        "{e}"
    );
    // Present at new(), then removed: the exchange reads it again and says so.
    let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    std::fs::remove_file(&fx.token_path).unwrap();
    let e = credential_error(&cred.get_token(&[STORAGE], None).await.unwrap_err());
    assert!(e.message().contains("does not exist"), "{e}");
    assert_eq!(fx.emu.request_count(Endpoint::Token), 0);
}
