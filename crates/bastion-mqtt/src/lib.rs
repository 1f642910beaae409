//! The MQTT binding (TS-0010; docs/bindings.md): the CSE as a client of an MQTT broker,
//! receiving request primitives on its request topics, answering on the response
//! topics, and sending its own requests (notifications) to AEs and `mqtt://` targets.
//!
//! ```text
//!   broker ──PUBLISH /oneM2M/req|reg_req/<orig>/<me>/<ser>──► MqttBinding (event loop)
//!            │ decode the whole primitive (wire::primitive), bind fr to <orig>      │
//!            │                                                Cse::handle ◄─────────┘
//!   broker ◄─PUBLISH /oneM2M/resp|reg_resp/<orig>/<me>/<ser>── response primitive
//!
//!   MqttTransport (NOTIFY) ──PUBLISH /oneM2M/req/<me>/<AE>/<ser>──► broker ──► AE
//!   event loop ◄── /oneM2M/resp/<me>/<AE>/<ser> ── answer, matched to the waiter by rqi
//! ```
//!
//! [`connect`] makes one broker session (client ID `C::<CSE-ID>`, TS-0010 6.3.3), over
//! TCP or, for `mqtts://`, inside a TLS association made by `bastion-tls` (`tls.rs`), shared
//! by the [`MqttBinding`], which `bastion serve` starts like any listener, and the
//! [`MqttTransport`], which the outbound routes use for the `mqtt` scheme.
//!
//! Identity (docs/security.md, "MQTT"): the broker tells a client nothing about who
//! published a message; the topic's originator level is all there is. A request whose
//! `fr` is not the topic's originator is 4106. Unless the operator declares that the
//! broker enforces the topic ACL ([`MqttConfig::broker_enforces_originator`]), requests
//! reach the core with no association identity, exactly as over plain HTTP, so an
//! identity bound to a credential is refused. With it, the topic's originator is the
//! request's association identity.
//!
//! Bounds: payloads over [`MqttConfig::max_payload_bytes`] are dropped unread; at most
//! [`MqttConfig::max_in_flight`] requests are handled at once (more are dropped, logged
//! once a minute); answers and requests waiting to be handed to the MQTT client hold at
//! most [`MqttConfig::max_outbound_bytes`]; answers awaited for own requests are at most
//! [`MqttConfig::max_pending`], each for [`MqttConfig::response_timeout`].
#![forbid(unsafe_code)]

mod binding;
mod tls;
pub mod topic;
mod transport;

pub use binding::MqttBinding;
pub use tls::BrokerTls;
pub use transport::MqttTransport;

use bastion_client::ClientError;
use bastion_core::throttle::Throttle;
use bastion_proto::Response;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// Default [`MqttConfig::max_payload_bytes`]: TS-0010 6.4.1.1 advises against more
/// than about 100 kB per PUBLISH.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 128 * 1024;
/// Default [`MqttConfig::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default [`MqttConfig::max_outbound_bytes`].
pub const DEFAULT_MAX_OUTBOUND_BYTES: usize = 4 * 1024 * 1024;
/// Default [`MqttConfig::max_pending`].
pub const DEFAULT_MAX_PENDING: usize = 256;
/// Default [`MqttConfig::response_timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages the MQTT client's request channel holds before a publish waits.
const CLIENT_CHANNEL: usize = 32;

/// Why the MQTT binding cannot start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MqttError {
    #[error("invalid MQTT broker URL {0:?}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")]
    InvalidBroker(String),
    #[error("mqtts:// needs the CSE's TLS credential for the broker (a PSK or a certificate)")]
    TlsNotConfigured,
    #[error("the TLS bridge to the MQTT broker cannot start: {0}")]
    TlsBridge(String),
    #[error("cannot resolve the MQTT broker {0}: {1}")]
    Resolve(String, String),
    #[error("CSE-ID {0:?} cannot stand in an MQTT topic")]
    UnusableCseId(String),
}

/// The broker the CSE connects to: `mqtt://HOST[:PORT]` (port 1883 by default) or, over
/// TLS, `mqtts://HOST[:PORT]` (8883).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: the session runs inside TLS ([`MqttConfig::tls`]).
    pub tls: bool,
}

impl Broker {
    /// Reads `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`; a path, user information or
    /// query is refused.
    pub fn parse(url: &str) -> Result<Broker, MqttError> {
        let invalid = || MqttError::InvalidBroker(url.to_owned());
        let (endpoint, path) = bastion_client::parse_target(url).map_err(|_| invalid())?;
        let tls = match endpoint.scheme.as_str() {
            "mqtt" => false,
            "mqtts" => true,
            _ => return Err(invalid()),
        };
        if path.is_some() || url.contains('@') {
            return Err(invalid());
        }
        Ok(Broker {
            host: endpoint.host,
            port: endpoint.port,
            tls,
        })
    }

    /// `mqtt` or `mqtts`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "mqtts"
        } else {
            "mqtt"
        }
    }

    /// `mqtt://HOST:PORT` (or `mqtts://`), as the CSEBase `poa` advertises it.
    pub fn url(&self) -> String {
        let scheme = self.scheme();
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// The password the CSE authenticates to the broker with (MQTT CONNECT). Never shown:
/// its `Debug` is `***`.
#[derive(Clone)]
pub struct BrokerPassword(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for BrokerPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What the binding needs: the broker, the CSE's identity, the trust placed in the
/// broker and the bounds.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub broker: Broker,
    /// The CSE's SP-relative CSE-ID (`/id-in`).
    pub cse_id: String,
    /// The operator declares that the broker lets each client publish requests only under
    /// its own originator level (a per-client topic ACL, docs/bindings.md): the topic's
    /// originator is then the request's association identity. Off by default: requests
    /// are unauthenticated, as on the plain HTTP listener.
    pub broker_enforces_originator: bool,
    /// User name and password of the CSE at the broker, when the broker asks for them.
    pub credentials: Option<(String, BrokerPassword)>,
    /// The CSE's TLS client for an `mqtts://` broker; required then, unused otherwise.
    pub tls: Option<BrokerTls>,
    pub max_payload_bytes: usize,
    pub max_in_flight: usize,
    pub max_outbound_bytes: usize,
    pub max_pending: usize,
    pub response_timeout: Duration,
    pub keep_alive: Duration,
}

impl MqttConfig {
    /// The defaults for `broker` and `cse_id`.
    pub fn new(broker: Broker, cse_id: impl Into<String>) -> MqttConfig {
        MqttConfig {
            broker,
            cse_id: cse_id.into(),
            broker_enforces_originator: false,
            credentials: None,
            tls: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_outbound_bytes: DEFAULT_MAX_OUTBOUND_BYTES,
            max_pending: DEFAULT_MAX_PENDING,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            keep_alive: Duration::from_secs(30),
        }
    }
}

/// Why a message was not handed to the MQTT client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    #[error("outbound MQTT queue full ({0} bytes)")]
    QueueFull(usize),
    #[error("message over the MQTT payload limit ({0} bytes)")]
    TooLarge(usize),
    #[error("MQTT client stopped")]
    Stopped,
}

/// A request of this CSE waiting for its answer: the receiver level the answer must come
/// from (when known), and where to hand it.
struct Waiter {
    receiver: Option<String>,
    answer: oneshot::Sender<Response>,
}

/// What the binding and the transport share: the session's client, the CSE's topic
/// level, the outbound byte budget and the requests waiting for their answers.
pub(crate) struct Shared {
    client: AsyncClient,
    config: MqttConfig,
    /// The CSE-ID as a topic level.
    me: String,
    /// Bytes of messages waiting to be handed to the client.
    outbound: Arc<Semaphore>,
    /// The requests waiting for their answers, by rqi.
    pending: Mutex<HashMap<String, Waiter>>,
    /// Exhaustion, dropped-message and session-restart warnings, once a minute each.
    warn_full: Throttle,
    warn_dropped: Throttle,
    pub(crate) warn_restart: Throttle,
    /// The TLS bridge of an `mqtts://` session, kept as long as the session.
    _bridge: Option<tls::TlsBridge>,
}

impl Shared {
    /// Publishes `payload` on `topic` at QoS 1, within the outbound byte budget.
    pub(crate) async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
    ) -> Result<(), PublishError> {
        if payload.len() > self.config.max_payload_bytes {
            return Err(PublishError::TooLarge(self.config.max_payload_bytes));
        }
        let limit = self.config.max_outbound_bytes;
        let size = u32::try_from(payload.len().max(1)).unwrap_or(u32::MAX);
        let permit = match self.outbound.clone().try_acquire_many_owned(size) {
            Ok(permit) => permit,
            Err(_) => {
                if self.warn_full.ready() {
                    tracing::warn!(limit, "MQTT outbound queue full; messages are dropped");
                }
                return Err(PublishError::QueueFull(limit));
            }
        };
        let sent = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await;
        drop(permit);
        sent.map_err(|_| PublishError::Stopped)
    }

    /// Logs a dropped incoming message, once a minute.
    pub(crate) fn dropped(&self, why: &str) {
        if self.warn_dropped.ready() {
            tracing::warn!(
                reason = why,
                "MQTT message dropped (further drops are not logged for a minute)"
            );
        }
    }

    /// Registers a waiter for the answer with `rqi`; refused when the table is full or
    /// the rqi is already waited for.
    pub(crate) fn wait_for(
        &self,
        rqi: &str,
        receiver: Option<String>,
    ) -> Result<oneshot::Receiver<Response>, ClientError> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= self.config.max_pending {
            return Err(ClientError::InvalidRequest(format!(
                "{} MQTT requests already wait for an answer",
                self.config.max_pending
            )));
        }
        if pending.contains_key(rqi) {
            return Err(ClientError::InvalidRequest(
                "a request with this rqi already waits for an answer".into(),
            ));
        }
        let (answer, rx) = oneshot::channel();
        pending.insert(rqi.to_owned(), Waiter { receiver, answer });
        Ok(rx)
    }

    /// Forgets the waiter for `rqi` (its time ran out).
    pub(crate) fn forget(&self, rqi: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(rqi);
    }

    /// Hands an answer received on `receiver`'s response topic to its waiter. An answer
    /// nobody waits for, or from another receiver than the request went to, is dropped.
    pub(crate) fn answered(&self, receiver: &str, response: Response) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let matches = pending
            .get(&response.rqi)
            .is_some_and(|w| w.receiver.as_deref().is_none_or(|e| e == receiver));
        if !matches {
            drop(pending);
            self.dropped("an answer no request of this CSE waits for");
            return;
        }
        if let Some(waiter) = pending.remove(&response.rqi) {
            let _ = waiter.answer.send(response);
        }
    }
}

/// Opens the broker session: resolves the broker, and returns the binding (to serve)
/// and the transport (for the outbound routes). Nothing is connected until the binding
/// serves; the transport's messages wait in the client until then.
pub async fn connect(config: MqttConfig) -> Result<(MqttBinding, MqttTransport), MqttError> {
    let me = topic::id_level(&config.cse_id);
    if topic::request_topic(
        &config.cse_id,
        &config.cse_id,
        bastion_proto::Serialization::Json,
    )
    .is_none()
    {
        return Err(MqttError::UnusableCseId(config.cse_id.clone()));
    }
    let local: SocketAddr =
        tokio::net::lookup_host((config.broker.host.as_str(), config.broker.port))
            .await
            .map_err(|e| MqttError::Resolve(config.broker.url(), e.to_string()))?
            .next()
            .ok_or_else(|| MqttError::Resolve(config.broker.url(), "no address".into()))?;
    // TS-0010 6.3.3: the CSE-ID with the `C::` prefix; a persistent session, no Will.
    // Over TLS the client speaks to the bridge's socket (tls.rs), which carries it.
    let bridge = match (config.broker.tls, &config.tls) {
        (false, _) => None,
        (true, None) => return Err(MqttError::TlsNotConfigured),
        (true, Some(tls)) => Some(
            tls::TlsBridge::start(local, tls.clone())
                .map_err(|e| MqttError::TlsBridge(e.to_string()))?,
        ),
    };
    let client_id = format!("C::{me}");
    let mut options = match &bridge {
        None => MqttOptions::new(client_id, &config.broker.host, config.broker.port),
        Some(bridge) => {
            let mut options = MqttOptions::new(client_id, bridge.socket().to_string_lossy(), 0);
            options.set_transport(rumqttc::Transport::unix());
            options
        }
    };
    options.set_keep_alive(config.keep_alive);
    options.set_clean_session(false);
    if let Some((user, password)) = &config.credentials {
        // The MQTT client keeps its own copy for every reconnection; ours is wiped.
        options.set_credentials(user.as_str(), password.0.as_str());
    }
    // The packet limits are the payload limit plus room for the topic and header: a
    // payload a little over the limit is dropped by the binding, a packet over this one
    // ends the connection in the client (the binding then restarts the session clean).
    options.set_max_packet_size(
        config.max_payload_bytes + 4096,
        config.max_payload_bytes + 4096,
    );
    let (client, mut eventloop) = AsyncClient::new(options, CLIENT_CHANNEL);
    // Answers are small and written one by one as requests finish: with Nagle's
    // algorithm each would wait for the broker's delayed ACK of the previous one (tens
    // of milliseconds per CREATE, measured in bench/mqtt.sh).
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let outbound_permits = config.max_outbound_bytes.min(Semaphore::MAX_PERMITS);
    let shared = Arc::new(Shared {
        client,
        me,
        outbound: Arc::new(Semaphore::new(outbound_permits)),
        pending: Mutex::new(HashMap::new()),
        warn_full: Throttle::per_minute(),
        warn_dropped: Throttle::per_minute(),
        warn_restart: Throttle::per_minute(),
        config,
        _bridge: bridge,
    });
    Ok((
        MqttBinding::new(shared.clone(), eventloop, local),
        MqttTransport::new(shared),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            Broker::parse("mqtt://127.0.0.1:1883"),
            Ok(Broker {
                host: "127.0.0.1".into(),
                port: 1883,
                tls: false,
            })
        );
        assert_eq!(
            Broker::parse("mqtt://broker.example").map(|b| b.port),
            Ok(1883)
        );
        let tls = Broker::parse("mqtts://broker.example").unwrap();
        assert_eq!((tls.port, tls.tls), (8883, true));
        assert_eq!(tls.url(), "mqtts://broker.example:8883");
        for bad in [
            "http://h:1",
            "mqtt://h:1/topic",
            "mqtt://u:p@h:1",
            "h:1",
            "mqtt://",
        ] {
            assert!(
                matches!(Broker::parse(bad), Err(MqttError::InvalidBroker(_))),
                "{bad}"
            );
        }
        assert_eq!(
            Broker::parse("mqtt://127.0.0.1:1883").map(|b| b.url()),
            Ok("mqtt://127.0.0.1:1883".into())
        );
    }
}
