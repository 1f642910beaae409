//! `bastion das`: runs the Dynamic Authorization Server of `bastion-das` (TS-0003 7.3)
//! until SIGINT or SIGTERM.
//!
//! Start: set up logging, load the policy file and its signing key (a bad policy or key
//! is a configuration error, exit status 2), bind the listener, then log
//! `listening on ADDR:PORT`, so whoever waits for that line can send requests at once.

use crate::cli::DasArgs;
use crate::Failure;
use bastion_das::Das;
use std::io::IsTerminal;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// Runs the DAS until a stop signal.
pub fn run(args: &DasArgs) -> Result<(), Failure> {
    let filter = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter)
        .map_err(|e| Failure::Config(format!("invalid log filter {filter:?}: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| Failure::Runtime(format!("cannot set up logging: {e}")))?;

    let das = Das::load(&args.policy)
        .map_err(|e| Failure::Config(format!("{}: {e}", args.policy.display())))?;
    tracing::info!(
        policy = %args.policy.display(),
        issuer = %das.policy().issuer,
        rules = das.policy().rules.len(),
        "policy loaded"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bastion-das")
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(args, Arc::new(das)))
}

async fn serve(args: &DasArgs, das: Arc<Das>) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the bound address: {e}")))?;
    let stop = stop_signal()
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    tracing::info!("listening on {bound}");
    tokio::select! {
        result = bastion_das::serve(listener, das) => {
            result.map_err(|e| Failure::Runtime(format!("HTTP server failed: {e}")))
        }
        signal = stop => {
            tracing::info!(signal, "stopped");
            Ok(())
        }
    }
}

/// Resolves with the signal's name on SIGINT or SIGTERM (registered before returning).
#[cfg(unix)]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(_) => std::future::pending().await,
        }
    })
}
