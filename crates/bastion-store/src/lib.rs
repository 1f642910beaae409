//! `bastion-store`: the storage interface of a Bastion CSE.
//!
//! This crate owns the [`Store`] trait (the only storage interface `bastion-core` sees), the
//! rows and write operations it exchanges ([`StoredResource`], [`WriteBatch`]), the
//! backend-neutral [`StoreError`], a volatile in-memory backend ([`MemoryStore`], for tests)
//! and, behind the `testsuite` feature, the backend-independent test suite every backend must
//! pass. The durable backend lives in its own crate, `bastion-store-sqlite`.
//!
//! The data model is one flat set of resources keyed by resource ID, each row carrying its
//! parent's ID, its name (unique among siblings), its type, its [`RowKind`] (part of the
//! tree, or an instance kept on disk), the core-assigned creation sequence number, its
//! content size, its expiration time and its JSON body. Writes come in [`WriteBatch`]es that
//! are atomic, and durable (for a durable backend) when [`Store::apply`] answers `Ok`.
//!
//! See `docs/architecture.md`, sections "bastion-store interface" and "Write path and
//! durability".

#![forbid(unsafe_code)]

mod error;
mod memory;
mod model;
mod store;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use error::StoreError;
pub use memory::MemoryStore;
pub use model::{InstanceEntry, RowKind, StoredResource, WriteBatch, WriteOp};
pub use store::Store;
