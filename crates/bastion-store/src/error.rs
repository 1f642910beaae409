//! The store's error type, shared by every backend.
//!
//! Variants are backend-neutral: a backend maps its own errors onto them, keeping the
//! backend's message as text.

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The file system or the operating system failed (creating the directory, spawning a
    /// worker thread, …).
    #[error("store I/O error: {0}")]
    Io(String),
    /// The database engine reported an error not covered by a more specific variant.
    #[error("store backend error: {0}")]
    Backend(String),
    /// A batch violated a uniqueness constraint (two siblings with the same `rn`). Only that
    /// batch was rolled back.
    #[error("store constraint violated: {0}")]
    Conflict(String),
    /// The stored data is not what this code can read: not a database, not a Bastion store,
    /// or a row that does not decode.
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// A commit failed earlier; the store refuses every further write until it is reopened
    /// (which reloads the durable truth).
    #[error("store poisoned by an earlier commit failure; restart required")]
    Poisoned,
    /// The store's workers are gone (the store is shutting down or a worker died).
    #[error("store closed")]
    Closed,
    /// The database was written by a newer version of Bastion.
    #[error("store schema version {found} is newer than the supported version {supported}")]
    SchemaTooNew {
        /// The schema version found in the database.
        found: i64,
        /// The newest schema version this code knows.
        supported: i64,
    },
}
