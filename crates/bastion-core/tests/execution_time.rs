//! Requests held until their Operation Execution Time (`oet`, TS-0001 8.1.2) take one of
//! a bounded number of slots: a full set refuses one more with 5207, and a freed slot
//! serves again.

use crate::common;

use bastion_core::{Cse, CseConfig};
use bastion_proto::{Operation, Request};
use bastion_store::MemoryStore;
use common::{request, send};
use std::sync::Arc;
use std::time::Duration;

fn delayed_retrieve(oet_ms: u64) -> Request {
    let mut req = request(Operation::Retrieve, "cse-in", "CAdmin", None, None);
    req.oet = Some(oet_ms.to_string());
    req
}

#[tokio::test]
async fn ts0001_8_1_2_delayed_requests_beyond_the_cap_are_5207() {
    let config = CseConfig {
        max_delayed_requests: 1,
        ..CseConfig::default()
    };
    let cse: Arc<Cse> = Cse::open(config, Arc::new(MemoryStore::new()))
        .await
        .expect("cse");
    let holder = {
        let cse = cse.clone();
        tokio::spawn(async move { send(&cse, delayed_retrieve(2000)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = send(&cse, delayed_retrieve(2000)).await;
    assert_eq!(refused.rsc.code(), 5207, "{:?}", refused.pc);
    assert_eq!(
        refused.pc.as_ref().expect("reason")["m2m:dbg"],
        "too many requests wait for their execution time (oet)"
    );
    // Not delayed: never takes a slot.
    let at_once = send(
        &cse,
        request(Operation::Retrieve, "cse-in", "CAdmin", None, None),
    )
    .await;
    assert_eq!(at_once.rsc.code(), 2000);
    let held = holder.await.expect("holder");
    assert_eq!(held.rsc.code(), 2000, "{:?}", held.pc);
    // The slot is free again.
    let again = send(&cse, delayed_retrieve(1000)).await;
    assert_eq!(again.rsc.code(), 2000, "{:?}", again.pc);
}
