//! Receiver checks on the request primitive (TS-0004 §7.3.2.1; core-primitives.md §5):
//! mandatory parameters, release versions, resource types, expiration and unsupported
//! response types, each answered with its exact status code.

use crate::common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn ts0004_7_3_2_1_missing_request_identifier_is_bad_request() {
    let s = Server::start();
    let r = s.request("GET", "/cse-in").from(ADMIN).no_ri().send().await;
    r.expect(4000);
    let r = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .header("X-M2M-RI", "")
        .no_ri()
        .send()
        .await;
    r.expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_2_1_missing_release_version_is_not_supported() {
    let s = Server::start();
    let r = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .no_rvi()
        .send()
        .await;
    r.expect(4001);
    assert_eq!(r.status, 501);
    // Nor may a registration without rvi succeed.
    let r = s
        .request("POST", "/cse-in")
        .from("Cnorvi")
        .ty(2)
        .no_rvi()
        .json(&json!({"m2m:ae": {"api": "Nx", "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(4001);
    s.get("/cse-in/Cnorvi", ADMIN).await.expect(4004);
}

#[tokio::test]
async fn ts0004_7_3_2_1_unsupported_release_versions() {
    let s = Server::start();
    for rvi in ["1", "2", "6", "9", "5x", "three"] {
        let r = s
            .request("GET", "/cse-in")
            .from(ADMIN)
            .rvi(rvi)
            .send()
            .await;
        r.expect(4001);
    }
    for rvi in ["2a", "3", "4", "5"] {
        let r = s
            .request("GET", "/cse-in")
            .from(ADMIN)
            .rvi(rvi)
            .send()
            .await;
        r.expect(2000);
    }
}

#[tokio::test]
async fn ts0004_7_3_2_1_missing_originator_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    // CREATE of anything but <AE> needs an originator.
    s.req(
        "POST",
        &ae,
        None,
        Some(3),
        Some(json!({"m2m:cnt": {"rn": "orphan"}})),
    )
    .await
    .expect(4000);
    s.get(&format!("{ae}/orphan"), "Cowner").await.expect(4004);
    // So do RETRIEVE, UPDATE and DELETE.
    s.req("GET", &ae, None, None, None).await.expect(4000);
    s.req(
        "PUT",
        &ae,
        None,
        None,
        Some(json!({"m2m:ae": {"lbl": ["x"]}})),
    )
    .await
    .expect(4000);
    s.req("DELETE", &ae, None, None, None).await.expect(4000);
    s.get(&ae, "Cowner").await.expect(2000);
}

#[tokio::test]
async fn ts0004_7_3_2_1_unknown_resource_type_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for ty in [0, 33, 999, 70000] {
        let r = s
            .create(&ae, "Cowner", ty, json!({"m2m:cnt": {"rn": "x"}}))
            .await;
        r.expect(4000);
    }
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .content_type("application/json;ty=abc")
        .json(&json!({"m2m:cnt": {}}))
        .send()
        .await;
    r.expect(4000);
    s.get(&format!("{ae}/x"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0004_7_3_3_2_unimplemented_resource_type_is_not_implemented() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    // semanticDescriptor (24) and statsConfig (22) are defined by oneM2M, not offered
    // here.
    let r = s
        .create(
            &ae,
            "Cowner",
            24,
            json!({"m2m:smd": {"rn": "sd", "dcrp": 1}}),
        )
        .await;
    r.expect(5001);
    let r = s
        .create(&ae, "Cowner", 22, json!({"m2m:stcg": {"rn": "s"}}))
        .await;
    r.expect(5001);
}

#[tokio::test]
async fn ts0004_7_3_2_1_expired_request_expiration_timestamp() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let r = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .header("X-M2M-RET", &ts(-60))
        .send()
        .await;
    r.expect(4008);
    assert_eq!(r.status, 504);
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .ty(3)
        .header("X-M2M-RET", "20200101T000000")
        .json(&json!({"m2m:cnt": {"rn": "late"}}))
        .send()
        .await;
    r.expect(4008);
    s.get(&format!("{ae}/late"), "Cowner").await.expect(4004);
    // A future expiration, absolute or relative (milliseconds), is fine.
    let r = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .header("X-M2M-RET", &ts(3600))
        .send()
        .await;
    r.expect(2000);
    let r = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .header("X-M2M-RET", "60000")
        .send()
        .await;
    r.expect(2000);
}

#[tokio::test]
async fn ts0004_7_3_2_response_types() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    // rt=1 (synch, 1001) and rt=2 (asynch, 1002): tests/nonblocking.rs. noResponse (5)
    // is performed like a blocking request and answered without content.
    let r = s
        .request("POST", &format!("{ae}?rt=5"))
        .from("Cowner")
        .ty(3)
        .json(&json!({"m2m:cnt": {"rn": "nb5"}}))
        .send()
        .await;
    r.expect(2001);
    assert_eq!(r.status, 201);
    assert!(
        r.text.is_empty(),
        "noResponse carries no content: {}",
        r.text
    );
    s.get(&format!("{ae}/nb5"), "Cowner").await.expect(2000);
    // A failure is still answered with its status code, without the debug content.
    let r = s
        .request("POST", &format!("{ae}?rt=5"))
        .from("Cowner")
        .ty(3)
        .json(&json!({"m2m:cnt": {"rn": "nb5"}}))
        .send()
        .await;
    r.expect(4105);
    assert!(
        r.text.is_empty(),
        "noResponse carries no content: {}",
        r.text
    );
    s.request("GET", &format!("{ae}?rt=2"))
        .from("Cowner")
        .send()
        .await
        .expect(1002);
    // Blocking (3) is the default and always fine.
    s.request("GET", &format!("{ae}?rt=3"))
        .from("Cowner")
        .send()
        .await
        .expect(2000);
}

#[tokio::test]
async fn ts0004_7_3_2_1_filter_criteria_in_create_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for query in ["fu=1", "lbl=a", "ty=3", "lim=1", "fu=2&cra=20200101T000000"] {
        let r = s
            .request("POST", &format!("{ae}?{query}"))
            .from("Cowner")
            .ty(3)
            .json(&json!({"m2m:cnt": {"rn": "filtered"}}))
            .send()
            .await;
        r.expect(4000);
    }
    s.get(&format!("{ae}/filtered"), "Cowner")
        .await
        .expect(4004);
}

#[tokio::test]
async fn ts0004_7_3_2_1_delete_with_content_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "keep"})).await;
    let r = s
        .req(
            "DELETE",
            &format!("{ae}/keep"),
            Some("Cowner"),
            None,
            Some(json!({"m2m:cnt": {}})),
        )
        .await;
    r.expect(4000);
    s.get(&format!("{ae}/keep"), "Cowner").await.expect(2000);
    // UPDATE needs content.
    s.req("PUT", &format!("{ae}/keep"), Some("Cowner"), None, None)
        .await
        .expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_2_1_ty_outside_create_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "c"})).await;
    let r = s
        .request("PUT", &format!("{ae}/c"))
        .from("Cowner")
        .ty(3)
        .json(&json!({"m2m:cnt": {"lbl": ["x"]}}))
        .send()
        .await;
    r.expect(4000);
    let r = s
        .request("DELETE", &format!("{ae}/c"))
        .from("Cowner")
        .content_type("application/json;ty=3")
        .send()
        .await;
    r.expect(4000);
    let r = s.get(&format!("{ae}/c"), "Cowner").await;
    r.expect(2000);
    assert!(r.inner("m2m:cnt").get("lbl").is_none());
}

#[tokio::test]
async fn ts0009_6_4_result_expiration_timestamp_is_echoed() {
    let s = Server::start();
    s.ae("Cowner").await;
    let rset = ts(3600);
    // Echoed on success, on an error and on a create.
    let r = s
        .request("GET", "/cse-in/Cowner")
        .from("Cowner")
        .header("X-M2M-RST", &rset)
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.header("x-m2m-rst"), Some(rset.as_str()));
    let r = s
        .request("GET", "/cse-in/Cowner/nothing")
        .from("Cowner")
        .header("X-M2M-RST", &rset)
        .send()
        .await;
    r.expect(4004);
    assert_eq!(r.header("x-m2m-rst"), Some(rset.as_str()));
    let r = s
        .request("POST", "/cse-in/Cowner")
        .from("Cowner")
        .ty(3)
        .json(&json!({"m2m:cnt": {"rn": "c"}}))
        .header("X-M2M-RST", "600000")
        .send()
        .await;
    r.expect(2001);
    assert_eq!(r.header("x-m2m-rst"), Some("600000"));
    // Also when the binding refuses the request before it is decoded (a body that is
    // not JSON), with the request ID and release.
    let r = s
        .request("POST", "/cse-in/Cowner")
        .from("Cowner")
        .ty(3)
        .raw_body("{not json")
        .ri("bad-body-1")
        .rvi("4")
        .header("X-M2M-RST", &rset)
        .send()
        .await;
    r.expect(4000);
    assert_eq!(r.header("x-m2m-rst"), Some(rset.as_str()));
    assert_eq!(r.header("x-m2m-ri"), Some("bad-body-1"));
    assert_eq!(r.header("x-m2m-rvi"), Some("4"));
    // Not invented when the request carried none.
    let r = s.get("/cse-in/Cowner", "Cowner").await;
    r.expect(2000);
    assert_eq!(r.header("x-m2m-rst"), None);
}

#[tokio::test]
async fn ts0001_8_1_2_result_expiration_before_request_expiration_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    let r = s
        .request("GET", "/cse-in/Cowner")
        .from("Cowner")
        .header("X-M2M-RET", &ts(120))
        .header("X-M2M-RST", &ts(60))
        .send()
        .await;
    r.expect(4000);
    assert!(r.dbg().contains("rset"), "{}", r.text);
    // The same instant for both is allowed.
    let at = ts(120);
    s.request("GET", "/cse-in/Cowner")
        .from("Cowner")
        .header("X-M2M-RET", &at)
        .header("X-M2M-RST", &at)
        .send()
        .await
        .expect(2000);
}

#[tokio::test]
async fn ts0004_7_3_2_operation_execution_time_delays_the_operation() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    // Relative, in milliseconds: the container is created no sooner than 2 s later.
    let started = std::time::Instant::now();
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .ty(3)
        .header("X-M2M-OET", "2000")
        .json(&json!({"m2m:cnt": {"rn": "later"}}))
        .send()
        .await;
    r.expect(2001);
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(1),
        "ran after {waited:?}"
    );
    let ct = r.inner("m2m:cnt")["ct"].as_str().expect("ct").to_owned();
    let lt_of_ae = s.get(&ae, "Cowner").await.inner("m2m:ae")["ct"]
        .as_str()
        .expect("ct")
        .to_owned();
    assert!(ct > lt_of_ae, "created at {ct}, AE at {lt_of_ae}");
    // An execution time already passed runs at once.
    s.request("GET", &ae)
        .from("Cowner")
        .header("X-M2M-OET", "20200101T000000")
        .send()
        .await
        .expect(2000);
}

#[tokio::test]
async fn ts0004_7_3_2_operation_execution_time_out_of_reach_is_refused() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    // Further than the CSE holds a request: 4000, nothing created.
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .ty(3)
        .header("X-M2M-OET", &ts(3600))
        .json(&json!({"m2m:cnt": {"rn": "far"}}))
        .send()
        .await;
    r.expect(4000);
    // After the request's own expiration: it would expire first, 4008.
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .ty(3)
        .header("X-M2M-OET", "20000")
        .header("X-M2M-RET", "10000")
        .json(&json!({"m2m:cnt": {"rn": "far"}}))
        .send()
        .await;
    r.expect(4008);
    let r = s
        .request("GET", &ae)
        .from("Cowner")
        .header("X-M2M-OET", "soon")
        .send()
        .await;
    r.expect(4000);
    s.get(&format!("{ae}/far"), "Cowner").await.expect(4004);
}
