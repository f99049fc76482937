//! Transport failures with DEFAULT options (azure_core's default transport and retry policy, the
//! default refresh policy), against real endpoints on 127.0.0.1: the error's first line names
//! the endpoint and the root cause, is the same for two fresh credentials, and the fix, problem
//! id and documentation are those of the cause.
//!
//! The crate's default retry options (`token_retry_options`: 3 retries, 200 ms doubling) make each
//! test take about 3.3 s; the one with azure_core's own default retry policy takes 30 s (the
//! default `RefreshPolicy::attempt_timeout` ends the attempt during the policy's wait). A
//! certificate failure is the exception: it is not retried and not transient, whatever the retry
//! policy (one connection reaches the server, counted by a relay in front of it).

use crate::common::*;
use azure_core::credentials::TokenCredential;
use azure_identity_k8s::config::Env;
use azure_identity_k8s::{
    CredentialError, ErrorCategory, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Options as a pod sets them, and nothing else: default transport, retry and refresh policy.
fn default_options(fx: &Fixture, authority: &str) -> WorkloadIdentityCredentialOptions {
    WorkloadIdentityCredentialOptions {
        client_id: Some(CLIENT.into()),
        tenant_id: Some(TENANT.into()),
        token_file_path: Some(fx.token_path.clone()),
        env: Env::from_pairs([("AZURE_AUTHORITY_HOST", authority.to_string())]),
        ..Default::default()
    }
}

/// The error of one `get_token` on a fresh credential.
async fn failure(options: WorkloadIdentityCredentialOptions) -> CredentialError {
    let credential = WorkloadIdentityCredential::new(Some(options)).expect("valid options");
    let err = credential
        .get_token(&[STORAGE], None)
        .await
        .expect_err("the endpoint gives no answer");
    err.downcast_ref::<CredentialError>()
        .cloned()
        .unwrap_or_else(|| panic!("not a CredentialError: {err}"))
}

/// Two fresh credentials (concurrently, so the test waits one attempt bound, not two) fail the
/// same way: the first line names `origin` and `words`, the problem is `anchor`, the fix names
/// each of `fix_needles`.
async fn assert_cause(
    options: impl Fn() -> WorkloadIdentityCredentialOptions,
    origin: &str,
    words: &str,
    anchor: &str,
    fix_needles: &[&str],
) -> CredentialError {
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(failure(options()), failure(options()));
    eprintln!("{anchor}: both failed after {:?}:\n{a}", started.elapsed());
    let first = a.message().lines().next().unwrap().to_owned();
    assert_eq!(
        first,
        b.message().lines().next().unwrap(),
        "the first line differs between two credentials:\n{a}\n---\n{b}"
    );
    assert!(
        first.contains(&format!(
            "the token request to {origin} failed before Entra answered"
        )),
        "{a}"
    );
    assert!(
        first.contains(words),
        "the first line lacks {words:?}:\n{a}"
    );
    // A certificate failure needs an operator's action; every other cause may pass by itself.
    let permanent = matches!(
        anchor,
        "transport-untrusted-certificate"
            | "transport-certificate-name"
            | "transport-certificate-expired"
    );
    for e in [&a, &b] {
        assert_eq!(e.category(), ErrorCategory::Transport, "{e}");
        assert_eq!(e.is_transient(), !permanent, "{e}");
        assert_eq!(
            e.problem_id().map(|p| p.to_string()).as_deref(),
            Some(anchor),
            "{e}"
        );
        assert!(
            e.documentation_url()
                .is_some_and(|u| u.ends_with(&format!("troubleshooting/index.html#{anchor}"))),
            "{e:?}"
        );
        let fix = e.fix().unwrap_or_else(|| panic!("no fix: {e}"));
        for n in fix_needles {
            assert!(fix.contains(n), "the fix lacks {n:?}: {fix}");
        }
        assert!(
            e.message().contains(fix),
            "the message does not say the fix:\n{e}"
        );
    }
    a
}

#[tokio::test]
async fn authority_at_a_closed_port_names_connection_refused() {
    let fx = Fixture::new().await;
    let port = closed_local_port();
    let authority = format!("https://127.0.0.1:{port}");
    let e = assert_cause(
        || default_options(&fx, &authority),
        &authority,
        "connection refused",
        "transport-connection-refused",
        &[
            &format!("Nothing accepts connections on 127.0.0.1:{port}"),
            &format!("AZURE_AUTHORITY_HOST, or the cloud in ClientOptions; now {authority}"),
            "HTTPS_PROXY",
            &format!("`curl -sv {authority}/{TENANT}/v2.0/.well-known/openid-configuration`"),
        ],
    )
    .await;
    // The whole chain is kept below the first line.
    assert!(
        e.message().contains("Connection refused (os error 111)"),
        "{e}"
    );
}

/// With azure_core's own default `ClientOptions` (as code written for azure_identity passes
/// them: 8 retries, up to 25.6 s apart), the attempt bound (30 s) ends the attempt while the retry
/// policy waits; the error still names the last try's cause, with the same first line.
#[tokio::test]
async fn azure_core_default_retries_cut_by_the_attempt_bound_name_the_last_cause() {
    let fx = Fixture::new().await;
    let port = closed_local_port();
    let authority = format!("https://127.0.0.1:{port}");
    let options = || {
        let mut o = default_options(&fx, &authority);
        o.credential_options.client_options = azure_core::http::ClientOptions::default();
        o
    };
    let e = assert_cause(
        options,
        &authority,
        "connection refused",
        "transport-connection-refused",
        &[&format!("Nothing accepts connections on 127.0.0.1:{port}")],
    )
    .await;
    assert!(
        e.message()
            .contains("The HTTP retry policy was still retrying after 30 s"),
        "{e}"
    );
}

/// A TCP relay on 127.0.0.1 to the emulator that counts the connections it accepts: each is one
/// connection attempt, so one TLS handshake, that reached the server.
struct Relay {
    port: u16,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(fx: &Fixture) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = fx.emu.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            port,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The retry options a user gets: the crate's (`WorkloadIdentityCredentialOptions::default()`,
/// `token_retry_options`) and azure_core's own (`ClientOptions::default()`, 8 retries).
const RETRY_DEFAULTS: [&str; 2] = [
    "the crate's default",
    "azure_core's ClientOptions::default()",
];

/// `options` with the retry policy named `retry` (one of [`RETRY_DEFAULTS`]).
fn with_retry(
    mut options: WorkloadIdentityCredentialOptions,
    retry: &str,
) -> WorkloadIdentityCredentialOptions {
    if retry == RETRY_DEFAULTS[1] {
        options.credential_options.client_options.retry =
            azure_core::http::ClientOptions::default().retry;
    }
    options
}

/// A certificate failure with the default retry policies: one connection reaches the server (the
/// HTTP retry policy does not retry it), the error is not transient and names `words`, and a
/// second call right after gets the remembered error without a new connection. No request (so no
/// client assertion) reaches the server.
async fn assert_not_retried(
    fx: &Fixture,
    relay: &Relay,
    options: WorkloadIdentityCredentialOptions,
    words: &str,
    anchor: &str,
) {
    let before = relay.accepted();
    let credential = WorkloadIdentityCredential::new(Some(options)).expect("valid options");
    let first = credential
        .get_token(&[STORAGE], None)
        .await
        .expect_err("the certificate fails");
    let first = first
        .downcast_ref::<CredentialError>()
        .expect("a CredentialError");
    assert_eq!(relay.accepted() - before, 1, "connections: {first}");
    assert!(!first.is_transient(), "{first}");
    assert_eq!(first.category(), ErrorCategory::Transport, "{first}");
    assert_eq!(
        first.problem_id().map(|p| p.to_string()).as_deref(),
        Some(anchor),
        "{first}"
    );
    let line = first.message().lines().next().unwrap();
    assert!(line.contains(words), "{first}");
    assert!(
        first
            .message()
            .contains("Not retried: a certificate failure"),
        "{first}"
    );
    let second = credential
        .get_token(&[STORAGE], None)
        .await
        .expect_err("the remembered error");
    let second = second
        .downcast_ref::<CredentialError>()
        .expect("a CredentialError");
    assert_eq!(second.message().lines().next(), Some(line), "{second}");
    assert_eq!(
        relay.accepted() - before,
        1,
        "the second call connected again"
    );
    assert!(fx.emu.requests().is_empty(), "a request reached the server");
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_names_the_unknown_issuer_and_sends_nothing() {
    let fx = Fixture::new().await;
    let authority = fx.emu.authority_host();
    let origin = authority.trim_end_matches('/').to_string();
    // The default transport trusts the system roots, not the emulator's CA.
    let e = assert_cause(
        || default_options(&fx, &authority),
        &origin,
        "TLS: the server's certificate is not trusted (unknown issuer)",
        "transport-untrusted-certificate",
        &[
            "TLS-inspecting proxy",
            "update-ca-certificates",
            "SSL_CERT_FILE=",
            &format!("openssl s_client -connect 127.0.0.1:{}", fx.emu.port()),
        ],
    )
    .await;
    assert!(e.message().contains("UnknownIssuer"), "{e}");
    // No request (and so no client assertion) reached the server.
    assert!(
        fx.emu.requests().is_empty(),
        "requests reached the server: {:?}",
        fx.emu.requests().len()
    );
    // The same server and options, trusting the emulator's CA, issue a token: the CA was the cause.
    let mut trusted = default_options(&fx, &authority);
    trusted.credential_options.client_options.transport = Some(fx.emu.transport());
    WorkloadIdentityCredential::new(Some(trusted))
        .unwrap()
        .get_token(&[STORAGE], None)
        .await
        .expect("a token once the CA is trusted");
    // The server records requests: the empty record above means none arrived.
    assert_eq!(fx.emu.request_count(entra_emulator::Endpoint::Token), 1);
}

/// An untrusted certificate is not retried by either default retry policy: one TLS handshake,
/// a non-transient error, remembered for the next call.
#[tokio::test]
async fn an_untrusted_certificate_is_not_retried_and_not_transient() {
    let fx = Fixture::new().await;
    let relay = Relay::to(&fx).await;
    let authority = format!("https://127.0.0.1:{}", relay.port);
    for retry in RETRY_DEFAULTS {
        eprintln!("retry policy: {retry}");
        // The default transport trusts the system roots, not the emulator's CA.
        assert_not_retried(
            &fx,
            &relay,
            with_retry(default_options(&fx, &authority), retry),
            "TLS: the server's certificate is not trusted (unknown issuer)",
            "transport-untrusted-certificate",
        )
        .await;
    }
    assert_eq!(relay.accepted(), 2);
}

#[tokio::test]
async fn a_server_that_closes_every_connection_names_the_closed_connection() {
    let fx = Fixture::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    });
    let authority = format!("https://127.0.0.1:{port}");
    assert_cause(
        || default_options(&fx, &authority),
        &authority,
        "the connection was closed or reset before an answer",
        "transport-connection-reset",
        &[
            "closed the connection",
            "HTTPS_PROXY",
            &format!("`curl -sv {authority}/{TENANT}/v2.0/.well-known/openid-configuration`"),
        ],
    )
    .await;
    assert!(
        accepted.load(Ordering::Relaxed) >= 2,
        "the server was reached"
    );
    server.abort();
}

/// A reqwest client trusting only the emulator's CA, with no proxy from the environment: the
/// transport of the tests below, which each change one thing about it.
fn client_trusting_the_emulator(fx: &Fixture) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(fx.emu.ca_pem().as_bytes()).expect("CA PEM");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

/// Default options over `client` (the crate's default retry and refresh policy).
fn options_over(
    fx: &Fixture,
    authority: &str,
    client: reqwest::ClientBuilder,
) -> WorkloadIdentityCredentialOptions {
    let mut o = default_options(fx, authority);
    o.credential_options.client_options.transport = Some(azure_core::http::Transport::new(
        Arc::new(client.build().expect("reqwest client")),
    ));
    o
}

#[tokio::test]
async fn a_certificate_for_another_name_names_the_name_mismatch() {
    let fx = Fixture::new().await;
    // `login.example` resolves (in this client only) to the emulator, whose certificate names
    // 127.0.0.1, localhost and ::1.
    let port = fx.emu.port();
    let authority = format!("https://login.example:{port}");
    assert_cause(
        || {
            let client = client_trusting_the_emulator(&fx)
                .resolve("login.example", ([127, 0, 0, 1], port).into());
            options_over(&fx, &authority, client)
        },
        &authority,
        "TLS: the server's certificate is not valid for this host name",
        "transport-certificate-name",
        &[
            "does not name login.example",
            &format!("openssl s_client -connect login.example:{port}"),
        ],
    )
    .await;
    assert!(fx.emu.requests().is_empty(), "a request reached the server");
}

/// A chain (`DefaultAzureCredential` narrowed to workload identity, as a startup probe builds it)
/// with azure_core's default `ClientOptions` fails on the first TLS handshake, not after 30 s.
#[tokio::test]
async fn a_chain_fails_on_the_first_untrusted_handshake() {
    use azure_identity_k8s::{DefaultAzureCredential, DefaultAzureCredentialOptions};
    let fx = Fixture::new().await;
    let relay = Relay::to(&fx).await;
    let chain = DefaultAzureCredential::new(Some(DefaultAzureCredentialOptions {
        client_options: azure_core::http::ClientOptions::default(),
        env: Env::from_pairs([
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                fx.token_path.display().to_string(),
            ),
            (
                "AZURE_AUTHORITY_HOST",
                format!("https://127.0.0.1:{}", relay.port),
            ),
            (
                "AZURE_TOKEN_CREDENTIALS",
                "WorkloadIdentityCredential".into(),
            ),
        ]),
        ..Default::default()
    }))
    .expect("the chain is built");
    let e = chain
        .get_token(&[STORAGE], None)
        .await
        .expect_err("the certificate fails");
    assert!(
        e.to_string()
            .contains("WorkloadIdentityCredential is configured but failed"),
        "{e}"
    );
    assert_eq!(relay.accepted(), 1, "{e}");
    assert!(fx.emu.requests().is_empty(), "a request reached the server");
}

/// A certificate for another name is not retried by either default retry policy.
#[tokio::test]
async fn a_certificate_for_another_name_is_not_retried_and_not_transient() {
    let fx = Fixture::new().await;
    let relay = Relay::to(&fx).await;
    let authority = format!("https://login.example:{}", relay.port);
    for retry in RETRY_DEFAULTS {
        eprintln!("retry policy: {retry}");
        let client = client_trusting_the_emulator(&fx)
            .resolve("login.example", ([127, 0, 0, 1], relay.port).into());
        assert_not_retried(
            &fx,
            &relay,
            with_retry(options_over(&fx, &authority, client), retry),
            "TLS: the server's certificate is not valid for this host name",
            "transport-certificate-name",
        )
        .await;
    }
    assert_eq!(relay.accepted(), 2);
}

/// A resolver that knows no name, as a pod's DNS without the authority host.
struct NoNames;

impl reqwest::dns::Resolve for NoNames {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async {
            Err(std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            )
            .into())
        })
    }
}

#[tokio::test]
async fn a_name_that_does_not_resolve_names_dns() {
    let fx = Fixture::new().await;
    let authority = "https://login.example:8443";
    assert_cause(
        || {
            let client = client_trusting_the_emulator(&fx).dns_resolver(NoNames);
            options_over(&fx, authority, client)
        },
        authority,
        "the host name does not resolve (DNS)",
        "transport-dns",
        &[
            "The name login.example does not resolve",
            "`nslookup login.example`",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_names_the_proxy() {
    let fx = Fixture::new().await;
    // An HTTP proxy that answers every CONNECT with 403.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connects);
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if head.starts_with(b"CONNECT ") {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let authority = fx.emu.authority_host();
    let origin = authority.trim_end_matches('/').to_string();
    assert_cause(
        || {
            let client = client_trusting_the_emulator(&fx)
                .proxy(reqwest::Proxy::https(&proxy).expect("proxy URL"));
            options_over(&fx, &authority, client)
        },
        &origin,
        "the HTTP proxy refused or failed the CONNECT tunnel",
        "transport-proxy",
        &["HTTPS_PROXY", "NO_PROXY=127.0.0.1"],
    )
    .await;
    assert!(connects.load(Ordering::Relaxed) >= 2, "the proxy was asked");
    assert!(
        fx.emu.requests().is_empty(),
        "a request went past the proxy"
    );
    server.abort();
}

/// The emulator closing the connection after reading the request (no answer), or in the middle
/// of its answer's body: both name the closed connection, and the answer's status stays.
#[tokio::test]
async fn a_connection_closed_before_or_during_the_answer_names_the_closed_connection() {
    use entra_emulator::{Endpoint, Fault};
    let fx = Fixture::new().await;
    for (fault, first_line) in [
        (
            Fault::Reset,
            "failed before Entra answered: the connection was closed or reset before an answer.",
        ),
        (
            Fault::Truncated,
            "answer (HTTP 200) from {origin} broke off: the connection was closed or reset before an answer.",
        ),
    ] {
        fx.emu.push_fault(Endpoint::Token, fault.clone());
        let e = failure(fx.options()).await;
        let origin = fx.emu.authority_host().trim_end_matches('/').to_string();
        let expected = first_line.replace("{origin}", &origin);
        assert!(
            e.message().lines().next().unwrap().contains(&expected),
            "{fault:?}: {e}"
        );
        assert_eq!(
            e.problem_id().map(|p| p.to_string()).as_deref(),
            Some("transport-connection-reset"),
            "{fault:?}: {e}"
        );
        assert!(e.is_transient() && e.category() == ErrorCategory::Transport);
    }
}

/// A server that accepts the connection and never answers the TLS handshake: the time-out names
/// the host and what was pending, within the attempt bound.
#[tokio::test]
async fn a_handshake_that_never_completes_names_the_host_and_the_phase() {
    let fx = Fixture::new().await;
    // Never accepted: the kernel completes the TCP handshake (backlog), TLS gets no answer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority = format!("https://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let mut o = default_options(&fx, &authority);
    o.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(1);
    let started = std::time::Instant::now();
    let e = failure(o).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(e.category(), ErrorCategory::Timeout, "{e}");
    assert!(
        e.message().contains(&format!(
            "the token endpoint {authority} did not answer within 1 s"
        )),
        "{e}"
    );
    assert!(e.message().contains("the TLS handshake"), "{e}");
}

/// A resolver that never answers, as a pod whose DNS server drops its queries.
struct SilentDns;

impl reqwest::dns::Resolve for SilentDns {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(std::future::pending())
    }
}

/// A name whose resolution never answers: the time-out, within the attempt bound, names the host
/// and resolving its name among what may have hung (azure_core's `HttpClient` does not say which
/// step of the transport hung), and the fix gives the `nslookup` that tells.
#[tokio::test]
async fn a_resolver_that_never_answers_names_the_host_and_the_phase() {
    let fx = Fixture::new().await;
    let authority = "https://login.example:8443";
    let client = client_trusting_the_emulator(&fx).dns_resolver(SilentDns);
    let mut o = options_over(&fx, authority, client);
    o.refresh_policy.attempt_timeout = azure_core::time::Duration::seconds(1);
    let started = std::time::Instant::now();
    let e = failure(o).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(e.category(), ErrorCategory::Timeout, "{e}");
    assert!(
        e.message().contains(&format!(
            "the token endpoint {authority} did not answer within 1 s: the name login.example \
             did not resolve, the connection or the TLS handshake did not complete, or Entra did \
             not answer (the HTTP transport does not say which)"
        )),
        "{e}"
    );
    let fix = e.fix().unwrap_or_else(|| panic!("no fix: {e}"));
    assert!(fix.contains("`nslookup login.example`"), "{fix}");
    assert!(
        fix.contains(&format!(
            "`curl -sv {authority}/{TENANT}/v2.0/.well-known/openid-configuration`"
        )),
        "{fix}"
    );
    assert!(fx.emu.requests().is_empty(), "a request reached the server");
}

/// The WARN about a custom transport (it must not follow redirects) is logged once per process:
/// never for a credential on the default transport, once for two on custom ones. Run in a child
/// process of this test binary (this test alone), whose once has not fired yet.
#[tokio::test]
async fn a_custom_transport_is_warned_about_once_per_process() {
    const CHILD: &str = "AZURE_IDENTITY_K8S_TEST_CHILD";
    let name = "transport::a_custom_transport_is_warned_about_once_per_process";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .expect("the test binary runs");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{stderr}"
        );
        return;
    }
    let fx = Fixture::new().await;
    let logs = LogCapture::default();
    let _guard = logs.install();
    let warnings = || {
        logs.text()
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("custom HTTP transport"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    WorkloadIdentityCredential::new(Some(default_options(&fx, "https://127.0.0.1:1"))).unwrap();
    assert_eq!(warnings(), Vec::<String>::new());
    for _ in 0..2 {
        WorkloadIdentityCredential::new(Some(fx.options())).unwrap();
    }
    let warnings = warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    for needle in [
        "must not follow redirects",
        "carries the client assertion",
        "redirect(reqwest::redirect::Policy::none())",
        &format!(
            "docs=https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/guides/security/index.html#redirects-and-custom-transports",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(warnings[0].contains(needle), "{needle}: {}", warnings[0]);
    }
}

/// A try that hangs after one that failed keeps the earlier cause (here a reset connection):
/// the time-out names the host, the phase and that cause, and gives its fix.
#[tokio::test]
async fn a_hang_after_a_failed_try_keeps_the_earlier_cause() {
    use entra_emulator::{Endpoint, Fault};
    let fx = Fixture::new().await;
    fx.emu.push_fault(Endpoint::Token, Fault::Reset);
    fx.emu.set_fault(Endpoint::Token, Some(Fault::Hang));
    let mut o = fx.options();
    o.credential_options.client_options.retry = azure_identity_k8s::token_retry_options();
    o.refresh_policy.attempt_timeout = azure_core::time::Duration::milliseconds(1500);
    let e = failure(o).await;
    fx.emu.set_fault(Endpoint::Token, None);
    assert_eq!(e.category(), ErrorCategory::Timeout, "{e}");
    let host = fx.emu.authority_host();
    assert!(
        e.message().contains(&format!(
            "the token endpoint {host} did not answer within 1.5 s"
        )),
        "{e}"
    );
    assert!(
        e.message()
            .contains("The try before failed: the connection was closed or reset before an answer"),
        "{e}"
    );
    assert!(
        e.fix().is_some_and(|f| f.contains("closed the connection")),
        "{e}"
    );
    assert_eq!(fx.emu.request_count(Endpoint::Token), 2);
}
