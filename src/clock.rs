//! The clock seam: every "what time is it" in the crate goes through [`Clock`], so tests can
//! drive token expiry and refresh windows deterministically instead of sleeping.

use std::fmt;
use std::time::Instant;
use time::OffsetDateTime;

/// A source of the current time. A step of the wall clock (NTP, a resumed VM) moves
/// [`now`](Self::now) and never [`instant`](Self::instant).
pub(crate) trait Clock: Send + Sync + fmt::Debug {
    /// The wall clock (UTC): for what people see and other machines' timestamps (a JWT's `exp`).
    fn now(&self) -> OffsetDateTime;
    /// The monotonic clock, for every deadline the cache keeps: never goes backwards.
    fn instant(&self) -> Instant;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to, for tests (cargo feature `test-util`, re-exported as
/// `test_util::ManualClock`): a credential built on it reaches refresh windows and expiry without
/// waiting, and sees wall-clock steps that leave its monotonic reading alone.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<(OffsetDateTime, Instant)>);

#[cfg(any(test, feature = "test-util"))]
impl ManualClock {
    /// A clock whose wall-clock reading starts at `start` (its monotonic reading at the real now).
    pub fn new(start: OffsetDateTime) -> Self {
        Self(std::sync::Mutex::new((start, Instant::now())))
    }

    /// Let `by` pass: both readings move (a negative `by` moves the monotonic reading not at all).
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        now.0 += by;
        if by.is_positive() {
            now.1 += by.unsigned_abs();
        }
    }

    /// Step the wall clock only (an NTP correction, a resumed VM): the monotonic reading stays.
    #[cfg(feature = "test-util")]
    pub fn jump_wall(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        now.0 += by;
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).0
    }
    fn instant(&self) -> Instant {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}
