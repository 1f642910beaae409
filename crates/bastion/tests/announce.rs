//! Announcement between two real `bastion serve` processes (TS-0001 9.6.26, 10.2.18): an
//! MN-CSE registered with an IN-CSE (`common::federation`) announces an AE, a container
//! and a contentInstance to the IN over their security association; the IN serves the
//! `…Annc` copies with `lnk` pointing back, changes of announced attributes reach them,
//! and dropping the target or deleting the original removes them. Copies of a
//! `<mgmtObj>` and a `<flexContainer>` are named by their specializations; the
//! `<flexContainerInstance>`s of an announced flexContainer go under its copy, with only
//! the custom attributes its `aa` lists, and the IN keeps no more of them than the
//! copy's `mni`.

use crate::common;

use bastion_proto::Serialization;
use common::federation::Federation;
use common::Resp;
use serde_json::{json, Value};

/// The one copy of type `ty` on the IN, retrieved.
async fn one_copy(fed: &Federation, ty: u32, root: &str) -> Value {
    let uril = fed.inc.discovered("/cse-in/id-mn", ty).await;
    assert_eq!(uril.len(), 1, "one copy of type {ty} on the IN: {uril:?}");
    let r: Resp = fed.inc.get(&format!("/{}", uril[0]), "CAdmin").await;
    r.expect(2000);
    r.inner(root).clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_mn_announces_to_the_in_and_keeps_the_copies_in_sync() {
    let fed = tokio::task::block_in_place(Federation::start);
    // An AE registering with `at` is announced to the IN, under the MN's remoteCSE there.
    let r = fed
        .mn
        .create(
            "/cse-mn",
            "Cannouncer",
            2,
            json!({"m2m:ae": {"rn": "announcer", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-in"], "aa": ["api"], "lbl": ["site:1"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:ae")["at"], json!(["/id-in"]));
    let ae_copy = one_copy(&fed, 10002, "m2m:aeA").await;
    assert_eq!(ae_copy["ty"], 10002);
    assert_eq!(ae_copy["lnk"], "/id-mn/Cannouncer");
    assert_eq!(ae_copy["api"], "Nfed");
    assert_eq!(ae_copy["lbl"], json!(["site:1"]));
    assert!(ae_copy.get("rr").is_none(), "rr is not in aa: {ae_copy}");
    let csr = fed.inc.get("/cse-in/id-mn", "CAdmin").await;
    assert_eq!(ae_copy["pi"], csr.inner("m2m:csr")["ri"]);

    // A container announced under the AE's copy, an instance under the container's.
    let r = fed
        .mn
        .create(
            "/cse-mn/announcer",
            "Cannouncer",
            3,
            json!({"m2m:cnt": {"rn": "data", "mni": 5, "at": ["/id-in"], "aa": ["mni"]}}),
        )
        .await;
    r.expect(2001);
    let cnt = r.inner("m2m:cnt").clone();
    assert_eq!(cnt["at"], json!(["/id-in"]));
    let cnt_copy = one_copy(&fed, 10003, "m2m:cntA").await;
    assert_eq!(cnt_copy["pi"], ae_copy["ri"]);
    assert_eq!(
        cnt_copy["lnk"],
        format!("/id-mn/{}", cnt["ri"].as_str().unwrap())
    );
    assert_eq!(cnt_copy["mni"], 5);
    let r = fed
        .mn
        .create(
            "/cse-mn/announcer/data",
            "Cannouncer",
            4,
            json!({"m2m:cin": {"con": "21", "at": ["/id-in"], "aa": ["con"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:cin")["at"], json!(["/id-in"]));
    let cin_copy = one_copy(&fed, 10004, "m2m:cinA").await;
    assert_eq!(cin_copy["pi"], cnt_copy["ri"]);
    assert_eq!(cin_copy["con"], "21");

    // An UPDATE of an attribute `aa` lists reaches the copy; one it does not list, not.
    fed.mn
        .update(
            "/cse-mn/announcer/data",
            "Cannouncer",
            json!({"m2m:cnt": {"mni": 7, "mbs": 100}}),
        )
        .await
        .expect(2004);
    let cnt_copy = one_copy(&fed, 10003, "m2m:cntA").await;
    assert_eq!(cnt_copy["mni"], 7);
    assert!(
        cnt_copy.get("mbs").is_none(),
        "mbs is not in aa: {cnt_copy}"
    );

    // The announcing CSE alone changes a copy.
    let copy_at = format!("/~/id-in/{}", cnt_copy["ri"].as_str().unwrap());
    fed.inc
        .update(&copy_at, "CAdmin", json!({"m2m:cntA": {"mni": 1}}))
        .await
        .expect(4005);

    // Dropping the IN from `at` deletes the container's copy (and the instance's with it).
    let r = fed
        .mn
        .update(
            "/cse-mn/announcer/data",
            "Cannouncer",
            json!({"m2m:cnt": {"at": null}}),
        )
        .await;
    r.expect(2004);
    assert!(r.inner("m2m:cnt").get("at").is_none());
    assert!(fed.inc.discovered("/cse-in/id-mn", 10003).await.is_empty());
    assert!(fed.inc.discovered("/cse-in/id-mn", 10004).await.is_empty());
    assert_eq!(fed.inc.discovered("/cse-in/id-mn", 10002).await.len(), 1);

    // Deleting the original AE deletes its copy.
    fed.mn
        .delete("/cse-mn/announcer", "Cannouncer")
        .await
        .expect(2002);
    assert!(fed.inc.discovered("/cse-in/id-mn", 10002).await.is_empty());
    let _ = &fed.files;
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_a_cse_that_is_not_a_peer_is_left_out_of_at() {
    let fed = tokio::task::block_in_place(Federation::start);
    let r = fed
        .mn
        .create(
            "/cse-mn",
            "Cpartial",
            2,
            json!({"m2m:ae": {"rn": "partial", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-in", "/id-nowhere"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:ae")["at"], json!(["/id-in"]));
    let stored = fed.mn.get("/cse-mn/partial", "Cpartial").await;
    assert_eq!(stored.inner("m2m:ae")["at"], json!(["/id-in"]));
    assert_eq!(fed.inc.discovered("/cse-in/id-mn", 10002).await.len(), 1);
    // Sent through the registrar, which knows no such CSE (4004): dropped, not kept to
    // retry.
    let log = fed.mn.log();
    assert!(
        log.lines()
            .any(|l| l.contains("not announced") && l.contains("target=/id-nowhere")),
        "{log}"
    );
    assert!(!log.contains("kept to retry"), "{log}");
}

/// Through an intermediate CSE: MN2, registered with the MN, announces to the IN, where
/// it is not registered. The copy goes under MN2's `<CSEBaseAnnc>` there, created first;
/// MN2's requests reach the IN relayed by the MN, whose `dcse` lists MN2.
#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_mn2_announces_to_the_in_through_its_registrar() {
    let fed = tokio::task::block_in_place(Federation::start);
    let mn2 = tokio::task::block_in_place(|| fed.start_mn2());
    let r = mn2
        .create(
            "/cse-mn2",
            "Cfar",
            2,
            json!({"m2m:ae": {"rn": "far", "api": "Nfed", "rr": false, "srv": ["3"],
                "lbl": ["a"], "at": ["/id-in"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:ae")["at"], json!(["/id-in"]), "{}", mn2.log());
    let ri = r.inner("m2m:ae")["ri"].as_str().expect("ri").to_owned();
    let base = fed.inc.get("/cse-in/id-mn2Annc", "CAdmin").await;
    base.expect(2000);
    assert_eq!(base.inner("m2m:cbA")["lnk"], json!("/id-mn2/cse-mn2"));
    let uril = fed.inc.discovered("/cse-in/id-mn2Annc", 10002).await;
    assert_eq!(uril.len(), 1, "one copy under MN2's CSEBaseAnnc: {uril:?}");
    let copy_path = format!("/{}", uril[0]);
    let copy = fed.inc.get(&copy_path, "CAdmin").await;
    copy.expect(2000);
    assert_eq!(copy.inner("m2m:aeA")["lnk"], json!(format!("/id-mn2/{ri}")));
    assert_eq!(copy.inner("m2m:aeA")["lbl"], json!(["a"]));
    // Nothing was announced under the MN's remoteCSE on the IN.
    assert!(fed.inc.discovered("/cse-in/id-mn", 10002).await.is_empty());

    mn2.update("/cse-mn2/far", "Cfar", json!({"m2m:ae": {"lbl": ["b"]}}))
        .await
        .expect(2004);
    let copy = fed.inc.get(&copy_path, "CAdmin").await;
    copy.expect(2000);
    assert_eq!(copy.inner("m2m:aeA")["lbl"], json!(["b"]));

    mn2.delete("/cse-mn2/far", "Cfar").await.expect(2002);
    fed.inc.get(&copy_path, "CAdmin").await.expect(4004);
    // MN2's CSEBaseAnnc stays for its next announcement.
    fed.inc
        .get("/cse-in/id-mn2Annc", "CAdmin")
        .await
        .expect(2000);

    // The IN has no registrar: MN2, below the MN, is left out of its `at`.
    let r = fed
        .inc
        .create(
            "/cse-in",
            "Cdown",
            2,
            json!({"m2m:ae": {"rn": "down", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-mn", "/id-mn2"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:ae")["at"], json!(["/id-mn"]));
    let log = fed.inc.log();
    assert!(
        log.lines()
            .any(|l| l.contains("not announced") && l.contains("target=/id-mn2")),
        "{log}"
    );
    assert!(mn2.discovered("/cse-mn2", 10002).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_in_announces_to_its_registree() {
    let fed = tokio::task::block_in_place(Federation::start_secure);
    let r = fed
        .inc
        .create(
            "/cse-in",
            "Cinapp",
            2,
            json!({"m2m:ae": {"rn": "inapp", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-mn"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:ae")["at"], json!(["/id-mn"]));
    let uril = fed.mn.discovered("/cse-mn/id-in", 10002).await;
    assert_eq!(uril.len(), 1, "{uril:?}");
    let copy = fed.mn.get(&format!("/{}", uril[0]), "CAdmin").await;
    assert_eq!(copy.inner("m2m:aeA")["lnk"], "/id-in/Cinapp");
    fed.inc.delete("/cse-in/inapp", "Cinapp").await.expect(2002);
    assert!(fed.mn.discovered("/cse-mn/id-in", 10002).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_where_the_copies_live_survives_a_restart() {
    let mut fed = tokio::task::block_in_place(Federation::start);
    fed.mn
        .create(
            "/cse-mn",
            "Cdurable",
            2,
            json!({"m2m:ae": {"rn": "durable", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-in"]}}),
        )
        .await
        .expect(2001);
    assert_eq!(fed.inc.discovered("/cse-in/id-mn", 10002).await.len(), 1);
    tokio::task::block_in_place(|| {
        fed.mn.restart();
        fed.wait_registered(Some(fed.mn.port()));
    });
    let stored = fed.mn.get("/cse-mn/durable", "Cdurable").await;
    assert_eq!(stored.inner("m2m:ae")["at"], json!(["/id-in"]));
    // The restarted MN still knows where the copy is, and deletes it with the original.
    fed.mn
        .delete("/cse-mn/durable", "Cdurable")
        .await
        .expect(2002);
    assert!(fed.inc.discovered("/cse-in/id-mn", 10002).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_node_firmware_and_flex_container_are_announced_by_specialization() {
    let fed = tokio::task::block_in_place(Federation::start);
    let r = fed
        .mn
        .create(
            "/cse-mn",
            "CAdmin",
            14,
            json!({"m2m:nod": {"rn": "dev", "ni": "urn:dev:1", "at": ["/id-in"], "aa": ["ni"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:nod")["at"], json!(["/id-in"]));
    let nod_copy = one_copy(&fed, 10014, "m2m:nodA").await;
    assert_eq!(nod_copy["ni"], "urn:dev:1");

    // The firmware's copy goes under the node's, named `m2m:fwrA`, with its `mgd`.
    let r = fed
        .mn
        .create(
            "/cse-mn/dev",
            "CAdmin",
            13,
            json!({"m2m:fwr": {"rn": "fw", "mgd": 1001, "vr": "1.0", "fwn": "image",
                "url": "http://example.com/fw", "ud": false, "at": ["/id-in"], "aa": ["vr"]}}),
        )
        .await;
    r.expect(2001);
    let fw = r.inner("m2m:fwr").clone();
    assert_eq!(fw["at"], json!(["/id-in"]));
    let fw_copy = one_copy(&fed, 10013, "m2m:fwrA").await;
    assert_eq!(fw_copy["ty"], 10013);
    assert_eq!(fw_copy["pi"], nod_copy["ri"]);
    assert_eq!(fw_copy["mgd"], 1001);
    assert_eq!(fw_copy["vr"], "1.0");
    assert_eq!(
        fw_copy["lnk"],
        format!("/id-mn/{}", fw["ri"].as_str().unwrap())
    );
    assert!(fw_copy.get("fwn").is_none(), "fwn is not in aa: {fw_copy}");
    fed.mn
        .update(
            "/cse-mn/dev/fw",
            "CAdmin",
            json!({"m2m:fwr": {"vr": "1.1"}}),
        )
        .await
        .expect(2004);
    assert_eq!(one_copy(&fed, 10013, "m2m:fwrA").await["vr"], "1.1");

    // A flexContainer's copy is named by its specialization and carries `cnd`.
    let r = fed
        .mn
        .create(
            "/cse-mn",
            "CAdmin",
            28,
            json!({"cod:binSh": {"rn": "switch", "cnd": "org.onem2m.common.moduleclass.binarySwitch",
                "powSe": true, "at": ["/id-in"], "aa": ["powSe"]}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("cod:binSh")["at"], json!(["/id-in"]));
    let flex_copy = one_copy(&fed, 10028, "cod:binShAnnc").await;
    assert_eq!(flex_copy["ty"], 10028);
    assert_eq!(
        flex_copy["cnd"],
        "org.onem2m.common.moduleclass.binarySwitch"
    );
    assert_eq!(flex_copy["powSe"], true);
    fed.mn
        .update(
            "/cse-mn/switch",
            "CAdmin",
            json!({"cod:binSh": {"powSe": false}}),
        )
        .await
        .expect(2004);
    assert_eq!(one_copy(&fed, 10028, "cod:binShAnnc").await["powSe"], false);

    // Served in every serialization, the specialization's members typed (XML text too).
    for (ty, root) in [(10013, "m2m:fwrA"), (10028, "cod:binShAnnc")] {
        let json_copy = one_copy(&fed, ty, root).await;
        let at = format!("/~/id-in/{}", json_copy["ri"].as_str().unwrap());
        for ser in [Serialization::Xml, Serialization::Cbor] {
            let r = fed
                .inc
                .request("GET", &at)
                .from("CAdmin")
                .header("Accept", ser.media_type())
                .send()
                .await;
            r.expect(2000);
            assert_eq!(r.inner(root), &json_copy, "{ser:?}");
        }
    }

    // Deleting the node deletes its copy and the firmware's with it.
    fed.mn.delete("/cse-mn/dev", "CAdmin").await.expect(2002);
    assert!(fed.inc.discovered("/cse-in/id-mn", 10014).await.is_empty());
    assert!(fed.inc.discovered("/cse-in/id-mn", 10013).await.is_empty());
    fed.mn.delete("/cse-mn/switch", "CAdmin").await.expect(2002);
    assert!(fed.inc.discovered("/cse-in/id-mn", 10028).await.is_empty());
}

/// The copies of type `ty` on the IN, retrieved, in no particular order.
async fn copies(fed: &Federation, ty: u32, root: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for uri in fed.inc.discovered("/cse-in/id-mn", ty).await {
        let r: Resp = fed.inc.get(&format!("/{uri}"), "CAdmin").await;
        r.expect(2000);
        out.push(r.inner(root).clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_9_6_26_flex_container_instances_are_announced_under_the_flex_containers_copy() {
    let fed = tokio::task::block_in_place(Federation::start);
    // An announced flexContainer keeping instances: the one its CREATE makes is
    // announced under the container's copy, named by the specialization, ty 10058.
    fed.mn
        .create(
            "/cse-mn",
            "CAdmin",
            28,
            json!({"cod:binSh": {"rn": "switch", "cnd": "org.onem2m.common.moduleclass.binarySwitch",
                "powSe": true, "mni": 5, "at": ["/id-in"], "aa": ["powSe", "mni"]}}),
        )
        .await
        .expect(2001);
    let flex_copy = one_copy(&fed, 10028, "cod:binShAnnc").await;
    let first = fed.mn.get("/cse-mn/switch/la", "CAdmin").await;
    first.expect(2000);
    let first = first.inner("cod:binSh").clone();
    assert_eq!(first["ty"], 58);
    // The instance's `at` is its container's; of `aa`, the custom attributes.
    assert_eq!(first["at"], json!(["/id-in"]));
    assert_eq!(first["aa"], json!(["powSe"]));
    let copy = one_copy(&fed, 10058, "cod:binShAnnc").await;
    assert_eq!(copy["ty"], 10058);
    assert_eq!(copy["pi"], flex_copy["ri"]);
    assert_eq!(
        copy["lnk"],
        format!("/id-mn/{}", first["ri"].as_str().unwrap())
    );
    assert_eq!(copy["powSe"], true);
    assert_eq!(copy["et"], first["et"]);

    // An UPDATE of a custom attribute makes an instance: its copy joins the first.
    fed.mn
        .update(
            "/cse-mn/switch",
            "CAdmin",
            json!({"cod:binSh": {"powSe": false}}),
        )
        .await
        .expect(2004);
    let second = fed.mn.get("/cse-mn/switch/la", "CAdmin").await;
    second.expect(2000);
    let second = second.inner("cod:binSh").clone();
    assert_ne!(second["ri"], first["ri"]);
    let lnk = format!("/id-mn/{}", second["ri"].as_str().unwrap());
    let all = copies(&fed, 10058, "cod:binShAnnc").await;
    assert_eq!(all.len(), 2, "{all:?}");
    let copy = all
        .iter()
        .find(|c| c["lnk"] == lnk.as_str())
        .unwrap_or_else(|| panic!("no copy links to {lnk}: {all:?}"));
    assert_eq!(copy["pi"], flex_copy["ri"]);
    assert_eq!(copy["powSe"], false);
    // Retrieved directly at the IN, in XML too (the members typed by the specialization).
    let at = format!("/~/id-in/{}", copy["ri"].as_str().unwrap());
    let r = fed
        .inc
        .request("GET", &at)
        .from("CAdmin")
        .header("Accept", Serialization::Xml.media_type())
        .send()
        .await;
    r.expect(2000);
    assert_eq!(r.inner("cod:binShAnnc"), copy);

    // An UPDATE of no custom attribute makes no instance, and no copy.
    fed.mn
        .update("/cse-mn/switch", "CAdmin", json!({"cod:binSh": {"mni": 4}}))
        .await
        .expect(2004);
    assert_eq!(fed.inc.discovered("/cse-in/id-mn", 10058).await.len(), 2);

    // Deleting the flexContainer deletes its copy, the instances' copies with it.
    fed.mn.delete("/cse-mn/switch", "CAdmin").await.expect(2002);
    assert!(fed.inc.discovered("/cse-in/id-mn", 10028).await.is_empty());
    assert!(fed.inc.discovered("/cse-in/id-mn", 10058).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0004_7_4_37_an_instance_copy_holds_only_the_announced_custom_attributes_and_is_bounded()
{
    let fed = tokio::task::block_in_place(Federation::start);
    // A specialization with two custom attributes set, only one of them in `aa`; `mni`
    // announced too, so the copy at the IN keeps as many instance copies as the original.
    fed.mn
        .create(
            "/cse-mn",
            "CAdmin",
            28,
            json!({"cod:tempe": {"rn": "thermo", "cnd": "org.onem2m.common.moduleclass.temperature",
                "curT0": 20.5, "tarTe": 22.0, "mni": 2, "at": ["/id-in"], "aa": ["curT0", "mni"]}}),
        )
        .await
        .expect(2001);
    let flex_copy = one_copy(&fed, 10028, "cod:tempeAnnc").await;
    assert_eq!(flex_copy["mni"], 2);
    assert_eq!(flex_copy["curT0"], 20.5);
    assert!(flex_copy.get("tarTe").is_none(), "{flex_copy}");
    let first = fed.mn.get("/cse-mn/thermo/la", "CAdmin").await;
    first.expect(2000);
    let first = first.inner("cod:tempe").clone();
    assert_eq!(first["tarTe"], 22.0);
    assert_eq!(first["aa"], json!(["curT0"]));
    let copy = one_copy(&fed, 10058, "cod:tempeAnnc").await;
    let mut members: Vec<&str> = copy.as_object().unwrap().keys().map(|k| &**k).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["ct", "curT0", "et", "lnk", "lt", "pi", "ri", "rn", "ty"],
        "{copy}"
    );
    assert_eq!(copy["ty"], 10058);
    assert_eq!(copy["pi"], flex_copy["ri"]);
    assert_eq!(
        copy["lnk"],
        format!("/id-mn/{}", first["ri"].as_str().unwrap())
    );
    assert_eq!(copy["curT0"], 20.5);
    assert_eq!(copy["et"], first["et"]);

    // Two more instances: the original keeps the newest two (`mni`), and so does its
    // copy at the IN, although nothing tells the IN the first instance went.
    for t in [21.0, 21.5] {
        fed.mn
            .update(
                "/cse-mn/thermo",
                "CAdmin",
                json!({"cod:tempe": {"curT0": t}}),
            )
            .await
            .expect(2004);
    }
    let all = copies(&fed, 10058, "cod:tempeAnnc").await;
    let mut values: Vec<f64> = all.iter().map(|c| c["curT0"].as_f64().unwrap()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [21.0, 21.5], "{all:?}");
    assert!(all.iter().all(|c| c["lnk"] != copy["lnk"]), "{all:?}");
    let gone = format!("/~/id-in/{}", copy["ri"].as_str().unwrap());
    fed.inc.get(&gone, "CAdmin").await.expect(4004);
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0004_7_3_3_3_rcn_7_fetches_the_original_for_the_requesting_originator() {
    let fed = tokio::task::block_in_place(Federation::start);
    fed.mn
        .create(
            "/cse-mn",
            "Cowner",
            2,
            json!({"m2m:ae": {"rn": "owner", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-in"]}}),
        )
        .await
        .expect(2001);
    // One original grants the IN's admin, the other only the IN-CSE itself: the
    // original is fetched as the requesting originator, never as the IN.
    for (rn, acor) in [("admin", "/id-in/CAdmin"), ("cse", "/id-in")] {
        fed.mn
            .create_acp(
                "/cse-mn/owner",
                "Cowner",
                rn,
                json!({"acr": [{"acor": [acor], "acop": 2}]}),
                json!({"acr": [{"acor": ["Cowner"], "acop": 63}]}),
            )
            .await;
    }
    let mut originals = Vec::new();
    for (rn, acp) in [("open", "admin"), ("closed", "cse")] {
        let cnt = fed
            .mn
            .create_cnt(
                "/cse-mn/owner",
                "Cowner",
                json!({"rn": rn, "mni": 3, "acpi": [format!("cse-mn/owner/{acp}")],
                    "at": ["/id-in"]}),
            )
            .await;
        assert_eq!(cnt["at"], json!(["/id-in"]), "{rn} announced");
        originals.push(cnt);
    }
    let copies = fed.inc.discovered("/cse-in/id-mn", 10003).await;
    assert_eq!(copies.len(), 2, "{copies:?}");
    let copy_of = |ri: &str| {
        let fed = &fed;
        let ri = ri.to_owned();
        async move {
            for c in fed.inc.discovered("/cse-in/id-mn", 10003).await {
                let r = fed.inc.get(&format!("/{c}"), "CAdmin").await;
                if r.inner("m2m:cntA")["lnk"] == format!("/id-mn/{ri}") {
                    return format!("/{c}");
                }
            }
            panic!("no copy of {ri}");
        }
    };
    let open = copy_of(originals[0]["ri"].as_str().unwrap()).await;
    let closed = copy_of(originals[1]["ri"].as_str().unwrap()).await;

    // Granted by the original's policy: the original's representation, as its host has it.
    let r = fed.inc.get(&format!("{open}?rcn=7"), "CAdmin").await;
    r.expect(2000);
    let original = r.inner("m2m:cnt");
    assert_eq!(original["ri"], originals[0]["ri"]);
    assert_eq!(original["ty"], 3);
    assert_eq!(original["mni"], 3);
    assert_eq!(original["acpi"], json!(["cse-mn/owner/admin"]));
    assert!(r.body.get("m2m:cntA").is_none(), "{}", r.text);

    // The original's policy grants the IN-CSE, not its admin: refused by the MN.
    let r = fed.inc.get(&format!("{closed}?rcn=7"), "CAdmin").await;
    r.expect(4103);
    assert!(r.body.get("m2m:cnt").is_none(), "{}", r.text);

    // The copy's own decision comes first: an IN AE the copy does not grant gets 4103.
    common::federation::ae(&fed.inc, "cse-in", "Cstranger").await;
    fed.inc
        .get(&format!("{open}?rcn=7"), "Cstranger")
        .await
        .expect(4103);

    // rcn 7 on a resource that is not announced.
    fed.inc
        .get("/cse-in/id-mn?rcn=7", "CAdmin")
        .await
        .expect(4000);
    let _ = &fed.files;
}

/// Polls `check` until it holds, for at most `within`.
async fn eventually<F, Fut>(within: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_10_2_18_a_copy_missed_while_the_target_is_down_is_made_later() {
    let mut fed = tokio::task::block_in_place(Federation::start_restartable_in);
    // The target (the IN's registree) is down when the IN announces.
    tokio::task::block_in_place(|| fed.mn.stop());
    let r = fed
        .inc
        .create(
            "/cse-in",
            "Clater",
            2,
            json!({"m2m:ae": {"rn": "later", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-mn"], "lbl": ["v:1"]}}),
        )
        .await;
    r.expect(2001);
    // `at` lists where a copy exists: none yet.
    assert!(r.inner("m2m:ae").get("at").is_none(), "{}", r.text);
    // A pending CREATE whose original is deleted is cancelled with it.
    fed.inc
        .create(
            "/cse-in",
            "Cgone",
            2,
            json!({"m2m:ae": {"rn": "gone", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-mn"]}}),
        )
        .await
        .expect(2001);
    fed.inc.delete("/cse-in/gone", "Cgone").await.expect(2002);

    // The announcing CSE restarts in between: the pending CREATE is durable.
    tokio::task::block_in_place(|| fed.inc.restart());
    let stored = fed.inc.get("/cse-in/later", "Clater").await;
    stored.expect(2000);
    assert!(
        stored.inner("m2m:ae").get("at").is_none(),
        "{}",
        stored.text
    );

    // The target comes back (and tells the IN its new address): the copy appears.
    tokio::task::block_in_place(|| {
        fed.mn.respawn();
        fed.wait_registered(Some(fed.mn.port()));
    });
    let within = std::time::Duration::from_secs(60);
    eventually(within, "the copy is made on the MN", || async {
        fed.mn.discovered("/cse-mn/id-in", 10002).await.len() == 1
    })
    .await;
    let uril = fed.mn.discovered("/cse-mn/id-in", 10002).await;
    let copy = fed.mn.get(&format!("/{}", uril[0]), "CAdmin").await;
    copy.expect(2000);
    assert_eq!(copy.inner("m2m:aeA")["lnk"], "/id-in/Clater");
    assert_eq!(copy.inner("m2m:aeA")["lbl"], json!(["v:1"]));
    eventually(within, "at lists the target", || async {
        fed.inc.get("/cse-in/later", "Clater").await.inner("m2m:ae")["at"] == json!(["/id-mn"])
    })
    .await;

    // Kept in sync from then on, and removed with the original.
    fed.inc
        .update(
            "/cse-in/later",
            "Clater",
            json!({"m2m:ae": {"lbl": ["v:2"]}}),
        )
        .await
        .expect(2004);
    let copy = fed.mn.get(&format!("/{}", uril[0]), "CAdmin").await;
    assert_eq!(copy.inner("m2m:aeA")["lbl"], json!(["v:2"]));
    fed.inc.delete("/cse-in/later", "Clater").await.expect(2002);
    assert!(fed.mn.discovered("/cse-mn/id-in", 10002).await.is_empty());
    let _ = &fed.files;
}

/// A target reached through the registrar that does not answer (the MN answers 5103) is
/// retried like an adjacent one: the copy appears once the IN is back.
#[tokio::test(flavor = "multi_thread")]
async fn ts0001_10_2_18_a_copy_missed_through_the_registrar_is_made_later() {
    let mut fed = tokio::task::block_in_place(Federation::start_restartable_in);
    let mn2 = tokio::task::block_in_place(|| fed.start_mn2());
    tokio::task::block_in_place(|| fed.inc.stop());
    let r = mn2
        .create(
            "/cse-mn2",
            "Cwait",
            2,
            json!({"m2m:ae": {"rn": "wait", "api": "Nfed", "rr": false, "srv": ["3"],
                "at": ["/id-in"]}}),
        )
        .await;
    r.expect(2001);
    assert!(r.inner("m2m:ae").get("at").is_none(), "{}", r.text);
    let ri = r.inner("m2m:ae")["ri"].as_str().expect("ri").to_owned();

    tokio::task::block_in_place(|| fed.inc.respawn());
    let within = std::time::Duration::from_secs(60);
    eventually(within, "the copy is made on the IN", || async {
        fed.inc.get("/cse-in/id-mn2Annc", "CAdmin").await.rsc == 2000
            && fed.inc.discovered("/cse-in/id-mn2Annc", 10002).await.len() == 1
    })
    .await;
    let uril = fed.inc.discovered("/cse-in/id-mn2Annc", 10002).await;
    let copy = fed.inc.get(&format!("/{}", uril[0]), "CAdmin").await;
    copy.expect(2000);
    assert_eq!(copy.inner("m2m:aeA")["lnk"], json!(format!("/id-mn2/{ri}")));
    eventually(within, "at lists the target", || async {
        mn2.get("/cse-mn2/wait", "Cwait").await.inner("m2m:ae")["at"] == json!(["/id-in"])
    })
    .await;
    let _ = &fed.files;
}
