//! GBA-based remote security provisioning end to end (TS-0003 8.3.2.3; docs/provisioning.md,
//! "GBA"): the software BSF (tests only) runs in this process over real HTTP; a device
//! bootstraps with it (Ub), derives Ks_NAF for the CSE itself and opens a real TLS-PSK
//! association with the `bastion serve` binary, whose `[provisioning]` GBA source fetches
//! Ks_NAF over Zn. The CSE binds the association to the Enrolee-ID the BSF reports.

use crate::common;

use std::time::Duration;

use bastion_gba_bsf::{bootstrap, BsfConfig, DeviceBootstrap, NafClient, RunningBsf, Subscriber};
use bastion_keys::gba::{derive_ks_naf, BTid, NafId, UaProtocolId};
use bastion_tls::{ClientOptions, HandshakeError, PskKey, TlsClient, TlsVersion};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

const NAF_FQDN: &str = "in-cse.bastion.example";
const ZN_SECRET: &str = "zn-secret-of-the-cse-under-test-0123456789";
const STORE_KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const IMPI: &str = "device1@ims.bastion.example";
const SHORT_IMPI: &str = "device2@ims.bastion.example";
const K: [u8; 32] = [0x5a; 32];

async fn start_bsf() -> RunningBsf {
    let subscriber = |impi: &str, enrolee: &str, lifetime: u64| Subscriber {
        impi: impi.into(),
        k: Zeroizing::new(K),
        enrolee_id: enrolee.into(),
        allowed_nafs: vec![NAF_FQDN.into()],
        lifetime: Duration::from_secs(lifetime),
    };
    bastion_gba_bsf::start(BsfConfig {
        domain: "bsf.bastion.example".into(),
        subscribers: vec![
            subscriber(IMPI, "Cdevice1", 3600),
            subscriber(SHORT_IMPI, "Cdevice2", 3),
        ],
        nafs: vec![NafClient {
            fqdn: NAF_FQDN.into(),
            secret: Zeroizing::new(ZN_SECRET.into()),
        }],
        max_bootstraps: 16,
    })
    .await
    .expect("BSF")
}

/// `bastion serve` with a PSK-only TLS listener whose unknown identities go to the BSF.
fn start_cse(bsf_url: &str, files: &std::path::Path) -> (Server, u16) {
    write_key_file(&files.join("store.key"), STORE_KEY);
    write_key_file(&files.join("zn.secret"), ZN_SECRET);
    let config = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"psk\"]\ncredentials-key-file = \"{}\"\n\
         [provisioning]\ngba-bsf-url = \"{bsf_url}\"\ngba-naf-fqdn = \"{NAF_FQDN}\"\n\
         gba-zn-secret-file = \"{}\"\n",
        path(files, "store.key"),
        path(files, "zn.secret"),
    );
    let srv = Server::start_with_config(&config);
    let port = tls_port(&srv);
    (srv, port)
}

/// The device's own Ks_NAF for the CSE (NAF_Id = its FQDN and the default Ua protocol).
fn device_key(device: &DeviceBootstrap, impi: &str, ua: UaProtocolId) -> PskKey {
    let naf_id = NafId::new(NAF_FQDN, ua).unwrap();
    let key = derive_ks_naf(&device.ks, device.btid.rand(), impi, &naf_id).unwrap();
    PskKey::new(key.as_bytes()).unwrap()
}

/// One HTTP/1.1 request inside a fresh TLS-PSK association presenting `identity`; the
/// response's `X-M2M-RSC`, or the handshake failure.
async fn request(
    port: u16,
    identity: &str,
    key: PskKey,
    method: &str,
    target: &str,
    originator: &str,
    ty_and_body: Option<(u32, &str)>,
) -> Result<String, HandshakeError> {
    let options = ClientOptions {
        max_version: Some(TlsVersion::Tls12),
        tls12_ciphers: Some("PSK-AES128-CBC-SHA256".into()),
        ..ClientOptions::default()
    };
    let client = TlsClient::psk_with_identity(identity, key, &options).expect("client");
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut stream = client.connect("localhost", tcp).await?;
    let (content_type, body) = match ty_and_body {
        Some((ty, body)) => (format!("Content-Type: application/json;ty={ty}\r\n"), body),
        None => (String::new(), ""),
    };
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nX-M2M-Origin: {originator}\r\n\
         X-M2M-RI: gba-1\r\nX-M2M-RVI: 3\r\nAccept: application/json\r\n{content_type}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut response = Vec::new();
    // The server may close without close_notify; what arrived is the answer.
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    Ok(response
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-m2m-rsc:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| format!("no rsc in {response:?}")))
}

fn tls_failure(result: Result<String, HandshakeError>) -> String {
    match result {
        Err(HandshakeError::Tls { reason }) => reason,
        other => panic!("expected a failed handshake, got {other:?}"),
    }
}

const AE_BODY: &str =
    r#"{"m2m:ae": {"rn": "device1", "api": "Ndevice", "rr": false, "srv": ["3"]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts0003_8_3_2_3_a_gba_bootstrapped_device_registers_its_ae_over_ks_naf() {
    let bsf = start_bsf().await;
    let files = tempfile::tempdir().unwrap();
    let (srv, port) = tokio::task::block_in_place(|| start_cse(&bsf.url, files.path()));

    let device = bootstrap(&bsf.url, IMPI, &K).await.expect("bootstrap");
    let identity = device.btid.psk_identity().unwrap();
    let key = device_key(&device, IMPI, UaProtocolId::ONEM2M_DEFAULT);

    // Registration over the association, From = the Enrolee-ID the BSF reported.
    let created = request(
        port,
        &identity,
        key.clone(),
        "POST",
        "/cse-in",
        "Cdevice1",
        Some((2, AE_BODY)),
    )
    .await
    .expect("handshake");
    assert_eq!(created, "2001");
    let read = request(
        port,
        &identity,
        key.clone(),
        "GET",
        "/cse-in/device1",
        "Cdevice1",
        None,
    )
    .await
    .expect("handshake");
    assert_eq!(read, "2000");
    // TS-0003 7.2.1: another originator inside that association is not authenticated.
    let impostor = request(
        port,
        &identity,
        key.clone(),
        "POST",
        "/cse-in",
        "Cimpostor",
        Some((
            2,
            r#"{"m2m:ae": {"rn": "imp", "api": "Nimp", "rr": false, "srv": ["3"]}}"#,
        )),
    )
    .await
    .expect("handshake");
    assert_eq!(impostor, "4106");

    // The right B-TID with a key the device derived for another NAF_Id.
    let wrong = device_key(&device, IMPI, UaProtocolId::TLS13_SHARED_KEY);
    let refused = request(port, &identity, wrong, "GET", "/cse-in", "Cdevice1", None).await;
    assert_eq!(tls_failure(refused), "ssl/tls alert bad record mac");

    // A B-TID the BSF never issued.
    let unknown = BTid::new([0x77; 16], "bsf.bastion.example").unwrap();
    let refused = request(
        port,
        &unknown.psk_identity().unwrap(),
        key,
        "GET",
        "/cse-in",
        "Cdevice1",
        None,
    )
    .await;
    assert_eq!(tls_failure(refused), "tlsv1 alert unknown psk identity");
    assert!(srv.log_shows("gba: no Ks_NAF for this B-TID", Duration::from_secs(5)));
    assert!(!srv.log().contains(ZN_SECRET), "the Zn secret was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts0003_8_3_2_3_an_expired_bootstrap_is_refused() {
    let bsf = start_bsf().await;
    let files = tempfile::tempdir().unwrap();
    let (_srv, port) = tokio::task::block_in_place(|| start_cse(&bsf.url, files.path()));

    let device = bootstrap(&bsf.url, SHORT_IMPI, &K)
        .await
        .expect("bootstrap");
    let identity = device.btid.psk_identity().unwrap();
    let key = device_key(&device, SHORT_IMPI, UaProtocolId::ONEM2M_DEFAULT);
    let created = request(
        port,
        &identity,
        key.clone(),
        "POST",
        "/cse-in",
        "Cdevice2",
        Some((
            2,
            r#"{"m2m:ae": {"rn": "device2", "api": "Nd2", "rr": false, "srv": ["3"]}}"#,
        )),
    )
    .await
    .expect("handshake");
    assert_eq!(created, "2001");

    // Past the bootstrap's lifetime neither the CSE's cache nor the BSF gives the key.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let refused = request(port, &identity, key, "GET", "/cse-in", "Cdevice2", None).await;
    assert_eq!(tls_failure(refused), "tlsv1 alert unknown psk identity");
}

#[test]
fn provisioning_gba_needs_a_psk_listener() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bastion.toml");
    std::fs::write(
        &file,
        format!(
            "[provisioning]\ngba-bsf-url = \"http://127.0.0.1:9\"\n\
             gba-naf-fqdn = \"{NAF_FQDN}\"\ngba-zn-secret-file = \"zn.secret\"\n"
        ),
    )
    .unwrap();
    let out = bastion(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        &file.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("[provisioning] gba-bsf-url needs a [tls] listener with the psk framework"),
        "{out:?}"
    );
}
