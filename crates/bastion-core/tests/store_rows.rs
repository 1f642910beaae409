//! What the core hands its store: tree rows for the resources it holds whole, instance rows
//! for contentInstances, and a restart over the same rows finds both again. Runs on the
//! volatile `MemoryStore`; the SQLite round trip is covered by the binary's restart tests.

use crate::common;

use bastion_core::{Cse, CseConfig};
use common::send;

/// A request from the AE `Cabc`.
fn request(op: Operation, to: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    common::request(op, to, "Cabc", ty, pc)
}
use bastion_proto::{Operation, Request};
use bastion_store::{MemoryStore, RowKind, Store};
use serde_json::{json, Value};
use std::sync::Arc;

async fn create(cse: &Cse, parent: &str, ty: u64, body: Value) -> Value {
    let r = send(
        cse,
        request(Operation::Create, parent, Some(ty), Some(body)),
    )
    .await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    r.pc.expect("created resource")
}

#[tokio::test]
async fn content_instances_are_instance_rows_and_survive_a_restart() {
    let store = MemoryStore::new();
    let cse = Cse::open(CseConfig::default(), Arc::new(store.reopen()))
        .await
        .expect("cse");
    let ae = create(
        &cse,
        "cse-in",
        2,
        json!({"m2m:ae": {"rn": "app", "api": "Ntest", "rr": false, "srv": ["3"]}}),
    )
    .await;
    let cnt = create(
        &cse,
        "cse-in/app",
        3,
        json!({"m2m:cnt": {"rn": "c", "mni": 2}}),
    )
    .await;
    for con in ["v1", "v2", "v3"] {
        create(&cse, "cse-in/app/c", 4, json!({"m2m:cin": {"con": con}})).await;
    }
    drop(cse);

    let ae_ri = ae["m2m:ae"]["ri"].as_str().expect("ae ri");
    let cnt_ri = cnt["m2m:cnt"]["ri"].as_str().expect("cnt ri");
    let ae_row = store.get(ae_ri).await.expect("get").expect("ae row");
    assert_eq!((ae_row.ty, ae_row.kind), (2, RowKind::Tree));
    // Evictions reach the store in batches (the loader applies `mni` again), so the
    // container may still hold the evicted row on disk; every one is an instance row.
    let rows = store.children(cnt_ri, None).await.expect("children");
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| (r.ty, r.kind) == (4, RowKind::Instance)),
        "{rows:?}"
    );
    let index = store.load_instance_index().await.expect("index");
    assert_eq!(index.len(), rows.len());
    assert!(index.iter().all(|e| e.ty == 4 && e.pi == cnt_ri));
    assert!(store
        .load_tree()
        .await
        .expect("tree")
        .iter()
        .all(|r| r.kind == RowKind::Tree && r.ty != 4));

    let cse = Cse::open(CseConfig::default(), Arc::new(store.reopen()))
        .await
        .expect("restart");
    let r = send(
        &cse,
        request(Operation::Retrieve, "cse-in/app/c", None, None),
    )
    .await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    let cnt = &r.pc.expect("container")["m2m:cnt"];
    assert_eq!(
        (cnt["cni"].clone(), cnt["cbs"].clone()),
        (json!(2), json!(4))
    );
    let r = send(
        &cse,
        request(Operation::Retrieve, "cse-in/app/c/la", None, None),
    )
    .await;
    assert_eq!(r.rsc.code(), 2000, "{:?}", r.pc);
    assert_eq!(r.pc.expect("latest")["m2m:cin"]["con"], "v3");
    let r = send(
        &cse,
        request(Operation::Retrieve, "cse-in/app/c/ol", None, None),
    )
    .await;
    assert_eq!(r.pc.expect("oldest")["m2m:cin"]["con"], "v2");
}
