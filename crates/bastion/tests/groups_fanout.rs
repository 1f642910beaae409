//! Group fan-out (TS-0001 10.2.7.6-10.2.7.10, 9.6.13; core-resources.md §3.8): requests
//! to `<group>/fopt[/path]` re-issued to every member, each member's own access control
//! deciding, `macp` (else `acpi`) deciding at the group, against the real binary over HTTP.

use crate::common;

use common::*;
use serde_json::{json, Value};

const OWNER: &str = "Cowner";
const OTHER: &str = "Cother";

/// The `m2m:rsp` entries of an aggregated response.
#[track_caller]
fn entries(r: &Resp) -> Vec<Value> {
    r.expect(2000);
    r.inner("m2m:agr")["m2m:rsp"]
        .as_array()
        .unwrap_or_else(|| panic!("m2m:rsp is not a list: {}", r.text))
        .clone()
}

fn codes(entries: &[Value]) -> Vec<u64> {
    entries
        .iter()
        .map(|e| e["rsc"].as_u64().unwrap_or(0))
        .collect()
}

/// Creates a group `rn` under `parent` as `orig`; returns its attributes.
async fn create_group(s: &Server, parent: &str, orig: &str, rn: &str, grp: Value) -> Value {
    let mut grp = grp;
    grp["rn"] = json!(rn);
    let r = s.create(parent, orig, 9, json!({ "m2m:grp": grp })).await;
    r.expect(2001);
    r.inner("m2m:grp").clone()
}

/// `OWNER`'s AE with three containers `c0..c2`, each holding one instance; returns the
/// AE path and the containers' resource IDs.
async fn owner_with_containers(s: &Server) -> (String, Vec<String>) {
    let ae = s.ae(OWNER).await;
    let mut ris = Vec::new();
    for i in 0..3 {
        let cnt = s
            .create_cnt(&ae, OWNER, json!({ "rn": format!("c{i}") }))
            .await;
        s.create_cin(&format!("{ae}/c{i}"), OWNER, &format!("v{i}"))
            .await;
        ris.push(cnt["ri"].as_str().expect("ri").to_owned());
    }
    (ae, ris)
}

#[tokio::test]
async fn fopt_retrieve_of_latest_reaches_every_member() {
    let s = Server::start();
    let (ae, cnts) = owner_with_containers(&s).await;
    let grp = create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": cnts})).await;
    let r = s.get(&format!("{ae}/g/fopt/la"), OWNER).await;
    let list = entries(&r);
    assert_eq!(codes(&list), vec![2000, 2000, 2000], "{}", r.text);
    for (i, e) in list.iter().enumerate() {
        assert_eq!(e["fr"], json!(cnts[i]), "member order: {}", r.text);
        assert_eq!(e["pc"]["m2m:cin"]["con"], json!(format!("v{i}")));
        assert!(e["rqi"].is_string());
    }
    // The same through the group's resource ID.
    let ri = grp["ri"].as_str().expect("ri");
    let r = s.get(&format!("/{ri}/fopt/la"), OWNER).await;
    assert_eq!(codes(&entries(&r)), vec![2000, 2000, 2000]);
}

#[tokio::test]
async fn member_access_control_decides_per_member() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.ae(OTHER).await;
    let share = s
        .create_acp(
            &ae,
            OWNER,
            "share",
            json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": [OTHER], "acop": 2}]}),
            rules(&[OWNER], 63),
        )
        .await;
    let share_ri = share["ri"].as_str().expect("ri").to_owned();
    // c0 and c1 share with OTHER; c2 keeps the default policy (its creator only).
    let mut cnts = Vec::new();
    for i in 0..3 {
        let mut attrs = json!({ "rn": format!("c{i}") });
        if i < 2 {
            attrs["acpi"] = json!([share_ri]);
        }
        let cnt = s.create_cnt(&ae, OWNER, attrs).await;
        s.create_cin(&format!("{ae}/c{i}"), OWNER, "x").await;
        cnts.push(cnt["ri"].as_str().expect("ri").to_owned());
    }
    // The group itself has no acpi (only its creator may use it); `macp` lets OTHER
    // fan out retrievals.
    create_group(
        &s,
        &ae,
        OWNER,
        "g",
        json!({"mnm": 10, "mid": cnts, "macp": [share_ri]}),
    )
    .await;
    let r = s.get(&format!("{ae}/g/fopt/la"), OTHER).await;
    assert_eq!(codes(&entries(&r)), vec![2000, 2000, 4103], "{}", r.text);
    // macp grants no UPDATE to OTHER: refused at the group.
    let r = s
        .update(
            &format!("{ae}/g/fopt"),
            OTHER,
            json!({"m2m:cnt": {"lbl": ["x"]}}),
        )
        .await;
    r.expect(4103);
    // OTHER cannot read the group itself (acpi empty): macp governs only fopt.
    s.get(&format!("{ae}/g"), OTHER).await.expect(4103);
}

#[tokio::test]
async fn fopt_create_adds_an_instance_to_every_member() {
    let s = Server::start();
    let (ae, cnts) = owner_with_containers(&s).await;
    create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": cnts})).await;
    let r = s
        .create(
            &format!("{ae}/g/fopt"),
            OWNER,
            4,
            json!({"m2m:cin": {"con": "fanned"}}),
        )
        .await;
    let list = entries(&r);
    assert_eq!(codes(&list), vec![2001, 2001, 2001], "{}", r.text);
    for i in 0..3 {
        let la = s.get(&format!("{ae}/c{i}/la"), OWNER).await;
        la.expect(2000);
        assert_eq!(la.inner("m2m:cin")["con"], "fanned");
        let cnt = s.get(&format!("{ae}/c{i}"), OWNER).await;
        assert_eq!(cnt.inner("m2m:cnt")["cni"], 2);
    }
}

#[tokio::test]
async fn fopt_delete_removes_deleted_members_from_mid() {
    let s = Server::start();
    let (ae, cnts) = owner_with_containers(&s).await;
    // A member OWNER may not delete: OTHER's container (default policy).
    let other = s.ae(OTHER).await;
    let foreign = s.create_cnt(&other, OTHER, json!({"rn": "mine"})).await;
    let foreign = foreign["ri"].as_str().expect("ri").to_owned();
    let mid = json!([cnts[0], foreign, cnts[1]]);
    create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": mid})).await;
    let r = s.delete(&format!("{ae}/g/fopt"), OWNER).await;
    assert_eq!(codes(&entries(&r)), vec![2002, 4103, 2002], "{}", r.text);
    let g = s.get(&format!("{ae}/g"), OWNER).await;
    g.expect(2000);
    assert_eq!(g.inner("m2m:grp")["mid"], json!([foreign]));
    assert_eq!(g.inner("m2m:grp")["cnm"], 1);
    s.get(&format!("{ae}/c0"), OWNER).await.expect(4004);
    s.get(&format!("{ae}/c2"), OWNER).await.expect(2000);
    s.get(&format!("{other}/mine"), OTHER).await.expect(2000);
    // Deleting through a relative path removes children, not members.
    let r = s.delete(&format!("{ae}/g/fopt/la"), OWNER).await;
    assert_eq!(codes(&entries(&r)), vec![4103]);
}

#[tokio::test]
async fn empty_group_is_4109() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": []})).await;
    s.get(&format!("{ae}/g/fopt"), OWNER).await.expect(4109);
    s.get(&format!("{ae}/g/fopt/la"), OWNER).await.expect(4109);
}

#[tokio::test]
async fn originator_without_group_privilege_touches_no_member() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    s.ae(OTHER).await;
    // OTHER may create instances in the container directly...
    let share = s
        .create_acp(
            &ae,
            OWNER,
            "share",
            json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": [OTHER], "acop": 3}]}),
            rules(&[OWNER], 63),
        )
        .await;
    let cnt = s
        .create_cnt(&ae, OWNER, json!({"rn": "c", "acpi": [share["ri"]]}))
        .await;
    // ...but the group (no acpi, no macp) is its creator's alone.
    create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": [cnt["ri"]]})).await;
    let r = s
        .create(
            &format!("{ae}/g/fopt"),
            OTHER,
            4,
            json!({"m2m:cin": {"con": "sneaky"}}),
        )
        .await;
    r.expect(4103);
    assert!(r.body.get("m2m:agr").is_none());
    let c = s.get(&format!("{ae}/c"), OWNER).await;
    assert_eq!(c.inner("m2m:cnt")["cni"], 0);
    s.create_cin(&format!("{ae}/c"), OTHER, "direct").await;
}

#[tokio::test]
async fn fopt_is_a_reserved_name_under_a_group() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": []})).await;
    let r = s
        .create(
            &format!("{ae}/g"),
            OWNER,
            23,
            json!({"m2m:sub": {"rn": "fopt", "nu": [OWNER], "enc": {"net": [1]}}}),
        )
        .await;
    r.expect(4000);
    assert!(r.dbg().contains("fopt"), "{}", r.text);
}

#[tokio::test]
async fn nested_group_fans_out_through_its_fopt() {
    let s = Server::start();
    let (ae, cnts) = owner_with_containers(&s).await;
    create_group(
        &s,
        &ae,
        OWNER,
        "inner",
        json!({"mnm": 10, "mid": [cnts[0], cnts[1]]}),
    )
    .await;
    let inner = format!("{}/inner/fopt", &ae[1..]);
    create_group(
        &s,
        &ae,
        OWNER,
        "outer",
        json!({"mnm": 10, "mid": [inner, cnts[2]]}),
    )
    .await;
    let r = s.get(&format!("{ae}/outer/fopt/la"), OWNER).await;
    let list = entries(&r);
    assert_eq!(codes(&list), vec![2000, 2000], "{}", r.text);
    let nested = &list[0]["pc"]["m2m:agr"]["m2m:rsp"];
    assert_eq!(nested.as_array().map(Vec::len), Some(2), "{}", r.text);
    assert_eq!(list[1]["pc"]["m2m:cin"]["con"], "v2");
}

#[tokio::test]
async fn a_cycle_of_groups_ends() {
    let s = Server::start();
    let ae = s.ae(OWNER).await;
    let base = &ae[1..];
    create_group(&s, &ae, OWNER, "g1", json!({"mnm": 10, "mid": []})).await;
    let g1 = format!("{base}/g1/fopt");
    create_group(&s, &ae, OWNER, "g2", json!({"mnm": 10, "mid": [g1]})).await;
    let g2 = format!("{base}/g2/fopt");
    s.update(
        &format!("{ae}/g1"),
        OWNER,
        json!({"m2m:grp": {"mid": [g2]}}),
    )
    .await
    .expect(2004);
    let r = s
        .request("GET", &format!("{ae}/g1/fopt"))
        .from(OWNER)
        .try_send()
        .await;
    let r = r.unwrap_or_else(|e| panic!("{e}: {}", s.log()));
    assert_eq!(codes(&entries(&r)), vec![2000]);
    assert!(r.text.contains("nested too deeply"), "{}", r.text);
}

#[tokio::test]
async fn remote_member_gets_what_forwarding_answers() {
    let s = Server::start();
    let (ae, cnts) = owner_with_containers(&s).await;
    let remote = "/id-elsewhere/cnt1";
    let mid = json!([cnts[0], remote]);
    create_group(&s, &ae, OWNER, "g", json!({"mnm": 10, "mid": mid})).await;
    // The same answer a direct request to the member's address gets (no route: 4004).
    let direct = s.get(&format!("/~{remote}/la"), OWNER).await;
    let r = s.get(&format!("{ae}/g/fopt/la"), OWNER).await;
    let list = entries(&r);
    assert_eq!(
        codes(&list),
        vec![2000, u64::from(direct.rsc)],
        "{}",
        r.text
    );
    assert_ne!(direct.rsc, 2000);
    assert_eq!(list[1]["fr"], remote);
}
