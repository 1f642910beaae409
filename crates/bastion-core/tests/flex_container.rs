//! `<flexContainer>` (TS-0001 9.6.35; TS-0004 7.4.37) beyond what the conformance cases
//! can show: its instances, counters and state tag over a restart, a specialization
//! added by configuration, a stored flexContainer whose specialization is no longer
//! configured, and the notifications of its updates and instances.

use crate::common;

use bastion_core::{Cse, CseConfig, Services};
use bastion_proto::flex::Specializations;
use bastion_proto::{Operation, Response};
use bastion_store::{MemoryStore, Store};
use common::{send, Confirming, Sent};
use serde_json::{json, Value};
use std::sync::Arc;

const SWITCH: &str = "org.onem2m.common.moduleclass.binarySwitch";

async fn open(store: Arc<dyn Store>, flex: Specializations) -> Arc<Cse> {
    let config = CseConfig {
        flex: Arc::new(flex),
        ..CseConfig::default()
    };
    Cse::open_with(config, store, Services::default())
        .await
        .expect("cse")
}

async fn ask(cse: &Cse, op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Response {
    send(cse, common::request(op, to, "CAdmin", ty, pc)).await
}

/// The content of a 2xxx answer under `root`.
fn content(r: &Response, rsc: u16, root: &str) -> Value {
    assert_eq!(r.rsc.code(), rsc, "{:?}", r.pc);
    r.pc.as_ref().expect("content")[root].clone()
}

#[tokio::test]
async fn ts0001_9_6_35_instances_counters_and_state_tag_survive_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = open(store.clone(), Specializations::shipped()).await;
    let sw = json!({"cod:binSh": {"rn": "sw", "cnd": SWITCH, "powSe": true, "mni": 2}});
    let r = ask(&cse, Operation::Create, "cse-in", Some(28), Some(sw)).await;
    assert_eq!(content(&r, 2001, "cod:binSh")["cni"], 1);
    for on in [false, true, false] {
        let pc = json!({"cod:binSh": {"powSe": on}});
        let r = ask(&cse, Operation::Update, "cse-in/sw", None, Some(pc)).await;
        assert_eq!(content(&r, 2004, "cod:binSh")["powSe"], on);
    }
    drop(cse);

    let cse = open(store.clone(), Specializations::shipped()).await;
    let r = ask(&cse, Operation::Retrieve, "cse-in/sw", None, None).await;
    let sw = content(&r, 2000, "cod:binSh");
    assert_eq!(sw["st"], 3);
    assert_eq!(sw["cni"], 2, "the oldest two were evicted");
    assert_eq!(sw["cbs"], 4 + 5);
    assert_eq!(sw["cs"], 5);
    assert_eq!(sw["powSe"], false);
    let r = ask(&cse, Operation::Retrieve, "cse-in/sw/la", None, None).await;
    let la = content(&r, 2000, "cod:binSh");
    assert_eq!((la["ty"].clone(), la["st"].clone()), (json!(58), json!(3)));
    assert_eq!(la["powSe"], false);
    let r = ask(&cse, Operation::Retrieve, "cse-in/sw/ol", None, None).await;
    let ol = content(&r, 2000, "cod:binSh");
    assert_eq!(
        (ol["st"].clone(), ol["powSe"].clone()),
        (json!(2), json!(true))
    );
    // Instances keep being made and evicted after the restart.
    let pc = json!({"cod:binSh": {"powSe": true}});
    let r = ask(&cse, Operation::Update, "cse-in/sw", None, Some(pc)).await;
    let sw = content(&r, 2004, "cod:binSh");
    assert_eq!((sw["st"].clone(), sw["cni"].clone()), (json!(4), json!(2)));
    let r = ask(&cse, Operation::Retrieve, "cse-in/sw/ol", None, None).await;
    assert_eq!(content(&r, 2000, "cod:binSh")["st"], 3);
}

#[tokio::test]
async fn ts0004_7_4_37_2_1_a_configured_specialization_is_served_and_a_removed_one_is_4125() {
    let mut flex = Specializations::shipped();
    let doc = json!({"specializations": [{"cnd": "org.example.dimmer", "root": "exa:dimmr",
        "attributes": [{"name": "level", "kind": "nonNegInteger", "mandatory": true}]}]});
    assert_eq!(flex.add_document(&doc.to_string()), Ok(1));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = open(store.clone(), flex).await;
    let dimmer = json!({"exa:dimmr": {"rn": "d", "cnd": "org.example.dimmer", "level": 30}});
    let r = ask(&cse, Operation::Create, "cse-in", Some(28), Some(dimmer)).await;
    assert_eq!(content(&r, 2001, "exa:dimmr")["level"], 30);
    let bad = json!({"exa:dimmr": {"level": -1}});
    let r = ask(&cse, Operation::Update, "cse-in/d", None, Some(bad)).await;
    assert_eq!(r.rsc.code(), 4000, "{:?}", r.pc);
    drop(cse);

    // Restarted without the definition: still served, under the generic name, and
    // nothing can be checked against it any more.
    let cse = open(store, Specializations::shipped()).await;
    let r = ask(&cse, Operation::Retrieve, "cse-in/d", None, None).await;
    let d = content(&r, 2000, "m2m:fcnt");
    assert_eq!((d["level"].clone(), d["cs"].clone()), (json!(30), json!(2)));
    let pc = json!({"m2m:fcnt": {"level": 31}});
    let r = ask(&cse, Operation::Update, "cse-in/d", None, Some(pc)).await;
    assert_eq!(r.rsc.code(), 4125, "{:?}", r.pc);
    let r = ask(&cse, Operation::Delete, "cse-in/d", None, None).await;
    assert_eq!(r.rsc.code(), 2002, "{:?}", r.pc);
}

#[tokio::test]
async fn ts0001_9_6_8_notifications_carry_the_specialization_name() {
    let sent = Arc::new(Sent::default());
    let services = Services {
        notifications: Some(sent.clone()),
        outbound: Some(Arc::new(Confirming)),
        ..Services::default()
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let cse = Cse::open_with(CseConfig::default(), store, services)
        .await
        .expect("cse");
    let sw = json!({"cod:binSh": {"rn": "sw", "cnd": SWITCH, "powSe": true, "mni": 3}});
    let r = ask(&cse, Operation::Create, "cse-in", Some(28), Some(sw)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let sub = json!({"m2m:sub": {"rn": "s", "nu": ["http://127.0.0.1:9/n"],
        "enc": {"net": [1, 3]}}});
    let r = ask(&cse, Operation::Create, "cse-in/sw", Some(23), Some(sub)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    let pc = json!({"cod:binSh": {"powSe": false}});
    let r = ask(&cse, Operation::Update, "cse-in/sw", None, Some(pc)).await;
    assert_eq!(r.rsc.code(), 2004, "{:?}", r.pc);
    let events = sent.0.lock().clone();
    let reps: Vec<(u64, Value)> = events
        .iter()
        .map(|e| {
            (
                e["nev"]["net"].as_u64().unwrap_or(0),
                e["nev"]["rep"]["cod:binSh"].clone(),
            )
        })
        .collect();
    assert_eq!(reps.len(), 2, "{events:?}");
    let update = reps
        .iter()
        .find(|(net, _)| *net == 1)
        .expect("update event");
    assert_eq!(
        (update.1["ty"].clone(), update.1["powSe"].clone()),
        (json!(28), json!(false))
    );
    let child = reps.iter().find(|(net, _)| *net == 3).expect("child event");
    assert_eq!(
        (child.1["ty"].clone(), child.1["powSe"].clone()),
        (json!(58), json!(false))
    );
}
