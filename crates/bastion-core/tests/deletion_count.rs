//! `dcnt` (deletionCnt, TS-0001 9.6.7) under concurrent retrievals: an instance created
//! with `dcnt` = N is retrieved exactly N times, however many retrievals race for it,
//! and then is gone from its container and its counters.

use crate::common;

use bastion_core::{Cse, CseConfig};
use bastion_proto::Operation;
use bastion_store::MemoryStore;
use common::{request, send};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts0001_9_6_7_concurrent_retrievals_never_exceed_dcnt() {
    let cse: Arc<Cse> = Cse::open(CseConfig::default(), Arc::new(MemoryStore::new()))
        .await
        .expect("cse");
    let r4 = |mut req: bastion_proto::Request| {
        req.rvi = Some("4".to_owned());
        req
    };
    let ae = json!({"m2m:ae": {"api": "Ndc", "rr": true, "srv": ["4"]}});
    let created = send(
        &cse,
        r4(request(
            Operation::Create,
            "cse-in",
            "Cdc",
            Some(2),
            Some(ae),
        )),
    )
    .await;
    assert_eq!(created.rsc.code(), 2001, "{:?}", created.pc);
    let cnt = json!({"m2m:cnt": {"rn": "cnt"}});
    let created = send(
        &cse,
        r4(request(
            Operation::Create,
            "cse-in/Cdc",
            "Cdc",
            Some(3),
            Some(cnt),
        )),
    )
    .await;
    assert_eq!(created.rsc.code(), 2001, "{:?}", created.pc);
    let cin = json!({"m2m:cin": {"rn": "i1", "con": "v", "dcnt": 5}});
    let created = send(
        &cse,
        r4(request(
            Operation::Create,
            "cse-in/Cdc/cnt",
            "Cdc",
            Some(4),
            Some(cin),
        )),
    )
    .await;
    assert_eq!(created.rsc.code(), 2001, "{:?}", created.pc);

    let racers: Vec<_> = (0..12)
        .map(|_| {
            let cse = cse.clone();
            tokio::spawn(async move {
                let to = "cse-in/Cdc/cnt/i1";
                let got = send(
                    &cse,
                    r4(request(Operation::Retrieve, to, "Cdc", None, None)),
                )
                .await;
                (got.rsc.code(), got.pc)
            })
        })
        .collect();
    let mut counts = Vec::new();
    let mut refused = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            (2000, Some(pc)) => counts.push(pc["m2m:cin"]["dcnt"].as_u64().expect("dcnt")),
            (4004, _) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    assert_eq!(refused, 7);
    let container = send(
        &cse,
        r4(request(
            Operation::Retrieve,
            "cse-in/Cdc/cnt",
            "Cdc",
            None,
            None,
        )),
    )
    .await;
    let pc = container.pc.expect("container");
    assert_eq!(pc["m2m:cnt"]["cni"], 0);
    assert_eq!(pc["m2m:cnt"]["cbs"], 0);
}
