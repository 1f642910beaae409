//! A notification target leaving a subscription over HTTP (TS-0004 7.4.33.2.4, TS-0001
//! 9.6.34): a DELETE of `<subscription>/ntsr` decided by the default
//! `<notificationTargetPolicy>`, with the subscriber asked (`acn` 3) through its point of
//! access, a real HTTP server inside the test.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// `aei` registered with its point of access at `poa`, named `rn`; returns its path.
async fn ae_at(s: &Server, aei: &str, rn: &str, poa: &str) -> String {
    s.create(
        &format!("/{CSE_NAME}"),
        aei,
        2,
        json!({"m2m:ae": {"rn": rn, "api": "Ntest", "rr": true, "srv": ["3"], "poa": [poa]}}),
    )
    .await
    .expect(2001);
    format!("/{CSE_NAME}/{rn}")
}

/// An `<accessControlPolicy>` under `parent` (created by `owner`, who keeps every right)
/// granting `other` the operations `acop`; returns its resource ID.
async fn grant(s: &Server, parent: &str, owner: &str, other: &str, acop: u8) -> String {
    let r = s
        .create(
            parent,
            owner,
            1,
            json!({"m2m:acp": {"pv": {"acr": [{"acor": [owner], "acop": 63},
                                              {"acor": [other], "acop": acop}]},
                               "pvs": {"acr": [{"acor": [owner], "acop": 63}]}}}),
        )
        .await;
    r.expect(2001);
    r.inner("m2m:acp")["ri"].as_str().expect("ri").to_owned()
}

fn nu_of(r: &Resp) -> Value {
    r.inner("m2m:sub")["nu"].clone()
}

#[tokio::test]
async fn ts0004_7_4_33_2_4_target_leaves_once_the_subscriber_allows_it() {
    let s = Server::start();
    let subscriber = Receiver::start().await;
    let target = Receiver::start().await;
    let owner = ae_at(&s, "Cowner", "owner", &subscriber.url).await;
    let leaver = ae_at(&s, "Cleaver", "leaver", &target.url).await;
    // The subscriber may notify the target (its verification), the target may DELETE
    // the subscription's ntsr.
    let notify = grant(&s, &leaver, "Cleaver", "Cowner", 16).await;
    s.update(&leaver, "Cleaver", json!({"m2m:ae": {"acpi": [notify]}}))
        .await
        .expect(2004);
    let delete = grant(&s, &owner, "Cowner", "Cleaver", 8).await;
    s.create_cnt(&owner, "Cowner", json!({"rn": "cnt"})).await;
    let cnt = format!("{owner}/cnt");
    let r = s
        .create(
            &cnt,
            "Cowner",
            23,
            json!({"m2m:sub": {"rn": "sub", "nu": ["Cowner", "Cleaver"], "acpi": [delete]}}),
        )
        .await;
    r.expect(2001);
    let sur = format!(
        "{CSE_ID}/{}",
        r.inner("m2m:sub")["ri"].as_str().expect("ri")
    );
    s.create(
        &format!("/{CSE_NAME}"),
        ADMIN,
        26,
        json!({"m2m:ntp": {"rn": "policy", "acn": 3, "plbl": "Default"}}),
    )
    .await
    .expect(2001);
    let ntsr = format!("{cnt}/sub/ntsr");
    let question = json!({"m2m:sgn": {"sur": sur, "ntt": "Cleaver", "trr": true, "cr": "Cowner"}});

    // The subscriber answers without an allowance: the target stays.
    s.delete(&ntsr, "Cleaver").await.expect(4103);
    let asked = subscriber.wait_events(1).await;
    assert_eq!(asked[0], question);
    assert_eq!(
        nu_of(&s.get(&format!("{cnt}/sub"), "Cowner").await),
        json!(["Cowner", "Cleaver"])
    );

    // With `tra` true the target leaves; the subscriber stays a target.
    *subscriber.reply.lock().expect("lock") = Some(json!({"m2m:sgn": {"tra": true}}));
    s.delete(&ntsr, "Cleaver").await.expect(2002);
    let asked = subscriber.wait_events(2).await;
    assert_eq!(asked[1], question);
    let got = s.get(&format!("{cnt}/sub"), "Cowner").await;
    got.expect(2000);
    assert_eq!(nu_of(&got), json!(["Cowner"]));

    // No longer a target: nothing to leave, and the subscriber is not asked again.
    s.delete(&ntsr, "Cleaver").await.expect(4103);
    assert_eq!(subscriber.events().len(), 2);
    // A notification now reaches the subscriber only.
    let before = target.events().len();
    s.update(&cnt, "Cowner", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(2004);
    subscriber.wait_events(3).await;
    assert_eq!(target.events().len(), before);
}
