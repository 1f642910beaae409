//! Discovery and filter criteria (TS-0004 §7.3.3.14-17; core-resources.md §5): `m2m:uril`
//! results, `drt`, the `ty`/`lbl`/`crb`/`cra` conditions, `lim`/`ofst`/`lvl`, `rcn` 6, and
//! filter criteria selecting the children of a plain RETRIEVE.

use crate::common;

use common::*;
use serde_json::json;
use std::collections::BTreeSet;

const AE: &str = "/cse-in/Cowner";

/// Builds:
/// ```text
/// cse-in/Cowner
///   c1 (lbl a)  ── sub (cnt, lbl b)
///               └─ i1  (cin, lbl a)
///   c2 (lbl b)
///   c3
/// ```
async fn tree(s: &Server) {
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c1", "lbl": ["a"]}))
        .await;
    s.create_cnt(
        &format!("{AE}/c1"),
        "Cowner",
        json!({"rn": "sub", "lbl": ["b"]}),
    )
    .await;
    s.create(
        &format!("{AE}/c1"),
        "Cowner",
        4,
        json!({"m2m:cin": {"rn": "i1", "con": "x", "lbl": ["a"]}}),
    )
    .await
    .expect(2001);
    s.create_cnt(AE, "Cowner", json!({"rn": "c2", "lbl": ["b"]}))
        .await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c3"})).await;
}

async fn discover(s: &Server, target: &str, query: &str) -> Vec<String> {
    let r = s
        .request("GET", &format!("{target}?fu=1{query}"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    r.uril()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|i| format!("cse-in/Cowner{i}")).collect()
}

fn as_set(v: Vec<String>) -> BTreeSet<String> {
    v.into_iter().collect()
}

#[tokio::test]
async fn ts0004_7_3_3_14_discovery_returns_structured_uril() {
    let s = Server::start();
    tree(&s).await;
    let got = discover(&s, AE, "").await;
    assert_eq!(
        as_set(got.clone()),
        set(&["/c1", "/c1/sub", "/c1/i1", "/c2", "/c3"]),
        "{got:?}"
    );
    assert_eq!(got.len(), 5, "no duplicates: {got:?}");
    let pos = |x: &str| got.iter().position(|g| g == x).unwrap();
    assert!(
        pos("cse-in/Cowner/c1") < pos("cse-in/Cowner/c1/sub"),
        "parents first: {got:?}"
    );
    assert!(
        pos("cse-in/Cowner/c1") < pos("cse-in/Cowner/c1/i1"),
        "parents first: {got:?}"
    );
    // The root itself is not a result; a deeper root bounds the search.
    assert_eq!(
        as_set(discover(&s, &format!("{AE}/c1"), "").await),
        set(&["/c1/sub", "/c1/i1"])
    );
    // SP-relative and unstructured roots work too.
    assert_eq!(as_set(discover(&s, "/~/id-in/Cowner", "").await).len(), 5);
}

#[tokio::test]
async fn ts0004_7_3_3_14_discovery_with_unstructured_identifiers() {
    let s = Server::start();
    tree(&s).await;
    let mut ris = BTreeSet::new();
    for p in ["c1", "c1/sub", "c1/i1", "c2", "c3"] {
        let r = s.get(&format!("{AE}/{p}"), "Cowner").await;
        r.expect(2000);
        let body = r.body.as_object().unwrap().values().next().unwrap().clone();
        ris.insert(body["ri"].as_str().unwrap().to_owned());
    }
    let got = discover(&s, AE, "&drt=2").await;
    assert_eq!(as_set(got), ris);
}

#[tokio::test]
async fn ts0004_7_3_3_17_resource_type_filter() {
    let s = Server::start();
    tree(&s).await;
    assert_eq!(
        as_set(discover(&s, AE, "&ty=3").await),
        set(&["/c1", "/c1/sub", "/c2", "/c3"])
    );
    assert_eq!(as_set(discover(&s, AE, "&ty=4").await), set(&["/c1/i1"]));
    assert_eq!(as_set(discover(&s, AE, "&ty=3+4").await).len(), 5);
    assert_eq!(as_set(discover(&s, AE, "&ty=3&ty=4").await).len(), 5);
    assert!(discover(&s, AE, "&ty=1").await.is_empty());
    assert!(discover(&s, AE, "&ty=2").await.is_empty());
    s.request("GET", &format!("{AE}?fu=1&ty=x"))
        .from("Cowner")
        .send()
        .await
        .expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_3_17_label_filter() {
    let s = Server::start();
    tree(&s).await;
    assert_eq!(
        as_set(discover(&s, AE, "&lbl=a").await),
        set(&["/c1", "/c1/i1"])
    );
    assert_eq!(
        as_set(discover(&s, AE, "&lbl=b").await),
        set(&["/c1/sub", "/c2"])
    );
    // Several labels: any in common.
    assert_eq!(
        as_set(discover(&s, AE, "&lbl=a&lbl=b").await),
        set(&["/c1", "/c1/i1", "/c1/sub", "/c2"])
    );
    assert_eq!(as_set(discover(&s, AE, "&lbl=a+b").await).len(), 4);
    assert!(discover(&s, AE, "&lbl=zzz").await.is_empty());
    // Different conditions are ANDed.
    assert_eq!(as_set(discover(&s, AE, "&lbl=a&ty=3").await), set(&["/c1"]));
    // ...or ORed with fo=2.
    assert_eq!(
        as_set(discover(&s, AE, "&lbl=b&ty=4&fo=2").await),
        set(&["/c1/sub", "/c2", "/c1/i1"])
    );
}

#[tokio::test]
async fn ts0004_7_3_3_17_limit_and_offset() {
    let s = Server::start();
    s.ae("Cowner").await;
    for i in 1..=5 {
        s.create_cnt(AE, "Cowner", json!({"rn": format!("d{i}")}))
            .await;
    }
    let all = discover(&s, AE, "&ty=3").await;
    assert_eq!(all.len(), 5);
    assert_eq!(discover(&s, AE, "&ty=3&lim=2").await, all[0..2].to_vec());
    // ofst counts from 1.
    assert_eq!(
        discover(&s, AE, "&ty=3&ofst=1&lim=2").await,
        all[0..2].to_vec()
    );
    assert_eq!(
        discover(&s, AE, "&ty=3&ofst=3&lim=2").await,
        all[2..4].to_vec()
    );
    assert_eq!(
        discover(&s, AE, "&ty=3&ofst=5&lim=2").await,
        all[4..5].to_vec()
    );
    assert_eq!(discover(&s, AE, "&ty=3&ofst=2").await, all[1..5].to_vec());
    assert!(discover(&s, AE, "&ty=3&ofst=6").await.is_empty());
    assert!(discover(&s, AE, "&ty=3&lim=0").await.is_empty());
    assert_eq!(discover(&s, AE, "&ty=3&lim=99").await, all);
    // Siblings come in creation order.
    let expected: Vec<String> = (1..=5).map(|i| format!("cse-in/Cowner/d{i}")).collect();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn ts0004_7_3_3_17_level() {
    let s = Server::start();
    tree(&s).await;
    s.create_cnt(&format!("{AE}/c1/sub"), "Cowner", json!({"rn": "deep"}))
        .await;
    assert_eq!(
        as_set(discover(&s, AE, "&lvl=1").await),
        set(&["/c1", "/c2", "/c3"])
    );
    assert_eq!(
        as_set(discover(&s, AE, "&lvl=2").await),
        set(&["/c1", "/c2", "/c3", "/c1/sub", "/c1/i1"])
    );
    assert_eq!(as_set(discover(&s, AE, "&lvl=3").await).len(), 6);
    assert_eq!(as_set(discover(&s, AE, "").await).len(), 6);
}

/// `crb`/`cra` against creation times are tested in-process with a set clock
/// (bastion-core/tests/clock.rs); over HTTP, a malformed time is 4000.
#[tokio::test]
async fn ts0004_7_3_3_17_created_before_malformed() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.request("GET", &format!("{AE}?fu=1&crb=yesterday"))
        .from("Cowner")
        .send()
        .await
        .expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_3_14_child_resource_references() {
    let s = Server::start();
    tree(&s).await;
    let r = s
        .request("GET", &format!("{AE}?fu=1&rcn=6"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    let rrf = r.inner("m2m:rrl")["rrf"].as_array().expect("rrf").clone();
    let got: BTreeSet<(String, u64, String)> = rrf
        .iter()
        .map(|x| {
            (
                x["nm"].as_str().unwrap().to_owned(),
                x["typ"].as_u64().unwrap(),
                x["val"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, u64, String)> = [
        ("c1", 3, "/c1"),
        ("sub", 3, "/c1/sub"),
        ("i1", 4, "/c1/i1"),
        ("c2", 3, "/c2"),
        ("c3", 3, "/c3"),
    ]
    .iter()
    .map(|(n, t, v)| ((*n).to_owned(), *t, format!("cse-in/Cowner{v}")))
    .collect();
    assert_eq!(got, want);
    // Other result contents are not discovery results.
    for rcn in [1, 4, 5, 8] {
        s.request("GET", &format!("{AE}?fu=1&rcn={rcn}"))
            .from("Cowner")
            .send()
            .await
            .expect(4000);
    }
}

#[tokio::test]
async fn ts0004_7_3_3_14_content_instances_are_discovered() {
    let s = Server::start();
    s.ae("Cowner").await;
    s.create_cnt(AE, "Cowner", json!({"rn": "c", "mni": 3}))
        .await;
    let mut rns = Vec::new();
    for _ in 0..5 {
        let c = s.create_cin(&format!("{AE}/c"), "Cowner", "v").await;
        rns.push(c["rn"].as_str().unwrap().to_owned());
    }
    let got = discover(&s, &format!("{AE}/c"), "&ty=4").await;
    let want: Vec<String> = rns[2..]
        .iter()
        .map(|rn| format!("cse-in/Cowner/c/{rn}"))
        .collect();
    assert_eq!(
        as_set(got),
        want.into_iter().collect::<BTreeSet<_>>(),
        "evicted ones are gone"
    );
    s.delete(&format!("{AE}/c/la"), "Cowner").await.expect(2002);
    assert_eq!(discover(&s, &format!("{AE}/c"), "&ty=4").await.len(), 2);
}

#[tokio::test]
async fn ts0001_8_1_2_retrieve_filter_criteria_select_children() {
    let s = Server::start();
    tree(&s).await;
    let get = |q: &str| {
        s.request("GET", &format!("{AE}/c1?{q}"))
            .from("Cowner")
            .send()
    };
    // The target is returned whatever the criteria say.
    for q in ["lbl=zzz", "lbl=a", "fu=2&lbl=b", "ty=4", "ty=3"] {
        let r = get(q).await;
        r.expect(2000);
        assert_eq!(r.inner("m2m:cnt")["rn"], "c1", "{q}");
    }
    // They choose the children: c1 holds the container `sub` (b) and the instance i1 (a).
    let refs = |r: &Resp| -> BTreeSet<String> {
        r.body["m2m:rrl"]["rrf"]
            .as_array()
            .expect("child references")
            .iter()
            .map(|c| c["nm"].as_str().expect("name").to_owned())
            .collect()
    };
    let both = BTreeSet::from(["i1".to_owned(), "sub".to_owned()]);
    for (q, want) in [
        ("rcn=6", both.clone()),
        ("rcn=6&lbl=a", BTreeSet::from(["i1".to_owned()])),
        ("rcn=6&ty=3", BTreeSet::from(["sub".to_owned()])),
        ("rcn=6&lbl=a&lbl=b", both),
        ("rcn=6&lbl=zzz", BTreeSet::new()),
    ] {
        let r = get(q).await;
        r.expect(2000);
        assert_eq!(refs(&r), want, "{q}");
    }
}

#[tokio::test]
async fn ts0004_7_3_3_17_conditional_update() {
    let s = Server::start();
    tree(&s).await;
    // Conditional UPDATE with no match changes nothing.
    s.request("PUT", &format!("{AE}/c2?lbl=a"))
        .from("Cowner")
        .json(&json!({"m2m:cnt": {"lbl": ["changed"]}}))
        .send()
        .await
        .expect(4004);
    let r = s.get(&format!("{AE}/c2"), "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["lbl"], json!(["b"]));
}

#[tokio::test]
async fn ts0004_7_3_3_17_conditional_delete() {
    let s = Server::start();
    tree(&s).await;
    // Conditional DELETE with no match deletes nothing.
    s.request("DELETE", &format!("{AE}/c2?lbl=a"))
        .from("Cowner")
        .send()
        .await
        .expect(4004);
    s.get(&format!("{AE}/c2"), "Cowner").await.expect(2000);
    s.request("DELETE", &format!("{AE}/c2?lbl=b"))
        .from("Cowner")
        .send()
        .await
        .expect(2002);
    s.get(&format!("{AE}/c2"), "Cowner").await.expect(4004);
}
