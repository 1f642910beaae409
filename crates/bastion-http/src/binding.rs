//! The HTTP binding's two implementations of the core's [`Binding`] port: [`HttpBinding`]
//! (plain, no security association) and [`HttpsBinding`] (TLS, the association's
//! identity on every request), and [`request_context`], the one place that turns what a
//! connection knows into the [`RequestContext`] the core takes.
//!
//! ```text
//!  listen::serve_router ─► extensions: ConnectInfo(peer), Listener(http)
//!  tls::serve_router_tls ─► extensions: ConnectInfo(peer), Listener(https),
//!                           SaIdentity(Association::originator())
//!                                  │
//!                     request_context ─► RequestContext { peer, identity, listener }
//! ```

use crate::listen::Gate;
use crate::tls::SaIdentity;
use crate::HttpLimits;
use axum::extract::ConnectInfo;
use axum::Router;
use bastion_core::{Binding, Cse, Listener, RequestContext};
use bastion_tls::TlsServer;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the connection a request arrived on knows about it, as the core takes it. Only
/// the TLS listener inserts [`SaIdentity`], so a plain request never carries an identity.
pub fn request_context(extensions: &http::Extensions) -> RequestContext {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let identity = extensions.get::<SaIdentity>().map(|id| id.0.clone());
    let ctx = RequestContext::new(peer, identity);
    match extensions.get::<Listener>() {
        Some(listener) => ctx.on(*listener),
        None => ctx,
    }
}

/// The plain HTTP listener (`http://`): requests carry the peer address, no identity.
pub struct HttpBinding {
    listener: TcpListener,
    local: SocketAddr,
    limits: HttpLimits,
    gate: Gate,
    extra: Router,
}

impl HttpBinding {
    /// Serves on `listener` under `limits`, its connections counted against `gate`.
    pub fn new(listener: TcpListener, limits: HttpLimits, gate: Gate) -> io::Result<HttpBinding> {
        Ok(HttpBinding {
            local: listener.local_addr()?,
            listener,
            limits,
            gate,
            extra: Router::new(),
        })
    }

    /// Also answers `extra` (e.g. the location PIP's notification receiver) before the
    /// oneM2M fallback. `extra` must not have a fallback of its own.
    pub fn with_routes(mut self, extra: Router) -> HttpBinding {
        self.extra = extra;
        self
    }
}

#[async_trait::async_trait]
impl Binding for HttpBinding {
    fn listener(&self) -> Listener {
        Listener {
            scheme: "http",
            local: self.local,
        }
    }

    async fn serve(self: Box<Self>, cse: Arc<Cse>) -> io::Result<()> {
        crate::serve_with(self.listener, cse, self.limits, self.extra, self.gate).await
    }
}

/// The HTTP listener over TLS (`https://`): requests carry the peer address and the
/// identity of their security association, checked for revocation before each one.
pub struct HttpsBinding {
    listener: TcpListener,
    local: SocketAddr,
    tls: Arc<TlsServer>,
    limits: HttpLimits,
    gate: Gate,
}

impl HttpsBinding {
    /// Serves on `listener` with the associations `tls` establishes, under `limits`,
    /// connections and handshakes counted against `gate`.
    pub fn new(
        listener: TcpListener,
        tls: Arc<TlsServer>,
        limits: HttpLimits,
        gate: Gate,
    ) -> io::Result<HttpsBinding> {
        Ok(HttpsBinding {
            local: listener.local_addr()?,
            listener,
            tls,
            limits,
            gate,
        })
    }
}

#[async_trait::async_trait]
impl Binding for HttpsBinding {
    fn listener(&self) -> Listener {
        Listener {
            scheme: "https",
            local: self.local,
        }
    }

    async fn serve(self: Box<Self>, cse: Arc<Cse>) -> io::Result<()> {
        crate::tls::serve_tls(self.listener, self.tls, cse, self.limits, self.gate).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::{serve_router, Timeouts};
    use crate::tls::serve_router_tls;
    use bastion_tls::{
        Binding as Bound, ClientOptions, CredentialRegistry, PskKey, ServerSettings, StoreKey,
        TlsClient,
    };
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpStream;

    const KPSA_ID: &str = "sensor@bastion.example";
    const KEY: [u8; 16] = [7; 16];

    /// A router answering with the context [`request_context`] built, on one line.
    fn probe() -> Router {
        Router::new().fallback(|request: axum::extract::Request| async move {
            let ctx = request_context(request.extensions());
            format!(
                "peer={} identity={} listener={}\n",
                ctx.peer.map_or("-".to_owned(), |p| p.to_string()),
                ctx.identity.as_deref().unwrap_or("-"),
                ctx.listener.map_or("-".to_owned(), |l| l.point_of_access()),
            )
        })
    }

    /// Sends one GET on `stream` and returns the probe's line.
    async fn probed<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> String {
        stream
            .write_all(b"GET /cse-in HTTP/1.1\r\nHost: bastion\r\n\r\n")
            .await
            .expect("write");
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.ends_with(b"\n") || !seen.windows(5).any(|w| w == b"peer=") {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(seen).expect("utf-8");
        let line = text.lines().last().expect("line");
        line.to_owned()
    }

    #[tokio::test]
    async fn plain_http_gives_the_core_the_peer_and_its_listener_but_no_identity() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let local = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve_router(
            listener,
            probe(),
            Timeouts::default(),
            Gate::default(),
        ));
        let tcp = TcpStream::connect(local).await.expect("connect");
        let me = tcp.local_addr().expect("addr");
        assert_eq!(
            probed(tcp).await,
            format!("peer={me} identity=- listener=http://{local}")
        );
        server.abort();
    }

    #[tokio::test]
    async fn https_gives_the_core_the_identity_its_association_is_bound_to() {
        let dir = tempfile::tempdir().expect("dir");
        let registry = CredentialRegistry::open(
            dir.path().join("credentials.store"),
            StoreKey::generate().expect("key"),
        )
        .expect("registry");
        registry
            .add_psk(
                KPSA_ID,
                PskKey::new(&KEY).expect("psk"),
                Some(Bound::ae("Csensor").expect("binding")),
            )
            .expect("add");
        let settings = ServerSettings {
            psk: true,
            ..ServerSettings::default()
        };
        let tls = Arc::new(TlsServer::new(&settings, registry).expect("server"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let local = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve_router_tls(
            listener,
            tls,
            probe(),
            Timeouts::default(),
            Gate::default(),
            None,
        ));
        let client = TlsClient::psk(
            KPSA_ID,
            PskKey::new(&KEY).expect("psk"),
            &ClientOptions::default(),
        )
        .expect("client");
        let tcp = TcpStream::connect(local).await.expect("connect");
        let me = tcp.local_addr().expect("addr");
        let stream = client.connect("localhost", tcp).await.expect("handshake");
        assert_eq!(
            probed(stream).await,
            format!("peer={me} identity=Csensor listener=https://{local}")
        );
        server.abort();
    }

    #[test]
    fn without_connection_facts_the_context_is_empty() {
        let ctx = request_context(&http::Extensions::new());
        assert_eq!((ctx.peer, ctx.identity, ctx.listener), (None, None, None));
    }
}
