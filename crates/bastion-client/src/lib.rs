//! A small oneM2M client over the HTTP binding (TS-0009; core-bindings.md §4).
//!
//! [`Client::send`] maps a [`bastion_proto::Request`] onto one HTTP/1.1 request, sends it on
//! a kept-alive connection to the endpoint when one is idle, else on a new one, and maps
//! the HTTP response back onto a [`bastion_proto::Response`]:
//!
//! ```text
//!  Request ──encode──▶ method, path, query, X-M2M-*, Authorization, body
//!                         │  idle connection to the endpoint (pool.rs), or
//!                         │  Connector::connect(endpoint) → stream (TCP or TLS)
//!                         ▼  hyper::client::conn::http1
//!  Response ◀─decode── X-M2M-RSC, X-M2M-RI, X-M2M-RVI, Content-Location, JSON body
//! ```
//!
//! Connections are reused because forwarding and notification delivery send many small
//! requests to the same few peers, and a new TCP connection (and, over TLS, a full
//! handshake) per request cost most of their time (docs/benchmarks.md). A request goes on
//! a reused connection only if that connection can take it; when the peer closed it
//! before the request was written, the request is sent again on a new connection, so no
//! request is ever sent twice.
//!
//! The byte stream comes from a [`Connector`]; [`TcpConnector`] handles `http://` and
//! [`TlsConnector`] `https://` (TLS-PSK or certificates, [`tls`]), passed to
//! [`Client::with_connector`]; nothing else changes. A [`Client`] is the `http(s)`
//! [`Transport`]; [`Schemes`] picks the transport by a target's URI scheme ([`transport`]).
//!
//! Limits: one deadline covers connect, send and the whole response
//! ([`ClientConfig::timeout`]); response bodies over [`ClientConfig::max_body_bytes`] fail.
#![forbid(unsafe_code)]

mod encode;
mod pool;
pub mod tls;
pub mod transport;

use async_trait::async_trait;
use bastion_proto::{Request, Response, Rsc, Serialization};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

pub use tls::TlsConnector;
pub use transport::{Schemes, Transport};

/// Why a request got no oneM2M response. Variant docs say whose fault it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Caller: the target is not an absolute `scheme://host[:port][/path]` URI.
    #[error("invalid target URI: {0}")]
    InvalidTarget(String),
    /// Caller: no connector handles this URI scheme.
    #[error("unsupported URI scheme {0:?}")]
    UnsupportedScheme(String),
    /// Caller: the request primitive cannot be expressed in HTTP (e.g. `op` missing).
    #[error("request cannot be encoded: {0}")]
    InvalidRequest(String),
    /// Network: connecting failed.
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    /// Peer or configuration: no security association could be established.
    #[error("{0}")]
    Handshake(bastion_tls::HandshakeError),
    /// Network or peer: the HTTP exchange failed.
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    /// The deadline passed before the response was complete.
    #[error("no complete response within {0:?}")]
    Timeout(Duration),
    /// Peer: the response body exceeds the configured limit.
    #[error("response body exceeds {0} bytes")]
    BodyTooLarge(usize),
    /// Peer: the response is not a oneM2M HTTP response (no/invalid `X-M2M-RSC`, bad JSON).
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// Peer: `X-M2M-RSC` carries a code this crate does not know.
    #[error("unknown response status code {0}")]
    UnknownRsc(u16),
}

/// A byte stream a [`Connector`] hands out: TCP, TLS over TCP, ...
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Where to connect, taken from the target URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Lower-case URI scheme, e.g. `http`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

/// Opens byte streams to endpoints. Implementations decide which schemes they serve.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<dyn Io>, ClientError>;
}

/// Plain TCP for `http://` (no TLS).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

#[async_trait]
impl Connector for TcpConnector {
    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<dyn Io>, ClientError> {
        if endpoint.scheme != "http" {
            return Err(ClientError::UnsupportedScheme(endpoint.scheme.clone()));
        }
        let stream = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Box::new(stream))
    }
}

/// Client limits.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    /// Deadline for the whole exchange (connect, send, receive the full body).
    pub timeout: Duration,
    /// Largest accepted response body in bytes.
    pub max_body_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// A oneM2M HTTP client. Cheap to clone; clones share their idle connections.
#[derive(Clone)]
pub struct Client {
    connector: Arc<dyn Connector>,
    config: ClientConfig,
    next_rqi: Arc<AtomicU64>,
    idle: Arc<pool::Pool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientConfig::default())
    }
}

impl Client {
    /// A client for `http://` targets.
    pub fn new(config: ClientConfig) -> Client {
        Client::with_connector(Arc::new(TcpConnector), config)
    }

    /// A client whose streams come from `connector` (e.g. TLS).
    pub fn with_connector(connector: Arc<dyn Connector>, config: ClientConfig) -> Client {
        Client {
            connector,
            config,
            next_rqi: Arc::new(AtomicU64::new(1)),
            idle: Arc::new(pool::Pool::default()),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends `req` to `target` and returns the response primitive.
    ///
    /// `target` is an absolute URI. When it has a path (other than `/`), that path is the
    /// HTTP path: the form of a `poa` of a notification target (TS-0009 §6.2.2.1 with a
    /// proxy-free next hop) and `req.to` is not used for addressing. Otherwise the path
    /// comes from `req.to` (TS-0009 Table 6.2.2.1-1: `/` + CSE-relative, `/~` +
    /// SP-relative, `/_` + absolute without its first `/`). A request without `rqi` gets
    /// a generated one; without `rvi`, `3` is sent. A `?ct=json|cbor|xml` query on
    /// `target` is not sent: it selects the serialization of the body (JSON otherwise).
    pub async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        let timeout = self.config.timeout;
        match tokio::time::timeout(timeout, self.exchange(target, req)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// A plain `GET` of `target` (an absolute URI) with `Accept: accept`, outside oneM2M:
    /// the status and the whole body, under the same deadline and body bound as
    /// [`Client::send`], on a connection of its own. For signed documents fetched from a
    /// distribution point (a CRL, `bastion-est`).
    pub async fn fetch(
        &self,
        target: &str,
        accept: &str,
    ) -> Result<(http::StatusCode, Bytes), ClientError> {
        let timeout = self.config.timeout;
        let fetching = async {
            let (endpoint, path) = parse_target(target)?;
            let request = http::Request::get(path.as_deref().unwrap_or("/"))
                .header(http::header::HOST, authority_of(&endpoint))
                .header(http::header::ACCEPT, accept)
                .body(Full::new(Bytes::new()))
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let mut conn = self.open(&endpoint).await?;
            let resp = conn
                .sender
                .send_request(request)
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let bytes = self.read_bounded(&parts, body).await?;
            Ok((parts.status, bytes))
        };
        match tokio::time::timeout(timeout, fetching).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// The whole body, at most `max_body_bytes` (a larger declared or received length is
    /// [`ClientError::BodyTooLarge`]).
    async fn read_bounded(
        &self,
        parts: &http::response::Parts,
        body: hyper::body::Incoming,
    ) -> Result<Bytes, ClientError> {
        let max = self.config.max_body_bytes;
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ClientError::BodyTooLarge(max));
        }
        Ok(Limited::new(body, max)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ClientError::BodyTooLarge(max)
                } else {
                    ClientError::Http(e.to_string())
                }
            })?
            .to_bytes())
    }

    async fn exchange(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        let (target, asked) = target_serialization(target)?;
        let (endpoint, base_path) = parse_target(&target)?;
        let rqi = match &req.rqi {
            Some(r) => r.clone(),
            None => format!("bc-{}", self.next_rqi.fetch_add(1, Ordering::Relaxed)),
        };
        let ser = asked.unwrap_or(Serialization::Json);
        let http_req = encode::request(&endpoint, base_path.as_deref(), req, &rqi, ser)?;
        let (conn, resp) = self.pooled(&endpoint, http_req).await?;
        let (parts, bytes) = self.finish(&endpoint, conn, resp).await?;
        encode::response(&parts, &bytes)
    }

    /// A request outside oneM2M (`method`, `Content-Type: content_type` when given,
    /// `Accept: accept`, `body`) to `target`, on a pooled connection like
    /// [`Client::send`]'s: the way to speak another protocol (EST) over the same
    /// association. The status and the whole body, under the same deadline and bound.
    pub async fn request(
        &self,
        method: http::Method,
        target: &str,
        content_type: Option<&str>,
        accept: &str,
        body: Bytes,
    ) -> Result<(http::StatusCode, Bytes), ClientError> {
        let timeout = self.config.timeout;
        let exchanging = async {
            let (endpoint, path) = parse_target(target)?;
            let mut builder = http::Request::builder()
                .method(method)
                .uri(path.as_deref().unwrap_or("/"))
                .header(http::header::HOST, authority_of(&endpoint))
                .header(http::header::ACCEPT, accept);
            if let Some(content_type) = content_type {
                builder = builder.header(http::header::CONTENT_TYPE, content_type);
            }
            let request = builder
                .body(Full::new(body))
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let (conn, resp) = self.pooled(&endpoint, request).await?;
            let (parts, bytes) = self.finish(&endpoint, conn, resp).await?;
            Ok((parts.status, bytes))
        };
        match tokio::time::timeout(timeout, exchanging).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// Sends `http_req` on an idle connection to `endpoint` when one takes it, else on a
    /// new one.
    async fn pooled(
        &self,
        endpoint: &Endpoint,
        http_req: http::Request<Full<Bytes>>,
    ) -> Result<(pool::Connection, http::Response<hyper::body::Incoming>), ClientError> {
        let reused = match self.idle.take(endpoint) {
            // Waits for the connection to take a request; an error means it closed.
            Some(mut conn) => conn.sender.ready().await.is_ok().then_some(conn),
            None => None,
        };
        let (mut conn, http_req) = match reused {
            Some(mut conn) => match conn.sender.try_send_request(http_req).await {
                Ok(resp) => return Ok((conn, resp)),
                // Not written: the peer closed the idle connection. A new one follows.
                Err(mut e) => match e.take_message() {
                    Some(http_req) => (self.open(endpoint).await?, http_req),
                    None => return Err(ClientError::Http(e.into_error().to_string())),
                },
            },
            None => (self.open(endpoint).await?, http_req),
        };
        let resp = conn
            .sender
            .send_request(http_req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok((conn, resp))
    }

    /// A new connection to `endpoint`, its driver running in a task of its own.
    async fn open(&self, endpoint: &Endpoint) -> Result<pool::Connection, ClientError> {
        let stream = self.connector.connect(endpoint).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        });
        Ok(pool::Connection::new(sender, driver))
    }

    /// Reads the whole response, then offers the connection back for reuse.
    async fn finish(
        &self,
        endpoint: &Endpoint,
        conn: pool::Connection,
        resp: http::Response<hyper::body::Incoming>,
    ) -> Result<(http::response::Parts, Bytes), ClientError> {
        let (parts, body) = resp.into_parts();
        let bytes = self.read_bounded(&parts, body).await?;
        let closing = parts
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
            });
        if !closing {
            self.idle.put(endpoint, conn);
        }
        Ok((parts, bytes))
    }
}

/// The `Host` value of `endpoint` (an IPv6 literal in brackets).
fn authority_of(endpoint: &Endpoint) -> String {
    match endpoint.host.contains(':') {
        true => format!("[{}]:{}", endpoint.host, endpoint.port),
        false => format!("{}:{}", endpoint.host, endpoint.port),
    }
}

/// Splits an absolute URI into the endpoint and its path (`None` when empty or `/`);
/// a missing port is the scheme's registered one (`http` 80, `https` 443, `mqtt` 1883,
/// `mqtts` 8883, `coap` 5683, `coaps` 5684, `ws` 80, `wss` 443). Every binding's client
/// splits its targets here.
pub fn parse_target(target: &str) -> Result<(Endpoint, Option<String>), ClientError> {
    let uri: http::Uri = target
        .parse()
        .map_err(|_| ClientError::InvalidTarget(target.to_owned()))?;
    let scheme = uri
        .scheme_str()
        .ok_or_else(|| ClientError::InvalidTarget(target.to_owned()))?
        .to_ascii_lowercase();
    let host = uri
        .host()
        .ok_or_else(|| ClientError::InvalidTarget(target.to_owned()))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    let port = match (uri.port_u16(), scheme.as_str()) {
        (Some(p), _) => p,
        (None, "http") => 80,
        (None, "https") => 443,
        (None, "mqtt") => 1883,
        (None, "mqtts") => 8883,
        (None, "ws") => 80,
        (None, "wss") => 443,
        (None, "coap") => 5683,
        (None, "coaps") => 5684,
        (None, _) => return Err(ClientError::InvalidTarget(target.to_owned())),
    };
    // The target's own query (an application's, TS-0004 7.4.8) is sent with its path.
    let path = match (uri.path(), uri.query()) {
        ("" | "/", None) => None,
        ("", Some(query)) => Some(format!("/?{query}")),
        (p, Some(query)) => Some(format!("{p}?{query}")),
        (p, None) => Some(p.to_owned()),
    };
    Ok((Endpoint { scheme, host, port }, path))
}

/// [`bastion_proto::wire::target_serialization`], its refusal as this client's error.
fn target_serialization(
    target: &str,
) -> Result<(Cow<'_, str>, Option<Serialization>), ClientError> {
    bastion_proto::wire::target_serialization(target)
        .ok_or_else(|| ClientError::InvalidTarget(target.to_owned()))
}

/// The [`Rsc`] for a numeric code, if it is one Bastion knows.
pub fn rsc_from_code(code: u16) -> Option<Rsc> {
    Rsc::from_code(code)
}

/// Request body type used on the wire.
pub(crate) type Body = Full<Bytes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_endpoint_and_path() {
        let (e, p) = parse_target("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            e,
            Endpoint {
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(p, None);
        let (e, p) = parse_target("HTTP://[::1]/das/notify").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 80));
        assert_eq!(p.as_deref(), Some("/das/notify"));
        assert!(parse_target("cse-in/ae").is_err());
        let (_, p) = parse_target("http://h:1/x?y=1").unwrap();
        assert_eq!(
            p.as_deref(),
            Some("/x?y=1"),
            "an application's query is kept"
        );
        let (_, p) = parse_target("http://h:1?y=1").unwrap();
        assert_eq!(p.as_deref(), Some("/?y=1"));
        assert!(target_serialization("http://h:1/n?ct=yaml").is_err());
        assert_eq!(parse_target("coap://h/x").unwrap().0.port, 5683);
        assert!(parse_target("gopher://h/x").is_err());
    }

    #[test]
    fn websocket_targets_default_to_their_registered_ports() {
        // TS-0020 6.2.1: 80 for ws, 443 for wss when the URI names no port.
        assert_eq!(parse_target("ws://h").unwrap().0.port, 80);
        assert_eq!(parse_target("wss://h").unwrap().0.port, 443);
        assert_eq!(parse_target("wss://h:8444").unwrap().0.port, 8444);
    }

    #[test]
    fn every_known_code_maps_back() {
        assert_eq!(rsc_from_code(4103), Some(Rsc::OriginatorHasNoPrivilege));
        assert_eq!(rsc_from_code(2001), Some(Rsc::Created));
        assert_eq!(rsc_from_code(4102), Some(Rsc::ContentsUnacceptable));
        // A number oneM2M does not define.
        assert_eq!(rsc_from_code(4199), None);
    }
}
