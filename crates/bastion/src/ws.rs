//! `[ws]`, `--ws-listen` and `--wss-listen`: the CSE's WebSocket listeners (TS-0020;
//! docs/bindings.md). Owns the section as written ([`WsSection`]) and its validation into
//! [`WsSettings`]; the binding itself is `bastion-ws`.

use bastion_ws::WsConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// `[ws]` as written; every key optional here, checked by [`resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WsSection {
    /// `ADDR:PORT` of the plain listener (`ws://`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `ADDR:PORT` of the TLS listener (`wss://`, needs `[tls]`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<String>,
    /// Whether the CSEBase `poa` lists `ws://ADDR:PORT` and `wss://ADDR:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout_ms: Option<i64>,
}

/// The validated WebSocket settings: at least one listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsSettings {
    pub listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub advertise: bool,
    pub max_connections: usize,
    pub max_message_bytes: usize,
    pub max_in_flight: usize,
    pub max_outbound_bytes: usize,
    pub idle_timeout: Duration,
    pub response_timeout: Duration,
}

/// What the rest of the settings decide for the WebSocket listeners.
pub struct Context {
    /// `[http] insecure`: a plain listener may be on a non-loopback address.
    pub insecure: bool,
    /// `[tls]` is configured: its server can serve `wss://`.
    pub tls: bool,
}

/// Validates `[ws]` with `--ws-listen` and `--wss-listen` (which win over the file):
/// `None` when no listener is named (then no other key may be set), else the settings
/// or every problem.
pub fn resolve(
    listen_flag: Option<String>,
    tls_listen_flag: Option<String>,
    section: Option<WsSection>,
    context: &Context,
) -> Result<Option<WsSettings>, Vec<String>> {
    let section = section.unwrap_or_default();
    let listen = listen_flag.or(section.listen.clone());
    let tls_listen = tls_listen_flag.or(section.tls_listen.clone());
    if listen.is_none() && tls_listen.is_none() {
        return if section == WsSection::default() {
            Ok(None)
        } else {
            Err(vec![
                "[ws] needs listen or tls-listen (or --ws-listen, --wss-listen)".to_owned(),
            ])
        };
    }
    let mut problems = Vec::new();
    let mut address = |key: &str, text: Option<String>| {
        text.and_then(|t| {
            t.parse::<SocketAddr>()
                .map_err(|_| {
                    problems.push(format!(
                        "[ws] {key} {t:?}: must be an IP address and port such as \"127.0.0.1:8081\""
                    ))
                })
                .ok()
        })
    };
    let listen = address("listen", listen);
    let tls_listen = address("tls-listen", tls_listen);
    if let Some(addr) = listen {
        // As the plain HTTP listener: no association, so loopback unless the operator
        // opts in (docs/security.md).
        if !addr.ip().is_loopback() && !context.insecure {
            problems.push(format!(
                "[ws] listen {addr} is not a loopback address: WebSocket without TLS has no \
                 security association; use tls-listen (--wss-listen), or set [http] insecure = \
                 true (--insecure)"
            ));
        }
    }
    if tls_listen.is_some() && !context.tls {
        problems.push("[ws] tls-listen needs [tls] (its credentials and settings)".to_owned());
    }
    let bounds = bounds(&section, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Some(WsSettings {
        listen,
        tls_listen,
        advertise: section.advertise.unwrap_or(true),
        ..bounds
    }))
}

/// The bounds of `section` (defaults where not set), every bad value a problem.
fn bounds(section: &WsSection, problems: &mut Vec<String>) -> WsSettings {
    let mut ranged = |key: &str, value: Option<i64>, default: usize, range: (i64, i64)| {
        crate::settings::ranged_or_default(
            problems,
            &format!("[ws] {key}"),
            value,
            default as i64,
            range,
        ) as usize
    };
    let max_connections = ranged(
        "max-connections",
        section.max_connections,
        bastion_ws::DEFAULT_MAX_CONNECTIONS,
        (1, 1_000_000),
    );
    let max_message_bytes = ranged(
        "max-message-bytes",
        section.max_message_bytes,
        bastion_ws::DEFAULT_MAX_MESSAGE_BYTES,
        (1024, 64 * 1024 * 1024),
    );
    let max_in_flight = ranged(
        "max-in-flight",
        section.max_in_flight,
        bastion_ws::DEFAULT_MAX_IN_FLIGHT,
        (1, 4096),
    );
    let max_outbound_bytes = ranged(
        "max-outbound-bytes",
        section.max_outbound_bytes,
        bastion_ws::DEFAULT_MAX_OUTBOUND_BYTES,
        (64 * 1024, 1024 * 1024 * 1024),
    );
    let idle_secs = ranged(
        "idle-timeout-secs",
        section.idle_timeout_secs,
        bastion_ws::DEFAULT_IDLE_TIMEOUT.as_secs() as usize,
        (1, 86_400),
    );
    let timeout_ms = ranged(
        "response-timeout-ms",
        section.response_timeout_ms,
        bastion_ws::DEFAULT_RESPONSE_TIMEOUT.as_millis() as usize,
        (100, 600_000),
    );
    if max_outbound_bytes < max_message_bytes {
        problems.push("[ws] max-outbound-bytes must hold at least max-message-bytes".into());
    }
    WsSettings {
        listen: None,
        tls_listen: None,
        advertise: true,
        max_connections,
        max_message_bytes,
        max_in_flight,
        max_outbound_bytes,
        idle_timeout: Duration::from_secs(idle_secs as u64),
        response_timeout: Duration::from_millis(timeout_ms as u64),
    }
}

impl WsSettings {
    /// The binding's configuration for the CSE `cse_id` of the SP `sp_id`.
    pub fn config(&self, cse_id: &str, sp_id: &str) -> WsConfig {
        WsConfig {
            max_connections: self.max_connections,
            max_message_bytes: self.max_message_bytes,
            max_in_flight: self.max_in_flight,
            max_outbound_bytes: self.max_outbound_bytes,
            idle_timeout: self.idle_timeout,
            response_timeout: self.response_timeout,
            ..WsConfig::new(cse_id, sp_id)
        }
    }

    /// The section, every key set, for `bastion config check`.
    pub fn to_section(&self) -> WsSection {
        WsSection {
            listen: self.listen.map(|a| a.to_string()),
            tls_listen: self.tls_listen.map(|a| a.to_string()),
            advertise: Some(self.advertise),
            max_connections: Some(self.max_connections as i64),
            max_message_bytes: Some(self.max_message_bytes as i64),
            max_in_flight: Some(self.max_in_flight as i64),
            max_outbound_bytes: Some(self.max_outbound_bytes as i64),
            idle_timeout_secs: Some(self.idle_timeout.as_secs() as i64),
            response_timeout_ms: Some(self.response_timeout.as_millis() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Context = Context {
        insecure: false,
        tls: true,
    };

    #[test]
    fn no_listener_no_binding_and_no_stray_keys() {
        assert_eq!(resolve(None, None, None, &LOCAL), Ok(None));
        let stray = WsSection {
            max_in_flight: Some(4),
            ..WsSection::default()
        };
        assert_eq!(
            resolve(None, None, Some(stray), &LOCAL),
            Err(vec![
                "[ws] needs listen or tls-listen (or --ws-listen, --wss-listen)".to_owned()
            ])
        );
    }

    #[test]
    fn the_flags_win_and_defaults_fill_in() {
        let file = WsSection {
            listen: Some("127.0.0.1:1".into()),
            max_in_flight: Some(3),
            ..WsSection::default()
        };
        let s = resolve(
            Some("127.0.0.1:8081".into()),
            Some("0.0.0.0:8444".into()),
            Some(file),
            &LOCAL,
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(s.listen, Some("127.0.0.1:8081".parse().expect("addr")));
        assert_eq!(s.tls_listen, Some("0.0.0.0:8444".parse().expect("addr")));
        assert!(s.advertise);
        assert_eq!(s.max_in_flight, 3);
        assert_eq!(s.max_connections, bastion_ws::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            resolve(None, None, Some(s.to_section()), &LOCAL),
            Ok(Some(s))
        );
    }

    #[test]
    fn plain_off_loopback_needs_insecure_and_wss_needs_tls() {
        let open = |insecure, tls| {
            resolve(
                Some("0.0.0.0:8081".into()),
                Some("127.0.0.1:8444".into()),
                None,
                &Context { insecure, tls },
            )
        };
        let problems = open(false, false).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("not a loopback address"),
            "{problems:?}"
        );
        assert!(problems[1].contains("needs [tls]"), "{problems:?}");
        assert!(open(true, true).is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = WsSection {
            listen: Some("localhost:80".into()),
            max_in_flight: Some(0),
            ..WsSection::default()
        };
        let problems = resolve(None, None, Some(bad), &LOCAL).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("[ws] listen"), "{problems:?}");
        assert!(problems[1].contains("[ws] max-in-flight"), "{problems:?}");
    }
}
