//! Why a delivery was not accepted, or why a synchronous NOTIFY got no usable answer.

use std::fmt;

/// Why [`Notifier::submit`](crate::Notifier::submit) refused a delivery. Nothing was
/// queued; the core may report the drop (e.g. in its statistics or logs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The destination already holds `queue_capacity` events. The new event is rejected
    /// (the queued ones keep their order and place).
    #[error("the destination's notification queue is full")]
    QueueFull,
    /// The event does not fit in the bytes the destination's queue may hold
    /// ([`NotifierConfig::max_destination_bytes`](crate::NotifierConfig::max_destination_bytes)).
    #[error("the destination's notification queue holds its maximum of bytes")]
    DestinationBytesFull,
    /// The event does not fit in the bytes all queues together may hold
    /// ([`NotifierConfig::max_total_bytes`](crate::NotifierConfig::max_total_bytes)).
    #[error("the notification queues hold their maximum of bytes")]
    TotalBytesFull,
    /// [`Notifier::shutdown`](crate::Notifier::shutdown) was called.
    #[error("the notifier is shutting down")]
    ShuttingDown,
    /// The delivery names no target URL.
    #[error("the delivery has no target")]
    NoTargets,
    /// No tokio runtime was running when the notifier was created nor at this call, so no
    /// destination worker can be started.
    #[error("no tokio runtime to run the delivery worker")]
    NoRuntime,
}

/// Why [`Notifier::send_now`](crate::Notifier::send_now) returns no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The caller passed no target.
    #[error("no target to send to")]
    NoTargets,
    /// No target answered; one entry per target, in the order tried.
    #[error("no target answered: {}", TargetFailures(.0))]
    Unreachable(Vec<TargetFailure>),
    /// A target answered, but not with a oneM2M response this CSE understands (no or
    /// invalid `X-M2M-RSC`, a status code unknown to `bastion-proto`, a bad body). The
    /// remaining targets are not tried: the destination is reachable.
    #[error("{target} answered without a usable oneM2M response: {reason}")]
    UnrecognizedAnswer {
        /// The target that answered.
        target: String,
        /// The numeric `X-M2M-RSC`, when the answer carried one this CSE does not know.
        code: Option<u16>,
        /// What was wrong with the answer.
        reason: String,
    },
}

/// One target that did not answer, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFailure {
    /// The target URL.
    pub target: String,
    /// The client's description of the failure (connect error, timeout, ...).
    pub reason: String,
}

/// Display helper: `target (reason); target (reason)`.
struct TargetFailures<'a>(&'a [TargetFailure]);

impl fmt::Display for TargetFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} ({})", t.target, t.reason)?;
        }
        Ok(())
    }
}
