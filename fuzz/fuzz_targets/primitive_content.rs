//! Feeds arbitrary bytes to the decoding of primitive content: the strict JSON parser
//! (duplicate members, depth bound), the attribute-policy validation of every resource
//! type for CREATE and UPDATE, the `securityInfo` and `dynAuthTokenReqInfo` decoders,
//! and, for short inputs, the `to` address, timestamp and duration parsers. None may
//! panic; an accepted JSON body must be within the depth bound.
#![no_main]

use bastion_proto::attrs::{validate, Phase};
use bastion_proto::id::Address;
use bastion_proto::security_info::{DynAuthTokenReqInfo, SecurityInfo};
use bastion_proto::time::{parse_abs_rel, parse_duration, Timestamp};
use bastion_proto::{json, ResourceType};
use libfuzzer_sys::fuzz_target;

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if text.len() <= 2048 {
            let _ = Address::parse(text);
            let _ = Timestamp::parse(text);
            let _ = parse_abs_rel(text, Timestamp(1_700_000_000));
            let _ = parse_duration(text);
        }
    }
    let Ok(value) = json::parse_strict(data) else {
        return;
    };
    assert!(
        depth(&value) <= json::MAX_DEPTH,
        "accepted a body deeper than the bound"
    );
    let _ = SecurityInfo::from_pc(&value);
    let _ = DynAuthTokenReqInfo::from_value(&value);
    let Some((root, serde_json::Value::Object(attrs))) =
        value.as_object().and_then(|m| m.iter().next())
    else {
        return;
    };
    for n in 0..=64u64 {
        let Some(ty) = ResourceType::from_number(n) else {
            continue;
        };
        if ty.root() == root.as_str() {
            let _ = validate(ty, Phase::Create, attrs);
            let _ = validate(ty, Phase::Update, attrs);
        }
    }
});
