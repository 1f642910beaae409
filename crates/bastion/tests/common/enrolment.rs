//! Pieces of the remote-provisioning tests (`enrolment.rs`, `enrolment_instructions.rs`):
//! a watched `bastion` process killed on drop, owner-only secret files, what `bastion
//! enrol` wrote and `bastion req` printed, `bastion mef` operator commands, and the
//! `openssl` that checks issued certificates (`openssl s_client` is
//! `provision::s_client`).

use super::{path, spawn_watched};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `bastion` (`mef`, `maf`, …) and its log; killed on drop.
pub struct Watched {
    pub child: Child,
    /// The port of its `listening on` line.
    pub port: u16,
    pub log: Arc<Mutex<String>>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watched {
    /// `bastion ARGS`, waited for until it logs `listening on`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], name: &'static str) -> Watched {
        Watched::spawn_with(args, name, &[])
    }

    /// The same with `env` added (a token's configuration and PIN).
    pub fn spawn_with<S: AsRef<std::ffi::OsStr>>(
        args: &[S],
        name: &'static str,
        env: &[(&'static str, String)],
    ) -> Watched {
        let log = Arc::new(Mutex::new(String::new()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_bastion"));
        command
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("BASTION_CREDENTIALS_KEY")
            .env_remove("BASTION_PKCS11_PIN")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let (child, port) = spawn_watched(&mut command, name, &log, Duration::from_secs(30));
        Watched { child, port, log }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// `bastion mef --config DIR/mef.toml --key-file DIR/store.key`.
pub fn start_mef(dir: &Path) -> Watched {
    start_mef_with(dir, &[])
}

/// The same with `env` added (a key store's configuration and PIN).
pub fn start_mef_with(dir: &Path, env: &[(&'static str, String)]) -> Watched {
    Watched::spawn_with(
        &[
            "mef",
            "--config",
            &path(dir, "mef.toml"),
            "--key-file",
            &path(dir, "store.key"),
        ],
        "bastion mef",
        env,
    )
}

/// `bastion mef ARGS --config DIR/mef.toml --key-file DIR/store.key`'s output.
pub fn mef_tool(dir: &Path, args: &[&str]) -> Output {
    mef_tool_with(dir, args, &[])
}

/// The same with `env` added.
pub fn mef_tool_with(dir: &Path, args: &[&str], env: &[(&'static str, String)]) -> Output {
    let config = path(dir, "mef.toml");
    let key = path(dir, "store.key");
    let mut all = vec!["mef"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", &config, "--key-file", &key]);
    bastion_with(&all, env)
}

/// `bastion ARGS` with `env` added (a token's configuration and PIN).
pub fn bastion_with(args: &[&str], env: &[(&'static str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bastion"))
        .args(args)
        .env_remove("BASTION_CREDENTIALS_KEY")
        .env_remove("BASTION_PKCS11_PIN")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run bastion")
}

/// Writes `text` to `file`, mode 0600.
pub fn write_secret(file: &Path, text: &str) {
    std::fs::write(file, text).expect("write");
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The trimmed content of `dir/name`.
pub fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .trim()
        .to_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON body `bastion req` prints after the rsc line.
pub fn printed_body(out: &Output) -> serde_json::Value {
    let text = stdout(out);
    let body = text.split_once('\n').map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("body {body:?}: {e}"))
}

/// The permission bits of `file`.
pub fn mode(file: &Path) -> u32 {
    std::fs::metadata(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `openssl ARGS`' output.
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (installed by scripts/ensure-toolchain.sh)")
}

/// What an EST enrolment left in `creds`: `cert.pem`, `key.pem`, `ca.pem` mode 0600, the
/// certificate verified by `openssl verify` against `ca_pem` (the operator's copy of the
/// CA, not only the one the client fetched), its SAN the URI `san_uri`, its public key
/// the one of `key.pem` (the key is the client's own).
pub fn assert_enrolled_certificate(creds: &Path, ca_pem: &str, san_uri: &str) {
    for name in ["cert.pem", "key.pem", "ca.pem"] {
        assert_eq!(mode(&creds.join(name)), 0o600, "{name}");
    }
    let cert = path(creds, "cert.pem");
    let verified = openssl(&["verify", "-CAfile", ca_pem, &cert]);
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        format!("{cert}: OK"),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let san = openssl(&["x509", "-in", &cert, "-noout", "-ext", "subjectAltName"]);
    let san = String::from_utf8_lossy(&san.stdout);
    assert_eq!(
        san.lines().nth(1).map(str::trim),
        Some(format!("URI:{san_uri}").as_str()),
        "{san}"
    );
    let from_key = openssl(&["pkey", "-in", &path(creds, "key.pem"), "-pubout"]);
    let from_cert = openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]);
    assert!(from_key.status.success() && !from_key.stdout.is_empty());
    assert_eq!(from_key.stdout, from_cert.stdout);
}
