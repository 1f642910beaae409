//! Confidentiality of results and notifications (docs/security.md, "Confidentiality of
//! results"): a result, a group fan-out answer, a discovery or a notification never
//! carries a resource the originator could not read (or, for a reference, discover) by
//! asking for it directly; notification targets are verified without telling the
//! subscriber why one failed; results and fan-outs are bounded. Against the real binary.

use crate::common;

use common::*;
use serde_json::{json, Value};

const OWNER: &str = "Cowner";
const PARTNER: &str = "Cpartner";

/// RETRIEVE (2) and DISCOVER (32).
const READ: u32 = 2 | 32;
const DISCOVER: u32 = 32;

/// The shared scene: `OWNER`'s AE (readable by `PARTNER` through `acpShared`) holding
/// * `public`: a container linked to `acpShared`, with one instance `p1`;
/// * `private`: a container without `acpi` (creator only), with one instance `secret`;
/// * `listed`: a container `PARTNER` may DISCOVER but not RETRIEVE;
/// * `acpVisible`: an ACP whose `pvs` lets `PARTNER` read it;
/// * `acpOwn`: an ACP whose `pvs` is the owner's only (though its `pv` names `PARTNER`).
struct Scene {
    ae: String,
    shared_acp: String,
    discover_acp: String,
}

async fn scene(s: &Server) -> Scene {
    s.ae(PARTNER).await;
    let ae = s.ae(OWNER).await;
    let base = format!("/{CSE_NAME}");
    let pv = json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": [PARTNER], "acop": READ}]});
    let shared = s
        .create_acp(&base, ADMIN, "acpShared", pv, rules(&[ADMIN], 63))
        .await;
    let shared_acp = shared["ri"].as_str().expect("ri").to_owned();
    let pv = json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": [PARTNER], "acop": DISCOVER}]});
    let discover = s
        .create_acp(&base, ADMIN, "acpDiscover", pv, rules(&[ADMIN], 63))
        .await;
    let discover_acp = discover["ri"].as_str().expect("ri").to_owned();
    s.update(&ae, OWNER, json!({"m2m:ae": {"acpi": [shared_acp]}}))
        .await
        .expect(2004);
    s.create_cnt(&ae, OWNER, json!({"rn": "public", "acpi": [shared_acp]}))
        .await;
    s.create(
        &format!("{ae}/public"),
        OWNER,
        4,
        json!({"m2m:cin": {"rn": "p1", "con": "open"}}),
    )
    .await
    .expect(2001);
    s.create_cnt(&ae, OWNER, json!({"rn": "private"})).await;
    s.create(
        &format!("{ae}/private"),
        OWNER,
        4,
        json!({"m2m:cin": {"rn": "secret", "con": "hidden"}}),
    )
    .await
    .expect(2001);
    s.create_cnt(&ae, OWNER, json!({"rn": "listed", "acpi": [discover_acp]}))
        .await;
    let owner_rule = rules(&[OWNER], 63);
    s.create_acp(
        &ae,
        OWNER,
        "acpVisible",
        owner_rule.clone(),
        json!({"acr": [
        {"acor": [OWNER], "acop": 63}, {"acor": [PARTNER], "acop": READ}]}),
    )
    .await;
    s.create_acp(
        &ae,
        OWNER,
        "acpOwn",
        json!({"acr": [{"acor": [PARTNER], "acop": 63}]}),
        owner_rule,
    )
    .await;
    Scene {
        ae,
        shared_acp,
        discover_acp,
    }
}

/// The `rn`s of the nested children of type root `root` in `parent` (sorted).
fn nested(parent: &Value, root: &str) -> Vec<String> {
    let mut names: Vec<String> = parent
        .get(root)
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|c| c["rn"].as_str().expect("rn").to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// RETRIEVE of `path` by `from`, which must succeed (2000).
async fn retrieved(s: &Server, path: &str, from: &str) -> Resp {
    let r = s.get(path, from).await;
    r.expect(2000);
    r
}

/// The `nm`s of a list of child references (sorted).
fn ref_names(refs: &Value) -> Vec<String> {
    let mut names: Vec<String> = refs
        .as_array()
        .unwrap_or_else(|| panic!("not a list of references: {refs}"))
        .iter()
        .map(|r| r["nm"].as_str().expect("nm").to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn rcn_4_and_8_nest_only_children_the_originator_may_retrieve() {
    let s = Server::start();
    let sc = scene(&s).await;
    for rcn in [4, 8] {
        let r = retrieved(&s, &format!("{}?rcn={rcn}", sc.ae), PARTNER).await;
        let ae = r.inner("m2m:ae");
        assert_eq!(
            nested(ae, "m2m:cnt"),
            vec!["public"],
            "rcn {rcn}: {}",
            r.text
        );
        assert_eq!(
            nested(ae, "m2m:acp"),
            vec!["acpVisible"],
            "rcn {rcn}: {}",
            r.text
        );
        let public = &ae["m2m:cnt"][0];
        assert_eq!(nested(public, "m2m:cin"), vec!["p1"]);
        assert_eq!(public["m2m:cin"][0]["con"], "open");
        assert!(!r.text.contains("hidden") && !r.text.contains("secret"));
        assert_eq!(r.header("x-m2m-cts"), None, "a complete result");
        assert_eq!(ae.get("rn").is_some(), rcn == 4, "rcn {rcn}: {}", r.text);
    }
    // The owner still sees everything.
    let r = retrieved(&s, &format!("{}?rcn=4", sc.ae), OWNER).await;
    let ae = r.inner("m2m:ae");
    assert_eq!(
        nested(ae, "m2m:cnt"),
        vec!["listed", "private", "public"],
        "{}",
        r.text
    );
    assert_eq!(nested(ae, "m2m:acp"), vec!["acpOwn", "acpVisible"]);
    let private = ae["m2m:cnt"]
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["rn"] == "private")
        .expect("private");
    assert_eq!(private["m2m:cin"][0]["con"], "hidden");
    // The direct requests agree with what was left out.
    for (child, rsc) in [
        ("private", 4103),
        ("private/secret", 4103),
        ("listed", 4103),
        ("acpOwn", 4103),
        ("acpVisible", 2000),
    ] {
        s.get(&format!("{}/{child}", sc.ae), PARTNER)
            .await
            .expect(rsc);
    }
}

#[tokio::test]
async fn rcn_5_and_6_list_only_references_the_originator_may_discover() {
    let s = Server::start();
    let sc = scene(&s).await;
    let r = retrieved(&s, &format!("{}?rcn=5", sc.ae), PARTNER).await;
    assert_eq!(
        ref_names(&r.inner("m2m:ae")["ch"]),
        vec!["acpVisible", "listed", "public"],
        "{}",
        r.text
    );
    let r = retrieved(&s, &format!("{}?rcn=6", sc.ae), PARTNER).await;
    assert_eq!(
        ref_names(&r.inner("m2m:rrl")["rrf"]),
        vec!["acpVisible", "listed", "public"],
        "{}",
        r.text
    );
    // Instance references follow their container.
    let r = retrieved(&s, &format!("{}/public?rcn=6", sc.ae), PARTNER).await;
    assert_eq!(ref_names(&r.inner("m2m:rrl")["rrf"]), vec!["p1"]);
    let r = retrieved(&s, &format!("{}?rcn=6", sc.ae), OWNER).await;
    assert_eq!(
        ref_names(&r.inner("m2m:rrl")["rrf"]),
        vec!["acpOwn", "acpVisible", "listed", "private", "public"]
    );
}

#[tokio::test]
async fn discovery_lists_only_what_the_originator_may_discover() {
    let s = Server::start();
    let sc = scene(&s).await;
    let r = retrieved(&s, &format!("{}?fu=1", sc.ae), PARTNER).await;
    let mut found = r.uril();
    found.sort();
    let under = |rel: &str| format!("{CSE_NAME}/{}/{rel}", sc.ae.rsplit('/').next().unwrap());
    let mut want = vec![
        under("acpVisible"),
        under("listed"),
        under("public"),
        under("public/p1"),
    ];
    want.sort();
    assert_eq!(found, want, "{}", r.text);
}

#[tokio::test]
async fn group_fan_out_aggregates_only_what_each_member_request_returned() {
    let s = Server::start();
    let sc = scene(&s).await;
    let ids = |r: Resp| r.inner("m2m:cnt")["ri"].as_str().expect("ri").to_owned();
    let private = ids(s.get(&format!("{}/private", sc.ae), OWNER).await);
    let ae_ri = s.get(&sc.ae, OWNER).await.inner("m2m:ae")["ri"]
        .as_str()
        .expect("ri")
        .to_owned();
    let r = s
        .create(
            &sc.ae,
            OWNER,
            9,
            json!({"m2m:grp": {"rn": "g", "mnm": 10, "mid": [ae_ri, private],
                "acpi": [sc.shared_acp]}}),
        )
        .await;
    r.expect(2001);
    let r = retrieved(&s, &format!("{}/g/fopt?rcn=4", sc.ae), PARTNER).await;
    let list = r.inner("m2m:agr")["m2m:rsp"]
        .as_array()
        .expect("m2m:rsp list")
        .clone();
    assert_eq!(list.len(), 2, "{}", r.text);
    assert_eq!(list[0]["rsc"], 2000);
    let ae = &list[0]["pc"]["m2m:ae"];
    assert_eq!(nested(ae, "m2m:cnt"), vec!["public"], "{}", r.text);
    assert_eq!(list[1]["rsc"], 4103);
    assert!(list[1]["pc"].get("m2m:cnt").is_none());
    assert!(!r.text.contains("hidden") && !r.text.contains("secret"));
    let _ = &sc.discover_acp;
}

#[tokio::test]
async fn child_created_notification_shows_only_what_the_subscriber_may_see() {
    let s = Server::start();
    let sc = scene(&s).await;
    let rx = Receiver::start().await;
    let r = s
        .create(
            &sc.ae,
            PARTNER,
            23,
            json!({"m2m:sub": {"rn": "watch", "nu": [rx.url], "enc": {"net": [3]}}}),
        )
        .await;
    r.expect(2001);
    // Created in this order: one the partner may not see at all, one it may only
    // discover, one it may read.
    s.create_cnt(&sc.ae, OWNER, json!({"rn": "hiddenChild"}))
        .await;
    let listed = s
        .create_cnt(
            &sc.ae,
            OWNER,
            json!({"rn": "listedChild", "acpi": [sc.discover_acp]}),
        )
        .await;
    let seen = s
        .create_cnt(
            &sc.ae,
            OWNER,
            json!({"rn": "seenChild", "acpi": [sc.shared_acp]}),
        )
        .await;
    let events = rx.wait_events(2).await;
    let sur = format!(
        "{CSE_ID}/{}",
        r.inner("m2m:sub")["ri"].as_str().expect("ri")
    );
    assert_eq!(
        events[0],
        json!({"m2m:sgn": {"nev": {"rep": {"m2m:uri": listed["ri"]}, "net": 3}, "sur": sur}})
    );
    assert_eq!(
        events[1],
        json!({"m2m:sgn": {"nev": {"rep": {"m2m:cnt": seen}, "net": 3}, "sur": sur}})
    );
    // Nothing about the hidden child arrives later either: one more visible event is the
    // next thing the receiver gets.
    s.create_cnt(
        &sc.ae,
        OWNER,
        json!({"rn": "lastChild", "acpi": [sc.shared_acp]}),
    )
    .await;
    let events = rx.wait_events(3).await;
    assert_eq!(events.len(), 3);
    assert_eq!(
        events[2]["m2m:sgn"]["nev"]["rep"]["m2m:cnt"]["rn"],
        "lastChild"
    );
    assert!(!rx
        .all()
        .iter()
        .any(|m| m.body.to_string().contains("hiddenChild")));
}

/// A TCP server that answers every connection with a line that is not HTTP, then
/// closes it; returns its `http://` URL.
fn not_http_server() -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/n", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        }
    });
    url
}

/// An address nothing listens on.
fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[tokio::test]
async fn failed_verification_is_one_fixed_5204_whatever_the_target_did() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let refusing = Receiver::start().await;
    refusing
        .rsc
        .store(4103, std::sync::atomic::Ordering::SeqCst);
    let targets = [
        format!("http://{}/n", dead_address()),
        not_http_server(),
        refusing.url.clone(),
        format!("http://probe:s3cr3tpw@{}/n", dead_address()),
    ];
    let mut texts = Vec::new();
    for target in &targets {
        let r = s
            .create(
                &format!("{ae}/c"),
                OWNER,
                23,
                json!({"m2m:sub": {"nu": [target]}}),
            )
            .await;
        r.expect(5204);
        texts.push(r.dbg().to_owned());
    }
    assert_eq!(
        texts,
        vec!["the notification target could not be verified"; targets.len()],
        "the answer must not tell one failure from another"
    );
    // The detail is in the log, without the credentials of the URL.
    assert!(s.log_shows(
        "notification target not verified",
        std::time::Duration::from_secs(5)
    ));
    assert!(s.log_shows("http://***@127.0.0.1", std::time::Duration::from_secs(5)));
    assert!(!s.log().contains("s3cr3tpw"), "{}", s.log());
    // Nothing was created.
    let r = retrieved(&s, &format!("{ae}/c?rcn=6"), OWNER).await;
    assert_eq!(r.inner("m2m:rrl")["rrf"], json!([]));
}

/// Registers `aei` with `poa_url` as its point of access, creates its container `c` and a
/// subscription to it whose target is the AE-ID itself (notifications go to its poa);
/// returns the AE's and the container's paths.
async fn notified_through_own_poa(s: &Server, aei: &str, poa_url: &str) -> (String, String) {
    let ae = s.ae_with_poa(aei, &[poa_url]).await;
    s.create_cnt(&ae, aei, json!({"rn": "c"})).await;
    let cnt = format!("{ae}/c");
    s.create(
        &cnt,
        aei,
        23,
        json!({"m2m:sub": {"nu": [aei], "enc": {"net": [3]}}}),
    )
    .await
    .expect(2001);
    (ae, cnt)
}

fn is_vrq(m: &Received) -> bool {
    m.body["m2m:sgn"]["vrq"] == json!(true)
}

/// CREATE by `OWNER` of the subscription `rn` to `cnt`, notifying `nu` and, once it is
/// deleted, `su`.
async fn subscribe_with_su(s: &Server, cnt: &str, rn: &str, nu: &str, su: &str) -> Resp {
    s.create(
        cnt,
        OWNER,
        23,
        json!({"m2m:sub": {"rn": rn, "nu": [nu], "su": su}}),
    )
    .await
}

#[tokio::test]
async fn su_is_verified_like_nu() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "c"})).await;
    let cnt = format!("{ae}/c");
    let nu = Receiver::start().await;
    let su = Receiver::start().await;
    su.rsc.store(4103, std::sync::atomic::Ordering::SeqCst);
    // A refusing su fails the subscription, like a refusing nu.
    let r = subscribe_with_su(&s, &cnt, "s1", &nu.url, &su.url).await;
    r.expect(5204);
    assert_eq!(r.dbg(), "the notification target could not be verified");
    assert!(su.all().iter().any(is_vrq), "su was asked");
    s.get(&format!("{cnt}/s1"), OWNER).await.expect(4004);
    // An su on this CSE needs the subscriber's NOTIFY privilege there (a polling-only
    // AE whose default policy admits nobody else).
    let victim = s.polling_ae("Cvictim", "victim").await;
    let victim_id = s.get(&victim, "Cvictim").await.inner("m2m:ae")["aei"]
        .as_str()
        .expect("aei")
        .to_owned();
    let r = subscribe_with_su(&s, &cnt, "s2", &nu.url, &victim_id).await;
    r.expect(5204);
    // A confirming su is accepted, and its deletion notice arrives there.
    su.rsc.store(2000, std::sync::atomic::Ordering::SeqCst);
    let r = subscribe_with_su(&s, &cnt, "s3", &nu.url, &su.url).await;
    r.expect(2001);
    assert!(su.all().iter().filter(|m| is_vrq(m)).count() >= 2);
    s.delete(&format!("{cnt}/s3"), OWNER).await.expect(2002);
    let notice = su
        .wait_for(1, |m| m.body["m2m:sgn"]["sud"] == json!(true))
        .await;
    assert_eq!(notice.len(), 1);
}

#[tokio::test]
async fn an_aes_own_poa_is_verified_before_notifications_go_there() {
    let s = Server::start();
    // A bystander that is not oneM2M: it refuses whatever it gets.
    let bystander = Receiver::start().await;
    bystander
        .rsc
        .store(4000, std::sync::atomic::Ordering::SeqCst);
    // Subscribing with its own AE-ID as target asks nothing at creation...
    let (_, cnt) = notified_through_own_poa(&s, "Cmallory", &bystander.url).await;
    assert!(bystander.all().is_empty());
    // ...but the first notification for its poa is preceded by a verification, and the
    // refusal stops every notification to it.
    s.create_cin(&cnt, "Cmallory", "one").await;
    let got = bystander.wait_for(1, |_| true).await;
    assert!(is_vrq(&got[0]), "{:?}", got[0]);
    assert_eq!(got[0].origin, CSE_ID);
    s.create_cin(&cnt, "Cmallory", "two").await;
    s.create_cin(&cnt, "Cmallory", "three").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let all = bystander.all();
    assert_eq!(all.len(), 1, "only the verification reached it: {all:?}");

    // An AE whose poa confirms gets its notifications, after one verification; a new
    // poa is verified again.
    let rx = Receiver::start().await;
    let (ae, cnt) = notified_through_own_poa(&s, "Chonest", &rx.url).await;
    s.create_cin(&cnt, "Chonest", "a").await;
    s.create_cin(&cnt, "Chonest", "b").await;
    let events = rx.wait_events(2).await;
    assert_eq!(events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "a");
    assert_eq!(events[1]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "b");
    let all = rx.all();
    assert!(is_vrq(&all[0]), "verified first: {all:?}");
    assert_eq!(all.iter().filter(|m| is_vrq(m)).count(), 1, "{all:?}");
    let rx2 = Receiver::start().await;
    s.update(&ae, "Chonest", json!({"m2m:ae": {"poa": [rx2.url]}}))
        .await
        .expect(2004);
    s.create_cin(&cnt, "Chonest", "c").await;
    let events = rx2.wait_events(1).await;
    assert_eq!(events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "c");
    assert!(is_vrq(&rx2.all()[0]));
}

#[tokio::test]
async fn a_result_beyond_result_limit_is_partial() {
    let s = Server::start_with_config("[cse]\nresult-limit = 3\n");
    let ae = s.ae(OWNER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "big"})).await;
    let big = format!("{ae}/big");
    for i in 0..5 {
        s.create_cin(&big, OWNER, &format!("v{i}")).await;
    }
    let r = retrieved(&s, &format!("{big}?rcn=4"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), Some("1"), "partial: {}", r.text);
    let cins: Vec<&str> = r.inner("m2m:cnt")["m2m:cin"]
        .as_array()
        .expect("m2m:cin list")
        .iter()
        .map(|c| c["con"].as_str().expect("con"))
        .collect();
    assert_eq!(
        cins,
        vec!["v0", "v1", "v2"],
        "the oldest first, up to the limit"
    );
    let r = retrieved(&s, &format!("{big}?rcn=6"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), Some("1"));
    assert_eq!(r.inner("m2m:rrl")["rrf"].as_array().map(Vec::len), Some(3));
    // Nested levels share the one limit.
    let r = retrieved(&s, &format!("{ae}?rcn=4"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), Some("1"));
    let nested = &r.inner("m2m:ae")["m2m:cnt"][0]["m2m:cin"];
    assert_eq!(nested.as_array().map(Vec::len), Some(2), "{}", r.text);
    // What fits is complete, and says nothing.
    s.create_cnt(&ae, OWNER, json!({"rn": "small"})).await;
    s.create_cin(&format!("{ae}/small"), OWNER, "x").await;
    let r = retrieved(&s, &format!("{ae}/small?rcn=4"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), None);
}

#[tokio::test]
async fn fan_out_member_requests_are_capped_across_nested_groups() {
    let s = Server::start_with_config("[cse]\nfanout-limit = 4\n");
    let ae = s.ae(OWNER).await;
    let mut cnts = Vec::new();
    for i in 0..5 {
        let c = s
            .create_cnt(&ae, OWNER, json!({ "rn": format!("c{i}") }))
            .await;
        s.create_cin(&format!("{ae}/c{i}"), OWNER, &format!("v{i}"))
            .await;
        cnts.push(c["ri"].as_str().expect("ri").to_owned());
    }
    let group = |rn: &str, mid: Value| {
        s.create(
            &ae,
            OWNER,
            9,
            json!({"m2m:grp": {"rn": rn, "mnm": 10, "mid": mid}}),
        )
    };
    group("wide", json!(cnts)).await.expect(2001);
    let r = retrieved(&s, &format!("{ae}/wide/fopt/la"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), Some("1"), "{}", r.text);
    let list = r.inner("m2m:agr")["m2m:rsp"]
        .as_array()
        .expect("list")
        .clone();
    let asked: Vec<&str> = list.iter().map(|e| e["fr"].as_str().expect("fr")).collect();
    assert_eq!(
        asked,
        cnts[..4].iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Outer asks 3 (inner's fopt, c2, c3), so inner may ask only 1 of its 2 members.
    group("inner", json!([cnts[0], cnts[1]])).await.expect(2001);
    let inner = format!("{}/inner/fopt", &ae[1..]);
    group("outer", json!([inner, cnts[2], cnts[3]]))
        .await
        .expect(2001);
    let r = retrieved(&s, &format!("{ae}/outer/fopt/la"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), Some("1"), "{}", r.text);
    let list = r.inner("m2m:agr")["m2m:rsp"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 3, "{}", r.text);
    let nested = list[0]["pc"]["m2m:agr"]["m2m:rsp"]
        .as_array()
        .expect("nested list")
        .clone();
    assert_eq!(nested.len(), 1, "{}", r.text);
    assert_eq!(nested[0]["pc"]["m2m:cin"]["con"], "v0");
    // A fan-out within the limit is complete.
    group("two", json!([cnts[0], cnts[1]])).await.expect(2001);
    let r = retrieved(&s, &format!("{ae}/two/fopt/la"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), None);
}

#[tokio::test]
async fn filters_on_children_and_parents_see_only_what_the_originator_may_discover() {
    let s = Server::start();
    let sc = scene(&s).await;
    s.create_cnt(
        &sc.ae,
        OWNER,
        json!({"rn": "labelled", "lbl": ["topsecret"]}),
    )
    .await;
    // A RETRIEVE's filter cannot probe a hidden child's label or type: it selects among
    // the children the originator may see (TS-0001 8.1.2)...
    for (who, holding) in [(PARTNER, 0), (OWNER, 1)] {
        let r = retrieved(&s, &format!("{}?rcn=6&lbl=topsecret", sc.ae), who).await;
        let refs = r.body["m2m:rrl"]["rrf"].as_array().map_or(0, Vec::len);
        assert_eq!(refs, holding, "{who}: {}", r.text);
    }
    s.create(
        &sc.ae,
        OWNER,
        23,
        json!({"m2m:sub": {"rn": "mine", "nu": [OWNER]}}),
    )
    .await
    .expect(2001);
    // Another's subscription (its targets included) is not part of a partner's result.
    let r = retrieved(&s, &format!("{}?rcn=4", sc.ae), PARTNER).await;
    assert!(r.inner("m2m:ae").get("m2m:sub").is_none(), "{}", r.text);
    for (who, holding) in [(PARTNER, 0), (OWNER, 1)] {
        let r = retrieved(&s, &format!("{}?rcn=6&ty=23", sc.ae), who).await;
        let refs = r.body["m2m:rrl"]["rrf"].as_array().map_or(0, Vec::len);
        assert_eq!(refs, holding, "{who}: {}", r.text);
    }
    // ...nor can discovery.
    let r = s
        .get(&format!("/{CSE_NAME}?fu=1&clbl=topsecret"), PARTNER)
        .await;
    r.expect(2000);
    assert_eq!(r.uril(), Vec::<String>::new(), "{}", r.text);
    let r = s
        .get(&format!("/{CSE_NAME}?fu=1&clbl=topsecret"), OWNER)
        .await;
    r.expect(2000);
    assert_eq!(r.uril().len(), 1, "{}", r.text);
}

#[tokio::test]
async fn discovery_cut_by_the_cse_limit_is_partial() {
    let s = Server::start_with_config("[cse]\ndiscovery-limit = 2\n");
    let ae = s.ae(OWNER).await;
    for i in 0..3 {
        s.create_cnt(&ae, OWNER, json!({ "rn": format!("c{i}") }))
            .await;
    }
    let r = retrieved(&s, &format!("{ae}?fu=1&ty=3"), OWNER).await;
    assert_eq!(r.uril().len(), 2);
    assert_eq!(r.header("x-m2m-cts"), Some("1"));
    // The originator's own lim is no cut by the CSE.
    let r = retrieved(&s, &format!("{ae}?fu=1&ty=3&lim=2"), OWNER).await;
    assert_eq!(r.uril().len(), 2);
    assert_eq!(r.header("x-m2m-cts"), None);
}

#[tokio::test]
async fn a_container_with_retrieval_disabled_shows_no_instances_in_results_or_notifications() {
    let s = Server::start();
    let sc = scene(&s).await;
    s.create_cnt(
        &sc.ae,
        OWNER,
        json!({"rn": "locked", "acpi": [sc.shared_acp]}),
    )
    .await;
    let locked = format!("{}/locked", sc.ae);
    let rx = Receiver::start().await;
    let r = s
        .create(
            &locked,
            PARTNER,
            23,
            json!({"m2m:sub": {"nu": [rx.url], "enc": {"net": [3]}}}),
        )
        .await;
    r.expect(2001);
    s.update(&locked, OWNER, json!({"m2m:cnt": {"disr": true}}))
        .await
        .expect(2004);
    let cin = s.create_cin(&locked, OWNER, "sealed").await;
    s.get(&format!("{locked}/la"), PARTNER).await.expect(4005);
    let r = retrieved(&s, &format!("{locked}?rcn=4"), PARTNER).await;
    assert!(r.inner("m2m:cnt").get("m2m:cin").is_none(), "{}", r.text);
    assert!(!r.text.contains("sealed"));
    let events = rx.wait_events(1).await;
    assert_eq!(
        events[0]["m2m:sgn"]["nev"]["rep"],
        json!({"m2m:uri": cin["ri"]})
    );
}

#[tokio::test]
async fn a_result_beyond_result_max_bytes_is_partial() {
    let s = Server::start_with_config("[cse]\nresult-max-bytes = 1024\n");
    let ae = s.ae(OWNER).await;
    s.create_cnt(&ae, OWNER, json!({"rn": "big"})).await;
    let big = format!("{ae}/big");
    for i in 0..5 {
        s.create_cin(&big, OWNER, &format!("{i}{}", "x".repeat(299)))
            .await;
    }
    let r = retrieved(&s, &format!("{big}?rcn=4"), OWNER).await;
    assert_eq!(r.header("x-m2m-cts"), Some("1"), "partial: {}", r.text);
    let firsts: Vec<char> = r.inner("m2m:cnt")["m2m:cin"]
        .as_array()
        .expect("m2m:cin list")
        .iter()
        .map(|c| {
            c["con"]
                .as_str()
                .expect("con")
                .chars()
                .next()
                .expect("char")
        })
        .collect();
    assert!(!firsts.is_empty() && firsts.len() < 5, "{firsts:?}");
    let oldest: Vec<char> = "01234".chars().take(firsts.len()).collect();
    assert_eq!(firsts, oldest, "the oldest first");
    assert!(r.text.len() < 1024 + 1024, "{}", r.text.len());
}
