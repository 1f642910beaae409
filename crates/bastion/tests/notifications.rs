//! Subscriptions and notifications end to end (TS-0001 9.6.8, 10.2.11; TS-0004 7.3.3.2,
//! 7.4.8, 7.5.1.2; core-resources.md §3.7, §3.10): the real binary, with notification
//! targets that are real HTTP servers inside the test, and polling channels.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// `Cowner` with a container `cnt`; returns the container's path.
async fn owner_container(s: &Server) -> String {
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    format!("{ae}/cnt")
}

async fn subscribe(s: &Server, parent: &str, orig: &str, sub: Value) -> Resp {
    s.create(parent, orig, 23, json!({ "m2m:sub": sub })).await
}

#[tokio::test]
async fn ts0004_7_3_3_2_verification_then_child_created_notification() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let r = subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"rn": "sub", "nu": [rx.url], "enc": {"net": [3]}}),
    )
    .await;
    r.expect(2001);
    let sub = r.inner("m2m:sub").clone();
    let sur = format!("{CSE_ID}/{}", sub["ri"].as_str().expect("ri"));
    // The verification request came first, from this CSE, naming the subscriber.
    let first = &rx.all()[0];
    assert_eq!(
        (first.method.as_str(), first.origin.as_str()),
        ("POST", CSE_ID)
    );
    assert_eq!(
        first.body,
        json!({"m2m:sgn": {"vrq": true, "sur": sur, "cr": "Cowner"}})
    );
    assert!(!first.ri.is_empty());
    let cin = s.create_cin(&cnt, "Cowner", "21.5").await;
    let events = rx.wait_events(1).await;
    assert_eq!(
        events[0],
        json!({"m2m:sgn": {"nev": {"rep": {"m2m:cin": cin}, "net": 3}, "sur": sur}})
    );
    // Reading the subscription back shows what was stored.
    let got = s.get(&format!("{cnt}/sub"), "Cowner").await;
    got.expect(2000);
    assert_eq!(got.inner("m2m:sub")["nu"], json!([rx.url]));
    assert_eq!(got.inner("m2m:sub")["enc"], json!({"net": [3]}));
}

#[tokio::test]
async fn ts0004_7_3_3_2_unconfirmed_target_fails_with_5204_and_creates_nothing() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    rx.rsc.store(4103, Ordering::SeqCst);
    let r = subscribe(&s, &cnt, "Cowner", json!({"rn": "sub", "nu": [rx.url]})).await;
    r.expect(5204);
    assert_eq!(r.status, 500);
    s.get(&format!("{cnt}/sub"), "Cowner").await.expect(4004);
    // A target nobody listens on cannot confirm either.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/n", l.local_addr().expect("addr"))
    };
    let r = subscribe(&s, &cnt, "Cowner", json!({"rn": "sub", "nu": [dead]})).await;
    r.expect(5204);
    s.get(&format!("{cnt}/sub"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0001_10_2_11_subscribing_needs_retrieve_privilege_and_a_subscribable_target() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    s.ae("Cother").await;
    let r = subscribe(&s, &cnt, "Cother", json!({"nu": [rx.url]})).await;
    r.expect(4103);
    assert!(
        rx.all().is_empty(),
        "no verification for a refused subscriber"
    );
    let cin = s.create_cin(&cnt, "Cowner", "x").await;
    let cin_path = format!("{cnt}/{}", cin["rn"].as_str().expect("rn"));
    subscribe(&s, &cin_path, "Cowner", json!({"nu": [rx.url]}))
        .await
        .expect(5203);
    // Bad criteria are refused before any target is asked.
    let r = subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [rx.url], "enc": {"net": [1, 3]}, "nct": 2}),
    )
    .await;
    r.expect(4000);
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [rx.url], "enc": {"net": [6]}}),
    )
    .await
    .expect(5001);
    assert!(rx.all().is_empty());
}

#[tokio::test]
async fn ts0001_9_6_8_update_with_atr_and_modified_attributes() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let r = subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [rx.url], "enc": {"net": [1], "atr": ["lbl"]}, "nct": 2}),
    )
    .await;
    r.expect(2001);
    // mni is not watched: nothing.
    s.update(&cnt, "Cowner", json!({"m2m:cnt": {"mni": 5}}))
        .await
        .expect(2004);
    let updated = s
        .update(&cnt, "Cowner", json!({"m2m:cnt": {"lbl": ["hot"]}}))
        .await;
    updated.expect(2004);
    let events = rx.wait_events(1).await;
    let rep = &events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cnt"];
    assert_eq!(rep["lbl"], json!(["hot"]));
    assert_eq!(rep["lt"], updated.inner("m2m:cnt")["lt"]);
    assert!(rep.get("mni").is_none() && rep.get("ri").is_none(), "{rep}");
    assert_eq!(rx.events().len(), 1);
}

#[tokio::test]
async fn ts0001_9_6_8_exc_ends_the_subscription_with_a_deletion_notice() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let su = Receiver::start().await;
    let r = subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"rn": "sub", "nu": [rx.url], "enc": {"net": [3]}, "exc": 2, "su": su.url, "nct": 3}),
    )
    .await;
    r.expect(2001);
    let sur = format!(
        "{CSE_ID}/{}",
        r.inner("m2m:sub")["ri"].as_str().expect("ri")
    );
    let first = s.create_cin(&cnt, "Cowner", "1").await;
    let second = s.create_cin(&cnt, "Cowner", "2").await;
    let events = rx.wait_events(2).await;
    assert_eq!(
        events[0]["m2m:sgn"]["nev"]["rep"],
        json!({"m2m:uri": first["ri"]})
    );
    assert_eq!(
        events[1]["m2m:sgn"]["nev"]["rep"],
        json!({"m2m:uri": second["ri"]})
    );
    let notices = su.wait_for(1, |r| r.body["m2m:sgn"]["sud"] == true).await;
    assert_eq!(
        notices[0].body,
        json!({"m2m:sgn": {"sud": true, "sur": sur}})
    );
    s.get(&format!("{cnt}/sub"), "Cowner").await.expect(4004);
    s.create_cin(&cnt, "Cowner", "3").await;
    // A later event to a live subscription proves the ended one stayed silent.
    let rx2 = Receiver::start().await;
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [rx2.url], "enc": {"net": [3]}}),
    )
    .await
    .expect(2001);
    s.create_cin(&cnt, "Cowner", "4").await;
    rx2.wait_events(1).await;
    assert_eq!(rx.events().len(), 2);
}

#[tokio::test]
async fn ts0001_10_2_11_deleting_the_resource_notifies_and_ends_its_subscriptions() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let r = subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [rx.url], "enc": {"net": [2]}, "su": rx.url}),
    )
    .await;
    r.expect(2001);
    s.delete(&cnt, "Cowner").await.expect(2002);
    let got = rx.wait_for(2, |r| r.body["m2m:sgn"]["vrq"].is_null()).await;
    let bodies: Vec<&Value> = got.iter().map(|r| &r.body["m2m:sgn"]).collect();
    assert_eq!(bodies[0]["nev"]["net"], 2);
    assert_eq!(bodies[0]["nev"]["rep"]["m2m:cnt"]["rn"], "cnt");
    assert_eq!(bodies[1]["sud"], true);
}

#[tokio::test]
async fn ts0003_7_1_revoking_retrieve_stops_notifications() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.ae("Creader").await;
    let acp = s
        .create_acp(
            &ae,
            "Cowner",
            "acp",
            rules(&["Cowner", "Creader"], 63),
            rules(&["Cowner"], 63),
        )
        .await;
    let acp_ri = acp["ri"].as_str().expect("ri").to_owned();
    s.create_cnt(&ae, "Cowner", json!({"rn": "cnt", "acpi": [acp_ri]}))
        .await;
    let cnt = format!("{ae}/cnt");
    let reader = Receiver::start().await;
    let control = Receiver::start().await;
    let instances = json!({"net": [3], "chty": [4]});
    subscribe(
        &s,
        &cnt,
        "Creader",
        json!({"nu": [reader.url], "enc": instances}),
    )
    .await
    .expect(2001);
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [control.url], "enc": instances}),
    )
    .await
    .expect(2001);
    s.create_cin(&cnt, "Cowner", "before").await;
    reader.wait_events(1).await;
    // The reader loses RETRIEVE; its subscription stays but is silent.
    let acp_path = format!("{ae}/acp");
    s.update(
        &acp_path,
        "Cowner",
        json!({"m2m:acp": {"pv": rules(&["Cowner"], 63)}}),
    )
    .await
    .expect(2004);
    s.create_cin(&cnt, "Cowner", "after").await;
    control.wait_events(2).await;
    assert_eq!(reader.events().len(), 1);
}

#[tokio::test]
async fn ts0001_9_6_8_batch_notify_aggregates() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [rx.url], "enc": {"net": [3]}, "bn": {"num": 3, "dur": "PT60S"}}),
    )
    .await
    .expect(2001);
    for v in ["a", "b", "c"] {
        s.create_cin(&cnt, "Cowner", v).await;
    }
    let got = rx.wait_for(1, |r| !r.body["m2m:agn"].is_null()).await;
    let batch = got[0].body["m2m:agn"]["m2m:sgn"].as_array().expect("list");
    let cons: Vec<&Value> = batch
        .iter()
        .map(|sgn| &sgn["nev"]["rep"]["m2m:cin"]["con"])
        .collect();
    assert_eq!(cons, [&json!("a"), &json!("b"), &json!("c")]);
}

#[tokio::test]
async fn stuck_target_does_not_hold_up_requests_or_other_targets() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let healthy = Receiver::start().await;
    let stuck = Receiver::start_holding(true).await;
    // The stuck target confirms the subscription, then stops answering.
    stuck.hold.add_permits(1);
    // `chty`: instances only, not the other subscription.
    let instances = json!({"net": [3], "chty": [4]});
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [stuck.url], "enc": instances}),
    )
    .await
    .expect(2001);
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [healthy.url], "enc": instances}),
    )
    .await
    .expect(2001);
    for i in 0..40 {
        s.create_cin(&cnt, "Cowner", &i.to_string()).await;
    }
    let events = healthy.wait_events(40).await;
    let cons: Vec<String> = events
        .iter()
        .map(|e| {
            e["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!(cons, expected, "in order, none lost");
    // The stuck target holds its first notification and gets nothing else meanwhile.
    assert_eq!(stuck.events().len(), 1);
}

#[tokio::test]
async fn ts0001_10_2_5_polling_channel_long_poll() {
    let s = Server::start();
    let ae = s.polling_ae("Cpoll", "poller").await;
    s.create_cnt(&ae, "Cpoll", json!({"rn": "cnt"})).await;
    let cnt = format!("{ae}/cnt");
    // Only the AE itself may create its channel, and only one.
    s.ae("Cother").await;
    s.create(&ae, "Cother", 15, json!({"m2m:pch": {"rn": "pch"}}))
        .await
        .expect(4103);
    s.create(&ae, "Cpoll", 15, json!({"m2m:pch": {"rn": "pch"}}))
        .await
        .expect(2001);
    s.create(&ae, "Cpoll", 15, json!({"m2m:pch": {"rn": "pch2"}}))
        .await
        .expect(4105);
    let pcu = format!("{ae}/pch/pcu");
    // Nothing waiting: the poll ends at its rqet with 4008.
    let empty = s
        .request("GET", &pcu)
        .from("Cpoll")
        .header("X-M2M-RET", "1000")
        .send()
        .await;
    empty.expect(4008);
    // The AE subscribes with its own AE-ID as target (no verification: it is the
    // subscriber), then a new instance is queued for it.
    subscribe(
        &s,
        &cnt,
        "Cpoll",
        json!({"nu": ["Cpoll"], "enc": {"net": [3]}}),
    )
    .await
    .expect(2001);
    let cin = s.create_cin(&cnt, "Cpoll", "queued").await;
    s.get(&pcu, "Cother").await.expect(4103);
    let polled = s.get(&pcu, "Cpoll").await;
    polled.expect(2000);
    let rqp = &polled.body["m2m:rqp"];
    assert_eq!(rqp["op"], 5);
    assert_eq!(rqp["fr"], CSE_ID);
    assert_eq!(rqp["to"], "Cpoll");
    assert_eq!(rqp["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"], cin);
    // pcu takes only RETRIEVE and NOTIFY.
    s.update(&pcu, "Cpoll", json!({"m2m:pch": {}}))
        .await
        .expect(4005);
    s.delete(&pcu, "Cpoll").await.expect(4005);
}

#[tokio::test]
async fn ts0001_10_2_5_polling_channel_request_aggregation() {
    let s = Server::start().speaking("4");
    let ae = s.polling_ae("Cpoll", "poller").await;
    s.create_cnt(&ae, "Cpoll", json!({"rn": "cnt"})).await;
    let cnt = format!("{ae}/cnt");
    s.create(
        &ae,
        "Cpoll",
        15,
        json!({"m2m:pch": {"rn": "pch", "rqag": "yes"}}),
    )
    .await
    .expect(4000);
    let created = s
        .create(
            &ae,
            "Cpoll",
            15,
            json!({"m2m:pch": {"rn": "pch", "rqag": true}}),
        )
        .await;
    created.expect(2001);
    assert_eq!(created.inner("m2m:pch")["rqag"], true);
    let pcu = format!("{ae}/pch/pcu");
    subscribe(
        &s,
        &cnt,
        "Cpoll",
        json!({"nu": ["Cpoll"], "enc": {"net": [3]}}),
    )
    .await
    .expect(2001);
    for con in ["one", "two", "three"] {
        s.create_cin(&cnt, "Cpoll", con).await;
    }
    // Every waiting request in one answer, oldest first.
    let polled = s.get(&pcu, "Cpoll").await;
    polled.expect(2000);
    let list = polled.body["m2m:agrq"]["m2m:rqp"]
        .as_array()
        .unwrap_or_else(|| panic!("no aggregated request: {}", polled.text))
        .clone();
    let cons: Vec<&str> = list
        .iter()
        .map(|rqp| {
            rqp["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(cons, ["one", "two", "three"]);
    assert!(list
        .iter()
        .all(|rqp| rqp["op"] == 5 && rqp["to"] == "Cpoll"));
    // Nothing left: the next poll ends at its rqet.
    s.request("GET", &pcu)
        .from("Cpoll")
        .header("X-M2M-RET", "1000")
        .send()
        .await
        .expect(4008);
    // Without aggregation, one request per poll again.
    s.update(
        &format!("{ae}/pch"),
        "Cpoll",
        json!({"m2m:pch": {"rqag": false}}),
    )
    .await
    .expect(2004);
    s.create_cin(&cnt, "Cpoll", "four").await;
    s.create_cin(&cnt, "Cpoll", "five").await;
    let polled = s.get(&pcu, "Cpoll").await;
    polled.expect(2000);
    assert!(polled.body.get("m2m:agrq").is_none(), "{}", polled.text);
    assert_eq!(
        polled.body["m2m:rqp"]["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "four"
    );
}

/// Polls the subscription at `path` until its `nsi` record for `tg` shows `rqs` and
/// `rsr` at least `sent` (the delivery engine reports after the target answered).
async fn statistics_of(s: &Server, path: &str, tg: &str, sent: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let got = s.get(path, "Cowner").await;
        got.expect(2000);
        let nsi = got.inner("m2m:sub")["nsi"].clone();
        let record = nsi
            .as_array()
            .and_then(|l| l.iter().find(|r| r["tg"] == tg))
            .cloned()
            .unwrap_or(Value::Null);
        if record["rqs"].as_u64().unwrap_or(0) >= sent
            && record["rsr"].as_u64().unwrap_or(0) >= sent
        {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "statistics not counted: {nsi}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ts0004_7_4_8_nse_counts_requests_responses_and_events_per_target() {
    let s = Server::start().speaking("4");
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let sub = format!("{cnt}/stats");
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"rn": "stats", "nu": [rx.url], "enc": {"net": [3]}, "nse": true}),
    )
    .await
    .expect(2001);
    s.create_cin(&cnt, "Cowner", "1").await;
    rx.wait_events(1).await;
    let record = statistics_of(&s, &sub, &rx.url, 1).await;
    // The verification request is not a notification: it is not counted.
    assert_eq!(record, json!({"tg": rx.url, "rqs": 1, "rsr": 1, "noec": 1}));
    // A target that refuses still answered: a response received.
    rx.rsc.store(4103, Ordering::SeqCst);
    s.create_cin(&cnt, "Cowner", "2").await;
    rx.wait_events(2).await;
    let record = statistics_of(&s, &sub, &rx.url, 2).await;
    assert_eq!(record["noec"], 2);
    // Enabling again starts from zero.
    let r = s
        .update(&sub, "Cowner", json!({"m2m:sub": {"nse": true}}))
        .await;
    r.expect(2004);
    assert_eq!(
        r.inner("m2m:sub")["nsi"],
        json!([{"tg": rx.url, "rqs": 0, "rsr": 0, "noec": 0}])
    );
    // And counts on.
    s.create_cin(&cnt, "Cowner", "3").await;
    rx.wait_events(3).await;
    let record = statistics_of(&s, &sub, &rx.url, 1).await;
    assert_eq!(record["noec"], 1);
}

#[tokio::test]
async fn ts0004_7_4_8_eeno_names_the_events_originator() {
    let s = Server::start().speaking("4");
    let cnt = owner_container(&s).await;
    let with = Receiver::start().await;
    let without = Receiver::start().await;
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [with.url], "enc": {"net": [3]}, "eeno": true}),
    )
    .await
    .expect(2001);
    subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"nu": [without.url], "enc": {"net": [3]}, "eeno": false}),
    )
    .await
    .expect(2001);
    s.create_cin(&cnt, "Cowner", "x").await;
    let events = with.wait_events(1).await;
    assert_eq!(events[0]["m2m:sgn"]["cr"], "Cowner");
    assert_eq!(events[0]["m2m:sgn"]["nev"]["net"], 3);
    let events = without.wait_events(1).await;
    assert!(events[0]["m2m:sgn"].get("cr").is_none(), "{}", events[0]);
}

#[tokio::test]
async fn ts0004_7_4_8_ct_after_an_application_query_and_on_update() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let nu = format!("{}?app=1&ct=cbor", rx.url);
    let r = subscribe(
        &s,
        &cnt,
        "Cowner",
        json!({"rn": "sub", "nu": [nu], "enc": {"net": [3]}}),
    )
    .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:sub")["nu"], json!([nu]));
    s.create_cin(&cnt, "Cowner", "on").await;
    rx.wait_events(1).await;
    for got in rx.all() {
        // The application's query member is sent on; ct is not.
        assert_eq!(got.uri, "/notify?app=1");
        assert_eq!(got.content_type, "application/cbor");
    }
    // A target added by UPDATE is verified, and notified, in the serialization it asks.
    let other = Receiver::start().await;
    let added = format!("{}?ct=xml", other.url);
    let r = s
        .update(
            &format!("{cnt}/sub"),
            "Cowner",
            json!({"m2m:sub": {"nu": [nu, added]}}),
        )
        .await;
    r.expect(2004);
    s.create_cin(&cnt, "Cowner", "off").await;
    let events = other.wait_events(1).await;
    assert_eq!(events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "off");
    let all = other.all();
    assert_eq!(all[0].body["m2m:sgn"]["vrq"], json!(true));
    assert!(all.iter().all(|r| r.content_type == "application/xml"));
    assert!(all.iter().all(|r| r.uri == "/notify"));
}

/// `Cblk` registered with its point of access at `rx`, and its container; returns the
/// container's path.
async fn blocking_owner(s: &Server, poa: &str) -> String {
    s.create(
        "/cse-in",
        "Cblk",
        2,
        json!({"m2m:ae": {"rn": "blk", "api": "Nblk", "rr": true, "srv": ["3"], "poa": [poa]}}),
    )
    .await
    .expect(2001);
    let ae = "/cse-in/blk".to_owned();
    s.create_cnt(&ae, "Cblk", json!({"rn": "cnt"})).await;
    format!("{ae}/cnt")
}

#[tokio::test]
async fn ts0004_7_3_2_9_blocking_update_waits_for_the_targets_consent() {
    let s = Server::start();
    let rx = Receiver::start().await;
    let cnt = blocking_owner(&s, &rx.url).await;
    let r = subscribe(
        &s,
        &cnt,
        "Cblk",
        json!({"rn": "blk", "nu": ["Cblk"], "enc": {"net": [7], "atr": ["lbl"]}}),
    )
    .await;
    r.expect(2001);
    let sur = format!(
        "{CSE_ID}/{}",
        r.inner("m2m:sub")["ri"].as_str().expect("ri")
    );
    // Consent: the update is performed, after the target was told what it changes.
    s.update(&cnt, "Cblk", json!({"m2m:cnt": {"lbl": ["a"]}}))
        .await
        .expect(2004);
    let asked = rx.wait_events(1).await;
    assert_eq!(
        asked[0],
        json!({"m2m:sgn": {"nev": {"rep": {"m2m:cnt": {"lbl": ["a"]}}, "net": 7},
            "sur": sur, "cr": "Cblk"}})
    );
    // An attribute atr does not name: not asked.
    s.update(&cnt, "Cblk", json!({"m2m:cnt": {"mni": 3}}))
        .await
        .expect(2004);
    // Refusal (OPERATION_NOT_ALLOWED): 4127, nothing changed.
    rx.rsc.store(4005, Ordering::SeqCst);
    let r = s
        .update(&cnt, "Cblk", json!({"m2m:cnt": {"lbl": ["b"]}}))
        .await;
    r.expect(4127);
    assert_eq!(r.status, 403);
    assert_eq!(rx.events().len(), 2, "asked once more, for lbl only");
    let got = s.get(&cnt, "Cblk").await;
    assert_eq!(got.inner("m2m:cnt")["lbl"], json!(["a"]));
    assert_eq!(got.inner("m2m:cnt")["mni"], json!(3));
}

#[tokio::test]
async fn ts0004_7_3_2_9_blocking_update_target_unreachable_is_5107() {
    let s = Server::start();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/n", l.local_addr().expect("addr"))
    };
    let cnt = blocking_owner(&s, &dead).await;
    subscribe(
        &s,
        &cnt,
        "Cblk",
        json!({"nu": ["Cblk"], "enc": {"net": [7]}}),
    )
    .await
    .expect(2001);
    let r = s
        .update(&cnt, "Cblk", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await;
    r.expect(5107);
    assert_eq!(r.status, 404);
    let got = s.get(&cnt, "Cblk").await;
    assert!(got.inner("m2m:cnt").get("lbl").is_none());
}

#[tokio::test]
async fn ts0001_9_6_9_notification_schedule_over_http() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let open = Receiver::start().await;
    let closed = Receiver::start().await;
    let instances = json!({"net": [3], "chty": [4]});
    for (rn, rx) in [("open", &open), ("closed", &closed)] {
        subscribe(
            &s,
            &cnt,
            "Cowner",
            json!({"rn": rn, "nu": [rx.url], "enc": instances}),
        )
        .await
        .expect(2001);
    }
    // Every second of every year, and only the year 2000: never now.
    let always = json!({"m2m:sch": {"se": {"sce": ["* * * * * * *"]}}});
    let never = json!({"m2m:sch": {"rn": "when", "se": {"sce": ["* * * * * * 2000"]}}});
    s.create(&format!("{cnt}/open"), "Cowner", 18, always.clone())
        .await
        .expect(2001);
    s.create(&format!("{cnt}/closed"), "Cowner", 18, never)
        .await
        .expect(2001);
    s.create_cin(&cnt, "Cowner", "first").await;
    let events = open.wait_events(1).await;
    assert_eq!(
        events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "first"
    );
    // Both were decided when the contentInstance was created: the closed one dropped
    // (no `pn`), the open one sent.
    assert!(closed.events().is_empty(), "{:?}", closed.events());
    // Opening the window lets the next one through; the dropped one stays dropped.
    s.update(&format!("{cnt}/closed/when"), "Cowner", always)
        .await
        .expect(2004);
    s.create_cin(&cnt, "Cowner", "second").await;
    let events = closed.wait_events(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "second"
    );
    assert_eq!(open.wait_events(2).await.len(), 2);
}

#[tokio::test]
async fn ts0001_9_6_8_held_notifications_leave_in_order_over_http() {
    let s = Server::start();
    let cnt = owner_container(&s).await;
    let rx = Receiver::start().await;
    let sub = json!({"rn": "held", "nu": [rx.url], "enc": {"net": [3], "chty": [4]}, "pn": 2});
    subscribe(&s, &cnt, "Cowner", sub).await.expect(2001);
    let never = json!({"m2m:sch": {"rn": "when", "se": {"sce": ["* * * * * * 2000"]}}});
    s.create(&format!("{cnt}/held"), "Cowner", 18, never)
        .await
        .expect(2001);
    s.create_cin(&cnt, "Cowner", "a").await;
    s.create_cin(&cnt, "Cowner", "b").await;
    assert!(rx.events().is_empty(), "{:?}", rx.events());
    // The window opens; the next event sends what was held first, in order.
    let always = json!({"m2m:sch": {"se": {"sce": ["* * * * * * *"]}}});
    s.update(&format!("{cnt}/held/when"), "Cowner", always)
        .await
        .expect(2004);
    s.create_cin(&cnt, "Cowner", "c").await;
    let got: Vec<Value> = rx
        .wait_events(3)
        .await
        .iter()
        .map(|e| e["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"].clone())
        .collect();
    assert_eq!(got, [json!("a"), json!("b"), json!("c")]);
}

/// `<crossResourceSubscription>` (TS-0004 7.4.58, 7.5.1.2.18): a subscription is made
/// under each target for the originator; one event on a single target notifies nothing;
/// an event on every target within the window sends `{"sur": crs}` to `nu`; DELETE
/// removes the target subscriptions and tells `su`.
#[tokio::test]
async fn ts0004_7_4_58_cross_resource_notification_when_every_target_had_an_event() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "a"})).await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "b"})).await;
    let (a, b) = (format!("{ae}/a"), format!("{ae}/b"));
    let rx = Receiver::start().await;
    let deleted = Receiver::start().await;
    let crs = json!({"m2m:crs": {"rn": "crs",
        "rrat": [a.trim_start_matches('/'), b.trim_start_matches('/')],
        "encs": {"enc": [{"net": [3]}]}, "twt": 2, "tws": "PT30S",
        "nu": [rx.url], "su": deleted.url}});
    let r = s.create(&ae, "Cowner", 48, crs).await;
    r.expect(2001);
    let made = r.inner("m2m:crs").clone();
    let sur = format!("{CSE_ID}/{}", made["ri"].as_str().expect("ri"));
    let rrats: Vec<String> = made["rrats"]
        .as_array()
        .expect("rrats")
        .iter()
        .map(|v| v.as_str().expect("ri").to_owned())
        .collect();
    assert_eq!(rrats.len(), 2, "{made}");
    // Each target holds a subscription for the originator, notifying the crs.
    let sub = s.get(&format!("{a}/{}", rrats[0]), "Cowner").await;
    sub.expect(2000);
    let sub = sub.inner("m2m:sub");
    assert_eq!(sub["nu"], json!([made["ri"]]));
    // `acrs` (Release 4) is not shown to this Release 3 client.
    assert!(sub.get("acrs").is_none(), "{sub}");
    assert_eq!(sub["enc"], json!({"net": [3]}));
    assert_eq!(sub["cr"], "Cowner");

    s.create_cin(&a, "Cowner", "1").await;
    s.create_cin(&a, "Cowner", "2").await;
    // Only one target had an event: nothing yet (the target subscriptions' own
    // notifications have been handled by the time the next write is answered).
    s.create_cnt(&ae, "Cowner", json!({"rn": "c"})).await;
    assert!(rx.events().is_empty(), "{:?}", rx.events());
    s.create_cin(&b, "Cowner", "3").await;
    let events = rx.wait_events(1).await;
    assert_eq!(events[0], json!({"m2m:sgn": {"sur": sur}}));
    // Exactly one: the two events on `a` alone never completed a window.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(rx.events().len(), 1, "{:?}", rx.events());

    s.delete(&format!("{ae}/crs"), "Cowner").await.expect(2002);
    s.get(&format!("{a}/{}", rrats[0]), "Cowner")
        .await
        .expect(4004);
    s.get(&format!("{b}/{}", rrats[1]), "Cowner")
        .await
        .expect(4004);
    let gone = deleted.wait_events(1).await;
    assert_eq!(gone[0], json!({"m2m:sgn": {"sud": true, "sur": sur}}));
}

/// `srat` (TS-0004 7.4.58.2.1 c): an existing subscription joins the cross-resource
/// subscription (its `nu` names it) and keeps notifying its own target; its events count
/// in the window beside the `rrat` ones, also after a restart; DELETE takes the
/// cross-resource subscription out of its `nu` again.
#[tokio::test]
async fn ts0004_7_4_58_srat_subscription_counts_in_the_window() {
    let mut s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "a"})).await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "b"})).await;
    let (a, b) = (format!("{ae}/a"), format!("{ae}/b"));
    let own = Receiver::start().await;
    let sub = json!({"m2m:sub": {"rn": "watch", "nu": [own.url], "enc": {"net": [3]}}});
    s.create(&b, "Cowner", 23, sub).await.expect(2001);
    let rx = Receiver::start().await;
    let crs = json!({"m2m:crs": {"rn": "crs", "rrat": [a.trim_start_matches('/')],
        "encs": {"enc": [{"net": [3]}]}, "srat": [format!("{b}/watch").trim_start_matches('/')],
        "twt": 1, "tws": "PT1M", "nu": [rx.url]}});
    let r = s.create(&ae, "Cowner", 48, crs).await;
    r.expect(2001);
    let ri = r.inner("m2m:crs")["ri"].as_str().expect("ri").to_owned();
    let sur = format!("{CSE_ID}/{ri}");
    let watch = s.get(&format!("{b}/watch"), "Cowner").await;
    watch.expect(2000);
    assert_eq!(watch.inner("m2m:sub")["nu"], json!([own.url, ri]));

    s.create_cin(&b, "Cowner", "1").await;
    // The subscription's own target is notified as before.
    let mine = own.wait_events(1).await;
    assert_eq!(mine[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "1");
    assert!(rx.events().is_empty(), "{:?}", rx.events());
    s.create_cin(&a, "Cowner", "2").await;
    let events = rx.wait_events(1).await;
    assert_eq!(events[0], json!({"m2m:sgn": {"sur": sur}}));

    // After a restart the joined subscription still counts.
    s.restart();
    s.create_cin(&a, "Cowner", "3").await;
    s.create_cin(&b, "Cowner", "4").await;
    let events = rx.wait_events(2).await;
    assert_eq!(events[1], json!({"m2m:sgn": {"sur": sur}}));

    s.delete(&format!("{ae}/crs"), "Cowner").await.expect(2002);
    let watch = s.get(&format!("{b}/watch"), "Cowner").await;
    watch.expect(2000);
    assert_eq!(watch.inner("m2m:sub")["nu"], json!([own.url]));
    s.create_cin(&b, "Cowner", "5").await;
    own.wait_events(3).await;
    assert_eq!(rx.events().len(), 2, "{:?}", rx.events());
}

/// Every target passes the originator's own subscription decision: RETRIEVE on a target
/// it may not read fails the whole CREATE with 5221, and nothing is left behind.
#[tokio::test]
async fn ts0004_7_4_58_a_target_the_originator_may_not_subscribe_to_fails_with_5221() {
    let s = Server::start();
    let owner = s.ae("Cowner").await;
    s.create_cnt(&owner, "Cowner", json!({"rn": "a"})).await;
    let other = s.ae("Cother").await;
    s.create_cnt(&other, "Cother", json!({"rn": "mine"})).await;
    let rrat = [
        format!("{other}/mine").trim_start_matches('/').to_owned(),
        format!("{owner}/a").trim_start_matches('/').to_owned(),
    ];
    let crs = json!({"m2m:crs": {"rn": "crs", "rrat": rrat,
        "encs": {"enc": [{"net": [3]}]}, "twt": 1, "tws": "PT10S", "nu": ["Cother"]}});
    let r = s.create(&other, "Cother", 48, crs).await;
    r.expect(5221);
    assert!(
        r.text.contains("rrat target 1") && r.text.contains("4103"),
        "{}",
        r.text
    );
    s.get(&format!("{other}/crs"), "Cother").await.expect(4004);
    // No subscription was left under the target the originator could subscribe to.
    let mine = s.get(&format!("{other}/mine?rcn=4"), "Cother").await;
    mine.expect(2000);
    assert!(
        mine.inner("m2m:cnt").get("m2m:sub").is_none(),
        "{}",
        mine.text
    );
}

/// A `<crossResourceSubscription>` and its target subscriptions survive a restart (the
/// window starts empty), and `exc` 1 ends it after one cross-resource notification,
/// with its target subscriptions (TS-0004 7.5.1.2.18).
#[tokio::test]
async fn ts0004_7_4_58_survives_a_restart_and_exc_ends_it() {
    let mut s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "a"})).await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "b"})).await;
    let (a, b) = (format!("{ae}/a"), format!("{ae}/b"));
    let rx = Receiver::start().await;
    let crs = json!({"m2m:crs": {"rn": "crs",
        "rrat": [a.trim_start_matches('/'), b.trim_start_matches('/')],
        "encs": {"enc": [{"net": [3]}, {"net": [3]}]}, "twt": 1, "tws": "PT1M",
        "nu": [rx.url], "su": rx.url, "exc": 1}});
    let r = s.create(&ae, "Cowner", 48, crs).await;
    r.expect(2001);
    let made = r.inner("m2m:crs").clone();
    let sur = format!("{CSE_ID}/{}", made["ri"].as_str().expect("ri"));
    let first = made["rrats"][0].as_str().expect("rrats").to_owned();
    s.restart();
    s.get(&format!("{a}/{first}"), "Cowner").await.expect(2000);
    s.create_cin(&a, "Cowner", "1").await;
    s.create_cin(&b, "Cowner", "2").await;
    let events = rx.wait_events(2).await;
    assert_eq!(events[0], json!({"m2m:sgn": {"sur": sur}}));
    assert_eq!(events[1], json!({"m2m:sgn": {"sud": true, "sur": sur}}));
    s.get(&format!("{ae}/crs"), "Cowner").await.expect(4004);
    s.get(&format!("{a}/{first}"), "Cowner").await.expect(4004);
}

/// TS-0003 credential handling: a `[wifiClient]`'s password is write-only. An update
/// notification of the whole resource (`nct` 1) and one of the modified attributes
/// (`nct` 2) carry the credentials without it, and with the encryption type and user.
#[tokio::test]
async fn ts0003_wifi_client_update_notification_carries_no_password() {
    let s = Server::start();
    s.create(
        "/cse-in",
        ADMIN,
        14,
        json!({"m2m:nod": {"rn": "N1", "ni": "urn:dev:N1"}}),
    )
    .await
    .expect(2001);
    let created = s
        .create(
            "/cse-in/N1",
            ADMIN,
            13,
            json!({"m2m:wific": {"rn": "wifi", "mgd": 1028, "ssid": "home", "scan": false,
                "wcrds": {"enct": 7, "unm": "dev", "pwd": "first-password"}}}),
        )
        .await;
    created.expect(2001);
    assert_eq!(
        created.inner("m2m:wific")["wcrds"],
        json!({"enct": 7, "unm": "dev"})
    );
    let rx = Receiver::start().await;
    for (rn, nct) in [("whole", 1), ("modified", 2)] {
        subscribe(
            &s,
            "/cse-in/N1/wifi",
            ADMIN,
            json!({"rn": rn, "nu": [rx.url], "enc": {"net": [1]}, "nct": nct}),
        )
        .await
        .expect(2001);
    }
    let updated = s
        .update(
            "/cse-in/N1/wifi",
            ADMIN,
            json!({"m2m:wific": {"wcrds": {"enct": 8, "unm": "dev", "pwd": "second-password"}}}),
        )
        .await;
    updated.expect(2004);
    assert_eq!(
        updated.inner("m2m:wific")["wcrds"],
        json!({"enct": 8, "unm": "dev"})
    );
    let events = rx.wait_events(2).await;
    assert_eq!(events.len(), 2);
    for event in &events {
        let rep = &event["m2m:sgn"]["nev"]["rep"]["m2m:wific"];
        assert_eq!(rep["wcrds"], json!({"enct": 8, "unm": "dev"}), "{event}");
        let text = event.to_string();
        assert!(
            !text.contains("password") && !text.contains("pwd"),
            "{text}"
        );
    }
    // The whole-resource one names the resource; the modified one only what changed.
    let whole = events
        .iter()
        .find(|e| {
            e["m2m:sgn"]["nev"]["rep"]["m2m:wific"]
                .get("ssid")
                .is_some()
        })
        .expect("the nct 1 notification");
    assert_eq!(whole["m2m:sgn"]["nev"]["rep"]["m2m:wific"]["ssid"], "home");
    // Nor does a retrieve of the updated resource.
    let got = s.get("/cse-in/N1/wifi", ADMIN).await;
    got.expect(2000);
    assert!(!got.body.to_string().contains("password"), "{}", got.body);
}

/// The blocking-update question (`net` 7) shows the content asked for, and so must leave
/// out the write-only values it sets: a subscriber allowed to read a wifiClient never
/// learns its new passphrase by being asked about it.
#[tokio::test]
async fn ts0003_blocking_update_question_carries_no_password() {
    let s = Server::start();
    let rx = Receiver::start().await;
    blocking_owner(&s, &rx.url).await;
    let acp = s
        .create(
            "/cse-in",
            ADMIN,
            1,
            json!({"m2m:acp": {"rn": "blkacp",
                "pv": {"acr": [{"acor": ["Cblk"], "acop": 63}, {"acor": [ADMIN], "acop": 63}]},
                "pvs": {"acr": [{"acor": [ADMIN], "acop": 63}]}}}),
        )
        .await;
    acp.expect(2001);
    let acpi = acp.inner("m2m:acp")["ri"].clone();
    s.create(
        "/cse-in",
        ADMIN,
        14,
        json!({"m2m:nod": {"rn": "N1", "ni": "urn:dev:N1", "acpi": [acpi]}}),
    )
    .await
    .expect(2001);
    s.create(
        "/cse-in/N1",
        ADMIN,
        13,
        json!({"m2m:wific": {"rn": "wifi", "mgd": 1028, "ssid": "home", "scan": false,
            "acpi": [acpi], "wcrds": {"enct": 3, "wpap": "first-passphrase"}}}),
    )
    .await
    .expect(2001);
    subscribe(
        &s,
        "/cse-in/N1/wifi",
        "Cblk",
        json!({"rn": "blk", "nu": ["Cblk"], "enc": {"net": [7], "atr": ["wcrds"]}}),
    )
    .await
    .expect(2001);
    s.update(
        "/cse-in/N1/wifi",
        ADMIN,
        json!({"m2m:wific": {"wcrds": {"enct": 4, "wpap": "second-passphrase"}}}),
    )
    .await
    .expect(2004);
    let asked = rx.wait_events(1).await;
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0]["m2m:sgn"]["nev"]["rep"],
        json!({"m2m:wific": {"wcrds": {"enct": 4}}})
    );
    assert_eq!(asked[0]["m2m:sgn"]["nev"]["net"], 7);
    assert!(!asked[0].to_string().contains("passphrase"), "{}", asked[0]);
}
