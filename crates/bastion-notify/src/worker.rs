//! The task of one destination: takes notifications from its [`DestQueue`] in order,
//! sends them with retries, sleeps on batch timers and rate windows, exits when idle.
//!
//! One worker per destination is what isolates destinations: a worker awaiting a dead or
//! slow receiver holds up only its own queue.

use crate::payload::Budget;
use crate::queue::{DestQueue, Outgoing, Step};
use crate::send::{attempt, backoff, notify_request, Outcome};
use crate::stats::Counters;
use crate::Shared;
use parking_lot::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// One destination: the ordered target list and its queue state.
#[derive(Debug)]
pub(crate) struct Destination {
    /// The map key: the peer and the targets, joined by `\n`.
    pub key: String,
    /// The CSE the targets belong to, when the receiver is behind it.
    pub peer: Option<String>,
    /// The targets, for logs: joined by `, `.
    pub label: String,
    /// Tried in order on each attempt.
    pub targets: Vec<String>,
    /// Queue state, shared with `submit`, `flush` and `shutdown`. Never held across an
    /// await.
    pub state: Mutex<DestQueue>,
    /// Wakes the worker when an event arrives or a batch is flushed.
    pub wake: Notify,
    /// The bytes of the events this destination holds (`max_destination_bytes`).
    pub budget: Arc<Budget>,
}

impl Destination {
    pub fn new(
        key: String,
        peer: Option<String>,
        targets: Vec<String>,
        max_bytes: usize,
    ) -> Destination {
        Destination {
            label: targets.join(", "),
            key,
            peer,
            targets,
            state: Mutex::new(DestQueue::default()),
            wake: Notify::new(),
            budget: Budget::new(max_bytes),
        }
    }
}

/// The worker loop of `dest`.
pub(crate) async fn run(shared: Arc<Shared>, dest: Arc<Destination>) {
    let mut stop = shared.stop.subscribe();
    loop {
        if *stop.borrow() {
            // Shutdown also abandons the queues, but this worker may retire before
            // shutdown looks at the map: whoever comes first counts them.
            let dropped = dest.state.lock().abandon_queued();
            Counters::add(&shared.counters.dropped_shutdown, dropped);
            retire(&shared, &dest, true);
            return;
        }
        let (step, superseded) = dest.state.lock().next_step(Instant::now());
        Counters::add(&shared.counters.superseded, superseded);
        match step {
            Step::Send(out) => deliver(&shared, &dest, out, &mut stop).await,
            Step::Wait(at) => {
                tokio::select! {
                    _ = dest.wake.notified() => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = stopped(&mut stop) => {}
                }
            }
            Step::Idle => {
                tokio::select! {
                    _ = dest.wake.notified() => {}
                    _ = tokio::time::sleep(shared.config.idle_worker_timeout) => {
                        if retire(&shared, &dest, false) {
                            return;
                        }
                    }
                    _ = stopped(&mut stop) => {}
                }
            }
        }
    }
}

/// Removes `dest` from the notifier when it holds nothing (or when `force`d at
/// shutdown). Takes the map lock first, as `submit` does, so no event can slip into a
/// destination that is being retired.
fn retire(shared: &Shared, dest: &Arc<Destination>, force: bool) -> bool {
    let mut map = shared.destinations.lock();
    if !force && !dest.state.lock().can_retire(Instant::now()) {
        return false;
    }
    if map.get(&dest.key).is_some_and(|d| Arc::ptr_eq(d, dest)) {
        map.remove(&dest.key);
    }
    true
}

/// Sends one notification until a target answers, it is superseded, its attempts run
/// out, or the notifier stops. The `rqi` stays the same across retries so that a receiver
/// whose answer was lost can recognise the retransmission.
async fn deliver(
    shared: &Shared,
    dest: &Destination,
    out: Outgoing,
    stop: &mut watch::Receiver<bool>,
) {
    let Outgoing {
        sub,
        to,
        body,
        events,
        latest,
        ..
    } = out;
    let observer = match body {
        crate::queue::Body::Rsp(_) => None,
        _ => shared.observer.get(),
    };
    let observe = |answered: bool| {
        if let Some(observer) = observer {
            observer.attempted(&sub, &to, answered);
        }
    };
    // The charges stay taken while the request holds the events, until this returns.
    let (pc, _charges) = body.into_pc();
    let config = &shared.config;
    let counters = &shared.counters;
    let req = notify_request(config, shared.entropy.rqi(), &to, pc, latest);
    let mut failures = 0u32;
    loop {
        let outcome = tokio::select! {
            o = attempt(
                shared.transport.as_ref(),
                dest.peer.as_deref(),
                &dest.targets,
                &req,
                config.request_timeout,
            ) => o,
            _ = stopped(stop) => return settle(dest, events, &counters.dropped_shutdown),
        };
        match outcome {
            Outcome::Answered(_) => {
                observe(true);
                dest.state.lock().reached();
                return settle(dest, events, &counters.delivered);
            }
            Outcome::Unusable(failed) => {
                let reasons: Vec<&str> = failed.iter().map(|f| f.reason.as_str()).collect();
                tracing::warn!(subscription = %sub, destination = %dest.label,
                    reasons = ?reasons, "notification dropped: no usable target");
                return settle(dest, events, &counters.dropped_exhausted);
            }
            Outcome::Transient(failed) => {
                observe(false);
                Counters::add(&counters.failed_attempts, 1);
                failures += 1;
                for f in &failed {
                    tracing::debug!(subscription = %sub, target = %f.target, reason = %f.reason,
                        attempt = failures, "notification attempt failed");
                }
                let superseded = dest.state.lock().failed(&sub);
                if failures >= config.max_attempts.max(1) {
                    tracing::warn!(subscription = %sub, destination = %dest.label,
                        attempts = failures, "notification dropped: destination unreachable");
                    return settle(dest, events, &counters.dropped_exhausted);
                }
                if superseded {
                    return settle(dest, events, &counters.superseded);
                }
                let wait = backoff(config, failures, shared.entropy.next_u64());
                if !pause_until(Instant::now() + wait, stop).await
                    || !rate_gate(dest, &sub, stop).await
                {
                    return settle(dest, events, &counters.dropped_shutdown);
                }
                Counters::add(&counters.retried, 1);
            }
        }
    }
}

/// Ends the in-flight notification: counts its events in `counter` and releases them from
/// the destination's capacity.
fn settle(dest: &Destination, events: u64, counter: &AtomicU64) {
    Counters::add(counter, events);
    dest.state.lock().finish(events);
}

/// Waits until the subscription's rate window allows the retry and records it; `false`
/// when the notifier stopped first.
async fn rate_gate(dest: &Destination, sub: &str, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let slot = dest.state.lock().retry_slot(sub, Instant::now());
        match slot {
            None => return true,
            Some(at) => {
                if !pause_until(at, stop).await {
                    return false;
                }
            }
        }
    }
}

/// Sleeps until `at`; `false` when the notifier stopped first.
async fn pause_until(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if at <= Instant::now() {
        return !*stop.borrow();
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at.into()) => true,
        _ = stopped(stop) => false,
    }
}

/// Resolves once the notifier is stopped (never, if its sender is gone, which cannot
/// happen while a worker holds the shared state).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Shortest sleep of the shutdown drain loop.
pub(crate) const DRAIN_POLL: Duration = Duration::from_millis(10);
