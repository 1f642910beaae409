//! A notification target for tests: a real HTTP server recording every request it gets.

use serde_json::Value;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub origin: String,
    pub ri: String,
    /// `X-M2M-RVI`: the release the request speaks.
    pub rvi: String,
    /// The body, decoded by the wire layer in the serialization its Content-Type names.
    pub body: Value,
    pub content_type: String,
    pub raw: Vec<u8>,
    /// The request's path and query.
    pub uri: String,
}

/// A notification target: records every request and answers with `rsc`; with `hold`,
/// it never answers until released (a stuck target).
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    pub rsc: Arc<AtomicU16>,
    pub hold: Arc<tokio::sync::Semaphore>,
    /// A JSON body to answer with (a notification the CSE waits for an answer to).
    pub reply: Arc<Mutex<Option<Value>>>,
}

/// A body in the serialization `content_type` names (JSON when it names none known);
/// `Null` when it does not decode.
fn decode(content_type: &str, body: &[u8]) -> Value {
    let ser = bastion_proto::wire::parse_content_type(content_type)
        .ok()
        .and_then(|ct| ct.serialization)
        .unwrap_or(bastion_proto::Serialization::Json);
    ser.decode_pc(body).unwrap_or(Value::Null)
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_holding(false).await
    }

    pub async fn start_holding(hold: bool) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/notify", listener.local_addr().expect("addr"));
        let receiver = Receiver {
            url,
            got: Arc::default(),
            arrived: Arc::default(),
            rsc: Arc::new(AtomicU16::new(2000)),
            hold: Arc::new(tokio::sync::Semaphore::new(if hold { 0 } else { 1 << 20 })),
            reply: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    state.got.lock().expect("lock").push(Received {
                        method: method.to_string(),
                        origin: header("x-m2m-origin"),
                        ri: header("x-m2m-ri"),
                        rvi: header("x-m2m-rvi"),
                        body: decode(&header("content-type"), &body),
                        content_type: header("content-type"),
                        raw: body.to_vec(),
                        uri: uri.to_string(),
                    });
                    state.arrived.notify_waiters();
                    // A held receiver consumes one permit per request for good.
                    if let Ok(permit) = state.hold.acquire().await {
                        permit.forget();
                    }
                    let rsc = state.rsc.load(Ordering::SeqCst);
                    let status = if rsc == 2000 { 200 } else { 403 };
                    let reply = state.reply.lock().expect("lock").clone();
                    let builder = axum::http::Response::builder()
                        .status(status)
                        .header("X-M2M-RSC", rsc.to_string())
                        .header("X-M2M-RI", header("x-m2m-ri"));
                    match reply {
                        Some(body) => builder
                            .header("Content-Type", "application/json")
                            .body(axum::body::Body::from(body.to_string())),
                        None => builder.body(axum::body::Body::empty()),
                    }
                    .expect("response")
                }
            },
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        receiver
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// The notifications (not verification requests) received so far.
    pub fn events(&self) -> Vec<Value> {
        self.all()
            .into_iter()
            .map(|r| r.body)
            .filter(|b| b["m2m:sgn"]["vrq"].is_null())
            .collect()
    }

    /// Waits until `count` requests satisfy `pick`; fails after 15 s (a hang detector,
    /// not a timing assertion).
    pub async fn wait_for(&self, count: usize, pick: impl Fn(&Received) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let notified = self.arrived.notified();
            let matching: Vec<Received> = self.all().into_iter().filter(|r| pick(r)).collect();
            if matching.len() >= count {
                return matching;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} expected requests arrived: {:?}",
                matching.len(),
                self.all()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }

    pub async fn wait_events(&self, count: usize) -> Vec<Value> {
        self.wait_for(count, |r| r.body["m2m:sgn"]["vrq"].is_null())
            .await
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    /// The `m2m:rsp` objects (results of asynchronous requests) received so far.
    pub fn results(&self) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter_map(|r| r.body.get("m2m:rsp").cloned())
            .collect()
    }

    /// Waits until `count` result notifications (`m2m:rsp`) arrived.
    pub async fn wait_results(&self, count: usize) -> Vec<Value> {
        self.wait_for(count, |r| r.body.get("m2m:rsp").is_some())
            .await
            .into_iter()
            .filter_map(|r| r.body.get("m2m:rsp").cloned())
            .collect()
    }
}
