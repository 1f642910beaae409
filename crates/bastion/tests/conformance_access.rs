//! Access control (TS-0003 §7.1; TS-0001 §9.6.1.3, §9.6.2; security-access-control.md
//! §2-§5): the `<accessControlPolicy>` resource, rule evaluation (originators, operations,
//! contexts, authentication flag, object details), `pvs`, `acpi` changes, the default
//! policy, the administrator, and discovery filtering.

use crate::common;

use common::*;
use serde_json::{json, Value};

const OWNER: &str = "Cowner";
const AE: &str = "/cse-in/Cowner";

/// `pv` with the owner's full rule first and `extra` rules after it.
fn pv_with(extra: Value) -> Value {
    let mut acr = vec![json!({"acor": [OWNER], "acop": 63})];
    acr.extend(extra.as_array().cloned().unwrap_or_default());
    json!({ "acr": acr })
}

fn owner_only() -> Value {
    rules(&[OWNER], 63)
}

/// Registers `Cowner`, creates ACP `<acp_rn>` with `pv`/`pvs` and container `<cnt_rn>`
/// linked to it. Returns (container path, ACP resource ID).
async fn linked_cnt(
    s: &Server,
    acp_rn: &str,
    cnt_rn: &str,
    pv: Value,
    pvs: Value,
) -> (String, String) {
    if s.get(AE, OWNER).await.rsc != 2000 {
        s.ae(OWNER).await;
    }
    let acp = s.create_acp(AE, OWNER, acp_rn, pv, pvs).await;
    let acp_ri = acp["ri"].as_str().unwrap().to_owned();
    s.create_cnt(AE, OWNER, json!({"rn": cnt_rn, "acpi": [acp_ri]}))
        .await;
    (format!("{AE}/{cnt_rn}"), acp_ri)
}

fn sgn() -> Value {
    json!({"m2m:sgn": {"nev": {"net": 1, "rep": {}}, "sur": "/id-in/sub1"}})
}

#[tokio::test]
async fn ts0001_9_6_2_acp_create_requires_pv_and_pvs() {
    let s = Server::start();
    s.ae(OWNER).await;
    let bodies = [
        json!({"rn": "a1", "pvs": owner_only()}),
        json!({"rn": "a2", "pv": owner_only()}),
        json!({"rn": "a3", "pv": owner_only(), "pvs": {"acr": []}}),
        json!({"rn": "a4", "pv": owner_only(), "pvs": {}}),
        json!({"rn": "a5", "pv": owner_only(), "pvs": null}),
        json!({"rn": "a6", "pv": null, "pvs": owner_only()}),
    ];
    for body in bodies {
        let rn = body["rn"].as_str().unwrap().to_owned();
        let r = s.create(AE, OWNER, 1, json!({ "m2m:acp": body })).await;
        r.expect(4000);
        s.get(&format!("{AE}/{rn}"), OWNER).await.expect(4004);
    }
    // An empty pv is allowed (it grants nothing).
    let r = s
        .create(
            AE,
            OWNER,
            1,
            json!({"m2m:acp": {"rn": "ok", "pv": {"acr": []}, "pvs": owner_only()}}),
        )
        .await;
    r.expect(2001);
    let acp = r.inner("m2m:acp");
    assert_eq!(acp["ty"], 1);
    assert_eq!(acp["pvs"], owner_only());
    assert!(acp.get("acpi").is_none());
    // Removing every self-privilege by UPDATE is refused too.
    s.update(
        &format!("{AE}/ok"),
        OWNER,
        json!({"m2m:acp": {"pvs": {"acr": []}}}),
    )
    .await
    .expect(4000);
    let r = s.get(&format!("{AE}/ok"), OWNER).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:acp")["pvs"], owner_only());
}

#[tokio::test]
async fn ts0004_6_3_5_26_malformed_rules_are_bad_request() {
    let s = Server::start();
    s.ae(OWNER).await;
    let bad_rules = [
        json!({"acr": [{"acor": [OWNER], "acop": 0}]}),
        json!({"acr": [{"acor": [OWNER], "acop": 64}]}),
        json!({"acr": [{"acor": [OWNER], "acop": "63"}]}),
        json!({"acr": [{"acor": [OWNER]}]}),
        json!({"acr": [{"acop": 63}]}),
        json!({"acr": [{"acor": OWNER, "acop": 63}]}),
        json!({"acr": [{"acor": [7], "acop": 63}]}),
        json!({"acr": [{"acor": [OWNER], "acop": 63, "foo": 1}]}),
        json!({"acr": [{"acor": [OWNER], "acop": 63, "acaf": "yes"}]}),
        json!({"acr": [{"acor": [OWNER], "acop": 63, "acco": {"actw": []}}]}),
        json!({"acr": [{"acor": [OWNER], "acop": 63, "acco": [{"when": 1}]}]}),
        json!({"acr": [{"acor": [OWNER], "acop": 63, "acod": [{"ty": 3}]}]}),
        json!({"acr": {"acor": [OWNER], "acop": 63}}),
        json!({"rules": []}),
        json!([]),
    ];
    for (i, bad) in bad_rules.into_iter().enumerate() {
        let r = s
            .create(
                AE,
                OWNER,
                1,
                json!({"m2m:acp": {"rn": format!("b{i}"), "pv": bad, "pvs": owner_only()}}),
            )
            .await;
        r.expect(4000);
        let r = s
            .create(
                AE,
                OWNER,
                1,
                json!({"m2m:acp": {"rn": format!("s{i}"), "pv": owner_only(), "pvs": bad}}),
            )
            .await;
        r.expect(4000);
    }
    let r = s
        .request("GET", &format!("{AE}?fu=1"))
        .from(OWNER)
        .send()
        .await;
    assert!(r.uril().is_empty(), "nothing was created: {}", r.text);
}

#[tokio::test]
async fn ts0003_7_1_4_stranger_is_denied_by_the_default_policy() {
    // The README tour: another registered AE reading someone's container.
    let s = Server::start();
    s.ae(OWNER).await;
    s.ae("Cstranger").await;
    s.create_cnt(AE, OWNER, json!({"rn": "private"})).await;
    let cnt = format!("{AE}/private");
    s.create_cin(&cnt, OWNER, "secret").await;
    let r = s.get(&cnt, "Cstranger").await;
    r.expect(4103);
    assert!(!r.text.contains("secret"));
    s.get(&format!("{cnt}/la"), "Cstranger").await.expect(4103);
    s.update(&cnt, "Cstranger", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(4103);
    s.create(&cnt, "Cstranger", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(4103);
    s.delete(&cnt, "Cstranger").await.expect(4103);
    s.get(AE, "Cstranger").await.expect(4103);
    // The owner is unaffected.
    let r = s.get(&cnt, OWNER).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["cni"], 1);
    assert!(r.inner("m2m:cnt").get("lbl").is_none());
}

#[tokio::test]
async fn ts0003_7_1_retrieve_only_grant() {
    let s = Server::start();
    s.ae("Creader").await;
    s.ae("Cstranger").await;
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Creader"], "acop": 2}])),
        owner_only(),
    )
    .await;
    s.create_cin(&cnt, OWNER, "v").await;
    s.get(&cnt, "Creader").await.expect(2000);
    s.get(&format!("{cnt}/la"), "Creader").await.expect(2000);
    s.create(&cnt, "Creader", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(4103);
    s.update(&cnt, "Creader", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(4103);
    s.delete(&format!("{cnt}/la"), "Creader").await.expect(4103);
    s.delete(&cnt, "Creader").await.expect(4103);
    s.get(&cnt, "Cstranger").await.expect(4103);
    let r = s.get(&cnt, OWNER).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["cni"], 1);
}

#[tokio::test]
async fn ts0004_6_3_4_2_29_each_acop_bit_grants_exactly_its_operation() {
    let s = Server::start();
    s.ae(OWNER).await;
    s.ae("Cuser").await;
    let bits = [1u32, 2, 4, 8, 16, 32];
    for bit in bits {
        linked_cnt(
            &s,
            &format!("acp{bit}"),
            &format!("b{bit}"),
            pv_with(json!([{"acor": ["Cuser"], "acop": bit}])),
            owner_only(),
        )
        .await;
    }
    for bit in bits {
        let cnt = format!("{AE}/b{bit}");
        let want = |b: u32, ok: u32| if bit == b { ok } else { 4103 };
        s.create(&cnt, "Cuser", 4, json!({"m2m:cin": {"con": "c"}}))
            .await
            .expect(want(1, 2001));
        s.get(&cnt, "Cuser").await.expect(want(2, 2000));
        s.update(&cnt, "Cuser", json!({"m2m:cnt": {"lbl": ["u"]}}))
            .await
            .expect(want(4, 2004));
        // NOTIFY is authorised, then answered 5001 (delivery not implemented).
        s.req("POST", &cnt, Some("Cuser"), None, Some(sgn()))
            .await
            .expect(want(16, 5001));
    }
    // DISCOVERY: only the container granting bit 32 is found.
    let r = s
        .request("GET", &format!("{AE}?fu=1"))
        .from("Cuser")
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.uril(), vec!["cse-in/Cowner/b32".to_owned()]);
    // RETRIEVE (2) does not imply DISCOVERY (32) and vice versa.
    s.get(&format!("{AE}/b32"), "Cuser").await.expect(4103);
    for bit in bits {
        s.delete(&format!("{AE}/b{bit}"), "Cuser")
            .await
            .expect(if bit == 8 { 2002 } else { 4103 });
    }
    let r = s
        .request("GET", &format!("{AE}?fu=1&ty=3"))
        .from(OWNER)
        .send()
        .await;
    let mut left = r.uril();
    left.sort();
    assert_eq!(
        left,
        ["b1", "b16", "b2", "b32", "b4"]
            .iter()
            .map(|b| format!("cse-in/Cowner/{b}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn ts0003_7_1_3_all_matches_every_originator() {
    let s = Server::start();
    s.ae("Calpha").await;
    s.ae("Sbeta").await;
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["all"], "acop": 2}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Calpha").await.expect(2000);
    s.get(&cnt, "Sbeta").await.expect(2000);
    s.get(&cnt, ADMIN).await.expect(2000);
    s.update(&cnt, "Calpha", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(4103);
    // Unregistered originators never reach the ACP.
    s.get(&cnt, "Cnobody").await.expect(4106);
}

#[tokio::test]
async fn ts0003_7_1_3_wildcard_originator_entries() {
    let s = Server::start();
    for ae in ["Cwildcat", "Cwild", "Cwil", "Cother", "Cxwild"] {
        s.ae(ae).await;
    }
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Cwild*"], "acop": 2}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Cwildcat").await.expect(2000);
    s.get(&cnt, "Cwild").await.expect(2000);
    s.get(&cnt, "Cwil").await.expect(4103);
    s.get(&cnt, "Cother").await.expect(4103);
    s.get(&cnt, "Cxwild").await.expect(4103);
    // SP-relative form of the same pattern, '*' inside a segment.
    let (cnt2, _) = linked_cnt(
        &s,
        "acp2",
        "cnt2",
        pv_with(json!([{"acor": ["/id-in/C*cat"], "acop": 2}])),
        owner_only(),
    )
    .await;
    s.get(&cnt2, "Cwildcat").await.expect(2000);
    s.get(&cnt2, "Cwild").await.expect(4103);
}

#[tokio::test]
async fn ts0003_7_1_3_exact_originator_entries() {
    let s = Server::start();
    for ae in ["Cabc", "Cab", "Cabcd", "CABC", "Cabs", "Cabt"] {
        s.ae(ae).await;
    }
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Cabc"], "acop": 2}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Cabc").await.expect(2000);
    s.get(&cnt, "Cab").await.expect(4103);
    s.get(&cnt, "Cabcd").await.expect(4103);
    s.get(&cnt, "CABC").await.expect(4103);
    // An entry in SP-relative or absolute form names the same AE as its stem.
    let (cnt2, _) = linked_cnt(
        &s,
        "acp2",
        "cnt2",
        pv_with(json!([
            {"acor": ["//bastion.example/id-in/Cabs"], "acop": 2},
            {"acor": ["/id-in/Cabt"], "acop": 2}
        ])),
        owner_only(),
    )
    .await;
    s.get(&cnt2, "Cabs").await.expect(2000);
    s.get(&cnt2, "Cabt").await.expect(2000);
    s.get(&cnt2, "Cabc").await.expect(4103);
    // The originator may itself be sent in SP-relative form.
    s.get(&cnt2, "/id-in/Cabs").await.expect(2000);
}

#[tokio::test]
async fn ts0003_7_1_5_contexts_fail_closed() {
    // Contexts that cannot hold here: country codes (no resolver), a circle (no location
    // PIP), an element with no sub-parameter. Matching contexts: conformance_contexts.rs.
    let s = Server::start();
    s.ae("Cuser").await;
    let contexts = [
        json!([{"aclr": {"accc": ["DE"]}}]),
        json!([{"aclr": {"accr": [52.52, 13.405, 1.0e7]}}]),
        json!([{}]),
    ];
    for (i, acco) in contexts.into_iter().enumerate() {
        let (cnt, _) = linked_cnt(
            &s,
            &format!("acp{i}"),
            &format!("cnt{i}"),
            pv_with(json!([{"acor": ["Cuser"], "acop": 63, "acco": acco}])),
            owner_only(),
        )
        .await;
        s.get(&cnt, "Cuser").await.expect(4103);
        s.create(&cnt, "Cuser", 4, json!({"m2m:cin": {"con": "x"}}))
            .await
            .expect(4103);
        s.delete(&cnt, "Cuser").await.expect(4103);
    }
    // The same rule without acco grants.
    let (cnt, _) = linked_cnt(
        &s,
        "plainAcp",
        "plain",
        pv_with(json!([{"acor": ["Cuser"], "acop": 63}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Cuser").await.expect(2000);
}

#[tokio::test]
async fn ts0003_7_1_5_authentication_flag_fails_without_authentication() {
    let s = Server::start();
    s.ae("Cuser").await;
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Cuser"], "acop": 63, "acaf": true}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Cuser").await.expect(4103);
    s.update(&cnt, "Cuser", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(4103);
    let (cnt, _) = linked_cnt(
        &s,
        "acp2",
        "cnt2",
        pv_with(json!([{"acor": ["Cuser"], "acop": 63, "acaf": false}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Cuser").await.expect(2000);
}

#[tokio::test]
async fn ts0003_7_1_5_object_details_limit_create() {
    let s = Server::start();
    s.ae("Cuser").await;
    // Only containers may be created.
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Cuser"], "acop": 3, "acod": [{"chty": [3]}]}])),
        owner_only(),
    )
    .await;
    s.create(&cnt, "Cuser", 3, json!({"m2m:cnt": {"rn": "sub"}}))
        .await
        .expect(2001);
    s.create(&cnt, "Cuser", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(4103);
    // acod constrains CREATE only.
    s.get(&cnt, "Cuser").await.expect(2000);
    // A target type in acod must match the parent's type.
    let (cnt2, _) = linked_cnt(
        &s,
        "acp2",
        "cnt2",
        pv_with(json!([{"acor": ["Cuser"], "acop": 1, "acod": [{"ty": 2, "chty": [4]}]}])),
        owner_only(),
    )
    .await;
    s.create(&cnt2, "Cuser", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(4103);
    let (cnt3, _) = linked_cnt(
        &s,
        "acp3",
        "cnt3",
        pv_with(json!([{"acor": ["Cuser"], "acop": 1, "acod": [{"ty": 3, "chty": [4]}, {"chty": [1]}]}])),
        owner_only(),
    )
    .await;
    s.create(&cnt3, "Cuser", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(2001);
    s.create(&cnt3, "Cuser", 3, json!({"m2m:cnt": {}}))
        .await
        .expect(4103);
}

#[tokio::test]
async fn ts0003_7_1_self_privileges_govern_the_acp_itself() {
    let s = Server::start();
    s.ae("Cuser").await;
    // pv grants Cuser everything, pvs only the owner: the ACP itself is closed to Cuser.
    let (_, acp_ri) =
        linked_cnt(&s, "acp", "cnt", rules(&["Cuser", OWNER], 63), owner_only()).await;
    let acp = format!("{AE}/acp");
    s.get(&acp, "Cuser").await.expect(4103);
    s.get(&format!("/{acp_ri}"), "Cuser").await.expect(4103);
    s.update(
        &acp,
        "Cuser",
        json!({"m2m:acp": {"pv": rules(&["all"], 63)}}),
    )
    .await
    .expect(4103);
    s.delete(&acp, "Cuser").await.expect(4103);
    let r = s.get(&acp, OWNER).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:acp")["pv"], rules(&["Cuser", OWNER], 63));
    // pvs granting RETRIEVE only: Cuser can read but not change the ACP.
    s.create_acp(
        AE,
        OWNER,
        "acp2",
        owner_only(),
        json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": ["Cuser"], "acop": 2}]}),
    )
    .await;
    s.get(&format!("{AE}/acp2"), "Cuser").await.expect(2000);
    s.update(
        &format!("{AE}/acp2"),
        "Cuser",
        json!({"m2m:acp": {"lbl": ["x"]}}),
    )
    .await
    .expect(4103);
    // The owner's pvs allows UPDATE, and the new pv takes effect at once.
    s.update(&acp, OWNER, json!({"m2m:acp": {"pv": owner_only()}}))
        .await
        .expect(2004);
    s.get(&format!("{AE}/cnt"), "Cuser").await.expect(4103);
}

#[tokio::test]
async fn ts0001_9_6_1_3_2_acpi_update_must_be_alone() {
    let s = Server::start();
    let (cnt, acp_ri) = linked_cnt(&s, "acp", "cnt", owner_only(), owner_only()).await;
    let r = s
        .update(
            &cnt,
            OWNER,
            json!({"m2m:cnt": {"acpi": [acp_ri], "lbl": ["x"]}}),
        )
        .await;
    r.expect(4000);
    let r = s.get(&cnt, OWNER).await;
    assert!(r.inner("m2m:cnt").get("lbl").is_none());
    s.update(&cnt, OWNER, json!({"m2m:cnt": {"acpi": [acp_ri]}}))
        .await
        .expect(2004);
    // acpi must name ACPs.
    s.update(&cnt, OWNER, json!({"m2m:cnt": {"acpi": ["Cowner"]}}))
        .await
        .expect(4000);
    s.update(&cnt, OWNER, json!({"m2m:cnt": {"acpi": ["acpMissing"]}}))
        .await
        .expect(4000);
}

#[tokio::test]
async fn ts0001_9_6_1_3_2_acpi_change_needs_update_in_pvs() {
    let s = Server::start();
    s.ae("Cuser").await;
    // acp1: pv lets Cuser do everything, pvs only the owner.
    let (cnt, acp1) = linked_cnt(
        &s,
        "acp1",
        "cnt",
        rules(&[OWNER, "Cuser"], 63),
        owner_only(),
    )
    .await;
    // acp2: pvs also lets Cuser UPDATE (change acpi of resources linking it).
    let acp2 = s
        .create_acp(
            AE,
            OWNER,
            "acp2",
            rules(&[OWNER, "Cuser"], 63),
            json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": ["Cuser"], "acop": 4}]}),
        )
        .await["ri"]
        .as_str()
        .unwrap()
        .to_owned();
    // pv is enough for other attributes...
    s.update(&cnt, "Cuser", json!({"m2m:cnt": {"lbl": ["by-user"]}}))
        .await
        .expect(2004);
    // ...but not for acpi.
    s.update(&cnt, "Cuser", json!({"m2m:cnt": {"acpi": [acp2]}}))
        .await
        .expect(4103);
    let r = s.get(&cnt, OWNER).await;
    assert_eq!(r.inner("m2m:cnt")["acpi"], json!([acp1]));
    // The owner holds UPDATE in acp1's pvs.
    s.update(&cnt, OWNER, json!({"m2m:cnt": {"acpi": [acp2]}}))
        .await
        .expect(2004);
    // Now acp2 is linked, whose pvs lets Cuser change the link.
    s.update(&cnt, "Cuser", json!({"m2m:cnt": {"acpi": [acp1]}}))
        .await
        .expect(2004);
    let r = s.get(&cnt, OWNER).await;
    assert_eq!(r.inner("m2m:cnt")["acpi"], json!([acp1]));
    // RETRIEVE in pvs is not UPDATE.
    let acp3 = s
        .create_acp(
            AE,
            OWNER,
            "acp3",
            rules(&[OWNER, "Cuser"], 63),
            json!({"acr": [{"acor": [OWNER], "acop": 63}, {"acor": ["Cuser"], "acop": 59}]}),
        )
        .await["ri"]
        .as_str()
        .unwrap()
        .to_owned();
    s.update(&cnt, OWNER, json!({"m2m:cnt": {"acpi": [acp3]}}))
        .await
        .expect(2004);
    s.update(&cnt, "Cuser", json!({"m2m:cnt": {"acpi": [acp1]}}))
        .await
        .expect(4103);
}

#[tokio::test]
async fn ts0003_7_1_4_default_policy_grants_the_creator_only() {
    let s = Server::start();
    s.ae(OWNER).await;
    s.ae("Cuser").await;
    s.create_cnt(AE, OWNER, json!({"rn": "mine"})).await;
    let mine = format!("{AE}/mine");
    s.get(&mine, OWNER).await.expect(2000);
    s.update(&mine, OWNER, json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(2004);
    s.create_cin(&mine, OWNER, "v").await;
    s.get(&mine, "Cuser").await.expect(4103);
    // A resource created by another originator belongs to that originator, even under
    // the owner's AE.
    let (shared, _) = linked_cnt(
        &s,
        "acp",
        "shared",
        pv_with(json!([{"acor": ["Cuser"], "acop": 3}])),
        owner_only(),
    )
    .await;
    s.create_cnt(&shared, "Cuser", json!({"rn": "users"})).await;
    let users = format!("{shared}/users");
    s.get(&users, "Cuser").await.expect(2000);
    s.get(&users, OWNER).await.expect(4103);
    s.delete(&users, "Cuser").await.expect(2002);
    // The CSEBase has no creator: nobody but the admin may change it; a registered AE
    // may read it (`[access] registered-retrieve-cse-base`, on by default).
    s.get("/cse-in", OWNER).await.expect(2000);
    s.create("/cse-in", OWNER, 3, json!({"m2m:cnt": {"rn": "top"}}))
        .await
        .expect(4103);
    s.get("/cse-in", ADMIN).await.expect(2000);
    s.delete(&mine, OWNER).await.expect(2002);
}

#[tokio::test]
async fn ts0003_7_1_admin_has_full_access() {
    let s = Server::start();
    s.ae(OWNER).await;
    s.create_cnt(AE, OWNER, json!({"rn": "default"})).await;
    let (cnt, _) = linked_cnt(&s, "acp", "cnt", owner_only(), owner_only()).await;
    for c in [format!("{AE}/default"), cnt] {
        s.get(&c, ADMIN).await.expect(2000);
        s.update(&c, ADMIN, json!({"m2m:cnt": {"lbl": ["admin"]}}))
            .await
            .expect(2004);
        s.create(&c, ADMIN, 4, json!({"m2m:cin": {"con": "a"}}))
            .await
            .expect(2001);
        s.get(&format!("{c}/la"), ADMIN).await.expect(2000);
        let r = s
            .request("GET", &format!("{c}?fu=1"))
            .from(ADMIN)
            .send()
            .await;
        assert_eq!(r.uril().len(), 1, "{}", r.text);
    }
    s.get(&format!("{AE}/acp"), ADMIN).await.expect(2000);
    s.update(
        &format!("{AE}/acp"),
        ADMIN,
        json!({"m2m:acp": {"lbl": ["a"]}}),
    )
    .await
    .expect(2004);
    s.create("/cse-in", ADMIN, 3, json!({"m2m:cnt": {"rn": "top"}}))
        .await
        .expect(2001);
    s.delete(&format!("{AE}/cnt"), ADMIN).await.expect(2002);
    s.delete(AE, ADMIN).await.expect(2002);
    s.get(AE, ADMIN).await.expect(4004);
}

#[tokio::test]
async fn ts0003_7_1_discovery_lists_only_what_may_be_discovered() {
    let s = Server::start();
    s.ae("Cuser").await;
    let (a, _) = linked_cnt(
        &s,
        "acpA",
        "a",
        pv_with(json!([{"acor": ["Cuser"], "acop": 32}])),
        owner_only(),
    )
    .await;
    let (b, _) = linked_cnt(
        &s,
        "acpB",
        "b",
        pv_with(json!([{"acor": ["Cuser"], "acop": 2}])),
        owner_only(),
    )
    .await;
    s.create_cnt(AE, OWNER, json!({"rn": "c"})).await;
    s.create(&a, OWNER, 4, json!({"m2m:cin": {"rn": "ia", "con": "x"}}))
        .await
        .expect(2001);
    s.create(&b, OWNER, 4, json!({"m2m:cin": {"rn": "ib", "con": "x"}}))
        .await
        .expect(2001);
    let discover = |orig: &'static str| s.request("GET", &format!("{AE}?fu=1")).from(orig).send();
    let r = discover("Cuser").await;
    r.expect(2000);
    let mut got = r.uril();
    got.sort();
    assert_eq!(got, vec!["cse-in/Cowner/a", "cse-in/Cowner/a/ia"]);
    let r = discover(OWNER).await;
    let mut got = r.uril();
    got.sort();
    assert_eq!(
        got,
        vec![
            "cse-in/Cowner/a",
            "cse-in/Cowner/a/ia",
            "cse-in/Cowner/acpA",
            "cse-in/Cowner/acpB",
            "cse-in/Cowner/b",
            "cse-in/Cowner/b/ib",
            "cse-in/Cowner/c",
        ]
    );
    // A stranger discovers nothing, but the request itself succeeds.
    s.ae("Cstranger").await;
    let r = discover("Cstranger").await;
    r.expect(2000);
    assert!(r.uril().is_empty(), "{}", r.text);
}

#[tokio::test]
async fn ts0003_7_1_deleted_acp_grants_nothing() {
    let s = Server::start();
    s.ae("Cuser").await;
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Cuser"], "acop": 63}])),
        owner_only(),
    )
    .await;
    s.get(&cnt, "Cuser").await.expect(2000);
    s.delete(&format!("{AE}/acp"), OWNER).await.expect(2002);
    // A dangling acpi entry narrows access; it never falls back to the default policy.
    s.get(&cnt, "Cuser").await.expect(4103);
    s.get(&cnt, OWNER).await.expect(4103);
    s.get(&cnt, ADMIN).await.expect(2000);
}

#[tokio::test]
async fn ts0001_9_6_2_acp_update_with_malformed_rules_changes_nothing() {
    let s = Server::start();
    s.ae("Cuser").await;
    let (cnt, _) = linked_cnt(
        &s,
        "acp",
        "cnt",
        pv_with(json!([{"acor": ["Cuser"], "acop": 2}])),
        owner_only(),
    )
    .await;
    let acp = format!("{AE}/acp");
    let before = s.get(&acp, OWNER).await.inner("m2m:acp").clone();
    for pv in [
        json!({"acr": [{"acor": ["Cuser"], "acop": 0}]}),
        json!({"acr": [{"acor": "Cuser", "acop": 63}]}),
        json!("all"),
    ] {
        s.update(&acp, OWNER, json!({"m2m:acp": {"pv": pv}}))
            .await
            .expect(4000);
    }
    s.update(&acp, OWNER, json!({"m2m:acp": {"pv": null}}))
        .await
        .expect(4000);
    let after = s.get(&acp, OWNER).await.inner("m2m:acp").clone();
    assert_eq!(after, before);
    s.get(&cnt, "Cuser").await.expect(2000);
    s.update(&cnt, "Cuser", json!({"m2m:cnt": {"lbl": ["x"]}}))
        .await
        .expect(4103);
}

/// By default a 4103 says only "originator has no privilege": the reason would reveal the
/// policy. With `explain-denials-to-client` the operator opts into the one-line reason.
#[tokio::test]
async fn ts0003_7_1_deny_reason_reaches_the_client_only_when_configured() {
    for (config, explained) in [
        ("", false),
        ("[access]\nexplain-denials-to-client = true\n", true),
    ] {
        let s = Server::start_with_config(config);
        s.ae(OWNER).await;
        s.ae("Cstranger").await;
        s.create_cnt(AE, OWNER, json!({"rn": "private"})).await;
        let r = s.get(&format!("{AE}/private"), "Cstranger").await;
        r.expect(4103);
        let dbg = r.body["m2m:dbg"].as_str().unwrap_or_default().to_owned();
        if explained {
            assert!(
                dbg.contains("RETRIEVE") && dbg.contains("Cstranger"),
                "{dbg}"
            );
        } else {
            assert_eq!(dbg, "originator has no privilege");
        }
    }
}

/// `[access] registered-retrieve-cse-base = false`: the CSEBase's default policy admits
/// only the admin again, for registered AEs and registered remote CSEs alike.
#[tokio::test(flavor = "multi_thread")]
async fn ts0004_7_4_4_registered_entities_reading_the_cse_base_can_be_turned_off() {
    let on = tokio::task::block_in_place(|| {
        Server::start_with_config("[http]\ntrust-loopback-cses = true\n")
    });
    let off = tokio::task::block_in_place(|| {
        Server::start_with_config(
            "[http]\ntrust-loopback-cses = true\n[access]\nregistered-retrieve-cse-base = false\n",
        )
    });
    let csr = json!({"m2m:csr": {"cb": "/id-dev/cse-dev", "rr": true, "srv": ["3"]}});
    for s in [&on, &off] {
        s.ae(OWNER).await;
        s.create("/cse-in", "/id-dev", 16, csr.clone())
            .await
            .expect(2001);
        s.get("/cse-in", ADMIN).await.expect(2000);
    }
    let read = on.get("/cse-in", OWNER).await;
    read.expect(2000);
    assert_eq!(read.inner("m2m:cb")["csi"], "/id-in");
    on.get("/cse-in", "/id-dev").await.expect(2000);
    // Reading is all the registration gives.
    on.create("/cse-in", OWNER, 3, json!({"m2m:cnt": {"rn": "top"}}))
        .await
        .expect(4103);
    on.create("/cse-in", "/id-dev", 3, json!({"m2m:cnt": {"rn": "top"}}))
        .await
        .expect(4103);
    off.get("/cse-in", OWNER).await.expect(4103);
    off.get("/cse-in", "/id-dev").await.expect(4103);
}

/// An `Authorization` header with an HTTP scheme (what ACME sends its registrar when it
/// is configured with a user name or a bearer token) is not a oneM2M token: the request
/// is decided without it. A value without a scheme is still a token and checked.
#[tokio::test]
async fn ts0009_6_4_an_http_basic_or_bearer_authorization_is_not_a_token() {
    let s = Server::start();
    s.ae(OWNER).await;
    for auth in ["Basic aWQtYW1uOnNlY3JldA==", "Bearer opaque-peer-token"] {
        let r = s
            .request("GET", "/cse-in")
            .from(ADMIN)
            .header("Authorization", auth)
            .send()
            .await;
        r.expect(2000);
        assert_eq!(r.inner("m2m:cb")["csi"], "/id-in");
        // It grants nothing either: the AE still cannot create under the CSEBase.
        s.request("POST", "/cse-in")
            .from(OWNER)
            .ty(3)
            .json(&json!({"m2m:cnt": {"rn": "top"}}))
            .header("Authorization", auth)
            .send()
            .await
            .expect(4103);
    }
    let token = s
        .request("GET", "/cse-in")
        .from(ADMIN)
        .header("Authorization", "not-a-jwt")
        .send()
        .await;
    token.expect(4103);
    assert!(token.dbg().starts_with("token rejected"), "{}", token.text);
}
