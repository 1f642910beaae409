//! Access-control contexts (`acco`, TS-0003 7.1.2 table 7.1.2-2, annex F): time windows,
//! IP prefixes and location regions, inside/outside and at the edges, unknown inputs, and
//! the OR-across / AND-within combination. Every case checks that `explain` agrees with
//! `decide`.

use bastion_policy::context::EARTH_RADIUS_M;
use bastion_policy::explain::{ContextParameter, Explanation};
use bastion_policy::{
    decide, explain, AccessOperation, AccessRequest, Applicable, CountryCode, FixedInformation,
    LocalIdentity, Location, NoInformation, PolicySource, RuleSet,
};
use serde_json::{json, Value};
use std::net::IpAddr;

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    }
}

/// Unix seconds of a UTC date-time.
fn utc(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + mi * 60 + s
}

/// A Wednesday at noon.
fn noon() -> i64 {
    utc(2026, 3, 4, 12, 0, 0)
}

#[derive(Clone, Copy, Default)]
struct Ctx {
    time: Option<i64>,
    peer: Option<IpAddr>,
    location: Option<Location>,
    country: Option<CountryCode>,
}

fn at(t: i64) -> Ctx {
    Ctx {
        time: Some(t),
        ..Ctx::default()
    }
}

fn from(ip: &str) -> Ctx {
    Ctx {
        peer: Some(ip.parse().expect("test address")),
        ..Ctx::default()
    }
}

fn located(latitude: f64, longitude: f64) -> Ctx {
    Ctx {
        location: Some(Location {
            latitude,
            longitude,
        }),
        ..Ctx::default()
    }
}

/// Decides a RETRIEVE by `Cabc` against one rule granting it under `acco`, and returns
/// the verdict with the explanation (which must agree).
fn run(acco: Value, c: Ctx) -> (bool, Explanation) {
    let l = local();
    let rules = RuleSet::parse(
        &json!({"acr": [{"acor": ["Cabc"], "acop": 2, "acco": acco}]}),
        &l,
    )
    .expect("valid rule set");
    let sources = [PolicySource {
        acp_id: "acp1",
        rules: &rules,
    }];
    let applicable = Applicable::Policies(&sources);
    let pip = FixedInformation {
        location: c.location,
        country: c.country,
        ..FixedInformation::default()
    };
    let req = AccessRequest {
        originator: "Cabc",
        operation: AccessOperation::Retrieve,
        authenticated: false,
        target_type: 3,
        create_type: None,
        time: c.time,
        peer_ip: c.peer,
        attributes: bastion_policy::Attributes::Whole,
        pip: &pip,
    };
    let d = decide(&l, &req, &applicable);
    let e = explain(&l, &req, &applicable);
    assert_eq!(d, e.decision(), "explain disagrees with decide");
    (d.granted(), e)
}

fn granted(acco: Value, c: Ctx) -> bool {
    run(acco, c).0
}

/// The one-line reason of the context check of rule 0.
fn context_reason(e: &Explanation) -> String {
    let v = serde_json::to_value(e).expect("serializable");
    v["basis"]["sources"][0]["rules"][0]["checks"][2]["reason"]
        .as_str()
        .expect("context check")
        .to_owned()
}

// ---------- actw ----------

#[test]
fn working_hours_window_edges() {
    let acco = json!([{"actw": ["* * 8-17 * * * *"]}]);
    let day = |h, m, s| utc(2026, 3, 4, h, m, s);
    assert!(!granted(acco.clone(), at(day(7, 59, 59))));
    assert!(granted(acco.clone(), at(day(8, 0, 0))));
    assert!(granted(acco.clone(), at(day(12, 30, 0))));
    assert!(granted(acco.clone(), at(day(17, 59, 59))));
    assert!(!granted(acco.clone(), at(day(18, 0, 0))));
    let (_, e) = run(acco, at(utc(2026, 11, 22, 21, 13, 14)));
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] time 20261122T211314 outside every window"
    );
}

#[test]
fn any_window_of_the_list_suffices() {
    let acco = json!([{"actw": ["* * 8-11 * * * *", "* * 14-17 * * * *"]}]);
    assert!(granted(acco.clone(), at(utc(2026, 3, 4, 9, 0, 0))));
    assert!(!granted(acco.clone(), at(utc(2026, 3, 4, 12, 0, 0))));
    let (ok, e) = run(acco, at(utc(2026, 3, 4, 15, 0, 0)));
    assert!(ok);
    assert_eq!(
        context_reason(&e),
        "acco[0] holds: time 20260304T150000 inside window '* * 14-17 * * * *'"
    );
}

#[test]
fn weekday_zero_is_sunday() {
    // 2026-11-22 is a Sunday.
    let sunday = utc(2026, 11, 22, 10, 0, 0);
    assert!(granted(json!([{"actw": ["* * * * * 0 *"]}]), at(sunday)));
    assert!(!granted(json!([{"actw": ["* * * * * 1-5 *"]}]), at(sunday)));
    assert!(granted(
        json!([{"actw": ["* * * * * 1-5 *"]}]),
        at(sunday + 86_400)
    ));
    assert!(granted(
        json!([{"actw": ["* * * * * 6 *"]}]),
        at(sunday - 86_400)
    ));
}

#[test]
fn day_of_month_and_day_of_week_must_both_match() {
    // The 13th AND a Friday; 2026-02-13 is a Friday, 2026-01-13 a Tuesday.
    let acco = json!([{"actw": ["* * * 13 * 5 *"]}]);
    assert!(granted(acco.clone(), at(utc(2026, 2, 13, 12, 0, 0))));
    assert!(!granted(acco.clone(), at(utc(2026, 1, 13, 12, 0, 0))));
    assert!(!granted(acco, at(utc(2026, 2, 20, 12, 0, 0))));
}

#[test]
fn a_window_in_a_past_year_never_holds_now() {
    let acco = json!([{"actw": ["* * * * * * 2001"]}]);
    assert!(!granted(acco.clone(), at(noon())));
    assert!(granted(acco, at(utc(2001, 7, 1, 0, 0, 0))));
}

#[test]
fn unknown_time_and_empty_window_list_deny() {
    let (ok, e) = run(json!([{"actw": ["* * * * * * *"]}]), Ctx::default());
    assert!(!ok);
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] time unknown"
    );
    let (ok, e) = run(json!([{"actw": []}]), at(noon()));
    assert!(!ok);
    assert!(context_reason(&e).contains("actw lists no window"));
}

// ---------- acip ----------

#[test]
fn ipv4_prefix_first_and_last_address() {
    let acco = json!([{"acip": {"ipv4": ["10.0.0.0/8"]}}]);
    assert!(granted(acco.clone(), from("10.0.0.0")));
    assert!(granted(acco.clone(), from("10.255.255.255")));
    assert!(!granted(acco.clone(), from("9.255.255.255")));
    assert!(!granted(acco.clone(), from("11.0.0.0")));
    let (ok, e) = run(acco, from("192.168.1.2"));
    assert!(!ok);
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] peer 192.168.1.2 not in acip"
    );
}

#[test]
fn ipv4_slash_zero_slash_32_and_bare_host() {
    let all = json!([{"acip": {"ipv4": ["0.0.0.0/0"]}}]);
    assert!(granted(all.clone(), from("0.0.0.0")));
    assert!(granted(all.clone(), from("255.255.255.255")));
    assert!(!granted(all, from("2001:db8::1")), "/0 of IPv4 is not IPv6");
    for host in ["192.0.2.7/32", "192.0.2.7"] {
        let acco = json!([{"acip": {"ipv4": [host]}}]);
        assert!(granted(acco.clone(), from("192.0.2.7")), "{host}");
        assert!(!granted(acco.clone(), from("192.0.2.6")), "{host}");
        assert!(!granted(acco, from("192.0.2.8")), "{host}");
    }
}

#[test]
fn ipv6_prefixes() {
    let acco = json!([{"acip": {"ipv6": ["2001:db8::/32"]}}]);
    assert!(granted(acco.clone(), from("2001:db8::")));
    assert!(granted(
        acco.clone(),
        from("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")
    ));
    assert!(!granted(acco.clone(), from("2001:db9::")));
    assert!(
        !granted(acco, from("10.0.0.1")),
        "IPv6-only acip, IPv4 peer"
    );
    let all = json!([{"acip": {"ipv6": ["::/0"]}}]);
    assert!(granted(all.clone(), from("::1")));
    let host = json!([{"acip": {"ipv6": ["2001:db8::7", "2001:db8::8/128"]}}]);
    assert!(granted(host.clone(), from("2001:db8::7")));
    assert!(granted(host.clone(), from("2001:db8::8")));
    assert!(!granted(host, from("2001:db8::9")));
}

#[test]
fn ipv4_mapped_peers_are_compared_as_ipv4() {
    let v4 = json!([{"acip": {"ipv4": ["127.0.0.0/8"]}}]);
    let (ok, e) = run(v4, from("::ffff:127.0.0.1"));
    assert!(ok);
    assert_eq!(
        context_reason(&e),
        "acco[0] holds: peer 127.0.0.1 in acip 127.0.0.0/8"
    );
    // ... and therefore not against IPv6 prefixes, not even ::/0.
    assert!(!granted(
        json!([{"acip": {"ipv6": ["::/0"]}}]),
        from("::ffff:127.0.0.1")
    ));
    // The deprecated IPv4-compatible form stays IPv6.
    assert!(!granted(
        json!([{"acip": {"ipv4": ["0.0.0.0/0"]}}]),
        from("::127.0.0.1")
    ));
}

#[test]
fn unknown_peer_and_empty_acip_deny() {
    let (ok, e) = run(json!([{"acip": {"ipv4": ["0.0.0.0/0"]}}]), Ctx::default());
    assert!(!ok);
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] peer address unknown"
    );
    assert!(!granted(json!([{"acip": {}}]), from("10.0.0.1")));
    assert!(!granted(
        json!([{"acip": {"ipv4": [], "ipv6": []}}]),
        from("10.0.0.1")
    ));
}

// ---------- aclr ----------

const SEOUL: (f64, f64) = (37.5665, 126.978);

/// Degrees of latitude per metre along a meridian.
fn deg_per_m() -> f64 {
    180.0 / (std::f64::consts::PI * EARTH_RADIUS_M)
}

#[test]
fn circle_radius_edge() {
    let acco = json!([{"aclr": {"accr": [SEOUL.0, SEOUL.1, 1000.0]}}]);
    let north = |m: f64| located(SEOUL.0 + m * deg_per_m(), SEOUL.1);
    assert!(granted(acco.clone(), located(SEOUL.0, SEOUL.1)));
    assert!(granted(acco.clone(), north(999.9)));
    assert!(!granted(acco.clone(), north(1000.1)));
    assert!(granted(acco.clone(), north(-999.9)));
    assert!(!granted(acco.clone(), north(-1000.1)));
    let (ok, e) = run(acco, north(2000.0));
    assert!(!ok);
    assert!(
        context_reason(&e).contains("2000.0 m from centre, outside circle"),
        "{}",
        context_reason(&e)
    );
    // Radius 0: only the centre itself.
    let point = json!([{"aclr": {"accr": [0.0, 0.0, 0]}}]);
    assert!(granted(point.clone(), located(0.0, 0.0)));
    assert!(!granted(point, located(0.000_001, 0.0)));
}

#[test]
fn circle_across_the_antimeridian() {
    let acco = json!([{"aclr": {"accr": [0.0, 180.0, 10_000.0]}}]);
    assert!(granted(acco.clone(), located(0.0, -179.95)));
    assert!(!granted(acco, located(0.0, -179.0)));
}

#[test]
fn unknown_or_invalid_location_denies() {
    let acco = json!([{"aclr": {"accr": [SEOUL.0, SEOUL.1, 1.0e7]}}]);
    let (ok, e) = run(acco.clone(), Ctx::default());
    assert!(!ok);
    assert!(
        context_reason(&e).contains("location unknown"),
        "{}",
        context_reason(&e)
    );
    assert!(!granted(acco.clone(), located(f64::NAN, SEOUL.1)));
    assert!(!granted(acco.clone(), located(91.0, SEOUL.1)));
    assert!(!granted(acco, located(SEOUL.0, f64::INFINITY)));
}

#[test]
fn country_codes_match_the_pips_country_and_fail_closed_when_unknown() {
    let acco = json!([{"aclr": {"accc": ["KR", "JP"]}}]);
    let in_country = |code: &str| Ctx {
        country: CountryCode::parse(code),
        ..Ctx::default()
    };
    let (ok, e) = run(acco.clone(), in_country("KR"));
    assert!(ok, "{}", context_reason(&e));
    assert_eq!(
        context_reason(&e),
        "acco[0] holds: country KR in accc KR,JP"
    );
    assert!(granted(acco.clone(), in_country("jp")));
    let (ok, e) = run(acco.clone(), in_country("FR"));
    assert!(!ok);
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] country FR not in accc KR,JP"
    );
    // Coordinates alone do not give a country: only the PIP resolves one (annex F).
    let (ok, e) = run(acco, located(SEOUL.0, SEOUL.1));
    assert!(!ok);
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] country unknown (needed for accc KR,JP)"
    );
}

// ---------- combination ----------

#[test]
fn sub_parameters_of_one_element_are_anded() {
    let acco = json!([{"actw": ["* * 8-17 * * * *"], "acip": {"ipv4": ["10.0.0.0/8"]}}]);
    let both = Ctx {
        time: Some(noon()),
        peer: from("10.1.2.3").peer,
        location: None,
        country: None,
    };
    assert!(granted(acco.clone(), both));
    let wrong_peer = Ctx {
        peer: from("192.0.2.1").peer,
        ..both
    };
    let (ok, e) = run(acco.clone(), wrong_peer);
    assert!(!ok);
    // Only the failing part is named in the one-line reason; both are in the structure.
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] peer 192.0.2.1 not in acip"
    );
    let v = serde_json::to_value(&e).expect("serializable");
    let parts = &v["basis"]["sources"][0]["rules"][0]["contexts"][0]["parts"];
    assert_eq!(parts[0]["parameter"], "time");
    assert_eq!(parts[0]["holds"], true);
    assert_eq!(parts[1]["parameter"], "ip");
    assert_eq!(parts[1]["holds"], false);
    let late = Ctx {
        time: Some(utc(2026, 3, 4, 20, 0, 0)),
        ..both
    };
    assert!(!granted(acco.clone(), late));
    // Unknown location is irrelevant when the element has no aclr.
    assert!(granted(
        acco,
        Ctx {
            location: None,
            ..both
        }
    ));
}

#[test]
fn elements_are_ored() {
    let acco = json!([
        {"acip": {"ipv4": ["10.0.0.0/8"]}},
        {"actw": ["* * 8-17 * * * *"]}
    ]);
    let outside_net_in_hours = Ctx {
        time: Some(noon()),
        peer: from("192.0.2.1").peer,
        location: None,
        country: None,
    };
    let (ok, e) = run(acco.clone(), outside_net_in_hours);
    assert!(ok);
    assert!(context_reason(&e).starts_with("acco[1] holds"));
    let neither = Ctx {
        time: Some(utc(2026, 3, 4, 3, 0, 0)),
        ..outside_net_in_hours
    };
    let (ok, e) = run(acco, neither);
    assert!(!ok);
    assert_eq!(
        context_reason(&e),
        "no acco element holds: [0] peer 192.0.2.1 not in acip; \
         [1] time 20260304T030000 outside every window"
    );
}

#[test]
fn an_element_without_sub_parameters_never_holds() {
    let everything = Ctx {
        time: Some(noon()),
        peer: from("10.0.0.1").peer,
        location: located(0.0, 0.0).location,
        country: None,
    };
    let (ok, e) = run(json!([{}]), everything);
    assert!(!ok);
    assert!(context_reason(&e).contains("never holds"));
    // ... but does not block another element.
    assert!(granted(
        json!([{}, {"actw": ["* * * * * * *"]}]),
        everything
    ));
}

#[test]
fn no_acco_needs_no_context() {
    let l = local();
    let rules = RuleSet::parse(&json!({"acr": [{"acor": ["Cabc"], "acop": 2}]}), &l)
        .expect("valid rule set");
    let sources = [PolicySource {
        acp_id: "acp1",
        rules: &rules,
    }];
    let req = AccessRequest {
        originator: "Cabc",
        operation: AccessOperation::Retrieve,
        authenticated: false,
        target_type: 3,
        create_type: None,
        time: None,
        peer_ip: None,
        attributes: bastion_policy::Attributes::Whole,
        pip: &NoInformation,
    };
    assert!(decide(&l, &req, &Applicable::Policies(&sources)).granted());
    assert!(granted(json!([]), Ctx::default()));
}

#[test]
fn a_context_failure_is_reported_in_the_one_line_reason() {
    let (_, e) = run(
        json!([{"acip": {"ipv4": ["10.0.0.0/8"]}}]),
        from("10.1.2.3"),
    );
    assert_eq!(e.to_string(), "RETRIEVE granted by rule 0 of acp1");
    let (_, e) = run(json!([{"aclr": {"accr": [1.0, 2.0, 3.0]}}]), Ctx::default());
    let line = e.to_string();
    assert!(
        line.contains(
            "rule 0 of acp1 matches the originator but no acco element holds: [0] location unknown"
        ),
        "{line}"
    );
    let v = serde_json::to_value(&e).expect("serializable");
    let part = &v["basis"]["sources"][0]["rules"][0]["contexts"][0]["parts"][0];
    assert_eq!(part["parameter"], "location");
    assert_eq!(
        serde_json::to_value(ContextParameter::Location).expect("serializable"),
        "location"
    );
}
