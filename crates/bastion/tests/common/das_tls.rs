//! A `bastion das` with a TLS listener, and a CSE that reaches it over TLS-PSK: the DAS
//! side and the CSE side of a security association provisioned with `bastion
//! credentials` (docs/das.md, "Security associations").

use super::provision::{add_psk_credential, Store};
use super::{spawn_watched, write_key_file, Server};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Key of both credential stores in these tests.
pub const STORE_KEY: &str = "6a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// The PSK the CSE and the DAS share.
pub const CSE_DAS_KPSA_ID: &str = "cse-das@bastion.example";
pub const CSE_DAS_KPSA: &str = "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f";
/// The DAS Server AE's AE-ID.
pub const DAS_ID: &str = "//bastion.example/id-das/Cdas";

/// A running `bastion das`; killed when dropped.
pub struct DasServer {
    child: Child,
    /// `https://ADDR:PORT` of the TLS listener, if any.
    pub tls_url: Option<String>,
    /// `http://ADDR:PORT` of the plain listener, if any.
    pub plain_url: Option<String>,
}

impl Drop for DasServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bastion das ARGS --policy POLICY`, its log uncoloured and at its default level, the
/// credentials key taken from no environment.
pub fn das_command<S: AsRef<OsStr>>(policy: &Path, args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bastion"));
    command
        .arg("das")
        .args(args)
        .arg("--policy")
        .arg(policy)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("BASTION_CREDENTIALS_KEY");
    command
}

/// How long `bastion das` may take to report its address.
pub const DAS_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `bastion das ARGS --policy POLICY` and waits for its `listening on` line.
pub fn start_das_with(policy: &Path, args: &[&str]) -> DasServer {
    let log = Arc::new(Mutex::new(String::new()));
    let mut command = das_command(policy, args);
    let (child, port) = spawn_watched(&mut command, "bastion das", &log, DAS_START_TIMEOUT);
    // `accepting TLS on` is logged before `listening on`, on the same stream, so it is in
    // the log by now if there is a TLS listener.
    let tls = log.lock().ok().and_then(|log| {
        log.lines()
            .find_map(|line| line.split("accepting TLS on ").nth(1))
            .map(|addr| addr.trim().to_owned())
    });
    let tls_url = tls.map(|a| format!("https://{a}"));
    // `listening on` names the TLS listener when there is no plain one.
    let plain = format!("127.0.0.1:{port}");
    let plain_url = (tls_url.as_deref() != Some(&format!("https://{plain}")))
        .then(|| format!("http://{plain}"));
    DasServer {
        child,
        tls_url,
        plain_url,
    }
}

/// Writes the PSK `hex` to an owner-only file beside the store `store` and adds it there
/// under `id` ([`add_psk_credential`]; key file `key_file`), bound with `binding` (e.g.
/// `["--cse-id", "/id-in"]` or `["--originator", "Cm1"]`).
pub fn add_psk(store: &Path, key_file: &Path, id: &str, hex: &str, binding: &[&str]) {
    let psk_file = store.with_extension(format!("{}.psk", id.replace('@', "_")));
    write_key_file(&psk_file, hex);
    add_psk_credential(
        Store::File(&store.to_string_lossy()),
        &key_file.to_string_lossy(),
        id,
        &psk_file.to_string_lossy(),
        binding,
    );
}

/// The files of one DAS/CSE pair: a DAS store holding the CSE's PSK (bound to the CSE's
/// CSE-ID), a CSE store holding the same PSK (bound to the DAS's AE-ID).
pub struct Provisioned {
    pub dir: tempfile::TempDir,
}

impl Provisioned {
    pub fn new() -> Provisioned {
        let dir = tempfile::tempdir().expect("directory");
        let p = Provisioned { dir };
        write_key_file(&p.file("store.key"), STORE_KEY);
        add_psk(
            &p.file("das.store"),
            &p.file("store.key"),
            CSE_DAS_KPSA_ID,
            CSE_DAS_KPSA,
            &["--cse-id", super::CSE_ID],
        );
        add_psk(
            &p.file("cse.store"),
            &p.file("store.key"),
            CSE_DAS_KPSA_ID,
            CSE_DAS_KPSA,
            &["--originator", DAS_ID],
        );
        p
    }

    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// `bastion das` arguments for a TLS listener over the DAS store.
    pub fn das_tls_args(&self) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--credentials-store".into(),
            self.file("das.store").to_string_lossy().into_owned(),
            "--credentials-key-file".into(),
            self.file("store.key").to_string_lossy().into_owned(),
        ]
    }

    /// `bastion das` over the DAS store on a TLS listener ([`Self::das_tls_args`]), with
    /// `extra` arguments after those.
    pub fn start_das(&self, policy: &Path, extra: &[&str]) -> DasServer {
        let mut args = self.das_tls_args();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_das_with(policy, &args)
    }

    /// The `[tls]` and `[authorization]` configuration of a CSE reaching the DAS over
    /// TLS-PSK; `extra_authorization` is appended to `[authorization]`.
    pub fn cse_config(&self, extra_authorization: &str) -> String {
        format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"psk\"]\n\
             credentials-store = \"{}\"\ncredentials-key-file = \"{}\"\n\n\
             [authorization]\ndas-id = \"{DAS_ID}\"\ndas-psk-id = \"{CSE_DAS_KPSA_ID}\"\n{extra_authorization}",
            self.file("cse.store").display(),
            self.file("store.key").display(),
        )
    }

    /// A CSE with [`Self::cse_config`].
    pub fn start_cse(&self, extra_authorization: &str) -> Server {
        Server::start_with_config(&self.cse_config(extra_authorization))
    }
}

impl Default for Provisioned {
    fn default() -> Self {
        Provisioned::new()
    }
}
