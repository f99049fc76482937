//! The fault matrix (the table is in `docs/reliability.md`).
//!
//! Every fault of the token endpoint, of the token file and of the issuer's discovery document,
//! crossed with the three states a cached token can be in:
//!
//! * **cold start**: no token yet. Expected: a clear error (category, status, what to do) within
//!   `attempt_timeout`, and a token as soon as the fault has ended and the short error TTL has
//!   passed;
//! * **advisory window** (a valid token, refresh due): the caller gets the cached token without
//!   waiting (the future is ready on its first poll), the background refresh fails, callers keep
//!   getting the cached token without waiting, and the next attempt after the backoff, once the
//!   fault has ended, brings a new token;
//! * **mandatory window** (a valid token about to expire): the caller waits for one attempt
//!   (bounded) and gets the cached token when it fails (0 errors); callers during the backoff get
//!   it without waiting; the next attempt after the fault brings a new token.
//!
//! The credential's clock is a [`ManualClock`], so the windows are reached without waiting; the
//! emulator answers over real HTTPS. Background attempts are observed through the cache's own
//! `tracing` events ([`support::Attempts`]), so no test guesses how long a refresh takes.

use azure_identity_k8s::ErrorCategory;
use entra_emulator::{Endpoint, Fault, RetryAfter, ServiceAccountToken};
use support::*;

pub mod support;

/// One row of the matrix.
#[derive(Debug, Clone)]
enum Case {
    /// A one-shot fault on the token endpoint (consumed by the failing attempt's one request).
    Endpoint(Fault),
    /// The token file is broken until healed.
    File(FileFault),
    /// The issuer's discovery document is unreachable (Entra answers AADSTS90061).
    IssuerDiscoveryDown,
}

#[derive(Debug, Clone, Copy)]
enum FileFault {
    Missing,
    Empty,
    Garbage,
    Directory,
    Expired,
}

/// What a cold-start caller is told.
struct ColdExpectation {
    category: ErrorCategory,
    status: Option<u16>,
    transient: bool,
    needle: &'static str,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut v: Vec<Case> = [
            Fault::Status(500),
            Fault::Status(502),
            Fault::Status(503),
            Fault::Throttle {
                retry_after: RetryAfter::Seconds(30),
            },
            Fault::Throttle {
                retry_after: RetryAfter::HttpDate(30),
            },
            Fault::Unavailable {
                retry_after: RetryAfter::Seconds(30),
            },
            // Absurd: honoured up to RefreshPolicy::max_backoff (2 min in the matrix).
            Fault::Throttle {
                retry_after: RetryAfter::Seconds(1_000_000_000),
            },
            Fault::Hang,
            Fault::Reset,
            Fault::Truncated,
            Fault::Html(502),
            Fault::Empty(503),
            Fault::Oversized(200, 1024 * 1024),
            Fault::Oversized(500, 1024 * 1024),
            Fault::NumbersAsStrings,
        ]
        .into_iter()
        .map(Case::Endpoint)
        .collect();
        v.extend(
            [
                FileFault::Missing,
                FileFault::Empty,
                FileFault::Garbage,
                FileFault::Directory,
                FileFault::Expired,
            ]
            .map(Case::File),
        );
        v.push(Case::IssuerDiscoveryDown);
        v
    }

    fn name(&self) -> String {
        match self {
            Case::Endpoint(Fault::Throttle {
                retry_after: RetryAfter::Seconds(s),
            }) => format!("429 Retry-After: {s}"),
            Case::Endpoint(Fault::Throttle {
                retry_after: RetryAfter::HttpDate(s),
            }) => format!("429 Retry-After: <HTTP date +{s} s>"),
            Case::Endpoint(Fault::Unavailable {
                retry_after: RetryAfter::Seconds(s),
            }) => format!("503 Retry-After: {s}"),
            Case::Endpoint(f) => format!("token endpoint {f:?}"),
            Case::File(f) => format!("token file {f:?}"),
            Case::IssuerDiscoveryDown => "issuer discovery down".into(),
        }
    }

    /// Token-endpoint requests one failing attempt makes.
    fn requests_per_attempt(&self) -> usize {
        match self {
            Case::File(_) => 0,
            _ => 1,
        }
    }

    /// `None`: not a failure (the credential accepts it).
    /// The `Retry-After` the endpoint sends with this fault, in seconds (0 when none): the cache
    /// honours it in every window (capped at `RefreshPolicy::max_backoff`).
    fn retry_after_secs(&self) -> i64 {
        match self {
            Case::Endpoint(
                Fault::Throttle {
                    retry_after: RetryAfter::Seconds(s) | RetryAfter::HttpDate(s),
                }
                | Fault::Unavailable {
                    retry_after: RetryAfter::Seconds(s) | RetryAfter::HttpDate(s),
                },
            ) => (*s).min(MATRIX_MAX_BACKOFF_SECS as u64) as i64,
            _ => 0,
        }
    }

    fn cold(&self) -> Option<ColdExpectation> {
        use ErrorCategory::*;
        let e = |category, status, transient, needle| {
            Some(ColdExpectation {
                category,
                status,
                transient,
                needle,
            })
        };
        match self {
            Case::Endpoint(f) => match f {
                Fault::Status(s) => e(InvalidResponse, Some(*s), true, "This is usually transient"),
                Fault::Throttle {
                    retry_after: RetryAfter::Seconds(1_000_000_000),
                } => e(
                    InvalidResponse,
                    Some(429),
                    true,
                    "Entra throttled the token request (HTTP 429, retry after 1000000000 s",
                ),
                Fault::Throttle {
                    retry_after: RetryAfter::Seconds(_),
                } => e(
                    InvalidResponse,
                    Some(429),
                    true,
                    "Entra throttled the token request (HTTP 429, retry after 30 s, transient)",
                ),
                Fault::Unavailable { .. } => e(
                    InvalidResponse,
                    Some(503),
                    true,
                    "Entra throttled the token request (HTTP 503, retry after 30 s, transient)",
                ),
                Fault::Throttle {
                    retry_after: RetryAfter::HttpDate(_),
                } => e(InvalidResponse, Some(429), true, "GMT"),
                Fault::Hang => e(Timeout, None, true, "did not answer within 0.4 s"),
                Fault::Reset => e(Transport, None, true, "failed before Entra answered"),
                Fault::Truncated => e(Transport, None, true, "broke off"),
                Fault::Html(s) => e(InvalidResponse, Some(*s), true, "an HTML page"),
                Fault::Empty(s) => e(InvalidResponse, Some(*s), true, "an empty body"),
                Fault::Oversized(s, _) => e(
                    InvalidResponse,
                    Some(*s),
                    *s >= 500,
                    "larger than 262144 bytes",
                ),
                Fault::NumbersAsStrings => None,
                other => panic!("not in the matrix: {other:?}"),
            },
            Case::File(FileFault::Missing) => e(TokenFile, None, false, "does not exist"),
            Case::File(FileFault::Empty) => e(TokenFile, None, false, "is empty"),
            Case::File(FileFault::Garbage) => e(
                TokenFile,
                None,
                false,
                "does not hold a service-account token",
            ),
            Case::File(FileFault::Directory) => e(TokenFile, None, false, "is a directory"),
            Case::File(FileFault::Expired) => e(Assertion, None, false, "expired at"),
            Case::IssuerDiscoveryDown => e(Entra, Some(400), true, "AADSTS90061"),
        }
    }

    fn inject(&self, bench: &Bench, token_file: &std::path::Path) {
        match self {
            Case::Endpoint(f) => bench.emu.push_fault(Endpoint::Token, f.clone()),
            Case::File(f) => match f {
                FileFault::Missing => std::fs::remove_file(token_file).unwrap(),
                FileFault::Empty => std::fs::write(token_file, "").unwrap(),
                FileFault::Garbage => std::fs::write(token_file, "not-a-token\n").unwrap(),
                FileFault::Directory => {
                    std::fs::remove_file(token_file).unwrap();
                    std::fs::create_dir(token_file).unwrap();
                }
                FileFault::Expired => {
                    let t = bench.issuer.mint(&ServiceAccountToken {
                        issued_at: Some(real_now() - secs(3 * 3600)),
                        ..Default::default()
                    });
                    std::fs::write(token_file, t).unwrap();
                }
            },
            Case::IssuerDiscoveryDown => bench.issuer.set_discovery_available(false),
        }
    }

    /// End the fault (one-shot endpoint faults have ended by themselves).
    fn heal(&self, bench: &Bench, token_file: &std::path::Path) {
        match self {
            Case::Endpoint(_) => {}
            Case::File(_) => {
                bench.write_valid(token_file);
            }
            Case::IssuerDiscoveryDown => bench.issuer.set_discovery_available(true),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    Cold,
    Advisory,
    Mandatory,
}

/// Run one case in one phase against `bench`; panics with the case's name on any deviation.
async fn run(bench: &Bench, attempts: &Attempts, case: &Case, phase: Phase, index: usize) {
    let at = format!("{} / {phase:?}", case.name());
    let file = bench.token_file(&format!("token-{index}-{phase:?}"));
    let (cred, clock) = bench.credential(bench.options(file.clone()));
    let token_requests = || bench.emu.request_count(Endpoint::Token);
    let per_attempt = case.requests_per_attempt();

    match phase {
        Phase::Cold => {
            let before = token_requests();
            case.inject(bench, &file);
            let outcome = get(&cred).await;
            attempts.settle().await;
            assert_eq!(token_requests() - before, per_attempt, "{at}: requests");
            match case.cold() {
                None => {
                    outcome.unwrap_or_else(|e| panic!("{at}: accepted, yet {e}"));
                }
                Some(x) => {
                    let e = outcome.expect_err(&at);
                    assert_eq!(e.category(), x.category, "{at}: {e}");
                    assert_eq!(e.http_status().map(u16::from), x.status, "{at}: {e}");
                    assert_eq!(e.is_transient(), x.transient, "{at}: {e}");
                    assert!(e.message().contains(x.needle), "{at}: {e}");
                    let url = e.documentation_url().unwrap_or_default();
                    assert!(
                        url.starts_with(&docs_root()) && e.message().contains(url),
                        "{at}: {e}"
                    );
                    let fix = e.fix().unwrap_or_else(|| panic!("{at}: no fix: {e}"));
                    assert!(e.message().contains(&format!("Fix: {fix}")), "{at}: {e}");
                    // Within the error TTL the same error is returned without a new request.
                    let again = get_now(&cred)
                        .unwrap_or_else(|| panic!("{at}: remembered error must not wait"));
                    assert_eq!(again.expect_err(&at).message(), e.message(), "{at}");
                    assert_eq!(
                        token_requests() - before,
                        per_attempt,
                        "{at}: no new request"
                    );
                    // Recovery: the fault ends, the TTL passes, the next caller gets a token.
                    case.heal(bench, &file);
                    clock.advance(secs(6.max(case.retry_after_secs() + 1)));
                    get(&cred)
                        .await
                        .unwrap_or_else(|e| panic!("{at}: no recovery: {e}"));
                    assert_eq!(token_requests() - before, per_attempt + 1, "{at}");
                }
            }
        }
        Phase::Advisory | Phase::Mandatory => {
            let first = get(&cred).await.expect("first token");
            attempts.settle().await;
            let before = token_requests();
            let failed_before = attempts.failed();
            // Access tokens live 3599 s: refresh_on <= 50 min, mandatory_at = 58:59.
            let into = match phase {
                Phase::Advisory => 55 * 60,
                _ => 3599 - 30,
            };
            clock.advance(secs(into));
            case.inject(bench, &file);
            let served = match phase {
                // Advisory: served at once; the refresh runs in the background.
                Phase::Advisory => get_now(&cred)
                    .unwrap_or_else(|| panic!("{at}: the caller had to wait"))
                    .unwrap_or_else(|e| panic!("{at}: caller error {e}")),
                // Mandatory: the caller waits for the one attempt (bounded).
                _ => get(&cred)
                    .await
                    .unwrap_or_else(|e| panic!("{at}: caller error {e}")),
            };
            attempts.settle().await;
            assert_eq!(token_requests() - before, per_attempt, "{at}: requests");
            if case.cold().is_none() {
                // Not a failure: the refresh brought a new token.
                assert_eq!(attempts.failed(), failed_before, "{at}");
                let next = get_now(&cred).expect("no wait").expect("token");
                assert_ne!(next.token.secret(), first.token.secret(), "{at}");
                return;
            }
            assert_eq!(
                served.token.secret(),
                first.token.secret(),
                "{at}: cached token served"
            );
            assert_eq!(attempts.failed(), failed_before + 1, "{at}: attempt failed");
            // During the backoff: the cached token, without waiting and without a request.
            for _ in 0..3 {
                let t = get_now(&cred)
                    .unwrap_or_else(|| panic!("{at}: a caller had to wait during the backoff"))
                    .unwrap_or_else(|e| panic!("{at}: caller error {e}"));
                assert_eq!(t.token.secret(), first.token.secret(), "{at}");
            }
            assert_eq!(token_requests() - before, per_attempt, "{at}: backoff");
            // Recovery: the fault ends; after the backoff (at most 10 s) the next attempt
            // brings a new token, while the old one is still valid.
            case.heal(bench, &file);
            // Retry-After is honoured in every window (the cache owns throttling).
            let wait = 11.max(case.retry_after_secs() + 1);
            clock.advance(secs(wait));
            let t = match phase {
                Phase::Advisory => {
                    let t = get_now(&cred).expect("no wait").expect("token");
                    attempts.settle().await;
                    assert_eq!(t.token.secret(), first.token.secret(), "{at}");
                    get_now(&cred).expect("no wait").expect("token")
                }
                _ => get(&cred).await.expect("token"),
            };
            assert_ne!(t.token.secret(), first.token.secret(), "{at}: recovered");
            assert_eq!(token_requests() - before, per_attempt + 1, "{at}");
        }
    }
}

async fn run_phase(phase: Phase) {
    let attempts = Attempts::default();
    let _guard = attempts.install();
    let bench = Bench::new().await;
    for (i, case) in Case::all().iter().enumerate() {
        run(&bench, &attempts, case, phase, i).await;
    }
    // Held connections (the hang case) end with the emulator.
    bench.emu.shutdown().await;
}

#[tokio::test]
async fn fault_matrix_cold_start() {
    run_phase(Phase::Cold).await;
}

#[tokio::test]
async fn fault_matrix_advisory_window() {
    run_phase(Phase::Advisory).await;
}

#[tokio::test]
async fn fault_matrix_mandatory_window() {
    run_phase(Phase::Mandatory).await;
}

/// The token file rotates between two exchanges (in the advisory window): the refresh sends the
/// new token, never the one read before.
#[tokio::test]
async fn rotated_token_file_is_read_again_by_the_refresh() {
    let attempts = Attempts::default();
    let _guard = attempts.install();
    let bench = Bench::new().await;
    let vol = entra_emulator::ProjectedVolume::create(
        &bench.dir.path().join("volume"),
        "azure-identity-token",
        bench.issuer.clone(),
        sa(),
    )
    .unwrap();
    let (cred, clock) = bench.credential(bench.options(vol.token_path()));
    let first_sa = vol.current_token();
    let first = get(&cred).await.unwrap();
    let second_sa = vol.rotate_now().unwrap();
    clock.advance(secs(55 * 60));
    assert_eq!(
        get_now(&cred).expect("no wait").unwrap().token.secret(),
        first.token.secret()
    );
    attempts.settle().await;
    let sent: Vec<String> = bench
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::Token)
        .map(|r| r.form["client_assertion"].clone())
        .collect();
    assert_eq!(sent, [first_sa, second_sa]);
}

/// This release's documentation root on docs.rs, which every error's link starts with.
fn docs_root() -> String {
    format!(
        "https://docs.rs/azure_identity_k8s/{}/azure_identity_k8s/",
        env!("CARGO_PKG_VERSION")
    )
}
