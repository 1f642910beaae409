//! [`MqttBinding`], the core's [`Binding`] port over the broker session: the event loop
//! that keeps the session up (reconnecting with a capped backoff, subscribing again on
//! every CONNACK), and the handling of each request PUBLISH.
//!
//! A request is answered on its answer topic in its own serialization (TS-0010 6.5.3):
//! the pipeline's response, or the error its primitive earned when it cannot be read or
//! its `fr` is not the topic's originator (4106). A message without a recoverable `rqi`,
//! on an unknown topic or serialization, or over the payload limit cannot be answered
//! usefully and is dropped, logged once a minute.

use crate::topic::{self, Kind, Topic};
use crate::Shared;
use bastion_core::{Binding, Cse, Listener, RequestContext};
use bastion_proto::primitive::Operation;
use bastion_proto::wire::primitive;
use bastion_proto::{RequestError, ResourceType, Response};
use rumqttc::{ConnectionError, Event, EventLoop, Incoming, QoS, StateError, SubscribeFilter};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Longest pause between two attempts to reach the broker.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The CSE's MQTT binding: serves requests published to its topics at the broker.
pub struct MqttBinding {
    shared: Arc<Shared>,
    eventloop: EventLoop,
    local: SocketAddr,
}

impl MqttBinding {
    pub(crate) fn new(shared: Arc<Shared>, eventloop: EventLoop, local: SocketAddr) -> MqttBinding {
        MqttBinding {
            shared,
            eventloop,
            local,
        }
    }
}

#[async_trait::async_trait]
impl Binding for MqttBinding {
    /// `mqtt` (`mqtts` over TLS) and the broker's address: requests come through the
    /// broker.
    fn listener(&self) -> Listener {
        Listener {
            scheme: self.shared.config.broker.scheme(),
            local: self.local,
        }
    }

    /// Runs the session until the future is dropped. A lost broker is not an end: the
    /// session is opened again, the pause doubling up to [`MAX_BACKOFF`].
    async fn serve(mut self: Box<Self>, cse: Arc<Cse>) -> io::Result<()> {
        let listener = self.listener();
        let in_flight = Arc::new(Semaphore::new(self.shared.config.max_in_flight.max(1)));
        let mut backoff = Duration::from_millis(250);
        let mut connected = false;
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    backoff = Duration::from_millis(250);
                    // After a clean restart (below), the session is persistent again.
                    self.eventloop.mqtt_options.set_clean_session(false);
                    let filters = topic::filters(&self.shared.me)
                        .into_iter()
                        .map(|path| SubscribeFilter::new(path, QoS::AtLeastOnce));
                    if self.shared.client.try_subscribe_many(filters).is_err() {
                        self.shared.dropped("cannot queue the subscription");
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    if !connected {
                        connected = true;
                        tracing::info!(
                            broker = %self.shared.config.broker.url(),
                            client_id = %format!("C::{}", self.shared.me),
                            broker_enforces_originator = self.shared.config.broker_enforces_originator,
                            "serving MQTT requests"
                        );
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(message))) => {
                    self.dispatch(
                        &message.topic,
                        message.payload.to_vec(),
                        &cse,
                        &in_flight,
                        listener,
                    );
                }
                Ok(_) => {}
                Err(ConnectionError::MqttState(StateError::Deserialization(
                    rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size),
                ))) => {
                    // The MQTT client refuses a packet over its limit by ending the
                    // connection, and the broker would deliver the same message again on
                    // every reconnection of a persistent session: start the session over,
                    // clean, which drops whatever the broker had queued for the CSE.
                    if self.shared.warn_restart.ready() {
                        tracing::warn!(
                            size,
                            limit = self.shared.config.max_payload_bytes,
                            "an MQTT message far over the payload limit arrived; the broker \
                             session is restarted clean (requests queued at the broker are \
                             lost; logged once a minute)"
                        );
                    }
                    self.eventloop.mqtt_options.set_clean_session(true);
                    connected = false;
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => {
                    if connected || backoff == Duration::from_millis(250) {
                        tracing::warn!(
                            broker = %self.shared.config.broker.url(),
                            reason = %e,
                            "MQTT broker connection lost; reconnecting"
                        );
                    }
                    connected = false;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

impl MqttBinding {
    /// Routes one received PUBLISH: an answer to its waiter, a request to a task of its
    /// own (within the in-flight bound), anything else dropped.
    fn dispatch(
        &self,
        name: &str,
        payload: Vec<u8>,
        cse: &Arc<Cse>,
        in_flight: &Arc<Semaphore>,
        listener: Listener,
    ) {
        let Some(topic) = Topic::parse(name).filter(|t| match t.kind {
            Kind::Response => t.originator == self.shared.me,
            Kind::Request | Kind::Registration => t.receiver == self.shared.me,
        }) else {
            self.shared
                .dropped("not a oneM2M topic of this CSE, or an unknown serialization");
            return;
        };
        if payload.len() > self.shared.config.max_payload_bytes {
            self.shared.dropped("payload over the size limit");
            return;
        }
        if topic.kind == Kind::Response {
            match primitive::decode_response(topic.ser, &payload) {
                Ok(response) => self.shared.answered(&topic.receiver, response),
                Err(_) => self
                    .shared
                    .dropped("an answer that is no response primitive"),
            }
            return;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            self.shared.dropped("too many MQTT requests in flight");
            return;
        };
        let shared = self.shared.clone();
        let cse = cse.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(response) = answer(&shared, &cse, &topic, &payload, listener).await else {
                shared.dropped("a primitive without a request identifier");
                return;
            };
            let mut bytes = primitive::encode_response(topic.ser, &response);
            if bytes.len() > shared.config.max_payload_bytes {
                // An answer the session could not carry would end the connection.
                let too_large = RequestError::NotAcceptable(
                    "the response exceeds the MQTT payload limit".into(),
                );
                let mut refused = Response::error(&too_large, response.rqi.clone());
                refused.rvi = response.rvi.clone();
                refused.fr = response.fr.clone();
                refused.to = response.to.clone();
                bytes = primitive::encode_response(topic.ser, &refused);
            }
            if let Err(e) = shared.publish(topic.answer(), bytes).await {
                shared.dropped(&e.to_string());
            }
        });
    }
}

/// The response to one request message; `None` when it has no `rqi` to answer with.
async fn answer(
    shared: &Shared,
    cse: &Cse,
    topic: &Topic,
    payload: &[u8],
    listener: Listener,
) -> Option<Response> {
    let cse_id = &shared.config.cse_id;
    let refuse = |error: &RequestError, rqi: String, rvi: Option<String>, fr: Option<String>| {
        let mut r = Response::error(error, rqi);
        r.rvi = rvi;
        r.fr = Some(cse_id.clone());
        r.to = fr;
        r
    };
    let req = match primitive::decode_request(topic.ser, payload) {
        Ok(req) => req,
        Err(bad) => {
            let rqi = bad.rqi?;
            return Some(refuse(&bad.error, rqi, bad.rvi, bad.fr));
        }
    };
    let rqi = req.rqi.clone()?;
    if let Some(error) = topic_rule(topic, &req, cse_id) {
        return Some(refuse(&error, rqi, req.rvi.clone(), req.fr.clone()));
    }
    // The admin is honoured outside an association only on the loopback HTTP listener;
    // a broker may be reached from anywhere, so over MQTT only a broker that
    // authenticates its clients can vouch for it.
    let enforced = shared.config.broker_enforces_originator;
    if !enforced && req.fr.as_deref().is_some_and(|fr| cse.is_admin(fr)) {
        let error = RequestError::NotAuthenticated(
            "the admin is not accepted over MQTT unless the broker enforces originators".into(),
        );
        return Some(refuse(&error, rqi, req.rvi.clone(), req.fr.clone()));
    }
    // Fail closed: the topic is an identity only when the broker enforces it.
    let identity = match (enforced, topic.kind) {
        (false, _) => None,
        (true, Kind::Registration) => Some(topic.credential_id()),
        (true, _) => req.fr.clone(),
    };
    let ctx = RequestContext::new(None, identity).on(listener);
    let to = req.fr.clone();
    let mut response = cse.handle(req, &ctx).await;
    response.to = to;
    Some(response)
}

/// What the topic demands of the primitive: on `req` topics, `fr` is the originator the
/// topic names (4106 otherwise); `reg_req` topics carry only registrations (`<AE>` or
/// `<remoteCSE>` CREATE, 4005 otherwise), whose `fr` the pipeline's registration rules
/// judge.
fn topic_rule(topic: &Topic, req: &bastion_proto::Request, cse_id: &str) -> Option<RequestError> {
    match topic.kind {
        Kind::Request => {
            let fr = req.fr.as_deref().unwrap_or("");
            (!topic.names(fr, cse_id)).then(|| {
                RequestError::NotAuthenticated("originator does not match the request topic".into())
            })
        }
        Kind::Registration => {
            let registration = req.op == Some(Operation::Create)
                && matches!(
                    req.ty.and_then(ResourceType::from_number),
                    Some(ResourceType::Ae | ResourceType::RemoteCse)
                );
            (!registration).then(|| {
                RequestError::not_allowed("registration topics carry only AE or remoteCSE creation")
            })
        }
        Kind::Response => None,
    }
}
