//! The clock seam: every "what time is it" in the crate goes through [`Clock`], so tests can
//! drive token expiry and refresh windows deterministically instead of sleeping.

use std::fmt;
use std::sync::Mutex;
use time::OffsetDateTime;

/// A source of the current UTC time.
pub(crate) trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to (tests).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct ManualClock(Mutex<OffsetDateTime>);

#[cfg_attr(not(test), allow(dead_code))]
impl ManualClock {
    pub(crate) fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub(crate) fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
