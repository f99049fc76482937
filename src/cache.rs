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
/// In short: a caller never waits on the network while the cached token is valid for longer than
/// `mandatory_margin`; below it (or with no token) callers share one attempt and wait at most
/// `attempt_timeout`. A failed refresh never replaces a valid token. See the `cache` module
/// documentation in the source for the full rules.
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
    pub(crate) fn new(source: Arc<dyn TokenSource>, policy: RefreshPolicy, clock: Arc<dyn Clock>) -> Self {
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
        Arc::clone(slots.entry(key.clone()).or_insert_with(|| Arc::new(Slot::new(key))))
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
                    let advisory = state.cached.as_ref().filter(|c| now < c.mandatory_at).map(|c| c.token.clone());
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
    fn start_attempt(this: &Arc<Self>, slot: &Arc<Slot>, state: &mut SlotState, reason: &'static str) -> SharedOutcome {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let outcome = rx.shared();
        state.attempt = Some(InFlight { id, outcome: outcome.clone() });
        let task = AttemptTask { cache: Arc::clone(this), slot: Arc::clone(slot), id, reason };
        // Detached: dropping the handle does not abort the task.
        drop(get_async_runtime().spawn(Box::pin(task.run(tx))));
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
                    "the token refresh for scopes '{}' ended without a result (the async runtime is shutting down or the token source panicked); try again",
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
            "the token endpoint did not answer within {} s; if it is just slow, raise the bound with \
             RefreshPolicy::attempt_timeout (WorkloadIdentityCredentialOptions::refresh_policy)",
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
        let mut guard = ClearOnDrop { slot: &self.slot, id: self.id, armed: true };
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
                Err(error) => state.record_failure(error, now, policy, cache.random, &self.slot.key.display),
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
    fn new(fetched: FetchedToken, fetched_at: OffsetDateTime, policy: &RefreshPolicy, unit: f64) -> Self {
        let (refresh_on, mandatory_at) = schedule(fetched_at, fetched.token.expires_on, fetched.refresh_in, policy, unit);
        Self { token: fetched.token, refresh_on, mandatory_at }
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
    let margin = policy.mandatory_margin.min(lifetime / 4).max(Duration::ZERO);
    let mandatory_at = expires_on - margin;
    let planned = match refresh_in {
        Some(r) if r > Duration::ZERO && r < lifetime => fetched_at + r,
        _ if lifetime >= Duration::hours(2) || lifetime < Duration::minutes(20) => fetched_at + lifetime / 2,
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
        delay = delay * 2;
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
        Self { key, state: RwLock::new(SlotState::default()) }
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
            Some(c) if now < c.mandatory_at && (self.attempt.is_some() || backing_off) => Some(Ok(c.token.clone())),
            Some(c) if now < c.token.expires_on && backing_off => Some(Ok(c.token.clone())),
            Some(c) if now < c.token.expires_on => None,
            _ if backing_off => self.last_error.clone().map(Err),
            _ => None,
        }
    }

    /// The cached token if it has not expired at `now`.
    fn valid_token(&self, now: OffsetDateTime) -> Option<AccessToken> {
        self.cached.as_ref().filter(|c| now < c.token.expires_on).map(|c| c.token.clone())
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
            Some(c) if now < c.mandatory_at => {
                backoff(policy.failure_backoff, policy.max_backoff, self.failures, random()).min(c.mandatory_at - now)
            }
            Some(c) => {
                let cap = policy.failure_backoff.min(policy.max_backoff);
                backoff(policy.failure_backoff, cap, self.failures, random()).min(c.token.expires_on - now)
            }
            None if error.is_transient() => policy.transient_error_ttl,
            None => policy.permanent_error_ttl,
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
        Self { scopes: sorted.into(), display }
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

/// Order- and duplicate-insensitive hash: min and max of the elements' fixed-key hashes.
impl Hash for dyn ScopeSet + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        for i in 0..self.count() {
            let mut h = std::hash::DefaultHasher::new();
            h.write(self.scope(i).as_bytes());
            let h = h.finish();
            lo = lo.min(h);
            hi = hi.max(h);
        }
        state.write_u64(lo ^ hi.rotate_left(31));
    }
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

/// The scope-set hash is already SipHash output: pass it through instead of hashing it again.
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
