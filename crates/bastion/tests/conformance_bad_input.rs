//! Hostile and malformed input (TS-0004 §8.4 JSON rules, TS-0001 §7.2 identifier syntax,
//! TS-0009 header rules): every one is an exact 4xxx answer, never a 5xxx, and never
//! changes anything.

use crate::common;

use common::*;
use serde_json::json;

const AE: &str = "/cse-in/Cowner";

#[track_caller]
fn not_5xx(r: &Resp) {
    assert!(
        (r.status < 500 && r.rsc < 5000) || r.rsc == 5001 || r.rsc == 5207,
        "{}: server error {} / {}: {}",
        r.what,
        r.status,
        r.rsc,
        r.text
    );
}

/// Asserts the AE has no children at all.
async fn nothing_created(s: &Server) {
    let r = s
        .request("GET", &format!("{AE}?rcn=6"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:rrl")["rrf"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn ts0004_8_4_malformed_json_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    for body in [
        r#"{"m2m:cnt": "#,
        "not json",
        r#"{"m2m:cnt": {"rn": "a"}} trailing"#,
        r#"{"m2m:cnt": {"rn": "a",}}"#,
        r#"{'m2m:cnt': {}}"#,
        "[1, 2]",
        "null",
        "42",
        "\u{feff}{\"m2m:cnt\":{}}",
    ] {
        let r = s
            .request("POST", AE)
            .from("Cowner")
            .ty(3)
            .raw_body(body)
            .send()
            .await;
        r.expect(4000);
    }
    let r = s
        .request("POST", AE)
        .from("Cowner")
        .ty(3)
        .raw_body(vec![0xff, 0xfe, b'{', b'}'])
        .send()
        .await;
    r.expect(4000);
    // Nesting deeper than any resource needs.
    let deep = format!(
        r#"{{"m2m:cin":{{"con":{}1{}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    s.create_cnt(AE, "Cowner", json!({"rn": "c"})).await;
    let r = s
        .request("POST", &format!("{AE}/c"))
        .from("Cowner")
        .ty(4)
        .raw_body(deep)
        .send()
        .await;
    r.expect(4000);
    let r = s.get(&format!("{AE}/c"), "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["cni"], 0);
}

#[tokio::test]
async fn ts0004_8_4_duplicate_member_names_are_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    for body in [
        r#"{"m2m:cnt": {"rn": "a", "rn": "b"}}"#,
        r#"{"m2m:cnt": {"rn": "a"}, "m2m:cnt": {"rn": "b"}}"#,
        r#"{"m2m:cnt": {"rn": "a", "lbl": ["x"], "mni": 1, "mni": 2}}"#,
    ] {
        let r = s
            .request("POST", AE)
            .from("Cowner")
            .ty(3)
            .raw_body(body)
            .send()
            .await;
        r.expect(4000);
    }
    nothing_created(&s).await;
    let r = s
        .request("PUT", AE)
        .from("Cowner")
        .raw_body(r#"{"m2m:ae": {"lbl": ["a"], "lbl": ["b"]}}"#)
        .send()
        .await;
    r.expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_3_2_wrong_content_root_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    for body in [
        json!({"m2m:ae": {"rn": "a"}}),
        json!({"m2m:cin": {"rn": "a", "con": "x"}}),
        json!({"cnt": {"rn": "a"}}),
        json!({"m2m:cnt": {"rn": "a"}, "m2m:cin": {"con": "x"}}),
        json!({"m2m:cnt": {"rn": "a"}, "extra": 1}),
        json!({}),
        json!({"m2m:cnt": null}),
    ] {
        s.create(AE, "Cowner", 3, body).await.expect(4000);
    }
    nothing_created(&s).await;
    // UPDATE with the root of another type.
    s.update(AE, "Cowner", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(4000);
    // RETRIEVE content may only be an attribute list.
    s.req(
        "GET",
        AE,
        Some("Cowner"),
        None,
        Some(json!({"m2m:cnt": {}})),
    )
    .await
    .expect(4000);
}

#[tokio::test]
async fn binding_body_over_one_mebibyte_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c"})).await;
    let con = "x".repeat(1024 * 1024 + 1);
    let r = s
        .request("POST", &format!("{AE}/c"))
        .from("Cowner")
        .ty(4)
        .json(&json!({"m2m:cin": {"rn": "huge", "con": con}}))
        .send()
        .await;
    r.expect(4000);
    let dbg = r.dbg();
    assert!(
        dbg.contains("1048576") || dbg.contains("1 MiB") || dbg.contains("limit"),
        "the reason names the limit: {dbg:?}"
    );
    s.get(&format!("{AE}/c/huge"), "Cowner").await.expect(4004);
    let r = s.get(&format!("{AE}/c"), "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["cni"], 0);
    assert_eq!(r.inner("m2m:cnt")["cbs"], 0);
    // Just under the limit is fine.
    let con = "y".repeat(1024 * 1024 - 100);
    s.create(
        &format!("{AE}/c"),
        "Cowner",
        4,
        json!({"m2m:cin": {"rn": "big", "con": con}}),
    )
    .await
    .expect(2001);
    // The connection pool still works afterwards.
    s.get(&format!("{AE}/c/big"), "Cowner").await.expect(2000);
}

#[tokio::test]
async fn binding_chunked_body_over_one_mebibyte_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c"})).await;
    let head = format!(
        "POST /cse-in/Cowner/c HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-M2M-Origin: Cowner\r\nX-M2M-RI: chunked\r\nX-M2M-RVI: 3\r\nContent-Type: application/json;ty=4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.port()
    );
    let body = format!(
        r#"{{"m2m:cin":{{"rn":"chunked","con":"{}"}}}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let r = s.raw_chunked(&head, body.as_bytes());
    r.expect(4000);
    s.get(&format!("{AE}/c/chunked"), "Cowner")
        .await
        .expect(4004);
    let r = s.get(&format!("{AE}/c"), "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["cni"], 0);
    // A small chunked body is fine.
    let r = s.raw_chunked(&head, br#"{"m2m:cin":{"rn":"small","con":"ok"}}"#);
    r.expect(2001);
}

#[tokio::test]
async fn ts0001_7_2_overlong_path_segment_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    let long = "a".repeat(300);
    s.get(&format!("{AE}/{long}"), "Cowner").await.expect(4000);
    s.get(&format!("/{long}"), "Cowner").await.expect(4000);
    s.create(&format!("{AE}/{long}"), "Cowner", 3, json!({"m2m:cnt": {}}))
        .await
        .expect(4000);
    let very_long = format!("{AE}/{}", "b/".repeat(1000));
    s.get(&very_long, "Cowner").await.expect(4000);
    // 255 is still a name.
    s.get(&format!("{AE}/{}", "a".repeat(255)), "Cowner")
        .await
        .expect(4004);
}

#[tokio::test]
async fn ts0001_7_2_dot_and_empty_segments_are_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c"})).await;
    for target in [
        "/cse-in/../cse-in/Cowner",
        "/cse-in/Cowner/../Cowner",
        "/cse-in/./Cowner",
        "/cse-in/Cowner/c/..",
        "/cse-in//Cowner",
        "/cse-in/Cowner//c",
        "/cse-in/Cowner/",
        "/cse-in/%2e%2e/Cowner",
        "/~/id-in//cse-in",
        "/~//id-in",
        "/_//id-in",
    ] {
        let r = s.raw_simple("GET", target, "Cowner");
        assert_eq!(r.rsc(), 4000, "{target}: {}", r.text);
        assert_eq!(r.status, 400, "{target}");
        let r = s.raw_simple("DELETE", target, "Cowner");
        assert_eq!(r.rsc(), 4000, "DELETE {target}: {}", r.text);
    }
    s.get(&format!("{AE}/c"), "Cowner").await.expect(2000);
    s.get(AE, "Cowner").await.expect(2000);
}

#[tokio::test]
async fn ts0001_7_2_percent_encoded_nul_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    for target in [
        "/cse-in/%00",
        "/cse-in/Cowner%00",
        "/cse-in/Cow%00ner",
        "/%00",
        "/cse-in/%ff",
        "/cse-in/%0a",
        "/cse-in/a%20b",
        "/cse-in/a%2Fb/..",
    ] {
        let r = s.raw_simple("GET", target, "Cowner");
        assert_eq!(r.rsc(), 4000, "{target}: {}", r.text);
        assert_eq!(r.status, 400, "{target}");
    }
    s.get(AE, "Cowner").await.expect(2000);
}

#[tokio::test]
async fn ts0009_6_4_header_given_twice_is_bad_request() {
    let s = Server::start();
    s.ae("Cowner").await;
    let body = json!({"m2m:cnt": {"rn": "twice"}});
    for (name, value) in [
        ("X-M2M-Origin", "Cowner"),
        ("X-M2M-RI", "again"),
        ("X-M2M-RVI", "3"),
        ("Content-Type", "application/json;ty=3"),
    ] {
        let mut req = s
            .request("POST", AE)
            .from("Cowner")
            .ty(3)
            .json(&body)
            .header(name, value);
        if name == "Content-Type" {
            // The builder's own Content-Type plus the extra one.
            req = req.content_type("application/json;ty=3");
        }
        let r = req.send().await;
        r.expect(4000);
    }
    nothing_created(&s).await;
    // Even with different values.
    let r = s
        .request("GET", AE)
        .from("Cowner")
        .header("X-M2M-Origin", "Cother")
        .send()
        .await;
    r.expect(4000);
}

#[tokio::test]
async fn binding_odd_requests_are_never_server_errors() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c"})).await;
    let cnt = format!("{AE}/c");
    // Bad query parameters.
    for query in [
        "rcn=abc",
        "rcn=-1",
        "rcn=99999999999999999999999",
        "fu=9",
        "lim=-1",
        "ty=x",
        "rcn=1&rcn=1",
        "%zz=1",
        "a-b=1",
        "drt=0",
        "rt=7",
        "crb=2024",
        "lvl=x",
        "fo=3",
        "da=maybe",
    ] {
        let r = s
            .request("GET", &format!("{cnt}?{query}"))
            .from("Cowner")
            .send()
            .await;
        not_5xx(&r);
        r.expect(4000);
    }
    // Odd originators.
    for orig in ["C", "x", "//", "/", "Cowner/x", &"C".repeat(2000)] {
        let r = s.get(&cnt, orig).await;
        not_5xx(&r);
        assert!((4000..5000).contains(&r.rsc), "{orig:?}: {}", r.rsc);
    }
    // Odd values.
    for attrs in [
        json!({"mni": 1e30}),
        json!({"mni": 18446744073709551616u128.to_string()}),
        json!({"et": "99999999T999999"}),
        json!({"et": "20240230T000000"}),
        json!({"lbl": [null]}),
        json!({"acpi": [""]}),
        json!({"rn": "\u{0000}"}),
    ] {
        let r = s.create(AE, "Cowner", 3, json!({ "m2m:cnt": attrs })).await;
        not_5xx(&r);
        r.expect(4000);
    }
    for con in [
        json!(null),
        json!({"a": [1, {"b": null}]}),
        json!(1.5e300),
        json!("\u{0000}"),
    ] {
        let r = s
            .create(&cnt, "Cowner", 4, json!({"m2m:cin": {"con": con}}))
            .await;
        not_5xx(&r);
    }
    // Headers that are not visible ASCII.
    let mut raw = format!(
        "GET {cnt} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-M2M-Origin: Cowner\r\nX-M2M-RI: ",
        s.port()
    )
    .into_bytes();
    raw.extend_from_slice(&[0xc3, 0xa4]);
    raw.extend_from_slice(b"\r\nX-M2M-RVI: 3\r\nConnection: close\r\n\r\n");
    let r = s.raw(&raw);
    assert!(r.status >= 400 && r.status < 500, "{}", r.text);
    // A NOTIFY, an unknown method and an empty body with a type.
    let r = s.request("POST", &cnt).from("Cowner").ty(4).send().await;
    r.expect(4000);
    let r = s
        .request("POST", &cnt)
        .from("Cowner")
        .ty(4)
        .content_type("text/plain;ty=4")
        .raw_body("hello")
        .send()
        .await;
    r.expect(4015);
    // The server is still fine.
    s.get(&cnt, "Cowner").await.expect(2000);
}
