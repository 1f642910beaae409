//! `bastion serve`: logging set-up, the server's life cycle and its orderly stop.
//!
//! Start: open the store (`<data-dir>/bastion.db`) and the audit log, bind the HTTP listener, open the CSE
//! (its CSEBase `poa` advertises the bound address), start the expiry sweep, and only then
//! log `listening on ADDR:PORT`, so whoever waits for that line can send requests at once.
//!
//! Stop, on SIGINT or SIGTERM: the accept loop is dropped (no new connections), the expiry
//! sweep is stopped, requests in flight get [`DRAIN_GRACE`] to finish, then the runtime is
//! shut down and the store closed; its writer commits every batch already queued before it
//! exits. A request answered with 2xx was durable before its answer was sent, so nothing
//! acknowledged can be lost by stopping.

use crate::settings::Settings;
use crate::Failure;
use bastion_core::audit::{FileSink, NullSink, Rotation, DEFAULT_QUEUE};
use bastion_core::{AuditSink, Cse};
use bastion_store::{SqliteStore, Store};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// How long requests in flight may take to finish once a stop was asked for.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs the server until a stop signal; returns once everything is closed.
pub fn serve(settings: Settings) -> Result<(), Failure> {
    init_logging(&settings.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bastion-worker")
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;

    std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
        Failure::Runtime(format!(
            "cannot create {}: {e}",
            settings.data_dir.display()
        ))
    })?;
    let _lock = lock_data_dir(&settings.data_dir, "by another bastion process")?;
    let db_path = settings.db_path();
    let store = Arc::new(SqliteStore::open(&db_path).map_err(|e| {
        Failure::Runtime(format!("cannot open the store {}: {e}", db_path.display()))
    })?);

    let audit = open_audit(&settings)?;
    let result = runtime.block_on(run(&settings, store.clone(), audit));

    // Dropping the runtime drops every remaining task, and with them the last references
    // to the CSE; dropping the store then lets its writer finish the queue and exit.
    drop(runtime);
    drop(store);
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

/// The security audit sink: the rotating file of `[audit]`, or nothing when disabled.
fn open_audit(settings: &Settings) -> Result<Arc<dyn AuditSink>, Failure> {
    if !settings.audit_enabled {
        return Ok(Arc::new(NullSink));
    }
    let path = settings.audit_file();
    let rotation = Rotation {
        max_bytes: settings.audit_max_bytes,
        keep: settings.audit_keep,
    };
    let sink = FileSink::open(&path, rotation, DEFAULT_QUEUE).map_err(|e| {
        Failure::Runtime(format!("cannot open the audit log {}: {e}", path.display()))
    })?;
    Ok(Arc::new(sink))
}

/// Takes an exclusive lock on `<data-dir>/bastion.lock` for as long as the returned file
/// lives: two processes working on one data directory would each trust their own
/// in-memory tree. `held` completes the message when another process has the lock.
pub(crate) fn lock_data_dir(dir: &std::path::Path, held: &str) -> Result<std::fs::File, Failure> {
    let path = dir.join("bastion.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::Runtime(format!("cannot open {}: {e}", path.display())))?;
    file.try_lock().map_err(|_| {
        Failure::Runtime(format!("data directory {} is in use {held}", dir.display()))
    })?;
    Ok(file)
}

/// Plain-text logs on standard error; colours only when standard error is a terminal.
fn init_logging(filter: &str) -> Result<(), Failure> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| Failure::Config(format!("invalid log filter {filter:?}: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| Failure::Runtime(format!("cannot set up logging: {e}")))
}

async fn run(
    settings: &Settings,
    store: Arc<SqliteStore>,
    audit: Arc<dyn AuditSink>,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", settings.listen)))?;
    let bound: SocketAddr = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the bound address: {e}")))?;

    let store: Arc<dyn Store> = store;
    let cse = Cse::open_with_audit(settings.cse_config(bound), store, audit)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot start the CSE: {e}")))?;
    let expiry = cse.spawn_expiry();
    let mut stop = StopSignal::register()
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;

    tracing::info!(
        cse_id = %settings.cse_id,
        cse_name = %settings.cse_name,
        cse_type = %settings.cse_type,
        data_dir = %settings.data_dir.display(),
        "listening on {bound}"
    );

    let served = {
        let server = bastion_http::serve(listener, cse.clone(), settings.http_limits());
        tokio::select! {
            result = server => Some(result),
            signal = stop.wait() => {
                tracing::info!(signal, "stop requested; no longer accepting connections");
                None
            }
        }
        // The accept loop (and the listener) are dropped here.
    };

    expiry.abort();
    // A sweep cut short loses nothing: what it did not commit is swept again next start.
    let _ = expiry.await;

    match served {
        Some(Ok(())) => {
            tracing::warn!("the HTTP server stopped by itself");
            Ok(())
        }
        Some(Err(e)) => Err(Failure::Runtime(format!("HTTP server failed: {e}"))),
        None => {
            drain(&cse).await;
            Ok(())
        }
    }
}

/// Waits until no connection holds the CSE any more, or [`DRAIN_GRACE`] has passed.
async fn drain(cse: &Arc<Cse>) {
    let deadline = Instant::now() + DRAIN_GRACE;
    while Arc::strong_count(cse) > 1 {
        if Instant::now() >= deadline {
            tracing::info!(
                connections = Arc::strong_count(cse) - 1,
                "closing connections still open after the grace period"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGINT and SIGTERM, registered before the server announces itself so an early signal
/// is not lost.
struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    #[cfg(unix)]
    fn register() -> std::io::Result<StopSignal> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignal {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn register() -> std::io::Result<StopSignal> {
        Ok(StopSignal {})
    }

    /// Resolves with the signal's name when one arrives.
    #[cfg(unix)]
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    #[cfg(not(unix))]
    async fn wait(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(_) => std::future::pending().await,
        }
    }
}
