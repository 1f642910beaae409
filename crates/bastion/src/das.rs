//! `bastion das`: runs the Dynamic Authorization Server of `bastion-das` (TS-0003 7.3)
//! until SIGINT or SIGTERM.
//!
//! Start: set up logging, load the policy file and its signing key (a bad policy or key
//! is a configuration error, exit status 2), open the credential store and build the TLS
//! server when `--tls-listen` is given, bind the listeners, then log `accepting TLS on
//! ADDR:PORT` and `listening on ADDR:PORT` (the plain one, or the TLS one when there is
//! no plain listener) last, so whoever waits for that line can send requests at once.
//! The credential store and the CRLs are re-read when their files change, as `bastion
//! serve` does (`TlsServer::refresh_revocation`). Both listeners run on bastion-http's
//! listener machinery under the caps and timeouts `bastion serve` has (`--max-connections`
//! … `--idle-timeout-ms`, the defaults and ranges of `[limits]`; the connection cap
//! fitted under the descriptor limit).
//!
//! The listener set-up (logging, TLS server, limits, revocation refresh, signals) is
//! shared with `bastion maf` (`maf.rs`), the other standalone TLS-served function.

use crate::cli::{DasArgs, ListenerLimitArgs, TlsFunctionArgs};
use crate::limits::{connection_gate, Limits, LimitsSection};
use crate::Failure;
use bastion_das::Das;
use bastion_tls::{CredentialRegistry, ServerCertificate, ServerSettings, StoreKey, TlsServer};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Runs the DAS until a stop signal.
pub fn run(args: &DasArgs) -> Result<(), Failure> {
    init_logging(args.function.log.as_deref())?;
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

/// Logging to standard error, filtered by `log` (`--log`), else `RUST_LOG`, else `info`.
/// Shared by the standalone functions (DAS, MAF, MEF, EST).
pub(crate) fn init_logging(log: Option<&str>) -> Result<(), Failure> {
    let filter = log
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter)
        .map_err(|e| Failure::Config(format!("invalid log filter {filter:?}: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| Failure::Runtime(format!("cannot set up logging: {e}")))
}

/// How often the credential store and the CRL files are checked for changes.
pub(crate) const CREDENTIALS_RELOAD: Duration = Duration::from_secs(1);

/// The TLS server, over the credential store of `--credentials-store`.
pub(crate) fn open_tls(args: &TlsFunctionArgs) -> Result<Arc<TlsServer>, Failure> {
    open_tls_with(args, None)
}

/// [`open_tls`], with `remote_psk` asked for PSK identities the credential store lacks
/// (the MAF's keys provisioned by a MEF).
pub(crate) fn open_tls_with(
    args: &TlsFunctionArgs,
    remote_psk: Option<Arc<dyn bastion_tls::RemotePskSource>>,
) -> Result<Arc<TlsServer>, Failure> {
    let Some(store) = &args.credentials_store else {
        return Err(Failure::Config(
            "--tls-listen needs --credentials-store".into(),
        ));
    };
    let key = StoreKey::from_env_or_file(args.credentials_key_file.as_deref())
        .map_err(|e| Failure::Config(format!("credential store key: {e}")))?;
    let registry = CredentialRegistry::open(store, key)
        .map_err(|e| Failure::Config(format!("credential store: {e}")))?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Failure::Config(format!("cannot read {}: {e}", p.display())))
    };
    let mut server_certificates = Vec::new();
    if let (Some(chain), Some(key)) = (&args.cert, &args.key) {
        server_certificates.push(ServerCertificate {
            server_names: Vec::new(),
            chain_pem: read(chain)?,
            key_pem: bastion_tls::secret::read_secret_text(key)
                .map_err(|e| Failure::Config(e.to_string()))?,
        });
    }
    let certificate = !server_certificates.is_empty();
    let settings = ServerSettings {
        psk: true,
        certificate,
        require_client_certificate: false,
        server_certificates,
        trust_anchors: args.ca.iter().map(|p| read(p)).collect::<Result<_, _>>()?,
        crl_files: args.crl.clone(),
        disable_tls13: false,
        remote_psk,
        peer_http_authentication: false,
    };
    let server =
        TlsServer::new(&settings, registry).map_err(|e| Failure::Config(format!("tls: {e}")))?;
    Ok(Arc::new(server))
}

/// The caps and timeouts of `--max-connections` … `--idle-timeout-ms`, validated as
/// `bastion serve`'s `[limits]` are (same ranges, same defaults).
pub(crate) fn listener_limits_of(args: &ListenerLimitArgs) -> Result<Limits, Failure> {
    let section = LimitsSection {
        max_connections: args.max_connections,
        max_tls_handshakes: args.max_tls_handshakes,
        header_timeout_ms: args.header_timeout_ms,
        body_timeout_ms: args.body_timeout_ms,
        idle_timeout_ms: args.idle_timeout_ms,
        ..LimitsSection::default()
    };
    Limits::resolve(&section).map_err(|problems| {
        // The problems name the keys of [limits]; here they are flags.
        let problems: Vec<String> = problems
            .iter()
            .map(|p| p.replacen("[limits] ", "--", 1))
            .collect();
        Failure::Config(problems.join("; "))
    })
}

async fn serve(args: &DasArgs, das: Arc<Das>) -> Result<(), Failure> {
    let limits = listener_limits_of(&args.function.limits)?;
    let tls = match args.tls_listen {
        Some(addr) => {
            let server = open_tls(&args.function)?;
            let listener = bind(addr).await?;
            Some((listener, server))
        }
        None => None,
    };
    let plain_addr = match (args.listen, &tls) {
        (Some(addr), _) => Some(addr),
        (None, None) => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 8090))),
        (None, Some(_)) => None,
    };
    let plain = match plain_addr {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let stop = stop_signal()
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    // One gate for both listeners: they share the process's descriptors.
    let gate = connection_gate(&limits);
    let timeouts = limits.timeouts;

    let mut tasks = tokio::task::JoinSet::new();
    let mut ready = None;
    if let Some((listener, server)) = tls {
        let bound = local(&listener)?;
        tracing::info!("accepting TLS on {bound}");
        ready = Some(bound);
        spawn_revocation_refresh(server.clone());
        let das = das.clone();
        tasks.spawn(bastion_das::serve_tls(
            listener,
            server,
            das,
            timeouts,
            gate.clone(),
        ));
    }
    if let Some(listener) = plain {
        let bound = local(&listener)?;
        if args.insecure {
            tracing::warn!(
                "plain HTTP listener is insecure: requesters are not authenticated, \
                 X-M2M-Origin is trusted"
            );
        }
        ready = Some(bound);
        tasks.spawn(bastion_das::serve(
            listener,
            das,
            args.insecure,
            timeouts,
            gate,
        ));
    }
    if let Some(bound) = ready {
        // Nothing after the address: scripts read it from the end of this line.
        tracing::info!("listening on {bound}");
    }
    tokio::select! {
        Some(result) = tasks.join_next() => match result {
            Ok(Err(e)) => Err(Failure::Runtime(format!("HTTP server failed: {e}"))),
            _ => Err(Failure::Runtime("a listener stopped".into())),
        },
        signal = stop => {
            tracing::info!(signal, "stopped");
            Ok(())
        }
    }
}

/// Re-reads the credential store and the CRLs when they change, until the runtime ends.
pub(crate) fn spawn_revocation_refresh(server: Arc<TlsServer>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CREDENTIALS_RELOAD);
        loop {
            tick.tick().await;
            server.refresh_revocation();
        }
    });
}

pub(crate) async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {addr}: {e}")))
}

pub(crate) fn local(listener: &tokio::net::TcpListener) -> Result<std::net::SocketAddr, Failure> {
    listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the bound address: {e}")))
}

/// Resolves with the signal's name on SIGINT or SIGTERM (registered before returning).
#[cfg(unix)]
pub(crate) fn stop_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
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
pub(crate) fn stop_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl-c",
            Err(_) => std::future::pending().await,
        }
    })
}
