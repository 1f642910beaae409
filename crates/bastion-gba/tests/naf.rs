//! GBA-based provisioning end to end at the TLS layer (TS-0003 8.3.2.3): a device
//! bootstraps with the software BSF over real HTTP (Ub), derives Ks_NAF itself, and runs
//! a real TLS-PSK handshake with a `bastion_tls::TlsServer` whose `GbaPskSource` fetches
//! Ks_NAF from the same BSF over real HTTP (Zn). Both ends hold equal keys; unknown,
//! expired and foreign B-TIDs and wrong keys are refused.

use std::sync::Arc;
use std::time::Duration;

use bastion_gba::{GbaPskSource, NafConfig};
use bastion_gba_bsf::{bootstrap, BsfConfig, DeviceBootstrap, NafClient, RunningBsf, Subscriber};
use bastion_keys::gba::{derive_ks_naf, BTid, NafId, UaProtocolId};
use bastion_tls::{
    ClientOptions, CredentialRegistry, HandshakeError, PeerIdentity, PskKey, RemotePskSource,
    ServerSettings, StoreKey, TlsClient, TlsServer, TlsVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zeroize::Zeroizing;

const NAF_FQDN: &str = "in-cse.example.com";
const ZN_SECRET: &str = "zn-secret-of-the-in-cse-0123456789";
const IMPI: &str = "device1@ims.example.com";
const SHORT_IMPI: &str = "device2@ims.example.com";
const ELSEWHERE_IMPI: &str = "device3@ims.example.com";
const K: [u8; 32] = [0x42; 32];

fn subscriber(impi: &str, enrolee: &str, lifetime: Duration, nafs: &[&str]) -> Subscriber {
    Subscriber {
        impi: impi.into(),
        k: Zeroizing::new(K),
        enrolee_id: enrolee.into(),
        allowed_nafs: nafs.iter().map(|n| (*n).to_owned()).collect(),
        lifetime,
    }
}

async fn bsf() -> RunningBsf {
    bastion_gba_bsf::start(BsfConfig {
        domain: "bsf.example.com".into(),
        subscribers: vec![
            subscriber(IMPI, "Cdevice1", Duration::from_secs(3600), &[NAF_FQDN]),
            subscriber(SHORT_IMPI, "Cdevice2", Duration::from_secs(2), &[NAF_FQDN]),
            subscriber(
                ELSEWHERE_IMPI,
                "Cdevice3",
                Duration::from_secs(3600),
                &["maf.example.com"],
            ),
        ],
        nafs: vec![NafClient {
            fqdn: NAF_FQDN.into(),
            secret: Zeroizing::new(ZN_SECRET.into()),
        }],
        max_bootstraps: 16,
    })
    .await
    .expect("BSF starts")
}

struct Naf {
    _dir: tempfile::TempDir,
    source: Arc<GbaPskSource>,
    server: Arc<TlsServer>,
}

fn start_naf(bsf_url: &str, secret: &str) -> Naf {
    let dir = tempfile::tempdir().unwrap();
    let registry = CredentialRegistry::open(
        dir.path().join("credentials.bin"),
        StoreKey::generate().unwrap(),
    )
    .unwrap();
    let source = GbaPskSource::new(NafConfig::new(
        bsf_url,
        NAF_FQDN,
        Zeroizing::new(secret.into()),
    ))
    .expect("NAF source");
    let settings = ServerSettings {
        psk: true,
        remote_psk: Some(source.clone()),
        ..ServerSettings::default()
    };
    let server = Arc::new(TlsServer::new(&settings, registry).unwrap());
    Naf {
        _dir: dir,
        source,
        server,
    }
}

/// The device's own Ks_NAF for the CSE's NAF_Id.
fn device_key(device: &DeviceBootstrap, impi: &str, ua: UaProtocolId) -> PskKey {
    let naf_id = NafId::new(NAF_FQDN, ua).unwrap();
    let key = derive_ks_naf(&device.ks, device.btid.rand(), impi, &naf_id).unwrap();
    PskKey::new(key.as_bytes()).unwrap()
}

/// TLS 1.2 with the suite the default Ua identifier names (TLS_PSK_WITH_AES_128_CBC_SHA256).
fn options() -> ClientOptions {
    ClientOptions {
        max_version: Some(TlsVersion::Tls12),
        tls12_ciphers: Some("PSK-AES128-CBC-SHA256".into()),
        ..ClientOptions::default()
    }
}

/// One handshake: the server's outcome and the client's.
async fn handshake(
    server: &Arc<TlsServer>,
    identity: &str,
    key: PskKey,
) -> (
    Result<PeerIdentity, HandshakeError>,
    Result<(), HandshakeError>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = server.clone();
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut stream, identity) = server.accept(tcp).await?;
        stream.write_all(b"ok\n").await.unwrap();
        stream.shutdown().await.ok();
        Ok(identity)
    });
    let client = TlsClient::psk_with_identity(identity, key, &options()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client_result = match client.connect("localhost", tcp).await {
        Ok(mut stream) => {
            let mut buf = [0u8; 3];
            stream
                .read_exact(&mut buf)
                .await
                .map(|_| assert_eq!(&buf, b"ok\n"))
                .map_err(|e| HandshakeError::Tls {
                    reason: e.to_string(),
                })
        }
        Err(e) => Err(e),
    };
    (accept.await.unwrap(), client_result)
}

fn reason<T: std::fmt::Debug>(result: Result<T, HandshakeError>) -> String {
    match result {
        Err(HandshakeError::Tls { reason }) => reason,
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrapped_device_gets_an_association_bound_to_its_enrolee_id() {
    let bsf = bsf().await;
    let naf = start_naf(&bsf.url, ZN_SECRET);
    let device = bootstrap(&bsf.url, IMPI, &K).await.expect("bootstrap");
    assert_eq!(device.btid.bsf_domain(), "bsf.example.com");
    let identity = device.btid.psk_identity().unwrap();
    assert!(identity.starts_with("3GPP-bootstrapping."));

    let key = device_key(&device, IMPI, UaProtocolId::ONEM2M_DEFAULT);
    let (accepted, client) = handshake(&naf.server, &identity, key.clone()).await;
    client.expect("client handshake");
    let accepted = accepted.expect("server handshake");
    assert_eq!(accepted.credential(), identity);
    assert_eq!(accepted.originator(), "Cdevice1");
    assert!(accepted.is_remote_psk());
    assert!(!naf.server.is_revoked(&accepted));

    // Both ends hold the same Ks_NAF: the NAF's (now cached) equals the device's.
    let fetched = naf.source.fetch(&identity).expect("cached key");
    assert_eq!(fetched.key.expose(), key.expose());
    assert!(naf.source.is_current(&identity));

    // A second association reuses the cached key (the BSF is not needed any more).
    drop(bsf);
    let (accepted, client) = handshake(&naf.server, &identity, key).await;
    client.expect("second client handshake");
    assert_eq!(accepted.expect("second handshake").originator(), "Cdevice1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_foreign_and_misderived_keys_are_refused() {
    let bsf = bsf().await;
    let naf = start_naf(&bsf.url, ZN_SECRET);
    let device = bootstrap(&bsf.url, IMPI, &K).await.expect("bootstrap");

    // A B-TID the BSF never issued.
    let unknown = BTid::new([0x55; 16], "bsf.example.com").unwrap();
    let identity = unknown.psk_identity().unwrap();
    let (accepted, client) = handshake(
        &naf.server,
        &identity,
        device_key(&device, IMPI, UaProtocolId::ONEM2M_DEFAULT),
    )
    .await;
    assert_eq!(reason(accepted), "psk identity not found");
    assert_eq!(reason(client), "tlsv1 alert unknown psk identity");
    assert!(!naf.source.is_current(&identity));

    // The right B-TID with a key derived for another Ua protocol (another NAF_Id).
    let identity = device.btid.psk_identity().unwrap();
    let wrong = device_key(&device, IMPI, UaProtocolId::TLS13_SHARED_KEY);
    let (accepted, client) = handshake(&naf.server, &identity, wrong).await;
    assert_eq!(reason(accepted), "decryption failed or bad record mac");
    assert!(client.is_err());

    // A subscriber whose security settings do not name this NAF.
    let elsewhere = bootstrap(&bsf.url, ELSEWHERE_IMPI, &K)
        .await
        .expect("bootstrap");
    let identity = elsewhere.btid.psk_identity().unwrap();
    let key = device_key(&elsewhere, ELSEWHERE_IMPI, UaProtocolId::ONEM2M_DEFAULT);
    let (accepted, _) = handshake(&naf.server, &identity, key).await;
    assert_eq!(reason(accepted), "psk identity not found");

    // A NAF the BSF does not authenticate gets nothing for a good B-TID.
    let impostor = start_naf(&bsf.url, "not-the-zn-secret");
    let identity = device.btid.psk_identity().unwrap();
    let key = device_key(&device, IMPI, UaProtocolId::ONEM2M_DEFAULT);
    let (accepted, _) = handshake(&impostor.server, &identity, key).await;
    assert_eq!(reason(accepted), "psk identity not found");

    // A plain KpsaID is not a GBA identity: the source does not even ask the BSF.
    assert!(naf.source.fetch("0a1b@mef.example.com").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_bootstrap_ends_the_association_and_is_refused() {
    let bsf = bsf().await;
    let naf = start_naf(&bsf.url, ZN_SECRET);
    let device = bootstrap(&bsf.url, SHORT_IMPI, &K)
        .await
        .expect("bootstrap");
    let identity = device.btid.psk_identity().unwrap();
    let key = device_key(&device, SHORT_IMPI, UaProtocolId::ONEM2M_DEFAULT);
    let (accepted, client) = handshake(&naf.server, &identity, key.clone()).await;
    client.expect("client handshake");
    let accepted = accepted.expect("server handshake");
    assert_eq!(accepted.originator(), "Cdevice2");
    assert!(!naf.server.is_revoked(&accepted));

    // Past the bootstrap's lifetime the association may no longer be used, and neither
    // the cache nor the BSF (410) gives the key again.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(!naf.source.is_current(&identity));
    assert!(naf.server.is_revoked(&accepted));
    let (accepted, client) = handshake(&naf.server, &identity, key).await;
    assert_eq!(reason(accepted), "psk identity not found");
    assert!(client.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_bsf_fails_the_handshake_within_the_timeout() {
    // A TCP listener that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let registry =
        CredentialRegistry::open(dir.path().join("c.bin"), StoreKey::generate().unwrap()).unwrap();
    let mut config = NafConfig::new(&url, NAF_FQDN, Zeroizing::new(ZN_SECRET.into()));
    config.timeout = Duration::from_millis(500);
    let source = GbaPskSource::new(config).unwrap();
    let settings = ServerSettings {
        psk: true,
        remote_psk: Some(source.clone()),
        ..ServerSettings::default()
    };
    let server = Arc::new(TlsServer::new(&settings, registry).unwrap());
    let identity = BTid::new([1; 16], "bsf.example.com")
        .unwrap()
        .psk_identity()
        .unwrap();
    let started = std::time::Instant::now();
    let (accepted, _) = handshake(&server, &identity, PskKey::new(&[1; 32]).unwrap()).await;
    assert_eq!(reason(accepted), "psk identity not found");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}
