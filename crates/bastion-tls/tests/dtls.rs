//! Real DTLS 1.2 handshakes on 127.0.0.1 between `DtlsServer` (serving an echo
//! application through its session interface) and `DtlsClient` or `openssl s_client
//! -dtls1_2` (a client the project did not write; `scripts/openssl-cli-env`, and under
//! `CI=true` its absence fails): the mandatory suites, identity binding, refusals, the
//! bounds on pending handshakes and idle sessions, and garbage.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion_tls::certs::{self, CertAndKey, Subject, Validity};
use bastion_tls::dtls::{DtlsClient, DtlsLimits, DtlsServer, DtlsSession};
use bastion_tls::{
    exporter, Binding, ClientOptions, CredentialRegistry, DtlsError, PskKey, Refusal,
    ServerCertificate, ServerSettings, StoreKey, TlsServer,
};
use openssl::ssl::{ErrorCode, SslConnector, SslMethod, SslStream};
use tokio::net::UdpSocket;

const KPSA_ID: &str = "test@onem2m.com";
const KPSA_HEX: &str = "00112233445566778899aabbccddeeff";
const AE_ID: &str = "//acme.example.com/id-mn/Cabc";
const SERVER_ID: &str = "//acme.example.com/id-in";
/// How long a test waits for one answer.
const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    dir: tempfile::TempDir,
    registry: Arc<CredentialRegistry>,
    ca: CertAndKey,
    server_cert: CertAndKey,
    client_cert: CertAndKey,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let registry = CredentialRegistry::open(
        dir.path().join("credentials.bin"),
        StoreKey::generate().unwrap(),
    )
    .unwrap();
    registry
        .add_psk(
            KPSA_ID,
            PskKey::from_hex(KPSA_HEX).unwrap(),
            Some(Binding::ae(AE_ID).unwrap()),
        )
        .unwrap();
    let ca = certs::create_ca("Bastion Test CA", Validity::days(2)).unwrap();
    let server_cert = certs::issue(
        &ca,
        &Subject::onem2m(SERVER_ID).unwrap().with_dns("localhost"),
        Validity::days(2),
    )
    .unwrap();
    let client_cert =
        certs::issue(&ca, &Subject::onem2m(AE_ID).unwrap(), Validity::days(2)).unwrap();
    Fixture {
        dir,
        registry,
        ca,
        server_cert,
        client_cert,
    }
}

impl Fixture {
    fn tls(&self) -> Arc<TlsServer> {
        let settings = ServerSettings {
            psk: true,
            certificate: true,
            server_certificates: vec![ServerCertificate {
                server_names: vec!["localhost".into()],
                chain_pem: self.server_cert.cert_pem.clone(),
                key_pem: self.server_cert.key_pem.clone(),
            }],
            trust_anchors: vec![self.ca.cert_pem.clone()],
            ..ServerSettings::default()
        };
        Arc::new(TlsServer::new(&settings, self.registry.clone()).unwrap())
    }

    async fn server(&self, limits: DtlsLimits) -> DtlsServer {
        DtlsServer::bind("127.0.0.1:0".parse().unwrap(), self.tls(), limits)
            .await
            .unwrap()
    }

    fn psk_client(&self, key_hex: &str) -> DtlsClient {
        let options = ClientOptions {
            tls12_ciphers: Some("PSK-AES128-CCM8".into()),
            ..ClientOptions::default()
        };
        let mut client =
            DtlsClient::psk(KPSA_ID, PskKey::from_hex(key_hex).unwrap(), &options).unwrap();
        client.handshake_timeout = Duration::from_secs(5);
        client
    }

    fn cert_client(&self) -> DtlsClient {
        let options = ClientOptions {
            tls12_ciphers: Some("ECDHE-ECDSA-AES128-CCM8".into()),
            ..ClientOptions::default()
        };
        DtlsClient::certificate(
            &self.client_cert.cert_pem,
            &self.client_cert.key_pem,
            &self.ca.cert_pem,
            Some(SERVER_ID),
            &options,
        )
        .unwrap()
    }
}

/// The next session, or a panic after [`WAIT`].
async fn accept(server: &mut DtlsServer) -> DtlsSession {
    tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("no session accepted in time")
        .expect("server stopped")
}

/// The application served: every datagram is sent back.
async fn echo(mut session: DtlsSession) {
    while let Some(datagram) = session.recv().await {
        if session.send(&datagram).await.is_err() {
            break;
        }
    }
}

async fn round_trip(connection: &mut bastion_tls::DtlsConnection, payload: &[u8]) -> Vec<u8> {
    connection.send(payload).await.unwrap();
    tokio::time::timeout(WAIT, connection.recv())
        .await
        .expect("no echo in time")
        .unwrap()
}

/// Whether the `openssl` tool is there; under `CI=true` its absence fails.
fn openssl_available() -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/openssl-cli-env");
    let why = match Command::new(script).output() {
        Ok(o) if o.status.success() => return true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => format!("{script}: {e}"),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the DTLS interop tests need the openssl tool under CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

/// Runs `openssl s_client -dtls1_2` with `args`, sends `line`, and returns once the echo
/// of `line` was printed (or after [`WAIT`]): whether it was, and everything printed.
fn s_client_echo(connect: &str, args: &[&str], line: &str) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-dtls1_2", "-connect", connect, "-ign_eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + WAIT;
    let mut sent = false;
    let mut echoed = false;
    while Instant::now() < deadline && !echoed {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(100)) {
            printed.push_str(&l);
            printed.push('\n');
            if sent && l == line {
                echoed = true;
            }
        }
        // After the handshake summary, send the line once.
        if !sent && printed.contains("Verify return code") {
            stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
            stdin.flush().unwrap();
            sent = true;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (echoed, format!("{printed}{err}"))
}

#[tokio::test]
async fn openssl_s_client_psk_ccm8_is_echoed_and_bound_to_the_ae_id() {
    if !openssl_available() {
        return;
    }
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let connect = server.local_addr().to_string();
    let client = tokio::task::spawn_blocking(move || {
        s_client_echo(
            &connect,
            &[
                "-psk_identity",
                KPSA_ID,
                "-psk",
                KPSA_HEX,
                "-cipher",
                "PSK-AES128-CCM8",
            ],
            "hello over coaps",
        )
    });
    let session = accept(&mut server).await;
    let identity = session.association().identity().unwrap().clone();
    assert_eq!(identity.credential(), KPSA_ID);
    assert_eq!(session.association().originator(), Ok(AE_ID));
    tokio::spawn(echo(session));
    let (echoed, text) = client.await.unwrap();
    assert!(echoed, "{text}");
    assert!(text.contains("Cipher is PSK-AES128-CCM8"), "{text}");
}

#[tokio::test]
async fn openssl_s_client_certificate_ccm8_is_echoed_and_bound_to_the_san_uri() {
    if !openssl_available() {
        return;
    }
    let f = fixture();
    let dir = f.dir.path().to_owned();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let cert = write("client.pem", &f.client_cert.cert_pem);
    let key = write("client.key", &f.client_cert.key_pem);
    let ca = write("ca.pem", &f.ca.cert_pem);
    let mut server = f.server(DtlsLimits::default()).await;
    let connect = server.local_addr().to_string();
    let client = tokio::task::spawn_blocking(move || {
        s_client_echo(
            &connect,
            &[
                "-servername",
                "localhost",
                "-cert",
                &cert,
                "-key",
                &key,
                "-CAfile",
                &ca,
                "-verify_return_error",
                "-cipher",
                "ECDHE-ECDSA-AES128-CCM8",
            ],
            "hello with a certificate",
        )
    });
    let session = accept(&mut server).await;
    assert_eq!(session.association().originator(), Ok(AE_ID));
    tokio::spawn(echo(session));
    let (echoed, text) = client.await.unwrap();
    assert!(echoed, "{text}");
    assert!(text.contains("Cipher is ECDHE-ECDSA-AES128-CCM8"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

#[tokio::test]
async fn certificate_ecdhe_ecdsa_ccm8_binds_the_san_uri_and_exports_agree() {
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let addr = server.local_addr();
    let client = f.cert_client();
    let (connected, session) = tokio::join!(client.connect("localhost", addr), accept(&mut server));
    let mut connection = connected.unwrap();
    assert_eq!(
        connection.ssl().current_cipher().unwrap().name(),
        "ECDHE-ECDSA-AES128-CCM8"
    );
    assert_eq!(connection.ssl().version_str(), "DTLSv1.2");
    assert_eq!(session.association().originator(), Ok(AE_ID));
    let server_export = session
        .export_keying_material(exporter::LABEL_CONNECTION, None, exporter::EXPORT_LEN)
        .await
        .unwrap();
    let client_export = exporter::export(
        connection.ssl(),
        exporter::LABEL_CONNECTION,
        None,
        exporter::EXPORT_LEN,
    )
    .unwrap();
    assert_eq!(server_export.as_slice(), client_export.as_slice());
    tokio::spawn(echo(session));
    assert_eq!(
        round_trip(&mut connection, b"\x40\x01\x00\x01").await,
        b"\x40\x01\x00\x01"
    );
}

#[tokio::test]
async fn psk_exports_agree_on_both_ends() {
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let addr = server.local_addr();
    let client = f.psk_client(KPSA_HEX);
    let (connected, session) = tokio::join!(client.connect("localhost", addr), accept(&mut server));
    let connection = connected.unwrap();
    assert_eq!(
        connection.ssl().current_cipher().unwrap().name(),
        "PSK-AES128-CCM8"
    );
    for label in [exporter::LABEL_CONNECTION, exporter::LABEL_BOOTSTRAP] {
        let server_side = session
            .export_keying_material(label, None, exporter::EXPORT_LEN)
            .await
            .unwrap();
        let client_side =
            exporter::export(connection.ssl(), label, None, exporter::EXPORT_LEN).unwrap();
        assert_eq!(server_side.as_slice(), client_side.as_slice(), "{label}");
    }
}

/// DTLS drops records that fail authentication (RFC 6347 4.1.2.7), so with a wrong key
/// the server never sees a valid Finished: the client times out, and the server drops
/// the half-open handshake after its handshake timeout.
#[tokio::test]
async fn a_wrong_psk_is_refused_and_leaves_nothing_behind() {
    let f = fixture();
    let limits = DtlsLimits {
        handshake_timeout: Duration::from_secs(1),
        ..DtlsLimits::default()
    };
    let mut server = f.server(limits).await;
    let addr = server.local_addr();
    let mut client = f.psk_client("ffeeddccbbaa99887766554433221100");
    client.handshake_timeout = Duration::from_secs(2);
    match client.connect("localhost", addr).await {
        Err(DtlsError::TimedOut) => {}
        other => panic!("expected no association, got {:?}", other.map(|_| ())),
    }
    until(&server, |s| s.pending_handshakes == 0).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.accept())
            .await
            .is_err()
    );
    assert_eq!(server.stats().sessions, 0);
}

#[tokio::test]
async fn a_revoked_credential_is_refused_and_cuts_its_open_association() {
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let addr = server.local_addr();
    let client = f.psk_client(KPSA_HEX);
    let (connected, session) = tokio::join!(client.connect("localhost", addr), accept(&mut server));
    connected.unwrap();
    assert_eq!(session.association().originator(), Ok(AE_ID));
    f.registry.revoke(KPSA_ID).unwrap();
    assert_eq!(session.association().originator(), Err(Refusal::Revoked));
    match client.connect("localhost", addr).await {
        Err(DtlsError::Handshake(_)) => {}
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.accept())
            .await
            .is_err()
    );
}

/// A minimal in-memory datagram stream for a client that stops half-way.
#[derive(Default)]
struct Queue {
    inbound: std::collections::VecDeque<Vec<u8>>,
    outbound: Vec<Vec<u8>>,
}

impl Read for Queue {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let d = self
            .inbound
            .pop_front()
            .ok_or(std::io::ErrorKind::WouldBlock)?;
        buf[..d.len()].copy_from_slice(&d);
        Ok(d.len())
    }
}

impl Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.outbound.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A real OpenSSL client that completes the cookie exchange (so its address is proven
/// and the server may start a handshake), sends its second ClientHello and goes silent.
/// Returns its socket (kept open so that no ICMP error reaches the server) and its first
/// ClientHello.
async fn half_open(server: SocketAddr) -> (UdpSocket, Vec<u8>) {
    let mut b = SslConnector::builder(SslMethod::dtls_client()).unwrap();
    b.set_cipher_list("PSK-AES128-CCM8").unwrap();
    b.set_security_level(0);
    b.set_psk_client_callback(|_, _, id, psk| {
        id[..KPSA_ID.len()].copy_from_slice(KPSA_ID.as_bytes());
        id[KPSA_ID.len()] = 0;
        psk[..16].copy_from_slice(&[0x11; 16]);
        Ok(16)
    });
    let ssl = b
        .build()
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut stream = SslStream::new(ssl, Queue::default()).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    assert_eq!(stream.connect().unwrap_err().code(), ErrorCode::WANT_READ);
    let first = std::mem::take(&mut stream.get_mut().outbound);
    for d in &first {
        socket.send(d).await.unwrap();
    }
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("no HelloVerifyRequest")
        .unwrap();
    stream.get_mut().inbound.push_back(buf[..n].to_vec());
    assert_eq!(stream.connect().unwrap_err().code(), ErrorCode::WANT_READ);
    for d in std::mem::take(&mut stream.get_mut().outbound) {
        socket.send(&d).await.unwrap();
    }
    (socket, first.concat())
}

/// Polls `server.stats()` until `done` holds, for at most [`WAIT`].
async fn until(server: &DtlsServer, done: impl Fn(bastion_tls::dtls::DtlsStats) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done(server.stats()) {
        assert!(
            Instant::now() < deadline,
            "stats stuck at {:?}",
            server.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pending_handshakes_are_bounded_and_time_out_then_a_real_one_completes() {
    let f = fixture();
    let limits = DtlsLimits {
        max_pending_handshakes: 4,
        handshake_timeout: Duration::from_secs(1),
        ..DtlsLimits::default()
    };
    let mut server = f.server(limits).await;
    let addr = server.local_addr();
    let mut sockets = Vec::new();
    for _ in 0..12 {
        sockets.push(half_open(addr).await);
    }
    until(&server, |s| s.pending_handshakes == 4 && s.refused >= 8).await;

    // A flood of first ClientHellos from 200 more source ports: each is answered by a
    // HelloVerifyRequest and none holds state.
    let hello = sockets[0].1.clone();
    let mut flood = Vec::new();
    for _ in 0..200 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&hello, addr).await.unwrap();
        flood.push(s);
    }
    let mut buf = [0u8; 512];
    for s in flood.iter().take(5) {
        let (n, _) = tokio::time::timeout(WAIT, s.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(buf[0], 22, "a handshake record");
        assert_eq!(buf[13], 3, "a HelloVerifyRequest");
        assert!(n > 25);
    }
    assert!(server.stats().pending_handshakes <= 4);

    until(&server, |s| s.pending_handshakes == 0).await;
    let client = f.psk_client(KPSA_HEX);
    let (connected, session) = tokio::join!(client.connect("localhost", addr), accept(&mut server));
    let mut connection = connected.unwrap();
    tokio::spawn(echo(session));
    assert_eq!(
        round_trip(&mut connection, b"after the flood").await,
        b"after the flood"
    );
    drop(sockets);
}

#[tokio::test]
async fn an_idle_session_is_reaped_and_its_peer_told() {
    let f = fixture();
    let limits = DtlsLimits {
        idle_timeout: Duration::from_millis(800),
        ..DtlsLimits::default()
    };
    let mut server = f.server(limits).await;
    let addr = server.local_addr();
    let client = f.psk_client(KPSA_HEX);
    let (connected, mut session) =
        tokio::join!(client.connect("localhost", addr), accept(&mut server));
    let mut connection = connected.unwrap();
    assert_eq!(server.stats().sessions, 1);
    let started = Instant::now();
    let closed = tokio::time::timeout(WAIT, session.recv()).await.unwrap();
    assert_eq!(closed, None);
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(server.stats().sessions, 0);
    match tokio::time::timeout(WAIT, connection.recv()).await.unwrap() {
        Err(DtlsError::Closed) => {}
        other => panic!("expected close_notify, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_alerts_and_oversized_datagrams_are_ignored() {
    let f = fixture();
    let limits = DtlsLimits {
        max_datagram: 1024,
        ..DtlsLimits::default()
    };
    let mut server = f.server(limits).await;
    let addr = server.local_addr();
    let (half, hello) = half_open(addr).await;
    let mut truncated_hello = hello.clone();
    truncated_hello.truncate(40);
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 64],
        vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 40], // fatal alert
        vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4], // app data, epoch 1
        truncated_hello,
        vec![22; 4000], // over max_datagram
    ];
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for datagram in &junk {
        stranger.send_to(datagram, addr).await.unwrap();
        // The same to the half-open handshake's address.
        half.send(datagram).await.unwrap();
    }
    until(&server, |s| s.ignored >= 5).await;
    let client = f.psk_client(KPSA_HEX);
    let (connected, session) = tokio::join!(client.connect("localhost", addr), accept(&mut server));
    let mut connection = connected.unwrap();
    tokio::spawn(echo(session));
    assert_eq!(
        round_trip(&mut connection, b"still serving").await,
        b"still serving"
    );
}

/// The largest application datagram goes through in one record, over the MTU (IP
/// fragments it); one byte more is refused before it reaches OpenSSL.
#[tokio::test]
async fn datagrams_up_to_the_limit_are_echoed_and_larger_ones_refused() {
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let addr = server.local_addr();
    let client = f.psk_client(KPSA_HEX);
    let (connected, session) = tokio::join!(client.connect("localhost", addr), accept(&mut server));
    let mut connection = connected.unwrap();
    match session.send(&[0u8; 4097]).await {
        Err(DtlsError::TooLarge {
            len: 4097,
            max: 4096,
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    tokio::spawn(echo(session));
    let largest: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
    assert_eq!(round_trip(&mut connection, &largest).await, largest);
    assert_eq!(
        round_trip(&mut connection, b"and after").await,
        b"and after"
    );
}

/// A client that lost its state comes back from the same address and port: its new
/// ClientHello goes through the cookie exchange and the new association replaces the
/// old one, whose session then ends (RFC 6347 4.2.8).
#[tokio::test]
async fn a_new_handshake_from_the_same_address_replaces_the_association() {
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let addr = server.local_addr();
    let client = f.psk_client(KPSA_HEX);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let (connected, mut first) = tokio::join!(
        client.connect_on(socket, "localhost", addr),
        accept(&mut server)
    );
    assert_eq!(first.peer(), local);
    drop(connected.unwrap()); // no close_notify: the client "reboots"
    let socket = UdpSocket::bind(local).await.unwrap();
    let (connected, second) = tokio::join!(
        client.connect_on(socket, "localhost", addr),
        accept(&mut server)
    );
    let mut connection = connected.unwrap();
    assert_eq!(second.peer(), local);
    assert_eq!(
        tokio::time::timeout(WAIT, first.recv()).await.unwrap(),
        None
    );
    tokio::spawn(echo(second));
    assert_eq!(round_trip(&mut connection, b"again").await, b"again");
    assert_eq!(server.stats().sessions, 1);
}

/// Drives a handshake of an arbitrary OpenSSL client configuration over UDP: `Ok` with
/// the negotiated version, or OpenSSL's reason for the failure.
async fn raw_handshake(server: SocketAddr, connector: SslConnector) -> Result<String, String> {
    let ssl = connector
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut stream = SslStream::new(ssl, Queue::default()).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        let result = stream.connect();
        for d in std::mem::take(&mut stream.get_mut().outbound) {
            socket.send(&d).await.unwrap();
        }
        match result {
            Ok(()) => return Ok(stream.ssl().version_str().to_owned()),
            Err(e) if e.code() == ErrorCode::WANT_READ => {}
            Err(e) => {
                let reason = e
                    .ssl_error()
                    .and_then(|s| s.errors().first())
                    .and_then(|e| e.reason())
                    .unwrap_or("?");
                return Err(reason.to_owned());
            }
        }
        assert!(Instant::now() < deadline, "handshake stalled");
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut buf)).await
        {
            stream.get_mut().inbound.push_back(buf[..n].to_vec());
        }
    }
}

#[tokio::test]
async fn a_dtls_1_0_client_is_refused() {
    let f = fixture();
    let mut server = f.server(DtlsLimits::default()).await;
    let addr = server.local_addr();
    let mut b = SslConnector::builder(SslMethod::dtls_client()).unwrap();
    b.set_min_proto_version(Some(openssl::ssl::SslVersion::DTLS1))
        .unwrap();
    b.set_max_proto_version(Some(openssl::ssl::SslVersion::DTLS1))
        .unwrap();
    b.set_security_level(0);
    b.set_cipher_list("PSK-AES128-CBC-SHA").unwrap();
    b.set_psk_client_callback(|_, _, id, psk| {
        id[..KPSA_ID.len()].copy_from_slice(KPSA_ID.as_bytes());
        id[KPSA_ID.len()] = 0;
        psk[..16].copy_from_slice(&PskKey::from_hex(KPSA_HEX).unwrap().expose()[..16]);
        Ok(16)
    });
    let outcome = raw_handshake(addr, b.build()).await;
    assert_eq!(outcome, Err("tlsv1 alert protocol version".to_owned()));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), server.accept())
            .await
            .is_err()
    );
}
