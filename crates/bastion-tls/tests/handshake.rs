//! Real handshakes on 127.0.0.1 between `TlsServer` and `TlsClient` (and `openssl
//! s_client`): every suite of the profile, TLS 1.3, identities, and each failure with
//! its exact outcome.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bastion_tls::certs::{self, CertAndKey, Subject, Validity};
use bastion_tls::exporter;
use bastion_tls::{
    Binding, ClientOptions, CredentialRegistry, Framework, HandshakeError, PeerIdentity, PskKey,
    ServerCertificate, ServerSettings, StoreKey, TlsClient, TlsServer, TlsVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KPSA_ID: &str = "test@onem2m.com";
const KPSA_HEX: &str = "00112233445566778899aabbccddeeff";
const AE_ID: &str = "//acme.example.com/id-mn/Cabc";
const SERVER_ID: &str = "//acme.example.com/id-in";

struct Pki {
    ca: CertAndKey,
    server: CertAndKey,
    client: CertAndKey,
}

fn pki() -> Pki {
    let ca = certs::create_ca("Bastion Test CA", Validity::days(2)).unwrap();
    let server = certs::issue(
        &ca,
        &Subject::onem2m(SERVER_ID).unwrap().with_dns("localhost"),
        Validity::days(2),
    )
    .unwrap();
    let client = certs::issue(&ca, &Subject::onem2m(AE_ID).unwrap(), Validity::days(2)).unwrap();
    Pki { ca, server, client }
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir_path: std::path::PathBuf,
    registry: Arc<CredentialRegistry>,
    pki: Pki,
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
    Fixture {
        dir_path: dir.path().to_owned(),
        _dir: dir,
        registry,
        pki: pki(),
    }
}

impl Fixture {
    fn settings(&self) -> ServerSettings {
        ServerSettings {
            psk: true,
            certificate: true,
            require_client_certificate: false,
            server_certificates: vec![ServerCertificate {
                server_names: vec!["localhost".into()],
                chain_pem: self.pki.server.cert_pem.clone(),
                key_pem: self.pki.server.key_pem.clone(),
            }],
            trust_anchors: vec![self.pki.ca.cert_pem.clone()],
            crl_files: vec![],
            disable_tls13: false,
            remote_psk: None,
            peer_http_authentication: false,
        }
    }

    fn server(&self, settings: &ServerSettings) -> Arc<TlsServer> {
        Arc::new(TlsServer::new(settings, self.registry.clone()).unwrap())
    }

    fn cert_client(&self, client: &CertAndKey, options: &ClientOptions) -> TlsClient {
        TlsClient::certificate(
            &client.cert_pem,
            &client.key_pem,
            &self.pki.ca.cert_pem,
            Some(SERVER_ID),
            options,
        )
        .unwrap()
    }
}

/// Both oneM2M exports of a session, connection label then bootstrap label (key ID and
/// key of each, 96 bytes), so every handshake test checks both ends agree on both.
fn exports(ssl: &openssl::ssl::SslRef) -> Vec<u8> {
    let kc = exporter::export_connection_key(ssl).unwrap();
    let ke = exporter::export_bootstrap_key(ssl).unwrap();
    [
        kc.key_id().as_slice(),
        kc.key().as_slice(),
        ke.key_id().as_slice(),
        ke.key().as_slice(),
    ]
    .concat()
}

/// What the server side saw: identity, negotiated version and cipher, exporter output.
#[derive(Debug)]
struct Accepted {
    identity: PeerIdentity,
    version: String,
    cipher: String,
    exports: Vec<u8>,
}

type ServerTask = tokio::task::JoinHandle<Result<Accepted, HandshakeError>>;

async fn listen(server: Arc<TlsServer>) -> (std::net::SocketAddr, ServerTask) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut stream, identity) = server.accept(tcp).await?;
        let exported = exports(stream.ssl());
        let accepted = Accepted {
            identity,
            version: stream.ssl().version_str().to_owned(),
            cipher: stream.ssl().current_cipher().unwrap().name().to_owned(),
            exports: exported,
        };
        stream.write_all(b"ok\n").await.unwrap();
        stream.shutdown().await.ok();
        Ok(accepted)
    });
    (addr, task)
}

/// Client side: handshake, read the server's "ok"; returns [`exports`].
async fn client_run(
    client: &TlsClient,
    addr: std::net::SocketAddr,
) -> Result<Vec<u8>, HandshakeError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = client.connect("localhost", tcp).await?;
    let exported = exports(stream.ssl());
    let mut buf = [0u8; 3];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| HandshakeError::Tls {
            reason: e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<openssl::ssl::Error>())
                .and_then(|s| s.ssl_error())
                .and_then(|st| st.errors().first())
                .and_then(|er| er.reason())
                .map(str::to_owned)
                .unwrap_or_else(|| e.to_string()),
        })?;
    assert_eq!(&buf, b"ok\n");
    Ok(exported)
}

fn psk_client(kpsa_id: &str, hex: &str, options: &ClientOptions) -> TlsClient {
    TlsClient::psk(kpsa_id, PskKey::from_hex(hex).unwrap(), options).unwrap()
}

fn tls12(ciphers: &str) -> ClientOptions {
    ClientOptions {
        max_version: Some(TlsVersion::Tls12),
        tls12_ciphers: Some(ciphers.into()),
        ..ClientOptions::default()
    }
}

fn tls13(suite: &str) -> ClientOptions {
    ClientOptions {
        min_version: Some(TlsVersion::Tls13),
        tls13_suites: Some(suite.into()),
        ..ClientOptions::default()
    }
}

fn tls_reason(result: Result<impl std::fmt::Debug, HandshakeError>) -> String {
    match result {
        Err(HandshakeError::Tls { reason }) => reason,
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

#[tokio::test]
async fn every_psk_suite_over_tls12_binds_the_ae_id() {
    let f = fixture();
    let server = f.server(&f.settings());
    for (openssl_name, _iana) in [
        ("PSK-AES128-CBC-SHA256", "TLS_PSK_WITH_AES_128_CBC_SHA256"),
        ("PSK-AES128-GCM-SHA256", "TLS_PSK_WITH_AES_128_GCM_SHA256"),
        ("PSK-AES128-CCM8", "TLS_PSK_WITH_AES_128_CCM_8"),
    ] {
        let (addr, task) = listen(server.clone()).await;
        let client = psk_client(KPSA_ID, KPSA_HEX, &tls12(openssl_name));
        let client_exports = client_run(&client, addr).await.unwrap();
        let accepted = task.await.unwrap().unwrap();
        assert_eq!(accepted.version, "TLSv1.2");
        assert_eq!(accepted.cipher, openssl_name);
        assert_eq!(accepted.identity.framework(), Framework::Psk);
        assert_eq!(accepted.identity.credential(), KPSA_ID);
        assert_eq!(accepted.identity.originator(), AE_ID);
        assert!(!accepted.identity.is_cse());
        assert_eq!(
            accepted.exports, client_exports,
            "{openssl_name}: exporter outputs differ"
        );
        assert_ne!(
            accepted.exports[..48],
            accepted.exports[48..],
            "the bootstrap and connection labels must give different keys"
        );
    }
}

#[tokio::test]
async fn every_ecdsa_suite_over_tls12_binds_the_san_uri() {
    let f = fixture();
    let server = f.server(&f.settings());
    for name in [
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-CCM8",
    ] {
        let (addr, task) = listen(server.clone()).await;
        let client = f.cert_client(&f.pki.client, &tls12(name));
        let client_exports = client_run(&client, addr).await.unwrap();
        let accepted = task.await.unwrap().unwrap();
        assert_eq!(accepted.version, "TLSv1.2");
        assert_eq!(accepted.cipher, name);
        assert_eq!(accepted.identity.framework(), Framework::Certificate);
        assert!(accepted.identity.credential().starts_with("sha-256:"));
        assert_eq!(accepted.identity.credential().len(), "sha-256:".len() + 64);
        assert_eq!(accepted.identity.originator(), AE_ID);
        assert_eq!(accepted.exports, client_exports);
    }
}

#[tokio::test]
async fn the_server_prefers_gcm_then_the_mandatory_cbc_suite_then_ccm8() {
    let f = fixture();
    let server = f.server(&f.settings());
    // Each client lists its suites worst first, so only the server's order can pick.
    let cases = [
        (
            psk_client(
                KPSA_ID,
                KPSA_HEX,
                &tls12("PSK-AES128-CCM8:PSK-AES128-CBC-SHA256:PSK-AES128-GCM-SHA256"),
            ),
            "PSK-AES128-GCM-SHA256",
        ),
        (
            psk_client(
                KPSA_ID,
                KPSA_HEX,
                &tls12("PSK-AES128-CCM8:PSK-AES128-CBC-SHA256"),
            ),
            "PSK-AES128-CBC-SHA256",
        ),
        (
            f.cert_client(
                &f.pki.client,
                &tls12("ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"),
            ),
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
        (
            f.cert_client(
                &f.pki.client,
                &tls12("ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-SHA256"),
            ),
            "ECDHE-ECDSA-AES128-SHA256",
        ),
    ];
    for (client, expected) in cases {
        let (addr, task) = listen(server.clone()).await;
        client_run(&client, addr).await.unwrap();
        let accepted = task.await.unwrap().unwrap();
        assert_eq!(accepted.version, "TLSv1.2");
        assert_eq!(accepted.cipher, expected);
    }
}

#[tokio::test]
async fn tls13_psk_and_certificate_including_ccm8() {
    let f = fixture();
    let server = f.server(&f.settings());
    for suite in ["TLS_AES_128_GCM_SHA256", "TLS_AES_128_CCM_8_SHA256"] {
        let (addr, task) = listen(server.clone()).await;
        let client = psk_client(KPSA_ID, KPSA_HEX, &tls13(suite));
        let client_exports = client_run(&client, addr).await.unwrap();
        let accepted = task.await.unwrap().unwrap();
        assert_eq!(accepted.version, "TLSv1.3");
        assert_eq!(accepted.cipher, suite);
        assert_eq!(accepted.identity.framework(), Framework::Psk);
        assert_eq!(accepted.identity.credential(), KPSA_ID);
        assert_eq!(accepted.identity.originator(), AE_ID);
        assert_eq!(accepted.exports, client_exports);

        let (addr, task) = listen(server.clone()).await;
        let client = f.cert_client(&f.pki.client, &tls13(suite));
        let client_exports = client_run(&client, addr).await.unwrap();
        let accepted = task.await.unwrap().unwrap();
        assert_eq!(accepted.version, "TLSv1.3");
        assert_eq!(accepted.cipher, suite);
        assert_eq!(accepted.identity.framework(), Framework::Certificate);
        assert_eq!(accepted.identity.originator(), AE_ID);
        assert_eq!(accepted.exports, client_exports);
    }
}

#[tokio::test]
async fn psk_bound_to_credential_id_and_cse() {
    let f = fixture();
    f.registry
        .add_psk("bare@onem2m.com", PskKey::from_hex(KPSA_HEX).unwrap(), None)
        .unwrap();
    f.registry
        .add_psk(
            "mn@acme.example.com",
            PskKey::from_hex(KPSA_HEX).unwrap(),
            Some(Binding::cse("/id-mn").unwrap()),
        )
        .unwrap();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server.clone()).await;
    client_run(
        &psk_client("bare@onem2m.com", KPSA_HEX, &ClientOptions::default()),
        addr,
    )
    .await
    .unwrap();
    let id = task.await.unwrap().unwrap().identity;
    assert_eq!(id.originator(), "12-bare@onem2m.com");
    assert_eq!(
        id.binding(),
        &Binding::CredentialId("12-bare@onem2m.com".into())
    );

    let (addr, task) = listen(server).await;
    client_run(
        &psk_client("mn@acme.example.com", KPSA_HEX, &ClientOptions::default()),
        addr,
    )
    .await
    .unwrap();
    let id = task.await.unwrap().unwrap().identity;
    assert_eq!(id.originator(), "/id-mn");
    assert!(id.is_cse());
}

#[tokio::test]
async fn wrong_psk_key_fails_on_both_ends() {
    let f = fixture();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server).await;
    let client = psk_client(
        KPSA_ID,
        "ffeeddccbbaa99887766554433221100",
        &tls12("PSK-AES128-CBC-SHA256"),
    );
    let client_reason = tls_reason(client_run(&client, addr).await);
    let server_reason = tls_reason(task.await.unwrap());
    // The server cannot decrypt the client's Finished and says so.
    assert_eq!(server_reason, "decryption failed or bad record mac");
    assert_eq!(client_reason, "ssl/tls alert bad record mac");
}

#[tokio::test]
async fn unknown_psk_identity_is_refused() {
    let f = fixture();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server).await;
    let client = psk_client(
        "nobody@onem2m.com",
        KPSA_HEX,
        &tls12("PSK-AES128-CBC-SHA256"),
    );
    let client_reason = tls_reason(client_run(&client, addr).await);
    assert_eq!(tls_reason(task.await.unwrap()), "psk identity not found");
    assert_eq!(client_reason, "tlsv1 alert unknown psk identity");
}

async fn cert_failure(
    f: &Fixture,
    settings: &ServerSettings,
    client: &CertAndKey,
) -> (String, String) {
    let server = f.server(settings);
    let (addr, task) = listen(server).await;
    let client = f.cert_client(client, &tls12("ECDHE-ECDSA-AES128-SHA256"));
    let client_reason = tls_reason(client_run(&client, addr).await);
    (tls_reason(task.await.unwrap()), client_reason)
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let f = fixture();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = certs::issue(
        &f.pki.ca,
        &Subject::onem2m(AE_ID).unwrap(),
        Validity {
            not_before: now - 10 * 86_400,
            not_after: now - 86_400,
        },
    )
    .unwrap();
    let (server, client) = cert_failure(&f, &f.settings(), &expired).await;
    assert_eq!(server, "certificate verify failed");
    assert_eq!(client, "ssl/tls alert certificate expired");
}

#[tokio::test]
async fn revoked_certificate_is_refused_by_crl() {
    let f = fixture();
    let crl = certs::create_crl(&f.pki.ca, &[&f.pki.client.cert_pem], 1, 7).unwrap();
    let crl_path = f.dir_path.join("ca.crl");
    std::fs::write(&crl_path, crl).unwrap();
    let mut settings = f.settings();
    settings.crl_files = vec![crl_path];
    let (server, client) = cert_failure(&f, &settings, &f.pki.client).await;
    assert_eq!(server, "certificate verify failed");
    assert_eq!(client, "ssl/tls alert certificate revoked");

    // A certificate not on the CRL still passes with CRL checking on.
    let other = certs::issue(
        &f.pki.ca,
        &Subject::onem2m("//acme.example.com/S9").unwrap(),
        Validity::days(1),
    )
    .unwrap();
    let server = f.server(&settings);
    let (addr, task) = listen(server).await;
    client_run(&f.cert_client(&other, &ClientOptions::default()), addr)
        .await
        .unwrap();
    assert_eq!(
        task.await.unwrap().unwrap().identity.originator(),
        "//acme.example.com/S9"
    );
}

#[tokio::test]
async fn certificate_without_onem2m_san_yields_no_originator() {
    let f = fixture();
    for subject in [
        Subject {
            id: Some("//*.example.com/id-mn/Cabc".into()),
            dns_names: vec![],
            common_name: AE_ID.into(),
        },
        Subject {
            id: Some("https://acme.example.com/id-mn/Cabc".into()),
            dns_names: vec![],
            common_name: AE_ID.into(),
        },
        Subject {
            id: None,
            dns_names: vec!["acme.example.com".into()],
            common_name: AE_ID.into(),
        },
    ] {
        let misnamed = certs::issue(&f.pki.ca, &subject, Validity::days(1)).unwrap();
        let cert = openssl::x509::X509::from_pem(misnamed.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            bastion_tls::identity::binding_from_certificate(&cert),
            Err(bastion_tls::IdentityError::NoOriginator)
        );
        let (server, client) = cert_failure(&f, &f.settings(), &misnamed).await;
        assert_eq!(server, "certificate verify failed");
        // Our verify callback rejects the leaf (8.1.2.2: no match aborts the handshake).
        assert_eq!(client, "ssl/tls alert handshake failure", "{subject:?}");
    }
}

#[tokio::test]
async fn untrusted_self_signed_certificate_is_refused() {
    let f = fixture();
    let other_ca = certs::create_ca("Rogue CA", Validity::days(1)).unwrap();
    let rogue = certs::issue(
        &other_ca,
        &Subject::onem2m(AE_ID).unwrap(),
        Validity::days(1),
    )
    .unwrap();
    let (server, client) = cert_failure(&f, &f.settings(), &rogue).await;
    assert_eq!(server, "certificate verify failed");
    assert_eq!(client, "tlsv1 alert unknown ca");
    let (raw, _ni) = certs::create_raw_key(Validity::days(1)).unwrap();
    let (server, client) = cert_failure(&f, &f.settings(), &raw).await;
    assert_eq!(server, "certificate verify failed");
    assert_eq!(client, "tlsv1 alert unknown ca");
}

#[tokio::test]
async fn pinned_raw_public_key_is_accepted_and_bound() {
    let f = fixture();
    let (raw, ni) = certs::create_raw_key(Validity::days(1)).unwrap();
    f.registry
        .pin_raw_public_key(&ni, Binding::ae(AE_ID).unwrap())
        .unwrap();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server.clone()).await;
    client_run(&f.cert_client(&raw, &ClientOptions::default()), addr)
        .await
        .unwrap();
    let id = task.await.unwrap().unwrap().identity;
    assert_eq!(id.framework(), Framework::RawPublicKey);
    assert_eq!(id.credential(), ni);
    assert_eq!(id.originator(), AE_ID);

    f.registry.revoke(&ni).unwrap();
    let (addr, task) = listen(server).await;
    let client = f.cert_client(&raw, &tls12("ECDHE-ECDSA-AES128-SHA256"));
    assert_eq!(
        tls_reason(client_run(&client, addr).await),
        "tlsv1 alert unknown ca"
    );
    assert_eq!(tls_reason(task.await.unwrap()), "certificate verify failed");
}

#[tokio::test]
async fn tls11_client_is_refused() {
    let f = fixture();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server).await;
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    b.set_security_level(0);
    b.set_min_proto_version(Some(openssl::ssl::SslVersion::TLS1_1))
        .unwrap();
    b.set_max_proto_version(Some(openssl::ssl::SslVersion::TLS1_1))
        .unwrap();
    b.set_cipher_list("ECDHE-ECDSA-AES128-SHA:PSK-AES128-CBC-SHA:@SECLEVEL=0")
        .unwrap();
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let connector = b.build();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let ssl = connector
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    let err = std::pin::Pin::new(&mut stream).connect().await.unwrap_err();
    let client_reason = err.ssl_error().unwrap().errors()[0]
        .reason()
        .unwrap()
        .to_owned();
    assert_eq!(client_reason, "tlsv1 alert protocol version");
    assert_eq!(tls_reason(task.await.unwrap()), "unsupported protocol");
}

#[tokio::test]
async fn revoking_a_psk_marks_open_connections_and_blocks_new_ones() {
    let f = fixture();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server.clone()).await;
    client_run(
        &psk_client(KPSA_ID, KPSA_HEX, &ClientOptions::default()),
        addr,
    )
    .await
    .unwrap();
    let identity = task.await.unwrap().unwrap().identity;
    let generation = f.registry.generation();
    assert!(!f.registry.is_revoked(identity.credential()));

    f.registry.revoke(KPSA_ID).unwrap();
    assert!(f.registry.is_revoked(identity.credential()));
    assert_eq!(f.registry.generation(), generation + 1);

    let (addr, task) = listen(server).await;
    let client = psk_client(KPSA_ID, KPSA_HEX, &tls12("PSK-AES128-CBC-SHA256"));
    assert_eq!(
        tls_reason(client_run(&client, addr).await),
        "tlsv1 alert unknown psk identity"
    );
    assert_eq!(tls_reason(task.await.unwrap()), "psk identity not found");
}

#[tokio::test]
async fn sni_selects_the_server_certificate() {
    let f = fixture();
    let second = certs::issue(
        &f.pki.ca,
        &Subject::onem2m("//acme.example.com/id-in2")
            .unwrap()
            .with_dns("cse2.example.com"),
        Validity::days(1),
    )
    .unwrap();
    let mut settings = f.settings();
    settings.server_certificates.push(ServerCertificate {
        server_names: vec!["cse2.example.com".into()],
        chain_pem: second.cert_pem.clone(),
        key_pem: second.key_pem.clone(),
    });
    let server = f.server(&settings);
    for (host, expected) in [
        ("cse2.example.com", "//acme.example.com/id-in2"),
        ("localhost", SERVER_ID),
    ] {
        let (addr, task) = listen(server.clone()).await;
        let client = TlsClient::certificate(
            &f.pki.client.cert_pem,
            &f.pki.client.key_pem,
            &f.pki.ca.cert_pem,
            Some(expected),
            &ClientOptions::default(),
        )
        .unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut stream = client.connect(host, tcp).await.unwrap();
        let mut buf = [0u8; 3];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(task.await.unwrap().unwrap().identity.originator(), AE_ID);
    }
}

#[tokio::test]
async fn client_refuses_a_server_naming_another_cse() {
    let f = fixture();
    let server = f.server(&f.settings());
    let (addr, _task) = listen(server).await;
    let client = TlsClient::certificate(
        &f.pki.client.cert_pem,
        &f.pki.client.key_pem,
        &f.pki.ca.cert_pem,
        Some("//acme.example.com/id-other"),
        &ClientOptions::default(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    match client.connect("localhost", tcp).await {
        Err(HandshakeError::ServerIdentityMismatch { expected }) => {
            assert_eq!(expected, "//acme.example.com/id-other")
        }
        other => panic!("expected a mismatch, got {:?}", other.map(|_| ())),
    }
}

fn s_client(args: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Q\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn openssl_s_client_psk_interop() {
    let f = fixture();
    let server = f.server(&f.settings());
    let (addr, task) = listen(server).await;
    let connect = addr.to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        s_client(&[
            "-connect",
            &connect,
            "-psk_identity",
            KPSA_ID,
            "-psk",
            KPSA_HEX,
            "-cipher",
            "PSK-AES128-CBC-SHA256",
            "-tls1_2",
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(text.contains("Cipher is PSK-AES128-CBC-SHA256"), "{text}");
    let accepted = task.await.unwrap().unwrap();
    assert_eq!(accepted.identity.credential(), KPSA_ID);
    assert_eq!(accepted.identity.originator(), AE_ID);
}

#[tokio::test]
async fn openssl_s_client_certificate_interop() {
    let f = fixture();
    let dir = &f.dir_path;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let cert = write("client.pem", &f.pki.client.cert_pem);
    let key = write("client.key", &f.pki.client.key_pem);
    let ca = write("ca.pem", &f.pki.ca.cert_pem);
    let server = f.server(&f.settings());
    let (addr, task) = listen(server).await;
    let connect = addr.to_string();
    let (ok, text) = tokio::task::spawn_blocking(move || {
        s_client(&[
            "-connect",
            &connect,
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
            "ECDHE-ECDSA-AES128-SHA256",
            "-tls1_2",
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    let accepted = task.await.unwrap().unwrap();
    assert_eq!(accepted.cipher, "ECDHE-ECDSA-AES128-SHA256");
    assert_eq!(accepted.identity.originator(), AE_ID);
}

/// A client leaf from the trusted CA, naming `AE_ID`, with `key` and signed with `digest`.
fn leaf_with(
    f: &Fixture,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    digest: openssl::hash::MessageDigest,
) -> CertAndKey {
    use openssl::x509::extension::SubjectAlternativeName;
    let ca_cert = openssl::x509::X509::from_pem(f.pki.ca.cert_pem.as_bytes()).unwrap();
    let ca_key = openssl::pkey::PKey::private_key_from_pem(f.pki.ca.key_pem.as_bytes()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", AE_ID).unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(4242).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca_cert.subject_name()).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .uri(AE_ID)
        .build(&b.x509v3_context(Some(&ca_cert), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, digest).unwrap();
    CertAndKey {
        cert_pem: String::from_utf8(b.build().to_pem().unwrap()).unwrap(),
        key_pem: String::from_utf8(key.private_key_to_pem_pkcs8().unwrap())
            .unwrap()
            .into(),
    }
}

/// OpenSSL runs at security level 0 (for CCM_8), so Bastion checks chain strength itself:
/// a SHA-1 signature or a small key from an otherwise trusted CA aborts the handshake.
#[tokio::test]
async fn weak_certificates_from_a_trusted_ca_are_refused() {
    let f = fixture();
    let p256 = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let p256 = openssl::pkey::PKey::from_ec_key(p256).unwrap();
    // The same construction with SHA-256 is accepted: only the weakness differs.
    let sound = leaf_with(&f, &p256, openssl::hash::MessageDigest::sha256());
    let server = f.server(&f.settings());
    let (addr, task) = listen(server).await;
    let client = f.cert_client(&sound, &tls12("ECDHE-ECDSA-AES128-SHA256"));
    client_run(&client, addr).await.unwrap();
    assert_eq!(task.await.unwrap().unwrap().identity.originator(), AE_ID);

    let sha1 = leaf_with(&f, &p256, openssl::hash::MessageDigest::sha1());
    let rsa1024 =
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
    let small = leaf_with(&f, &rsa1024, openssl::hash::MessageDigest::sha256());
    for weak in [sha1, small] {
        let (server, client) = cert_failure(&f, &f.settings(), &weak).await;
        assert_eq!(server, "certificate verify failed");
        assert_eq!(client, "ssl/tls alert handshake failure");
    }
}

/// TS-0003 10.1.1 / RFC 5280 4.2.1.6: the identity is issued as an absolute URI
/// (`onem2m://sp/...`), so a CA's nameConstraints on the SP's host apply to it (8.1.2.2,
/// 10.1.1.5): a certificate of a constrained CA naming another SP's AE-ID fails the
/// handshake, one naming its own SP is bound to the AE-ID.
#[tokio::test]
async fn ts0003_10_1_1_5_identity_uris_are_absolute_and_name_constrained() {
    let f = fixture();
    let ca =
        certs::create_constrained_ca("SP CA", &["acme.example.com"], Validity::days(2)).unwrap();
    let issue = |id: &str| {
        certs::issue(
            &ca,
            &Subject::onem2m(id).unwrap().with_dns("localhost"),
            Validity::days(2),
        )
        .unwrap()
    };
    let server_cert = issue(SERVER_ID);
    let inside = issue(AE_ID);
    let outside = issue("//other.example.com/id-mn/Cabc");
    let san: Vec<String> = openssl::x509::X509::from_pem(inside.cert_pem.as_bytes())
        .unwrap()
        .subject_alt_names()
        .unwrap()
        .iter()
        .filter_map(|n| n.uri().map(str::to_owned))
        .collect();
    assert_eq!(san, vec!["onem2m://acme.example.com/id-mn/Cabc".to_owned()]);

    let mut settings = f.settings();
    settings.server_certificates = vec![ServerCertificate {
        server_names: vec!["localhost".into()],
        chain_pem: server_cert.cert_pem.clone(),
        key_pem: server_cert.key_pem.clone(),
    }];
    settings.trust_anchors = vec![ca.cert_pem.clone()];
    let client_for = |leaf: &CertAndKey| {
        TlsClient::certificate(
            &leaf.cert_pem,
            &leaf.key_pem,
            &ca.cert_pem,
            Some(SERVER_ID),
            &tls12("ECDHE-ECDSA-AES128-SHA256"),
        )
        .unwrap()
    };

    let (addr, task) = listen(f.server(&settings)).await;
    client_run(&client_for(&inside), addr).await.unwrap();
    let accepted = task.await.unwrap().unwrap();
    assert_eq!(accepted.identity.framework(), Framework::Certificate);
    assert_eq!(accepted.identity.binding(), &Binding::Ae(AE_ID.into()));

    let (addr, task) = listen(f.server(&settings)).await;
    let client = tls_reason(client_run(&client_for(&outside), addr).await);
    assert_eq!(tls_reason(task.await.unwrap()), "certificate verify failed");
    // OpenSSL's name-constraint failure (X509_V_ERR_PERMITTED_VIOLATION) alerts as
    // certificate_unknown, unlike the identity check of the verify callback.
    assert_eq!(client, "ssl/tls alert certificate unknown");
}

/// A key server's answer kept in memory: what a MEF or MAF client would have fetched.
#[derive(Debug)]
struct KeyServerAnswers {
    identity: &'static str,
    current: std::sync::atomic::AtomicBool,
    asked: std::sync::atomic::AtomicUsize,
}

impl bastion_tls::RemotePskSource for KeyServerAnswers {
    fn fetch(&self, identity: &str) -> Option<bastion_tls::RemotePsk> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (identity == self.identity).then(|| bastion_tls::RemotePsk {
            key: PskKey::from_hex(KPSA_HEX).unwrap(),
            binding: Binding::ae(AE_ID).unwrap(),
        })
    }

    fn is_current(&self, identity: &str) -> bool {
        identity == self.identity && self.current.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_key_server_identity_unknown_to_the_registry_is_fetched_and_bound() {
    let f = fixture();
    let source = Arc::new(KeyServerAnswers {
        identity: "0a1b2c@mef.example.com",
        current: true.into(),
        asked: 0.into(),
    });
    let settings = ServerSettings {
        remote_psk: Some(source.clone()),
        ..f.settings()
    };
    let server = f.server(&settings);

    // A registry key is found without asking the key server.
    let (addr, task) = listen(server.clone()).await;
    client_run(
        &psk_client(KPSA_ID, KPSA_HEX, &ClientOptions::default()),
        addr,
    )
    .await
    .unwrap();
    let local = task.await.unwrap().unwrap();
    assert!(!local.identity.is_remote_psk());
    assert_eq!(source.asked.load(std::sync::atomic::Ordering::SeqCst), 0);

    // A RelativeKeyID@FQDN identity the registry lacks comes from the key server.
    let (addr, task) = listen(server.clone()).await;
    let client = psk_client(
        "0a1b2c@mef.example.com",
        KPSA_HEX,
        &tls12("PSK-AES128-CBC-SHA256"),
    );
    let client_exports = client_run(&client, addr).await.unwrap();
    let accepted = task.await.unwrap().unwrap();
    assert_eq!(accepted.identity.framework(), Framework::Psk);
    assert_eq!(accepted.identity.credential(), "0a1b2c@mef.example.com");
    assert_eq!(accepted.identity.originator(), AE_ID);
    assert!(accepted.identity.is_remote_psk());
    assert_eq!(accepted.exports, client_exports);
    assert!(!server.is_revoked(&accepted.identity));

    // The key server ends the key's lifetime: the association may no longer be used.
    source
        .current
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(server.is_revoked(&accepted.identity));

    // Identities the key server does not know fail as unknown identities.
    for identity in ["ffff@mef.example.com", "0a1b2c@maf.example.com"] {
        let (addr, task) = listen(server.clone()).await;
        let client = psk_client(identity, KPSA_HEX, &tls12("PSK-AES128-CBC-SHA256"));
        assert_eq!(
            tls_reason(client_run(&client, addr).await),
            "tlsv1 alert unknown psk identity"
        );
        assert_eq!(tls_reason(task.await.unwrap()), "psk identity not found");
    }
    assert_eq!(source.asked.load(std::sync::atomic::Ordering::SeqCst), 3);
}
