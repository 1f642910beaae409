//! Time comes from the clock the CSE was opened with: a test reaches an expiry by
//! setting the clock, never by sleeping (docs/decisions.md, Issue 13).

use bastion_core::{Cse, CseConfig, RequestContext, Services};
use bastion_proto::clock::{Clock, ManualClock};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, Response};
use bastion_store::SqliteStore;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// 2020-01-01T00:00:00Z: years before the wall clock, so a CSE that read the wall clock
/// would reject every `et` and `rqet` written here as already passed.
const START: Timestamp = Timestamp(1_577_836_800);

async fn open(clock: Arc<ManualClock>) -> (Arc<Cse>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("bastion.db")).expect("store");
    let services = Services {
        clock,
        ..Services::default()
    };
    let cse = Cse::open_with(CseConfig::default(), Arc::new(store), services)
        .await
        .expect("cse");
    (cse, dir)
}

fn request(op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    Request {
        op: Some(op),
        to: to.to_owned(),
        fr: Some("CAdmin".to_owned()),
        rqi: Some("r1".to_owned()),
        rvi: Some("3".to_owned()),
        ty,
        pc,
        ..Request::default()
    }
}

async fn send(cse: &Cse, req: Request) -> Response {
    cse.handle(req, &RequestContext::new(None, None)).await
}

fn attr<'r>(r: &'r Response, name: &str) -> &'r Value {
    &r.pc.as_ref().expect("content")["m2m:cnt"][name]
}

#[tokio::test]
async fn a_resource_expires_when_the_clock_reaches_its_et() {
    let clock = Arc::new(ManualClock::at(START));
    let (cse, _dir) = open(clock.clone()).await;
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
    let (cse, _dir) = open(clock.clone()).await;
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
    let (cse, _dir) = open(clock.clone()).await;
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
