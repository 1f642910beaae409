//! Identity binding across listeners and hops (issue 12; TS-0003 7.2.1, 7.1.2 table
//! 7.1.2-3; docs/security.md, "Identity binding"), with the real binary over real sockets
//! and real TLS-PSK handshakes:
//!
//! * an identity registered over a security association, or holding a credential (the
//!   admin's included), is refused anywhere else with 4106, the plain listener included,
//!   also after a restart; a CSE-ID outside any association is 4107;
//! * an originator relayed by another CSE never satisfies `acaf` at the next hop;
//! * the operator endpoint `/__bastion/explain` applies the same binding;
//! * the admin's ID never reaches the audit log and can never become an AE-ID.

use crate::common;

use common::federation::{ae, readable_container, Federation};
use common::identity::{Bound, PskServer};
use common::Server;
use serde_json::json;
use std::time::{Duration, Instant};

const DEV_ID: &str = "dev@bastion.example";
const DEV_KEY: &str = "101112131415161718191a1b1c1d1e1f";
const SENSOR_ID: &str = "sensor@bastion.example";
const SENSOR_KEY: &str = "202122232425262728292a2b2c2d2e2f";
const ADMIN_ID: &str = "admin@bastion.example";
const ADMIN_KEY: &str = "303132333435363738393a3b3c3d3e3f";

const BOUND_ELSEWHERE: &str = "originator is bound to a security association and must use it";
const MISMATCH: &str = "originator does not match the authenticated identity";

fn dbg(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["m2m:dbg"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An AE that registered over an association bound to a Credential-ID gets its AE-ID
/// assigned and bound to that association: it works there, and the same AE-ID on the
/// plain listener is 4106, for every operation and also after a restart (the binding is
/// stored with the `<AE>`). An AE registered on the plain listener stays usable there.
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_7_2_1_an_ae_registered_over_an_association_is_bound_to_it() {
    let mut s = tokio::task::block_in_place(|| PskServer::start(""));
    tokio::task::block_in_place(|| s.add_psk(DEV_ID, DEV_KEY, Bound::CredentialId));
    let body = r#"{"m2m:ae": {"rn": "dev", "api": "Ndev", "rr": false, "srv": ["3"]}}"#;
    let created = tokio::task::block_in_place(|| {
        s.req(
            DEV_ID,
            DEV_KEY,
            &[
                "--op", "create", "--ty", "2", "--to", "/cse-in", "--from", "C", "--body", body,
            ],
        )
    });
    assert_eq!(created.rsc, 2001, "{}", created.body);
    let aei = serde_json::from_str::<serde_json::Value>(&created.body).expect("json")["m2m:ae"]
        ["aei"]
        .as_str()
        .expect("aei")
        .to_owned();
    // Its association carries it (TS-0003 7.2.1: the AE-IDs bound to the association).
    let there = tokio::task::block_in_place(|| {
        s.req(DEV_ID, DEV_KEY, &["--to", "/cse-in/dev", "--from", &aei])
    });
    assert_eq!(there.rsc, 2000, "{}", there.body);
    let plain_ae = s.srv.ae("Cplain").await;

    for round in ["before restart", "after restart"] {
        let plain = s.srv.get("/cse-in/dev", &aei).await;
        plain.expect(4106);
        assert_eq!(plain.dbg(), BOUND_ELSEWHERE, "{round}");
        let update = s
            .srv
            .update("/cse-in/dev", &aei, json!({"m2m:ae": {"lbl": ["taken"]}}))
            .await;
        update.expect(4106);
        let absolute = format!("//bastion.example/id-in/{aei}");
        s.srv.delete("/cse-in/dev", &absolute).await.expect(4106);
        s.srv.get("/cse-in/dev", "CAdmin").await.expect(2000);
        // The AE that registered without an association is not bound.
        s.srv.get(&plain_ae, "Cplain").await.expect(2000);
        if round == "before restart" {
            tokio::task::block_in_place(|| s.srv.restart());
        }
    }
}

/// The hole of issue 12: a local process rewrote or removed the MN's `<remoteCSE>` on the
/// IN by writing `/id-mn` in `X-M2M-Origin` on the plain listener. The MN registered over
/// TLS-PSK, so its CSE-ID is bound to that association (4106 elsewhere, any form); a
/// CSE-ID with no association at all is 4107, registration included.
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_7_2_1_a_registered_cse_id_is_refused_outside_its_association() {
    let fed = tokio::task::block_in_place(Federation::start_secure);
    for fr in ["/id-mn", "//bastion.example/id-mn"] {
        let update = fed
            .inc
            .update(
                "/cse-in/id-mn",
                fr,
                json!({"m2m:csr": {"poa": ["http://127.0.0.1:9"]}}),
            )
            .await;
        update.expect(4106);
        assert_eq!(update.dbg(), BOUND_ELSEWHERE);
        fed.inc.delete("/cse-in/id-mn", fr).await.expect(4106);
        fed.inc.get("/cse-in", fr).await.expect(4106);
    }
    let csr = fed.inc.get("/cse-in/id-mn", "CAdmin").await;
    csr.expect(2000);
    assert_ne!(csr.inner("m2m:csr")["poa"], json!(["http://127.0.0.1:9"]));
    // Over its own association the MN is still itself.
    let own = tokio::task::block_in_place(|| fed.on_mn_association("/id-mn", "/cse-in/id-mn"));
    assert!(own.starts_with("4103") || own.starts_with("2000"), "{own}");
    // No association at all: 4107 (TS-0003 7.2.1), for a registration too.
    let unknown = fed.inc.get("/cse-in", "/id-other").await;
    unknown.expect(4107);
    assert_eq!(
        unknown.dbg(),
        "a CSE originator needs a security association"
    );
    fed.inc
        .create(
            "/cse-in",
            "/id-other",
            16,
            json!({"m2m:csr": {"cb": "/id-other/cse-other", "rr": true, "srv": ["3"]}}),
        )
        .await
        .expect(4107);
    // The AEs of the MN reach the IN only through the MN.
    fed.inc.get("/cse-in", "/id-mn/Cmnapp").await.expect(4106);
}

/// `trust-loopback-cses` (development only) lets a CSE register and act on the plain
/// listener from loopback; it is off by default (previous test), and a CSE-ID bound to a
/// credential stays refused even with it.
#[tokio::test(flavor = "multi_thread")]
async fn trust_loopback_cses_relaxes_only_unbound_cse_ids() {
    let s =
        tokio::task::block_in_place(|| PskServer::start("[http]\ntrust-loopback-cses = true\n"));
    tokio::task::block_in_place(|| s.add_psk(SENSOR_ID, SENSOR_KEY, Bound::CredentialId));
    let registered = s
        .srv
        .create(
            "/cse-in",
            "/id-dev",
            16,
            json!({"m2m:csr": {"cb": "/id-dev/cse-dev", "rr": true, "srv": ["3"]}}),
        )
        .await;
    registered.expect(2001);
    // Accepted as an originator; the CSEBase's default policy lets a registered CSE read
    // it, but not change it.
    s.srv.get("/cse-in", "/id-dev").await.expect(2000);
    s.srv
        .create("/cse-in", "/id-dev", 3, json!({"m2m:cnt": {"rn": "top"}}))
        .await
        .expect(4103);
    // Still 4107 for a CSE this CSE does not know.
    s.srv.get("/cse-in", "/id-unknown").await.expect(4107);
}

/// The admin holds a credential: its ID, in any form, is refused outside that
/// association (4106), on the plain listener and on another AE's association; inside it,
/// it is the admin. The explain API applies the same rule.
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_7_2_1_the_admin_with_a_credential_is_bound_to_it() {
    let s = tokio::task::block_in_place(|| PskServer::start(""));
    tokio::task::block_in_place(|| {
        s.add_psk(ADMIN_ID, ADMIN_KEY, Bound::Ae("CAdmin"));
        s.add_psk(SENSOR_ID, SENSOR_KEY, Bound::Ae("Csensor"));
    });
    for fr in ["CAdmin", "/id-in/CAdmin", "//bastion.example/id-in/CAdmin"] {
        let plain = s.srv.get("/cse-in", fr).await;
        plain.expect(4106);
        assert_eq!(plain.dbg(), BOUND_ELSEWHERE, "{fr}");
        let on_sensor = tokio::task::block_in_place(|| {
            s.req(SENSOR_ID, SENSOR_KEY, &["--to", "/cse-in", "--from", fr])
        });
        assert_eq!(on_sensor.rsc, 4106, "{fr}: {}", on_sensor.body);
        assert_eq!(dbg(&on_sensor.body), MISMATCH);
    }
    let as_admin = tokio::task::block_in_place(|| {
        s.req(
            ADMIN_ID,
            ADMIN_KEY,
            &["--to", "/cse-in", "--from", "CAdmin"],
        )
    });
    assert_eq!(as_admin.rsc, 2000, "{}", as_admin.body);

    let explain = "/__bastion/explain?originator=Csensor&op=retrieve&to=%2Fcse-in";
    let plain = s.srv.get(explain, "CAdmin").await;
    plain.expect(4106);
    assert_eq!(plain.dbg(), BOUND_ELSEWHERE);
    let on_admin = s.get_over_psk(ADMIN_ID, ADMIN_KEY, explain, "CAdmin").await;
    assert_eq!(on_admin.rsc, 2000, "{}", on_admin.body);
    let on_sensor = s
        .get_over_psk(SENSOR_ID, SENSOR_KEY, explain, "CAdmin")
        .await;
    assert_eq!(on_sensor.rsc, 4106, "{}", on_sensor.body);
    assert_eq!(dbg(&on_sensor.body), MISMATCH);
}

/// Issue 12 item 3: any authenticated sensor could call the explain API by writing the
/// admin's name. With no credential for the admin, the admin's name over the sensor's
/// association is 4106, the sensor's own name 4103; on the plain listener the admin is
/// recognised in every written form.
#[tokio::test(flavor = "multi_thread")]
async fn operator_endpoint_binds_the_originator_like_any_request() {
    let s = tokio::task::block_in_place(|| PskServer::start(""));
    tokio::task::block_in_place(|| s.add_psk(SENSOR_ID, SENSOR_KEY, Bound::Ae("Csensor")));
    let explain = "/__bastion/explain?originator=Csensor&op=retrieve&to=%2Fcse-in";
    let claimed = s
        .get_over_psk(SENSOR_ID, SENSOR_KEY, explain, "CAdmin")
        .await;
    assert_eq!(claimed.rsc, 4106, "{}", claimed.body);
    assert_eq!(dbg(&claimed.body), MISMATCH);
    let own = s
        .get_over_psk(SENSOR_ID, SENSOR_KEY, explain, "Csensor")
        .await;
    assert_eq!(own.rsc, 4103, "{}", own.body);
    assert_eq!(dbg(&own.body), "originator has no privilege");
    for fr in ["CAdmin", "/id-in/CAdmin", "//bastion.example/id-in/CAdmin"] {
        let r = s.srv.get(explain, fr).await;
        r.expect(2000);
        assert_eq!(
            r.body["normalized_originator"], "//bastion.example/id-in/Csensor",
            "{fr}: {}",
            r.text
        );
    }
    s.srv.get(explain, "CAdmim").await.expect(4103);
}

/// Issue 12 item 6: the IN received `Cinapp` on its plain listener (unauthenticated) and
/// relays it to the MN over their TLS-PSK association. At the MN an `acaf` rule for it
/// never grants (TS-0003 table 7.1.2-3: an originator registered elsewhere is not
/// authenticated), while the same rule without `acaf` does; the MN itself, on its own
/// association, is authenticated at the IN.
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_7_1_2_acaf_is_never_satisfied_by_a_relayed_originator() {
    let fed = tokio::task::block_in_place(Federation::start_secure);
    let guarded = ae(&fed.mn, "cse-mn", "Cguarded").await;
    let guarded = readable_container(&fed.mn, &guarded, "Cguarded", "/id-in/Cinapp", true).await;
    let open = ae(&fed.mn, "cse-mn", "Copen").await;
    let open = readable_container(&fed.mn, &open, "Copen", "/id-in/Cinapp", false).await;
    fed.inc.ae("Cinapp").await;
    let denied = fed.inc.get(&format!("/~/id-mn{guarded}"), "Cinapp").await;
    denied.expect(4103);
    assert_eq!(denied.dbg(), "originator has no privilege");
    fed.inc
        .get(&format!("/~/id-mn{open}"), "Cinapp")
        .await
        .expect(2000);

    // The other direction: the MN's own CSE-ID on its association is authenticated.
    let owner = fed.inc.ae("Cinowner").await;
    let cnt = readable_container(&fed.inc, &owner, "Cinowner", "/id-mn", true).await;
    let direct = tokio::task::block_in_place(|| fed.on_mn_association("/id-mn", &cnt));
    assert!(direct.starts_with("2000"), "{direct}");
    // Its AE, relayed on the same association, is not.
    let owner = fed.inc.ae("Cinother").await;
    let cnt = readable_container(&fed.inc, &owner, "Cinother", "/id-mn/Cmnapp", true).await;
    let relayed = tokio::task::block_in_place(|| fed.on_mn_association("/id-mn/Cmnapp", &cnt));
    assert!(relayed.starts_with("4103"), "{relayed}");
}

/// Issue 12 item 5: the audit log never names the admin, whichever form it was written
/// in, and no AE can register with the admin's ID.
#[tokio::test(flavor = "multi_thread")]
async fn admin_id_never_in_the_audit_log_nor_an_ae_id() {
    let s = tokio::task::block_in_place(Server::start);
    let forms = ["CAdmin", "/id-in/CAdmin", "//bastion.example/id-in/CAdmin"];
    for (n, fr) in forms.iter().enumerate() {
        s.create(
            "/cse-in",
            fr,
            1,
            json!({"m2m:acp": {"rn": format!("acp{n}"),
                "pv": {"acr": [{"acor": ["Cx"], "acop": 2}]},
                "pvs": {"acr": [{"acor": ["Cx"], "acop": 63}]}}}),
        )
        .await
        .expect(2001);
    }
    let path = s.data_dir().join("audit.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().count() >= forms.len() {
            break text;
        }
        assert!(Instant::now() < deadline, "audit: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!audit.contains("Admin"), "{audit}");
    let originators: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["originator"].to_string()
        })
        .collect();
    assert_eq!(originators, vec!["\"(admin)\""; forms.len()], "{audit}");

    let register = s
        .create(
            "/cse-in",
            "CAdmin",
            2,
            json!({"m2m:ae": {"rn": "fake", "api": "Nfake", "rr": false, "srv": ["3"]}}),
        )
        .await;
    register.expect(4005);
    assert_eq!(
        register.dbg(),
        "the administrator's ID cannot be registered as an AE-ID"
    );
}

/// The admin configured in absolute form: its stem still cannot be registered.
#[tokio::test(flavor = "multi_thread")]
async fn admin_configured_in_absolute_form_is_not_an_ae_id_either() {
    let s = tokio::task::block_in_place(|| {
        Server::start_with_config("[cse]\nadmin = \"//bastion.example/id-in/Croot\"\n")
    });
    let register = s
        .create(
            "/cse-in",
            "Croot",
            2,
            json!({"m2m:ae": {"rn": "root", "api": "Nfake", "rr": false, "srv": ["3"]}}),
        )
        .await;
    register.expect(4005);
    s.get("/cse-in", "Croot").await.expect(2000);
}

/// A TLS-only CSE (`[http] enabled = false`): nothing listens on the plain address, so
/// nothing on the host can claim an originator without a credential; the CSEBase
/// advertises only its `https://` point of access, and the admin works over its own
/// association.
#[tokio::test(flavor = "multi_thread")]
async fn the_plain_listener_can_be_turned_off() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let plain_port = free.local_addr().expect("address").port();
    drop(free);
    let s = tokio::task::block_in_place(|| {
        PskServer::start(&format!(
            "[http]\nenabled = false\nlisten = \"127.0.0.1:{plain_port}\"\n"
        ))
    });
    assert!(
        s.srv
            .log()
            .contains("TLS only: the plain HTTP listener is off"),
        "{}",
        s.srv.log()
    );
    let refused = std::net::TcpStream::connect(("127.0.0.1", plain_port));
    assert!(refused.is_err(), "something listens on the plain address");
    tokio::task::block_in_place(|| s.add_psk(ADMIN_ID, ADMIN_KEY, Bound::Ae("CAdmin")));
    let base = tokio::task::block_in_place(|| {
        s.req(
            ADMIN_ID,
            ADMIN_KEY,
            &["--to", "/cse-in", "--from", "CAdmin"],
        )
    });
    assert_eq!(base.rsc, 2000, "{}", base.body);
    let body: serde_json::Value = serde_json::from_str(&base.body).expect("JSON body");
    assert_eq!(
        body["m2m:cb"]["poa"],
        json!([format!("https://127.0.0.1:{}", s.tls_port)])
    );
}

/// Turning the plain listener off without a TLS listener would serve nothing: a
/// configuration error (exit status 2) before the data directory is touched.
#[test]
fn turning_the_plain_listener_off_needs_a_tls_listener() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bastion.toml");
    std::fs::write(&file, "[http]\nenabled = false\n").expect("config");
    let data = dir.path().join("data");
    let out = common::bastion(&[
        "serve",
        "--config",
        &file.to_string_lossy(),
        "--data-dir",
        &data.to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[http] enabled = false needs a TLS listener"),
        "{stderr}"
    );
    assert!(!data.join("bastion.db").exists());
}
