//! The chains against real parts: the emulator (Entra + OIDC issuer) for the workload identity and
//! client-secret sources, a local server answering like AWS's instance metadata service for the
//! managed identity source, and developer tools replaced by executors that run nothing.
//!
//! Nothing here talks to 169.254.169.254, runs `az`/`azd`, or reads or changes the process
//! environment: every source gets an `Env::from_pairs` and an injected endpoint or executor.

use crate::common::*;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::Url;
use azure_identity::Executor;
use azure_identity_k8s::chain::{AZURE_TOKEN_CREDENTIALS, is_unavailable};
use azure_identity_k8s::{
    ChainError, ChainSource, ChainedTokenCredential, ChainedTokenCredentialOptions,
    CredentialError, CredentialUnavailable, DefaultAzureCredential, DefaultAzureCredentialOptions,
    Env, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
};
use entra_emulator::Endpoint;
use std::ffi::OsStr;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ----- a local server that answers like AWS's instance metadata service -----

#[derive(Clone, Copy, Debug)]
enum Imds {
    /// IMDSv2 required: 401 to any request without a session token.
    AwsV2,
    /// IMDSv1: 404 with an HTML body for paths it does not know.
    AwsV1,
    /// Accepts the connection and never answers (a pod behind a hop limit of 1).
    Hang,
    /// Azure IMDS's answer to a request without `resource`.
    Azure,
}

struct FakeImds {
    url: Url,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeImds {
    async fn start(mode: Imds) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                // Framed as the real services frame them: Content-Length is the body's length.
                let framed = |head: &str, body: &str| {
                    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len())
                };
                let reply: String = match mode {
                    Imds::AwsV2 => framed(
                        "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nServer: EC2ws\r\n",
                        "",
                    ),
                    Imds::AwsV1 => framed(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nConnection: close\r\nServer: EC2ws\r\n",
                        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>404 - Not Found</title>\n </head>\n <body>\n  <h1>404 - Not Found</h1>\n </body>\n</html>\n",
                    ),
                    Imds::Hang => {
                        held.push(sock);
                        continue;
                    }
                    Imds::Azure => framed(
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nServer: IMDS/150.870.65.1325\r\n",
                        "{\"error\":\"invalid_request\",\"error_description\":\"Required audience parameter not specified\"}",
                    ),
                };
                let _ = sock.write_all(reply.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An endpoint where nothing listens.
async fn closed_port() -> Url {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap();
    drop(l);
    url
}

fn mi_options(url: &Url, env: Env) -> ManagedIdentityCredentialOptions {
    ManagedIdentityCredentialOptions {
        imds_endpoint: url.clone(),
        probe_timeout: azure_core::time::Duration::milliseconds(300),
        env,
        ..Default::default()
    }
}

// ----- fake credentials and executors -----

#[derive(Debug)]
struct FixedToken {
    token: &'static str,
    calls: AtomicUsize,
}

impl FixedToken {
    fn new(token: &'static str) -> Arc<Self> {
        Arc::new(Self {
            token,
            calls: AtomicUsize::new(0),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken::new(
            Secret::new(self.token),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

#[derive(Debug)]
struct Scripted {
    results: std::sync::Mutex<Vec<Result<&'static str, (bool, &'static str)>>>,
    calls: AtomicUsize,
}

impl Scripted {
    /// Ok(token) | Err((unavailable?, message)), consumed in order; the last one repeats.
    fn new(results: Vec<Result<&'static str, (bool, &'static str)>>) -> Arc<Self> {
        Arc::new(Self {
            results: std::sync::Mutex::new(results),
            calls: AtomicUsize::new(0),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TokenCredential for Scripted {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = {
            let mut r = self.results.lock().unwrap();
            if r.len() > 1 { r.remove(0) } else { r[0] }
        };
        match next {
            Ok(t) => Ok(AccessToken::new(
                Secret::new(t),
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            )),
            Err((true, m)) => Err(CredentialUnavailable::new(m).into()),
            Err((false, m)) => Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                m,
            )),
        }
    }
}

/// Runs nothing: every program is "not found", as on a machine without `az` and `azd`.
#[derive(Debug, Default)]
struct NoTools {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Executor for NoTools {
    async fn run(&self, _: &OsStr, _: &[&OsStr]) -> std::io::Result<Output> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file or directory",
        ))
    }
}

/// Answers `az account get-access-token` like a logged-in Azure CLI; `azd` is not installed.
#[derive(Debug, Default)]
struct LoggedInAz {
    commands: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl Executor for LoggedInAz {
    async fn run(&self, _: &OsStr, args: &[&OsStr]) -> std::io::Result<Output> {
        use std::os::unix::process::ExitStatusExt;
        let command = args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        self.commands.lock().unwrap().push(command.clone());
        if command.contains("az account get-access-token") {
            let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
            Ok(Output {
                status: std::process::ExitStatus::from_raw(0),
                stdout: format!(
                    r#"{{"accessToken":"cli-token","expires_on":{expires},"tokenType":"Bearer"}}"#
                )
                .into_bytes(),
                stderr: Vec::new(),
            })
        } else {
            Ok(Output {
                status: std::process::ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: b"/bin/sh: 1: azd: not found\n".to_vec(),
            })
        }
    }
}

// ----- ChainedTokenCredential -----

fn chain_err(err: &azure_core::Error) -> &ChainError {
    err.downcast_ref::<ChainError>()
        .unwrap_or_else(|| panic!("not a ChainError: {err:?}"))
}

/// The chain error's list, one `<source>: unavailable: <reason>` / `<source>: failed: <error>` /
/// `<source>: not tried` per source, in order.
fn attempt_lines(err: &azure_core::Error) -> Vec<String> {
    chain_err(err)
        .to_string()
        .lines()
        .filter_map(|l| l.strip_prefix("- ").map(str::to_string))
        .collect()
}

/// The log line of `source`'s span in `chain` that contains `message`.
fn span_line(logs: &str, chain: &str, source: &str, message: &str) -> Option<String> {
    let span = format!("credential_attempt{{chain={chain} source={source}}}");
    logs.lines()
        .find(|l| l.contains(&span) && l.contains(message))
        .map(str::to_string)
}

#[tokio::test]
async fn chain_skips_unavailable_sources_and_sticks_to_the_first_that_works() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let a = Scripted::new(vec![Err((true, "A is not configured"))]);
    let b = Scripted::new(vec![Ok("b-token")]);
    let c = FixedToken::new("c-token");
    let chain = ChainedTokenCredential::new(
        vec![
            ChainSource::new("A", a.clone()),
            ChainSource::new("B", b.clone()),
            ChainSource::new("C", c.clone()),
        ],
        None,
    )
    .unwrap();
    assert_eq!(chain.selected_source(), None);
    let t = chain.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(t.token.secret(), "b-token");
    assert_eq!(chain.selected_source(), Some("B"));
    // Why A was skipped, and that B produced the token, are in the attempts' spans.
    let text = logs.text();
    let skipped = span_line(&text, "ChainedTokenCredential", "A", "source unavailable");
    assert!(
        skipped.is_some_and(|l| l.contains("A is not configured")),
        "{text}"
    );
    assert!(
        span_line(&text, "ChainedTokenCredential", "B", "source selected").is_some(),
        "{text}"
    );
    assert!(!text.contains("source=C}"), "C was not tried: {text}");
    // Sticky: A is never asked again, and C never at all.
    chain.get_token(&[VAULT], None).await.unwrap();
    chain.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!((a.calls(), b.calls(), c.calls()), (1, 3, 0));
}

#[tokio::test]
async fn selected_source_errors_are_returned_as_they_are_and_do_not_fall_through() {
    let a = Scripted::new(vec![Ok("a-token"), Err((false, "A broke later"))]);
    let b = FixedToken::new("b-token");
    let chain = ChainedTokenCredential::new(
        vec![
            ChainSource::new("A", a.clone()),
            ChainSource::new("B", b.clone()),
        ],
        None,
    )
    .unwrap();
    chain.get_token(&[STORAGE], None).await.unwrap();
    let err = chain.get_token(&[STORAGE], None).await.unwrap_err();
    assert_eq!(err.to_string(), "A broke later");
    assert!(err.downcast_ref::<ChainError>().is_none());
    assert_eq!(
        b.calls(),
        0,
        "a selected source that fails does not hand over to the next one"
    );
}

#[tokio::test]
async fn a_configured_source_that_fails_stops_the_chain() {
    let a = Scripted::new(vec![Err((true, "A is not configured"))]);
    let b = Scripted::new(vec![Err((false, "B: AADSTS700016 application not found"))]);
    let c = FixedToken::new("c-token");
    let chain = ChainedTokenCredential::new(
        vec![
            ChainSource::new("A", a),
            ChainSource::new("B", b),
            ChainSource::new("C", c.clone()),
        ],
        Some(ChainedTokenCredentialOptions {
            name: Some("MyChain".into()),
        }),
    )
    .unwrap();
    let err = chain.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(matches!(
        err.kind(),
        azure_core::error::ErrorKind::Credential
    ));
    assert!(!is_unavailable(&err));
    assert_eq!(c.calls(), 0);
    let text = err.to_string();
    assert_eq!(
        text,
        "MyChain: B is configured but failed to get a token, so the chain stopped there (a source that is set up but broken is an error to fix, not a reason to try the next one). Attempts:\n\
         - A: unavailable: A is not configured\n\
         - B: failed: B: AADSTS700016 application not found\n\
         - C: not tried"
    );
    let ce = chain_err(&err);
    assert_eq!(
        ce.failure().unwrap().to_string(),
        "B: AADSTS700016 application not found"
    );
    assert_eq!(chain.selected_source(), None);
}

#[tokio::test]
async fn nothing_selected_tries_again_on_the_next_call_and_a_nested_unavailable_chain_is_skipped() {
    let inner = ChainedTokenCredential::new(
        vec![ChainSource::new(
            "inner",
            Scripted::new(vec![Err((true, "nope"))]),
        )],
        None,
    )
    .unwrap();
    let flaky = Scripted::new(vec![
        Err((true, "not yet")),
        Ok("t1"),
        Err((true, "gone")),
        Ok("t2"),
    ]);
    let chain = ChainedTokenCredential::new(
        vec![
            ChainSource::new("Nested", inner),
            ChainSource::new("Flaky", flaky.clone()),
        ],
        None,
    )
    .unwrap();
    let err = chain.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(is_unavailable(&err));
    let text = err.to_string();
    assert!(
        text.starts_with("ChainedTokenCredential: no credential in the chain is available"),
        "{text}"
    );
    assert!(
        text.contains("- Nested: unavailable: ChainedTokenCredential: no credential")
            && text.contains("- Flaky: unavailable: not yet"),
        "{text}"
    );
    assert_eq!(
        chain
            .get_token(&[STORAGE], None)
            .await
            .unwrap()
            .token
            .secret(),
        "t1"
    );
    assert_eq!(chain.selected_source(), Some("Flaky"));
    // The selected source's own error ("gone"), then its next token.
    assert!(chain.get_token(&[STORAGE], None).await.is_err());
    assert_eq!(
        chain
            .get_token(&[STORAGE], None)
            .await
            .unwrap()
            .token
            .secret(),
        "t2"
    );
}

#[tokio::test]
async fn each_attempt_runs_in_its_own_span() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let chain = ChainedTokenCredential::new(
        vec![
            ChainSource::new(
                "First",
                Scripted::new(vec![Err((true, "first is not configured"))]),
            ),
            ChainSource::new("Second", FixedToken::new("t")),
        ],
        None,
    )
    .unwrap();
    chain.get_token(&[STORAGE], None).await.unwrap();
    let text = logs.text();
    assert!(
        text.contains("credential_attempt{chain=ChainedTokenCredential source=First}"),
        "{text}"
    );
    assert!(text.contains("first is not configured"), "{text}");
    assert!(
        text.contains("credential_attempt{chain=ChainedTokenCredential source=Second}"),
        "{text}"
    );
    assert!(text.contains("source selected"), "{text}");
}

// ----- ManagedIdentityCredential on AWS -----

#[tokio::test]
async fn managed_identity_is_unavailable_on_aws_imdsv2_and_v1() {
    for (mode, needles) in [
        (
            Imds::AwsV2,
            ["AWS EC2 metadata, not Azure IMDS", "401", "EC2ws"],
        ),
        (
            Imds::AwsV1,
            ["AWS EC2 metadata, not Azure IMDS", "404", "EC2ws"],
        ),
    ] {
        let imds = FakeImds::start(mode).await;
        let fallback = FixedToken::new("must-not-be-used");
        let mut o = mi_options(&imds.url, Env::from_pairs::<&str, &str>([]));
        o.credential = Some(fallback.clone());
        let mi = ManagedIdentityCredential::new(Some(o)).unwrap();
        let started = Instant::now();
        let err = mi.get_token(&[STORAGE], None).await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(is_unavailable(&err), "{mode:?}: {err}");
        for n in needles {
            assert!(err.to_string().contains(n), "{mode:?} missing {n}: {err}");
        }
        println!(
            "{mode:?}: probe answered unavailable in {} ms",
            elapsed.as_millis()
        );
        // The outcome is kept: one probe per credential, and the Azure credential is never called.
        assert!(mi.get_token(&[VAULT], None).await.is_err());
        assert_eq!(imds.requests(), 1, "{mode:?}");
        assert_eq!(fallback.calls(), 0);
    }
}

#[tokio::test]
async fn managed_identity_probe_is_bounded_when_the_endpoint_hangs_or_is_closed() {
    let imds = FakeImds::start(Imds::Hang).await;
    let mi = ManagedIdentityCredential::new(Some(mi_options(
        &imds.url,
        Env::from_pairs::<&str, &str>([]),
    )))
    .unwrap();
    let started = Instant::now();
    let err = mi.get_token(&[STORAGE], None).await.unwrap_err();
    println!(
        "hang: unavailable after {} ms (bound 300 ms)",
        started.elapsed().as_millis()
    );
    assert!(is_unavailable(&err), "{err}");
    assert!(
        err.to_string()
            .contains("no answer from the instance metadata endpoint")
            && err.to_string().contains("within 300 ms"),
        "{err}"
    );
    assert_eq!(imds.requests(), 1);
    // A time-out is not an answer: it is not kept, and the next call probes again.
    let err = mi.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(is_unavailable(&err), "{err}");
    assert_eq!(imds.requests(), 2);

    let closed = closed_port().await;
    let mi = ManagedIdentityCredential::new(Some(mi_options(
        &closed,
        Env::from_pairs::<&str, &str>([]),
    )))
    .unwrap();
    let err = mi.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(is_unavailable(&err), "{err}");
    assert!(
        err.to_string()
            .contains("no Azure instance metadata service"),
        "{err}"
    );
    // The root cause, named as in the credential's errors.
    assert!(
        err.to_string().contains(": connection refused (cause: "),
        "{err}"
    );
}

#[tokio::test]
async fn managed_identity_delegates_once_azure_imds_answers() {
    let imds = FakeImds::start(Imds::Azure).await;
    let azure = FixedToken::new("mi-token");
    let mut o = mi_options(&imds.url, Env::from_pairs::<&str, &str>([]));
    o.credential = Some(azure.clone());
    let mi = ManagedIdentityCredential::new(Some(o)).unwrap();
    assert_eq!(
        mi.get_token(&[STORAGE], None).await.unwrap().token.secret(),
        "mi-token"
    );
    assert_eq!(
        mi.get_token(&[VAULT], None).await.unwrap().token.secret(),
        "mi-token"
    );
    assert_eq!((imds.requests(), azure.calls()), (1, 2));
}

#[tokio::test]
async fn managed_identity_skips_the_probe_when_the_environment_names_another_source() {
    let imds = FakeImds::start(Imds::AwsV2).await;
    let azure = FixedToken::new("app-service-token");
    let mut o = mi_options(
        &imds.url,
        Env::from_pairs([
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi"),
            ("IDENTITY_HEADER", "h"),
        ]),
    );
    o.credential = Some(azure.clone());
    let mi = ManagedIdentityCredential::new(Some(o)).unwrap();
    assert_eq!(
        mi.get_token(&[STORAGE], None).await.unwrap().token.secret(),
        "app-service-token"
    );
    assert_eq!(imds.requests(), 0);
}

#[test]
fn managed_identity_endpoint_must_be_plain_http() {
    let o = ManagedIdentityCredentialOptions {
        imds_endpoint: Url::parse("https://127.0.0.1:1").unwrap(),
        ..Default::default()
    };
    let e = ManagedIdentityCredential::new(Some(o)).unwrap_err();
    assert!(e.to_string().contains("http://host[:port]"), "{e}");
}

// ----- DefaultAzureCredential -----

struct Dac {
    fx: Fixture,
    imds: FakeImds,
    tools: Arc<NoTools>,
}

impl Dac {
    async fn new(imds: Imds) -> Self {
        Self {
            fx: Fixture::new().await,
            imds: FakeImds::start(imds).await,
            tools: Arc::default(),
        }
    }

    /// The workload identity variables, as the webhook sets them, pointing at the emulator.
    fn workload_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_CLIENT_ID", CLIENT.to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                self.fx.token_path.display().to_string(),
            ),
            ("AZURE_AUTHORITY_HOST", self.fx.emu.authority_host()),
        ]
    }

    fn options(&self, pairs: Vec<(&'static str, String)>) -> DefaultAzureCredentialOptions {
        let env = Env::from_pairs(pairs);
        DefaultAzureCredentialOptions {
            client_options: self.fx.client_options(),
            managed_identity: Some(mi_options(&self.imds.url, env.clone())),
            developer_tools_executor: Some(self.tools.clone()),
            env,
            ..Default::default()
        }
    }

    fn credential(&self, pairs: Vec<(&'static str, String)>) -> Arc<DefaultAzureCredential> {
        DefaultAzureCredential::new(Some(self.options(pairs))).unwrap()
    }
}

#[tokio::test]
async fn nothing_configured_on_aws_lists_every_source_with_its_reason() {
    let d = Dac::new(Imds::AwsV2).await;
    let cred = d.credential(Vec::new());
    let err = cred.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(is_unavailable(&err));
    let lines = attempt_lines(&err);
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "EnvironmentCredential",
            "WorkloadIdentityCredential",
            "ManagedIdentityCredential",
            "AzureCliCredential",
            "AzureDeveloperCliCredential"
        ]
    );
    assert!(
        lines
            .iter()
            .all(|l| l.split(": ").nth(1) == Some("unavailable")),
        "{err}"
    );
    let text = err.to_string();
    for needle in [
        "DefaultAzureCredential: no credential in the chain is available",
        "- EnvironmentCredential: unavailable: AZURE_CLIENT_SECRET is not set",
        "- WorkloadIdentityCredential: unavailable: WorkloadIdentityCredential is not configured: no client id",
        "- ManagedIdentityCredential: unavailable: ManagedIdentityCredential: this looks like AWS EC2 metadata, not Azure IMDS",
        "- AzureCliCredential: unavailable: ",
        "- AzureDeveloperCliCredential: unavailable: ",
        "wasn't found on PATH",
        // Absolute, versioned links, never a repository path such as docs/chain.md.
        &format!(
            "configure one of them (see https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/chain/struct.DefaultAzureCredential.html).",
            env!("CARGO_PKG_VERSION")
        ),
        &format!(
            "use WorkloadIdentityCredential (see https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/struct.WorkloadIdentityCredential.html)",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("docs/chain.md"), "{text}");
    assert_eq!(
        d.tools.calls.load(Ordering::SeqCst),
        2,
        "az and azd were each looked for once (and run nowhere)"
    );
    assert_eq!(d.fx.emu.request_count(Endpoint::Token), 0);
    assert_eq!(cred.selected_source(), None);
}

#[tokio::test]
async fn on_eks_the_workload_identity_is_picked_and_kept() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let d = Dac::new(Imds::AwsV2).await;
    let cred = d.credential(d.workload_env());
    let t = cred.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(claims(t.token.secret())["appid"], CLIENT);
    assert_eq!(cred.selected_source(), Some("WorkloadIdentityCredential"));
    let text = logs.text();
    let dac = "DefaultAzureCredential";
    assert!(
        span_line(&text, dac, "EnvironmentCredential", "source unavailable")
            .is_some_and(|l| l.contains("AZURE_CLIENT_SECRET")),
        "{text}"
    );
    assert!(
        span_line(&text, dac, "WorkloadIdentityCredential", "source selected").is_some(),
        "{text}"
    );
    // Later sources were never touched: no IMDS probe, no tool.
    assert_eq!(d.imds.requests(), 0);
    assert_eq!(d.tools.calls.load(Ordering::SeqCst), 0);
    // Sticky: a broken token file now fails with the workload identity's own error, and the chain
    // does not fall through to managed identity or the tools.
    cred.get_token(&[VAULT], None).await.unwrap();
    std::fs::remove_file(&d.fx.token_path).unwrap();
    let err = cred
        .get_token(&["https://graph.microsoft.com/.default"], None)
        .await
        .unwrap_err();
    let ce = err
        .downcast_ref::<CredentialError>()
        .expect("the workload identity's own error");
    assert!(ce.message().contains("does not exist"), "{ce}");
    assert_eq!(
        (d.imds.requests(), d.tools.calls.load(Ordering::SeqCst)),
        (0, 0)
    );
}

#[tokio::test]
async fn a_client_secret_in_the_environment_comes_first_and_its_failure_stops_the_chain() {
    let d = Dac::new(Imds::AwsV2).await;
    let mut env = d.workload_env();
    env.push(("AZURE_CLIENT_SECRET", "s3cr3t-value".to_string()));
    let cred = d.credential(env);
    let err = cred.get_token(&[STORAGE], None).await.unwrap_err();
    assert!(!is_unavailable(&err));
    let lines = attempt_lines(&err);
    assert!(
        lines[0].starts_with("EnvironmentCredential: failed: ")
            && lines[0].contains("ClientSecretCredential")
            && lines[0].contains("Invalid client secret"),
        "{err}"
    );
    assert!(
        lines.len() == 5 && lines[1..].iter().all(|l| l.ends_with(": not tried")),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("DefaultAzureCredential: EnvironmentCredential is configured but failed"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("s3cr3t-value"),
        "the secret never appears in errors"
    );
    // The client secret really went to the emulator's token endpoint (through our Env's authority).
    let req =
        d.fx.emu
            .requests()
            .into_iter()
            .find(|r| r.endpoint == Endpoint::Token)
            .expect("a token request");
    assert_eq!(
        req.form.get("client_secret").map(String::as_str),
        Some("s3cr3t-value")
    );
    assert_eq!(
        d.fx.emu.request_count(Endpoint::Token),
        1,
        "the workload identity was not tried after it"
    );
}

#[tokio::test]
async fn an_incomplete_client_secret_configuration_is_unavailable_with_the_missing_variable() {
    let d = Dac::new(Imds::AwsV2).await;
    let mut env = d.workload_env();
    env.retain(|(k, _)| *k != "AZURE_TENANT_ID");
    env.push(("AZURE_CLIENT_SECRET", "x".to_string()));
    env.push((AZURE_TOKEN_CREDENTIALS, "EnvironmentCredential".to_string()));
    let err = d
        .credential(env)
        .get_token(&[STORAGE], None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID is not"),
        "{err}"
    );
}

#[tokio::test]
async fn a_configured_but_broken_workload_identity_stops_before_managed_identity() {
    let d = Dac::new(Imds::Azure).await;
    std::fs::remove_file(&d.fx.token_path).unwrap();
    let cred = d.credential(d.workload_env());
    let err = cred.get_token(&[STORAGE], None).await.unwrap_err();
    let lines = attempt_lines(&err);
    assert!(
        lines[1].starts_with("WorkloadIdentityCredential: failed: ")
            && lines[1].contains("does not exist"),
        "{err}"
    );
    assert_eq!(lines[2], "ManagedIdentityCredential: not tried");
    let inner = chain_err(&err)
        .failure()
        .unwrap()
        .downcast_ref::<CredentialError>()
        .expect("the CredentialError is kept");
    assert_eq!(
        inner.category(),
        azure_identity_k8s::ErrorCategory::TokenFile
    );
    assert_eq!(d.imds.requests(), 0);

    // Invalid configuration (not merely absent) also stops the chain, when a token is requested.
    let mut env = d.workload_env();
    env[1].1 = "bad/tenant".into();
    let err = d
        .credential(env)
        .get_token(&[STORAGE], None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "- WorkloadIdentityCredential: failed: WorkloadIdentityCredential: invalid tenant id"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn token_credentials_dev_uses_only_the_developer_tools() {
    let d = Dac::new(Imds::AwsV2).await;
    let az = Arc::new(LoggedInAz::default());
    let mut env = d.workload_env();
    env.push((AZURE_TOKEN_CREDENTIALS, "Dev".to_string()));
    let mut o = d.options(env);
    o.developer_tools_executor = Some(az.clone());
    let cred = DefaultAzureCredential::new(Some(o)).unwrap();
    assert_eq!(
        cred.source_names(),
        ["AzureCliCredential", "AzureDeveloperCliCredential"]
    );
    assert!(
        cred.selection_reason()
            .contains("AZURE_TOKEN_CREDENTIALS=Dev"),
        "{}",
        cred.selection_reason()
    );
    let t = cred.get_token(&[STORAGE], None).await.unwrap();
    assert_eq!(t.token.secret(), "cli-token");
    assert_eq!(cred.selected_source(), Some("AzureCliCredential"));
    let commands = az.commands.lock().unwrap().clone();
    assert_eq!(commands.len(), 1);
    assert!(
        commands[0].contains(
            "az account get-access-token -o json --scope https://storage.azure.com/.default"
        ),
        "{commands:?}"
    );
    assert_eq!(
        d.fx.emu.request_count(Endpoint::Token),
        0,
        "workload identity is configured but excluded"
    );
    assert_eq!(d.imds.requests(), 0);
}

#[tokio::test]
async fn token_credentials_prod_never_runs_a_tool() {
    let d = Dac::new(Imds::AwsV1).await;
    let cred = d.credential(vec![(AZURE_TOKEN_CREDENTIALS, "PROD".to_string())]);
    assert_eq!(
        cred.source_names(),
        [
            "EnvironmentCredential",
            "WorkloadIdentityCredential",
            "ManagedIdentityCredential"
        ]
    );
    let err = cred.get_token(&[STORAGE], None).await.unwrap_err();
    assert_eq!(attempt_lines(&err).len(), 3);
    assert_eq!(d.tools.calls.load(Ordering::SeqCst), 0);
    assert_eq!(d.imds.requests(), 1);
}

#[tokio::test]
async fn token_credentials_names_one_source_case_insensitively() {
    let d = Dac::new(Imds::Azure).await;
    let azure = FixedToken::new("mi-token");
    let mut env = d.workload_env();
    env.push((
        AZURE_TOKEN_CREDENTIALS,
        "managedidentitycredential".to_string(),
    ));
    let mut o = d.options(env);
    o.managed_identity.as_mut().unwrap().credential = Some(azure.clone());
    let cred = DefaultAzureCredential::new(Some(o)).unwrap();
    assert_eq!(cred.source_names(), ["ManagedIdentityCredential"]);
    assert_eq!(
        cred.get_token(&[STORAGE], None)
            .await
            .unwrap()
            .token
            .secret(),
        "mi-token"
    );
    assert_eq!(cred.selected_source(), Some("ManagedIdentityCredential"));
    assert_eq!(d.fx.emu.request_count(Endpoint::Token), 0);

    for name in [
        "workloadIDENTITYcredential",
        "AzureCliCredential",
        "azuredeveloperclicredential",
        "environmentcredential",
    ] {
        let cred = d.credential(vec![(AZURE_TOKEN_CREDENTIALS, name.to_string())]);
        assert_eq!(cred.source_names().len(), 1);
        assert!(cred.source_names()[0].eq_ignore_ascii_case(name));
    }
}

#[tokio::test]
async fn an_invalid_token_credentials_value_fails_construction_listing_the_valid_values() {
    let d = Dac::new(Imds::AwsV2).await;
    let err = DefaultAzureCredential::new(Some(d.options(vec![(
        AZURE_TOKEN_CREDENTIALS,
        "VisualStudioCodeCredential".into(),
    )])))
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(
        err.kind(),
        azure_core::error::ErrorKind::Credential
    ));
    for needle in [
        "AZURE_TOKEN_CREDENTIALS has the invalid value \"VisualStudioCodeCredential\"",
        "prod",
        "dev",
        "EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential, AzureDeveloperCliCredential",
    ] {
        assert!(text.contains(needle), "missing {needle:?}: {text}");
    }
    // The option overrides the variable, and is validated the same way.
    let mut o = d.options(vec![(AZURE_TOKEN_CREDENTIALS, "nonsense".into())]);
    o.token_credentials = Some("dev".into());
    assert_eq!(
        DefaultAzureCredential::new(Some(o))
            .unwrap()
            .source_names()
            .len(),
        2
    );
    let mut o = d.options(Vec::new());
    o.token_credentials = Some("both".into());
    let err = DefaultAzureCredential::new(Some(o)).unwrap_err();
    assert!(
        err.to_string()
            .contains("the token_credentials option has the invalid value \"both\""),
        "{err}"
    );
}
