//! Resource procedures (TS-0004 §7.3.3, §7.4; TS-0001 §9.6, §10.2.2.2; core-resources.md
//! §1-§4): the CSEBase, AE registration and originator rules, generic CRUD on containers,
//! attribute policies, expiration.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn ae_body(api: &str) -> Value {
    json!({"m2m:ae": {"api": api, "rr": true, "srv": ["3"]}})
}

// ---------------------------------------------------------------------------------------
// <CSEBase>

#[tokio::test]
async fn ts0004_7_4_3_cse_base_retrieve_attributes() {
    let s = Server::start();
    let r = s.get("/cse-in", ADMIN).await;
    r.expect(2000);
    let cb = r.inner("m2m:cb");
    assert_eq!(cb["ty"], 5);
    assert_eq!(cb["ri"], "id-in");
    assert_eq!(cb["rn"], "cse-in");
    assert_eq!(cb["pi"], "");
    assert_eq!(cb["csi"], "/id-in");
    assert_eq!(cb["cst"], 1);
    let srv: Vec<&str> = cb["srv"]
        .as_array()
        .expect("srv")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for rel in ["2a", "3", "4", "5"] {
        assert!(srv.contains(&rel), "srv lacks {rel}: {srv:?}");
    }
    let srt: Vec<u64> = cb["srt"]
        .as_array()
        .expect("srt")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    for ty in [1, 2, 3, 4] {
        assert!(srt.contains(&ty), "srt lacks {ty}: {srt:?}");
    }
    parse_ts(cb["ct"].as_str().expect("ct"));
}

#[tokio::test]
async fn ts0004_7_4_3_cse_base_update_and_delete_are_not_allowed() {
    let s = Server::start();
    let r = s
        .update("/cse-in", ADMIN, json!({"m2m:cb": {"lbl": ["x"]}}))
        .await;
    r.expect(4005);
    s.delete("/cse-in", ADMIN).await.expect(4005);
    s.delete("/~/id-in", ADMIN).await.expect(4005);
    let r = s.get("/cse-in", ADMIN).await;
    r.expect(2000);
    assert!(r.inner("m2m:cb").get("lbl").is_none());
}

// ---------------------------------------------------------------------------------------
// <AE> registration (TS-0001 §10.2.2.2; core-primitives.md §8)

#[tokio::test]
async fn ts0001_10_2_2_2_registration_without_originator() {
    let s = Server::start();
    let ae = s.register_ae("", "Nnoorig").await;
    let aei = ae["aei"].as_str().expect("aei");
    assert!(aei.starts_with('C') && aei.len() > 1, "aei {aei}");
    assert_eq!(ae["ri"], aei);
    assert_eq!(ae["ty"], 2);
    assert_eq!(ae["pi"], CSE_RI);
    assert_eq!(ae["api"], "Nnoorig");
    // The assigned AE-ID is usable as originator at once.
    s.get(&format!("/{aei}"), aei).await.expect(2000);
    // An empty X-M2M-Origin header means the same.
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("")
        .json(&ae_body("Nempty"))
        .send()
        .await;
    r.expect(2001);
    let aei2 = r.inner("m2m:ae")["aei"].as_str().unwrap().to_owned();
    assert!(aei2.starts_with('C') && aei2 != aei);
}

#[tokio::test]
async fn ts0001_10_2_2_2_registration_with_c_originator() {
    let s = Server::start();
    let a = s.register_ae("C", "Na").await;
    let b = s.register_ae("C", "Nb").await;
    let (a, b) = (a["aei"].as_str().unwrap(), b["aei"].as_str().unwrap());
    assert!(a.starts_with('C') && a.len() > 1, "{a}");
    assert!(b.starts_with('C') && b.len() > 1, "{b}");
    assert_ne!(a, b, "CSE-assigned AE-IDs are unique");
}

#[tokio::test]
async fn ts0001_10_2_2_2_registration_with_s_originator() {
    let s = Server::start();
    let ae = s.register_ae("S", "Ns").await;
    let aei = ae["aei"].as_str().unwrap();
    assert!(aei.starts_with('S') && aei.len() > 1, "{aei}");
    assert_eq!(ae["ri"], aei);
    s.get(&format!("/{aei}"), aei).await.expect(2000);
}

#[tokio::test]
async fn ts0001_10_2_2_2_registration_with_explicit_ae_id() {
    let s = Server::start();
    let ae = s.register_ae("Cxyz", "Nxyz").await;
    assert_eq!(ae["aei"], "Cxyz");
    assert_eq!(ae["ri"], "Cxyz");
    assert_eq!(ae["rn"], "Cxyz");
    let ae = s.register_ae("Sabc", "Nabc").await;
    assert_eq!(ae["aei"], "Sabc");
    assert_eq!(ae["ri"], "Sabc");
    s.get("/cse-in/Cxyz", "Cxyz").await.expect(2000);
    s.get("/Sabc", "Sabc").await.expect(2000);
}

#[tokio::test]
async fn ts0001_7_2_app_id_must_start_with_r_or_n() {
    let s = Server::start();
    for (i, api) in ["Xapp", "", "app", "1app", "xNapp"].iter().enumerate() {
        let r = s
            .request("POST", "/cse-in")
            .ty(2)
            .from(&format!("Cbad{i}"))
            .json(&ae_body(api))
            .send()
            .await;
        r.expect(4000);
        s.get(&format!("/cse-in/Cbad{i}"), ADMIN).await.expect(4004);
    }
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Cnum")
        .json(&json!({"m2m:ae": {"api": 7, "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(4000);
    s.register_ae("Creg", "Ra01.com.example.app").await;
    s.register_ae("Cnon", "Nsomething").await;
}

#[tokio::test]
async fn ts0001_7_2_lowercase_r_app_id_only_before_release_4() {
    let s = Server::start();
    for (orig, rvi) in [("Clow3", "3"), ("Clow2a", "2a")] {
        let r = s
            .request("POST", "/cse-in")
            .ty(2)
            .from(orig)
            .rvi(rvi)
            .json(&ae_body("rlegacy.app"))
            .send()
            .await;
        r.expect(2001);
    }
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Clow4")
        .rvi("4")
        .json(&ae_body("rlegacy.app"))
        .send()
        .await;
    r.expect(4000);
    s.get("/cse-in/Clow4", ADMIN).await.expect(4004);
}

#[tokio::test]
async fn ts0004_7_3_3_2_ae_mandatory_attributes() {
    let s = Server::start();
    for (i, attrs) in [
        json!({"rr": true, "srv": ["3"]}),
        json!({"api": "Nx", "srv": ["3"]}),
        json!({"api": "Nx", "rr": true}),
        json!({"api": "Nx", "rr": null, "srv": ["3"]}),
    ]
    .into_iter()
    .enumerate()
    {
        let orig = format!("Cmiss{i}");
        let r = s
            .request("POST", "/cse-in")
            .ty(2)
            .from(&orig)
            .json(&json!({ "m2m:ae": attrs }))
            .send()
            .await;
        r.expect(4000);
        s.get(&format!("/cse-in/{orig}"), ADMIN).await.expect(4004);
    }
    // The AE-ID is assigned, never sent.
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Caei")
        .json(&json!({"m2m:ae": {"api": "Nx", "rr": true, "srv": ["3"], "aei": "Cfake"}}))
        .send()
        .await;
    r.expect(4000);
}

#[tokio::test]
async fn ts0001_10_2_2_2_cse_cannot_register_as_ae() {
    let s = Server::start();
    for orig in ["/id-mn", "//bastion.example/id-mn", "Xapp"] {
        let r = s
            .request("POST", "/cse-in")
            .ty(2)
            .from(orig)
            .json(&ae_body("Nx"))
            .send()
            .await;
        r.expect(4000);
    }
    let r = s.request("GET", "/cse-in?fu=1").from(ADMIN).send().await;
    r.expect(2000);
    assert!(r.uril().is_empty(), "{}", r.text);
}

#[tokio::test]
async fn ts0001_10_2_2_2_re_registration_is_already_registered() {
    let s = Server::start();
    s.register_ae("Cdup", "Nfirst").await;
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Cdup")
        .json(&ae_body("Nsecond"))
        .send()
        .await;
    r.expect(4117);
    let r = s.get("/cse-in/Cdup", "Cdup").await;
    assert_eq!(r.inner("m2m:ae")["api"], "Nfirst");
}

#[tokio::test]
async fn ts0001_9_6_ae_only_under_cse_base() {
    let s = Server::start();
    let ae = s.ae("Cparent").await;
    let r = s
        .request("POST", &ae)
        .ty(2)
        .from("Cchild")
        .json(&ae_body("Nchild"))
        .send()
        .await;
    r.expect(4108);
    s.get("/Cchild", ADMIN).await.expect(4004);
    // Nor under a container.
    s.create_cnt(&ae, "Cparent", json!({"rn": "cnt"})).await;
    let r = s
        .request("POST", &format!("{ae}/cnt"))
        .ty(2)
        .from("Cchild")
        .json(&ae_body("Nchild"))
        .send()
        .await;
    r.expect(4108);
}

#[tokio::test]
async fn ts0004_7_3_3_2_ae_resource_name_conflict() {
    let s = Server::start();
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Cone")
        .json(&json!({"m2m:ae": {"rn": "shared", "api": "Na", "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(2001);
    let r = s
        .request("POST", "/cse-in")
        .ty(2)
        .from("Ctwo")
        .json(&json!({"m2m:ae": {"rn": "shared", "api": "Nb", "rr": true, "srv": ["3"]}}))
        .send()
        .await;
    r.expect(4105);
    assert_eq!(r.status, 409);
    s.get("/Ctwo", ADMIN).await.expect(4004);
    let r = s.get("/cse-in/shared", "Cone").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:ae")["aei"], "Cone");
}

#[tokio::test]
async fn ts0003_7_2_1_unregistered_ae_originator_is_not_authenticated() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.get(&ae, "Cnobody").await.expect(4106);
    s.get("/cse-in", "Cnobody").await.expect(4106);
    s.create(&ae, "Cnobody", 3, json!({"m2m:cnt": {"rn": "x"}}))
        .await
        .expect(4106);
    s.get("/cse-in", "Snobody").await.expect(4106);
    // A C-type AE-ID of another CSE is not registered here either.
    s.get("/cse-in", "/id-mn/Cfar").await.expect(4106);
    s.get(&format!("{ae}/x"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0003_7_2_1_cse_originator_needs_security_association() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.get(&ae, "/id-mn").await.expect(4107);
    s.get("/cse-in", "/id-mn").await.expect(4107);
    s.create(&ae, "/id-mn", 3, json!({"m2m:cnt": {"rn": "x"}}))
        .await
        .expect(4107);
    s.get(&format!("{ae}/x"), "Cowner").await.expect(4004);
}

#[tokio::test]
async fn ts0001_10_2_2_2_deregistration_deletes_the_ae_and_its_subtree() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let cnt = s.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    let sub = s
        .create_cnt(&format!("{ae}/cnt"), "Cowner", json!({"rn": "sub"}))
        .await;
    let cin = s
        .create_cin(&format!("{ae}/cnt/sub"), "Cowner", "payload")
        .await;
    let acp = s
        .create_acp(
            &ae,
            "Cowner",
            "acp",
            rules(&["Cowner"], 63),
            rules(&["Cowner"], 63),
        )
        .await;
    s.delete(&ae, "Cowner").await.expect(2002);
    for path in [
        ae.clone(),
        format!("{ae}/cnt"),
        format!("{ae}/cnt/sub"),
        format!("{ae}/acp"),
        format!("{ae}/cnt/sub/{}", cin["rn"].as_str().unwrap()),
    ] {
        s.get(&path, ADMIN).await.expect(4004);
    }
    for ri in [&cnt["ri"], &sub["ri"], &cin["ri"], &acp["ri"]] {
        s.get(&format!("/{}", ri.as_str().unwrap()), ADMIN)
            .await
            .expect(4004);
    }
    // The AE-ID is free again; the old children do not come back.
    s.register_ae("Cowner", "Nagain").await;
    s.get(&format!("{ae}/cnt"), "Cowner").await.expect(4004);
    let r = s
        .request("GET", &format!("{ae}?fu=1"))
        .from("Cowner")
        .send()
        .await;
    r.expect(2000);
    assert!(r.uril().is_empty(), "{}", r.text);
}

// ---------------------------------------------------------------------------------------
// <container> CRUD and attribute policies

#[tokio::test]
async fn ts0004_7_3_3_container_create_retrieve_update_delete() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let c = s
        .create_cnt(
            &ae,
            "Cowner",
            json!({"rn": "cnt", "mni": 10, "lbl": ["a", "k:v"]}),
        )
        .await;
    assert_eq!(c["ty"], 3);
    assert_eq!(c["rn"], "cnt");
    assert_eq!(c["pi"], "Cowner");
    assert_eq!(c["st"], 0);
    assert_eq!(c["cni"], 0);
    assert_eq!(c["cbs"], 0);
    assert_eq!(c["mni"], 10);
    assert_eq!(c["lbl"], json!(["a", "k:v"]));
    let ct = parse_ts(c["ct"].as_str().expect("ct"));
    assert_eq!(c["lt"], c["ct"]);
    assert!(parse_ts(c["et"].as_str().expect("et")) > ct);
    assert!(c["ri"].as_str().is_some_and(|ri| !ri.is_empty()));

    let path = format!("{ae}/cnt");
    let r = s.get(&path, "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt"), &c);

    let r = s
        .update(
            &path,
            "Cowner",
            json!({"m2m:cnt": {"mni": 20, "lbl": ["b"]}}),
        )
        .await;
    r.expect(2004);
    let u = r.inner("m2m:cnt");
    assert_eq!(u["mni"], 20);
    assert_eq!(u["lbl"], json!(["b"]));
    assert_eq!(u["ct"], c["ct"]);
    // `lt` is at least `ct` here (the same second is likely); that it moves with the
    // clock is tested in-process (bastion-core/tests/clock.rs).
    assert!(
        parse_ts(u["lt"].as_str().unwrap()) >= ct,
        "lt not before ct: {}",
        r.text
    );
    assert_eq!(u["st"], 1, "stateTag counts modifications");
    // null removes an optional attribute.
    let r = s
        .update(&path, "Cowner", json!({"m2m:cnt": {"lbl": null}}))
        .await;
    r.expect(2004);
    assert!(r.inner("m2m:cnt").get("lbl").is_none(), "{}", r.text);
    // rn is not updatable.
    s.update(&path, "Cowner", json!({"m2m:cnt": {"rn": "renamed"}}))
        .await
        .expect(4000);

    s.delete(&path, "Cowner").await.expect(2002);
    s.get(&path, "Cowner").await.expect(4004);
    s.delete(&path, "Cowner").await.expect(4004);
    s.update(&path, "Cowner", json!({"m2m:cnt": {"mni": 1}}))
        .await
        .expect(4004);
}

#[tokio::test]
async fn ts0004_7_3_3_2_resource_name_generated_and_unique() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let a = s.create_cnt(&ae, "Cowner", json!({})).await;
    let b = s.create_cnt(&ae, "Cowner", json!({})).await;
    let (rn_a, rn_b) = (a["rn"].as_str().unwrap(), b["rn"].as_str().unwrap());
    assert!(!rn_a.is_empty() && !rn_b.is_empty());
    assert_ne!(rn_a, rn_b);
    assert_ne!(a["ri"], b["ri"]);
    s.get(&format!("{ae}/{rn_a}"), "Cowner").await.expect(2000);
    // Explicit duplicates conflict.
    s.create_cnt(&ae, "Cowner", json!({"rn": "dup"})).await;
    let r = s
        .create(
            &ae,
            "Cowner",
            3,
            json!({"m2m:cnt": {"rn": "dup", "mni": 1}}),
        )
        .await;
    r.expect(4105);
    assert!(s
        .get(&format!("{ae}/dup"), "Cowner")
        .await
        .inner("m2m:cnt")
        .get("mni")
        .is_none());
    // So does the generated name of a sibling, and an ACP's name.
    s.create(&ae, "Cowner", 3, json!({"m2m:cnt": {"rn": rn_a}}))
        .await
        .expect(4105);
    s.create(
        &ae,
        "Cowner",
        1,
        json!({"m2m:acp": {"rn": "dup", "pv": rules(&["Cowner"], 63), "pvs": rules(&["Cowner"], 63)}}),
    )
    .await
    .expect(4105);
    // Instances and containers share one name space under a container.
    let cnt = format!("{ae}/dup");
    s.create(
        &cnt,
        "Cowner",
        4,
        json!({"m2m:cin": {"rn": "same", "con": "x"}}),
    )
    .await
    .expect(2001);
    s.create(&cnt, "Cowner", 3, json!({"m2m:cnt": {"rn": "same"}}))
        .await
        .expect(4105);
    s.create(
        &cnt,
        "Cowner",
        4,
        json!({"m2m:cin": {"rn": "same", "con": "y"}}),
    )
    .await
    .expect(4105);
    // The same name under another parent is fine.
    s.create_cnt(&format!("{ae}/{rn_a}"), "Cowner", json!({"rn": "dup"}))
        .await;
}

#[tokio::test]
async fn ts0004_7_3_3_2_invalid_resource_names() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for rn in ["", "a/b", "a b", "ä", "..", "-", "la"] {
        let r = s
            .create(&ae, "Cowner", 3, json!({"m2m:cnt": {"rn": rn}}))
            .await;
        if rn == "la" {
            // "la" is only reserved under a container.
            r.expect(2001);
        } else {
            r.expect(4000);
        }
    }
    s.create(
        &ae,
        "Cowner",
        3,
        json!({"m2m:cnt": {"rn": "x".repeat(300)}}),
    )
    .await
    .expect(4000);
    s.create(&ae, "Cowner", 3, json!({"m2m:cnt": {"rn": 5}}))
        .await
        .expect(4000);
    let cnt = format!("{ae}/la");
    for rn in ["la", "ol"] {
        s.create(&cnt, "Cowner", 3, json!({"m2m:cnt": {"rn": rn}}))
            .await
            .expect(4000);
        s.create(
            &cnt,
            "Cowner",
            4,
            json!({"m2m:cin": {"rn": rn, "con": "x"}}),
        )
        .await
        .expect(4000);
    }
}

#[tokio::test]
async fn ts0004_7_3_3_2_not_permitted_attributes_are_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for (name, value) in [
        ("cni", json!(1)),
        ("cbs", json!(0)),
        ("ri", json!("cntMine")),
        ("ct", json!("20240101T000000")),
        ("lt", json!("20240101T000000")),
        ("st", json!(0)),
        ("ty", json!(3)),
        ("pi", json!("Cowner")),
        ("li", json!("x")),
    ] {
        let mut attrs = json!({"rn": format!("np-{name}")});
        attrs[name] = value;
        let r = s
            .create(&ae, "Cowner", 3, json!({ "m2m:cnt": attrs }))
            .await;
        r.expect(4000);
        s.get(&format!("{ae}/np-{name}"), "Cowner")
            .await
            .expect(4004);
    }
    // And in UPDATE.
    let path = format!("{ae}/ok");
    s.create_cnt(&ae, "Cowner", json!({"rn": "ok"})).await;
    for (name, value) in [
        ("cni", json!(5)),
        ("ri", json!("x")),
        ("ct", json!("20240101T000000")),
        ("cr", json!(null)),
    ] {
        let mut attrs = json!({});
        attrs[name] = value;
        s.update(&path, "Cowner", json!({ "m2m:cnt": attrs }))
            .await
            .expect(4000);
    }
    // AE: aei and api are not updatable.
    s.update(&ae, "Cowner", json!({"m2m:ae": {"api": "Nnew"}}))
        .await
        .expect(4000);
    s.update(&ae, "Cowner", json!({"m2m:ae": {"aei": "Cnew"}}))
        .await
        .expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_3_2_unknown_attribute_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for attrs in [
        json!({"rn": "u1", "foo": 1}),
        json!({"rn": "u2", "con": "x"}),
        json!({"rn": "u3", "api": "Nx"}),
    ] {
        let rn = attrs["rn"].as_str().unwrap().to_owned();
        s.create(&ae, "Cowner", 3, json!({ "m2m:cnt": attrs }))
            .await
            .expect(4000);
        s.get(&format!("{ae}/{rn}"), "Cowner").await.expect(4004);
    }
    s.create_cnt(&ae, "Cowner", json!({"rn": "ok"})).await;
    s.update(
        &format!("{ae}/ok"),
        "Cowner",
        json!({"m2m:cnt": {"foo": 1}}),
    )
    .await
    .expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_3_2_wrongly_typed_attributes_are_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    for (i, attrs) in [
        json!({"mni": "10"}),
        json!({"mni": -1}),
        json!({"mni": 1.5}),
        json!({"mbs": true}),
        json!({"lbl": "x"}),
        json!({"lbl": [1, 2]}),
        json!({"disr": "yes"}),
        json!({"et": "tomorrow"}),
        json!({"et": 20991231}),
        json!({"acpi": "acp1"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut attrs = attrs;
        attrs["rn"] = json!(format!("w{i}"));
        let r = s
            .create(&ae, "Cowner", 3, json!({ "m2m:cnt": attrs }))
            .await;
        r.expect(4000);
        s.get(&format!("{ae}/w{i}"), "Cowner").await.expect(4004);
    }
    // The resource content must be an object.
    s.create(&ae, "Cowner", 3, json!({"m2m:cnt": ["rn", "x"]}))
        .await
        .expect(4000);
    s.create(&ae, "Cowner", 3, json!({"m2m:cnt": "x"}))
        .await
        .expect(4000);
}

#[tokio::test]
async fn ts0001_9_6_1_3_creator_attribute() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let with = s
        .create_cnt(&ae, "Cowner", json!({"rn": "with", "cr": null}))
        .await;
    assert_eq!(with["cr"], "Cowner");
    let without = s.create_cnt(&ae, "Cowner", json!({"rn": "without"})).await;
    assert!(without.get("cr").is_none(), "no cr unless asked: {without}");
    for (rn, cr) in [
        ("x1", json!("Cx")),
        ("x2", json!("Cowner")),
        ("x3", json!("")),
    ] {
        s.create(&ae, "Cowner", 3, json!({"m2m:cnt": {"rn": rn, "cr": cr}}))
            .await
            .expect(4000);
        s.get(&format!("{ae}/{rn}"), "Cowner").await.expect(4004);
    }
    // For an instance too.
    let cin = s
        .create(
            &format!("{ae}/with"),
            "Cowner",
            4,
            json!({"m2m:cin": {"con": "v", "cr": null}}),
        )
        .await;
    cin.expect(2001);
    assert_eq!(cin.inner("m2m:cin")["cr"], "Cowner");
    // cr is NP in UPDATE.
    s.update(
        &format!("{ae}/with"),
        "Cowner",
        json!({"m2m:cnt": {"cr": "Cowner"}}),
    )
    .await
    .expect(4000);
}

#[tokio::test]
async fn ts0004_7_3_3_2_expiration_time_in_the_past_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create(
        &ae,
        "Cowner",
        3,
        json!({"m2m:cnt": {"rn": "old", "et": ts(-10)}}),
    )
    .await
    .expect(4000);
    s.create(
        &ae,
        "Cowner",
        3,
        json!({"m2m:cnt": {"rn": "old", "et": "20000101T000000"}}),
    )
    .await
    .expect(4000);
    s.get(&format!("{ae}/old"), "Cowner").await.expect(4004);
    s.create_cnt(&ae, "Cowner", json!({"rn": "ok"})).await;
    s.update(
        &format!("{ae}/ok"),
        "Cowner",
        json!({"m2m:cnt": {"et": ts(-10)}}),
    )
    .await
    .expect(4000);
    let future = ts(3600);
    let r = s
        .update(
            &format!("{ae}/ok"),
            "Cowner",
            json!({"m2m:cnt": {"et": future}}),
        )
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["et"], future.as_str());
}

#[tokio::test]
async fn ts0001_9_6_1_3_child_expiration_capped_by_parent() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let parent_et = ts(86_400);
    let p = s
        .create_cnt(&ae, "Cowner", json!({"rn": "p", "et": parent_et}))
        .await;
    assert_eq!(p["et"], parent_et.as_str());
    let c = s
        .create_cnt(
            &format!("{ae}/p"),
            "Cowner",
            json!({"rn": "c", "et": "20991231T000000"}),
        )
        .await;
    assert_eq!(c["et"], parent_et.as_str(), "capped at the parent's et");
    let d = s
        .create_cnt(&format!("{ae}/p"), "Cowner", json!({"rn": "d"}))
        .await;
    assert!(parse_ts(d["et"].as_str().unwrap()) <= parse_ts(&parent_et));
    let i = s.create_cin(&format!("{ae}/p"), "Cowner", "x").await;
    assert!(parse_ts(i["et"].as_str().unwrap()) <= parse_ts(&parent_et));
    let r = s
        .update(
            &format!("{ae}/p/c"),
            "Cowner",
            json!({"m2m:cnt": {"et": "20991231T000000"}}),
        )
        .await;
    r.expect(2004);
    assert_eq!(r.inner("m2m:cnt")["et"], parent_et.as_str());
}

#[tokio::test]
async fn ts0004_7_3_3_4_et_earlier_than_a_childs_is_bad_request() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    let far = ts(86_400);
    s.create_cnt(&ae, "Cowner", json!({"rn": "p", "et": far}))
        .await;
    s.create_cnt(&format!("{ae}/p"), "Cowner", json!({"rn": "c", "et": far}))
        .await;
    let r = s
        .update(
            &format!("{ae}/p"),
            "Cowner",
            json!({"m2m:cnt": {"et": ts(3600)}}),
        )
        .await;
    r.expect(4000);
    let r = s.get(&format!("{ae}/p"), "Cowner").await;
    assert_eq!(r.inner("m2m:cnt")["et"], far.as_str(), "unchanged");
    // Later than every child is fine.
    s.update(
        &format!("{ae}/p"),
        "Cowner",
        json!({"m2m:cnt": {"et": ts(172_800)}}),
    )
    .await
    .expect(2004);
    // Instances count as children.
    s.create_cnt(&ae, "Cowner", json!({"rn": "q", "et": far}))
        .await;
    s.create(
        &format!("{ae}/q"),
        "Cowner",
        4,
        json!({"m2m:cin": {"con": "x", "et": far}}),
    )
    .await
    .expect(2001);
    s.update(
        &format!("{ae}/q"),
        "Cowner",
        json!({"m2m:cnt": {"et": ts(3600)}}),
    )
    .await
    .expect(4000);
}

#[tokio::test]
async fn ts0004_7_4_8_content_instance_update_is_not_allowed() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    let cin = s.create_cin(&format!("{ae}/cnt"), "Cowner", "v").await;
    let rn = cin["rn"].as_str().unwrap();
    let ri = cin["ri"].as_str().unwrap();
    for path in [format!("{ae}/cnt/{rn}"), format!("/{ri}")] {
        let r = s
            .update(&path, "Cowner", json!({"m2m:cin": {"lbl": ["x"]}}))
            .await;
        r.expect(4005);
    }
    let r = s.get(&format!("/{ri}"), "Cowner").await;
    r.expect(2000);
    assert!(r.inner("m2m:cin").get("lbl").is_none());
    assert_eq!(r.inner("m2m:cin")["con"], "v");
}

#[tokio::test]
async fn ts0004_7_4_8_content_instance_attributes() {
    let s = Server::start();
    let ae = s.ae("Cowner").await;
    s.create_cnt(&ae, "Cowner", json!({"rn": "cnt"})).await;
    let r = s
        .create(
            &format!("{ae}/cnt"),
            "Cowner",
            4,
            json!({"m2m:cin": {"rn": "i", "cnf": "text/plain:0", "con": "hello", "lbl": ["l"]}}),
        )
        .await;
    r.expect(2001);
    let c = r.inner("m2m:cin");
    assert_eq!(c["ty"], 4);
    assert_eq!(c["cs"], 5);
    assert_eq!(c["st"], 1);
    assert_eq!(c["cnf"], "text/plain:0");
    assert!(c.get("acpi").is_none());
    let r = s.get(&format!("{ae}/cnt/i"), "Cowner").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cin"), c);
    // con is mandatory; cs and st are NP; acpi does not exist on an instance.
    for attrs in [
        json!({"cnf": "text/plain:0"}),
        json!({"con": "x", "cs": 1}),
        json!({"con": "x", "st": 1}),
        json!({"con": "x", "acpi": []}),
        json!({"con": "x", "mni": 1}),
    ] {
        s.create(
            &format!("{ae}/cnt"),
            "Cowner",
            4,
            json!({ "m2m:cin": attrs }),
        )
        .await
        .expect(4000);
    }
    // An instance has no children and lives only under a container.
    s.create(&format!("{ae}/cnt/i"), "Cowner", 3, json!({"m2m:cnt": {}}))
        .await
        .expect(4108);
    s.create(&ae, "Cowner", 4, json!({"m2m:cin": {"con": "x"}}))
        .await
        .expect(4108);
}

// ---------------------------------------------------------------------------------------
// Expiration (TS-0001 §9.6.1.3)

// Expiry at `et` is tested in-process with a set clock (bastion-core/tests/clock.rs:
// `ts0001_9_6_1_3_expired_resource_disappears_with_its_subtree`).

// ---------------------------------------------------------------------------------------
// Uniqueness under concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ts0004_7_3_3_2_concurrent_creates_of_one_name_yield_one_resource() {
    let s = std::sync::Arc::new(Server::start());
    let ae = s.ae("Cowner").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        let ae = ae.clone();
        tasks.push(tokio::spawn(async move {
            let r = s
                .create(
                    &ae,
                    "Cowner",
                    3,
                    json!({"m2m:cnt": {"rn": "race", "lbl": [format!("t{i}")]}}),
                )
                .await;
            r.rsc
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 2001).count(), 1, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == 4105).count(),
        23,
        "{codes:?}"
    );
    // Registrations race the same way.
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.request("POST", "/cse-in")
                .ty(2)
                .from("Crace")
                .json(&ae_body("Nrace"))
                .send()
                .await
                .rsc
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 2001).count(), 1, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == 4117).count(),
        23,
        "{codes:?}"
    );
}
