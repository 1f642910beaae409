//! `[coap]` and `--coap-listen`: the UDP address of the CSE's CoAP binding (TS-0008;
//! docs/bindings.md) and its bounds. Owns the section as written ([`CoapSection`]) and
//! its validation into [`CoapSettings`]; the binding itself is `bastion-coap`.

use bastion_coap::CoapConfig;
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
    /// Whether the CSEBase `poa` lists `coap://ADDR:PORT`.
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
}

/// The validated CoAP binding settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoapSettings {
    pub listen: SocketAddr,
    pub advertise: bool,
    pub config: CoapConfig,
}

/// Validates `[coap]` with `--coap-listen` (`flag`, which wins over `listen`): `None`
/// when no address is named (then no other key may be set), else the settings or every
/// problem.
pub fn resolve(
    flag: Option<String>,
    section: Option<CoapSection>,
) -> Result<Option<CoapSettings>, Vec<String>> {
    let section = section.unwrap_or_default();
    let Some(addr) = flag.or(section.listen.clone()) else {
        return if section == CoapSection::default() {
            Ok(None)
        } else {
            Err(vec!["[coap] needs listen (or --coap-listen)".to_owned()])
        };
    };
    let mut problems = Vec::new();
    let listen = addr
        .parse::<SocketAddr>()
        .map_err(|_| problems.push(format!("coap listen {addr:?}: expected ADDR:PORT")))
        .ok();
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
    if !block_size.is_power_of_two() {
        problems.push("[coap] block-size must be a power of two (16 to 1024)".into());
    }
    if block_size + 128 > max_datagram_bytes {
        problems.push(
            "[coap] max-datagram-bytes must hold a block and its header (block-size + 128)".into(),
        );
    }
    match listen {
        Some(listen) if problems.is_empty() => Ok(Some(CoapSettings {
            listen,
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
        })),
        _ => Err(problems),
    }
}

impl CoapSettings {
    /// The section, every key set, for `bastion config check`.
    pub fn to_section(&self) -> CoapSection {
        let c = &self.config;
        CoapSection {
            listen: Some(self.listen.to_string()),
            advertise: Some(self.advertise),
            max_datagram_bytes: Some(c.max_datagram_bytes as i64),
            block_size: Some(c.block_size as i64),
            max_request_bytes: Some(c.max_request_bytes as i64),
            max_buffered_per_peer: Some(c.max_buffered_per_peer as i64),
            max_buffered_bytes: Some(c.max_buffered_bytes as i64),
            max_in_flight: Some(c.max_in_flight as i64),
            response_timeout_ms: Some(c.response_timeout.as_millis() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_listen_no_binding_and_no_stray_keys() {
        assert_eq!(resolve(None, None), Ok(None));
        let stray = CoapSection {
            block_size: Some(64),
            ..CoapSection::default()
        };
        assert_eq!(
            resolve(None, Some(stray)),
            Err(vec!["[coap] needs listen (or --coap-listen)".to_owned()])
        );
    }

    #[test]
    fn the_flag_wins_and_defaults_fill_in() {
        let file = CoapSection {
            listen: Some("0.0.0.0:5683".into()),
            advertise: Some(false),
            ..CoapSection::default()
        };
        let s = resolve(Some("127.0.0.1:5684".into()), Some(file))
            .expect("valid")
            .expect("configured");
        assert_eq!(s.listen.to_string(), "127.0.0.1:5684");
        assert!(!s.advertise);
        assert_eq!(s.config, CoapConfig::default());
        assert_eq!(resolve(None, Some(s.to_section())), Ok(Some(s)));
    }

    #[test]
    fn bad_values_are_named() {
        let bad = CoapSection {
            listen: Some("localhost".into()),
            block_size: Some(100),
            ..CoapSection::default()
        };
        let problems = resolve(None, Some(bad)).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("expected ADDR:PORT"), "{problems:?}");
        assert!(problems[1].contains("power of two"), "{problems:?}");
    }
}
