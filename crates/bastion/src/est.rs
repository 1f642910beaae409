//! `bastion est serve|revoke|list`: certificate enrolment over EST (`bastion-est`) run
//! standalone; `bastion mef` with `[mef.est]` mounts the same router on its own listener
//! (`mef.rs`).
//!
//! `serve` loads the CA (certificate and owner-only key), the enrolment profiles and the
//! credential store of the enrolees' PSKs, opens the ledger in `--state-dir` (signing a
//! first CRL if there is none), and serves `bastion_est::router` on a TLS listener that
//! accepts PSK and certificate associations (client certificate optional, so PSK
//! enrolees need none) with bastion-http's listener machinery, caps and timeouts at the
//! `[limits]` defaults; `--crl-listen` adds a plain listener serving only `/crl`. The
//! credential store is re-read when it changes, as in `bastion serve`. Logs
//! `accepting TLS on ADDR:PORT` and, last, `listening on ADDR:PORT`.
//!
//! `revoke` works on the same state directory while `serve` runs (the ledger is locked
//! per operation): the next `GET /crl` serves the new CRL.

use crate::cli::{EstListArgs, EstRevokeArgs, EstServeArgs};
use crate::das::{bind, init_logging, local, spawn_revocation_refresh, stop_signal};
use crate::limits::{connection_gate, Limits, LimitsSection};
use crate::Failure;
use bastion_est::{Est, EstSettings, Ledger, Profiles};
use bastion_tls::certs::CertAndKey;
use bastion_tls::{CredentialRegistry, ServerCertificate, ServerSettings, StoreKey, TlsServer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Config(format!("cannot read {}: {e}", path.display())))
}

fn load_ca(files: &crate::cli::CaFiles) -> Result<CertAndKey, Failure> {
    Ok(CertAndKey {
        cert_pem: read(&files.ca_cert)?,
        key_pem: bastion_tls::secret::read_secret_text(&files.ca_key)
            .map_err(|e| Failure::Config(e.to_string()))?,
    })
}

fn hours(h: u32) -> Duration {
    Duration::from_secs(u64::from(h) * 3600)
}

/// Runs the EST server until a stop signal.
pub fn serve(args: &EstServeArgs) -> Result<(), Failure> {
    init_logging(args.log.as_deref())?;
    let ca = load_ca(&args.ca)?;
    let profiles = Profiles::load(&args.profiles).map_err(|e| Failure::Config(e.to_string()))?;
    tracing::info!(profiles = profiles.len(), "enrolment profiles loaded");
    let mut trust_anchors = vec![ca.cert_pem.clone()];
    for path in &args.trust_anchor {
        trust_anchors.push(read(path)?);
    }
    let settings = EstSettings {
        default_validity_days: args.validity_days,
        crl_validity: hours(args.crl_validity_hours),
    };
    let est = Est::new(ca, profiles, &args.state_dir, settings)
        .map_err(|e| Failure::Config(format!("EST: {e}")))?;
    let key = StoreKey::from_env_or_file(args.credentials_key_file.as_deref())
        .map_err(|e| Failure::Config(format!("credential store key: {e}")))?;
    let registry = CredentialRegistry::open(&args.credentials_store, key)
        .map_err(|e| Failure::Config(format!("credential store: {e}")))?;
    let server_settings = ServerSettings {
        psk: true,
        certificate: true,
        // PSK enrolees present no certificate.
        require_client_certificate: false,
        server_certificates: vec![ServerCertificate {
            server_names: Vec::new(),
            chain_pem: read(&args.cert)?,
            key_pem: bastion_tls::secret::read_secret_text(&args.key)
                .map_err(|e| Failure::Config(e.to_string()))?,
        }],
        trust_anchors,
        // Revocation of the EST CA's own certificates is the ledger's (a renewal of a
        // revoked certificate is refused there); bootstrap CAs publish no CRL here.
        crl_files: Vec::new(),
        disable_tls13: false,
        remote_psk: None,
        peer_http_authentication: false,
    };
    let tls = TlsServer::new(&server_settings, registry)
        .map_err(|e| Failure::Config(format!("tls: {e}")))?;
    let limits = Limits::resolve(&LimitsSection::default())
        .map_err(|problems| Failure::Config(problems.join("; ")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bastion-est")
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(args, Arc::new(est), Arc::new(tls), limits))
}

async fn run(
    args: &EstServeArgs,
    est: Arc<Est>,
    tls: Arc<TlsServer>,
    limits: Limits,
) -> Result<(), Failure> {
    let tls_listener = bind(args.tls_listen).await?;
    let crl_listener = match args.crl_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let stop = stop_signal()
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    let gate = connection_gate(&limits);
    let timeouts = limits.timeouts;
    let mut tasks = tokio::task::JoinSet::new();

    let tls_bound = local(&tls_listener)?;
    tracing::info!("accepting TLS on {tls_bound}");
    spawn_revocation_refresh(tls.clone());
    tasks.spawn(bastion_http::tls::serve_router_tls(
        tls_listener,
        tls,
        bastion_est::router(est.clone(), timeouts),
        timeouts,
        gate.clone(),
        None,
    ));
    let mut ready = tls_bound;
    if let Some(listener) = crl_listener {
        ready = local(&listener)?;
        tasks.spawn(bastion_http::listen::serve_router(
            listener,
            bastion_est::crl_router(est, timeouts),
            timeouts,
            gate,
        ));
    }
    // Nothing after the address: scripts read it from the end of this line.
    tracing::info!("listening on {ready}");
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

/// `est revoke`: one line, `revoked SERIAL ID; CRL number N`.
pub fn revoke(args: &EstRevokeArgs) -> Result<String, Failure> {
    let ca = load_ca(&args.ca)?;
    let ledger = Ledger::open(&args.state_dir).map_err(|e| Failure::Runtime(e.to_string()))?;
    let now = bastion_est::service::unix_now();
    let validity = i64::from(args.crl_validity_hours) * 3600;
    let (revoked, number) = ledger
        .revoke(&args.serial, &ca, now, validity)
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(format!(
        "revoked {} {}; CRL number {number}\n",
        revoked.serial, revoked.id
    ))
}

/// `est list`: one line per certificate, tab-separated.
pub fn list(args: &EstListArgs) -> Result<String, Failure> {
    let ledger = Ledger::open(&args.state_dir).map_err(|e| Failure::Runtime(e.to_string()))?;
    let entries = ledger.list().map_err(|e| Failure::Runtime(e.to_string()))?;
    Ok(entries
        .iter()
        .map(|c| {
            let state = match c.revoked_at {
                Some(at) => format!("revoked {at}"),
                None => "valid".to_owned(),
            };
            format!("{}\t{}\t{}\t{state}\n", c.serial, c.id, c.not_after)
        })
        .collect())
}
