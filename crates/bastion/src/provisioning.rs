//! `[provisioning]`: the remote security provisioning the CSE takes part in as an
//! Enrolment Target (TS-0003 8.3; docs/provisioning.md). So far the GBA-based framework
//! (8.3.2.3): the CSE acts as the network application function, and its TLS listener
//! resolves `3GPP-bootstrapping.<B-TID>` PSK identities into Ks_NAF through the BSF
//! (`bastion_gba::GbaPskSource`). The file section ([`ProvisioningSection`]) and its
//! resolved, validated form ([`Provisioning`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bastion_gba::{GbaPskSource, NafConfig};
use bastion_tls::RemotePskSource;
use serde::{Deserialize, Serialize};

use crate::Failure;

/// Accepted range of `gba-timeout-ms`.
const TIMEOUT_RANGE_MS: (i64, i64) = (10, 60_000);
/// Default wait for one Zn answer, ms.
const DEFAULT_GBA_TIMEOUT_MS: u64 = 5_000;

/// `[provisioning]` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProvisioningSection {
    /// The BSF (the MEF in its GBA role), `http://` on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gba_bsf_url: Option<String>,
    /// This CSE's FQDN as NAF (the public domain name of its CSE-ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gba_naf_fqdn: Option<String>,
    /// Owner-only file with the bearer secret that authenticates this NAF to the BSF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gba_zn_secret_file: Option<String>,
    /// Longest wait for one Zn answer, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gba_timeout_ms: Option<i64>,
    /// The MAF: `https://HOST:PORT` (the `maf-*` keys: `maf_source.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_url: Option<String>,
    /// The MAF's FQDN, the suffix of the key identifiers it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_fqdn: Option<String>,
    /// The CSE's KmID with the MAF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_psk_id: Option<String>,
    /// File holding Km in hex (mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_psk_file: Option<String>,
    /// Certificate framework towards the MAF: own chain, key, trust anchors (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_certificate_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_ca_file: Option<String>,
    /// Name for SNI (and the certificate's dNSName); default the `maf-fqdn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_server_name: Option<String>,
    /// Longest wait for one key retrieval, inside a handshake, ms (default 3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maf_timeout_ms: Option<i64>,
    /// The MEF: `https://HOST:PORT` (the `mef-*` keys: `mef_source.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_url: Option<String>,
    /// The MEF's FQDN: KeIDs `RelativeKeID@<mef-fqdn>` are its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_fqdn: Option<String>,
    /// The CSE's PSK identity toward the MEF, and the file with the key (hex, 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_psk_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_psk_file: Option<String>,
    /// Or the certificate framework toward the MEF: chain, key, trust anchors (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_certificate_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_private_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_trust_anchor_file: Option<String>,
    /// Longest wait for one fetchCredentials, inside a handshake, ms (default 3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_timeout_ms: Option<u64>,
    /// Fetches in flight at once (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_max_fetches: Option<usize>,
    /// Keys kept until their lifetime ends (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mef_max_cached_keys: Option<usize>,
}

impl ProvisioningSection {
    /// The section with only its `maf-*` keys.
    pub fn maf_only(&self) -> ProvisioningSection {
        ProvisioningSection {
            maf_url: self.maf_url.clone(),
            maf_fqdn: self.maf_fqdn.clone(),
            maf_psk_id: self.maf_psk_id.clone(),
            maf_psk_file: self.maf_psk_file.clone(),
            maf_certificate_file: self.maf_certificate_file.clone(),
            maf_key_file: self.maf_key_file.clone(),
            maf_ca_file: self.maf_ca_file.clone(),
            maf_server_name: self.maf_server_name.clone(),
            maf_timeout_ms: self.maf_timeout_ms,
            ..ProvisioningSection::default()
        }
    }
}

/// The resolved `[provisioning]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioning {
    /// GBA as NAF, when configured.
    pub gba: Option<Gba>,
    /// The `maf-*` keys, when `maf-url` is set (checked by `maf_source::validate`).
    pub maf: Option<ProvisioningSection>,
    /// The MEF as key server, when `mef-url` is set.
    pub mef: Option<crate::mef_source::ProvisioningSettings>,
}

impl ProvisioningSection {
    /// The `mef-*` keys, when any is set: `mef-url` and `mef-fqdn` must be.
    fn mef_section(&self) -> Result<Option<crate::mef_source::MefSection>, String> {
        let any = [
            &self.mef_url,
            &self.mef_fqdn,
            &self.mef_psk_id,
            &self.mef_psk_file,
        ]
        .iter()
        .any(|k| k.is_some())
            || [
                &self.mef_certificate_file,
                &self.mef_private_key_file,
                &self.mef_trust_anchor_file,
            ]
            .iter()
            .any(|k| k.is_some())
            || self.mef_timeout_ms.is_some()
            || self.mef_max_fetches.is_some()
            || self.mef_max_cached_keys.is_some();
        if !any {
            return Ok(None);
        }
        let (Some(url), Some(fqdn)) = (&self.mef_url, &self.mef_fqdn) else {
            return Err("[provisioning] the mef-* keys need mef-url and mef-fqdn".to_owned());
        };
        Ok(Some(crate::mef_source::MefSection {
            mef_url: url.clone(),
            mef_fqdn: fqdn.clone(),
            mef_psk_id: self.mef_psk_id.clone(),
            mef_psk_file: self.mef_psk_file.clone(),
            mef_certificate_file: self.mef_certificate_file.clone(),
            mef_private_key_file: self.mef_private_key_file.clone(),
            mef_trust_anchor_file: self.mef_trust_anchor_file.clone(),
            fetch_timeout_ms: self.mef_timeout_ms,
            max_fetches: self.mef_max_fetches,
            max_cached_keys: self.mef_max_cached_keys,
        }))
    }
}

/// The resolved GBA keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gba {
    pub bsf_url: String,
    pub naf_fqdn: String,
    /// Relative paths are taken from the data directory.
    pub zn_secret_file: PathBuf,
    pub timeout_ms: u64,
}

impl Provisioning {
    /// Validates `section`; problems name the keys.
    pub fn resolve(section: &ProvisioningSection) -> Result<Provisioning, Vec<String>> {
        let s = section;
        let mut problems = Vec::new();
        let gba = match (&s.gba_bsf_url, &s.gba_naf_fqdn, &s.gba_zn_secret_file) {
            (None, None, None) => {
                if s.gba_timeout_ms.is_some() {
                    problems.push("[provisioning] gba-timeout-ms needs gba-bsf-url".to_owned());
                }
                None
            }
            (Some(url), Some(fqdn), Some(secret)) => {
                let timeout_ms = match s.gba_timeout_ms {
                    None => DEFAULT_GBA_TIMEOUT_MS,
                    Some(ms) if (TIMEOUT_RANGE_MS.0..=TIMEOUT_RANGE_MS.1).contains(&ms) => {
                        ms.unsigned_abs()
                    }
                    Some(ms) => {
                        problems.push(format!(
                            "[provisioning] gba-timeout-ms must be {} to {}, got {ms}",
                            TIMEOUT_RANGE_MS.0, TIMEOUT_RANGE_MS.1
                        ));
                        DEFAULT_GBA_TIMEOUT_MS
                    }
                };
                // The same checks the NAF makes when it starts, reported with the key.
                let probe = NafConfig::new(url, fqdn, zeroize::Zeroizing::new("-".into()));
                if let Err(e) = bastion_gba::check(&probe) {
                    problems.push(format!("[provisioning] {e}"));
                }
                Some(Gba {
                    bsf_url: url.trim_end_matches('/').to_owned(),
                    naf_fqdn: fqdn.clone(),
                    zn_secret_file: PathBuf::from(secret),
                    timeout_ms,
                })
            }
            _ => {
                problems.push(
                    "[provisioning] gba-bsf-url, gba-naf-fqdn and gba-zn-secret-file go together"
                        .to_owned(),
                );
                None
            }
        };
        let maf = s.maf_url.is_some().then(|| s.maf_only());
        let mef = match s.mef_section() {
            Ok(None) => None,
            Ok(Some(section)) => crate::mef_source::ProvisioningSettings::resolve(&section)
                .map_err(|mut found| problems.append(&mut found))
                .ok(),
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        match problems.is_empty() {
            true => Ok(Provisioning { gba, maf, mef }),
            false => Err(problems),
        }
    }

    /// Back to the file form.
    pub fn to_section(&self) -> ProvisioningSection {
        let mut maf = self.maf.clone().unwrap_or_default();
        if let Some(m) = &self.mef {
            let m = &m.section;
            maf.mef_url = Some(m.mef_url.clone());
            maf.mef_fqdn = Some(m.mef_fqdn.clone());
            maf.mef_psk_id = m.mef_psk_id.clone();
            maf.mef_psk_file = m.mef_psk_file.clone();
            maf.mef_certificate_file = m.mef_certificate_file.clone();
            maf.mef_private_key_file = m.mef_private_key_file.clone();
            maf.mef_trust_anchor_file = m.mef_trust_anchor_file.clone();
            maf.mef_timeout_ms = m.fetch_timeout_ms;
            maf.mef_max_fetches = m.max_fetches;
            maf.mef_max_cached_keys = m.max_cached_keys;
        }
        match &self.gba {
            None => maf,
            Some(g) => ProvisioningSection {
                gba_bsf_url: Some(g.bsf_url.clone()),
                gba_naf_fqdn: Some(g.naf_fqdn.clone()),
                gba_zn_secret_file: g.zn_secret_file.to_str().map(str::to_owned),
                gba_timeout_ms: i64::try_from(g.timeout_ms).ok(),
                ..maf
            },
        }
    }

    /// The key source the TLS listener asks for identities its registry lacks: the GBA
    /// NAF when configured (reads the Zn secret file, owner-only, now).
    pub fn remote_psk_source(
        &self,
        data_path: impl Fn(&std::path::Path) -> PathBuf,
    ) -> Result<Option<Arc<dyn RemotePskSource>>, Failure> {
        let Some(g) = &self.gba else {
            return Ok(None);
        };
        let secret = bastion_tls::secret::read_secret_text(&data_path(&g.zn_secret_file))
            .map_err(|e| Failure::Runtime(format!("gba: Zn secret: {e}")))?;
        let secret = zeroize::Zeroizing::new(secret.trim().to_owned());
        let mut config = NafConfig::new(&g.bsf_url, &g.naf_fqdn, secret);
        config.timeout = Duration::from_millis(g.timeout_ms);
        let source = GbaPskSource::new(config).map_err(|e| Failure::Config(e.to_string()))?;
        tracing::info!(
            bsf = %g.bsf_url,
            naf = %g.naf_fqdn,
            "GBA: the TLS listener resolves 3GPP-bootstrapping identities through the BSF"
        );
        Ok(Some(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(url: &str, fqdn: &str) -> ProvisioningSection {
        ProvisioningSection {
            gba_bsf_url: Some(url.into()),
            gba_naf_fqdn: Some(fqdn.into()),
            gba_zn_secret_file: Some("zn.secret".into()),
            ..ProvisioningSection::default()
        }
    }

    #[test]
    fn gba_and_maf_keys_share_the_section_and_round_trip() {
        let both = ProvisioningSection {
            maf_url: Some("https://maf.example.com:8445".into()),
            maf_fqdn: Some("maf.example.com".into()),
            maf_psk_id: Some("cse-in@maf.example.com".into()),
            maf_psk_file: Some("maf.km".into()),
            ..section("http://127.0.0.1:9", "in.example.com")
        };
        let resolved = Provisioning::resolve(&both).unwrap();
        assert!(resolved.gba.is_some());
        assert_eq!(resolved.maf, Some(both.maf_only()));
        assert_eq!(
            Provisioning::resolve(&resolved.to_section()).unwrap(),
            resolved
        );
        assert!(crate::maf_source::validate(&both, Some(true)).is_empty());
        // GBA alone: the MAF's validation has nothing to say.
        let gba = section("http://127.0.0.1:9", "in.example.com");
        assert!(crate::maf_source::validate(&gba, Some(true)).is_empty());
    }

    #[test]
    fn gba_keys_are_checked_together() {
        let ok = Provisioning::resolve(&section("http://127.0.0.1:9/", "in.example.com")).unwrap();
        assert_eq!(ok.gba.as_ref().unwrap().bsf_url, "http://127.0.0.1:9");
        assert_eq!(ok.gba.as_ref().unwrap().timeout_ms, 5000);
        assert_eq!(Provisioning::resolve(&ok.to_section()).unwrap(), ok);
        assert_eq!(
            Provisioning::resolve(&ProvisioningSection::default()).unwrap(),
            Provisioning::default()
        );
        assert_eq!(
            Provisioning::resolve(&ProvisioningSection {
                gba_naf_fqdn: None,
                ..section("http://127.0.0.1:9", "x.example")
            })
            .unwrap_err(),
            vec!["[provisioning] gba-bsf-url, gba-naf-fqdn and gba-zn-secret-file go together"]
        );
        assert_eq!(
            Provisioning::resolve(&section("http://bsf.example.com", "in.example.com"))
                .unwrap_err(),
            vec!["[provisioning] gba: the BSF URL must be http:// on a loopback address (127.0.0.0/8, [::1], localhost), got \"http://bsf.example.com\""]
        );
        assert_eq!(
            Provisioning::resolve(&section("http://127.0.0.1:9", "not a name")).unwrap_err(),
            vec!["[provisioning] gba: the NAF FQDN \"not a name\" is not a fully qualified domain name"]
        );
        assert_eq!(
            Provisioning::resolve(&ProvisioningSection {
                gba_timeout_ms: Some(5),
                ..section("http://127.0.0.1:9", "in.example.com")
            })
            .unwrap_err(),
            vec!["[provisioning] gba-timeout-ms must be 10 to 60000, got 5"]
        );
    }
}
