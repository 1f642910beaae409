//! Every access decision goes through the request's one enforcement object, whose
//! `rq_time` comes from the CSE's clock: the group-level decision of a fan-out (`macp`)
//! and the operator explanation follow the clock exactly as a direct request does, and a
//! fan-out denial is audited like any other.

use crate::common;
use bastion_core::audit::MemorySink;

use bastion_core::{AuditKind, Cse, CseConfig, ExplainQuery, RequestContext, Services};
use bastion_policy::{AccessOperation, Grant};
use bastion_proto::clock::ManualClock;
use bastion_proto::time::Timestamp;
use bastion_proto::Operation;
use bastion_store::MemoryStore;
use common::{request, send};
use serde_json::{json, Value};
use std::sync::Arc;

/// 2020-01-01T00:00:00Z, inside the rules' `actw` year.
const IN_2020: Timestamp = Timestamp(1_577_836_800);
/// 2021-01-01T00:00:00Z, outside it.
const IN_2021: Timestamp = Timestamp(1_609_459_200);
const READER: &str = "Creader";

struct Fixture {
    cse: Arc<Cse>,
    clock: Arc<ManualClock>,
    audit: Arc<MemorySink>,
}

async fn open() -> Fixture {
    let store = MemoryStore::new();
    let clock = Arc::new(ManualClock::at(IN_2020));
    let audit = Arc::new(MemorySink::default());
    let services = Services {
        clock: clock.clone(),
        audit: audit.clone(),
        ..Services::default()
    };
    let cse = Cse::open_with(CseConfig::default(), Arc::new(store), services)
        .await
        .expect("cse");
    Fixture { cse, clock, audit }
}

/// CREATE by the administrator; returns the new resource's `ri`.
async fn admin_create(cse: &Cse, parent: &str, ty: u64, body: Value) -> String {
    let r = send(
        cse,
        request(Operation::Create, parent, "CAdmin", Some(ty), Some(body)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let pc = r.pc.expect("content");
    let (_, resource) = pc.as_object().and_then(|m| m.iter().next()).expect("one");
    resource["ri"].as_str().expect("ri").to_owned()
}

/// An ACP granting the reader RETRIEVE, in 2020 only when `only_2020`.
async fn acp(cse: &Cse, rn: &str, only_2020: bool) -> String {
    let mut rule = json!({"acor": [READER], "acop": 2});
    if only_2020 {
        rule["acco"] = json!([{"actw": ["* * * * * * 2020"]}]);
    }
    let body = json!({"m2m:acp": {
        "rn": rn,
        "pv": {"acr": [rule]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}
    }});
    admin_create(cse, "cse-in", 1, body).await
}

async fn register_reader(cse: &Cse) {
    let ae = json!({"m2m:ae": {"api": "Nreader", "rr": false, "srv": ["3"]}});
    let r = send(
        cse,
        request(Operation::Create, "cse-in", READER, Some(2), Some(ae)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
}

/// The reader registered; containers `c1`, `c2` readable by it at any time; group `g`
/// over them whose `macp` lets the reader fan out in 2020 only.
async fn group_fixture(f: &Fixture) {
    register_reader(&f.cse).await;
    let open = acp(&f.cse, "open", false).await;
    let dated = acp(&f.cse, "dated", true).await;
    let mut members = Vec::new();
    for rn in ["c1", "c2"] {
        let cnt = json!({"m2m:cnt": {"rn": rn, "acpi": [open]}});
        members.push(admin_create(&f.cse, "cse-in", 3, cnt).await);
    }
    let grp = json!({"m2m:grp": {"rn": "g", "mnm": 10, "mid": members, "macp": [dated]}});
    admin_create(&f.cse, "cse-in", 9, grp).await;
}

fn denials(audit: &MemorySink) -> Vec<(String, String, &'static str)> {
    audit
        .events()
        .into_iter()
        .filter(|e| e.event == AuditKind::Deny)
        .map(|e| (e.originator, e.target, e.operation))
        .collect()
}

#[tokio::test]
async fn fan_out_macp_is_decided_at_the_clock_time() {
    let f = open().await;
    group_fixture(&f).await;
    let get = || request(Operation::Retrieve, "cse-in/g/fopt", READER, None, None);

    let r = send(&f.cse, get()).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let pc = r.pc.expect("aggregate");
    let codes: Vec<u64> = pc["m2m:agr"]["m2m:rsp"]
        .as_array()
        .expect("m2m:rsp list")
        .iter()
        .map(|e| e["rsc"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(codes, vec![2000, 2000]);
    assert_eq!(denials(&f.audit), Vec::new());

    // A year later the members would still answer, but `macp` no longer lets the reader
    // reach them: refused at the group, with nothing of the policy revealed, and audited.
    f.clock
        .set(std::time::UNIX_EPOCH + std::time::Duration::from_secs(IN_2021.0 as u64));
    let r = send(&f.cse, get()).await;
    assert_eq!(r.rsc.code(), 4103, "{:?}", r.pc);
    assert_eq!(
        r.pc,
        Some(json!({"m2m:dbg": "originator has no privilege"}))
    );
    assert_eq!(
        denials(&f.audit),
        vec![(READER.to_owned(), "cse-in/g".to_owned(), "RETRIEVE")]
    );
    // The members themselves stay readable directly: the group-level decision refused.
    let r = send(
        &f.cse,
        request(Operation::Retrieve, "cse-in/c1", READER, None, None),
    )
    .await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
}

fn query(to: &str, time: Option<Timestamp>) -> ExplainQuery {
    ExplainQuery {
        originator: READER.to_owned(),
        operation: AccessOperation::Retrieve,
        to: to.to_owned(),
        create_type: None,
        time,
        peer_ip: None,
        location: None,
    }
}

#[tokio::test]
async fn explain_decides_at_the_clock_time_unless_told_otherwise() {
    let f = open().await;
    register_reader(&f.cse).await;
    let dated = acp(&f.cse, "dated", true).await;
    let cnt = json!({"m2m:cnt": {"rn": "c", "acpi": [dated]}});
    admin_create(&f.cse, "cse-in", 3, cnt).await;

    let now = f
        .cse
        .explain(&query("cse-in/c", None))
        .await
        .expect("explain");
    assert_eq!(now.time, Some(IN_2020.0));
    assert_eq!(now.grant, Some(Grant::Rule { source: 0, rule: 0 }), "{now}");
    let later = f
        .cse
        .explain(&query("cse-in/c", Some(IN_2021)))
        .await
        .expect("explain");
    assert_eq!(later.time, Some(IN_2021.0));
    assert_eq!(later.grant, None, "{later}");

    // The CSE's clock moves on: the same question without a time is now denied, and the
    // request itself agrees with the explanation.
    f.clock
        .set(std::time::UNIX_EPOCH + std::time::Duration::from_secs(IN_2021.0 as u64));
    let moved = f
        .cse
        .explain(&query("cse-in/c", None))
        .await
        .expect("explain");
    assert_eq!(moved.time, Some(IN_2021.0));
    assert_eq!(moved.grant, None, "{moved}");
    let r = send(
        &f.cse,
        request(Operation::Retrieve, "cse-in/c", READER, None, None),
    )
    .await;
    assert_eq!(r.rsc.code(), 4103, "{:?}", r.pc);

    // Errors are those the request would meet before the decision, with their rsc.
    let missing = f.cse.explain(&query("cse-in/nothing", None)).await;
    assert_eq!(missing.expect_err("no such resource").rsc().code(), 4004);
}

/// The admission of `/__bastion/explain` (bastion-http's admin.rs): only the
/// administrator, in any addressing form, and only where it may claim that identity.
#[tokio::test]
async fn operator_endpoints_admit_only_the_administrator() {
    let f = open().await;
    register_reader(&f.cse).await;
    let outside = RequestContext::new(None, None);
    for admin in ["CAdmin", "/id-in/CAdmin"] {
        assert!(
            f.cse.authorize_operator(Some(admin), &outside).is_ok(),
            "{admin}"
        );
    }
    for who in [Some(READER), None] {
        let err = f
            .cse
            .authorize_operator(who, &outside)
            .expect_err("not the administrator");
        assert_eq!(err.rsc().code(), 4103, "{who:?}");
        assert_eq!(err.to_string(), "originator has no privilege");
    }
    // Inside the reader's association the administrator's name is impersonation: 4106.
    let readers = RequestContext::new(None, Some(READER.to_owned()));
    let err = f
        .cse
        .authorize_operator(Some("CAdmin"), &readers)
        .expect_err("impersonation");
    assert_eq!(err.rsc().code(), 4106);
}

/// A full RETRIEVE that an `aca`-limited rule answers with the readable attributes is a
/// grant (2000, shaped), not audited as a denial; the same RETRIEVE by an originator no
/// rule covers is 4103 and audited once.
#[tokio::test]
async fn an_aca_shaped_retrieve_is_not_audited_as_a_denial() {
    let f = open().await;
    register_reader(&f.cse).await;
    let body = json!({"m2m:acp": {
        "rn": "some",
        "pv": {"acr": [{"acor": [READER], "acop": 2, "aca": ["lbl"]}]},
        "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}
    }});
    let mut create = request(Operation::Create, "cse-in", "CAdmin", Some(1), Some(body));
    create.rvi = Some("4".to_owned());
    let r = send(&f.cse, create).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let acpi = r.pc.expect("acp")["m2m:acp"]["ri"].clone();
    let cnt = json!({"m2m:cnt": {"rn": "c", "lbl": ["a"], "acpi": [acpi]}});
    admin_create(&f.cse, "cse-in", 3, cnt).await;

    let mut shaped = request(Operation::Retrieve, "cse-in/c", READER, None, None);
    shaped.rvi = Some("4".to_owned());
    let r = send(&f.cse, shaped).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let pc = r.pc.expect("shaped");
    assert_eq!(pc, json!({"m2m:cnt": {"lbl": ["a"]}}));
    assert_eq!(denials(&f.audit), Vec::new());

    let ae = json!({"m2m:ae": {"api": "Nstranger", "rr": false, "srv": ["4"]}});
    let r = send(
        &f.cse,
        request(Operation::Create, "cse-in", "Cstranger", Some(2), Some(ae)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let mut stranger = request(Operation::Retrieve, "cse-in/c", "Cstranger", None, None);
    stranger.rvi = Some("4".to_owned());
    let r = send(&f.cse, stranger).await;
    assert_eq!(r.rsc.code(), 4103, "{:?}", r.pc);
    assert_eq!(
        denials(&f.audit),
        vec![("Cstranger".to_owned(), "cse-in/c".to_owned(), "RETRIEVE")]
    );
}
