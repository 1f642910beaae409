//! The Rust-side WebSocket client of the WebSocket binding's tests (tests/websocket.rs,
//! tests/cases/over_ws.rs): tokio-tungstenite over plain TCP or a `bastion_tls` stream,
//! whole primitives in one serialization per connection, and the ports a server's
//! WebSocket listeners report in its log.

use super::Server;
use bastion_proto::wire::Serialization;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

/// The port of the server's `scheme` (`ws` or `wss`) WebSocket listener, from its log.
pub fn ws_port(srv: &Server, scheme: &str) -> u16 {
    let mark = format!("point_of_access={scheme}://127.0.0.1:");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = srv.log();
        if let Some(at) = log.find(&mark) {
            let digits: String = log[at + mark.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().expect("port");
        }
        assert!(Instant::now() < deadline, "no {scheme} listener: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The subprotocol name of a serialization (TS-0020 Table 6.2.2.9-1).
pub fn subprotocol(ser: Serialization) -> &'static str {
    match ser {
        Serialization::Json => "oneM2M.json",
        Serialization::Cbor => "oneM2M.cbor",
        Serialization::Xml => "oneM2M.xml",
    }
}

/// What arrived on a connection.
#[derive(Debug)]
pub enum Incoming {
    /// A whole primitive, decoded (XML: under its `m2m:rqp`/`m2m:rsp` root).
    Primitive(Value),
    /// The server closed the connection, with this close frame.
    Closed(Option<CloseFrame>),
    /// The server pinged.
    Ping,
    /// Nothing within the wait.
    Nothing,
}

/// One client connection speaking one serialization.
pub struct WsClient<S> {
    pub ws: WebSocketStream<S>,
    pub ser: Serialization,
}

/// Upgrades `stream` offering `offered` (one `Sec-WebSocket-Protocol` value); the
/// connection and the subprotocol the server chose, or the handshake's error (a refused
/// upgrade is `Error::Http` with the server's response).
pub async fn upgrade<S>(
    stream: S,
    url: &str,
    offered: &str,
) -> Result<(WebSocketStream<S>, Option<String>), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        offered.parse().expect("header value"),
    );
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, chosen))
}

/// A plain connection to the `ws://` listener on `port` speaking `ser`.
pub async fn connect_plain(port: u16, ser: Serialization) -> WsClient<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let url = format!("ws://127.0.0.1:{port}/");
    let (ws, chosen) = upgrade(tcp, &url, subprotocol(ser)).await.expect("upgrade");
    assert_eq!(chosen.as_deref(), Some(subprotocol(ser)));
    WsClient { ws, ser }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// Sends `primitive` (flat; XML callers wrap it in `m2m:rqp`/`m2m:rsp`) in the
    /// connection's serialization and frame type.
    pub async fn send(&mut self, primitive: &Value) {
        let bytes = self.ser.encode_pc(primitive).expect("encodable primitive");
        let message = match self.ser {
            Serialization::Cbor => Message::binary(bytes),
            _ => Message::text(String::from_utf8(bytes).expect("UTF-8")),
        };
        self.ws.send(message).await.expect("send");
    }

    /// Sends a message as is.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next primitive, close, or ping within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Incoming {
        loop {
            let message = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => return Incoming::Nothing,
                Ok(None) => return Incoming::Closed(None),
                Ok(Some(Err(_))) => return Incoming::Closed(None),
                Ok(Some(Ok(message))) => message,
            };
            return match message {
                Message::Text(t) => {
                    Incoming::Primitive(self.ser.decode_pc(t.as_bytes()).expect("a primitive"))
                }
                Message::Binary(b) => {
                    Incoming::Primitive(self.ser.decode_pc(&b).expect("a primitive"))
                }
                Message::Close(frame) => Incoming::Closed(frame),
                Message::Ping(_) => Incoming::Ping,
                _ => continue,
            };
        }
    }

    /// The next primitive within 15 s; anything else fails the test.
    pub async fn primitive(&mut self) -> Value {
        match self.next(Duration::from_secs(15)).await {
            Incoming::Primitive(value) => value,
            other => panic!("expected a primitive, got {other:?}"),
        }
    }

    /// Sends a request and returns its response (requests of the CSE arriving first
    /// fail the test).
    pub async fn exchange(&mut self, request: &Value) -> Value {
        self.send(request).await;
        self.primitive().await
    }
}
