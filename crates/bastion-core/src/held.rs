//! Notifications held back by their subscription's notification schedule (TS-0001 9.6.8
//! `pendingNotification`, 9.6.9): a subscription with `pn` keeps what its `<schedule>`
//! child keeps it from sending, and sends it when a window opens (`notify.rs` decides
//! and releases; docs/notifications.md, "Notification schedule").
//!
//! Bounded twice, in memory only (as the delivery queues): at most
//! [`PER_SUBSCRIPTION`] per subscription (`pn` 2, sendAllPending, keeps the newest; `pn`
//! 1, sendLatest, keeps one), and at most [`TOTAL`] for the whole CSE, beyond which a new
//! one is dropped. A restart loses them.

use crate::subscription::SubscriptionState;
use crate::tree::Ri;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Notifications one subscription holds at most.
pub(crate) const PER_SUBSCRIPTION: usize = 64;
/// Notifications all subscriptions hold together at most.
pub(crate) const TOTAL: usize = 10_000;

/// One notification waiting for its subscription's window, as it would have been sent.
pub(crate) struct Held {
    pub sur: String,
    pub nu: Vec<String>,
    pub event: Arc<Value>,
    pub state: Arc<SubscriptionState>,
}

/// The held notifications, by subscription, oldest first.
#[derive(Default)]
pub(crate) struct HeldNotifications {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_subscription: HashMap<Ri, VecDeque<Held>>,
    total: usize,
}

impl HeldNotifications {
    /// Holds `held` for subscription `ri`; with `latest` it replaces what the
    /// subscription holds. Returns how many notifications this dropped.
    pub fn hold(&self, ri: Ri, held: Held, latest: bool) -> usize {
        let mut inner = self.inner.lock();
        let Inner {
            by_subscription,
            total,
        } = &mut *inner;
        let queue = by_subscription.entry(ri.clone()).or_default();
        let mut dropped = 0;
        if latest {
            dropped += queue.len();
            *total -= queue.len();
            queue.clear();
        } else if queue.len() >= PER_SUBSCRIPTION {
            queue.pop_front();
            *total -= 1;
            dropped += 1;
        }
        if *total >= TOTAL {
            if queue.is_empty() {
                by_subscription.remove(&ri);
            }
            return dropped + 1;
        }
        queue.push_back(held);
        *total += 1;
        dropped
    }

    /// The subscriptions holding something.
    pub fn subscriptions(&self) -> Vec<Ri> {
        self.inner.lock().by_subscription.keys().cloned().collect()
    }

    /// Takes what subscription `ri` holds, if anything, and hands it, oldest first, to
    /// `send` while nothing else is held or released: a notification decided once the
    /// window is open, which asks for this first, leaves only after what was held
    /// before it is on its way. `send` must not hold or release notifications.
    pub fn release(&self, ri: &str, send: impl FnOnce(VecDeque<Held>)) {
        let mut inner = self.inner.lock();
        let Some(taken) = inner.by_subscription.remove(ri) else {
            return;
        };
        inner.total -= taken.len();
        send(taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(n: u64) -> Held {
        Held {
            sur: "/id-in/sub".into(),
            nu: vec!["http://127.0.0.1:9/n".into()],
            event: Arc::new(Value::from(n)),
            state: Arc::new(SubscriptionState::default()),
        }
    }

    /// What `release` hands over for `ri`, as the events' numbers.
    fn released(store: &HeldNotifications, ri: &str) -> Vec<u64> {
        let mut out = Vec::new();
        store.release(ri, |taken| {
            out.extend(taken.iter().filter_map(|h| h.event.as_u64()));
        });
        out
    }

    #[test]
    fn send_all_pending_keeps_the_newest_per_subscription() {
        let store = HeldNotifications::default();
        let ri: Ri = Arc::from("sub1");
        let mut dropped = 0;
        for n in 0..(PER_SUBSCRIPTION as u64 + 3) {
            dropped += store.hold(ri.clone(), held(n), false);
        }
        assert_eq!(dropped, 3);
        assert_eq!(store.subscriptions(), [ri]);
        assert!(released(&store, "sub2").is_empty());
        let kept = released(&store, "sub1");
        assert_eq!(kept.len(), PER_SUBSCRIPTION);
        assert_eq!(kept.first(), Some(&3));
        assert!(released(&store, "sub1").is_empty());
        assert!(store.subscriptions().is_empty());
    }

    #[test]
    fn send_latest_keeps_one() {
        let store = HeldNotifications::default();
        let ri: Ri = Arc::from("sub1");
        assert_eq!(store.hold(ri.clone(), held(1), true), 0);
        assert_eq!(store.hold(ri.clone(), held(2), true), 1);
        assert_eq!(released(&store, "sub1"), [2]);
    }

    #[test]
    fn the_total_is_bounded() {
        let store = HeldNotifications::default();
        let mut dropped = 0;
        for n in 0..(TOTAL as u64 + 5) {
            let ri: Ri = Arc::from(format!("sub{}", n % 1000).as_str());
            dropped += store.hold(ri, held(n), false);
        }
        assert_eq!(dropped, 5);
        let held: usize = store
            .subscriptions()
            .iter()
            .map(|ri| released(&store, ri).len())
            .sum();
        assert_eq!(held, TOTAL);
    }
}
