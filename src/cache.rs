//! Per-scope access-token cache: refresh-ahead, single-flight, static stability.
//!
//! # Semantics
//!
//! The cache keeps one *slot* per scope, keyed by the scope string as requested (the credential
//! admits exactly one `<resource>/.default` scope per request, validated before it reaches the
//! cache). Each cached token has three instants on the
//! monotonic clock, anchored at the start of the request that fetched it (a wall-clock step
//! changes none of them); the [`AccessToken`] handed out keeps its wall-clock `expires_on`:
//!
//! * `refresh_at`: Entra's `refresh_in` when it sent one (and it is shorter than the lifetime);
//!   else half the lifetime for tokens of 2 h or more and for tokens shorter than 20 min; else 10
//!   minutes before expiry; minus a random jitter in `[0, max_jitter]`, capped at 5 % of the
//!   lifetime, so a fleet started together does not refresh together.
//! * `mandatory_at`: expiry minus `mandatory_margin` (default 60 s); for tokens shorter than four
//!   margins the margin is a quarter of the lifetime.
//! * `expires_at`: the request's start plus `expires_in`.
//!
//! A call then behaves as follows.
//!
//! * **Fresh** (`now < refresh_at`): the cached token is cloned and returned. This path takes two
//!   uncontended read locks, allocates nothing but the clone, logs nothing and never waits.
//! * **Advisory window** (`refresh_at <= now < mandatory_at`): the cached token is returned at
//!   once; if no attempt is in flight and the slot is not backing off, one background refresh is
//!   spawned (after the slot's lock is released) on azure_core's async runtime. Nobody waits.
//! * **Mandatory window** (`mandatory_at <= now < expires_at`): callers join the slot's single
//!   attempt (starting it if there is none) and wait for it at most the token's remaining lifetime
//!   minus a margin ([`policy::wait_bound`]), then get the cached token. A failed attempt also
//!   gives them the cached token. A caller holding a valid token never gets an error.
//! * **No valid token**: callers join the single attempt and wait at most `attempt_timeout`.
//!
//! # Attempts never wedge a slot
//!
//! An attempt is a spawned task that owns a guard: however the task ends (completed, panicked,
//! dropped before or after its first poll, its runtime shut down), the slot's in-flight marker is
//! cleared before its waiters learn about it, and waiters that see the attempt vanish start a new
//! one. An attempt also has a deadline (`attempt_timeout` plus a grace period): an attempt whose
//! task is never polled again (a runtime kept but no longer driven) is treated as dead after it,
//! and the next caller starts a new attempt. This is what makes a credential safe to call from a
//! new runtime per call (sync wrappers) and from many `#[tokio::test]`s sharing one credential.
//!
//! # Failures
//!
//! A failed refresh never replaces a still-valid token. After a failure the slot records the error
//! and the earliest next attempt: a jittered exponential backoff while a token is valid (never past
//! `mandatory_at` before the mandatory window, short within it), the error TTLs without a valid
//! token, and never before the token endpoint's `Retry-After` (capped at `max_backoff`). A success
//! clears the failure state. Refreshing is never disabled.

mod attempt;
mod errors;
pub(crate) use errors::timeout_error;
pub(crate) mod policy;
mod slot;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust;

pub use policy::RefreshPolicy;
pub use status::{RefreshHealth, TokenStatus};

use crate::error::CredentialError;
use crate::http::{Phase, Progress};
use attempt::AttemptTask;
use azure_core::async_runtime::get_async_runtime;
use azure_core::credentials::AccessToken;
use azure_core::http::Context;
use azure_core::time::Duration;
use errors::{timed_out, vanished_error};
use futures::channel::oneshot;
use futures::future::{Either, Shared, select};
use slot::{Cached, Slot, between};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

/// A freshly acquired token, as the exchange returns it.
#[derive(Debug)]
pub(crate) struct FetchedToken {
    /// The token; its wall-clock `expires_on` is computed from when the request was sent.
    pub(crate) token: AccessToken,
    /// `expires_in`: the lifetime, counted from when the request was sent.
    pub(crate) lifetime: Duration,
    /// Entra's `refresh_in`, when it sent one.
    pub(crate) refresh_in: Option<Duration>,
}

/// Where the cache gets tokens from (the Entra exchange, or a test double).
#[async_trait::async_trait]
pub(crate) trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// Acquire a new token for `scopes` (already validated and normalized). `ctx` is the context
    /// of the caller that started the attempt, with the attempt's [`Progress`] in it.
    async fn fetch(
        &self,
        scopes: &[String],
        ctx: &Context<'static>,
    ) -> Result<FetchedToken, CredentialError>;

    /// What the cached tokens are, in the cache's log lines ("acquired access token").
    fn kind(&self) -> &'static str {
        "access token"
    }

    /// What a slot's key is, in error messages ("the access token request for scope …").
    fn key_name(&self) -> &'static str {
        "scope"
    }

    /// Whether this cache sits under another that reports its failures (the AWS JWT under the
    /// credential's): a failure with no valid token to serve is then logged at DEBUG (the caller
    /// logs the same error at WARN), one served over a valid token still at WARN, with the key
    /// as `audience`.
    fn nested(&self) -> bool {
        false
    }

    /// The error of an attempt, or of a caller's wait, that outlived `bound` while in `phase`.
    fn timed_out(&self, bound: Duration, phase: Phase) -> CredentialError {
        errors::timeout_error(bound, phase)
    }
}

/// The outcome of one attempt, as every waiter receives it.
type Outcome = Result<AccessToken, CredentialError>;
type SharedOutcome = Shared<oneshot::Receiver<Outcome>>;

/// Most slots kept. Past it, slots without a valid token and without an attempt in flight (scopes
/// that only ever failed, expired tokens) are evicted first, then the one that expires first.
const MAX_SLOTS: usize = 256;
/// How often one call starts a new attempt after the one it waited for vanished.
const MAX_RESTARTS: usize = 3;

/// The cache. One slot per scope.
pub(crate) struct TokenCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    source: Arc<dyn TokenSource>,
    policy: RefreshPolicy,
    clock: Arc<dyn crate::clock::Clock>,
    /// One slot per scope (the credential admits exactly one `<resource>/.default` scope).
    /// Hashed with FxHash: a hit hashes one short, caller-chosen string (the slot count is capped).
    slots: RwLock<HashMap<Arc<str>, Arc<Slot>, rustc_hash::FxBuildHasher>>,
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
        clock: Arc<dyn crate::clock::Clock>,
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
    /// [`get_token`](Self::get_token). Read locks only, nothing allocated but the returned clone.
    pub(crate) fn try_hit(&self, scope: &str) -> Option<Outcome> {
        let now = self.inner.clock.instant();
        let slots = read(&self.inner.slots);
        let slot = slots.get(scope)?;
        read(&slot.state).serve(now)
    }

    /// Return a valid token for `scope` (already validated by the caller).
    /// `ctx` is the caller's context, forwarded to an attempt this call starts.
    pub(crate) async fn get_token(&self, scope: &str, ctx: Option<&Context<'_>>) -> Outcome {
        if let Some(hit) = self.try_hit(scope) {
            return hit;
        }
        let slot = self.inner.slot_for(scope);
        let ctx = ctx.map(Context::to_owned).unwrap_or_default();
        CacheInner::get_slow(&self.inner, &slot, ctx).await
    }

    /// Store a token for `scope` that was acquired outside the cache (a diagnostic probe's), as
    /// if an attempt started at `started` had fetched it. An attempt in flight is left to finish;
    /// of its token and this one, the one that expires later is kept.
    #[cfg_attr(not(all(feature = "aws", feature = "doctor")), allow(dead_code))]
    pub(crate) fn insert(&self, scope: &str, fetched: FetchedToken, started: Instant) {
        let slot = self.inner.slot_for(scope);
        let cached = Cached::new(fetched, started, &self.inner.policy, (self.inner.random)());
        let mut state = write(&slot.state);
        state.inserted_at = Some(self.inner.clock.instant());
        // The outcome is for an attempt's waiters; there are none.
        let _ = state.record_success(cached, self.inner.clock.now(), true);
    }

    /// A snapshot of every cached scope's state (see [`TokenStatus`]).
    pub(crate) fn status(&self) -> Vec<TokenStatus> {
        let (now, wall) = (self.inner.clock.instant(), self.inner.clock.now());
        read(&self.inner.slots)
            .values()
            .map(|slot| status::snapshot(&slot.scope, &read(&slot.state), now, wall))
            .collect()
    }
}

/// What became of the attempt a caller waited for.
enum Waited {
    Done(Outcome),
    /// The attempt's task ended without a result (dropped, its runtime shut down).
    Vanished,
    /// The caller's wait bound passed first (the attempt's progress, if it is still running).
    TimedOut(Option<Arc<Progress>>),
}

impl CacheInner {
    /// The slot for `scope`, created on first use (evicting dead slots past [`MAX_SLOTS`]).
    fn slot_for(&self, scope: &str) -> Arc<Slot> {
        if let Some(slot) = read(&self.slots).get(scope) {
            return Arc::clone(slot);
        }
        let mut slots = write(&self.slots);
        if slots.len() >= MAX_SLOTS && !slots.contains_key(scope) {
            let now = self.clock.instant();
            slots.retain(|_, s| {
                let state = read(&s.state);
                state.valid(now).is_some() || state.live_attempt(now).is_some()
            });
            if slots.len() >= MAX_SLOTS {
                let first_to_expire = slots
                    .iter()
                    .filter(|(_, s)| read(&s.state).live_attempt(now).is_none())
                    .min_by_key(|(_, s)| read(&s.state).valid(now).map(|(_, at)| at))
                    .map(|(k, _)| k.clone());
                if let Some(k) = first_to_expire {
                    slots.remove(&k);
                }
            }
        }
        let slot = slots
            .entry(Arc::from(scope))
            .or_insert_with(|| Arc::new(Slot::new(scope)));
        Arc::clone(slot)
    }

    /// Everything but a plain hit: maybe start an attempt, maybe wait for one.
    async fn get_slow(this: &Arc<Self>, slot: &Arc<Slot>, ctx: Context<'static>) -> Outcome {
        let mut ctx = Some(ctx);
        let mut restarts = 0;
        loop {
            let now = this.clock.instant();
            let (outcome, bound) = {
                let mut state = write(&slot.state);
                // Re-check: another caller may have changed the state since the read lock.
                if let Some(outcome) = state.serve(now) {
                    return outcome;
                }
                let bound = match state.valid(now) {
                    Some((_, expires_at)) => {
                        policy::wait_bound(between(now, expires_at), this.policy.attempt_timeout)
                    }
                    None => this.policy.attempt_timeout,
                };
                match state.live_attempt(now) {
                    Some(a) => (a.outcome.clone(), bound),
                    None => {
                        let advisory = state
                            .cached
                            .as_ref()
                            .filter(|c| now < c.mandatory_at)
                            .map(|c| c.token.clone());
                        let reason = match (&advisory, state.valid(now), &state.cached) {
                            (Some(_), _, _) => "advisory",
                            (None, Some(_), _) => "mandatory",
                            (None, None, Some(_)) => "expired",
                            (None, None, None) => "miss",
                        };
                        let ctx = ctx.take().unwrap_or_default();
                        let (outcome, task) =
                            AttemptTask::prepare(this, slot, &mut state, reason, now, ctx);
                        drop(state);
                        // Spawned after the lock is released: a runtime that polls on spawn
                        // cannot deadlock on it.
                        task.spawn();
                        if let Some(token) = advisory {
                            return Ok(token);
                        }
                        (outcome, bound)
                    }
                }
            };
            match this.wait(slot, outcome, bound).await {
                Waited::Done(outcome) => return outcome,
                Waited::Vanished if restarts < MAX_RESTARTS => restarts += 1,
                Waited::Vanished => {
                    return this.fallback(slot, vanished_error(&*this.source, slot));
                }
                Waited::TimedOut(progress) => {
                    let error = timed_out(
                        &*this.source,
                        this.policy.attempt_timeout,
                        progress.as_deref(),
                    );
                    return this.fallback(slot, error);
                }
            }
        }
    }

    /// Wait for an attempt's outcome, at most `bound`.
    async fn wait(&self, slot: &Slot, attempt: SharedOutcome, bound: Duration) -> Waited {
        let timeout = get_async_runtime().sleep(bound.max(Duration::ZERO));
        match select(attempt, timeout).await {
            Either::Left((Ok(outcome), _)) => Waited::Done(outcome),
            Either::Left((Err(oneshot::Canceled), _)) => Waited::Vanished,
            Either::Right(((), _)) => {
                let state = read(&slot.state);
                Waited::TimedOut(state.attempt.as_ref().map(|a| Arc::clone(&a.progress)))
            }
        }
    }

    /// A still-valid cached token, else `error`.
    fn fallback(&self, slot: &Slot, error: CredentialError) -> Outcome {
        let now = self.clock.instant();
        if let Some((token, _)) = read(&slot.state).valid(now) {
            tracing::warn!(scopes = %slot.scope, error = %error.headline(), problem_id = error.problem_id().map(tracing::field::display), "token refresh did not complete in time; serving the cached token, which is still valid");
            return Ok(token.clone());
        }
        Err(error)
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
