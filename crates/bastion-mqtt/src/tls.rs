//! TLS to the broker (`mqtts://`, TS-0010 clause 7): the CSE's broker session inside a
//! TLS association made by `bastion_tls::TlsClient`, with a pre-shared key or a
//! certificate, the same client every other association of the CSE uses.
//!
//! Why a bridge: the MQTT client's own TLS back ends cannot do pre-shared keys, and the
//! workspace has one TLS stack. So the MQTT client connects to a Unix socket in a
//! directory only this process's user can enter (a fresh `0700` temporary directory), and
//! each connection on that socket is carried to the broker over a new TCP connection and
//! TLS handshake. A failed connect or handshake closes the Unix side, which the MQTT
//! client sees as a lost session and retries with its usual back-off.
//!
//! Bounds: at most [`MAX_BRIDGED`] bridged connections at once (the client holds one;
//! the spare covers a reconnection overlapping the old one's close); connect and
//! handshake each within [`CONNECT_TIMEOUT`]. Failures are logged once a minute, with
//! OpenSSL's reason and never a key.

use bastion_core::throttle::Throttle;
use bastion_tls::TlsClient;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// Bridged connections open at once.
pub const MAX_BRIDGED: usize = 2;
/// How long the TCP connect, and then the TLS handshake, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the CSE authenticates to the broker and checks it: a configured TLS client, and
/// the name the broker's certificate must carry (also sent as SNI).
#[derive(Clone)]
pub struct BrokerTls {
    pub client: Arc<TlsClient>,
    pub server_name: String,
}

impl std::fmt::Debug for BrokerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The running bridge: the socket the MQTT client connects to. Dropping it removes the
/// directory; the accept task ends with the runtime.
pub(crate) struct TlsBridge {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsBridge {
    /// Binds the bridge's socket and starts accepting on it.
    pub(crate) fn start(broker: SocketAddr, tls: BrokerTls) -> io::Result<TlsBridge> {
        let dir = tempfile::Builder::new()
            .prefix("bastion-mqtts-")
            .tempdir()?;
        let socket = dir.path().join("broker.sock");
        let listener = UnixListener::bind(&socket)?;
        tokio::spawn(accept(listener, broker, tls));
        Ok(TlsBridge { socket, _dir: dir })
    }

    /// The socket path, the MQTT client's broker address.
    pub(crate) fn socket(&self) -> &std::path::Path {
        &self.socket
    }
}

async fn accept(listener: UnixListener, broker: SocketAddr, tls: BrokerTls) {
    let slots = Arc::new(Semaphore::new(MAX_BRIDGED));
    let warn = Arc::new(Throttle::per_minute());
    loop {
        let Ok((local, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // More connections than the one client makes: refuse by closing.
            continue;
        };
        let (tls, warn) = (tls.clone(), warn.clone());
        tokio::spawn(async move {
            if let Err(why) = carry(local, broker, &tls).await {
                if warn.ready() {
                    tracing::warn!(
                        broker = %broker,
                        reason = %why,
                        "TLS to the MQTT broker failed (further failures are not logged for a minute)"
                    );
                }
            }
            drop(slot);
        });
    }
}

/// Connects to the broker, runs the handshake and copies both ways until either side
/// closes.
async fn carry(mut local: UnixStream, broker: SocketAddr, tls: &BrokerTls) -> Result<(), String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(broker))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut remote =
        tokio::time::timeout(CONNECT_TIMEOUT, tls.client.connect(&tls.server_name, tcp))
            .await
            .map_err(|_| "handshake timed out".to_owned())?
            .map_err(|e| format!("handshake: {e}"))?;
    // The end of a session is normal; only a failure to set it up is worth a line.
    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
    Ok(())
}
