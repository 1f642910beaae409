//! Criterion benchmark of `decide()`: rule sets of 1, 10 and 100 rules, where the last
//! rule grants ("hit") or no rule does ("miss"). Each rule mixes a literal and a wildcard
//! `acor` entry so both matcher paths are exercised.

use bastion_policy::{
    decide, AccessOperation, AccessRequest, Applicable, LocalIdentity, PolicySource, RuleSet,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;
use std::hint::black_box;

fn local() -> LocalIdentity {
    LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    }
}

/// `n` rules; rule i names `Cuser{i}` and `/id-in/Cgroup{i}-*`; all grant RETRIEVE.
fn rule_set(local: &LocalIdentity, n: usize) -> RuleSet {
    let rules: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "acor": [format!("Cuser{i}"), format!("/id-in/Cgroup{i}-*")],
                "acop": 2 | 32
            })
        })
        .collect();
    RuleSet::parse(&json!({ "acr": rules }), local).expect("valid rule set")
}

fn bench_decide(c: &mut Criterion) {
    let local = local();
    let mut group = c.benchmark_group("decide");
    for n in [1usize, 10, 100] {
        let set = rule_set(&local, n);
        let sources = [PolicySource {
            acp_id: "acp-bench",
            rules: &set,
        }];
        let applicable = Applicable::Policies(&sources);
        let hit_originator = format!("Cuser{}", n - 1);
        for (case, originator) in [("hit", hit_originator.as_str()), ("miss", "Cnobody")] {
            let req = AccessRequest {
                originator,
                operation: AccessOperation::Retrieve,
                authenticated: false,
                target_type: 3,
                create_type: None,
            };
            let expected = case == "hit";
            assert_eq!(decide(&local, &req, &applicable).granted(), expected);
            group.bench_with_input(BenchmarkId::new(case, n), &req, |b, req| {
                b.iter(|| decide(black_box(&local), black_box(req), black_box(&applicable)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
