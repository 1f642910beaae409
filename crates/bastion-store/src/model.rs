//! The rows and write operations exchanged between `bastion-core` and a store.

use serde::{Deserialize, Serialize};

/// How the core holds a row while the CSE runs, chosen by the core for each resource type
/// and stored with the row, so that no backend needs to know what a resource type means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RowKind {
    /// Held whole in the core's resource tree: returned, body included, by
    /// [`Store::load_tree`](crate::Store::load_tree).
    Tree,
    /// One of the instances a parent accumulates (`<contentInstance>`, and in the same way
    /// `<timeSeriesInstance>` and `<flexContainerInstance>`): stays on disk, is indexed at
    /// start-up as an [`InstanceEntry`] without its body, and is the only kind
    /// [`WriteOp::DeleteInstancesBefore`] removes.
    Instance,
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResource {
    /// Resource ID (unstructured, CSE-relative). Primary key.
    pub ri: String,
    /// The parent's `ri`; `""` for the CSEBase.
    pub pi: String,
    /// Resource name, unique among the children of `pi`.
    pub rn: String,
    /// oneM2M resource type.
    pub ty: u16,
    /// Whether the row is part of the tree or an instance (see [`RowKind`]).
    pub kind: RowKind,
    /// Creation order, assigned by the core, strictly increasing.
    pub seq: i64,
    /// The content size of an instance (`cs`), else 0.
    pub size: i64,
    /// `expirationTime`, a oneM2M timestamp.
    pub et: Option<String>,
    /// The resource's JSON attribute object, without the `m2m:` root.
    pub body: String,
}

/// An instance row ([`RowKind::Instance`]) as kept in its parent's in-memory index:
/// everything but the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Resource ID.
    pub ri: String,
    /// The parent's `ri` (the container, time series, …).
    pub pi: String,
    /// Resource name.
    pub rn: String,
    /// oneM2M resource type of the instance.
    pub ty: u16,
    /// Creation order.
    pub seq: i64,
    /// Content size.
    pub size: i64,
    /// `expirationTime`.
    pub et: Option<String>,
}

/// One write operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Insert the resource, or replace every column of the row with the same `ri`.
    Upsert(StoredResource),
    /// Remove the row with this `ri` (nothing happens if there is none).
    Delete {
        /// The resource to remove.
        ri: String,
    },
    /// Remove every row whose `pi` is this value (a container's instances). Not
    /// recursive: grandchildren are not touched.
    DeleteChildren {
        /// The parent whose children are removed.
        pi: String,
    },
    /// Remove the [`RowKind::Instance`] rows of `pi` whose `seq` is below `seq`: one range
    /// delete for the instances a parent evicted. Tree rows of `pi` stay.
    DeleteInstancesBefore {
        /// The container.
        pi: String,
        /// The oldest sequence number that stays.
        seq: i64,
    },
}

/// Operations applied atomically, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// The operations, applied in this order.
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a [`WriteOp::Upsert`].
    pub fn upsert(mut self, resource: StoredResource) -> Self {
        self.ops.push(WriteOp::Upsert(resource));
        self
    }

    /// Appends a [`WriteOp::Delete`].
    pub fn delete(mut self, ri: impl Into<String>) -> Self {
        self.ops.push(WriteOp::Delete { ri: ri.into() });
        self
    }

    /// Appends a [`WriteOp::DeleteChildren`].
    pub fn delete_children(mut self, pi: impl Into<String>) -> Self {
        self.ops.push(WriteOp::DeleteChildren { pi: pi.into() });
        self
    }

    /// True when the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl From<Vec<WriteOp>> for WriteBatch {
    fn from(ops: Vec<WriteOp>) -> Self {
        Self { ops }
    }
}
