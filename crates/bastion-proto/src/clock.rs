//! The one source of "now" for everything that compares against time: resource expiry,
//! token validity, schedules and time windows, request expiration, the age of a location
//! fix. Production reads the operating system's clock; tests and tools set a
//! [`ManualClock`], so a test reaches an expiry by moving the clock instead of sleeping.

use crate::time::Timestamp;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    /// Now in whole seconds, the granularity of oneM2M timestamps.
    fn timestamp(&self) -> Timestamp {
        let secs = self
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp(secs)
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests and tools.
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    /// A clock standing at `at` (whole seconds).
    pub fn at(at: Timestamp) -> ManualClock {
        let secs = u64::try_from(at.0).unwrap_or(0);
        ManualClock::new(UNIX_EPOCH + Duration::from_secs(secs))
    }

    pub fn set(&self, now: SystemTime) {
        *self.lock() = now;
    }

    pub fn advance(&self, by: Duration) {
        *self.lock() += by;
    }

    /// The time is a plain value: a panic elsewhere cannot leave it half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(Timestamp(1_700_000_000));
        assert_eq!(clock.timestamp(), Timestamp(1_700_000_000));
        clock.advance(Duration::from_millis(999));
        assert_eq!(clock.timestamp(), Timestamp(1_700_000_000));
        clock.advance(Duration::from_millis(1));
        assert_eq!(clock.timestamp(), Timestamp(1_700_000_001));
        clock.set(UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(clock.timestamp(), Timestamp(5));
    }
}
