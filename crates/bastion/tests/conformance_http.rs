//! HTTP binding conformance (TS-0009; core-bindings.md §4): method mapping, request
//! targets, X-M2M-* headers, media types, and the result content (`rcn`) shapes of every
//! operation as they travel over HTTP.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// Registers `Cowner` and creates `/cse-in/Cowner/cnt`; returns the container path.
async fn owner_cnt(s: &Server) -> String {
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    format!("{ae}/cnt")
}

#[tokio::test]
async fn ts0009_6_2_post_with_ty_in_content_type_is_create() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let r = s
        .create(&ae, "Cowner", 3, json!({"m2m:cnt": {"rn": "cnt1"}}))
        .await;
    r.expect(2001);
    let cnt = r.inner("m2m:cnt");
    assert_eq!(cnt["ty"], 3);
    assert_eq!(cnt["rn"], "cnt1");
    assert_eq!(cnt["pi"], "Cowner");
    assert_eq!(r.header("content-type"), Some("application/json"));
    s.get(&format!("{ae}/cnt1"), "Cowner").await.expect(2000);
}

#[tokio::test]
async fn ts0009_6_2_post_without_ty_is_notify() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    s.ae("Cother").await;
    // A resource representation without `ty` is still a NOTIFY, never a CREATE.
    let r = s
        .req(
            "POST",
            &cnt,
            Some("Cowner"),
            None,
            Some(json!({"m2m:cin": {"rn": "x", "con": "v"}})),
        )
        .await;
    r.expect(5001);
    s.get(&format!("{cnt}/x"), "Cowner").await.expect(4004);
    let sgn = json!({"m2m:sgn": {"nev": {"net": 1, "rep": {}}, "sur": "/id-in/sub1"}});
    // NOTIFY privilege is decided first (creator: granted), delivery is not implemented.
    s.req("POST", &cnt, Some("Cowner"), None, Some(sgn.clone()))
        .await
        .expect(5001);
    s.req("POST", &cnt, Some("Cother"), None, Some(sgn))
        .await
        .expect(4103);
}

#[tokio::test]
async fn ts0009_6_2_get_put_delete_are_retrieve_update_delete() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let r = s.get(&cnt, "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["rn"], "cnt");
    let r = s
        .update(&cnt, "Cowner", json!({"m2m:cnt": {"lbl": ["a"]}}))
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["lbl"], json!(["a"]));
    let r = s.delete(&cnt, "Cowner").await;
    r.expect(2002);
    assert_eq!(r.body, Value::Null, "DELETE default rcn is 0: no content");
    s.get(&cnt, "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0009_6_2_other_http_method_is_operation_not_allowed() {
    let s = Server::start();
    let r = s.request("PATCH", "/cse-in").from(ADMIN).send().await;
    r.expect(4005);
}

#[tokio::test]
async fn ts0009_6_4_rsc_and_rvi_are_echoed_on_success() {
    let s = Server::start();
    for rvi in ["2a", "3", "4", "5"] {
        let r = s
            .request("GET", "/cse-in")
            .from(ADMIN)
            .rvi(rvi)
            .send()
            .await;
        r.expect(2000);
        assert_eq!(r.header("x-m2m-rsc"), Some("2000"));
        assert_eq!(r.header("x-m2m-rvi"), Some(rvi));
    }
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Cechoed")
        .rvi("4")
        .json(&json!({"m2m:ae": {"api": "Necho", "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(2001);
    assert_eq!(r.header("x-m2m-rsc"), Some("2001"));
    assert_eq!(r.header("x-m2m-rvi"), Some("4"));
}

#[tokio::test]
async fn ts0009_6_4_ri_is_echoed_on_success() {
    let s = Server::start();
    let r = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .ri("my-ri-42")
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.header("x-m2m-ri"), Some("my-ri-42"));
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Cechoed")
        .ri("create-ri")
        .json(&json!({"m2m:ae": {"api": "Necho", "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(2001);
    assert_eq!(r.header("x-m2m-ri"), Some("create-ri"));
    let r = s
        .request("DELETE", "/cse-in/Cechoed")
        .from("Cechoed")
        .ri("delete-ri")
        .send()
        .await;
    r.expect(2002);
    assert_eq!(r.header("x-m2m-ri"), Some("delete-ri"));
}

#[tokio::test]
async fn ts0009_6_4_rsc_ri_and_rvi_are_echoed_on_errors() {
    let s = Server::start();
    // Error from the pipeline.
    let r = s
        .request("GET", "/cse-in/nothing-here")
        .from(ADMIN)
        .ri("err-ri")
        .rvi("4")
        .send()
        .await;
    r.expect(4004);
    assert_eq!(r.header("x-m2m-rsc"), Some("4004"));
    assert_eq!(r.header("x-m2m-ri"), Some("err-ri"));
    assert_eq!(r.header("x-m2m-rvi"), Some("4"));
    assert!(!r.dbg().is_empty(), "error carries m2m:dbg: {}", r.text);
    // Error from the binding (body that cannot be decoded).
    let r = s
        .request("POST", "/cse-in")
        .from(ADMIN)
        .ri("bind-ri")
        .content_type("application/yaml;ty=3")
        .raw_body("m2m:cnt: {}")
        .send()
        .await;
    r.expect(4015);
    assert_eq!(r.header("x-m2m-rsc"), Some("4015"));
    assert_eq!(r.header("x-m2m-ri"), Some("bind-ri"));
    assert_eq!(r.header("x-m2m-rvi"), Some("3"));
}

#[tokio::test]
async fn ts0009_6_2_2_1_cse_relative_target() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let r = s.get("/cse-in/Cowner", "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:ae")["ri"], "Cowner");
    let r = s.get(&cnt, "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["rn"], "cnt");
}

#[tokio::test]
async fn ts0009_6_2_2_1_sp_relative_target() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let ri = s.get(&cnt, "Cowner").await.inner("m2m:cnt")["ri"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s.get("/~/id-in/cse-in/Cowner/cnt", "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["ri"], ri.as_str());
    let r = s.get(&format!("/~/id-in/{ri}"), "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["rn"], "cnt");
    // The CSE-ID alone addresses the CSEBase.
    let r = s.get("/~/id-in", ADMIN).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cb")["ri"], CSE_RI);
    // CREATE through an SP-relative target.
    s.create(
        "/~/id-in/cse-in/Cowner/cnt",
        "Cowner",
        3,
        json!({"m2m:cnt": {"rn": "viaSp"}}),
    )
    .await
    .expect(2001);
    s.get(&format!("{cnt}/viaSp"), "Cowner").await.expect(2000);
}

#[tokio::test]
async fn ts0009_6_2_2_1_absolute_target() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let ri = s.get(&cnt, "Cowner").await.inner("m2m:cnt")["ri"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .get("/_/bastion.example/id-in/cse-in/Cowner/cnt", "Cowner")
        .await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["ri"], ri.as_str());
    let r = s
        .get(&format!("/_/bastion.example/id-in/{ri}"), "Cowner")
        .await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["rn"], "cnt");
    let r = s
        .update(
            "/_/bastion.example/id-in/cse-in/Cowner/cnt",
            "Cowner",
            json!({"m2m:cnt": {"lbl": ["abs"]}}),
        )
        .await;
    r.expect(2004);
}

#[tokio::test]
async fn ts0004_7_3_2_6_other_cse_or_sp_is_not_found() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.get("/~/id-mn/cse-mn", "Cowner").await.expect(4004);
    s.get("/_/other.example/id-in/cse-in", "Cowner")
        .await
        .expect(4004);
    s.get("/_/bastion.example/id-other/cse-in", "Cowner")
        .await
        .expect(4004);
}

#[tokio::test]
async fn ts0001_7_2_unstructured_resource_ids() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let cnt_ri = s.get(&cnt, "Cowner").await.inner("m2m:cnt")["ri"]
        .as_str()
        .unwrap()
        .to_owned();
    let cin = s.create_cin(&cnt, "Cowner", "hello").await;
    let cin_ri = cin["ri"].as_str().unwrap().to_owned();
    // The AE's resource ID is its AE-ID.
    let r = s.get("/Cowner", "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:ae")["aei"], "Cowner");
    let r = s.get(&format!("/{cnt_ri}"), "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["rn"], "cnt");
    let r = s.get(&format!("/{cin_ri}"), "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cin")["con"], "hello");
    // Hybrid: unstructured container ID followed by a virtual child.
    let r = s.get(&format!("/{cnt_ri}/la"), "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cin")["ri"], cin_ri.as_str());
    // CREATE under an unstructured target.
    s.create(
        &format!("/{cnt_ri}"),
        "Cowner",
        4,
        json!({"m2m:cin": {"rn": "byRi", "con": "x"}}),
    )
    .await
    .expect(2001);
    s.get(&format!("{cnt}/byRi"), "Cowner").await.expect(2000);
    s.get("/cntDoesNotExist", "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0001_7_2_dash_is_the_cse_base_shortcut() {
    let s = Server::start();
    let _ = owner_cnt(&s).await;
    let r = s.get("/-/Cowner", "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:ae")["ri"], "Cowner");
    let r = s.get("/-/Cowner/cnt", "Cowner").await;
    r.expect(2000);
    s.create("/-/Cowner", "Cowner", 3, json!({"m2m:cnt": {"rn": "dash"}}))
        .await
        .expect(2001);
    s.get("/cse-in/Cowner/dash", "Cowner").await.expect(2000);
    s.get("/~/id-in/-/Cowner/cnt", "Cowner").await.expect(2000);
    s.get("/_/bastion.example/id-in/-/Cowner", "Cowner")
        .await
        .expect(2000);
    let r = s.get("/-", ADMIN).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cb")["rn"], CSE_NAME);
}

#[tokio::test]
async fn ts0004_6_7_vnd_onem2m_res_json_is_accepted() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .content_type("application/vnd.onem2m-res+json;ty=3")
        .json(&json!({"m2m:cnt": {"rn": "vnd"}}))
        .send()
        .await;
    r.expect(2001);
    let r = s
        .request("PUT", &format!("{ae}/vnd"))
        .from("Cowner")
        .content_type("application/vnd.onem2m-res+json")
        .json(&json!({"m2m:cnt": {"lbl": ["v"]}}))
        .send()
        .await;
    r.expect(2004);
    // Media type parameters and case do not matter.
    let r = s
        .request("POST", &ae)
        .from("Cowner")
        .content_type("Application/JSON; charset=utf-8; ty=3")
        .json(&json!({"m2m:cnt": {"rn": "cased"}}))
        .send()
        .await;
    r.expect(2001);
}

#[tokio::test]
async fn ts0009_6_4_unsupported_body_media_type_is_4015() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for media in [
        "application/yaml;ty=3",
        "application/vnd.onem2m-res+yaml;ty=3",
    ] {
        let r = s
            .request("POST", &ae)
            .from("Cowner")
            .content_type(media)
            .raw_body("m2m:cnt: {rn: x}")
            .send()
            .await;
        r.expect(4015);
        assert_eq!(
            r.dbg(),
            format!(
                "media type {} is not supported",
                media.split(';').next().unwrap()
            ),
            "{}",
            r.text
        );
    }
    // Nothing was created.
    let r = s
        .request("GET", &format!("{ae}?rcn=6"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:rrl")["rrf"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn ts0009_6_4_body_without_content_type_is_unsupported_media_type() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let r = s
        .request("PUT", &ae)
        .from("Cowner")
        .no_content_type()
        .raw_body(r#"{"m2m:ae":{"lbl":["x"]}}"#)
        .send()
        .await;
    r.expect(4015);
    let r = s.get(&ae, "Cowner").await;
    assert!(r.inner("m2m:ae").get("lbl").is_none(), "{}", r.text);
}

#[tokio::test]
async fn ts0009_6_4_accept_without_a_supported_type_is_not_acceptable() {
    let s = Server::start();
    for refused in ["text/html", "application/yaml", "application/json;q=0"] {
        let r = s
            .request("GET", "/cse-in")
            .from(ADMIN)
            .header("Accept", refused)
            .send()
            .await;
        r.expect(5207);
        assert_eq!(r.status, 406);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    for (ok, media) in [
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("application/vnd.onem2m-res+json", "application/json"),
        ("application/xml, application/json;q=0.5", "application/xml"),
        (
            "application/xml;q=0.1, application/vnd.onem2m-res+cbor",
            "application/cbor",
        ),
    ] {
        let r = s
            .request("GET", "/cse-in")
            .from(ADMIN)
            .header("Accept", ok)
            .send()
            .await;
        r.expect(2000);
        assert_eq!(r.header("content-type"), Some(media), "{ok}");
        assert_eq!(r.inner("m2m:cb")["csi"], "/id-in", "{ok}: {}", r.text);
    }
}

#[tokio::test]
async fn ts0004_6_3_4_2_16_rcn_on_create() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let post = |rcn: u32, rn: &str, attrs: Value| {
        let mut body = attrs;
        body["rn"] = json!(rn);
        s.request("POST", &format!("{ae}?rcn={rcn}"))
            .from("Cowner")
            .ty(3)
            .json(&json!({ "m2m:cnt": body }))
            .send()
    };
    // 0: nothing.
    let r = post(0, "c0", json!({})).await;
    r.expect(2001);
    assert_eq!(r.body, Value::Null, "rcn 0 has no content: {}", r.text);
    // 1: attributes.
    let r = post(1, "c1", json!({})).await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:cnt")["rn"], "c1");
    assert_eq!(r.inner("m2m:cnt")["ty"], 3);
    // 2: hierarchical address, also in Content-Location.
    let r = post(2, "c2", json!({})).await;
    r.expect(2001);
    assert_eq!(r.body, json!({"m2m:uri": "cse-in/Cowner/c2"}));
    assert_eq!(r.header("content-location"), Some("cse-in/Cowner/c2"));
    // 3: hierarchical address and attributes.
    let r = post(3, "c3", json!({})).await;
    r.expect(2001);
    let rce = r.inner("m2m:rce");
    assert_eq!(rce["uri"], "cse-in/Cowner/c3");
    let res = rce
        .get("m2m:cnt")
        .or_else(|| rce.get("cnt"))
        .expect("cnt in rce");
    assert_eq!(res["rn"], "c3");
    assert_eq!(r.header("content-location"), Some("cse-in/Cowner/c3"));
    // 9: only what the CSE set beyond the request.
    let r = post(9, "c9", json!({"lbl": ["x"], "mni": 5})).await;
    r.expect(2001);
    let m = r.inner("m2m:cnt");
    for set_by_cse in ["ri", "pi", "ct", "lt", "et", "ty"] {
        assert!(
            m.get(set_by_cse).is_some(),
            "rcn 9 lacks {set_by_cse}: {}",
            r.text
        );
    }
    for sent in ["lbl", "mni", "rn"] {
        assert!(m.get(sent).is_none(), "rcn 9 repeats {sent}: {}", r.text);
    }
    for rn in ["c0", "c1", "c2", "c3", "c9"] {
        s.get(&format!("{ae}/{rn}"), "Cowner").await.expect(2000);
    }
}

#[tokio::test]
async fn ts0004_6_3_4_2_16_rcn_on_retrieve() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    s.create_cnt(&cnt, "Cowner", json!({"rn": "sub"})).await;
    for (rn, con) in [("i1", "one"), ("i2", "two")] {
        s.create(
            &cnt,
            "Cowner",
            4,
            json!({"m2m:cin": {"rn": rn, "con": con}}),
        )
        .await
        .expect(2001);
    }
    let get = |rcn: u32| {
        s.request("GET", &format!("{cnt}?rcn={rcn}"))
            .from("Cowner")
            .send()
    };
    // 1: attributes only.
    let r = get(1).await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    assert_eq!(c["rn"], "cnt");
    assert!(
        c.get("m2m:cin").is_none() && c.get("ch").is_none(),
        "{}",
        r.text
    );
    // 4: attributes and nested children.
    let r = get(4).await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    assert_eq!(c["rn"], "cnt");
    let cins = c["m2m:cin"].as_array().expect("nested m2m:cin");
    let cons: Vec<&str> = cins.iter().map(|i| i["con"].as_str().unwrap()).collect();
    assert_eq!(cons, ["one", "two"]);
    let cnts = c["m2m:cnt"].as_array().expect("nested m2m:cnt");
    assert_eq!(cnts.len(), 1);
    assert_eq!(cnts[0]["rn"], "sub");
    // 5: attributes and child references.
    let r = get(5).await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    assert_eq!(c["rn"], "cnt");
    let mut ch: Vec<(String, u64, String)> = c["ch"]
        .as_array()
        .expect("ch")
        .iter()
        .map(|x| {
            (
                x["nm"].as_str().unwrap().to_owned(),
                x["typ"].as_u64().unwrap(),
                x["val"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ch.sort();
    assert_eq!(
        ch,
        vec![
            ("i1".into(), 4, "cse-in/Cowner/cnt/i1".into()),
            ("i2".into(), 4, "cse-in/Cowner/cnt/i2".into()),
            ("sub".into(), 3, "cse-in/Cowner/cnt/sub".into()),
        ]
    );
    // 6: child references only.
    let r = get(6).await;
    r.expect(2000);
    let rrf = r.inner("m2m:rrl")["rrf"].as_array().expect("rrf").clone();
    assert_eq!(rrf.len(), 3, "{}", r.text);
    assert!(r.body.get("m2m:cnt").is_none());
    // 8: child resources only.
    let r = get(8).await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    assert!(
        c.get("rn").is_none() && c.get("ri").is_none(),
        "rcn 8 has own attributes: {}",
        r.text
    );
    assert_eq!(c["m2m:cin"].as_array().map(Vec::len), Some(2), "{}", r.text);
}

#[tokio::test]
async fn ts0004_6_3_4_2_16_rcn_on_update() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let put = |rcn: u32, lbl: &str| {
        s.request("PUT", &format!("{cnt}?rcn={rcn}"))
            .from("Cowner")
            .json(&json!({"m2m:cnt": {"lbl": [lbl]}}))
            .send()
    };
    let r = put(0, "a").await;
    r.expect(2004);
    assert_eq!(r.body, Value::Null);
    let r = put(1, "b").await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["lbl"], json!(["b"]));
    assert_eq!(r.inner("m2m:cnt")["rn"], "cnt");
    let r = put(9, "c").await;
    r.expect(2004);
    let m = r.inner("m2m:cnt");
    assert!(
        m.get("lt").is_some(),
        "lt was changed by the CSE: {}",
        r.text
    );
    assert!(m.get("lbl").is_none(), "lbl was sent as is: {}", r.text);
    assert!(m.get("rn").is_none() && m.get("ri").is_none(), "{}", r.text);
    let r = s.get(&cnt, "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["lbl"], json!(["c"]));
}

#[tokio::test]
async fn ts0004_6_3_4_2_16_rcn_on_delete() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "d0"})).await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "d1"})).await;
    let r = s
        .request("DELETE", &format!("{ae}/d0?rcn=0"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2002);
    assert_eq!(r.body, Value::Null);
    let r = s
        .request("DELETE", &format!("{ae}/d1?rcn=1"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2002);
    assert_eq!(r.inner("m2m:cnt")["rn"], "d1");
    s.get(&format!("{ae}/d0"), "Cowner").await.expect(4004);
    s.get(&format!("{ae}/d1"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0004_6_3_4_2_16_rcn_invalid_for_operation_is_bad_request() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    for rcn in [4, 5, 6, 8, 13, 99] {
        let r = s
            .request("POST", &format!("{cnt}?rcn={rcn}"))
            .from("Cowner")
            .ty(3)
            .json(&json!({"m2m:cnt": {"rn": format!("bad{rcn}")}}))
            .send()
            .await;
        r.expect(4000);
        s.get(&format!("{cnt}/bad{rcn}"), "Cowner")
            .await
            .expect(4004);
    }
    for rcn in [0, 2, 3, 9, 13] {
        s.request("GET", &format!("{cnt}?rcn={rcn}"))
            .from("Cowner")
            .send()
            .await
            .expect(4000);
    }
    for rcn in [2, 3, 4, 6] {
        s.request("PUT", &format!("{cnt}?rcn={rcn}"))
            .from("Cowner")
            .json(&json!({"m2m:cnt": {"lbl": ["x"]}}))
            .send()
            .await
            .expect(4000);
    }
    for rcn in [2, 3, 9] {
        s.request("DELETE", &format!("{cnt}?rcn={rcn}"))
            .from("Cowner")
            .send()
            .await
            .expect(4000);
    }
    // Nothing above touched the container.
    let r = s.get(&cnt, "Cowner").await;
    r.expect(2000);
    assert!(r.inner("m2m:cnt").get("lbl").is_none());
}

#[tokio::test]
async fn ts0004_6_3_4_2_desired_identifier_result_type() {
    let s = Server::start();
    let cnt = owner_cnt(&s).await;
    let ri = s.get(&cnt, "Cowner").await.inner("m2m:cnt")["ri"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .request("GET", "/cse-in/Cowner?fu=1&drt=2")
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.uril(), vec![ri]);
    let r = s
        .request("GET", "/cse-in/Cowner?fu=1&drt=1")
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.uril(), vec!["cse-in/Cowner/cnt".to_owned()]);
    // drt is NP outside RETRIEVE; only 1 and 2 exist.
    s.request("POST", &format!("{cnt}?drt=2"))
        .from("Cowner")
        .ty(3)
        .json(&json!({"m2m:cnt": {}}))
        .send()
        .await
        .expect(4000);
    s.request("GET", "/cse-in/Cowner?fu=1&drt=3")
        .from("Cowner")
        .send()
        .await
        .expect(4000);
}
