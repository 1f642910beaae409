//! DTLS 1.2 security associations over one UDP socket (TS-0003 10.2, RFC 6347), for CoAP
//! over DTLS: the same credentials, PSK and certificate callbacks, revocation and identity
//! binding as TLS, because every connection is made from [`TlsServer`]'s DTLS context and
//! judged by [`TlsServer`] into an [`Association`].
//!
//! ```text
//!  UdpSocket ─► endpoint loop (one task): peers by source address
//!     unknown address ─► cookie.rs: ClientHello without a valid cookie ─► HelloVerifyRequest
//!                                    (stateless: HMAC over the address, no state kept)
//!                       valid cookie ─► pending handshake (bounded, timed out)
//!     pending ─► pipe.rs queue ─► OpenSSL ─► done ─► TlsServer::association_of
//!                                                 ─► DtlsSession to accept() (bounded)
//!     established ─► decrypted datagram ─► DtlsSession::recv (bounded queue)
//!     DtlsSession::send ─► encrypted ─► socket;  idle sessions reaped
//! ```
//!
//! A binding uses:
//!
//! ```no_run
//! # async fn serve(tls: std::sync::Arc<bastion_tls::TlsServer>) -> Result<(), bastion_tls::DtlsError> {
//! use bastion_tls::dtls::{DtlsLimits, DtlsServer};
//! let mut server = DtlsServer::bind("0.0.0.0:5684".parse().unwrap(), tls, DtlsLimits::default()).await?;
//! while let Some(mut session) = server.accept().await {
//!     tokio::spawn(async move {
//!         // session.association().originator() is the AE-ID / CSE-ID to check `From` with.
//!         while let Some(request) = session.recv().await {
//!             let _ = session.send(&request).await; // one datagram in, one out
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! Every [`DtlsSession::recv`] yields one application datagram; `None` once the server has
//! closed the session (peer close_notify or fatal alert, idle timeout, a new handshake
//! from the same address, server dropped). Dropping a session closes it (close_notify).
//! [`DtlsClient`] is the other end, for tests and the CSE's own outbound `coaps` requests.
//!
//! Revocation is the [`TlsServer`]'s: whoever owns it calls
//! [`TlsServer::refresh_revocation`] periodically (as `bastion serve` does for TLS), and
//! the binding asks [`Association::originator`] before every request (4107 when
//! revoked, then drops the session). A server-authenticated association
//! (`peer_http_authentication`) has no originator over DTLS: fail closed.
//!
//! Protection against spoofed and abandoned handshakes ([`DtlsLimits`]): the cookie
//! exchange is stateless, so a source address must answer before any state exists; then
//! at most `max_pending_handshakes` handshakes run at once, each for at most
//! `handshake_timeout`, and at most `max_sessions` associations are established, each
//! closed after `idle_timeout` without authenticated data. What exceeds a bound is
//! dropped before state is allocated and logged at most once per interval; a datagram
//! over `max_datagram` bytes, garbage, or an alert never ends the loop.

pub mod client;
pub mod cookie;
mod endpoint;
mod pipe;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::association::Association;
use crate::server::{HandshakeError, TlsServer};

pub use client::{DtlsClient, DtlsConnection};

/// How much a DTLS server lets peers hold; the defaults are explained in docs/security.md
/// ("DTLS") and docs/decisions.md.
#[derive(Debug, Clone)]
pub struct DtlsLimits {
    /// Handshakes past the cookie exchange and not yet finished, at once.
    pub max_pending_handshakes: usize,
    /// Established associations, at once.
    pub max_sessions: usize,
    /// A handshake not finished by then is dropped (half-open).
    pub handshake_timeout: Duration,
    /// An association without authenticated data for this long is closed.
    pub idle_timeout: Duration,
    /// Largest datagram received or application datagram sent, in bytes.
    pub max_datagram: usize,
    /// Path MTU handshake messages are fragmented for.
    pub mtu: u32,
    /// How often the cookie secret is replaced (a cookie verifies for up to twice this).
    pub cookie_rotation: Duration,
    /// Application datagrams queued for a session that has not read them yet.
    pub session_queue: usize,
    /// Established sessions waiting for [`DtlsServer::accept`].
    pub accept_queue: usize,
}

impl Default for DtlsLimits {
    fn default() -> Self {
        Self {
            max_pending_handshakes: 256,
            max_sessions: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_datagram: 4096,
            mtu: 1400,
            cookie_rotation: Duration::from_secs(60),
            session_queue: 16,
            accept_queue: 64,
        }
    }
}

/// DTLS failures.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// The socket failed (bind, send, receive).
    #[error("DTLS socket: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake failed or produced no association.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The handshake did not finish in time.
    #[error("DTLS handshake timed out")]
    TimedOut,
    /// The association is closed (by the peer, the server, or a timeout).
    #[error("the DTLS association is closed")]
    Closed,
    /// A datagram larger than the configured maximum.
    #[error("datagram of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Local OpenSSL setup failed (our side).
    #[error("DTLS setup failed: {0}")]
    Setup(#[from] openssl::error::ErrorStack),
    /// Keying material export failed.
    #[error(transparent)]
    Export(#[from] crate::exporter::ExportError),
}

/// Counters the loop keeps, for tests and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pending: AtomicUsize,
    sessions: AtomicUsize,
    refused: AtomicUsize,
    ignored: AtomicUsize,
}

/// A snapshot of a server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtlsStats {
    /// Handshakes in progress (past the cookie exchange).
    pub pending_handshakes: usize,
    /// Established associations.
    pub sessions: usize,
    /// Handshakes or sessions refused by a bound.
    pub refused: usize,
    /// Datagrams ignored: not a ClientHello from an unknown address, or oversized.
    pub ignored: usize,
}

/// A DTLS server on one UDP socket. Dropping it stops the loop and closes every session.
#[derive(Debug)]
pub struct DtlsServer {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<DtlsSession>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl DtlsServer {
    /// Binds `addr` and starts the loop; handshakes are judged by `tls` (its DTLS
    /// context, credential store and CRLs).
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<TlsServer>,
        limits: DtlsLimits,
    ) -> Result<DtlsServer, DtlsError> {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        let local_addr = socket.local_addr()?;
        let keys = Arc::new(cookie::CookieKeys::new(limits.cookie_rotation)?);
        let (accepted_tx, accepted) = mpsc::channel(limits.accept_queue.max(1));
        let counters = Arc::new(Counters::default());
        let endpoint =
            endpoint::Endpoint::new(socket, tls, keys, limits, accepted_tx, counters.clone());
        let task = tokio::spawn(endpoint.run());
        Ok(DtlsServer {
            local_addr,
            accepted,
            counters,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next established association; `None` when the loop has stopped.
    pub async fn accept(&mut self) -> Option<DtlsSession> {
        self.accepted.recv().await
    }

    /// Current counts.
    pub fn stats(&self) -> DtlsStats {
        DtlsStats {
            pending_handshakes: self.counters.pending.load(Ordering::Relaxed),
            sessions: self.counters.sessions.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
            ignored: self.counters.ignored.load(Ordering::Relaxed),
        }
    }
}

impl Drop for DtlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a session asks of the loop that owns its connection.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        key: SessionKey,
        datagram: Vec<u8>,
        reply: oneshot::Sender<Result<(), DtlsError>>,
    },
    Export {
        key: SessionKey,
        label: String,
        context: Option<Vec<u8>>,
        len: usize,
        reply: oneshot::Sender<Result<Zeroizing<Vec<u8>>, DtlsError>>,
    },
    Close {
        key: SessionKey,
    },
}

/// A session's address and the number of its association, so that a session never
/// acts on a later association from the same address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionKey {
    pub(crate) peer: SocketAddr,
    pub(crate) id: u64,
}

/// One established DTLS association, as a binding sees it.
#[derive(Debug)]
pub struct DtlsSession {
    key: SessionKey,
    association: Association,
    inbox: mpsc::Receiver<Vec<u8>>,
    commands: mpsc::Sender<Command>,
    max_datagram: usize,
}

impl DtlsSession {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.key.peer
    }

    /// The association: the identity the handshake bound and whether it is still valid
    /// ([`Association::originator`], 4107 on revoked).
    pub fn association(&self) -> &Association {
        &self.association
    }

    /// The next application datagram; `None` once the session is closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        self.inbox.recv().await
    }

    /// Sends one application datagram.
    pub async fn send(&self, datagram: &[u8]) -> Result<(), DtlsError> {
        if datagram.len() > self.max_datagram {
            return Err(DtlsError::TooLarge {
                len: datagram.len(),
                max: self.max_datagram,
            });
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Send {
            key: self.key,
            datagram: datagram.to_vec(),
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| DtlsError::Closed)?;
        answer.await.map_err(|_| DtlsError::Closed)?
    }

    /// RFC 5705 keying material of this association (TS-0003 10.3.1 labels in
    /// [`crate::exporter`]); wiped on drop.
    pub async fn export_keying_material(
        &self,
        label: &str,
        context: Option<&[u8]>,
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, DtlsError> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Export {
            key: self.key,
            label: label.to_owned(),
            context: context.map(<[u8]>::to_vec),
            len,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| DtlsError::Closed)?;
        answer.await.map_err(|_| DtlsError::Closed)?
    }
}

impl Drop for DtlsSession {
    fn drop(&mut self) {
        // Best effort: when the command queue is full the idle timeout closes it.
        let _ = self.commands.try_send(Command::Close { key: self.key });
    }
}
