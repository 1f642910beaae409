//! `bastion enrol`: the enrolee (TS-0003 8.3.2.1, 8.3.2.2) in one command, from a factory
//! credential to data at the CSE with no person in between:
//!
//! 1. the MEF handshake: TLS-PSK with KpmID/Kpm (`--kpm-id`, the key from `--kpm-file`,
//!    `BASTION_KPM_HEX` or `--kpm-hex`), or the device certificate and key against the
//!    MEF's trust anchor; Ke/RelativeKeID exported from that session
//!    (`EXPORTER-oneM2M-Bootstrap`), KeID = hex(RelativeKeID)@`--mef-fqdn`;
//! 2. the enrolment exchange: the indications (`--accept`: certificate enrolment `cen`,
//!    MAF enrolment `men`), each instruction the MEF returns carried out in order over
//!    the same association where it is the MEF's (EST `simpleenroll` at the MEF's
//!    listener: a fresh P-256 key, `cert.pem`/`key.pem`/`ca.pem`) or at a MAF (Km =
//!    derive(Ke, MAF-ID), the MAF handshake with KeID/Km, a client registration:
//!    `km-id`, `km.hex`, `maf-id`, `maf-uri`, `maf-reg-id`), the final message with each
//!    outcome in order, and a check that the MEF's KeID equals ours; a failed
//!    instruction is reported `ok: false` and ends the command (status 1) with nothing
//!    written;
//! 3. the key for the CSE target (its SUID 22): Kuc = HMAC(Ke, …‖SUID‖target ID);
//! 4. the credentials on disk, all or nothing: `--dir` is created (0700) only once the
//!    exchange succeeded, its files mode 0600: `key-id`, `ke.hex`, `kuc.hex`,
//!    `enrolee-id`, `target-id`, `cse-uri`, `expires`; with `--key-store`, Ke is imported
//!    there non-exportable and Kuc derived inside it ([`keep_ke_and_derive`]), and
//!    `ke.name` (the key's name in that store) replaces `ke.hex`;
//! 5. AE registration at the CSE over TLS-PSK, identity KeID, key Kuc, `X-M2M-Origin` the
//!    enrolee ID; `--container` created if missing; one `<contentInstance>` of
//!    `--content`.
//!
//! `--enrol-only` stops after 4; `--register-only` starts at 5 from an existing `--dir`.
//! Keys are never printed. Exit status: 0 when every step succeeded, 1 when the MEF or
//! the CSE refused (one line saying which step and why), 2 for bad input.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bastion_client::{Client, ClientConfig, ClientError, Connector, Endpoint, Io, TlsConnector};
use bastion_keys::{DerivedKey, ExportedKey, KeyIdentifier, Suid};
use bastion_mef::wire::{
    self, names, Enrolled, Final, Indications, InstructionMsg, Instructions, TargetMsg,
};
use bastion_proto::{Operation, Request, Response, Rsc};
use bastion_tls::{ClientOptions, PskKey, TlsClient};
use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::cli::{EnrolArgs, EnrolInstruction};
use crate::Failure;

/// The environment variable Kpm is read from when no file names it.
const KPM_ENV: &str = "BASTION_KPM_HEX";
/// The SUID of the key for a CSE (RSPF-provisioned, SAEF).
const CSE_SUID: u8 = 22;

fn bad(message: impl Into<String>) -> Failure {
    Failure::Config(message.into())
}

fn refused(message: impl Into<String>) -> Failure {
    Failure::Runtime(message.into())
}

/// Runs the steps the flags ask for; returns the lines to print.
pub fn run(args: &EnrolArgs) -> Result<String, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| refused(format!("cannot start the async runtime: {e}")))?;
    let mut out = String::new();
    let credentials = if args.register_only {
        Credentials::read(&args.dir)?
    } else {
        let client = mef_client(args)?;
        let credentials = runtime.block_on(enrol(args, client))?;
        credentials.write(&args.dir)?;
        out.push_str(&format!(
            "enrolled: key-id {} enrolee {} expires {}\ncredentials: {}\n",
            credentials.ke_id,
            credentials.enrolee_id,
            credentials.expires,
            args.dir.display()
        ));
        out.push_str(&credentials.lines);
        credentials
    };
    if !args.enrol_only {
        out.push_str(&runtime.block_on(register(args, &credentials))?);
    }
    Ok(out)
}

/// The TLS client toward the MEF, and the `X-M2M-Origin` the association is bound to.
struct MefClient {
    tls: TlsClient,
    origin: String,
}

fn mef_client(args: &EnrolArgs) -> Result<MefClient, Failure> {
    let options = ClientOptions::default();
    match (&args.kpm_id, &args.cert) {
        (Some(kpm_id), None) => {
            let key = kpm(args)?;
            let tls =
                TlsClient::psk(kpm_id, key, &options).map_err(|e| bad(format!("--kpm-id: {e}")))?;
            // Without an operator binding, a PSK credential is bound to its
            // Credential-ID 12-<KpmID> (TS-0003 10.4).
            let origin = args
                .origin
                .clone()
                .unwrap_or_else(|| format!("12-{kpm_id}"));
            Ok(MefClient { tls, origin })
        }
        (None, Some(cert)) => {
            let (Some(key), Some(ca)) = (&args.key, &args.ca) else {
                return Err(bad("--cert needs --key and --ca"));
            };
            let chain = read_text(cert)?;
            let key = bastion_tls::secret::read_secret_text(key).map_err(|e| bad(e.to_string()))?;
            let anchors = read_text(ca)?;
            let origin = match &args.origin {
                Some(origin) => origin.clone(),
                None => certificate_identity(&chain)?,
            };
            let tls = TlsClient::certificate(&chain, &key, &anchors, None, &options)
                .map_err(|e| bad(format!("--cert/--key/--ca: {e}")))?;
            Ok(MefClient { tls, origin })
        }
        _ => Err(bad(
            "give either --kpm-id (with a Kpm) or --cert/--key/--ca",
        )),
    }
}

fn read_text(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

/// The AE-ID or CSE-ID a certificate names (its SAN URI): what the MEF binds the
/// association to.
fn certificate_identity(chain_pem: &str) -> Result<String, Failure> {
    let leaf = openssl::x509::X509::from_pem(chain_pem.as_bytes())
        .map_err(|_| bad("--cert is not a PEM certificate"))?;
    bastion_tls::identity::binding_from_certificate(&leaf)
        .map(|b| b.originator().to_owned())
        .map_err(|e| bad(format!("--cert: {e}")))
}

/// Kpm from `--kpm-file`, else `BASTION_KPM_HEX`, else `--kpm-hex`.
fn kpm(args: &EnrolArgs) -> Result<PskKey, Failure> {
    if let Some(file) = &args.kpm_file {
        return PskKey::from_file(file).map_err(|e| bad(format!("--kpm-file: {e}")));
    }
    if let Some(key) = PskKey::from_env(KPM_ENV).map_err(|e| bad(format!("{KPM_ENV}: {e}")))? {
        return Ok(key);
    }
    match &args.kpm_hex {
        Some(hex) => PskKey::from_hex(hex).map_err(|e| bad(format!("--kpm-hex: {e}"))),
        None => Err(bad(format!(
            "no Kpm: give --kpm-file, {KPM_ENV} or --kpm-hex"
        ))),
    }
}

/// One association with the MEF whose enrolment key is exported at the handshake. A
/// second connection would be another association with another Ke: refused, so the
/// exchange cannot silently continue on a new one.
struct MefConnector {
    tls: Arc<TlsConnectorInner>,
}

struct TlsConnectorInner {
    client: TlsClient,
    server_name: Option<String>,
    exported: Mutex<Option<ExportedKey>>,
    connected: AtomicBool,
}

#[async_trait]
impl Connector for MefConnector {
    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<dyn Io>, ClientError> {
        let inner = &self.tls;
        if inner.connected.swap(true, Ordering::AcqRel) {
            return Err(ClientError::Connect(std::io::Error::other(
                "the association with the MEF ended before the enrolment exchange did",
            )));
        }
        let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(ClientError::Connect)?;
        let name = inner.server_name.as_deref().unwrap_or(&endpoint.host);
        let stream = inner
            .client
            .connect(name, tcp)
            .await
            .map_err(ClientError::Handshake)?;
        let ke = bastion_tls::exporter::export_bootstrap_key(stream.ssl())
            .map_err(|e| ClientError::Connect(std::io::Error::other(e.to_string())))?;
        *inner.exported.lock() = Some(ke);
        Ok(Box::new(stream))
    }
}

/// What the enrolment provisioned, as kept on disk.
struct Credentials {
    ke_id: String,
    /// `ke.hex` (Ke) or `ke.name` (its name in the key store).
    ke_file: &'static str,
    ke: Zeroizing<String>,
    kuc: Zeroizing<String>,
    enrolee_id: String,
    target_id: String,
    cse_uri: String,
    expires: String,
    /// What the executed instructions provisioned (certificate, key, CA; Km, MAF
    /// registration), written beside the rest.
    extra: Vec<(&'static str, Zeroizing<String>)>,
    /// What the executed instructions report.
    lines: String,
}

const FILES: [&str; 7] = [
    "key-id",
    "ke.hex",
    "kuc.hex",
    "enrolee-id",
    "target-id",
    "cse-uri",
    "expires",
];

impl Credentials {
    fn write(&self, dir: &Path) -> Result<(), Failure> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if dir.exists() {
            return Err(bad(format!(
                "{} exists: give a new directory",
                dir.display()
            )));
        }
        // Written beside, renamed into place: the directory appears complete or not at all.
        let staging = dir.with_extension(format!("partial-{}", std::process::id()));
        let fail = |e: std::io::Error| refused(format!("cannot write {}: {e}", dir.display()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(fail)?;
        let values: [&str; 7] = [
            &self.ke_id,
            &self.ke,
            &self.kuc,
            &self.enrolee_id,
            &self.target_id,
            &self.cse_uri,
            &self.expires,
        ];
        let names = FILES.map(|n| if n == "ke.hex" { self.ke_file } else { n });
        let extra = self
            .extra
            .iter()
            .map(|(name, value)| (*name, value.as_str()));
        let written = (|| {
            for (name, value) in names.into_iter().zip(values).chain(extra) {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(staging.join(name))?;
                file.write_all(value.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()?;
            }
            std::fs::rename(&staging, dir)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(fail(e));
        }
        Ok(())
    }

    fn read(dir: &Path) -> Result<Credentials, Failure> {
        let read = |name: &str| -> Result<Zeroizing<String>, Failure> {
            let text = bastion_tls::secret::read_secret_text(&dir.join(name))
                .map_err(|e| bad(format!("--dir: {e}")))?;
            Ok(Zeroizing::new(text.trim().to_owned()))
        };
        let ke_file = match dir.join("ke.name").exists() {
            true => "ke.name",
            false => "ke.hex",
        };
        Ok(Credentials {
            ke_id: read("key-id")?.to_string(),
            ke_file,
            ke: read(ke_file)?,
            kuc: read("kuc.hex")?,
            enrolee_id: read("enrolee-id")?.to_string(),
            target_id: read("target-id")?.to_string(),
            cse_uri: read("cse-uri")?.to_string(),
            expires: read("expires")?.to_string(),
            extra: Vec::new(),
            lines: String::new(),
        })
    }
}

fn timeout(args: &EnrolArgs) -> Duration {
    Duration::from_secs(args.timeout.clamp(1, 300))
}

/// The MEF's answer to one exchange message, or a one-line refusal.
fn expect(step: &str, response: &Response, rsc: Rsc) -> Result<serde_json::Value, Failure> {
    let pc = response.pc.clone().unwrap_or(serde_json::Value::Null);
    if response.rsc == rsc {
        return Ok(pc);
    }
    let reason = pc
        .get("m2m:dbg")
        .and_then(|d| d.as_str())
        .unwrap_or("no reason given");
    Err(refused(format!("{step}: {} {reason}", response.rsc.code())))
}

async fn enrol(args: &EnrolArgs, mef: MefClient) -> Result<Credentials, Failure> {
    let mef_url = args
        .mef_url
        .as_deref()
        .ok_or_else(|| bad("--mef-url is required"))?;
    let fqdn = match &args.mef_fqdn {
        Some(fqdn) => fqdn.clone(),
        None => host_of(mef_url).ok_or_else(|| bad("--mef-url has no host"))?,
    };
    KeyIdentifier::new("00", &fqdn).map_err(|e| bad(format!("--mef-fqdn: {e}")))?;
    let inner = Arc::new(TlsConnectorInner {
        client: mef.tls,
        server_name: args.mef_server_name.clone(),
        exported: Mutex::new(None),
        connected: AtomicBool::new(false),
    });
    let config = ClientConfig {
        timeout: timeout(args),
        max_body_bytes: 64 * 1024,
    };
    let client = Client::with_connector(Arc::new(MefConnector { tls: inner.clone() }), config);
    let url = format!("{}{}", mef_url.trim_end_matches('/'), wire::ENROLMENT_PATH);
    let message = |rqi: &str, pc: serde_json::Value| Request {
        op: Some(Operation::Notify),
        to: wire::ENROLMENT_PATH.to_owned(),
        fr: Some(mef.origin.clone()),
        rqi: Some(rqi.to_owned()),
        rvi: Some("3".to_owned()),
        pc: Some(pc),
        ..Request::default()
    };
    let send = |request: Request| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .send(&url, &request)
                .await
                .map_err(|e| refused(format!("enrolment with the MEF failed: {e}")))
        }
    };
    let offered = Indications {
        cen: args
            .accept
            .contains(&EnrolInstruction::CertificateEnrolment),
        men: args.accept.contains(&EnrolInstruction::MafEnrolment),
        rmt: false,
    };
    let indications = wire::wrap(names::INDICATIONS, &offered);
    let answer = send(message("enrol-1", indications)).await?;
    let pc = expect("the MEF refused the enrolment", &answer, Rsc::Ok)?;
    let instructions: Instructions = wire::unwrap(names::INSTRUCTIONS, &pc)
        .map_err(|e| refused(format!("malformed instructions from the MEF: {e}")))?;
    let unoffered = instructions.ins.iter().any(|i| match i.ity {
        1 => !offered.cen,
        2 => !offered.men,
        _ => true,
    });
    if unoffered {
        return Err(refused(
            "the MEF sent instructions this enrolee did not offer to follow",
        ));
    }
    let exported = inner
        .exported
        .lock()
        .clone()
        .ok_or_else(|| refused("no enrolment key was exported"))?;
    let ke_id = exported
        .key_identifier(&fqdn)
        .map_err(|e| bad(format!("--mef-fqdn: {e}")))?
        .to_string();
    // Each instruction in order; the outcomes go to the MEF whatever they are, then a
    // failed one ends the command with nothing written.
    let mut results = Vec::new();
    let mut files: Vec<(&'static str, Zeroizing<String>)> = Vec::new();
    let mut failed: Option<String> = None;
    let mut lines = String::new();
    for (n, instruction) in instructions.ins.iter().enumerate() {
        let step = match instruction.ity {
            1 => "certificate enrolment",
            _ => "MAF enrolment",
        };
        let outcome = match failed {
            // After a failure the rest is not attempted.
            Some(_) => Err("not attempted after an earlier failure".to_owned()),
            None if instruction.ity == 1 => {
                certificate_enrolment(&client, mef_url, instruction).await
            }
            None => {
                maf_enrolment(
                    args,
                    instruction,
                    &exported,
                    &ke_id,
                    instructions.eid.as_deref(),
                    args.maf_admin_fqdn.as_deref().unwrap_or(&fqdn),
                )
                .await
            }
        };
        results.push(wire::InstructionResult {
            ity: instruction.ity,
            ok: outcome.is_ok(),
        });
        match outcome {
            Ok(done) => {
                lines.push_str(&format!(
                    "instruction {}: {step} ({}): ok\n",
                    n + 1,
                    instruction.uri
                ));
                lines.push_str(&done.lines);
                files.extend(done.files);
            }
            Err(reason) => {
                if failed.is_none() {
                    failed = Some(format!(
                        "instruction {} ({step} at {}) failed: {reason}",
                        n + 1,
                        instruction.uri
                    ));
                }
            }
        }
    }
    let fin = wire::wrap(names::FINAL, &Final { res: results });
    let answer = send(message("enrol-2", fin)).await?;
    if let Some(failure) = failed {
        return Err(refused(failure));
    }
    let pc = expect("the MEF refused the enrolment", &answer, Rsc::Created)?;
    let enrolled: Enrolled = wire::unwrap(names::ENROLLED, &pc)
        .map_err(|e| refused(format!("malformed enrolment answer from the MEF: {e}")))?;
    if enrolled.keid != ke_id {
        return Err(refused(format!(
            "the MEF's KeID {} differs from ours {ke_id}: not the MEF of --mef-fqdn, or a \
             different session",
            enrolled.keid
        )));
    }
    let target = cse_target(&enrolled.tgs, args.target_id.as_deref())?;
    let suid = Suid::from_code(u32::from(target.suid))
        .map_err(|e| refused(format!("the MEF named a bad SUID: {e}")))?;
    let (ke_file, ke, kuc) = keep_ke_and_derive(args, &exported, &fqdn, suid, &target.tid)?;
    Ok(Credentials {
        ke_id,
        ke_file,
        ke,
        kuc: kuc.to_hex(),
        enrolee_id: enrolled.eid,
        target_id: target.tid.clone(),
        cse_uri: target.uri.clone(),
        expires: enrolled.exp,
        extra: files,
        lines,
    })
}

/// The key shared with a target: Km for SUID 21 with the MAF-ID, Kuc otherwise
/// (`bastion_mef::rules::derive_for`, the MEF's own derivation). Every derivation from Ke
/// of this command is here.
fn derive(ke: &ExportedKey, suid: u8, target_id: &str) -> Result<DerivedKey, Failure> {
    let suid = Suid::from_code(u32::from(suid))
        .map_err(|e| refused(format!("the MEF named a bad SUID: {e}")))?;
    bastion_mef::rules::derive_for(&ke.enrolment_key(), suid, target_id)
        .map_err(|e| refused(format!("cannot derive the key for {target_id}: {e}")))
}

/// What an instruction carried out leaves: files for `--dir` and lines to print.
struct Done {
    files: Vec<(&'static str, Zeroizing<String>)>,
    lines: String,
}

/// ity 1: EST at the instruction's base URI over the MEF association (the pooled
/// connection of `client`; the connector opens no second one), for the identity the MEF
/// named.
async fn certificate_enrolment(
    client: &Client,
    mef_url: &str,
    ins: &InstructionMsg,
) -> Result<Done, String> {
    // Only the association of the exchange authenticates this enrolee; EST elsewhere
    // would need a credential it does not have yet.
    let at_mef = ins
        .uri
        .strip_prefix(mef_url.trim_end_matches('/'))
        .is_some_and(|rest| rest.starts_with('/'));
    if !at_mef {
        return Err("the EST URI is not on the MEF's listener (--mef-url)".into());
    }
    let identity = ins
        .tid
        .as_deref()
        .ok_or("the MEF named no identity to certify")?;
    let files = enrol_certificate(client, &ins.uri, identity)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Done {
        files,
        lines: format!("certificate: {identity}\n"),
    })
}

/// Why an EST certificate enrolment failed: on this side (101 CERT_PROV_CLIENT_ERROR of a
/// CERT_PROV command) or the EST server's answer (100 CERT_PROV_SERVER_ERROR).
#[derive(Debug, thiserror::Error)]
pub(crate) enum EstFailure {
    #[error("{0}")]
    Client(String),
    #[error("{0}")]
    Server(String),
}

/// The certificate enrolment of `bastion enrol`'s instruction (ity 1) and of `bastion
/// mef-client run-commands`' CERT_PROV: a fresh P-256 key, a CSR naming `identity`, EST
/// `simpleenroll` and `cacerts` at `base` on `client` (the MEF association), and a check
/// that the certificate names `identity`, holds our key and is signed by the CA. Returns
/// `cert.pem`, `key.pem`, `ca.pem` for the caller to write (nothing is written here).
pub(crate) async fn enrol_certificate(
    client: &Client,
    base: &str,
    identity: &str,
) -> Result<Vec<(&'static str, Zeroizing<String>)>, EstFailure> {
    let local = |e: String| EstFailure::Client(e);
    let subject =
        bastion_tls::certs::Subject::onem2m(identity).map_err(|e| local(e.to_string()))?;
    let csr = bastion_tls::certs::create_csr(&subject).map_err(|e| local(e.to_string()))?;
    let csr_der = openssl::x509::X509Req::from_pem(csr.csr_pem.as_bytes())
        .and_then(|r| r.to_der())
        .map_err(|e| local(e.to_string()))?;
    let base = base.trim_end_matches('/');
    let est = |operation: &'static str, body: Option<Vec<u8>>| {
        let target = format!("{base}/{operation}");
        async move {
            let (method, content_type, body) = match body {
                Some(body) => (
                    axum::http::Method::POST,
                    Some(bastion_est::http::PKCS10),
                    body,
                ),
                None => (axum::http::Method::GET, None, Vec::new()),
            };
            let (status, answer) = client
                .request(method, &target, content_type, "*/*", body.into())
                .await
                .map_err(|e| format!("{operation}: {e}"))?;
            if !status.is_success() {
                let reason = String::from_utf8_lossy(&answer).trim().to_owned();
                return Err(format!("{operation}: {} {reason}", status.as_u16()));
            }
            let text: String = String::from_utf8_lossy(&answer)
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            openssl::base64::decode_block(&text)
                .map_err(|_| format!("{operation}: the answer is not base64"))
        }
    };
    let server = EstFailure::Server;
    let body = openssl::base64::encode_block(&csr_der).into_bytes();
    let issued = first_certificate(&est("simpleenroll", Some(body)).await.map_err(server)?)
        .map_err(|e| server(format!("simpleenroll: {e}")))?;
    let ca = first_certificate(&est("cacerts", None).await.map_err(server)?)
        .map_err(|e| server(format!("cacerts: {e}")))?;
    let named = bastion_tls::identity::binding_from_certificate(&issued)
        .map_err(|e| server(format!("the issued certificate: {e}")))?;
    if named.originator() != identity {
        return Err(server(format!(
            "the issued certificate names {}, not {identity}",
            named.originator()
        )));
    }
    let same_key = openssl::pkey::PKey::private_key_from_pem(csr.key_pem.as_bytes())
        .ok()
        .zip(issued.public_key().ok())
        .is_some_and(|(private, public)| public.public_eq(&private));
    let ca_key = ca.public_key().map_err(|e| server(e.to_string()))?;
    if !same_key || !issued.verify(&ca_key).unwrap_or(false) {
        return Err(server(
            "the issued certificate is not for our key or not signed by the CA".into(),
        ));
    }
    let pem = |c: &openssl::x509::X509| {
        c.to_pem()
            .map(|p| Zeroizing::new(String::from_utf8_lossy(&p).into_owned()))
            .map_err(|e| local(e.to_string()))
    };
    Ok(vec![
        ("cert.pem", pem(&issued)?),
        ("key.pem", csr.key_pem.clone()),
        ("ca.pem", pem(&ca)?),
    ])
}

/// The first certificate of a certs-only PKCS#7 (DER).
fn first_certificate(der: &[u8]) -> Result<openssl::x509::X509, String> {
    let p7 = openssl::pkcs7::Pkcs7::from_der(der).map_err(|_| "not a PKCS#7".to_owned())?;
    p7.signed()
        .and_then(|s| s.certificates())
        .and_then(|c| c.iter().next())
        .map(|c| c.to_owned())
        .ok_or_else(|| "no certificate in the PKCS#7".to_owned())
}

/// ity 2: Km = derive(Ke, MAF-ID), the MAF handshake with identity KeID and key Km (the
/// MAF fetches Km from the MEF, SUID 21), and a MAF client registration as the enrolee.
async fn maf_enrolment(
    args: &EnrolArgs,
    ins: &InstructionMsg,
    ke: &ExportedKey,
    ke_id: &str,
    enrolee: Option<&str>,
    admin_fqdn: &str,
) -> Result<Done, String> {
    if ins.crt.is_some_and(|c| c != 1) {
        return Err("only symmetric MAF credentials (crt 1) are supported".into());
    }
    let maf_id = ins.tid.as_deref().ok_or("the MEF named no MAF-ID")?;
    let enrolee = enrolee.ok_or("the MEF named no enrolee ID")?;
    let km = derive(ke, 21, maf_id).map_err(|e| e.to_string())?;
    let psk = PskKey::from_hex(&km.to_hex()).map_err(|e| e.to_string())?;
    let tls = TlsClient::psk(ke_id, psk, &ClientOptions::default()).map_err(|e| e.to_string())?;
    let config = ClientConfig {
        timeout: timeout(args),
        ..ClientConfig::default()
    };
    let maf = bastion_maf::MafClient::session(&tls, &ins.uri, None, maf_id, enrolee, config)
        .await
        .map_err(|e| format!("the MAF handshake with Km: {e}"))?;
    let now = bastion_maf::unix_now();
    let registered = maf
        .register(
            now.saturating_add(args.maf_registration_seconds.max(1)),
            Vec::new(),
            admin_fqdn,
        )
        .await
        .map_err(|e| format!("MAF client registration: {e}"))?;
    let text = |v: &str| Zeroizing::new(v.to_owned());
    Ok(Done {
        files: vec![
            ("km-id", text(ke_id)),
            ("km.hex", km.to_hex()),
            ("maf-id", text(maf_id)),
            ("maf-uri", text(&ins.uri)),
            ("maf-reg-id", text(&registered.id)),
        ],
        lines: format!(
            "MAF: registered {} as {} at {maf_id}\n",
            registered.id, registered.client_id
        ),
    })
}

/// Keeps Ke and derives the target's key from it: in `--key-store`, Ke imported
/// non-exportable as `enrolee.ke.<RelativeKeID>` and Kuc computed inside the store, so
/// the only key left in this process is Kuc, the PSK OpenSSL must hold for the CSE
/// handshake; without a store, Ke for `ke.hex` and Kuc derived here. Returns the file
/// Ke is recorded in, its content, and Kuc.
fn keep_ke_and_derive(
    args: &EnrolArgs,
    exported: &ExportedKey,
    fqdn: &str,
    suid: Suid,
    target_id: &str,
) -> Result<(&'static str, Zeroizing<String>, bastion_keys::DerivedKey), Failure> {
    let input = bastion_mef::rules::derivation_input(suid, target_id)
        .map_err(|e| refused(format!("cannot derive the key for {target_id}: {e}")))?;
    let Some(spec) = &args.key_store else {
        let kuc = input.derive(&exported.enrolment_key());
        return Ok((
            "ke.hex",
            bastion_keys::hex::encode_secret(exported.key()),
            kuc,
        ));
    };
    use bastion_keystore::{ExportPolicy, KeyName, SecretKey, StoreSecrets, StoreSpec};
    let store_error = |e: bastion_keystore::KeyStoreError| match e.is_usage() {
        true => bad(format!("--key-store: {e}")),
        false => refused(format!("--key-store: {e}")),
    };
    let secrets = StoreSecrets {
        key_file: args.key_store_key_file.clone(),
        pin_file: args.pin_file.clone(),
    };
    let store = bastion_keystore::open(&StoreSpec::parse(spec).map_err(store_error)?, &secrets)
        .map_err(store_error)?;
    let relative = exported
        .key_identifier(fqdn)
        .map_err(|e| bad(format!("--mef-fqdn: {e}")))?;
    let name = KeyName::new(&format!("enrolee.ke.{}", relative.relative())).map_err(store_error)?;
    let ke = SecretKey::new(exported.key()).map_err(store_error)?;
    store
        .import_secret(&name, &ke, ExportPolicy::NonExportable)
        .map_err(store_error)?;
    let kuc = store.derive(&name, &input).map_err(store_error)?;
    Ok(("ke.name", Zeroizing::new(name.to_string()), kuc))
}

/// The CSE target: SUID 22, and `--target-id` when several.
fn cse_target<'a>(
    targets: &'a [TargetMsg],
    wanted: Option<&str>,
) -> Result<&'a TargetMsg, Failure> {
    let mut candidates = targets
        .iter()
        .filter(|t| t.suid == CSE_SUID && wanted.is_none_or(|w| w == t.tid));
    match (candidates.next(), candidates.next()) {
        (Some(t), None) => Ok(t),
        (None, _) => Err(refused(
            "the MEF named no CSE target (SUID 22) for this enrolee",
        )),
        (Some(_), Some(_)) => Err(bad(
            "the MEF named several CSE targets: choose with --target-id",
        )),
    }
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then(|| host.to_owned())
}

async fn register(args: &EnrolArgs, c: &Credentials) -> Result<String, Failure> {
    let key = PskKey::from_hex(&c.kuc).map_err(|e| bad(format!("kuc.hex: {e}")))?;
    let tls = TlsClient::psk(&c.ke_id, key, &ClientOptions::default())
        .map_err(|e| bad(format!("key-id: {e}")))?;
    let mut connector = TlsConnector::new(tls);
    if let Some(name) = &args.cse_server_name {
        connector = connector.with_server_name(name.clone());
    }
    let config = ClientConfig {
        timeout: timeout(args),
        ..ClientConfig::default()
    };
    let client = Client::with_connector(Arc::new(connector), config);
    let base = c.cse_uri.trim_end_matches('/').to_owned();
    let ae_name = match &args.ae_name {
        Some(name) => name.clone(),
        None => c
            .enrolee_id
            .rsplit('/')
            .next()
            .unwrap_or(&c.enrolee_id)
            .to_owned(),
    };
    let create = |ty: u64, rqi: &str, pc: serde_json::Value| Request {
        op: Some(Operation::Create),
        to: String::new(),
        fr: Some(c.enrolee_id.clone()),
        rqi: Some(rqi.to_owned()),
        rvi: Some("3".to_owned()),
        ty: Some(ty),
        pc: Some(pc),
        ..Request::default()
    };
    let send = |target: String, request: Request, step: &'static str| {
        let client = client.clone();
        let expires = c.expires.clone();
        async move {
            client.send(&target, &request).await.map_err(|e| {
                refused(format!(
                    "{step}: the CSE did not accept the provisioned key ({e}); the \
                     enrolment expires {expires}"
                ))
            })
        }
    };
    let ae = serde_json::json!({"m2m:ae": {
        "rn": ae_name, "api": args.app_id, "rr": false, "srv": ["3"]}});
    let answer = send(base.clone(), create(2, "enrol-ae", ae), "AE registration").await?;
    expect("AE registration refused", &answer, Rsc::Created)?;
    let ae_uri = format!("{base}/{ae_name}");
    let mut out = format!(
        "registered: AE {ae_name} as {} ({})\n",
        c.enrolee_id,
        Rsc::Created.code()
    );
    let Some(container) = &args.container else {
        return Ok(out);
    };
    let cnt = serde_json::json!({"m2m:cnt": {"rn": container}});
    let answer = send(ae_uri.clone(), create(3, "enrol-cnt", cnt), "container").await?;
    if answer.rsc != Rsc::Conflict {
        expect("container creation refused", &answer, Rsc::Created)?;
    }
    let content = args.content.clone().unwrap_or_default();
    let cin = serde_json::json!({"m2m:cin": {"con": content, "cnf": "text/plain:0"}});
    let cnt_uri = format!("{ae_uri}/{container}");
    let answer = send(cnt_uri, create(4, "enrol-cin", cin), "contentInstance").await?;
    expect("contentInstance creation refused", &answer, Rsc::Created)?;
    out.push_str(&format!(
        "contentInstance: {ae_name}/{container} ({})\n",
        Rsc::Created.code()
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_url() {
        assert_eq!(
            host_of("https://mef.example.com:8444/x").as_deref(),
            Some("mef.example.com")
        );
        assert_eq!(
            host_of("https://mef.example.com").as_deref(),
            Some("mef.example.com")
        );
        assert_eq!(host_of("mef"), None);
    }

    #[test]
    fn the_certificate_of_a_certs_only_answer() {
        let ca = bastion_tls::certs::create_ca("t", bastion_tls::certs::Validity::days(1)).unwrap();
        let der = openssl::x509::X509::from_pem(ca.cert_pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap();
        let p7 = bastion_est::der::certs_only(&[&der]);
        assert_eq!(first_certificate(&p7).unwrap().to_der().unwrap(), der);
        assert!(first_certificate(&der).is_err());
        assert!(first_certificate(&bastion_est::der::certs_only(&[])).is_err());
    }

    #[test]
    fn the_cse_target_is_the_suid_22_one() {
        let t = |tid: &str, suid| TargetMsg {
            tid: tid.into(),
            uri: "https://x".into(),
            suid,
        };
        let targets = [t("maf.example.com", 21), t("/id-in", 22)];
        assert_eq!(cse_target(&targets, None).unwrap().tid, "/id-in");
        assert!(cse_target(&targets[..1], None).is_err());
        let two = [t("/id-in", 22), t("/id-mn", 22)];
        assert!(matches!(cse_target(&two, None), Err(Failure::Config(_))));
        assert_eq!(cse_target(&two, Some("/id-mn")).unwrap().tid, "/id-mn");
    }
}
