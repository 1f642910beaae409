//! Partial RETRIEVE (`atrl`, TS-0004 7.3.3.6 / 7.4.x) of every served type: each
//! attribute a resource shows can be asked for alone and comes back unchanged, and each
//! attribute its type defines (optional ones not set, read-only ones the CSE keeps) is a
//! valid name for `atrl` even when the resource does not hold it.

use crate::common;

use bastion_core::{Cse, CseConfig, RequestContext};
use bastion_proto::attrs;
use bastion_proto::{Operation, Request, ResourceType, Response};
use bastion_store::MemoryStore;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const OWNER: &str = "Cowner";
const ADMIN: &str = "CAdmin";

/// Requests arrive from loopback, as a CSE registering over the trusted loopback would.
async fn send(cse: &Cse, req: Request) -> Response {
    cse.handle(
        req,
        &RequestContext::new(Some(([127, 0, 0, 1], 40000).into()), None),
    )
    .await
}

async fn create(cse: &Cse, fr: &str, parent: &str, ty: u64, body: Value) -> Map<String, Value> {
    let req = common::request(Operation::Create, parent, fr, Some(ty), Some(body));
    let r = send(cse, req).await;
    assert_eq!(r.rsc.code(), 2001, "create ty {ty}: {:?}", r.pc);
    single(r.pc.expect("created resource"))
}

/// The one resource representation `{"m2m:<type>": {...}}` of a response.
fn single(pc: Value) -> Map<String, Value> {
    let Value::Object(outer) = pc else {
        panic!("not a representation: {pc}")
    };
    let (_, inner) = outer.into_iter().next().expect("a root member");
    match inner {
        Value::Object(attrs) => attrs,
        other => panic!("not a resource: {other}"),
    }
}

async fn retrieve(cse: &Cse, fr: &str, to: &str, atrl: &[&str]) -> Response {
    let mut req = common::request(Operation::Retrieve, to, fr, None, None);
    // The latest release, which defines every attribute of the tables.
    req.rvi = Some("5".to_owned());
    req.atrl = atrl.iter().map(|a| (*a).to_owned()).collect();
    send(cse, req).await
}

/// Attributes whose value is taken when the request is handled.
const SAMPLED: &[&str] = &["ctm"];

/// Every attribute `full` shows, and every attribute `ty` defines, asked for alone.
async fn check_type(cse: &Cse, fr: &str, to: &str, ty: ResourceType) {
    let full = retrieve(cse, fr, to, &[]).await;
    assert_eq!(full.rsc.code(), 2000, "{to}: {:?}", full.pc);
    let full = single(full.pc.expect("representation"));
    let defined = ["ty", "ri", "pi", "ct", "lt"]
        .into_iter()
        .chain(attrs::table(ty).iter().map(|d| d.name));
    let names: Vec<&str> = full.keys().map(String::as_str).chain(defined).collect();
    for name in names {
        let r = retrieve(cse, fr, to, &[name]).await;
        assert_eq!(r.rsc.code(), 2000, "{to} atrl={name}: {:?}", r.pc);
        let part = single(r.pc.expect("partial representation"));
        match full.get(name) {
            // Sampled at each request (the CSE's current time): present, not equal.
            Some(_) if SAMPLED.contains(&name) => {
                assert!(part.contains_key(name), "{to} atrl={name}: {part:?}")
            }
            Some(value) => assert_eq!(part.get(name), Some(value), "{to} atrl={name}"),
            None => assert!(part.is_empty(), "{to} atrl={name}: {part:?}"),
        }
        assert!(part.len() <= 1, "{to} atrl={name}: {part:?}");
    }
    // Several at once, and a name the type does not define.
    let r = retrieve(cse, fr, to, &["ri", "ct"]).await;
    assert_eq!(r.rsc.code(), 2000);
    assert_eq!(single(r.pc.expect("partial")).len(), 2, "{to}");
    let r = retrieve(cse, fr, to, &["notAnAttribute"]).await;
    assert_eq!(r.rsc.code(), 4000, "{to}");
}

async fn cse() -> Arc<Cse> {
    let mut config = CseConfig {
        trust_loopback_cses: true,
        ..CseConfig::default()
    };
    config.authorization.role_authorities = vec!["authority.example".into()];
    Cse::open(config, Arc::new(MemoryStore::new()))
        .await
        .expect("open the CSE")
}

#[tokio::test]
async fn ts0004_7_4_every_attribute_of_every_served_type_can_be_retrieved_alone() {
    let cse = cse().await;
    let ae = json!({"m2m:ae": {"api": "Ntest", "rr": true, "srv": ["3"], "lbl": ["x"]}});
    create(&cse, OWNER, "cse-in", 2, ae).await;
    let cnt = json!({"m2m:cnt": {"rn": "c", "mni": 5, "lbl": ["y"]}});
    create(&cse, OWNER, "cse-in/Cowner", 3, cnt).await;
    let cin = json!({"m2m:cin": {"rn": "i", "con": "v", "cnf": "text/plain:0"}});
    create(&cse, OWNER, "cse-in/Cowner/c", 4, cin).await;
    let acp = json!({"m2m:acp": {"rn": "p",
        "pv": {"acr": [{"acor": [OWNER], "acop": 63}]},
        "pvs": {"acr": [{"acor": [OWNER], "acop": 63}]}}});
    create(&cse, OWNER, "cse-in/Cowner", 1, acp).await;
    let grp = json!({"m2m:grp": {"rn": "g", "mnm": 3, "mid": ["cse-in/Cowner/c"]}});
    create(&cse, OWNER, "cse-in/Cowner", 9, grp).await;
    let dac = json!({"m2m:dac": {"rn": "d", "dae": false, "dap": ["http://127.0.0.1:9/das"]}});
    create(&cse, OWNER, "cse-in/Cowner", 34, dac).await;
    let sub = json!({"m2m:sub": {"rn": "s", "nu": [OWNER], "enc": {"net": [3]}}});
    create(&cse, OWNER, "cse-in/Cowner/c", 23, sub).await;
    create(
        &cse,
        OWNER,
        "cse-in/Cowner",
        15,
        json!({"m2m:pch": {"rn": "pc"}}),
    )
    .await;
    let role = json!({"m2m:rol": {"rn": "r", "rlid": "operator@authority.example",
        "tkis": "authority.example", "tkhd": OWNER,
        "tknb": "20200101T000000", "tkna": "20991231T000000"}});
    create(&cse, ADMIN, "cse-in", 31, role).await;
    let csr = json!({"m2m:csr": {"cb": "/id-mn/cse-mn", "csi": "/id-mn", "cst": 2,
        "rr": true, "srv": ["3"]}});
    create(&cse, "/id-mn", "cse-in", 16, csr).await;
    let nod = json!({"m2m:nod": {"rn": "n", "ni": "urn:dev:n", "mgca": "coap://d"}});
    create(&cse, ADMIN, "cse-in", 14, nod).await;
    let bat = json!({"m2m:bat": {"rn": "b", "mgd": 1006, "btl": 80, "bts": 1}});
    create(&cse, ADMIN, "cse-in/n", 13, bat).await;
    let fwr = json!({"m2m:fwr": {"rn": "f", "mgd": 1001, "vr": "1", "fwn": "f",
        "url": "http://fw.example", "ud": false, "dc": "firmware"}});
    create(&cse, ADMIN, "cse-in/n", 13, fwr).await;
    let lcp = json!({"m2m:lcp": {"rn": "l", "los": 2, "lon": "positions",
        "lou": ["PT10M"], "lot": "tel:+4912345", "lor": "http://ls.example"}});
    create(&cse, OWNER, "cse-in/Cowner", 10, lcp).await;
    let sch = json!({"m2m:sch": {"rn": "w", "se": {"sce": ["* * 8-17 * * 1-5 *"]},
        "lbl": ["hours"]}});
    create(&cse, ADMIN, "cse-in/n", 18, sch).await;
    let ntp = json!({"m2m:ntp": {"rn": "ntp", "acn": 1, "plbl": "Default", "rrs": 2}});
    create(&cse, ADMIN, "cse-in", 26, ntp).await;
    let pdr = json!({"m2m:pdr": {"rn": "pdr", "dr": {"tod": ["* * * * * * *"]}, "drr": 1}});
    create(&cse, ADMIN, "cse-in/ntp", 27, pdr).await;
    let ntpr = json!({"m2m:ntpr": {"rn": "ntpr", "ntu": [OWNER], "npi": "cse-in/ntp"}});
    create(&cse, OWNER, "cse-in/Cowner/c/s", 25, ntpr).await;
    let crs = json!({"m2m:crs": {"rn": "x", "rrat": ["cse-in/Cowner/c"],
        "encs": {"enc": [{"net": [3]}]}, "twt": 1, "tws": "PT1M", "nu": [OWNER], "exc": 3}});
    create(&cse, OWNER, "cse-in/Cowner", 48, crs).await;

    for (fr, to, ty) in [
        (ADMIN, "cse-in", ResourceType::CseBase),
        (OWNER, "cse-in/Cowner", ResourceType::Ae),
        (OWNER, "cse-in/Cowner/c", ResourceType::Container),
        (OWNER, "cse-in/Cowner/c/i", ResourceType::ContentInstance),
        (OWNER, "cse-in/Cowner/c/la", ResourceType::ContentInstance),
        (OWNER, "cse-in/Cowner/p", ResourceType::AccessControlPolicy),
        (OWNER, "cse-in/Cowner/g", ResourceType::Group),
        (
            OWNER,
            "cse-in/Cowner/d",
            ResourceType::DynamicAuthorizationConsultation,
        ),
        (OWNER, "cse-in/Cowner/c/s", ResourceType::Subscription),
        (OWNER, "cse-in/Cowner/pc", ResourceType::PollingChannel),
        (ADMIN, "cse-in/r", ResourceType::Role),
        (ADMIN, "cse-in/id-mn", ResourceType::RemoteCse),
        (ADMIN, "cse-in/n", ResourceType::Node),
        (ADMIN, "cse-in/n/b", ResourceType::MgmtObj),
        (ADMIN, "cse-in/n/f", ResourceType::MgmtObj),
        (OWNER, "cse-in/Cowner/l", ResourceType::LocationPolicy),
        (OWNER, "cse-in/Cowner/positions", ResourceType::Container),
        (ADMIN, "cse-in/n/w", ResourceType::Schedule),
        (ADMIN, "cse-in/ntp", ResourceType::NotificationTargetPolicy),
        (ADMIN, "cse-in/ntp/pdr", ResourceType::PolicyDeletionRules),
        (
            OWNER,
            "cse-in/Cowner/c/s/ntpr",
            ResourceType::NotificationTargetMgmtPolicyRef,
        ),
        (
            OWNER,
            "cse-in/Cowner/x",
            ResourceType::CrossResourceSubscription,
        ),
    ] {
        check_type(&cse, fr, to, ty).await;
    }
}

#[tokio::test]
async fn ts0004_7_4_the_request_resource_can_be_retrieved_in_part() {
    let cse = cse().await;
    let ae = json!({"m2m:ae": {"api": "Ntest", "rr": true, "srv": ["3"]}});
    create(&cse, OWNER, "cse-in", 2, ae).await;
    let mut req = common::request(
        Operation::Create,
        "cse-in/Cowner",
        OWNER,
        Some(3),
        Some(json!({"m2m:cnt": {"rn": "later"}})),
    );
    req.rt = Some(bastion_proto::primitive::ResponseType::NonBlockingSynch);
    let ack = send(&cse, req).await;
    assert_eq!(ack.rsc.code(), 1001, "{:?}", ack.pc);
    let reference = ack.pc.expect("the <request> reference");
    let at = reference["m2m:uri"].as_str().expect("m2m:uri").to_owned();
    check_type(&cse, OWNER, &at, ResourceType::Request).await;
}
