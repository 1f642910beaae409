//! Remote security provisioning end to end (TS-0003 8.3.2.1, 8.3.2.2; issue 15): three
//! real processes, `bastion mef`, `bastion serve` with `[provisioning]`, and the device,
//! `bastion enrol`. A device holding only its factory key (or only its certificate)
//! enrols, registers its AE over TLS-PSK with the key the MEF provisioned for the CSE and
//! writes data; a wrong Kpm, an expired enrolment, a revoked enrolee and a replayed
//! exchange each fail with a clear error and nothing provisioned. The replay is sent by
//! `openssl s_client`, a client the project did not write. The same enrolment runs with
//! Ke kept in key stores at both ends (`[mef] key-store`, `bastion enrol --key-store`):
//! a real SoftHSM2 token (`scripts/softhsm-env`; under `CI=true` a missing SoftHSM2
//! fails) and the encrypted file store.

use crate::common;

use common::enrolment::{
    bastion_with, mef_tool_with, printed_body, read, start_mef_with, stderr, stdout, write_secret,
    Watched,
};
use common::provision::{
    add_psk_credential, issue_certificates, make_ca, printed_rsc, psk_req, s_client, Store,
};
use common::softhsm::{softhsm, SoftHsm};
use common::{bastion, path, write_key_file, Server};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const STORE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f05a1e2d3c4b5a69788796a5b4c3d2e1f0";
const MEF_FQDN: &str = "mef.example.com";
/// The CSE's PSK toward the MEF, bound there to its CSE-ID.
const CSE_PSK_ID: &str = "cse-in@mef.example.com";
const CSE_PSK: &str = "7c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5";
/// Factory keys (KpmID, Kpm) of the devices the MEF knows.
const DEV1: (&str, &str) = (
    "dev1@factory.example.com",
    "11aa22bb33cc44dd55ee66ff77008899aabbccddeeff00112233445566778899",
);
const SHORT: (&str, &str) = (
    "short@factory.example.com",
    "2233445566778899aabbccddeeff001122334455667788990011223344556677",
);
const REVOKED: (&str, &str) = (
    "gone@factory.example.com",
    "33445566778899aabbccddeeff00112233445566778899001122334455667788",
);
const REPLAY: (&str, &str) = (
    "again@factory.example.com",
    "445566778899aabbccddeeff0011223344556677889900112233445566778899",
);
/// The identity the device certificate names.
const DEVICE2_ID: &str = "//bastion.example/id-in/Cdevice2";

/// An MEF, a CSE that trusts it, and the files of both.
struct Site {
    files: tempfile::TempDir,
    mef: Watched,
    cse: Server,
    cse_tls_port: u16,
    keys: KeyStoreAt,
}

/// Where the MEF keeps Ke: its `key-store` setting and what opening it needs.
#[derive(Clone, Default)]
struct KeyStoreAt {
    /// `[mef] key-store`; none: Ke sealed in the enrolment records.
    spec: Option<String>,
    /// Environment of every process opening it (a token's configuration and PIN).
    env: Vec<(&'static str, String)>,
}

impl KeyStoreAt {
    fn token(token: &SoftHsm) -> KeyStoreAt {
        KeyStoreAt {
            spec: Some(token.spec()),
            env: token.env().to_vec(),
        }
    }
}

impl Site {
    fn start() -> Site {
        Site::start_with(KeyStoreAt::default())
    }

    fn start_with(keys: KeyStoreAt) -> Site {
        let files = tempfile::tempdir().expect("files");
        let dir = files.path();
        write_key_file(&dir.join("store.key"), STORE_KEY);
        std::fs::create_dir(dir.join("mef")).expect("mef dir");
        let store = path(dir, "mef/credentials.store");
        let key_file = path(dir, "store.key");
        for (id, key) in [DEV1, SHORT, REVOKED, REPLAY] {
            let file = dir.join(format!("{id}.kpm"));
            write_secret(&file, key);
            add_psk_credential(
                Store::File(&store),
                &key_file,
                id,
                &file.to_string_lossy(),
                &[],
            );
        }
        write_secret(&dir.join("cse-mef.psk"), CSE_PSK);
        add_psk_credential(
            Store::File(&store),
            &key_file,
            CSE_PSK_ID,
            &path(dir, "cse-mef.psk"),
            &["--cse-id", "/id-in"],
        );
        make_ca(dir, "Factory CA", &[]);
        issue_certificates(
            dir,
            &[("mef", "//mef.example.com/id-mef"), ("device2", DEVICE2_ID)],
        );

        let cse_tls_port = common::acme::free_port();
        let key_store = match &keys.spec {
            Some(spec) => format!("key-store = \"{spec}\""),
            None => String::new(),
        };
        let config = format!(
            r#"
[mef]
fqdn = "{MEF_FQDN}"
listen = "127.0.0.1:0"
data-dir = "{data}"
{key_store}
cert = "{dir}/mef.pem"
key = "{dir}/mef.key"
ca = ["{dir}/ca.pem"]

[[mef.target]]
name = "cse"
id = "/id-in"
uri = "https://127.0.0.1:{cse_tls_port}/cse-in"
suid = 22

[[mef.enrolee]]
kpm-id = "{dev1}"
enrolee-id = "Csensor1"
targets = ["cse"]
lifetime-seconds = 3600

[[mef.enrolee]]
kpm-id = "{short}"
enrolee-id = "Cshort"
targets = ["cse"]
lifetime-seconds = 2

[[mef.enrolee]]
kpm-id = "{revoked}"
enrolee-id = "Cgone"
targets = ["cse"]
lifetime-seconds = 3600

[[mef.enrolee]]
kpm-id = "{replay}"
enrolee-id = "Cagain"
targets = ["cse"]
lifetime-seconds = 3600

[[mef.enrolee]]
certificate = "{DEVICE2_ID}"
enrolee-id = "Cdevice2"
targets = ["cse"]
lifetime-seconds = 3600
"#,
            data = path(dir, "mef"),
            dir = dir.display(),
            dev1 = DEV1.0,
            short = SHORT.0,
            revoked = REVOKED.0,
            replay = REPLAY.0,
        );
        std::fs::write(dir.join("mef.toml"), config).expect("mef.toml");
        let mef = start_mef_with(dir, &keys.env);
        let cse = Server::start_with_config(&format!(
            r#"
[tls]
listen = "127.0.0.1:{cse_tls_port}"
frameworks = ["psk"]
credentials-key-file = "{key_file}"

[provisioning]
mef-url = "https://127.0.0.1:{mef_port}"
mef-fqdn = "{MEF_FQDN}"
mef-psk-id = "{CSE_PSK_ID}"
mef-psk-file = "{psk}"
mef-timeout-ms = 5000
"#,
            mef_port = mef.port,
            psk = path(dir, "cse-mef.psk"),
        ));
        Site {
            files,
            mef,
            cse,
            cse_tls_port,
            keys,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn mef_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.mef.port)
    }

    /// `bastion enrol` with a factory key from its file, and `extra`.
    fn enrol_kpm(
        &self,
        (kpm_id, _): (&str, &str),
        kpm_file: &Path,
        dir: &str,
        extra: &[&str],
    ) -> Output {
        let mut args = vec![
            "enrol",
            "--mef-url",
            &self.mef_url_string(),
            "--mef-fqdn",
            MEF_FQDN,
            "--kpm-id",
            kpm_id,
            "--kpm-file",
            kpm_file.to_str().expect("utf-8"),
            "--dir",
            dir,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        bastion_with(&refs, &self.keys.env)
    }

    fn mef_url_string(&self) -> String {
        self.mef_url()
    }

    fn kpm_file(&self, (kpm_id, _): (&str, &str)) -> PathBuf {
        self.file(&format!("{kpm_id}.kpm"))
    }

    /// `bastion mef ARGS --config … --key-file …`'s output.
    fn mef_tool(&self, args: &[&str]) -> Output {
        mef_tool_with(self.files.path(), args, &self.keys.env)
    }

    /// The MEF's enrolments as `bastion mef list` prints them.
    fn enrolments(&self) -> String {
        let out = self.mef_tool(&["list"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// `GET /fetchCredentials/<KeID>/22` as the CSE (its own PSK toward the MEF), with
    /// `bastion req`.
    fn fetch_as_cse(&self, ke_id: &str) -> Output {
        let to = format!("/fetchCredentials/{ke_id}/22");
        psk_req(
            &self.mef_url(),
            CSE_PSK_ID,
            &path(self.files.path(), "cse-mef.psk"),
            &["--from", "/id-in", "--op", "retrieve", "--to", &to],
        )
    }

    /// A request to the CSE inside a TLS-PSK association with the provisioned key.
    fn as_device(&self, creds: &Path, from: &str, args: &[&str]) -> Output {
        let ke_id = read(creds, "key-id");
        let mut all = vec!["--from", from];
        all.extend_from_slice(args);
        psk_req(
            &format!("https://127.0.0.1:{}", self.cse_tls_port),
            &ke_id,
            &path(creds, "kuc.hex"),
            &all,
        )
    }
}

/// The latest contentInstance of `enrolee`'s container `temp`, retrieved inside the
/// provisioned association, is `con`.
fn assert_latest(site: &Site, creds: &Path, enrolee: &str, con: &str) {
    let to = format!("/cse-in/{enrolee}/temp/la");
    let latest = site.as_device(creds, enrolee, &["--op", "retrieve", "--to", &to]);
    assert_eq!(printed_rsc(&latest), "2000", "{latest:?}");
    assert_eq!(printed_body(&latest)["m2m:cin"]["con"], con);
}

fn assert_private_files(dir: &Path) {
    let mode = std::fs::metadata(dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", dir.display());
    for name in [
        "key-id",
        "ke.hex",
        "kuc.hex",
        "enrolee-id",
        "target-id",
        "cse-uri",
        "expires",
    ] {
        let mode = std::fs::metadata(dir.join(name))
            .expect(name)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

/// The device's key equals `bastion keys derive kuc` from the Ke it kept, and equals the
/// key the MEF releases to the CSE: both ends derive equal bytes.
fn assert_both_ends_derive_equal_bytes(site: &Site, creds: &Path) {
    let kuc = read(creds, "kuc.hex");
    assert_eq!(kuc.len(), 64);
    let derived = bastion(&[
        "keys",
        "derive",
        "kuc",
        "--ke-file",
        &path(creds, "ke.hex"),
        "--suid",
        "22",
        "--target-id",
        "/id-in",
    ]);
    assert!(derived.status.success(), "{derived:?}");
    assert_eq!(stdout(&derived).trim(), kuc);
    let fetched = site.fetch_as_cse(&read(creds, "key-id"));
    assert_eq!(printed_rsc(&fetched), "2000", "{fetched:?}");
    let cred = &printed_body(&fetched)["sec:cred"];
    assert_eq!(cred["key"], kuc.as_str());
    assert_eq!(cred["suid"], 22);
}

#[test]
fn a_device_with_only_kpm_enrols_registers_over_tls_psk_and_writes_data() {
    let site = Site::start();
    let creds = site.file("dev1");
    let out = site.enrol_kpm(
        DEV1,
        &site.kpm_file(DEV1),
        creds.to_str().unwrap(),
        &["--container", "temp", "--content", "21.5"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ke_id = read(&creds, "key-id");
    let (relative, fqdn) = ke_id.split_once('@').expect("KeID");
    assert_eq!((relative.len(), fqdn), (32, MEF_FQDN));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 4, "{printed}");
    assert!(lines[0].starts_with(&format!(
        "enrolled: key-id {ke_id} enrolee Csensor1 expires "
    )));
    assert_eq!(lines[2], "registered: AE Csensor1 as Csensor1 (2001)");
    assert_eq!(lines[3], "contentInstance: Csensor1/temp (2001)");
    assert!(
        !printed.contains(&read(&creds, "kuc.hex")),
        "a key was printed"
    );
    assert_eq!(read(&creds, "enrolee-id"), "Csensor1");
    assert_eq!(read(&creds, "target-id"), "/id-in");
    assert_eq!(
        read(&creds, "cse-uri"),
        format!("https://127.0.0.1:{}/cse-in", site.cse_tls_port)
    );
    assert_private_files(&creds);

    // The data is stored: retrieved inside the provisioned association.
    assert_latest(&site, &creds, "Csensor1", "21.5");
    // The association is bound to the enrolee ID the MEF answered.
    let other = site.as_device(
        &creds,
        "Cother",
        &["--op", "retrieve", "--to", "/cse-in/Csensor1/temp/la"],
    );
    assert_eq!(printed_rsc(&other), "4106", "{other:?}");

    assert_both_ends_derive_equal_bytes(&site, &creds);
    let listed = site.enrolments();
    assert_eq!(listed.lines().collect::<Vec<_>>().len(), 1, "{listed}");
    assert!(
        listed.starts_with(&format!("{ke_id}\tCsensor1\tkpm:{}\t", DEV1.0)),
        "{listed}"
    );
    assert!(listed.trim_end().ends_with("\tactive"), "{listed}");
    // The MEF's log names the enrolment and the release, never a key.
    let log = site.mef.log.lock().unwrap().clone();
    assert!(
        log.contains("enrolled") && log.contains("credential released"),
        "{log}"
    );
    assert!(!log.contains(&read(&creds, "kuc.hex")) && !log.contains(&read(&creds, "ke.hex")));
}

#[test]
fn a_device_with_a_certificate_enrols_and_writes_data() {
    let site = Site::start();
    let creds = site.file("device2");
    let out = bastion(&[
        "enrol",
        "--mef-url",
        &site.mef_url(),
        "--mef-fqdn",
        MEF_FQDN,
        "--mef-server-name",
        "localhost",
        "--cert",
        &path(site.files.path(), "device2.pem"),
        "--key",
        &path(site.files.path(), "device2.key"),
        "--ca",
        &path(site.files.path(), "ca.pem"),
        "--dir",
        creds.to_str().unwrap(),
        "--container",
        "temp",
        "--content",
        "19.0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(&creds, "enrolee-id"), "Cdevice2");
    let printed = stdout(&out);
    assert!(
        printed.contains("registered: AE Cdevice2 as Cdevice2 (2001)"),
        "{printed}"
    );
    assert!(
        printed.contains("contentInstance: Cdevice2/temp (2001)"),
        "{printed}"
    );
    assert_private_files(&creds);
    assert_latest(&site, &creds, "Cdevice2", "19.0");
    assert_both_ends_derive_equal_bytes(&site, &creds);
    assert!(site
        .enrolments()
        .contains(&format!("\tCdevice2\tcertificate:{DEVICE2_ID}\t")));
}

#[test]
fn a_wrong_kpm_fails_the_handshake_and_provisions_nothing() {
    let site = Site::start();
    let wrong = site.file("wrong.kpm");
    write_secret(&wrong, &"5a".repeat(32));
    let creds = site.file("dev1-wrong");
    let out = site.enrol_kpm(
        DEV1,
        &wrong,
        creds.to_str().unwrap(),
        &["--container", "temp", "--content", "1"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("bastion: error: enrolment with the MEF failed: TLS handshake failed: "),
        "{err}"
    );
    assert!(!creds.exists());
    assert_eq!(site.enrolments(), "");
}

#[test]
fn an_expired_enrolment_is_refused_by_the_mef_and_the_cse() {
    let site = Site::start();
    let creds = site.file("short");
    let out = site.enrol_kpm(
        SHORT,
        &site.kpm_file(SHORT),
        creds.to_str().unwrap(),
        &["--enrol-only"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    std::thread::sleep(Duration::from_millis(3100));
    let fetched = site.fetch_as_cse(&read(&creds, "key-id"));
    assert_eq!(printed_rsc(&fetched), "4107", "{fetched:?}");
    assert_eq!(printed_body(&fetched)["m2m:dbg"], "enrolment expired");

    let out = bastion(&[
        "enrol",
        "--register-only",
        "--dir",
        creds.to_str().unwrap(),
        "--container",
        "temp",
        "--content",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.starts_with("bastion: error: AE registration: the CSE did not accept the provisioned key (TLS handshake failed: "),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "the enrolment expires {}",
            read(&creds, "expires")
        )),
        "{err}"
    );
    assert!(
        site.cse.log_shows(
            "the MEF refused: 4107 enrolment expired",
            Duration::from_secs(5)
        ),
        "{}",
        site.cse.log()
    );
    // Nothing reached the CSE.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(site.cse.get("/cse-in/Cshort", common::ADMIN))
        .expect(4004);
}

#[test]
fn a_revoked_enrolee_cannot_enrol_and_its_enrolments_release_nothing() {
    let site = Site::start();
    // Enrolled first, then revoked: the key is no longer released.
    let before = site.file("gone-before");
    let out = site.enrol_kpm(
        REVOKED,
        &site.kpm_file(REVOKED),
        before.to_str().unwrap(),
        &["--enrol-only"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let revoke = site.mef_tool(&["revoke", "Cgone"]);
    assert!(revoke.status.success(), "{revoke:?}");
    assert_eq!(
        stdout(&revoke),
        "revoked Cgone: 1 enrolment(s); it cannot enrol again\n"
    );
    let fetched = site.fetch_as_cse(&read(&before, "key-id"));
    assert_eq!(printed_rsc(&fetched), "4005", "{fetched:?}");
    assert_eq!(
        printed_body(&fetched)["m2m:dbg"],
        "enrolee Cgone is revoked"
    );

    // And it cannot enrol again: nothing written, nothing recorded.
    let after = site.file("gone-after");
    let out = site.enrol_kpm(
        REVOKED,
        &site.kpm_file(REVOKED),
        after.to_str().unwrap(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "bastion: error: the MEF refused the enrolment: 4005 enrolee Cgone is revoked\n"
    );
    assert!(!after.exists());
    let listed = site.enrolments();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with(&format!("{}\tCgone\t", read(&before, "key-id"))));
    assert!(lines[0].ends_with("\trevoked"), "{listed}");
    assert_eq!(lines[1], "revoked-enrolee\tCgone");
}

fn exchange_message(origin: &str, ri: &str, body: &str) -> String {
    format!(
        "POST /enrolment HTTP/1.1\r\nHost: mef\r\nX-M2M-Origin: {origin}\r\nX-M2M-RI: {ri}\r\n\
         X-M2M-RVI: 3\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn rscs(answer: &str) -> Vec<String> {
    answer
        .lines()
        .filter_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-m2m-rsc: ")
                .map(|v| v.trim().to_owned())
        })
        .collect()
}

#[test]
fn a_replayed_exchange_is_refused_and_provisions_nothing() {
    let site = Site::start();
    let origin = format!("12-{}", REPLAY.0);
    let indications = r#"{"sec:enrInd":{}}"#;
    let fin = r#"{"sec:enrFin":{"res":[]}}"#;

    // The indications twice under one X-M2M-RI: the second is a replay, the exchange is
    // abandoned and the association closed, so the final after it is never taken.
    let answer = s_client(
        site.mef.port,
        REPLAY,
        &format!(
            "{}{}{}",
            exchange_message(&origin, "r1", indications),
            exchange_message(&origin, "r1", indications),
            exchange_message(&origin, "r2", fin)
        ),
    );
    assert_eq!(rscs(&answer), ["2000", "4105"], "{answer}");
    assert!(answer.contains(r#"{"m2m:dbg":"replayed or out-of-order enrolment exchange message: X-M2M-RI \"r1\" seen before"}"#), "{answer}");

    // A final message with no exchange begun.
    let answer = s_client(site.mef.port, REPLAY, &exchange_message(&origin, "f1", fin));
    assert_eq!(rscs(&answer), ["4105"], "{answer}");
    assert!(
        answer.contains("final message before the indications"),
        "{answer}"
    );
    assert_eq!(site.enrolments(), "");

    // The same device, honestly, enrols.
    let creds = site.file("again");
    let out = site.enrol_kpm(
        REPLAY,
        &site.kpm_file(REPLAY),
        creds.to_str().unwrap(),
        &["--enrol-only"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(site.enrolments().lines().count(), 1);
}

/// `bastion keystore ARGS --store SPEC` in `site`'s environment (and `extra` flags).
fn keystore_tool(site: &Site, spec: &str, args: &[&str], extra: &[&str]) -> Output {
    let mut all = vec!["keystore"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--store", spec]);
    all.extend_from_slice(extra);
    bastion_with(&all, &site.keys.env)
}

/// The device enrols with Ke in `device_store` (`device_flags` open it for `bastion
/// enrol`, `device_store_flags` for `bastion keystore`) while the MEF
/// keeps its copy in `site`'s key store, registers its AE with the provisioned key (2001)
/// and writes data; both Ke are listed non-exportable and refuse export; the MEF's
/// record names its key and holds no Ke; the CSE's fetch, derived inside the MEF's store,
/// equals the device's Kuc, derived inside the device's. Returns the credentials
/// directory and the MEF's key name.
fn enrol_with_ke_in_key_stores(
    site: &Site,
    device_store: &str,
    device_flags: &[&str],
    device_store_flags: &[&str],
    mef_flags: &[&str],
) -> (PathBuf, String) {
    let mef_store = site.keys.spec.clone().expect("the MEF has a key store");
    let creds = site.file("dev1-keystore");
    let mut extra = vec!["--key-store", device_store];
    extra.extend_from_slice(device_flags);
    extra.extend_from_slice(&["--container", "temp", "--content", "21.5"]);
    let out = site.enrol_kpm(DEV1, &site.kpm_file(DEV1), creds.to_str().unwrap(), &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 4, "{printed}");
    assert_eq!(lines[2], "registered: AE Csensor1 as Csensor1 (2001)");
    assert_eq!(lines[3], "contentInstance: Csensor1/temp (2001)");

    // The device kept the name of its Ke, not Ke.
    let ke_id = read(&creds, "key-id");
    let relative = ke_id.split_once('@').expect("KeID").0;
    assert!(!creds.join("ke.hex").exists(), "Ke written to disk");
    let device_key = format!("enrolee.ke.{relative}");
    assert_eq!(read(&creds, "ke.name"), device_key);
    let mef_key = format!("mef.ke.{relative}");

    // Each store lists its Ke as non-exportable, and refuses to export it.
    let listed = keystore_tool(site, &mef_store, &["list"], mef_flags);
    assert!(listed.status.success(), "{listed:?}");
    assert!(
        stdout(&listed).contains(&format!("\n{mef_key}\tsecret-32\tnon-exportable\n")),
        "{}",
        stdout(&listed)
    );
    let listed = keystore_tool(site, device_store, &["list"], device_store_flags);
    assert!(
        stdout(&listed).contains(&format!("\n{device_key}\tsecret-32\tnon-exportable\n")),
        "{}",
        stdout(&listed)
    );
    for (store, flags, name) in [
        (mef_store.as_str(), mef_flags, &mef_key),
        (device_store, device_store_flags, &device_key),
    ] {
        let export = keystore_tool(site, store, &["export", "--name", name], flags);
        assert_eq!(export.status.code(), Some(2), "{export:?}");
        assert!(export.stdout.is_empty());
        assert_eq!(
            stderr(&export),
            format!("bastion: error: key \"{name}\" is non-exportable: it is used only inside the store\n")
        );
    }

    // The MEF's durable record names the key and holds no Ke.
    let enrolments = bastion_mef::EnrolmentStore::open(
        &site.file("mef/enrolments.sealed"),
        bastion_tls::StoreKey::from_hex(STORE_KEY).unwrap(),
        10,
    )
    .unwrap();
    let record = enrolments.get(&ke_id).unwrap().expect("recorded");
    assert_eq!(
        record.ke,
        bastion_mef::rules::KeHeld::InStore(bastion_keystore::KeyName::new(&mef_key).unwrap())
    );

    // Both ends derive equal bytes, each inside its store.
    let fetched = site.fetch_as_cse(&ke_id);
    assert_eq!(printed_rsc(&fetched), "2000", "{fetched:?}");
    assert_eq!(
        printed_body(&fetched)["sec:cred"]["key"],
        read(&creds, "kuc.hex")
    );
    assert_latest(site, &creds, "Csensor1", "21.5");
    (creds, mef_key)
}

/// Revoking the enrolee deletes the MEF's key from its store; nothing is released.
fn revocation_deletes_the_key(site: &Site, creds: &Path, mef_key: &str, mef_flags: &[&str]) {
    let revoke = site.mef_tool(&["revoke", "Csensor1"]);
    assert!(revoke.status.success(), "{revoke:?}");
    assert_eq!(
        stdout(&revoke),
        "revoked Csensor1: 1 enrolment(s); it cannot enrol again\n"
    );
    let mef_store = site.keys.spec.clone().unwrap();
    let listed = keystore_tool(site, &mef_store, &["list"], mef_flags);
    assert!(listed.status.success(), "{listed:?}");
    assert!(!stdout(&listed).contains(mef_key), "{}", stdout(&listed));
    let fetched = site.fetch_as_cse(&read(creds, "key-id"));
    assert_eq!(printed_rsc(&fetched), "4005", "{fetched:?}");
}

#[test]
fn with_ke_in_a_softhsm2_token_a_device_enrols_and_registers() {
    let Some(token) = softhsm() else { return };
    let site = Site::start_with(KeyStoreAt::token(&token));
    let log = site.mef.log.lock().unwrap().clone();
    assert!(
        log.contains("enrolment keys kept in the key store"),
        "{log}"
    );
    let (creds, mef_key) = enrol_with_ke_in_key_stores(&site, &token.spec(), &[], &[], &[]);
    revocation_deletes_the_key(&site, &creds, &mef_key, &[]);
    // The token is shared by test runs: the device's key goes too.
    let device_key = read(&creds, "ke.name");
    let deleted = keystore_tool(
        &site,
        &token.spec(),
        &["delete", "--name", &device_key],
        &[],
    );
    assert!(deleted.status.success(), "{deleted:?}");
}

#[test]
fn with_ke_in_encrypted_file_stores_a_device_enrols_and_expiry_deletes_the_key() {
    let files = tempfile::tempdir().expect("key stores");
    let mef_store = format!("file:{}", path(files.path(), "mef-keys.store"));
    let device_store = format!("file:{}", path(files.path(), "device-keys.store"));
    let device_key = path(files.path(), "device.key");
    write_key_file(&files.path().join("device.key"), &"5c".repeat(32));
    let mef_key_file = path(files.path(), "mef.key");
    write_key_file(&files.path().join("mef.key"), STORE_KEY);
    let mef_flags = ["--key-file", mef_key_file.as_str()];
    let device_flags = ["--key-store-key-file", device_key.as_str()];
    let init = |spec: &str, key: &str| {
        let out = bastion(&["keystore", "init", "--store", spec, "--key-file", key]);
        assert!(out.status.success(), "{out:?}");
    };
    init(&mef_store, &mef_key_file);
    init(&device_store, &device_key);
    let site = Site::start_with(KeyStoreAt {
        spec: Some(mef_store.clone()),
        env: Vec::new(),
    });
    // `keystore list` takes --key-file; `enrol` names it --key-store-key-file.
    let device_list_flags = ["--key-file", device_key.as_str()];
    let (creds, mef_key) = enrol_with_ke_in_key_stores(
        &site,
        &device_store,
        &device_flags,
        &device_list_flags,
        &mef_flags,
    );
    revocation_deletes_the_key(&site, &creds, &mef_key, &mef_flags);

    // Expiry: the enrolment's key leaves the MEF's store once the enrolment ended.
    let short = site.file("short-keystore");
    let out = site.enrol_kpm(
        SHORT,
        &site.kpm_file(SHORT),
        short.to_str().unwrap(),
        &[
            "--key-store",
            &device_store,
            "--key-store-key-file",
            &device_key,
            "--enrol-only",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let relative = read(&short, "key-id").split_once('@').unwrap().0.to_owned();
    let listed = keystore_tool(&site, &mef_store, &["list"], &mef_flags);
    assert!(stdout(&listed).contains(&format!("mef.ke.{relative}\t")));
    std::thread::sleep(Duration::from_millis(3100));
    let fetched = site.fetch_as_cse(&read(&short, "key-id"));
    assert_eq!(printed_rsc(&fetched), "4107", "{fetched:?}");
    let listed = keystore_tool(&site, &mef_store, &["list"], &mef_flags);
    assert_eq!(
        stdout(&listed),
        "# protection level 1 (software)\n",
        "the expired enrolment's key is still in the store"
    );
}
