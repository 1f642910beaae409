//! `[coap]`, `--coap-listen` and `--coaps-listen`: the UDP addresses of the CSE's CoAP
//! binding (TS-0008; docs/bindings.md), plain and over DTLS, and their bounds. Owns the
//! section as written ([`CoapSection`]) and its validation into [`CoapSettings`]; the
//! binding itself is `bastion-coap`, the DTLS associations `bastion-tls`.

use bastion_coap::CoapConfig;
use bastion_tls::DtlsLimits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// `[coap]` as written; every key optional here, checked by [`resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CoapSection {
    /// `ADDR:PORT` of the UDP listener; without it (and `--coap-listen`) no CoAP binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `ADDR:PORT` of the CoAP-over-DTLS listener (`coaps://`, needs `[tls]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<String>,
    /// Whether the CSEBase `poa` lists `coap://ADDR:PORT` (and `coaps://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_datagram_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffered_per_peer: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_buffered_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtls_max_pending_handshakes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtls_max_sessions: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtls_handshake_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtls_idle_timeout_ms: Option<i64>,
}

/// The validated CoAP binding settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoapSettings {
    /// The plain-UDP listener (`coap://`).
    pub listen: Option<SocketAddr>,
    /// The DTLS listener (`coaps://`).
    pub tls_listen: Option<SocketAddr>,
    pub advertise: bool,
    pub config: CoapConfig,
    pub dtls: DtlsBounds,
}

/// The configurable DTLS bounds of the `coaps://` listener; the rest of
/// [`DtlsLimits`] keeps its defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtlsBounds {
    pub max_pending_handshakes: usize,
    pub max_sessions: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for DtlsBounds {
    fn default() -> DtlsBounds {
        let d = DtlsLimits::default();
        DtlsBounds {
            max_pending_handshakes: d.max_pending_handshakes,
            max_sessions: d.max_sessions,
            handshake_timeout: d.handshake_timeout,
            idle_timeout: d.idle_timeout,
        }
    }
}

impl DtlsBounds {
    /// The DTLS server's limits: these bounds, and a datagram as large as the binding's.
    pub fn limits(&self, config: &CoapConfig) -> DtlsLimits {
        DtlsLimits {
            max_pending_handshakes: self.max_pending_handshakes,
            max_sessions: self.max_sessions,
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout,
            max_datagram: config.max_datagram_bytes,
            ..DtlsLimits::default()
        }
    }
}

/// Validates `[coap]` with `--coap-listen` and `--coaps-listen` (`flag` and
/// `tls_flag`, which win over `listen` and `tls-listen`): `None` when no address is
/// named (then no other key may be set), else the settings or every problem. Whether
/// `[tls]` is there for `coaps` is checked where the TLS server is built.
pub fn resolve(
    flag: Option<String>,
    tls_flag: Option<String>,
    section: Option<CoapSection>,
) -> Result<Option<CoapSettings>, Vec<String>> {
    let section = section.unwrap_or_default();
    let plain = flag.or(section.listen.clone());
    let secure = tls_flag.or(section.tls_listen.clone());
    if plain.is_none() && secure.is_none() {
        return if section == CoapSection::default() {
            Ok(None)
        } else {
            Err(vec![
                "[coap] needs listen or tls-listen (or --coap-listen, --coaps-listen)".to_owned(),
            ])
        };
    }
    let mut problems = Vec::new();
    let mut address = |key: &str, addr: Option<String>| {
        addr.and_then(|a| {
            a.parse::<SocketAddr>()
                .map_err(|_| problems.push(format!("coap {key} {a:?}: expected ADDR:PORT")))
                .ok()
        })
    };
    let listen = address("listen", plain);
    let tls_listen = address("tls-listen", secure);
    let mut ranged = |key: &str, value: Option<i64>, default: usize, range: (i64, i64)| {
        crate::settings::ranged_or_default(
            &mut problems,
            &format!("[coap] {key}"),
            value,
            default as i64,
            range,
        ) as usize
    };
    let d = CoapConfig::default();
    let max_datagram_bytes = ranged(
        "max-datagram-bytes",
        section.max_datagram_bytes,
        d.max_datagram_bytes,
        (256, 65_507),
    );
    let block_size = ranged("block-size", section.block_size, d.block_size, (16, 1024));
    let max_request_bytes = ranged(
        "max-request-bytes",
        section.max_request_bytes,
        d.max_request_bytes,
        (1024, 64 * 1024 * 1024),
    );
    let max_buffered_per_peer = ranged(
        "max-buffered-per-peer",
        section.max_buffered_per_peer,
        d.max_buffered_per_peer,
        (1024, 1024 * 1024 * 1024),
    );
    let max_buffered_bytes = ranged(
        "max-buffered-bytes",
        section.max_buffered_bytes,
        d.max_buffered_bytes,
        (1024, 1024 * 1024 * 1024),
    );
    let max_in_flight = ranged(
        "max-in-flight",
        section.max_in_flight,
        d.max_in_flight,
        (1, 65_536),
    );
    let timeout_ms = ranged(
        "response-timeout-ms",
        section.response_timeout_ms,
        d.response_timeout.as_millis() as usize,
        (100, 600_000),
    );
    let dd = DtlsBounds::default();
    let max_pending_handshakes = ranged(
        "dtls-max-pending-handshakes",
        section.dtls_max_pending_handshakes,
        dd.max_pending_handshakes,
        (1, 65_536),
    );
    let max_sessions = ranged(
        "dtls-max-sessions",
        section.dtls_max_sessions,
        dd.max_sessions,
        (1, 1_000_000),
    );
    let handshake_ms = ranged(
        "dtls-handshake-timeout-ms",
        section.dtls_handshake_timeout_ms,
        dd.handshake_timeout.as_millis() as usize,
        (100, 600_000),
    );
    let idle_ms = ranged(
        "dtls-idle-timeout-ms",
        section.dtls_idle_timeout_ms,
        dd.idle_timeout.as_millis() as usize,
        (1000, 86_400_000),
    );
    if !block_size.is_power_of_two() {
        problems.push("[coap] block-size must be a power of two (16 to 1024)".into());
    }
    if block_size + 128 > max_datagram_bytes {
        problems.push(
            "[coap] max-datagram-bytes must hold a block and its header (block-size + 128)".into(),
        );
    }
    if problems.is_empty() {
        Ok(Some(CoapSettings {
            listen,
            tls_listen,
            advertise: section.advertise.unwrap_or(true),
            config: CoapConfig {
                max_datagram_bytes,
                block_size,
                max_request_bytes,
                max_buffered_per_peer,
                max_buffered_bytes,
                max_in_flight,
                response_timeout: Duration::from_millis(timeout_ms as u64),
                ..d
            },
            dtls: DtlsBounds {
                max_pending_handshakes,
                max_sessions,
                handshake_timeout: Duration::from_millis(handshake_ms as u64),
                idle_timeout: Duration::from_millis(idle_ms as u64),
            },
        }))
    } else {
        Err(problems)
    }
}

impl CoapSettings {
    /// The section, every key set, for `bastion config check`.
    pub fn to_section(&self) -> CoapSection {
        let c = &self.config;
        let t = &self.dtls;
        CoapSection {
            listen: self.listen.map(|a| a.to_string()),
            tls_listen: self.tls_listen.map(|a| a.to_string()),
            advertise: Some(self.advertise),
            max_datagram_bytes: Some(c.max_datagram_bytes as i64),
            block_size: Some(c.block_size as i64),
            max_request_bytes: Some(c.max_request_bytes as i64),
            max_buffered_per_peer: Some(c.max_buffered_per_peer as i64),
            max_buffered_bytes: Some(c.max_buffered_bytes as i64),
            max_in_flight: Some(c.max_in_flight as i64),
            response_timeout_ms: Some(c.response_timeout.as_millis() as i64),
            dtls_max_pending_handshakes: Some(t.max_pending_handshakes as i64),
            dtls_max_sessions: Some(t.max_sessions as i64),
            dtls_handshake_timeout_ms: Some(t.handshake_timeout.as_millis() as i64),
            dtls_idle_timeout_ms: Some(t.idle_timeout.as_millis() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_listen_no_binding_and_no_stray_keys() {
        assert_eq!(resolve(None, None, None), Ok(None));
        let stray = CoapSection {
            block_size: Some(64),
            ..CoapSection::default()
        };
        assert_eq!(
            resolve(None, None, Some(stray)),
            Err(vec![
                "[coap] needs listen or tls-listen (or --coap-listen, --coaps-listen)".to_owned()
            ])
        );
    }

    #[test]
    fn the_flag_wins_and_defaults_fill_in() {
        let file = CoapSection {
            listen: Some("0.0.0.0:5683".into()),
            advertise: Some(false),
            ..CoapSection::default()
        };
        let s = resolve(Some("127.0.0.1:5684".into()), None, Some(file))
            .expect("valid")
            .expect("configured");
        assert_eq!(s.listen, Some("127.0.0.1:5684".parse().expect("addr")));
        assert_eq!(s.tls_listen, None);
        assert!(!s.advertise);
        assert_eq!(s.config, CoapConfig::default());
        assert_eq!(s.dtls, DtlsBounds::default());
        assert_eq!(resolve(None, None, Some(s.to_section())), Ok(Some(s)));
    }

    #[test]
    fn a_dtls_listener_alone_with_its_bounds() {
        let file = CoapSection {
            tls_listen: Some("0.0.0.0:5684".into()),
            dtls_max_sessions: Some(10),
            dtls_idle_timeout_ms: Some(5000),
            ..CoapSection::default()
        };
        let s = resolve(None, Some("127.0.0.1:15684".into()), Some(file))
            .expect("valid")
            .expect("configured");
        assert_eq!(s.listen, None);
        assert_eq!(s.tls_listen, Some("127.0.0.1:15684".parse().expect("addr")));
        let limits = s.dtls.limits(&s.config);
        assert_eq!(limits.max_sessions, 10);
        assert_eq!(limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(limits.max_pending_handshakes, 256);
        assert_eq!(limits.max_datagram, s.config.max_datagram_bytes);
        assert_eq!(resolve(None, None, Some(s.to_section())), Ok(Some(s)));
        let bad = CoapSection {
            tls_listen: Some("nowhere".into()),
            dtls_max_sessions: Some(0),
            ..CoapSection::default()
        };
        let problems = resolve(None, None, Some(bad)).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("tls-listen"), "{problems:?}");
        assert!(problems[1].contains("dtls-max-sessions"), "{problems:?}");
    }

    #[test]
    fn bad_values_are_named() {
        let bad = CoapSection {
            listen: Some("localhost".into()),
            block_size: Some(100),
            ..CoapSection::default()
        };
        let problems = resolve(None, None, Some(bad)).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("expected ADDR:PORT"), "{problems:?}");
        assert!(problems[1].contains("power of two"), "{problems:?}");
    }
}
