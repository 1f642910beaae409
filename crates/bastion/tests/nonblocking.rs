//! Non-blocking synchronous requests (TS-0001 8.2.2; TS-0004 7.3.2; core-primitives.md
//! §4.2; core-resources.md §3.11): 1001 with a `<request>` address, the outcome in `rs`
//! and `ors`, and the `<request>` visible to its originator and the administrator only.

mod common;

use common::*;
use serde_json::{json, Value};

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
async fn asynchronous_requests_are_not_implemented() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    let r = s
        .request("GET", &format!("{ae}?rt=2"))
        .from(OWNER)
        .send()
        .await;
    r.expect(5001);
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
