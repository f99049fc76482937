//! Per-scope access-token cache: refresh-ahead, single-flight, static stability.
//!
//! # Semantics
//!
//! The cache keeps one *slot* per normalized scope set (order and duplicates do not matter:
//! `["b", "a", "a"]` and `["a", "b"]` share a slot). Each cached token has three instants:
//!
//! * `refresh_on`: Entra's `refresh_in` after the fetch when it sent one (and it is shorter than
//!   the lifetime); else half the lifetime for tokens of 2 h or more and for tokens shorter than
//!   20 min; else 10 minutes before expiry. A random jitter in `[0, max_jitter]`, capped at 5 % of
//!   the lifetime, is subtracted so a fleet started together does not refresh together.
//! * `mandatory_at`: `expires_on - mandatory_margin` (default 60 s); for tokens shorter than four
//!   margins the margin is a quarter of the lifetime, so short tokens still have an advisory window.
//! * `expires_on`: as the token endpoint said.
//!
//! A call to [`TokenCache::get_token`] then behaves as follows.
//!
//! * **Fresh** (`now < refresh_on`): the cached token is cloned and returned. This path takes two
//!   uncontended read locks, allocates nothing but the clone, logs nothing and never waits.
//! * **Advisory window** (`refresh_on <= now < mandatory_at`): the cached token is returned at
//!   once; if no attempt is in flight and the slot is not backing off after a failure, one
//!   background refresh is spawned on azure_core's async runtime. No caller waits for it.
//! * **Mandatory window** (`mandatory_at <= now`) **or no token**: callers join the slot's single
//!   in-flight attempt (starting it if there is none) and all receive its outcome. If the attempt
//!   fails while the cached token is still valid (`now < expires_on`), the cached token is returned
//!   (and a warning logged). A caller never waits longer than
//!   [`RefreshPolicy::attempt_timeout`] (default 30 s).
//!
//! Every attempt runs as a spawned task bounded by `attempt_timeout`, so a caller that drops its
//! future (cancellation, a caller-side timeout) never aborts or poisons the shared attempt, and a
//! hung endpoint cannot keep a slot busy: the attempt then fails with a transient
//! [`ErrorCategory::Timeout`] error. Slots are independent: callers for scope B never wait for an
//! attempt for scope A.
//!
//! # Failures
//!
//! A failed refresh never replaces a still-valid token. After a failure the slot records the error
//! and the time of the next allowed attempt:
//!
//! * token valid, before the mandatory window: jittered exponential backoff (`failure_backoff`
//!   doubling per consecutive failure up to `max_backoff`, each delay drawn from `[d/2, d]`), but
//!   never later than `mandatory_at`; callers keep receiving the cached token meanwhile;
//! * token valid, in the mandatory window: the same backoff capped at `failure_backoff` and never
//!   later than `expires_on`, so there are several more tries before the token expires; callers
//!   arriving during the backoff receive the cached token without waiting;
//! * no valid token, permanent error (4xx such as a rejected assertion): the error is returned to
//!   every new caller for `permanent_error_ttl` (default 5 s) without a new request, so a crowd of
//!   callers cannot trip Entra's loop detection (AADSTS50196);
//! * no valid token, transient error (5xx, 408, 429, transport, time-out): the same, for the short
//!   `transient_error_ttl` (default 1 s), after which the next caller starts a new attempt.
//!
//! Refreshing is never disabled: every backoff ends, and the next caller after it tries again. A
//! success clears the failure state.

use crate::clock::Clock;
use crate::error::{CredentialError, ErrorCategory};
use azure_core::async_runtime::get_async_runtime;
use azure_core::credentials::AccessToken;
use azure_core::time::Duration;
use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{Either, Shared, select};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use time::OffsetDateTime;

/// A freshly acquired token, as the exchange returns it.
#[derive(Debug)]
pub(crate) struct FetchedToken {
    /// The token; `expires_on` already absolute (computed with the credential's clock).
    pub(crate) token: AccessToken,
    /// Entra's `refresh_in`, when it sent one.
    pub(crate) refresh_in: Option<Duration>,
}

/// Where the cache gets tokens from (the Entra exchange, or a test double).
#[async_trait::async_trait]
pub(crate) trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// Acquire a new token for `scopes` (already validated and normalized).
    async fn fetch(&self, scopes: &[String]) -> Result<FetchedToken, CredentialError>;
}

/// How and when cached tokens are refreshed. All fields have defaults; build one with struct
/// update syntax, e.g. `RefreshPolicy { attempt_timeout: Duration::seconds(10), ..Default::default() }`.
///
/// The credential caches one token per scope and refreshes it ahead of expiry:
///
/// * it starts refreshing at Entra's `refresh_in` when sent, else at half the lifetime for tokens
///   of 2 h or more (and for tokens under 20 min), else 10 minutes before expiry, minus a random
///   jitter of up to `max_jitter` (at most 5 % of the lifetime);
/// * until `mandatory_margin` before expiry, callers get the cached token at once while one
///   background refresh runs; below the margin, or with no token, callers share one attempt and
///   wait at most `attempt_timeout` (30 s by default, instead of the 80+ s of azure_core's default
///   retry policy);
/// * a failed refresh never replaces a still-valid token: the valid token keeps being served and
///   refreshing is retried after a jittered exponential backoff (`failure_backoff` up to
///   `max_backoff`); it is never given up;
/// * with no valid token, every waiting caller gets the same error; that error is then returned to
///   new callers without a new request for `permanent_error_ttl` (4xx) or `transient_error_ttl`
///   (5xx, 408, 429, transport, time-out), so a crowd cannot hammer Entra.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Below this much remaining lifetime a cached token is no longer handed out without first
    /// trying to refresh it: callers wait for (one shared) refresh attempt, and still receive the
    /// cached token if that attempt fails. For tokens shorter than four margins, a quarter of the
    /// lifetime is used instead. Default 60 s.
    pub mandatory_margin: Duration,
    /// Upper bound on one refresh attempt (the whole exchange, including its HTTP retries) and on
    /// how long a caller waits for one. An attempt that takes longer is abandoned and fails with a
    /// transient [`ErrorCategory::Timeout`] error. Must be positive. Default 30 s.
    pub attempt_timeout: Duration,
    /// Base delay before the next attempt after a failed refresh while a valid token is cached
    /// (doubled per consecutive failure up to `max_backoff`, each delay drawn at random from
    /// `[d/2, d]`). Default 10 s.
    pub failure_backoff: Duration,
    /// Ceiling of the backoff. Default 5 minutes.
    pub max_backoff: Duration,
    /// With no valid token cached, how long a permanent (4xx) failure is remembered and returned
    /// to new callers without a new request, so a crowd cannot hammer Entra. Default 5 s.
    pub permanent_error_ttl: Duration,
    /// With no valid token cached, how long a transient failure (5xx, 408, 429, transport,
    /// time-out) is remembered and returned to new callers before the next caller may start a new
    /// attempt. Default 1 s.
    pub transient_error_ttl: Duration,
    /// Maximum random jitter subtracted from the refresh time (never more than 5 % of the token's
    /// lifetime). Default 30 s.
    pub max_jitter: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            mandatory_margin: Duration::seconds(60),
            attempt_timeout: Duration::seconds(30),
            failure_backoff: Duration::seconds(10),
            max_backoff: Duration::minutes(5),
            permanent_error_ttl: Duration::seconds(5),
            transient_error_ttl: Duration::seconds(1),
            max_jitter: Duration::seconds(30),
        }
    }
}

/// The outcome of one attempt, as every waiter receives it.
type Outcome = Result<AccessToken, CredentialError>;

/// The cache. One slot per normalized scope set.
pub(crate) struct TokenCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    source: Arc<dyn TokenSource>,
    policy: RefreshPolicy,
    clock: Arc<dyn Clock>,
    slots: RwLock<HashMap<ScopeKey, Arc<Slot>, BuildHasherDefault<PassThroughHasher>>>,
    /// Uniform random number in `[0, 1)` for jitter (replaceable in tests).
    random: fn() -> f64,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &self.inner.source)
            .field("policy", &self.inner.policy)
            .field("slots", &read(&self.inner.slots).len())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub(crate) fn new(
        source: Arc<dyn TokenSource>,
        policy: RefreshPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                source,
                policy,
                clock,
                slots: RwLock::new(HashMap::default()),
                random: rand::random::<f64>,
            }),
        }
    }

    /// The hit path, synchronously: `Some` when the answer is known without waiting (a fresh or
    /// servable cached token, or a remembered error), `None` when the caller must go through
    /// [`get_token`](Self::get_token). Lets the credential answer a hit without building the
    /// (large) future of the slow path.
    pub(crate) fn try_hit(&self, scopes: &[&str]) -> Option<Result<AccessToken, CredentialError>> {
        let now = self.inner.clock.now();
        let slots = read(&self.inner.slots);
        let slot = slots.get(&Query(scopes) as &dyn ScopeSet)?;
        read(&slot.state).serve(now)
    }

    /// Return a valid token for `scopes` (already validated; normalization is the cache's job).
    pub(crate) async fn get_token(&self, scopes: &[&str]) -> Result<AccessToken, CredentialError> {
        let now = self.inner.clock.now();
        let slot = {
            let slots = read(&self.inner.slots);
            match slots.get(&Query(scopes) as &dyn ScopeSet) {
                Some(slot) => {
                    // Hit path: read locks only, nothing allocated but the returned clone.
                    if let Some(outcome) = read(&slot.state).serve(now) {
                        return outcome;
                    }
                    Arc::clone(slot)
                }
                None => {
                    drop(slots);
                    self.inner.slot_for(scopes)
                }
            }
        };
        CacheInner::get_slow(&self.inner, &slot, now).await
    }
}

impl CacheInner {
    /// The slot for `scopes`, created on first use.
    fn slot_for(&self, scopes: &[&str]) -> Arc<Slot> {
        let key = ScopeKey::new(scopes);
        let mut slots = write(&self.slots);
        Arc::clone(
            slots
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Slot::new(key))),
        )
    }

    /// Everything but a plain hit: maybe start an attempt, maybe wait for one.
    async fn get_slow(this: &Arc<Self>, slot: &Arc<Slot>, now: OffsetDateTime) -> Outcome {
        let attempt = {
            let mut state = write(&slot.state);
            // Re-check: another caller may have changed the state since the read lock.
            if let Some(outcome) = state.serve(now) {
                return outcome;
            }
            match &state.attempt {
                Some(in_flight) => in_flight.outcome.clone(),
                None => {
                    let advisory = state
                        .cached
                        .as_ref()
                        .filter(|c| now < c.mandatory_at)
                        .map(|c| c.token.clone());
                    let reason = match (&advisory, &state.cached) {
                        (Some(_), _) => "advisory",
                        (None, Some(c)) if now < c.token.expires_on => "mandatory",
                        (None, Some(_)) => "expired",
                        (None, None) => "miss",
                    };
                    let outcome = Self::start_attempt(this, slot, &mut state, reason);
                    if let Some(token) = advisory {
                        // Advisory window: the refresh runs in the background.
                        return Ok(token);
                    }
                    outcome
                }
            }
        };
        this.wait(slot, attempt).await
    }

    /// Spawn the slot's single attempt. The caller holds the slot's write lock and has checked
    /// that no attempt is in flight.
    fn start_attempt(
        this: &Arc<Self>,
        slot: &Arc<Slot>,
        state: &mut SlotState,
        reason: &'static str,
    ) -> SharedOutcome {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let outcome = rx.shared();
        state.attempt = Some(InFlight {
            id,
            outcome: outcome.clone(),
        });
        let task = AttemptTask {
            cache: Arc::clone(this),
            slot: Arc::clone(slot),
            id,
            reason,
        };
        let future = Box::pin(task.run(tx));
        // Spawning panics when there is no runtime to spawn on (tokio's, outside a runtime): leave
        // the slot free for the next caller, then let the panic continue.
        match std::panic::catch_unwind(AssertUnwindSafe(|| get_async_runtime().spawn(future))) {
            // Detached: dropping the handle does not abort the task.
            Ok(handle) => drop(handle),
            Err(panic) => {
                state.attempt = None;
                std::panic::resume_unwind(panic);
            }
        }
        outcome
    }

    /// Wait (bounded) for an attempt's outcome; fall back to a still-valid cached token.
    async fn wait(&self, slot: &Slot, attempt: SharedOutcome) -> Outcome {
        let timeout = get_async_runtime().sleep(non_negative(self.policy.attempt_timeout));
        let error = match select(attempt, timeout).await {
            Either::Left((Ok(outcome), _)) => return outcome,
            Either::Left((Err(oneshot::Canceled), _)) => CredentialError::new(
                ErrorCategory::Transport,
                format!(
                    "WorkloadIdentityCredential: the token request for scope {} ended without a \
                     result (the async runtime is shutting down, or the request task panicked); \
                     try again. See docs/troubleshooting.md#transport",
                    slot.key.display
                ),
            ),
            Either::Right(((), _)) => timeout_error(self.policy.attempt_timeout),
        };
        let now = self.clock.now();
        if let Some(token) = read(&slot.state).valid_token(now) {
            tracing::warn!(scopes = %slot.key.display, error = %error, "token refresh did not complete; serving the cached token, which is still valid");
            return Ok(token);
        }
        Err(error)
    }
}

/// The error of an attempt that outlived `attempt_timeout`.
fn timeout_error(bound: Duration) -> CredentialError {
    CredentialError::new(
        ErrorCategory::Timeout,
        format!(
            "WorkloadIdentityCredential: the token endpoint did not answer within {} s (the whole \
             attempt, retries included). Check network access to the authority host; if it is just \
             slow, raise the bound with RefreshPolicy::attempt_timeout \
             (WorkloadIdentityCredentialOptions::refresh_policy). See docs/troubleshooting.md#timeout",
            bound.as_seconds_f64()
        ),
    )
}

/// One spawned attempt.
struct AttemptTask {
    cache: Arc<CacheInner>,
    slot: Arc<Slot>,
    id: u64,
    reason: &'static str,
}

/// Clears the slot's in-flight marker if the attempt task is dropped before it completes
/// (runtime shutdown, a panicking token source), so the slot never stays busy forever.
struct ClearOnDrop<'a> {
    slot: &'a Slot,
    id: u64,
    armed: bool,
}

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = write(&self.slot.state);
            if state.attempt.as_ref().is_some_and(|a| a.id == self.id) {
                state.attempt = None;
            }
        }
    }
}

impl AttemptTask {
    async fn run(self, tx: oneshot::Sender<Outcome>) {
        let mut guard = ClearOnDrop {
            slot: &self.slot,
            id: self.id,
            armed: true,
        };
        let cache = &self.cache;
        let policy = &cache.policy;
        let started = cache.clock.now();
        tracing::debug!(scopes = %self.slot.key.display, reason = self.reason, "refreshing access token");
        let fetch = cache.source.fetch(&self.slot.key.scopes);
        let timeout = get_async_runtime().sleep(non_negative(policy.attempt_timeout));
        let result = match select(fetch, timeout).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => Err(timeout_error(policy.attempt_timeout)),
        };
        let now = cache.clock.now();
        let outcome = {
            let mut state = write(&self.slot.state);
            if state.attempt.as_ref().is_some_and(|a| a.id == self.id) {
                state.attempt = None;
            }
            guard.armed = false;
            match result {
                Ok(fetched) => {
                    let cached = Cached::new(fetched, now, policy, (cache.random)());
                    tracing::info!(
                        scopes = %self.slot.key.display,
                        expires_on = %cached.token.expires_on,
                        refresh_on = %cached.refresh_on,
                        duration_ms = (now - started).whole_milliseconds() as i64,
                        "acquired access token"
                    );
                    state.failures = 0;
                    state.retry_at = None;
                    state.last_error = None;
                    let token = cached.token.clone();
                    state.cached = Some(cached);
                    Ok(token)
                }
                Err(error) => {
                    state.record_failure(error, now, policy, cache.random, &self.slot.key.display)
                }
            }
        };
        // Every waiter gets the same outcome; nobody may be listening any more, which is fine.
        let _ = tx.send(outcome);
    }
}

/// A cached token and its refresh schedule.
struct Cached {
    token: AccessToken,
    /// From here on, one background refresh is started.
    refresh_on: OffsetDateTime,
    /// From here on, callers wait for a refresh attempt. `refresh_on <= mandatory_at`.
    mandatory_at: OffsetDateTime,
}

impl Cached {
    /// Schedule a token fetched at `fetched_at`; `unit` in `[0, 1)` draws the jitter.
    fn new(
        fetched: FetchedToken,
        fetched_at: OffsetDateTime,
        policy: &RefreshPolicy,
        unit: f64,
    ) -> Self {
        let (refresh_on, mandatory_at) = schedule(
            fetched_at,
            fetched.token.expires_on,
            fetched.refresh_in,
            policy,
            unit,
        );
        Self {
            token: fetched.token,
            refresh_on,
            mandatory_at,
        }
    }
}

/// `(refresh_on, mandatory_at)` for a token fetched at `fetched_at`; `unit` in `[0, 1]` scales the
/// jitter (0 = none, 1 = the maximum).
fn schedule(
    fetched_at: OffsetDateTime,
    expires_on: OffsetDateTime,
    refresh_in: Option<Duration>,
    policy: &RefreshPolicy,
    unit: f64,
) -> (OffsetDateTime, OffsetDateTime) {
    let lifetime = (expires_on - fetched_at).max(Duration::ZERO);
    let margin = policy
        .mandatory_margin
        .min(lifetime / 4)
        .max(Duration::ZERO);
    let mandatory_at = expires_on - margin;
    let planned = match refresh_in {
        Some(r) if r > Duration::ZERO && r < lifetime => fetched_at + r,
        _ if lifetime >= Duration::hours(2) || lifetime < Duration::minutes(20) => {
            fetched_at + lifetime / 2
        }
        _ => expires_on - Duration::minutes(10),
    };
    let jitter_cap = policy.max_jitter.min(lifetime / 20).max(Duration::ZERO);
    let refresh_on = (planned - jitter_cap * unit.clamp(0.0, 1.0)).min(mandatory_at);
    (refresh_on, mandatory_at)
}

/// Delay before the next attempt after `failures` consecutive failures: `base` doubled per
/// failure up to `max`, then drawn from `[d/2, d]` by `unit`.
fn backoff(base: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let mut delay = base.max(Duration::ZERO);
    for _ in 1..failures.min(40) {
        delay *= 2;
        if delay >= max {
            break;
        }
    }
    let delay = delay.min(max).max(Duration::ZERO);
    delay / 2 + (delay / 2) * unit.clamp(0.0, 1.0)
}

fn non_negative(d: Duration) -> Duration {
    d.max(Duration::ZERO)
}

type SharedOutcome = Shared<oneshot::Receiver<Outcome>>;

struct InFlight {
    id: u64,
    outcome: SharedOutcome,
}

/// The cache entry for one normalized scope set.
struct Slot {
    key: ScopeKey,
    state: RwLock<SlotState>,
}

impl Slot {
    fn new(key: ScopeKey) -> Self {
        Self {
            key,
            state: RwLock::new(SlotState::default()),
        }
    }
}

#[derive(Default)]
struct SlotState {
    cached: Option<Cached>,
    /// The attempt in flight, if any (at most one per slot).
    attempt: Option<InFlight>,
    /// Consecutive failed attempts.
    failures: u32,
    /// No new attempt before this instant (set after a failure).
    retry_at: Option<OffsetDateTime>,
    /// The latest failure, returned while there is no valid token and `now < retry_at`.
    last_error: Option<CredentialError>,
}

impl SlotState {
    /// The outcome for a caller at `now` when it needs no change to the state: fresh token,
    /// advisory window with a refresh in flight or backing off, mandatory window while backing
    /// off, or a remembered error. `None` when an attempt must be started or joined.
    fn serve(&self, now: OffsetDateTime) -> Option<Outcome> {
        let backing_off = self.attempt.is_none() && self.retry_at.is_some_and(|t| now < t);
        match &self.cached {
            Some(c) if now < c.refresh_on => Some(Ok(c.token.clone())),
            Some(c) if now < c.mandatory_at && (self.attempt.is_some() || backing_off) => {
                Some(Ok(c.token.clone()))
            }
            Some(c) if now < c.token.expires_on && backing_off => Some(Ok(c.token.clone())),
            Some(c) if now < c.token.expires_on => None,
            _ if backing_off => self.last_error.clone().map(Err),
            _ => None,
        }
    }

    /// The cached token if it has not expired at `now`.
    fn valid_token(&self, now: OffsetDateTime) -> Option<AccessToken> {
        self.cached
            .as_ref()
            .filter(|c| now < c.token.expires_on)
            .map(|c| c.token.clone())
    }

    /// Record a failed attempt; the outcome for its waiters (a still-valid token wins).
    fn record_failure(
        &mut self,
        error: CredentialError,
        now: OffsetDateTime,
        policy: &RefreshPolicy,
        random: fn() -> f64,
        scopes: &str,
    ) -> Outcome {
        self.failures = self.failures.saturating_add(1);
        let valid = self.cached.as_ref().filter(|c| now < c.token.expires_on);
        let delay = match valid {
            Some(c) if now < c.mandatory_at => backoff(
                policy.failure_backoff,
                policy.max_backoff,
                self.failures,
                random(),
            )
            .min(c.mandatory_at - now),
            Some(c) => {
                let cap = policy.failure_backoff.min(policy.max_backoff);
                backoff(policy.failure_backoff, cap, self.failures, random())
                    .min(c.token.expires_on - now)
            }
            None if error.is_transient() => policy.transient_error_ttl,
            None => policy.permanent_error_ttl,
        };
        // The server's Retry-After is honoured (up to max_backoff) before the mandatory window,
        // never past its start, and when no valid token exists. In the mandatory window the token
        // is about to expire, so the short backoff above wins.
        let delay = match (error.retry_after(), valid) {
            (Some(after), Some(c)) if now < c.mandatory_at => delay
                .max(after.min(policy.max_backoff))
                .min(c.mandatory_at - now),
            (Some(after), None) => delay.max(after.min(policy.max_backoff)),
            _ => delay,
        };
        let delay = non_negative(delay);
        self.retry_at = Some(now + delay);
        let valid_until = valid.map(|c| c.token.expires_on);
        tracing::warn!(
            scopes = %scopes,
            category = ?error.category(),
            status = ?error.http_status().map(u16::from),
            aadsts = ?error.aadsts_codes(),
            transient = error.is_transient(),
            consecutive_failures = self.failures,
            retry_in_secs = delay.as_seconds_f64(),
            cached_token_valid_until = ?valid_until,
            error = %error,
            "token refresh failed{}",
            if valid_until.is_some() { "; serving the cached token, which is still valid" } else { "" }
        );
        let outcome = match valid {
            Some(c) => Ok(c.token.clone()),
            None => Err(error.clone()),
        };
        self.last_error = Some(error);
        outcome
    }
}

// ---------------------------------------------------------------------------------------------
// Scope-set keys. The map is keyed by the normalized (sorted, deduplicated) scope list, and looked
// up with the caller's `&[&str]` as it is, through `Borrow<dyn ScopeSet>`: both sides hash and
// compare as *sets*, so a hit builds no key and allocates nothing.

/// A set of scopes, seen through its (possibly unsorted, possibly repeating) elements.
trait ScopeSet {
    fn count(&self) -> usize;
    fn scope(&self, i: usize) -> &str;
}

/// The caller's scopes as given.
struct Query<'a, 'b>(&'a [&'b str]);

impl ScopeSet for Query<'_, '_> {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn scope(&self, i: usize) -> &str {
        self.0[i]
    }
}

/// A normalized scope set: sorted, deduplicated.
#[derive(Clone)]
struct ScopeKey {
    scopes: Arc<[String]>,
    /// Space-joined, for logs and messages.
    display: Arc<str>,
}

impl ScopeKey {
    fn new(scopes: &[&str]) -> Self {
        let mut sorted: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let display = sorted.join(" ").into();
        Self {
            scopes: sorted.into(),
            display,
        }
    }
}

impl ScopeSet for ScopeKey {
    fn count(&self) -> usize {
        self.scopes.len()
    }
    fn scope(&self, i: usize) -> &str {
        &self.scopes[i]
    }
}

/// Order- and duplicate-insensitive hash: min and max of the elements' hashes.
impl Hash for dyn ScopeSet + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for i in 0..self.count() {
            let h = scope_hash(self.scope(i));
            lo = lo.min(h);
            hi = hi.max(h);
        }
        state.write_u64(lo ^ hi.rotate_left(31));
    }
}

/// A fast, fixed-key hash of one scope (FxHash-style, 8 bytes at a time). Scopes come from the
/// application, not from an attacker, so HashDoS resistance is not needed here.
fn scope_hash(scope: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = scope.len() as u64;
    let mut chunks = scope.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    // Final avalanche (splitmix64) so the low bits the map uses depend on every byte.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Set equality.
impl PartialEq for dyn ScopeSet + '_ {
    fn eq(&self, other: &Self) -> bool {
        fn all_in(a: &(dyn ScopeSet + '_), b: &(dyn ScopeSet + '_)) -> bool {
            (0..a.count()).all(|i| (0..b.count()).any(|j| a.scope(i) == b.scope(j)))
        }
        all_in(self, other) && all_in(other, self)
    }
}

impl Eq for dyn ScopeSet + '_ {}

impl Hash for ScopeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn ScopeSet).hash(state);
    }
}

impl PartialEq for ScopeKey {
    fn eq(&self, other: &Self) -> bool {
        self.scopes == other.scopes
    }
}

impl Eq for ScopeKey {}

impl<'a> Borrow<dyn ScopeSet + 'a> for ScopeKey {
    fn borrow(&self) -> &(dyn ScopeSet + 'a) {
        self
    }
}

/// The scope-set hash is already well mixed: pass it through instead of hashing it again.
#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use azure_core::http::StatusCode;
    use futures::future::join_all;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);
    const SCOPE: &str = "https://vault.azure.net/.default";

    /// What the test source does on its next fetches (until told otherwise).
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Behaviour {
        Ok {
            lifetime: Duration,
            refresh_in: Option<Duration>,
        },
        Transient,
        /// 429 with `Retry-After: 45`.
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

    #[async_trait::async_trait]
    impl TokenSource for TestSource {
        async fn fetch(&self, scopes: &[String]) -> Result<FetchedToken, CredentialError> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            self.scopes_seen.lock().unwrap().push(scopes.to_vec());
            let behaviour = *self.behaviour.lock().unwrap();
            if self.gated.load(Ordering::SeqCst) {
                self.gate.acquire().await.expect("gate open").forget();
            }
            match behaviour {
                Behaviour::Ok {
                    lifetime,
                    refresh_in,
                } => Ok(FetchedToken {
                    token: AccessToken::new(format!("tok-{n}"), self.clock.now() + lifetime),
                    refresh_in,
                }),
                Behaviour::Transient => Err(CredentialError::new(
                    ErrorCategory::Entra,
                    format!("fetch {n}: 503 from the token endpoint"),
                )
                .with_status(StatusCode::from(503))),
                Behaviour::Throttled => Err(CredentialError::new(
                    ErrorCategory::InvalidResponse,
                    format!("fetch {n}: 429 Retry-After: 45"),
                )
                .with_status(StatusCode::from(429))
                .with_retry_after(Some(Duration::seconds(45)))),
                Behaviour::Permanent => Err(CredentialError::new(
                    ErrorCategory::Entra,
                    format!("fetch {n}: AADSTS70021: no matching federated identity record"),
                )
                .with_status(StatusCode::from(400))
                .with_aadsts(vec![70021])),
                Behaviour::Hang => futures::future::pending().await,
                Behaviour::Panic => panic!("test source panics on fetch {n}"),
            }
        }
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
        cache: TokenCache,
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
            self.cache.get_token(&[SCOPE]).await
        }
        async fn token(&self) -> String {
            secret(&self.get().await.expect("a token"))
        }
        /// Wait until no attempt is in flight in any slot (background refreshes included).
        async fn settle(&self) {
            loop {
                let pending: Vec<SharedOutcome> = read(&self.cache.inner.slots)
                    .values()
                    .filter_map(|s| read(&s.state).attempt.as_ref().map(|a| a.outcome.clone()))
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
                tokio::spawn(async move { cache.get_token(&[SCOPE]).await })
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
        assert_eq!(secret(&f.cache.get_token(&["b"]).await.unwrap()), "tok-1");
        f.source.close_gate();
        let cache = &f.cache;
        let a = async { cache.get_token(&["a"]).await };
        let b = async {
            yield_many().await;
            assert_eq!(f.source.fetches(), 2, "scope A's fetch is held");
            for _ in 0..10 {
                let r = cache
                    .get_token(&["b"])
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
        assert_eq!(e.aadsts_codes(), &[70021]);
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
        let errors: Vec<CredentialError> = results.into_iter().map(|r| r.unwrap_err()).collect();
        assert_eq!(f.source.fetches(), 1);
        for e in &errors {
            assert_eq!(e.message(), "fetch 1: 503 from the token endpoint");
            assert!(e.is_transient());
            assert_eq!(e.http_status(), Some(StatusCode::from(503)));
        }
        // Remembered for transient_error_ttl (1 s): same error, no request.
        let e = f.get().now_or_never().expect("no wait").unwrap_err();
        assert_eq!(e.message(), "fetch 1: 503 from the token endpoint");
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
        assert_eq!(e.aadsts_codes(), &[70021]);
        for _ in 0..50 {
            let again = f.get().now_or_never().expect("no wait").unwrap_err();
            assert_eq!(again.message(), e.message());
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
        assert!(e2.message().starts_with("fetch 2:"), "{}", e2.message());
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
            let e = r.unwrap_err();
            assert_eq!(e.category(), ErrorCategory::Timeout);
            assert!(e.is_transient());
            assert!(
                e.message().contains("did not answer within 30 s"),
                "{}",
                e.message()
            );
            assert!(
                e.message().contains("RefreshPolicy::attempt_timeout"),
                "{}",
                e.message()
            );
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
        assert!(
            e.message().contains("ended without a result"),
            "{}",
            e.message()
        );
        f.settle().await;
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
        schedule(T0, T0 + lifetime, refresh_in, policy, unit).0 - T0
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
        let (refresh_on, mandatory_at) = schedule(T0, T0 + Duration::minutes(2), None, &p, 0.0);
        assert_eq!(
            (refresh_on - T0, mandatory_at - T0),
            (Duration::minutes(1), Duration::seconds(90))
        );
        let (_, mandatory_at) = schedule(T0, T0 + Duration::hours(1), None, &p, 0.0);
        assert_eq!(mandatory_at - T0, Duration::minutes(59));
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
    async fn scope_sets_are_normalized() {
        let f = fixture(ok(Duration::hours(1)));
        let a = f.cache.get_token(&["s2", "s1"]).await.unwrap();
        let b = f.cache.get_token(&["s1", "s2"]).await.unwrap();
        let c = f.cache.get_token(&["s1", "s2", "s1"]).await.unwrap();
        assert_eq!(
            [secret(&a), secret(&b), secret(&c)],
            ["tok-1", "tok-1", "tok-1"]
        );
        assert_eq!(
            *f.source.scopes_seen.lock().unwrap(),
            vec![vec!["s1".to_owned(), "s2".to_owned()]]
        );
        assert_eq!(secret(&f.cache.get_token(&["s1"]).await.unwrap()), "tok-2");
        assert_eq!(
            secret(&f.cache.get_token(&["s2", "s1", "s3"]).await.unwrap()),
            "tok-3"
        );
        assert_eq!(read(&f.cache.inner.slots).len(), 3);
    }

    #[test]
    fn cache_is_built_without_a_runtime() {
        let f = fixture(ok(Duration::hours(1)));
        assert!(format!("{:?}", f.cache).contains("TokenCache"));
    }

    #[test]
    fn a_call_outside_any_runtime_does_not_leave_the_slot_busy() {
        let f = fixture(ok(Duration::hours(1)));
        // With azure_core's tokio runtime, spawning outside a tokio runtime panics.
        let first =
            std::panic::catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(f.get())));
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
        assert!(e.message().contains("within 3 s"), "{}", e.message());
    }

    // -----------------------------------------------------------------------------------------
    // Data-driven refresh scenarios: tests/data/cache/refresh-scenarios.json, one test per case.

    const SCENARIOS: &str = include_str!("../tests/data/cache/refresh-scenarios.json");

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
                    let tokens: Vec<String> = results
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
                    let errors: Vec<&CredentialError> = results
                        .iter()
                        .map(|r| {
                            r.as_ref()
                                .err()
                                .unwrap_or_else(|| panic!("{at}: expected an error, got a token"))
                        })
                        .collect();
                    let first = errors[0];
                    assert!(
                        errors.iter().all(|x| x.message() == first.message()),
                        "{at}: callers got different errors"
                    );
                    if let Some(c) = &e.error_category {
                        assert_eq!(
                            &format!("{:?}", first.category()),
                            c,
                            "{at}: error category ({first})"
                        );
                    }
                    if let Some(t) = e.transient {
                        assert_eq!(first.is_transient(), t, "{at}: transient ({first})");
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
}
