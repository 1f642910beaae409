//! Criterion benchmark of `decide()`: rule sets of 1, 10 and 100 rules, where the last
//! rule grants ("hit") or no rule does ("miss"). Each rule mixes a literal and a wildcard
//! `acor` entry so both matcher paths are exercised.
//!
//! The `contexts` group uses a 10-rule ACP whose rules all carry an `acco` element with
//! time windows and IPv4/IPv6 prefixes: `hit` (the last rule's originator, context holds),
//! `miss_time` (the last rule's originator outside its windows) and `miss_ip_every_rule`
//! (every rule names the originator, so every rule's context is evaluated and fails).

use bastion_policy::{
    decide, AccessOperation, AccessRequest, Applicable, LocalIdentity, NoInformation, PolicySource,
    RuleSet,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::json;
use std::hint::black_box;
use std::net::IpAddr;

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
                time: None,
                peer_ip: None,
                attributes: bastion_policy::Attributes::Whole,
                pip: &NoInformation,
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

/// 10 rules with time and IP contexts; `everyone` makes every rule name every originator.
fn context_rule_set(local: &LocalIdentity, everyone: bool) -> RuleSet {
    let rules: Vec<_> = (0..10)
        .map(|i| {
            let acor = if everyone {
                json!(["all"])
            } else {
                json!([format!("Cuser{i}"), format!("/id-in/Cgroup{i}-*")])
            };
            json!({
                "acor": acor,
                "acop": 2 | 32,
                "acco": [{
                    "actw": ["* * 8-17 * * 1-5 *", "0-29 * 18-19 * * 1-5 2020-2040"],
                    "acip": {
                        "ipv4": [format!("10.{i}.0.0/16"), format!("192.0.2.{i}")],
                        "ipv6": [format!("2001:db8:{i}::/48")]
                    }
                }]
            })
        })
        .collect();
    RuleSet::parse(&json!({ "acr": rules }), local).expect("valid rule set")
}

fn bench_contexts(c: &mut Criterion) {
    let local = local();
    let mut group = c.benchmark_group("contexts");
    // 2026-03-04T12:00:00Z, a Wednesday; 03:00 the same day is outside every window.
    let noon = 1_772_625_600;
    let night = noon - 9 * 3600;
    let inside: IpAddr = "10.9.1.2".parse().expect("address");
    let outside: IpAddr = "172.16.0.1".parse().expect("address");
    let per_originator = context_rule_set(&local, false);
    let everyone = context_rule_set(&local, true);
    let cases = [
        ("hit", &per_originator, noon, inside, true),
        ("miss_time", &per_originator, night, inside, false),
        ("miss_ip_every_rule", &everyone, noon, outside, false),
    ];
    for (case, set, time, peer, expected) in cases {
        let sources = [PolicySource {
            acp_id: "acp-bench",
            rules: set,
        }];
        let applicable = Applicable::Policies(&sources);
        let req = AccessRequest {
            originator: "Cuser9",
            operation: AccessOperation::Retrieve,
            authenticated: false,
            target_type: 3,
            create_type: None,
            time: Some(time),
            peer_ip: Some(peer),
            attributes: bastion_policy::Attributes::Whole,
            pip: &NoInformation,
        };
        assert_eq!(decide(&local, &req, &applicable).granted(), expected);
        group.bench_with_input(BenchmarkId::new(case, 10), &req, |b, req| {
            b.iter(|| decide(black_box(&local), black_box(req), black_box(&applicable)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide, bench_contexts);
criterion_main!(benches);
