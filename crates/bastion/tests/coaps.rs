//! CoAP over DTLS (`coaps://`, TS-0008 7 with TS-0003 10.2; docs/bindings.md) driven by
//! libcoap's `coap-client-openssl` with DTLS-PSK (installed by `scripts/coap-client-env`)
//! and `openssl s_client -dtls1_2`, against the real `bastion serve` with `[coap]
//! tls-listen` on the HTTPS listener's credential store. Under `CI=true` a missing
//! client fails; elsewhere the test says why and skips.
//!
//! How the client's answers are read: tests/common/coap_client.rs.

use crate::common;

use common::coap_client::{available, Coap};
use common::identity::{Bound, PskServer};
use common::provision::ca_and_certificates;
use common::{path, write_key_file, Server};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT: &str = "coap-client-openssl";
/// libcoap reads `-k` as text: the key is printable, its hex goes into the store.
const KEY: &str = "coaps-test-key-0123456789abcdef!";
const KPSA: &str = "coapsae@bastion.example";
const AE_ID: &str = "Ccoapsae";
/// The credential store's key (test only).
const STORE_KEY: &str = "5a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The CoAPS address a server logged when it started serving.
fn coaps_addr(server: &Server) -> String {
    const MARK: &str = "serving CoAP requests over DTLS addr=";
    assert!(
        server.log_shows(MARK, Duration::from_secs(20)),
        "no CoAPS listener:\n{}",
        server.log()
    );
    let log = server.log();
    let at = log.find(MARK).expect("logged") + MARK.len();
    log[at..]
        .split_whitespace()
        .next()
        .expect("address")
        .to_owned()
}

/// A server with a TLS-PSK listener and a CoAPS listener on it, one PSK credential bound
/// to [`AE_ID`].
fn start() -> (PskServer, String) {
    let psk = PskServer::start("[coap]\ntls-listen = \"127.0.0.1:0\"\n");
    psk.add_psk(KPSA, &hex(KEY), Bound::Ae(AE_ID));
    let addr = coaps_addr(&psk.srv);
    (psk, addr)
}

fn ae(rn: &str) -> Value {
    json!({"m2m:ae": {"rn": rn, "api": "Ncoaps.test", "rr": false, "srv": ["3"]}})
}

#[test]
fn an_ae_bound_to_a_psk_registers_and_writes_over_dtls() {
    if !available() {
        return;
    }
    let (psk, addr) = start();
    let client = Coap::psk(CLIENT, &addr, KPSA, KEY);
    let registered = client.create("cse-in", AE_ID, 2, &ae("coapsae"));
    registered.expect("2.01", 2001);
    assert_eq!(registered.json()["m2m:ae"]["aei"], AE_ID);
    client
        .create(
            "cse-in/coapsae",
            AE_ID,
            3,
            &json!({"m2m:cnt": {"rn": "data"}}),
        )
        .expect("2.01", 2001);
    client
        .create(
            "cse-in/coapsae/data",
            AE_ID,
            4,
            &json!({"m2m:cin": {"cnf": "text/plain:0", "con": "over dtls"}}),
        )
        .expect("2.01", 2001);
    let latest = client.retrieve("cse-in/coapsae/data/la", AE_ID, &[]);
    latest.expect("2.05", 2000);
    assert_eq!(latest.json()["m2m:cin"]["con"], "over dtls");
    // Another originator inside this association: impersonation, 4.03 with 4106.
    let other = client.retrieve("cse-in/coapsae/data/la", "Cother", &[]);
    other.expect("4.03", 4106);
    // The same credential works on HTTPS: one store for both listeners.
    let https = psk.req(
        KPSA,
        &hex(KEY),
        &["--to", "/cse-in/coapsae/data/la", "--from", AE_ID],
    );
    assert_eq!(https.rsc, 2000, "{}", https.body);
    // The CSEBase advertises the secure point of access.
    let base = client.retrieve("cse-in", AE_ID, &[]);
    base.expect("2.05", 2000);
    let poa = base.json()["m2m:cb"]["poa"].clone();
    assert!(
        poa.as_array()
            .expect("poa")
            .contains(&json!(format!("coaps://{addr}"))),
        "{poa}"
    );
}

#[test]
fn a_wrong_key_or_a_revoked_credential_gets_no_answer() {
    if !available() {
        return;
    }
    let (psk, addr) = start();
    let wrong = Coap::psk(CLIENT, &addr, KPSA, "coaps-test-key-0123456789abcdeX");
    let refused = wrong.try_create("cse-in", AE_ID, 2, &ae("wrongkey"));
    assert!(refused.is_err(), "answered: {refused:?}");
    let unknown = Coap::psk(CLIENT, &addr, "nobody@bastion.example", KEY);
    let refused = unknown.try_create("cse-in", AE_ID, 2, &ae("unknown"));
    assert!(refused.is_err(), "answered: {refused:?}");

    let client = Coap::psk(CLIENT, &addr, KPSA, KEY);
    client
        .create("cse-in", AE_ID, 2, &ae("coapsae"))
        .expect("2.01", 2001);
    psk.revoke(KPSA);
    // The server sees the revocation within about a second; from then on the handshake
    // fails and nothing is answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.try_retrieve("cse-in/coapsae", AE_ID).is_ok() {
        assert!(Instant::now() < deadline, "still answered after revocation");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An association that outlives its credential: the next request is answered 4107 and
/// the session dropped. libcoap's client makes one association per run, so the
/// long-lived association is `bastion_tls::DtlsClient`'s.
#[tokio::test]
async fn a_request_in_an_association_whose_credential_is_revoked_gets_4107() {
    if !available() {
        return;
    }
    let (psk, addr) = start();
    Coap::psk(CLIENT, &addr, KPSA, KEY)
        .create("cse-in", AE_ID, 2, &ae("coapsae"))
        .expect("2.01", 2001);
    let key = bastion_tls::PskKey::from_hex(&hex(KEY)).expect("key");
    let client = bastion_tls::DtlsClient::psk(KPSA, key, &bastion_tls::ClientOptions::default())
        .expect("client");
    let mut session = client
        .connect("localhost", addr.parse().expect("addr"))
        .await
        .expect("handshake");
    let first = exchange(&mut session, 1).await.expect("answered");
    assert_eq!(rsc(&first), 2000);
    psk.revoke(KPSA);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut mid = 2;
    let revoked = loop {
        let answer = exchange(&mut session, mid).await.expect("answered");
        if rsc(&answer) == 4107 {
            break answer;
        }
        assert!(Instant::now() < deadline, "never 4107");
        mid += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        revoked.header.code,
        coap_lite::MessageClass::Response(coap_lite::ResponseType::Forbidden)
    );
    // The session is gone: nothing more is answered in it.
    assert!(exchange(&mut session, mid + 1).await.is_none());
}

/// One confirmable RETRIEVE of `cse-in/coapsae` as [`AE_ID`] in `session`; `None` when
/// nothing came back within two seconds.
async fn exchange(
    session: &mut bastion_tls::DtlsConnection,
    mid: u16,
) -> Option<coap_lite::Packet> {
    let mut request = coap_lite::Packet::new();
    request.header.set_type(coap_lite::MessageType::Confirmable);
    request.header.code = coap_lite::MessageClass::Request(coap_lite::RequestType::Get);
    request.header.message_id = mid;
    request.set_token(mid.to_be_bytes().to_vec());
    request.add_option(coap_lite::CoapOption::UriPath, b"cse-in".to_vec());
    request.add_option(coap_lite::CoapOption::UriPath, b"coapsae".to_vec());
    request.add_option(
        coap_lite::CoapOption::Unknown(279),
        AE_ID.as_bytes().to_vec(),
    );
    request.add_option(coap_lite::CoapOption::Unknown(283), b"r1".to_vec());
    request.add_option(coap_lite::CoapOption::Unknown(271), b"3".to_vec());
    session
        .send(&request.to_bytes().expect("encoded"))
        .await
        .ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(2), session.recv())
        .await
        .ok()?
        .ok()?;
    coap_lite::Packet::from_bytes(&answer).ok()
}

fn rsc(packet: &coap_lite::Packet) -> u64 {
    let v = packet
        .get_first_option(coap_lite::CoapOption::Unknown(307))
        .expect("RSC option");
    v.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
}

/// TS-0003's mandatory DTLS suite: a client offering only PSK-AES128-CCM8 gets it.
#[test]
fn the_mandatory_dtls_suite_is_negotiated() {
    if !available() {
        return;
    }
    let (_psk, addr) = start();
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-dtls1_2", "-connect", &addr])
        .args(["-psk_identity", KPSA, "-psk", &hex(KEY)])
        .args(["-cipher", "PSK-AES128-CCM8", "-brief"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    // Closing stdin ends the session once the handshake is done.
    drop(s_client.stdin.take());
    let out = s_client.wait_with_output().expect("s_client ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Ciphersuite: PSK-AES128-CCM8"),
        "no PSK-AES128-CCM8 session:\n{text}"
    );
}

/// `coaps` judges handshakes with the HTTPS listener's server: without `[tls]` there is
/// none, and `bastion serve` refuses to start (configuration error, exit 2).
#[test]
fn a_coaps_listener_needs_tls() {
    let dir = tempfile::tempdir().expect("data dir");
    let data = dir.path().to_string_lossy().into_owned();
    let out = common::bastion(&[
        "serve",
        "--data-dir",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--coaps-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("[coap] tls-listen (--coaps-listen) needs [tls]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The certificate framework over DTLS: libcoap's client presents a certificate naming
/// AE-ID `Ccert1` (issued by the CA the TLS listener trusts) and registers as that AE.
#[test]
fn an_ae_with_a_certificate_registers_over_dtls() {
    if !available() {
        return;
    }
    let files = tempfile::tempdir().expect("files");
    let f = files.path();
    write_key_file(&f.join("store.key"), STORE_KEY);
    ca_and_certificates(
        f,
        &[
            ("srv", "//bastion.example/id-in"),
            ("client", "//bastion.example/id-in/Ccert1"),
        ],
    );
    let srv = Server::start_with_config(&format!(
        "[coap]\ntls-listen = \"127.0.0.1:0\"\n\
         [tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"certificate\"]\n\
         certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
         credentials-key-file = \"{}\"\n",
        path(f, "srv.pem"),
        path(f, "srv.key"),
        path(f, "ca.pem"),
        path(f, "store.key")
    ));
    let addr = coaps_addr(&srv);
    let (cert, key, ca) = (
        path(f, "client.pem"),
        path(f, "client.key"),
        path(f, "ca.pem"),
    );
    let client = Coap::certificate(CLIENT, &addr, &cert, &key, &ca);
    let registered = client.create("cse-in", "Ccert1", 2, &ae("cert1"));
    registered.expect("2.01", 2001);
    assert_eq!(registered.json()["m2m:ae"]["aei"], "Ccert1");
    client
        .retrieve("cse-in/cert1", "Cother", &[])
        .expect("4.03", 4106);
}

/// libcoap's `coap-server-openssl` with DTLS-PSK on a free port, logging every PDU
/// (`-v 7`) to a file: the AE's own CoAP/DTLS server.
struct AeServer {
    child: std::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    /// Its DTLS port (libcoap serves DTLS on the plain port + 1).
    dtls_port: u16,
}

impl AeServer {
    fn start(key: &str) -> AeServer {
        let dir = tempfile::tempdir().expect("dir");
        let log = dir.path().join("coap-server.log");
        let plain = free_port_pair();
        let child = Command::new("coap-server-openssl")
            .args([
                "-A",
                "127.0.0.1",
                "-p",
                &plain.to_string(),
                "-k",
                key,
                "-v",
                "7",
            ])
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("coap-server-openssl (libcoap3-bin, scripts/coap-client-env)");
        let server = AeServer {
            child,
            log,
            _dir: dir,
            dtls_port: plain + 1,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.listening() {
            assert!(
                Instant::now() < deadline,
                "coap-server-openssl never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn listening(&self) -> bool {
        std::net::UdpSocket::bind(("127.0.0.1", self.dtls_port)).is_err()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn shows(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for AeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port `p` with `p` and `p + 1` both free.
fn free_port_pair() -> u16 {
    loop {
        let first = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = first.local_addr().expect("addr").port();
        if port < u16::MAX && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Registers [`AE_ID`] over DTLS-PSK with `poa`, a container `data` and a subscription
/// to it whose target is the AE itself, then writes `first` into the container.
fn subscribed_ae_writes(client: &Coap, poa: &str) {
    let body = json!({"m2m:ae": {"rn": "coapsae", "api": "Ncoaps.test", "rr": true,
        "srv": ["3"], "poa": [poa]}});
    client
        .create("cse-in", AE_ID, 2, &body)
        .expect("2.01", 2001);
    client
        .create(
            "cse-in/coapsae",
            AE_ID,
            3,
            &json!({"m2m:cnt": {"rn": "data"}}),
        )
        .expect("2.01", 2001);
    client
        .create(
            "cse-in/coapsae/data",
            AE_ID,
            23,
            &json!({"m2m:sub": {"rn": "sub", "nu": [AE_ID], "enc": {"net": [3]}}}),
        )
        .expect("2.01", 2001);
    client
        .create(
            "cse-in/coapsae/data",
            AE_ID,
            4,
            &json!({"m2m:cin": {"cnf": "text/plain:0", "con": "first"}}),
        )
        .expect("2.01", 2001);
}

/// TS-0008 6.3.1 with TS-0003 8.2.1, against libcoap's own DTLS server: the CSE opens an
/// association to the AE's `coaps://` point of access presenting the AE's own KpsaID
/// (one key serves both directions of the pair) and asks it to verify that point of
/// access with a CoAP POST carrying the oneM2M options. libcoap's server gives no oneM2M
/// answer, so the point of access stays unverified and no notification goes there.
#[test]
fn a_coaps_poa_is_asked_over_the_aes_own_psk_at_libcoaps_server() {
    if !available() {
        return;
    }
    let (psk, addr) = start();
    let receiver = AeServer::start(KEY);
    let client = Coap::psk(CLIENT, &addr, KPSA, KEY);
    let poa = format!("coaps://127.0.0.1:{}/notify", receiver.dtls_port);
    subscribed_ae_writes(&client, &poa);
    assert!(
        receiver.shows("vrq", Duration::from_secs(15)),
        "no verification request at the AE's server:\n{}\nCSE:\n{}",
        receiver.log(),
        psk.srv.log()
    );
    let log = receiver.log();
    assert!(
        log.contains(&format!("got psk_identity: '{KPSA}'")),
        "{log}"
    );
    assert!(
        log.contains("c:POST") && log.contains("Uri-Path:notify") && log.contains("m2m:sgn"),
        "{log}"
    );
    // 279 is the oneM2M-FR option: the CSE's own ID.
    assert!(log.contains("279:\\x2F\\x69\\x64\\x2D\\x69\\x6E"), "{log}");
    assert!(
        psk.srv
            .log_shows("no oneM2M-RSC option", Duration::from_secs(10)),
        "{}",
        psk.srv.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(!receiver.log().contains("'first'"), "{}", receiver.log());
}

/// A oneM2M receiver over DTLS-PSK (this project's DTLS server, a minimal CoAP
/// responder): answers every confirmable request 2.04 with oneM2M-RSC 2000 and keeps the
/// payloads it received.
struct OneM2mReceiver {
    port: u16,
    payloads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl OneM2mReceiver {
    async fn start(identity: &str, key_hex: &str) -> OneM2mReceiver {
        use bastion_tls::{CredentialRegistry, ServerSettings, StoreKey, TlsServer};
        let dir = tempfile::tempdir().expect("dir");
        let registry = CredentialRegistry::open(
            dir.path().join("credentials.bin"),
            StoreKey::generate().expect("store key"),
        )
        .expect("registry");
        let key = bastion_tls::PskKey::from_hex(key_hex).expect("key");
        let peer = bastion_tls::Binding::cse("/id-in").expect("binding");
        registry
            .add_psk(identity, key, Some(peer))
            .expect("credential");
        let settings = ServerSettings {
            psk: true,
            ..ServerSettings::default()
        };
        let tls = std::sync::Arc::new(TlsServer::new(&settings, registry).expect("server"));
        let mut server = bastion_tls::DtlsServer::bind(
            "127.0.0.1:0".parse().expect("addr"),
            tls,
            bastion_tls::DtlsLimits::default(),
        )
        .await
        .expect("bind");
        let port = server.local_addr().port();
        let payloads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = payloads.clone();
        tokio::spawn(async move {
            while let Some(mut session) = server.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    while let Some(datagram) = session.recv().await {
                        let Ok(request) = coap_lite::Packet::from_bytes(&datagram) else {
                            continue;
                        };
                        kept.lock()
                            .expect("lock")
                            .push(String::from_utf8_lossy(&request.payload).into_owned());
                        let mut answer = coap_lite::Packet::new();
                        answer
                            .header
                            .set_type(coap_lite::MessageType::Acknowledgement);
                        answer.header.code =
                            coap_lite::MessageClass::Response(coap_lite::ResponseType::Changed);
                        answer.header.message_id = request.header.message_id;
                        answer.set_token(request.get_token().to_vec());
                        // oneM2M-RSC (307) 2000, oneM2M-RQI (283) echoed.
                        answer.add_option(
                            coap_lite::CoapOption::Unknown(307),
                            2000u16.to_be_bytes().to_vec(),
                        );
                        if let Some(rqi) =
                            request.get_first_option(coap_lite::CoapOption::Unknown(283))
                        {
                            answer.add_option(coap_lite::CoapOption::Unknown(283), rqi.clone());
                        }
                        let _ = session.send(&answer.to_bytes().expect("encoded")).await;
                    }
                });
            }
        });
        OneM2mReceiver {
            port,
            payloads,
            _dir: dir,
        }
    }

    fn received(&self) -> Vec<String> {
        self.payloads.lock().expect("lock").clone()
    }

    async fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.received().iter().any(|p| p.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// The whole delivery over `coaps://`: the AE's point of access, reached over DTLS-PSK
/// with the AE's own credential, answers the verification request 2000 and then gets the
/// contentInstance notification; once the credential is revoked, the next notification
/// is not sent, and the CSE says why.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_a_coaps_poa_over_the_aes_own_psk() {
    if !available() {
        return;
    }
    let (psk, addr) = tokio::task::block_in_place(start);
    let receiver = OneM2mReceiver::start(KPSA, &hex(KEY)).await;
    let poa = format!("coaps://127.0.0.1:{}/notify", receiver.port);
    tokio::task::block_in_place(|| {
        subscribed_ae_writes(&Coap::psk(CLIENT, &addr, KPSA, KEY), &poa)
    });
    assert!(
        receiver.wait_for("\"vrq\":true").await && receiver.wait_for("first").await,
        "received {:?}\nCSE:\n{}",
        receiver.received(),
        psk.srv.log()
    );
    let first = receiver
        .received()
        .into_iter()
        .find(|p| p.contains("first"))
        .expect("notification");
    let sgn: Value = serde_json::from_str(&first).expect("json");
    assert_eq!(sgn["m2m:sgn"]["nev"]["net"], 3, "{sgn}");
    assert_eq!(
        sgn["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "first",
        "{sgn}"
    );

    psk.revoke(KPSA);
    // The CSE's registry sees the revocation within about a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A write by the admin still raises a notification, which may no longer travel.
    psk.srv
        .create(
            "/cse-in/coapsae/data",
            "CAdmin",
            4,
            json!({"m2m:cin": {"cnf": "text/plain:0", "con": "second"}}),
        )
        .await
        .expect(2001);
    assert!(
        tokio::task::block_in_place(|| psk.srv.log_shows("is revoked", Duration::from_secs(15))),
        "{}",
        psk.srv.log()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !receiver.received().iter().any(|p| p.contains("second")),
        "{:?}",
        receiver.received()
    );
}
