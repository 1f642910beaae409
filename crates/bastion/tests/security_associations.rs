//! Security associations beyond the CSE's own listener (issue 12; TS-0003 7.3, 8.1.2,
//! 8.2; docs/security.md, docs/das.md): the DAS consulted over TLS, the registrar's
//! certificate checked against its CSE-ID, revocation kept fresh, key material read from
//! owner-only files, and certificates following the 10.1.1 profile. Every test runs the
//! real binaries over real sockets and real TLS handshakes.

use crate::common;

use bastion_client::{Client, ClientConfig, TlsConnector};
use bastion_das::{consult, DasError};
use bastion_proto::security_info::DynAuthDasRequest;
use bastion_proto::Rsc;
use bastion_tls::{ClientOptions, PskKey, TlsClient};
use common::das_policy::{cm2_token_rule, CM1_ACP_RULE};
use common::das_tls::*;
use common::provision::*;
use common::*;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "security-associations-test-secret-0123456789";
const ISSUER: &str = "//bastion.example/id-das/Cdas";
const OWNER: &str = "Cowner";
/// A PSK an AE holds with the DAS (bound there to Cm9).
const AE_KPSA_ID: &str = "cm9@bastion.example";
const AE_KPSA: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";

/// Cm1 granted by dynamic ACP info, Cm2 by a token for `Cowner/viaplain`.
fn das_policy() -> String {
    let rules = format!(
        "{CM1_ACP_RULE}{}",
        cm2_token_rule(&format!("{OWNER}/viaplain"))
    );
    common::das_policy::das_policy(&rules)
}

/// Writes the DAS policy and its signing secret (owner-only) into `dir`.
fn write_das_files(dir: &Path) -> std::path::PathBuf {
    common::das_policy::write_das_files(dir, SECRET, &das_policy())
}

fn dreq(or: &str) -> DynAuthDasRequest {
    DynAuthDasRequest {
        or: or.into(),
        op: 2,
        trid: Some(format!("/{CSE_NAME}/{OWNER}/data")),
        ..DynAuthDasRequest::default()
    }
}

fn psk_client(kpsa_id: &str, hex: &str) -> Client {
    let tls = TlsClient::psk(
        kpsa_id,
        PskKey::from_hex(hex).expect("key"),
        &ClientOptions::default(),
    )
    .expect("client");
    Client::with_connector(
        Arc::new(TlsConnector::new(tls)),
        ClientConfig {
            timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        },
    )
}

fn status(result: Result<impl std::fmt::Debug, DasError>) -> Rsc {
    match result {
        Err(DasError::Status(rsc)) => rsc,
        other => panic!("expected a oneM2M error status, got {other:?}"),
    }
}

/// Registers `OWNER` and `others`, and under `OWNER` an ACP granting `OWNER` everything:
/// the owner's path and the ACP.
async fn owner_and_acp(s: &Server, others: &[&str]) -> (String, serde_json::Value) {
    s.ae(OWNER).await;
    for ae in others {
        s.ae(ae).await;
    }
    let ae = format!("/{CSE_NAME}/{OWNER}");
    let acp = s
        .create_acp(&ae, OWNER, "own", rules(&[OWNER], 63), rules(&[OWNER], 63))
        .await;
    (ae, acp)
}

/// Creates under `ae` an enabled `<dynamicAuthorizationConsultation>` `dac_rn` pointing at
/// `dap`, and the containers `names` governed by `acp` and by that consultation: whoever
/// `acp` does not name is granted only what the DAS says.
async fn das_guarded_containers(
    s: &Server,
    ae: &str,
    acp: &serde_json::Value,
    dac_rn: &str,
    dap: &str,
    names: &[&str],
) {
    let dac = s
        .create(
            ae,
            OWNER,
            34,
            json!({"m2m:dac": {"rn": dac_rn, "dae": true, "dap": [dap]}}),
        )
        .await;
    dac.expect(2001);
    let dac_ri = dac.inner("m2m:dac")["ri"].clone();
    for name in names {
        s.create_cnt(
            ae,
            OWNER,
            json!({"rn": name, "acpi": [acp["ri"]], "daci": [dac_ri]}),
        )
        .await;
    }
}

/// Item 8: the CSE keeps dynamic ACP information only from a DAS it reached over an
/// authenticated association; a plain-HTTP DAS's `dai` grants nothing, its signed tokens
/// still verify on their own.
#[tokio::test]
async fn ts0003_7_3_2_2_dynamic_acp_info_only_from_an_authenticated_das() {
    let p = Provisioned::new();
    let policy = write_das_files(p.dir.path());
    let das = p.start_das(&policy, &["--listen", "127.0.0.1:0", "--insecure"]);
    let tls_url = das.tls_url.clone().expect("TLS listener");
    let plain_url = das.plain_url.clone().expect("plain listener");
    let s = p.start_cse(&format!(
        "das-timeout-ms = 3000\n\n[[authorization.token-issuer]]\nissuer = \"{ISSUER}\"\n\
         hs256-secret-file = \"{}\"\n",
        p.file("das.secret").display()
    ));
    let (ae, acp) = owner_and_acp(&s, &["Cm1", "Cm2"]).await;
    for (name, dap) in [("viaplain", &plain_url), ("viatls", &tls_url)] {
        das_guarded_containers(&s, &ae, &acp, &format!("dac-{name}"), dap, &[name]).await;
    }
    // The plain DAS answers with dai for Cm1, but nothing vouches for who answered.
    let r = s.get(&format!("{ae}/viaplain"), "Cm1").await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    assert!(s.log_shows("dynamic ACP info ignored", Duration::from_secs(5)));
    // The same answer over TLS-PSK, from the DAS bound to das-id, grants.
    s.get(&format!("{ae}/viatls"), "Cm1").await.expect(2000);
    s.delete(&format!("{ae}/viatls"), "Cm1").await.expect(4103);
    // A token is signed by its issuer: it verifies whichever way it came.
    s.get(&format!("{ae}/viaplain"), "Cm2").await.expect(2000);
}

/// Item 8: `bastion das` judges who asks by the security association, not by
/// `X-M2M-Origin`; a plain listener not started insecure answers nothing but 4107.
#[tokio::test]
async fn das_authenticates_requesters_by_their_association() {
    let p = Provisioned::new();
    add_psk(
        &p.file("das.store"),
        &p.file("store.key"),
        AE_KPSA_ID,
        AE_KPSA,
        &["--originator", "Cm9"],
    );
    let policy = write_das_files(p.dir.path());
    let das = p.start_das(&policy, &["--listen", "127.0.0.1:0"]);
    let tls_url = das.tls_url.clone().expect("TLS listener");
    let plain_url = das.plain_url.clone().expect("plain listener");

    // Plain HTTP, even naming the trusted CSE: a security association is required.
    let plain = consult(&Client::default(), &plain_url, CSE_ID, dreq("Cm1")).await;
    assert_eq!(status(plain), Rsc::SecurityAssociationRequired);
    let raw = reqwest::Client::new()
        .post(&plain_url)
        .header("X-M2M-Origin", CSE_ID)
        .header("X-M2M-RI", "r1")
        .header("Content-Type", "application/json")
        .body(r#"{"m2m:seci":{"sit":1,"dreq":{"or":"Cm1","op":2}}}"#)
        .send()
        .await
        .expect("plain request");
    assert_eq!(raw.headers()["x-m2m-rsc"], "4107");
    let body: serde_json::Value = raw.json().await.expect("json");
    assert_eq!(
        body["m2m:dbg"],
        "a DAS Server answers only inside a security association"
    );

    // An AE's association claiming the trusted CSE's ID in X-M2M-Origin: refused.
    let ae = psk_client(AE_KPSA_ID, AE_KPSA);
    let spoofed = consult(&ae, &tls_url, CSE_ID, dreq("Cm1")).await;
    assert_eq!(status(spoofed), Rsc::OriginatorHasNoPrivilege);
    // Honestly named, it may ask only for itself.
    let other = consult(&ae, &tls_url, "Cm9", dreq("Cm1")).await;
    assert_eq!(status(other), Rsc::OriginatorHasNoPrivilege);
    let own = consult(&ae, &tls_url, "Cm9", dreq("Cm9"))
        .await
        .expect("own");
    assert!(own.dai.is_none() && own.tkns.is_empty(), "{own:?}");

    // The CSE's association: the direct flow, dynamic ACP info for Cm1.
    let cse = psk_client(CSE_DAS_KPSA_ID, CSE_DAS_KPSA);
    let granted = consult(&cse, &tls_url, CSE_ID, dreq("Cm1"))
        .await
        .expect("granted");
    let dai = granted.dai.expect("dai");
    assert_eq!(
        serde_json::to_value(&dai.gp).expect("gp"),
        json!({"acr": [{"acor": ["Cm1"], "acop": 2}]})
    );
}

/// An IN-CSE `/id-in` whose TLS listener presents a certificate naming `registrar_id`,
/// and an MN-CSE registering with it by certificate, expecting the registrar `/id-in`.
fn registrar_and_registree(files: &Path, registrar_id: &str) -> (Server, Server) {
    write_key_file(&files.join("store.key"), STORE_KEY);
    ca_and_certificates(
        files,
        &[("in", registrar_id), ("mn", "//bastion.example/id-mn")],
    );
    let inc = Server::start_with_config(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"certificate\"]\n\
         certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
         credentials-key-file = \"{}\"\n",
        path(files, "in.pem"),
        path(files, "in.key"),
        path(files, "ca.pem"),
        path(files, "store.key"),
    ));
    let in_tls = tls_port(&inc);
    let mn = Server::start_with_config(&format!(
        "[cse]\ncse-id = \"/id-mn\"\ncse-name = \"cse-mn\"\ncse-type = \"mn\"\n\
         [registrar]\ncse-id = \"/id-in\"\ncse-base = \"cse-in\"\n\
         url = \"https://127.0.0.1:{in_tls}\"\nserver-name = \"localhost\"\n\
         certificate-file = \"{}\"\nkey-file = \"{}\"\nca-file = \"{}\"\n",
        path(files, "mn.pem"),
        path(files, "mn.key"),
        path(files, "ca.pem"),
    ));
    (inc, mn)
}

/// Item 9: a registree checks that the registrar's certificate names the configured
/// registrar CSE-ID (TS-0003 8.1.2.5, 8.2.2.2), not only the host name: a certificate
/// from the same CA, valid for `localhost`, naming another CSE, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_8_1_2_5_registree_checks_the_registrar_cse_id() {
    let files = tempfile::tempdir().expect("files");
    let (inc, mn) = registrar_and_registree(files.path(), "//bastion.example/id-other");
    assert!(
        mn.log_shows(
            r#"the server certificate does not name "//bastion.example/id-in""#,
            Duration::from_secs(20)
        ),
        "{}",
        mn.log()
    );
    let r = inc.get("/cse-in/id-mn", ADMIN).await;
    r.expect(4004);
    mn.get("/cse-mn/id-in", ADMIN).await.expect(4004);

    // The registrar whose certificate names /id-in is accepted.
    let files = tempfile::tempdir().expect("files");
    let (inc, mn) = registrar_and_registree(files.path(), "//bastion.example/id-in");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = inc.get("/cse-in/id-mn", ADMIN).await;
        if r.rsc == 2000 {
            assert_eq!(r.inner("m2m:csr")["csi"], "/id-mn");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never registered: {}\n{}",
            r.text,
            mn.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A CSE whose TLS listener takes certificates only, checked against `ca.crl`.
fn certificate_server(dir: &Path) -> (Server, u16) {
    write_key_file(&dir.join("store.key"), STORE_KEY);
    let srv = Server::start_with_config(&format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"certificate\"]\n\
         certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
         crl-files = [\"{}\"]\ncredentials-key-file = \"{}\"\n",
        path(dir, "srv.pem"),
        path(dir, "srv.key"),
        path(dir, "ca.pem"),
        path(dir, "ca.crl"),
        path(dir, "store.key"),
    ));
    let port = tls_port(&srv);
    (srv, port)
}

/// Item 11: a CRL replaced while the server runs is reloaded, and an association already
/// open with a certificate the new CRL revokes ends on its next request, as one with a
/// revoked PSK does: 4107 and `Connection: close`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts0003_8_1_2_2_a_reloaded_crl_ends_open_certificate_associations() {
    use http_body_util::{BodyExt, Full};
    let files = tempfile::tempdir().expect("files");
    let f = files.path();
    ca_and_certificates(
        f,
        &[
            ("srv", "//bastion.example/id-in"),
            ("client", "//bastion.example/id-in/Ccert1"),
            ("other", "//bastion.example/id-in/Cother"),
        ],
    );
    write_crl(f, &["other"], 1, 30, "ca.crl");
    let (srv, port) = certificate_server(f);

    let read = |name: &str| std::fs::read_to_string(f.join(name)).expect("pem");
    let client = TlsClient::certificate(
        &read("client.pem"),
        &read("client.key"),
        &read("ca.pem"),
        Some("//bastion.example/id-in"),
        &ClientOptions::default(),
    )
    .expect("client");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let stream = client.connect("localhost", tcp).await.expect("handshake");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("http handshake");
    let driver = tokio::spawn(conn);
    let request = |n: u32, create: bool| {
        let b = hyper::Request::builder()
            .header("X-M2M-Origin", "Ccert1")
            .header("X-M2M-RI", format!("crl-{n}"))
            .header("X-M2M-RVI", "3")
            .header("Accept", "application/json")
            .header("Host", "localhost");
        let (b, body) = if create {
            (
                b.method("POST")
                    .uri("/cse-in")
                    .header("Content-Type", "application/json;ty=2"),
                r#"{"m2m:ae": {"rn": "cert1", "api": "Ncert", "rr": false, "srv": ["3"]}}"#,
            )
        } else {
            (b.method("GET").uri("/cse-in/cert1"), "")
        };
        b.body(Full::new(bytes::Bytes::from(body)))
            .expect("request")
    };
    let created = sender.send_request(request(1, true)).await.expect("create");
    assert_eq!(created.headers()["x-m2m-rsc"], "2001");
    let _ = created.into_body().collect().await;
    sender.ready().await.expect("ready");
    let got = sender.send_request(request(2, false)).await.expect("get");
    assert_eq!(got.headers()["x-m2m-rsc"], "2000");
    let _ = got.into_body().collect().await;

    // The CA revokes the client's certificate; the operator replaces the CRL file.
    write_crl(f, &["other", "client"], 2, 30, "ca.crl");
    assert!(
        srv.log_shows("CRLs reloaded", Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    sender.ready().await.expect("connection still open");
    let refused = sender
        .send_request(request(3, false))
        .await
        .expect("refused");
    assert_eq!(refused.headers()["x-m2m-rsc"], "4107");
    assert_eq!(refused.headers()["connection"], "close");
    let body = refused
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        body["m2m:dbg"],
        "the security association's credential was revoked"
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("connection closed");
    assert!(closed.is_ok());
    // A new association with that certificate is refused at the handshake.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let again = match client.connect("localhost", tcp).await {
        Err(_) => true,
        // Under TLS 1.3 the client may finish before the server refuses its certificate.
        Ok(stream) => {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .expect("http handshake");
            tokio::spawn(conn);
            sender.send_request(request(4, false)).await.is_err()
        }
    };
    assert!(again, "a revoked certificate got a new association");
}

/// Item 11: a CRL past its nextUpdate makes OpenSSL refuse every certificate handshake;
/// the server says so at start, as an error naming the file, instead of only refusing.
#[tokio::test]
async fn ts0003_8_1_2_2_an_expired_crl_is_reported_at_start() {
    let files = tempfile::tempdir().expect("files");
    let f = files.path();
    ca_and_certificates(
        f,
        &[
            ("srv", "//bastion.example/id-in"),
            ("other", "//bastion.example/id-in/Cother"),
        ],
    );
    // nextUpdate = now: expired once the clock moves on.
    write_crl(f, &["other"], 1, 0, "ca.crl");
    next_second().await;
    next_second().await;
    let (srv, _port) = certificate_server(f);
    assert!(
        srv.log_shows(
            "CRL has expired: every certificate handshake fails until it is replaced",
            Duration::from_secs(10)
        ),
        "{}",
        srv.log()
    );
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("CRL has expired"))
        .expect("line");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&path(f, "ca.crl")), "{line}");
    // A fresh CRL written over it is taken, and the error is not repeated.
    write_crl(f, &["other"], 2, 30, "ca.crl");
    assert!(srv.log_shows("CRLs reloaded", Duration::from_secs(10)));
    assert_eq!(srv.log().matches("CRL has expired").count(), 1);
}

/// Item 12: a resource whose `acpi` names an ACP that no longer exists denies, also after
/// a restart; the entry is not dropped on reload (which left `acpi` empty and handed the
/// resource to the default policy, granting its creator everything).
#[tokio::test]
async fn ts0003_7_1_acpi_naming_a_deleted_acp_still_denies_after_restart() {
    let mut s = Server::start();
    s.ae(OWNER).await;
    let ae = format!("/{CSE_NAME}/{OWNER}");
    let acp = s
        .create_acp(
            &ae,
            OWNER,
            "others",
            rules(&["Cother"], 63),
            rules(&[OWNER], 63),
        )
        .await;
    s.create_cnt(&ae, OWNER, json!({"rn": "data", "acpi": [acp["ri"]]}))
        .await;
    let data = format!("{ae}/data");
    s.get(&data, OWNER).await.expect(4103);
    s.delete(&format!("{ae}/others"), OWNER).await.expect(2002);
    let r = s.get(&data, OWNER).await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    s.restart();
    let r = s.get(&data, OWNER).await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    // The administrator still reaches it, to repair acpi.
    s.get(&data, ADMIN).await.expect(2000);
}

/// Item 12: every component reads secret files the same way and refuses one that group
/// or others may read, without printing its content: a PSK file for `bastion
/// credentials add`, a DAS signing secret for `bastion das`, a token issuer's secret for
/// `bastion serve`.
#[test]
fn secret_files_readable_by_others_are_refused_everywhere() {
    use std::os::unix::fs::PermissionsExt;
    let p = Provisioned::new();
    let loose = |name: &str, content: &str| {
        let file = p.file(name);
        std::fs::write(&file, content).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        file
    };
    let refused = |out: std::process::Output, file: &Path, secret: &str| {
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "{} is accessible by group or others",
                file.display()
            )),
            "{stderr}"
        );
        assert!(!stderr.contains(secret), "the secret was printed: {stderr}");
    };

    let psk = loose("loose.psk", AE_KPSA);
    let out = bastion(&[
        "credentials",
        "add",
        "--store",
        &p.file("das.store").to_string_lossy(),
        "--key-file",
        &p.file("store.key").to_string_lossy(),
        "--id",
        AE_KPSA_ID,
        "--psk-file",
        &psk.to_string_lossy(),
    ]);
    refused(out, &psk, AE_KPSA);

    let secret = loose("das.secret", SECRET);
    let policy = p.file("das.toml");
    std::fs::write(&policy, das_policy()).expect("policy");
    let out = bastion(&[
        "das",
        "--listen",
        "127.0.0.1:0",
        "--policy",
        &policy.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    refused(out, &secret, SECRET);

    let data = tempfile::tempdir().expect("data");
    let config = p.file("bastion.toml");
    std::fs::write(
        &config,
        format!(
            "[[authorization.token-issuer]]\nissuer = \"{ISSUER}\"\nhs256-secret-file = \"{}\"\n",
            secret.display()
        ),
    )
    .expect("config");
    let out = bastion(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data.path().to_string_lossy(),
        "--config",
        &config.to_string_lossy(),
    ]);
    refused(out, &secret, SECRET);
}

/// Item 10: `bastion cert` issues identities as absolute URIs (`onem2m://sp/...`, RFC 5280
/// 4.2.1.6) and can constrain a CA to its SP (TS-0003 8.1.2.2, 10.1.1.5): `bastion serve`
/// accepts a certificate of that CA naming an AE-ID of the SP and refuses one naming
/// another SP's AE-ID at the handshake.
#[test]
fn ts0003_10_1_1_5_a_constrained_ca_issues_only_for_its_sp() {
    let files = tempfile::tempdir().expect("files");
    let f = files.path();
    make_ca(f, "SP CA", &["--sp-fqdn", SP_FQDN]);
    issue_certificates(
        f,
        &[
            ("srv", "//bastion.example/id-in"),
            ("inside", "//bastion.example/id-in/Cinside"),
            ("outside", "//elsewhere.example/id-in/Coutside"),
        ],
    );
    write_crl(f, &[], 1, 30, "ca.crl");
    let (_srv, port) = certificate_server(f);
    let url = format!("https://127.0.0.1:{port}");
    let req = |name: &str, from: &str| {
        let body = format!(
            r#"{{"m2m:ae": {{"rn": "{name}", "api": "N{name}", "rr": false, "srv": ["3"]}}}}"#
        );
        cert_req(
            &url,
            f,
            name,
            &[
                "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", from, "--body", &body,
            ],
        )
    };
    let inside = req("inside", "Cinside");
    let stdout = String::from_utf8_lossy(&inside.stdout);
    assert_eq!(stdout.lines().next(), Some("2001"), "{inside:?}");
    let outside = req("outside", "Coutside");
    assert_eq!(outside.status.code(), Some(1), "{outside:?}");
    assert!(outside.stdout.is_empty(), "{outside:?}");
}

/// Item 8 with certificates: the CSE checks that the DAS's certificate names `das-id`
/// (a DAS from the same CA under another AE-ID grants nothing), and the DAS binds the
/// CSE's association to the CSE-ID its certificate names.
#[tokio::test]
async fn ts0003_7_3_2_2_das_over_certificates_checks_the_das_identity() {
    let p = Provisioned::new();
    let f = p.dir.path();
    ca_and_certificates(
        f,
        &[
            ("das", DAS_ID),
            ("fake", "//bastion.example/id-das/Cfake"),
            ("cse", "//bastion.example/id-in"),
        ],
    );
    let policy = write_das_files(f);
    let start = |cert: &str| {
        p.start_das(
            &policy,
            &[
                "--cert",
                &path(f, &format!("{cert}.pem")),
                "--key",
                &path(f, &format!("{cert}.key")),
                "--ca",
                &path(f, "ca.pem"),
            ],
        )
    };
    let das = start("das");
    let fake = start("fake");
    let s = Server::start_with_config(&format!(
        "[authorization]\ndas-timeout-ms = 3000\ndas-id = \"{DAS_ID}\"\n\
         das-certificate-file = \"{}\"\ndas-key-file = \"{}\"\ndas-ca-file = \"{}\"\n\
         das-server-name = \"localhost\"\n",
        path(f, "cse.pem"),
        path(f, "cse.key"),
        path(f, "ca.pem"),
    ));
    let (ae, acp) = owner_and_acp(&s, &["Cm1"]).await;
    for (name, server) in [("genuine", &das), ("impostor", &fake)] {
        let dap = server.tls_url.clone().expect("TLS listener");
        das_guarded_containers(&s, &ae, &acp, &format!("dac-{name}"), &dap, &[name]).await;
    }
    s.get(&format!("{ae}/genuine"), "Cm1").await.expect(2000);
    let r = s.get(&format!("{ae}/impostor"), "Cm1").await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    assert!(s.log_shows(
        &format!("the server certificate does not name \"{DAS_ID}\""),
        Duration::from_secs(5)
    ));
}

/// Item 8: the PSK the CSE shares with the DAS is looked up in the CSE's credential store
/// at every consultation; once revoked there (by another process), no consultation goes
/// out, kept-alive connection or not, and nothing more is granted.
#[tokio::test]
async fn das_consultations_stop_when_the_shared_psk_is_revoked() {
    let p = Provisioned::new();
    let policy = write_das_files(p.dir.path());
    let das = p.start_das(&policy, &[]);
    let dap = das.tls_url.clone().expect("TLS listener");
    let s = p.start_cse("das-timeout-ms = 3000\n");
    let (ae, acp) = owner_and_acp(&s, &["Cm1"]).await;
    das_guarded_containers(&s, &ae, &acp, "dac", &dap, &["before", "after"]).await;
    s.get(&format!("{ae}/before"), "Cm1").await.expect(2000);
    ok(&bastion(&[
        "credentials",
        "revoke",
        "--store",
        &p.file("cse.store").to_string_lossy(),
        "--key-file",
        &p.file("store.key").to_string_lossy(),
        "--id",
        CSE_DAS_KPSA_ID,
    ]));
    assert!(s.log_shows("credential store reloaded", Duration::from_secs(10)));
    let r = s.get(&format!("{ae}/after"), "Cm1").await;
    r.expect(4103);
    assert_eq!(r.dbg(), "originator has no privilege");
    assert!(s.log_shows(
        &format!("the PSK {CSE_DAS_KPSA_ID} shared with the DAS was revoked"),
        Duration::from_secs(5)
    ));
}

/// Item 11: a CRL within a day of its nextUpdate is reported as a warning at start, while
/// certificates still work, so the operator can replace it before it blocks them.
#[tokio::test]
async fn ts0003_8_1_2_2_a_crl_about_to_expire_is_a_warning() {
    let files = tempfile::tempdir().expect("files");
    let f = files.path();
    ca_and_certificates(
        f,
        &[
            ("srv", "//bastion.example/id-in"),
            ("other", "//bastion.example/id-in/Cother"),
        ],
    );
    write_crl(f, &["other"], 1, 1, "ca.crl");
    let (srv, _port) = certificate_server(f);
    assert!(
        srv.log_shows("CRL expires soon", Duration::from_secs(10)),
        "{}",
        srv.log()
    );
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("CRL expires soon"))
        .expect("line");
    assert!(line.contains("WARN"), "{line}");
    assert!(!log.contains("CRL has expired"));
}
