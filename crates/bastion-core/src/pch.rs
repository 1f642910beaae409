//! `<pollingChannel>` (ty 15; TS-0001 9.6.21, 10.2.5.x; core-resources.md §3.10): how
//! requests reach an AE that cannot receive them (`rr` = false). Requests and
//! notifications for the AE wait in its channel's queue; the AE collects them with a
//! blocking RETRIEVE of `<pollingChannel>/pcu` (long polling) and answers a request with a
//! NOTIFY to the same `pcu` carrying `m2m:rsp`, matched by `rqi`.
//!
//! Only the entity the channel belongs to (the parent `<AE>`'s AE-ID, or the parent
//! `<remoteCSE>`'s CSE-ID) may use it; everyone else gets 4103, whatever the ACPs say.
//! Queues live in memory and are bounded ([`QUEUE_LIMIT`]): a restart loses what was
//! waiting, and a full queue drops the oldest message (docs/notifications.md).

use crate::access::Enforcer;
use crate::checks::{Checked, Envelope, NotifyRequest};
use crate::tree::Ri;
use crate::Cse;
use bastion_proto::time::parse_abs_rel;
use bastion_proto::{RequestError, ResourceType, Response, Rsc};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// Most messages waiting in one channel; beyond it the oldest is dropped.
pub(crate) const QUEUE_LIMIT: usize = 1024;
/// How long a poll waits when the request gives no `rqet`.
const DEFAULT_POLL: Duration = Duration::from_secs(30);
/// The longest a poll may wait, whatever `rqet` says.
const MAX_POLL: Duration = Duration::from_secs(300);
/// How long a request relayed through a channel waits for the AE's answer.
const RELAY_WAIT: Duration = Duration::from_secs(30);

/// One request primitive waiting for the AE (`m2m:rqp`).
#[derive(Debug, Clone)]
pub(crate) struct PollingMessage {
    pub primitive: Value,
}

impl PollingMessage {
    /// A NOTIFY from this CSE carrying `content` under the root of `kind` (`m2m:sgn`,
    /// or `m2m:rsp` for an asynchronous request's result).
    pub fn notify(
        cse_id: &str,
        to: &str,
        kind: crate::outgoing::NotificationKind,
        content: Value,
    ) -> PollingMessage {
        let rqi = fresh_rqi();
        let mut pc = serde_json::Map::new();
        pc.insert(kind.root().to_owned(), content);
        let primitive = json!({
            "op": 5,
            "to": to,
            "fr": cse_id,
            "rqi": rqi,
            "rvi": crate::config::NOTIFICATION_RELEASE.rvi(),
            "pc": pc,
        });
        PollingMessage { primitive }
    }
}

fn fresh_rqi() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("pch-{}", Alphanumeric.sample_string(&mut rand::rng(), 16))
}

#[derive(Default)]
struct Channel {
    queue: VecDeque<PollingMessage>,
    arrived: Arc<Notify>,
}

/// Every channel's queue, and the relayed requests waiting for the AE's answer.
#[derive(Default)]
pub(crate) struct PollingChannels {
    channels: Mutex<HashMap<Ri, Channel>>,
    answers: Mutex<HashMap<String, oneshot::Sender<Response>>>,
}

impl PollingChannels {
    /// Queues a message for the channel `pch`.
    pub fn push(&self, pch: &Ri, message: PollingMessage) {
        let mut channels = self.channels.lock();
        let channel = channels.entry(pch.clone()).or_default();
        if channel.queue.len() >= QUEUE_LIMIT {
            channel.queue.pop_front();
            tracing::warn!(channel = %pch, "polling channel full; oldest message dropped");
        }
        channel.queue.push_back(message);
        channel.arrived.notify_one();
    }

    /// Takes the oldest waiting message, or the handle to wait on.
    fn take(&self, pch: &Ri) -> Result<PollingMessage, Arc<Notify>> {
        let mut channels = self.channels.lock();
        let channel = channels.entry(pch.clone()).or_default();
        channel
            .queue
            .pop_front()
            .ok_or_else(|| channel.arrived.clone())
    }

    /// Forgets a deleted channel; its waiting messages are lost with it.
    pub fn remove(&self, pch: &str) {
        self.channels.lock().remove(pch);
    }
}

impl Cse {
    /// Requests to `<pollingChannel>/pcu`; `None` when `to` does not end in a `pcu` of
    /// an existing channel.
    pub(crate) async fn polling_uri(
        &self,
        req: &Checked,
        access: &Enforcer<'_>,
    ) -> Option<Result<Response, RequestError>> {
        let channel = req.to.strip_suffix("/pcu")?;
        let pch = {
            let tree = self.tree.read();
            let node = crate::authz_state::resolve_local(&tree, &self.config, channel)
                .filter(|n| n.ty == ResourceType::PollingChannel)?;
            if !access.owns_polling_channel(&tree, node) {
                return Some(Err(RequestError::NoPrivilege(
                    "only the channel's owner may use it".into(),
                )));
            }
            node.ri.clone()
        };
        Some(match req {
            Checked::Retrieve(req) => self.poll(&pch, req).await,
            Checked::Notify(req) => self.answer(req),
            _ => Err(RequestError::not_allowed(
                "pollingChannelURI accepts only RETRIEVE and NOTIFY",
            )),
        })
    }

    /// Long polling: the oldest waiting request now, or the first to arrive before the
    /// poll's deadline (`rqet`), else 4008.
    async fn poll(&self, pch: &Ri, req: &Envelope) -> Result<Response, RequestError> {
        let wait = req
            .rqet
            .as_deref()
            .and_then(|s| parse_abs_rel(s, self.now()))
            .map(|t| Duration::from_secs(t.0.saturating_sub(self.now().0).max(0) as u64))
            .unwrap_or(DEFAULT_POLL)
            .min(MAX_POLL);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.polling.take(pch) {
                Ok(message) => {
                    let mut resp = Response::new(Rsc::Ok, String::new());
                    resp.pc = Some(json!({ "m2m:rqp": message.primitive }));
                    return Ok(resp);
                }
                Err(arrived) => {
                    let notified = arrived.notified();
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(RequestError::RequestTimeout(
                            "no request arrived before the poll expired".into(),
                        ));
                    }
                }
            }
        }
    }

    /// The AE's answer to a relayed request (`m2m:rsp` in a NOTIFY to `pcu`).
    fn answer(&self, req: &NotifyRequest) -> Result<Response, RequestError> {
        let rsp = req
            .pc
            .get("m2m:rsp")
            .and_then(Value::as_object)
            .ok_or_else(|| RequestError::bad_request("a pcu NOTIFY carries m2m:rsp"))?;
        let rqi = rsp
            .get("rqi")
            .and_then(Value::as_str)
            .ok_or_else(|| RequestError::bad_request("m2m:rsp needs rqi"))?;
        let rsc = rsp
            .get("rsc")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .and_then(Rsc::from_code)
            .ok_or_else(|| RequestError::bad_request("m2m:rsp needs a known rsc"))?;
        let waiting = self.polling.answers.lock().remove(rqi);
        let Some(waiting) = waiting else {
            return Err(RequestError::not_found("no request waits for this rqi"));
        };
        let mut resp = Response::new(rsc, String::new());
        resp.pc = rsp.get("pc").cloned();
        // The relaying request may have given up meanwhile; the answer is then dropped.
        let _ = waiting.send(resp);
        Ok(Response::new(Rsc::Ok, String::new()))
    }

    /// Relays a NOTIFY for an AE through its polling channel and waits for the AE's
    /// answer (TS-0001 10.2.5.x), up to [`RELAY_WAIT`].
    pub(crate) async fn relay_through_channel(
        &self,
        pch: &Ri,
        to: &str,
        fr: &str,
        pc: Option<Value>,
    ) -> Result<Response, RequestError> {
        let rqi = fresh_rqi();
        let primitive = json!({ "op": 5, "to": to, "fr": fr, "rqi": rqi, "rvi": "3", "pc": pc });
        let (tx, rx) = oneshot::channel();
        self.polling.answers.lock().insert(rqi.clone(), tx);
        self.polling.push(pch, PollingMessage { primitive });
        match tokio::time::timeout(RELAY_WAIT, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            _ => {
                self.polling.answers.lock().remove(&rqi);
                Err(RequestError::TargetNotReachable(
                    "the AE did not answer through its polling channel".into(),
                ))
            }
        }
    }
}
