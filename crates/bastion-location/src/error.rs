//! Errors of the location PIP: configuration mistakes (found when a [`crate::LocationPip`]
//! is built), failures talking to the network location server, and rejected
//! notifications. Each variant's doc says whose fault it is.

use thiserror::Error;

/// What went wrong building or driving a [`crate::LocationPip`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LocationError {
    /// Operator: a `[location]` setting is invalid; `field` is its path in the section.
    #[error("location configuration: {field}: {reason}")]
    Config { field: String, reason: String },

    /// Caller: a circle handed to `set_circles` has invalid coordinates or radius.
    #[error("invalid circle ({latitude}, {longitude}, radius {radius_m} m): {reason}")]
    InvalidCircle {
        latitude: f64,
        longitude: f64,
        radius_m: f64,
        reason: &'static str,
    },

    /// Caller: a network operation was asked for but no `[location.network]` is configured.
    #[error("no network location server is configured")]
    NoNetwork,

    /// Network: the location server could not be reached or did not answer in time.
    #[error("location server {operation}: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },

    /// Location server: it answered with an unexpected HTTP status.
    #[error("location server {operation}: HTTP status {status}")]
    Status {
        operation: &'static str,
        status: u16,
    },

    /// Location server: its answer is not the OMA Terminal Location v1 JSON we expect.
    #[error("location server {operation}: malformed answer: {reason}")]
    BadAnswer {
        operation: &'static str,
        reason: String,
    },
}

impl LocationError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> LocationError {
        LocationError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why an incoming location notification was refused. Nothing is changed by a refused
/// notification.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotificationError {
    /// Sender: the body is not a well-formed OMA TL v1 notification (answered 400).
    #[error("malformed notification: {0}")]
    Malformed(String),

    /// Sender: `callbackData` is missing or is not the one we gave the server in our
    /// subscriptions, so the notification cannot be attributed to it (answered 403).
    #[error("notification does not carry our callbackData")]
    NotOurs,
}
