//! An enrolment target's side of the MEF (TS-0003 8.3.2.1, 8.3.5, 8.8.2.3): a client
//! presenting a PSK identity `RelativeKeID@<the MEF's FQDN>` holds a key the MEF
//! provisioned for this target and usage; [`MefKeySource`] fetches it with `RETRIEVE
//! /fetchCredentials/<KeID>/<SUID>` over the target's own TLS association with the MEF,
//! and the association is bound to the enrolee ID the MEF answered. One source, two
//! targets: the CSE asks for SUID 22 (Kuc for its SAEF; an AE that claims another ID gets
//! 4106 as with any other PSK), the MAF for SUID 21 (Km, the enrolee's master credential
//! with the MAF; "use of remotely provisioned credential", 8.8.2.3).
//!
//! Configured by `[provisioning]` (off unless present):
//!
//! ```toml
//! [provisioning]
//! mef-url = "https://mef.example.com:8444"
//! mef-fqdn = "mef.example.com"            # KeIDs with this FQDN are the MEF's
//! mef-psk-id = "cse-in@mef.example.com"   # the CSE's credential toward the MEF: a PSK …
//! mef-psk-file = "mef.psk"                #   (hex, mode 0600; data-dir relative)
//! # mef-certificate-file / mef-private-key-file / mef-trust-anchor-file … or certificates
//! mef-timeout-ms = 3000                   # bounded wait inside the handshake
//! mef-max-fetches = 16                    # fetches in flight at once
//! mef-max-cached-keys = 10000
//! ```
//!
//! Bounded: the handshake waits at most `mef-timeout-ms`; at most `mef-max-fetches` are in
//! flight (more are refused at once, the handshake fails); at most `mef-max-cached-keys` keys
//! are kept, each until its lifetime ends ([`RemotePskSource::is_current`] is false from
//! then on, which cuts kept-alive connections). A key the MEF revokes stays usable here
//! until its lifetime ends or the CSE restarts (docs/decisions.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bastion_client::{Client, ClientConfig, TlsConnector};
use bastion_keys::KeyIdentifier;
use bastion_mef::wire::{self, names, Credential};
use bastion_proto::{Operation, Request, Rsc};
use bastion_tls::{Binding, ClientOptions, PskKey, RemotePsk, RemotePskSource, TlsClient};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Failure;

/// The SUID of the key a CSE takes for a security association (SAEF, RSPF-provisioned).
pub const SAEF_SUID: u8 = 22;
/// The SUID of the key a MAF takes as a client's Km (MAF, RSPF-provisioned).
pub const MAF_SUID: u8 = 21;

/// The `mef-*` keys of `[provisioning]` (`crate::provisioning::ProvisioningSection`):
/// present when `mef-url` or `mef-fqdn` is; `fetch_timeout_ms`, `max_fetches` and
/// `max_cached_keys` are `mef-timeout-ms`, `mef-max-fetches`, `mef-max-cached-keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MefSection {
    pub mef_url: String,
    pub mef_fqdn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_psk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_psk_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_certificate_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_private_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_trust_anchor_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fetches: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cached_keys: Option<usize>,
}

/// The CSE's credential toward the MEF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MefCredential {
    /// PSK identity and the file holding the key (hex).
    Psk { id: String, file: PathBuf },
    /// Certificate chain, private key and the MEF's trust anchors (files).
    Certificate {
        chain: PathBuf,
        key: PathBuf,
        trust_anchors: PathBuf,
    },
}

/// `[provisioning]` checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisioningSettings {
    pub section: MefSection,
    pub credential: MefCredential,
    pub fetch_timeout: Duration,
    pub max_fetches: usize,
    pub max_cached_keys: usize,
}

impl ProvisioningSettings {
    /// Checks the section; file names are left as written (data-dir relative later).
    pub fn resolve(section: &MefSection) -> Result<ProvisioningSettings, Vec<String>> {
        let mut problems = Vec::new();
        if !section.mef_url.starts_with("https://") {
            problems.push("[provisioning] mef-url must be an https:// URI".to_owned());
        }
        if KeyIdentifier::new("00", &section.mef_fqdn).is_err() {
            problems.push(format!(
                "[provisioning] mef-fqdn {:?} is not a DNS name",
                section.mef_fqdn
            ));
        }
        let credential = match (
            &section.mef_psk_id,
            &section.mef_psk_file,
            &section.mef_certificate_file,
            &section.mef_private_key_file,
            &section.mef_trust_anchor_file,
        ) {
            (Some(id), Some(file), None, None, None) => {
                if let Err(e) = bastion_tls::credentials::validate_kpsa_id(id) {
                    problems.push(format!("[provisioning] mef-psk-id: {e}"));
                }
                Some(MefCredential::Psk {
                    id: id.clone(),
                    file: PathBuf::from(file),
                })
            }
            (None, None, Some(chain), Some(key), Some(anchors)) => {
                Some(MefCredential::Certificate {
                    chain: PathBuf::from(chain),
                    key: PathBuf::from(key),
                    trust_anchors: PathBuf::from(anchors),
                })
            }
            _ => {
                problems.push(
                    "[provisioning] needs either mef-psk-id and mef-psk-file, or \
                     mef-certificate-file, mef-private-key-file and mef-trust-anchor-file"
                        .to_owned(),
                );
                None
            }
        };
        let fetch_timeout_ms = section.fetch_timeout_ms.unwrap_or(3000);
        if !(100..=30_000).contains(&fetch_timeout_ms) {
            problems.push("[provisioning] mef-timeout-ms must be 100 to 30000".to_owned());
        }
        let max_fetches = section.max_fetches.unwrap_or(16);
        if !(1..=1024).contains(&max_fetches) {
            problems.push("[provisioning] mef-max-fetches must be 1 to 1024".to_owned());
        }
        let max_cached_keys = section.max_cached_keys.unwrap_or(10_000);
        if !(1..=1_000_000).contains(&max_cached_keys) {
            problems.push("[provisioning] mef-max-cached-keys must be 1 to 1000000".to_owned());
        }
        match credential {
            Some(credential) if problems.is_empty() => Ok(ProvisioningSettings {
                section: section.clone(),
                credential,
                fetch_timeout: Duration::from_millis(fetch_timeout_ms),
                max_fetches,
                max_cached_keys,
            }),
            _ => Err(problems),
        }
    }
}

/// A key fetched from the MEF, kept until its lifetime ends.
struct Cached {
    key: PskKey,
    binding: Binding,
    expires: i64,
}

/// Fetches MEF-provisioned keys for the TLS listener (see the module docs).
pub struct MefKeySource {
    fqdn: String,
    suid: u8,
    url: String,
    origin: String,
    client: Client,
    timeout: Duration,
    max_fetches: usize,
    in_flight: AtomicUsize,
    max_cached: usize,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for MefKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MefKeySource")
            .field("fqdn", &self.fqdn)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Why a fetch gave no key (logged; the handshake fails either way).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("no answer from the MEF: {0}")]
    Client(#[from] bastion_client::ClientError),
    #[error("the MEF refused: {rsc} {reason}")]
    Refused { rsc: u16, reason: String },
    #[error("malformed answer from the MEF: {0}")]
    Malformed(String),
    #[error("no answer from the MEF within {0:?}")]
    Timeout(Duration),
}

impl MefKeySource {
    /// The source of `settings` fetching keys for `suid`, presenting `origin` (the
    /// target's identity toward the MEF: the CSE-ID, the MAF's) to the MEF; key files are
    /// resolved by `path` (data-dir relative).
    pub fn new(
        settings: &ProvisioningSettings,
        origin: &str,
        suid: u8,
        path: impl Fn(&std::path::Path) -> PathBuf,
    ) -> Result<MefKeySource, Failure> {
        let options = ClientOptions::default();
        let tls = match &settings.credential {
            MefCredential::Psk { id, file } => {
                let key = PskKey::from_file(&path(file))
                    .map_err(|e| Failure::Config(format!("[provisioning] mef-psk-file: {e}")))?;
                TlsClient::psk(id, key, &options)
            }
            MefCredential::Certificate {
                chain,
                key,
                trust_anchors,
            } => {
                let read = |p: &PathBuf| {
                    std::fs::read_to_string(path(p)).map_err(|e| {
                        Failure::Config(format!("[provisioning] cannot read {}: {e}", p.display()))
                    })
                };
                let key = bastion_tls::secret::read_secret_text(&path(key))
                    .map_err(|e| Failure::Config(format!("[provisioning] {e}")))?;
                TlsClient::certificate(&read(chain)?, &key, &read(trust_anchors)?, None, &options)
            }
        }
        .map_err(|e| Failure::Config(format!("[provisioning] credential toward the MEF: {e}")))?;
        let config = ClientConfig {
            timeout: settings.fetch_timeout,
            max_body_bytes: 16 * 1024,
        };
        let client = Client::with_connector(Arc::new(TlsConnector::new(tls)), config);
        Ok(MefKeySource {
            fqdn: settings.section.mef_fqdn.to_ascii_lowercase(),
            suid,
            url: settings.section.mef_url.trim_end_matches('/').to_owned(),
            origin: origin.to_owned(),
            client,
            timeout: settings.fetch_timeout,
            max_fetches: settings.max_fetches,
            in_flight: AtomicUsize::new(0),
            max_cached: settings.max_cached_keys,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `identity` is a KeID of the configured MEF.
    fn is_ours(&self, identity: &str) -> bool {
        KeyIdentifier::parse(identity).is_ok_and(|id| id.fqdn().eq_ignore_ascii_case(&self.fqdn))
    }

    async fn retrieve(&self, ke_id: &str) -> Result<Cached, FetchError> {
        let path = wire::fetch_path(ke_id, self.suid);
        let request = Request {
            op: Some(Operation::Retrieve),
            to: path.clone(),
            fr: Some(self.origin.clone()),
            rvi: Some("3".to_owned()),
            ..Request::default()
        };
        let response = self
            .client
            .send(&format!("{}{path}", self.url), &request)
            .await?;
        let pc = response.pc.unwrap_or(serde_json::Value::Null);
        if response.rsc != Rsc::Ok {
            let reason = pc
                .get("m2m:dbg")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_owned();
            return Err(FetchError::Refused {
                rsc: response.rsc.code(),
                reason,
            });
        }
        let credential: Credential =
            wire::unwrap(names::CREDENTIAL, &pc).map_err(FetchError::Malformed)?;
        if credential.keid != ke_id || credential.suid != self.suid {
            return Err(FetchError::Malformed(
                "another KeID or SUID than asked".into(),
            ));
        }
        let key = PskKey::from_hex(&credential.key)
            .map_err(|_| FetchError::Malformed("the key is not 32 bytes of hex".into()))?;
        let binding = Binding::ae(&credential.eid)
            .or_else(|_| Binding::cse(&credential.eid))
            .map_err(|_| {
                FetchError::Malformed("the enrolee ID is neither an AE-ID nor a CSE-ID".into())
            })?;
        let expires = bastion_proto::time::Timestamp::parse(&credential.exp)
            .ok_or_else(|| FetchError::Malformed("exp is not a oneM2M time".into()))?
            .0;
        Ok(Cached {
            key,
            binding,
            expires,
        })
    }

    /// Runs the fetch to completion on the calling thread within the timeout.
    fn fetch_blocking(&self, ke_id: &str) -> Result<Cached, FetchError> {
        let bounded = async {
            tokio::time::timeout(self.timeout, self.retrieve(ke_id))
                .await
                .unwrap_or(Err(FetchError::Timeout(self.timeout)))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(bounded))
            }
            Ok(_) => Err(FetchError::Malformed(
                "a single-threaded runtime cannot wait inside a handshake".into(),
            )),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| FetchError::Malformed(format!("no runtime: {e}")))?
                .block_on(bounded),
        }
    }
}

/// Counts a fetch in flight; released on drop.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RemotePskSource for MefKeySource {
    fn fetch(&self, identity: &str) -> Option<RemotePsk> {
        if !self.is_ours(identity) {
            return None;
        }
        let now = unix_now();
        if let Some(c) = self.cache.lock().get(identity).filter(|c| c.expires > now) {
            return Some(RemotePsk {
                key: c.key.clone(),
                binding: c.binding.clone(),
            });
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_fetches {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(
                ke_id = identity,
                max = self.max_fetches,
                "MEF key fetch refused: too many in flight"
            );
            return None;
        }
        let _slot = InFlight(&self.in_flight);
        match self.fetch_blocking(identity) {
            Ok(fetched) if fetched.expires > now => {
                tracing::info!(
                    ke_id = identity,
                    suid = self.suid,
                    enrolee = fetched.binding.originator(),
                    expires = fetched.expires,
                    "MEF-provisioned key fetched"
                );
                let psk = RemotePsk {
                    key: fetched.key.clone(),
                    binding: fetched.binding.clone(),
                };
                let mut cache = self.cache.lock();
                if cache.len() >= self.max_cached {
                    cache.retain(|_, c| c.expires > now);
                }
                if cache.len() < self.max_cached {
                    cache.insert(identity.to_owned(), fetched);
                }
                Some(psk)
            }
            Ok(_) => {
                tracing::info!(ke_id = identity, "MEF answered an expired key");
                None
            }
            Err(e) => {
                tracing::info!(ke_id = identity, error = %e, "MEF-provisioned key not fetched");
                None
            }
        }
    }

    fn is_current(&self, identity: &str) -> bool {
        let now = unix_now();
        self.cache
            .lock()
            .get(identity)
            .is_some_and(|c| c.expires > now)
    }
}

/// The source `[provisioning]` configures, if any.
pub fn from_settings(
    settings: &crate::settings::Settings,
) -> Result<Option<Arc<dyn RemotePskSource>>, Failure> {
    let Some(provisioning) = &settings.provisioning.mef else {
        return Ok(None);
    };
    let source = MefKeySource::new(provisioning, &settings.cse_id, SAEF_SUID, |p| {
        settings.data_path(p)
    })?;
    tracing::info!(mef = %provisioning.section.mef_url, fqdn = %provisioning.section.mef_fqdn,
        "keys provisioned by the MEF accepted");
    Ok(Some(Arc::new(source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> MefSection {
        MefSection {
            mef_url: "https://127.0.0.1:8444".into(),
            mef_fqdn: "mef.example.com".into(),
            mef_psk_id: Some("cse-in@mef.example.com".into()),
            mef_psk_file: Some("mef.psk".into()),
            ..MefSection::default()
        }
    }

    #[test]
    fn a_psk_section_resolves_with_its_bounds() {
        let s = ProvisioningSettings::resolve(&section()).unwrap();
        assert_eq!(s.fetch_timeout, Duration::from_millis(3000));
        assert_eq!((s.max_fetches, s.max_cached_keys), (16, 10_000));
    }

    #[test]
    fn bad_sections_name_their_problems() {
        let mut s = section();
        s.mef_url = "http://x".into();
        s.mef_psk_file = None;
        s.max_fetches = Some(0);
        let problems = ProvisioningSettings::resolve(&s).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("mef-url"));
        assert!(problems[1].contains("needs either"));
        assert!(problems[2].contains("mef-max-fetches"));
    }
}
