//! Parsing of `m2m:setOfAcrs` (TS-0004 6.3.5.26-28): what is accepted and the short
//! reasons given for what is not.

use bastion_policy::originator::EntryKind;
use bastion_policy::{LocalIdentity, RuleSet};
use serde_json::{json, Value};

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    }
}

fn parse(v: Value) -> Result<RuleSet, String> {
    RuleSet::parse(&v, &local()).map_err(|e| e.to_string())
}

fn rejects(v: Value, expected: &str) {
    match parse(v.clone()) {
        Ok(_) => panic!("accepted {v}"),
        Err(e) => assert!(e.contains(expected), "{v}: got '{e}', want '{expected}'"),
    }
}

#[test]
fn accepts_a_full_rule_set() {
    let set = parse(json!({"acr": [
        {"acor": ["CAdmin", "//bastion.example/id-in/Cmon*"], "acop": 34,
         "acco": [{"actw": ["* * 8-17 * * 1-5 *"], "acip": {"ipv4": ["10.1.0.0/16"]},
                   "aclr": {"accc": ["FR"]}}],
         "acaf": true,
         "acod": [{"ty": 2, "chty": [3, 23]}, {"ty": 13, "spty": 1001, "chty": [13]}]},
        {"acor": ["all"], "acop": 63}
    ]}))
    .unwrap();
    assert_eq!(set.len(), 2);
    assert!(!set.is_empty());
    let r = &set.rules()[0];
    assert_eq!(r.operations(), 34);
    assert!(r.requires_authentication());
    assert_eq!(r.contexts().len(), 1);
    assert_eq!(r.object_details().len(), 2);
    assert_eq!(r.object_details()[0].child_types(), &[3, 23]);
    assert_eq!(r.object_details()[0].target_type(), Some(2));
    assert_eq!(r.object_details()[1].specialization(), Some(&json!(1001)));
    let entries: Vec<(&str, &str, EntryKind)> = r
        .originators()
        .iter()
        .map(|e| (e.raw(), e.normalized(), e.kind()))
        .collect();
    assert_eq!(
        entries,
        [
            (
                "CAdmin",
                "//bastion.example/id-in/CAdmin",
                EntryKind::Identifier
            ),
            (
                "//bastion.example/id-in/Cmon*",
                "//bastion.example/id-in/Cmon*",
                EntryKind::Identifier
            ),
        ]
    );
}

#[test]
fn accepts_empty_sets() {
    assert!(parse(json!({"acr": []})).unwrap().is_empty());
    assert!(parse(json!({})).unwrap().is_empty());
    assert_eq!(parse(json!({"acr": []})).unwrap().len(), 0);
}

#[test]
fn duplicate_rules_and_entries_are_harmless_and_accepted() {
    // Duplicate JSON member names never reach us: the strict body decoder rejects them.
    let rule = json!({"acor": ["Cabc", "Cabc"], "acop": 2});
    let set = parse(json!({"acr": [rule.clone(), rule]})).unwrap();
    assert_eq!(set.len(), 2);
}

#[test]
fn rejects_wrong_top_level() {
    rejects(json!([]), "setOfAcrs: must be an object");
    rejects(json!(null), "setOfAcrs: must be an object");
    rejects(json!({"acr": {}}), "acr: must be an array");
    rejects(json!({"acr": null}), "acr: must be an array");
    rejects(json!({"acr": [], "x": 1}), "setOfAcrs: unknown member 'x'");
    rejects(json!({"acr": [1]}), "acr[0]: must be an object");
}

#[test]
fn rejects_unknown_rule_member() {
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acx": []}]}),
        "acr[0]: unknown member 'acx'",
    );
}

#[test]
fn rejects_acop_out_of_range_or_mistyped() {
    for bad in [
        json!(0),
        json!(64),
        json!(-1),
        json!(2.5),
        json!(2.0),
        json!("2"),
        json!(null),
        json!(256),
    ] {
        rejects(
            json!({"acr": [{"acor": ["all"], "acop": bad}]}),
            "acr[0].acop: must be an integer in 1..=63",
        );
    }
    rejects(
        json!({"acr": [{"acor": ["all"]}]}),
        "acr[0].acop: is required",
    );
    assert!(parse(json!({"acr": [{"acor": ["all"], "acop": 1}]})).is_ok());
    assert!(parse(json!({"acr": [{"acor": ["all"], "acop": 63}]})).is_ok());
}

#[test]
fn rejects_acor_not_a_list_of_strings() {
    rejects(
        json!({"acr": [{"acor": "all", "acop": 2}]}),
        "acr[0].acor: must be an array",
    );
    rejects(
        json!({"acr": [{"acor": ["all", 3], "acop": 2}]}),
        "acr[0].acor[1]: must be a string",
    );
    rejects(json!({"acr": [{"acop": 2}]}), "acr[0].acor: is required");
}

#[test]
fn rejects_acaf_not_bool() {
    for bad in [json!("true"), json!(1), json!(null)] {
        rejects(
            json!({"acr": [{"acor": ["all"], "acop": 2, "acaf": bad}]}),
            "acr[0].acaf: must be a boolean",
        );
    }
}

#[test]
fn rejects_malformed_acco() {
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acco": {}}]}),
        "acr[0].acco: must be an array",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acco": ["x"]}]}),
        "acr[0].acco[0]: must be an object",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [{"acui": []}]}]}),
        "acr[0].acco[0]: unknown member 'acui'",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [{"actw": "* * * * * * *"}]}]}),
        "acr[0].acco[0].actw: must be an array",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [{"acip": ["10.0.0.1"]}]}]}),
        "acr[0].acco[0].acip: must be an object",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [{"aclr": null}]}]}),
        "acr[0].acco[0].aclr: must be an object",
    );
}

/// A rule whose only `acco` element is `ctx`.
fn with_context(ctx: Value) -> Value {
    json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [{"actw": ["* * * * * * *"]}, ctx]}]})
}

#[test]
fn rejects_malformed_time_windows() {
    for (window, reason) in [
        (json!("* * * * * *"), "must have 7 fields"),
        (json!("* * 8-17 * * *"), "found 6"),
        (
            json!("* * 24 * * * *"),
            "hour field '24': value 24 outside 0-23",
        ),
        (json!("60 * * * * * *"), "second field"),
        (json!("* * * 0 * * *"), "day-of-month field '0'"),
        (json!("* * * * 13 * *"), "month field '13'"),
        (
            json!("* * * * * 7 *"),
            "day-of-week field '7': value 7 outside 0-6",
        ),
        (json!("* * * * * * 1999"), "year field '1999'"),
        (json!("* * 17-8 * * * *"), "runs backwards"),
        (json!("*/0 * * * * * *"), "step must be at least 1"),
        (json!("* * * * * MON-FRI *"), "not a number"),
        (json!("* * * ? * * *"), "not a number"),
        (json!(""), "found 0"),
        (json!(7), "must be a string"),
        (Value::Null, "must be a string"),
    ] {
        rejects(
            with_context(json!({"actw": ["* * * * * * *", window]})),
            "acr[0].acco[1].actw[1]",
        );
        rejects(with_context(json!({"actw": [window]})), reason);
    }
}

#[test]
fn rejects_malformed_ip_ranges() {
    for (acip, reason) in [
        (
            json!({"ipv4": ["10.0.0.0/33"]}),
            "prefix length '33' must be an integer 0..=32",
        ),
        (
            json!({"ipv4": ["300.1.1.1"]}),
            "'300.1.1.1' is not a dotted-decimal IPv4 address",
        ),
        (json!({"ipv4": ["10.0.0"]}), "not a dotted-decimal"),
        (json!({"ipv4": ["010.0.0.1"]}), "not a dotted-decimal"),
        (json!({"ipv4": [" 10.0.0.1"]}), "not a dotted-decimal"),
        (json!({"ipv4": ["10.0.0.1/"]}), "prefix length ''"),
        (json!({"ipv4": ["10.0.0.0/08"]}), "prefix length '08'"),
        (json!({"ipv4": ["10.0.0.0/-1"]}), "prefix length '-1'"),
        (json!({"ipv4": ["10.0.0.0/8/8"]}), "prefix length '8/8'"),
        (
            json!({"ipv4": ["10.1.2.3/8"]}),
            "host bits set: the network is 10.0.0.0/8",
        ),
        (
            json!({"ipv4": ["2001:db8::/32"]}),
            "is an IPv6 address: list it under ipv6",
        ),
        (
            json!({"ipv6": ["10.0.0.0/8"]}),
            "is an IPv4 address: list it under ipv4",
        ),
        (json!({"ipv6": ["2001:db8::/129"]}), "0..=128"),
        (
            json!({"ipv6": ["2001:db8::1/32"]}),
            "host bits set: the network is 2001:db8::/32",
        ),
        (json!({"ipv6": ["fe80::1%eth0"]}), "not an IPv6 address"),
        (json!({"ipv6": ["::ffff:10.0.0.0/104"]}), "IPv4-mapped"),
        (json!({"ipv6": ["::ffff:10.0.0.1"]}), "IPv4-mapped"),
        (json!({"ipv4": "10.0.0.0/8"}), "acip.ipv4: must be an array"),
        (json!({"ipv4": [10]}), "acip.ipv4[0]: must be a string"),
        (json!({"ipv4": null}), "acip.ipv4: must be an array"),
        (json!({"ipv5": []}), "acip: unknown member 'ipv5'"),
    ] {
        rejects(with_context(json!({"acip": acip})), reason);
    }
}

#[test]
fn rejects_malformed_location_regions() {
    for (aclr, reason) in [
        (
            json!({"accr": [91.0, 0.0, 10.0]}),
            "latitude must be a number in -90..=90",
        ),
        (json!({"accr": [-90.5, 0.0, 10.0]}), "latitude"),
        (
            json!({"accr": [0.0, 180.5, 10.0]}),
            "longitude must be a number in -180..=180",
        ),
        (json!({"accr": [0.0, -181, 10.0]}), "longitude"),
        (json!({"accr": [0.0, 0.0, -1.0]}), "radius must be a number"),
        (json!({"accr": [0.0, 0.0, "10"]}), "radius"),
        (
            json!({"accr": [0.0, 0.0]}),
            "must be [latitude, longitude, radius in metres]",
        ),
        (json!({"accr": [0.0, 0.0, 1.0, 2.0]}), "must be [latitude"),
        (json!({"accr": {"lat": 0}}), "accr: must be an array"),
        (
            json!({"accr": [0.0, 0.0, 1.0], "accc": ["KR"]}),
            "accr and accc are exclusive",
        ),
        (json!({}), "needs accr or accc"),
        (
            json!({"accc": ["kr"]}),
            "accc[0]: must be an ISO 3166-1 alpha-2 code",
        ),
        (json!({"accc": ["KOR"]}), "alpha-2"),
        (json!({"accc": [410]}), "alpha-2"),
        (json!({"accc": "KR"}), "accc: must be an array"),
        (
            json!({"circle": [0, 0, 1]}),
            "aclr: unknown member 'circle'",
        ),
    ] {
        rejects(with_context(json!({"aclr": aclr})), reason);
    }
}

#[test]
fn accepts_well_formed_contexts() {
    let set = parse(json!({"acr": [{"acor": ["all"], "acop": 2, "acco": [
        {"actw": ["* * 8-17 * * 1-5 *", "0,30 */5 0-23/2 1-31 1-12 0-6 2000-9999/1"]},
        {"acip": {"ipv4": ["0.0.0.0/0", "10.0.0.0/8", "192.0.2.7", "192.0.2.7/32"],
                  "ipv6": ["::/0", "2001:db8::/32", "::1", "fe80::/10"]}},
        {"aclr": {"accr": [-90, 180, 0]}},
        {"aclr": {"accr": [37.5665, 126.978, 1500.5]}},
        {"aclr": {"accc": ["KR", "FR"]}},
        {"actw": [], "acip": {}},
        {}
    ]}]}))
    .unwrap();
    let contexts = set.rules()[0].contexts();
    assert_eq!(contexts.len(), 7);
    assert_eq!(
        contexts[0].time_windows().map(|w| w[0].raw()),
        Some("* * 8-17 * * 1-5 *")
    );
    let ip = contexts[1].ip_ranges().unwrap();
    assert_eq!(ip.ipv4().count(), 4);
    assert_eq!(ip.ipv6().nth(1), Some("2001:db8::/32"));
    assert_eq!(
        contexts[3].raw(),
        &json!({"aclr": {"accr": [37.5665, 126.978, 1500.5]}})
    );
    assert!(contexts[6].is_empty());
    assert!(!contexts[5].is_empty());
}

#[test]
fn rejects_malformed_acod() {
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 1, "acod": {"chty": [3]}}]}),
        "acr[0].acod: must be an array",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 1, "acod": [{"ty": 2}]}]}),
        "acr[0].acod[0].chty: is required",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 1, "acod": [{"chty": [3], "x": 1}]}]}),
        "acr[0].acod[0]: unknown member 'x'",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 1, "acod": [{"chty": ["cnt"]}]}]}),
        "acr[0].acod[0].chty[0]: must be a resource type",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 1, "acod": [{"ty": 70000, "chty": [3]}]}]}),
        "acr[0].acod[0].ty: must be a resource type",
    );
    rejects(
        json!({"acr": [{"acor": ["all"], "acop": 1, "acod": [{"spty": true, "chty": [3]}]}]}),
        "acr[0].acod[0].spty: must be a string or an integer",
    );
}

#[test]
fn error_accessors() {
    let e = RuleSet::parse(&json!({"acr": [{"acor": [], "acop": 0}]}), &local()).unwrap_err();
    assert_eq!(e.path(), "acr[0].acop");
    assert_eq!(e.reason(), "must be an integer in 1..=63");
}

#[test]
fn long_unknown_member_names_are_cut() {
    let name = "x".repeat(1000);
    let e = parse(json!({"acr": [], name: 1})).unwrap_err();
    assert!(e.len() < 100, "{e}");
}
