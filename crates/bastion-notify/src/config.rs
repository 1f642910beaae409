//! What callers hand to the engine: its configuration and one delivery with its policy.

use std::fmt;
use std::time::Duration;

/// Built-in default of [`NotifierConfig::max_destination_bytes`]: 4 MiB.
pub const DEFAULT_MAX_DESTINATION_BYTES: usize = 4 << 20;
/// Built-in default of [`NotifierConfig::max_total_bytes`]: 64 MiB.
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 64 << 20;

/// Settings of a [`Notifier`](crate::Notifier). Every limit is per destination or per
/// notification so that one bad receiver cannot consume the budget of the others.
#[derive(Clone, Debug)]
pub struct NotifierConfig {
    /// `fr` of every NOTIFY: the hosting CSE-ID, e.g. `/id-in` (TS-0001: the sender of a
    /// notification is the hosting CSE).
    pub originator: String,
    /// `rvi` of every NOTIFY, e.g. `3`.
    pub release: String,
    /// Events one destination may hold (queued, buffered in batches or in flight) before
    /// [`submit`](crate::Notifier::submit) rejects new ones. Default 1024.
    pub queue_capacity: usize,
    /// Estimated bytes of the events one destination may hold (queued, batched or in
    /// flight) before `submit` rejects new ones. Default 4 MiB.
    pub max_destination_bytes: usize,
    /// Estimated bytes of the events all destinations together may hold; an event held
    /// by several destinations counts once per destination. Default 64 MiB.
    pub max_total_bytes: usize,
    /// Attempts per notification before it is dropped (each attempt tries every target of
    /// the destination once). Default 6; 0 is treated as 1.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled per further retry up to
    /// [`backoff_max`](Self::backoff_max), then jittered. Default 500 ms.
    pub backoff_initial: Duration,
    /// Cap of the retry wait before jitter. Default 30 s.
    pub backoff_max: Duration,
    /// Deadline of one HTTP exchange with one target. Default 5 s.
    pub request_timeout: Duration,
    /// A destination worker with nothing queued exits after this long, freeing its task
    /// and state; the next event respawns it. Default 60 s.
    pub idle_worker_timeout: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            originator: "/id-in".into(),
            release: "3".into(),
            queue_capacity: 1024,
            max_destination_bytes: DEFAULT_MAX_DESTINATION_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_attempts: 6,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            idle_worker_timeout: Duration::from_secs(60),
        }
    }
}

/// One event to deliver to one notification target.
///
/// The core has already decided what to notify and where: `event` is the finished
/// `m2m:sgn` content and `targets` the resolved URLs. Its `Debug` output leaves the event
/// out because notification content may be sensitive.
#[derive(Clone)]
pub struct Delivery {
    /// The subscription's resource ID (`sur`); keys batching, rate and pending state.
    pub subscription: String,
    /// Absolute `http(s)` URLs tried in order on each attempt (an AE's `poa` list, or the
    /// `nu` URL). The list, joined, identifies the destination and its queue.
    pub targets: Vec<String>,
    /// `to` of the NOTIFY primitive: the `nu` value as given.
    pub to: String,
    /// Whom `targets` belong to: the CSE-ID of the CSE the receiver is reached through
    /// (an AE behind another CSE), or the AE-ID of a receiver reached at its own points
    /// of access; `None` for a URL. The [`Routes`](crate::Routes) uses it to pick the
    /// security association with that peer.
    pub peer: Option<String>,
    /// The content of ONE `m2m:sgn` object (`{"nev":{..},"sur":"..",..}`), without the
    /// `m2m:sgn` wrapper, which the engine adds (or aggregates into `m2m:agn`); or, by
    /// [`content`](Self::content), one response primitive without its `m2m:rsp` wrapper.
    /// Shared: the same event submitted to several destinations is held once.
    pub event: std::sync::Arc<serde_json::Value>,
    /// What `event` is.
    pub content: Content,
    /// How this subscription's events are grouped, limited and kept while unreachable.
    pub policy: DeliveryPolicy,
}

/// What a [`Delivery`]'s `event` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Content {
    /// A subscription's event: sent as `{"m2m:sgn": event}`, aggregated into `m2m:agn`
    /// under `bn`.
    #[default]
    Notification,
    /// The response primitive of a non-blocking asynchronous request (TS-0001 8.2.2):
    /// sent alone as `{"m2m:rsp": event}`, never batched. The rest of the policy (`rl`,
    /// `pn`, `ln` backlogs) applies as to any notification; the core sends none.
    Response,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subscription", &self.subscription)
            .field("targets", &self.targets)
            .field("to", &self.to)
            .field("peer", &self.peer)
            .field("event", &"<redacted>")
            .field("content", &self.content)
            .field("policy", &self.policy)
            .finish()
    }
}

/// The subscription's notification policies (`bn`, `ln`, `rl`, `pn`). The policy of the
/// most recent delivery of a subscription applies to all its queued events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// `bn`: aggregate events into one `m2m:agn` NOTIFY.
    pub batch: Option<Batch>,
    /// `ln`: when a batch or a backlog is sent, send only the newest event (with `ec` 4,
    /// "latest").
    pub latest_only: bool,
    /// `rl`: at most `max` NOTIFYs per `window` to this destination for this
    /// subscription; the excess waits, in order.
    pub rate: Option<RateLimit>,
    /// `pn`: what to keep while the destination is unreachable.
    pub pending: PendingPolicy,
}

/// `bn` (batchNotify): collect up to `num` events, or until `dur` after the first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Events per NOTIFY; 0 is treated as 1.
    pub num: u32,
    /// Longest time the first buffered event waits.
    pub dur: Duration,
}

/// `rl` (rateLimit): at most `max` NOTIFYs in any interval of length `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// NOTIFYs allowed per window (`mnn`); 0 is treated as 1.
    pub max: u32,
    /// The window (`tww`).
    pub window: Duration,
}

/// `pn` (pendingNotification): what happens to events that arrive while the destination
/// is unreachable (its last attempt failed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PendingPolicy {
    /// `pn` 2: keep every event and send them all, in order, once it answers again.
    #[default]
    SendAllPending,
    /// `pn` 1: keep only the newest notification of the subscription; older ones are
    /// superseded (counted in [`Stats::superseded`](crate::Stats::superseded)).
    SendLatest,
}
