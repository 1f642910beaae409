//! `<node>` and `<mgmtObj>` (TS-0004 7.4.18, 7.4.15, annex D) across a restart: the
//! tree is reloaded from the store with each `<mgmtObj>` under its specialization's root,
//! its rules still those of its `mgd`, and deleting the node still takes its children;
//! the CMDH policy resources keep their links and nested values.

use crate::common;

use bastion_core::{Cse, CseConfig};
use bastion_proto::{Operation, Response};
use bastion_store::{MemoryStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN: &str = "CAdmin";

async fn open(store: Arc<dyn Store>) -> Arc<Cse> {
    Cse::open(CseConfig::default(), store)
        .await
        .expect("open the CSE")
}

async fn send(cse: &Cse, op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Response {
    common::send(cse, common::request(op, to, ADMIN, ty, pc)).await
}

#[tokio::test]
async fn ts0004_7_4_15_mgmtobjs_keep_their_specialization_over_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = open(store.clone()).await;
    let nod = json!({"m2m:nod": {"rn": "n", "ni": "urn:dev:n"}});
    let r = send(&cse, Operation::Create, "cse-in", Some(14), Some(nod)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let bat = json!({"m2m:bat": {"rn": "b", "mgd": 1006, "btl": 80, "bts": 1}});
    let r = send(&cse, Operation::Create, "cse-in/n", Some(13), Some(bat)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let rbo = json!({"m2m:rbo": {"rn": "r", "mgd": 1009}});
    let r = send(&cse, Operation::Create, "cse-in/n", Some(13), Some(rbo)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    drop(cse);

    let cse = open(store.clone()).await;
    let r = send(&cse, Operation::Retrieve, "cse-in/n/b", None, None).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let pc = r.pc.expect("the battery");
    assert_eq!(pc["m2m:bat"]["btl"], 80, "{pc}");
    assert_eq!(pc["m2m:bat"]["mgd"], 1006, "{pc}");
    // Its rules are the battery's: a percentage, and no reboot trigger.
    let up = |pc: Value| send(&cse, Operation::Update, "cse-in/n/b", None, Some(pc));
    assert_eq!(up(json!({"m2m:bat": {"btl": 101}})).await.rsc.code(), 4000);
    assert_eq!(up(json!({"m2m:bat": {"rbo": true}})).await.rsc.code(), 4000);
    assert_eq!(up(json!({"m2m:rbo": {"btl": 5}})).await.rsc.code(), 4000);
    let r = up(json!({"m2m:bat": {"btl": 5}})).await;
    assert_eq!(r.rsc.code(), 2004, "{:?}", r.pc);
    assert_eq!(r.pc.expect("updated")["m2m:bat"]["btl"], 5);
    // The node with both children, each under its own root.
    let mut req = common::request(Operation::Retrieve, "cse-in/n", ADMIN, None, None);
    req.rcn = Some(4);
    let r = common::send(&cse, req).await;
    assert_eq!(r.rsc.code(), 2000);
    let pc = r.pc.expect("the node");
    assert_eq!(pc["m2m:nod"]["m2m:bat"][0]["btl"], 5, "{pc}");
    assert_eq!(pc["m2m:nod"]["m2m:rbo"][0]["mgd"], 1009, "{pc}");
    // Deleting the node deletes the children, in the store too.
    let r = send(&cse, Operation::Delete, "cse-in/n", None, None).await;
    assert_eq!(r.rsc.code(), 2002);
    drop(cse);
    let cse = open(store).await;
    let r = send(&cse, Operation::Retrieve, "cse-in/n/r", None, None).await;
    assert_eq!(r.rsc.code(), 4004);
}

/// A `<remoteCSE>` registers from loopback, as in the partial-retrieve test.
async fn from_loopback(cse: &Cse, req: bastion_proto::Request) -> Response {
    let ctx = bastion_core::RequestContext::new(Some(([127, 0, 0, 1], 40000).into()), None);
    cse.handle(req, &ctx).await
}

#[tokio::test]
async fn ts0004_7_4_4_remote_cse_node_link_names_a_node_of_this_cse_or_of_another() {
    let config = CseConfig {
        trust_loopback_cses: true,
        ..CseConfig::default()
    };
    let cse = Cse::open(config, Arc::new(MemoryStore::new()))
        .await
        .expect("open the CSE");
    let nod = json!({"m2m:nod": {"rn": "n", "ni": "urn:dev:n"}});
    let r = send(&cse, Operation::Create, "cse-in", Some(14), Some(nod)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let csr = |nl: &str| {
        let pc = json!({"m2m:csr": {"cb": "/id-mn/cse-mn", "csi": "/id-mn", "cst": 2,
            "rr": true, "srv": ["3"], "nl": nl}});
        common::request(Operation::Create, "cse-in", "/id-mn", Some(16), Some(pc))
    };
    // A local address that names no node.
    let r = from_loopback(&cse, csr("cse-in/nothing")).await;
    assert_eq!(r.rsc.code(), 4000, "{:?}", r.pc);
    // The registree's own node, on its own CSE: not checked here.
    let r = from_loopback(&cse, csr("/id-mn/n")).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let update = |nl: &str| {
        let pc = json!({"m2m:csr": {"nl": nl}});
        common::request(Operation::Update, "cse-in/id-mn", "/id-mn", None, Some(pc))
    };
    let r = from_loopback(&cse, update("cse-in")).await;
    assert_eq!(r.rsc.code(), 4000, "{:?}", r.pc);
    let r = from_loopback(&cse, update("cse-in/n")).await;
    assert_eq!(r.rsc.code(), 2004, "{:?}", r.pc);
    assert_eq!(r.pc.expect("updated")["m2m:csr"]["nl"], "cse-in/n");
}

#[tokio::test]
async fn ts0004_d_12_cmdh_policy_resources_and_their_links_over_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = open(store.clone()).await;
    let create = |pc: Value, ty: u64, to: &'static str| {
        let cse = cse.clone();
        async move { send(&cse, Operation::Create, to, Some(ty), Some(pc)).await }
    };
    let nod = json!({"m2m:nod": {"rn": "n", "ni": "urn:dev:n"}});
    assert_eq!(create(nod, 14, "cse-in").await.rsc.code(), 2001);
    let buf = json!({"m2m:cmbf": {"rn": "buf", "mgd": 1019, "aec": [0], "mbfs": 1024, "sgp": 3}});
    assert_eq!(create(buf, 13, "cse-in/n").await.rsc.code(), 2001);
    let sch = json!({"m2m:sch": {"rn": "sch", "se": {"sce": ["* * 1-5 * * * *"]}}});
    assert_eq!(create(sch, 18, "cse-in/n").await.rsc.code(), 2001);
    let bop = json!({"bops": [{"nwa": 2, "ibt": 10, "abt": 20, "mbt": 300}]});
    let rule = json!({"m2m:cmwr": {"rn": "rule", "mgd": 1018, "ttn": ["wlan"], "mrv": 0,
        "swt": 0, "bop": bop.clone(),
        "cmlk": [{"nm": "allowedSchedule", "typ": 1018, "val": "cse-in/n/sch"}]}});
    let r = create(rule, 13, "cse-in/n").await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    // A policy whose buffer is local and whose other parts are on another CSE.
    let link = |nm: &str, typ: u64, val: &str| json!({"nm": nm, "typ": typ, "val": val});
    let cmlk = json!([
        link("d", 1013, "/id-mn/d"),
        link("l", 1016, "/id-mn/l"),
        link("r", 1017, "/id-mn/r"),
        link("buf", 1019, "cse-in/n/buf")
    ]);
    let pol = json!({"m2m:cmp": {"rn": "pol", "mgd": 1011, "cpn": "p", "cmlk": cmlk.clone()}});
    let r = create(pol, 13, "cse-in/n").await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    drop(cse);

    let cse = open(store).await;
    let r = send(&cse, Operation::Retrieve, "cse-in/n/pol", None, None).await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    assert_eq!(r.pc.expect("the policy")["m2m:cmp"]["cmlk"], cmlk);
    let r = send(&cse, Operation::Retrieve, "cse-in/n/rule", None, None).await;
    assert_eq!(r.pc.expect("the rule")["m2m:cmwr"]["bop"], bop);
    // The links are still checked against the reloaded tree: the buffer is no limits.
    let mut wrong = cmlk.clone();
    wrong[3] = link("buf", 1016, "cse-in/n/buf");
    let up = json!({"m2m:cmp": {"cmlk": wrong}});
    let r = send(&cse, Operation::Update, "cse-in/n/pol", None, Some(up)).await;
    assert_eq!(r.rsc.code(), 4000, "{:?}", r.pc);
    // A link to a part deleted since stays as it was stored.
    let r = send(&cse, Operation::Delete, "cse-in/n/buf", None, None).await;
    assert_eq!(r.rsc.code(), 2002);
    let up = json!({"m2m:cmp": {"cpn": "q"}});
    let r = send(&cse, Operation::Update, "cse-in/n/pol", None, Some(up)).await;
    assert_eq!(r.rsc.code(), 2004, "{:?}", r.pc);
    assert_eq!(r.pc.expect("updated")["m2m:cmp"]["cmlk"], cmlk);
}
