//! Missing-data detection of `<timeSeries>` (TS-0001 9.6.36, 10.2.4.29) on a clock the
//! test moves: `mdlt`, `mdc` and the `net` 8 notification, and its resumption after a
//! restart from the stored record.

use crate::common;

use bastion_core::Cse;
use bastion_proto::clock::ManualClock;
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, Response};
use bastion_store::{MemoryStore, Store};
use common::{open_on_clock as open, send, Sent};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// 2020-01-01T00:00:00Z, years before the wall clock.
const START: Timestamp = Timestamp(1_577_836_800);
const TARGET: &str = "http://127.0.0.1:9/missing";

fn request(op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    common::request(op, to, "CAdmin", ty, pc)
}

async fn create(cse: &Cse, to: &str, ty: u64, pc: Value) -> Response {
    let r = send(cse, request(Operation::Create, to, Some(ty), Some(pc))).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    r
}

async fn series(cse: &Cse) -> Value {
    let r = send(cse, request(Operation::Retrieve, "cse-in/ts", None, None)).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    r.pc.expect("content")["m2m:ts"].clone()
}

fn at(secs: i64) -> String {
    Timestamp(START.0 + secs).format()
}

/// Runs the periodic sweep until `done` holds for the timeSeries (at most 5 s).
async fn sweep_until(cse: &Arc<Cse>, done: impl Fn(&Value) -> bool) -> Value {
    let sweep = cse.spawn_expiry();
    let mut ts = series(cse).await;
    for _ in 0..500 {
        if done(&ts) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        ts = series(cse).await;
    }
    sweep.abort();
    ts
}

#[tokio::test]
async fn ts0001_10_2_4_29_a_late_data_point_is_recorded_and_notified() {
    let clock = Arc::new(ManualClock::at(START));
    let sent = Arc::new(Sent::default());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = open(store.clone(), clock.clone(), sent.clone()).await;
    // One point every 10 s, a 2 s delta, decided 3 s after the expected time.
    let ts = json!({"m2m:ts": {"rn": "ts", "pei": 10_000, "peid": 2_000, "mdt": 3_000,
        "mdd": true, "mdn": 2}});
    create(&cse, "cse-in", 29, ts).await;
    let sub = json!({"m2m:sub": {"rn": "md", "nu": [TARGET], "enc": {"net": [8]}}});
    let r = create(&cse, "cse-in/ts", 23, sub).await;
    assert_eq!(r.pc.as_ref().expect("content")["m2m:sub"]["nct"], 5);
    let point = |rn: &str, secs: i64| json!({"m2m:tsi": {"rn": rn, "dgt": at(secs), "con": "1"}});
    create(&cse, "cse-in/ts", 30, point("p0", 0)).await;
    // On time, within the delta: nothing is missing.
    clock.advance(Duration::from_secs(11));
    create(&cse, "cse-in/ts", 30, point("p1", 11)).await;
    // The point expected at 21 s never comes; at 21 + 3 s it is still waited for.
    clock.advance(Duration::from_secs(13));
    let ts = sweep_until(&cse, |_| true).await;
    assert_eq!(
        (ts["mdc"].clone(), ts["mdlt"].clone()),
        (json!(0), json!([]))
    );
    assert!(sent.0.lock().is_empty());
    // A millisecond later it is missing.
    clock.advance(Duration::from_millis(1));
    let ts = sweep_until(&cse, |ts| ts["mdc"] != 0).await;
    assert_eq!(ts["mdc"], 1);
    assert_eq!(ts["mdlt"], json!([at(21)]));
    let events = sent.0.lock().clone();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0],
        json!({"nev": {"rep": {"m2m:tsn": {"mdlt": [at(21)], "mdc": 1}}, "net": 8},
               "sur": "/id-in/".to_owned() + &sub_ri(&cse).await})
    );
    // Two more periods pass: both are recorded, and `mdn` keeps the newest two.
    clock.advance(Duration::from_secs(20));
    let ts = sweep_until(&cse, |ts| {
        ts["mdlt"].as_array().is_some_and(|l| l[0] != at(21))
    })
    .await;
    assert_eq!(ts["mdc"], 2);
    assert_eq!(ts["mdlt"], json!([at(31), at(41)]));
    let last = sent.0.lock().last().cloned().expect("notified");
    assert_eq!(
        last["nev"]["rep"],
        json!({"m2m:tsn": {"mdlt": [at(31), at(41)], "mdc": 2}})
    );

    // After a restart detection resumes from the stored record: the point expected at
    // 51 s is missed while the CSE is down and recorded once it runs again.
    drop(cse);
    clock.advance(Duration::from_secs(10));
    let cse = open(store, clock.clone(), sent.clone()).await;
    let ts = sweep_until(&cse, |ts| {
        ts["mdlt"].as_array().is_some_and(|l| l[1] == at(51))
    })
    .await;
    assert_eq!(ts["mdlt"], json!([at(41), at(51)]));
    assert_eq!(ts["mdc"], 2);
    // A second point with the same dgt is refused.
    let r = send(
        &cse,
        request(
            Operation::Create,
            "cse-in/ts",
            Some(30),
            Some(point("again", 11)),
        ),
    )
    .await;
    assert_eq!(r.rsc.code(), 4105, "{:?}", r.pc);
}

async fn sub_ri(cse: &Cse) -> String {
    let r = send(
        cse,
        request(Operation::Retrieve, "cse-in/ts/md", None, None),
    )
    .await;
    r.pc.expect("content")["m2m:sub"]["ri"]
        .as_str()
        .expect("ri")
        .to_owned()
}
