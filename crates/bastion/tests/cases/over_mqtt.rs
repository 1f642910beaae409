//! The MQTT runner: each case gets a fresh `bastion serve` serving the test broker
//! (Mosquitto on 127.0.0.1:1883) with a CSE-ID of its own, so that cases run side by
//! side on the shared broker; each step travels as a TS-0010 request primitive in one
//! serialization on the request topic of its `fr`, and its answer is read from the
//! response topic. The cases speak of the CSE `id-in`: the runner writes the CSE's own
//! topic level for it in what it sends, and `id-in` again in what it receives.

use super::format::{Case, Omit, Op, Step};
use super::{rvi_echo_problem, sent_rvi, Outcome, Target};
use crate::common::Server;
use bastion_proto::wire::{primitive, Serialization};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The CSE-ID stem the cases are written for.
const CASES_CSE: &str = "id-in";
/// How long a step waits for its answer.
const ANSWER: Duration = Duration::from_secs(10);

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// Why a case cannot travel over MQTT, if it cannot: a step without `rqi` cannot be
/// answered (TS-0010 correlates by `rqi`); a request topic must name an originator, so
/// only a registration (on `reg_req`) may leave `fr` out; and the admin's ID is refused
/// over a broker that does not authenticate its clients (docs/bindings.md, "Identity").
pub fn cannot_carry(case: &Case) -> Option<&'static str> {
    let steps = || case.setup.iter().chain([&case.request]).chain(&case.after);
    if steps().any(|s| s.omit.contains(&Omit::Rqi)) {
        return Some("a step without rqi gets no answer over MQTT");
    }
    if steps().any(|s| s.fr.as_deref() == Some(crate::common::ADMIN)) {
        return Some("the admin's ID is refused over a broker that does not authenticate");
    }
    let registration = |s: &Step| s.op == Op::Create && s.ty == Some(2);
    if steps().any(|s| s.fr.as_deref().unwrap_or("").is_empty() && !registration(s)) {
        return Some("a request topic names its originator: a step without fr has none");
    }
    None
}

/// Why a case cannot travel over MQTT in `ser` when it can in general: a step whose
/// content does not read back in that serialization (XML types its members) makes the
/// whole primitive unreadable, `rqi` included, so it cannot be answered; over HTTP the
/// `rqi` travels in a header and the case gets its 4000.
pub fn cannot_carry_in(case: &Case, ser: Serialization) -> Option<&'static str> {
    let steps = || case.setup.iter().chain([&case.request]).chain(&case.after);
    let unreadable = |step: &Step| {
        let Some(pc) = &step.pc else {
            return false;
        };
        let probe = json!({"op": 1, "to": "x", "rqi": "probe", "pc": pc});
        let probe = match ser {
            Serialization::Xml => json!({ "m2m:rqp": probe }),
            _ => probe,
        };
        ser.encode_pc(&probe)
            .map(|bytes| primitive::decode_request(ser, &bytes))
            .is_ok_and(|read| read.is_err_and(|bad| bad.rqi.is_none()))
    };
    steps()
        .any(unreadable)
        .then_some("content that does not read back in this serialization hides the rqi")
}

/// A fresh binary serving MQTT, spoken to in one serialization.
pub struct OverMqtt {
    /// Kept for as long as the case runs (dropping it stops the binary).
    _server: Server,
    level: String,
    serialization: Serialization,
    client: AsyncClient,
    waiting: Waiting,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for OverMqtt {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl OverMqtt {
    pub async fn start(serialization: Serialization) -> OverMqtt {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let level = format!(
            "cases{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let config =
            format!("[cse]\ncse-id = \"/{level}\"\n[mqtt]\nbroker = \"mqtt://127.0.0.1:1883\"\n");
        let server = tokio::task::spawn_blocking(move || {
            let server = Server::start_with_config(&config);
            assert!(
                server.log_shows("serving MQTT requests", Duration::from_secs(20)),
                "the CSE did not subscribe at the broker:\n{}",
                server.log()
            );
            server
        })
        .await
        .expect("start the binary");
        let mut options = MqttOptions::new(format!("cases-{level}"), "127.0.0.1", 1883);
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_session(true);
        options.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        for kind in ["resp", "reg_resp"] {
            client
                .subscribe(format!("/oneM2M/{kind}/+/{level}/+"), QoS::AtLeastOnce)
                .await
                .expect("queue the subscription");
        }
        let waiting: Waiting = Arc::default();
        let (ready, subscribed) = oneshot::channel();
        let routes = waiting.clone();
        let pump = tokio::spawn(async move {
            let mut ready = Some(ready);
            let mut acks = 0;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        acks += 1;
                        if acks == 2 {
                            if let Some(ready) = ready.take() {
                                let _ = ready.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(message))) => {
                        if let Ok(answer) =
                            primitive::decode_response(serialization, &message.payload)
                        {
                            let waiter = routes.lock().expect("lock").remove(&answer.rqi);
                            if let Some(waiter) = waiter {
                                let _ = waiter.send(message.payload.to_vec());
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(ANSWER, subscribed)
            .await
            .expect("the runner's MQTT client subscribed")
            .expect("subscribed");
        OverMqtt {
            _server: server,
            level,
            serialization,
            client,
            waiting,
            pump,
        }
    }

    /// `value` with every `from` in its strings written `to`.
    fn renamed(value: &Value, from: &str, to: &str) -> Value {
        match value {
            Value::String(s) => Value::String(s.replace(from, to)),
            Value::Array(items) => items.iter().map(|v| Self::renamed(v, from, to)).collect(),
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Self::renamed(v, from, to)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The request primitive of a step, written as the case states it (values the
    /// binding's own encoder would refuse included), with the CSE's own ID.
    fn primitive(&self, step: &Step, rqi: &str) -> Value {
        request_primitive(step, rqi, |v| Self::renamed(&v, CASES_CSE, &self.level))
    }
}

/// The request primitive of a step as a flat object (TS-0004 8.4), written as the case
/// states it (values the binding's own encoder would refuse included), every ID passed
/// through `out`: what the MQTT and WebSocket runners send whole.
pub fn request_primitive(step: &Step, rqi: &str, out: impl Fn(Value) -> Value) -> Value {
    let op = match step.op {
        Op::Create => 1,
        Op::Retrieve => 2,
        Op::Update => 3,
        Op::Delete => 4,
        Op::Notify => 5,
    };
    let mut p = Map::new();
    p.insert("op".into(), json!(op));
    p.insert("to".into(), out(json!(step.to)));
    if let Some(fr) = &step.fr {
        p.insert("fr".into(), out(json!(fr)));
    }
    p.insert("rqi".into(), json!(rqi));
    if let Some(rvi) = sent_rvi(step) {
        p.insert("rvi".into(), json!(rvi));
    }
    for (key, value) in [("ty", step.ty), ("rcn", step.rcn), ("drt", step.drt)] {
        if let Some(v) = value {
            p.insert(key.into(), json!(v));
        }
    }
    if let Some(pc) = &step.pc {
        p.insert("pc".into(), out(pc.clone()));
    } else if !step.atrl.is_empty() {
        // A partial RETRIEVE's attribute list is content in a primitive (TS-0004).
        p.insert("pc".into(), json!({ "m2m:atrl": step.atrl }));
    }
    for (key, value) in [("rqet", &step.rqet), ("rset", &step.rset)] {
        if let Some(v) = value {
            p.insert(key.into(), json!(v));
        }
    }
    if !step.fc.is_empty() {
        p.insert("fc".into(), out(Value::Object(step.fc.clone())));
    }
    Value::Object(p)
}

impl Target for OverMqtt {
    async fn send(&self, step: &Step, rqi: Option<String>) -> Outcome {
        let mut problems = Vec::new();
        let failed = |problems: Vec<String>| Outcome {
            rsc: 0,
            pc: Value::Null,
            problems,
        };
        let Some(rqi) = rqi else {
            return failed(vec!["a step without rqi cannot travel over MQTT".into()]);
        };
        let ser = self.serialization;
        let primitive = self.primitive(step, &rqi);
        let payload = match ser {
            // XML wraps the primitive in its root element.
            Serialization::Xml => ser.encode_pc(&json!({ "m2m:rqp": primitive })),
            _ => ser.encode_pc(&primitive),
        };
        let payload = match payload {
            Ok(payload) => payload,
            Err(e) => return failed(vec![format!("cannot write the primitive: {e}")]),
        };
        let registration = step.op == Op::Create && step.ty == Some(2);
        let fr = step.fr.as_deref().unwrap_or("");
        let topic = if registration && fr.is_empty() {
            format!("/oneM2M/reg_req/cred-{rqi}/{}/{}", self.level, ser.name())
        } else {
            let originator = fr.replace(CASES_CSE, &self.level);
            let originator = originator.trim_start_matches('/').replace('/', ":");
            format!("/oneM2M/req/{originator}/{}/{}", self.level, ser.name())
        };
        let (tx, answer) = oneshot::channel();
        self.waiting.lock().expect("lock").insert(rqi.clone(), tx);
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
        {
            return failed(vec![format!("cannot publish: {e}")]);
        }
        let bytes = match tokio::time::timeout(ANSWER, answer).await {
            Ok(Ok(bytes)) => bytes,
            _ => {
                self.waiting.lock().expect("lock").remove(&rqi);
                return failed(vec![format!("no answer within {ANSWER:?}")]);
            }
        };
        let answer = match primitive::decode_response(ser, &bytes) {
            Ok(answer) => answer,
            Err(e) => return failed(vec![format!("not a response primitive: {e}")]),
        };
        if answer.rqi != rqi {
            problems.push(format!("rqi {rqi} not echoed: got {:?}", answer.rqi));
        }
        problems.extend(rvi_echo_problem(
            sent_rvi(step).as_deref(),
            answer.rsc.code(),
            answer.rvi.as_deref(),
        ));
        Outcome {
            rsc: answer.rsc.code(),
            pc: answer
                .pc
                .map_or(Value::Null, |pc| Self::renamed(&pc, &self.level, CASES_CSE)),
            problems,
        }
    }
}
