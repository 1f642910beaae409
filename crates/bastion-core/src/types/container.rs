//! `<container>` (TS-0001 9.6.6; TS-0004 7.4.7): its instance index, the limits that
//! evict the oldest instances, its counters and state tag, and the names of its virtual
//! children.

use super::{node_row, Derive, ResourceKind, Written};
use crate::authz_state::Mode;
use crate::tree::{ContainerState, Node, Ri, Tree, TypeState};
use crate::Cse;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType};
use bastion_store::{StoredResource, WriteOp};
use serde_json::{Map, Value};

/// Names a container's virtual children use; no real child may take them.
const RESERVED_NAMES: [&str; 2] = ["la", "ol"];

/// A type that holds instances (`<container>`, `<timeSeries>`, `<flexContainer>`): its
/// children may not be named `la` or `ol`, which address its newest and oldest instance.
pub(crate) fn check_instance_holder_child_name(rn: &str) -> Result<(), RequestError> {
    if RESERVED_NAMES.contains(&rn) {
        return Err(RequestError::bad_request("la and ol are reserved names"));
    }
    Ok(())
}

/// The counters every instance holder starts with: state tag, instance count and bytes.
pub(crate) fn initial_instance_counters(attrs: &mut Map<String, Value>) {
    attrs.insert("st".into(), Value::from(0));
    attrs.insert("cni".into(), Value::from(0));
    attrs.insert("cbs".into(), Value::from(0));
}

pub(super) struct Container;

impl ResourceKind for Container {
    fn check_child_name(&self, rn: &str) -> Result<(), RequestError> {
        check_instance_holder_child_name(rn)
    }

    fn initial_attrs(&self, attrs: &mut Map<String, Value>) {
        initial_instance_counters(attrs);
    }

    /// An empty index: instances are indexed as they are created or, at start-up,
    /// streamed in after every node is loaded (`load.rs`).
    fn derive(
        &self,
        _cx: &Derive,
        _ty: ResourceType,
        _attrs: &mut Map<String, Value>,
        _mode: Mode,
    ) -> Result<TypeState, RequestError> {
        Ok(TypeState::Container(Box::<ContainerState>::default()))
    }

    /// Every UPDATE bumps `st`; re-enabling retrieval discards every instance (TS-0004
    /// 7.4.7.2), and lowered limits evict at once.
    fn write_update(&self, node: &mut Node, previous: &Map<String, Value>) -> Written {
        let mut ops = Vec::new();
        bump_state_tag(node);
        // `previous` holds disr only when the request changed it.
        let disabled =
            |attrs: &Map<String, Value>| attrs.get("disr").and_then(Value::as_bool) == Some(true);
        let was_disr = disabled(previous);
        if was_disr && !disabled(&node.attrs) {
            if let Some(state) = node.container_mut() {
                *state = ContainerState::default();
            }
            ops.push(WriteOp::DeleteChildren {
                pi: node.ri.to_string(),
            });
        }
        ops.extend(write_limits(node));
        Written {
            ops,
            also_modified: &["st"],
        }
    }
}

/// Increments the state tag `st` of a node holding instances (every UPDATE does).
pub(super) fn bump_state_tag(node: &mut Node) {
    let st = node.attrs.get("st").and_then(Value::as_u64).unwrap_or(0) + 1;
    node.attrs.insert("st".into(), Value::from(st));
}

/// After an UPDATE of a node holding instances: lowered limits evict at once, and the
/// node's row is stored with its counters.
pub(super) fn write_limits(node: &mut Node) -> Vec<WriteOp> {
    let mut ops = evict_for(node, 0, 0, Flush::Now);
    ops.push(WriteOp::Upsert(container_row(node)));
    ops
}

pub(super) fn attr_u64(attrs: &Map<String, Value>, name: &str) -> Option<u64> {
    attrs.get(name).and_then(Value::as_u64)
}

/// The limits an instance holder puts on its instances (`mni`, `mbs`; TS-0004
/// §7.4.7.2): what [`evict_for`] and the eviction of announced instance copies
/// (`types/announced.rs`) keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub mni: Option<u64>,
    pub mbs: Option<u64>,
}

impl Limits {
    /// The limits the attributes `attrs` of an instance holder set.
    pub(crate) fn of(attrs: &Map<String, Value>) -> Limits {
        Limits {
            mni: attr_u64(attrs, "mni"),
            mbs: attr_u64(attrs, "mbs"),
        }
    }

    /// Whether `count` instances of `bytes` in all are more than the limits allow, so
    /// the oldest must go.
    pub(crate) fn exceeded(&self, count: u64, bytes: u64) -> bool {
        self.mni.is_some_and(|m| count > m) || self.mbs.is_some_and(|m| bytes > m)
    }
}

/// Evicted instances whose rows may stay on disk before one range delete removes them.
const EVICTION_FLUSH: u32 = 64;

/// Whether evicted rows must reach the disk now or may wait for the next flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    WhenDue,
    Now,
}

/// Evicts oldest instances until `incoming_count` more instances of `incoming_bytes` fit
/// (TS-0004 §7.4.7.2). Evicted instances leave the index at once; their rows are removed
/// by one `DeleteInstancesBefore` per [`EVICTION_FLUSH`] evictions. A crash in between
/// cannot resurrect them: start-up enforces `mni`/`mbs` again (load.rs), and reads of
/// stored rows keep only those the index still holds.
pub(crate) fn evict_for(
    node: &mut Node,
    incoming_count: u64,
    incoming_bytes: u64,
    flush: Flush,
) -> Vec<WriteOp> {
    let limits = Limits::of(&node.attrs);
    let mut ops = Vec::new();
    let TypeState::Container(state) = &mut node.state else {
        return ops;
    };
    while limits.exceeded(state.cni() + incoming_count, state.cbs + incoming_bytes) {
        let Some(old) = state.instances.pop_front() else {
            break;
        };
        if let Some(series) = &mut state.series {
            series.forget(old.seq);
        }
        state.cbs -= old.cs;
        state.names.remove(&old.name_hash);
        if state.instances.is_empty() {
            state.latest = None;
        }
        state.evicted_through = state.evicted_through.max(old.seq);
        state.unflushed_evictions += 1;
    }
    let due = state.unflushed_evictions >= EVICTION_FLUSH;
    if state.unflushed_evictions > 0 && (due || flush == Flush::Now) {
        ops.push(WriteOp::DeleteInstancesBefore {
            pi: node.ri.to_string(),
            seq: state.evicted_through + 1,
        });
        state.unflushed_evictions = 0;
    }
    ops
}

/// Writes the container's counters into its attributes.
pub(crate) fn refresh_counters(node: &mut Node) {
    if let TypeState::Container(state) = &node.state {
        node.attrs.insert("cni".into(), Value::from(state.cni()));
        node.attrs.insert("cbs".into(), Value::from(state.cbs));
    }
}

/// Writes the container's counters into its attributes and returns its stored row.
pub(crate) fn container_row(node: &mut Node) -> StoredResource {
    refresh_counters(node);
    node_row(node)
}

/// Removes one instance from its container; `None` when it is no longer indexed.
pub(crate) fn remove_instance(
    tree: &mut Tree,
    parent: &Ri,
    ri: &str,
    seq: Option<i64>,
) -> Option<Vec<WriteOp>> {
    let node = tree.get_mut(parent)?;
    let state = node.container_mut()?;
    let pos = state.position(ri, seq)?;
    let removed = state.instances.remove(pos)?;
    if let Some(series) = &mut state.series {
        series.forget(removed.seq);
    }
    state.cbs -= removed.cs;
    state.names.remove(&removed.name_hash);
    if pos == state.instances.len() {
        state.latest = None;
    }
    refresh_counters(node);
    Some(vec![WriteOp::Delete { ri: ri.to_owned() }])
}

/// The stored instances of a container that are still live: not expired, and still in
/// the container's index (rows of evicted instances may linger until a range delete).
pub(crate) async fn live_instances(
    cse: &Cse,
    ri: &Ri,
    now: Timestamp,
) -> Result<Vec<bastion_store::StoredResource>, RequestError> {
    let ty = {
        let tree = cse.tree.read();
        tree.get(ri).and_then(|n| n.ty.instance_type())
    };
    let Some(ty) = ty else {
        return Ok(Vec::new());
    };
    let rows = cse
        .store
        .children(ri, Some(ty.number()))
        .await
        .map_err(|_| RequestError::Internal("storage read failed".into()))?;
    let tree = cse.tree.read();
    let Some(state) = tree.get(ri).and_then(|n| n.container()) else {
        return Ok(Vec::new());
    };
    Ok(rows
        .into_iter()
        .filter(|r| {
            state.holds_row(r.seq)
                && r.et
                    .as_deref()
                    .and_then(Timestamp::parse)
                    .is_none_or(|et| et > now)
        })
        .collect())
}
