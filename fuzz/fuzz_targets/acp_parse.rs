//! Feeds arbitrary bytes, as JSON, to `RuleSet::parse`: it must never panic, whatever
//! the shape, nesting or size of the document.
#![no_main]

use bastion_policy::{LocalIdentity, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let local = LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    };
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = RuleSet::parse(&value, &local);
    }
});
