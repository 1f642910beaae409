//! Decision latency for a rule naming a 1,000-member `<group>` (issue 3 benchmark): the
//! PDP with a PIP that resolves the group in the tree and checks membership, as the PEP's
//! `RequestPip` does. Member hit, non-member miss, and a member found one nesting level
//! down.

use bastion_core::authz_state::{self, is_member, resolve_local, Mode};
use bastion_core::tree::{Node, Tree};
use bastion_core::CseConfig;
use bastion_policy::{
    decide, normalize_originator, AccessOperation, AccessRequest, Applicable, LocalIdentity, Pip,
    PolicySource, RuleSet, TokenVerifier,
};
use bastion_proto::time::Timestamp;
use bastion_proto::ResourceType;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::sync::Arc;

struct TreePip<'a> {
    tree: &'a Tree,
    config: &'a CseConfig,
    originator: String,
}

impl Pip for TreePip<'_> {
    fn member_of(&self, group_id: &str) -> Option<bool> {
        let group = resolve_local(self.tree, self.config, group_id)?;
        is_member(self.tree, group, &self.originator)
    }
}

fn attrs(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A tree with 1,000 AEs, group `big` holding all of them, and group `outer` holding
/// only `big`.
fn build(config: &CseConfig, local: &LocalIdentity, verifier: &TokenVerifier) -> Tree {
    let base = Node::new(
        ResourceType::CseBase,
        config.cse_ri(),
        None,
        config.cse_name.clone(),
        config.cse_name.clone(),
        1,
        Map::new(),
        None,
        None,
    );
    let base_ri: Arc<str> = Arc::from(config.cse_ri());
    let mut tree = Tree::new(base, 1);
    let mut mid = Vec::new();
    for i in 0..1000 {
        let aei = format!("Cmember{i:04}");
        let seq = tree.next_seq();
        let node = Node::new(
            ResourceType::Ae,
            &aei,
            Some(base_ri.clone()),
            aei.clone(),
            format!("{}/{aei}", config.cse_name),
            seq,
            attrs(json!({"aei": aei})),
            Some(aei.clone()),
            None,
        );
        tree.insert(node);
        mid.push(Value::String(aei));
    }
    for (name, members) in [("big", Value::Array(mid)), ("outer", json!(["big"]))] {
        let mut a = attrs(json!({"mnm": 2000, "mid": members}));
        let state = authz_state::derive(
            &tree,
            config,
            local,
            verifier,
            ResourceType::Group,
            &mut a,
            Timestamp(0),
            Mode::Write,
        )
        .expect("valid group");
        let seq = tree.next_seq();
        let mut node = Node::new(
            ResourceType::Group,
            name,
            Some(base_ri.clone()),
            name.to_owned(),
            format!("{}/{name}", config.cse_name),
            seq,
            a,
            None,
            None,
        );
        node.state = state;
        tree.insert(node);
    }
    tree
}

fn bench(c: &mut Criterion) {
    let config = CseConfig::default();
    let local = LocalIdentity {
        sp_id: config.sp_id.clone(),
        cse_id: config.cse_id.clone(),
        admin: config.admin.clone(),
    };
    let verifier = TokenVerifier::new(local.clone());
    let tree = build(&config, &local, &verifier);
    let mut group = c.benchmark_group("decide_group_1000");
    for (label, entry, who) in [
        ("member", "big", "Cmember0500"),
        ("non_member", "big", "Cstranger"),
        ("nested_member", "outer", "Cmember0999"),
    ] {
        let rules = RuleSet::parse(&json!({"acr": [{"acor": [entry], "acop": 2}]}), &local)
            .expect("valid rules");
        let sources = [PolicySource {
            acp_id: "acp",
            rules: &rules,
        }];
        group.bench_function(label, |b| {
            b.iter(|| {
                // The PEP normalises the originator once per request; included here.
                let pip = TreePip {
                    tree: &tree,
                    config: &config,
                    originator: normalize_originator(&local, who),
                };
                let req = AccessRequest {
                    originator: who,
                    operation: AccessOperation::Retrieve,
                    authenticated: false,
                    target_type: 3,
                    create_type: None,
                    time: Some(0),
                    peer_ip: None,
                    attributes: bastion_policy::Attributes::Whole,
                    pip: &pip,
                };
                black_box(decide(&local, &req, &Applicable::Policies(&sources)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
