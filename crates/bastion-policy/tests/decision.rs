//! Decision tests, one per rule of TS-0003 7.1 the PDP implements, through the public API
//! only. Every case also checks that `explain` agrees with `decide`.

use bastion_policy::explain::Basis;
use bastion_policy::{
    decide, explain, AccessOperation, AccessRequest, Applicable, Decision, FixedInformation, Grant,
    LocalIdentity, NoInformation, PolicySource, RuleSet,
};
use serde_json::{json, Value};

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    }
}

fn set(v: Value) -> RuleSet {
    RuleSet::parse(&v, &local()).expect("valid rule set")
}

fn req(originator: &str, operation: AccessOperation) -> AccessRequest<'_> {
    AccessRequest {
        originator,
        operation,
        authenticated: false,
        target_type: 2,
        create_type: None,
        time: None,
        peer_ip: None,
        attributes: bastion_policy::Attributes::Whole,
        pip: &NoInformation,
    }
}

fn create<'a>(originator: &'a str, parent: u16, child: u16) -> AccessRequest<'a> {
    AccessRequest {
        originator,
        operation: AccessOperation::Create,
        authenticated: false,
        target_type: parent,
        create_type: Some(child),
        time: None,
        peer_ip: None,
        attributes: bastion_policy::Attributes::Whole,
        pip: &NoInformation,
    }
}

/// Decides against one ACP and checks that `explain` agrees.
fn decide_one(rules: &RuleSet, r: &AccessRequest<'_>) -> Decision {
    let sources = [PolicySource {
        acp_id: "acp1",
        rules,
    }];
    decide_with(&Applicable::Policies(&sources), r)
}

fn decide_with(applicable: &Applicable<'_>, r: &AccessRequest<'_>) -> Decision {
    let l = local();
    let d = decide(&l, r, applicable);
    assert_eq!(
        explain(&l, r, applicable).decision(),
        d,
        "explain disagrees"
    );
    d
}

fn granted(rules: Value, r: &AccessRequest<'_>) -> bool {
    decide_one(&set(rules), r).granted()
}

fn one_rule(acor: &[&str], acop: u8) -> Value {
    json!({"acr": [{"acor": acor, "acop": acop}]})
}

// ---------- administrator ----------

#[test]
fn admin_is_granted_everything_in_any_form() {
    let empty = set(json!({"acr": []}));
    let sources = [PolicySource {
        acp_id: "acp1",
        rules: &empty,
    }];
    for who in ["CAdmin", "/id-in/CAdmin", "//bastion.example/id-in/CAdmin"] {
        for op in AccessOperation::ALL {
            for applicable in [
                Applicable::Policies(&sources),
                Applicable::Policies(&[]),
                Applicable::Default {
                    creator: None,
                    custodian: None,
                },
                Applicable::Default {
                    creator: Some("Cother"),
                    custodian: None,
                },
            ] {
                let d = decide_with(&applicable, &req(who, op));
                assert_eq!(d.grant, Some(Grant::Admin), "{who} {op}");
            }
        }
    }
}

#[test]
fn admin_comparison_is_exact() {
    let none = Applicable::Default {
        creator: None,
        custodian: None,
    };
    for who in [
        "CAdmin2",
        "Cadmin",
        "CAdmin ",
        "C*",
        "CAdmi*",
        "//other.example/id-in/CAdmin",
        "/other-cse/CAdmin",
        "",
    ] {
        assert!(
            !decide_with(&none, &req(who, AccessOperation::Retrieve)).granted(),
            "{who:?}"
        );
    }
}

#[test]
fn empty_configured_admin_admits_nobody() {
    let l = LocalIdentity {
        admin: String::new(),
        ..local()
    };
    let d = decide(
        &l,
        &req("", AccessOperation::Retrieve),
        &Applicable::Default {
            creator: None,
            custodian: None,
        },
    );
    assert!(!d.granted());
}

// ---------- permit-only combination (TS-0003 7.1.4) ----------

#[test]
fn ts0003_7_1_4_permit_overrides_across_sources() {
    let a = set(one_rule(&["Cother"], 63));
    let b = set(json!({"acr": [
        {"acor": ["Cabc"], "acop": 4},
        {"acor": ["Cabc"], "acop": 2},
        {"acor": ["all"], "acop": 2}
    ]}));
    let sources = [
        PolicySource {
            acp_id: "acpA",
            rules: &a,
        },
        PolicySource {
            acp_id: "acpB",
            rules: &b,
        },
    ];
    let d = decide_with(
        &Applicable::Policies(&sources),
        &req("Cabc", AccessOperation::Retrieve),
    );
    // The first permitting rule in source/document order is reported.
    assert_eq!(d.grant, Some(Grant::Rule { source: 1, rule: 1 }));
}

#[test]
fn ts0003_7_1_4_no_rule_means_deny() {
    assert!(!granted(
        json!({"acr": []}),
        &req("Cabc", AccessOperation::Retrieve)
    ));
    let d = decide_with(
        &Applicable::Policies(&[]),
        &req("Cabc", AccessOperation::Retrieve),
    );
    assert_eq!(d, Decision::DENY);
}

// ---------- acop (TS-0004 6.3.4.2.29) ----------

#[test]
fn ts0004_6_3_4_2_29_acop_bit_of_the_operation_is_required() {
    for op in AccessOperation::ALL {
        for acop in 1u8..=63 {
            let expected = acop & op.bit() != 0;
            assert_eq!(
                granted(one_rule(&["Cabc"], acop), &req("Cabc", op)),
                expected,
                "{op} acop {acop}"
            );
        }
    }
}

#[test]
fn ts0004_6_3_4_2_29_discovery_has_its_own_bit() {
    assert!(!granted(
        one_rule(&["Cabc"], 2),
        &req("Cabc", AccessOperation::Discovery)
    ));
    assert!(!granted(
        one_rule(&["Cabc"], 32),
        &req("Cabc", AccessOperation::Retrieve)
    ));
    assert!(granted(
        one_rule(&["Cabc"], 32),
        &req("Cabc", AccessOperation::Discovery)
    ));
}

#[test]
fn operation_bits() {
    let bits: Vec<u8> = AccessOperation::ALL.iter().map(|o| o.bit()).collect();
    assert_eq!(bits, [1, 2, 4, 8, 16, 32]);
}

// ---------- acor (TS-0003 7.1.3) ----------

#[test]
fn ts0003_7_1_3_acor_normalised_forms_match_each_other() {
    let forms = ["Cabc", "/id-in/Cabc", "//bastion.example/id-in/Cabc"];
    for entry in forms {
        for who in forms {
            assert!(
                granted(one_rule(&[entry], 2), &req(who, AccessOperation::Retrieve)),
                "{entry} vs {who}"
            );
        }
    }
    assert!(granted(
        one_rule(&["Sapp"], 2),
        &req("//bastion.example/Sapp", AccessOperation::Retrieve)
    ));
    assert!(granted(
        one_rule(&["/id-mn"], 2),
        &req("//bastion.example/id-mn", AccessOperation::Retrieve)
    ));
    // Same stem under another SP or another CSE is somebody else.
    assert!(!granted(
        one_rule(&["Cabc"], 2),
        &req("//other.example/id-in/Cabc", AccessOperation::Retrieve)
    ));
    assert!(!granted(
        one_rule(&["Cabc"], 2),
        &req("/id-mn/Cabc", AccessOperation::Retrieve)
    ));
}

#[test]
fn ts0003_7_1_3_all_matches_any_non_empty_originator() {
    for who in ["Cabc", "Sx", "/id-mn", "//far.example/cse/Cq", "odd"] {
        assert!(granted(
            one_rule(&["all"], 2),
            &req(who, AccessOperation::Retrieve)
        ));
    }
    assert!(!granted(
        one_rule(&["all"], 2),
        &req("", AccessOperation::Retrieve)
    ));
}

#[test]
fn ts0003_7_1_3_sp_id_entry_matches_everything_under_that_sp() {
    let rules = one_rule(&["//bastion.example"], 2);
    for who in ["Cabc", "Sx", "/id-mn", "//bastion.example/id-mn/Cq"] {
        assert!(granted(rules.clone(), &req(who, AccessOperation::Retrieve)));
    }
    for who in [
        "//other.example/id-in/Cabc",
        "//bastion.example.evil/x",
        "//bastion.example",
        "",
    ] {
        assert!(!granted(
            rules.clone(),
            &req(who, AccessOperation::Retrieve)
        ));
    }
}

#[test]
fn ts0003_7_1_3_wildcard_never_crosses_a_slash() {
    let r = |entry: &str, who: &str| {
        granted(one_rule(&[entry], 2), &req(who, AccessOperation::Retrieve))
    };
    assert!(r("C98*", "C98-sensor"));
    assert!(r("/id-*/C98*", "/id-in/C98x"));
    assert!(r("//*/id-in", "//x.example/id-in"));
    assert!(r("//*/myCSE*", "//x.example/myCSE-2"));
    assert!(r("/SmyAE*", "SmyAE1"));
    assert!(!r("//*/Cabc", "//x.example/id-in/Cabc"));
    assert!(!r("/id-in/*", "/id-in/Cabc/sub"));
    assert!(!r("C*", "Sabc"));
}

#[test]
fn ts0003_7_1_3_originator_is_data_not_a_pattern() {
    let r = |entry: &str, who: &str| {
        granted(one_rule(&[entry], 2), &req(who, AccessOperation::Retrieve))
    };
    for who in [
        "C*", "Cab.", "C.*", "Cab?", "C%2A", "Ca[b]c", "Ca(b)c", "Cab\\c", "Ca|c", "C+", "Cabc$",
        "^Cabc",
    ] {
        assert!(!r("Cabc", who), "{who}");
    }
    assert!(!r("/id-in/Cabc", "/id-in/*"));
    assert!(!r("//bastion.example", "//*/id-in/Cabc"));
    assert!(!r("//bastion.example/*/Cabc", "//bastion.example/*/Cab?"));
    // The literal text is matched by an entry that spells it, or a glob accepting it.
    assert!(r("C%2A", "C%2A"));
    assert!(r("Cab.", "Cab."));
    assert!(r("C*", "C.*"));
}

/// Group and role entries are answered by the PIP: a member / holder matches, anyone else
/// and any unresolvable group does not (TS-0001 9.6.2.1, TS-0003 7.4).
#[test]
fn ts0003_7_1_3_group_and_role_entries_ask_the_pip() {
    let l = local();
    let pip = FixedInformation {
        groups: vec!["grp-42".into(), "//bastion.example/id-in/grp1".into()],
        roles: vec!["op@roles.example".into()],
        ..FixedInformation::default()
    };
    for (entry, member) in [
        ("grp-42", true),
        ("/id-in/grp-42", false),
        ("//bastion.example/id-in/grp1", true),
        ("op@roles.example", true),
        // The FQDN of a Role-ID is case-insensitive: compiled lower-case.
        ("op@Roles.Example", true),
        ("other@roles.example", false),
    ] {
        let rules = set(one_rule(&[entry], 63));
        let mut r = req("Cabc", AccessOperation::Retrieve);
        r.pip = &pip;
        assert_eq!(decide_one(&rules, &r).granted(), member, "{entry}");
        // Without information nobody matches.
        let r0 = req("Cabc", AccessOperation::Retrieve);
        assert!(!decide_one(&rules, &r0).granted(), "{entry}");
        let sources = [PolicySource {
            acp_id: "acp1",
            rules: &rules,
        }];
        let e = explain(&l, &r0, &Applicable::Policies(&sources));
        let Basis::Policies { sources } = &e.basis else {
            panic!()
        };
        let note = sources[0].rules[0].originators[0]
            .note
            .clone()
            .unwrap_or_default();
        if entry.contains('@') {
            assert!(note.starts_with("originator holds no valid role"), "{note}");
        } else {
            assert!(
                note.ends_with("is not a resolvable group, never matches"),
                "{note}"
            );
        }
    }
    // A Role-ID that is not well formed is malformed, not a group.
    let rules = set(one_rule(&["a b@roles.example"], 63));
    let mut r = req("Cabc", AccessOperation::Retrieve);
    r.pip = &pip;
    assert!(!decide_one(&rules, &r).granted());
    assert_eq!(
        rules.rules()[0].originators()[0].kind(),
        bastion_policy::originator::EntryKind::Malformed
    );
}

#[test]
fn ts0003_7_1_3_empty_acor_matches_nobody() {
    assert!(!granted(
        one_rule(&[], 63),
        &req("Cabc", AccessOperation::Retrieve)
    ));
}

// ---------- acaf (TS-0003 7.1.5 table 7.1.5-1) ----------

#[test]
fn ts0003_7_1_5_acaf_requires_authenticated_originator() {
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 2, "acaf": true}]});
    let mut r = req("Cabc", AccessOperation::Retrieve);
    assert!(!granted(rules.clone(), &r));
    r.authenticated = true;
    assert!(granted(rules, &r));
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 2, "acaf": false}]});
    r.authenticated = false;
    assert!(granted(rules, &r));
}

// ---------- acco (TS-0003 7.1.2; the full matrix is in tests/contexts.rs) ----------

#[test]
fn ts0003_7_1_5_acco_is_evaluated_and_fails_closed_on_unknown_context() {
    let l = local();
    let rules = set(json!({"acr": [{"acor": ["Cabc"], "acop": 2,
        "acco": [{"actw": ["* * * * * * *"]}]}]}));
    let mut r = req("Cabc", AccessOperation::Retrieve);
    // No request time: the window cannot hold.
    assert!(!decide_one(&rules, &r).granted());
    let sources = [PolicySource {
        acp_id: "acp1",
        rules: &rules,
    }];
    let e = explain(&l, &r, &Applicable::Policies(&sources));
    assert!(e.to_string().contains("time unknown"), "{e}");
    // 2026-01-01T00:00:00Z is inside every-second-of-every-year.
    r.time = Some(1_767_225_600);
    assert!(decide_one(&rules, &r).granted());

    // An empty list is the same as absent.
    assert!(granted(
        json!({"acr": [{"acor": ["Cabc"], "acop": 2, "acco": []}]}),
        &req("Cabc", AccessOperation::Retrieve)
    ));
}

// ---------- acod (TS-0003 7.1.5) ----------

#[test]
fn ts0003_7_1_5_acod_limits_create_child_type() {
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 1,
        "acod": [{"chty": [3, 4]}]}]});
    assert!(granted(rules.clone(), &create("Cabc", 2, 3)));
    assert!(granted(rules.clone(), &create("Cabc", 5, 4)));
    assert!(!granted(rules.clone(), &create("Cabc", 2, 23)));
    let mut unknown = create("Cabc", 2, 3);
    unknown.create_type = None;
    assert!(!granted(rules, &unknown));
}

#[test]
fn ts0003_7_1_5_acod_ty_must_equal_the_parent_type() {
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 1,
        "acod": [{"ty": 2, "chty": [3]}, {"ty": 3, "chty": [4]}]}]});
    assert!(granted(rules.clone(), &create("Cabc", 2, 3)));
    assert!(granted(rules.clone(), &create("Cabc", 3, 4)));
    assert!(!granted(rules.clone(), &create("Cabc", 2, 4)));
    assert!(!granted(rules, &create("Cabc", 3, 3)));
}

#[test]
fn ts0003_7_1_5_acod_spty_is_not_evaluated_yet() {
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 1,
        "acod": [{"ty": 2, "spty": "org.example.def", "chty": [28]}]}]});
    assert!(!granted(rules, &create("Cabc", 2, 28)));
}

#[test]
fn ts0003_7_1_5_acod_constrains_create_only() {
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 63,
        "acod": [{"ty": 99, "chty": []}]}]});
    for op in AccessOperation::ALL {
        let expected = op != AccessOperation::Create;
        let mut r = req("Cabc", op);
        r.create_type = (op == AccessOperation::Create).then_some(3);
        assert_eq!(granted(rules.clone(), &r), expected, "{op}");
    }
}

#[test]
fn ts0003_7_1_5_empty_acod_is_no_constraint() {
    let rules = json!({"acr": [{"acor": ["Cabc"], "acop": 1, "acod": []}]});
    assert!(granted(rules, &create("Cabc", 2, 3)));
}

// ---------- default access policy (digest §3) ----------

#[test]
fn default_policy_grants_only_the_creator() {
    let creator = Applicable::Default {
        creator: Some("//bastion.example/id-in/Cmaker"),
        custodian: None,
    };
    for op in AccessOperation::ALL {
        assert_eq!(
            decide_with(&creator, &req("Cmaker", op)).grant,
            Some(Grant::Creator)
        );
        assert!(!decide_with(&creator, &req("Cother", op)).granted());
        assert!(!decide_with(&creator, &req("Cmake*", op)).granted());
    }
    let nobody = Applicable::Default {
        creator: None,
        custodian: None,
    };
    assert!(!decide_with(&nobody, &req("Cmaker", AccessOperation::Retrieve)).granted());
    let empty = Applicable::Default {
        creator: Some(""),
        custodian: None,
    };
    assert!(!decide_with(&empty, &req("", AccessOperation::Retrieve)).granted());
}

// ---------- unknown / unparsable conditions never grant ----------

#[test]
fn malformed_entries_never_grant() {
    for entry in ["", "/", "//", "/id-in//Cabc", "*"] {
        assert!(
            !granted(
                one_rule(&[entry], 63),
                &req("Cabc", AccessOperation::Retrieve)
            ),
            "{entry:?}"
        );
    }
}

// ---------- explanation ----------

#[test]
fn explanation_one_line_reasons() {
    let l = local();
    let rules = set(one_rule(&["Cother"], 2));
    let sources = [PolicySource {
        acp_id: "acp1",
        rules: &rules,
    }];
    let p = Applicable::Policies(&sources);
    let e = explain(&l, &req("Cabc", AccessOperation::Retrieve), &p);
    assert_eq!(e.to_string(), "no rule grants RETRIEVE to Cabc");
    let e = explain(&l, &req("Cother", AccessOperation::Delete), &p);
    assert_eq!(
        e.to_string(),
        "no rule grants DELETE to Cother; rule 0 of acp1 matches the originator but acop 2 does not include DELETE (8)"
    );
    let e = explain(&l, &req("Cother", AccessOperation::Retrieve), &p);
    assert_eq!(e.to_string(), "RETRIEVE granted by rule 0 of acp1");
    let e = explain(&l, &req("", AccessOperation::Retrieve), &p);
    assert_eq!(
        e.to_string(),
        "no rule grants RETRIEVE to an empty originator"
    );
    let e = explain(
        &l,
        &req("Cabc", AccessOperation::Retrieve),
        &Applicable::Policies(&[]),
    );
    assert_eq!(
        e.to_string(),
        "no rule grants RETRIEVE to Cabc (no rules apply)"
    );
    let e = explain(
        &l,
        &req("CAdmin", AccessOperation::Delete),
        &Applicable::Policies(&[]),
    );
    assert_eq!(
        e.to_string(),
        "DELETE granted: CAdmin is the CSE administrator"
    );
    let long = "C".repeat(500);
    let e = explain(&l, &req(&long, AccessOperation::Retrieve), &p);
    assert!(e.to_string().len() < 120);
}

#[test]
fn explanation_serialises_every_condition() {
    let l = local();
    let rules = set(
        json!({"acr": [{"acor": ["Cabc", "grp"], "acop": 3, "acaf": true,
        "acod": [{"chty": [4]}]}]}),
    );
    let sources = [PolicySource {
        acp_id: "acp1",
        rules: &rules,
    }];
    let e = explain(&l, &create("Cabc", 3, 4), &Applicable::Policies(&sources));
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["operation"], "CREATE");
    assert_eq!(v["normalized_originator"], "//bastion.example/id-in/Cabc");
    assert_eq!(v["grant"], Value::Null);
    let rule = &v["basis"]["sources"][0]["rules"][0];
    let conditions: Vec<&str> = rule["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["condition"].as_str().unwrap())
        .collect();
    assert_eq!(
        conditions,
        [
            "operation",
            "authentication",
            "context",
            "object_details",
            "originator",
            "attributes"
        ]
    );
    assert_eq!(rule["checks"][1]["holds"], false);
    assert_eq!(rule["originators"][0]["matches"], true);
    assert_eq!(rule["originators"][1]["kind"], "resource_id");
    let d = decide(&l, &create("Cabc", 3, 4), &Applicable::Policies(&sources));
    assert_eq!(d, e.decision());
}
