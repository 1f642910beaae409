//! Non-blocking requests (TS-0001 8.2.2; TS-0004 7.3.2; core-primitives.md §2, §4.2;
//! core-resources.md §3.11): synchronous (1001 with a `<request>` address, the outcome in
//! `rs` and `ors`, the `<request>` visible to its originator and the administrator only)
//! and asynchronous (1002, then a NOTIFY carrying `m2m:rsp` to the result targets, which
//! must be the originator or its registered points of access), against the real binary
//! and real HTTP receivers.

use crate::common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const OWNER: &str = "Cowner";
const OTHER: &str = "Cother";

/// Sends `method path?rt=1` as `orig`; returns the `<request>` address from the 1001.
async fn non_blocking(
    s: &Server,
    method: &str,
    path: &str,
    orig: &str,
    body: Option<Value>,
) -> String {
    let mut r = s.request(method, &format!("{path}?rt=1")).from(orig);
    if let Some(b) = body {
        r = r.ty(4).json(&b);
    }
    let resp = r.send().await;
    resp.expect(1001);
    resp.inner("m2m:uri")
        .as_str()
        .unwrap_or_else(|| panic!("m2m:uri is not a string: {}", resp.text))
        .to_owned()
}

/// Retrieves the `<request>` at `uri` as `orig` until it is no longer PENDING.
async fn outcome(s: &Server, uri: &str, orig: &str) -> Value {
    for _ in 0..100 {
        let r = s.get(&format!("/{uri}"), orig).await;
        r.expect(2000);
        let req = r.inner("m2m:req").clone();
        if req["rs"] != 1 {
            return req;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("request {uri} still pending");
}

#[tokio::test]
async fn create_runs_later_and_reports_in_the_request_resource() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let body = json!({"m2m:cin": {"con": "later"}});
    let uri = non_blocking(&s, "POST", &format!("{ae}/c"), OWNER, Some(body)).await;
    let req = outcome(&s, &uri, OWNER).await;
    assert_eq!(req["rs"], 2, "{req}");
    assert_eq!(req["ors"]["rsc"], 2001, "{req}");
    assert_eq!(req["ors"]["pc"]["m2m:cin"]["con"], "later");
    assert_eq!(req["org"], OWNER);
    assert_eq!(req["op"], 1);
    let la = s.get(&format!("{ae}/c/la"), OWNER).await;
    assert_eq!(la.inner("m2m:cin")["con"], "later");
}

#[tokio::test]
async fn only_the_originator_and_admin_see_the_request() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.ae(OTHER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let uri = non_blocking(&s, "GET", &format!("{ae}/c"), OWNER, None).await;
    outcome(&s, &uri, OWNER).await;
    s.get(&format!("/{uri}"), OTHER).await.expect(4103);
    s.delete(&format!("/{uri}"), OTHER).await.expect(4103);
    s.get(&format!("/{uri}"), ADMIN).await.expect(2000);
    s.delete(&format!("/{uri}"), OWNER).await.expect(2002);
    s.get(&format!("/{uri}"), OWNER).await.expect(4004);
}

#[tokio::test]
async fn a_denied_request_fails_in_the_request_resource() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.ae(OTHER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let uri = non_blocking(&s, "GET", &format!("{ae}/c"), OTHER, None).await;
    let req = outcome(&s, &uri, OTHER).await;
    assert_eq!(req["rs"], 3, "{req}");
    assert_eq!(req["ors"]["rsc"], 4103, "{req}");
    assert!(req["ors"]["pc"].get("m2m:cnt").is_none());
}

#[tokio::test]
async fn the_outcome_survives_a_restart() {
    let mut s = Server::start();
    let ae = s.ae(OWNER).await;
    s.ae(OTHER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let uri = non_blocking(&s, "GET", &format!("{ae}/c"), OWNER, None).await;
    outcome(&s, &uri, OWNER).await;
    s.restart();
    let r = s.get(&format!("/{uri}"), OWNER).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:req")["rs"], 2);
    assert_eq!(r.inner("m2m:req")["ors"]["rsc"], 2000);
    s.get(&format!("/{uri}"), OTHER).await.expect(4103);
}

/// Registers `OWNER` with `rx` as its point of access and creates its container `c`;
/// returns the AE's path.
async fn owner_with_container(s: &Server, rx: &Receiver) -> String {
    let ae = s.ae_with_poa(OWNER, &[&rx.url]).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    ae
}

/// Sends `method path?rt=2` as `orig` with request ID `rqi`, `X-M2M-RTU` = `nu` joined
/// with `&` when given, and a `<contentInstance>` body when given.
async fn asynch(
    s: &Server,
    method: &str,
    path: &str,
    orig: &str,
    rqi: &str,
    nu: Option<&[&str]>,
    body: Option<Value>,
) -> Resp {
    let mut r = s
        .request(method, &format!("{path}?rt=2"))
        .from(orig)
        .ri(rqi);
    if let Some(nu) = nu {
        r = r.header("X-M2M-RTU", &nu.join("&"));
    }
    if let Some(b) = body {
        r = r.ty(4).json(&b);
    }
    r.send().await
}

/// The `<request>` address of an accepted asynchronous request.
#[track_caller]
fn accepted(r: &Resp) -> String {
    r.expect(1002);
    assert_eq!(r.status, 202);
    let uri = r.inner("m2m:uri").as_str().expect("m2m:uri is a string");
    assert!(uri.starts_with(&format!("{CSE_NAME}/")), "{uri}");
    uri.to_owned()
}

/// Every `<request>` on the CSE, by discovery as the administrator.
async fn request_resources(s: &Server) -> Vec<String> {
    let r = s.get(&format!("/{CSE_NAME}?fu=1&ty=17"), ADMIN).await;
    r.expect(2000);
    r.uril()
}

#[tokio::test]
async fn ts0004_7_3_2_asynch_create_answers_1002_then_notifies_the_result_to_nu() {
    let s = Server::start();
    let rx = Receiver::start().await;
    let ae = owner_with_container(&s, &rx).await;
    let body = json!({"m2m:cin": {"con": "later"}});
    let r = asynch(
        &s,
        "POST",
        &format!("{ae}/c"),
        OWNER,
        "async-create-1",
        Some(&[&rx.url]),
        Some(body),
    )
    .await;
    let uri = accepted(&r);
    let results = rx.wait_results(1).await;
    let rsp = &results[0];
    assert_eq!(rsp["rsc"], 2001, "{rsp}");
    assert_eq!(rsp["rqi"], "async-create-1");
    assert_eq!(rsp["to"], OWNER);
    assert_eq!(rsp["fr"], CSE_ID);
    assert_eq!(rsp["rvi"], "3");
    let cin = &rsp["pc"]["m2m:cin"];
    assert_eq!(cin["con"], "later", "{rsp}");
    assert_eq!(cin["ty"], 4);
    // A NOTIFY from this CSE, and only the result in it.
    let got = rx.all();
    assert_eq!(
        (got[0].method.as_str(), got[0].origin.as_str()),
        ("POST", CSE_ID)
    );
    assert_eq!(got[0].body.as_object().map(|o| o.len()), Some(1));
    // The `<request>` was finished before the notification left.
    let req = s.get(&format!("/{uri}"), OWNER).await;
    req.expect(2000);
    let req = req.inner("m2m:req");
    assert_eq!(req["rs"], 2, "{req}");
    assert_eq!(req["ors"]["rsc"], 2001);
    assert_eq!(req["ors"]["rqi"], "async-create-1");
    assert_eq!(req["rid"], "async-create-1");
    assert_eq!(req["mi"]["rt"], json!({"rtv": 2, "nu": [rx.url]}));
    // The instance is the one reported.
    let la = s.get(&format!("{ae}/c/la"), OWNER).await;
    la.expect(2000);
    assert_eq!(la.inner("m2m:cin")["ri"], cin["ri"]);
    // Exactly one NOTIFY: nothing else follows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.all().len(), 1, "{:?}", rx.all());
}

#[tokio::test]
async fn ts0004_7_3_2_asynch_without_nu_notifies_the_originator_at_its_poa() {
    let s = Server::start();
    let rx = Receiver::start().await;
    let ae = owner_with_container(&s, &rx).await;
    let r = asynch(
        &s,
        "GET",
        &format!("{ae}/c"),
        OWNER,
        "async-get",
        None,
        None,
    )
    .await;
    let uri = accepted(&r);
    let results = rx.wait_results(1).await;
    assert_eq!(results[0]["rsc"], 2000, "{}", results[0]);
    assert_eq!(results[0]["rqi"], "async-get");
    assert_eq!(results[0]["pc"]["m2m:cnt"]["rn"], "c");
    let req = s.get(&format!("/{uri}"), OWNER).await;
    assert_eq!(req.inner("m2m:req")["rs"], 2);
    assert_eq!(req.inner("m2m:req")["mi"]["rt"], json!({"rtv": 2}));
}

#[tokio::test]
async fn ts0004_7_3_2_asynch_with_empty_nu_notifies_nobody() {
    let s = Server::start();
    let rx = Receiver::start().await;
    let ae = owner_with_container(&s, &rx).await;
    let r = asynch(
        &s,
        "GET",
        &format!("{ae}/c"),
        OWNER,
        "silent",
        Some(&[]),
        None,
    )
    .await;
    let uri = accepted(&r);
    let req = outcome(&s, &uri, OWNER).await;
    assert_eq!(req["rs"], 2, "{req}");
    assert_eq!(req["mi"]["rt"], json!({"rtv": 2, "nu": []}));
    // A later request to the same destination is delivered after anything queued for
    // it before, so once its result is in, the silent one would have been too.
    let r = asynch(&s, "GET", &format!("{ae}/c"), OWNER, "control", None, None).await;
    accepted(&r);
    rx.wait_results(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let results = rx.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["rqi"], "control");
}

#[tokio::test]
async fn ts0004_7_3_2_asynch_result_targets_must_be_the_originator_or_its_poa() {
    let s = Server::start();
    let mine = Receiver::start().await;
    let theirs = Receiver::start().await;
    let ae = s.ae_with_poa(OWNER, &[&mine.url]).await;
    s.ae_with_poa(OTHER, &[&theirs.url]).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let body = json!({"m2m:cin": {"con": "never"}});
    let refused: [&[&str]; 4] = [
        // Another AE's point of access, an arbitrary URL, another AE's ID, and one bad
        // entry among good ones.
        &[&theirs.url],
        &["http://192.0.2.1:9/relay"],
        &[OTHER],
        &[OWNER, &mine.url, &theirs.url],
    ];
    for nu in refused {
        let r = asynch(
            &s,
            "POST",
            &format!("{ae}/c"),
            OWNER,
            "relay",
            Some(nu),
            Some(body.clone()),
        )
        .await;
        r.expect(4000);
        assert!(r.dbg().starts_with("a result target"), "{nu:?}: {}", r.text);
    }
    // Nothing was written or run, and nobody was contacted.
    assert!(request_resources(&s).await.is_empty());
    let c = s.get(&format!("{ae}/c"), OWNER).await;
    assert_eq!(c.inner("m2m:cnt")["cni"], 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(theirs.all().is_empty() && mine.all().is_empty());
    // The originator's own ID and its own poa are fine, each notified once.
    let r = asynch(
        &s,
        "POST",
        &format!("{ae}/c"),
        OWNER,
        "own",
        Some(&[OWNER, &mine.url]),
        Some(body),
    )
    .await;
    accepted(&r);
    let results = mine.wait_results(2).await;
    assert!(results
        .iter()
        .all(|r| r["rsc"] == 2001 && r["rqi"] == "own"));
    assert_eq!(request_resources(&s).await.len(), 1);
}

#[tokio::test]
async fn ts0004_7_3_2_a_failed_asynch_request_notifies_its_rsc() {
    let s = Server::start();
    let rx = Receiver::start().await;
    let ae = s.ae(OWNER).await;
    s.ae_with_poa(OTHER, &[&rx.url]).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    // Access denied: the decision runs when the request runs.
    let r = asynch(&s, "GET", &format!("{ae}/c"), OTHER, "denied", None, None).await;
    let denied = accepted(&r);
    let results = rx.wait_results(1).await;
    assert_eq!(results[0]["rsc"], 4103, "{}", results[0]);
    assert_eq!(results[0]["rqi"], "denied");
    assert!(results[0]["pc"].get("m2m:cnt").is_none());
    assert!(results[0]["pc"]["m2m:dbg"].is_string());
    let req = s.get(&format!("/{denied}"), OTHER).await;
    assert_eq!(req.inner("m2m:req")["rs"], 3);
    assert_eq!(req.inner("m2m:req")["ors"]["rsc"], 4103);
    // A target that does not exist.
    let r = asynch(
        &s,
        "GET",
        &format!("{ae}/none"),
        OTHER,
        "missing",
        None,
        None,
    )
    .await;
    let missing = accepted(&r);
    let results = rx.wait_results(2).await;
    assert_eq!(results[1]["rsc"], 4004, "{}", results[1]);
    assert_eq!(results[1]["rqi"], "missing");
    let req = s.get(&format!("/{missing}"), OTHER).await;
    assert_eq!(req.inner("m2m:req")["rs"], 3);
    assert_eq!(req.inner("m2m:req")["ors"]["rsc"], 4004);
}

#[tokio::test]
async fn ts0004_7_3_2_asynch_result_reaches_a_polling_originator() {
    let s = Server::start();
    // An AE that cannot receive, with a polling channel.
    let ae = s.polling_ae("Cpoll", "poller").await;
    s.create(&ae, "Cpoll", 15, json!({"m2m:pch": {"rn": "pch"}}))
        .await
        .expect(2001);
    let r = asynch(&s, "GET", &ae, "Cpoll", "polled", None, None).await;
    let uri = accepted(&r);
    outcome(&s, &uri, "Cpoll").await;
    let polled = s
        .request("GET", &format!("{ae}/pch/pcu"))
        .from("Cpoll")
        .header("X-M2M-RET", "10000")
        .send()
        .await;
    polled.expect(2000);
    let rqp = &polled.body["m2m:rqp"];
    assert_eq!(rqp["op"], 5);
    assert_eq!(rqp["fr"], CSE_ID);
    assert_eq!(rqp["to"], "Cpoll");
    assert_eq!(rqp["pc"]["m2m:rsp"]["rsc"], 2000, "{rqp}");
    assert_eq!(rqp["pc"]["m2m:rsp"]["rqi"], "polled");
    assert_eq!(rqp["pc"]["m2m:rsp"]["pc"]["m2m:ae"]["aei"], "Cpoll");
}

#[tokio::test]
async fn ts0004_7_3_2_notification_targets_need_rtv_2() {
    let s = Server::start();
    let rx = Receiver::start().await;
    let ae = s.ae_with_poa(OWNER, &[&rx.url]).await;
    for query in ["?rt=1", "?rt=3", ""] {
        let r = s
            .request("GET", &format!("{ae}{query}"))
            .from(OWNER)
            .header("X-M2M-RTU", &rx.url)
            .send()
            .await;
        r.expect(4000);
        assert_eq!(
            r.dbg(),
            "notification targets need a non-blocking asynchronous request"
        );
    }
    assert!(request_resources(&s).await.is_empty());
}

#[tokio::test]
async fn ts0004_7_3_2_non_blocking_request_waits_for_its_execution_time_in_its_task() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    let started = std::time::Instant::now();
    let r = s
        .request("POST", &format!("{ae}?rt=1"))
        .from(OWNER)
        .ty(3)
        .header("X-M2M-OET", "2000")
        .json(&json!({"m2m:cnt": {"rn": "later"}}))
        .send()
        .await;
    r.expect(1001);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "accepted at once"
    );
    let uri = r.inner("m2m:uri").as_str().expect("uri").to_owned();
    let pending = s.get(&format!("/{uri}"), OWNER).await;
    pending.expect(2000);
    assert_eq!(pending.inner("m2m:req")["rs"], 1, "{}", pending.text);
    s.get(&format!("{ae}/later"), OWNER).await.expect(4004);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let req = outcome(&s, &uri, OWNER).await;
    assert_eq!(req["ors"]["rsc"], 2001, "{req}");
    s.get(&format!("{ae}/later"), OWNER).await.expect(2000);
}

/// The `et` and `lt` of a finished `<request>`, in seconds since the epoch.
fn et_and_lt(req: &Value) -> (i64, i64) {
    let secs = |name: &str| {
        let text = req[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {req}"));
        bastion_proto::time::Timestamp::parse(text)
            .unwrap_or_else(|| panic!("{name} {text}"))
            .0
    };
    (secs("et"), secs("lt"))
}

#[tokio::test]
async fn ts0001_8_1_2_result_persistence_counts_from_the_completion() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    // Relative rp (ms), and a delayed execution so that completion is well after acceptance.
    let r = s
        .request("GET", &format!("{ae}/c?rt=1&rp=600000"))
        .from(OWNER)
        .header("X-M2M-OET", "2000")
        .send()
        .await;
    r.expect(1001);
    let uri = r.inner("m2m:uri").as_str().expect("uri").to_owned();
    let pending = s.get(&format!("/{uri}"), OWNER).await;
    let pending_et = et_and_lt(pending.inner("m2m:req")).0;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let req = outcome(&s, &uri, OWNER).await;
    let (et, lt) = et_and_lt(&req);
    assert_eq!(et - lt, 600, "kept 600 s after completion: {req}");
    assert!(
        pending_et > et,
        "a pending request is kept longer: {pending_et} vs {et}"
    );
    // Without rp: one hour after completion.
    let uri = non_blocking(&s, "GET", &format!("{ae}/c"), OWNER, None).await;
    let (et, lt) = et_and_lt(&outcome(&s, &uri, OWNER).await);
    assert_eq!(et - lt, 3600);
    // A malformed rp, or one already passed, is refused before anything is stored.
    for rp in ["soon", "20200101T000000"] {
        s.request("GET", &format!("{ae}/c?rt=1&rp={rp}"))
            .from(OWNER)
            .send()
            .await
            .expect(4000);
    }
}

/// The `<request>` resource keeps the request's content for its originator to read back:
/// without the write-only values it set (a wifiClient's new passphrase).
#[tokio::test]
async fn ts0003_the_request_resource_keeps_no_password() {
    let s = Server::start();
    s.create(
        "/cse-in",
        ADMIN,
        14,
        json!({"m2m:nod": {"rn": "N1", "ni": "urn:dev:N1"}}),
    )
    .await
    .expect(2001);
    s.create(
        "/cse-in/N1",
        ADMIN,
        13,
        json!({"m2m:wific": {"rn": "wifi", "mgd": 1028, "ssid": "home", "scan": false,
            "wcrds": {"enct": 3, "wpap": "first-passphrase"}}}),
    )
    .await
    .expect(2001);
    let body = json!({"m2m:wific": {"wcrds": {"enct": 4, "wpap": "second-passphrase"}}});
    let resp = s
        .request("PUT", "/cse-in/N1/wifi?rt=1")
        .from(ADMIN)
        .json(&body)
        .send()
        .await;
    resp.expect(1001);
    let uri = resp.inner("m2m:uri").as_str().expect("m2m:uri").to_owned();
    let req = outcome(&s, &uri, ADMIN).await;
    assert_eq!(req["ors"]["rsc"], 2004, "{req}");
    assert_eq!(
        req["pc"],
        json!({"m2m:wific": {"wcrds": {"enct": 4}}}),
        "{req}"
    );
    assert!(!req.to_string().contains("passphrase"), "{req}");
}
