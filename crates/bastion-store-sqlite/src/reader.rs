//! The read path: a fixed pool of read-only connections, each owned by its own thread.
//!
//! A read is a closure sent over a shared FIFO channel; whichever reader thread is free runs
//! it on its connection (statements are cached per connection with `prepare_cached`) and
//! sends the result back over a oneshot channel. In WAL mode readers never wait for the
//! writer, and the async caller never blocks a runtime thread. The threads end when the pool
//! is dropped.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::map_err;
use bastion_store::StoreError;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The reader threads and the queue that feeds them.
pub(crate) struct Readers {
    queue: Option<mpsc::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Opens `count` read-only connections to `path` and starts one thread for each.
    pub(crate) fn spawn(path: &Path, count: usize, busy: Duration) -> Result<Self, StoreError> {
        let mut conns = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(map_err)?;
            conn.busy_timeout(busy).map_err(map_err)?;
            conns.push(conn);
        }
        let (queue, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        let mut pool = Self {
            queue: Some(queue),
            threads: Vec::with_capacity(conns.len()),
        };
        for (i, conn) in conns.into_iter().enumerate() {
            let rx = Arc::clone(&rx);
            let thread = std::thread::Builder::new()
                .name(format!("bastion-store-reader-{i}"))
                .spawn(move || serve(conn, rx))
                .map_err(|e| StoreError::Io(format!("cannot spawn a reader thread: {e}")))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Runs `f` on a free read-only connection and returns its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.queue
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        drop(self.queue.take());
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a store reader thread panicked");
            }
        }
    }
}

fn serve(conn: Connection, rx: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        // The lock is held only while waiting for a job, never while running one.
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(&conn),
            Err(_) => break,
        }
    }
}
