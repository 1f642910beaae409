//! Releases beyond what a conformance case can carry (TS-0001 8.1.2, 8.1.3): what a
//! notification target receives, whatever release the event's originator spoke.

use crate::common;

use common::*;
use serde_json::json;

/// A notification speaks Release 3: its `rvi` is 3 and the representation it carries
/// lacks the attributes of later releases, even when the event came from a Release 5
/// client that sees them.
#[tokio::test]
async fn ts0001_8_1_2_a_notification_speaks_release_3() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    let cnt = format!("{ae}/cnt");
    let rx = Receiver::start().await;
    s.create(
        &cnt,
        "Cowner",
        23,
        json!({"m2m:sub": {"rn": "sub", "nu": [rx.url], "enc": {"net": [3]}}}),
    )
    .await
    .expect(2001);
    let created = s
        .request("POST", &cnt)
        .from("Cowner")
        .ty(4)
        .rvi("5")
        .json(&json!({"m2m:cin": {"con": "21.5", "dgt": "20260101T120000"}}))
        .send()
        .await;
    created.expect(2001);
    assert_eq!(created.header("x-m2m-rvi"), Some("5"));
    assert_eq!(created.inner("m2m:cin")["dgt"], "20260101T120000");
    let events = rx.wait_events(1).await;
    let rep = &events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"];
    assert_eq!(rep["con"], "21.5");
    assert_eq!(
        rep.get("dgt"),
        None,
        "a Release 3 notification shows dgt: {rep}"
    );
    let got = rx.all();
    assert!(got.len() >= 2, "verification and event: {got:?}");
    for request in got {
        assert_eq!(request.rvi, "3", "{request:?}");
    }
}
