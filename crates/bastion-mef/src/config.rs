//! The MEF's operator configuration: a TOML file with a `[mef]` table (docs/provisioning.md,
//! "Running an MEF"). Parsed raw, then checked into [`MefConfig`], so every mistake is
//! reported before the listener opens.
//!
//! ```toml
//! [mef]
//! fqdn = "mef.example.com"          # the FQDN of KeIDs (10.3.4)
//! listen = "127.0.0.1:8444"
//! data-dir = "/var/lib/bastion-mef" # enrolments.sealed, credentials.store
//! key-store = "pkcs11:/usr/lib/softhsm/libsofthsm2.so?token=mef"  # Ke kept there
//! key-store-pin-file = "/etc/bastion/mef.pin"  # else BASTION_PKCS11_PIN
//!
//! [[mef.target]]                    # an enrolment target
//! name = "cse"
//! id = "/id-in"                     # its Enrolment-Target-ID (enters Kuc)
//! uri = "https://cse.example.com:8443/cse-in"
//! suid = 22
//! fetcher = "/id-in"                # the identity allowed to fetch (default: id)
//!
//! [[mef.enrolee]]                   # an enrolee profile
//! kpm-id = "dev1@factory.example.com"   # or: certificate = "Cdevice2"
//! enrolee-id = "Csensor1"
//! targets = ["cse"]
//! lifetime-seconds = 86400
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bastion_keys::{KeyIdentifier, Suid};
use serde::Deserialize;

/// Longest enrolment lifetime accepted (a year).
pub const MAX_LIFETIME_SECONDS: u64 = 366 * 86_400;
/// Default cap on enrolment records kept (expired ones are dropped first).
pub const DEFAULT_MAX_ENROLMENTS: usize = 100_000;

/// A configuration mistake, named by its key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    mef: RawMef,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMef {
    fqdn: String,
    listen: Option<SocketAddr>,
    data_dir: PathBuf,
    credentials_store: Option<PathBuf>,
    credentials_key_file: Option<PathBuf>,
    key_store: Option<String>,
    key_store_pin_file: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    ca: Vec<PathBuf>,
    max_enrolments: Option<usize>,
    #[serde(default)]
    target: Vec<RawTarget>,
    #[serde(default)]
    enrolee: Vec<RawEnrolee>,
    clients: Option<RawClients>,
    est: Option<RawEst>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClients {
    sp_id: String,
    max_registrations_per_client: Option<usize>,
    max_keys_per_client: Option<usize>,
    max_lifetime_seconds: Option<i64>,
    max_commands_per_client: Option<usize>,
    command_retry_seconds: Option<u64>,
}

/// The MEF client procedures (8.3.5) and commands (8.3.9): `[mef.clients]`; absent, they
/// are not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientsConfig {
    /// The SP-ID that SP-relative client identities belong to, for comparing them with
    /// absolute targetIDs.
    pub sp_id: String,
    /// Bounds per client (the MAF's defaults).
    pub limits: bastion_maf::Limits,
    /// Queued commands per registration (default 16).
    pub max_commands: usize,
    /// The retryDuration of NO_MORE_COMMANDS, seconds (default 3600).
    pub command_retry_seconds: u64,
}

impl ClientsConfig {
    fn parse(raw: RawClients) -> Result<ClientsConfig, ConfigError> {
        let bad = |what: &str| ConfigError(format!("[mef.clients] {what}"));
        if raw.sp_id.is_empty() || raw.sp_id.contains('/') {
            return Err(bad("sp-id must be an SP-ID (no slashes)"));
        }
        let limits = bastion_maf::Limits::configured(
            raw.max_registrations_per_client,
            raw.max_keys_per_client,
            raw.max_lifetime_seconds,
            [
                "max-registrations-per-client",
                "max-keys-per-client",
                "max-lifetime-seconds",
            ],
        )
        .map_err(|problems| bad(&problems.join("; ")))?;
        let max_commands = raw.max_commands_per_client.unwrap_or(16);
        if !(1..=1024).contains(&max_commands) {
            return Err(bad("max-commands-per-client must be 1 to 1024"));
        }
        let command_retry_seconds = raw.command_retry_seconds.unwrap_or(3600);
        if !(1..=31_622_400).contains(&command_retry_seconds) {
            return Err(bad("command-retry-seconds must be 1 to 31622400"));
        }
        Ok(ClientsConfig {
            sp_id: raw.sp_id,
            limits,
            max_commands,
            command_retry_seconds,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEst {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    sp_fqdn: String,
    registrar: Option<String>,
    validity_days: Option<u32>,
    crl_validity_hours: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTarget {
    name: String,
    id: String,
    uri: String,
    suid: Option<u32>,
    fetcher: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEnrolee {
    kpm_id: Option<String>,
    certificate: Option<String>,
    enrolee_id: String,
    #[serde(default)]
    targets: Vec<String>,
    lifetime_seconds: u64,
    #[serde(default)]
    instruction: Vec<RawInstruction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInstruction {
    kind: InstructionKind,
    uri: String,
    credential_type: Option<u8>,
}

/// An enrolment target: who may fetch keys for it, and what the enrolee is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The operator's name for it (profiles refer to it).
    pub name: String,
    /// The Enrolment-Target-ID: enters the Kuc derivation and is sent to the enrolee.
    pub id: String,
    /// Where the enrolee reaches the target.
    pub uri: String,
    /// The usage of the key derived for it.
    pub suid: Suid,
    /// The identity (bound to its association with the MEF) allowed to fetch.
    pub fetcher: String,
}

/// What an enrolee may be instructed to do (8.3.2.1), with the `ity` code of the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstructionKind {
    /// Certificate enrolment (`ity` 1).
    CertificateEnrolment,
    /// MAF enrolment (`ity` 2).
    MafEnrolment,
    /// Remote management server (`ity` 3).
    RemoteManagement,
}

impl InstructionKind {
    /// The `ity` code.
    pub fn code(self) -> u8 {
        match self {
            InstructionKind::CertificateEnrolment => 1,
            InstructionKind::MafEnrolment => 2,
            InstructionKind::RemoteManagement => 3,
        }
    }
}

/// One instruction of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// What to do.
    pub kind: InstructionKind,
    /// Where.
    pub uri: String,
    /// MAF enrolment: credential type (1 symmetric, 2 certificate).
    pub credential_type: Option<u8>,
}

/// Certificate enrolment on the MEF's own listener (`[mef.est]`, TS-0003 8.3.6): the
/// MEF's CA, and how an enrolee ID becomes the absolute AE-ID or CSE-ID its certificate
/// names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstConfig {
    /// The CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// The CA key (PEM, owner-only).
    pub ca_key: PathBuf,
    /// The FQDN of the M2M SP the absolute IDs are under (`//<sp-fqdn>/...`).
    pub sp_fqdn: String,
    /// The CSE-ID a C-AE-ID is allocated under (default `/id-in`).
    pub registrar: String,
    /// Validity of issued certificates, days (default 30).
    pub validity_days: u32,
    /// Validity of each CRL, hours (default 24).
    pub crl_validity_hours: u32,
}

impl EstConfig {
    /// The absolute AE-ID or CSE-ID certified for `enrolee_id`: a CSE-ID `/x` is
    /// `//sp/x`, an S-AE-ID `Sx` is `//sp/Sx`, a C-AE-ID `Cx` is `//sp/<registrar>/Cx`;
    /// an absolute ID stays as it is.
    pub fn certify(&self, enrolee_id: &str) -> String {
        let sp = &self.sp_fqdn;
        if enrolee_id.starts_with("//") {
            enrolee_id.to_owned()
        } else if enrolee_id.starts_with('/') {
            format!("//{sp}{enrolee_id}")
        } else if enrolee_id.starts_with('C') {
            format!("//{sp}{}/{enrolee_id}", self.registrar)
        } else {
            format!("//{sp}/{enrolee_id}")
        }
    }

    /// Where the ledger and the CRL live.
    pub fn state_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("est")
    }
}

/// How an enrolee authenticates to the MEF.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EnroleeCredential {
    /// TLS-PSK with this KpmID (8.3.2.1).
    Kpm(String),
    /// A certificate naming this AE-ID / CSE-ID (8.3.2.2).
    Certificate(String),
}

/// An enrolee profile: the enrolee ID the MEF provisions for a credential, its targets,
/// its lifetime and its instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The enrolee ID (AE-ID or CSE-ID) provisioned.
    pub enrolee_id: String,
    /// Names of its enrolment targets.
    pub targets: Vec<String>,
    /// Lifetime of an enrolment, seconds (the Enrolment Expiry of 10.7).
    pub lifetime_seconds: u64,
    /// Instructions issued to an enrolee that indicated it would follow them.
    pub instructions: Vec<Instruction>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct MefConfig {
    /// The FQDN of KeIDs.
    pub fqdn: String,
    /// The TLS listener (default 127.0.0.1:8444).
    pub listen: SocketAddr,
    /// Where the enrolment store lives.
    pub data_dir: PathBuf,
    /// The credential store of Kpms and the targets' PSKs.
    pub credentials_store: PathBuf,
    /// The key file of the credential store when `BASTION_CREDENTIALS_KEY` is unset.
    pub credentials_key_file: Option<PathBuf>,
    /// The key store Ke is kept in (`file:PATH`, under the credential store's key, or
    /// `pkcs11:MODULE?token=LABEL`); none: Ke sealed in the enrolment records.
    pub key_store: Option<bastion_keystore::StoreSpec>,
    /// The token's user PIN file when `BASTION_PKCS11_PIN` is not to be used.
    pub key_store_pin_file: Option<PathBuf>,
    /// Server certificate chain and key (certificate framework).
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Trust anchors for enrolee and target certificates.
    pub ca: Vec<PathBuf>,
    /// Cap on enrolment records.
    pub max_enrolments: usize,
    /// Enrolment targets by name.
    pub targets: BTreeMap<String, Target>,
    /// Enrolee profiles by credential.
    pub profiles: BTreeMap<EnroleeCredential, Profile>,
    /// The MEF client procedures and commands, when served.
    pub clients: Option<ClientsConfig>,
    /// Certificate enrolment on the MEF's listener, when configured.
    pub est: Option<EstConfig>,
}

impl MefConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<MefConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        MefConfig::parse(&text)
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<MefConfig, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        let raw = raw.mef;
        // The FQDN must make valid KeIDs.
        KeyIdentifier::new("00", &raw.fqdn)
            .map_err(|e| ConfigError(format!("[mef] fqdn {:?}: {e}", raw.fqdn)))?;
        let mut targets = BTreeMap::new();
        for t in raw.target {
            let suid = Suid::from_code(t.suid.unwrap_or(22))
                .map_err(|e| ConfigError(format!("[[mef.target]] {}: suid: {e}", t.name)))?;
            if !(derivable_for_target(suid)) {
                return Err(ConfigError(format!(
                    "[[mef.target]] {}: suid {} is not a key an enrolment target fetches \
                     (12-15, 21-25)",
                    t.name,
                    suid.code()
                )));
            }
            if !is_printable_ascii(&t.id) || t.id.is_empty() {
                return Err(ConfigError(format!(
                    "[[mef.target]] {}: id must be printable ASCII",
                    t.name
                )));
            }
            if !(t.uri.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "[[mef.target]] {}: uri must be https://",
                    t.name
                )));
            }
            let target = Target {
                fetcher: t.fetcher.unwrap_or_else(|| t.id.clone()),
                name: t.name.clone(),
                id: t.id,
                uri: t.uri,
                suid,
            };
            if targets.insert(t.name.clone(), target).is_some() {
                return Err(ConfigError(format!("[[mef.target]] {} twice", t.name)));
            }
        }
        let mut profiles = BTreeMap::new();
        for e in raw.enrolee {
            let credential = match (e.kpm_id, e.certificate) {
                (Some(kpm), None) => {
                    bastion_tls::credentials::validate_kpsa_id(&kpm)
                        .map_err(|err| ConfigError(format!("[[mef.enrolee]] kpm-id: {err}")))?;
                    EnroleeCredential::Kpm(kpm)
                }
                (None, Some(id)) => EnroleeCredential::Certificate(id),
                _ => {
                    return Err(ConfigError(format!(
                        "[[mef.enrolee]] {}: exactly one of kpm-id and certificate",
                        e.enrolee_id
                    )))
                }
            };
            let id_ok = bastion_tls::identity::validate_ae_id(&e.enrolee_id).is_ok()
                || bastion_tls::identity::validate_cse_id(&e.enrolee_id).is_ok();
            if !id_ok {
                return Err(ConfigError(format!(
                    "[[mef.enrolee]] enrolee-id {:?} is neither an AE-ID nor a CSE-ID",
                    e.enrolee_id
                )));
            }
            if e.lifetime_seconds == 0 || e.lifetime_seconds > MAX_LIFETIME_SECONDS {
                return Err(ConfigError(format!(
                    "[[mef.enrolee]] {}: lifetime-seconds must be 1 to {MAX_LIFETIME_SECONDS}",
                    e.enrolee_id
                )));
            }
            for name in &e.targets {
                if !targets.contains_key(name) {
                    return Err(ConfigError(format!(
                        "[[mef.enrolee]] {}: unknown target {name:?}",
                        e.enrolee_id
                    )));
                }
            }
            let instructions = e
                .instruction
                .into_iter()
                .map(|i| Instruction {
                    kind: i.kind,
                    uri: i.uri,
                    credential_type: i.credential_type,
                })
                .collect();
            let profile = Profile {
                enrolee_id: e.enrolee_id,
                targets: e.targets,
                lifetime_seconds: e.lifetime_seconds,
                instructions,
            };
            if profiles.insert(credential.clone(), profile).is_some() {
                return Err(ConfigError(format!(
                    "[[mef.enrolee]] {credential:?} has two profiles"
                )));
            }
        }
        let cert = match (raw.cert, raw.key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError("[mef] cert and key go together".into())),
        };
        if cert.is_some() && raw.ca.is_empty() {
            return Err(ConfigError(
                "[mef] the certificate framework needs ca (trust anchors for enrolees)".into(),
            ));
        }
        let est = raw.est.map(check_est).transpose()?;
        if let Some(est) = &est {
            // Every enrolee's certified identity must be one a certificate can name.
            for p in profiles.values() {
                let certify = est.certify(&p.enrolee_id);
                if bastion_tls::identity::binding_from_san_uri(&certify).is_none() {
                    return Err(ConfigError(format!(
                        "[mef.est] enrolee {} would be certified as {certify:?}, not an \
                         absolute AE-ID or CSE-ID",
                        p.enrolee_id
                    )));
                }
            }
        }
        let key_store = raw
            .key_store
            .as_deref()
            .map(bastion_keystore::StoreSpec::parse)
            .transpose()
            .map_err(|e| ConfigError(format!("[mef] key-store: {e}")))?;
        if key_store.is_none() && raw.key_store_pin_file.is_some() {
            return Err(ConfigError(
                "[mef] key-store-pin-file needs key-store".into(),
            ));
        }
        let max_enrolments = raw.max_enrolments.unwrap_or(DEFAULT_MAX_ENROLMENTS);
        if max_enrolments == 0 || max_enrolments > 10_000_000 {
            return Err(ConfigError(
                "[mef] max-enrolments must be 1 to 10000000".into(),
            ));
        }
        Ok(MefConfig {
            fqdn: raw.fqdn,
            listen: raw
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8444))),
            credentials_store: raw
                .credentials_store
                .unwrap_or_else(|| raw.data_dir.join("credentials.store")),
            data_dir: raw.data_dir,
            credentials_key_file: raw.credentials_key_file,
            key_store,
            key_store_pin_file: raw.key_store_pin_file,
            cert,
            ca: raw.ca,
            max_enrolments,
            targets,
            profiles,
            clients: raw.clients.map(ClientsConfig::parse).transpose()?,
            est,
        })
    }

    /// The enrolment store's file.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("enrolments.sealed")
    }

    /// The MEF client and key registrations' file (8.3.5).
    pub fn clients_path(&self) -> PathBuf {
        self.data_dir.join("clients.sealed")
    }

    /// The MEF client commands' file (8.3.9).
    pub fn commands_path(&self) -> PathBuf {
        self.data_dir.join("commands.sealed")
    }
}

fn check_est(raw: RawEst) -> Result<EstConfig, ConfigError> {
    KeyIdentifier::new("00", &raw.sp_fqdn)
        .map_err(|e| ConfigError(format!("[mef.est] sp-fqdn {:?}: {e}", raw.sp_fqdn)))?;
    let registrar = raw.registrar.unwrap_or_else(|| "/id-in".to_owned());
    if bastion_tls::identity::validate_cse_id(&registrar).is_err() || !registrar.starts_with('/') {
        return Err(ConfigError(format!(
            "[mef.est] registrar {registrar:?} is not an SP-relative CSE-ID"
        )));
    }
    let validity_days = raw.validity_days.unwrap_or(30);
    if !(1..=3660).contains(&validity_days) {
        return Err(ConfigError(
            "[mef.est] validity-days must be 1 to 3660".into(),
        ));
    }
    let crl_validity_hours = raw.crl_validity_hours.unwrap_or(24);
    if !(1..=8760).contains(&crl_validity_hours) {
        return Err(ConfigError(
            "[mef.est] crl-validity-hours must be 1 to 8760".into(),
        ));
    }
    Ok(EstConfig {
        ca_cert: raw.ca_cert,
        ca_key: raw.ca_key,
        sp_fqdn: raw.sp_fqdn.to_ascii_lowercase(),
        registrar,
        validity_days,
        crl_validity_hours,
    })
}

/// SUIDs whose key the MEF derives for an enrolment target from Ke: the pre-provisioned
/// and RSPF-provisioned symmetric keys for a MAF, SAEF, ESPrim and ESData (Kuc, 10.3.7;
/// Km for 21, 10.3.2). 10 (MEF) and the MAF- and certificate-based ones are not.
pub fn derivable_for_target(suid: Suid) -> bool {
    matches!(suid.code(), 12..=15 | 21..=25)
}

fn is_printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[mef]
fqdn = "mef.example.com"
data-dir = "/tmp/mef"

[[mef.target]]
name = "cse"
id = "/id-in"
uri = "https://127.0.0.1:8443/cse-in"

[[mef.enrolee]]
kpm-id = "dev1@factory.example.com"
enrolee-id = "Csensor1"
targets = ["cse"]
lifetime-seconds = 3600
"#;

    #[test]
    fn a_good_file_is_read_with_its_defaults() {
        let c = MefConfig::parse(GOOD).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8444");
        assert_eq!(
            c.credentials_store,
            PathBuf::from("/tmp/mef/credentials.store")
        );
        let t = &c.targets["cse"];
        assert_eq!((t.suid.code(), t.fetcher.as_str()), (22, "/id-in"));
        let p = &c.profiles[&EnroleeCredential::Kpm("dev1@factory.example.com".into())];
        assert_eq!(p.enrolee_id, "Csensor1");
        assert_eq!(c.key_store, None);
        let c = MefConfig::parse(&GOOD.replace(
            "data-dir",
            "key-store = \"pkcs11:/m.so?token=mef\"\ndata-dir",
        ))
        .unwrap();
        assert_eq!(c.key_store.unwrap().to_string(), "pkcs11:/m.so?token=mef");
        assert_eq!(c.clients, None);
        let with = MefConfig::parse(&format!("{GOOD}\n[mef.clients]\nsp-id = \"sp.example\"\n"))
            .unwrap()
            .clients
            .unwrap();
        assert_eq!(
            (
                with.sp_id.as_str(),
                with.max_commands,
                with.command_retry_seconds
            ),
            ("sp.example", 16, 3600)
        );
        assert_eq!(with.limits, bastion_maf::Limits::default());
    }

    #[test]
    fn est_certifies_absolute_ids() {
        let text = format!(
            "{GOOD}\n[mef.est]\nca-cert = \"ca.pem\"\nca-key = \"ca.key\"\n\
             sp-fqdn = \"bastion.example\"\n"
        );
        let est = MefConfig::parse(&text).unwrap().est.unwrap();
        assert_eq!(est.certify("Csensor1"), "//bastion.example/id-in/Csensor1");
        assert_eq!(est.certify("Sdev"), "//bastion.example/Sdev");
        assert_eq!(est.certify("/id-mn"), "//bastion.example/id-mn");
        assert_eq!(est.validity_days, 30);
        let bad = text.replace("bastion.example", "bad..fqdn");
        assert!(MefConfig::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("sp-fqdn"));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                GOOD.replace("targets = [\"cse\"]", "targets = [\"x\"]"),
                "unknown target",
            ),
            (GOOD.replace("Csensor1", "sensor1"), "neither an AE-ID"),
            (GOOD.replace("3600", "0"), "lifetime-seconds"),
            (GOOD.replace("https://", "http://"), "uri must be https"),
            (
                GOOD.replace("uri = \"https", "suid = 40\nuri = \"https"),
                "not a key an enrolment target fetches",
            ),
            (GOOD.replace("mef.example.com", "mef..x"), "fqdn"),
            (GOOD.replace("kpm-id", "kpm-idd"), "unknown field"),
            (
                format!("{GOOD}\n[mef.clients]\nsp-id = \"sp/x\"\n"),
                "[mef.clients] sp-id must be an SP-ID",
            ),
            (
                format!(
                    "{GOOD}\n[mef.clients]\nsp-id = \"sp.example\"\nmax-commands-per-client = 0\n"
                ),
                "max-commands-per-client must be 1 to 1024",
            ),
            (
                format!("{GOOD}\n[mef.clients]\nsp-id = \"sp.example\"\nmax-keys-per-client = 0\n"),
                "[mef.clients] max-keys-per-client must be 1 to 65536",
            ),
            (
                GOOD.replace("data-dir", "key-store = \"/tmp/keys\"\ndata-dir"),
                "[mef] key-store: invalid key store \"/tmp/keys\"",
            ),
            (
                GOOD.replace("data-dir", "key-store-pin-file = \"/pin\"\ndata-dir"),
                "key-store-pin-file needs key-store",
            ),
        ];
        for (text, expected) in cases {
            let e = MefConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(expected), "{e} lacks {expected}");
        }
    }
}
