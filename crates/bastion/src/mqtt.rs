//! `[mqtt]` and `--mqtt`: the broker the CSE's MQTT binding connects to (TS-0010;
//! docs/bindings.md). Owns the section as written ([`MqttSection`]) and its validation
//! into [`MqttSettings`]; the binding itself is `bastion-mqtt`.

use crate::client_tls::{client_from_files, ClientCredentialFiles};
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
    /// `mqtts://` only: the CSE's PSK identity at the broker; with `tls-psk-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_psk_identity: Option<String>,
    /// Owner-only file holding that PSK in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_psk_file: Option<String>,
    /// `mqtts://` only: the CSE's certificate chain (PEM); with `tls-key-file` and
    /// `tls-ca-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate_file: Option<String>,
    /// Owner-only file holding the certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<String>,
    /// Trust anchors (PEM) the broker's certificate is verified against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<String>,
    /// The name sent as SNI and checked in the broker's certificate; the broker's host
    /// by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
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
    /// The CSE's TLS credential for an `mqtts://` broker.
    pub tls: Option<MqttTls>,
    pub max_payload_bytes: usize,
    pub max_in_flight: usize,
    pub max_outbound_bytes: usize,
    pub response_timeout: Duration,
}

/// The CSE's credential towards an `mqtts://` broker: file names as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttTls {
    pub credential: MqttTlsCredential,
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MqttTlsCredential {
    Psk {
        identity: String,
        key_file: PathBuf,
    },
    Certificate {
        chain_file: PathBuf,
        key_file: PathBuf,
        anchors_file: PathBuf,
    },
}

/// The `tls-*` keys of `[mqtt]` into a credential; `tls` is whether the broker is
/// `mqtts://`.
fn tls_of(section: &MqttSection, tls: bool, problems: &mut Vec<String>) -> Option<MqttTls> {
    let psk = [&section.tls_psk_identity, &section.tls_psk_file];
    let cert = [
        &section.tls_certificate_file,
        &section.tls_key_file,
        &section.tls_ca_file,
    ];
    let any_psk = psk.iter().any(|k| k.is_some());
    let any_cert = cert.iter().any(|k| k.is_some());
    if !tls {
        if any_psk || any_cert || section.tls_server_name.is_some() {
            problems.push("[mqtt] tls-* keys need an mqtts:// broker".into());
        }
        return None;
    }
    let credential = match (any_psk, any_cert) {
        (true, false) => match (&section.tls_psk_identity, &section.tls_psk_file) {
            (Some(identity), Some(file)) => MqttTlsCredential::Psk {
                identity: identity.clone(),
                key_file: PathBuf::from(file),
            },
            _ => {
                problems.push("[mqtt] tls-psk-identity and tls-psk-file go together".into());
                return None;
            }
        },
        (false, true) => match (
            &section.tls_certificate_file,
            &section.tls_key_file,
            &section.tls_ca_file,
        ) {
            (Some(chain), Some(key), Some(ca)) => MqttTlsCredential::Certificate {
                chain_file: PathBuf::from(chain),
                key_file: PathBuf::from(key),
                anchors_file: PathBuf::from(ca),
            },
            _ => {
                problems.push(
                    "[mqtt] tls-certificate-file, tls-key-file and tls-ca-file go together".into(),
                );
                return None;
            }
        },
        (true, true) => {
            problems.push("[mqtt] give tls-psk-identity or tls-certificate-file, not both".into());
            return None;
        }
        (false, false) => {
            problems.push(
                "[mqtt] an mqtts:// broker needs the CSE's credential: tls-psk-identity and \
                 tls-psk-file, or tls-certificate-file, tls-key-file and tls-ca-file"
                    .into(),
            );
            return None;
        }
    };
    Some(MqttTls {
        credential,
        server_name: section.tls_server_name.clone(),
    })
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
    let tls = broker
        .as_ref()
        .and_then(|b| tls_of(&section, b.tls, &mut problems));
    if max_outbound_bytes < max_payload_bytes {
        problems.push("[mqtt] max-outbound-bytes must hold at least max-payload-bytes".into());
    }
    match broker {
        Some(broker) if problems.is_empty() => Ok(Some(MqttSettings {
            broker,
            broker_enforces_originator: section.broker_enforces_originator.unwrap_or(false),
            credentials,
            advertise: section.advertise.unwrap_or(true),
            tls,
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
        let tls = match &self.tls {
            Some(tls) => Some(self.broker_tls(tls, &resolve)?),
            None => None,
        };
        Ok(MqttConfig {
            broker_enforces_originator: self.broker_enforces_originator,
            credentials,
            tls,
            max_payload_bytes: self.max_payload_bytes,
            max_in_flight: self.max_in_flight,
            max_outbound_bytes: self.max_outbound_bytes,
            response_timeout: self.response_timeout,
            ..MqttConfig::new(self.broker.clone(), cse_id)
        })
    }

    /// The CSE's TLS client towards the broker, its files read.
    fn broker_tls(
        &self,
        tls: &MqttTls,
        resolve: &impl Fn(&Path) -> PathBuf,
    ) -> Result<bastion_mqtt::BrokerTls, String> {
        let files = match &tls.credential {
            MqttTlsCredential::Psk { identity, key_file } => ClientCredentialFiles::Psk {
                identity,
                key_file,
                any_identity: true,
            },
            MqttTlsCredential::Certificate {
                chain_file,
                key_file,
                anchors_file,
            } => ClientCredentialFiles::Certificate {
                chain_file,
                key_file,
                anchors_file,
            },
        };
        let client = client_from_files(files, resolve, "[mqtt] tls").map_err(|e| e.to_string())?;
        Ok(bastion_mqtt::BrokerTls {
            client: std::sync::Arc::new(client),
            server_name: tls
                .server_name
                .clone()
                .unwrap_or_else(|| self.broker.host.clone()),
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
            ..self.tls_section()
        }
    }

    /// The `tls-*` keys of the section.
    fn tls_section(&self) -> MqttSection {
        let Some(tls) = &self.tls else {
            return MqttSection::default();
        };
        let text = |p: &PathBuf| Some(p.to_string_lossy().into_owned());
        let mut section = MqttSection {
            tls_server_name: tls.server_name.clone(),
            ..MqttSection::default()
        };
        match &tls.credential {
            MqttTlsCredential::Psk { identity, key_file } => {
                section.tls_psk_identity = Some(identity.clone());
                section.tls_psk_file = text(key_file);
            }
            MqttTlsCredential::Certificate {
                chain_file,
                key_file,
                anchors_file,
            } => {
                section.tls_certificate_file = text(chain_file);
                section.tls_key_file = text(key_file);
                section.tls_ca_file = text(anchors_file);
            }
        }
        section
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
    fn tls_keys_need_mqtts_and_mqtts_needs_one_whole_credential() {
        let with = |broker: &str, section: MqttSection| {
            resolve(
                None,
                Some(MqttSection {
                    broker: Some(broker.into()),
                    ..section
                }),
            )
        };
        let psk = MqttSection {
            tls_psk_identity: Some("id-in".into()),
            tls_psk_file: Some("mqtt.psk".into()),
            ..MqttSection::default()
        };
        assert_eq!(
            with("mqtt://h", psk.clone()),
            Err(vec!["[mqtt] tls-* keys need an mqtts:// broker".to_owned()])
        );
        let settings = with("mqtts://h", psk.clone()).unwrap().unwrap();
        assert_eq!(
            settings.tls.map(|t| t.credential),
            Some(MqttTlsCredential::Psk {
                identity: "id-in".into(),
                key_file: PathBuf::from("mqtt.psk"),
            })
        );
        assert_eq!(
            with("mqtts://h", MqttSection::default()).unwrap_err()[0],
            "[mqtt] an mqtts:// broker needs the CSE's credential: tls-psk-identity and \
             tls-psk-file, or tls-certificate-file, tls-key-file and tls-ca-file"
        );
        let half_certificate = MqttSection {
            tls_certificate_file: Some("c.pem".into()),
            tls_key_file: Some("c.key".into()),
            ..MqttSection::default()
        };
        assert_eq!(
            with("mqtts://h", half_certificate),
            Err(vec![
                "[mqtt] tls-certificate-file, tls-key-file and tls-ca-file go together".to_owned()
            ])
        );
        let both = MqttSection {
            tls_ca_file: Some("ca.pem".into()),
            ..psk
        };
        assert_eq!(
            with("mqtts://h", both),
            Err(vec![
                "[mqtt] give tls-psk-identity or tls-certificate-file, not both".to_owned()
            ])
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
            broker: Some("http://broker".into()),
            max_in_flight: Some(0),
            ..MqttSection::default()
        };
        let problems = resolve(None, Some(bad)).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("invalid MQTT broker URL"),
            "{problems:?}"
        );
        assert!(problems[1].contains("[mqtt] max-in-flight"), "{problems:?}");
    }
}
