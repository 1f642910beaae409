//! The [`Store`] trait: the storage interface of `bastion-core`, independent of any backend.

use async_trait::async_trait;

use crate::{InstanceEntry, StoreError, StoredResource, WriteBatch};

/// A durable resource store.
///
/// Reads see every batch whose [`apply`](Store::apply) has answered `Ok`.
///
/// # Ordering contract of `apply`
///
/// A backend must take the batch into its queue *when `apply` is called*, before the returned
/// future is first polled, and must apply batches in the order of those calls. The core
/// relies on this: it calls `apply` while holding its tree lock, releases the lock, and only
/// then awaits the returned future, so batches reach the store in the order the tree saw them:
///
/// ```ignore
/// let durable = store.apply(batch); // enqueued now, under the lock
/// drop(tree_guard);
/// durable.await?;                   // committed and fsynced
/// ```
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Every [`RowKind::Tree`](crate::RowKind::Tree) row, ordered by `seq`.
    async fn load_tree(&self) -> Result<Vec<StoredResource>, StoreError>;

    /// Every [`RowKind::Instance`](crate::RowKind::Instance) row without its body, ordered
    /// by `seq`.
    async fn load_instance_index(&self) -> Result<Vec<InstanceEntry>, StoreError>;

    /// Every instance row without its body, in no particular order, handed to
    /// `sink` in chunks of at most `chunk` entries, so that a large index is never held
    /// whole. Returns when all chunks were sent (or the receiver went away).
    ///
    /// The default collects [`load_instance_index`](Store::load_instance_index); backends
    /// override it to stream.
    async fn stream_instance_index(
        &self,
        chunk: usize,
        sink: tokio::sync::mpsc::Sender<Vec<InstanceEntry>>,
    ) -> Result<(), StoreError> {
        let mut all = self.load_instance_index().await?;
        while !all.is_empty() {
            let rest = all.split_off(all.len().min(chunk.max(1)));
            if sink.send(std::mem::replace(&mut all, rest)).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// The resource with this `ri`.
    async fn get(&self, ri: &str) -> Result<Option<StoredResource>, StoreError>;

    /// The child of `pi` named `rn`.
    async fn child_by_name(&self, pi: &str, rn: &str)
        -> Result<Option<StoredResource>, StoreError>;

    /// The children of `pi` (only those of type `ty` if given), ordered by `seq`.
    async fn children(&self, pi: &str, ty: Option<u16>) -> Result<Vec<StoredResource>, StoreError>;

    /// Applies the batch atomically, its operations in order. `Ok` means committed and on
    /// stable storage. See the trait's ordering contract.
    async fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// The largest `seq` stored, 0 when the store is empty.
    async fn max_seq(&self) -> Result<i64, StoreError>;
}
