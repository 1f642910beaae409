//! The DTLS server loop: owns the UDP socket and every peer's OpenSSL connection, feeds
//! each datagram to the connection of its source address (or to the stateless cookie
//! exchange), drives retransmission timers and reaps half-open handshakes and idle
//! sessions. One task, no locks: sessions talk to it through [`Command`]s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{ErrorCode, SslStream};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::cookie::{self, CookieKeys, PeerCookie};
use super::pipe::DatagramPipe;
use super::{Command, Counters, DtlsError, DtlsLimits, DtlsSession, SessionKey};
use crate::server::{HandshakeError, TlsServer};

/// How often pending handshakes are driven so OpenSSL can retransmit a lost flight
/// (its timer starts at 1 s and doubles), and timeouts are checked.
const TICK: Duration = Duration::from_millis(200);
/// At most one warning per refusal reason per interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Commands queued from sessions to the loop.
const COMMAND_QUEUE: usize = 1024;
/// Room above the plaintext for the record header, explicit nonce and tag.
const RECORD_OVERHEAD: usize = 64;

enum Phase {
    Handshake {
        started: Instant,
    },
    Established {
        last_data: Instant,
        inbox: mpsc::Sender<Vec<u8>>,
    },
}

struct Peer {
    id: u64,
    /// The client random of the ClientHello that started this connection.
    client_random: Vec<u8>,
    stream: SslStream<DatagramPipe>,
    phase: Phase,
}

/// Why something was refused, logged at most once per [`REFUSAL_LOG_INTERVAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Refused {
    PendingHandshakes,
    Sessions,
    AcceptQueue,
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Self::PendingHandshakes => {
                "DTLS: pending-handshake limit reached; new handshakes dropped until some finish \
                 or time out"
            }
            Self::Sessions => "DTLS: session limit reached; new handshakes dropped",
            Self::AcceptQueue => {
                "DTLS: established sessions are not being accepted fast enough; new ones closed"
            }
        }
    }
}

pub(super) struct Endpoint {
    socket: UdpSocket,
    tls: Arc<TlsServer>,
    keys: Arc<CookieKeys>,
    limits: DtlsLimits,
    peers: HashMap<SocketAddr, Peer>,
    next_id: u64,
    accepted: mpsc::Sender<DtlsSession>,
    commands_tx: mpsc::Sender<Command>,
    commands_rx: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
    last_warned: HashMap<Refused, Instant>,
    plaintext: Vec<u8>,
}

impl Endpoint {
    pub(super) fn new(
        socket: UdpSocket,
        tls: Arc<TlsServer>,
        keys: Arc<CookieKeys>,
        limits: DtlsLimits,
        accepted: mpsc::Sender<DtlsSession>,
        counters: Arc<Counters>,
    ) -> Self {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let plaintext = vec![0; limits.max_datagram + RECORD_OVERHEAD];
        Self {
            socket,
            tls,
            keys,
            limits,
            peers: HashMap::new(),
            next_id: 0,
            accepted,
            commands_tx,
            commands_rx,
            counters,
            last_warned: HashMap::new(),
            plaintext,
        }
    }

    pub(super) async fn run(mut self) {
        // One byte more than allowed, to tell an oversized datagram from a full one.
        let mut buf = vec![0u8; self.limits.max_datagram + RECORD_OVERHEAD + 1];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) if n >= buf.len() => self.ignore(from, "oversized datagram", n),
                    Ok((n, from)) => self.on_datagram(from, &buf[..n]).await,
                    // ICMP errors surface here on some systems; the socket stays usable.
                    Err(e) => tracing::debug!(error = %e, "DTLS: receive failed"),
                },
                Some(command) = self.commands_rx.recv() => self.on_command(command).await,
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    fn ignore(&self, from: SocketAddr, why: &'static str, len: usize) {
        self.counters.ignored.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(peer = %from, len, why, "DTLS: datagram ignored");
    }

    fn refuse(&mut self, why: Refused, from: SocketAddr) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let due = self
            .last_warned
            .get(&why)
            .is_none_or(|at| now.saturating_duration_since(*at) >= REFUSAL_LOG_INTERVAL);
        if due {
            self.last_warned.insert(why, now);
            tracing::warn!(
                peer = %from,
                max_pending_handshakes = self.limits.max_pending_handshakes,
                max_sessions = self.limits.max_sessions,
                "{}", why.message()
            );
        }
    }

    async fn on_datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        let established = match self.peers.get(&from) {
            None => return self.on_unknown(from, datagram).await,
            Some(peer) => matches!(peer.phase, Phase::Established { .. }),
        };
        // A new ClientHello in epoch 0 to an established association: the peer lost
        // its state (RFC 6347 4.2.8); it gets the cookie exchange, and a new association
        // replaces the old one only once its address is proven. A duplicate of the
        // ClientHello that started the association is ignored.
        if established {
            if let Some(hello) = cookie::parse_client_hello(datagram) {
                let duplicate = self
                    .peers
                    .get(&from)
                    .is_some_and(|p| p.client_random == hello.random);
                if duplicate {
                    return self.ignore(from, "duplicate ClientHello", datagram.len());
                }
                return self.on_unknown(from, datagram).await;
            }
        }
        if let Some(peer) = self.peers.get_mut(&from) {
            peer.stream.get_mut().push(datagram);
        }
        if established {
            self.read_application(from).await;
        } else {
            self.advance_handshake(from).await;
        }
    }

    /// A datagram from an address without a connection: only a ClientHello is looked
    /// at. Without a valid cookie it gets a HelloVerifyRequest and nothing is kept.
    async fn on_unknown(&mut self, from: SocketAddr, datagram: &[u8]) {
        let Some(hello) = cookie::parse_client_hello(datagram) else {
            return self.ignore(from, "not a ClientHello", datagram.len());
        };
        if self.keys.verify(from, hello.cookie) {
            if let Some(initial) = cookie::initial_hello(&hello) {
                let random = hello.random.to_vec();
                return self.start_handshake(from, &initial, datagram, random).await;
            }
        }
        match self.keys.cookie(from) {
            Ok(c) => {
                let reply = cookie::hello_verify_request(&hello, &c);
                self.send_to(from, &reply).await;
            }
            Err(e) => tracing::error!(error = %e, "DTLS: cannot compute a cookie"),
        }
    }

    /// Pending handshakes (`true`) or established sessions (`false`); the loop is the
    /// only writer of the counters.
    fn count(&self, handshake: bool) -> usize {
        self.counter(handshake).load(Ordering::Relaxed)
    }

    fn counter(&self, handshake: bool) -> &std::sync::atomic::AtomicUsize {
        if handshake {
            &self.counters.pending
        } else {
            &self.counters.sessions
        }
    }

    fn insert_peer(&mut self, addr: SocketAddr, peer: Peer) {
        self.remove_peer(addr);
        self.counter(matches!(peer.phase, Phase::Handshake { .. }))
            .fetch_add(1, Ordering::Relaxed);
        self.peers.insert(addr, peer);
    }

    fn remove_peer(&mut self, addr: SocketAddr) {
        if let Some(peer) = self.peers.remove(&addr) {
            self.counter(matches!(peer.phase, Phase::Handshake { .. }))
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn start_handshake(
        &mut self,
        from: SocketAddr,
        initial: &[u8],
        hello: &[u8],
        client_random: Vec<u8>,
    ) {
        let replaced = self.peers.get(&from).map(|p| &p.phase);
        let replaces_pending = matches!(replaced, Some(Phase::Handshake { .. }));
        let replaces_session = matches!(replaced, Some(Phase::Established { .. }));
        if !replaces_pending && self.count(true) >= self.limits.max_pending_handshakes {
            return self.refuse(Refused::PendingHandshakes, from);
        }
        if !replaces_session && self.count(false) >= self.limits.max_sessions {
            return self.refuse(Refused::Sessions, from);
        }
        let stream = match self.new_connection(from, initial) {
            Ok(stream) => stream,
            Err(e) => return tracing::error!(error = %e, "DTLS: cannot set up a connection"),
        };
        if replaces_session {
            tracing::debug!(peer = %from, "DTLS: new handshake replaces the association");
        }
        self.next_id += 1;
        let mut peer = Peer {
            id: self.next_id,
            client_random,
            stream,
            phase: Phase::Handshake {
                started: Instant::now(),
            },
        };
        peer.stream.get_mut().push(hello);
        self.insert_peer(from, peer);
        self.advance_handshake(from).await;
    }

    /// A server connection brought to where OpenSSL has answered `initial` (the
    /// ClientHello the peer sent before our HelloVerifyRequest) itself.
    fn new_connection(
        &self,
        from: SocketAddr,
        initial: &[u8],
    ) -> Result<SslStream<DatagramPipe>, openssl::error::ErrorStack> {
        let cookie = PeerCookie {
            peer: from,
            keys: self.keys.clone(),
        };
        let mut ssl = self.tls.dtls_ssl(cookie)?;
        ssl.set_mtu(self.limits.mtu)?;
        let mut stream = SslStream::new(ssl, DatagramPipe::default())?;
        stream.get_mut().push(initial);
        // Expected: WANT_READ after writing the HelloVerifyRequest, which the peer
        // already had from us.
        let _ = stream.accept();
        stream.get_mut().take_outbound();
        Ok(stream)
    }

    async fn flush(&mut self, from: SocketAddr) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        for datagram in peer.stream.get_mut().take_outbound() {
            self.send_to(from, &datagram).await;
        }
    }

    async fn send_to(&self, to: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self.socket.send_to(datagram, to).await {
            tracing::debug!(peer = %to, error = %e, "DTLS: send failed");
        }
    }

    async fn advance_handshake(&mut self, from: SocketAddr) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let result = peer.stream.accept();
        self.flush(from).await;
        match result {
            Ok(()) => self.establish(from).await,
            Err(e) if e.code() == ErrorCode::WANT_READ => {}
            Err(e) => {
                let reason = HandshakeError::from_ssl(&e);
                tracing::debug!(peer = %from, error = %reason, "DTLS: handshake failed");
                self.remove_peer(from);
            }
        }
    }

    async fn establish(&mut self, from: SocketAddr) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let association = match self.tls.association_of(peer.stream.ssl()) {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(peer = %from, error = %e, "DTLS: association refused");
                return self.close(from).await;
            }
        };
        let (inbox_tx, inbox) = mpsc::channel(self.limits.session_queue.max(1));
        let session = DtlsSession {
            key: SessionKey {
                peer: from,
                id: peer.id,
            },
            association,
            inbox,
            commands: self.commands_tx.clone(),
            max_datagram: self.limits.max_datagram,
        };
        peer.phase = Phase::Established {
            last_data: Instant::now(),
            inbox: inbox_tx,
        };
        self.counters.pending.fetch_sub(1, Ordering::Relaxed);
        self.counters.sessions.fetch_add(1, Ordering::Relaxed);
        match self.accepted.try_send(session) {
            Ok(()) => self.read_application(from).await,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.refuse(Refused::AcceptQueue, from);
                self.close(from).await;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.close(from).await,
        }
    }

    /// Sends close_notify and forgets the peer (its session then reads `None`).
    async fn close(&mut self, from: SocketAddr) {
        if let Some(peer) = self.peers.get_mut(&from) {
            let _ = peer.stream.shutdown();
            self.flush(from).await;
        }
        self.remove_peer(from);
    }

    async fn read_application(&mut self, from: SocketAddr) {
        loop {
            let Some(peer) = self.peers.get_mut(&from) else {
                return;
            };
            let Phase::Established { last_data, inbox } = &mut peer.phase else {
                return;
            };
            match peer.stream.ssl_read(&mut self.plaintext) {
                Ok(n) => {
                    *last_data = Instant::now();
                    match inbox.try_send(self.plaintext[..n].to_vec()) {
                        Ok(()) => {}
                        // UDP semantics: a reader that falls behind loses datagrams.
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            tracing::debug!(peer = %from, "DTLS: session queue full, datagram dropped");
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return self.close(from).await,
                    }
                }
                Err(e) if e.code() == ErrorCode::WANT_READ => break,
                Err(e) => {
                    tracing::debug!(peer = %from, error = %HandshakeError::from_ssl(&e), "DTLS: association ended");
                    self.flush(from).await;
                    self.remove_peer(from);
                    return;
                }
            }
        }
        self.flush(from).await;
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                key,
                datagram,
                reply,
            } => {
                let result = self.send_application(key, &datagram).await;
                let _ = reply.send(result);
            }
            Command::Export {
                key,
                label,
                context,
                len,
                reply,
            } => {
                let result = match self.established(key) {
                    Some(peer) => {
                        crate::exporter::export(peer.stream.ssl(), &label, context.as_deref(), len)
                            .map_err(DtlsError::from)
                    }
                    None => Err(DtlsError::Closed),
                };
                let _ = reply.send(result);
            }
            Command::Close { key } => {
                if self.established(key).is_some() {
                    self.close(key.peer).await;
                }
            }
        }
    }

    fn established(&mut self, key: SessionKey) -> Option<&mut Peer> {
        self.peers
            .get_mut(&key.peer)
            .filter(|p| p.id == key.id && matches!(p.phase, Phase::Established { .. }))
    }

    async fn send_application(
        &mut self,
        key: SessionKey,
        datagram: &[u8],
    ) -> Result<(), DtlsError> {
        let peer = self.established(key).ok_or(DtlsError::Closed)?;
        let written = peer.stream.ssl_write(datagram);
        self.flush(key.peer).await;
        match written {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(peer = %key.peer, error = %HandshakeError::from_ssl(&e), "DTLS: send failed");
                self.remove_peer(key.peer);
                Err(DtlsError::Closed)
            }
        }
    }

    /// Rotates the cookie secret, lets OpenSSL retransmit lost handshake flights, and
    /// drops half-open handshakes and idle or abandoned sessions.
    async fn on_tick(&mut self) {
        let now = Instant::now();
        if let Err(e) = self.keys.rotate_if_due(now) {
            tracing::error!(error = %e, "DTLS: cookie secret not rotated");
        }
        let mut expired = Vec::new();
        let mut pending = Vec::new();
        for (addr, peer) in &self.peers {
            match &peer.phase {
                Phase::Handshake { started } => {
                    if now.saturating_duration_since(*started) >= self.limits.handshake_timeout {
                        expired.push((*addr, false));
                    } else {
                        pending.push(*addr);
                    }
                }
                Phase::Established { last_data, inbox } => {
                    let idle =
                        now.saturating_duration_since(*last_data) >= self.limits.idle_timeout;
                    if idle || inbox.is_closed() {
                        expired.push((*addr, true));
                    }
                }
            }
        }
        for (addr, established) in expired {
            tracing::debug!(peer = %addr, established, "DTLS: timed out");
            if established {
                self.close(addr).await;
            } else {
                self.remove_peer(addr);
            }
        }
        // With nothing to read, OpenSSL checks its retransmission timer and resends.
        for addr in pending {
            self.advance_handshake(addr).await;
        }
    }
}
