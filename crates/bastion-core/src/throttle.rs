//! Owns the rate limit of repeated warnings: a condition that persists (a full connection
//! cap, saturated outbound requests, a full queue) is logged once per period rather than
//! once per occurrence, so exhaustion cannot also flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The period of the warnings of a [`Throttle::per_minute`].
pub const MINUTE: Duration = Duration::from_secs(60);

/// Lets one warning through per period.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: Mutex::new(None),
        }
    }

    /// One warning per minute.
    pub const fn per_minute() -> Throttle {
        Throttle::new(MINUTE)
    }

    /// Whether a warning may be logged now; if so, the period starts again.
    pub fn ready(&self) -> bool {
        self.ready_at(Instant::now())
    }

    /// [`Throttle::ready`] at `now`.
    pub fn ready_at(&self, now: Instant) -> bool {
        // A poisoned lock only means a panic elsewhere while it was held: keep going.
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(at) if now.saturating_duration_since(at) < self.every => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period() {
        let t = Throttle::per_minute();
        let start = Instant::now();
        assert!(t.ready_at(start));
        assert!(!t.ready_at(start + Duration::from_secs(1)));
        assert!(!t.ready_at(start + Duration::from_secs(59)));
        assert!(t.ready_at(start + MINUTE));
        assert!(!t.ready_at(start + MINUTE));
    }
}
