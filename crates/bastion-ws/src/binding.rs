//! [`WsBinding`]: one WebSocket listener (`ws://` plain, or `wss://` over the TLS
//! security associations of [`bastion_tls::TlsServer`], the same server, credential
//! store and `[tls]` settings as the HTTPS listener) through the core's [`Binding`] port.
//! Accepts connections within the [`Hub`]'s connection budget and runs each to its close.

use crate::connection::{self, Peer};
use crate::Hub;
use bastion_core::{Binding, Cse, Listener};
use bastion_tls::TlsServer;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What a plain client over the connection limit is told before the connection closes.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// Refusals (503) being written at once; beyond, a connection over the limit is closed
/// unanswered.
const MAX_REFUSALS: usize = 16;
/// How long a refusal may take, reading the upgrade request included.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// A WebSocket listener of the CSE.
pub struct WsBinding {
    listener: TcpListener,
    local: SocketAddr,
    tls: Option<Arc<TlsServer>>,
    hub: Arc<Hub>,
}

impl WsBinding {
    /// The plain listener (`ws://`): requests carry no association identity.
    pub fn plain(listener: TcpListener, hub: Arc<Hub>) -> io::Result<WsBinding> {
        Ok(WsBinding {
            local: listener.local_addr()?,
            listener,
            tls: None,
            hub,
        })
    }

    /// The TLS listener (`wss://`): the association `tls` establishes before the upgrade
    /// is the identity of every request on the connection.
    pub fn secure(
        listener: TcpListener,
        tls: Arc<TlsServer>,
        hub: Arc<Hub>,
    ) -> io::Result<WsBinding> {
        Ok(WsBinding {
            local: listener.local_addr()?,
            listener,
            tls: Some(tls),
            hub,
        })
    }
}

#[async_trait::async_trait]
impl Binding for WsBinding {
    fn listener(&self) -> Listener {
        Listener {
            scheme: if self.tls.is_some() { "wss" } else { "ws" },
            local: self.local,
        }
    }

    /// Accepts until the future is dropped, which also ends every connection.
    async fn serve(self: Box<Self>, cse: Arc<Cse>) -> io::Result<()> {
        let listener = self.listener();
        tracing::info!(point_of_access = %listener.point_of_access(), "serving WebSocket (TS-0020)");
        let mut connections = JoinSet::new();
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of descriptors and the like: wait, do not spin.
                            tracing::warn!(error = %e, "WebSocket accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let Some(slot) = self.hub.admit_connection() else {
                        if self.tls.is_none() {
                            if let Ok(refusing) = refusals.clone().try_acquire_owned() {
                                connections.spawn(refuse(tcp, refusing));
                            }
                        }
                        continue;
                    };
                    let (hub, cse, tls) = (self.hub.clone(), cse.clone(), self.tls.clone());
                    connections.spawn(async move {
                        let _slot = slot;
                        accept(hub, cse, tls, tcp, peer, listener).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

/// Answers a plain connection over the limit 503: its upgrade request is read first (at
/// most 8 KiB), so that closing with unread data does not reset the connection before
/// the client reads the answer.
async fn refuse(mut tcp: TcpStream, _refusing: OwnedSemaphorePermit) {
    let answer = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while seen.len() < 8192 && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tcp.write_all(BUSY).await;
        let _ = tcp.shutdown().await;
    };
    let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
}

/// Runs one accepted connection: the TLS handshake when `tls`, then the WebSocket
/// upgrade, both within the handshake timeout.
async fn accept(
    hub: Arc<Hub>,
    cse: Arc<Cse>,
    tls: Option<Arc<TlsServer>>,
    tcp: TcpStream,
    addr: SocketAddr,
    listener: Listener,
) {
    let deadline = Instant::now() + hub.config.handshake_timeout;
    let Some(tls) = tls else {
        let peer = Peer {
            addr,
            listener,
            association: None,
        };
        return connection::run(hub, cse, tcp, peer, deadline).await;
    };
    let (stream, association) = match tokio::time::timeout_at(deadline, tls.associate(tcp)).await {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(e)) => {
            tracing::info!(peer = %addr, error = %e, "TLS handshake refused (WebSocket)");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %addr, "TLS handshake timed out (WebSocket)");
            return;
        }
    };
    if let Some(identity) = association.identity() {
        tracing::debug!(
            peer = %addr,
            framework = ?identity.framework(),
            originator = identity.originator(),
            "security association established (WebSocket)"
        );
    }
    let peer = Peer {
        addr,
        listener,
        association: Some(association),
    };
    connection::run(hub, cse, stream, peer, deadline).await;
}
