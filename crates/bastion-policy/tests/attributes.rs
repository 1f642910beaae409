//! Attribute-level access control (`aca`, TS-0004 R4 accessControlRule) and the
//! custodian in the default access policy (`cstn`, TS-0001 R4), through the public API.
//! Every decision is also checked against `explain`.

use bastion_policy::explain::Condition;
use bastion_policy::{
    decide, explain, is_owner, readable_attributes, AccessOperation, AccessRequest, Applicable,
    Attributes, Grant, LocalIdentity, NoInformation, PolicySource, ReadableAttributes, RuleSet,
};
use serde_json::json;

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    }
}

fn req<'a>(
    originator: &'a str,
    operation: AccessOperation,
    attributes: Attributes<'a>,
) -> AccessRequest<'a> {
    AccessRequest {
        originator,
        operation,
        authenticated: false,
        target_type: 3,
        create_type: None,
        time: None,
        peer_ip: None,
        attributes,
        pip: &NoInformation,
    }
}

fn granted(applicable: &Applicable<'_>, r: &AccessRequest<'_>) -> Option<Grant> {
    let decision = decide(&local(), r, applicable);
    assert_eq!(explain(&local(), r, applicable).grant, decision.grant);
    decision.grant
}

fn rules() -> RuleSet {
    RuleSet::parse(
        &json!({"acr": [
            {"acor": ["Creader"], "acop": 2, "aca": ["lbl", "mni"]},
            {"acor": ["Creader"], "acop": 6, "aca": ["et"]}
        ]}),
        &local(),
    )
    .expect("valid")
}

#[test]
fn ts0003_7_1_aca_covers_only_requests_naming_listed_attributes() {
    let rules = rules();
    let sources = [PolicySource {
        acp_id: "acp",
        rules: &rules,
    }];
    let applicable = Applicable::Policies(&sources);
    let read = AccessOperation::Retrieve;
    let listed = ["lbl"];
    let both = ["lbl", "mni"];
    let across = ["lbl", "et"];
    let other = ["cni"];
    assert!(granted(
        &applicable,
        &req("Creader", read, Attributes::Named(&listed))
    )
    .is_some());
    assert!(granted(&applicable, &req("Creader", read, Attributes::Named(&both))).is_some());
    // One rule must cover all of them: two rules do not add up for one request.
    assert_eq!(
        granted(
            &applicable,
            &req("Creader", read, Attributes::Named(&across))
        ),
        None
    );
    assert_eq!(
        granted(
            &applicable,
            &req("Creader", read, Attributes::Named(&other))
        ),
        None
    );
    assert_eq!(
        granted(&applicable, &req("Creader", read, Attributes::Whole)),
        None
    );
    assert_eq!(
        granted(
            &applicable,
            &req("Cother", read, Attributes::Named(&listed))
        ),
        None
    );

    let why = explain(
        &local(),
        &req("Creader", read, Attributes::Named(&other)),
        &applicable,
    );
    assert!(why.to_string().contains("does not cover 'cni'"), "{why}");
    let failed: Vec<Condition> = match &why.basis {
        bastion_policy::explain::Basis::Policies { sources } => sources[0].rules[0]
            .checks
            .iter()
            .filter(|c| !c.holds)
            .map(|c| c.condition)
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(failed, vec![Condition::Attributes]);
}

#[test]
fn ts0003_7_1_aca_readable_attributes_are_the_union_of_granting_rules() {
    let rules = rules();
    let sources = [PolicySource {
        acp_id: "acp",
        rules: &rules,
    }];
    let applicable = Applicable::Policies(&sources);
    let r = req("Creader", AccessOperation::Retrieve, Attributes::Whole);
    let Some(ReadableAttributes::Only(names)) = readable_attributes(&local(), &r, &applicable)
    else {
        panic!("expected a restricted grant");
    };
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["et", "lbl", "mni"]);
    let stranger = req("Cother", AccessOperation::Retrieve, Attributes::Whole);
    assert_eq!(readable_attributes(&local(), &stranger, &applicable), None);
    let admin = req("CAdmin", AccessOperation::Retrieve, Attributes::Whole);
    assert_eq!(
        readable_attributes(&local(), &admin, &applicable),
        Some(ReadableAttributes::Whole)
    );
}

#[test]
fn ts0003_7_1_aca_must_be_a_list_of_names() {
    for aca in [json!("lbl"), json!([""]), json!([1]), json!(null)] {
        let set = json!({"acr": [{"acor": ["all"], "acop": 2, "aca": aca}]});
        let err = RuleSet::parse(&set, &local()).expect_err("invalid aca");
        assert!(err.to_string().contains("aca"), "{err}");
    }
}

#[test]
fn ts0001_9_6_1_3_custodian_replaces_the_creator_in_the_default_policy() {
    let op = AccessOperation::Update;
    let with_custodian = Applicable::Default {
        creator: Some("Cmaker"),
        custodian: Some("Ckeeper"),
    };
    let whole = Attributes::Whole;
    assert_eq!(
        granted(&with_custodian, &req("Ckeeper", op, whole)),
        Some(Grant::Custodian)
    );
    assert_eq!(granted(&with_custodian, &req("Cmaker", op, whole)), None);
    let why = explain(&local(), &req("Cmaker", op, whole), &with_custodian);
    assert!(why.to_string().contains("only the custodian"), "{why}");
    let without = Applicable::Default {
        creator: Some("Cmaker"),
        custodian: None,
    };
    assert_eq!(
        granted(&without, &req("Cmaker", op, whole)),
        Some(Grant::Creator)
    );
    assert_eq!(granted(&without, &req("Ckeeper", op, whole)), None);
}

#[test]
fn ts0001_9_6_1_3_owner_is_creator_custodian_or_admin() {
    let l = local();
    assert!(is_owner(&l, "Cmaker", Some("Cmaker"), Some("Ckeeper")));
    assert!(is_owner(&l, "Ckeeper", Some("Cmaker"), Some("Ckeeper")));
    assert!(is_owner(&l, "CAdmin", None, None));
    assert!(is_owner(
        &l,
        "//bastion.example/id-in/Cmaker",
        Some("Cmaker"),
        None
    ));
    assert!(!is_owner(&l, "Cother", Some("Cmaker"), Some("Ckeeper")));
    assert!(!is_owner(&l, "", Some(""), None));
}
