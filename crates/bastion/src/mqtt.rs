//! `[mqtt]` and `--mqtt`: the broker the CSE's MQTT binding connects to (TS-0010;
//! docs/bindings.md). Owns the section as written ([`MqttSection`]) and its validation
//! into [`MqttSettings`]; the binding itself is `bastion-mqtt`.

use bastion_mqtt::{Broker, MqttConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[mqtt]` as written; every key optional here, checked by [`resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MqttSection {
    /// `mqtt://HOST[:PORT]` of the broker; without it (and `--mqtt`) no MQTT binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// The broker enforces a per-client topic ACL on the request topics, so the topic's
    /// originator is authenticated (docs/bindings.md, "Identity").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_enforces_originator: Option<bool>,
    /// User name of the CSE at the broker (MQTT CONNECT); with `password-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Owner-only file holding the CSE's broker password; relative to the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Whether the CSEBase `poa` lists `mqtt://HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout_ms: Option<i64>,
}

/// The validated MQTT binding settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSettings {
    pub broker: Broker,
    pub broker_enforces_originator: bool,
    /// `username` and `password-file`, both or neither.
    pub credentials: Option<(String, PathBuf)>,
    pub advertise: bool,
    pub max_payload_bytes: usize,
    pub max_in_flight: usize,
    pub max_outbound_bytes: usize,
    pub response_timeout: Duration,
}

/// Validates `[mqtt]` with `--mqtt` (`flag`, which wins over `broker`): `None` when no
/// broker is named (then no other key may be set), else the settings or every problem.
pub fn resolve(
    flag: Option<String>,
    section: Option<MqttSection>,
) -> Result<Option<MqttSettings>, Vec<String>> {
    let section = section.unwrap_or_default();
    let Some(url) = flag.or(section.broker.clone()) else {
        return if section == MqttSection::default() {
            Ok(None)
        } else {
            Err(vec!["[mqtt] needs broker (or --mqtt)".to_owned()])
        };
    };
    let mut problems = Vec::new();
    let broker = Broker::parse(&url)
        .map_err(|e| problems.push(format!("mqtt broker: {e}")))
        .ok();
    // Ranges and their messages as for every other key (`[mqtt] ` names the section).
    let mut ranged = |key: &str, value: Option<i64>, default: usize, range: (i64, i64)| {
        crate::settings::ranged_or_default(
            &mut problems,
            &format!("[mqtt] {key}"),
            value,
            default as i64,
            range,
        ) as usize
    };
    let max_payload_bytes = ranged(
        "max-payload-bytes",
        section.max_payload_bytes,
        bastion_mqtt::DEFAULT_MAX_PAYLOAD_BYTES,
        (1024, 16 * 1024 * 1024),
    );
    let max_in_flight = ranged(
        "max-in-flight",
        section.max_in_flight,
        bastion_mqtt::DEFAULT_MAX_IN_FLIGHT,
        (1, 65_536),
    );
    let max_outbound_bytes = ranged(
        "max-outbound-bytes",
        section.max_outbound_bytes,
        bastion_mqtt::DEFAULT_MAX_OUTBOUND_BYTES,
        (64 * 1024, 1024 * 1024 * 1024),
    );
    let timeout_ms = ranged(
        "response-timeout-ms",
        section.response_timeout_ms,
        bastion_mqtt::DEFAULT_RESPONSE_TIMEOUT.as_millis() as usize,
        (100, 600_000),
    );
    let credentials = match (section.username.clone(), section.password_file.clone()) {
        (Some(user), Some(file)) if !user.is_empty() => Some((user, PathBuf::from(file))),
        (None, None) => None,
        _ => {
            problems.push("[mqtt] username and password-file go together".into());
            None
        }
    };
    if max_outbound_bytes < max_payload_bytes {
        problems.push("[mqtt] max-outbound-bytes must hold at least max-payload-bytes".into());
    }
    match broker {
        Some(broker) if problems.is_empty() => Ok(Some(MqttSettings {
            broker,
            broker_enforces_originator: section.broker_enforces_originator.unwrap_or(false),
            credentials,
            advertise: section.advertise.unwrap_or(true),
            max_payload_bytes,
            max_in_flight,
            max_outbound_bytes,
            response_timeout: Duration::from_millis(timeout_ms as u64),
        })),
        _ => Err(problems),
    }
}

impl MqttSettings {
    /// The binding's configuration for the CSE `cse_id`, the password file read
    /// (`resolve` makes a relative path absolute).
    pub fn config(
        &self,
        cse_id: &str,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<MqttConfig, String> {
        let credentials = match &self.credentials {
            Some((user, file)) => {
                let path = resolve(file);
                let password = bastion_tls::secret::read_secret_text(&path)
                    .map_err(|e| format!("password-file: {e}"))?;
                let password = zeroize::Zeroizing::new(password.trim_end().to_owned());
                Some((user.clone(), bastion_mqtt::BrokerPassword(password)))
            }
            None => None,
        };
        Ok(MqttConfig {
            broker_enforces_originator: self.broker_enforces_originator,
            credentials,
            max_payload_bytes: self.max_payload_bytes,
            max_in_flight: self.max_in_flight,
            max_outbound_bytes: self.max_outbound_bytes,
            response_timeout: self.response_timeout,
            ..MqttConfig::new(self.broker.clone(), cse_id)
        })
    }

    /// The section, every key set, for `bastion config check`.
    pub fn to_section(&self) -> MqttSection {
        MqttSection {
            broker: Some(self.broker.url()),
            broker_enforces_originator: Some(self.broker_enforces_originator),
            username: self.credentials.as_ref().map(|(user, _)| user.clone()),
            password_file: self
                .credentials
                .as_ref()
                .map(|(_, file)| file.to_string_lossy().into_owned()),
            advertise: Some(self.advertise),
            max_payload_bytes: Some(self.max_payload_bytes as i64),
            max_in_flight: Some(self.max_in_flight as i64),
            max_outbound_bytes: Some(self.max_outbound_bytes as i64),
            response_timeout_ms: Some(self.response_timeout.as_millis() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_broker_no_binding_and_no_stray_keys() {
        assert_eq!(resolve(None, None), Ok(None));
        let stray = MqttSection {
            max_in_flight: Some(4),
            ..MqttSection::default()
        };
        assert_eq!(
            resolve(None, Some(stray)),
            Err(vec!["[mqtt] needs broker (or --mqtt)".to_owned()])
        );
    }

    #[test]
    fn the_flag_wins_and_defaults_fill_in() {
        let file = MqttSection {
            broker: Some("mqtt://10.0.0.1:1883".into()),
            broker_enforces_originator: Some(true),
            ..MqttSection::default()
        };
        let s = resolve(Some("mqtt://127.0.0.1:1884".into()), Some(file))
            .expect("valid")
            .expect("configured");
        assert_eq!(s.broker.url(), "mqtt://127.0.0.1:1884");
        assert!(s.broker_enforces_originator);
        assert!(s.advertise);
        assert_eq!(s.max_in_flight, bastion_mqtt::DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(resolve(None, Some(s.to_section())), Ok(Some(s)));
    }

    #[test]
    fn broker_credentials_go_together_and_are_read_from_their_file() {
        let half = MqttSection {
            broker: Some("mqtt://127.0.0.1".into()),
            username: Some("id-in".into()),
            ..MqttSection::default()
        };
        assert_eq!(
            resolve(None, Some(half.clone())),
            Err(vec![
                "[mqtt] username and password-file go together".to_owned()
            ])
        );
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("mqtt.password");
        std::fs::write(&file, "s3cret\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let whole = MqttSection {
            password_file: Some("mqtt.password".into()),
            ..half
        };
        let settings = resolve(None, Some(whole.clone()))
            .expect("valid")
            .expect("configured");
        assert_eq!(settings.to_section().username.as_deref(), Some("id-in"));
        let config = settings
            .config("/id-in", |p| dir.path().join(p))
            .expect("readable");
        let (user, password) = config.credentials.expect("credentials");
        assert_eq!((user.as_str(), password.0.as_str()), ("id-in", "s3cret"));
        assert_eq!(format!("{password:?}"), "***");
        let missing = settings.config("/id-in", |p| dir.path().join("none").join(p));
        assert!(missing
            .expect_err("unreadable")
            .starts_with("password-file: "));
    }

    #[test]
    fn bad_values_are_named() {
        let bad = MqttSection {
            broker: Some("mqtts://broker".into()),
            max_in_flight: Some(0),
            ..MqttSection::default()
        };
        let problems = resolve(None, Some(bad)).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("not built yet"), "{problems:?}");
        assert!(problems[1].contains("[mqtt] max-in-flight"), "{problems:?}");
    }
}
