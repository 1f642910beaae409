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

/// What a poll returns: one request primitive (`m2m:rqp`), or with request aggregation
/// all of them in an aggregatedRequest (`m2m:agrq`, TS-0004 R4), oldest first.
fn polled_content(messages: Vec<PollingMessage>, aggregate: bool) -> Value {
    let mut primitives = messages.into_iter().map(|m| m.primitive);
    if aggregate {
        json!({ "m2m:agrq": { "m2m:rqp": primitives.collect::<Vec<_>>() } })
    } else {
        json!({ "m2m:rqp": primitives.next().unwrap_or(Value::Null) })
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

    /// Takes the oldest waiting message, or every waiting one when `all`, oldest first;
    /// or the handle to wait on when none waits.
    fn take(&self, pch: &Ri, all: bool) -> Result<Vec<PollingMessage>, Arc<Notify>> {
        let mut channels = self.channels.lock();
        let channel = channels.entry(pch.clone()).or_default();
        if channel.queue.is_empty() {
            return Err(channel.arrived.clone());
        }
        let count = if all { channel.queue.len() } else { 1 };
        Ok(channel.queue.drain(..count).collect())
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
        let (pch, aggregate) = {
            let tree = self.tree.read();
            let node = crate::authz_state::resolve_local(&tree, &self.config, channel)
                .filter(|n| n.ty == ResourceType::PollingChannel)?;
            if !access.owns_polling_channel(&tree, node) {
                return Some(Err(RequestError::NoPrivilege(
                    "only the channel's owner may use it".into(),
                )));
            }
            let aggregate = node.attrs.get("rqag").and_then(Value::as_bool) == Some(true);
            (node.ri.clone(), aggregate)
        };
        Some(match req {
            Checked::Retrieve(req) => self.poll(&pch, req, aggregate).await,
            Checked::Notify(req) => self.answer(req),
            _ => Err(RequestError::not_allowed(
                "pollingChannelURI accepts only RETRIEVE and NOTIFY",
            )),
        })
    }

    /// Long polling: the oldest waiting request now, or the first to arrive before the
    /// poll's deadline (`rqet`), else 4008. A channel with `rqag` (requestAggregation)
    /// true answers with every waiting request at once, in one `m2m:agrq`.
    async fn poll(
        &self,
        pch: &Ri,
        req: &Envelope,
        aggregate: bool,
    ) -> Result<Response, RequestError> {
        let wait = req
            .rqet
            .as_deref()
            .and_then(|s| parse_abs_rel(s, self.now()))
            .map(|t| Duration::from_secs(t.0.saturating_sub(self.now().0).max(0) as u64))
            .unwrap_or(DEFAULT_POLL)
            .min(MAX_POLL);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.polling.take(pch, aggregate) {
                Ok(messages) => {
                    let mut resp = Response::new(Rsc::Ok, String::new());
                    resp.pc = Some(polled_content(messages, aggregate));
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
