//! `bastion-store`: the durable truth of a Bastion CSE.
//!
//! This crate owns the [`Store`] trait (the only storage interface `bastion-core` sees), its
//! SQLite backend [`SqliteStore`] with the schema and its migrations, and, behind the
//! `testsuite` feature, the backend-independent test suite every backend must pass.
//!
//! The data model is one flat table of resources keyed by resource ID, each row carrying its
//! parent's ID, its name (unique among siblings), its type, the core-assigned creation
//! sequence number, its content size, its expiration time and its JSON body. Writes come in
//! [`WriteBatch`]es that are atomic and durable when [`Store::apply`] answers `Ok`.
//!
//! See `docs/architecture.md`, sections "bastion-store interface" and "Write path and
//! durability".

#![forbid(unsafe_code)]

mod error;
mod model;
mod sqlite;
mod store;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use error::StoreError;
pub use model::{InstanceEntry, StoredResource, WriteBatch, WriteOp, TY_CONTENT_INSTANCE};
pub use sqlite::{SqliteStore, WriteStats, SQLITE_SCHEMA_VERSION};
pub use store::Store;
