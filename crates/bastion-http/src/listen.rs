//! How every listener, plain and TLS, the CSE's and the DAS's, takes and keeps
//! connections: the one accept loop, the connection and handshake caps they share, and
//! the timeouts every connection runs under. [`serve_router`] (plain) and
//! [`crate::tls::serve_router_tls`] serve any axum router on it.
//!
//! ```text
//!  connection cap (shared) ─► accept ─┬─ ok ─► spawn: [handshake cap ─► TLS handshake] ─► hyper
//!        ▲ waits when full            ├─ one connection failed (reset, aborted) ─► next
//!        │ (logged once)              └─ anything else (EMFILE, ENFILE, ENOBUFS, ENOMEM…)
//!        │                                  ─► back off 10 ms … 1 s, retry (logged once)
//!        └── released when the connection's task ends
//! ```
//!
//! * **Accept errors never end the server.** Running out of descriptors or memory is a
//!   state that passes once connections close; the loop backs off and tries again.
//! * **Caps.** [`Gate::connections`] bounds the connections of both listeners together
//!   (they share the process's descriptors); [`Gate::handshakes`] bounds TLS handshakes in
//!   progress. A full cap makes the listener wait before accepting, so a waiting client
//!   costs no descriptor. A full cap is logged as one warning, then at most once a
//!   minute however often it fills ([`Throttle`]).
//! * **Timeouts** ([`TimedIo`], per connection): a request head must arrive within
//!   `header_timeout` of the connection's start or of its first byte; a kept-alive
//!   connection may stay idle for `idle_timeout` between requests; a request body must
//!   arrive within `body_timeout` (enforced where the body is read, `crate::decode`).
//!   While a request is being handled no timer runs on the connection: the handler owns
//!   its time.

use axum::extract::ConnectInfo;
use bastion_core::throttle::Throttle;
use bastion_core::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Built-in default cap on open connections (both listeners together).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Built-in default cap on TLS handshakes in progress.
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;
/// Built-in default time a client has to send a complete request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Built-in default time a client has to send a request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Built-in default time a kept-alive connection may stay idle between requests.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Shortest and longest pause after an accept error that is not about one connection.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The per-connection timeouts (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: DEFAULT_HEADER_TIMEOUT,
            body: DEFAULT_BODY_TIMEOUT,
            idle: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// The caps both listeners draw from; clones share them.
#[derive(Clone, Debug)]
pub struct Gate {
    connections: Arc<Cap>,
    handshakes: Arc<Cap>,
}

impl Gate {
    /// At most `max_connections` open connections and `max_handshakes` TLS handshakes in
    /// progress (each at least 1).
    pub fn new(max_connections: usize, max_handshakes: usize) -> Gate {
        Gate {
            connections: Arc::new(Cap::new("connection", max_connections)),
            handshakes: Arc::new(Cap::new("TLS handshake", max_handshakes)),
        }
    }

    /// A slot for one TLS handshake; waits while the cap is full.
    pub(crate) async fn handshake(&self) -> Option<OwnedSemaphorePermit> {
        self.handshakes.acquire().await
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HANDSHAKES)
    }
}

/// A bounded count of things in progress, with its rate-limited warning.
#[derive(Debug)]
struct Cap {
    what: &'static str,
    limit: usize,
    slots: Arc<Semaphore>,
    /// A cap that stays at its limit logs once a minute, not once per connection.
    warned: Throttle,
}

impl Cap {
    fn new(what: &'static str, limit: usize) -> Cap {
        let limit = limit.max(1);
        Cap {
            what,
            limit,
            slots: Arc::new(Semaphore::new(limit)),
            warned: Throttle::per_minute(),
        }
    }

    /// `None` only if the semaphore was closed, which nothing does.
    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(permit);
        }
        if self.warned.ready() {
            tracing::warn!(
                limit = self.limit,
                "{} cap reached ({}): new ones wait until others end",
                self.what,
                self.limit
            );
        }
        self.slots.clone().acquire_owned().await.ok()
    }
}

/// Accepts connections on `listener` for as long as the future lives, each under a slot
/// of `gate`'s connection cap, and runs `serve` for each in its own task. The slot is
/// released when that task ends. `listener_name` names the listener in logs.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    gate: Gate,
    listener_name: &'static str,
    serve: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut backoff: Option<Duration> = None;
    loop {
        let Some(slot) = gate.connections.acquire().await else {
            return Ok(());
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => {
                tracing::debug!(error = %e, "accept failed for one connection");
                continue;
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM and whatever else the listener reports:
                // the condition passes when connections close, so wait and try again.
                let pause = match backoff {
                    None => {
                        tracing::warn!(
                            listener = listener_name,
                            error = %e,
                            "cannot accept connections; retrying with back-off"
                        );
                        BACKOFF_MIN
                    }
                    Some(previous) => (previous * 2).min(BACKOFF_MAX),
                };
                backoff = Some(pause);
                drop(slot);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if backoff.take().is_some() {
            tracing::info!(listener = listener_name, "accepting connections again");
        }
        // Small request/response exchanges: never wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let connection = serve(tcp, peer);
        tokio::spawn(async move {
            connection.await;
            drop(slot);
        });
    }
}

/// Serves `app` over plain HTTP on `listener` until the future is dropped: connections
/// through [`accept_loop`] under `gate`, each with [`TimedIo`]'s `timeouts`, every
/// request carrying `ConnectInfo(peer)` and the [`Listener`] (`http`). The body timeout
/// is the router's to apply where it reads bodies ([`crate::read_body`]). Used by the
/// CSE's plain listener and the DAS's.
pub async fn serve_router(
    listener: TcpListener,
    app: axum::Router,
    timeouts: Timeouts,
    gate: Gate,
) -> io::Result<()> {
    let local = Listener {
        scheme: "http",
        local: listener.local_addr()?,
    };
    accept_loop(listener, gate, "http", move |tcp, peer| {
        let app = app.clone();
        async move {
            let busy = Busy::default();
            let io = TimedIo::new(tcp, timeouts, busy.clone());
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    let app = app.clone();
                    let handling = busy.enter();
                    async move {
                        request.extensions_mut().insert(ConnectInfo(peer));
                        request.extensions_mut().insert(local);
                        let response = app.oneshot(request.map(axum::body::Body::new)).await;
                        drop(handling);
                        response
                    }
                });
            if let Err(e) = http1().serve_connection(TokioIo::new(io), service).await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
    })
    .await
}

/// Accept errors that concern one connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// The HTTP/1.1 connection builder both listeners use.
pub(crate) fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Header and idle timeouts are [`TimedIo`]'s: hyper's own header timer would also run
    // while a kept-alive connection waits for its next request.
    builder.header_read_timeout(None);
    builder
}

/// Whether a request is being handled on a connection: the connection's service holds a
/// [`BusyGuard`] for the time it runs, its [`TimedIo`] reads the state. A counter, odd
/// while busy, so that a request handled entirely between two reads is still seen.
#[derive(Clone, Debug, Default)]
pub(crate) struct Busy(Arc<BusyState>);

#[derive(Debug, Default)]
struct BusyState {
    seq: AtomicU64,
    /// The reader waiting while the request was handled. hyper reads again after a
    /// response only when woken, so the end of a request wakes it: the idle timer starts.
    reader: std::sync::Mutex<Option<Waker>>,
}

impl Busy {
    /// Marks the connection busy until the returned guard is dropped.
    pub(crate) fn enter(&self) -> BusyGuard {
        self.0.seq.fetch_add(1, Ordering::AcqRel);
        BusyGuard(self.0.clone())
    }

    fn state(&self) -> u64 {
        self.0.seq.load(Ordering::Acquire)
    }

    fn park(&self, waker: &Waker) {
        let mut reader = self.0.reader.lock().unwrap_or_else(|e| e.into_inner());
        match reader.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *reader = Some(waker.clone()),
        }
    }
}

pub(crate) struct BusyGuard(Arc<BusyState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.seq.fetch_add(1, Ordering::AcqRel);
        let reader = self
            .0
            .reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(waker) = reader {
            waker.wake();
        }
    }
}

/// Where a connection is between requests, as [`TimedIo`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head: `header` timeout.
    Head,
    /// Kept alive, no byte of the next request yet: `idle` timeout.
    Idle,
    /// A request is being handled: no timeout here.
    Busy,
}

/// A connection's byte stream with the header and idle timeouts: a read that has been
/// waiting past the current phase's deadline fails with `TimedOut`, which ends the
/// connection.
pub(crate) struct TimedIo<S> {
    inner: S,
    timeouts: Timeouts,
    busy: Busy,
    phase: Phase,
    /// The [`Busy`] state last seen.
    seen: u64,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> TimedIo<S> {
    /// A fresh connection: its first request head is due within the header timeout.
    pub(crate) fn new(inner: S, timeouts: Timeouts, busy: Busy) -> TimedIo<S> {
        let deadline = Instant::now() + timeouts.header;
        TimedIo {
            inner,
            timeouts,
            busy,
            phase: Phase::Head,
            seen: 0,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.deadline = match phase {
            Phase::Head => Instant::now() + self.timeouts.header,
            Phase::Idle => Instant::now() + self.timeouts.idle,
            Phase::Busy => return,
        };
    }

    /// Moves to the phase the connection is in now, given whether this read got bytes.
    fn track(&mut self, got_bytes: bool) {
        let state = self.busy.state();
        if state != self.seen {
            self.seen = state;
            // Odd: a request is being handled; even: one ended since the last read.
            self.enter(if state % 2 == 1 {
                Phase::Busy
            } else {
                Phase::Idle
            });
        }
        if got_bytes && self.phase == Phase::Idle {
            self.enter(Phase::Head);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.track(buf.filled().len() > before);
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.track(false);
                if this.phase == Phase::Busy {
                    this.busy.park(cx.waker());
                    return Poll::Pending;
                }
                if this.timer.deadline() != this.deadline {
                    let deadline = this.deadline;
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        match this.phase {
                            Phase::Idle => "idle connection timed out",
                            _ => "request head not received in time",
                        },
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn short() -> Timeouts {
        Timeouts {
            header: Duration::from_millis(200),
            body: Duration::from_millis(200),
            idle: Duration::from_millis(400),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_as_a_missing_head() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = TimedIo::new(server, short(), Busy::default());
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "request head not received in time");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn no_timer_runs_while_a_request_is_handled_then_idle_applies() {
        let (mut client, server) = tokio::io::duplex(64);
        let busy = Busy::default();
        let mut io = TimedIo::new(server, short(), busy.clone());
        client.write_all(b"GET").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.unwrap(), 3);
        let guard = busy.enter();
        // Longer than every timeout: the handler owns its time.
        let waited = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf)).await;
        assert!(waited.is_err(), "no read error while busy");
        drop(guard);
        let started = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.to_string(), "idle connection timed out");
        assert!(started.elapsed() >= short().idle);
    }

    #[tokio::test]
    async fn a_full_cap_waits_for_a_released_slot() {
        let cap = Cap::new("test", 1);
        let first = cap.acquire().await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(50), cap.acquire()).await;
        assert!(second.is_err(), "the second slot must wait");
        drop(first);
        let again = cap.acquire().await;
        assert!(again.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_handled_between_two_reads_starts_the_idle_timer() {
        let (_client, server) = tokio::io::duplex(64);
        let busy = Busy::default();
        let mut io = TimedIo::new(server, short(), busy.clone());
        drop(busy.enter());
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.to_string(), "idle connection timed out");
    }

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_request_wakes_the_reader_parked_while_busy() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (_client, server) = tokio::io::duplex(64);
        let busy = Busy::default();
        let mut io = TimedIo::new(server, short(), busy.clone());
        let handling = busy.enter();
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut storage = [0u8; 8];
        let mut buf = ReadBuf::new(&mut storage);
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut buf).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        drop(handling);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the reader was not woken"
        );
        let err = io.read(&mut storage).await.unwrap_err();
        assert_eq!(err.to_string(), "idle connection timed out");
    }

    #[test]
    fn per_connection_accept_errors_are_told_apart() {
        assert!(is_per_connection(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
        assert!(!is_per_connection(&io::Error::from_raw_os_error(24)));
    }
}
