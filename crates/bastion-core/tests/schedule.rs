//! `<schedule>` (TS-0001 9.6.9, TS-0004 7.4.9) on a clock the test moves: a
//! subscription's notification schedule drops what falls outside its windows, sends
//! what falls inside, and with `pn` holds the outside ones until a window opens
//! (sendAllPending keeps them all, sendLatest the newest).

use crate::common;

use bastion_core::Cse;
use bastion_proto::clock::ManualClock;
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Response};
use bastion_store::{MemoryStore, Store};
use common::{open_on_clock as open_on, send, Sent};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// 2020-01-01T00:00:00Z (a Wednesday), years before the wall clock.
const START: Timestamp = Timestamp(1_577_836_800);
const HOUR: u64 = 3600;
const TARGET: &str = "http://127.0.0.1:9/scheduled";
/// Working hours, every day: 08:00:00 to 17:59:59 UTC.
const WORKING_HOURS: &str = "* * 8-17 * * * *";
/// The subscription's schedule.
const SCHEDULE: &str = "cse-in/c/s/notificationSchedule";

impl Sent {
    /// The `con` of each notified contentInstance, in order.
    fn contents(&self) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .filter_map(|e| {
                e["nev"]["rep"]["m2m:cin"]["con"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }
}

async fn open(clock: Arc<ManualClock>, sent: Arc<Sent>) -> Arc<Cse> {
    open_on(Arc::new(MemoryStore::new()), clock, sent).await
}

async fn call(cse: &Cse, op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Response {
    send(cse, common::request(op, to, "CAdmin", ty, pc)).await
}

async fn expect(cse: &Cse, op: Operation, to: &str, ty: Option<u64>, pc: Value, rsc: u16) {
    let r = call(cse, op, to, ty, Some(pc)).await;
    assert_eq!(r.rsc.code(), rsc, "{to}: {:?}", r.pc);
}

/// A contentInstance `con` in container `c`: an event for the subscription.
async fn event(cse: &Cse, con: &str) {
    expect(
        cse,
        Operation::Create,
        "cse-in/c",
        Some(4),
        json!({"m2m:cin": {"con": con}}),
        2001,
    )
    .await;
}

/// A container `c` with a subscription `s` to its new children, and `s`'s schedule.
async fn subscribed(cse: &Cse, sub: Value) {
    expect(
        cse,
        Operation::Create,
        "cse-in",
        Some(3),
        json!({"m2m:cnt": {"rn": "c"}}),
        2001,
    )
    .await;
    expect(cse, Operation::Create, "cse-in/c", Some(23), sub, 2001).await;
    let sch = json!({"m2m:sch": {"rn": "notificationSchedule", "se": {"sce": [WORKING_HOURS]}}});
    expect(cse, Operation::Create, "cse-in/c/s", Some(18), sch, 2001).await;
}

/// Runs the periodic pass for a while (what it must not do, it would do by then).
async fn sweep_for(cse: &Arc<Cse>, ms: u64) {
    let sweep = cse.spawn_expiry();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    sweep.abort();
}

/// Runs the periodic pass until `done` holds for what was sent (at most 5 s).
async fn sweep_until(cse: &Arc<Cse>, sent: &Sent, done: impl Fn(&[String]) -> bool) {
    let sweep = cse.spawn_expiry();
    for _ in 0..500 {
        if done(&sent.contents()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweep.abort();
}

#[tokio::test]
async fn ts0001_9_6_9_notifications_outside_the_schedule_are_dropped_without_pn() {
    let clock = Arc::new(ManualClock::at(START));
    let sent = Arc::new(Sent::default());
    let cse = open(clock.clone(), sent.clone()).await;
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [TARGET], "enc": {"net": [3]}}});
    subscribed(&cse, sub).await;
    // 00:00: outside the window, no `pn`: nothing is sent, now or later.
    event(&cse, "night").await;
    assert!(sent.contents().is_empty());
    clock.advance(Duration::from_secs(8 * HOUR));
    // 08:00:00 is inside: sent at once.
    event(&cse, "morning").await;
    assert_eq!(sent.contents(), ["morning"]);
    sweep_for(&cse, 100).await;
    assert_eq!(sent.contents(), ["morning"]);
    // 17:59:59 is the last second of the window, 18:00:00 the first outside.
    clock.advance(Duration::from_secs(10 * HOUR - 1));
    event(&cse, "last").await;
    clock.advance(Duration::from_secs(1));
    event(&cse, "evening").await;
    assert_eq!(sent.contents(), ["morning", "last"]);
    // Without its schedule the subscription notifies at any time.
    let r = call(&cse, Operation::Delete, SCHEDULE, None, None).await;
    assert_eq!(r.rsc.code(), 2002, "{:?}", r.pc);
    event(&cse, "free").await;
    assert_eq!(sent.contents(), ["morning", "last", "free"]);
}

#[tokio::test]
async fn ts0001_9_6_8_pending_notifications_wait_for_the_window() {
    let clock = Arc::new(ManualClock::at(START));
    let sent = Arc::new(Sent::default());
    let cse = open(clock.clone(), sent.clone()).await;
    // sendAllPending: every notification of the night leaves at 08:00, in order.
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [TARGET], "enc": {"net": [3]}, "pn": 2}});
    subscribed(&cse, sub).await;
    event(&cse, "one").await;
    event(&cse, "two").await;
    sweep_for(&cse, 100).await;
    assert!(sent.contents().is_empty(), "sent outside the window");
    clock.advance(Duration::from_secs(8 * HOUR));
    sweep_until(&cse, &sent, |c| c.len() >= 2).await;
    assert_eq!(sent.contents(), ["one", "two"]);

    // sendLatest: of the evening's notifications only the newest is kept, and an
    // event inside the next window sends it first.
    let pn = json!({"m2m:sub": {"pn": 1}});
    expect(&cse, Operation::Update, "cse-in/c/s", None, pn, 2004).await;
    clock.advance(Duration::from_secs(10 * HOUR));
    event(&cse, "three").await;
    event(&cse, "four").await;
    clock.advance(Duration::from_secs(14 * HOUR));
    event(&cse, "five").await;
    assert_eq!(sent.contents(), ["one", "two", "four", "five"]);

    // Removing `pn` drops what is held (TS-0004 7.4.8.2.3).
    clock.advance(Duration::from_secs(10 * HOUR));
    event(&cse, "six").await;
    let pn = json!({"m2m:sub": {"pn": null}});
    expect(&cse, Operation::Update, "cse-in/c/s", None, pn, 2004).await;
    clock.advance(Duration::from_secs(14 * HOUR));
    sweep_for(&cse, 100).await;
    event(&cse, "seven").await;
    assert_eq!(sent.contents(), ["one", "two", "four", "five", "seven"]);
}

#[tokio::test]
async fn ts0004_7_4_9_schedule_rules() {
    let clock = Arc::new(ManualClock::at(START));
    let sent = Arc::new(Sent::default());
    let cse = open(clock, sent).await;
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [TARGET], "enc": {"net": [3]}}});
    subscribed(&cse, sub).await;
    let r = call(&cse, Operation::Retrieve, SCHEDULE, None, None).await;
    assert_eq!(r.rsc.code(), 2000);
    let sch = r.pc.expect("content")["m2m:sch"].clone();
    assert_eq!(sch["se"], json!({"sce": [WORKING_HOURS]}));
    assert_eq!(sch["ty"], 18);
    assert!(sch.get("nco").is_none());
    // One schedule per subscription.
    let second = json!({"m2m:sch": {"rn": "other", "se": {"sce": ["* * * * * * *"]}}});
    expect(
        &cse,
        Operation::Create,
        "cse-in/c/s",
        Some(18),
        second,
        4105,
    )
    .await;
    // A bad entry is 4000, and changes nothing.
    let bad = json!({"m2m:sch": {"se": {"sce": ["* * 8-17 * * 7 *"]}}});
    expect(&cse, Operation::Update, SCHEDULE, None, bad, 4000).await;
    // nco belongs to a node's schedule: 4102 elsewhere.
    let nco = json!({"m2m:sch": {"nco": true}});
    expect(&cse, Operation::Update, SCHEDULE, None, nco, 4102).await;
    let r = call(&cse, Operation::Retrieve, SCHEDULE, None, None).await;
    assert_eq!(
        r.pc.expect("content")["m2m:sch"]["se"],
        json!({"sce": [WORKING_HOURS]})
    );
    // Under a node, nco defaults to false.
    let node = json!({"m2m:nod": {"rn": "n", "ni": "node-1"}});
    expect(&cse, Operation::Create, "cse-in", Some(14), node, 2001).await;
    let sch = json!({"m2m:sch": {"rn": "reach", "se": {"sce": ["* 0-5 2,6,10 * * * *"]}}});
    expect(&cse, Operation::Create, "cse-in/n", Some(18), sch, 2001).await;
    let r = call(&cse, Operation::Retrieve, "cse-in/n/reach", None, None).await;
    assert_eq!(r.pc.expect("content")["m2m:sch"]["nco"], false);
}

#[tokio::test]
async fn ts0001_9_6_9_the_schedule_holds_over_a_restart() {
    let clock = Arc::new(ManualClock::at(START));
    let sent = Arc::new(Sent::default());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = open_on(store.clone(), clock.clone(), sent.clone()).await;
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [TARGET], "enc": {"net": [3]}}});
    subscribed(&cse, sub).await;
    drop(cse);
    let cse = open_on(store, clock.clone(), sent.clone()).await;
    event(&cse, "night").await;
    clock.advance(Duration::from_secs(9 * HOUR));
    event(&cse, "morning").await;
    assert_eq!(sent.contents(), ["morning"]);
}
