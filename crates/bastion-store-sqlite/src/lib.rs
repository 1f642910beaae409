//! `bastion-store-sqlite`: the durable backend of Bastion's [`Store`] trait, [`SqliteStore`].
//!
//! This crate owns opening the database file (directory creation, pragmas, migration), the
//! SQL text, row decoding, error mapping and the [`Store`] implementation; the trait, the
//! model and the backend suite it passes live in `bastion-store`. The write path
//! (one writer thread, group commit) lives in [`writer`], the read path (a small pool of
//! read-only connections on their own threads) in [`reader`], the schema in [`schema`].
//!
//! The database runs in WAL mode with `synchronous=FULL`: a commit returns only after the WAL
//! is fsynced, and readers never wait for the writer.

#![forbid(unsafe_code)]

mod reader;
mod schema;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row};

use bastion_store::{InstanceEntry, RowKind, Store, StoreError, StoredResource, WriteBatch};
use reader::Readers;
use writer::Writer;

pub use writer::WriteStats;

pub use schema::SCHEMA_VERSION as SQLITE_SCHEMA_VERSION;

/// How many read-only connections (and reader threads) a store keeps.
const READERS: usize = 2;
/// The most batches committed in one transaction.
const MAX_GROUP: usize = 1024;
/// `PRAGMA journal_size_limit`: the WAL is truncated to this many bytes after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SELECT_GET: &str =
    "SELECT ri, pi, rn, ty, instance, seq, size, et, body FROM resources WHERE ri = ?1";
const SELECT_CHILD_BY_NAME: &str = "SELECT ri, pi, rn, ty, instance, seq, size, et, body \
     FROM resources WHERE pi = ?1 AND rn = ?2";
const SELECT_CHILDREN: &str = "SELECT ri, pi, rn, ty, instance, seq, size, et, body \
     FROM resources WHERE pi = ?1 ORDER BY seq";
// `+ty` keeps the planner on (pi, seq): a type filter must not turn into a scan of every
// instance of every container through (ty, seq).
const SELECT_CHILDREN_TY: &str = "SELECT ri, pi, rn, ty, instance, seq, size, et, body \
     FROM resources WHERE pi = ?1 AND +ty = ?2 ORDER BY seq";
// The literal `0` matters: it lets the planner use the partial index resources_tree_seq.
const SELECT_TREE: &str = "SELECT ri, pi, rn, ty, instance, seq, size, et, body \
     FROM resources WHERE instance = 0 ORDER BY seq";
/// Start-up only: a scan, so that no write has to keep an (instance, seq) index current.
const SELECT_INSTANCES: &str =
    "SELECT ri, pi, rn, ty, seq, size, et FROM resources WHERE instance = 1 ORDER BY seq";
/// Start-up only: the instance index in table order, streamed (see `stream_instance_index`).
const SCAN_INSTANCES: &str =
    "SELECT ri, pi, rn, ty, seq, size, et FROM resources WHERE instance = 1";
const SELECT_MAX_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM resources";

/// The `instance` column's value for a [`RowKind`].
pub(crate) fn kind_column(kind: RowKind) -> i64 {
    match kind {
        RowKind::Tree => 0,
        RowKind::Instance => 1,
    }
}

fn kind_from_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<RowKind> {
    match row.get::<_, i64>(idx)? {
        0 => Ok(RowKind::Tree),
        1 => Ok(RowKind::Instance),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Integer,
            format!("instance column holds {other}, not 0 or 1").into(),
        )),
    }
}

/// Maps a SQLite error onto the backend-neutral [`StoreError`].
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(e.to_string()),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt(e.to_string())
        }
        Some(
            ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied,
        ) => StoreError::Io(e.to_string()),
        _ => match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        },
    }
}

fn resource_from_row(row: &Row<'_>) -> rusqlite::Result<StoredResource> {
    Ok(StoredResource {
        ri: row.get(0)?,
        pi: row.get(1)?,
        rn: row.get(2)?,
        ty: row.get(3)?,
        kind: kind_from_column(row, 4)?,
        seq: row.get(5)?,
        size: row.get(6)?,
        et: row.get(7)?,
        body: row.get(8)?,
    })
}

fn instance_from_row(row: &Row<'_>) -> rusqlite::Result<InstanceEntry> {
    Ok(InstanceEntry {
        ri: row.get(0)?,
        pi: row.get(1)?,
        rn: row.get(2)?,
        ty: row.get(3)?,
        seq: row.get(4)?,
        size: row.get(5)?,
        et: row.get(6)?,
    })
}

fn query_resources(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredResource>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    let rows = stmt.query_map(params, resource_from_row).map_err(map_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
}

fn query_resource(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<StoredResource>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.query_row(params, resource_from_row)
        .optional()
        .map_err(map_err)
}

/// Opens the read-write connection, sets the pragmas and migrates the schema.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(map_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    // Refuse a too-new or foreign file before changing anything in it.
    schema::check_readable(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "cannot switch to WAL journal mode (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(map_err)?;
    // Truncate the WAL back to this size after a checkpoint that follows a burst.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(map_err)?;
    let found = schema::migrate(&mut conn)?;
    tracing::debug!(
        path = %path.display(),
        found,
        version = schema::SCHEMA_VERSION,
        "store opened"
    );
    Ok(conn)
}

/// The SQLite [`Store`]: one database file in WAL mode, one writer thread doing group
/// commit, a small pool of read-only connections.
///
/// A batch is committed once [`Store::apply`] has been called, even if the returned future
/// is dropped unawaited. Dropping the store closes the write queue; the writer finishes every
/// batch already queued, then the threads are joined (drop blocks for at most one group
/// commit) and the connections closed.
///
/// [`Store::apply`] enqueues synchronously; reads and waits are async and never block a
/// runtime thread. The store does not depend on a particular async runtime.
pub struct SqliteStore {
    path: PathBuf,
    // Field order is drop order: the writer finishes its queue before the readers go.
    writer: Writer,
    readers: Readers,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("poisoned", &self.is_poisoned())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating the file and its parent directory if missing) and migrates the store.
    ///
    /// Fails with [`StoreError::SchemaTooNew`] if the file was written by a newer schema, and
    /// with [`StoreError::Corrupt`] if it is not a Bastion store.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Io(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
        }
        let write_conn = open_writer(path)?;
        // Readers are opened after the writer so the WAL and shared-memory files exist.
        let readers = Readers::spawn(path, READERS, BUSY_TIMEOUT)?;
        let writer = Writer::spawn(write_conn, MAX_GROUP)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            readers,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once a commit has failed: every later [`Store::apply`] answers
    /// [`StoreError::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.writer.is_poisoned()
    }

    /// Counters of the write path (commits, batches, failures); a group commit shows as
    /// fewer commits than batches.
    pub fn stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// Test hook: the next group transaction is rolled back instead of committed and
    /// reported as a failed commit, which poisons the store.
    #[cfg(feature = "testsuite")]
    #[doc(hidden)]
    pub fn fail_next_commit_for_testing(&self) {
        self.writer.fail_next_commit();
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load_tree(&self) -> Result<Vec<StoredResource>, StoreError> {
        self.readers
            .run(|conn| query_resources(conn, SELECT_TREE, []))
            .await
    }

    async fn load_instance_index(&self) -> Result<Vec<InstanceEntry>, StoreError> {
        self.readers
            .run(|conn| {
                let mut stmt = conn.prepare_cached(SELECT_INSTANCES).map_err(map_err)?;
                let rows = stmt.query_map([], instance_from_row).map_err(map_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
            })
            .await
    }

    async fn stream_instance_index(
        &self,
        chunk: usize,
        sink: tokio::sync::mpsc::Sender<Vec<InstanceEntry>>,
    ) -> Result<(), StoreError> {
        let chunk = chunk.max(1);
        self.readers
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(SCAN_INSTANCES).map_err(map_err)?;
                let rows = stmt.query_map([], instance_from_row).map_err(map_err)?;
                let mut batch = Vec::with_capacity(chunk);
                for row in rows {
                    batch.push(row.map_err(map_err)?);
                    if batch.len() == chunk {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(chunk));
                        // Reader threads are plain threads, so blocking here is allowed;
                        // a closed receiver ends the scan early.
                        if sink.blocking_send(full).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = sink.blocking_send(batch);
                }
                Ok(())
            })
            .await
    }

    async fn get(&self, ri: &str) -> Result<Option<StoredResource>, StoreError> {
        let ri = ri.to_owned();
        self.readers
            .run(move |conn| query_resource(conn, SELECT_GET, [&ri]))
            .await
    }

    async fn child_by_name(
        &self,
        pi: &str,
        rn: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let (pi, rn) = (pi.to_owned(), rn.to_owned());
        self.readers
            .run(move |conn| query_resource(conn, SELECT_CHILD_BY_NAME, [&pi, &rn]))
            .await
    }

    async fn children(&self, pi: &str, ty: Option<u16>) -> Result<Vec<StoredResource>, StoreError> {
        let pi = pi.to_owned();
        self.readers
            .run(move |conn| match ty {
                None => query_resources(conn, SELECT_CHILDREN, rusqlite::params![pi]),
                Some(ty) => query_resources(conn, SELECT_CHILDREN_TY, rusqlite::params![pi, ty]),
            })
            .await
    }

    // Written out rather than `async fn` so the batch is enqueued when `apply` is called, not
    // when the future is first polled (the trait's ordering contract).
    fn apply<'life0, 'async_trait>(
        &'life0 self,
        batch: WriteBatch,
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let pending = self.writer.submit(batch);
        Box::pin(async move { pending?.await.map_err(|_| StoreError::Closed)? })
    }

    async fn max_seq(&self) -> Result<i64, StoreError> {
        self.readers
            .run(|conn| {
                let mut stmt = conn.prepare_cached(SELECT_MAX_SEQ).map_err(map_err)?;
                stmt.query_row([], |row| row.get(0)).map_err(map_err)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(std::iter::repeat_n("x", stmt.parameter_count())),
                |row| row.get::<_, String>(3),
            )
            .expect("query");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn pragmas_and_query_plans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("s.db")).expect("open");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        assert_eq!(sync, 2, "synchronous=FULL");

        // Request-time queries must use an index and never sort; the start-up scans
        // (SELECT_INSTANCES, SELECT_MAX_SEQ) are deliberately left out.
        let cases = [
            (SELECT_GET, "PRIMARY KEY"),
            (SELECT_CHILD_BY_NAME, "resources_pi_rn"),
            (SELECT_CHILDREN, "resources_pi_seq"),
            (SELECT_CHILDREN_TY, "resources_pi_seq"),
            (SELECT_TREE, "resources_tree_seq"),
            ("DELETE FROM resources WHERE pi = ?1", "resources_pi_seq"),
            (
                "DELETE FROM resources WHERE pi = ?1 AND seq < ?2 AND instance = 1",
                "resources_pi_seq",
            ),
        ];
        for (sql, index) in cases {
            let p = plan(&conn, sql);
            assert!(p.contains(index), "{sql}: expected {index} in plan:\n{p}");
            assert!(!p.contains("TEMP B-TREE"), "{sql}: sorts:\n{p}");
            assert!(
                !p.contains("SCAN resources\n") && !p.ends_with("SCAN resources"),
                "{sql}: full scan:\n{p}"
            );
        }
    }
}
