//! End-to-end tests of the MAF security framework (TS-0003 8.8) and the MAF-based
//! security association (8.2.2.3) with three real processes: `bastion maf`, `bastion
//! serve` with `[provisioning]` naming the MAF, and a device that is the binary's own
//! client tools (`bastion maf-client` for the MAF procedures, `bastion req` toward the
//! CSE). Credentials are provisioned with `bastion credentials add`, as an operator would.

use crate::common;

use common::das_tls::STORE_KEY;
use common::provision::{add_psk_credential, printed_rsc, psk_req, Store};
use common::{bastion, ok, path, spawn_watched, tls_port, write_key_file, Server};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MAF_FQDN: &str = "maf.example";
const ADMIN_FQDN: &str = "admin.bastion.example";
/// The CSE as an absolute CSE-ID: what a device names as its key's target.
const CSE_TARGET: &str = "//bastion.example/id-in";

/// Each MAF client's KmID, Km and the identity the MAF binds it to.
const DEVICE: (&str, &str, &str) = (
    "device1@maf.example",
    "d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0",
    "Cdevice1",
);
const CSE: (&str, &str, &str) = (
    "cse-in@maf.example",
    "c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0",
    "/id-in",
);
const OTHER_CSE: (&str, &str, &str) = (
    "cse-other@maf.example",
    "b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0",
    "/id-other",
);

/// A running `bastion maf`; killed when dropped.
struct MafProcess {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Drop for MafProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The MAF, the CSE that trusts it, and the files of their credentials.
struct World {
    dir: tempfile::TempDir,
    maf: MafProcess,
    cse: Server,
    cse_url: String,
}

impl World {
    fn file(&self, name: &str) -> String {
        path(self.dir.path(), name)
    }

    /// `bastion maf-client SUBCOMMAND` as `who` (KmID, Km file, identity), then `args`.
    fn maf_client(&self, who: (&str, &str, &str), subcommand: &str, args: &[&str]) -> Output {
        let km_file = self.file(&km_file_name(who.0));
        let mut all = vec![
            "maf-client",
            subcommand,
            "--url",
            &self.maf.url,
            "--maf-fqdn",
            MAF_FQDN,
            "--from",
            who.2,
            "--psk-id",
            who.0,
            "--psk-file",
            &km_file,
        ];
        all.extend_from_slice(args);
        bastion(&all)
    }

    /// The device registers with the MAF and registers a key (exported from its MAF
    /// session) for `target`; returns the key identifier, the key written to `key_out`.
    fn device_key(&self, target: &str, expires_in: &str, key_out: &str) -> String {
        ok(&self.maf_client(DEVICE, "register", &["--admin-fqdn", ADMIN_FQDN]));
        let out = ok(&self.maf_client(
            DEVICE,
            "register-key",
            &[
                "--admin-fqdn",
                ADMIN_FQDN,
                "--target",
                target,
                "--suid",
                "32",
                "--expires-in",
                expires_in,
                "--key-out",
                &self.file(key_out),
            ],
        ));
        printed(&out, "key-id")
    }

    /// `bastion req` to the CSE inside the TLS-PSK association of `key_id`.
    fn req(&self, key_id: &str, key_file: &str, args: &[&str]) -> Output {
        psk_req(&self.cse_url, key_id, &self.file(key_file), args)
    }
}

fn km_file_name(km_id: &str) -> String {
    format!("{}.km", km_id.replace('@', "_"))
}

/// The value of the `name: value` line `bastion maf-client` printed.
fn printed(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON body `bastion req` printed after its rsc line.
fn printed_body(output: &Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("body {body:?}: {e}"))
}

fn start() -> World {
    let dir = tempfile::tempdir().expect("directory");
    let key_file = path(dir.path(), "store.key");
    write_key_file(Path::new(&key_file), STORE_KEY);
    let maf_store = path(dir.path(), "maf.store");
    for (km_id, km, id) in [DEVICE, CSE, OTHER_CSE] {
        let km_file = path(dir.path(), &km_file_name(km_id));
        write_key_file(Path::new(&km_file), km);
        let binding = match id.starts_with('/') {
            true => ["--cse-id", id],
            false => ["--originator", id],
        };
        add_psk_credential(
            Store::File(&maf_store),
            &key_file,
            km_id,
            &km_file,
            &binding,
        );
    }

    let log = Arc::new(Mutex::new(String::new()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_bastion"));
    command
        .args(["maf", "--tls-listen", "127.0.0.1:0", "--fqdn", MAF_FQDN])
        .args([
            "--sp-id",
            "bastion.example",
            "--credentials-store",
            &maf_store,
        ])
        .args(["--credentials-key-file", &key_file])
        .args(["--state", &path(dir.path(), "maf.state")])
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("BASTION_CREDENTIALS_KEY");
    let (child, port) = spawn_watched(&mut command, "bastion maf", &log, Duration::from_secs(30));
    let maf = MafProcess {
        child,
        url: format!("https://127.0.0.1:{port}"),
        log,
    };

    let cse = Server::start_with_config(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"psk\"]\n\
         credentials-store = \"{}\"\ncredentials-key-file = \"{key_file}\"\n\n\
         [provisioning]\nmaf-url = \"{}\"\nmaf-fqdn = \"{MAF_FQDN}\"\n\
         maf-psk-id = \"{}\"\nmaf-psk-file = \"{}\"\n",
        path(dir.path(), "cse.store"),
        maf.url,
        CSE.0,
        path(dir.path(), &km_file_name(CSE.0)),
    ));
    let cse_url = format!("https://127.0.0.1:{}", tls_port(&cse));
    World {
        dir,
        maf,
        cse,
        cse_url,
    }
}

#[test]
fn ts0003_8_2_2_3_a_device_registers_a_key_for_its_cse_and_writes_data_with_it() {
    let w = start();
    let out = ok(&w.maf_client(DEVICE, "register", &["--admin-fqdn", ADMIN_FQDN]));
    assert_eq!(printed(&out, "client-id"), "Cdevice1");
    assert_eq!(printed(&out, "admin-fqdn"), ADMIN_FQDN);
    let reg_id = printed(&out, "reg-id");
    let cfg = ok(&w.maf_client(DEVICE, "config", &["--reg-id", &reg_id]));
    assert_eq!(printed(&cfg, "fqdn"), MAF_FQDN);

    let out = ok(&w.maf_client(
        DEVICE,
        "register-key",
        &[
            "--admin-fqdn",
            ADMIN_FQDN,
            "--target",
            CSE_TARGET,
            "--key-out",
            &w.file("kc.hex"),
        ],
    ));
    let key_id = printed(&out, "key-id");
    let (relative, fqdn) = key_id.split_once('@').expect("RelativeKeyID@FQDN");
    assert_eq!(fqdn, MAF_FQDN);
    assert_eq!(relative.len(), 32, "hex of the 16-byte KcID: {relative}");
    assert!(relative
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(printed(&out, "suid"), "32");
    assert_eq!(printed(&out, "source"), "Cdevice1 (ae)");
    assert_eq!(printed(&out, "targets"), CSE_TARGET);

    // The device, holding only Km, talks to the CSE with Kc as KcID@MAF-FQDN.
    let ae = w.req(
        &key_id,
        "kc.hex",
        &[
            "--op",
            "create",
            "--to",
            "/cse-in",
            "--ty",
            "2",
            "--from",
            "Cdevice1",
            "--body",
            r#"{"m2m:ae":{"rn":"device1","api":"Ndevice1","rr":false,"srv":["3"]}}"#,
        ],
    );
    assert_eq!(printed_rsc(&ae), "2001", "{}", stderr(&ae));
    assert_eq!(printed_body(&ae)["m2m:ae"]["aei"], "Cdevice1");
    let cnt = w.req(
        &key_id,
        "kc.hex",
        &[
            "--op",
            "create",
            "--to",
            "/cse-in/device1",
            "--ty",
            "3",
            "--from",
            "Cdevice1",
            "--body",
            r#"{"m2m:cnt":{"rn":"data"}}"#,
        ],
    );
    assert_eq!(printed_rsc(&cnt), "2001", "{}", stderr(&cnt));
    let cin = w.req(
        &key_id,
        "kc.hex",
        &[
            "--op",
            "create",
            "--to",
            "/cse-in/device1/data",
            "--ty",
            "4",
            "--from",
            "Cdevice1",
            "--body",
            r#"{"m2m:cin":{"con":"21.5"}}"#,
        ],
    );
    assert_eq!(printed_rsc(&cin), "2001", "{}", stderr(&cin));
    let latest = w.req(
        &key_id,
        "kc.hex",
        &["--to", "/cse-in/device1/data/la", "--from", "Cdevice1"],
    );
    assert_eq!(printed_rsc(&latest), "2000", "{}", stderr(&latest));
    assert_eq!(printed_body(&latest)["m2m:cin"]["con"], "21.5");

    // Impersonation inside the MAF-based association: 4106, as for any association.
    let spoof = w.req(
        &key_id,
        "kc.hex",
        &[
            "--op",
            "create",
            "--to",
            "/cse-in",
            "--ty",
            "2",
            "--from",
            "Cintruder",
            "--body",
            r#"{"m2m:ae":{"rn":"intruder","api":"Nx","rr":false,"srv":["3"]}}"#,
        ],
    );
    assert_eq!(printed_rsc(&spoof), "4106", "{}", stderr(&spoof));

    // Both ends hold the same Kc: the CSE's retrieval gives the device's bytes.
    let got = ok(&w.maf_client(
        CSE,
        "retrieve-key",
        &["--key-id", &key_id, "--key-out", &w.file("cse-kc.hex")],
    ));
    assert_eq!(printed(&got, "source"), "Cdevice1 (ae)");
    let device_kc = std::fs::read_to_string(w.file("kc.hex")).expect("device Kc");
    let cse_kc = std::fs::read_to_string(w.file("cse-kc.hex")).expect("CSE Kc");
    assert_eq!(device_kc.trim().len(), 64);
    assert_eq!(device_kc, cse_kc);

    // No key value in any log.
    let kc = device_kc.trim();
    let maf_log = w.maf.log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(maf_log.contains("MAF key retrieved"), "{maf_log}");
    assert!(!maf_log.contains(kc) && !w.cse.log().contains(kc));
    assert!(w.cse.log().contains("MAF key retrieved"));
}

#[test]
fn ts0003_8_8_2_8_only_the_named_target_retrieves_a_key() {
    let w = start();
    let key_id = w.device_key(CSE_TARGET, "600", "kc.hex");
    let refused = w.maf_client(OTHER_CSE, "retrieve-key", &["--key-id", &key_id]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused).trim(),
        "bastion: error: MAF answered 4103: not a target of this key registration"
    );

    // A key for another CSE: this CSE is refused by the MAF and fails the handshake.
    let elsewhere = w.device_key("//bastion.example/id-other", "600", "kc-other.hex");
    let out = w.req(
        &elsewhere,
        "kc-other.hex",
        &["--to", "/cse-in", "--from", "Cdevice1"],
    );
    assert_eq!(printed_rsc(&out), "");
    assert!(
        stderr(&out).starts_with("bastion: error: no response: TLS handshake failed"),
        "{}",
        stderr(&out)
    );
    assert!(w
        .cse
        .log_shows("MAF key retrieval failed", Duration::from_secs(5)));
}

#[test]
fn ts0003_8_2_2_3_an_expired_key_fails_fresh_handshakes() {
    let w = start();
    let key_id = w.device_key(CSE_TARGET, "3", "kc.hex");
    let first = w.req(
        &key_id,
        "kc.hex",
        &["--to", "/cse-in", "--from", "Cdevice1"],
    );
    assert_ne!(printed_rsc(&first), "", "{}", stderr(&first));
    std::thread::sleep(Duration::from_secs(4));
    let later = w.req(
        &key_id,
        "kc.hex",
        &["--to", "/cse-in", "--from", "Cdevice1"],
    );
    assert_eq!(printed_rsc(&later), "");
    assert!(
        stderr(&later).starts_with("bastion: error: no response: TLS handshake failed"),
        "{}",
        stderr(&later)
    );
    let gone = w.maf_client(CSE, "retrieve-key", &["--key-id", &key_id]);
    assert_eq!(
        stderr(&gone).trim(),
        "bastion: error: MAF answered 4004: no such key registration"
    );
}

#[test]
fn ts0003_8_8_2_10_a_deregistered_key_is_gone() {
    let w = start();
    let key_id = w.device_key(CSE_TARGET, "600", "kc.hex");
    let out = ok(&w.maf_client(DEVICE, "deregister-key", &["--key-id", &key_id]));
    assert_eq!(printed(&out, "deregistered"), key_id);
    let gone = w.maf_client(CSE, "retrieve-key", &["--key-id", &key_id]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(
        stderr(&gone).trim(),
        "bastion: error: MAF answered 4004: no such key registration"
    );
    let out = w.req(
        &key_id,
        "kc.hex",
        &["--to", "/cse-in", "--from", "Cdevice1"],
    );
    assert_eq!(printed_rsc(&out), "", "{}", stderr(&out));
}

#[test]
fn ts0003_8_8_2_maf_requests_are_bound_to_the_maf_association() {
    let w = start();
    // X-M2M-Origin other than the identity Km is bound to.
    let claimed = w.maf_client(
        (DEVICE.0, DEVICE.1, "Cother"),
        "register",
        &["--admin-fqdn", ADMIN_FQDN],
    );
    assert_eq!(
        stderr(&claimed).trim(),
        "bastion: error: MAF answered 4106: originator does not match the authenticated identity"
    );
    // A key registration needs a client registration for the same adminFQDN.
    let early = w.maf_client(
        DEVICE,
        "register-key",
        &[
            "--admin-fqdn",
            ADMIN_FQDN,
            "--target",
            CSE_TARGET,
            "--key-out",
            &w.file("k"),
        ],
    );
    assert_eq!(
        stderr(&early).trim(),
        "bastion: error: MAF answered 4103: register with this MAF for the adminFQDN first"
    );
    ok(&w.maf_client(DEVICE, "register", &["--admin-fqdn", ADMIN_FQDN]));
    let two = w.maf_client(
        DEVICE,
        "register-key",
        &[
            "--admin-fqdn",
            ADMIN_FQDN,
            "--target",
            CSE_TARGET,
            "--target",
            "//bastion.example/id-other",
            "--key-out",
            &w.file("k"),
        ],
    );
    assert_eq!(
        stderr(&two).trim(),
        "bastion: error: MAF answered 4000: SUID 32 and 33 keys have exactly one target"
    );
    // Only the source updates its key.
    let key_id = w.device_key(CSE_TARGET, "600", "kc.hex");
    let foreign = w.maf_client(
        CSE,
        "update-key",
        &["--key-id", &key_id, "--expires-in", "60"],
    );
    assert_eq!(
        stderr(&foreign).trim(),
        "bastion: error: MAF answered 4103: the key was registered by another MAF Client"
    );
    let updated = ok(&w.maf_client(
        DEVICE,
        "update-key",
        &[
            "--key-id",
            &key_id,
            "--target",
            "//bastion.example/id-other",
        ],
    ));
    assert_eq!(printed(&updated, "targets"), "//bastion.example/id-other");
    let not_now = w.maf_client(CSE, "retrieve-key", &["--key-id", &key_id]);
    assert_eq!(
        stderr(&not_now).trim(),
        "bastion: error: MAF answered 4103: not a target of this key registration"
    );
}
