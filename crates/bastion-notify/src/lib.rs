//! The CSE's notification delivery engine.
//!
//! `bastion-core` decides *what* to notify and *where*: it builds the `m2m:sgn` content of
//! each event (core-resources.md §3.7) and resolves each notification
//! target to URLs (an AE's `poa` list, or the `nu` URL itself). This crate owns the rest:
//! getting that content to the receiver reliably, without one receiver's trouble reaching
//! another, under the subscription's policies (`bn`, `ln`, `rl`, `pn`). It sends through
//! `bastion-client` transports that the [`Routes`] choose per target (the CSE's routes
//! reach a receiver behind another CSE over the association with that CSE, and pick a
//! transport by the target's URI scheme), and does not depend on `bastion-core`.
//!
//! ```text
//!  core ──submit(Delivery)──▶ destination map (key: peer + target list)
//!   (never awaits)                │ one per destination
//!                                 ▼
//!                      ┌─ DestQueue ──────────────────────────────┐
//!                      │ per subscription: batch buffer (bn, ln)  │
//!                      │                  ready queue  (pn, ln)   │
//!                      │                  rate window  (rl)       │
//!                      └────────────────┬─────────────────────────┘
//!                                       ▼ earliest-arrived head whose window allows
//!                      worker task: NOTIFY → target 1, target 2, … (first answer wins)
//!                                       │ no answer: backoff, retry (same rqi)
//!                                       ▼
//!                           delivered / dropped, counted in Stats
//! ```
//!
//! # The NOTIFY
//!
//! Each notification is one request primitive: `op` NOTIFY, `to` as given in the
//! [`Delivery`], `fr` = [`NotifierConfig::originator`] (the hosting CSE-ID), `rvi` =
//! [`NotifierConfig::release`], a fresh `rqi` and `pc` = `{"m2m:sgn": event}`, or for a
//! batch `{"m2m:agn": {"m2m:sgn": [event, …]}}`; the result of a non-blocking
//! asynchronous request ([`Content::Response`]) is sent alone as `{"m2m:rsp": event}`. A notification sent under `ln` carries
//! `ec` 4 ("latest"). The `rqi` is kept across the retries of one notification, so a
//! receiver whose answer was lost can recognise the retransmission.
//!
//! # Delivery guarantees
//!
//! * **What counts as delivered.** A notification is delivered when one of its targets
//!   answers: any oneM2M response, whatever its status code, or, since URL targets'
//!   responses are not interpreted, any HTTP answer from a reachable server (no
//!   `X-M2M-RSC`, an unknown code, an unreadable body). Connect errors, TLS failures,
//!   broken exchanges and timeouts ([`NotifierConfig::request_timeout`] per target) are
//!   failures. Targets are tried in order on every attempt; the first that answers ends it.
//! * **At least once, at most `max_attempts` tries.** A notification whose attempt fails
//!   is retried until it is delivered or [`NotifierConfig::max_attempts`] attempts have
//!   failed; then it is dropped with a `warn` log naming the subscription and the
//!   destination (never the content, which may be sensitive) and counted in
//!   [`Stats::dropped_exhausted`]. A target list with no usable target (no absolute
//!   `http(s)` URL, or every target refused by the [`Routes`], e.g. for a revoked
//!   association) is dropped at once, counted the same way. A retried NOTIFY may reach a
//!   receiver twice when an answer was lost; the unchanged `rqi` lets it tell.
//! * **Order.** Per destination and subscription, notifications leave in the order their
//!   events were submitted, and a notification is not sent before the one ahead of it is
//!   delivered or dropped. Across subscriptions of one destination the earliest-arrived
//!   sendable notification goes first; a subscription held by its rate limit does not hold
//!   back the others.
//! * **Isolation.** Every destination (one target list) has its own bounded queue and
//!   its own worker task. A dead, blackholed or slow receiver delays only its own queue.
//!   [`Notifier::submit`] takes two short locks and never awaits or does I/O. A worker
//!   with nothing to do exits after [`NotifierConfig::idle_worker_timeout`] (not while a
//!   rate window it enforces is still running) and is respawned by the next event.
//! * **No persistence.** Queued notifications live in memory: a restart loses them, as it
//!   loses the retry state.
//!
//! # Overflow policy
//!
//! A destination holds at most [`NotifierConfig::queue_capacity`] events, counting queued,
//! batched and in-flight ones. When it is full, `submit` rejects the **new** event with
//! [`SubmitError::QueueFull`] and counts it in [`Stats::dropped_queue_full`]. Rejecting the
//! newest rather than evicting the oldest keeps what is queued intact: those events are
//! already in delivery order and may be in flight, so evicting them would punch holes in
//! the middle of the sequence a receiver sees, silently; the rejected one is known to the
//! caller at the moment it is rejected, so the core can report the drop (a subscription
//! that only cares about the newest state should set `pn` sendLatest or `ln`, which keep
//! the backlog short instead).
//!
//! # Retry schedule
//!
//! After the `n`-th failed attempt of a notification the worker waits
//! `min(backoff_initial · 2^(n-1), backoff_max)` with "equal jitter" (uniformly between
//! half and all of it), then tries every target again. With the defaults (500 ms, 30 s,
//! 6 attempts) a dead destination costs a notification about 0.25–0.5 + 0.5–1 + 1–2 +
//! 2–4 + 4–8 s of waiting plus six rounds of timeouts before it is dropped. The schedule
//! is per notification; the next notification of the destination starts again at
//! `backoff_initial`.
//!
//! # Policies
//!
//! The policy of a subscription's most recent [`Delivery`] applies to all its held events.
//! State is kept per (subscription, destination).
//!
//! * **Batching (`bn`)** — [`DeliveryPolicy::batch`]: events are buffered until `num` have
//!   arrived or `dur` has passed since the first buffered one (a timer in the worker), or
//!   until [`Notifier::flush`]; then they leave as one `m2m:agn` NOTIFY, in arrival order.
//!   Removing the batch policy sends what is buffered.
//! * **Latest only (`ln`)** — [`DeliveryPolicy::latest_only`]: a batch keeps only its
//!   newest event and is sent as a single `m2m:sgn` with `ec` 4; and whenever a backlog
//!   forms (a notification waits behind one in flight, in backoff or held by the rate
//!   limit), a newer notification replaces the waiting ones, and also the failing one in
//!   flight at its next failed attempt. Replaced events count in [`Stats::superseded`].
//! * **Rate limit (`rl`)** — [`DeliveryPolicy::rate`]: a **sliding** window. A NOTIFY
//!   attempt (first try or retry) is made only if fewer than `max` attempts of this
//!   subscription to this destination were made in the last `window`; otherwise it waits
//!   until the oldest leaves the window. So no interval of length `window` ever holds more
//!   than `max` of them (a fixed window can allow twice that across a boundary). The excess
//!   is held in order, never dropped, but it occupies queue capacity.
//! * **Pending notifications (`pn`)** — [`DeliveryPolicy::pending`]: a destination is
//!   unreachable from a failed attempt until the next answered one. With
//!   [`PendingPolicy::SendLatest`] a notification arriving meanwhile replaces the
//!   subscription's waiting ones (and the failing one in flight), so after the outage only
//!   the newest is sent; [`PendingPolicy::SendAllPending`] keeps them all.
//!
//! # Synchronous NOTIFYs and shutdown
//!
//! [`Notifier::send_now`] sends one NOTIFY outside the queues and returns the answer: used
//! for subscription verification and deletion notices, whose result the core needs.
//! [`Notifier::shutdown`] stops accepting, sends every buffered batch, waits up to its grace
//! period for the queues to drain, then cancels what is left
//! ([`Stats::dropped_shutdown`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod payload;
mod queue;
mod send;
mod stats;
mod transport;
mod worker;

pub use config::{
    Batch, Content, Delivery, DeliveryPolicy, NotifierConfig, PendingPolicy, RateLimit,
    DEFAULT_MAX_DESTINATION_BYTES, DEFAULT_MAX_TOTAL_BYTES,
};
pub use error::{DeliveryError, SubmitError, TargetFailure};
pub use stats::Stats;
pub use transport::{DeliveryObserver, Route, Routes};

use bastion_proto::Response;
use parking_lot::Mutex;
use send::{attempt, notify_request, AnswerKind, Entropy, Outcome};
use stats::Counters;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::watch;
use worker::{Destination, DRAIN_POLL};

/// The delivery engine. Cheap to clone: clones share the queues, workers and counters.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

/// State shared by the handle and every worker.
pub(crate) struct Shared {
    pub config: NotifierConfig,
    pub transport: Arc<dyn Routes>,
    /// The runtime workers are spawned on (captured at construction).
    runtime: Option<Handle>,
    /// Destinations with a worker, by target list. Lock order: this map, then a
    /// destination's state.
    pub destinations: Mutex<HashMap<String, Arc<Destination>>>,
    pub counters: Counters,
    /// The bytes of the events all destinations hold (`max_total_bytes`).
    total: Arc<payload::Budget>,
    /// Set by `shutdown`: `submit` refuses.
    closing: AtomicBool,
    /// Set when `shutdown`'s grace ends: workers cancel what they do.
    pub stop: watch::Sender<bool>,
    pub entropy: Entropy,
    /// Told of each attempt of a subscription's notification ([`Notifier::observe`]).
    pub observer: std::sync::OnceLock<Arc<dyn DeliveryObserver>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier sending along `transport` (a [`Client`](bastion_client::Client) sends
    /// every NOTIFY itself). Call it inside a tokio runtime: workers are spawned on the
    /// runtime current here, lazily, when a destination first gets an event (without
    /// one, [`submit`](Self::submit) fails with [`SubmitError::NoRuntime`] unless it is
    /// itself called inside a runtime).
    pub fn new(config: NotifierConfig, transport: impl Routes + 'static) -> Notifier {
        let (stop, _) = watch::channel(false);
        let total = payload::Budget::new(config.max_total_bytes);
        Notifier {
            shared: Arc::new(Shared {
                config,
                transport: Arc::new(transport),
                runtime: Handle::try_current().ok(),
                destinations: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                total,
                closing: AtomicBool::new(false),
                stop,
                entropy: Entropy::new(),
                observer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Sets the observer told of every attempt of a subscription's notification (not of
    /// results of asynchronous requests); the first one set stays.
    pub fn observe(&self, observer: Arc<dyn DeliveryObserver>) {
        let _ = self.shared.observer.set(observer);
    }

    /// Queues one event for delivery and returns at once: O(1), no await, no I/O.
    ///
    /// Fails with [`SubmitError::QueueFull`] when the destination already holds
    /// `queue_capacity` events (the new event is the one dropped, see the crate docs),
    /// [`SubmitError::ShuttingDown`] after [`shutdown`](Self::shutdown), and
    /// [`SubmitError::NoTargets`] for an empty target list.
    pub fn submit(&self, delivery: Delivery) -> Result<(), SubmitError> {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        if delivery.targets.is_empty() {
            return Err(SubmitError::NoTargets);
        }
        let Delivery {
            subscription,
            targets,
            to,
            peer,
            event,
            content,
            policy,
        } = delivery;
        // `\n` occurs in no URL or CSE-ID.
        let key = format!("{}\n{}", peer.as_deref().unwrap_or(""), targets.join("\n"));
        // The map lock is held until the event is in the queue so that an idle worker
        // cannot retire the destination in between (worker::retire takes it too).
        let mut map = shared.destinations.lock();
        let dest = match map.get(&key) {
            Some(dest) => Arc::clone(dest),
            None => {
                let dest = self.start_destination(key.clone(), peer, targets)?;
                map.insert(key, Arc::clone(&dest));
                dest
            }
        };
        let capacity = shared.config.queue_capacity;
        let now = Instant::now();
        let bytes = payload::estimated_bytes(&event);
        let charge = match payload::Charge::take(bytes, &dest.budget, &shared.total) {
            Ok(charge) => charge,
            Err(over) => {
                drop(map);
                Counters::add(&shared.counters.dropped_queue_full, 1);
                tracing::debug!(subscription = %subscription, destination = %dest.label,
                    bytes, ?over, "notification rejected: byte budget exhausted");
                return Err(match over {
                    payload::OverBudget::Destination => SubmitError::DestinationBytesFull,
                    payload::OverBudget::Total => SubmitError::TotalBytesFull,
                });
            }
        };
        let event = payload::Payload { event, charge };
        let accepted = {
            let mut state = dest.state.lock();
            match content {
                Content::Notification => {
                    state.accept(&subscription, &to, event, &policy, capacity, now)
                }
                Content::Response => {
                    state.accept_response(&subscription, &to, event, &policy, capacity)
                }
            }
        };
        drop(map);
        match accepted {
            Ok(superseded) => {
                Counters::add(&shared.counters.submitted, 1);
                Counters::add(&shared.counters.superseded, superseded);
                dest.wake.notify_one();
                Ok(())
            }
            Err(queue::Full) => {
                Counters::add(&shared.counters.dropped_queue_full, 1);
                tracing::debug!(subscription = %subscription, destination = %dest.label,
                    "notification rejected: destination queue full");
                Err(SubmitError::QueueFull)
            }
        }
    }

    /// Creates a destination and spawns its worker.
    fn start_destination(
        &self,
        key: String,
        peer: Option<String>,
        targets: Vec<String>,
    ) -> Result<Arc<Destination>, SubmitError> {
        let handle = self
            .shared
            .runtime
            .clone()
            .or_else(|| Handle::try_current().ok())
            .ok_or(SubmitError::NoRuntime)?;
        let max_bytes = self.shared.config.max_destination_bytes;
        let dest = Arc::new(Destination::new(key, peer, targets, max_bytes));
        handle.spawn(worker::run(Arc::clone(&self.shared), Arc::clone(&dest)));
        Ok(dest)
    }

    /// Sends one NOTIFY now, outside the queues, and returns the target's response.
    ///
    /// `peer` is as in [`Delivery::peer`]; `content` is the whole `pc` (e.g.
    /// `{"m2m:sgn":{"vrq":true,..}}`). Targets are tried in order, one attempt each with
    /// `request_timeout`; there is no retry, batching or rate limit, because the caller
    /// (subscription verification, deletion notice) needs the answer now. Any oneM2M response is returned as `Ok`, whatever its status code.
    pub async fn send_now(
        &self,
        peer: Option<&str>,
        targets: &[String],
        to: &str,
        content: serde_json::Value,
    ) -> Result<Response, DeliveryError> {
        if targets.is_empty() {
            return Err(DeliveryError::NoTargets);
        }
        let shared = &self.shared;
        let req = notify_request(&shared.config, shared.entropy.rqi(), to, content, false);
        let timeout = shared.config.request_timeout;
        match attempt(shared.transport.as_ref(), peer, targets, &req, timeout).await {
            Outcome::Answered(answer) => match *answer {
                AnswerKind::OneM2m(resp) => Ok(*resp),
                AnswerKind::Other {
                    target,
                    code,
                    reason,
                } => Err(DeliveryError::UnrecognizedAnswer {
                    target,
                    code,
                    reason,
                }),
            },
            Outcome::Transient(failures) | Outcome::Unusable(failures) => {
                Err(DeliveryError::Unreachable(failures))
            }
        }
    }

    /// Sends the buffered batch of `subscription` (to every destination) now, e.g. when
    /// the subscription is deleted. Returns once the batches are queued for sending,
    /// without waiting for delivery.
    pub async fn flush(&self, subscription: &str) {
        for dest in self.destinations() {
            let superseded = dest.state.lock().flush(subscription);
            Counters::add(&self.shared.counters.superseded, superseded);
            dest.wake.notify_one();
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = self.shared.counters.snapshot();
        let map = self.shared.destinations.lock();
        stats.active_destinations = map.len() as u64;
        stats.queued_now = map.values().map(|d| d.state.lock().pending()).sum();
        stats.queued_bytes = self.shared.total.used() as u64;
        stats
    }

    /// Stops accepting deliveries, sends every buffered batch, and waits up to `grace`
    /// for the queues to drain (retries continue meanwhile). Then cancels in-flight
    /// attempts and drops what is left, counted in [`Stats::dropped_shutdown`].
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared.closing.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        for dest in self.destinations() {
            let superseded = dest.state.lock().flush_all();
            Counters::add(&shared.counters.superseded, superseded);
            dest.wake.notify_one();
        }
        while self.stats().queued_now > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline - now)).await;
        }
        shared.stop.send_replace(true);
        for dest in self.destinations() {
            let dropped = dest.state.lock().abandon_queued();
            Counters::add(&shared.counters.dropped_shutdown, dropped);
            dest.wake.notify_one();
        }
    }

    /// The current destinations, taken out of the map lock.
    fn destinations(&self) -> Vec<Arc<Destination>> {
        self.shared.destinations.lock().values().cloned().collect()
    }
}
