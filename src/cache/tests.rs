use super::policy::{backoff, schedule};
use super::*;
use crate::clock::{Clock, ManualClock};
use azure_core::credentials::AccessToken;
use futures::FutureExt as _;
use futures::future::join_all;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use time::OffsetDateTime;
use time::macros::datetime;
use tracing::instrument::Instrument as _;

const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);
const SCOPE: &str = "vault/.default";

/// What the test source does on its next fetches (until told otherwise).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Ok {
        lifetime: Duration,
        refresh_in: Option<Duration>,
    },
    Transient,
    /// Throttled: retry after 45 s.
    Throttled,
    Permanent,
    Hang,
    Panic,
}

fn ok(lifetime: Duration) -> Behaviour {
    Behaviour::Ok {
        lifetime,
        refresh_in: None,
    }
}

/// Counts fetches, returns programmable results, can hold fetches on a gate. Fetch `n`
/// (1-based) returns the token `tok-n`.
#[derive(Debug)]
struct TestSource {
    clock: Arc<ManualClock>,
    fetches: AtomicUsize,
    behaviour: Mutex<Behaviour>,
    gated: AtomicBool,
    gate: tokio::sync::Semaphore,
    scopes_seen: Mutex<Vec<Vec<String>>>,
}

impl TestSource {
    fn new(clock: Arc<ManualClock>, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            clock,
            fetches: AtomicUsize::new(0),
            behaviour: Mutex::new(behaviour),
            gated: AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
            scopes_seen: Mutex::new(Vec::new()),
        })
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
    /// Hold every following fetch until `release`.
    fn close_gate(&self) {
        self.gated.store(true, Ordering::SeqCst);
    }
    /// Let held fetches (and all later ones) through.
    fn open_gate(&self) {
        self.gated.store(false, Ordering::SeqCst);
        self.gate
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }
}

/// The test source's errors, as data: its own (by the number of the fetch that failed) and the
/// cache's failures as [`TokenSource::failed`] hands them over.
#[derive(Debug, Clone, PartialEq)]
enum TestError {
    Transient(usize),
    /// Retry after 45 s.
    Throttled(usize),
    Permanent(usize),
    /// `fetch`: the number of the fetch in flight (the attempt's progress), when one was known.
    TimedOut {
        bound: Duration,
        fetch: Option<usize>,
    },
    Vanished(usize),
    Panicked(String),
}

/// What the scenarios check of an error.
#[derive(Debug, PartialEq)]
enum Category {
    /// The source's own.
    Source,
    Timeout,
    /// A vanished or panicked attempt.
    Attempt,
}

impl TestError {
    fn category(&self) -> Category {
        match self {
            Self::Transient(_) | Self::Throttled(_) | Self::Permanent(_) => Category::Source,
            Self::TimedOut { .. } => Category::Timeout,
            Self::Vanished(_) | Self::Panicked(_) => Category::Attempt,
        }
    }
}

impl SourceError for TestError {
    fn is_transient(&self) -> bool {
        !matches!(self, Self::Permanent(_))
    }
    fn retry_after(&self) -> Option<Duration> {
        matches!(self, Self::Throttled(_)).then_some(Duration::seconds(45))
    }
}

/// An attempt's outcome as the cache's caller gets it.
type Outcome = Result<AccessToken, TestError>;

impl TokenSource for TestSource {
    type Token = AccessToken;
    type Error = TestError;
    type Context = ();
    /// The number of the fetch in flight.
    type Progress = AtomicUsize;

    async fn fetch(
        &self,
        scope: &str,
        (): (),
        progress: Arc<AtomicUsize>,
        _: bool,
    ) -> Result<Fetched<AccessToken>, TestError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        progress.store(n, Ordering::SeqCst);
        self.scopes_seen
            .lock()
            .unwrap()
            .push(vec![scope.to_owned()]);
        let behaviour = *self.behaviour.lock().unwrap();
        if self.gated.load(Ordering::SeqCst) {
            self.gate.acquire().await.expect("gate open").forget();
        }
        match behaviour {
            Behaviour::Ok {
                lifetime,
                refresh_in,
            } => Ok(Fetched {
                token: AccessToken::new(format!("tok-{n}"), self.clock.now() + lifetime),
                expires_on: self.clock.now() + lifetime,
                lifetime,
                refresh_in,
            }),
            Behaviour::Transient => Err(TestError::Transient(n)),
            Behaviour::Throttled => Err(TestError::Throttled(n)),
            Behaviour::Permanent => Err(TestError::Permanent(n)),
            Behaviour::Hang => futures::future::pending().await,
            Behaviour::Panic => panic!("test source panics on fetch {n}"),
        }
    }

    fn failed(&self, _: &str, failure: Failure<AtomicUsize>) -> TestError {
        match failure {
            Failure::TimedOut { bound, progress } => TestError::TimedOut {
                bound,
                fetch: progress.map(|p| p.load(Ordering::SeqCst)),
            },
            Failure::Vanished { times } => TestError::Vanished(times),
            Failure::Panicked(message) => TestError::Panicked(message),
        }
    }

    /// The cache's events reach the log as they do from the credential (the span test).
    fn observe(&self, scope: &str, event: Event<'_, Self>) {
        let what = match event {
            Event::Refreshing { .. } => "refreshing",
            Event::Acquired { .. } => "acquired",
            Event::Failed { .. } => "failed",
            Event::ServedStale { .. } => "served stale",
        };
        tracing::info!(scopes = %scope, "{what}");
    }
}

async fn get_token(cache: &TokenCache<TestSource>, scope: &str) -> Outcome {
    cache.get_token(scope, ()).await
}

/// No jitter, so schedules are exact.
fn policy() -> RefreshPolicy {
    RefreshPolicy {
        max_jitter: Duration::ZERO,
        ..RefreshPolicy::default()
    }
}

struct Fixture {
    clock: Arc<ManualClock>,
    source: Arc<TestSource>,
    cache: TokenCache<TestSource>,
}

fn fixture_with(behaviour: Behaviour, policy: RefreshPolicy, random: fn() -> f64) -> Fixture {
    let clock = Arc::new(ManualClock::new(T0));
    let source = TestSource::new(Arc::clone(&clock), behaviour);
    let mut cache = TokenCache::new(source.clone(), policy, clock.clone());
    Arc::get_mut(&mut cache.inner).expect("fresh cache").random = random;
    Fixture {
        clock,
        source,
        cache,
    }
}

fn fixture(behaviour: Behaviour) -> Fixture {
    fixture_with(behaviour, policy(), || 0.0)
}

impl Fixture {
    async fn get(&self) -> Outcome {
        get_token(&self.cache, SCOPE).await
    }
    async fn token(&self) -> String {
        secret(&self.get().await.expect("a token"))
    }
    /// Wait until no attempt is in flight in any slot (background refreshes included).
    async fn settle(&self) {
        loop {
            let pending: Vec<SharedOutcome<TestSource>> = read(&self.cache.inner.slots)
                .values()
                .filter_map(|s| {
                    let slot = read(s);
                    let live = slot.attempt.as_ref().filter(|a| a.alive.strong_count() > 0);
                    live.map(|a| a.outcome.clone())
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            for p in pending {
                let _ = p.await;
            }
            // Let the attempt task finish after sending.
            tokio::task::yield_now().await;
        }
    }
    fn advance(&self, secs: i64) {
        self.clock.advance(Duration::seconds(secs));
    }
}

fn secret(t: &AccessToken) -> String {
    t.token.secret().to_owned()
}

/// Let spawned tasks run (current-thread runtime) without advancing time.
async fn yield_many() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn cold_start_1000_concurrent_callers_make_one_fetch() {
    let f = fixture(ok(Duration::hours(1)));
    f.source.close_gate();
    let callers = join_all((0..1000).map(|_| f.get()));
    let release = async {
        yield_many().await;
        assert_eq!(f.source.fetches(), 1, "all callers joined one attempt");
        f.source.open_gate();
    };
    let (results, ()) = futures::join!(callers, release);
    assert_eq!(results.len(), 1000);
    for r in results {
        assert_eq!(secret(&r.expect("token")), "tok-1");
    }
    assert_eq!(f.source.fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_1000_spawned_callers_on_two_threads_make_one_fetch() {
    let f = fixture(ok(Duration::hours(1)));
    let cache = Arc::new(f.cache);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move { get_token(&cache, SCOPE).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(secret(&t.await.unwrap().expect("token")), "tok-1");
    }
    assert_eq!(f.source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn advisory_window_64_callers_get_cached_token_without_waiting_one_background_fetch() {
    let f = fixture(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-1");
    // 1 h token: refresh_on at 50 min, mandatory at 59 min.
    f.advance(51 * 60);
    f.source.close_gate();
    for i in 0..64 {
        let r = f
            .get()
            .now_or_never()
            .unwrap_or_else(|| panic!("caller {i} waited"));
        assert_eq!(secret(&r.unwrap()), "tok-1");
    }
    yield_many().await;
    assert_eq!(f.source.fetches(), 2, "exactly one background refresh");
    // Still held: more callers are still served at once, no new attempt.
    assert_eq!(
        secret(&f.get().now_or_never().expect("no wait").unwrap()),
        "tok-1"
    );
    assert_eq!(f.source.fetches(), 2);
    f.source.open_gate();
    f.settle().await;
    assert_eq!(f.token().await, "tok-2");
    assert_eq!(f.source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn scope_b_is_served_while_scope_a_fetch_is_held() {
    let f = fixture(ok(Duration::hours(1)));
    assert_eq!(secret(&get_token(&f.cache, "b").await.unwrap()), "tok-1");
    f.source.close_gate();
    let cache = &f.cache;
    let a = async { get_token(cache, "a").await };
    let b = async {
        yield_many().await;
        assert_eq!(f.source.fetches(), 2, "scope A's fetch is held");
        for _ in 0..10 {
            let r = get_token(cache, "b")
                .now_or_never()
                .expect("B never waits for A");
            assert_eq!(secret(&r.unwrap()), "tok-1");
        }
        f.source.open_gate();
    };
    let (a, ()) = futures::join!(a, b);
    assert_eq!(secret(&a.unwrap()), "tok-2");
}

#[tokio::test(start_paused = true)]
async fn endpoint_failing_while_token_valid_gives_zero_errors() {
    let f = fixture(ok(Duration::hours(1)));
    f.token().await;
    f.source.set(Behaviour::Transient);
    f.advance(50 * 60);
    let mut errors = 0;
    // Walk through the advisory and mandatory windows up to expiry, 5 s at a time.
    for _ in 0..(10 * 60 / 5 - 1) {
        f.advance(5);
        for r in join_all((0..8).map(|_| f.get())).await {
            match r {
                Ok(t) => assert_eq!(secret(&t), "tok-1"),
                Err(_) => errors += 1,
            }
        }
        f.settle().await;
    }
    assert_eq!(errors, 0);
    // Refresh kept being tried, never more often than the backoff allows (draw 0: d/2).
    // Advisory: 3005, 3010, 3020, 3040, 3080, 3160, 3320, 3470 (backoff 150 s, capped by the
    // mandatory window at 3540); mandatory: 3540, then every 5 s up to 3595 (11 more).
    assert_eq!(f.source.fetches() - 1, 20, "refresh attempts");
    // Once the endpoint recovers, the next attempt replaces the token.
    f.source.set(ok(Duration::hours(1)));
    f.advance(5);
    f.get().await.unwrap();
    f.settle().await;
    assert_eq!(f.token().await, format!("tok-{}", f.source.fetches()));
}

#[tokio::test(start_paused = true)]
async fn mandatory_window_failure_returns_the_still_valid_token() {
    let f = fixture(ok(Duration::hours(1)));
    f.token().await;
    f.source.set(Behaviour::Permanent);
    f.advance(59 * 60 + 10); // mandatory window, 50 s left
    let results = join_all((0..16).map(|_| f.get())).await;
    for r in results {
        assert_eq!(secret(&r.unwrap()), "tok-1");
    }
    assert_eq!(f.source.fetches(), 2);
    // Backing off (<= 10 s): served at once, no new request.
    f.advance(4);
    assert_eq!(
        secret(&f.get().now_or_never().expect("no wait").unwrap()),
        "tok-1"
    );
    assert_eq!(f.source.fetches(), 2);
    // After expiry with the endpoint still failing: the error, not an expired token.
    f.advance(60);
    let e = f.get().await.unwrap_err();
    assert_eq!(e, TestError::Permanent(3));
    assert_eq!(f.source.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn no_valid_token_all_waiters_get_the_same_error_from_one_fetch() {
    let f = fixture(Behaviour::Transient);
    f.source.close_gate();
    let callers = join_all((0..100).map(|_| f.get()));
    let release = async {
        yield_many().await;
        f.source.open_gate();
    };
    let (results, ()) = futures::join!(callers, release);
    let errors: Vec<TestError> = results.into_iter().map(|r| r.unwrap_err()).collect();
    assert_eq!(f.source.fetches(), 1);
    for e in &errors {
        assert_eq!(*e, TestError::Transient(1));
        assert!(e.is_transient());
    }
    // Remembered for transient_error_ttl (1 s): same error, no request.
    let e = f.get().now_or_never().expect("no wait").unwrap_err();
    assert_eq!(e, TestError::Transient(1));
    assert_eq!(f.source.fetches(), 1);
    // Then the next caller tries again.
    f.advance(1);
    f.source.set(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-2");
}

#[tokio::test(start_paused = true)]
async fn permanent_error_is_remembered_for_its_ttl_then_retried() {
    let f = fixture(Behaviour::Permanent);
    let e = f.get().await.unwrap_err();
    assert!(!e.is_transient());
    assert_eq!(e, TestError::Permanent(1));
    for _ in 0..50 {
        let again = f.get().now_or_never().expect("no wait").unwrap_err();
        assert_eq!(again, e);
    }
    f.advance(4);
    f.get().now_or_never().expect("no wait").unwrap_err();
    assert_eq!(
        f.source.fetches(),
        1,
        "no request within permanent_error_ttl"
    );
    f.advance(1);
    let e2 = f.get().await.unwrap_err();
    assert_eq!(e2, TestError::Permanent(2));
    assert_eq!(f.source.fetches(), 2);
    f.advance(5);
    f.source.set(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-3");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_without_a_valid_token() {
    let f = fixture(Behaviour::Throttled);
    let e = f.get().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::seconds(45)));
    // transient_error_ttl is 1 s, but the server asked for 45 s: no request before that.
    f.advance(44);
    f.get().now_or_never().expect("no wait").unwrap_err();
    assert_eq!(f.source.fetches(), 1, "Retry-After respected");
    f.advance(1);
    f.source.set(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-2");
}

#[tokio::test(start_paused = true)]
async fn dropped_callers_do_not_cancel_the_attempt_or_duplicate_it() {
    let f = fixture(ok(Duration::hours(1)));
    f.source.close_gate();
    {
        let mut callers: Vec<_> = (0..10).map(|_| Box::pin(f.get())).collect();
        for c in &mut callers {
            assert!(
                c.as_mut().now_or_never().is_none(),
                "callers wait on a cold cache"
            );
        }
        yield_many().await;
        assert_eq!(f.source.fetches(), 1);
    } // all callers dropped mid-attempt
    yield_many().await;
    // A new caller joins the attempt still in flight instead of starting another.
    let late = f.get();
    let release = async {
        yield_many().await;
        assert_eq!(f.source.fetches(), 1, "no duplicate attempt");
        f.source.open_gate();
    };
    let (late, ()) = futures::join!(late, release);
    assert_eq!(secret(&late.unwrap()), "tok-1");
    assert_eq!(f.source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn hung_endpoint_times_out_with_an_actionable_transient_error() {
    let f = fixture(Behaviour::Hang);
    let started = tokio::time::Instant::now();
    let results = join_all((0..5).map(|_| f.get())).await;
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(30));
    for r in results {
        // How the exchange words it is tested beside the exchange.
        let e = r.unwrap_err();
        let (bound, fetch) = (Duration::seconds(30), Some(1));
        assert_eq!(e, TestError::TimedOut { bound, fetch });
        assert!(e.is_transient());
    }
    assert_eq!(f.source.fetches(), 1);
    // The slot is free again: after the transient ttl a new attempt starts.
    f.settle().await;
    f.advance(1);
    f.source.set(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-2");
}

#[tokio::test(start_paused = true)]
async fn panicking_source_does_not_leave_the_slot_busy() {
    let f = fixture(Behaviour::Panic);
    let e = f.get().await.unwrap_err();
    let message = "test source panics on fetch 1".to_owned();
    assert_eq!(e, TestError::Panicked(message));
    f.settle().await;
    f.advance(1); // transient_error_ttl
    f.source.set(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-2");
}

#[tokio::test(start_paused = true)]
async fn advisory_backoff_is_respected_and_grows() {
    let f = fixture(ok(Duration::hours(4)));
    f.token().await;
    f.source.set(Behaviour::Transient);
    f.advance(2 * 3600); // half-life: advisory window
    f.token().await;
    f.settle().await;
    assert_eq!(f.source.fetches(), 2);
    // Backoff after failure 1 is drawn from [5 s, 10 s] (random() = 0 here: 5 s).
    f.advance(4);
    f.token().await;
    f.settle().await;
    assert_eq!(f.source.fetches(), 2, "still backing off");
    f.advance(1);
    f.token().await;
    f.settle().await;
    assert_eq!(f.source.fetches(), 3);
    // Failure 2: [10 s, 20 s].
    f.advance(9);
    f.token().await;
    f.settle().await;
    assert_eq!(f.source.fetches(), 3);
    f.advance(1);
    f.token().await;
    f.settle().await;
    assert_eq!(f.source.fetches(), 4);
    // Many failures later the backoff is capped at max_backoff (5 min), never disabled.
    for _ in 0..20 {
        f.advance(5 * 60);
        f.token().await;
        f.settle().await;
    }
    assert_eq!(f.source.fetches(), 24);
    f.source.set(ok(Duration::hours(4)));
    f.advance(5 * 60);
    f.token().await;
    f.settle().await;
    assert_eq!(f.token().await, "tok-25");
}

#[test]
fn backoff_doubles_with_jitter_and_caps() {
    let (b, max) = (Duration::seconds(10), Duration::minutes(5));
    assert_eq!(backoff(b, max, 1, 0.0), Duration::seconds(5));
    assert_eq!(backoff(b, max, 1, 1.0), Duration::seconds(10));
    assert_eq!(backoff(b, max, 2, 0.0), Duration::seconds(10));
    assert_eq!(backoff(b, max, 3, 1.0), Duration::seconds(40));
    assert_eq!(backoff(b, max, 6, 1.0), Duration::minutes(5));
    assert_eq!(backoff(b, max, u32::MAX, 1.0), Duration::minutes(5));
    assert_eq!(backoff(b, max, u32::MAX, 0.0), Duration::seconds(150));
    for _ in 0..1000 {
        let d = backoff(b, max, 2, rand::random());
        assert!(
            d >= Duration::seconds(10) && d <= Duration::seconds(20),
            "{d}"
        );
    }
}

fn refresh_after(
    lifetime: Duration,
    refresh_in: Option<Duration>,
    policy: &RefreshPolicy,
    unit: f64,
) -> Duration {
    schedule(lifetime, refresh_in, policy, unit).0
}

#[test]
fn refresh_in_is_honoured() {
    let p = policy();
    assert_eq!(
        refresh_after(Duration::hours(24), Some(Duration::hours(1)), &p, 0.0),
        Duration::hours(1)
    );
    // Nonsense refresh_in (not shorter than the lifetime, or not positive) falls back.
    assert_eq!(
        refresh_after(Duration::hours(1), Some(Duration::hours(2)), &p, 0.0),
        Duration::minutes(50)
    );
    assert_eq!(
        refresh_after(Duration::hours(1), Some(Duration::ZERO), &p, 0.0),
        Duration::minutes(50)
    );
}

#[test]
fn refresh_on_half_life_for_long_and_short_tokens_else_ten_minutes_before_expiry() {
    let p = policy();
    assert_eq!(
        refresh_after(Duration::hours(24), None, &p, 0.0),
        Duration::hours(12)
    );
    assert_eq!(
        refresh_after(Duration::hours(2), None, &p, 0.0),
        Duration::hours(1)
    );
    assert_eq!(
        refresh_after(Duration::hours(1), None, &p, 0.0),
        Duration::minutes(50)
    );
    assert_eq!(
        refresh_after(Duration::minutes(20), None, &p, 0.0),
        Duration::minutes(10)
    );
    assert_eq!(
        refresh_after(Duration::minutes(10), None, &p, 0.0),
        Duration::minutes(5)
    );
    // Short tokens: margin is a quarter of the lifetime, so the advisory window exists.
    let (refresh_after, mandatory_after) = schedule(Duration::minutes(2), None, &p, 0.0);
    assert_eq!(
        (refresh_after, mandatory_after),
        (Duration::minutes(1), Duration::seconds(90))
    );
    let (_, mandatory_after) = schedule(Duration::hours(1), None, &p, 0.0);
    assert_eq!(mandatory_after, Duration::minutes(59));
}

#[test]
fn jitter_stays_within_max_jitter_and_five_percent_of_lifetime() {
    let p = RefreshPolicy::default();
    assert_eq!(
        refresh_after(Duration::hours(1), None, &p, 1.0),
        Duration::minutes(50) - Duration::seconds(30)
    );
    assert_eq!(
        refresh_after(Duration::hours(1), None, &p, 0.0),
        Duration::minutes(50)
    );
    // 2 min token: jitter at most 6 s, not 30 s.
    assert_eq!(
        refresh_after(Duration::minutes(2), None, &p, 1.0),
        Duration::seconds(54)
    );
    for _ in 0..1000 {
        let d = refresh_after(Duration::hours(1), None, &p, rand::random());
        assert!(
            d > Duration::minutes(50) - Duration::seconds(30) && d <= Duration::minutes(50),
            "{d}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_in_drives_the_cache() {
    let f = fixture(Behaviour::Ok {
        lifetime: Duration::hours(24),
        refresh_in: Some(Duration::hours(1)),
    });
    f.token().await;
    f.advance(59 * 60);
    f.token().await;
    f.settle().await;
    assert_eq!(f.source.fetches(), 1);
    f.advance(2 * 60);
    assert_eq!(f.token().await, "tok-1", "advisory: cached token served");
    f.settle().await;
    assert_eq!(f.source.fetches(), 2);
    assert_eq!(f.token().await, "tok-2");
}

#[tokio::test(start_paused = true)]
async fn one_slot_per_scope_string() {
    let f = fixture(ok(Duration::hours(1)));
    let a = get_token(&f.cache, "s1").await.unwrap();
    let b = get_token(&f.cache, "s1").await.unwrap();
    let c = get_token(&f.cache, "s2").await.unwrap();
    assert_eq!(
        [secret(&a), secret(&b), secret(&c)],
        ["tok-1", "tok-1", "tok-2"]
    );
    assert_eq!(
        *f.source.scopes_seen.lock().unwrap(),
        vec![vec!["s1".to_owned()], vec!["s2".to_owned()]],
        "the source is asked for exactly the cached scope"
    );
    assert!(f.cache.try_hit("s1").is_some());
    assert!(
        f.cache.try_hit("S1").is_none(),
        "scopes are compared as given"
    );
    assert_eq!(read(&f.cache.inner.slots).len(), 2);
}

#[test]
fn cache_is_built_without_a_runtime() {
    let f = fixture(ok(Duration::hours(1)));
    assert!(f.cache.status().is_empty(), "built, nothing fetched");
}

#[test]
fn a_call_outside_any_runtime_does_not_leave_the_slot_busy() {
    let f = fixture(ok(Duration::hours(1)));
    // With azure_core's tokio runtime, spawning outside a tokio runtime panics.
    let first = std::panic::catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(f.get())));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token = f.get().await.expect("the next caller gets a token");
        match first {
            Ok(first) => assert_eq!(secret(&first.unwrap()), secret(&token)),
            Err(_) => assert_eq!(secret(&token), "tok-1"),
        }
        assert_eq!(f.source.fetches(), 1);
    });
}

#[tokio::test(start_paused = true)]
async fn a_caller_waits_at_most_attempt_timeout() {
    let p = RefreshPolicy {
        attempt_timeout: Duration::seconds(3),
        ..policy()
    };
    let f = fixture_with(Behaviour::Hang, p, || 0.0);
    let started = tokio::time::Instant::now();
    let e = f.get().await.unwrap_err();
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(3));
    let (bound, fetch) = (Duration::seconds(3), Some(1));
    assert_eq!(e, TestError::TimedOut { bound, fetch });
}

// -----------------------------------------------------------------------------------------
// Data-driven refresh scenarios: tests/data/cache/refresh-scenarios.json, one test per case.

const SCENARIOS: &str = include_str!("../../tests/data/cache/refresh-scenarios.json");

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    policy: PolicySecs,
    /// What the source does before the first step says otherwise.
    source: SourceSpec,
    steps: Vec<Step>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicySecs {
    mandatory_margin_secs: Option<i64>,
    attempt_timeout_secs: Option<i64>,
    failure_backoff_secs: Option<i64>,
    max_backoff_secs: Option<i64>,
    permanent_error_ttl_secs: Option<i64>,
    transient_error_ttl_secs: Option<i64>,
    /// Jitter is 0 unless a case sets it (with `random` pinning the draw).
    max_jitter_secs: Option<i64>,
    /// The jitter draw in [0, 1] (default 0).
    random: Option<f64>,
}

#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SourceSpec {
    Ok {
        lifetime_secs: i64,
        refresh_in_secs: Option<i64>,
    },
    Transient,
    Permanent,
    Hang,
}

impl SourceSpec {
    fn behaviour(self) -> Behaviour {
        match self {
            SourceSpec::Ok {
                lifetime_secs,
                refresh_in_secs,
            } => Behaviour::Ok {
                lifetime: Duration::seconds(lifetime_secs),
                refresh_in: refresh_in_secs.map(Duration::seconds),
            },
            SourceSpec::Transient => Behaviour::Transient,
            SourceSpec::Permanent => Behaviour::Permanent,
            SourceSpec::Hang => Behaviour::Hang,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// Move the clock before the callers arrive.
    #[serde(default)]
    advance_secs: i64,
    /// Change what the source does from this step on.
    source: Option<SourceSpec>,
    /// Concurrent callers (default 1).
    #[serde(default = "one")]
    callers: usize,
    expect: Expect,
}

fn one() -> usize {
    1
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Total fetches so far, after background refreshes have settled.
    fetches: usize,
    outcome: ExpectedOutcome,
    /// The token every caller gets (`tok-N` is fetch N's).
    token: Option<String>,
    /// The category every caller's error has (Debug name).
    error_category: Option<String>,
    /// Whether that error is transient.
    transient: Option<bool>,
    /// Every caller is answered without waiting (polled once).
    #[serde(default)]
    immediate: bool,
}

#[derive(serde::Deserialize, Debug, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ExpectedOutcome {
    /// The token callers had before this step.
    Cached,
    /// A token other than the one callers had before this step (fetched by this step's
    /// attempt or by an earlier background refresh).
    New,
    /// An error, the same for every caller.
    Error,
}

async fn run_scenario(name: &str) {
    let all: Vec<Scenario> =
        serde_json::from_str(SCENARIOS).expect("refresh-scenarios.json parses");
    let case = all
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no scenario named {name}"));
    let d = RefreshPolicy::default();
    let secs = |v: Option<i64>, default: Duration| v.map(Duration::seconds).unwrap_or(default);
    let p = &case.policy;
    let policy = RefreshPolicy {
        mandatory_margin: secs(p.mandatory_margin_secs, d.mandatory_margin),
        attempt_timeout: secs(p.attempt_timeout_secs, d.attempt_timeout),
        failure_backoff: secs(p.failure_backoff_secs, d.failure_backoff),
        max_backoff: secs(p.max_backoff_secs, d.max_backoff),
        permanent_error_ttl: secs(p.permanent_error_ttl_secs, d.permanent_error_ttl),
        transient_error_ttl: secs(p.transient_error_ttl_secs, d.transient_error_ttl),
        max_jitter: secs(p.max_jitter_secs, Duration::ZERO),
        ..d.clone()
    };
    let random: fn() -> f64 = match p.random.unwrap_or(0.0) {
        0.0 => || 0.0,
        0.5 => || 0.5,
        1.0 => || 1.0,
        r => panic!("{name}: random must be 0, 0.5 or 1, not {r}"),
    };
    let f = fixture_with(case.source.behaviour(), policy, random);
    let mut previous: Option<String> = None;
    for (i, step) in case.steps.iter().enumerate() {
        let at = format!("{name}, step {i}");
        f.advance(step.advance_secs);
        if let Some(s) = step.source {
            f.source.set(s.behaviour());
        }
        let results: Vec<Outcome> = if step.expect.immediate {
            (0..step.callers)
                .map(|c| {
                    f.get()
                        .now_or_never()
                        .unwrap_or_else(|| panic!("{at}: caller {c} had to wait"))
                })
                .collect()
        } else {
            join_all((0..step.callers).map(|_| f.get())).await
        };
        f.settle().await;
        let e = &step.expect;
        assert_eq!(f.source.fetches(), e.fetches, "{at}: total fetches");
        match e.outcome {
            ExpectedOutcome::Cached | ExpectedOutcome::New => {
                let tokens: Vec<String> =
                    results
                        .iter()
                        .map(|r| {
                            secret(r.as_ref().unwrap_or_else(|err| {
                                panic!("{at}: expected a token, got {err:?}")
                            }))
                        })
                        .collect();
                let first = tokens[0].clone();
                assert!(
                    tokens.iter().all(|t| *t == first),
                    "{at}: callers got different tokens {tokens:?}"
                );
                if e.outcome == ExpectedOutcome::Cached {
                    assert_eq!(
                        Some(&first),
                        previous.as_ref(),
                        "{at}: expected the cached token"
                    );
                } else {
                    assert_ne!(
                        Some(&first),
                        previous.as_ref(),
                        "{at}: expected a new token"
                    );
                }
                if let Some(t) = &e.token {
                    assert_eq!(&first, t, "{at}: token");
                }
                previous = Some(first);
            }
            ExpectedOutcome::Error => {
                let errors: Vec<&TestError> = results
                    .iter()
                    .map(|r| {
                        r.as_ref()
                            .err()
                            .unwrap_or_else(|| panic!("{at}: expected an error, got a token"))
                    })
                    .collect();
                let first = errors[0];
                assert!(
                    errors.iter().all(|x| *x == first),
                    "{at}: callers got different errors"
                );
                if let Some(c) = &e.error_category {
                    assert_eq!(
                        &format!("{:?}", first.category()),
                        c,
                        "{at}: error category ({first:?})"
                    );
                }
                if let Some(t) = e.transient {
                    assert_eq!(first.is_transient(), t, "{at}: transient ({first:?})");
                }
                assert!(
                    e.token.is_none(),
                    "{at}: `token` makes no sense with outcome error"
                );
            }
        }
    }
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $name() {
                run_scenario(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_scenario_has_a_test() {
            let listed = [$(stringify!($name)),*];
            let all: Vec<Scenario> = serde_json::from_str(SCENARIOS).expect("refresh-scenarios.json parses");
            let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, listed, "the scenarios! list must name every case of refresh-scenarios.json, in order");
        }
    };
}

mod scenario {
    use super::*;

    scenarios!(
        cold_start_fetches_once_then_hits,
        fresh_token_is_served_without_fetch,
        advisory_window_serves_cached_and_refreshes_in_background,
        advisory_refresh_failure_keeps_token_and_backs_off,
        advisory_backoff_never_extends_into_mandatory_window,
        mandatory_window_waits_for_new_token,
        mandatory_window_failure_serves_valid_token,
        expired_token_and_failing_endpoint_give_error,
        transient_error_without_token_retried_after_ttl,
        permanent_error_remembered_for_ttl,
        hung_endpoint_times_out,
        hung_background_refresh_keeps_serving_cached,
        refresh_in_honoured,
        long_token_refreshes_at_half_life,
        short_token_refreshes_at_half_life,
        jitter_moves_refresh_earlier,
        jitter_capped_for_short_tokens,
        recovery_after_outage,
    );
}

// -----------------------------------------------------------------------------------------------
// Issue 11: held tokens, bounded slots, the caller's span (policy validation: tests/it/credential.rs).

#[tokio::test(start_paused = true)]
async fn a_caller_holding_a_valid_token_waits_at_most_its_remaining_lifetime_minus_a_margin() {
    let f = fixture(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-1");
    f.source.set(Behaviour::Hang);
    // Mandatory window; the cached token is valid for 20 more seconds.
    f.advance(3600 - 20);
    let started = tokio::time::Instant::now();
    assert_eq!(
        f.token().await,
        "tok-1",
        "served the held token, not an error"
    );
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(15));
    assert_eq!(f.source.fetches(), 2);
    assert_eq!(
        super::policy::wait_bound(Duration::seconds(20), Duration::seconds(30)),
        Duration::seconds(15)
    );
    assert_eq!(
        super::policy::wait_bound(Duration::seconds(4), Duration::seconds(30)),
        Duration::seconds(2)
    );
    assert_eq!(
        super::policy::wait_bound(Duration::minutes(5), Duration::seconds(30)),
        Duration::seconds(30)
    );
    assert_eq!(
        super::policy::wait_bound(Duration::seconds(-1), Duration::seconds(30)),
        Duration::ZERO
    );
}

#[tokio::test(start_paused = true)]
async fn slots_are_bounded_and_slots_without_a_token_go_first() {
    let f = fixture(ok(Duration::hours(1)));
    assert_eq!(f.token().await, "tok-1");
    f.source.set(Behaviour::Permanent);
    for i in 0..1000 {
        let scope = format!("app-{i}/.default");
        assert!(get_token(&f.cache, scope.as_str()).await.is_err());
    }
    let slots = read(&f.cache.inner.slots).len();
    assert!(slots <= super::MAX_SLOTS, "{slots} slots");
    // The scope with a valid token was kept, and is still served without a request.
    let fetches = f.source.fetches();
    assert_eq!(f.token().await, "tok-1");
    assert_eq!(f.source.fetches(), fetches);
}

#[tokio::test(start_paused = true)]
async fn a_spawned_attempt_keeps_the_callers_span_and_scoped_subscriber() {
    use tracing_subscriber::layer::SubscriberExt as _;
    /// (event target, name of the span the event is in)
    type Events = Vec<(String, Option<String>)>;
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Events>>);
    impl<S> tracing_subscriber::Layer<S> for Seen
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let span = ctx.event_span(event).map(|s| s.name().to_owned());
            self.0
                .lock()
                .unwrap()
                .push((event.metadata().target().to_owned(), span));
        }
    }
    let f = fixture(ok(Duration::hours(1)));
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(seen.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    async {
        assert_eq!(f.token().await, "tok-1");
        // An advisory refresh: spawned, and the caller returns at once.
        f.advance(51 * 60);
        assert_eq!(f.token().await, "tok-1");
    }
    .instrument(tracing::info_span!("caller"))
    .await;
    f.settle().await;
    yield_many().await;
    let events = seen.0.lock().unwrap().clone();
    let refreshes: Vec<_> = events
        .iter()
        .filter(|(t, _)| t.starts_with("azure_identity_k8s::cache"))
        .collect();
    assert!(refreshes.len() >= 4, "{events:?}");
    assert!(
        refreshes
            .iter()
            .all(|(_, span)| span.as_deref() == Some("caller")),
        "{events:?}"
    );
}
