//! The notification the core hands to the delivery engine (`notify.rs` decides them,
//! `poa.rs` admits them, `pch.rs` queues them for polling). It depends on no other
//! module.

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// One notification for the delivery engine.
#[derive(Debug, Clone)]
pub struct OutgoingNotification {
    /// SP-relative ID of the subscription (`sur`), or of the `<request>` whose result a
    /// [`NotificationKind::Response`] carries; batches and rate limits are per source and
    /// destination.
    pub subscription: String,
    /// Absolute `http(s)` URIs tried in order.
    pub targets: Vec<String>,
    /// `to` of the NOTIFY primitive.
    pub to: String,
    /// Whose security association `targets` are reached over (TS-0003 8.2.1): the CSE-ID
    /// of the next hop when the receiver is behind another CSE and `targets` are that
    /// CSE's points of access, or the AE-ID of an AE hosted here whose own points of
    /// access they are. `None` for a URL.
    pub peer: Option<String>,
    /// What `event` is, and so which root wraps it.
    pub kind: NotificationKind,
    /// One `m2m:sgn` (or, by `kind`, `m2m:rsp`) object's members, without the wrapper.
    /// Shared by the notifications of one event to several targets: held once.
    pub event: Arc<Value>,
    /// `bn`: (num, dur).
    pub batch: Option<(u32, Duration)>,
    /// `rl`: (mnn, tww).
    pub rate: Option<(u32, Duration)>,
    /// `ln`.
    pub latest_only: bool,
    /// `pn` = sendLatest.
    pub pending_latest: bool,
}

/// What one notification carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotificationKind {
    /// A subscription's notification: `event` is sent as `{"m2m:sgn": event}`.
    #[default]
    Event,
    /// The result of a non-blocking asynchronous request (TS-0001 8.2.2; TS-0004 7.3.2):
    /// `event` is a response primitive, sent as `{"m2m:rsp": event}`. It has no
    /// subscription policy, so it is never batched or aggregated.
    Response,
}

impl NotificationKind {
    /// The root member of the NOTIFY's `pc`.
    pub fn root(self) -> &'static str {
        match self {
            NotificationKind::Event => "m2m:sgn",
            NotificationKind::Response => "m2m:rsp",
        }
    }
}
