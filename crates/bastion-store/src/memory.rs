//! The volatile in-memory backend: [`MemoryStore`].
//!
//! This module owns a [`Store`] whose rows live in process memory only. It exists so that
//! the core's own tests (and any test that does not exercise durability) run without a
//! database file, fsyncs or store threads. It passes the same backend suite as the SQLite
//! backend, with one difference in meaning: "durable" is "kept while any handle on the data
//! is alive". It is not a storage option of the CSE.
//!
//! Every operation runs synchronously under one lock, so [`Store::apply`] applies its batch
//! before it returns its future, which satisfies the trait's ordering contract trivially. A
//! batch is made atomic with an undo log: each operation records the rows it replaced or
//! removed, and a failing operation restores them in reverse order.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{InstanceEntry, RowKind, Store, StoreError, StoredResource, WriteBatch, WriteOp};

/// A volatile [`Store`] held in memory, for tests.
///
/// [`MemoryStore::reopen`] gives another handle on the same rows, as a restart of a durable
/// store would find them; the rows are gone once the last handle is dropped.
#[derive(Default)]
pub struct MemoryStore {
    data: Arc<Mutex<Rows>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("rows", &self.data.lock().rows.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another handle on the same rows: what reopening a durable store after a restart sees.
    pub fn reopen(&self) -> Self {
        Self {
            data: Arc::clone(&self.data),
        }
    }
}

/// The rows and the indexes the [`Store`] reads need.
#[derive(Default)]
struct Rows {
    rows: HashMap<String, StoredResource>,
    /// `(pi, rn)` → `ri`: names are unique among siblings.
    names: HashMap<(String, String), String>,
    /// `(pi, seq, ri)`: children in creation order.
    children: BTreeSet<(String, i64, String)>,
    /// `(seq, ri)`: every row in creation order.
    by_seq: BTreeSet<(i64, String)>,
}

/// What one operation changed, to put back if a later operation of its batch fails: the row
/// `ri` held before (`None` if there was none).
struct Undo {
    ri: String,
    before: Option<StoredResource>,
}

impl Rows {
    fn index(&mut self, row: StoredResource) {
        self.names
            .insert((row.pi.clone(), row.rn.clone()), row.ri.clone());
        self.children
            .insert((row.pi.clone(), row.seq, row.ri.clone()));
        self.by_seq.insert((row.seq, row.ri.clone()));
        self.rows.insert(row.ri.clone(), row);
    }

    fn remove(&mut self, ri: &str) -> Option<StoredResource> {
        let row = self.rows.remove(ri)?;
        self.names.remove(&(row.pi.clone(), row.rn.clone()));
        self.children
            .remove(&(row.pi.clone(), row.seq, row.ri.clone()));
        self.by_seq.remove(&(row.seq, row.ri.clone()));
        Some(row)
    }

    fn upsert(&mut self, row: StoredResource, undo: &mut Vec<Undo>) -> Result<(), StoreError> {
        let before = self.remove(&row.ri);
        if self.names.contains_key(&(row.pi.clone(), row.rn.clone())) {
            if let Some(before) = before {
                self.index(before);
            }
            return Err(StoreError::Conflict(format!(
                "a sibling under {:?} is already named {:?}",
                row.pi, row.rn
            )));
        }
        undo.push(Undo {
            ri: row.ri.clone(),
            before,
        });
        self.index(row);
        Ok(())
    }

    fn delete(&mut self, ri: &str, undo: &mut Vec<Undo>) {
        if let Some(before) = self.remove(ri) {
            undo.push(Undo {
                ri: before.ri.clone(),
                before: Some(before),
            });
        }
    }

    /// The children of `pi` as `(seq, ri)`, in `seq` order.
    fn children_of<'a>(&'a self, pi: &'a str) -> impl Iterator<Item = (i64, &'a str)> + 'a {
        self.children
            .range((pi.to_owned(), i64::MIN, String::new())..)
            .take_while(move |(p, _, _)| p == pi)
            .map(|(_, seq, ri)| (*seq, ri.as_str()))
    }

    fn apply_op(&mut self, op: WriteOp, undo: &mut Vec<Undo>) -> Result<(), StoreError> {
        match op {
            WriteOp::Upsert(row) => return self.upsert(row, undo),
            WriteOp::Delete { ri } => self.delete(&ri, undo),
            WriteOp::DeleteChildren { pi } => {
                // Collected first: the index cannot change while it is walked.
                let doomed: Vec<String> =
                    self.children_of(&pi).map(|(_, ri)| ri.to_owned()).collect();
                for ri in doomed {
                    self.delete(&ri, undo);
                }
            }
            WriteOp::DeleteInstancesBefore { pi, seq } => {
                let doomed: Vec<String> = self
                    .children_of(&pi)
                    .take_while(|(child_seq, _)| *child_seq < seq)
                    .filter(|(_, ri)| self.rows[*ri].kind == RowKind::Instance)
                    .map(|(_, ri)| ri.to_owned())
                    .collect();
                for ri in doomed {
                    self.delete(&ri, undo);
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut undo = Vec::new();
        for op in batch.ops {
            if let Err(e) = self.apply_op(op, &mut undo) {
                for Undo { ri, before } in undo.into_iter().rev() {
                    self.remove(&ri);
                    if let Some(before) = before {
                        self.index(before);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn in_seq_order(&self, kind: RowKind) -> impl Iterator<Item = &StoredResource> {
        self.by_seq
            .iter()
            .map(|(_, ri)| &self.rows[ri])
            .filter(move |row| row.kind == kind)
    }
}

fn entry(row: &StoredResource) -> InstanceEntry {
    InstanceEntry {
        ri: row.ri.clone(),
        pi: row.pi.clone(),
        rn: row.rn.clone(),
        ty: row.ty,
        seq: row.seq,
        size: row.size,
        et: row.et.clone(),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load_tree(&self) -> Result<Vec<StoredResource>, StoreError> {
        let data = self.data.lock();
        Ok(data.in_seq_order(RowKind::Tree).cloned().collect())
    }

    async fn load_instance_index(&self) -> Result<Vec<InstanceEntry>, StoreError> {
        let data = self.data.lock();
        Ok(data.in_seq_order(RowKind::Instance).map(entry).collect())
    }

    async fn get(&self, ri: &str) -> Result<Option<StoredResource>, StoreError> {
        Ok(self.data.lock().rows.get(ri).cloned())
    }

    async fn child_by_name(
        &self,
        pi: &str,
        rn: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let data = self.data.lock();
        let ri = data.names.get(&(pi.to_owned(), rn.to_owned()));
        Ok(ri.map(|ri| data.rows[ri].clone()))
    }

    async fn children(&self, pi: &str, ty: Option<u16>) -> Result<Vec<StoredResource>, StoreError> {
        let data = self.data.lock();
        Ok(data
            .children_of(pi)
            .map(|(_, ri)| &data.rows[ri])
            .filter(|row| ty.is_none_or(|ty| row.ty == ty))
            .cloned()
            .collect())
    }

    // Written out rather than `async fn` so the batch is applied when `apply` is called, not
    // when the future is first polled (the trait's ordering contract).
    fn apply<'life0, 'async_trait>(
        &'life0 self,
        batch: WriteBatch,
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let outcome = self.data.lock().apply(batch);
        Box::pin(std::future::ready(outcome))
    }

    async fn max_seq(&self) -> Result<i64, StoreError> {
        let data = self.data.lock();
        Ok(data.by_seq.last().map_or(0, |(seq, _)| *seq))
    }
}
