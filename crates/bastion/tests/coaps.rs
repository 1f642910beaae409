//! CoAP over DTLS (`coaps://`, TS-0008 7 with TS-0003 10.2; docs/bindings.md) driven by
//! libcoap's `coap-client-openssl` with DTLS-PSK (installed by `scripts/coap-client-env`)
//! and `openssl s_client -dtls1_2`, against the real `bastion serve` with `[coap]
//! tls-listen` on the HTTPS listener's credential store. Under `CI=true` a missing
//! client fails; elsewhere the test says why and skips.
//!
//! How the client's answers are read: tests/common/coap_client.rs.

mod common;

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
