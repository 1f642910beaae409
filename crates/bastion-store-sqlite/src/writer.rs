//! The write path: one dedicated thread owns the read-write connection and does group commit.
//!
//! [`Writer::submit`] puts `(batch, reply)` on an unbounded FIFO channel and returns at once;
//! the caller awaits the reply. The thread blocks for the first batch, drains whatever else
//! is already queued (up to the group cap), and applies the whole group in ONE transaction,
//! in queue order, each batch inside its own SAVEPOINT: a batch that fails (e.g. a `(pi, rn)`
//! uniqueness violation) is rolled back alone and answered with its error while the rest of
//! the group commits. Only after `COMMIT` returns (the WAL fsynced, `synchronous=FULL`) are
//! the callers answered.
//!
//! If the transaction as a whole fails (BEGIN, a savepoint, or COMMIT itself, or SQLite rolled
//! the transaction back on its own after an I/O error), every batch of the group is answered
//! with that error and the store is poisoned: every later batch gets
//! [`StoreError::Poisoned`]. The in-memory state of the core may then be ahead of the disk;
//! only a restart, which reloads the durable truth, clears the poison.
//!
//! The thread ends when every sender is gone (the store dropped) and the queue is drained.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{kind_column, map_err};
use bastion_store::{StoreError, WriteBatch, WriteOp};

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The answer a caller awaits.
pub(crate) type Pending = oneshot::Receiver<Result<(), StoreError>>;

struct Job {
    batch: WriteBatch,
    reply: Reply,
}

const UPSERT: &str = "INSERT INTO resources (ri, pi, rn, ty, instance, seq, size, et, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     ON CONFLICT (ri) DO UPDATE SET pi = excluded.pi, rn = excluded.rn, ty = excluded.ty, \
     instance = excluded.instance, seq = excluded.seq, size = excluded.size, et = excluded.et, \
     body = excluded.body";
const DELETE: &str = "DELETE FROM resources WHERE ri = ?1";
const DELETE_CHILDREN: &str = "DELETE FROM resources WHERE pi = ?1";
const DELETE_INSTANCES_BEFORE: &str =
    "DELETE FROM resources WHERE pi = ?1 AND seq < ?2 AND instance = 1";

/// Counters of the write path, as returned by `SqliteStore::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed (one per group).
    pub commits: u64,
    /// Batches committed.
    pub batches: u64,
    /// Batches rejected alone (rolled back to their savepoint) or lost in a failed commit.
    pub failed_batches: u64,
    /// True once a commit has failed.
    pub poisoned: bool,
}

/// State shared between the handle and the thread.
#[derive(Default)]
struct Shared {
    poisoned: AtomicBool,
    commits: AtomicU64,
    batches: AtomicU64,
    failed_batches: AtomicU64,
    /// Fault injection for tests: the next COMMIT is turned into a ROLLBACK and fails.
    fail_next_commit: AtomicBool,
}

/// Handle to the writer thread.
pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the writer thread, which takes ownership of `conn`.
    pub(crate) fn spawn(conn: Connection, max_group: usize) -> Result<Self, StoreError> {
        let (queue, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bastion-store-writer".into())
            .spawn(move || run(conn, rx, &state, max_group.max(1)))
            .map_err(|e| StoreError::Io(format!("cannot spawn the writer thread: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            shared,
        })
    }

    /// Enqueues the batch now; the returned receiver yields its outcome once committed.
    pub(crate) fn submit(&self, batch: WriteBatch) -> Result<Pending, StoreError> {
        if self.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        let (reply, pending) = oneshot::channel();
        queue
            .send(Job { batch, reply })
            .map_err(|_| StoreError::Closed)?;
        Ok(pending)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
            failed_batches: self.shared.failed_batches.load(Ordering::Relaxed),
            poisoned: self.is_poisoned(),
        }
    }

    #[cfg(feature = "testsuite")]
    pub(crate) fn fail_next_commit(&self) {
        self.shared.fail_next_commit.store(true, Ordering::Release);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish the queue and exit.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, shared: &Shared, max_group: usize) {
    let mut group: Vec<Job> = Vec::new();
    // `recv` fails only once every sender is dropped and the queue is empty.
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if shared.poisoned.load(Ordering::Acquire) {
            for job in group.drain(..) {
                let _ = job.reply.send(Err(StoreError::Poisoned));
            }
            continue;
        }
        let fail_commit = shared.fail_next_commit.swap(false, Ordering::AcqRel);
        match commit_group(&conn, &group, fail_commit) {
            Ok(results) => {
                let failed = results.iter().filter(|r| r.is_err()).count() as u64;
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared
                    .batches
                    .fetch_add(group.len() as u64 - failed, Ordering::Relaxed);
                shared.failed_batches.fetch_add(failed, Ordering::Relaxed);
                for (job, result) in group.drain(..).zip(results) {
                    // The caller may have stopped waiting; the batch is committed regardless.
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                shared.poisoned.store(true, Ordering::Release);
                shared
                    .failed_batches
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, batches = group.len(), "store commit failed; store poisoned");
                for job in group.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
    tracing::debug!("store writer thread exiting");
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(map_err)
}

/// Ends a failed transaction, if SQLite has not already.
fn abort(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "store rollback failed");
        }
    }
}

/// Commits the group in one transaction. `Ok` holds one result per batch, in order; `Err`
/// means the transaction failed as a whole and nothing of the group is on disk.
fn commit_group(
    conn: &Connection,
    group: &[Job],
    fail_commit: bool,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = exec(conn, "SAVEPOINT batch") {
            abort(conn);
            return Err(e);
        }
        match apply_ops(conn, &job.batch.ops) {
            Ok(()) => {
                if let Err(e) = exec(conn, "RELEASE batch") {
                    abort(conn);
                    return Err(e);
                }
                results.push(Ok(()));
            }
            Err(e) => {
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back (I/O error, disk full, ...).
                    return Err(e);
                }
                if let Err(e2) =
                    exec(conn, "ROLLBACK TO batch").and_then(|()| exec(conn, "RELEASE batch"))
                {
                    abort(conn);
                    return Err(e2);
                }
                tracing::warn!(error = %e, "store batch rejected and rolled back");
                results.push(Err(e));
            }
        }
    }
    if fail_commit {
        abort(conn);
        return Err(StoreError::Backend("injected commit failure".into()));
    }
    if let Err(e) = exec(conn, "COMMIT") {
        abort(conn);
        return Err(e);
    }
    tracing::trace!(batches = group.len(), "store group committed");
    Ok(results)
}

fn apply_ops(conn: &Connection, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        let done = match op {
            WriteOp::Upsert(r) => conn.prepare_cached(UPSERT).and_then(|mut stmt| {
                stmt.execute(rusqlite::params![
                    r.ri,
                    r.pi,
                    r.rn,
                    r.ty,
                    kind_column(r.kind),
                    r.seq,
                    r.size,
                    r.et,
                    r.body
                ])
            }),
            WriteOp::Delete { ri } => conn
                .prepare_cached(DELETE)
                .and_then(|mut stmt| stmt.execute([ri])),
            WriteOp::DeleteChildren { pi } => conn
                .prepare_cached(DELETE_CHILDREN)
                .and_then(|mut stmt| stmt.execute([pi])),
            WriteOp::DeleteInstancesBefore { pi, seq } => conn
                .prepare_cached(DELETE_INSTANCES_BEFORE)
                .and_then(|mut stmt| stmt.execute(rusqlite::params![pi, seq])),
        };
        done.map_err(map_err)?;
    }
    Ok(())
}
