//! An originator is data, never a pattern. Feeds arbitrary text as the `From` of a request
//! against a rule whose `acor` names one AE and one CSE, and as the `acor` entry of a rule
//! tested against those same fixed originators. Nothing may panic, and a grant through
//! the first rule must mean the fuzzed originator normalises to one of the named
//! identities or to the admin, whom the PDP grants everything by design (no wildcard,
//! prefix or case trick in `From` widens a rule).
#![no_main]

use bastion_policy::{
    decide, normalize_originator, AccessOperation, AccessRequest, Applicable, Attributes,
    LocalIdentity, NoInformation, PolicySource, RuleSet,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn local() -> &'static LocalIdentity {
    static LOCAL: OnceLock<LocalIdentity> = OnceLock::new();
    LOCAL.get_or_init(|| LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    })
}

fn named_rule() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let acr = serde_json::json!({"acr": [{"acor": ["Csensor", "/id-mn"], "acop": 2}]});
        RuleSet::parse(&acr, local()).expect("fixed rule set parses")
    })
}

fn grants(rules: &RuleSet, originator: &str) -> bool {
    let request = AccessRequest {
        originator,
        operation: AccessOperation::Retrieve,
        authenticated: false,
        target_type: 3,
        create_type: None,
        time: Some(1_700_000_000),
        peer_ip: None,
        attributes: Attributes::Whole,
        pip: &NoInformation,
    };
    let sources = [PolicySource {
        acp_id: "acp",
        rules,
    }];
    decide(local(), &request, &Applicable::Policies(&sources)).granted()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let normalized = normalize_originator(local(), text);
    if grants(named_rule(), text) {
        let named = [
            normalize_originator(local(), "Csensor"),
            normalize_originator(local(), "/id-mn"),
            normalize_originator(local(), "CAdmin"),
        ];
        assert!(
            named.contains(&normalized),
            "{text:?} was granted by a rule naming other originators"
        );
    }
    let acr = serde_json::json!({"acr": [{"acor": [text], "acop": 2}]});
    if let Ok(rules) = RuleSet::parse(&acr, local()) {
        for fixed in [
            "Csensor",
            "/id-mn",
            "//bastion.example/id-in/Cother",
            "CAdmin",
        ] {
            let _ = grants(&rules, fixed);
        }
    }
});
