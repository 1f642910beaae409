//! The MEF client procedures (TS-0003 8.3.4, 8.3.5) and MEF client commands (8.3.9) end
//! to end, with real processes: `bastion mef` with `[mef.clients]`, its MEF Clients as
//! `bastion mef-client` (each call one TLS-PSK association with the client's Kpm), the
//! operator's `bastion mef command`, and `openssl s_client -psk` (a client the project did
//! not write) for the exact answers on the wire. Credentials are provisioned with
//! `bastion credentials add`, as an operator would.

use crate::common;

use common::enrolment::{assert_enrolled_certificate, stdout};
use common::provision::{add_psk_credential, make_ca, s_client, Store};
use common::{bastion, ok, path, spawn_watched, write_key_file};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STORE_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f05a1e2d3c4b5a69788796a5b4c3d2e1f0";
const MEF_FQDN: &str = "mef.example.com";
const ADMIN_FQDN: &str = "admin.bastion.example";
/// The target CSE as an absolute CSE-ID.
const CSE_TARGET: &str = "//bastion.example/id-in";

/// Each MEF Client's KpmID, Kpm and the identity the MEF's credential store binds it to.
const DEVICE: (&str, &str, &str) = (
    "dev1@factory.example.com",
    "11aa22bb33cc44dd55ee66ff77008899aabbccddeeff00112233445566778899",
    "Cdevice1",
);
const CSE: (&str, &str, &str) = (
    "cse-in@mef.example.com",
    "7c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5",
    "/id-in",
);
const OTHER_CSE: (&str, &str, &str) = (
    "cse-other@mef.example.com",
    "b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0",
    "/id-other",
);

/// A running `bastion mef`, killed on drop.
struct Mef {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl Drop for Mef {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kpm_file(id: &str) -> String {
    format!("{}.kpm", id.replace('@', "_"))
}

/// The identity the MEF's EST certifies for DEVICE (its enrolee ID `Cdevice1` under
/// `/id-in`), the certSubjectID of its CERT_PROV commands.
const DEVICE_CERTIFIED: &str = "//bastion.example/id-in/Cdevice1";

impl Mef {
    fn start() -> Mef {
        Mef::start_with(false)
    }

    /// With `est`, also the MEF's EST (`[mef.est]`, its CA in `mefca/`) and DEVICE as an
    /// enrolee, so a CERT_PROV command can be carried out over its association.
    fn start_with(est: bool) -> Mef {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let key_file = path(d, "store.key");
        write_key_file(Path::new(&key_file), STORE_KEY);
        std::fs::create_dir(d.join("mef")).expect("mef dir");
        let store = path(d, "mef/credentials.store");
        for (id, key, bound) in [DEVICE, CSE, OTHER_CSE] {
            let file = path(d, &kpm_file(id));
            write_key_file(Path::new(&file), key);
            let binding = match bound.starts_with('/') {
                true => ["--cse-id", bound],
                false => ["--originator", bound],
            };
            add_psk_credential(Store::File(&store), &key_file, id, &file, &binding);
        }
        std::fs::write(
            d.join("mef.toml"),
            format!(
                "[mef]\nfqdn = \"{MEF_FQDN}\"\nlisten = \"127.0.0.1:0\"\ndata-dir = \"{}\"\n\n\
                 [mef.clients]\nsp-id = \"bastion.example\"\ncommand-retry-seconds = 600\n",
                path(d, "mef")
            ),
        )
        .expect("mef.toml");
        if est {
            let ca = d.join("mefca");
            std::fs::create_dir(&ca).expect("ca dir");
            make_ca(&ca, "MEF CA", &[]);
            let extra = format!(
                "\n[mef.est]\nca-cert = \"{ca}/ca.pem\"\nca-key = \"{ca}/ca.key\"\n\
                 sp-fqdn = \"bastion.example\"\n\n\
                 [[mef.target]]\nname = \"cse\"\nid = \"/id-in\"\n\
                 uri = \"https://127.0.0.1:9/cse-in\"\nsuid = 22\n\n\
                 [[mef.enrolee]]\nkpm-id = \"{kpm_id}\"\nenrolee-id = \"{enrolee}\"\n\
                 targets = [\"cse\"]\nlifetime-seconds = 3600\n",
                ca = ca.display(),
                kpm_id = DEVICE.0,
                enrolee = DEVICE.2,
            );
            let mut toml = std::fs::read_to_string(d.join("mef.toml")).expect("mef.toml");
            toml.push_str(&extra);
            std::fs::write(d.join("mef.toml"), toml).expect("mef.toml");
        }
        let log = Arc::new(Mutex::new(String::new()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_bastion"));
        command
            .args(["mef", "--config"])
            .arg(d.join("mef.toml"))
            .arg("--key-file")
            .arg(&key_file)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("BASTION_CREDENTIALS_KEY");
        let (child, port) =
            spawn_watched(&mut command, "bastion mef", &log, Duration::from_secs(30));
        Mef {
            child,
            port,
            log,
            dir,
        }
    }

    fn file(&self, name: &str) -> String {
        path(self.dir.path(), name)
    }

    /// `bastion mef-client SUBCOMMAND` as `who`, claiming `from`, then `args`.
    fn client_as(
        &self,
        who: (&str, &str, &str),
        from: &str,
        subcommand: &str,
        args: &[&str],
    ) -> Output {
        let url = format!("https://127.0.0.1:{}", self.port);
        let kpm = self.file(&kpm_file(who.0));
        let mut all = vec![
            "mef-client",
            subcommand,
            "--url",
            &url,
            "--mef-fqdn",
            MEF_FQDN,
            "--from",
            from,
            "--psk-id",
            who.0,
            "--psk-file",
            &kpm,
        ];
        all.extend_from_slice(args);
        bastion(&all)
    }

    fn client(&self, who: (&str, &str, &str), subcommand: &str, args: &[&str]) -> Output {
        self.client_as(who, who.2, subcommand, args)
    }

    /// `bastion mef command --config … ARGS`.
    fn operator(&self, args: &[&str]) -> Output {
        let config = self.file("mef.toml");
        let key = self.file("store.key");
        let mut all = vec!["mef", "command", "--config", &config, "--key-file", &key];
        all.extend_from_slice(args);
        bastion(&all)
    }

    /// `bastion mef command … add --reg-id REG_ID ARGS` (the class and its arguments).
    fn add_command(&self, reg_id: &str, args: &[&str]) -> Output {
        let mut all = vec!["add", "--reg-id", reg_id];
        all.extend_from_slice(args);
        self.operator(&all)
    }

    /// Raw requests on one TLS-PSK association of `who`, sent by `openssl s_client`.
    fn s_client(&self, who: (&str, &str, &str), requests: &str) -> String {
        s_client(self.port, (who.0, who.1), requests)
    }
}

/// One raw request; the last one of an association carries `Connection: close`.
fn raw(method: &str, target: &str, origin: &str, ri: &str, close: bool) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {MEF_FQDN}\r\nX-M2M-Origin: {origin}\r\n\
         X-M2M-RI: {ri}\r\nX-M2M-RVI: 3\r\nAccept: application/json\r\nContent-Length: 0\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
}

/// The `X-M2M-RSC` values and the JSON bodies of raw answers, in order.
fn answers(text: &str) -> Vec<(String, String)> {
    text.split("HTTP/1.1 ")
        .skip(1)
        .map(|answer| {
            let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
            let rsc = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("x-m2m-rsc: ")
                        .map(|v| v.trim().to_owned())
                })
                .unwrap_or_default();
            (rsc, body.trim().to_owned())
        })
        .collect()
}

fn printed(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .to_owned()
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[test]
fn ts0003_8_3_5_a_client_registers_a_key_only_its_target_retrieves() {
    let mef = Mef::start();
    let out = ok(&mef.client(DEVICE, "register", &["--admin-fqdn", ADMIN_FQDN]));
    assert_eq!(printed(&out, "client-id"), "Cdevice1");
    assert_eq!(printed(&out, "admin-fqdn"), ADMIN_FQDN);
    let reg_id = printed(&out, "reg-id");
    assert_eq!(reg_id.len(), 32);

    let cfg = ok(&mef.client(DEVICE, "config", &["--reg-id", &reg_id]));
    assert_eq!(printed(&cfg, "fqdn"), MEF_FQDN);
    assert_eq!(printed(&cfg, "admin-fqdn"), ADMIN_FQDN);
    let upd = ok(&mef.client(
        DEVICE,
        "update",
        &["--reg-id", &reg_id, "--label", "floor-3"],
    ));
    assert_eq!(printed(&upd, "labels"), "floor-3");
    assert!(
        !upd.contains("expires:"),
        "only what was proposed comes back: {upd}"
    );
    // 8.3.4.6: a command retrieve follows each registration procedure.
    assert_eq!(printed(&upd, "class"), "0 NO_MORE_COMMANDS");
    assert_eq!(printed(&cfg, "class"), "0 NO_MORE_COMMANDS");

    // Key registration without a key value: both ends export Kc from the association.
    let out = ok(&mef.client(
        DEVICE,
        "register-key",
        &[
            "--admin-fqdn",
            ADMIN_FQDN,
            "--target",
            CSE_TARGET,
            "--key-out",
            &mef.file("kc.hex"),
        ],
    ));
    let key_id = printed(&out, "key-id");
    let (relative, fqdn) = key_id.split_once('@').expect("RelativeKeyID@MEF-FQDN");
    assert_eq!(fqdn, MEF_FQDN);
    assert_eq!(relative.len(), 32);
    assert_eq!(
        printed(&out, "suid"),
        "22",
        "SAEF key provisioned by an RSPF"
    );
    assert_eq!(printed(&out, "source"), "Cdevice1 (ae)");
    assert_eq!(printed(&out, "targets"), CSE_TARGET);
    assert!(!out.contains(
        &std::fs::read_to_string(mef.file("kc.hex"))
            .unwrap()
            .trim()
            .to_owned()
    ));

    // The target, another credential of the MEF's store, retrieves the same bytes.
    let got = ok(&mef.client(
        CSE,
        "retrieve-key",
        &["--key-id", &key_id, "--key-out", &mef.file("kc-cse.hex")],
    ));
    assert_eq!(printed(&got, "source"), "Cdevice1 (ae)");
    assert_eq!(printed(&got, "suid"), "22");
    let kc = std::fs::read_to_string(mef.file("kc.hex")).unwrap();
    assert_eq!(kc.trim().len(), 64);
    assert_eq!(std::fs::read_to_string(mef.file("kc-cse.hex")).unwrap(), kc);
    let log = mef.log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(log.contains("MEF key retrieved"), "{log}");
    assert!(!log.contains(kc.trim()), "a key value in the MEF's log");

    // Refusals, each with its exact rsc and reason.
    assert_eq!(
        refused(&mef.client(OTHER_CSE, "retrieve-key", &["--key-id", &key_id])),
        "bastion: error: MEF answered 4103: not a target of this key registration"
    );
    assert_eq!(
        refused(&mef.client(OTHER_CSE, "config", &["--reg-id", &reg_id])),
        "bastion: error: MEF answered 4103: the registration belongs to another MEF Client"
    );
    assert_eq!(
        refused(&mef.client_as(DEVICE, "Cother", "config", &["--reg-id", &reg_id])),
        "bastion: error: MEF answered 4106: originator does not match the authenticated identity"
    );
    assert_eq!(
        refused(&mef.client(
            DEVICE,
            "register-key",
            &[
                "--admin-fqdn",
                ADMIN_FQDN,
                "--target",
                CSE_TARGET,
                "--suid",
                "32",
                "--key-out",
                &mef.file("x.hex"),
            ],
        )),
        "bastion: error: MEF answered 4000: SUID 32 is not an RSPF-provisioned key usage (22 to 25)"
    );
    assert_eq!(
        refused(&mef.client(CSE, "update-key", &["--key-id", &key_id, "--label", "x"])),
        "bastion: error: MEF answered 4103: the key was registered by another MEF Client"
    );

    // De-registration, seen raw: 2002, then the record is gone (4004) and, as it was the
    // client's last registration, so is its key.
    let target = format!("/{MEF_FQDN}/clients/{reg_id}");
    let text = mef.s_client(
        DEVICE,
        &(raw("DELETE", &target, "Cdevice1", "d1", false)
            + &raw("GET", &target, "Cdevice1", "d2", true)),
    );
    let got = answers(&text);
    assert_eq!(
        got,
        vec![
            ("2002".to_owned(), String::new()),
            (
                "4004".to_owned(),
                r#"{"m2m:dbg":"no such MEF Client registration"}"#.to_owned()
            ),
        ],
        "{text}"
    );
    assert_eq!(
        refused(&mef.client(CSE, "retrieve-key", &["--key-id", &key_id])),
        "bastion: error: MEF answered 4004: no such key registration"
    );
}

#[test]
fn ts0003_8_3_9_a_command_is_issued_fetched_reported_and_then_none_are_left() {
    let mef = Mef::start();
    let out = ok(&mef.client(DEVICE, "register", &["--admin-fqdn", ADMIN_FQDN]));
    let reg_id = printed(&out, "reg-id");
    assert_eq!(
        printed(&out, "class"),
        "0 NO_MORE_COMMANDS",
        "retrieved after registering"
    );

    // Nothing queued: NO_MORE_COMMANDS with the configured retryDuration.
    let none = ok(&mef.client(DEVICE, "next-command", &["--reg-id", &reg_id]));
    assert_eq!(printed(&none, "class"), "0 NO_MORE_COMMANDS");
    assert_eq!(printed(&none, "status"), "10 ISSUED");
    assert_eq!(printed(&none, "retry"), "PT600S");

    // The operator queues a certificate provisioning command.
    let est = format!("https://{MEF_FQDN}:8444/.well-known/est");
    let add = |reg: &str, uri: &str| {
        mef.add_command(
            reg,
            &[
                "--class",
                "cert-prov",
                "--uri",
                uri,
                "--subject-type",
                "ae",
                "--subject-id",
                "Cdevice1",
            ],
        )
    };
    let cmd_id = printed(&ok(&add(&reg_id, &est)), "cmd-id");
    let foreign = add(&reg_id, "https://est.elsewhere.example/.well-known/est");
    assert_eq!(foreign.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&foreign.stderr)
        .contains("the URI's host est.elsewhere.example is not the MEF's FQDN mef.example.com"));
    let unknown = add("00000000000000000000000000000000", &est);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no live MEF client registration \"00000000000000000000000000000000\""));

    // Fetched: ISSUED, then REISSUED while no report came.
    let first = ok(&mef.client(DEVICE, "next-command", &["--reg-id", &reg_id]));
    assert_eq!(printed(&first, "cmd-id"), cmd_id);
    assert_eq!(printed(&first, "class"), "1 CERT_PROV");
    assert_eq!(printed(&first, "status"), "10 ISSUED");
    assert_eq!(
        printed(&first, "args"),
        format!(r#"{{"cpa":{{"cpp":1,"uri":"{est}","cst":3,"csi":"Cdevice1"}}}}"#)
    );
    let again = ok(&mef.client(DEVICE, "next-command", &["--reg-id", &reg_id]));
    assert_eq!(printed(&again, "cmd-id"), cmd_id);
    assert_eq!(printed(&again, "status"), "11 REISSUED");

    // Another client can neither fetch nor report this registration's command.
    assert_eq!(
        refused(&mef.client(OTHER_CSE, "next-command", &["--reg-id", &reg_id])),
        "bastion: error: MEF answered 4103: the registration belongs to another MEF Client"
    );
    assert_eq!(
        refused(&mef.client(
            OTHER_CSE,
            "report-command",
            &["--reg-id", &reg_id, "--cmd-id", &cmd_id, "--status", "20"],
        )),
        "bastion: error: MEF answered 4103: the registration belongs to another MEF Client"
    );
    // A status the MEF assigns is not a report.
    assert_eq!(
        refused(&mef.client(
            DEVICE,
            "report-command",
            &["--reg-id", &reg_id, "--cmd-id", &cmd_id, "--status", "10"],
        )),
        "bastion: error: MEF answered 4000: cmdStatusCode 10 (ISSUED) is assigned by the MEF, not reported"
    );

    // Reported OK: the answer is the next command, here NO_MORE_COMMANDS.
    let next = ok(&mef.client(
        DEVICE,
        "report-command",
        &["--reg-id", &reg_id, "--cmd-id", &cmd_id, "--status", "20"],
    ));
    assert_eq!(printed(&next, "class"), "0 NO_MORE_COMMANDS");
    assert_ne!(printed(&next, "cmd-id"), cmd_id);
    let listed = ok(&mef.operator(&["list"]));
    let recorded = format!("{reg_id}\tCdevice1\t{cmd_id}\tCERT_PROV\treported 20 OK\n");
    assert_eq!(listed, recorded);

    // A repeated report of the same cmdID is discarded (8.3.9.3 step 2b): the status
    // recorded stays, and the answer is again the next command.
    let repeated = ok(&mef.client(
        DEVICE,
        "report-command",
        &["--reg-id", &reg_id, "--cmd-id", &cmd_id, "--status", "41"],
    ));
    assert_eq!(printed(&repeated, "class"), "0 NO_MORE_COMMANDS");
    assert_eq!(ok(&mef.operator(&["list"])), recorded);

    // The next fetch, seen raw: NO_MORE_COMMANDS and its retryDuration.
    let text = mef.s_client(
        DEVICE,
        &raw(
            "GET",
            &format!("/{MEF_FQDN}/clients/{reg_id}/cmd"),
            "Cdevice1",
            "c1",
            true,
        ),
    );
    let got = answers(&text);
    assert_eq!(got.len(), 1, "{text}");
    assert_eq!(got[0].0, "2000");
    let body: serde_json::Value = serde_json::from_str(&got[0].1).expect("JSON");
    let cid = body["mef:cmd"]["cid"].as_str().expect("cid").to_owned();
    assert_eq!(cid.len(), 32);
    assert_eq!(
        body,
        serde_json::json!({"mef:cmd": {"cid": cid, "csc": 10,
            "dsc": {"ccl": 0, "arg": {"nmc": {"rtd": "PT600S"}}}}})
    );

    // A second command reported REPEATED_CMD_ID is recorded as such.
    let second = printed(
        &ok(&mef.add_command(
            &reg_id,
            &[
                "--class",
                "mo-node",
                "--object-path",
                "./m2m/authProfile/1",
                "--object-type",
                "authentication-profile",
                "--suid",
                "22",
            ],
        )),
        "cmd-id",
    );
    let fetched = ok(&mef.client(DEVICE, "next-command", &["--reg-id", &reg_id]));
    assert_eq!(printed(&fetched, "class"), "3 MO_NODE");
    assert_eq!(
        printed(&fetched, "args"),
        r#"{"mna":{"obp":"./m2m/authProfile/1","oti":1,"ota":{"suid":22}}}"#
    );
    ok(&mef.client(
        DEVICE,
        "report-command",
        &["--reg-id", &reg_id, "--cmd-id", &second, "--status", "40"],
    ));
    assert_eq!(
        ok(&mef.operator(&["list"])),
        format!("{recorded}{reg_id}\tCdevice1\t{second}\tMO_NODE\treported 40 REPEATED_CMD_ID\n")
    );
}

#[test]
fn ts0003_8_3_9_7_the_client_executes_cert_prov_by_est_and_reports_each_command() {
    let mef = Mef::start_with(true);
    let out = ok(&mef.client(DEVICE, "register", &["--admin-fqdn", ADMIN_FQDN]));
    let reg_id = printed(&out, "reg-id");
    let est = format!("https://{MEF_FQDN}:{}/.well-known/est", mef.port);
    let cert_prov = |subject_type: &str, subject: &str, protocol: &str| {
        printed(
            &ok(&mef.add_command(
                &reg_id,
                &[
                    "--class",
                    "cert-prov",
                    "--uri",
                    &est,
                    "--protocol",
                    protocol,
                    "--subject-type",
                    subject_type,
                    "--subject-id",
                    subject,
                ],
            )),
            "cmd-id",
        )
    };
    let mo_node = || {
        printed(
            &ok(&mef.add_command(
                &reg_id,
                &[
                    "--class",
                    "mo-node",
                    "--object-path",
                    "./m2m/trustAnchor/1",
                    "--object-type",
                    "trust-anchor",
                ],
            )),
            "cmd-id",
        )
    };
    let enrol = cert_prov("ae", DEVICE_CERTIFIED, "est");
    let node = mo_node();

    // One run: the certificate enrolled by EST over the association (20), the MO node
    // not supported (41), then NO_MORE_COMMANDS with its retryDuration.
    let creds = mef.dir.path().join("device-creds");
    let run = |dir: &Path| {
        mef.client(
            DEVICE,
            "run-commands",
            &["--reg-id", &reg_id, "--dir", &dir.to_string_lossy()],
        )
    };
    let done = run(&creds);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        stdout(&done),
        format!(
            "cmd-id: {enrol}\nclass: 1 CERT_PROV\nresult: 20 OK\n\
             certificate: {DEVICE_CERTIFIED}\ncredentials: {}\n\
             cmd-id: {node}\nclass: 3 MO_NODE\nresult: 41 CLASS_NOT_SUPPORTED\n\
             no-more-commands: retry PT600S\n",
            creds.display()
        )
    );
    assert_enrolled_certificate(
        &creds,
        &mef.file("mefca/ca.pem"),
        "onem2m://bastion.example/id-in/Cdevice1",
    );
    let recorded = format!(
        "{reg_id}\tCdevice1\t{enrol}\tCERT_PROV\treported 20 OK\n\
         {reg_id}\tCdevice1\t{node}\tMO_NODE\treported 41 CLASS_NOT_SUPPORTED\n"
    );
    assert_eq!(ok(&mef.operator(&["list"])), recorded);
    let next = ok(&mef.client(DEVICE, "next-command", &["--reg-id", &reg_id]));
    assert_eq!(printed(&next, "class"), "0 NO_MORE_COMMANDS");
    assert_eq!(printed(&next, "retry"), "PT600S");

    // A subject the MEF does not certify for this client: its EST refuses the CSR, a
    // server error (100); SCEP is not supported, an AE-ID is not a CSE-ID (43, 8.3.9.7
    // step 4). Nothing is written, and the run
    // still succeeds: every command was handled.
    let other = cert_prov("ae", "//bastion.example/id-in/Cother", "est");
    let scep = cert_prov("ae", DEVICE_CERTIFIED, "scep");
    let not_cse = cert_prov("cse", DEVICE_CERTIFIED, "est");
    let untouched = mef.dir.path().join("not-written");
    let failed = run(&untouched);
    assert!(failed.status.success(), "{failed:?}");
    assert_eq!(
        stdout(&failed),
        format!(
            "cmd-id: {other}\nclass: 1 CERT_PROV\nresult: 100 CERT_PROV_SERVER_ERROR\n\
             reason: simpleenroll: 403 the CSR asks for //bastion.example/id-in/Cother; \
             this enrolee may be certified as {DEVICE_CERTIFIED} only\n\
             cmd-id: {scep}\nclass: 1 CERT_PROV\nresult: 43 UNACCEPTABLE_ARGUMENTS\n\
             reason: only EST (certProvProtocolID 1) is supported\n\
             cmd-id: {not_cse}\nclass: 1 CERT_PROV\nresult: 43 UNACCEPTABLE_ARGUMENTS\n\
             reason: certSubjectID is not an absolute CSE-ID\n\
             no-more-commands: retry PT600S\n"
        )
    );
    assert!(!untouched.exists());
    assert_eq!(
        ok(&mef.operator(&["list"])),
        format!(
            "{recorded}{reg_id}\tCdevice1\t{other}\tCERT_PROV\treported 100 \
             CERT_PROV_SERVER_ERROR\n{reg_id}\tCdevice1\t{scep}\tCERT_PROV\treported 43 \
             UNACCEPTABLE_ARGUMENTS\n{reg_id}\tCdevice1\t{not_cse}\tCERT_PROV\treported 43 \
             UNACCEPTABLE_ARGUMENTS\n"
        )
    );

    // Another client cannot run this registration's commands: the refusal, exit 1.
    let foreign = mef.client(
        OTHER_CSE,
        "run-commands",
        &["--reg-id", &reg_id, "--dir", &untouched.to_string_lossy()],
    );
    assert_eq!(
        refused(&foreign),
        "bastion: error: MEF answered 4103: the registration belongs to another MEF Client"
    );
    assert_eq!(stdout(&foreign), "");
    assert!(!untouched.exists());
}
