//! [`MqttTransport`]: the outbound routes' transport for `mqtt://` targets (TS-0010
//! 6.6), over the CSE's own broker session. A target without a path is an entity's
//! point of access: the request goes to `/oneM2M/req/<CSE-ID>/<receiver>/<ser>` and its
//! answer is read from `/oneM2M/resp/<CSE-ID>/<receiver>/<ser>`, the receiver being the
//! AE-ID `to` is, or the CSE its absolute or SP-relative address starts with
//! ([`topic::receiver_of`]). A target with a path names the whole
//! topic (a `nu` URL, TS-0010 6.6); its answer, if any, is read from the CSE's response
//! topics, matched by `rqi` alone. The serialization is the target's `?ct=` (JSON
//! otherwise). Only the broker this CSE is connected to is reached, under the scheme of
//! that session (`mqtts://` for a broker reached over TLS).

use crate::topic::{self, id_level};
use crate::Shared;
use bastion_client::{ClientError, Transport};
use bastion_proto::wire::{self, primitive, Serialization};
use bastion_proto::{Request, Response};
use std::io;
use std::sync::Arc;

/// Sends request primitives through the broker and waits for their answers.
#[derive(Clone)]
pub struct MqttTransport {
    shared: Arc<Shared>,
}

impl MqttTransport {
    pub(crate) fn new(shared: Arc<Shared>) -> MqttTransport {
        MqttTransport { shared }
    }
}

#[async_trait::async_trait]
impl Transport for MqttTransport {
    async fn send(&self, target: &str, req: &Request) -> Result<Response, ClientError> {
        let invalid = || ClientError::InvalidTarget(target.to_owned());
        let (sent, ser) = wire::target_serialization(target).ok_or_else(invalid)?;
        let ser = ser.unwrap_or(Serialization::Json);
        let (endpoint, path) = bastion_client::parse_target(&sent)?;
        let broker = &self.shared.config.broker;
        if endpoint.scheme != broker.scheme() {
            return Err(ClientError::UnsupportedScheme(endpoint.scheme));
        }
        if !endpoint.host.eq_ignore_ascii_case(&broker.host) || endpoint.port != broker.port {
            return Err(ClientError::Connect(io::Error::other(
                "not the MQTT broker this CSE is connected to",
            )));
        }
        let rqi = req
            .rqi
            .as_deref()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ClientError::InvalidRequest("an MQTT request needs an rqi".into()))?;
        let (topic, receiver) = match path.as_deref().map(|p| p.trim_start_matches('/')) {
            Some(topic) if !topic.is_empty() && !topic.contains(['+', '#', '?']) => {
                (topic.to_owned(), None)
            }
            Some(_) => return Err(invalid()),
            None => {
                let unreachable = || {
                    ClientError::InvalidRequest(
                        "no receiver ID in the request's target for an MQTT topic".into(),
                    )
                };
                let receiver = topic::receiver_of(&req.to).ok_or_else(unreachable)?;
                let topic = topic::request_topic(&self.shared.config.cse_id, receiver, ser)
                    .ok_or_else(unreachable)?;
                (topic, Some(id_level(receiver)))
            }
        };
        let payload = primitive::encode_request(ser, req)
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let answer = self.shared.wait_for(rqi, receiver)?;
        if let Err(e) = self.shared.publish(topic, payload).await {
            self.shared.forget(rqi);
            return Err(ClientError::Connect(io::Error::other(e.to_string())));
        }
        let timeout = self.shared.config.response_timeout;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(ClientError::Connect(io::Error::other("MQTT session ended"))),
            Err(_) => {
                self.shared.forget(rqi);
                Err(ClientError::Timeout(timeout))
            }
        }
    }
}
