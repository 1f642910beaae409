//! `[limits]`: the bounds that keep the server available under load or attack
//! (docs/security.md, "Availability"): connection and handshake caps, connection
//! timeouts, outbound requests in flight, subscriptions per originator, the byte budgets
//! of the notification queues. The file section ([`LimitsSection`], every key optional) and its resolved,
//! validated form ([`Limits`]); defaults are the `DEFAULT_*` constants of the crates that
//! enforce them.

use bastion_http::listen;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Accepted range of `max-connections` and `max-tls-handshakes`.
const CAP_RANGE: (i64, i64) = (1, 1_000_000);
/// Accepted range of the notification byte budgets: 4 KiB to 64 GiB.
const BYTES_RANGE: (i64, i64) = (4096, 1 << 36);
/// Accepted range of the timeouts, ms: 10 ms to one hour.
const TIMEOUT_RANGE_MS: (i64, i64) = (10, 3_600_000);
/// Descriptors kept for everything but inbound connections (store, logs, outbound
/// requests, notifications) when `max-connections` is fitted under the descriptor limit.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// `[limits]` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tls_handshakes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_requests: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subscriptions_per_originator: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_destination_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_total_bytes: Option<i64>,
}

/// The resolved `[limits]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections, both listeners together; fitted under the descriptor limit at
    /// start ([`Limits::connections_under`]).
    pub max_connections: usize,
    /// TLS handshakes in progress.
    pub max_tls_handshakes: usize,
    pub timeouts: listen::Timeouts,
    /// Requests to other CSEs in flight (forwarding, subscription verification, group
    /// members elsewhere).
    pub max_outbound_requests: usize,
    /// `<subscription>` resources one originator may hold.
    pub max_subscriptions_per_originator: usize,
    /// Estimated bytes of the notifications one destination's queue may hold.
    pub notification_destination_bytes: usize,
    /// Estimated bytes of the notifications all queues may hold together.
    pub notification_total_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: listen::DEFAULT_MAX_CONNECTIONS,
            max_tls_handshakes: listen::DEFAULT_MAX_HANDSHAKES,
            timeouts: listen::Timeouts::default(),
            max_outbound_requests: crate::outbound::DEFAULT_MAX_IN_FLIGHT,
            max_subscriptions_per_originator:
                bastion_core::config::DEFAULT_MAX_SUBSCRIPTIONS_PER_ORIGINATOR,
            notification_destination_bytes: bastion_notify::DEFAULT_MAX_DESTINATION_BYTES,
            notification_total_bytes: bastion_notify::DEFAULT_MAX_TOTAL_BYTES,
        }
    }
}

impl Limits {
    /// Validates `section`, filling unset keys with the defaults; every problem is
    /// reported.
    pub fn resolve(section: &LimitsSection) -> Result<Limits, Vec<String>> {
        let d = Limits::default();
        let mut problems = Vec::new();
        // Every key is checked against its range; a problem names the section.
        let mut setting = |key: &str, value: Option<i64>, default: i64, range: (i64, i64)| {
            let key = format!("[limits] {key}");
            super::settings::ranged_or_default(&mut problems, &key, value, default, range)
        };
        let mut count = |key: &str, value: Option<i64>, default: usize| {
            setting(key, value, default as i64, CAP_RANGE) as usize
        };
        let max_connections = count(
            "max-connections",
            section.max_connections,
            d.max_connections,
        );
        let max_tls_handshakes = count(
            "max-tls-handshakes",
            section.max_tls_handshakes,
            d.max_tls_handshakes,
        );
        let max_outbound_requests = count(
            "max-outbound-requests",
            section.max_outbound_requests,
            d.max_outbound_requests,
        );
        let max_subscriptions_per_originator = count(
            "max-subscriptions-per-originator",
            section.max_subscriptions_per_originator,
            d.max_subscriptions_per_originator,
        );
        let mut bytes = |key: &str, value: Option<i64>, default: usize| {
            setting(key, value, default as i64, BYTES_RANGE) as usize
        };
        let notification_destination_bytes = bytes(
            "notification-destination-bytes",
            section.notification_destination_bytes,
            d.notification_destination_bytes,
        );
        let notification_total_bytes = bytes(
            "notification-total-bytes",
            section.notification_total_bytes,
            d.notification_total_bytes,
        );
        let mut ms = |key: &str, value: Option<i64>, default: Duration| {
            let ms = setting(key, value, default.as_millis() as i64, TIMEOUT_RANGE_MS);
            Duration::from_millis(ms as u64)
        };
        let timeouts = listen::Timeouts {
            header: ms(
                "header-timeout-ms",
                section.header_timeout_ms,
                d.timeouts.header,
            ),
            body: ms("body-timeout-ms", section.body_timeout_ms, d.timeouts.body),
            idle: ms("idle-timeout-ms", section.idle_timeout_ms, d.timeouts.idle),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Limits {
            max_connections,
            max_tls_handshakes,
            timeouts,
            max_outbound_requests,
            max_subscriptions_per_originator,
            notification_destination_bytes,
            notification_total_bytes,
        })
    }

    /// Every key set, for `bastion config check`.
    pub fn to_section(&self) -> LimitsSection {
        LimitsSection {
            max_connections: Some(self.max_connections as i64),
            max_tls_handshakes: Some(self.max_tls_handshakes as i64),
            header_timeout_ms: Some(self.timeouts.header.as_millis() as i64),
            body_timeout_ms: Some(self.timeouts.body.as_millis() as i64),
            idle_timeout_ms: Some(self.timeouts.idle.as_millis() as i64),
            max_outbound_requests: Some(self.max_outbound_requests as i64),
            max_subscriptions_per_originator: Some(self.max_subscriptions_per_originator as i64),
            notification_destination_bytes: Some(self.notification_destination_bytes as i64),
            notification_total_bytes: Some(self.notification_total_bytes as i64),
        }
    }

    /// The connection cap for a process allowed `descriptors` open files: the configured
    /// cap, lowered to leave [`RESERVED_DESCRIPTORS`] for everything else (at least 1).
    pub fn connections_under(&self, descriptors: Option<u64>) -> usize {
        match descriptors {
            Some(limit) => {
                let room = limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
                self.max_connections
                    .min(usize::try_from(room).unwrap_or(usize::MAX))
            }
            None => self.max_connections,
        }
    }
}

/// The connection and handshake caps a process's listeners share (`bastion serve`'s,
/// `bastion das`'s), the connection cap fitted under the process's descriptor limit
/// (docs/security.md, "Availability"); a lowered cap is logged.
pub fn connection_gate(limits: &Limits) -> listen::Gate {
    let descriptors = descriptor_limit();
    let max_connections = limits.connections_under(descriptors);
    if max_connections < limits.max_connections {
        tracing::info!(
            configured = limits.max_connections,
            descriptors = descriptors.unwrap_or_default(),
            "max-connections lowered to {max_connections} to stay under the descriptor limit"
        );
    }
    listen::Gate::new(max_connections, limits.max_tls_handshakes)
}

/// The process's soft limit on open descriptors, when it has one.
#[cfg(unix)]
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
pub fn descriptor_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        assert_eq!(
            Limits::resolve(&LimitsSection::default()),
            Ok(Limits::default())
        );
        let bad = LimitsSection {
            max_connections: Some(0),
            header_timeout_ms: Some(5),
            ..LimitsSection::default()
        };
        let problems = Limits::resolve(&bad).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("[limits] max-connections 0"));
        assert!(problems[1].starts_with("[limits] header-timeout-ms 5"));
        let round = Limits::resolve(&Limits::default().to_section());
        assert_eq!(round, Ok(Limits::default()));
    }

    #[test]
    fn the_connection_cap_leaves_room_for_other_descriptors() {
        let limits = Limits::default();
        assert_eq!(limits.connections_under(Some(128)), 64);
        assert_eq!(limits.connections_under(Some(10)), 1);
        assert_eq!(
            limits.connections_under(Some(1 << 40)),
            limits.max_connections
        );
        assert_eq!(limits.connections_under(None), limits.max_connections);
    }
}
