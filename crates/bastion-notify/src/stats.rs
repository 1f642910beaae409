//! Counters of the engine, shared by `submit` and the workers without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the engine's counters. Counts are in events (one NOTIFY carrying a batch
/// of `n` events counts `n`), so that, at any time,
/// `submitted = delivered + dropped_exhausted + dropped_shutdown + superseded + queued_now`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deliveries accepted by `submit`.
    pub submitted: u64,
    /// Events whose NOTIFY got an answer from a target.
    pub delivered: u64,
    /// Retry attempts made (attempts after the first of a notification).
    pub retried: u64,
    /// Attempts in which no target answered.
    pub failed_attempts: u64,
    /// Deliveries rejected by `submit` because their destination's queue was full, in
    /// events or in bytes, or all queues together were full in bytes.
    pub dropped_queue_full: u64,
    /// Events given up: after `max_attempts` failed attempts, or at once when no target
    /// can be used at all (not an absolute `http(s)` URL).
    pub dropped_exhausted: u64,
    /// Events abandoned because `shutdown`'s grace period ended first.
    pub dropped_shutdown: u64,
    /// Events replaced by a newer one of their subscription (`ln`, or `pn` sendLatest
    /// while the destination was unreachable).
    pub superseded: u64,
    /// Events accepted and not yet delivered or dropped (queued, batched, in flight).
    pub queued_now: u64,
    /// Destinations that currently have a worker.
    pub active_destinations: u64,
    /// Bytes charged for the events held now, summed over destinations
    /// ([`NotifierConfig::max_total_bytes`](crate::NotifierConfig::max_total_bytes)).
    pub queued_bytes: u64,
}

/// The monotonic counters behind [`Stats`]; `queued_now` and `active_destinations` are
/// computed from the destinations when a snapshot is taken.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub submitted: AtomicU64,
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_exhausted: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    pub superseded: AtomicU64,
}

impl Counters {
    /// Adds `n` to `counter`. Relaxed ordering: counters are statistics, not
    /// synchronisation.
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The monotonic part of a snapshot.
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            submitted: get(&self.submitted),
            delivered: get(&self.delivered),
            retried: get(&self.retried),
            failed_attempts: get(&self.failed_attempts),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_exhausted: get(&self.dropped_exhausted),
            dropped_shutdown: get(&self.dropped_shutdown),
            superseded: get(&self.superseded),
            queued_now: 0,
            active_destinations: 0,
            queued_bytes: 0,
        }
    }
}
