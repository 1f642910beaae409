//! A `bastion das` watched the way `bastion serve` is in [`super::limits`]: its whole log
//! kept, its process known, its descriptor limit lowered while it runs, and raw exchanges
//! over TLS-PSK with the association a hosting CSE holds with it ([`super::das_tls`]).

use super::das_tls::{das_command, CSE_DAS_KPSA, CSE_DAS_KPSA_ID, DAS_START_TIMEOUT};
use super::{spawn_watched, RawResp};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `bastion das` with a TLS listener only; killed when dropped.
pub struct WatchedDas {
    child: Child,
    /// Port of the TLS listener.
    pub tls_port: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for WatchedDas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bastion das ARGS --policy POLICY` (ARGS with `--tls-listen 127.0.0.1:0` and
/// no plain listener) and waits for its `listening on` line.
pub fn start_watched_das(policy: &Path, args: &[String]) -> WatchedDas {
    let log = Arc::new(Mutex::new(String::new()));
    let mut command = das_command(policy, args);
    let (child, tls_port) = spawn_watched(&mut command, "bastion das", &log, DAS_START_TIMEOUT);
    WatchedDas {
        child,
        tls_port,
        log,
    }
}

impl WatchedDas {
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether `needle` shows in the log within `within`.
    pub fn log_shows(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sets the running process's descriptor limit (soft and hard) to `nofile`.
    pub fn set_nofile(&self, nofile: u64) {
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(self.child.id().to_string())
            .arg(format!("--nofile={nofile}:{nofile}"))
            .status()
            .expect("run prlimit");
        assert!(status.success(), "prlimit --pid failed");
    }

    /// A TLS-PSK connection to the TLS listener on the hosting CSE's association.
    pub async fn tls_stream(&self) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
        let client = bastion_tls::TlsClient::psk(
            CSE_DAS_KPSA_ID,
            bastion_tls::PskKey::from_hex(CSE_DAS_KPSA).expect("key"),
            &bastion_tls::ClientOptions::default(),
        )
        .expect("client");
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.tls_port))
            .await
            .expect("connect");
        client.connect("localhost", tcp).await.expect("handshake")
    }
}

/// Writes `bytes` on `stream`, then reads until the server closes the connection (at most
/// 15 s, else panics) and parses what came as one response; `None` when nothing came.
pub async fn exchange_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
) -> Option<RawResp> {
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut out)).await;
    // An end of stream, a reset or a TLS close without close_notify: closed, all of them.
    if read.is_err() {
        panic!(
            "the server did not close the connection; got so far: {}",
            String::from_utf8_lossy(&out)
        );
    }
    (!out.is_empty()).then(|| RawResp::parse(&out))
}
