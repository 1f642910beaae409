//! Criterion benchmark of the wire layer: `encode_pc` and `decode_pc` of one
//! `<contentInstance>` representation (the body of W1's writes and reads) and of a
//! `<container>` retrieved with 20 child instances (rcn 4), in JSON, CBOR and XML.

use bastion_proto::Serialization;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::{json, Value};
use std::hint::black_box;

fn cin(i: usize) -> Value {
    json!({"rn": format!("cin_{i}"), "ty": 4, "ri": format!("c{i}"), "pi": "cnt1",
        "ct": "20261202T060000", "lt": "20261202T060000", "et": "20271202T060000",
        "st": i, "cs": 4, "cnf": "text/plain:0", "con": "21.5", "lbl": ["room:1", "temp"]})
}

fn samples() -> [(&'static str, Value); 2] {
    let mut cnt = json!({"rn": "cnt1", "ty": 3, "ri": "cnt1", "pi": "ae1", "mni": 100,
        "cni": 20, "cbs": 80, "st": 20, "lbl": ["room:1"]});
    cnt["m2m:cin"] = Value::Array((0..20).map(cin).collect());
    [
        ("cin", json!({"m2m:cin": cin(1)})),
        ("cnt_rcn4", json!({"m2m:cnt": cnt})),
    ]
}

fn bench_wire(c: &mut Criterion) {
    let mut encode = c.benchmark_group("encode_pc");
    for (name, pc) in samples() {
        for ser in Serialization::ALL {
            encode.bench_with_input(BenchmarkId::new(ser.name(), name), &pc, |b, pc| {
                b.iter(|| ser.encode_pc(black_box(pc)).expect("encodes"))
            });
        }
    }
    encode.finish();
    let mut decode = c.benchmark_group("decode_pc");
    for (name, pc) in samples() {
        for ser in Serialization::ALL {
            let bytes = ser.encode_pc(&pc).expect("encodes");
            decode.bench_with_input(BenchmarkId::new(ser.name(), name), &bytes, |b, bytes| {
                b.iter(|| ser.decode_pc(black_box(bytes)).expect("decodes"))
            });
        }
    }
    decode.finish();
}

criterion_group!(benches, bench_wire);
criterion_main!(benches);
