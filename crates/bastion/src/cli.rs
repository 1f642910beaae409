//! The command line: subcommands, flags and their help text (clap derive), and the
//! conversion of flags into the highest-precedence [`RawSettings`] layer.

use crate::settings::{CseKind, RawSettings};
use bastion_policy::{AccessOperation, Location};
use bastion_proto::time::Timestamp;
use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

/// Bastion: a oneM2M CSE (Common Services Entity) with an HTTP binding and durable SQLite
/// storage.
///
/// Settings come from built-in defaults, overridden by a configuration file (--config),
/// overridden by flags. `bastion config default` prints a commented configuration file.
#[derive(Debug, Parser)]
#[command(name = "bastion", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the CSE: open the data directory and serve the HTTP binding until SIGINT or
    /// SIGTERM.
    ///
    /// Logs "listening on ADDR:PORT" (the address actually bound, useful with port 0) to
    /// standard error once the CSE is ready. Exit status: 0 after a signal-initiated stop,
    /// 1 when the server cannot start or fails, 2 for invalid configuration.
    Serve(SettingsArgs),
    /// Print or check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Access-control tools for operators.
    #[command(subcommand)]
    Acp(AcpCommand),
    /// Run a Dynamic Authorization Server (TS-0003 7.3): answer securityInfo NOTIFYs
    /// from hosting CSEs and originator AEs with dynamic ACP info or tokens, as the
    /// policy file says (docs/das.md).
    ///
    /// Logs "listening on ADDR:PORT" to standard error once ready. Exit status: 0 after a
    /// signal-initiated stop, 1 when the server cannot start, 2 for an invalid policy.
    Das(DasArgs),
    /// Manage the encrypted credential store of the TLS listener (PSK credentials):
    /// add, list, revoke. Key bytes are never printed. The store key comes from
    /// BASTION_CREDENTIALS_KEY (64 hex characters) or --key-file.
    ///
    /// A running server notices changes within a second; a revoked credential's kept-alive
    /// connections are answered 4107 and closed. Exit status: 0 on success, 1 on failure,
    /// 2 for usage errors.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Certificates for the certificate-based framework (P-256, PEM files): a CA, issued
    /// AE/CSE certificates, CSRs and their signing, CRLs. Private keys are written mode
    /// 0600 and never printed.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Send one oneM2M request over HTTP or TLS (PSK or certificate) and print the
    /// response: its rsc on the first line, then the JSON body, if any.
    ///
    /// Exit status: 0 when the rsc is 2xxx, 1 otherwise (or when no response came),
    /// 2 for usage errors.
    Req(ReqArgs),
    /// Key derivations of remote security provisioning (TS-0003 10.3), so another
    /// implementation can check its bytes against Bastion's (docs/provisioning.md).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run an M2M Authentication Function (TS-0003 8.8): MAF clients authenticate with
    /// their KmID/Km (from --credentials-store) or a certificate, register, and register
    /// keys for a target that the target then retrieves (docs/provisioning.md).
    ///
    /// Logs "listening on ADDR:PORT" to standard error once ready. Exit status: 0 after a
    /// signal-initiated stop, 1 when the MAF cannot start, 2 for invalid flags.
    Maf(MafArgs),
    /// A MAF Client (TS-0003 8.8.2): register with a MAF, register a key for a target,
    /// retrieve one, update or end them. Each call is one MAF security association; key
    /// values go to and come from owner-only files, never the terminal.
    ///
    /// Exit status: 0 on success, 1 when the MAF refused or could not be reached (the
    /// rsc and reason on standard error), 2 for usage errors.
    #[command(subcommand)]
    MafClient(MafClientCommand),
    /// A MEF Client (TS-0003 8.3.5, 8.3.9): the MAF Client's procedures against the MEF's
    /// client interface (`--mef-fqdn`; the credential is the client's Kpm or certificate
    /// toward the MEF), and the MEF client commands: `next-command` retrieves the pending
    /// one, `report-command` reports its status and prints the next.
    ///
    /// Exit status: 0 on success, 1 when the MEF refused or could not be reached (the
    /// rsc and reason on standard error), 2 for usage errors.
    #[command(subcommand)]
    MefClient(MefClientCommand),
    /// Run the M2M Enrolment Function (TS-0003 8.3): enrolees authenticate with a
    /// factory key (KpmID/Kpm over TLS-PSK) or a certificate, run the enrolment exchange,
    /// and enrolment targets fetch the keys derived for them (docs/provisioning.md).
    /// `bastion mef revoke` and `bastion mef list` manage its store.
    ///
    /// Logs "listening on ADDR:PORT" once ready. Exit status: 0 after a signal-initiated
    /// stop or a successful operator command, 1 when it cannot start or the store cannot be
    /// used, 2 for an invalid configuration or usage.
    Mef(MefArgs),
    /// Enrol this device with an M2M Enrolment Function and use the credentials at once:
    /// the MEF handshake with a factory key (--kpm-id, Kpm from --kpm-file,
    /// BASTION_KPM_HEX or --kpm-hex) or a device certificate (--cert/--key/--ca), the
    /// enrolment exchange, the key for the CSE derived from Ke, the credentials written to
    /// --dir (mode 0600), then AE registration over TLS-PSK with them and a first
    /// contentInstance (docs/provisioning.md). Keys are never printed.
    ///
    /// Exit status: 0 when every step succeeded, 1 when the MEF or the CSE refused (one
    /// line: which step, the rsc or TLS reason), 2 for bad input.
    Enrol(EnrolArgs),
    /// Certificate enrolment over EST (RFC 7030, TS-0003 8.3.6): run the EST server
    /// standalone, revoke an issued certificate, list the ledger (docs/provisioning.md,
    /// "Certificate enrolment").
    #[command(subcommand)]
    Est(EstCommand),
    /// The secure environment for long-term keys (docs/provisioning.md, "Secure
    /// environment"): an encrypted file store (`file:PATH`) or a PKCS#11 token
    /// (`pkcs11:MODULE?token=LABEL`). Key bytes are never printed.
    ///
    /// Exit status: 0 on success, 1 when the store fails, 2 for usage errors (a bad
    /// name or store, a missing store key or PIN, a name taken or unknown).
    #[command(subcommand)]
    Keystore(KeystoreCommand),
}

#[derive(Debug, Subcommand)]
pub enum EstCommand {
    /// Serve EST on a TLS listener (enrolees authenticate by PSK or certificate) and,
    /// optionally, the CRL on a plain listener, until SIGINT or SIGTERM.
    ///
    /// Logs "accepting TLS on ADDR:PORT", then "listening on ADDR:PORT" (the CRL listener
    /// when there is one, else the TLS one) once ready. Exit status: 0 after a
    /// signal-initiated stop, 1 when it cannot start, 2 for invalid configuration.
    Serve(Box<EstServeArgs>),
    /// Revoke an issued certificate by serial and sign a new CRL (served at once by a
    /// running `bastion est serve` on the same --state-dir).
    Revoke(EstRevokeArgs),
    /// List the issued certificates of the ledger: serial, identity, notAfter, state.
    List(EstListArgs),
}

/// Arguments of `est serve`.
#[derive(Debug, Args)]
pub struct EstServeArgs {
    /// TLS listener, ADDR:PORT (port 0 picks a free port)
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: std::net::SocketAddr,
    /// Plain HTTP listener serving only the CRL at /crl
    #[arg(long, value_name = "ADDR:PORT")]
    pub crl_listen: Option<std::net::SocketAddr>,
    /// Directory of the ledger of issued certificates and of the CRL (created if missing)
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub ca: CaFiles,
    /// The EST server's certificate chain (PEM)
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Private key of --cert (PEM, mode 0600)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Further trust anchors for enrolees' bootstrap certificates (PEM); the EST CA is
    /// always trusted, for renewals
    #[arg(long, value_name = "FILE")]
    pub trust_anchor: Vec<PathBuf>,
    /// Credential store of the enrolees' pre-provisioned PSKs (and pinned raw keys)
    #[arg(long, value_name = "FILE")]
    pub credentials_store: PathBuf,
    /// Key file of the credential store when BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE")]
    pub credentials_key_file: Option<PathBuf>,
    /// The enrolment profiles (TOML; docs/provisioning.md)
    #[arg(long, value_name = "FILE")]
    pub profiles: PathBuf,
    /// Validity of issued certificates when the profile names none, days
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub validity_days: u32,
    /// Validity of each CRL (its nextUpdate), hours; re-signed at half-life
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=2160))]
    pub crl_validity_hours: u32,
    /// Log filter: a level or target=level directives; overrides RUST_LOG [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

/// Arguments of `est revoke`.
#[derive(Debug, Args)]
pub struct EstRevokeArgs {
    /// The EST server's state directory
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub ca: CaFiles,
    /// Serial number in hex (any case; `serial=` prefix and `:` separators allowed, as
    /// `openssl x509 -serial` prints it)
    #[arg(long, value_name = "HEX")]
    pub serial: String,
    /// Validity of the new CRL, hours
    #[arg(long, value_name = "HOURS", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=2160))]
    pub crl_validity_hours: u32,
}

/// Arguments of `est list`.
#[derive(Debug, Args)]
pub struct EstListArgs {
    /// The EST server's state directory
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
}

/// Which store `keystore` works on, and what opens it.
#[derive(Debug, Args)]
pub struct KeystoreArgs {
    /// file:PATH (encrypted file, level 1) or pkcs11:MODULE?token=LABEL[&level=N]
    #[arg(long, value_name = "STORE")]
    pub store: String,

    /// file store: file holding the store key (64 hex characters, mode 0600), when
    /// BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// pkcs11 store: file holding the token's user PIN (mode 0600); without it the PIN is
    /// taken from BASTION_PKCS11_PIN (never from the command line)
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeystoreCommand {
    /// Create an empty file store (an existing file is refused), or check that a token
    /// opens with the PIN; prints the store's TS-0003 protection level.
    Init(KeystoreArgs),
    /// Generate a key inside the store: a secret (HMAC-SHA-256 key) or a P-256 key pair,
    /// whose public key is printed (PEM).
    Generate(KeystoreGenerateArgs),
    /// List keys: name, kind, export policy. Never key bytes.
    List(KeystoreArgs),
    /// Delete a key (both halves of a key pair).
    Delete(KeystoreDeleteArgs),
    /// Print an exportable secret in hex (a PSK another holder needs); a non-exportable
    /// secret or a private key is refused: it never leaves the store.
    Export(KeystoreDeleteArgs),
}

/// What a generated key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeystoreKind {
    /// A secret of --len bytes (Kpm, Ke, Km, Kpsa)
    Secret,
    /// An EC P-256 key pair (TLS, CSR signing)
    P256,
}

/// Arguments of `keystore generate`.
#[derive(Debug, Args)]
pub struct KeystoreGenerateArgs {
    #[command(flatten)]
    pub store: KeystoreArgs,

    /// The key's name: 1 to 64 characters of [A-Za-z0-9._-]
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// The kind of key
    #[arg(long, value_enum)]
    pub kind: KeystoreKind,

    /// secret: its length in bytes, 16 to 64
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    pub len: usize,

    /// secret: allow it to leave the store (a TLS PSK OpenSSL must hold); without it the
    /// secret is only ever used inside the store
    #[arg(long)]
    pub exportable: bool,
}

/// Arguments of `keystore delete` and `keystore export`.
#[derive(Debug, Args)]
pub struct KeystoreDeleteArgs {
    #[command(flatten)]
    pub store: KeystoreArgs,

    /// The key's name
    #[arg(long, value_name = "NAME")]
    pub name: String,
}

/// Where the credential store is.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory of the server; the store is DIR/credentials.store
    #[arg(long, value_name = "DIR", required_unless_present = "store")]
    pub data_dir: Option<PathBuf>,

    /// The credential store file itself (instead of --data-dir)
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub store: Option<PathBuf>,

    /// File holding the store key (64 hex characters, mode 0600), when
    /// BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Add a PSK credential (KpsaID + Kpsa) bound to an AE-ID, a CSE-ID, or, with
    /// neither, to the Credential-ID 12-<KpsaID>.
    Add(CredentialsAddArgs),
    /// Add the HTTP credential of a peer CSE (user name + secret bound to its CSE-ID),
    /// accepted only on a TLS listener with `[tls] peer-http-authentication = true`, as
    /// `Authorization: Basic` (user:secret) or `Bearer` (secret). Weaker than a PSK or
    /// certificate association: see docs/security.md.
    AddHttpPeer(CredentialsAddHttpPeerArgs),
    /// List credentials: identifier, kind, binding, state. Never key bytes.
    List(StoreArgs),
    /// Revoke a credential: new handshakes fail and live associations are cut.
    Revoke(CredentialsRevokeArgs),
}

/// Arguments of `credentials add`.
#[derive(Debug, Args)]
pub struct CredentialsAddArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// KpsaID: <relative-id>@<fqdn>
    #[arg(long, value_name = "KPSAID")]
    pub id: String,

    /// File holding the Kpsa in hex, 16 to 64 bytes; mode 0600 or stricter. Without it
    /// the key is taken from BASTION_PSK_HEX (never from the command line, which other
    /// local users can read)
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,

    /// Bind the association to this AE-ID
    #[arg(long, value_name = "AE-ID", conflicts_with = "cse_id")]
    pub originator: Option<String>,

    /// Bind the association to this CSE-ID
    #[arg(long, value_name = "CSE-ID")]
    pub cse_id: Option<String>,
}

/// Arguments of `credentials add-http-peer`.
#[derive(Debug, Args)]
pub struct CredentialsAddHttpPeerArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// The user name the peer presents with Basic: 1 to 64 characters of [A-Za-z0-9._-]
    #[arg(long, value_name = "USER")]
    pub user: String,

    /// File holding the secret (16 to 64 characters of A-Z a-z 0-9 - . _ ~ + / =, usable
    /// as a Basic password and a Bearer token); mode 0600 or stricter. Without it the
    /// secret is taken from BASTION_HTTP_SECRET (never from the command line)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// The CSE-ID the peer's requests are bound to
    #[arg(long, value_name = "CSE-ID")]
    pub cse_id: String,
}

/// Arguments of `credentials revoke`.
#[derive(Debug, Args)]
pub struct CredentialsRevokeArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// The credential: a KpsaID, an ni:/// identifier or an HTTP peer user name
    #[arg(long, value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Derive Km (from --maf-id), Kpsa (from --enrolee-id) or Kuc (from --suid and
    /// --target-id) from an enrolment key Ke and print it as hex on one line; with --ke-id
    /// a second line "key-id: KEID" names the identifier the enrolee presents for it.
    ///
    /// Ke (32 bytes, hex) comes from --ke-hex, or --ke-file (mode 0600 or stricter), or
    /// BASTION_KE_HEX, in that order; it is never printed. Exit status: 0 on success, 2
    /// for bad input, with a one-line reason.
    Derive(KeysDeriveArgs),
}

/// Which key `keys derive` produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DerivedKeyKind {
    /// Master Credential Km, shared with a MAF (10.3.2)
    Km,
    /// Provisioned Secure Connection Key Kpsa, shared with another enrolee (10.3.3)
    Kpsa,
    /// Usage-constrained key Kuc for one SUID and Enrolment Target (10.3.7)
    Kuc,
}

/// Arguments of `keys derive`.
#[derive(Debug, Args)]
pub struct KeysDeriveArgs {
    /// The key to derive
    #[arg(value_enum)]
    pub kind: DerivedKeyKind,

    /// Ke as 64 hex characters. Other local users can read command lines: prefer
    /// --ke-file or BASTION_KE_HEX for a real key
    #[arg(long, value_name = "HEX", conflicts_with = "ke_file")]
    pub ke_hex: Option<String>,

    /// File holding Ke in hex (surrounding whitespace ignored); mode 0600 or stricter
    #[arg(long, value_name = "FILE")]
    pub ke_file: Option<PathBuf>,

    /// km: the MAF-ID
    #[arg(long, value_name = "MAF-ID")]
    pub maf_id: Option<String>,

    /// kpsa: the CSE-ID or AE-ID of the other enrolee (Enrolee-B-ID)
    #[arg(long, value_name = "ID")]
    pub enrolee_id: Option<String>,

    /// kuc: the Security Usage Identifier (10-15, 21-25, 32-35, 40-45)
    #[arg(long, value_name = "SUID")]
    pub suid: Option<String>,

    /// kuc: the Enrolment Target's ID (FQDN form of its CSE-ID / AE-ID, or a MAF-ID)
    #[arg(long, value_name = "ID")]
    pub target_id: Option<String>,

    /// KeID (hexBinary(RelativeKeID)@MEF-FQDN), checked and printed as the key's identifier
    #[arg(long, value_name = "KEID")]
    pub ke_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a self-signed CA (certificate and key).
    Ca(CertCaArgs),
    /// Issue a certificate naming an AE-ID or CSE-ID (subjectAltName URI) with a new key.
    Issue(CertIssueArgs),
    /// Create a key and a certificate signing request naming an AE-ID or CSE-ID.
    Csr(CertCsrArgs),
    /// Sign a CSR with the CA; the identity is the CSR's subjectAltName URI.
    Sign(CertSignArgs),
    /// Create a CRL revoking the given certificates.
    Crl(CertCrlArgs),
}

/// The CA used by `issue`, `sign` and `crl`.
#[derive(Debug, Args)]
pub struct CaFiles {
    /// CA certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// CA private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
}

/// Arguments of `cert ca`.
#[derive(Debug, Args)]
pub struct CertCaArgs {
    /// Common name of the CA
    #[arg(long, value_name = "NAME")]
    pub cn: String,
    /// Constrain the CA to identities of this M2M SP (nameConstraints on the host of the
    /// identity URI, TS-0003 8.1.2.2); repeatable. Without it the CA is unconstrained
    #[arg(long, value_name = "FQDN")]
    pub sp_fqdn: Vec<String>,
    /// Validity in days
    #[arg(long, value_name = "N", default_value_t = 3650)]
    pub days: u32,
    /// Where to write the certificate
    #[arg(long, value_name = "FILE")]
    pub out_cert: PathBuf,
    /// Where to write the private key (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out_key: PathBuf,
}

/// Arguments of `cert issue`.
#[derive(Debug, Args)]
pub struct CertIssueArgs {
    #[command(flatten)]
    pub ca: CaFiles,
    /// Absolute AE-ID (//sp/cse/Cxxx) or CSE-ID (//sp/stem) to name
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// DNS names (repeatable), e.g. the server's host name
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// Validity in days
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Where to write the certificate
    #[arg(long, value_name = "FILE")]
    pub out_cert: PathBuf,
    /// Where to write the private key (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out_key: PathBuf,
}

/// Arguments of `cert csr`.
#[derive(Debug, Args)]
pub struct CertCsrArgs {
    /// Absolute AE-ID or CSE-ID to name
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// DNS names (repeatable)
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// Where to write the CSR
    #[arg(long, value_name = "FILE")]
    pub out_csr: PathBuf,
    /// Where to write the private key (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub out_key: PathBuf,
}

/// Arguments of `cert sign`.
#[derive(Debug, Args)]
pub struct CertSignArgs {
    #[command(flatten)]
    pub ca: CaFiles,
    /// The CSR (PEM)
    #[arg(long, value_name = "FILE")]
    pub csr: PathBuf,
    /// DNS names (repeatable)
    #[arg(long, value_name = "NAME")]
    pub dns: Vec<String>,
    /// Validity in days
    #[arg(long, value_name = "N", default_value_t = 365)]
    pub days: u32,
    /// Where to write the certificate
    #[arg(long, value_name = "FILE")]
    pub out_cert: PathBuf,
}

/// Arguments of `cert crl`.
#[derive(Debug, Args)]
pub struct CertCrlArgs {
    #[command(flatten)]
    pub ca: CaFiles,
    /// Certificates to revoke (PEM; repeatable)
    #[arg(long, value_name = "FILE")]
    pub revoke: Vec<PathBuf>,
    /// CRL number
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub number: u32,
    /// Days until the next update
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub next_update_days: u32,
    /// Where to write the CRL
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// The request operation of `req`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReqOp {
    Create,
    Retrieve,
    Update,
    Delete,
    Notify,
}

/// Arguments of `req`.
#[derive(Debug, Args)]
pub struct ReqArgs {
    /// The CSE: http://HOST:PORT or https://HOST:PORT
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Target address as an HTTP path: /cse-in/myae (CSE-relative), /~/id-in/myae
    /// (SP-relative), /_/sp.example/id-in/myae (absolute)
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// Originator (X-M2M-Origin)
    #[arg(long, value_name = "ORIGINATOR")]
    pub from: Option<String>,
    /// Operation
    #[arg(
        long,
        value_name = "OP",
        ignore_case = true,
        default_value = "retrieve"
    )]
    pub op: ReqOp,
    /// Resource type to create
    #[arg(long, value_name = "N")]
    pub ty: Option<u64>,
    /// Primitive content, JSON (e.g. '{"m2m:ae": {...}}')
    #[arg(long, value_name = "JSON")]
    pub body: Option<String>,
    /// Result content
    #[arg(long, value_name = "N")]
    pub rcn: Option<u64>,
    /// Request identifier [default: generated]
    #[arg(long, value_name = "RI")]
    pub rqi: Option<String>,
    /// Release the request speaks (X-M2M-RVI): 2a, 3, 4 or 5 [default: 3]
    #[arg(long, value_name = "RELEASE")]
    pub rvi: Option<String>,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Seconds to wait for the whole exchange
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
}

/// The client side of a security association, as `req` and `maf-client` take it.
#[derive(Debug, Args)]
pub struct TlsClientArgs {
    /// TLS-PSK: the KpsaID
    #[arg(long, value_name = "KPSAID", conflicts_with = "cert")]
    pub psk_id: Option<String>,
    /// TLS-PSK: file holding the Kpsa in hex (mode 0600); without it, BASTION_PSK_HEX
    #[arg(long, value_name = "FILE", requires = "psk_id")]
    pub psk_file: Option<PathBuf>,
    /// TLS certificate: own certificate chain (PEM)
    #[arg(long, value_name = "FILE", requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// TLS certificate: own private key (PEM)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// TLS certificate: trust anchors for the server certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Name sent in SNI and checked against the server certificate [default: URL host]
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
}

/// Arguments of `das`.
#[derive(Debug, Args)]
pub struct DasArgs {
    /// Plain HTTP listener, ADDR:PORT (port 0 picks a free port). Without --insecure every
    /// request there gets 4107 [default: 127.0.0.1:8090 when --tls-listen is not given]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,

    /// Answer plain-HTTP requests, trusting their X-M2M-Origin (no authentication)
    #[arg(long)]
    pub insecure: bool,

    /// TLS listener, ADDR:PORT: requesters are authenticated by their security
    /// association (PSK from --credentials-store, or a certificate with --ca)
    #[arg(long, value_name = "ADDR:PORT", requires = "credentials_store")]
    pub tls_listen: Option<std::net::SocketAddr>,

    #[command(flatten)]
    pub function: TlsFunctionArgs,

    /// The policy file (TOML)
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
}

/// Arguments of `maf`.
#[derive(Debug, Args)]
pub struct MafArgs {
    /// TLS listener, ADDR:PORT (port 0 picks a free port)
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: std::net::SocketAddr,

    #[command(flatten)]
    pub function: TlsFunctionArgs,

    /// The MAF's FQDN: the suffix of its key identifiers (RelativeKeyID@FQDN)
    #[arg(long, value_name = "FQDN")]
    pub fqdn: String,

    /// The SP-ID that SP-relative client identities (/id-in) belong to, for comparing
    /// them with absolute targetIDs
    #[arg(long, value_name = "SP-ID")]
    pub sp_id: String,

    /// The MAF's records (registrations and key values), sealed under the credential
    /// store's key; created when missing
    #[arg(long, value_name = "FILE")]
    pub state: PathBuf,

    /// Live client registrations per MAF Client [default: 4]
    #[arg(long, value_name = "N")]
    pub max_registrations_per_client: Option<usize>,

    /// Live registered keys per MAF Client [default: 64]
    #[arg(long, value_name = "N")]
    pub max_keys_per_client: Option<usize>,

    /// Longest lifetime granted to a registration or a key, seconds [default: 604800]
    #[arg(long, value_name = "SECS")]
    pub max_lifetime_secs: Option<i64>,

    #[command(flatten)]
    pub mef: MafMefArgs,
}

/// The MEF whose enrolees' Km a MAF accepts (SUID 21, TS-0003 8.8.2.3): off unless
/// `--mef-url` is given.
#[derive(Debug, Args)]
pub struct MafMefArgs {
    /// The MEF: https://HOST:PORT; PSK identities that are its KeIDs are fetched from it
    #[arg(long, value_name = "URL", requires_all = ["mef_fqdn", "mef_origin"])]
    pub mef_url: Option<String>,

    /// The FQDN of the MEF's KeIDs
    #[arg(long, value_name = "FQDN")]
    pub mef_fqdn: Option<String>,

    /// This MAF's identity toward the MEF (X-M2M-Origin; the MEF target's fetcher)
    #[arg(long, value_name = "ID")]
    pub mef_origin: Option<String>,

    /// The MAF's PSK identity toward the MEF
    #[arg(long, value_name = "ID")]
    pub mef_psk_id: Option<String>,

    /// File holding that PSK in hex (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub mef_psk_file: Option<String>,

    /// Or a certificate chain toward the MEF (PEM) …
    #[arg(long, value_name = "FILE")]
    pub mef_cert: Option<String>,

    /// … its private key (PEM, mode 0600) …
    #[arg(long, value_name = "FILE")]
    pub mef_key: Option<String>,

    /// … and the MEF's trust anchor (PEM)
    #[arg(long, value_name = "FILE")]
    pub mef_ca: Option<String>,

    /// Longest wait for the MEF inside a handshake, ms [default: 3000]
    #[arg(long, value_name = "MS")]
    pub mef_timeout_ms: Option<u64>,
}

/// How a MAF (or MEF) Client reaches its MAF (or MEF).
#[derive(Debug, Args)]
pub struct MafClientArgs {
    /// The MAF (MEF): https://HOST:PORT
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The MAF's FQDN (MAF-FQDN, the suffix of key identifiers); for mef-client the MEF's
    /// (--mef-fqdn)
    #[arg(long, value_name = "FQDN", visible_alias = "mef-fqdn")]
    pub maf_fqdn: String,
    /// This client's identity, the one its MAF credential is bound to (X-M2M-Origin)
    #[arg(long, value_name = "ID")]
    pub from: String,
    /// The MAF credential: --psk-id KmID with --psk-file (or BASTION_PSK_HEX), or a
    /// certificate
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Seconds to wait for the whole exchange
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum MafClientCommand {
    /// Client Registration (MAF 8.8.2.3, MEF 8.3.5.2.3); prints the registration ID.
    Register(MafRegisterArgs),
    /// Client Configuration Retrieval (MAF 8.8.2.4, MEF 8.3.5.2.4).
    Config(MafRegIdArgs),
    /// Client Registration Update (MAF 8.8.2.5, MEF 8.3.5.2.5).
    Update(MafUpdateArgs),
    /// Client De-Registration (MAF 8.8.2.6, MEF 8.3.5.2.6).
    Deregister(MafRegIdArgs),
    /// Key Registration (MAF 8.8.2.7, MEF 8.3.5.2.7); prints the key identifier RelativeKeyID@FQDN
    /// and writes the key to --key-out.
    RegisterKey(MafRegisterKeyArgs),
    /// Key Retrieval (MAF 8.8.2.8, MEF 8.3.5.2.8); prints the key's metadata, writes the key to
    /// --key-out when given.
    RetrieveKey(MafKeyIdArgs),
    /// Key Registration Update (MAF 8.8.2.9, MEF 8.3.5.2.9).
    UpdateKey(MafUpdateKeyArgs),
    /// Key De-Registration (MAF 8.8.2.10, MEF 8.3.5.2.10).
    DeregisterKey(MafKeyIdArgs),
}

/// `bastion mef-client`: the shared procedures and the MEF client commands.
#[derive(Debug, Subcommand)]
pub enum MefClientCommand {
    #[command(flatten)]
    Procedure(MafClientCommand),
    /// MEF Client Command Retrieve (8.3.9.2): prints the pending command (cmd-id, class,
    /// status 10 ISSUED / 11 REISSUED, its arguments) or NO_MORE_COMMANDS with its
    /// retry duration.
    NextCommand(MafRegIdArgs),
    /// MEF Client Command Update (8.3.9.3): reports a command's status (20 OK, 40-43,
    /// 100-305) and prints the next command.
    ReportCommand(MefReportArgs),
    /// Executes the pending commands (8.3.9) over one association: CERT_PROV by EST at the
    /// MEF (cert.pem, key.pem, ca.pem into --dir), reports each one's status (20 OK, 41
    /// CLASS_NOT_SUPPORTED, 100/101), until NO_MORE_COMMANDS.
    RunCommands(MefRunCommandsArgs),
}

#[derive(Debug, Args)]
pub struct MefRunCommandsArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    /// The mefClientRegID
    #[arg(long, value_name = "ID")]
    pub reg_id: String,
    /// Where a CERT_PROV command's certificate, key and CA certificate are written
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// At most this many commands are executed in one run (1-64)
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_commands: u16,
}

#[derive(Debug, Args)]
pub struct MefReportArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    /// The mefClientRegID
    #[arg(long, value_name = "ID")]
    pub reg_id: String,
    /// The cmdID reported on
    #[arg(long, value_name = "ID")]
    pub cmd_id: String,
    /// The cmdStatusCode (sec:cmdStatusCode), e.g. 20 for OK
    #[arg(long, value_name = "CODE")]
    pub status: u16,
}

#[derive(Debug, Args)]
pub struct MafRegisterArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    /// The administrating stakeholder's FQDN (adminFQDN)
    #[arg(long, value_name = "FQDN")]
    pub admin_fqdn: String,
    /// Proposed lifetime of the registration, seconds
    #[arg(long, value_name = "SECS", default_value_t = 86_400)]
    pub expires_in: i64,
    /// A label (repeatable)
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MafRegIdArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    /// The mafClientRegID
    #[arg(long, value_name = "ID")]
    pub reg_id: String,
}

#[derive(Debug, Args)]
pub struct MafUpdateArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    #[arg(long, value_name = "ID")]
    pub reg_id: String,
    /// New lifetime from now, seconds
    #[arg(long, value_name = "SECS")]
    pub expires_in: Option<i64>,
    /// Labels replacing the registration's (repeatable)
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MafRegisterKeyArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    /// The administrating stakeholder's FQDN (adminFQDN) of this client's registration
    #[arg(long, value_name = "FQDN")]
    pub admin_fqdn: String,
    /// Security Usage Identifier: 32 (SAEF), 33 (ESPrim), 34/35 (ESData); for
    /// mef-client 22 to 25 [default: 32, mef-client 22]
    #[arg(long, value_name = "SUID")]
    pub suid: Option<u32>,
    /// Absolute AE-ID or CSE-ID allowed to retrieve the key (repeatable; one for 32/33)
    #[arg(long, value_name = "ID", required = true)]
    pub target: Vec<String>,
    /// Proposed lifetime of the key, seconds
    #[arg(long, value_name = "SECS", default_value_t = 3_600)]
    pub expires_in: i64,
    /// A label (repeatable)
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// A self-generated key value (hex, 16 to 64 bytes, mode 0600); without it both ends
    /// export Kc from the MAF session (EXPORTER-oneM2M-Connection)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Where the key is written, in hex, mode 0600 (replaced if it exists)
    #[arg(long, value_name = "FILE")]
    pub key_out: PathBuf,
}

#[derive(Debug, Args)]
pub struct MafKeyIdArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    /// The RelativeKeyID, or the whole key identifier RelativeKeyID@MAF-FQDN
    #[arg(long, value_name = "KEY-ID")]
    pub key_id: String,
    /// retrieve-key: where the key is written, in hex, mode 0600
    #[arg(long, value_name = "FILE")]
    pub key_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MafUpdateKeyArgs {
    #[command(flatten)]
    pub maf: MafClientArgs,
    #[arg(long, value_name = "KEY-ID")]
    pub key_id: String,
    /// New lifetime from now, seconds
    #[arg(long, value_name = "SECS")]
    pub expires_in: Option<i64>,
    /// Labels replacing the key's (repeatable)
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// Target IDs replacing the key's (repeatable)
    #[arg(long, value_name = "ID")]
    pub target: Vec<String>,
}

/// The TLS listener of a standalone function (`das`, `maf`): credentials, certificates,
/// caps and timeouts (the ranges and defaults of `bastion serve`'s `[limits]`), logging.
#[derive(Debug, Args)]
pub struct TlsFunctionArgs {
    /// Credential store of the PSKs (and pinned raw keys) of the CSEs and AEs that ask
    /// (KmIDs for a MAF)
    #[arg(long, value_name = "FILE")]
    pub credentials_store: Option<PathBuf>,

    /// Key file of the credential store when BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE")]
    pub credentials_key_file: Option<PathBuf>,

    /// Server certificate chain (PEM) naming this function's identity
    #[arg(long, value_name = "FILE", requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,

    /// Private key of --cert (PEM)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Trust anchors for client certificates (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// CRL files checked against client certificates (PEM)
    #[arg(long, value_name = "FILE")]
    pub crl: Vec<PathBuf>,

    #[command(flatten)]
    pub limits: ListenerLimitArgs,

    /// Log filter: a level or target=level directives; overrides RUST_LOG [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AcpCommand {
    /// Explain how access control decides one request: the decision and, for every
    /// candidate rule, which condition held or failed.
    ///
    /// Reads a stopped server's data directory (--data-dir; refused while a server holds
    /// it) or asks a running server (--url, as the admin originator of the configuration).
    /// The registered-originator checks that precede access control (4106, 4107) are not
    /// part of the explanation. Exit status: 0 when explained (granted or denied), 1 when
    /// the data directory or server cannot be used or the target does not resolve, 2 for
    /// usage errors.
    Explain(ExplainArgs),
}

/// The operation to explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OpArg {
    Retrieve,
    Create,
    Update,
    Delete,
    Notify,
    Discovery,
}

impl OpArg {
    pub fn operation(self) -> AccessOperation {
        match self {
            OpArg::Retrieve => AccessOperation::Retrieve,
            OpArg::Create => AccessOperation::Create,
            OpArg::Update => AccessOperation::Update,
            OpArg::Delete => AccessOperation::Delete,
            OpArg::Notify => AccessOperation::Notify,
            OpArg::Discovery => AccessOperation::Discovery,
        }
    }
}

/// Arguments of `acp explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The originator (From) to explain, e.g. Creader
    #[arg(long, value_name = "ORIGINATOR")]
    pub originator: String,

    /// The operation
    #[arg(long, value_name = "OP", ignore_case = true)]
    pub op: OpArg,

    /// The target address, e.g. /cse-in/ae/cnt
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,

    /// With --op create: the resource type to create (checked against acod)
    #[arg(long, value_name = "N")]
    pub ty: Option<u16>,

    /// Request time, a oneM2M timestamp YYYYMMDDThhmmss in UTC [default: now]
    #[arg(long, value_name = "TIME", value_parser = crate::acp::parse_at)]
    pub at: Option<Timestamp>,

    /// Peer IP address to assume; without it every acip condition fails
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<IpAddr>,

    /// Originator location LAT,LON in degrees; without it every aclr condition fails
    #[arg(long, value_name = "LAT,LON", value_parser = crate::acp::parse_location, allow_hyphen_values = true)]
    pub location: Option<Location>,

    /// Ask a running server (http://HOST:PORT) instead of reading --data-dir
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub url: Option<String>,

    /// Print the explanation as JSON
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub settings: SettingsArgs,
}

// Parsed once per run: the size of `Check` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration file, every key set to its default and explained.
    Default,
    /// Validate a configuration file (and any flags given) and print the resolved settings.
    ///
    /// Takes the same options as `serve` and prints, as a configuration file, exactly the
    /// settings `serve` would run with. Exit status: 0 if valid, 2 if not.
    Check(SettingsArgs),
}

/// The settings flags shared by `serve` and `config check`. Each overrides the key of the
/// same name in the configuration file.
#[derive(Debug, Args, Default)]
pub struct SettingsArgs {
    /// Configuration file (TOML) to read; flags override its keys.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port for HTTP: an IP address, not a host name; port 0 picks a free port
    /// [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Address and port of the TLS listener (security associations, docs/security.md);
    /// none by default
    #[arg(long, value_name = "ADDR:PORT")]
    pub tls_listen: Option<String>,

    /// MQTT broker to serve requests through (TS-0010, docs/bindings.md):
    /// mqtt://HOST[:PORT], or mqtts://HOST[:PORT] with the [mqtt] tls-* keys; none by default
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,

    /// Plain WebSocket listener (TS-0020, docs/bindings.md): ADDR:PORT, loopback unless
    /// --insecure; none by default
    #[arg(long, value_name = "ADDR:PORT")]
    pub ws_listen: Option<String>,

    /// WebSocket listener over TLS (wss, needs [tls]): ADDR:PORT; none by default
    #[arg(long, value_name = "ADDR:PORT")]
    pub wss_listen: Option<String>,
    /// UDP address and port of the CoAP listener (TS-0008, docs/bindings.md); none by
    /// default
    #[arg(long, value_name = "ADDR:PORT")]
    pub coap_listen: Option<String>,
    /// UDP address and port of the CoAP-over-DTLS listener (coaps, needs [tls]); none by
    /// default
    #[arg(long, value_name = "ADDR:PORT")]
    pub coaps_listen: Option<String>,

    /// Accept plain HTTP on a non-loopback --listen address (no security association)
    #[arg(long)]
    pub insecure: bool,

    /// Directory for durable state; the database is DIR/bastion.db [default: ./bastion-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// CSE-ID, SP-relative: "/" followed by an identifier with no further "/"
    /// [default: /id-in]
    #[arg(long, value_name = "ID")]
    pub cse_id: Option<String>,

    /// Resource name of the CSEBase [default: cse-in]
    #[arg(long, value_name = "NAME")]
    pub cse_name: Option<String>,

    /// M2M service-provider ID: "//" followed by a domain name [default: //bastion.example]
    #[arg(long, value_name = "SPID")]
    pub sp_id: Option<String>,

    /// Role of this CSE [default: in]
    #[arg(long, value_name = "TYPE", ignore_case = true)]
    pub cse_type: Option<CseKind>,

    /// Originator granted every operation on this CSE [default: CAdmin]
    #[arg(long, value_name = "ORIGINATOR")]
    pub admin: Option<String>,

    /// Log filter: a level (off, error, warn, info, debug, trace) or target=level directives;
    /// overrides RUST_LOG and the file [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

impl SettingsArgs {
    /// The flags as the top settings layer.
    pub fn to_raw(&self) -> RawSettings {
        RawSettings {
            cse_id: self.cse_id.clone(),
            cse_name: self.cse_name.clone(),
            sp_id: self.sp_id.clone(),
            cse_type: self.cse_type,
            admin: self.admin.clone(),
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            log: self.log.clone(),
            tls_listen: self.tls_listen.clone(),
            mqtt_broker: self.mqtt.clone(),
            ws_listen: self.ws_listen.clone(),
            wss_listen: self.wss_listen.clone(),
            coap_listen: self.coap_listen.clone(),
            coaps_listen: self.coaps_listen.clone(),
            insecure: self.insecure.then_some(true),
            ..RawSettings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_the_top_layer() {
        let cli = Cli::try_parse_from([
            "bastion",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cse-type",
            "MN",
            "--data-dir",
            "/tmp/x",
        ]);
        let Ok(Cli {
            command: Command::Serve(args),
        }) = cli
        else {
            panic!("serve did not parse: {cli:?}");
        };
        let raw = args.to_raw();
        assert_eq!(raw.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(raw.cse_type, Some(CseKind::Mn));
        assert_eq!(raw.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(raw.cse_id, None);
    }

    #[test]
    fn acp_explain_parses() {
        let cli = Cli::try_parse_from([
            "bastion",
            "acp",
            "explain",
            "--originator",
            "Creader",
            "--op",
            "create",
            "--ty",
            "4",
            "--to",
            "/cse-in/ae/cnt",
            "--at",
            "20250102T030405",
            "--ip",
            "10.1.2.3",
            "--location",
            "-33.9,151.2",
            "--data-dir",
            "/tmp/x",
        ]);
        let Ok(Cli {
            command: Command::Acp(AcpCommand::Explain(args)),
        }) = cli
        else {
            panic!("acp explain did not parse: {cli:?}");
        };
        assert_eq!(args.op, OpArg::Create);
        assert_eq!(args.ty, Some(4));
        assert_eq!(
            args.at.map(Timestamp::format).as_deref(),
            Some("20250102T030405")
        );
        assert_eq!(args.location.map(|l| l.latitude), Some(-33.9));
        assert_eq!(args.settings.data_dir, Some(PathBuf::from("/tmp/x")));
        let both = Cli::try_parse_from([
            "bastion",
            "acp",
            "explain",
            "--originator",
            "C",
            "--op",
            "retrieve",
            "--to",
            "/x",
            "--data-dir",
            "/tmp/x",
            "--url",
            "http://127.0.0.1:1",
        ]);
        assert!(both.is_err(), "--url and --data-dir must conflict");
    }
}

/// The caps and timeouts of a standalone listener (`bastion das`, `bastion mef`), with the
/// defaults and ranges of `bastion serve`'s `[limits]`.
#[derive(Debug, Args, Default)]
pub struct ListenerLimitArgs {
    /// Cap on open connections, every listener together; lowered to fit under the
    /// descriptor limit [default: 4096, as `bastion serve`'s [limits] max-connections]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<i64>,

    /// Cap on TLS handshakes in progress [default: 256]
    #[arg(long, value_name = "N")]
    pub max_tls_handshakes: Option<i64>,

    /// Time a client has to send a complete request head, ms [default: 10000]
    #[arg(long, value_name = "MS")]
    pub header_timeout_ms: Option<i64>,

    /// Time a client has to send a request body, ms (later: 4008) [default: 30000]
    #[arg(long, value_name = "MS")]
    pub body_timeout_ms: Option<i64>,

    /// Time a kept-alive connection may stay idle between requests, ms [default: 60000]
    #[arg(long, value_name = "MS")]
    pub idle_timeout_ms: Option<i64>,
}

/// Arguments of `bastion mef`: run the MEF, or an operator command on its store.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MefArgs {
    #[command(subcommand)]
    pub command: Option<MefCommand>,

    #[command(flatten)]
    pub run: MefRunArgs,
}

/// Running the MEF.
#[derive(Debug, Args)]
pub struct MefRunArgs {
    /// The MEF's configuration file (TOML, a [mef] table; docs/provisioning.md)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Key file of the credential and enrolment stores when BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    #[command(flatten)]
    pub limits: ListenerLimitArgs,

    /// Log filter: a level or target=level directives; overrides RUST_LOG [default: info]
    #[arg(long, value_name = "LEVEL")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MefCommand {
    /// Revoke an enrolee: its enrolments stop releasing keys at once (a running MEF
    /// re-reads its store) and it cannot enrol again. Prints how many enrolments were
    /// revoked.
    Revoke(MefRevokeArgs),
    /// List the enrolments: KeID, enrolee ID, credential, expiry, state. Never keys.
    List(MefStoreArgs),
    /// MEF client commands (TS-0003 8.3.9): `add` queues one for a MEF client
    /// registration (a running MEF issues it at the client's next retrieval), `list`
    /// prints every registration's commands and their states.
    Command(Box<MefCommandArgs>),
}

/// Arguments of `bastion mef command`.
#[derive(Debug, Args)]
pub struct MefCommandArgs {
    #[command(flatten)]
    pub store: MefStoreArgs,

    #[command(subcommand)]
    pub command: MefCommandCommand,
}

#[derive(Debug, Subcommand)]
pub enum MefCommandCommand {
    /// Queue a command for a registration; prints its cmdID.
    Add(Box<MefCommandAddArgs>),
    /// List the commands: mefClientRegID, client, cmdID, class, state.
    List,
}

/// The command classes an operator queues (sec:cmdClassID 1-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MefCommandClass {
    /// CERT_PROV: enrol a certificate (--uri, --subject-type, --subject-id, --protocol)
    CertProv,
    /// DEV_CFG: run device configuration with a DM server (--dm, --uri)
    DevCfg,
    /// MO_NODE: process an MO node (--object-path, --object-type, --suid)
    MoNode,
}

impl MefCommandClass {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            MefCommandClass::CertProv => "cert-prov",
            MefCommandClass::DevCfg => "dev-cfg",
            MefCommandClass::MoNode => "mo-node",
        }
    }
}

/// Arguments of `bastion mef command add`.
#[derive(Debug, Args)]
pub struct MefCommandAddArgs {
    /// The mefClientRegID the command is for
    #[arg(long, value_name = "ID")]
    pub reg_id: String,
    /// The command class
    #[arg(long, value_enum)]
    pub class: MefCommandClass,
    /// cert-prov, dev-cfg: the EST/SCEP base URI or the DM server URI (its host must be
    /// the MEF's FQDN, TS-0003 8.3.9.7/8.3.9.8)
    #[arg(long, value_name = "URI")]
    pub uri: Option<String>,
    /// cert-prov: est or scep [default: est]
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,
    /// cert-prov: node, cse or ae
    #[arg(long, value_name = "TYPE")]
    pub subject_type: Option<String>,
    /// cert-prov: the Node-ID, CSE-ID or AE-ID to certify
    #[arg(long, value_name = "ID")]
    pub subject_id: Option<String>,
    /// dev-cfg: oma-dm-1.3, oma-dm-2.0, lwm2m or tr-069
    #[arg(long, value_name = "PROTOCOL")]
    pub dm: Option<String>,
    /// mo-node: the MO node's path
    #[arg(long, value_name = "PATH")]
    pub object_path: Option<String>,
    /// mo-node: authentication-profile, trust-anchor or maf-client-reg-cfg
    #[arg(long, value_name = "TYPE")]
    pub object_type: Option<String>,
    /// mo-node with authentication-profile: the SUID expected in the node
    #[arg(long, value_name = "SUID")]
    pub suid: Option<u32>,
    /// The AE or CSE of the client's node the command is for (targetID)
    #[arg(long, value_name = "ID")]
    pub target_id: Option<String>,
}

/// Where the MEF's store is.
#[derive(Debug, Args)]
pub struct MefStoreArgs {
    /// The MEF's configuration file
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Key file of the stores when BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Arguments of `bastion mef revoke`.
#[derive(Debug, Args)]
pub struct MefRevokeArgs {
    #[command(flatten)]
    pub store: MefStoreArgs,

    /// The enrolee ID (AE-ID or CSE-ID) to revoke
    #[arg(value_name = "ENROLEE-ID")]
    pub enrolee: String,
}

/// An instruction of the MEF that `bastion enrol` can carry out (8.3.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EnrolInstruction {
    /// Enrol a certificate at the MEF's EST (ity 1)
    CertificateEnrolment,
    /// Register with a MAF using Km derived from Ke (ity 2)
    MafEnrolment,
}

/// Arguments of `bastion enrol`.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The MEF's base URI (https://HOST:PORT)
    #[arg(long, value_name = "URL", required_unless_present = "register_only")]
    pub mef_url: Option<String>,

    /// The FQDN of the MEF's KeIDs [default: the host of --mef-url]
    #[arg(long, value_name = "FQDN")]
    pub mef_fqdn: Option<String>,

    /// Name sent in SNI to the MEF and checked in its certificate [default: the host]
    #[arg(long, value_name = "NAME")]
    pub mef_server_name: Option<String>,

    /// KpmID, the identity of the factory key (<relative-id>@<fqdn>)
    #[arg(long, value_name = "KPMID", conflicts_with = "cert")]
    pub kpm_id: Option<String>,

    /// File holding Kpm in hex (mode 0600); else BASTION_KPM_HEX, else --kpm-hex
    #[arg(long, value_name = "FILE")]
    pub kpm_file: Option<PathBuf>,

    /// Kpm in hex (visible to other local users: prefer the file or the environment)
    #[arg(long, value_name = "HEX")]
    pub kpm_hex: Option<String>,

    /// Device certificate chain (PEM) naming the device's AE-ID or CSE-ID
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Private key of --cert (PEM, mode 0600)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Trust anchor of the MEF's certificate (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// X-M2M-Origin toward the MEF [default: 12-<KpmID>, or the certificate's ID]
    #[arg(long, value_name = "ID")]
    pub origin: Option<String>,

    /// The enrolment target to use when the MEF names several CSEs
    #[arg(long, value_name = "ID")]
    pub target_id: Option<String>,

    /// Instructions this enrolee will carry out (sent as the indications cen, men)
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub accept: Vec<EnrolInstruction>,

    /// Lifetime asked for the MAF client registration of a MAF enrolment, seconds
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub maf_registration_seconds: i64,

    /// adminFQDN of the MAF client registration [default: the MEF's FQDN]
    #[arg(long, value_name = "FQDN")]
    pub maf_admin_fqdn: Option<String>,

    /// Directory of the credentials; must not exist (created 0700, files 0600)
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Key store Ke is imported into, non-exportable, and the CSE's key derived in
    /// (file:PATH or pkcs11:MODULE?token=LABEL); without it Ke is kept in --dir
    #[arg(long, value_name = "SPEC", conflicts_with = "register_only")]
    pub key_store: Option<String>,

    /// Key file of a file: key store when BASTION_CREDENTIALS_KEY is unset
    #[arg(long, value_name = "FILE", requires = "key_store")]
    pub key_store_key_file: Option<PathBuf>,

    /// File holding the PKCS#11 token's user PIN (else BASTION_PKCS11_PIN)
    #[arg(long, value_name = "FILE", requires = "key_store")]
    pub pin_file: Option<PathBuf>,

    /// Stop once the credentials are on disk
    #[arg(long, conflicts_with = "register_only")]
    pub enrol_only: bool,

    /// Register with the credentials already in --dir (no enrolment)
    #[arg(long)]
    pub register_only: bool,

    /// Name sent in SNI to the CSE [default: the host of its URI]
    #[arg(long, value_name = "NAME")]
    pub cse_server_name: Option<String>,

    /// Resource name of the AE [default: the enrolee ID's last segment]
    #[arg(long, value_name = "NAME")]
    pub ae_name: Option<String>,

    /// App-ID of the AE
    #[arg(long, value_name = "APP-ID", default_value = "Nbastion-enrol")]
    pub app_id: String,

    /// Container for the first contentInstance (created if missing)
    #[arg(long, value_name = "NAME", requires = "content")]
    pub container: Option<String>,

    /// Content of the first contentInstance
    #[arg(long, value_name = "TEXT", requires = "container")]
    pub content: Option<String>,

    /// Seconds each exchange may take
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}
