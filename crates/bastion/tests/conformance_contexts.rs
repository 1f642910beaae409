//! Access-control contexts over HTTP (TS-0003 7.1.2 table 7.1.2-2, annex F;
//! security-access-control.md §4, §6): `acip` against the transport peer address (the
//! suite talks to the server over 127.0.0.1), `actw` against the CSE clock, `aclr` failing
//! closed without a location source, and strict validation of `acco` when an ACP is
//! written.

use crate::common;

use common::*;
use serde_json::{json, Value};

const OWNER: &str = "Cowner";
const AE: &str = "/cse-in/Cowner";
const READER: &str = "Creader";

/// `pv`: the owner may do everything; the reader may RETRIEVE under `acco`.
fn pv_reader_with(acco: Value) -> Value {
    json!({"acr": [
        {"acor": [OWNER], "acop": 63},
        {"acor": [READER], "acop": 2, "acco": acco}
    ]})
}

fn owner_only() -> Value {
    json!({"acr": [{"acor": [OWNER], "acop": 63}]})
}

/// Registers owner and reader, creates ACP `<acp_rn>` with `pv` and container `<cnt_rn>`
/// linked to it; returns the container path.
async fn linked_cnt(s: &Server, acp_rn: &str, cnt_rn: &str, pv: Value) -> String {
    if s.get(AE, OWNER).await.rsc != 2000 {
        s.ae(OWNER).await;
        s.ae(READER).await;
    }
    let acp = s.create_acp(AE, OWNER, acp_rn, pv, owner_only()).await;
    let acp_ri = acp["ri"].as_str().expect("ri").to_owned();
    s.create_cnt(AE, OWNER, json!({"rn": cnt_rn, "acpi": [acp_ri]}))
        .await;
    format!("{AE}/{cnt_rn}")
}

/// The reader's RETRIEVE of a container governed by a rule with `acco`.
async fn reader_get(s: &Server, name: &str, acco: Value) -> u32 {
    let cnt = linked_cnt(s, &format!("acp-{name}"), name, pv_reader_with(acco)).await;
    // The owner is unaffected by the reader's context.
    s.get(&cnt, OWNER).await.expect(2000);
    s.get(&cnt, READER).await.rsc
}

#[tokio::test]
async fn ts0003_7_1_2_acip_matches_the_transport_peer() {
    let s = Server::start();
    assert_eq!(
        reader_get(&s, "loopback", json!([{"acip": {"ipv4": ["127.0.0.0/8"]}}])).await,
        2000
    );
    assert_eq!(
        reader_get(&s, "host", json!([{"acip": {"ipv4": ["127.0.0.1"]}}])).await,
        2000
    );
    assert_eq!(
        reader_get(&s, "ten", json!([{"acip": {"ipv4": ["10.0.0.0/8"]}}])).await,
        4103
    );
    // An IPv6-only list never matches an IPv4 peer, not even ::/0.
    assert_eq!(
        reader_get(&s, "v6only", json!([{"acip": {"ipv6": ["::/0", "::1"]}}])).await,
        4103
    );
    // The rule's other conditions still apply: the context does not grant on its own.
    let cnt = format!("{AE}/loopback");
    s.delete(&cnt, READER).await.expect(4103);
    s.get(&cnt, "Cstranger").await.expect(4106);
}

#[tokio::test]
async fn ts0003_7_1_2_actw_matches_the_cse_clock() {
    let s = Server::start();
    assert_eq!(
        reader_get(&s, "always", json!([{"actw": ["* * * * * * *"]}])).await,
        2000
    );
    assert_eq!(
        reader_get(&s, "y2001", json!([{"actw": ["* * * * * * 2001"]}])).await,
        4103
    );
    // OR across elements: the past window fails, the loopback element holds.
    assert_eq!(
        reader_get(
            &s,
            "either",
            json!([
                {"actw": ["* * * * * * 2001"]},
                {"acip": {"ipv4": ["127.0.0.0/8"]}}
            ])
        )
        .await,
        2000
    );
    // AND inside one element: the loopback holds, the past window does not.
    assert_eq!(
        reader_get(
            &s,
            "both",
            json!([{"actw": ["* * * * * * 2001"], "acip": {"ipv4": ["127.0.0.0/8"]}}])
        )
        .await,
        4103
    );
}

#[tokio::test]
async fn annex_f_aclr_fails_closed_without_a_location_source() {
    let s = Server::start();
    // A circle covering half the planet around the server: still unknown location.
    assert_eq!(
        reader_get(&s, "circle", json!([{"aclr": {"accr": [0.0, 0.0, 1.0e7]}}])).await,
        4103
    );
    assert_eq!(
        reader_get(&s, "country", json!([{"aclr": {"accc": ["KR"]}}])).await,
        4103
    );
}

#[tokio::test]
async fn ts0004_malformed_acco_is_rejected_on_acp_create_and_update() {
    let s = Server::start();
    s.ae(OWNER).await;
    let bad = [
        json!([{"actw": ["* * * * * *"]}]),
        json!([{"actw": ["* * 24 * * * *"]}]),
        json!([{"actw": ["* * * * * 7 *"]}]),
        json!([{"acip": {"ipv4": ["10.0.0.0/33"]}}]),
        json!([{"acip": {"ipv4": ["300.1.1.1"]}}]),
        json!([{"acip": {"ipv4": ["2001:db8::/32"]}}]),
        json!([{"acip": {"ipv6": ["2001:db8::/32"], "ipv5": []}}]),
        json!([{"aclr": {"accr": [91.0, 0.0, 10.0]}}]),
        json!([{"aclr": {"accr": [0.0, 181.0, 10.0]}}]),
        json!([{"aclr": {"accr": [0.0, 0.0, -1.0]}}]),
        json!([{"aclr": {"accr": [0.0, 0.0, 1.0], "accc": ["KR"]}}]),
        json!([{"aclr": {}}]),
        json!([{"actw": ["* * * * * * *"], "acui": 1}]),
    ];
    for (i, acco) in bad.iter().enumerate() {
        let body = json!({"m2m:acp": {
            "rn": format!("bad{i}"),
            "pv": pv_reader_with(acco.clone()),
            "pvs": owner_only()
        }});
        let r = s.create(AE, OWNER, 1, body).await;
        r.expect(4000);
        assert!(r.dbg().contains("acco[0]"), "{acco}: {}", r.dbg());
        s.get(&format!("{AE}/bad{i}"), OWNER).await.expect(4004);
    }
    // UPDATE of pv with a malformed context is refused and leaves the ACP unchanged.
    let good = pv_reader_with(json!([{"acip": {"ipv4": ["127.0.0.0/8"]}}]));
    s.create_acp(AE, OWNER, "good", good.clone(), owner_only())
        .await;
    let path = format!("{AE}/good");
    for acco in &bad {
        s.update(
            &path,
            OWNER,
            json!({"m2m:acp": {"pv": pv_reader_with(acco.clone())}}),
        )
        .await
        .expect(4000);
    }
    let r = s.get(&path, OWNER).await;
    r.expect(2000);
    assert_eq!(r.inner("m2m:acp")["pv"], good);
}
