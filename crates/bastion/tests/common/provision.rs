//! Provisioning with the binary's own tools, as an operator would: a CA and certificates
//! named after oneM2M identities with `bastion cert`, PSK credentials with `bastion
//! credentials add`, and oneM2M requests inside a TLS-PSK association with `bastion req`.
//! One home for these argument vectors, so every test file drives the tools the same way.

use super::{bastion, ok, path};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `bastion cert ca --cn CN EXTRA`: writes `ca.pem` and `ca.key` into `dir`.
pub fn make_ca(dir: &Path, cn: &str, extra: &[&str]) {
    let (cert, key) = (path(dir, "ca.pem"), path(dir, "ca.key"));
    let mut args = vec!["cert", "ca", "--cn", cn];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out-cert", &cert, "--out-key", &key]);
    ok(&bastion(&args));
}

/// A CA `Test CA` and certificates it issues for each `(name, id)`, as
/// [`issue_certificates`].
pub fn ca_and_certificates(dir: &Path, certs: &[(&str, &str)]) {
    make_ca(dir, "Test CA", &[]);
    issue_certificates(dir, certs);
}

/// `bastion cert issue` by the CA in `dir` for each `(name, id)`: `NAME.pem` and
/// `NAME.key` naming the identity `id`, with the DNS name `localhost`.
pub fn issue_certificates(dir: &Path, certs: &[(&str, &str)]) {
    for (name, id) in certs {
        ok(&bastion(&[
            "cert",
            "issue",
            "--ca-cert",
            &path(dir, "ca.pem"),
            "--ca-key",
            &path(dir, "ca.key"),
            "--id",
            id,
            "--dns",
            "localhost",
            "--out-cert",
            &path(dir, &format!("{name}.pem")),
            "--out-key",
            &path(dir, &format!("{name}.key")),
        ]));
    }
}

/// `bastion cert crl` by the CA in `dir` revoking `revoked` (certificate names), written
/// to `out` through a temporary file and a rename, as an operator replaces a CRL.
pub fn write_crl(dir: &Path, revoked: &[&str], number: u32, next_update_days: u32, out: &str) {
    let tmp = format!("{out}.new");
    let _ = std::fs::remove_file(dir.join(&tmp));
    let revoke: Vec<String> = revoked
        .iter()
        .map(|r| path(dir, &format!("{r}.pem")))
        .collect();
    let number = number.to_string();
    let days = next_update_days.to_string();
    let (ca_pem, ca_key, tmp_path) = (path(dir, "ca.pem"), path(dir, "ca.key"), path(dir, &tmp));
    let mut args = vec![
        "cert",
        "crl",
        "--ca-cert",
        &ca_pem,
        "--ca-key",
        &ca_key,
        "--number",
        &number,
        "--next-update-days",
        &days,
        "--out",
        &tmp_path,
    ];
    for r in &revoke {
        args.extend(["--revoke", r.as_str()]);
    }
    ok(&bastion(&args));
    std::fs::rename(dir.join(&tmp), dir.join(out)).expect("replace the CRL");
}

/// The credential store `bastion credentials add` writes to.
#[derive(Clone, Copy)]
pub enum Store<'a> {
    /// The store of a data directory (`--data-dir`).
    DataDir(&'a str),
    /// A store file of its own (`--store`), e.g. `bastion das`'s.
    File(&'a str),
}

/// `bastion credentials add` of the PSK in `psk_file` under `kpsa_id` to `store`
/// (encrypted with `key_file`), bound with `binding` (e.g. `["--originator", "Cae"]`,
/// `["--cse-id", "/id-mn"]`, or nothing); its output.
pub fn add_psk_credential(
    store: Store<'_>,
    key_file: &str,
    kpsa_id: &str,
    psk_file: &str,
    binding: &[&str],
) -> String {
    let (store_flag, store_path) = match store {
        Store::DataDir(dir) => ("--data-dir", dir),
        Store::File(file) => ("--store", file),
    };
    let mut args = vec![
        "credentials",
        "add",
        store_flag,
        store_path,
        "--key-file",
        key_file,
        "--id",
        kpsa_id,
        "--psk-file",
        psk_file,
    ];
    args.extend_from_slice(binding);
    ok(&bastion(&args))
}

/// `bastion req --url URL --psk-id KPSA_ID --psk-file PSK_FILE ARGS`: one oneM2M request
/// inside a TLS-PSK association.
pub fn psk_req(url: &str, kpsa_id: &str, psk_file: &str, args: &[&str]) -> Output {
    let mut all = vec![
        "req",
        "--url",
        url,
        "--psk-id",
        kpsa_id,
        "--psk-file",
        psk_file,
    ];
    all.extend_from_slice(args);
    bastion(&all)
}

/// `bastion req --url URL` with the certificate `NAME.pem` (key `NAME.key`) of `dir`,
/// trusting `ca.pem` there and expecting the server name `localhost`, then `args`.
pub fn cert_req(url: &str, dir: &Path, name: &str, args: &[&str]) -> Output {
    let (ca, cert, key) = (
        path(dir, "ca.pem"),
        path(dir, &format!("{name}.pem")),
        path(dir, &format!("{name}.key")),
    );
    let mut all = vec![
        "req",
        "--url",
        url,
        "--cert",
        &cert,
        "--key",
        &key,
        "--ca",
        &ca,
        "--server-name",
        "localhost",
    ];
    all.extend_from_slice(args);
    bastion(&all)
}

/// The first line `bastion req` prints: the response's `X-M2M-RSC`, empty when no
/// response came.
pub fn printed_rsc(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A TLS-PSK association with the TLS listener on `port` (server name `localhost`), for
/// tests that speak HTTP on it themselves (kept-alive connections, raw bytes).
pub async fn psk_stream(
    port: u16,
    kpsa_id: &str,
    key_hex: &str,
) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {
    let client = bastion_tls::TlsClient::psk(
        kpsa_id,
        bastion_tls::PskKey::from_hex(key_hex).expect("key"),
        &bastion_tls::ClientOptions::default(),
    )
    .expect("client");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    client.connect("localhost", tcp).await.expect("handshake")
}

/// Sends `requests` back to back on one TLS-PSK association with `openssl s_client` and
/// returns what came back once the server closed it (the last request should say
/// `Connection: close`, or be one the server closes after).
pub fn s_client(port: u16, (kpm_id, kpm): (&str, &str), requests: &str) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-psk",
            kpm,
            "-psk_identity",
            kpm_id,
        ])
        .args([
            "-tls1_2",
            "-cipher",
            "PSK-AES128-CBC-SHA256",
            "-quiet",
            "-ign_eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client (Debian package openssl) must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(requests.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "s_client did not end: the MEF kept the association open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}
