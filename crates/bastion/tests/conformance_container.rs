//! Container semantics (TS-0004 §7.4.7.2, §7.4.8; core-resources.md §3.3-§3.5): limits,
//! eviction of the oldest instances, exact counters, the state tag, the virtual `la`/`ol`
//! children, `disr` and `mia`.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// Registers `Cowner` and creates `/cse-in/Cowner/cnt` with `attrs`; returns its path.
async fn cnt_with(s: &Server, attrs: Value) -> String {
    let ae = s.ae("Cowner").await;
    let mut attrs = attrs;
    attrs["rn"] = json!("cnt");
    s.create_cnt(&ae, "Cowner", attrs).await;
    format!("{ae}/cnt")
}

async fn cin(s: &Server, cnt: &str, rn: &str, con: &str) -> Value {
    let r = s
        .create(cnt, "Cowner", 4, json!({"m2m:cin": {"rn": rn, "con": con}}))
        .await;
    r.expect(2001);
    r.inner("m2m:cin").clone()
}

/// (cni, cbs, st) of the container.
async fn counters(s: &Server, cnt: &str) -> (u64, u64, u64) {
    let r = s.get(cnt, "Cowner").await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    (
        c["cni"].as_u64().expect("cni"),
        c["cbs"].as_u64().expect("cbs"),
        c["st"].as_u64().expect("st"),
    )
}

/// (cni, cbs) of the container.
async fn sizes(s: &Server, cnt: &str) -> (u64, u64) {
    let (cni, cbs, _) = counters(s, cnt).await;
    (cni, cbs)
}

async fn con_of(s: &Server, path: &str) -> String {
    let r = s.get(path, "Cowner").await;
    r.expect(2000);
    r.inner("m2m:cin")["con"].as_str().expect("con").to_owned()
}

#[tokio::test]
async fn ts0004_7_4_7_2_mni_evicts_the_oldest() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({"mni": 3})).await;
    for i in 1..=5 {
        cin(&s, &cnt, &format!("i{i}"), &format!("v{i}")).await;
    }
    let (cni, cbs, _) = counters(&s, &cnt).await;
    assert_eq!((cni, cbs), (3, 6));
    for gone in ["i1", "i2"] {
        s.get(&format!("{cnt}/{gone}"), "Cowner").await.expect(4004);
    }
    for kept in ["i3", "i4", "i5"] {
        s.get(&format!("{cnt}/{kept}"), "Cowner").await.expect(2000);
    }
    assert_eq!(con_of(&s, &format!("{cnt}/ol")).await, "v3");
    assert_eq!(con_of(&s, &format!("{cnt}/la")).await, "v5");
    // Lowering mni evicts at once.
    let r = s
        .update(&cnt, "Cowner", json!({"m2m:cnt": {"mni": 1}}))
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["cni"], 1);
    assert_eq!(r.inner("m2m:cnt")["cbs"], 2);
    assert_eq!(con_of(&s, &format!("{cnt}/ol")).await, "v5");
    s.get(&format!("{cnt}/i4"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0004_7_4_7_2_counters_are_exact_after_creates_and_deletes() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({})).await;
    assert_eq!(counters(&s, &cnt).await, (0, 0, 0));
    let a = cin(&s, &cnt, "a", "x").await;
    assert_eq!(a["cs"], 1);
    let b = cin(&s, &cnt, "b", "yy").await;
    assert_eq!(b["cs"], 2);
    cin(&s, &cnt, "c", "zzzz").await;
    cin(&s, &cnt, "d", "").await;
    cin(&s, &cnt, "e", "äö").await; // 4 bytes of UTF-8
    assert_eq!(counters(&s, &cnt).await, (5, 11, 5));
    s.delete(&format!("{cnt}/b"), "Cowner").await.expect(2002);
    assert_eq!(sizes(&s, &cnt).await, (4, 9));
    s.delete(&format!("/{}", a["ri"].as_str().unwrap()), "Cowner")
        .await
        .expect(2002);
    assert_eq!(sizes(&s, &cnt).await, (3, 8));
    s.delete(&format!("{cnt}/b"), "Cowner").await.expect(4004);
    assert_eq!(sizes(&s, &cnt).await, (3, 8));
    cin(&s, &cnt, "f", "123").await;
    assert_eq!(sizes(&s, &cnt).await, (4, 11));
}

#[tokio::test]
async fn ts0004_7_4_7_2_content_larger_than_mbs_is_not_acceptable() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({"mbs": 10})).await;
    cin(&s, &cnt, "small", "0123456789").await; // exactly mbs
    let r = s
        .create(
            &cnt,
            "Cowner",
            4,
            json!({"m2m:cin": {"rn": "big", "con": "0123456789A"}}),
        )
        .await;
    r.expect(5207);
    assert_eq!(r.status, 406);
    s.get(&format!("{cnt}/big"), "Cowner").await.expect(4004);
    // Nothing stored, nothing evicted, no state change.
    assert_eq!(counters(&s, &cnt).await, (1, 10, 1));
    assert_eq!(con_of(&s, &format!("{cnt}/la")).await, "0123456789");
}

#[tokio::test]
async fn ts0004_7_4_7_2_mbs_evicts_the_oldest() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({"mbs": 10})).await;
    cin(&s, &cnt, "a", "aaaa").await;
    cin(&s, &cnt, "b", "bbbb").await;
    assert_eq!(counters(&s, &cnt).await, (2, 8, 2));
    cin(&s, &cnt, "c", "cccc").await;
    assert_eq!(counters(&s, &cnt).await, (2, 8, 3));
    s.get(&format!("{cnt}/a"), "Cowner").await.expect(4004);
    assert_eq!(con_of(&s, &format!("{cnt}/ol")).await, "bbbb");
    cin(&s, &cnt, "d", "dddddddddd").await;
    assert_eq!(counters(&s, &cnt).await, (1, 10, 4));
    assert_eq!(con_of(&s, &format!("{cnt}/ol")).await, "dddddddddd");
    // Lowering mbs evicts at once.
    lower_mbs_evicts_at_once(&s, &cnt).await;
}

async fn lower_mbs_evicts_at_once(s: &Server, cnt: &str) {
    s.update(cnt, "Cowner", json!({"m2m:cnt": {"mbs": 20}}))
        .await
        .expect(2004);
    cin(s, cnt, "e", "ee").await;
    cin(s, cnt, "f", "fff").await;
    assert_eq!(counters(s, cnt).await.0, 3);
    let r = s
        .update(cnt, "Cowner", json!({"m2m:cnt": {"mbs": 5}}))
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["cni"], 2);
    assert_eq!(r.inner("m2m:cnt")["cbs"], 5);
    s.get(&format!("{cnt}/d"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0004_7_4_7_2_state_tag_increments_and_is_copied() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({})).await;
    assert_eq!(counters(&s, &cnt).await.2, 0);
    for n in 1..=3u64 {
        let c = cin(&s, &cnt, &format!("i{n}"), "x").await;
        assert_eq!(c["st"], n, "instance carries the container's new st");
        assert_eq!(counters(&s, &cnt).await.2, n);
    }
    let r = s
        .update(&cnt, "Cowner", json!({"m2m:cnt": {"lbl": ["u"]}}))
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["st"], 4);
    assert_eq!(cin(&s, &cnt, "i4", "x").await["st"], 5);
    // An evicting container keeps counting.
    let ae = "/cse-in/Cowner";
    s.create_cnt(ae, "Cowner", json!({"rn": "one", "mni": 1}))
        .await;
    for n in 1..=3u64 {
        let c = cin(&s, &format!("{ae}/one"), &format!("j{n}"), "x").await;
        assert_eq!(c["st"], n);
    }
}

#[tokio::test]
async fn ts0004_7_4_7_2_latest_and_oldest() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({})).await;
    for (rn, con) in [
        ("a", "first"),
        ("b", "second"),
        ("c", "third"),
        ("d", "fourth"),
    ] {
        cin(&s, &cnt, rn, con).await;
    }
    let la = s.get(&format!("{cnt}/la"), "Cowner").await;
    la.expect(2000);
    assert_eq!(la.inner("m2m:cin")["rn"], "d");
    assert_eq!(la.inner("m2m:cin")["con"], "fourth");
    let ol = s.get(&format!("{cnt}/ol"), "Cowner").await;
    ol.expect(2000);
    assert_eq!(ol.inner("m2m:cin")["rn"], "a");
    // DELETE of ol removes the oldest and keeps the counters exact.
    let r = s.delete(&format!("{cnt}/ol"), "Cowner").await;
    r.expect(2002);
    s.get(&format!("{cnt}/a"), "Cowner").await.expect(4004);
    assert_eq!(sizes(&s, &cnt).await, (3, 6 + 5 + 6));
    assert_eq!(con_of(&s, &format!("{cnt}/ol")).await, "second");
    // DELETE of la removes the newest; la then names the one before.
    let r = s
        .request("DELETE", &format!("{cnt}/la?rcn=1"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2002);
    assert_eq!(r.inner("m2m:cin")["rn"], "d");
    s.get(&format!("{cnt}/d"), "Cowner").await.expect(4004);
    assert_eq!(sizes(&s, &cnt).await, (2, 6 + 5));
    assert_eq!(con_of(&s, &format!("{cnt}/la")).await, "third");
    // Deleting the latest directly also moves la.
    s.delete(&format!("{cnt}/c"), "Cowner").await.expect(2002);
    assert_eq!(con_of(&s, &format!("{cnt}/la")).await, "second");
    assert_eq!(con_of(&s, &format!("{cnt}/ol")).await, "second");
    assert_eq!(sizes(&s, &cnt).await, (1, 6));
    // A new instance becomes la.
    cin(&s, &cnt, "e", "fifth").await;
    assert_eq!(con_of(&s, &format!("{cnt}/la")).await, "fifth");
}

#[tokio::test]
async fn ts0004_7_4_7_2_latest_of_empty_container_is_not_found() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({})).await;
    s.get(&format!("{cnt}/la"), "Cowner").await.expect(4004);
    s.get(&format!("{cnt}/ol"), "Cowner").await.expect(4004);
    s.delete(&format!("{cnt}/la"), "Cowner").await.expect(4004);
    s.delete(&format!("{cnt}/ol"), "Cowner").await.expect(4004);
    cin(&s, &cnt, "only", "x").await;
    s.delete(&format!("{cnt}/la"), "Cowner").await.expect(2002);
    s.get(&format!("{cnt}/la"), "Cowner").await.expect(4004);
    s.get(&format!("{cnt}/ol"), "Cowner").await.expect(4004);
    assert_eq!(sizes(&s, &cnt).await, (0, 0));
}

#[tokio::test]
async fn ts0004_7_4_7_2_latest_and_oldest_cannot_be_created_or_updated() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({})).await;
    cin(&s, &cnt, "a", "x").await;
    for v in ["la", "ol"] {
        s.create(
            &format!("{cnt}/{v}"),
            "Cowner",
            4,
            json!({"m2m:cin": {"con": "y"}}),
        )
        .await
        .expect(4005);
        s.update(
            &format!("{cnt}/{v}"),
            "Cowner",
            json!({"m2m:cin": {"lbl": ["y"]}}),
        )
        .await
        .expect(4005);
    }
    assert_eq!(counters(&s, &cnt).await, (1, 1, 1));
}

#[tokio::test]
async fn ts0004_7_4_7_2_disable_retrieval() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({"disr": true})).await;
    let c = cin(&s, &cnt, "a", "secret").await;
    cin(&s, &cnt, "b", "secret2").await;
    for path in [
        format!("{cnt}/la"),
        format!("{cnt}/ol"),
        format!("{cnt}/a"),
        format!("/{}", c["ri"].as_str().unwrap()),
    ] {
        s.get(&path, "Cowner").await.expect(4005);
        s.delete(&path, "Cowner").await.expect(4005);
    }
    assert_eq!(counters(&s, &cnt).await, (2, 13, 2));
    // Switching disr from true to false deletes every instance.
    let r = s
        .update(&cnt, "Cowner", json!({"m2m:cnt": {"disr": false}}))
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["cni"], 0);
    assert_eq!(r.inner("m2m:cnt")["cbs"], 0);
    s.get(&format!("{cnt}/a"), "Cowner").await.expect(4004);
    s.get(&format!("{cnt}/la"), "Cowner").await.expect(4004);
    cin(&s, &cnt, "c", "open").await;
    assert_eq!(con_of(&s, &format!("{cnt}/la")).await, "open");
}

#[tokio::test]
async fn ts0004_7_4_7_2_max_instance_age_caps_et() {
    let s = Server::start();
    let cnt = cnt_with(&s, json!({"mia": 100})).await;
    let c = cin(&s, &cnt, "a", "x").await;
    let ct = parse_ts(c["ct"].as_str().unwrap());
    let et = parse_ts(c["et"].as_str().unwrap());
    assert!((99..=100).contains(&(et - ct)), "et - ct = {}", et - ct);
    // An explicit later et is capped too; an earlier one is kept.
    let r = s
        .create(
            &cnt,
            "Cowner",
            4,
            json!({"m2m:cin": {"con": "y", "et": ts(86_400)}}),
        )
        .await;
    r.expect(2001);
    let c = r.inner("m2m:cin");
    let d = parse_ts(c["et"].as_str().unwrap()) - parse_ts(c["ct"].as_str().unwrap());
    assert!((99..=100).contains(&d), "et - ct = {d}");
    let early = ts(30);
    let r = s
        .create(
            &cnt,
            "Cowner",
            4,
            json!({"m2m:cin": {"con": "z", "et": early}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:cin")["et"], early.as_str());
}

// Instances leaving the counters when `mia` passes is tested in-process with a set clock
// (bastion-core/tests/clock.rs: `ts0004_7_4_7_2_expired_instances_leave_the_counters`).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ts0004_7_4_7_2_counters_stay_exact_under_concurrent_creates() {
    let s = std::sync::Arc::new(Server::start());
    let cnt = cnt_with(&s, json!({"mni": 10, "mbs": 200})).await;
    let mut tasks = Vec::new();
    for t in 0..16usize {
        let s = s.clone();
        let cnt = cnt.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..20usize {
                let con = "c".repeat(1 + (t + n) % 30);
                s.create(
                    &cnt,
                    "Cowner",
                    4,
                    json!({"m2m:cin": {"rn": format!("t{t}n{n}"), "con": con}}),
                )
                .await
                .expect(2001);
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let r = s
        .request("GET", &format!("{cnt}?rcn=4"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    let c = r.inner("m2m:cnt");
    let cins = c["m2m:cin"].as_array().cloned().unwrap_or_default();
    let sum: u64 = cins.iter().map(|i| i["cs"].as_u64().unwrap()).sum();
    assert_eq!(c["cni"].as_u64(), Some(cins.len() as u64));
    assert_eq!(c["cbs"].as_u64(), Some(sum));
    assert!(
        cins.len() <= 10 && sum <= 200,
        "limits hold: {} / {sum}",
        cins.len()
    );
    assert_eq!(c["st"], 320, "one state change per created instance");
    // The survivors are the newest ones: their st values are the highest.
    let mut sts: Vec<u64> = cins.iter().map(|i| i["st"].as_u64().unwrap()).collect();
    sts.sort_unstable();
    let expected: Vec<u64> = (321 - sts.len() as u64..=320).collect();
    assert_eq!(sts, expected);
    let la = s.get(&format!("{cnt}/la"), "Cowner").await;
    assert_eq!(la.inner("m2m:cin")["st"], 320);
}
