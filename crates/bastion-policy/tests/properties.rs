//! Property tests of the PDP:
//!
//! 1. adding a rule never removes access (permit-only, TS-0003 7.1.4);
//! 2. clearing an `acop` bit never grants what was denied;
//! 3. an originator carrying wildcard/regex metacharacters never matches a literal entry
//!    that spells something else, and the segment-wise matcher agrees with a naive
//!    reference matcher on every entry/originator pair;
//! 4. `decide` and `explain` always agree.
//!
//! Rules carry generated `acco` contexts (time windows, IP prefixes, circles, country
//! codes, empty elements) and requests carry generated, sometimes unknown, time, peer
//! address and location, so every property covers context evaluation too.
//!
//! The identity uses a one-letter SP and CSE so that random strings collide often. The case
//! count is proptest's default (256), overridable with `PROPTEST_CASES`.

use bastion_policy::originator::EntryKind;
use bastion_policy::{
    decide, explain, normalize_originator, AccessOperation, AccessRequest, Applicable,
    FixedInformation, LocalIdentity, Location, PolicySource, RuleSet,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//s".into(),
        cse_id: "/a".into(),
        admin: "Cadm".into(),
    }
}

// ---------- strategies ----------

/// Strings generated from a regular expression (proptest's generator; the PDP itself
/// never uses regular expressions).
fn re(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern).expect("valid generator pattern")
}

fn entry() -> impl Strategy<Value = String> {
    let seg = "[Cabs*]{1,3}";
    prop_oneof![
        Just("all".to_owned()),
        Just("//s".to_owned()),
        re(&format!("//{seg}")),
        re(&format!("//{seg}/{seg}")),
        re(&format!("//{seg}/C[ab*]{{0,2}}")),
        re(&format!("/{seg}")),
        re(&format!("/{seg}/C[ab*]{{0,2}}")),
        "C[ab*.?]{0,3}",
        "S[ab*]{0,3}",
        Just("grp".to_owned()),
        Just("r@x".to_owned()),
        "[Cabs*/]{0,6}",
    ]
}

fn originator() -> impl Strategy<Value = String> {
    let seg = "[Cabs*.?]{0,3}";
    prop_oneof![
        Just(String::new()),
        Just("Cadm".to_owned()),
        re(&format!("//{seg}")),
        re(&format!("//{seg}/{seg}")),
        re(&format!("//{seg}/{seg}/{seg}")),
        re(&format!("/{seg}")),
        re(&format!("/{seg}/{seg}")),
        "C[ab*.?]{0,3}",
        "S[ab*]{0,3}",
        "[Cabs*/.?]{0,6}",
        "C(%2A|\\.\\*|[ab])",
    ]
}

fn operation() -> impl Strategy<Value = AccessOperation> {
    prop::sample::select(AccessOperation::ALL.to_vec())
}

fn acod_element() -> impl Strategy<Value = Value> {
    (
        prop::option::of(1u16..4),
        any::<bool>(),
        prop::collection::vec(1u16..5, 0..3),
    )
        .prop_map(|(ty, spty, chty)| {
            let mut m = Map::new();
            if let Some(ty) = ty {
                m.insert("ty".into(), json!(ty));
            }
            if spty {
                m.insert("spty".into(), json!("def"));
            }
            m.insert("chty".into(), json!(chty));
            Value::Object(m)
        })
}

fn pick(items: &[&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(items.to_vec())
}

/// One `acco` element: any subset of `actw`, `acip`, `aclr` (possibly none).
fn context_element() -> impl Strategy<Value = Value> {
    let window = pick(&[
        "* * * * * * *",
        "* * 8-17 * * * *",
        "* * * * * 0 *",
        "* * * 13 * 5 *",
        "* * * * * * 2001",
        "0-29 * * * * 1-5 2020-2030",
    ]);
    let v4 = pick(&[
        "10.0.0.0/8",
        "10.1.0.0/16",
        "192.0.2.7",
        "0.0.0.0/0",
        "127.0.0.0/8",
    ]);
    let v6 = pick(&["2001:db8::/32", "::/0", "::1"]);
    let aclr = prop_oneof![
        Just(json!({"accr": [0.0, 0.0, 1000.0]})),
        Just(json!({"accr": [37.5, 127.0, 500000.0]})),
        Just(json!({"accc": ["KR"]})),
    ];
    (
        prop::option::of(prop::collection::vec(window, 0..3)),
        prop::option::of((
            prop::option::of(prop::collection::vec(v4, 0..3)),
            prop::option::of(prop::collection::vec(v6, 0..2)),
        )),
        prop::option::of(aclr),
    )
        .prop_map(|(actw, acip, aclr)| {
            let mut m = Map::new();
            if let Some(w) = actw {
                m.insert("actw".into(), json!(w));
            }
            if let Some((v4, v6)) = acip {
                let mut ip = Map::new();
                if let Some(v4) = v4 {
                    ip.insert("ipv4".into(), json!(v4));
                }
                if let Some(v6) = v6 {
                    ip.insert("ipv6".into(), json!(v6));
                }
                m.insert("acip".into(), Value::Object(ip));
            }
            if let Some(r) = aclr {
                m.insert("aclr".into(), r);
            }
            Value::Object(m)
        })
}

fn rule() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(entry(), 0..4),
        1u8..=63,
        prop::option::of(any::<bool>()),
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(json!([]))),
            3 => prop::collection::vec(context_element(), 1..3).prop_map(|c| Some(json!(c))),
        ],
        prop::option::of(prop::collection::vec(acod_element(), 0..3)),
    )
        .prop_map(|(acor, acop, acaf, acco, acod)| {
            let mut m = Map::new();
            m.insert("acor".into(), json!(acor));
            m.insert("acop".into(), json!(acop));
            if let Some(b) = acaf {
                m.insert("acaf".into(), json!(b));
            }
            if let Some(c) = acco {
                m.insert("acco".into(), c);
            }
            if let Some(d) = acod {
                m.insert("acod".into(), json!(d));
            }
            Value::Object(m)
        })
}

fn rules(max: usize) -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(rule(), 0..max)
}

#[derive(Debug, Clone)]
struct Req {
    originator: String,
    operation: AccessOperation,
    authenticated: bool,
    target_type: u16,
    create_type: Option<u16>,
    time: Option<i64>,
    peer_ip: Option<IpAddr>,
    pip: FixedInformation,
}

impl Req {
    fn view(&self) -> AccessRequest<'_> {
        AccessRequest {
            originator: &self.originator,
            operation: self.operation,
            authenticated: self.authenticated,
            target_type: self.target_type,
            create_type: self.create_type,
            time: self.time,
            peer_ip: self.peer_ip,
            attributes: bastion_policy::Attributes::Whole,
            pip: &self.pip,
        }
    }
}

/// Request times: 1999-2031 at random, plus a few instants that sit on window edges.
fn time() -> impl Strategy<Value = Option<i64>> {
    prop::option::of(prop_oneof![
        915_148_800i64..1_924_992_000,
        Just(1_772_611_200), // 2026-03-04T08:00:00Z, a Wednesday
        Just(1_772_647_199), // 2026-03-04T17:59:59Z
        Just(1_779_580_800), // 2026-05-24T00:00:00Z, a Sunday
        Just(1_770_984_000), // 2026-02-13T12:00:00Z, Friday the 13th
        Just(993_945_600),   // 2001-07-01T00:00:00Z
    ])
}

fn peer() -> impl Strategy<Value = Option<IpAddr>> {
    let addr = pick(&[
        "10.0.0.0",
        "10.1.2.3",
        "10.255.255.255",
        "11.0.0.0",
        "127.0.0.1",
        "192.0.2.7",
        "192.0.2.8",
        "::ffff:10.1.2.3",
        "2001:db8::1",
        "::1",
    ]);
    prop::option::of(addr.prop_map(|a| a.parse().expect("valid test address")))
}

fn location() -> impl Strategy<Value = Option<Location>> {
    let point = prop_oneof![
        Just((0.0, 0.0)),
        Just((0.005, 0.0)),
        Just((0.01, 0.0)),
        Just((37.5665, 126.978)),
        Just((91.0, 0.0)),
        (-90.0f64..=90.0, -180.0f64..=180.0),
    ];
    prop::option::of(point.prop_map(|(latitude, longitude)| Location {
        latitude,
        longitude,
    }))
}

fn request() -> impl Strategy<Value = Req> {
    (
        (
            originator(),
            operation(),
            any::<bool>(),
            1u16..4,
            prop::option::of(1u16..5),
        ),
        (time(), peer(), location()),
    )
        .prop_map(
            |(
                (originator, operation, authenticated, target_type, create_type),
                (time, peer_ip, location),
            )| Req {
                originator,
                operation,
                authenticated,
                target_type,
                create_type,
                time,
                peer_ip,
                pip: FixedInformation {
                    location,
                    ..FixedInformation::default()
                },
            },
        )
}

// ---------- helpers ----------

fn compile(rules: &[Value]) -> RuleSet {
    RuleSet::parse(&json!({ "acr": rules }), &local()).expect("generated rules are valid")
}

fn granted(rules: &[Value], r: &Req) -> bool {
    let set = compile(rules);
    let sources = [PolicySource {
        acp_id: "acp",
        rules: &set,
    }];
    decide(&local(), &r.view(), &Applicable::Policies(&sources)).granted()
}

/// Does a single-entry, all-operations rule let `originator` in?
fn entry_matches(entry: &str, originator: &str) -> bool {
    let rules = [json!({"acor": [entry], "acop": 63})];
    let r = Req {
        originator: originator.to_owned(),
        operation: AccessOperation::Retrieve,
        authenticated: false,
        target_type: 1,
        create_type: None,
        time: None,
        peer_ip: None,
        pip: FixedInformation::default(),
    };
    granted(&rules, &r)
}

fn entry_kind_and_form(entry: &str) -> (EntryKind, String) {
    let set = compile(&[json!({"acor": [entry], "acop": 63})]);
    let e = &set.rules()[0].originators()[0];
    (e.kind(), e.normalized().to_owned())
}

/// Naive backtracking glob: `*` matches any run without `/`. Exponential in the worst case,
/// fine for the short strings generated here.
fn reference_glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| reference_glob(rest, &s[i..])),
        Some((&c, rest)) => s.first() == Some(&c) && reference_glob(rest, &s[1..]),
    }
}

fn reference_match(entry: &str, originator: &str) -> bool {
    if originator.is_empty() {
        return false;
    }
    let l = local();
    let orig = normalize_originator(&l, originator);
    if orig == normalize_originator(&l, &l.admin) {
        return true; // administrator override
    }
    let (kind, form) = entry_kind_and_form(entry);
    match kind {
        EntryKind::All => true,
        EntryKind::SpDomain => match orig.strip_prefix("//").and_then(|r| r.split_once('/')) {
            Some((host, tail)) => {
                !tail.is_empty() && reference_glob(&form.as_bytes()[2..], host.as_bytes())
            }
            None => false,
        },
        EntryKind::Identifier => reference_glob(form.as_bytes(), orig.as_bytes()),
        // The generated requests carry no PIP information: groups and roles never match.
        EntryKind::Role | EntryKind::ResourceId | EntryKind::Malformed => false,
    }
}

proptest! {
    /// (1) Permit-only: a new rule, wherever it is inserted, never takes access away.
    #[test]
    fn adding_a_rule_never_removes_access(
        set in rules(6), extra in rule(), at in any::<Index>(), r in request()
    ) {
        let before = granted(&set, &r);
        let mut more = set.clone();
        more.insert(at.index(set.len() + 1), extra);
        let after = granted(&more, &r);
        prop_assert!(!before || after);
    }

    /// (2) Clearing one operation bit of one rule never turns a deny into a grant
    /// (a rule whose `acop` drops to 0 is removed, since 0 is not a valid `acop`).
    #[test]
    fn clearing_an_operation_bit_never_grants(
        set in prop::collection::vec(rule(), 1..6), which in any::<Index>(), bit in 0u32..6,
        r in request()
    ) {
        let i = which.index(set.len());
        let mut fewer = set.clone();
        let acop = fewer[i]["acop"].as_u64().unwrap() & !(1u64 << bit);
        if acop == 0 {
            fewer.remove(i);
        } else {
            fewer[i]["acop"] = json!(acop);
        }
        let before = granted(&set, &r);
        let after = granted(&fewer, &r);
        prop_assert!(before || !after);
    }

    /// (3a) An originator containing a metacharacter matches a literal (wildcard-free)
    /// entry only if both spell the same absolute identifier.
    #[test]
    fn metacharacters_in_the_originator_are_literal(
        head in originator(),
        meta in prop::sample::select(vec!["*", ".*", "?", "%2A", "[", "(", "\\", "+", "^", "$", "|", "{", "."]),
        tail in "[ab]{0,2}",
        entry in entry().prop_filter("literal", |e| !e.contains('*')),
    ) {
        let mut o = head;
        if o.is_empty() { o.push('C'); }
        o.push_str(meta);
        o.push_str(&tail);
        let l = local();
        let same = normalize_originator(&l, &entry) == normalize_originator(&l, &o);
        let (kind, _) = entry_kind_and_form(&entry);
        let matched = entry_matches(&entry, &o);
        let admin = normalize_originator(&l, &o) == normalize_originator(&l, &l.admin);
        match kind {
            _ if admin => prop_assert!(matched),
            EntryKind::All => prop_assert!(matched),
            EntryKind::Identifier => prop_assert_eq!(matched, same),
            EntryKind::SpDomain => {
                // Only the host is compared; it cannot carry '*' here.
                prop_assert_eq!(matched, reference_match(&entry, &o));
            }
            _ => prop_assert!(!matched),
        }
        if matched && kind == EntryKind::Identifier && !admin {
            prop_assert!(same);
        }
    }

    /// (3b) The linear segment-wise matcher agrees with a naive backtracking matcher.
    #[test]
    fn matcher_agrees_with_reference(entry in entry(), o in originator()) {
        prop_assert_eq!(entry_matches(&entry, &o), reference_match(&entry, &o));
    }

    /// (3c) Distinct wildcard-free identifiers never match each other, in either role.
    #[test]
    fn distinct_literals_never_match(
        e in "C[ab.?%2A()]{0,4}", o in "C[ab.?%2A()*]{0,4}"
    ) {
        prop_assert_eq!(entry_matches(&e, &o), e == o);
    }

    /// (4) `decide` and `explain` agree, for policies (possibly several sources) and for
    /// the default policy.
    #[test]
    fn decide_and_explain_agree(
        a in rules(5), b in rules(5), r in request(),
        creator in prop::option::of(originator()), use_default in any::<bool>(),
    ) {
        let l = local();
        let (sa, sb) = (compile(&a), compile(&b));
        let sources = [
            PolicySource { acp_id: "acpA", rules: &sa },
            PolicySource { acp_id: "acpB", rules: &sb },
        ];
        let applicable = if use_default {
            Applicable::Default { creator: creator.as_deref(), custodian: None }
        } else {
            Applicable::Policies(&sources)
        };
        let d = decide(&l, &r.view(), &applicable);
        let e = explain(&l, &r.view(), &applicable);
        prop_assert_eq!(d, e.decision());
        // Display and Serialize never fail.
        prop_assert!(!e.to_string().is_empty());
        prop_assert!(serde_json::to_string(&e).is_ok());
    }

    /// Splitting one rule set across two sources changes nothing (union semantics).
    #[test]
    fn splitting_a_set_across_sources_is_neutral(set in rules(8), cut in any::<Index>(), r in request()) {
        let l = local();
        let k = cut.index(set.len() + 1);
        let whole = compile(&set);
        let (x, y) = (compile(&set[..k]), compile(&set[k..]));
        let one = [PolicySource { acp_id: "w", rules: &whole }];
        let two = [PolicySource { acp_id: "x", rules: &x }, PolicySource { acp_id: "y", rules: &y }];
        prop_assert_eq!(
            decide(&l, &r.view(), &Applicable::Policies(&one)).granted(),
            decide(&l, &r.view(), &Applicable::Policies(&two)).granted()
        );
    }
}
