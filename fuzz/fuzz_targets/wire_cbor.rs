//! Feeds arbitrary bytes to the CBOR decoder of the wire layer. It must never panic; what
//! it accepts must be within the depth bound and must survive a second trip through the
//! CBOR encoder unchanged.
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
    let Ok(value) = Serialization::Cbor.decode_pc(data) else {
        return;
    };
    assert!(depth(&value) <= MAX_DEPTH, "accepted CBOR deeper than the bound");
    let again = Serialization::Cbor
        .encode_pc(&value)
        .expect("decoded CBOR encodes");
    assert_eq!(
        Serialization::Cbor.decode_pc(&again).as_ref(),
        Ok(&value),
        "CBOR round trip changed the value"
    );
});
