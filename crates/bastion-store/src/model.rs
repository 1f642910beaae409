//! The rows and write operations exchanged between `bastion-core` and a store.

use serde::{Deserialize, Serialize};

/// The oneM2M resource type of `<contentInstance>`: these rows live on disk only and are
/// loaded at start-up as an [`InstanceEntry`] index, without their bodies.
pub const TY_CONTENT_INSTANCE: u16 = 4;

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
    /// Creation order, assigned by the core, strictly increasing.
    pub seq: i64,
    /// `contentSize` for a `<contentInstance>`, else 0.
    pub size: i64,
    /// `expirationTime`, a oneM2M timestamp.
    pub et: Option<String>,
    /// The resource's JSON attribute object, without the `m2m:` root.
    pub body: String,
}

/// A `<contentInstance>` as kept in its container's in-memory index: everything but the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Resource ID.
    pub ri: String,
    /// The container's `ri`.
    pub pi: String,
    /// Resource name.
    pub rn: String,
    /// Creation order.
    pub seq: i64,
    /// `contentSize`.
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
    /// Remove every row whose `pi` is this value (a container's contentInstances). Not
    /// recursive: grandchildren are not touched.
    DeleteChildren {
        /// The parent whose children are removed.
        pi: String,
    },
    /// Remove the contentInstances (`ty` 4) of `pi` whose `seq` is below `seq`: one range
    /// delete for instances a container evicted.
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
