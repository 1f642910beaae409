//! End-to-end delivery tests against real HTTP receivers on 127.0.0.1.
//!
//! Receivers are small hyper servers that record every request (method, path, headers,
//! JSON body) and answer as scripted: a oneM2M response with a chosen `X-M2M-RSC`, a plain
//! HTTP answer, a dropped connection, or no answer at all. Assertions are on what arrived
//! (counts, order, grouping); waits use deadlines of several seconds, and the only timing
//! assertions are lower bounds that follow from the policy (a batch cannot leave before
//! its `dur`), never upper bounds, so a loaded machine makes tests slower, not flaky.

use bastion_client::{Client, ClientConfig};
use bastion_notify::{
    Batch, Content, Delivery, DeliveryError, DeliveryPolicy, Notifier, NotifierConfig,
    PendingPolicy, RateLimit, Route, Routes, SubmitError,
};
use bastion_proto::Rsc;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Generous deadline for anything that should happen "promptly".
const DEADLINE: Duration = Duration::from_secs(10);

/// How a receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// A oneM2M response with this `X-M2M-RSC` (HTTP 200).
    Answer(u16),
    /// HTTP 204 without oneM2M headers (a plain web hook).
    Plain,
    /// Close the connection without answering.
    Close,
    /// Never answer.
    Hang,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Value,
    mode: Mode,
    at: Instant,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct State {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Mode>>,
    default: Mutex<Option<Mode>>,
}

/// A recording HTTP receiver.
struct Receiver {
    url: String,
    state: Arc<State>,
}

impl Receiver {
    /// Starts a receiver answering `script` first, then `default`.
    async fn start(default: Mode, script: &[Mode]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        *state.default.lock().unwrap() = Some(default);
        state.script.lock().unwrap().extend(script.iter().copied());
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(Arc::clone(&state), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            url: format!("http://{addr}/notify"),
            state,
        }
    }

    async fn answering() -> Receiver {
        Receiver::start(Mode::Answer(2000), &[]).await
    }

    fn set_default(&self, mode: Mode) {
        *self.state.default.lock().unwrap() = Some(mode);
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests that got an answer.
    fn answered(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| matches!(s.mode, Mode::Answer(_) | Mode::Plain))
            .collect()
    }

    /// Waits until `n` requests were answered; returns them.
    async fn wait_answered(&self, n: usize) -> Vec<Seen> {
        wait_for(|| self.answered().len() >= n).await;
        self.answered()
    }
}

async fn handle(
    state: Arc<State>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let mode = {
        let next = state.script.lock().unwrap().pop_front();
        next.or(*state.default.lock().unwrap())
            .unwrap_or(Mode::Answer(2000))
    };
    state.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        mode,
        at: Instant::now(),
    });
    let rqi = parts
        .headers
        .get("x-m2m-ri")
        .cloned()
        .unwrap_or(http::HeaderValue::from_static(""));
    match mode {
        Mode::Answer(rsc) => Ok(http::Response::builder()
            .status(200)
            .header("X-M2M-RSC", rsc.to_string())
            .header("X-M2M-RI", rqi)
            .body(Full::new(Bytes::new()))
            .expect("response")),
        Mode::Plain => Ok(http::Response::builder()
            .status(204)
            .body(Full::new(Bytes::new()))
            .expect("response")),
        Mode::Close => Err(std::io::Error::other("scripted close")),
        Mode::Hang => std::future::pending().await,
    }
}

/// A listener that accepts connections and never reads or answers.
async fn blackhole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{addr}/notify")
}

/// A URL on which nothing listens (connection refused).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/notify")
}

/// Polls `cond` every 10 ms until it holds; fails the test after [`DEADLINE`].
async fn wait_for(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Short retry schedule for tests.
fn config() -> NotifierConfig {
    NotifierConfig {
        originator: "/id-in".into(),
        release: "3".into(),
        queue_capacity: 64,
        max_destination_bytes: bastion_notify::DEFAULT_MAX_DESTINATION_BYTES,
        max_total_bytes: bastion_notify::DEFAULT_MAX_TOTAL_BYTES,
        max_attempts: 6,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(3),
        idle_worker_timeout: Duration::from_secs(5),
    }
}

fn notifier(config: NotifierConfig) -> Notifier {
    let client = Client::new(ClientConfig {
        timeout: Duration::from_secs(30),
        ..ClientConfig::default()
    });
    Notifier::new(config, client)
}

fn event(n: u64) -> Value {
    json!({"nev": {"rep": {"m2m:cin": {"con": n.to_string()}}, "net": 3}, "sur": "/id-in/sub1"})
}

fn delivery(targets: &[&String], n: u64, policy: DeliveryPolicy) -> Delivery {
    Delivery {
        subscription: "/id-in/sub1".into(),
        targets: targets.iter().map(|t| (*t).clone()).collect(),
        to: "Cae1".into(),
        peer: None,
        event: Arc::new(event(n)),
        content: Content::Notification,
        policy,
    }
}

/// The events carried by one received NOTIFY, in order.
fn events_of(seen: &Seen) -> Vec<Value> {
    if let Some(ev) = seen.body.get("m2m:sgn") {
        return vec![ev.clone()];
    }
    seen.body["m2m:agn"]["m2m:sgn"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn all_events(seen: &[Seen]) -> Vec<Value> {
    seen.iter().flat_map(events_of).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_delivery_carries_the_onem2m_notify() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    n.submit(delivery(&[&rx.url], 1, DeliveryPolicy::default()))
        .expect("submit");
    let seen = rx.wait_answered(1).await;
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/notify");
    assert_eq!(s.header("x-m2m-origin").as_deref(), Some("/id-in"));
    assert_eq!(s.header("x-m2m-rvi").as_deref(), Some("3"));
    assert!(s.header("x-m2m-ri").is_some_and(|r| !r.is_empty()));
    assert_eq!(s.header("x-m2m-ec"), None);
    assert_eq!(s.body, json!({"m2m:sgn": event(1)}));
    wait_for(|| n.stats().delivered == 1).await;
    let stats = n.stats();
    assert_eq!(
        (stats.submitted, stats.failed_attempts, stats.queued_now),
        (1, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_notify_gets_a_fresh_request_id() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    for i in 0..5 {
        n.submit(delivery(&[&rx.url], i, DeliveryPolicy::default()))
            .expect("submit");
    }
    let seen = rx.wait_answered(5).await;
    let mut rqis: Vec<String> = seen.iter().filter_map(|s| s.header("x-m2m-ri")).collect();
    rqis.sort();
    rqis.dedup();
    assert_eq!(rqis.len(), 5);
    assert_eq!(all_events(&seen), (0..5).map(event).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_are_tried_in_order() {
    let dead = dead_url();
    let rx = Receiver::answering().await;
    let n = notifier(config());
    n.submit(delivery(&[&dead, &rx.url], 1, DeliveryPolicy::default()))
        .expect("submit");
    rx.wait_answered(1).await;
    wait_for(|| n.stats().delivered == 1).await;
    assert_eq!(n.stats().failed_attempts, 0, "the second target answered");
    assert_eq!(n.stats().retried, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_the_receiver_recovers_with_the_same_request_id() {
    let rx = Receiver::start(Mode::Answer(2000), &[Mode::Close, Mode::Close]).await;
    let n = notifier(config());
    n.submit(delivery(&[&rx.url], 1, DeliveryPolicy::default()))
        .expect("submit");
    rx.wait_answered(1).await;
    wait_for(|| n.stats().delivered == 1).await;
    let stats = n.stats();
    assert_eq!((stats.failed_attempts, stats.retried), (2, 2));
    let seen = rx.seen();
    assert_eq!(seen.len(), 3);
    let rqi = seen[0].header("x-m2m-ri");
    assert!(seen.iter().all(|s| s.header("x-m2m-ri") == rqi));
    assert!(seen.iter().all(|s| s.body == json!({"m2m:sgn": event(1)})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_destination_is_given_up_after_max_attempts() {
    let dead = dead_url();
    let n = notifier(NotifierConfig {
        max_attempts: 3,
        ..config()
    });
    n.submit(delivery(&[&dead], 1, DeliveryPolicy::default()))
        .expect("submit");
    wait_for(|| n.stats().dropped_exhausted == 1).await;
    let stats = n.stats();
    assert_eq!(
        (stats.failed_attempts, stats.retried, stats.delivered),
        (3, 2, 0)
    );
    assert_eq!(stats.queued_now, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_targets_are_dropped_at_once() {
    let n = notifier(config());
    let bad = "not a url".to_owned();
    n.submit(delivery(&[&bad], 1, DeliveryPolicy::default()))
        .expect("submit");
    wait_for(|| n.stats().dropped_exhausted == 1).await;
    assert_eq!(n.stats().retried, 0);
    assert_eq!(
        n.submit(delivery(&[], 1, DeliveryPolicy::default())),
        Err(SubmitError::NoTargets)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_answers_count_as_delivered() {
    let rx = Receiver::start(Mode::Plain, &[]).await;
    let n = notifier(config());
    n.submit(delivery(&[&rx.url], 1, DeliveryPolicy::default()))
        .expect("submit");
    wait_for(|| n.stats().delivered == 1).await;
    assert_eq!(n.stats().failed_attempts, 0);
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_slow_destinations_do_not_delay_a_healthy_one() {
    let hole = blackhole().await;
    let slow = Receiver::start(Mode::Hang, &[]).await;
    let healthy = Receiver::answering().await;
    let n = notifier(NotifierConfig {
        request_timeout: Duration::from_secs(30),
        ..config()
    });
    for i in 0..5 {
        n.submit(delivery(&[&hole], i, DeliveryPolicy::default()))
            .expect("submit to the blackhole");
        n.submit(delivery(&[&slow.url], i, DeliveryPolicy::default()))
            .expect("submit to the slow one");
    }
    let start = Instant::now();
    for i in 0..20 {
        n.submit(delivery(&[&healthy.url], i, DeliveryPolicy::default()))
            .expect("submit to the healthy one");
    }
    let seen = healthy.wait_answered(20).await;
    assert!(start.elapsed() < DEADLINE);
    assert_eq!(all_events(&seen), (0..20).map(event).collect::<Vec<_>>());
    // The stuck ones still hold their events: one in flight each, the rest queued.
    wait_for(|| !slow.seen().is_empty()).await;
    assert_eq!(slow.seen().len(), 1, "the slow receiver's worker is stuck");
    let stats = n.stats();
    assert_eq!(stats.delivered, 20);
    assert_eq!(stats.queued_now, 10);
    n.shutdown(Duration::ZERO).await;
    wait_for(|| n.stats().dropped_shutdown == 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_rejects_the_new_delivery() {
    let hole = blackhole().await;
    let n = notifier(NotifierConfig {
        queue_capacity: 2,
        ..config()
    });
    n.submit(delivery(&[&hole], 1, DeliveryPolicy::default()))
        .expect("first");
    n.submit(delivery(&[&hole], 2, DeliveryPolicy::default()))
        .expect("second");
    assert_eq!(
        n.submit(delivery(&[&hole], 3, DeliveryPolicy::default())),
        Err(SubmitError::QueueFull)
    );
    // Another destination is not affected.
    let rx = Receiver::answering().await;
    n.submit(delivery(&[&rx.url], 4, DeliveryPolicy::default()))
        .expect("other destination");
    rx.wait_answered(1).await;
    let stats = n.stats();
    assert_eq!((stats.submitted, stats.dropped_queue_full), (3, 1));
    n.shutdown(Duration::from_millis(50)).await;
    assert_eq!(
        n.submit(delivery(&[&rx.url], 5, DeliveryPolicy::default())),
        Err(SubmitError::ShuttingDown)
    );
    wait_for(|| n.stats().dropped_shutdown == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_bounded_in_bytes_per_destination_and_in_total() {
    let big = |n: u64| Arc::new(json!({"sur": "/id-in/sub1", "n": n, "pad": "x".repeat(1000)}));
    let with = |targets: &[&String], n: u64| Delivery {
        event: big(n),
        ..delivery(targets, n, DeliveryPolicy::default())
    };
    let (hole_a, hole_b) = (blackhole().await, blackhole().await);
    // What one such event is charged, as the engine reports it.
    let probe = notifier(config());
    probe.submit(with(&[&hole_a], 0)).expect("probe");
    let size = probe.stats().queued_bytes as usize;
    assert!(size > 1000, "{size}");
    probe.shutdown(Duration::from_millis(10)).await;
    // A stalled destination may hold two such events, all queues together three.
    let n = notifier(NotifierConfig {
        max_destination_bytes: size * 5 / 2,
        max_total_bytes: size * 7 / 2,
        ..config()
    });
    n.submit(with(&[&hole_a], 1)).expect("first");
    n.submit(with(&[&hole_a], 2)).expect("second");
    assert_eq!(
        n.submit(with(&[&hole_a], 3)),
        Err(SubmitError::DestinationBytesFull)
    );
    n.submit(with(&[&hole_b], 4))
        .expect("another destination has its own budget");
    assert_eq!(
        n.submit(with(&[&hole_b], 5)),
        Err(SubmitError::TotalBytesFull)
    );
    let stats = n.stats();
    assert_eq!((stats.submitted, stats.dropped_queue_full), (3, 2));
    assert_eq!(stats.queued_bytes as usize, 3 * size);
    // What leaves the queues gives its bytes back: small events flow again elsewhere.
    n.shutdown(Duration::from_millis(50)).await;
    wait_for(|| n.stats().queued_bytes == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_events_give_their_bytes_back() {
    let n = notifier(NotifierConfig {
        max_destination_bytes: 4000,
        ..config()
    });
    let rx = Receiver::answering().await;
    // Several times the destination's budget goes through, one event at a time.
    for i in 0..10 {
        let event = Arc::new(json!({"sur": "/id-in/sub1", "n": i, "pad": "x".repeat(1000)}));
        n.submit(Delivery {
            event,
            ..delivery(&[&rx.url], i, DeliveryPolicy::default())
        })
        .expect("accepted");
        rx.wait_answered(i as usize + 1).await;
        wait_for(|| n.stats().queued_bytes == 0).await;
    }
}

fn batch(num: u32, dur: Duration) -> DeliveryPolicy {
    DeliveryPolicy {
        batch: Some(Batch { num, dur }),
        ..DeliveryPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_by_num_is_one_aggregated_notify_in_order() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    let policy = batch(3, Duration::from_secs(60));
    for i in 1..=6 {
        n.submit(delivery(&[&rx.url], i, policy.clone()))
            .expect("submit");
    }
    let seen = rx.wait_answered(2).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].body,
        json!({"m2m:agn": {"m2m:sgn": [event(1), event(2), event(3)]}})
    );
    assert_eq!(
        seen[1].body,
        json!({"m2m:agn": {"m2m:sgn": [event(4), event(5), event(6)]}})
    );
    wait_for(|| n.stats().delivered == 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_by_dur_leaves_after_dur_with_fewer_events() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    let dur = Duration::from_millis(300);
    let start = Instant::now();
    for i in 1..=2 {
        n.submit(delivery(&[&rx.url], i, batch(10, dur)))
            .expect("submit");
    }
    let seen = rx.wait_answered(1).await;
    assert!(
        seen[0].at.duration_since(start) >= Duration::from_millis(250),
        "a batch waits for its dur"
    );
    assert_eq!(
        seen[0].body,
        json!({"m2m:agn": {"m2m:sgn": [event(1), event(2)]}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_only_sends_only_the_newest_event() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    let policy = DeliveryPolicy {
        latest_only: true,
        ..batch(3, Duration::from_secs(60))
    };
    for i in 1..=3 {
        n.submit(delivery(&[&rx.url], i, policy.clone()))
            .expect("submit");
    }
    let seen = rx.wait_answered(1).await;
    assert_eq!(seen[0].body, json!({"m2m:sgn": event(3)}));
    assert_eq!(seen[0].header("x-m2m-ec").as_deref(), Some("4"));
    wait_for(|| n.stats().delivered == 1).await;
    assert_eq!(n.stats().superseded, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_the_excess_and_delivers_all_in_order() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    let window = Duration::from_millis(300);
    let policy = DeliveryPolicy {
        rate: Some(RateLimit { max: 2, window }),
        ..DeliveryPolicy::default()
    };
    let start = Instant::now();
    for i in 1..=6 {
        n.submit(delivery(&[&rx.url], i, policy.clone()))
            .expect("submit");
    }
    let seen = rx.wait_answered(6).await;
    assert_eq!(seen.len(), 6, "one NOTIFY per event");
    assert_eq!(all_events(&seen), (1..=6).map(event).collect::<Vec<_>>());
    // Events 5 and 6 need a third window: they cannot leave before two have passed.
    let last = seen[5].at.duration_since(start);
    assert!(last >= 2 * window - Duration::from_millis(50), "{last:?}");
    // Within the first window after the start at most `max` can arrive.
    let early = seen
        .iter()
        .filter(|s| s.at.duration_since(start) < window - Duration::from_millis(50))
        .count();
    assert!(early <= 2, "{early} NOTIFYs in the first window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_latest_keeps_only_the_newest_while_unreachable() {
    let rx = Receiver::start(Mode::Close, &[]).await;
    let n = notifier(NotifierConfig {
        max_attempts: 50,
        ..config()
    });
    let policy = DeliveryPolicy {
        pending: PendingPolicy::SendLatest,
        ..DeliveryPolicy::default()
    };
    n.submit(delivery(&[&rx.url], 1, policy.clone()))
        .expect("submit");
    wait_for(|| n.stats().failed_attempts >= 1).await;
    for i in 2..=5 {
        n.submit(delivery(&[&rx.url], i, policy.clone()))
            .expect("submit");
    }
    // Events 2-4 are replaced on arrival, event 1 at its next failed attempt.
    wait_for(|| n.stats().superseded == 4).await;
    rx.set_default(Mode::Answer(2000));
    let seen = rx.wait_answered(1).await;
    assert_eq!(seen[0].body, json!({"m2m:sgn": event(5)}));
    wait_for(|| n.stats().delivered == 1).await;
    assert_eq!(rx.answered().len(), 1);
    assert_eq!(n.stats().queued_now, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_pending_delivers_the_backlog_in_order() {
    let rx = Receiver::start(Mode::Close, &[]).await;
    let n = notifier(NotifierConfig {
        max_attempts: 50,
        ..config()
    });
    n.submit(delivery(&[&rx.url], 1, DeliveryPolicy::default()))
        .expect("submit");
    wait_for(|| n.stats().failed_attempts >= 1).await;
    for i in 2..=5 {
        n.submit(delivery(&[&rx.url], i, DeliveryPolicy::default()))
            .expect("submit");
    }
    rx.set_default(Mode::Answer(2000));
    let seen = rx.wait_answered(5).await;
    assert_eq!(all_events(&seen), (1..=5).map(event).collect::<Vec<_>>());
    assert_eq!(n.stats().superseded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_now_returns_the_answer_or_why_there_is_none() {
    let n = notifier(config());
    let verification = json!({"m2m:sgn": {"vrq": true, "sur": "/id-in/sub1", "cr": "Cae1"}});

    let ok = Receiver::answering().await;
    let resp = n
        .send_now(
            None,
            std::slice::from_ref(&ok.url),
            "Cae1",
            verification.clone(),
        )
        .await
        .expect("answered");
    assert_eq!(resp.rsc, Rsc::Ok);
    let seen = ok.seen();
    assert_eq!(seen[0].body, verification);
    assert_eq!(seen[0].header("x-m2m-origin").as_deref(), Some("/id-in"));

    let refusing = Receiver::start(Mode::Answer(4103), &[]).await;
    let resp = n
        .send_now(
            None,
            &[dead_url(), refusing.url.clone()],
            "Cae1",
            verification.clone(),
        )
        .await
        .expect("answered");
    assert_eq!(resp.rsc, Rsc::OriginatorHasNoPrivilege);

    // A refused verification (4101, subscription creator has no privilege).
    let refusing_creator = Receiver::start(Mode::Answer(4101), &[]).await;
    let resp = n
        .send_now(
            None,
            std::slice::from_ref(&refusing_creator.url),
            "Cae1",
            verification.clone(),
        )
        .await
        .expect("answered");
    assert_eq!(resp.rsc.code(), 4101);

    // A code bastion-proto does not model: the target answered, unrecognised.
    let unknown = Receiver::start(Mode::Answer(4999), &[]).await;
    match n
        .send_now(
            None,
            std::slice::from_ref(&unknown.url),
            "Cae1",
            verification.clone(),
        )
        .await
    {
        Err(DeliveryError::UnrecognizedAnswer { code, target, .. }) => {
            assert_eq!((code, target), (Some(4999), unknown.url.clone()));
        }
        other => panic!("expected an unrecognised answer, got {other:?}"),
    }

    let dead = dead_url();
    match n
        .send_now(
            None,
            std::slice::from_ref(&dead),
            "Cae1",
            verification.clone(),
        )
        .await
    {
        Err(DeliveryError::Unreachable(failures)) => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].target, dead);
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(matches!(
        n.send_now(None, &[], "Cae1", verification).await,
        Err(DeliveryError::NoTargets)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_now_to_a_silent_target_times_out() {
    let hole = blackhole().await;
    let n = notifier(NotifierConfig {
        request_timeout: Duration::from_millis(200),
        ..config()
    });
    let result = n
        .send_now(None, &[hole], "Cae1", json!({"m2m:sgn": {}}))
        .await;
    assert!(matches!(result, Err(DeliveryError::Unreachable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_sends_a_buffered_batch_on_demand() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    let policy = batch(100, Duration::from_secs(60));
    for i in 1..=3 {
        n.submit(delivery(&[&rx.url], i, policy.clone()))
            .expect("submit");
    }
    n.flush("/id-in/sub1").await;
    let seen = rx.wait_answered(1).await;
    assert_eq!(
        seen[0].body,
        json!({"m2m:agn": {"m2m:sgn": [event(1), event(2), event(3)]}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_exit_and_come_back() {
    let rx = Receiver::answering().await;
    let n = notifier(NotifierConfig {
        idle_worker_timeout: Duration::from_millis(100),
        ..config()
    });
    n.submit(delivery(&[&rx.url], 1, DeliveryPolicy::default()))
        .expect("submit");
    rx.wait_answered(1).await;
    wait_for(|| n.stats().active_destinations == 0).await;
    n.submit(delivery(&[&rx.url], 2, DeliveryPolicy::default()))
        .expect("submit");
    let seen = rx.wait_answered(2).await;
    assert_eq!(all_events(&seen), vec![event(1), event(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_buffered_batches_within_grace() {
    let rx = Receiver::answering().await;
    let n = notifier(config());
    let policy = batch(100, Duration::from_secs(60));
    for i in 1..=2 {
        n.submit(delivery(&[&rx.url], i, policy.clone()))
            .expect("submit");
    }
    n.shutdown(DEADLINE).await;
    let seen = rx.answered();
    assert_eq!(
        seen.len(),
        1,
        "shutdown returned after the batch was delivered"
    );
    assert_eq!(
        seen[0].body,
        json!({"m2m:agn": {"m2m:sgn": [event(1), event(2)]}})
    );
    let stats = n.stats();
    assert_eq!((stats.delivered, stats.dropped_shutdown), (2, 0));
}

/// A transport that refuses every target of one peer CSE and records what it was asked.
struct RefusingPeer {
    refused: &'static str,
    client: Client,
    asked: Mutex<Vec<Option<String>>>,
}

impl Routes for RefusingPeer {
    fn routes(&self, peer: Option<&str>, targets: &[String]) -> Vec<Route> {
        self.asked
            .lock()
            .expect("lock")
            .push(peer.map(str::to_owned));
        targets
            .iter()
            .map(|_| match peer {
                Some(p) if p == self.refused => Err(format!("{p}: association revoked")),
                _ => Ok(Arc::new(self.client.clone()) as _),
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_decides_per_peer_and_a_refused_peer_is_never_sent_to() {
    let rx = Receiver::answering().await;
    let transport = Arc::new(RefusingPeer {
        refused: "/id-mn",
        client: Client::default(),
        asked: Mutex::new(Vec::new()),
    });
    let n = Notifier::new(config(), Arc::clone(&transport));
    // The same URL behind two peers: two destinations, decided separately.
    let behind = |peer: &str, k: u64| Delivery {
        peer: Some(peer.to_owned()),
        ..delivery(&[&rx.url], k, DeliveryPolicy::default())
    };
    n.submit(behind("/id-mn", 1)).expect("submit");
    n.submit(behind("/id-other", 2)).expect("submit");
    let seen = rx.wait_answered(1).await;
    assert_eq!(seen[0].body, json!({"m2m:sgn": event(2)}));
    wait_for(|| n.stats().dropped_exhausted == 1).await;
    let stats = n.stats();
    assert_eq!((stats.delivered, stats.retried), (1, 0));
    assert_eq!(rx.seen().len(), 1, "the refused peer's NOTIFY left");
    let mut asked = transport.asked.lock().expect("lock").clone();
    asked.sort();
    assert_eq!(
        asked,
        vec![Some("/id-mn".to_owned()), Some("/id-other".to_owned())]
    );
    // send_now asks the transport too.
    let err = n
        .send_now(
            Some("/id-mn"),
            std::slice::from_ref(&rx.url),
            "Cae1",
            json!({}),
        )
        .await;
    let Err(DeliveryError::Unreachable(failures)) = err else {
        panic!("sent despite the refusal: {err:?}");
    };
    let failures: Vec<(&str, &str)> = failures
        .iter()
        .map(|f| (f.target.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        failures,
        vec![(rx.url.as_str(), "/id-mn: association revoked")]
    );
    assert_eq!(rx.seen().len(), 1);
}
