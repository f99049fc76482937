//! The structured data of the credential's errors against the emulator over HTTPS: problem id,
//! AADSTS codes, HTTP status, Entra's error and description, trace and correlation ids, fix and
//! documentation URL; the first line of the message is the same for every retry of one fault.
//! And the acceptance test of the catalogue (`the_credential_and_doctor_agree_on_every_entry`):
//! for every entry both can meet, the credential and `doctor` on the same setup carry the same
//! problem id, fix and URL.

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::{
    CredentialError, ProblemId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use entra_emulator::ServiceAccountToken;

const UNKNOWN_CLIENT: &str = "00000000-0000-0000-0000-00000000dead";

async fn fresh_error(options: WorkloadIdentityCredentialOptions) -> CredentialError {
    // A fresh credential per attempt: the cache would otherwise hand back the same error.
    let err = WorkloadIdentityCredential::new(Some(options))
        .expect("configured")
        .get_token(&[STORAGE], None)
        .await
        .expect_err("must fail");
    err.downcast_ref::<CredentialError>()
        .expect("source is CredentialError")
        .clone()
}

#[tokio::test]
async fn retries_of_one_fault_share_the_first_line_and_id_but_not_the_trace_ids() {
    let fx = Fixture::new().await;
    let options = || {
        let mut o = fx.options();
        o.client_id = Some(UNKNOWN_CLIENT.into());
        o
    };
    let a = fresh_error(options()).await;
    let b = fresh_error(options()).await;
    let first = |e: &CredentialError| e.to_string().lines().next().unwrap_or_default().to_owned();
    assert_eq!(first(&a), first(&b));
    for e in [&a, &b] {
        assert_eq!(e.problem_id(), Some(ProblemId::Aadsts(700016)), "{e}");
        assert_eq!(e.aadsts_codes(), &[700016]);
        assert_eq!(e.http_status().map(u16::from), Some(400));
        assert_eq!(e.entra_error(), Some("unauthorized_client"));
        assert!(
            e.entra_description()
                .is_some_and(|d| d.starts_with("AADSTS700016:")),
            "{e:?}"
        );
        let url = e.documentation_url().expect("a documentation URL");
        assert_eq!(
            url,
            format!(
                "https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/troubleshooting/index.html#aadsts700016",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(e.to_string().contains(url), "{e}");
        assert!(
            e.fix().is_some_and(
                |f| f.contains("AZURE_CLIENT_ID") && f.contains("--query clientId -o tsv")
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains(UNKNOWN_CLIENT), "{e}");
        let trace = e.trace_id().expect("Entra's trace id");
        let correlation = e.correlation_id().expect("Entra's correlation id");
        assert!(!first(e).contains(trace) && !first(e).contains(correlation));
    }
    // The emulator, like Entra, gives every answer a new trace id.
    assert_ne!(a.trace_id(), b.trace_id());
    assert_eq!(a.fix(), b.fix());
    // The first line alone names the wrong value: a log that keeps one line per event keeps it.
    assert!(
        first(&a).contains(&format!(
            "no application with client id {UNKNOWN_CLIENT} in tenant {TENANT}"
        )) && first(&a).ends_with("(AADSTS700016)."),
        "{a}"
    );
}

#[tokio::test]
async fn a_second_fault_also_keeps_its_first_line_and_names_the_wrong_tenant_there() {
    let fx = Fixture::new().await;
    let tenant = "11111111-2222-3333-4444-555555555555";
    let options = || {
        let mut o = fx.options();
        o.tenant_id = Some(tenant.into());
        o
    };
    let a = fresh_error(options()).await;
    let b = fresh_error(options()).await;
    let first = |e: &CredentialError| e.to_string().lines().next().unwrap_or_default().to_owned();
    assert_eq!(first(&a), first(&b));
    assert_ne!(a.trace_id(), b.trace_id());
    let authority = fx.emu.authority_host();
    assert_eq!(
        first(&a),
        format!(
            "WorkloadIdentityCredential: Entra ID rejected the token request: tenant {tenant} was not found at {} (AADSTS90002).",
            authority.trim_end_matches('/')
        )
    );
    // The failure is one WARN record carrying that line, with the problem id, fix, URL and trace
    // id as fields of their own: a log that keeps one line per event loses nothing.
    let logs = LogCapture::default();
    let logged_error = {
        let _guard = logs.install();
        fresh_error(options()).await
    };
    let logged = logs.text();
    let warn: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("token refresh failed"))
        .collect();
    assert_eq!(warn.len(), 1, "one WARN record per failure: {logged}");
    let warn = warn[0];
    for needle in [
        format!("tenant {tenant} was not found at"),
        "(AADSTS90002)".into(),
        "problem_id=aadsts90002".into(),
        logged_error.fix().expect("a fix").to_owned(),
        logged_error.documentation_url().expect("a URL").to_owned(),
        logged_error.trace_id().expect("a trace id").to_owned(),
    ] {
        assert!(warn.contains(&needle), "{needle:?} not in {warn}");
    }
    assert!(
        !logged.lines().any(|l| l.starts_with(' ')),
        "no continuation line outside an event: {logged}"
    );
    for e in [&a, &b] {
        assert_eq!(e.problem_id(), Some(ProblemId::Aadsts(90002)), "{e}");
        let (trace, correlation) = (e.trace_id().unwrap(), e.correlation_id().unwrap());
        assert!(!first(e).contains(trace) && !first(e).contains(correlation));
        assert!(
            e.to_string().contains(trace),
            "the ids are further down: {e}"
        );
    }
}

#[tokio::test]
async fn local_faults_carry_their_id_and_url() {
    let fx = Fixture::new().await;
    let e = {
        let cred = WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
        let err = cred
            .get_token(&["https://graph.microsoft.com/User.Read"], None)
            .await
            .expect_err("not a .default scope");
        err.downcast_ref::<CredentialError>().unwrap().clone()
    };
    assert_eq!(e.problem_id(), Some(ProblemId::InvalidScope));
    assert!(
        e.documentation_url()
            .is_some_and(|u| u.ends_with("/troubleshooting/index.html#invalid-scope")),
        "{e:?}"
    );
    assert_eq!(e.trace_id(), None);
    assert_eq!(e.http_status(), None);
}

/// The credential's error for the token file as it is now, from a fresh credential.
async fn error_now(fx: &Fixture, options: WorkloadIdentityCredentialOptions) -> CredentialError {
    let e = fresh_error(options).await;
    assert!(
        fx.emu.request_count(entra_emulator::Endpoint::Token) > 0,
        "sent to Entra: {e}"
    );
    e
}

/// Asserts the catalogue entry: problem id, codes, a fix containing each needle, and the URL.
fn assert_entry(e: &CredentialError, code: u32, needles: &[&str]) {
    assert_eq!(e.aadsts_codes(), &[code], "{e}");
    assert_eq!(e.problem_id(), Some(ProblemId::Aadsts(code)), "{e}");
    let fix = e.fix().expect("a fix");
    for needle in needles {
        assert!(
            fix.contains(needle),
            "AADSTS{code}: {needle:?} not in the fix {fix:?}"
        );
    }
    assert!(e.to_string().contains(&format!("Fix: {fix}")), "{e}");
    let url = e.documentation_url().expect("a URL");
    assert!(
        url.ends_with(&format!("/troubleshooting/index.html#aadsts{code}")),
        "{url}"
    );
    let doc = include_str!("../../docs/troubleshooting.md");
    assert!(
        doc.contains(&format!("<a id=\"aadsts{code}\"></a>")),
        "no anchor for {code}"
    );
}

#[tokio::test]
async fn wrong_tenant_and_unknown_client_give_the_command_that_prints_the_right_value() {
    let fx = Fixture::new().await;
    let mut o = fx.options();
    o.tenant_id = Some("contoso.onmicrosoft.com".into());
    let e = error_now(&fx, o).await;
    assert_entry(
        &e,
        90002,
        &[
            "AZURE_TENANT_ID",
            "`az account show --query tenantId -o tsv`",
        ],
    );
    assert!(e.to_string().contains("contoso.onmicrosoft.com"), "{e}");

    let mut o = fx.options();
    o.client_id = Some(UNKNOWN_CLIENT.into());
    let e = error_now(&fx, o).await;
    assert_entry(
        &e,
        700016,
        &[
            "AZURE_CLIENT_ID",
            "az identity show -n <identity> -g <group> --query clientId -o tsv",
            "az ad app list --display-name <name> --query '[].appId' -o tsv",
        ],
    );
}

#[tokio::test]
async fn a_us_government_token_against_the_public_authority_says_set_the_authority_host() {
    let fx = Fixture::new().await;
    fx.write_token(&ServiceAccountToken {
        audiences: vec!["api://AzureADTokenExchangeUSGov".into()],
        ..Default::default()
    });
    let e = error_now(&fx, fx.options()).await;
    assert_eq!(e.aadsts_codes(), &[70021], "{e}");
    let fix = e.fix().expect("a fix");
    assert!(
        fix.contains("AZURE_AUTHORITY_HOST=https://login.microsoftonline.us"),
        "{fix}"
    );
    assert!(!fix.contains("AZURE_FEDERATED_TOKEN_AUDIENCE"), "{fix}");
}

#[tokio::test]
async fn a_signing_key_missing_from_the_jwks_is_7000272() {
    let fx = Fixture::new().await;
    let old = fx.issuer.signing_kid();
    fx.issuer.add_key();
    fx.issuer.retire_key(&old);
    let e = error_now(&fx, fx.options()).await;
    assert_entry(
        &e,
        7000272,
        &["republish the JWKS", "kubectl get --raw /openid/v1/jwks"],
    );
}

#[tokio::test]
async fn a_token_living_longer_than_a_day_is_70023() {
    let fx = Fixture::new().await;
    fx.emu
        .set_max_assertion_lifetime(Some(std::time::Duration::from_secs(86_400)));
    fx.write_token(&ServiceAccountToken {
        lifetime: std::time::Duration::from_secs(2 * 86_400),
        ..Default::default()
    });
    let e = error_now(&fx, fx.options()).await;
    assert_entry(&e, 70023, &["expirationSeconds to at most 86400"]);
    let first = e.to_string().lines().next().unwrap_or_default().to_owned();
    assert!(
        first.contains("the token lives 172800 s (exp - iat)"),
        "{e}"
    );
}

#[tokio::test]
async fn an_ecdsa_signed_token_is_5002738() {
    use base64::Engine as _;
    let fx = Fixture::new().await;
    let token = fx.write_token(&ServiceAccountToken::default());
    let (_, rest) = token.split_once('.').unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"ES256","kid":"{}"}}"#,
        fx.issuer.signing_kid()
    ));
    std::fs::write(&fx.token_path, format!("{header}.{rest}")).unwrap();
    let e = error_now(&fx, fx.options()).await;
    assert_entry(
        &e,
        5002738,
        &[
            "RSA service-account signing key",
            "--service-account-signing-key-file",
        ],
    );
    // The header's alg, from the token actually sent, on the first line.
    let first = e.to_string().lines().next().unwrap_or_default().to_owned();
    assert!(first.contains("the token is signed with ES256;"), "{e}");
}

#[tokio::test]
async fn a_missing_token_file_carries_its_fix() {
    let fx = Fixture::new().await;
    let mut o = fx.options();
    o.token_file_path = Some(fx.dir.path().join("nowhere"));
    let err = match WorkloadIdentityCredential::new(Some(o)) {
        Ok(cred) => cred.get_token(&[STORAGE], None).await.expect_err("no file"),
        Err(e) => e,
    };
    let e = err.downcast_ref::<CredentialError>().unwrap();
    assert_eq!(e.problem_id(), Some(ProblemId::TokenFileMissing), "{e}");
    let fix = e.fix().expect("a fix");
    assert!(
        fix.contains("AZURE_FEDERATED_TOKEN_FILE") && e.message().contains(fix),
        "{e}"
    );
    assert!(
        e.documentation_url()
            .is_some_and(|u| u.ends_with("/troubleshooting/index.html#token-file-missing")),
        "{e:?}"
    );
}

/// Whether `text` holds a character that would forge or hide log lines: a control character
/// other than the line break, or a bidirectional override.
fn raw_control(text: &str) -> Option<char> {
    text.chars()
        .find(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
}

/// A claim with a line break, an ANSI escape or a right-to-left override is written escaped: the
/// credential's message has exactly the lines of the same error for an ordinary token, and
/// doctor's text report has no raw control character either (F6).
#[tokio::test]
async fn claims_with_control_characters_cannot_forge_lines_or_colour_the_terminal() {
    let fx = Fixture::new().await;
    let (sub, iss) = ("s\n\u{1b}[31mred", "https://ü\u{202e}.example");
    // The same fault with an ordinary token: no federated credential matches (AADSTS70021).
    fx.emu.remove_federated_credentials(TENANT, CLIENT);
    let ordinary = error_now(&fx, fx.options()).await;
    let mut claims = ServiceAccountToken::default().claims(&fx.issuer.url());
    claims["sub"] = sub.into();
    claims["iss"] = iss.into();
    std::fs::write(&fx.token_path, fx.issuer.sign_claims(&claims)).unwrap();
    let forged = error_now(&fx, fx.options()).await;
    assert_eq!(
        forged.problem_id(),
        Some(ProblemId::Aadsts(70021)),
        "{forged}"
    );
    let message = forged.to_string();
    assert_eq!(raw_control(&message), None, "{message:?}");
    assert_eq!(
        message.lines().count(),
        ordinary.to_string().lines().count(),
        "one line per intended line:\n{message}\n---\n{ordinary}"
    );
    let first = message.lines().next().unwrap();
    assert!(
        first.contains("subject s\\n\\u{1b}[31mred,")
            && first.contains("issuer https://ü\\u{202e}.example,"),
        "{first}"
    );

    // Doctor's text report on the same token.
    #[cfg(feature = "doctor")]
    {
        // `..Default::default()` fills `aws` when feature `aws` adds that field.
        #[allow(clippy::needless_update)]
        let report = azure_identity_k8s::doctor::run(azure_identity_k8s::doctor::DoctorOptions {
            credential: fx.options(),
            scope: STORAGE.into(),
            skip_exchange: false,
            ..Default::default()
        })
        .await;
        let text = report.to_string();
        assert_eq!(raw_control(&text), None, "{text:?}");
        assert!(text.contains("s\\n\\u{1b}[31mred"), "{text}");
        // "red" never starts a line of its own: it stays on the line of the value it belongs to.
        for line in text.lines().filter(|l| l.contains("[31mred")) {
            assert!(
                line.contains("s\\n\\u{1b}[31mred"),
                "a forged line: {line:?}\n{text}"
            );
        }
    }
}

#[cfg(feature = "doctor")]
mod parity;
