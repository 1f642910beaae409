//! Security associations end to end (TS-0003 7.2.1, 8.2.2.1, 8.2.2.2; docs/security.md):
//! the real binary with a TLS listener beside the plain one, credentials managed with
//! `bastion credentials`, certificates made with `bastion cert`, requests sent with
//! `bastion req` or, for kept-alive connections, with hyper over `bastion_tls::TlsClient`.

use crate::common;

use common::provision::*;
use common::*;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

const KPSA_ID: &str = "sensor1@bastion.example";
const KPSA: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const WRONG_KPSA: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const STORE_KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const AE_BODY: &str =
    r#"{"m2m:ae": {"rn": "sensor1", "api": "Nsensor", "rr": false, "srv": ["3"]}}"#;

/// A server with a TLS listener (PSK and certificates) and its files.
struct TlsServer {
    srv: Server,
    files: tempfile::TempDir,
    tls_port: u16,
}

impl TlsServer {
    fn start() -> TlsServer {
        TlsServer::start_checking_crl(false)
    }

    /// With `crl`, a third client certificate (`Crevoked`) is issued and revoked by a CRL
    /// the listener checks.
    fn start_checking_crl(crl: bool) -> TlsServer {
        let files = tempfile::tempdir().expect("files");
        let f = files.path();
        write_key_file(&f.join("store.key"), STORE_KEY);
        ca_and_certificates(
            f,
            &[
                ("srv", "//bastion.example/id-in"),
                ("client", "//bastion.example/id-in/Ccert1"),
                ("revoked", "//bastion.example/id-in/Crevoked"),
            ],
        );
        let mut config = format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"psk\", \"certificate\"]\n\
             certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
             require-client-certificate = false\ncredentials-key-file = \"{}\"\n",
            path(f, "srv.pem"),
            path(f, "srv.key"),
            path(f, "ca.pem"),
            path(f, "store.key")
        );
        if crl {
            write_crl(f, &["revoked"], 1, 30, "ca.crl");
            config.push_str(&format!("crl-files = [\"{}\"]\n", path(f, "ca.crl")));
        }
        let srv = Server::start_with_config(&config);
        let tls_port = tls_port(&srv);
        TlsServer {
            srv,
            files,
            tls_port,
        }
    }

    fn file(&self, name: &str) -> String {
        path(self.files.path(), name)
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }

    fn credentials(&self, args: &[&str]) -> Output {
        let dir = self.srv.data_dir().to_string_lossy().into_owned();
        let key = self.file("store.key");
        let mut all = vec!["credentials"];
        all.extend_from_slice(&args[..1]);
        all.extend_from_slice(&["--data-dir", &dir, "--key-file", &key]);
        all.extend_from_slice(&args[1..]);
        bastion(&all)
    }

    /// `bastion req` over TLS-PSK with `key`.
    fn psk_req(&self, key: &str, args: &[&str]) -> Output {
        let url = self.url();
        let key_file = self.file(&format!("{}.hex", &key[..8]));
        write_key_file(std::path::Path::new(&key_file), key);
        psk_req(&url, KPSA_ID, &key_file, args)
    }

    /// `bastion req` over certificate TLS with the client certificate `name`.pem.
    fn cert_req(&self, name: &str, args: &[&str]) -> Output {
        cert_req(&self.url(), self.files.path(), name, args)
    }

    /// Adds the PSK bound to Csensor1 and waits until the server's reload lets it in.
    fn provision_psk(&self) {
        let key_file = self.file("kpsa.hex");
        write_key_file(std::path::Path::new(&key_file), KPSA);
        let added = ok(&self.credentials(&[
            "add",
            "--id",
            KPSA_ID,
            "--psk-file",
            &key_file,
            "--originator",
            "Csensor1",
        ]));
        assert_eq!(
            added,
            format!("added {KPSA_ID}\tpsk\tae Csensor1\tactive\n")
        );
        assert!(!added.contains(KPSA), "a key was printed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.psk_req(KPSA, &["--to", "/cse-in", "--from", "Csensor1"]);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if stdout.lines().next().is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "PSK never accepted: {out:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn ts0003_8_2_2_1_psk_association_binds_the_originator() {
    let s = TlsServer::start();
    s.provision_psk();
    // Registration over the association, From = the bound AE-ID.
    let created = s.psk_req(
        KPSA,
        &[
            "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", "Csensor1", "--body",
            AE_BODY,
        ],
    );
    assert_eq!(printed_rsc(&created), "2001", "{created:?}");
    assert!(created.status.success());
    assert!(String::from_utf8_lossy(&created.stdout).contains("\"aei\": \"Csensor1\""));
    let got = s.psk_req(KPSA, &["--to", "/cse-in/sensor1", "--from", "Csensor1"]);
    assert_eq!(printed_rsc(&got), "2000");
    assert!(got.status.success());
    // 7.2.1: another originator on that association is not authenticated.
    let other = s.psk_req(KPSA, &["--to", "/cse-in/sensor1", "--from", "Cother"]);
    assert_eq!(printed_rsc(&other), "4106");
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("request answered with rsc 4106"));
    // Not even the admin's name.
    let admin = s.psk_req(KPSA, &["--to", "/cse-in", "--from", ADMIN]);
    assert_eq!(printed_rsc(&admin), "4106");
    // The list names the credential and its binding, never the key.
    let listed = ok(&s.credentials(&["list"]));
    assert_eq!(listed, format!("{KPSA_ID}\tpsk\tae Csensor1\tactive\n"));
}

#[test]
fn ts0003_8_2_2_1_wrong_key_fails_the_handshake() {
    let s = TlsServer::start();
    s.provision_psk();
    let out = s.psk_req(WRONG_KPSA, &["--to", "/cse-in", "--from", "Csensor1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // TLS 1.3: the server cannot validate the PSK binder and sends decrypt_error
    // (RFC 8446 6.2).
    assert_eq!(
        stderr,
        "bastion: error: no response: TLS handshake failed: tlsv1 alert decrypt error\n"
    );
    assert!(!stderr.contains(&WRONG_KPSA[2..]), "the key was printed");
    assert!(s
        .srv
        .log_shows("TLS handshake refused", Duration::from_secs(5)));
}

#[test]
fn ts0003_8_2_2_2_certificate_client_bound_to_its_san_ae_id() {
    let s = TlsServer::start();
    let req = |args: &[&str]| s.cert_req("client", args);
    let body = r#"{"m2m:ae": {"rn": "cert1", "api": "Ncert", "rr": false, "srv": ["3"]}}"#;
    let created = req(&[
        "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", "Ccert1", "--body", body,
    ]);
    assert_eq!(
        printed_rsc(&created),
        "2001",
        "{created:?}\n{}",
        s.srv.log()
    );
    assert_eq!(
        printed_rsc(&req(&["--to", "/cse-in/cert1", "--from", "Ccert1"])),
        "2000"
    );
    assert_eq!(
        printed_rsc(&req(&["--to", "/cse-in/cert1", "--from", "Csensor1"])),
        "4106"
    );
}

#[test]
fn ts0003_10_1_crl_revoked_certificate_is_refused_by_serve() {
    let s = TlsServer::start_checking_crl(true);
    // The certificate the CRL names never gets an association.
    let out = s.cert_req("revoked", &["--to", "/cse-in", "--from", "Crevoked"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    // Under TLS 1.3 the client has finished its side when the server rejects its
    // certificate, so it sees the refusal as a closed connection.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("bastion: error: no response: HTTP exchange failed: "),
        "{stderr}"
    );
    assert!(s
        .srv
        .log_shows("TLS handshake refused", Duration::from_secs(5)));
    // The CA's other certificates still work: the CRL was read, not the CA distrusted.
    let body = r#"{"m2m:ae": {"rn": "cert1", "api": "Ncert", "rr": false, "srv": ["3"]}}"#;
    let created = s.cert_req(
        "client",
        &[
            "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", "Ccert1", "--body", body,
        ],
    );
    assert_eq!(
        printed_rsc(&created),
        "2001",
        "{created:?}\n{}",
        s.srv.log()
    );
    // Without the CRL the same certificate registers: the CRL is what refused it.
    let plain = TlsServer::start();
    let body = r#"{"m2m:ae": {"rn": "rev", "api": "Nrev", "rr": false, "srv": ["3"]}}"#;
    let created = plain.cert_req(
        "revoked",
        &[
            "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", "Crevoked", "--body", body,
        ],
    );
    assert_eq!(printed_rsc(&created), "2001", "{created:?}");
}

#[tokio::test]
async fn ts0001_9_6_3_csebase_poa_advertises_the_tls_listener_first() {
    let s = TlsServer::start();
    let cb = s.srv.get("/cse-in", ADMIN).await;
    assert_eq!(cb.status, 200);
    let poa = cb.body["m2m:cb"]["poa"].clone();
    assert_eq!(
        poa,
        serde_json::json!([
            format!("https://127.0.0.1:{}", s.tls_port),
            format!("http://127.0.0.1:{}", s.srv.port()),
        ])
    );
}

/// `[http] advertise = false`: the plain listener still serves, but the CSEBase `poa`
/// names only the TLS listener.
#[tokio::test]
async fn ts0001_9_6_3_an_unadvertised_plain_listener_is_not_in_the_poa() {
    let files = tempfile::tempdir().expect("files");
    let f = files.path();
    write_key_file(&f.join("store.key"), STORE_KEY);
    let srv = Server::start_with_config(&format!(
        "[http]\nadvertise = false\n[tls]\nlisten = \"127.0.0.1:0\"\n\
         credentials-key-file = \"{}\"\n",
        path(f, "store.key")
    ));
    let cb = srv.get("/cse-in", ADMIN).await;
    assert_eq!(cb.status, 200);
    assert_eq!(
        cb.body["m2m:cb"]["poa"],
        serde_json::json!([format!("https://127.0.0.1:{}", tls_port(&srv))])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_cuts_a_kept_alive_association() {
    use http_body_util::{BodyExt, Empty};
    let s = TlsServer::start();
    s.provision_psk();
    let created = s.psk_req(
        KPSA,
        &[
            "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", "Csensor1", "--body",
            AE_BODY,
        ],
    );
    assert_eq!(printed_rsc(&created), "2001");

    let stream = psk_stream(s.tls_port, KPSA_ID, KPSA).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("http handshake");
    let driver = tokio::spawn(conn);
    let get = |n: u32| {
        hyper::Request::get("/cse-in/sensor1")
            .header("X-M2M-Origin", "Csensor1")
            .header("X-M2M-RI", format!("keep-{n}"))
            .header("X-M2M-RVI", "3")
            .header("Accept", "application/json")
            .header("Host", "localhost")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    let first = sender.send_request(get(1)).await.expect("first");
    assert_eq!(first.headers()["x-m2m-rsc"], "2000");
    let _ = first.into_body().collect().await;

    let revoked = ok(&s.credentials(&["revoke", "--id", KPSA_ID]));
    assert_eq!(
        revoked,
        format!("revoked {KPSA_ID}\tpsk\tae Csensor1\trevoked\n")
    );
    // The server re-reads the store within a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    sender.ready().await.expect("connection still open");
    let second = sender.send_request(get(2)).await.expect("second");
    assert_eq!(second.headers()["x-m2m-rsc"], "4107");
    assert_eq!(second.headers()["connection"], "close");
    let _ = second.into_body().collect().await;
    // The server closed the connection after that answer.
    let closed = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("connection closed");
    assert!(closed.is_ok());
    // And a new association with the revoked credential is refused.
    let again = s.psk_req(KPSA, &["--to", "/cse-in/sensor1", "--from", "Csensor1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("TLS handshake failed"));
}

#[test]
fn sec_2014_0363_plain_listener_off_loopback_needs_insecure() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path().to_string_lossy().into_owned();
    let out = bastion(&["serve", "--listen", "0.0.0.0:0", "--data-dir", &d]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "invalid configuration: http listen 0.0.0.0:0 is not a loopback address: plain \
             HTTP carries no security association"
        ),
        "{stderr}"
    );
    assert!(!PathBuf::from(&d).join("bastion.db").exists());
}
