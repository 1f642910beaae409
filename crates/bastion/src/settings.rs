//! Configuration of the `bastion` binary: the configuration file format, the layering of
//! its sources and the validated [`Settings`] a server runs with.
//!
//! Resolution happens in two steps so that every source is handled the same way:
//!
//! 1. Each source becomes a [`RawSettings`] (every field optional, nothing validated):
//!    the configuration file ([`RawSettings::from_toml`]), the `RUST_LOG` environment
//!    variable (log level only) and the command-line flags. They are merged with
//!    [`RawSettings::overlay`], later sources winning: file < `RUST_LOG` < flags.
//! 2. [`Settings::resolve`] fills what is still unset from the built-in defaults (the
//!    `DEFAULT_*` constants) and validates everything, reporting every problem at once.
//!
//! The commented default configuration file, [`DEFAULT_CONFIG_TOML`], is kept in the crate
//! as `bastion.default.toml`; a unit test checks that it sets every key to exactly the
//! built-in default.

use bastion_core::{AuthorizationConfig, CseConfig, CseType};
use bastion_policy::IssuerKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The commented default configuration file, printed by `bastion config default`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../bastion.default.toml");

/// Built-in default CSE-ID.
pub const DEFAULT_CSE_ID: &str = "/id-in";
/// Built-in default CSEBase resource name.
pub const DEFAULT_CSE_NAME: &str = "cse-in";
/// Built-in default M2M service-provider ID.
pub const DEFAULT_SP_ID: &str = "//bastion.example";
/// Built-in default CSE type.
pub const DEFAULT_CSE_TYPE: CseKind = CseKind::In;
/// Built-in default admin originator.
pub const DEFAULT_ADMIN: &str = "CAdmin";
/// Built-in default lifetime of resources created without `et`: ten years.
pub const DEFAULT_LIFETIME_SECS: i64 = 10 * 365 * 24 * 3600;
/// Built-in default period of the expiry sweep.
pub const DEFAULT_EXPIRY_INTERVAL_MS: u64 = 1000;
/// Built-in default upper bound on the results of one discovery without `lim`.
pub const DEFAULT_DISCOVERY_LIMIT: usize = 10_000;
/// Built-in default: most child resources in one result (`rcn` 4, 5, 6, 8).
pub const DEFAULT_RESULT_LIMIT: usize = 100_000;
/// Built-in default: most bytes of child resources in one result or fan-out answer.
pub const DEFAULT_RESULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Built-in default: most member requests one request causes through group fan-out.
pub const DEFAULT_FANOUT_LIMIT: usize = 1_000;
/// `[cse] liveness-check-secs`: how often registrations are checked (0: never).
pub const DEFAULT_LIVENESS_CHECK_SECS: u64 = 60;
/// Built-in default HTTP listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Built-in default largest accepted request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Built-in default data directory.
pub const DEFAULT_DATA_DIR: &str = "./bastion-data";
/// Built-in default: denials are not explained to clients.
pub const DEFAULT_EXPLAIN_DENIALS_TO_CLIENT: bool = false;
/// `[access] registered-retrieve-cse-base`: registered AEs and CSEs may read the CSEBase.
pub const DEFAULT_REGISTERED_RETRIEVE_CSE_BASE: bool = true;
/// Built-in default: the audit log is written.
pub const DEFAULT_AUDIT_ENABLED: bool = true;
/// Built-in default audit log file, relative to the data directory.
pub const DEFAULT_AUDIT_PATH: &str = "audit.log";
/// Built-in default size at which the audit log is rotated: 10 MiB.
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Built-in default number of audit log files kept (the current one included).
pub const DEFAULT_AUDIT_KEEP: u32 = 5;
/// Built-in default log filter.
pub const DEFAULT_LOG: &str = "info";
/// Built-in default: a plain listener on a non-loopback address is refused.
pub const DEFAULT_INSECURE: bool = false;
/// Built-in default: other CSEs' originators need a security association, also on
/// loopback.
pub const DEFAULT_TRUST_LOOPBACK_CSES: bool = false;
/// `[http] advertise` default: the plain listener is in the CSEBase `poa`.
pub const DEFAULT_HTTP_ADVERTISE: bool = true;
/// Built-in default: the plain HTTP listener runs.
pub const DEFAULT_HTTP_ENABLED: bool = true;
/// Built-in default credential store, relative to the data directory.
pub const DEFAULT_CREDENTIALS_STORE: &str = "credentials.store";
/// Default interval between fetches of `[tls] crl-url`, seconds.
pub const DEFAULT_CRL_REFRESH_SECONDS: i64 = 300;
/// Where a CRL fetched from `[tls] crl-url` is kept (in the data directory).
pub const FETCHED_CRL_FILE: &str = "fetched-crl.pem";
/// Name of the SQLite database file inside the data directory.
pub const DB_FILE_NAME: &str = "bastion.db";

/// Largest accepted `default-lifetime-secs`: one hundred years.
const MAX_LIFETIME_SECS: i64 = 100 * 365 * 24 * 3600;
/// Accepted range of `expiry-interval-ms`: 10 ms to one hour.
const EXPIRY_INTERVAL_RANGE: (i64, i64) = (10, 3_600_000);
/// Largest accepted `max-body-bytes`: 1 GiB (a body is held in memory while decoded).
const MAX_MAX_BODY_BYTES: i64 = 1024 * 1024 * 1024;
/// Largest accepted `discovery-limit`.
const MAX_DISCOVERY_LIMIT: i64 = 10_000_000;
/// Largest accepted `result-limit` and `fanout-limit`.
const MAX_RESULT_LIMIT: i64 = 10_000_000;
/// Accepted range of `result-max-bytes`: 1 KiB to 1 GiB.
const RESULT_MAX_BYTES_RANGE: (i64, i64) = (1024, 1 << 30);
/// Accepted range of `[audit] max-bytes`: 1 KiB to 1 TiB.
const AUDIT_MAX_BYTES_RANGE: (i64, i64) = (1024, 1 << 40);
/// Accepted range of `[audit] keep`.
const AUDIT_KEEP_RANGE: (i64, i64) = (1, 1000);
/// Log levels accepted in a log filter.
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The role of the CSE (`cst`), as written in the file and on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum CseKind {
    /// Infrastructure Node CSE.
    #[default]
    In,
    /// Middle Node CSE.
    Mn,
    /// Application Service Node CSE.
    Asn,
}

impl CseKind {
    fn as_str(self) -> &'static str {
        match self {
            CseKind::In => "in",
            CseKind::Mn => "mn",
            CseKind::Asn => "asn",
        }
    }
}

impl From<CseKind> for CseType {
    fn from(kind: CseKind) -> CseType {
        match kind {
            CseKind::In => CseType::In,
            CseKind::Mn => CseType::Mn,
            CseKind::Asn => CseType::Asn,
        }
    }
}

/// One source's settings: every field optional and unvalidated (numbers are kept as the
/// file's signed integers so that range errors can be reported with the key's name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawSettings {
    pub cse_id: Option<String>,
    pub cse_name: Option<String>,
    pub sp_id: Option<String>,
    pub cse_type: Option<CseKind>,
    pub admin: Option<String>,
    pub default_lifetime_secs: Option<i64>,
    pub expiry_interval_ms: Option<i64>,
    pub discovery_limit: Option<i64>,
    pub result_limit: Option<i64>,
    pub result_max_bytes: Option<i64>,
    pub fanout_limit: Option<i64>,
    pub liveness_check_secs: Option<i64>,
    pub listen: Option<String>,
    pub max_body_bytes: Option<i64>,
    pub data_dir: Option<PathBuf>,
    pub explain_denials_to_client: Option<bool>,
    pub registered_retrieve_cse_base: Option<bool>,
    pub audit_enabled: Option<bool>,
    pub audit_path: Option<PathBuf>,
    pub audit_max_bytes: Option<i64>,
    pub audit_keep: Option<i64>,
    pub log: Option<String>,
    /// `[authorization]`: from the configuration file only.
    pub authorization: Option<AuthorizationSection>,
    /// `[http] insecure`, flag `--insecure`.
    pub insecure: Option<bool>,
    /// `[http] trust-loopback-cses`: from the configuration file only.
    pub trust_loopback_cses: Option<bool>,
    /// `[http] enabled`: from the configuration file only.
    pub http_enabled: Option<bool>,
    /// `[http] advertise`: from the configuration file only.
    pub http_advertise: Option<bool>,
    /// `[tls] listen`, flag `--tls-listen`.
    pub tls_listen: Option<String>,
    /// The rest of `[tls]`: from the configuration file only.
    pub tls: Option<TlsSection>,
    /// `[mqtt] broker`, flag `--mqtt`.
    pub mqtt_broker: Option<String>,
    /// The rest of `[mqtt]`: from the configuration file only.
    pub mqtt: Option<crate::mqtt::MqttSection>,
    /// `[ws] listen`, flag `--ws-listen`.
    pub ws_listen: Option<String>,
    /// `[ws] tls-listen`, flag `--wss-listen`.
    pub wss_listen: Option<String>,
    /// The rest of `[ws]`: from the configuration file only.
    pub ws: Option<crate::ws::WsSection>,
    /// `[coap] listen`, flag `--coap-listen`.
    pub coap_listen: Option<String>,
    /// `[coap] tls-listen`, flag `--coaps-listen`.
    pub coaps_listen: Option<String>,
    /// The rest of `[coap]`: from the configuration file only.
    pub coap: Option<crate::coap::CoapSection>,
    /// `[location]` as written (`bastion_location::LocationConfig`): file only.
    pub location: Option<toml::Table>,
    /// `[registrar]` as written: file only.
    pub registrar: Option<crate::registrar::RegistrarSection>,
    /// `[limits]` as written: file only.
    pub limits: Option<crate::limits::LimitsSection>,
    /// `[provisioning]` as written: file only.
    pub provisioning: Option<crate::provisioning::ProvisioningSection>,
    /// `[flex]` as written: file only.
    pub flex: Option<crate::flex::FlexSection>,
}

impl RawSettings {
    /// `other` laid over `self`: every field `other` sets wins.
    pub fn overlay(self, other: RawSettings) -> RawSettings {
        RawSettings {
            cse_id: other.cse_id.or(self.cse_id),
            cse_name: other.cse_name.or(self.cse_name),
            sp_id: other.sp_id.or(self.sp_id),
            cse_type: other.cse_type.or(self.cse_type),
            admin: other.admin.or(self.admin),
            default_lifetime_secs: other.default_lifetime_secs.or(self.default_lifetime_secs),
            expiry_interval_ms: other.expiry_interval_ms.or(self.expiry_interval_ms),
            discovery_limit: other.discovery_limit.or(self.discovery_limit),
            result_limit: other.result_limit.or(self.result_limit),
            result_max_bytes: other.result_max_bytes.or(self.result_max_bytes),
            fanout_limit: other.fanout_limit.or(self.fanout_limit),
            liveness_check_secs: other.liveness_check_secs.or(self.liveness_check_secs),
            listen: other.listen.or(self.listen),
            max_body_bytes: other.max_body_bytes.or(self.max_body_bytes),
            data_dir: other.data_dir.or(self.data_dir),
            explain_denials_to_client: other
                .explain_denials_to_client
                .or(self.explain_denials_to_client),
            registered_retrieve_cse_base: other
                .registered_retrieve_cse_base
                .or(self.registered_retrieve_cse_base),
            audit_enabled: other.audit_enabled.or(self.audit_enabled),
            audit_path: other.audit_path.or(self.audit_path),
            audit_max_bytes: other.audit_max_bytes.or(self.audit_max_bytes),
            audit_keep: other.audit_keep.or(self.audit_keep),
            log: other.log.or(self.log),
            authorization: other.authorization.or(self.authorization),
            insecure: other.insecure.or(self.insecure),
            trust_loopback_cses: other.trust_loopback_cses.or(self.trust_loopback_cses),
            http_enabled: other.http_enabled.or(self.http_enabled),
            http_advertise: other.http_advertise.or(self.http_advertise),
            tls_listen: other.tls_listen.or(self.tls_listen),
            tls: other.tls.or(self.tls),
            mqtt_broker: other.mqtt_broker.or(self.mqtt_broker),
            mqtt: other.mqtt.or(self.mqtt),
            ws_listen: other.ws_listen.or(self.ws_listen),
            wss_listen: other.wss_listen.or(self.wss_listen),
            ws: other.ws.or(self.ws),
            coap_listen: other.coap_listen.or(self.coap_listen),
            coaps_listen: other.coaps_listen.or(self.coaps_listen),
            coap: other.coap.or(self.coap),
            location: other.location.or(self.location),
            registrar: other.registrar.or(self.registrar),
            provisioning: other.provisioning.or(self.provisioning),
            limits: other.limits.or(self.limits),
            flex: other.flex.or(self.flex),
        }
    }

    /// Parses configuration-file text. Unknown sections and keys are errors, so a typo
    /// cannot silently leave a default in force.
    pub fn from_toml(text: &str) -> Result<RawSettings, String> {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(file.into_raw())
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &Path) -> Result<RawSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::single(format!("cannot read config file {}: {e}", path.display()))
        })?;
        RawSettings::from_toml(&text).map_err(|e| {
            ConfigError::single(format!("config file {}: {}", path.display(), e.trim_end()))
        })
    }

    /// The environment's contribution: `RUST_LOG`, when set and not blank, as the log filter.
    pub fn from_env_log(rust_log: Option<String>) -> RawSettings {
        RawSettings {
            log: rust_log.filter(|v| !v.trim().is_empty()),
            ..RawSettings::default()
        }
    }
}

/// The configuration file as written: sections of optional keys.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    #[serde(default)]
    cse: CseSection,
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    access: AccessSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization: Option<AuthorizationSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tls: Option<TlsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mqtt: Option<crate::mqtt::MqttSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ws: Option<crate::ws::WsSection>,
    coap: Option<crate::coap::CoapSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<toml::Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registrar: Option<crate::registrar::RegistrarSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limits: Option<crate::limits::LimitsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provisioning: Option<crate::provisioning::ProvisioningSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flex: Option<crate::flex::FlexSection>,
}

/// `[tls]`: the TLS listener and its security-association frameworks (docs/security.md).
/// Files are read relative to the data directory when not absolute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSection {
    /// Address and port of the TLS listener; without it (and `--tls-listen`) there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `"psk"` and/or `"certificate"`. Default: `["psk"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frameworks: Option<Vec<TlsFramework>>,
    /// Server certificate chain (PEM, leaf first); required by `"certificate"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<String>,
    /// The server certificate's P-256 private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Trust anchors for client certificates (PEM files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_anchor_files: Vec<String>,
    /// CRLs (PEM files) every client chain is checked against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_files: Vec<String>,
    /// A CRL distribution point (`http://HOST:PORT/PATH`, e.g. an EST server's `/crl`)
    /// fetched at start and every `crl-refresh-seconds`; a CRL signed by a trust anchor
    /// replaces the previous one in `fetched-crl.pem` and is checked like `crl-files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_url: Option<String>,
    /// How often `crl-url` is fetched, seconds (1–86400). Default: 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_refresh_seconds: Option<i64>,
    /// Fail a certificate handshake without a client certificate. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_client_certificate: Option<bool>,
    /// TLS 1.2 only. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_tls13: Option<bool>,
    /// Opt-in: accept clients without a certificate (server-authenticated TLS) whose every
    /// request authenticates a peer CSE with HTTP Basic or Bearer credentials from the
    /// credential store. Needs the certificate framework; makes the client certificate
    /// optional. Default: false (docs/security.md, "HTTP-authenticated peer CSEs").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_http_authentication: Option<bool>,
    /// The encrypted credential store. Default: `credentials.store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_store: Option<String>,
    /// File holding the store key when `BASTION_CREDENTIALS_KEY` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_key_file: Option<String>,
}

/// A security-association establishment framework a TLS listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsFramework {
    /// Provisioned Symmetric Key (TS-0003 8.2.2.1).
    Psk,
    /// Certificates, X.509 or pinned raw keys (TS-0003 8.2.2.2).
    Certificate,
}

/// What a listener demands of its clients (docs/security.md, "Protection levels").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Every request must arrive inside a security association.
    SaRequired,
    /// Requests without a security association are served.
    SaOptional,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protection::SaRequired => "sa-required",
            Protection::SaOptional => "sa-optional",
        })
    }
}

/// The resolved `[tls]`: paths as configured (relative ones are taken from the data
/// directory when used).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    pub psk: bool,
    pub certificate: bool,
    pub certificate_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trust_anchor_files: Vec<PathBuf>,
    pub crl_files: Vec<PathBuf>,
    pub crl_url: Option<String>,
    pub crl_refresh: std::time::Duration,
    pub require_client_certificate: bool,
    pub disable_tls13: bool,
    pub peer_http_authentication: bool,
    pub credentials_store: PathBuf,
    pub credentials_key_file: Option<PathBuf>,
}

/// `[authorization]`: who may vouch for originators beyond the ACPs (TS-0003 7.3, 7.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthorizationSection {
    /// Trusted token issuers, each with exactly one key file.
    #[serde(
        default,
        rename = "token-issuer",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub token_issuers: Vec<TokenIssuerSection>,
    /// `tkis` values whose `<role>` resources count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_authorities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_leeway_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_timeout_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_max_lifetime_secs: Option<i64>,
    /// The AE-ID of the DAS Server AE reached at `https://` points of access: the binding
    /// of `das-psk-id` in the credential store, or the SAN URI its certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_id: Option<String>,
    /// KpsaID of the PSK shared with the DAS Server, from the `[tls]` credential store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_psk_id: Option<String>,
    /// Certificate framework towards the DAS Server: own chain, key, trust anchors (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_certificate_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_ca_file: Option<String>,
    /// Name for SNI and the certificate's dNSName check when `dap` holds an IP literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub das_server_name: Option<String>,
}

/// One `[[authorization.token-issuer]]`: the issuer and the key that pins its algorithm.
/// Key files are read relative to the data directory when not absolute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenIssuerSection {
    pub issuer: String,
    /// HS256: a file holding the shared secret (at least 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret_file: Option<String>,
    /// ES256: a file holding the issuer's P-256 public key (SPKI PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub es256_public_key_file: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AccessSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explain_denials_to_client: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registered_retrieve_cse_base: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AuditSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keep: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CseSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cse_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cse_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sp_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cse_type: Option<CseKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_lifetime_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiry_interval_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    discovery_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result_max_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fanout_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    liveness_check_secs: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HttpSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trust_loopback_cses: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advertise: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct StorageSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_dir: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LogSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    level: Option<String>,
}

impl FileConfig {
    fn into_raw(self) -> RawSettings {
        RawSettings {
            cse_id: self.cse.cse_id,
            cse_name: self.cse.cse_name,
            sp_id: self.cse.sp_id,
            cse_type: self.cse.cse_type,
            admin: self.cse.admin,
            default_lifetime_secs: self.cse.default_lifetime_secs,
            expiry_interval_ms: self.cse.expiry_interval_ms,
            discovery_limit: self.cse.discovery_limit,
            result_limit: self.cse.result_limit,
            result_max_bytes: self.cse.result_max_bytes,
            fanout_limit: self.cse.fanout_limit,
            liveness_check_secs: self.cse.liveness_check_secs,
            listen: self.http.listen,
            max_body_bytes: self.http.max_body_bytes,
            data_dir: self.storage.data_dir.map(PathBuf::from),
            explain_denials_to_client: self.access.explain_denials_to_client,
            registered_retrieve_cse_base: self.access.registered_retrieve_cse_base,
            audit_enabled: self.audit.enabled,
            audit_path: self.audit.path.map(PathBuf::from),
            audit_max_bytes: self.audit.max_bytes,
            audit_keep: self.audit.keep,
            log: self.log.level,
            authorization: self.authorization,
            insecure: self.http.insecure,
            trust_loopback_cses: self.http.trust_loopback_cses,
            http_enabled: self.http.enabled,
            http_advertise: self.http.advertise,
            tls_listen: self.tls.as_ref().and_then(|t| t.listen.clone()),
            tls: self.tls.map(|t| TlsSection { listen: None, ..t }),
            mqtt_broker: self.mqtt.as_ref().and_then(|m| m.broker.clone()),
            mqtt: self
                .mqtt
                .map(|m| crate::mqtt::MqttSection { broker: None, ..m }),
            ws_listen: self.ws.as_ref().and_then(|w| w.listen.clone()),
            wss_listen: self.ws.as_ref().and_then(|w| w.tls_listen.clone()),
            ws: self.ws.map(|w| crate::ws::WsSection {
                listen: None,
                tls_listen: None,
                ..w
            }),
            coap_listen: self.coap.as_ref().and_then(|c| c.listen.clone()),
            coaps_listen: self.coap.as_ref().and_then(|c| c.tls_listen.clone()),
            coap: self.coap.map(|c| crate::coap::CoapSection {
                listen: None,
                tls_listen: None,
                ..c
            }),
            location: self.location,
            registrar: self.registrar,
            limits: self.limits,
            provisioning: self.provisioning,
            flex: self.flex,
        }
    }
}

/// Invalid configuration: every problem found, one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    fn single(message: String) -> ConfigError {
        ConfigError(vec![message])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "invalid configuration: {one}"),
            many => {
                write!(f, "invalid configuration:")?;
                for problem in many {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Validated settings: what `bastion serve` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub cse_id: String,
    pub cse_name: String,
    pub sp_id: String,
    pub cse_type: CseKind,
    pub admin: String,
    pub default_lifetime_secs: i64,
    pub expiry_interval_ms: u64,
    pub discovery_limit: usize,
    pub result_limit: usize,
    pub result_max_bytes: usize,
    pub fanout_limit: usize,
    /// `[cse] liveness-check-secs`: the period of the registration checks (registrar.rs,
    /// liveness.rs); 0 turns them off.
    pub liveness_check_secs: u64,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub data_dir: PathBuf,
    pub explain_denials_to_client: bool,
    /// `[access] registered-retrieve-cse-base`: see
    /// [`CseConfig::registered_retrieve_cse_base`].
    pub registered_retrieve_cse_base: bool,
    pub audit_enabled: bool,
    /// As configured; relative paths are taken from the data directory
    /// ([`Settings::audit_file`]).
    pub audit_path: PathBuf,
    pub audit_max_bytes: u64,
    pub audit_keep: u32,
    pub log: String,
    pub authorization: AuthorizationSection,
    /// `[http] enabled`: whether the plain listener runs at all (a TLS-only CSE).
    pub http_enabled: bool,
    /// `[http] advertise`: whether the CSEBase `poa` lists the plain listener (peers
    /// that send every request to each `poa`, ACME among them, then keep to TLS).
    pub http_advertise: bool,
    /// `[http] insecure`: the plain listener may be on a non-loopback address.
    pub insecure: bool,
    /// `[http] trust-loopback-cses` (development only): see
    /// [`CseConfig::trust_loopback_cses`].
    pub trust_loopback_cses: bool,
    /// The MQTT binding (`[mqtt]`, `--mqtt`), when a broker is configured.
    pub mqtt: Option<crate::mqtt::MqttSettings>,
    /// The WebSocket listeners (`[ws]`, `--ws-listen`, `--wss-listen`), when configured.
    pub ws: Option<crate::ws::WsSettings>,
    /// The CoAP binding (`[coap]`, `--coap-listen`), when a listen address is configured.
    pub coap: Option<crate::coap::CoapSettings>,
    /// The TLS listener, when configured.
    pub tls: Option<TlsSettings>,
    /// `[location]`, checked to parse as `bastion_location::LocationConfig`.
    pub location: Option<toml::Table>,
    /// `[registrar]`: the CSE this one registers with (docs/federation.md).
    pub registrar: Option<crate::registrar::RegistrarSettings>,
    /// `[limits]`: connection caps and timeouts.
    pub limits: crate::limits::Limits,
    /// `[provisioning]`: remote security provisioning as an Enrolment Target.
    pub provisioning: crate::provisioning::Provisioning,
    /// `[flex]`: the specializations of `<flexContainer>` (docs/flex.md).
    pub flex: crate::flex::Flex,
}

impl Settings {
    /// Fills unset fields from the built-in defaults and validates the result.
    pub fn resolve(raw: RawSettings) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let mut check = |result: Result<(), String>| {
            if let Err(problem) = result {
                problems.push(problem);
            }
        };

        let cse_id = raw.cse_id.unwrap_or_else(|| DEFAULT_CSE_ID.to_owned());
        check(validate_cse_id(&cse_id));
        let cse_name = raw.cse_name.unwrap_or_else(|| DEFAULT_CSE_NAME.to_owned());
        check(
            bastion_proto::id::validate_resource_name(&cse_name)
                .map_err(|e| format!("cse-name {cse_name:?}: {e}")),
        );
        let sp_id = raw.sp_id.unwrap_or_else(|| DEFAULT_SP_ID.to_owned());
        check(validate_sp_id(&sp_id));
        let cse_type = raw.cse_type.unwrap_or(DEFAULT_CSE_TYPE);
        let admin = raw.admin.unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
        check(validate_admin(&admin));

        let default_lifetime_secs = ranged_or_default(
            &mut problems,
            "default-lifetime-secs",
            raw.default_lifetime_secs,
            DEFAULT_LIFETIME_SECS,
            (1, MAX_LIFETIME_SECS),
        );
        let expiry_interval_ms = ranged_or_default(
            &mut problems,
            "expiry-interval-ms",
            raw.expiry_interval_ms,
            DEFAULT_EXPIRY_INTERVAL_MS as i64,
            EXPIRY_INTERVAL_RANGE,
        ) as u64;
        let discovery_limit = ranged_or_default(
            &mut problems,
            "discovery-limit",
            raw.discovery_limit,
            DEFAULT_DISCOVERY_LIMIT as i64,
            (1, MAX_DISCOVERY_LIMIT),
        ) as usize;
        let result_limit = ranged_or_default(
            &mut problems,
            "result-limit",
            raw.result_limit,
            DEFAULT_RESULT_LIMIT as i64,
            (1, MAX_RESULT_LIMIT),
        ) as usize;
        let result_max_bytes = ranged_or_default(
            &mut problems,
            "result-max-bytes",
            raw.result_max_bytes,
            DEFAULT_RESULT_MAX_BYTES as i64,
            RESULT_MAX_BYTES_RANGE,
        ) as usize;
        let fanout_limit = ranged_or_default(
            &mut problems,
            "fanout-limit",
            raw.fanout_limit,
            DEFAULT_FANOUT_LIMIT as i64,
            (1, MAX_RESULT_LIMIT),
        ) as usize;
        let liveness_check_secs = ranged_or_default(
            &mut problems,
            "liveness-check-secs",
            raw.liveness_check_secs,
            DEFAULT_LIVENESS_CHECK_SECS as i64,
            (0, 86_400),
        ) as u64;

        let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = match parse_listen(&listen_text) {
            Ok(addr) => Some(addr),
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        let max_body_bytes = ranged_or_default(
            &mut problems,
            "max-body-bytes",
            raw.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES as i64,
            (1, MAX_MAX_BODY_BYTES),
        ) as usize;

        let data_dir = raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            problems.push("data-dir must not be empty".to_owned());
        }
        let explain_denials_to_client = raw
            .explain_denials_to_client
            .unwrap_or(DEFAULT_EXPLAIN_DENIALS_TO_CLIENT);
        let registered_retrieve_cse_base = raw
            .registered_retrieve_cse_base
            .unwrap_or(DEFAULT_REGISTERED_RETRIEVE_CSE_BASE);
        let audit_enabled = raw.audit_enabled.unwrap_or(DEFAULT_AUDIT_ENABLED);
        let audit_path = raw
            .audit_path
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AUDIT_PATH));
        if audit_path.as_os_str().is_empty() {
            problems.push("audit path must not be empty".to_owned());
        }
        let audit_max_bytes = ranged_or_default(
            &mut problems,
            "audit max-bytes",
            raw.audit_max_bytes,
            DEFAULT_AUDIT_MAX_BYTES as i64,
            AUDIT_MAX_BYTES_RANGE,
        ) as u64;
        let audit_keep = ranged_or_default(
            &mut problems,
            "audit keep",
            raw.audit_keep,
            DEFAULT_AUDIT_KEEP as i64,
            AUDIT_KEEP_RANGE,
        ) as u32;
        let log = raw.log.unwrap_or_else(|| DEFAULT_LOG.to_owned());
        if let Err(problem) = validate_log_filter(&log) {
            problems.push(problem);
        }
        let authorization = raw.authorization.unwrap_or_default();
        problems.extend(validate_authorization(&authorization));
        let insecure = raw.insecure.unwrap_or(DEFAULT_INSECURE);
        let trust_loopback_cses = raw
            .trust_loopback_cses
            .unwrap_or(DEFAULT_TRUST_LOOPBACK_CSES);
        let http_enabled = raw.http_enabled.unwrap_or(DEFAULT_HTTP_ENABLED);
        let http_advertise = raw.http_advertise.unwrap_or(DEFAULT_HTTP_ADVERTISE);
        if let Some(addr) = listen.filter(|_| http_enabled) {
            if let Err(problem) = plain_protection(addr, insecure) {
                problems.push(problem);
            }
        }
        let tls = match resolve_tls(raw.tls_listen, raw.tls.unwrap_or_default()) {
            Ok(tls) => tls,
            Err(mut found) => {
                problems.append(&mut found);
                None
            }
        };
        let mqtt = crate::mqtt::resolve(raw.mqtt_broker, raw.mqtt)
            .map_err(|mut found| problems.append(&mut found))
            .unwrap_or_default();
        let ws_context = crate::ws::Context {
            insecure,
            tls: tls.is_some(),
        };
        let ws = crate::ws::resolve(raw.ws_listen, raw.wss_listen, raw.ws, &ws_context)
            .map_err(|mut found| problems.append(&mut found))
            .unwrap_or_default();
        let coap = crate::coap::resolve(raw.coap_listen, raw.coaps_listen, raw.coap)
            .map_err(|mut found| problems.append(&mut found))
            .unwrap_or_default();
        if !http_enabled {
            problems.extend(plain_listener_off(tls.is_some(), raw.location.is_some()));
        }
        if let Some(table) = &raw.location {
            if let Err(problem) = parse_location(table) {
                problems.push(problem);
            }
        }
        let registrar = match &raw.registrar {
            Some(section) => {
                let is_in = matches!(cse_type, CseKind::In);
                match crate::registrar::resolve(section, &cse_id, is_in, validate_cse_id) {
                    Ok(r) => Some(r),
                    Err(mut found) => {
                        problems.append(&mut found);
                        None
                    }
                }
            }
            None => None,
        };
        let limits = crate::limits::Limits::resolve(&raw.limits.unwrap_or_default())
            .map_err(|mut found| problems.append(&mut found))
            .unwrap_or_default();
        let flex = crate::flex::Flex::resolve(&raw.flex.unwrap_or_default(), &data_dir)
            .map_err(|mut found| problems.append(&mut found))
            .unwrap_or_default();
        let provisioning_section = raw.provisioning.unwrap_or_default();
        problems.extend(crate::maf_source::validate(
            &provisioning_section,
            tls.as_ref().map(|t| t.psk),
        ));
        let provisioning = crate::provisioning::Provisioning::resolve(&provisioning_section)
            .map_err(|mut found| problems.append(&mut found))
            .unwrap_or_default();
        if provisioning.gba.is_some() && !tls.as_ref().is_some_and(|t| t.psk) {
            problems.push(
                "[provisioning] gba-bsf-url needs a [tls] listener with the psk framework"
                    .to_owned(),
            );
        }
        if provisioning.mef.is_some() && !tls.as_ref().is_some_and(|t| t.psk) {
            problems.push(
                "[provisioning] mef-url needs a [tls] listener with the psk framework".to_owned(),
            );
        }

        match listen {
            Some(listen) if problems.is_empty() => Ok(Settings {
                cse_id,
                cse_name,
                sp_id,
                cse_type,
                admin,
                default_lifetime_secs,
                expiry_interval_ms,
                discovery_limit,
                result_limit,
                result_max_bytes,
                fanout_limit,
                liveness_check_secs,
                listen,
                max_body_bytes,
                data_dir,
                explain_denials_to_client,
                registered_retrieve_cse_base,
                audit_enabled,
                audit_path,
                audit_max_bytes,
                audit_keep,
                log,
                authorization,
                http_enabled,
                http_advertise,
                insecure,
                trust_loopback_cses,
                tls,
                mqtt,
                ws,
                coap,
                location: raw.location,
                registrar,
                limits,
                provisioning,
                flex,
            }),
            _ => Err(ConfigError(problems)),
        }
    }

    /// The built-in defaults (what an empty configuration resolves to).
    #[cfg(test)]
    pub fn defaults() -> Settings {
        Settings {
            cse_id: DEFAULT_CSE_ID.to_owned(),
            cse_name: DEFAULT_CSE_NAME.to_owned(),
            sp_id: DEFAULT_SP_ID.to_owned(),
            cse_type: DEFAULT_CSE_TYPE,
            admin: DEFAULT_ADMIN.to_owned(),
            default_lifetime_secs: DEFAULT_LIFETIME_SECS,
            expiry_interval_ms: DEFAULT_EXPIRY_INTERVAL_MS,
            discovery_limit: DEFAULT_DISCOVERY_LIMIT,
            result_limit: DEFAULT_RESULT_LIMIT,
            result_max_bytes: DEFAULT_RESULT_MAX_BYTES,
            fanout_limit: DEFAULT_FANOUT_LIMIT,
            liveness_check_secs: DEFAULT_LIVENESS_CHECK_SECS,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            explain_denials_to_client: DEFAULT_EXPLAIN_DENIALS_TO_CLIENT,
            registered_retrieve_cse_base: DEFAULT_REGISTERED_RETRIEVE_CSE_BASE,
            audit_enabled: DEFAULT_AUDIT_ENABLED,
            audit_path: PathBuf::from(DEFAULT_AUDIT_PATH),
            audit_max_bytes: DEFAULT_AUDIT_MAX_BYTES,
            audit_keep: DEFAULT_AUDIT_KEEP,
            log: DEFAULT_LOG.to_owned(),
            authorization: AuthorizationSection::default(),
            http_enabled: DEFAULT_HTTP_ENABLED,
            http_advertise: DEFAULT_HTTP_ADVERTISE,
            insecure: DEFAULT_INSECURE,
            trust_loopback_cses: DEFAULT_TRUST_LOOPBACK_CSES,
            tls: None,
            mqtt: None,
            ws: None,
            coap: None,
            location: None,
            registrar: None,
            limits: crate::limits::Limits::default(),
            provisioning: crate::provisioning::Provisioning::default(),
            flex: crate::flex::Flex::default(),
        }
    }

    /// The SQLite database file: `<data-dir>/bastion.db`.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE_NAME)
    }

    /// The audit log file: `[audit] path`, taken from the data directory when relative.
    pub fn audit_file(&self) -> PathBuf {
        self.data_dir.join(&self.audit_path)
    }

    /// The CSE's configuration. `bound` is the address the listener actually got (it
    /// differs from `listen` when port 0 was asked for); the CSEBase `poa` advertises it.
    pub fn cse_config(&self, bound: SocketAddr) -> CseConfig {
        CseConfig {
            cse_id: self.cse_id.clone(),
            cse_name: self.cse_name.clone(),
            sp_id: self.sp_id.clone(),
            cse_type: self.cse_type.into(),
            admin: self.admin.clone(),
            poa: vec![format!("http://{bound}")],
            default_lifetime_secs: self.default_lifetime_secs,
            expiry_interval_ms: self.expiry_interval_ms,
            discovery_limit: self.discovery_limit,
            result_limit: self.result_limit,
            result_max_bytes: self.result_max_bytes,
            fanout_limit: self.fanout_limit,
            explain_denials_to_client: self.explain_denials_to_client,
            registered_retrieve_cse_base: self.registered_retrieve_cse_base,
            registrar: self.registrar.as_ref().map(|r| r.cse_id.clone()),
            trust_loopback_cses: self.trust_loopback_cses,
            max_subscriptions_per_originator: self.limits.max_subscriptions_per_originator,
            flex: self.flex.specializations.clone(),
            ..CseConfig::default()
        }
    }

    /// The `[authorization]` settings with their key files read. Fails when a key file
    /// cannot be read or holds no usable key.
    pub fn authorization_config(&self) -> Result<AuthorizationConfig, ConfigError> {
        let a = &self.authorization;
        let mut problems = Vec::new();
        let mut token_issuers = Vec::new();
        for issuer in &a.token_issuers {
            let read = |file: &str| {
                let path = self.data_dir.join(file);
                std::fs::read(&path).map_err(|e| {
                    format!(
                        "token issuer {}: cannot read {}: {e}",
                        issuer.issuer,
                        path.display()
                    )
                })
            };
            let key = match (&issuer.hs256_secret_file, &issuer.es256_public_key_file) {
                // A shared secret is read like every secret file (owner-only, wiped).
                (Some(file), None) => bastion_tls::secret::read_secret(&self.data_dir.join(file))
                    .map_err(|e| format!("token issuer {}: {e}", issuer.issuer))
                    .and_then(|secret| {
                        IssuerKey::hs256(secret.to_vec())
                            .map_err(|e| format!("token issuer {}: {e}", issuer.issuer))
                    }),
                (None, Some(file)) => read(file).and_then(|pem| {
                    let pem = String::from_utf8_lossy(&pem).into_owned();
                    IssuerKey::es256_spki_pem(&pem)
                        .map_err(|e| format!("token issuer {}: {e}", issuer.issuer))
                }),
                _ => Err(format!(
                    "token issuer {}: give exactly one key file",
                    issuer.issuer
                )),
            };
            match key {
                Ok(key) => token_issuers.push((issuer.issuer.clone(), key)),
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let defaults = CseConfig::default().authorization;
        Ok(AuthorizationConfig {
            token_issuers,
            token_leeway_secs: a.token_leeway_secs.map_or(0, |v| v as u32),
            role_authorities: a.role_authorities.clone(),
            das_timeout_ms: a
                .das_timeout_ms
                .map_or(defaults.das_timeout_ms, |v| v as u64),
            das_max_lifetime_secs: a
                .das_max_lifetime_secs
                .unwrap_or(defaults.das_max_lifetime_secs),
        })
    }

    /// The protection level of the plain listener (validated at resolution).
    pub fn plain_protection(&self) -> Protection {
        Protection::SaOptional
    }

    /// `[location]` as the location PIP's configuration.
    pub fn location_config(&self) -> Option<Result<bastion_location::LocationConfig, String>> {
        self.location.as_ref().map(parse_location)
    }

    /// The local identity originators are normalised against.
    pub fn local_identity(&self) -> bastion_policy::LocalIdentity {
        bastion_policy::LocalIdentity {
            sp_id: self.sp_id.clone(),
            cse_id: self.cse_id.clone(),
            admin: self.admin.clone(),
        }
    }

    /// A configured path: taken from the data directory when relative.
    pub fn data_path(&self, path: &Path) -> PathBuf {
        self.data_dir.join(path)
    }

    /// The HTTP binding's limits.
    pub fn http_limits(&self) -> bastion_http::HttpLimits {
        bastion_http::HttpLimits {
            max_body_bytes: self.max_body_bytes,
            timeouts: self.limits.timeouts,
        }
    }

    /// The settings as a configuration file (every key set), for `bastion config check`.
    pub fn to_toml(&self) -> Result<String, String> {
        let file = FileConfig {
            cse: CseSection {
                cse_id: Some(self.cse_id.clone()),
                cse_name: Some(self.cse_name.clone()),
                sp_id: Some(self.sp_id.clone()),
                cse_type: Some(self.cse_type),
                admin: Some(self.admin.clone()),
                default_lifetime_secs: Some(self.default_lifetime_secs),
                expiry_interval_ms: Some(self.expiry_interval_ms as i64),
                discovery_limit: Some(self.discovery_limit as i64),
                result_limit: Some(self.result_limit as i64),
                result_max_bytes: Some(self.result_max_bytes as i64),
                fanout_limit: Some(self.fanout_limit as i64),
                liveness_check_secs: Some(self.liveness_check_secs as i64),
            },
            http: HttpSection {
                enabled: Some(self.http_enabled),
                listen: Some(self.listen.to_string()),
                insecure: Some(self.insecure),
                trust_loopback_cses: Some(self.trust_loopback_cses),
                advertise: Some(self.http_advertise),
                max_body_bytes: Some(self.max_body_bytes as i64),
            },
            storage: StorageSection {
                data_dir: Some(
                    self.data_dir
                        .to_str()
                        .ok_or_else(|| {
                            format!(
                                "data-dir {} is not valid UTF-8 and cannot be shown as TOML",
                                self.data_dir.display()
                            )
                        })?
                        .to_owned(),
                ),
            },
            access: AccessSection {
                explain_denials_to_client: Some(self.explain_denials_to_client),
                registered_retrieve_cse_base: Some(self.registered_retrieve_cse_base),
            },
            audit: AuditSection {
                enabled: Some(self.audit_enabled),
                path: Some(
                    self.audit_path
                        .to_str()
                        .ok_or_else(|| {
                            format!(
                                "audit path {} is not valid UTF-8 and cannot be shown as TOML",
                                self.audit_path.display()
                            )
                        })?
                        .to_owned(),
                ),
                max_bytes: Some(self.audit_max_bytes as i64),
                keep: Some(self.audit_keep as i64),
            },
            log: LogSection {
                level: Some(self.log.clone()),
            },
            authorization: (self.authorization != AuthorizationSection::default())
                .then(|| self.authorization.clone()),
            tls: self.tls.as_ref().map(TlsSettings::to_section).transpose()?,
            mqtt: self
                .mqtt
                .as_ref()
                .map(crate::mqtt::MqttSettings::to_section),
            ws: self.ws.as_ref().map(crate::ws::WsSettings::to_section),
            coap: self
                .coap
                .as_ref()
                .map(crate::coap::CoapSettings::to_section),
            location: self.location.clone(),
            registrar: self
                .registrar
                .as_ref()
                .map(crate::registrar::RegistrarSettings::to_section),
            limits: (self.limits != crate::limits::Limits::default())
                .then(|| self.limits.to_section()),
            provisioning: (self.provisioning != crate::provisioning::Provisioning::default())
                .then(|| self.provisioning.to_section()),
            flex: (self.flex != crate::flex::Flex::default()).then(|| self.flex.to_section()),
        };
        toml::to_string(&file).map_err(|e| e.to_string())
    }
}

impl fmt::Display for CseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TlsSettings {
    /// Every request on a TLS listener arrives inside a security association: a handshake
    /// that binds no identity is refused.
    pub fn protection(&self) -> Protection {
        Protection::SaRequired
    }

    fn to_section(&self) -> Result<TlsSection, String> {
        let text = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("tls path {} is not valid UTF-8", p.display()))
        };
        let texts = |ps: &[PathBuf]| ps.iter().map(|p| text(p)).collect::<Result<Vec<_>, _>>();
        let mut frameworks = Vec::new();
        if self.psk {
            frameworks.push(TlsFramework::Psk);
        }
        if self.certificate {
            frameworks.push(TlsFramework::Certificate);
        }
        Ok(TlsSection {
            listen: Some(self.listen.to_string()),
            frameworks: Some(frameworks),
            certificate_file: self.certificate_file.as_deref().map(text).transpose()?,
            key_file: self.key_file.as_deref().map(text).transpose()?,
            trust_anchor_files: texts(&self.trust_anchor_files)?,
            crl_files: texts(&self.crl_files)?,
            crl_url: self.crl_url.clone(),
            crl_refresh_seconds: self
                .crl_url
                .as_ref()
                .map(|_| i64::try_from(self.crl_refresh.as_secs()).unwrap_or(i64::MAX)),
            require_client_certificate: Some(self.require_client_certificate),
            disable_tls13: Some(self.disable_tls13),
            peer_http_authentication: self.peer_http_authentication.then_some(true),
            credentials_store: Some(text(&self.credentials_store)?),
            credentials_key_file: self.credentials_key_file.as_deref().map(text).transpose()?,
        })
    }
}

/// What a CSE without its plain listener (`[http] enabled = false`) still needs: a TLS
/// listener to serve at all, and no `[location]`, whose notification receiver is mounted
/// on the plain listener (docs/security.md, "Location").
fn plain_listener_off(has_tls: bool, has_location: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !has_tls {
        problems.push(
            "[http] enabled = false needs a TLS listener ([tls] listen or --tls-listen): \
             otherwise nothing is served"
                .to_owned(),
        );
    }
    if has_location {
        problems.push(
            "[http] enabled = false cannot be combined with [location]: its notification \
             receiver is served on the plain listener"
                .to_owned(),
        );
    }
    problems
}

/// The plain listener carries no security association, so it can only be `sa-optional`.
/// That is the default on loopback; elsewhere the default is `sa-required`, which a plain
/// listener cannot meet: refused unless the operator opts in with `insecure`.
fn plain_protection(addr: SocketAddr, insecure: bool) -> Result<Protection, String> {
    if addr.ip().is_loopback() || insecure {
        return Ok(Protection::SaOptional);
    }
    Err(format!(
        "http listen {addr} is not a loopback address: plain HTTP carries no security \
         association and the protection level there is sa-required; serve it with [tls] \
         (--tls-listen), or set [http] insecure = true (--insecure) to accept \
         unauthenticated requests on it"
    ))
}

/// `[tls]` resolved: `None` without a listen address (then the other keys are ignored
/// only if none is set, so a forgotten `listen` is noticed).
fn resolve_tls(listen: Option<String>, t: TlsSection) -> Result<Option<TlsSettings>, Vec<String>> {
    let mut problems = Vec::new();
    let Some(listen) = listen else {
        if t != TlsSection::default() {
            problems.push(
                "[tls] has settings but no listen address (tls listen or --tls-listen)".to_owned(),
            );
            return Err(problems);
        }
        return Ok(None);
    };
    let listen = parse_listen(&listen)
        .map_err(|p| format!("tls {p}"))
        .map_err(|p| problems.push(p))
        .ok();
    let frameworks = t
        .frameworks
        .clone()
        .unwrap_or_else(|| vec![TlsFramework::Psk]);
    let psk = frameworks.contains(&TlsFramework::Psk);
    let certificate = frameworks.contains(&TlsFramework::Certificate);
    if !psk && !certificate {
        problems.push("tls frameworks: give \"psk\", \"certificate\" or both".to_owned());
    }
    if certificate && (t.certificate_file.is_none() || t.key_file.is_none()) {
        problems
            .push("tls: the certificate framework needs certificate-file and key-file".to_owned());
    }
    if certificate && t.trust_anchor_files.is_empty() {
        problems.push("tls: the certificate framework needs trust-anchor-files".to_owned());
    }
    if !certificate && (t.require_client_certificate == Some(true) || !t.crl_files.is_empty()) {
        problems.push(
            "tls: require-client-certificate and crl-files need the certificate framework"
                .to_owned(),
        );
    }
    if !certificate && t.crl_url.is_some() {
        problems.push("tls: crl-url needs the certificate framework".to_owned());
    }
    if let Some(url) = &t.crl_url {
        if !url.starts_with("http://") {
            problems.push(format!(
                "tls: crl-url must be http://HOST[:PORT]/PATH (the CRL's signature is checked), not {url:?}"
            ));
        }
    }
    let crl_refresh = ranged_or_default(
        &mut problems,
        "[tls] crl-refresh-seconds",
        t.crl_refresh_seconds,
        DEFAULT_CRL_REFRESH_SECONDS,
        (1, 86_400),
    );
    let peer_http = t.peer_http_authentication == Some(true);
    if peer_http && !certificate {
        problems.push("tls: peer-http-authentication needs the certificate framework".to_owned());
    }
    if peer_http && t.require_client_certificate == Some(true) {
        problems.push(
            "tls: peer-http-authentication accepts clients without a certificate; it cannot \
             be combined with require-client-certificate = true"
                .to_owned(),
        );
    }
    let empty = |f: &Option<String>| f.as_deref() == Some("");
    if empty(&t.credentials_store) || empty(&t.credentials_key_file) {
        problems.push("tls: file names must not be empty".to_owned());
    }
    match listen {
        Some(listen) if problems.is_empty() => Ok(Some(TlsSettings {
            listen,
            psk,
            certificate,
            certificate_file: t.certificate_file.map(PathBuf::from),
            key_file: t.key_file.map(PathBuf::from),
            trust_anchor_files: t.trust_anchor_files.iter().map(PathBuf::from).collect(),
            crl_files: t.crl_files.iter().map(PathBuf::from).collect(),
            crl_url: t.crl_url,
            crl_refresh: std::time::Duration::from_secs(u64::try_from(crl_refresh).unwrap_or(1)),
            require_client_certificate: t
                .require_client_certificate
                .unwrap_or(certificate && !peer_http),
            disable_tls13: t.disable_tls13.unwrap_or(false),
            peer_http_authentication: peer_http,
            credentials_store: PathBuf::from(
                t.credentials_store
                    .unwrap_or_else(|| DEFAULT_CREDENTIALS_STORE.to_owned()),
            ),
            credentials_key_file: t.credentials_key_file.map(PathBuf::from),
        })),
        _ => Err(problems),
    }
}

/// `[location]` parsed strictly; semantic checks happen when the PIP is built at start.
fn parse_location(table: &toml::Table) -> Result<bastion_location::LocationConfig, String> {
    toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| format!("[location]: {}", e.message()))
}

/// Shape checks of `[authorization]` (key files are read later, at start).
fn validate_authorization(a: &AuthorizationSection) -> Vec<String> {
    let mut problems = Vec::new();
    for issuer in &a.token_issuers {
        if issuer.issuer.is_empty() {
            problems.push("authorization token-issuer: issuer must not be empty".to_owned());
        }
        let files = [&issuer.hs256_secret_file, &issuer.es256_public_key_file];
        if files.iter().filter(|f| f.is_some()).count() != 1 {
            problems.push(format!(
                "authorization token-issuer {}: give exactly one of hs256-secret-file and es256-public-key-file",
                issuer.issuer
            ));
        }
    }
    if a.role_authorities.iter().any(String::is_empty) {
        problems.push("authorization role-authorities: entries must not be empty".to_owned());
    }
    let certificate = [&a.das_certificate_file, &a.das_key_file, &a.das_ca_file];
    let cert_given = certificate.iter().filter(|f| f.is_some()).count();
    if cert_given != 0 && cert_given != 3 {
        problems.push(
            "authorization: das-certificate-file, das-key-file and das-ca-file go together"
                .to_owned(),
        );
    }
    if a.das_psk_id.is_some() && cert_given != 0 {
        problems
            .push("authorization: give das-psk-id or das-certificate-file, not both".to_owned());
    }
    match (&a.das_id, a.das_psk_id.is_some() || cert_given != 0) {
        (None, true) => problems.push(
            "authorization: das-id (the DAS Server's AE-ID) is required with a DAS credential"
                .to_owned(),
        ),
        (Some(_), false) => problems
            .push("authorization: das-id needs das-psk-id or das-certificate-file".to_owned()),
        (Some(id), true) => {
            if bastion_tls::identity::validate_ae_id(id).is_err() {
                problems.push(format!("authorization das-id: {id:?} is not an AE-ID"));
            }
        }
        (None, false) => {}
    }
    for (key, value, range) in [
        ("token-leeway-secs", a.token_leeway_secs, (0, 3600)),
        ("das-timeout-ms", a.das_timeout_ms, (1, 60_000)),
        (
            "das-max-lifetime-secs",
            a.das_max_lifetime_secs,
            (1, 86_400 * 365),
        ),
    ] {
        if let Some(v) = value {
            if let Err(problem) = ranged(&format!("authorization {key}"), Some(v), v, range) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// `value` (or `default` when unset) if it lies in `range` (inclusive).
pub(crate) fn ranged(
    key: &str,
    value: Option<i64>,
    default: i64,
    range: (i64, i64),
) -> Result<i64, String> {
    let v = value.unwrap_or(default);
    if v < range.0 || v > range.1 {
        return Err(format!(
            "{key} {v}: must be between {} and {}",
            range.0, range.1
        ));
    }
    Ok(v)
}

/// [`ranged`] for one setting among many: a problem is recorded in `problems` and the
/// default stands in, so that resolving goes on and every problem is reported at once.
pub(crate) fn ranged_or_default(
    problems: &mut Vec<String>,
    key: &str,
    value: Option<i64>,
    default: i64,
    range: (i64, i64),
) -> i64 {
    ranged(key, value, default, range).unwrap_or_else(|problem| {
        problems.push(problem);
        default
    })
}

/// Characters allowed in a CSE-ID after its slash (RFC 3986 unreserved).
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// A CSE-ID is SP-relative: exactly one leading `/` then a non-empty identifier with no
/// further `/` (TS-0001 §7.2), e.g. `/id-in`.
fn validate_cse_id(cse_id: &str) -> Result<(), String> {
    let problem = |why: &str| Err(format!("cse-id {cse_id:?}: {why} (example: \"/id-in\")"));
    let Some(rest) = cse_id.strip_prefix('/') else {
        return problem("must start with \"/\"");
    };
    if rest.starts_with('/') {
        return problem("must start with a single \"/\", not \"//\"");
    }
    if rest.is_empty() {
        return problem("must have an identifier after the \"/\"");
    }
    if rest.contains('/') {
        return problem("must not contain a \"/\" after the first character");
    }
    if rest.len() > bastion_proto::id::MAX_SEGMENT_LEN {
        return problem("is too long");
    }
    if !rest.chars().all(is_id_char) {
        return problem("may contain only letters, digits and - . _ ~ after the \"/\"");
    }
    Ok(())
}

/// An M2M-SP-ID is `//` followed by a domain name, e.g. `//bastion.example`.
fn validate_sp_id(sp_id: &str) -> Result<(), String> {
    let problem = |why: &str| {
        Err(format!(
            "sp-id {sp_id:?}: {why} (example: \"//bastion.example\")"
        ))
    };
    let Some(fqdn) = sp_id.strip_prefix("//") else {
        return problem("must start with \"//\"");
    };
    if fqdn.is_empty() {
        return problem("must have a domain name after the \"//\"");
    }
    if fqdn.contains('/') {
        return problem("must not contain a \"/\" after the leading \"//\"");
    }
    if fqdn.len() > 253 {
        return problem("is too long");
    }
    if !fqdn
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        || fqdn.starts_with('.')
        || fqdn.ends_with('.')
        || fqdn.contains("..")
    {
        return problem("must be a domain name (letters, digits, - and .)");
    }
    Ok(())
}

fn validate_admin(admin: &str) -> Result<(), String> {
    if admin.is_empty() {
        return Err("admin must not be empty".to_owned());
    }
    bastion_proto::id::validate_originator(admin).map_err(|e| format!("admin {admin:?}: {e}"))
}

/// A listen address is an IP address and a port (no host names, so the bound address and
/// the advertised `poa` are unambiguous).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>().map_err(|_| {
        format!(
            "listen {text:?}: must be an IP address and port such as \"127.0.0.1:8080\", \
             \"0.0.0.0:8080\" or \"[::1]:8080\""
        )
    })
}

/// A log filter is a comma-separated list of directives, each a level (`info`) or
/// `target=level` (`bastion_core=debug`), in `tracing_subscriber::EnvFilter` syntax. A bare
/// word that is not a level is refused: `EnvFilter` would read it as a target name and
/// silently log nothing else.
fn validate_log_filter(filter: &str) -> Result<(), String> {
    let problem = |why: String| {
        Err(format!(
            "log {filter:?}: {why} (use one of {} or target=level directives separated by commas)",
            LOG_LEVELS.join("|")
        ))
    };
    if filter.trim().is_empty() {
        return problem("must not be empty".to_owned());
    }
    for directive in filter.split(',').map(str::trim) {
        if directive.is_empty() {
            continue;
        }
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level,
            None if directive.contains('[') => continue,
            None => directive,
        };
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return problem(format!("{level:?} is not a log level"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(|_| ())
        .or_else(|e| problem(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(raw: RawSettings) -> Settings {
        match Settings::resolve(raw) {
            Ok(s) => s,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn problems(raw: RawSettings) -> Vec<String> {
        match Settings::resolve(raw) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(ConfigError(p)) => p,
        }
    }

    #[test]
    fn das_credentials_need_the_das_identity_and_one_framework() {
        let with = |toml: &str| RawSettings::from_toml(toml).expect("toml");
        assert_eq!(
            problems(with("[authorization]\ndas-psk-id = \"c@sp.example\"\n")),
            vec![
                "authorization: das-id (the DAS Server's AE-ID) is required with a DAS credential"
                    .to_owned()
            ]
        );
        assert_eq!(
            problems(with(
                "[authorization]\ndas-id = \"//sp.example/id-das/Cdas\"\n\
                 das-psk-id = \"c@sp.example\"\ndas-certificate-file = \"c.pem\"\n"
            )),
            vec![
                "authorization: das-certificate-file, das-key-file and das-ca-file go together"
                    .to_owned(),
                "authorization: give das-psk-id or das-certificate-file, not both".to_owned(),
            ]
        );
        assert_eq!(
            problems(with(
                "[authorization]\ndas-id = \"/id-in\"\ndas-psk-id = \"c@sp.example\"\n"
            )),
            vec!["authorization das-id: \"/id-in\" is not an AE-ID".to_owned()]
        );
        let ok = resolve(with(
            "[authorization]\ndas-id = \"//sp.example/id-das/Cdas\"\n\
             das-psk-id = \"c@sp.example\"\n",
        ));
        assert_eq!(ok.authorization.das_psk_id.as_deref(), Some("c@sp.example"));
    }

    #[test]
    fn default_file_sets_every_key_to_the_built_in_default() {
        let raw = match RawSettings::from_toml(DEFAULT_CONFIG_TOML) {
            Ok(raw) => raw,
            Err(e) => panic!("bastion.default.toml does not parse: {e}"),
        };
        // No `..`: a new field must be added here, and so to the default file.
        let RawSettings {
            cse_id,
            cse_name,
            sp_id,
            cse_type,
            admin,
            default_lifetime_secs,
            expiry_interval_ms,
            discovery_limit,
            result_limit,
            result_max_bytes,
            fanout_limit,
            liveness_check_secs,
            listen,
            max_body_bytes,
            data_dir,
            explain_denials_to_client,
            registered_retrieve_cse_base,
            audit_enabled,
            audit_path,
            audit_max_bytes,
            audit_keep,
            log,
            insecure,
            trust_loopback_cses,
            http_enabled,
            http_advertise,
            // [authorization], [tls], [mqtt], [ws] and [location] have no defaults to set: the
            // file documents them commented out.
            authorization: _,
            tls_listen: _,
            tls: _,
            mqtt_broker: _,
            mqtt: _,
            ws_listen: _,
            wss_listen: _,
            ws: _,
            coap_listen: _,
            coaps_listen: _,
            coap: _,
            location: _,
            registrar: _,
            limits,
            provisioning: _,
            flex,
        } = &raw;
        let set = [
            ("cse-id", cse_id.is_some()),
            ("cse-name", cse_name.is_some()),
            ("sp-id", sp_id.is_some()),
            ("cse-type", cse_type.is_some()),
            ("admin", admin.is_some()),
            ("default-lifetime-secs", default_lifetime_secs.is_some()),
            ("expiry-interval-ms", expiry_interval_ms.is_some()),
            ("discovery-limit", discovery_limit.is_some()),
            ("result-limit", result_limit.is_some()),
            ("result-max-bytes", result_max_bytes.is_some()),
            ("fanout-limit", fanout_limit.is_some()),
            ("liveness-check-secs", liveness_check_secs.is_some()),
            ("listen", listen.is_some()),
            ("max-body-bytes", max_body_bytes.is_some()),
            ("data-dir", data_dir.is_some()),
            (
                "explain-denials-to-client",
                explain_denials_to_client.is_some(),
            ),
            (
                "registered-retrieve-cse-base",
                registered_retrieve_cse_base.is_some(),
            ),
            ("audit enabled", audit_enabled.is_some()),
            ("audit path", audit_path.is_some()),
            ("audit max-bytes", audit_max_bytes.is_some()),
            ("audit keep", audit_keep.is_some()),
            ("level", log.is_some()),
            ("insecure", insecure.is_some()),
            ("trust-loopback-cses", trust_loopback_cses.is_some()),
            ("enabled", http_enabled.is_some()),
            ("advertise", http_advertise.is_some()),
            ("[limits]", limits.is_some()),
            ("[flex]", flex.is_some()),
        ];
        for (key, is_set) in set {
            assert!(is_set, "bastion.default.toml does not set {key}");
        }
        assert_eq!(resolve(raw), Settings::defaults());
        assert_eq!(resolve(RawSettings::default()), Settings::defaults());
    }

    #[test]
    fn documented_default_file_matches() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let doc = match std::fs::read_to_string(path) {
            Ok(doc) => doc,
            Err(e) => panic!("cannot read {path}: {e}"),
        };
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_default();
        let significant = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            significant(block),
            significant(DEFAULT_CONFIG_TOML),
            "docs/configuration.md shows another default file than bastion.default.toml"
        );
    }

    #[test]
    fn built_in_defaults_match_the_cse_defaults() {
        let ours = Settings::defaults().cse_config(Settings::defaults().listen);
        let core = CseConfig::default();
        assert_eq!(ours.cse_id, core.cse_id);
        assert_eq!(ours.cse_name, core.cse_name);
        assert_eq!(ours.sp_id, core.sp_id);
        assert_eq!(ours.cse_type, core.cse_type);
        assert_eq!(ours.admin, core.admin);
        assert_eq!(ours.poa, core.poa);
        assert_eq!(ours.default_lifetime_secs, core.default_lifetime_secs);
        assert_eq!(ours.expiry_interval_ms, core.expiry_interval_ms);
        assert_eq!(ours.discovery_limit, core.discovery_limit);
        assert_eq!(ours.result_limit, core.result_limit);
        assert_eq!(ours.result_max_bytes, core.result_max_bytes);
        assert_eq!(ours.fanout_limit, core.fanout_limit);
        assert_eq!(
            ours.explain_denials_to_client,
            core.explain_denials_to_client
        );
        assert_eq!(
            ours.registered_retrieve_cse_base,
            core.registered_retrieve_cse_base
        );
        assert_eq!(
            bastion_http::HttpLimits::default().max_body_bytes,
            DEFAULT_MAX_BODY_BYTES
        );
    }

    #[test]
    fn resolved_settings_round_trip_through_toml() {
        let settings = resolve(RawSettings {
            cse_id: Some("/mn-1".into()),
            cse_type: Some(CseKind::Mn),
            listen: Some("[::1]:9000".into()),
            data_dir: Some("/var/lib/bastion".into()),
            ..RawSettings::default()
        });
        let text = match settings.to_toml() {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        let back = match RawSettings::from_toml(&text) {
            Ok(raw) => resolve(raw),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(back, settings);
    }

    #[test]
    fn precedence_flags_over_env_over_file_over_defaults() {
        let file = match RawSettings::from_toml(
            "[cse]\ncse-id = \"/file\"\ncse-name = \"from-file\"\n\
             [http]\nlisten = \"0.0.0.0:1000\"\ninsecure = true\n[log]\nlevel = \"warn\"\n",
        ) {
            Ok(raw) => raw,
            Err(e) => panic!("{e}"),
        };
        let env = RawSettings::from_env_log(Some("debug".into()));
        let flags = RawSettings {
            cse_id: Some("/flag".into()),
            ..RawSettings::default()
        };
        let s = resolve(file.clone().overlay(env.clone()).overlay(flags.clone()));
        assert_eq!(s.cse_id, "/flag");
        assert_eq!(s.cse_name, "from-file");
        assert_eq!(s.listen.to_string(), "0.0.0.0:1000");
        assert_eq!(s.log, "debug");
        assert_eq!(s.sp_id, DEFAULT_SP_ID);

        let flags_log = RawSettings {
            log: Some("trace".into()),
            ..flags
        };
        assert_eq!(
            resolve(file.clone().overlay(env).overlay(flags_log)).log,
            "trace"
        );
        let blank_env = RawSettings::from_env_log(Some("  ".into()));
        assert_eq!(resolve(file.overlay(blank_env)).log, "warn");
    }

    #[test]
    fn cse_id_forms() {
        for good in ["/id-in", "/a", "/mn.cse_1~x"] {
            let s = resolve(RawSettings {
                cse_id: Some(good.into()),
                ..RawSettings::default()
            });
            assert_eq!(s.cse_id, good);
        }
        for bad in ["id-in", "//id-in", "/", "/id/in", "", "/id in", "/id*"] {
            let p = problems(RawSettings {
                cse_id: Some(bad.into()),
                ..RawSettings::default()
            });
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].starts_with("cse-id"), "{p:?}");
        }
    }

    #[test]
    fn sp_id_forms() {
        assert!(validate_sp_id("//bastion.example").is_ok());
        assert!(validate_sp_id("//x").is_ok());
        for bad in [
            "/bastion.example",
            "bastion.example",
            "//",
            "//a/b",
            "//a b",
            "//.a",
            "//a..b",
        ] {
            assert!(validate_sp_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_values_are_checked() {
        let p = problems(RawSettings {
            cse_name: Some("bad name".into()),
            admin: Some(String::new()),
            listen: Some("localhost:8080".into()),
            max_body_bytes: Some(0),
            expiry_interval_ms: Some(1),
            default_lifetime_secs: Some(-5),
            discovery_limit: Some(0),
            result_limit: Some(0),
            result_max_bytes: Some(10),
            fanout_limit: Some(0),
            data_dir: Some(PathBuf::new()),
            log: Some("verbose".into()),
            ..RawSettings::default()
        });
        let keys = [
            "cse-name",
            "admin",
            "default-lifetime-secs",
            "expiry-interval-ms",
            "discovery-limit",
            "result-limit",
            "result-max-bytes",
            "fanout-limit",
            "listen",
            "max-body-bytes",
            "data-dir",
            "log",
        ];
        assert_eq!(p.len(), keys.len(), "{p:?}");
        for (problem, key) in p.iter().zip(keys) {
            assert!(problem.starts_with(key), "{problem} should name {key}");
        }
    }

    #[test]
    fn log_filters() {
        for good in [
            "info",
            "WARN",
            "bastion_core=debug,info",
            "off",
            "info,hyper=warn",
        ] {
            assert!(validate_log_filter(good).is_ok(), "{good}");
        }
        for bad in ["", "verbose", "bastion=loud", "info,chatty"] {
            assert!(validate_log_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_errors_are_reported() {
        for bad in [
            "[cse]\ncse-idd = \"/x\"\n",
            "[server]\nlisten = \"127.0.0.1:1\"\n",
            "[cse]\ncse-type = \"xx\"\n",
            "[http]\nmax-body-bytes = \"big\"\n",
            "not toml",
        ] {
            assert!(RawSettings::from_toml(bad).is_err(), "{bad}");
        }
        let raw = RawSettings::from_toml("[cse]\ncse-type = \"asn\"\n");
        assert_eq!(raw.map(|r| r.cse_type), Ok(Some(CseKind::Asn)));
    }

    #[test]
    fn missing_file_is_a_config_error() {
        let err = RawSettings::from_file(Path::new("/nonexistent/bastion.toml"));
        assert!(matches!(err, Err(ConfigError(p)) if p[0].contains("cannot read config file")));
    }

    #[test]
    fn audit_and_access_keys() {
        let raw = match RawSettings::from_toml(
            "[access]\nexplain-denials-to-client = true\nregistered-retrieve-cse-base = false\n\
             [audit]\npath = \"/var/log/bastion-audit.log\"\nmax-bytes = 2048\nkeep = 2\n",
        ) {
            Ok(raw) => raw,
            Err(e) => panic!("{e}"),
        };
        let s = resolve(raw);
        assert!(s.explain_denials_to_client);
        assert!(s.cse_config(s.listen).explain_denials_to_client);
        assert!(!s.cse_config(s.listen).registered_retrieve_cse_base);
        assert!(Settings::defaults().registered_retrieve_cse_base);
        assert_eq!(s.audit_file(), Path::new("/var/log/bastion-audit.log"));
        assert_eq!((s.audit_max_bytes, s.audit_keep), (2048, 2));
        let d = Settings::defaults();
        assert_eq!(
            d.audit_file(),
            Path::new("./bastion-data").join("audit.log")
        );
        let p = problems(RawSettings {
            audit_max_bytes: Some(10),
            audit_keep: Some(0),
            audit_path: Some(PathBuf::new()),
            ..RawSettings::default()
        });
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn cse_config_advertises_the_bound_address() {
        let s = Settings::defaults();
        let bound: SocketAddr = ([127, 0, 0, 1], 40123).into();
        let c = s.cse_config(bound);
        assert_eq!(c.poa, vec!["http://127.0.0.1:40123".to_owned()]);
        assert_eq!(s.db_path(), Path::new("./bastion-data").join("bastion.db"));
    }

    #[test]
    fn plain_listener_protection_levels() {
        let on = |listen: &str, insecure: Option<bool>| {
            Settings::resolve(RawSettings {
                listen: Some(listen.into()),
                insecure,
                ..RawSettings::default()
            })
        };
        assert_eq!(
            resolve(RawSettings::default()).plain_protection(),
            Protection::SaOptional
        );
        assert!(on("[::1]:80", None).is_ok());
        let refused = match on("0.0.0.0:8080", None) {
            Err(ConfigError(p)) => p,
            Ok(s) => panic!("accepted: {s:?}"),
        };
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("http listen 0.0.0.0:8080 is not a loopback address"),
            "{refused:?}"
        );
        assert!(on("0.0.0.0:8080", Some(false)).is_err());
        assert!(on("192.0.2.1:8080", Some(true)).is_ok());
    }

    #[test]
    fn tls_section_resolves_and_round_trips() {
        let raw = match RawSettings::from_toml(
            "[tls]\nlisten = \"127.0.0.1:8443\"\nframeworks = [\"psk\", \"certificate\"]\n\
             certificate-file = \"srv.pem\"\nkey-file = \"srv.key\"\n\
             trust-anchor-files = [\"ca.pem\"]\ncredentials-key-file = \"/etc/k\"\n",
        ) {
            Ok(raw) => raw,
            Err(e) => panic!("{e}"),
        };
        let s = resolve(raw);
        let tls = s.tls.clone().expect("tls configured");
        assert_eq!(tls.listen.to_string(), "127.0.0.1:8443");
        assert!(tls.psk && tls.certificate && tls.require_client_certificate);
        assert_eq!(tls.credentials_store, Path::new(DEFAULT_CREDENTIALS_STORE));
        assert_eq!(
            tls.credentials_key_file.as_deref(),
            Some(Path::new("/etc/k"))
        );
        let text = s.to_toml().expect("toml");
        let back = resolve(RawSettings::from_toml(&text).expect("parse back"));
        assert_eq!(back, s);
        // The flag wins over the file.
        let flags = RawSettings {
            tls_listen: Some("127.0.0.1:9443".into()),
            ..RawSettings::default()
        };
        let s = resolve(RawSettings::from_toml(&text).expect("parse").overlay(flags));
        assert_eq!(s.tls.map(|t| t.listen.port()), Some(9443));
        // Only the flag: PSK by default.
        let s = resolve(RawSettings {
            tls_listen: Some("127.0.0.1:0".into()),
            ..RawSettings::default()
        });
        let tls = s.tls.expect("tls");
        assert!(tls.psk && !tls.certificate);
    }

    #[test]
    fn tls_section_problems() {
        let p = |text: &str| match RawSettings::from_toml(text) {
            Ok(raw) => problems(raw),
            Err(e) => vec![e],
        };
        assert_eq!(
            p("[tls]\nframeworks = [\"psk\"]\n"),
            ["[tls] has settings but no listen address (tls listen or --tls-listen)"]
        );
        assert_eq!(
            p("[tls]\nlisten = \"127.0.0.1:1\"\nframeworks = []\n"),
            ["tls frameworks: give \"psk\", \"certificate\" or both"]
        );
        assert_eq!(
            p("[tls]\nlisten = \"127.0.0.1:1\"\nframeworks = [\"certificate\"]\n"),
            [
                "tls: the certificate framework needs certificate-file and key-file",
                "tls: the certificate framework needs trust-anchor-files"
            ]
        );
        assert_eq!(
            p("[tls]\nlisten = \"127.0.0.1:1\"\ncrl-files = [\"x.crl\"]\n"),
            ["tls: require-client-certificate and crl-files need the certificate framework"]
        );
        assert!(
            p("[tls]\nlisten = \"127.0.0.1:1\"\nframeworks = [\"raw\"]\n")[0]
                .contains("unknown variant")
        );
        assert_eq!(
            p("[tls]\nlisten = \"127.0.0.1:1\"\ncrl-url = \"http://a/crl\"\n"),
            ["tls: crl-url needs the certificate framework"]
        );
        let cert = "[tls]\nlisten = \"127.0.0.1:1\"\nframeworks = [\"certificate\"]\n\
                    certificate-file = \"c\"\nkey-file = \"k\"\ntrust-anchor-files = [\"a\"]\n";
        assert_eq!(
            p(&format!("{cert}crl-url = \"https://a/crl\"\ncrl-refresh-seconds = 0\n")),
            [
                "tls: crl-url must be http://HOST[:PORT]/PATH (the CRL's signature is checked), not \"https://a/crl\"",
                "[tls] crl-refresh-seconds 0: must be between 1 and 86400"
            ]
        );
    }

    #[test]
    fn location_section_is_checked_and_kept() {
        let text = "[location]\n[[location.static_nodes]]\noriginator = \"Cx\"\n\
                    latitude = 1.5\nlongitude = 2.5\n";
        let s = resolve(RawSettings::from_toml(text).expect("parse"));
        let config = s.location_config().expect("configured").expect("valid");
        assert_eq!(config.static_nodes.len(), 1);
        assert_eq!(config.static_nodes[0].latitude, 1.5);
        let back = resolve(RawSettings::from_toml(&s.to_toml().expect("toml")).expect("parse"));
        assert_eq!(back, s);
        let bad = problems(RawSettings::from_toml("[location]\nbogus = 1\n").expect("parse"));
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].starts_with("[location]: unknown field `bogus`"),
            "{bad:?}"
        );
    }
}
