//! Time comes from the clock the CSE was opened with: a test reaches an expiry by
//! setting the clock, never by sleeping (docs/decisions.md, Issue 13).

use crate::common;

use bastion_core::{Cse, CseConfig, Services};
use common::send;

/// A request from the administrator.
fn request(op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    common::request(op, to, "CAdmin", ty, pc)
}
use bastion_proto::clock::{Clock, ManualClock};
use bastion_proto::filter::FilterCriteria;
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, Response};
use bastion_store::MemoryStore;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// 2020-01-01T00:00:00Z: years before the wall clock, so a CSE that read the wall clock
/// would reject every `et` and `rqet` written here as already passed.
const START: Timestamp = Timestamp(1_577_836_800);

async fn open(clock: Arc<ManualClock>) -> Arc<Cse> {
    let store = MemoryStore::new();
    let services = Services {
        clock,
        ..Services::default()
    };
    // The sweep, where a test starts it, runs often: it waits for no wall-clock time.
    let config = CseConfig {
        expiry_interval_ms: 10,
        ..CseConfig::default()
    };
    Cse::open_with(config, Arc::new(store), services)
        .await
        .expect("cse")
}

fn attr<'r>(r: &'r Response, name: &str) -> &'r Value {
    &r.pc.as_ref().expect("content")["m2m:cnt"][name]
}

#[tokio::test]
async fn a_resource_expires_when_the_clock_reaches_its_et() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    let et = Timestamp(START.0 + 10).format();
    let body = json!({"m2m:cnt": {"rn": "c", "et": et}});
    let r = send(
        &cse,
        request(Operation::Create, "cse-in", Some(3), Some(body)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    assert_eq!(attr(&r, "ct"), &json!(START.format()));
    assert_eq!(attr(&r, "et"), &json!(et));
    assert_eq!(r.ot.as_deref(), Some(START.format().as_str()));

    clock.advance(Duration::from_secs(9));
    let get = || request(Operation::Retrieve, "cse-in/c", None, None);
    let r = send(&cse, get()).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    assert_eq!(r.ot, Some(Timestamp(START.0 + 9).format()));

    // At `et` the resource is gone.
    clock.advance(Duration::from_secs(1));
    let r = send(&cse, get()).await;
    assert_eq!(r.rsc.code(), 4004, "{:?}", r.pc);
    assert_eq!(r.pc, Some(json!({"m2m:dbg": "resource does not exist"})));
}

#[tokio::test]
async fn lt_moves_with_the_clock_on_update() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    let body = json!({"m2m:cnt": {"rn": "c"}});
    let r = send(
        &cse,
        request(Operation::Create, "cse-in", Some(3), Some(body)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    assert_eq!(attr(&r, "lt"), &json!(START.format()));
    // One second later, without sleeping: `lt` differs from `ct` (TS-0001 9.6.1.3).
    clock.advance(Duration::from_secs(1));
    let change = json!({"m2m:cnt": {"lbl": ["x"]}});
    let r = send(
        &cse,
        request(Operation::Update, "cse-in/c", None, Some(change)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2004, "{:?}", r.pc);
    assert_eq!(attr(&r, "ct"), &json!(START.format()));
    assert_eq!(attr(&r, "lt"), &json!(Timestamp(START.0 + 1).format()));
}

#[tokio::test]
async fn request_expiration_is_judged_by_the_clock() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    let get = |rqet: Timestamp| Request {
        rqet: Some(rqet.format()),
        ..request(Operation::Retrieve, "cse-in", None, None)
    };
    // A deadline that the wall clock passed long ago is still ahead by this clock.
    let r = send(&cse, get(Timestamp(START.0 + 5))).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    clock.advance(Duration::from_secs(5));
    let r = send(&cse, get(Timestamp(START.0 + 5))).await;
    assert_eq!(r.rsc.code(), 4008, "{:?}", r.pc);
    assert_eq!(r.pc, Some(json!({"m2m:dbg": "rqet has already passed"})));
    assert_eq!(clock.timestamp(), Timestamp(START.0 + 5));
}

fn discovery(to: &str, fc: FilterCriteria) -> Request {
    Request {
        fc: FilterCriteria { fu: Some(1), ..fc },
        ..request(Operation::Retrieve, to, None, None)
    }
}

fn uril(r: &Response) -> Vec<String> {
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let list = &r.pc.as_ref().expect("content")["m2m:uril"];
    list.as_array()
        .unwrap_or_else(|| panic!("m2m:uril is not a list: {list}"))
        .iter()
        .map(|v| v.as_str().expect("uril entry").to_owned())
        .collect()
}

/// Moved from the binary's discovery suite, where it slept to the next second.
#[tokio::test]
async fn ts0004_7_3_3_17_created_before_and_after() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    for rn in ["e1", "e2"] {
        let body = json!({"m2m:cnt": {"rn": rn}});
        let r = send(
            &cse,
            request(Operation::Create, "cse-in", Some(3), Some(body)),
        )
        .await;
        assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
        clock.advance(Duration::from_secs(1));
    }
    let (ct1, ct2) = (START, Timestamp(START.0 + 1));
    let find = |crb: Option<Timestamp>, cra: Option<Timestamp>| {
        let fc = FilterCriteria {
            crb,
            cra,
            ty: vec![3],
            ..FilterCriteria::default()
        };
        discovery("cse-in", fc)
    };
    assert_eq!(
        uril(&send(&cse, find(Some(ct2), None)).await),
        ["cse-in/e1"]
    );
    assert_eq!(
        uril(&send(&cse, find(None, Some(ct2))).await),
        ["cse-in/e2"]
    );
    assert_eq!(uril(&send(&cse, find(None, Some(ct1))).await).len(), 2);
    assert!(uril(&send(&cse, find(Some(ct1), None)).await).is_empty());
    assert_eq!(
        uril(&send(&cse, find(Some(ct2), Some(ct1))).await),
        ["cse-in/e1"]
    );
}

/// Moved from the binary's resource suite, where it waited for `et` on the wall clock.
/// Resolution treats an expired resource and its subtree as absent before the sweep.
#[tokio::test]
async fn ts0001_9_6_1_3_expired_resource_disappears_with_its_subtree() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    let create = |parent: &str, ty: u64, body: Value| {
        request(Operation::Create, parent, Some(ty), Some(body))
    };
    let et = Timestamp(START.0 + 3).format();
    let mut ris = Vec::new();
    for (parent, ty, body) in [
        ("cse-in", 3, json!({"m2m:cnt": {"rn": "brief", "et": et}})),
        ("cse-in/brief", 3, json!({"m2m:cnt": {"rn": "sub"}})),
        (
            "cse-in/brief/sub",
            4,
            json!({"m2m:cin": {"rn": "i", "con": "x"}}),
        ),
        ("cse-in", 3, json!({"m2m:cnt": {"rn": "keep"}})),
    ] {
        let r = send(&cse, create(parent, ty, body)).await;
        assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
        let pc = r.pc.expect("content");
        let (_, resource) = pc.as_object().and_then(|m| m.iter().next()).expect("one");
        ris.push(resource["ri"].as_str().expect("ri").to_owned());
    }
    let get = |to: &str| request(Operation::Retrieve, to, None, None);
    let r = send(&cse, get("cse-in/brief/sub/i")).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);

    clock.advance(Duration::from_secs(3));
    let gone = ["cse-in/brief", "cse-in/brief/sub", "cse-in/brief/sub/i"]
        .map(str::to_owned)
        .into_iter()
        .chain(ris[..3].iter().map(|ri| format!("/id-in/{ri}")));
    for to in gone {
        let r = send(&cse, get(&to)).await;
        assert_eq!(r.rsc.code(), 4004, "{to}: {:?}", r.pc);
    }
    let r = send(&cse, discovery("cse-in", FilterCriteria::default())).await;
    assert!(
        !uril(&r).iter().any(|p| p.starts_with("cse-in/brief")),
        "{r:?}"
    );
    assert!(uril(&r).contains(&"cse-in/keep".to_owned()), "{r:?}");
    let r = send(&cse, get(&format!("/id-in/{}", ris[3]))).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    // Once the sweep has removed it, the name is free again. The sweep runs on its own
    // task; the clock has already moved, so only that task is awaited.
    let sweep = cse.spawn_expiry();
    let mut r = send(
        &cse,
        create("cse-in", 3, json!({"m2m:cnt": {"rn": "brief"}})),
    )
    .await;
    for _ in 0..500 {
        if r.rsc.code() != 4105 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        r = send(
            &cse,
            create("cse-in", 3, json!({"m2m:cnt": {"rn": "brief"}})),
        )
        .await;
    }
    sweep.abort();
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
}

/// `(cni, cbs)` of `cse-in/cnt`.
async fn sizes(cse: &Cse) -> (u64, u64) {
    let r = send(cse, request(Operation::Retrieve, "cse-in/cnt", None, None)).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let count = |name| attr(&r, name).as_u64().expect("counter");
    (count("cni"), count("cbs"))
}

async fn cin(cse: &Cse, rn: &str, con: &str) -> Response {
    let body = json!({"m2m:cin": {"rn": rn, "con": con}});
    let r = send(
        cse,
        request(Operation::Create, "cse-in/cnt", Some(4), Some(body)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    r
}

/// Moved from the binary's container suite, where it waited for `mia` on the wall clock.
#[tokio::test]
async fn ts0004_7_4_7_2_expired_instances_leave_the_counters() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    // mia = 2 s: every instance expires two seconds after its creation.
    let body = json!({"m2m:cnt": {"rn": "cnt", "mia": 2}});
    let r = send(
        &cse,
        request(Operation::Create, "cse-in", Some(3), Some(body)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let a = cin(&cse, "a", "aaaa").await;
    let a_ri = a.pc.as_ref().expect("content")["m2m:cin"]["ri"]
        .as_str()
        .expect("ri")
        .to_owned();
    cin(&cse, "b", "bb").await;
    assert_eq!(sizes(&cse).await, (2, 6));

    clock.advance(Duration::from_secs(2));
    // The sweep removes the instances on its own task; only that task is awaited.
    let sweep = cse.spawn_expiry();
    for _ in 0..500 {
        if sizes(&cse).await == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweep.abort();
    assert_eq!(sizes(&cse).await, (0, 0));
    for to in [
        "cse-in/cnt/a".to_owned(),
        "cse-in/cnt/la".to_owned(),
        "cse-in/cnt/ol".to_owned(),
        format!("/id-in/{a_ri}"),
    ] {
        let r = send(&cse, request(Operation::Retrieve, &to, None, None)).await;
        assert_eq!(r.rsc.code(), 4004, "{to}: {:?}", r.pc);
    }
    let r = send(&cse, discovery("cse-in/cnt", FilterCriteria::default())).await;
    assert!(uril(&r).is_empty(), "{r:?}");
    // The container itself lives on, and its names are free again.
    cin(&cse, "a", "new").await;
    assert_eq!(sizes(&cse).await, (1, 3));
}

#[tokio::test]
async fn ts0004_cse_base_current_time_reads_the_cse_clock() {
    let clock = Arc::new(ManualClock::at(START));
    let cse = open(clock.clone()).await;
    let get = || Request {
        rvi: Some("4".to_owned()),
        ..request(Operation::Retrieve, "cse-in", None, None)
    };
    let r = send(&cse, get()).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let ctm = |r: &Response| r.pc.as_ref().expect("content")["m2m:cb"]["ctm"].clone();
    assert_eq!(ctm(&r), json!(START.format()));
    clock.advance(Duration::from_secs(3600));
    let r = send(&cse, get()).await;
    assert_eq!(ctm(&r), json!(Timestamp(START.0 + 3600).format()));
    // Release 3 has no currentTime.
    let r = send(&cse, request(Operation::Retrieve, "cse-in", None, None)).await;
    assert_eq!(ctm(&r), Value::Null);
}
