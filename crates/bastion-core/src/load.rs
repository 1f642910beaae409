//! Start-up: rebuilding the in-memory tree from the store, or creating the CSEBase on a
//! fresh data directory.

use crate::render::{parse_body, store_body};
use crate::tree::{Instance, Node, Ri, Tree, TypeState};
use crate::types::{self, Derive, Flush};
use crate::{CseConfig, StartError};
use bastion_policy::{LocalIdentity, TokenVerifier};
use bastion_proto::time::Timestamp;
use bastion_proto::ResourceType;
use bastion_store::{RowKind, Store, StoredResource, WriteBatch, WriteOp};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) async fn load_tree(
    config: &CseConfig,
    local: &LocalIdentity,
    verifier: &TokenVerifier,
    store: &dyn Store,
    now: Timestamp,
) -> Result<Tree, StartError> {
    let rows = store.load_tree().await?;
    let max_seq = store.max_seq().await?;
    if rows.is_empty() {
        let base = base_node(config, now, 1);
        let body = store_body(&base.attrs, None);
        store
            .apply(WriteBatch {
                ops: vec![WriteOp::Upsert(StoredResource {
                    ri: base.ri.to_string(),
                    pi: String::new(),
                    rn: base.rn.clone(),
                    ty: 5,
                    kind: RowKind::Tree,
                    seq: 1,
                    size: 0,
                    et: None,
                    body,
                })],
            })
            .await?;
        return Ok(Tree::new(base, max_seq.max(1)).count_subscriptions_as(local.clone()));
    }
    let mut rows = rows.into_iter();
    let first = rows.next().expect("non-empty");
    if first.ty != 5 || first.ri != config.cse_ri() {
        return Err(StartError::WrongCse {
            found: format!("/{}", first.ri),
            configured: config.cse_id.clone(),
        });
    }
    let (stored_attrs, _) = parse_body(&first.body).map_err(|reason| StartError::Corrupt {
        ri: first.ri.clone(),
        reason,
    })?;
    let ct = stored_attrs
        .get("ct")
        .and_then(Value::as_str)
        .and_then(Timestamp::parse)
        .unwrap_or(now);
    let mut tree =
        Tree::new(base_node(config, ct, first.seq), max_seq).count_subscriptions_as(local.clone());
    let mut pending_acpi: Vec<(Ri, Vec<String>)> = Vec::new();
    let mut last: Vec<Ri> = Vec::new();
    let started = now;
    for row in rows {
        let (mut node, body) = node_from_row(&tree, row)?;
        let kind = types::kind(node.ty);
        if kind.binds_identity() {
            node.bound = crate::render::bound_identity(&body).map(String::into_boxed_str);
        }
        if node.ty.announced().is_some() {
            node.announced = crate::render::announced_copies(&body);
            node.pending = crate::render::pending_announcements(&body);
        }
        if kind.reload_last() {
            last.push(node.ri.clone());
        } else {
            let cx = derive_in(&tree, config, local, verifier, started);
            node.state =
                kind.reload(&cx, &mut node, &body)
                    .map_err(|reason| StartError::Corrupt {
                        ri: node.ri.to_string(),
                        reason,
                    })?;
        }
        if let Some(list) = node.attrs.get("acpi").and_then(Value::as_array) {
            let ids = list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            pending_acpi.push((node.ri.clone(), ids));
        }
        tree.insert(node);
    }
    // acpi may name ACPs created later than the resource, so resolve after all are in.
    // An entry that names no ACP any more is kept as it is written: it contributes no
    // rule (access.rs), so the resource stays governed by its acpi and denies what those
    // ACPs granted, exactly as before the restart. Dropping it could leave acpi empty
    // and hand the resource to the default policy.
    let resolved: Vec<(Ri, Vec<Ri>)> = pending_acpi
        .into_iter()
        .map(|(ri, ids)| {
            let acps = ids
                .iter()
                .map(|id| {
                    types::resolve_acp_id(&tree, config, id).unwrap_or_else(|| {
                        tracing::warn!(resource = %ri, acpi = %id, "acpi names no ACP; it grants nothing");
                        Ri::from(id.as_str())
                    })
                })
                .collect();
            (ri, acps)
        })
        .collect();
    for (ri, acps) in resolved {
        if let Some(n) = tree.get_mut(&ri) {
            n.acpi = acps;
        }
    }
    // What refers to resources created after it (group members) is derived once all
    // are in; on a copy, as the derivation reads the tree.
    for ri in last {
        let Some(mut copy) = tree.get(&ri).map(detached) else {
            continue;
        };
        let cx = derive_in(&tree, config, local, verifier, started);
        let state = types::kind(copy.ty)
            .reload(&cx, &mut copy, "")
            .map_err(|reason| StartError::Corrupt {
                ri: ri.to_string(),
                reason,
            })?;
        if let Some(n) = tree.get_mut(&ri) {
            n.attrs = copy.attrs;
            n.state = state;
        }
    }
    // The index arrives in chunks, each distributed into its containers before the next
    // is read, so a million instances are never held twice; containers sort their own
    // index afterwards (the store sends them in no particular order).
    let (sink, mut chunks) = tokio::sync::mpsc::channel(2);
    let mut orphans = 0usize;
    let distribute = async {
        while let Some(chunk) = chunks.recv().await {
            for e in chunk {
                orphans += usize::from(!add_instance(&mut tree, e));
            }
        }
    };
    let (streamed, ()) = tokio::join!(store.stream_instance_index(INDEX_CHUNK, sink), distribute);
    streamed?;
    for node in tree.nodes.values_mut() {
        if let Some(state) = node.container_mut() {
            state
                .instances
                .make_contiguous()
                .sort_unstable_by_key(|i| i.seq);
        }
    }
    if orphans > 0 {
        tracing::warn!(orphans, "instances whose container is missing were ignored");
    }
    // Evictions reach the disk lazily (create.rs, evict_for): rows of instances evicted
    // shortly before a crash are still there, so apply every container's limits again.
    let mut ops = Vec::new();
    for node in tree.nodes.values_mut() {
        if node.container().is_some() {
            ops.extend(types::evict_for(node, 0, 0, Flush::Now));
        }
    }
    if !ops.is_empty() {
        tracing::info!(
            containers = ops.len(),
            "removing instances evicted before the last stop"
        );
        store.apply(WriteBatch { ops }).await?;
    }
    // A container's row is not rewritten when instances come and go, so its counters are
    // rebuilt here, and its st is at least that of its newest instance (which took the
    // container's st when it was created). The newest instance also seeds the `la` cache.
    let newest: Vec<(Ri, String)> = tree
        .nodes
        .values()
        .filter_map(|n| {
            Some((
                n.ri.clone(),
                n.container()?.instances.back()?.ri.to_string(),
            ))
        })
        .collect();
    for (container, ri) in newest {
        let Some(row) = store.get(&ri).await? else {
            continue;
        };
        let (attrs, _) = parse_body(&row.body).map_err(|reason| StartError::Corrupt {
            ri: ri.clone(),
            reason,
        })?;
        let instance_st = attrs.get("st").and_then(Value::as_u64).unwrap_or(0);
        if let Some(node) = tree.get_mut(&container) {
            let st = node
                .attrs
                .get("st")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .max(instance_st);
            node.attrs.insert("st".into(), Value::from(st));
            if let Some(state) = node.container_mut() {
                state.latest = Some(Arc::new(attrs));
            }
        }
    }
    restore_time_series(&mut tree, store).await?;
    for node in tree.nodes.values_mut() {
        if let Some(state) = node.container_mut() {
            state.instances.shrink_to_fit();
            let (cni, cbs) = (state.cni(), state.cbs);
            node.attrs.insert("cni".into(), Value::from(cni));
            node.attrs.insert("cbs".into(), Value::from(cbs));
        }
    }
    Ok(tree)
}

/// The `dgt` index and detection position of every `<timeSeries>`, from its stored
/// instances (their bodies hold `dgt`; the streamed index does not).
async fn restore_time_series(tree: &mut Tree, store: &dyn Store) -> Result<(), StartError> {
    let series: Vec<Ri> = tree
        .nodes
        .values()
        .filter(|n| n.ty == ResourceType::TimeSeries)
        .map(|n| n.ri.clone())
        .collect();
    for ri in series {
        let rows = store
            .children(&ri, Some(ResourceType::TimeSeriesInstance.number()))
            .await?;
        let Some(node) = tree.get_mut(&ri) else {
            continue;
        };
        let held: Vec<(i64, Map<String, Value>)> = rows
            .into_iter()
            .filter(|r| node.container().is_some_and(|c| c.holds_row(r.seq)))
            .filter_map(|r| Some((r.seq, parse_body(&r.body).ok()?.0)))
            .collect();
        types::restore_series(node, &held);
    }
    Ok(())
}

/// Instance index entries handed over per chunk at start-up.
const INDEX_CHUNK: usize = 8192;

/// Adds one stored instance to its container's index; false when the container is missing.
fn add_instance(tree: &mut Tree, e: bastion_store::InstanceEntry) -> bool {
    let name_hash = tree.name_hash(&e.rn);
    let et = e.et.as_deref().and_then(Timestamp::parse).map(|t| t.0);
    let Some(state) = tree.get_mut(&e.pi).and_then(|n| n.container_mut()) else {
        return false;
    };
    let cs = e.size.max(0) as u64;
    state.cbs += cs;
    state.names.insert(name_hash);
    state.instances.push_back(Instance {
        seq: e.seq,
        ri: e.ri.into_boxed_str(),
        name_hash,
        cs,
        et,
    });
    true
}

/// A stored row as a node without state, with its stored body (the kind reads its
/// marks when it derives the state).
fn node_from_row(tree: &Tree, row: StoredResource) -> Result<(Node, String), StartError> {
    let corrupt = |reason: String| StartError::Corrupt {
        ri: row.ri.clone(),
        reason,
    };
    let (attrs, creator) = parse_body(&row.body).map_err(corrupt)?;
    let ty = ResourceType::from_number(row.ty as u64)
        .filter(|t| t.is_creatable() || *t == ResourceType::Request)
        .ok_or_else(|| corrupt(format!("unsupported type {}", row.ty)))?;
    let parent = tree
        .get(&row.pi)
        .ok_or_else(|| corrupt("parent missing".into()))?;
    let path = format!("{}/{}", parent.path, row.rn);
    let node = Node::new(
        ty,
        &row.ri,
        Some(parent.ri.clone()),
        row.rn,
        path,
        row.seq,
        attrs,
        creator,
        row.et.as_deref().and_then(Timestamp::parse),
    );
    Ok((node, row.body))
}

/// A stateless copy of `node` for a derivation that reads the tree it is in.
fn detached(node: &Node) -> Node {
    Node::new(
        node.ty,
        &node.ri,
        node.pi.clone(),
        node.rn.clone(),
        node.path.clone(),
        node.seq,
        node.attrs.clone(),
        node.creator.clone(),
        node.et,
    )
}

fn derive_in<'a>(
    tree: &'a Tree,
    config: &'a CseConfig,
    local: &'a LocalIdentity,
    verifier: &'a TokenVerifier,
    now: Timestamp,
) -> Derive<'a> {
    Derive {
        tree,
        config,
        local,
        verifier,
        now,
    }
}

/// The CSEBase as configured (its attributes are derived from configuration each start).
pub(crate) fn base_node(config: &CseConfig, ct: Timestamp, seq: i64) -> Node {
    let ri: Ri = Arc::from(config.cse_ri());
    let ts = ct.format();
    let srt: Vec<u16> = ResourceType::SUPPORTED
        .into_iter()
        .chain(bastion_proto::types::announced::all())
        .map(ResourceType::number)
        .collect();
    let attrs: Map<String, Value> = json!({
        "ty": 5,
        "ri": &*ri,
        "rn": config.cse_name,
        "pi": "",
        "ct": ts,
        "lt": ts,
        "cst": config.cse_type.number(),
        "csi": config.cse_id,
        "srt": srt,
        "poa": config.poa,
        // Every serialization the bindings read and write (TS-0004 7.4.3).
        "csz": bastion_proto::wire::Serialization::ALL
            .iter()
            .map(|s| s.media_type())
            .collect::<Vec<_>>(),
        "srv": config.releases,
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    Node {
        ty: ResourceType::CseBase,
        ri,
        pi: None,
        rn: config.cse_name.clone(),
        path: config.cse_name.clone(),
        seq,
        attrs,
        creator: None,
        et: None,
        children: Vec::new(),
        child_names: HashMap::new(),
        acpi: Vec::new(),
        state: TypeState::Plain,
        bound: None,
        announced: Vec::new(),
        pending: Vec::new(),
    }
}
