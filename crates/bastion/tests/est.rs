//! Certificate enrolment over EST (RFC 7030; TS-0003 8.3.6; docs/provisioning.md,
//! "Certificate enrolment"), end to end with clients the project did not write: the real
//! `bastion est serve`, CSRs made by `openssl req`, requests sent by `curl` (mutual TLS
//! with `--cert/--key`) and, for TLS-PSK, by `openssl s_client -psk`; answers read with
//! `openssl base64`, `openssl pkcs7`, `openssl x509` and `openssl verify`. Revocation is
//! followed to a running `bastion serve` CSE fetching the CRL (`[tls] crl-url`), whose
//! kept-alive association is driven by `openssl s_client`.
//!
//! curl and openssl are installed by scripts/ensure-toolchain.sh; a missing one fails
//! these tests (the spawn panics), never skips them.

use crate::common;

use common::provision::*;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STORE_KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const KPM_ID: &str = "kpm2@mef.example";
const KPM: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const WRONG_KPM: &str = "ff112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const BOOTSTRAP_ID: &str = "//factory.example/Sdev1";
const DEV1: &str = "//bastion.example/id-in/Cdev1";
const DEV2: &str = "//bastion.example/id-in/Cdev2";
const PASSWORD: &str = "open sesame";

/// A running `bastion est serve` and its files: the MEF CA (`ca.pem`), a factory CA
/// whose certificate `boot.pem` names [`BOOTSTRAP_ID`], the PSK [`KPM_ID`] in the
/// credential store, and the profiles (bootstrap certificate → [`DEV1`] with a
/// challengePassword; the PSK → [`DEV2`] without).
struct Mef {
    dir: tempfile::TempDir,
    child: Child,
    log: Arc<Mutex<String>>,
    tls_port: u16,
    crl_port: u16,
}

impl Drop for Mef {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mef {
    fn start() -> Mef {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        std::fs::create_dir(d.join("factory")).expect("factory dir");
        make_ca(&d.join("factory"), "Factory CA", &[]);
        issue_certificates(&d.join("factory"), &[("boot", BOOTSTRAP_ID)]);
        ca_and_certificates(d, &[("mef", "//bastion.example/mef")]);
        write_key_file(&d.join("store.key"), STORE_KEY);
        write_key_file(&d.join("kpm.hex"), KPM);
        ok(&bastion(&[
            "credentials",
            "add",
            "--store",
            &path(d, "mef.store"),
            "--key-file",
            &path(d, "store.key"),
            "--id",
            KPM_ID,
            "--psk-file",
            &path(d, "kpm.hex"),
        ]));
        write_key_file(&d.join("dev1.pw"), &format!("{PASSWORD}\n"));
        std::fs::write(
            d.join("profiles.toml"),
            format!(
                "[[enrolee]]\nauthenticated-as = \"{BOOTSTRAP_ID}\"\ncertify = \"{DEV1}\"\n\
                 challenge-password-file = \"dev1.pw\"\nvalidity-days = 30\n\n\
                 [[enrolee]]\nauthenticated-as = \"12-{KPM_ID}\"\ncertify = \"{DEV2}\"\n"
            ),
        )
        .expect("profiles");
        let log = Arc::new(Mutex::new(String::new()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_bastion"));
        command
            .args(["est", "serve", "--tls-listen", "127.0.0.1:0"])
            .args(["--crl-listen", "127.0.0.1:0", "--state-dir"])
            .arg(d.join("state"))
            .args([
                "--ca-cert",
                &path(d, "ca.pem"),
                "--ca-key",
                &path(d, "ca.key"),
            ])
            .args(["--cert", &path(d, "mef.pem"), "--key", &path(d, "mef.key")])
            .args(["--trust-anchor", &path(&d.join("factory"), "ca.pem")])
            .args(["--credentials-store", &path(d, "mef.store")])
            .args(["--credentials-key-file", &path(d, "store.key")])
            .args(["--profiles", &path(d, "profiles.toml")])
            .env_remove("BASTION_CREDENTIALS_KEY")
            .env("NO_COLOR", "1");
        let (child, crl_port) =
            spawn_watched(&mut command, "bastion est", &log, Duration::from_secs(20));
        let text = log.lock().expect("log").clone();
        const MARK: &str = "accepting TLS on 127.0.0.1:";
        let at = text.find(MARK).expect("TLS port logged") + MARK.len();
        let tls_port = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("port");
        Mef {
            dir,
            child,
            log,
            tls_port,
            crl_port,
        }
    }

    fn file(&self, name: &str) -> String {
        path(self.dir.path(), name)
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    fn url(&self, operation: &str) -> String {
        format!(
            "https://localhost:{}/.well-known/est/{operation}",
            self.tls_port
        )
    }

    /// `curl` an EST operation over certificate TLS with `NAME.pem`/`NAME.key` (`name`
    /// relative to the MEF's directory), posting the file `body` as `content_type`.
    fn curl(&self, operation: &str, name: &str, post: Option<(&str, &str)>) -> Answer {
        let out_file = self.file(&format!("answer-{}", unique()));
        let mut args = vec![
            "-sS".to_owned(),
            "--cacert".into(),
            self.file("ca.pem"),
            "--cert".into(),
            self.file(&format!("{name}.pem")),
            "--key".into(),
            self.file(&format!("{name}.key")),
            "-o".into(),
            out_file.clone(),
            "-w".into(),
            "%{http_code}\n%{content_type}".into(),
        ];
        if let Some((body, content_type)) = post {
            args.extend([
                "-H".into(),
                format!("Content-Type: {content_type}"),
                "--data-binary".into(),
                format!("@{body}"),
            ]);
        }
        args.push(self.url(operation));
        let out = run("curl", &args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, content_type) = written.split_once('\n').unwrap_or((&written, ""));
        Answer {
            status: status.parse().unwrap_or(0),
            content_type: content_type.to_owned(),
            body: std::fs::read(&out_file).unwrap_or_default(),
        }
    }

    /// `simpleenroll` / `simplereenroll` with the CSR file `csr` (base64).
    fn enrol(&self, operation: &str, name: &str, csr: &str) -> Answer {
        self.curl(operation, name, Some((csr, "application/pkcs10")))
    }

    /// An EST operation over TLS-PSK with `openssl s_client -psk`: the raw HTTP exchange.
    fn psk_post(&self, key: &str, operation: &str, body: &[u8]) -> Answer {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", self.tls_port),
            ])
            .args(["-psk_identity", KPM_ID, "-psk", key, "-quiet", "-ign_eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl s_client (install the openssl command)");
        let head = format!(
            "POST /.well-known/est/{operation} HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/pkcs10\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(head.as_bytes());
        let _ = stdin.write_all(body);
        let out = child.wait_with_output().expect("s_client");
        drop(stdin);
        parse_raw_answer(&out.stdout)
    }
}

/// What an EST client saw.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn parse_raw_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    Answer {
        status,
        content_type,
        body: body.as_bytes().to_vec(),
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `program ARGS`; a missing program fails the test.
fn run<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} could not run (scripts/ensure-toolchain.sh installs it): {e}")
        })
}

fn run_ok<S: AsRef<std::ffi::OsStr>>(program: &str, args: &[S]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl req`: a new key `NAME.key` and a CSR naming `san` (a oneM2M identity URI),
/// with `password` as challengePassword, `key_spec` (e.g. `ec` on P-256, or `rsa:2048`);
/// returns the base64 DER CSR file.
fn make_csr(dir: &Path, name: &str, san: &str, password: Option<&str>, rsa: bool) -> String {
    let config = dir.join(format!("{name}.cnf"));
    let mut text = format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nreq_extensions = ext\n{}\
         [dn]\nCN = {name}\n[ext]\nsubjectAltName = URI:{}\n",
        if password.is_some() {
            "attributes = attrs\n"
        } else {
            ""
        },
        san.replacen("//", "onem2m://", 1),
    );
    if let Some(password) = password {
        text.push_str(&format!("[attrs]\nchallengePassword = {password}\n"));
    }
    std::fs::write(&config, text).expect("openssl config");
    let der = dir.join(format!("{name}.csr.der"));
    let mut args: Vec<String> = vec!["req".into(), "-new".into()];
    if rsa {
        args.extend(["-newkey".into(), "rsa:2048".into()]);
    } else {
        args.extend([
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
        ]);
    }
    args.extend([
        "-nodes".into(),
        "-keyout".into(),
        path(dir, &format!("{name}.key")),
        "-config".into(),
        config.to_string_lossy().into_owned(),
        "-outform".into(),
        "DER".into(),
        "-out".into(),
        der.to_string_lossy().into_owned(),
    ]);
    run_ok("openssl", &args);
    let b64 = path(dir, &format!("{name}.csr.b64"));
    run_ok(
        "openssl",
        &["base64", "-in", &der.to_string_lossy(), "-out", &b64],
    );
    b64
}

/// The certificates of a base64 certs-only PKCS#7 answer, PEM, via `openssl`; also
/// written to `NAME.pem` in `dir`.
fn certificates_of(dir: &Path, name: &str, answer: &Answer) -> String {
    let b64 = dir.join(format!("{name}.p7.b64"));
    std::fs::write(&b64, &answer.body).expect("answer");
    let der = dir.join(format!("{name}.p7.der"));
    run_ok(
        "openssl",
        &[
            "base64",
            "-d",
            "-in",
            &b64.to_string_lossy(),
            "-out",
            &der.to_string_lossy(),
        ],
    );
    let pem = path(dir, &format!("{name}.pem"));
    run_ok(
        "openssl",
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &der.to_string_lossy(),
            "-print_certs",
            "-out",
            &pem,
        ],
    );
    std::fs::read_to_string(&pem).expect("certificates")
}

/// `openssl x509 -noout -ext subjectAltName` and the serial of the certificate file.
fn san_and_serial(file: &str) -> (String, String) {
    let san = run_ok(
        "openssl",
        &["x509", "-in", file, "-noout", "-ext", "subjectAltName"],
    );
    let serial = run_ok("openssl", &["x509", "-in", file, "-noout", "-serial"]);
    (
        san.lines().nth(1).unwrap_or_default().trim().to_owned(),
        serial.trim().trim_start_matches("serial=").to_owned(),
    )
}

const PKCS7: &str = "application/pkcs7-mime; smime-type=certs-only";

#[test]
fn rfc7030_cacerts_and_csrattrs_with_curl() {
    let mef = Mef::start();
    let d = mef.dir.path();
    let cacerts = mef.curl("cacerts", "factory/boot", None);
    assert_eq!(
        (cacerts.status, cacerts.content_type.as_str()),
        (200, PKCS7)
    );
    let pem = certificates_of(d, "cacerts", &cacerts);
    let fingerprint = |file: &str| {
        run_ok(
            "openssl",
            &["x509", "-in", file, "-noout", "-fingerprint", "-sha256"],
        )
    };
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(
        fingerprint(&mef.file("cacerts.pem")),
        fingerprint(&mef.file("ca.pem"))
    );

    let attrs = mef.curl("csrattrs", "factory/boot", None);
    assert_eq!(
        (attrs.status, attrs.content_type.as_str()),
        (200, "application/csrattrs")
    );
    std::fs::write(d.join("attrs.b64"), &attrs.body).expect("attrs");
    run_ok(
        "openssl",
        &[
            "base64",
            "-d",
            "-in",
            &mef.file("attrs.b64"),
            "-out",
            &mef.file("attrs.der"),
        ],
    );
    let parsed = run_ok(
        "openssl",
        &["asn1parse", "-inform", "DER", "-in", &mef.file("attrs.der")],
    );
    let objects: Vec<&str> = parsed
        .lines()
        .filter_map(|l| l.split("OBJECT            :").nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(
        objects,
        [
            "challengePassword",
            "Extension Request",
            "X509v3 Subject Alternative Name",
            "id-ecPublicKey",
            "prime256v1",
            "ecdsa-with-SHA256"
        ]
    );
}

#[test]
fn ts0003_8_3_6_enrolment_over_a_bootstrap_certificate_then_renewal() {
    let mef = Mef::start();
    let d = mef.dir.path();
    // A CSR asking for another identity than the profile's is refused.
    let other = make_csr(
        d,
        "other",
        "//bastion.example/id-in/Cdev9",
        Some(PASSWORD),
        false,
    );
    let refused = mef.enrol("simpleenroll", "factory/boot", &other);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        refused.text(),
        format!("the CSR asks for //bastion.example/id-in/Cdev9; this enrolee may be certified as {DEV1} only\n")
    );
    // The challengePassword: wrong, then missing.
    let wrong = make_csr(d, "wrong", DEV1, Some("open sesame!"), false);
    let refused = mef.enrol("simpleenroll", "factory/boot", &wrong);
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (403, "the challengePassword is wrong\n")
    );
    let missing = make_csr(d, "missing", DEV1, None, false);
    let refused = mef.enrol("simpleenroll", "factory/boot", &missing);
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (403, "the CSR carries no challengePassword\n")
    );
    // Not P-256 (TS-0003 10.1.1), and not a PKCS#10 content type.
    let rsa = make_csr(d, "rsa", DEV1, Some(PASSWORD), true);
    let refused = mef.enrol("simpleenroll", "factory/boot", &rsa);
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (400, "the CSR key is not an EC P-256 key\n")
    );
    let good = make_csr(d, "dev1", DEV1, Some(PASSWORD), false);
    let refused = mef.curl(
        "simpleenroll",
        "factory/boot",
        Some((&good, "application/json")),
    );
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (415, "Content-Type must be application/pkcs10\n")
    );
    assert!(
        !mef.log().contains(PASSWORD),
        "a challengePassword reached the log"
    );

    // The enrolment: a certificate naming DEV1, issued by the MEF CA.
    let issued = mef.enrol("simpleenroll", "factory/boot", &good);
    assert_eq!(
        (issued.status, issued.content_type.as_str()),
        (200, PKCS7),
        "{}",
        issued.text()
    );
    certificates_of(d, "dev1", &issued);
    let (san, serial) = san_and_serial(&mef.file("dev1.pem"));
    assert_eq!(san, "URI:onem2m://bastion.example/id-in/Cdev1");
    assert_eq!(
        run_ok(
            "openssl",
            &[
                "verify",
                "-CAfile",
                &mef.file("ca.pem"),
                &mef.file("dev1.pem")
            ]
        ),
        format!("{}: OK\n", mef.file("dev1.pem"))
    );
    // 30 days, as the profile says.
    let dates = run_ok(
        "openssl",
        &[
            "x509",
            "-in",
            &mef.file("dev1.pem"),
            "-noout",
            "-checkend",
            &(29 * 86_400).to_string(),
        ],
    );
    assert_eq!(dates, "Certificate will not expire\n");
    let out = run(
        "openssl",
        &[
            "x509",
            "-in",
            &mef.file("dev1.pem"),
            "-noout",
            "-checkend",
            &(31 * 86_400).to_string(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Certificate will expire\n"
    );

    // The issued certificate does not enrol again: renewal is simplereenroll.
    let renew_csr = make_csr(d, "dev1-next", DEV1, None, false);
    let refused = mef.enrol("simpleenroll", "dev1", &renew_csr);
    assert_eq!(
        (refused.status, refused.text()),
        (403, format!("no enrolment profile for {DEV1}\n"))
    );
    // The bootstrap certificate cannot renew: the CA did not issue it.
    let refused = mef.enrol("simplereenroll", "factory/boot", &renew_csr);
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (
            403,
            "the association's certificate was not issued by this CA\n"
        )
    );
    // Renewal for another identity is refused.
    let refused = mef.enrol("simplereenroll", "dev1", &other);
    assert_eq!(
        (refused.status, refused.text()),
        (403, format!("the CSR asks for //bastion.example/id-in/Cdev9; this enrolee may be certified as {DEV1} only\n"))
    );
    // Renewal over the issued certificate: same identity, a new key and serial.
    let renewed = mef.enrol("simplereenroll", "dev1", &renew_csr);
    assert_eq!(renewed.status, 200, "{}", renewed.text());
    certificates_of(d, "dev1-next", &renewed);
    let (san2, serial2) = san_and_serial(&mef.file("dev1-next.pem"));
    assert_eq!(san2, "URI:onem2m://bastion.example/id-in/Cdev1");
    assert_ne!(serial, serial2);

    // The ledger lists both, valid.
    let listed = ok(&bastion(&[
        "est",
        "list",
        "--state-dir",
        &mef.file("state"),
    ]));
    let lines: Vec<(String, String, String)> = listed
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), f[1].to_owned(), f[3].to_owned())
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                serial.to_ascii_lowercase(),
                DEV1.to_owned(),
                "valid".to_owned()
            ),
            (
                serial2.to_ascii_lowercase(),
                DEV1.to_owned(),
                "valid".to_owned()
            )
        ]
    );
}

#[test]
fn ts0003_8_3_6_enrolment_over_tls_psk_with_openssl_s_client() {
    let mef = Mef::start();
    let d = mef.dir.path();
    let csr_b64 = make_csr(d, "dev2", DEV2, None, false);
    let body = std::fs::read(&csr_b64).expect("csr");
    let answer = mef.psk_post(KPM, "simpleenroll", &body);
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (200, PKCS7),
        "{answer:?}"
    );
    certificates_of(d, "dev2", &answer);
    let (san, _) = san_and_serial(&mef.file("dev2.pem"));
    assert_eq!(san, "URI:onem2m://bastion.example/id-in/Cdev2");
    // The PSK association is bound to 12-kpm2@mef.example; its profile allows DEV2 only.
    let other = std::fs::read(make_csr(d, "dev2-other", DEV1, None, false)).expect("csr");
    let refused = mef.psk_post(KPM, "simpleenroll", &other);
    assert_eq!(refused.status, 403);
    assert_eq!(
        String::from_utf8_lossy(&refused.body),
        format!("the CSR asks for {DEV1}; this enrolee may be certified as {DEV2} only\n")
    );
    // A PSK association cannot renew.
    let refused = mef.psk_post(KPM, "simplereenroll", &body);
    assert_eq!(
        (
            refused.status,
            String::from_utf8_lossy(&refused.body).into_owned()
        ),
        (
            403,
            "simplereenroll needs a certificate-authenticated association\n".to_owned()
        )
    );
    // A wrong Kpm gets no association, hence no answer at all.
    let none = mef.psk_post(WRONG_KPM, "simpleenroll", &body);
    assert_eq!(none.status, 0, "{none:?}");
    let listed = ok(&bastion(&[
        "est",
        "list",
        "--state-dir",
        &mef.file("state"),
    ]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

/// One HTTP answer: status, headers (names lower-cased), body.
type HttpAnswer = (u16, Vec<(String, String)>, String);

/// `openssl s_client` holding one certificate association open, speaking HTTP/1.1.
struct KeptAlive {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for KeptAlive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl KeptAlive {
    fn open(port: u16, ca: &str, cert: &str, key: &str) -> KeptAlive {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-servername",
                "localhost",
                "-CAfile",
                ca,
                "-verify_return_error",
            ])
            .args(["-cert", cert, "-key", key, "-quiet", "-ign_eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        KeptAlive {
            child,
            stdin,
            stdout,
        }
    }

    /// Sends one request; returns its answer, or `None` when the connection ended first.
    fn exchange(&mut self, request: &str) -> Option<HttpAnswer> {
        self.stdin.write_all(request.as_bytes()).ok()?;
        self.stdin.flush().ok()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.stdout.read_line(&mut h).ok()? == 0 {
                return None;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':')?;
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        self.stdout.read_exact(&mut body).ok()?;
        Some((status, headers, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Whether the server closed the connection (EOF on the next read).
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut byte = [0u8; 1];
        while std::time::Instant::now() < deadline {
            match self.stdout.read(&mut byte) {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        false
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn ts0003_8_1_2_5_revocation_reaches_a_running_cse() {
    let mef = Mef::start();
    let d = mef.dir.path();
    let csr = make_csr(d, "dev1", DEV1, Some(PASSWORD), false);
    let issued = mef.enrol("simpleenroll", "factory/boot", &csr);
    assert_eq!(issued.status, 200, "{}", issued.text());
    certificates_of(d, "dev1", &issued);
    let (_, serial) = san_and_serial(&mef.file("dev1.pem"));

    // A CSE trusting the MEF CA, fetching its CRL every second.
    issue_certificates(d, &[("cse", "//bastion.example/id-in")]);
    let config = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"certificate\"]\n\
         certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
         credentials-key-file = \"{}\"\ncrl-url = \"http://127.0.0.1:{}/crl\"\n\
         crl-refresh-seconds = 1\n",
        mef.file("cse.pem"),
        mef.file("cse.key"),
        mef.file("ca.pem"),
        mef.file("store.key"),
        mef.crl_port,
    );
    let cse = Server::start_with_config(&config);
    let cse_tls = tls_port(&cse);
    assert!(cse.log().contains("CRL fetched"), "{}", cse.log());

    // The enrolled device registers over a kept-alive certificate association.
    let mut device = KeptAlive::open(
        cse_tls,
        &mef.file("ca.pem"),
        &mef.file("dev1.pem"),
        &mef.file("dev1.key"),
    );
    let body = r#"{"m2m:ae": {"rn": "dev1", "api": "Ndev1", "rr": false, "srv": ["3"]}}"#;
    let create = format!(
        "POST /cse-in HTTP/1.1\r\nHost: localhost\r\nX-M2M-Origin: Cdev1\r\nX-M2M-RI: r1\r\n\
         X-M2M-RVI: 3\r\nAccept: application/json\r\nContent-Type: application/json;ty=2\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, headers, _) = device.exchange(&create).expect("first answer");
    assert_eq!((status, header(&headers, "x-m2m-rsc")), (201, Some("2001")));

    // The operator revokes the certificate at the MEF.
    let revoked = ok(&bastion(&[
        "est",
        "revoke",
        "--state-dir",
        &mef.file("state"),
        "--ca-cert",
        &mef.file("ca.pem"),
        "--ca-key",
        &mef.file("ca.key"),
        "--serial",
        &format!("serial={serial}"),
    ]));
    assert_eq!(
        revoked,
        format!(
            "revoked {} {DEV1}; CRL number 2\n",
            serial.to_ascii_lowercase()
        )
    );
    // Within the fetch interval the CSE has the new CRL and has reloaded it.
    assert!(
        holds_within(Duration::from_secs(10), Duration::from_millis(100), || {
            cse.log().contains("newer CRL fetched number=2")
                && cse.log().matches("CRLs reloaded").count() >= 1
        }),
        "{}",
        cse.log()
    );
    std::thread::sleep(Duration::from_millis(1500));

    // The open association's next request is refused, and the connection closed.
    let get = "GET /cse-in/dev1 HTTP/1.1\r\nHost: localhost\r\nX-M2M-Origin: Cdev1\r\n\
               X-M2M-RI: r2\r\nX-M2M-RVI: 3\r\nAccept: application/json\r\n\r\n";
    let (status, headers, body) = device.exchange(get).expect("second answer");
    assert_eq!(
        (
            status,
            header(&headers, "x-m2m-rsc"),
            header(&headers, "connection")
        ),
        (403, Some("4107"), Some("close")),
        "{body}"
    );
    assert!(device.closed_within(Duration::from_secs(5)));

    // A new handshake with the revoked certificate fails: curl gets no HTTP answer.
    let out = run(
        "curl",
        &[
            "-sS",
            "--cacert",
            &mef.file("ca.pem"),
            "--cert",
            &mef.file("dev1.pem"),
            "--key",
            &mef.file("dev1.key"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://localhost:{cse_tls}/cse-in"),
            "-H",
            "X-M2M-Origin: Cdev1",
            "-H",
            "X-M2M-RI: r3",
            "-H",
            "X-M2M-RVI: 3",
        ],
    );
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");
    assert!(cse.log_shows("TLS handshake refused", Duration::from_secs(5)));
    // And the MEF refuses to renew it.
    let renew = make_csr(d, "dev1-next", DEV1, None, false);
    let refused = mef.enrol("simplereenroll", "dev1", &renew);
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (403, "the association's certificate is revoked\n")
    );
}

#[test]
fn crl_url_that_gives_no_valid_crl_stops_the_cse_from_starting() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    ca_and_certificates(d, &[("cse", "//bastion.example/id-in")]);
    write_key_file(&d.join("store.key"), STORE_KEY);
    // Nothing listens on this port (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = d.join("cse.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"certificate\"]\n\
             certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
             credentials-key-file = \"{}\"\ncrl-url = \"http://127.0.0.1:{port}/crl\"\n",
            path(d, "cse.pem"),
            path(d, "cse.key"),
            path(d, "ca.pem"),
            path(d, "store.key"),
        ),
    )
    .expect("config");
    let out = bastion(&[
        "serve",
        "--config",
        &config.to_string_lossy(),
        "--data-dir",
        &path(d, "data"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "bastion: error: tls: crl-url http://127.0.0.1:{port}/crl: cannot fetch the CRL: "
        )) && stderr
            .trim_end()
            .ends_with("; no CRL fetched before, so the listener cannot check revocation"),
        "{stderr}"
    );
}
