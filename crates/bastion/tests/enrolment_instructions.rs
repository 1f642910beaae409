//! `bastion enrol` carrying out the MEF's instructions (TS-0003 8.3.2.1 step 2, 8.3.6,
//! 8.8.2.3), end to end with four real processes: `bastion mef` (with certificate
//! enrolment mounted on its listener, `[mef.est]`), `bastion maf` taking its clients' Km
//! from that MEF (`--mef-url`, SUID 21), `bastion serve` trusting the MAF
//! (`[provisioning] maf-*`) and the MEF's CA (certificate framework), and the device: the
//! binary's own `bastion enrol`, `bastion maf-client` and `bastion req`. Issued
//! certificates are checked with `openssl verify` and `openssl x509`, a client the
//! project did not write.

use crate::common;

use common::acme::free_port;
use common::enrolment::{
    assert_enrolled_certificate, mef_tool, mode, openssl, printed_body, read, start_mef, stderr,
    stdout, write_secret, Watched,
};
use common::provision::{
    add_psk_credential, issue_certificates, make_ca, printed_rsc, psk_req, s_client, Store,
};
use common::{bastion, ok, path, write_key_file, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const STORE_KEY: &str = "5e1e2d3c4b5a69788796a5b4c3d2e1f05a1e2d3c4b5a69788796a5b4c3d2e1f0";
const MEF_FQDN: &str = "mef.example.com";
const MAF_FQDN: &str = "maf.example.com";
const ADMIN_FQDN: &str = "admin.bastion.example";
/// The MAF's PSK toward the MEF, bound there to the identity the MAF target's fetcher
/// names.
const MAF_MEF_PSK: (&str, &str, &str) = (
    "maf@mef.example.com",
    "6a0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5",
    "/id-maf",
);
/// The CSE's Km with the MAF (its own MAF credential), bound to its CSE-ID.
const CSE_MAF_PSK: (&str, &str) = (
    "cse-in@maf.example.com",
    "c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0",
);
/// Factory keys: a device instructed to enrol with the MAF, one instructed to enrol a
/// certificate, one the operator revokes.
const MAF_DEV: (&str, &str) = (
    "mafdev@factory.example.com",
    "11aa22bb33cc44dd55ee66ff77008899aabbccddeeff00112233445566778899",
);
const CERT_DEV: (&str, &str) = (
    "certdev@factory.example.com",
    "2233445566778899aabbccddeeff001122334455667788990011223344556677",
);
const GONE_DEV: (&str, &str) = (
    "gonedev@factory.example.com",
    "33445566778899aabbccddeeff00112233445566778899001122334455667788",
);
const FAIL_DEV: (&str, &str) = (
    "faildev@factory.example.com",
    "445566778899aabbccddeeff0011223344556677889900112233445566778899",
);
/// The identity of a device that enrols with its device certificate (8.3.2.2).
const DEVICE_ID: &str = "//bastion.example/id-in/Cdevcert";
/// The identity the MEF's CA certifies for CERT_DEV's enrolee ID `Ccertdev`.
const CERTIFIED: &str = "//bastion.example/id-in/Ccertdev";

/// The MEF, the MAF, the CSE and their files.
struct Site {
    files: tempfile::TempDir,
    mef: Watched,
    maf: Watched,
    _cse: Server,
    mef_port: u16,
    maf_port: u16,
    cse_port: u16,
}

impl Site {
    fn start() -> Site {
        let files = tempfile::tempdir().expect("files");
        let dir = files.path();
        let key_file = path(dir, "store.key");
        write_key_file(&dir.join("store.key"), STORE_KEY);
        // The MEF's CA (it issues the enrolees' certificates), which also certifies the
        // CSE's server certificate, so an enrolled device trusts the CSE with ca.pem.
        let ca_dir = dir.join("mefca");
        std::fs::create_dir(&ca_dir).expect("ca dir");
        make_ca(&ca_dir, "MEF CA", &[]);
        issue_certificates(
            &ca_dir,
            &[
                ("cse", "//bastion.example/id-in"),
                ("mef", "//mef.example.com/id-mef"),
                ("device", DEVICE_ID),
            ],
        );

        std::fs::create_dir(dir.join("mef")).expect("mef dir");
        let mef_store = path(dir, "mef/credentials.store");
        for (id, key) in [MAF_DEV, CERT_DEV, GONE_DEV, FAIL_DEV] {
            let file = dir.join(format!("{id}.kpm"));
            write_secret(&file, key);
            add_psk_credential(
                Store::File(&mef_store),
                &key_file,
                id,
                &file.to_string_lossy(),
                &[],
            );
        }
        write_secret(&dir.join("maf-mef.psk"), MAF_MEF_PSK.1);
        add_psk_credential(
            Store::File(&mef_store),
            &key_file,
            MAF_MEF_PSK.0,
            &path(dir, "maf-mef.psk"),
            &["--cse-id", MAF_MEF_PSK.2],
        );
        let (mef_port, maf_port, cse_port) = (free_port(), free_port(), free_port());
        // Nothing listens there: the MAF of FAIL_DEV's instruction is unreachable.
        let dead_port = free_port();
        let config = format!(
            r#"
[mef]
fqdn = "{MEF_FQDN}"
listen = "127.0.0.1:{mef_port}"
data-dir = "{data}"
cert = "{ca}/mef.pem"
key = "{ca}/mef.key"
ca = ["{ca}/ca.pem"]

[mef.est]
ca-cert = "{ca}/ca.pem"
ca-key = "{ca}/ca.key"
sp-fqdn = "bastion.example"
validity-days = 10

[[mef.target]]
name = "cse"
id = "/id-in"
uri = "https://127.0.0.1:{cse_port}/cse-in"
suid = 22

[[mef.target]]
name = "maf"
id = "{MAF_FQDN}"
uri = "https://127.0.0.1:{maf_port}"
suid = 21
fetcher = "{fetcher}"

[[mef.enrolee]]
kpm-id = "{maf_dev}"
enrolee-id = "Cmafdev"
targets = ["cse", "maf"]
lifetime-seconds = 3600
[[mef.enrolee.instruction]]
kind = "maf-enrolment"
uri = "https://127.0.0.1:{maf_port}"
credential-type = 1

[[mef.enrolee]]
kpm-id = "{cert_dev}"
enrolee-id = "Ccertdev"
targets = ["cse"]
lifetime-seconds = 3600
[[mef.enrolee.instruction]]
kind = "certificate-enrolment"
uri = "https://127.0.0.1:{mef_port}/.well-known/est"

[[mef.enrolee]]
certificate = "{DEVICE_ID}"
enrolee-id = "Cdevcert"
targets = ["cse"]
lifetime-seconds = 3600
[[mef.enrolee.instruction]]
kind = "certificate-enrolment"
uri = "https://127.0.0.1:{mef_port}/.well-known/est"

[[mef.enrolee]]
kpm-id = "{gone_dev}"
enrolee-id = "Cgonedev"
targets = ["cse", "maf"]
lifetime-seconds = 3600

[[mef.enrolee]]
kpm-id = "{fail_dev}"
enrolee-id = "Cfaildev"
targets = ["cse", "maf"]
lifetime-seconds = 3600
[[mef.enrolee.instruction]]
kind = "maf-enrolment"
uri = "https://127.0.0.1:{dead_port}"
"#,
            fail_dev = FAIL_DEV.0,
            data = path(dir, "mef"),
            ca = ca_dir.display(),
            fetcher = MAF_MEF_PSK.2,
            maf_dev = MAF_DEV.0,
            cert_dev = CERT_DEV.0,
            gone_dev = GONE_DEV.0,
        );
        std::fs::write(dir.join("mef.toml"), config).expect("mef.toml");
        let mef = start_mef(dir);

        // The MAF: its own clients (the CSE) in its store, enrolees' Km from the MEF.
        let maf_store = path(dir, "maf.store");
        write_secret(&dir.join("cse-maf.psk"), CSE_MAF_PSK.1);
        add_psk_credential(
            Store::File(&maf_store),
            &key_file,
            CSE_MAF_PSK.0,
            &path(dir, "cse-maf.psk"),
            &["--cse-id", "/id-in"],
        );
        let maf = Watched::spawn(
            &[
                "maf",
                "--tls-listen",
                &format!("127.0.0.1:{maf_port}"),
                "--fqdn",
                MAF_FQDN,
                "--sp-id",
                "bastion.example",
                "--credentials-store",
                &maf_store,
                "--credentials-key-file",
                &key_file,
                "--state",
                &path(dir, "maf.state"),
                "--mef-url",
                &format!("https://127.0.0.1:{mef_port}"),
                "--mef-fqdn",
                MEF_FQDN,
                "--mef-origin",
                MAF_MEF_PSK.2,
                "--mef-psk-id",
                MAF_MEF_PSK.0,
                "--mef-psk-file",
                &path(dir, "maf-mef.psk"),
            ],
            "bastion maf",
        );

        let cse = Server::start_with_config(&format!(
            r#"
[tls]
listen = "127.0.0.1:{cse_port}"
frameworks = ["psk", "certificate"]
require-client-certificate = false
certificate-file = "{ca}/cse.pem"
key-file = "{ca}/cse.key"
trust-anchor-files = ["{ca}/ca.pem"]
credentials-store = "{cse_store}"
credentials-key-file = "{key_file}"

[provisioning]
maf-url = "https://127.0.0.1:{maf_port}"
maf-fqdn = "{MAF_FQDN}"
maf-psk-id = "{maf_psk_id}"
maf-psk-file = "{maf_psk}"
"#,
            ca = ca_dir.display(),
            cse_store = path(dir, "cse.store"),
            maf_psk_id = CSE_MAF_PSK.0,
            maf_psk = path(dir, "cse-maf.psk"),
        ));
        Site {
            files,
            mef,
            maf,
            _cse: cse,
            mef_port,
            maf_port,
            cse_port,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn maf_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.maf_port)
    }

    fn cse_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.cse_port)
    }

    /// `bastion enrol --enrol-only` with the factory key of `device`, then `extra`.
    fn enrol(&self, (kpm_id, _): (&str, &str), dir: &Path, extra: &[&str]) -> Output {
        let kpm_file = path(self.files.path(), &format!("{kpm_id}.kpm"));
        let mef_url = format!("https://127.0.0.1:{}", self.mef_port);
        let mut args = vec![
            "enrol",
            "--mef-url",
            &mef_url,
            "--mef-fqdn",
            MEF_FQDN,
            "--kpm-id",
            kpm_id,
            "--kpm-file",
            &kpm_file,
            "--dir",
            dir.to_str().expect("utf-8"),
            "--enrol-only",
        ];
        args.extend_from_slice(extra);
        bastion(&args)
    }

    /// `bastion maf-client SUBCOMMAND` as `from` with the Km files of `creds`.
    fn maf_client(&self, creds: &Path, from: &str, subcommand: &str, args: &[&str]) -> Output {
        let km_id = read(creds, "km-id");
        let url = self.maf_url();
        let km = path(creds, "km.hex");
        let mut all = vec![
            "maf-client",
            subcommand,
            "--url",
            &url,
            "--maf-fqdn",
            MAF_FQDN,
            "--from",
            from,
            "--psk-id",
            &km_id,
            "--psk-file",
            &km,
        ];
        all.extend_from_slice(args);
        bastion(&all)
    }

    /// `bastion mef ARGS --config … --key-file …`.
    fn mef_tool(&self, args: &[&str]) -> Output {
        mef_tool(self.files.path(), args)
    }
}

/// The value of the `name: value` line `bastion maf-client` printed.
fn printed(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .to_owned()
}

fn ae_body(name: &str) -> String {
    format!(r#"{{"m2m:ae":{{"rn":"{name}","api":"N{name}","rr":false,"srv":["3"]}}}}"#)
}

#[test]
fn ts0003_8_8_2_3_enrolled_with_only_kpm_a_device_is_instructed_to_the_maf_and_writes_data_through_it(
) {
    let site = Site::start();
    let creds = site.file("mafdev");
    let out = site.enrol(
        MAF_DEV,
        &creds,
        &["--accept", "maf-enrolment", "--maf-admin-fqdn", ADMIN_FQDN],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed_out = stdout(&out);
    let lines: Vec<&str> = printed_out.lines().collect();
    assert_eq!(lines.len(), 4, "{printed_out}");
    assert_eq!(
        lines[2],
        format!("instruction 1: MAF enrolment ({}): ok", site.maf_url())
    );
    assert!(
        lines[3].starts_with("MAF: registered ")
            && lines[3].ends_with(" as Cmafdev at maf.example.com"),
        "{printed_out}"
    );
    // Km is named by the KeID (the MAF got it from the MEF under that identity).
    let ke_id = read(&creds, "key-id");
    assert_eq!(read(&creds, "km-id"), ke_id);
    assert_eq!(read(&creds, "maf-id"), MAF_FQDN);
    assert!(!read(&creds, "maf-reg-id").is_empty());
    for name in [
        "km-id",
        "km.hex",
        "maf-id",
        "maf-uri",
        "maf-reg-id",
        "ke.hex",
    ] {
        assert_eq!(mode(&creds.join(name)), 0o600, "{name}");
    }
    // Both ends derived the same Km: the device's file equals Km derived from its Ke.
    let km = read(&creds, "km.hex");
    assert_eq!(km.len(), 64);
    assert!(!printed_out.contains(&km), "a key was printed");
    let derived = ok(&bastion(&[
        "keys",
        "derive",
        "km",
        "--ke-file",
        &path(&creds, "ke.hex"),
        "--maf-id",
        MAF_FQDN,
    ]));
    assert_eq!(derived.trim(), km);
    // ... and the MAF accepted a handshake keyed with it, fetched as SUID 21.
    let maf_log = site.maf.log();
    assert!(maf_log.contains("MEF-provisioned key fetched"), "{maf_log}");
    let mef_log = site.mef.log();
    assert!(
        mef_log.contains("fetcher=\"/id-maf\"") || mef_log.contains("fetcher=/id-maf"),
        "{mef_log}"
    );
    assert!(mef_log.contains("suid=21"), "{mef_log}");
    assert!(
        !mef_log.contains(&km) && !maf_log.contains(&km),
        "Km logged"
    );

    // With Km, the device registers a key for the CSE at the MAF ...
    let out = site.maf_client(
        &creds,
        "Cmafdev",
        "register-key",
        &[
            "--admin-fqdn",
            ADMIN_FQDN,
            "--target",
            "//bastion.example/id-in",
            "--key-out",
            &path(&creds, "kc.hex"),
        ],
    );
    let out = ok(&out);
    assert_eq!(printed(&out, "source"), "Cmafdev (ae)");
    let kc_id = printed(&out, "key-id");
    assert!(kc_id.ends_with("@maf.example.com"), "{kc_id}");
    // ... and talks to the CSE with it as KcID@MAF-FQDN.
    let kc = path(&creds, "kc.hex");
    let req = |args: &[&str]| psk_req(&site.cse_url(), &kc_id, &kc, args);
    let ae = req(&[
        "--op",
        "create",
        "--to",
        "/cse-in",
        "--ty",
        "2",
        "--from",
        "Cmafdev",
        "--body",
        &ae_body("mafdev"),
    ]);
    assert_eq!(printed_rsc(&ae), "2001", "{}", stderr(&ae));
    let cnt = req(&[
        "--op",
        "create",
        "--to",
        "/cse-in/mafdev",
        "--ty",
        "3",
        "--from",
        "Cmafdev",
        "--body",
        r#"{"m2m:cnt":{"rn":"data"}}"#,
    ]);
    assert_eq!(printed_rsc(&cnt), "2001", "{}", stderr(&cnt));
    let cin = req(&[
        "--op",
        "create",
        "--to",
        "/cse-in/mafdev/data",
        "--ty",
        "4",
        "--from",
        "Cmafdev",
        "--body",
        r#"{"m2m:cin":{"con":"19.25"}}"#,
    ]);
    assert_eq!(printed_rsc(&cin), "2001", "{}", stderr(&cin));
    let latest = req(&["--to", "/cse-in/mafdev/data/la", "--from", "Cmafdev"]);
    assert_eq!(printed_rsc(&latest), "2000", "{}", stderr(&latest));
    assert_eq!(printed_body(&latest)["m2m:cin"]["con"], "19.25");
    let spoof = req(&[
        "--op",
        "create",
        "--to",
        "/cse-in",
        "--ty",
        "2",
        "--from",
        "Cintruder",
        "--body",
        &ae_body("intruder"),
    ]);
    assert_eq!(printed_rsc(&spoof), "4106", "{}", stderr(&spoof));

    // The MAF bound the Km association to the enrolee ID the MEF answered.
    let other = site.maf_client(&creds, "Cother", "register", &["--admin-fqdn", ADMIN_FQDN]);
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("MAF answered 4106"),
        "{}",
        stderr(&other)
    );

    // The MEF recorded one enrolment, once.
    let listed = ok(&site.mef_tool(&["list"]));
    assert!(
        listed.starts_with(&format!("{ke_id}\tCmafdev\t")),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

#[test]
fn ts0003_8_3_6_a_kpm_device_is_instructed_to_enrol_a_certificate_at_the_mef_then_uses_it() {
    let site = Site::start();
    let creds = site.file("certdev");
    let out = site.enrol(
        CERT_DEV,
        &creds,
        &["--accept", "certificate-enrolment,maf-enrolment"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[2],
        format!(
            "instruction 1: certificate enrolment (https://127.0.0.1:{}/.well-known/est): ok",
            site.mef_port
        )
    );
    assert_eq!(lines[3], format!("certificate: {CERTIFIED}"));
    assert_enrolled_certificate(
        &creds,
        &path(&site.file("mefca"), "ca.pem"),
        "onem2m://bastion.example/id-in/Ccertdev",
    );
    let cert = path(&creds, "cert.pem");
    // The MEF's ledger holds it.
    let est_ledger = std::fs::read_to_string(site.file("mef/est/ledger.json")).expect("ledger");
    assert!(est_ledger.contains(CERTIFIED), "{est_ledger}");

    // The device registers at the CSE over mutual TLS with the new certificate.
    let ae = bastion(&[
        "req",
        "--url",
        &site.cse_url(),
        "--cert",
        &cert,
        "--key",
        &path(&creds, "key.pem"),
        "--ca",
        &path(&creds, "ca.pem"),
        "--server-name",
        "localhost",
        "--op",
        "create",
        "--to",
        "/cse-in",
        "--ty",
        "2",
        "--from",
        "Ccertdev",
        "--body",
        &ae_body("certdev"),
    ]);
    assert_eq!(printed_rsc(&ae), "2001", "{}", stderr(&ae));
    assert_eq!(printed_body(&ae)["m2m:ae"]["aei"], "Ccertdev");
}

#[test]
fn a_failed_instruction_is_reported_and_fails_the_command_with_nothing_written() {
    let site = Site::start();
    let creds = site.file("faildev");
    let out = site.enrol(FAIL_DEV, &creds, &["--accept", "maf-enrolment"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("instruction 1 (MAF enrolment at https://127.0.0.1:")
            && err.contains(") failed: the MAF handshake with Km: "),
        "{err}"
    );
    assert!(
        !creds.exists(),
        "credentials written after a failed instruction"
    );
    // The MEF took the final message reporting the failure (ok: false) and closed.
    let mef_log = site.mef.log();
    let enrolled = mef_log
        .lines()
        .find(|l| l.contains(" enrolled") && l.contains("Cfaildev"))
        .unwrap_or_else(|| panic!("no enrolment logged: {mef_log}"));
    assert!(enrolled.contains("instructions_failed=1"), "{enrolled}");
}

#[test]
fn ts0003_8_3_2_1_a_revoked_enrolee_cannot_open_a_km_association_with_the_maf() {
    let site = Site::start();
    let creds = site.file("gonedev");
    // Enrolled (the MAF is one of its targets), but no MAF enrolment offered.
    let out = site.enrol(GONE_DEV, &creds, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let km = ok(&bastion(&[
        "keys",
        "derive",
        "km",
        "--ke-file",
        &path(&creds, "ke.hex"),
        "--maf-id",
        MAF_FQDN,
    ]));
    write_secret(&creds.join("km.hex"), km.trim());
    write_secret(&creds.join("km-id"), &read(&creds, "key-id"));

    let revoked = ok(&site.mef_tool(&["revoke", "Cgonedev"]));
    assert!(revoked.starts_with("revoked Cgonedev"), "{revoked}");
    let refused = site.maf_client(
        &creds,
        "Cgonedev",
        "register",
        &["--admin-fqdn", ADMIN_FQDN],
    );
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("MAF unreachable: TLS handshake failed"),
        "{}",
        stderr(&refused)
    );
    // The MAF asked the MEF, which refused the revoked enrolee's Km (4005).
    let maf_log = site.maf.log();
    assert!(
        maf_log.contains("MEF-provisioned key not fetched") && maf_log.contains("4005"),
        "{maf_log}"
    );
}

/// `GET` of an EST path on the MEF's listener over a Kpm association (`openssl s_client`).
fn est_get(site: &Site, device: (&str, &str), operation: &str) -> String {
    s_client(
        site.mef_port,
        device,
        &format!(
            "GET /.well-known/est/{operation} HTTP/1.1\r\nHost: localhost\r\n\
             Connection: close\r\n\r\n"
        ),
    )
}

#[test]
fn ts0003_8_3_6_est_on_the_mef_certifies_the_enrolee_id_only_and_not_a_revoked_enrolee() {
    let site = Site::start();
    let dir = site.files.path();
    // Certificate-less TLS (RFC 7030 3.3.3): the Kpm association is the authentication.
    let cacerts = est_get(&site, GONE_DEV, "cacerts");
    assert!(cacerts.starts_with("HTTP/1.1 200 "), "{cacerts}");
    // A CSR asking for another identity than the enrolee ID's is refused.
    let csr = openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path(dir, "other.key"),
        "-subj",
        "/CN=other",
        "-addext",
        "subjectAltName=URI:onem2m://bastion.example/id-in/Cother",
        "-outform",
        "DER",
        "-out",
        &path(dir, "other.csr"),
    ]);
    assert!(csr.status.success(), "{}", stderr(&csr));
    let der = std::fs::read(dir.join("other.csr")).expect("csr");
    let body = openssl_base64(&der);
    let refused = s_client(
        site.mef_port,
        GONE_DEV,
        &format!(
            "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/pkcs10\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(refused.starts_with("HTTP/1.1 403 "), "{refused}");
    assert!(
        refused.contains(
            "the CSR asks for //bastion.example/id-in/Cother; this enrolee may be certified \
             as //bastion.example/id-in/Cgonedev only"
        ),
        "{refused}"
    );
    // Revoked at the MEF: no EST either.
    ok(&site.mef_tool(&["revoke", "Cgonedev"]));
    let after = est_get(&site, GONE_DEV, "cacerts");
    assert!(after.starts_with("HTTP/1.1 403 "), "{after}");
    assert!(after.ends_with("the enrolee is revoked\n"), "{after}");
}

/// `der` in base64 lines, as `openssl base64` writes it.
fn openssl_base64(der: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["base64", "-e"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), der).expect("write");
    let out = child.wait_with_output().expect("openssl base64");
    String::from_utf8(out.stdout).expect("base64")
}

#[test]
fn ts0003_8_3_6_a_device_certificate_enrolee_gets_its_operational_certificate_by_instruction() {
    let site = Site::start();
    let ca = site.file("mefca");
    let creds = site.file("devcert");
    let mef_url = format!("https://127.0.0.1:{}", site.mef_port);
    let out = bastion(&[
        "enrol",
        "--mef-url",
        &mef_url,
        "--mef-fqdn",
        MEF_FQDN,
        "--mef-server-name",
        "localhost",
        "--cert",
        &path(&ca, "device.pem"),
        "--key",
        &path(&ca, "device.key"),
        "--ca",
        &path(&ca, "ca.pem"),
        "--dir",
        creds.to_str().expect("utf-8"),
        "--enrol-only",
        "--accept",
        "certificate-enrolment",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("certificate: //bastion.example/id-in/Cdevcert\n"),
        "{}",
        stdout(&out)
    );
    let cert = path(&creds, "cert.pem");
    let verified = openssl(&["verify", "-CAfile", &path(&ca, "ca.pem"), &cert]);
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        format!("{cert}: OK")
    );
    // A new key pair, not the factory one.
    let new_key = openssl(&["x509", "-in", &cert, "-noout", "-pubkey"]);
    let factory = openssl(&["x509", "-in", &path(&ca, "device.pem"), "-noout", "-pubkey"]);
    assert!(!new_key.stdout.is_empty());
    assert_ne!(new_key.stdout, factory.stdout);
}
