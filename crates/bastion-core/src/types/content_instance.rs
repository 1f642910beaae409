//! `<contentInstance>` (TS-0001 9.6.7; TS-0004 7.4.7.2): not a node of the tree but an
//! entry of its container's index, created with the container's limits, counters and
//! state tag. The creation of an instance ([`create_instance`]) is shared with
//! `<timeSeriesInstance>`, which adds its own rules through [`InstanceRules`].

use super::container::{attr_u64, evict_for, refresh_counters, Flush};
use super::{common, content_size, created, new_ri, node_row, universal, ResourceKind};
use crate::checks::CreateRequest;
use crate::render::store_body;
use crate::tree::{Instance, Node, Ri, Tree};
use crate::Cse;
use crate::Notices;
use async_trait::async_trait;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response};
use bastion_store::{RowKind, StoredResource, WriteOp};
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) struct ContentInstance;

/// What an instance type adds to the shared creation steps, under the tree's write lock.
pub(crate) trait InstanceRules: Sync {
    /// The type created.
    fn ty(&self) -> ResourceType;

    /// Refuses the new instance given its parent; runs before anything changes.
    fn admit(&self, _parent: &Node, _content: &Map<String, Value>) -> Result<(), RequestError> {
        Ok(())
    }

    /// Records the new instance (numbered `seq`, with `attrs`) in its parent's state.
    fn admitted(&self, _parent: &mut Node, _seq: i64, _attrs: &Map<String, Value>) {}

    /// Whether making the instance increments its parent's state tag. An instance made
    /// by an UPDATE of its parent (`<flexContainerInstance>`) takes the tag that UPDATE
    /// already set.
    fn bumps_state_tag(&self) -> bool {
        true
    }

    /// Whether the instance carries its parent's state tag (`st`). One that does lets
    /// start-up rebuild the parent's `st` from the newest instance, so the parent's row
    /// need not be rewritten per instance; otherwise it is.
    fn carries_state_tag(&self) -> bool {
        true
    }
}

impl InstanceRules for ContentInstance {
    fn ty(&self) -> ResourceType {
        ResourceType::ContentInstance
    }
}

#[async_trait]
impl ResourceKind for ContentInstance {
    async fn create_entry(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        content: &mut Map<String, Value>,
        parent: &Ri,
        now: Timestamp,
    ) -> Option<Result<Response, RequestError>> {
        let content = std::mem::take(content);
        Some(create_instance(self, cse, req, content, parent, now).await)
    }
}

/// Creates one instance of `rules`' type in its parent's index: the parent's limits
/// (`mbs`, `mni`, `mia`) and eviction, its state tag and counters, the stored row and
/// the child-created notifications.
pub(super) async fn create_instance(
    rules: &dyn InstanceRules,
    cse: &Cse,
    req: &CreateRequest,
    mut content: Map<String, Value>,
    parent_ri: &Ri,
    now: Timestamp,
) -> Result<Response, RequestError> {
    let ty = rules.ty();
    cse.instance_targets(parent_ri, &mut content);
    let cs = content_size(content.get("con").unwrap_or(&Value::Null));
    cse.write_guard()?;
    let (pending, attrs, notices) = {
        let mut guard = cse.tree.write();
        let added = insert_instance(rules, cse, &mut guard, parent_ri, content, cs, &req.fr, now)?;
        (cse.committer.enqueue(added.ops), added.attrs, added.notices)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    let attrs = Arc::try_unwrap(attrs).unwrap_or_else(|shared| (*shared).clone());
    let attrs = cse.announce_instance(parent_ri, attrs).await;
    created(cse, req, ty, attrs)
}

/// What [`insert_instance`] did: the new instance, the writes to queue and the
/// notifications to send once they are durable.
pub(crate) struct Inserted {
    pub attrs: Arc<Map<String, Value>>,
    pub ops: Vec<WriteOp>,
    pub notices: Notices,
}

/// The steps of [`create_instance`] under the tree's write lock, for an instance of
/// `content_size` bytes with the attributes in `content`, created by `originator`:
/// what an instance the CSE makes itself (`<flexContainerInstance>`) shares with one a
/// request creates.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_instance(
    rules: &dyn InstanceRules,
    cse: &Cse,
    tree: &mut Tree,
    parent_ri: &Ri,
    mut content: Map<String, Value>,
    cs: u64,
    originator: &str,
    now: Timestamp,
) -> Result<Inserted, RequestError> {
    let ty = rules.ty();
    let seq = tree.next_seq();
    let parent = tree
        .get(parent_ri)
        .ok_or_else(|| RequestError::not_found("container no longer exists"))?;
    if attr_u64(&parent.attrs, "mbs").is_some_and(|mbs| cs > mbs) {
        return Err(RequestError::NotAcceptable(
            "content is larger than the container's maxByteSize".into(),
        ));
    }
    if attr_u64(&parent.attrs, "mni") == Some(0) {
        return Err(RequestError::NotAcceptable(
            "the container's maxNrOfInstances is 0".into(),
        ));
    }
    rules.admit(parent, &content)?;
    let ri = new_ri(ty, seq);
    let mut c = common(
        ty,
        tree,
        parent,
        &mut content,
        || ri.clone(),
        &cse.config,
        now,
    )?;
    if let Some(mia) = attr_u64(&parent.attrs, "mia") {
        c.et = c.et.min(now.plus_seconds(mia.min(i64::MAX as u64) as i64));
    }
    let name_hash = tree.name_hash(&c.rn);
    let parent = tree.get_mut(parent_ri).expect("looked up above");
    let mut ops = evict_for(parent, 1, cs, Flush::WhenDue);
    let mut st = attr_u64(&parent.attrs, "st").unwrap_or(0);
    if rules.bumps_state_tag() {
        st += 1;
        parent.attrs.insert("st".into(), Value::from(st));
    }
    let mut attrs = universal(ty, &ri, &c.rn, parent_ri, now, c.et);
    if rules.carries_state_tag() {
        attrs.insert("st".into(), Value::from(st));
    }
    attrs.insert("cs".into(), Value::from(cs));
    if c.creator_attr {
        attrs.insert("cr".into(), Value::String(originator.to_owned()));
    }
    attrs.extend(content);
    rules.admitted(parent, seq, &attrs);
    let state = parent.container_mut().expect("parent is a container");
    state.instances.push_back(Instance {
        seq,
        ri: ri.clone().into_boxed_str(),
        name_hash,
        cs,
        et: Some(c.et.0),
    });
    state.names.insert(name_hash);
    state.cbs += cs;
    let shared = Arc::new(attrs);
    state.latest = Some(shared.clone());
    // The container's row is not rewritten: cni/cbs are rebuilt from the instance index
    // at start-up and st from the newest instance (see load.rs), which saves a row
    // write and a serialization per instance.
    refresh_counters(parent);
    if !rules.carries_state_tag() {
        ops.push(WriteOp::Upsert(node_row(parent)));
    }
    ops.push(WriteOp::Upsert(StoredResource {
        ri,
        pi: parent_ri.to_string(),
        rn: c.rn,
        ty: ty.number(),
        // Kept on disk and indexed at start-up without its body (see load.rs).
        kind: RowKind::Instance,
        seq,
        size: cs as i64,
        et: Some(c.et.format()),
        body: store_body(&shared, None),
    }));
    let (notices, more) = cse.child_created(tree, parent_ri, ty, &shared, originator);
    ops.extend(more);
    Ok(Inserted {
        attrs: shared,
        ops,
        notices,
    })
}

/// `dcnt` (deletionCnt, Release 4, TS-0001 9.6.7): an instance created with it may be
/// retrieved that many times. Each authorized RETRIEVE of it (directly or as `la`/`ol`)
/// uses one; the one that uses the last deletes the instance as a DELETE by the
/// retriever would, counters and notifications included. Returns the count this
/// retrieval found (what its answer shows), `None` for an instance without `dcnt`. The
/// count is re-read from storage under one lock, so concurrent retrievals never share
/// one; an instance already gone (deleted, evicted, expired) by then is 4004.
pub(crate) async fn count_retrieval(
    cse: &Cse,
    parent: &Ri,
    attrs: &Map<String, Value>,
    retriever: &str,
) -> Result<Option<u64>, RequestError> {
    if attrs.get("dcnt").is_none() {
        return Ok(None);
    }
    let Some(ri) = attrs.get("ri").and_then(Value::as_str) else {
        return Ok(None);
    };
    let gone = || RequestError::not_found("resource does not exist");
    let _one_at_a_time = cse.retrieval_counts.lock().await;
    let row = cse
        .store
        .get(ri)
        .await
        .map_err(|_| RequestError::Internal("storage read failed".into()))?
        .ok_or_else(gone)?;
    let mut body: Value = serde_json::from_str(&row.body)
        .map_err(|_| RequestError::Internal("stored resource is corrupt".into()))?;
    let left = body.get("dcnt").and_then(Value::as_u64).unwrap_or(1);
    cse.write_guard()?;
    if left <= 1 {
        let (pending, notices) = {
            let mut tree = cse.tree.write();
            let mut ops =
                super::remove_instance(&mut tree, parent, ri, Some(row.seq)).ok_or_else(gone)?;
            let (notices, more) = cse.child_deleted(&mut tree, parent, attrs, retriever);
            ops.extend(more);
            (cse.committer.enqueue(ops), notices)
        };
        pending.durable().await?;
        cse.dispatch(notices).await;
        return Ok(Some(left));
    }
    body["dcnt"] = Value::from(left - 1);
    let row = StoredResource {
        body: body.to_string(),
        ..row
    };
    let pending = {
        let mut tree = cse.tree.write();
        // Still indexed: an instance evicted or deleted meanwhile must not come back.
        let state = tree
            .get_mut(parent)
            .and_then(|node| node.container_mut())
            .filter(|state| state.position(ri, Some(row.seq)).is_some())
            .ok_or_else(gone)?;
        if state
            .latest
            .as_ref()
            .is_some_and(|latest| latest.get("ri").and_then(Value::as_str) == Some(ri))
        {
            state.latest = None;
        }
        cse.committer.enqueue(vec![WriteOp::Upsert(row)])
    };
    pending.durable().await?;
    Ok(Some(left))
}
