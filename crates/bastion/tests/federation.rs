//! Remote CSEs and forwarding (issue 5; TS-0001 7.3.2.6, 10.1.1.2; TS-0003 7.2.1) with two
//! real `bastion serve` processes, an IN-CSE and an MN-CSE registered with it
//! (`common::federation`).

use crate::common;

use common::federation::{ae, readable_container, Federation, KPSA_ID};
use common::{bastion, ok, path, Receiver, Resp, Server};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A container `data` under `ae` with one instance, readable (RETRIEVE only) by `reader`.
async fn shared_container(s: &Server, ae: &str, owner: &str, reader: &str) -> String {
    readable_container(s, ae, owner, reader, false).await
}

/// Revokes, in the IN's credential store, the PSK it shares with the MN.
fn revoke_mn_credential_on_the_in(fed: &Federation) {
    let in_dir = fed.inc.data_dir().to_string_lossy().into_owned();
    ok(&bastion(&[
        "credentials",
        "revoke",
        "--data-dir",
        &in_dir,
        "--key-file",
        &path(fed.files.path(), "store.key"),
        "--id",
        KPSA_ID,
    ]));
}

fn csr(r: &Resp) -> &Value {
    r.inner("m2m:csr")
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_10_1_1_2_mn_registers_and_both_sides_hold_a_remote_cse() {
    let fed = tokio::task::block_in_place(Federation::start);
    let on_in = fed.inc.get("/cse-in/id-mn", "CAdmin").await;
    on_in.expect(2000);
    let c = csr(&on_in);
    assert_eq!(c["ty"], 16);
    assert_eq!(c["csi"], "/id-mn");
    assert_eq!(c["cb"], "/id-mn/cse-mn");
    assert_eq!(c["cst"], 2);
    assert_eq!(c["rr"], true);
    assert_eq!(
        c["poa"],
        json!([format!("http://127.0.0.1:{}", fed.mn.port())])
    );
    let on_mn = fed.mn.get("/cse-mn/id-in", "CAdmin").await;
    on_mn.expect(2000);
    let c = csr(&on_mn);
    assert_eq!(c["csi"], "/id-in");
    assert_eq!(c["cb"], "/id-in/cse-in");
    assert_eq!(
        c["poa"],
        json!([format!("https://127.0.0.1:{}", fed.in_tls)])
    );
    // An AE may not register a CSE.
    let again = json!({"m2m:csr": {"cb": "/id-mn/cse-mn", "rr": true, "srv": ["3"]}});
    fed.inc.ae("Cinapp").await;
    fed.inc
        .create("/cse-in", "Cinapp", 16, again.clone())
        .await
        .expect(4005);
    // An AE may not update or delete a remoteCSE either.
    fed.inc
        .update("/cse-in/id-mn", "Cinapp", json!({"m2m:csr": {"rr": false}}))
        .await
        .expect(4005);
    fed.inc.delete("/cse-in/id-mn", "Cinapp").await.expect(4005);
    let _ = &fed.files;
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_7_3_2_6_mn_ae_reaches_the_in_and_the_in_acp_decides() {
    let fed = tokio::task::block_in_place(Federation::start);
    let owner = fed.inc.ae("Cinowner").await;
    let cnt = shared_container(&fed.inc, &owner, "Cinowner", "/id-mn/Cmnapp").await;
    ae(&fed.mn, "cse-mn", "Cmnapp").await;
    ae(&fed.mn, "cse-mn", "Cmnother").await;
    let via = format!("/~/id-in{cnt}/la");
    let allowed = fed.mn.get(&via, "Cmnapp").await;
    allowed.expect(2000);
    assert_eq!(allowed.inner("m2m:cin")["con"], "21.5");
    // The ACP grants RETRIEVE only: a CREATE is refused by the IN.
    fed.mn
        .create(
            &format!("/~/id-in{cnt}"),
            "Cmnapp",
            4,
            json!({"m2m:cin": {"con": "x"}}),
        )
        .await
        .expect(4103);
    let denied = fed.mn.get(&via, "Cmnother").await;
    denied.expect(4103);
    // The denial is the IN's: its audit log names the relayed originator.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let audit =
            std::fs::read_to_string(fed.inc.data_dir().join("audit.log")).unwrap_or_default();
        if audit.contains("/id-mn/Cmnother") {
            break;
        }
        assert!(Instant::now() < deadline, "IN audit: {audit}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An AE that is not registered on the MN is stopped there (4106), never forwarded.
    fed.mn.get(&via, "Cnobody").await.expect(4106);
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_7_3_2_6_in_side_reaches_the_mn_and_unknown_cses_are_4004() {
    let fed = tokio::task::block_in_place(Federation::start);
    let owner = ae(&fed.mn, "cse-mn", "Cmnowner").await;
    let cnt = shared_container(&fed.mn, &owner, "Cmnowner", "/id-in/Cinapp").await;
    fed.inc.ae("Cinapp").await;
    fed.inc.ae("Cinother").await;
    let via = format!("/~/id-mn{cnt}");
    let r = fed.inc.get(&via, "Cinapp").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["rn"], "data");
    assert_eq!(r.inner("m2m:cnt")["cni"], 1);
    fed.inc.get(&via, "Cinother").await.expect(4103);
    // Absolute form too.
    fed.inc
        .get(&format!("/_/bastion.example/id-mn{cnt}"), "Cinapp")
        .await
        .expect(2000);
    // Unknown CSE-ID: the IN has no route (4004); from the MN it goes up and the IN's
    // 4004 is relayed.
    let none = fed.inc.get("/~/id-nowhere/cse-x", "Cinapp").await;
    none.expect(4004);
    ae(&fed.mn, "cse-mn", "Cmnapp").await;
    fed.mn
        .get("/~/id-nowhere/cse-x", "Cmnapp")
        .await
        .expect(4004);
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_7_3_2_6_registrations_are_never_forwarded() {
    let fed = tokio::task::block_in_place(Federation::start);
    fed.mn
        .create(
            "/~/id-in/cse-in",
            "Cnew",
            2,
            json!({"m2m:ae": {"api": "Nx", "rr": false, "srv": ["3"]}}),
        )
        .await
        .expect(4000);
    fed.mn
        .create(
            "/~/id-in/cse-in",
            "/id-asn",
            16,
            json!({"m2m:csr": {"cb": "/id-asn/cse-asn", "rr": true, "srv": ["3"]}}),
        )
        .await
        .expect(4000);
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0003_7_2_1_spoofed_originator_on_the_mn_association_is_4106() {
    let fed = tokio::task::block_in_place(Federation::start);
    fed.inc.ae("Cinapp").await;
    // Neither an originator of another CSE, nor an IN AE, nor the IN's admin.
    for spoof in [
        "/id-other/Cx",
        "/id-other",
        "Cinapp",
        "CAdmin",
        "/id-in/Cinapp",
    ] {
        let out = tokio::task::block_in_place(|| fed.on_mn_association(spoof, "/cse-in"));
        assert!(out.starts_with("4106"), "{spoof}: {out}");
    }
    // The MN itself and its own AEs pass the association check; then the IN's policy
    // decides: the registered MN may read the CSEBase (`[access]
    // registered-retrieve-cse-base`), an AE registered only at the MN may not.
    for (relayed, rsc) in [("/id-mn", "2000"), ("/id-mn/Cmnapp", "4103")] {
        let out = tokio::task::block_in_place(|| fed.on_mn_association(relayed, "/cse-in"));
        assert!(out.starts_with(rsc), "{relayed}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_10_1_1_2_restarted_mn_refreshes_its_registration() {
    let mut fed = tokio::task::block_in_place(Federation::start);
    let before = fed.mn.port();
    tokio::task::block_in_place(|| {
        fed.mn.restart();
        fed.wait_registered(Some(fed.mn.port()));
    });
    assert_ne!(before, fed.mn.port());
    assert!(
        tokio::task::block_in_place(|| fed.mn.log_shows(
            "registration with the registrar refreshed",
            Duration::from_secs(5)
        )),
        "{}",
        fed.mn.log()
    );
    // Forwarding uses the new point of access.
    let owner = ae(&fed.mn, "cse-mn", "Cmnowner").await;
    let cnt = shared_container(&fed.mn, &owner, "Cmnowner", "/id-in/Cinapp").await;
    fed.inc.ae("Cinapp").await;
    fed.inc
        .get(&format!("/~/id-mn{cnt}/la"), "Cinapp")
        .await
        .expect(2000);
}

/// A notification target recording what it receives.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/n", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let sink = sink.clone();
        async move {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            sink.lock().expect("lock").push(value);
            axum::http::Response::builder()
                .status(200)
                .header("X-M2M-RSC", "2000")
                .body(axum::body::Body::empty())
                .expect("response")
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0001_10_2_11_notifications_reach_an_ae_behind_the_mn() {
    let fed = tokio::task::block_in_place(Federation::start);
    let (got, _) = notifications_reach_an_ae_behind_the_mn(&fed, false).await;
    assert_eq!(got.lock().expect("lock").len(), 1);
}

/// With the MN's TLS listener the IN verifies the target and delivers the notification
/// over the TLS-PSK association with the MN (TS-0003 8.2.1): the AE's ACP admits the IN
/// only when authenticated (`acaf`), and a revoked association stops delivery rather
/// than falling back to the MN's plain point of access.
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_8_2_1_notifications_reach_an_ae_behind_a_secure_mn() {
    let fed = tokio::task::block_in_place(Federation::start_secure);
    let (got, cnt) = notifications_reach_an_ae_behind_the_mn(&fed, true).await;
    // The same NOTIFY claiming the IN over plain HTTP is refused before any ACP: the
    // IN's CSE-ID is bound to the credential the MN shares with it (TS-0003 7.2.1).
    fed.mn
        .request("POST", "/cse-mn/mnapp")
        .from("/id-in")
        .json(&json!({"m2m:sgn": {"sur": "/id-in/x"}}))
        .send()
        .await
        .expect(4106);
    assert_eq!(got.lock().expect("lock").len(), 1);

    revoke_mn_credential_on_the_in(&fed);
    // The IN's store reload is asynchronous: forwarding shows when it took effect.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fed.inc.get("/~/id-mn/cse-mn", "Cinowner").await.rsc != 5103 {
        assert!(Instant::now() < deadline, "revocation not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fed.inc
        .create(&cnt, "Cinowner", 4, json!({"m2m:cin": {"con": "23.0"}}))
        .await
        .expect(2001);
    assert!(
        tokio::task::block_in_place(|| fed.inc.log_shows(
            "notification dropped: no usable target",
            Duration::from_secs(10)
        )),
        "{}",
        fed.inc.log()
    );
    assert!(fed.inc.log().contains("is revoked"), "{}", fed.inc.log());
    assert_eq!(
        got.lock().expect("lock").len(),
        1,
        "sent around the association"
    );
}

/// An AE on the MN subscribes, through the MN, to a container on the IN; returns what
/// its receiver got and the container. With `authenticated`, the AE's ACP lets `/id-in` notify it only
/// over a security association (`acaf`, TS-0003 7.1.5).
async fn notifications_reach_an_ae_behind_the_mn(
    fed: &Federation,
    authenticated: bool,
) -> (Arc<Mutex<Vec<Value>>>, String) {
    let owner = fed.inc.ae("Cinowner").await;
    let cnt = shared_container(&fed.inc, &owner, "Cinowner", "/id-mn/Cmnapp").await;
    // The MN's AE can receive at `url`, and lets the IN notify it.
    let (url, got) = receiver().await;
    fed.mn
        .create(
            "/cse-mn",
            "Cmnapp",
            2,
            json!({"m2m:ae": {"rn": "mnapp", "api": "Nfed", "rr": true, "poa": [url], "srv": ["3"]}}),
        )
        .await
        .expect(2001);
    fed.mn
        .create(
            "/cse-mn/mnapp",
            "Cmnapp",
            1,
            json!({"m2m:acp": {"rn": "inbox",
                "pv": {"acr": [{"acor": ["Cmnapp"], "acop": 63},
                               {"acor": ["/id-in"], "acop": 16, "acaf": authenticated}]},
                "pvs": {"acr": [{"acor": ["Cmnapp"], "acop": 63}]}}}),
        )
        .await
        .expect(2001);
    fed.mn
        .update(
            "/cse-mn/mnapp",
            "Cmnapp",
            json!({"m2m:ae": {"acpi": ["cse-mn/mnapp/inbox"]}}),
        )
        .await
        .expect(2004);
    // It subscribes, through the MN, to the IN's container, naming itself as target.
    let sub = fed
        .mn
        .create(
            &format!("/~/id-in{cnt}"),
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "watch", "nu": ["/id-mn/Cmnapp"], "enc": {"net": [3]}}}),
        )
        .await;
    sub.expect(2001);
    let created = fed
        .inc
        .create(&cnt, "Cinowner", 4, json!({"m2m:cin": {"con": "22.0"}}))
        .await;
    created.expect(2001);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = got.lock().expect("lock").clone();
        if let Some(ev) = events.first() {
            assert_eq!(ev["m2m:sgn"]["nev"]["net"], 3);
            assert_eq!(ev["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"], "22.0");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the AE behind the MN\nIN log:\n{}\nMN log:\n{}",
            fed.inc.log(),
            fed.mn.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another AE, which the ACP does not let notify, gets nothing passed on.
    ae(&fed.mn, "cse-mn", "Cmnother").await;
    fed.mn
        .request("POST", "/cse-mn/mnapp")
        .from("Cmnother")
        .json(&json!({"m2m:sgn": {"sur": "/id-in/x"}}))
        .send()
        .await
        .expect(4103);
    assert_eq!(got.lock().expect("lock").len(), 1);
    (got, cnt)
}

#[tokio::test(flavor = "multi_thread")]
async fn ts0003_8_2_1_in_forwards_to_the_mn_over_tls_psk_until_revoked() {
    let fed = tokio::task::block_in_place(Federation::start_secure);
    let mn_tls = fed.mn_tls.expect("MN TLS listener");
    // The MN registered its secure point of access first.
    let on_in = fed.inc.get("/cse-in/id-mn", "CAdmin").await;
    on_in.expect(2000);
    assert_eq!(
        csr(&on_in)["poa"],
        json!([
            format!("https://127.0.0.1:{mn_tls}"),
            format!("http://127.0.0.1:{}", fed.mn.port())
        ])
    );
    let owner = ae(&fed.mn, "cse-mn", "Cmnowner").await;
    // No `acaf`: an originator relayed by the IN is never authenticated at the MN
    // (TS-0003 table 7.1.2-3; tests/security_identity.rs).
    let cnt = readable_container(&fed.mn, &owner, "Cmnowner", "/id-in/Cinapp", false).await;
    fed.inc.ae("Cinapp").await;
    // Plain HTTP carries no association: the MN refuses an originator of another CSE
    // there (4106, TS-0003 7.2.1), so a success through the IN proves the hop was the
    // TLS-PSK association bound to /id-in.
    fed.mn.get(&cnt, "/id-in/Cinapp").await.expect(4106);
    let via = format!("/~/id-mn{cnt}");
    let r = fed.inc.get(&via, "Cinapp").await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:cnt")["cni"], 1);
    let la = fed.inc.get(&format!("{via}/la"), "Cinapp").await;
    la.expect(2000);
    assert_eq!(la.inner("m2m:cin")["con"], "21.5");
    // The MN's CSEBase, through the IN: its default policy admits only its admin.
    fed.inc.get("/~/id-mn/cse-mn", "Cinapp").await.expect(4103);

    // Revoked on the IN: the next forward finds no credential for the MN and does not
    // fall back to the MN's plain listener.
    revoke_mn_credential_on_the_in(&fed);
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let r = fed.inc.get(&via, "Cinapp").await;
        if r.rsc != 2000 || Instant::now() >= deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    after.expect(5103);
    // Either reason is a refusal to use plain HTTP; which one depends on whether the
    // registry saw the revocation before or after the MN's point of access was chosen.
    let refused = |needle: &str| {
        tokio::task::block_in_place(|| fed.inc.log_shows(needle, Duration::from_secs(5)))
    };
    assert!(
        refused("forwarding failed")
            && (fed.inc.log().contains("is revoked")
                || fed
                    .inc
                    .log()
                    .contains("is reached only over its security association")),
        "{}",
        fed.inc.log()
    );
    // Still so a moment later (the store reload does not bring it back).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    fed.inc.get(&via, "Cinapp").await.expect(5103);
}

/// A `<group>` on the IN with members on the MN (core-resources.md §3.8; TS-0001 10.2.7):
/// the fan-out reaches each member through forwarding, over the IN→MN association, and
/// the MN, hosting the members, decides access for each of them.
#[tokio::test(flavor = "multi_thread")]
async fn ts0001_10_2_7_group_members_on_the_mn_are_reached_and_the_mn_decides() {
    let fed = tokio::task::block_in_place(Federation::start_secure);
    let readable = ae(&fed.mn, "cse-mn", "Cmnshared").await;
    let readable = shared_container(&fed.mn, &readable, "Cmnshared", "/id-in/Cinapp").await;
    let private = ae(&fed.mn, "cse-mn", "Cmnprivate").await;
    let private = shared_container(&fed.mn, &private, "Cmnprivate", "/id-in/Cinother").await;
    let app = fed.inc.ae("Cinapp").await;
    let members = [format!("/id-mn{readable}"), format!("/id-mn{private}")];
    fed.inc
        .create(
            &app,
            "Cinapp",
            9,
            json!({"m2m:grp": {"rn": "field", "mnm": 10, "mid": members}}),
        )
        .await
        .expect(2001);
    let r = fed.inc.get(&format!("{app}/field/fopt/la"), "Cinapp").await;
    r.expect(2000);
    let list = r.inner("m2m:agr")["m2m:rsp"]
        .as_array()
        .unwrap_or_else(|| panic!("no m2m:rsp list: {}", r.text))
        .clone();
    let by_member = |m: &str| {
        list.iter()
            .find(|e| e["fr"] == m)
            .unwrap_or_else(|| panic!("no entry for {m}: {}", r.text))
            .clone()
    };
    let granted = by_member(&members[0]);
    assert_eq!(granted["rsc"], 2000, "{}", r.text);
    assert_eq!(granted["pc"]["m2m:cin"]["con"], "21.5", "{}", r.text);
    // The MN's ACP names only /id-in/Cinother for this one: the MN refuses Cinapp.
    assert_eq!(by_member(&members[1])["rsc"], 4103, "{}", r.text);
    assert_eq!(list.len(), 2);
}

/// An AE `aei` on the MN whose points of access are `poa`, letting the IN and `notifier`
/// NOTIFY it.
async fn mn_receiving_ae(fed: &Federation, aei: &str, poa: &str, notifier: &str) -> String {
    let rn = aei.trim_start_matches('C');
    fed.mn
        .create(
            "/cse-mn",
            aei,
            2,
            json!({"m2m:ae": {"rn": rn, "api": "Nfed", "rr": true, "poa": [poa], "srv": ["3"]}}),
        )
        .await
        .expect(2001);
    let ae = format!("/cse-mn/{rn}");
    fed.mn
        .create(
            &ae,
            aei,
            1,
            json!({"m2m:acp": {"rn": "inbox",
                "pv": {"acr": [{"acor": [aei], "acop": 63},
                               {"acor": ["/id-in", notifier], "acop": 16}]},
                "pvs": {"acr": [{"acor": [aei], "acop": 63}]}}}),
        )
        .await
        .expect(2001);
    fed.mn
        .update(
            &ae,
            aei,
            json!({"m2m:ae": {"acpi": [format!("cse-mn/{rn}/inbox")]}}),
        )
        .await
        .expect(2004);
    ae
}

/// Interoperability: a subscription an AE on the MN creates through the MN has, on the
/// IN, the creator `/id-mn/Cmnapp` (SP-relative, as the MN relays it). That creator is
/// recognised as the subscriber in its absolute form too (no verification request), is
/// named in the verification request to any other target, and is resolved by the MN
/// when such a request reaches one of its AEs (TS-0004 7.4.8.2.1, 7.5.1.2.3).
#[tokio::test(flavor = "multi_thread")]
async fn ts0004_7_4_8_2_1_relayed_subscriber_is_resolved_in_sp_relative_and_absolute_form() {
    let fed = tokio::task::block_in_place(Federation::start);
    let owner = fed.inc.ae("Cinowner").await;
    let cnt = shared_container(&fed.inc, &owner, "Cinowner", "/id-mn/Cmnapp").await;
    let own = Receiver::start().await;
    mn_receiving_ae(&fed, "Cmnapp", &own.url, "Cmnapp").await;
    let on_in = format!("/~/id-in{cnt}");
    // Itself, absolute: no verification request.
    let r = fed
        .mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "self", "nu": ["//bastion.example/id-mn/Cmnapp"],
                "enc": {"net": [3], "chty": [4]}}}),
        )
        .await;
    r.expect(2001);
    // Its only target is itself: no creator (TS-0004 7.4.8.2.1 Recv-6.5).
    assert!(r.inner("m2m:sub").get("cr").is_none(), "{}", r.text);
    assert!(own.all().is_empty(), "{:?}", own.all());
    // A URL: asked, naming the subscriber as the IN knows it.
    let url = Receiver::start().await;
    let r = fed
        .mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "url", "nu": [url.url], "enc": {"net": [3], "chty": [4]}}}),
        )
        .await;
    r.expect(2001);
    assert_eq!(r.inner("m2m:sub")["cr"], "/id-mn/Cmnapp");
    let sur = format!("/id-in/{}", r.inner("m2m:sub")["ri"].as_str().expect("ri"));
    assert_eq!(
        url.all()[0].body,
        json!({"m2m:sgn": {"vrq": true, "sur": sur, "cr": "/id-mn/Cmnapp"}})
    );
    // Another AE on the MN: the MN checks the relayed creator against that AE's ACP.
    let other = Receiver::start().await;
    mn_receiving_ae(&fed, "Cmnother", &other.url, "Cmnapp").await;
    fed.mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "other", "nu": ["/id-mn/Cmnother"], "enc": {"net": [3], "chty": [4]}}}),
        )
        .await
        .expect(2001);
    assert_eq!(other.all()[0].body["m2m:sgn"]["cr"], "/id-mn/Cmnapp");
    // One whose ACP does not name the subscriber refuses.
    let third = Receiver::start().await;
    mn_receiving_ae(&fed, "Cmnthird", &third.url, "Cnobody").await;
    fed.mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"nu": ["/id-mn/Cmnthird"], "enc": {"net": [3], "chty": [4]}}}),
        )
        .await
        .expect(5204);
    assert!(third.all().is_empty(), "refused on the MN, before its AE");
    // An event reaches all three targets.
    fed.inc
        .create(&cnt, "Cinowner", 4, json!({"m2m:cin": {"con": "9"}}))
        .await
        .expect(2001);
    for rx in [&own, &url, &other] {
        let events = rx.wait_events(1).await;
        assert_eq!(
            events[0]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
            "9",
            "{:?}",
            rx.all()
        );
    }
}

/// `<crossResourceSubscription>` with a target on another CSE (TS-0004 7.4.58.2.1 c,
/// 7.5.1.2.18): an AE on the MN names a container of its own and one on the IN. The IN's
/// target subscription is created by the AE's own request, forwarded (the IN decides, and
/// records the AE as its creator); its notifications come back to the MN's resource.
/// Events on both targets send one `{"sur": …}` to the AE; DELETE removes the IN's
/// subscription. A target the AE may not subscribe to fails the CREATE with 5221, and no
/// subscription is left on either CSE.
#[tokio::test(flavor = "multi_thread")]
async fn ts0004_7_4_58_cross_resource_subscription_with_a_target_on_the_in() {
    let fed = tokio::task::block_in_place(Federation::start);
    let owner = fed.inc.ae("Cinowner").await;
    let shared = shared_container(&fed.inc, &owner, "Cinowner", "/id-mn/Cmnapp").await;
    fed.inc
        .create(&owner, "Cinowner", 3, json!({"m2m:cnt": {"rn": "secret"}}))
        .await
        .expect(2001);
    let secret = format!("{owner}/secret");
    let rx = Receiver::start().await;
    let ae = mn_receiving_ae(&fed, "Cmnapp", &rx.url, "Cmnapp").await;
    fed.mn
        .create(&ae, "Cmnapp", 3, json!({"m2m:cnt": {"rn": "local"}}))
        .await
        .expect(2001);
    let local = format!("{ae}/local");
    let crs = |rn: &str, rrat: Vec<String>| {
        json!({"m2m:crs": {"rn": rn, "rrat": rrat, "encs": {"enc": [{"net": [3]}]},
            "twt": 1, "tws": "PT1M", "nu": ["Cmnapp"]}})
    };
    let here = local.trim_start_matches('/').to_owned();
    let on_in = |c: &str| format!("/id-in{c}");
    // Names the IN's container it may not read: refused there, 5221 here.
    let r = fed
        .mn
        .create(
            &ae,
            "Cmnapp",
            48,
            crs("denied", vec![here.clone(), on_in(&shared), on_in(&secret)]),
        )
        .await;
    r.expect(5221);
    assert!(
        r.text.contains("rrat target 2") && r.text.contains("4103"),
        "{}",
        r.text
    );
    fed.mn
        .get(&format!("{ae}/denied"), "Cmnapp")
        .await
        .expect(4004);
    // The administrators see every subscription: none on either CSE (the IN's one for
    // the shared container was made, then deleted before the answer).
    assert_eq!(fed.mn.discovered(&ae, 23).await, Vec::<String>::new());
    assert_eq!(fed.inc.discovered(&owner, 23).await, Vec::<String>::new());

    let r = fed
        .mn
        .create(&ae, "Cmnapp", 48, crs("both", vec![here, on_in(&shared)]))
        .await;
    r.expect(2001);
    let made = r.inner("m2m:crs").clone();
    let sur = format!("/id-mn/{}", made["ri"].as_str().expect("ri"));
    let remote = made["rrats"][1].as_str().expect("rrats").to_owned();
    assert!(remote.starts_with("/id-in/"), "{made}");
    // Its creator reads it through the MN.
    let sub = fed.mn.get(&format!("/~{remote}"), "Cmnapp").await;
    sub.expect(2000);
    assert_eq!(sub.inner("m2m:sub")["nu"], json!([sur]));
    assert_eq!(sub.inner("m2m:sub")["cr"], "/id-mn/Cmnapp");
    assert_eq!(fed.inc.discovered(&owner, 23).await.len(), 1);
    // Its own target subscription on the IN is a target already: as `srat` entry it is
    // refused like one of its target subscriptions here (4000 within 5221).
    let r = fed
        .mn
        .update(
            &format!("{ae}/both"),
            "Cmnapp",
            json!({"m2m:crs": {"srat": [&remote]}}),
        )
        .await;
    r.expect(5221);
    assert!(
        r.text.contains("srat target 0") && r.text.contains("4000"),
        "{}",
        r.text
    );
    // Only the CSE hosting a target subscription makes its notifications count, and a
    // verification names the resource's originator.
    let notify = |fr: &'static str, sgn: Value| {
        let to = format!("{ae}/both");
        let mn = &fed.mn;
        async move { mn.request("POST", &to).from(fr).json(&sgn).send().await }
    };
    notify("Cmnapp", json!({"m2m:sgn": {"sur": remote}}))
        .await
        .expect(4103);
    notify("/id-in", json!({"m2m:sgn": {"sur": "/id-in/other"}}))
        .await
        .expect(4103);
    notify(
        "/id-in",
        json!({"m2m:sgn": {"vrq": true, "sur": remote, "cr": "/id-mn/Cmnother"}}),
    )
    .await
    .expect(4101);
    assert!(rx.events().is_empty(), "{:?}", rx.all());

    fed.inc
        .create(&shared, "Cinowner", 4, json!({"m2m:cin": {"con": "1"}}))
        .await
        .expect(2001);
    fed.mn
        .create(&local, "Cmnapp", 4, json!({"m2m:cin": {"con": "2"}}))
        .await
        .expect(2001);
    let events = rx.wait_events(1).await;
    assert_eq!(events[0], json!({"m2m:sgn": {"sur": sur}}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.wait_events(1).await.len(), 1, "{:?}", rx.all());

    // A CREATE refused after its remote target was made (the name is taken, which is
    // found under the lock) deletes that subscription again.
    fed.mn
        .create(&ae, "Cmnapp", 48, crs("both", vec![on_in(&shared)]))
        .await
        .expect(4105);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fed.inc.discovered(&owner, 23).await.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "a refused CREATE left its subscription on the IN"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fed.mn
        .delete(&format!("{ae}/both"), "Cmnapp")
        .await
        .expect(2002);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fed.mn.get(&format!("/~{remote}"), "Cmnapp").await.rsc != 4004 {
        assert!(
            Instant::now() < deadline,
            "the IN's subscription outlived the crossResourceSubscription\nMN log:\n{}",
            fed.mn.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `<crossResourceSubscription>` joining, by `srat`, a subscription on another CSE
/// (TS-0004 7.4.58.2.1 c, 7.4.58.2.4, 7.5.1.2.18): an AE on the MN names the subscription
/// it made on the IN. The MN reads it and adds the resource to its `nu` and `acrs`, both
/// as the AE (the IN decides); the IN's notifications of it make the window count, only
/// when the IN sends them. A subscription the AE may read but not UPDATE (also one naming
/// the resource already), or one under a resource it may not read, fails with 5221 and
/// nothing is left changed; overlapping UPDATEs take turns; DELETE takes the resource out
/// of the IN subscription's `nu` again.
#[tokio::test(flavor = "multi_thread")]
async fn ts0004_7_4_58_srat_joins_a_subscription_on_the_in() {
    let fed = tokio::task::block_in_place(Federation::start);
    let owner = fed.inc.ae("Cinowner").await;
    let shared = shared_container(&fed.inc, &owner, "Cinowner", "/id-mn/Cmnapp").await;
    let rx = Receiver::start().await;
    let ae = mn_receiving_ae(&fed, "Cmnapp", &rx.url, "Cmnapp").await;
    let on_in = format!("/~/id-in{shared}");
    // The AE's own subscription on the IN: its creator may UPDATE it.
    let r = fed
        .mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "mine", "nu": ["/id-mn/Cmnapp"], "enc": {"net": [3]}}}),
        )
        .await;
    r.expect(2001);
    let mine = format!("/id-in/{}", r.inner("m2m:sub")["ri"].as_str().expect("ri"));
    // The owner's, under the container's ACP: the AE may RETRIEVE it, not UPDATE it.
    let acp = format!("{}/share", owner.trim_start_matches('/'));
    let r = fed
        .inc
        .create(
            &shared,
            "Cinowner",
            23,
            json!({"m2m:sub": {"rn": "theirs", "nu": ["Cinowner"], "enc": {"net": [3]},
                "acpi": [acp]}}),
        )
        .await;
    r.expect(2001);
    let theirs = format!("/id-in/{}", r.inner("m2m:sub")["ri"].as_str().expect("ri"));
    fed.mn
        .get(&format!("/~{theirs}"), "Cmnapp")
        .await
        .expect(2000);
    let targets_of = |path: String| {
        let inc = &fed.inc;
        async move {
            // Release 4: `acrs` is shown.
            let r = inc
                .request("GET", &path)
                .from("CAdmin")
                .rvi("4")
                .send()
                .await;
            r.expect(2000);
            let sub = r.inner("m2m:sub");
            (sub["nu"].clone(), sub["acrs"].clone())
        }
    };
    let crs = |rn: &str, srat: Vec<&str>| json!({"m2m:crs": {"rn": rn, "srat": srat, "twt": 1, "tws": "PT1M", "nu": ["Cmnapp"]}});

    let r = fed
        .mn
        .create(&ae, "Cmnapp", 48, crs("denied", vec![&mine, &theirs]))
        .await;
    r.expect(5221);
    assert!(
        r.text.contains("srat target 1") && r.text.contains("4103"),
        "{}",
        r.text
    );
    fed.mn
        .get(&format!("{ae}/denied"), "Cmnapp")
        .await
        .expect(4004);
    // Neither is left naming it: the join of `mine` was undone before the answer.
    assert_eq!(
        targets_of(format!("{shared}/mine")).await,
        (json!(["/id-mn/Cmnapp"]), Value::Null)
    );
    assert_eq!(
        targets_of(format!("{shared}/theirs")).await,
        (json!(["Cinowner"]), Value::Null)
    );

    // One the AE may RETRIEVE and UPDATE, under a container it may not RETRIEVE: the events
    // it would bring are that container's, so the IN's refusal of that RETRIEVE is 5221.
    fed.inc
        .create(&owner, "Cinowner", 3, json!({"m2m:cnt": {"rn": "secret"}}))
        .await
        .expect(2001);
    fed.inc
        .create(
            &owner,
            "Cinowner",
            1,
            json!({"m2m:acp": {"rn": "open",
                "pv": {"acr": [{"acor": ["Cinowner"], "acop": 63},
                               {"acor": ["/id-mn/Cmnapp"], "acop": 6}]},
                "pvs": {"acr": [{"acor": ["Cinowner"], "acop": 63}]}}}),
        )
        .await
        .expect(2001);
    let r = fed
        .inc
        .create(
            &format!("{owner}/secret"),
            "Cinowner",
            23,
            json!({"m2m:sub": {"rn": "hidden", "nu": ["Cinowner"], "enc": {"net": [3]},
                "acpi": [format!("{}/open", owner.trim_start_matches('/'))]}}),
        )
        .await;
    r.expect(2001);
    let hidden = format!("/id-in/{}", r.inner("m2m:sub")["ri"].as_str().expect("ri"));
    let r = fed
        .mn
        .create(&ae, "Cmnapp", 48, crs("hidden", vec![&mine, &hidden]))
        .await;
    r.expect(5221);
    assert!(
        r.text.contains("srat target 1") && r.text.contains("4103"),
        "{}",
        r.text
    );
    assert_eq!(
        targets_of(format!("{owner}/secret/hidden")).await,
        (json!(["Cinowner"]), Value::Null)
    );
    assert_eq!(
        targets_of(format!("{shared}/mine")).await,
        (json!(["/id-mn/Cmnapp"]), Value::Null)
    );

    let r = fed
        .mn
        .create(&ae, "Cmnapp", 48, crs("joined", vec![&mine]))
        .await;
    r.expect(2001);
    let sur = format!("/id-mn/{}", r.inner("m2m:crs")["ri"].as_str().expect("ri"));
    assert_eq!(r.inner("m2m:crs")["srat"], json!([mine]));
    assert_eq!(
        targets_of(format!("{shared}/mine")).await,
        (json!(["/id-mn/Cmnapp", sur]), json!([sur]))
    );
    // Only the IN, which hosts the joined subscription, makes its notifications count:
    // not an AE, nor another CSE registered here (MN2) naming it.
    let to = format!("{ae}/joined");
    let _mn2 = tokio::task::block_in_place(|| fed.start_mn2());
    for fr in ["Cmnapp", "/id-mn2"] {
        let about = mine.as_str();
        fed.mn
            .request("POST", &to)
            .from(fr)
            .json(&json!({"m2m:sgn": {"sur": about}}))
            .send()
            .await
            .expect(4103);
    }
    let crs_notice = json!({"m2m:sgn": {"sur": sur}});
    assert!(
        !rx.all().iter().any(|r| r.body == crs_notice),
        "{:?}",
        rx.all()
    );
    // An event on the IN's container: the IN notifies the resource, which notifies the AE.
    fed.inc
        .create(&shared, "Cinowner", 4, json!({"m2m:cin": {"con": "1"}}))
        .await
        .expect(2001);
    rx.wait_for(1, |r| r.body == crs_notice).await;

    // An UPDATE adding one the AE may not UPDATE: 5221, nothing changed on the IN.
    fed.mn
        .update(
            &to,
            "Cmnapp",
            json!({"m2m:crs": {"srat": [&mine, &theirs]}}),
        )
        .await
        .expect(5221);
    assert_eq!(
        targets_of(format!("{shared}/theirs")).await,
        (json!(["Cinowner"]), Value::Null)
    );
    assert_eq!(
        targets_of(format!("{shared}/mine")).await,
        (json!(["/id-mn/Cmnapp", sur]), json!([sur]))
    );
    // One swapped for another: the new one joins before the answer, the old one leaves.
    let r = fed
        .mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "next", "nu": ["/id-mn/Cmnapp"], "enc": {"net": [3]}}}),
        )
        .await;
    r.expect(2001);
    let next = format!("/id-in/{}", r.inner("m2m:sub")["ri"].as_str().expect("ri"));
    fed.mn
        .update(&to, "Cmnapp", json!({"m2m:crs": {"srat": [&next]}}))
        .await
        .expect(2004);
    assert_eq!(
        targets_of(format!("{shared}/next")).await,
        (json!(["/id-mn/Cmnapp", sur]), json!([sur]))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while targets_of(format!("{shared}/mine")).await != (json!(["/id-mn/Cmnapp"]), Value::Null) {
        assert!(
            Instant::now() < deadline,
            "the subscription taken out of srat still names the resource\nMN log:\n{}",
            fed.mn.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two UPDATEs at once, each joining one more: they take turns, so the later one, built
    // on what the earlier wrote, makes the earlier's join leave again (`srat` is replaced
    // whole); the IN's subscriptions naming the resource are exactly the final `srat`.
    let r = fed
        .mn
        .create(
            &on_in,
            "Cmnapp",
            23,
            json!({"m2m:sub": {"rn": "other", "nu": ["/id-mn/Cmnapp"], "enc": {"net": [3]}}}),
        )
        .await;
    r.expect(2001);
    let other = format!("/id-in/{}", r.inner("m2m:sub")["ri"].as_str().expect("ri"));
    // The first also adds a `nu` URL whose verification is held: it waits there, after
    // reading the attributes and before its write, while the second one comes in.
    let held = Receiver::start_holding(true).await;
    let first = fed.mn.update(
        &to,
        "Cmnapp",
        json!({"m2m:crs": {"srat": [&next, &mine], "nu": ["Cmnapp", &held.url]}}),
    );
    let second = async {
        held.wait_for(1, |_| true).await;
        let second = fed
            .mn
            .update(&to, "Cmnapp", json!({"m2m:crs": {"srat": [&next, &other]}}));
        let release = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            held.hold.add_permits(1 << 20);
        };
        tokio::join!(second, release).0
    };
    let (a, b) = tokio::join!(first, second);
    a.expect(2004);
    b.expect(2004);
    let last = fed.mn.get(&to, "Cmnapp").await.inner("m2m:crs")["srat"].clone();
    let (kept, left) = if last == json!([next, mine]) {
        ("mine", "other")
    } else {
        assert_eq!(last, json!([next, other]));
        ("other", "mine")
    };
    assert_eq!(
        targets_of(format!("{shared}/{kept}")).await,
        (json!(["/id-mn/Cmnapp", sur]), json!([sur]))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while targets_of(format!("{shared}/{left}")).await != (json!(["/id-mn/Cmnapp"]), Value::Null) {
        assert!(
            Instant::now() < deadline,
            "the earlier UPDATE's join outlived the later UPDATE\nMN log:\n{}",
            fed.mn.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One that names the resource already is joined by an UPDATE all the same, which the
    // IN decides: `next`, given the container's policy (the AE may RETRIEVE it only), is
    // swapped out (its leave is refused there, so it still names the resource) and named
    // again: 5221, not joined on the RETRIEVE alone.
    fed.inc
        .update(
            &format!("{shared}/next"),
            "CAdmin",
            json!({"m2m:sub": {"acpi": [&acp]}}),
        )
        .await
        .expect(2004);
    fed.mn
        .update(&to, "Cmnapp", json!({"m2m:crs": {"srat": [&mine]}}))
        .await
        .expect(2004);
    assert_eq!(
        targets_of(format!("{shared}/next")).await,
        (json!(["/id-mn/Cmnapp", sur]), json!([sur]))
    );
    let r = fed
        .mn
        .update(&to, "Cmnapp", json!({"m2m:crs": {"srat": [&mine, &next]}}))
        .await;
    r.expect(5221);
    assert!(
        r.text.contains("srat target 1") && r.text.contains("4103"),
        "{}",
        r.text
    );
    assert_eq!(
        fed.mn.get(&to, "Cmnapp").await.inner("m2m:crs")["srat"],
        json!([mine])
    );

    fed.mn.delete(&to, "Cmnapp").await.expect(2002);
    let deadline = Instant::now() + Duration::from_secs(10);
    while targets_of(format!("{shared}/mine")).await != (json!(["/id-mn/Cmnapp"]), Value::Null) {
        assert!(
            Instant::now() < deadline,
            "the IN's subscription still names the deleted resource\nMN log:\n{}",
            fed.mn.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
