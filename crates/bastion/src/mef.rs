//! `bastion mef`: runs the M2M Enrolment Function of `bastion-mef` (TS-0003 8.3) until
//! SIGINT or SIGTERM, and its operator commands (`revoke`, `list`).
//!
//! Start: logging, the configuration file (a bad one is exit status 2), the store key
//! (`BASTION_CREDENTIALS_KEY` or `--key-file`, else the file the configuration names),
//! the credential store (KpmID → Kpm, the targets' PSKs), the enrolment store (sealed
//! under the same key), the TLS listener (PSK, and certificates when `cert`/`key`/`ca` are
//! configured) on bastion-http's listener machinery under the caps and timeouts of `bastion
//! das` (`--max-connections` … `--idle-timeout-ms`), then `listening on ADDR:PORT` last.
//! The credential store is re-read when it changes, as `bastion serve` does; the enrolment
//! store is re-read by every lookup that finds it changed, so `bastion mef revoke` applies
//! to the next fetch.
//!
//! With `[mef.est]` the MEF is also the registration authority of certificate enrolment
//! (TS-0003 8.3.6): `bastion_est::router` is mounted on the same listener, so an enrolee
//! enrols over the association it enrols on (Kpm, certificate-less TLS, or its device
//! certificate). Its profiles are the MEF's: the credential the association was made
//! with (KpmID, or the certificate's identity) is certified as the absolute form of its
//! enrolee ID (`EstConfig::certify`), whatever the CSR asks; a revoked enrolee is refused
//! before the EST handler sees the request.

use crate::cli::{MefArgs, MefCommand, MefRunArgs, MefStoreArgs};
use crate::das::{bind, init_logging, listener_limits_of, local, stop_signal};
use crate::limits::connection_gate;
use crate::Failure;
use bastion_est::{Est, EstSettings, ProfileKey, Profiles};
use bastion_mef::config::{EnroleeCredential, EstConfig};
use bastion_mef::{EnrolmentStore, Mef, MefConfig};
use bastion_tls::{CredentialRegistry, ServerCertificate, ServerSettings, StoreKey, TlsServer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the credential store is checked for changes.
const CREDENTIALS_RELOAD: Duration = Duration::from_secs(1);

/// Runs the MEF, or the operator command; returns what to print.
pub fn run(args: &MefArgs) -> Result<Option<String>, Failure> {
    match &args.command {
        Some(MefCommand::Revoke(revoke)) => {
            let store = open_store(&revoke.store)?;
            let count = store
                .revoke(&revoke.enrolee)
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            Ok(Some(format!(
                "revoked {}: {count} enrolment(s); it cannot enrol again\n",
                revoke.enrolee
            )))
        }
        Some(MefCommand::List(args)) => {
            let store = open_store(args)?;
            let mut out = String::new();
            for e in store.list().map_err(|e| Failure::Runtime(e.to_string()))? {
                let state = if e.revoked { "revoked" } else { "active" };
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{state}\n",
                    e.ke_id,
                    e.enrolee_id,
                    e.credential,
                    bastion_proto::time::Timestamp(e.expires).format()
                ));
            }
            for id in store
                .revoked_enrolees()
                .map_err(|e| Failure::Runtime(e.to_string()))?
            {
                out.push_str(&format!("revoked-enrolee\t{id}\n"));
            }
            Ok(Some(out))
        }
        None => serve(&args.run).map(|()| None),
    }
}

fn load_config(path: &Path) -> Result<MefConfig, Failure> {
    MefConfig::load(path).map_err(|e| Failure::Config(format!("{}: {e}", path.display())))
}

fn store_key(flag: Option<&Path>, config: &MefConfig) -> Result<StoreKey, Failure> {
    let file = flag.or(config.credentials_key_file.as_deref());
    StoreKey::from_env_or_file(file).map_err(|e| Failure::Config(format!("store key: {e}")))
}

fn open_enrolments(config: &MefConfig, key: StoreKey) -> Result<EnrolmentStore, Failure> {
    EnrolmentStore::open(&config.store_path(), key, config.max_enrolments)
        .map_err(|e| Failure::Runtime(format!("enrolment store: {e}")))
}

fn open_store(args: &MefStoreArgs) -> Result<EnrolmentStore, Failure> {
    let config = load_config(&args.config)?;
    let key = store_key(args.key_file.as_deref(), &config)?;
    open_enrolments(&config, key)
}

/// The TLS server: PSK always (Kpm, the targets' PSKs), certificates when configured.
fn open_tls(config: &MefConfig, registry: Arc<CredentialRegistry>) -> Result<TlsServer, Failure> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| Failure::Config(format!("cannot read {}: {e}", p.display())))
    };
    let mut server_certificates = Vec::new();
    if let Some((chain, key)) = &config.cert {
        server_certificates.push(ServerCertificate {
            server_names: Vec::new(),
            chain_pem: read(chain)?,
            key_pem: bastion_tls::secret::read_secret_text(key)
                .map_err(|e| Failure::Config(e.to_string()))?,
        });
    }
    let settings = ServerSettings {
        psk: true,
        certificate: !server_certificates.is_empty(),
        require_client_certificate: false,
        server_certificates,
        trust_anchors: config
            .ca
            .iter()
            .map(|p| read(p))
            .collect::<Result<_, _>>()?,
        crl_files: Vec::new(),
        disable_tls13: false,
        remote_psk: None,
        peer_http_authentication: false,
    };
    TlsServer::new(&settings, registry).map_err(|e| Failure::Config(format!("tls: {e}")))
}

fn serve(args: &MefRunArgs) -> Result<(), Failure> {
    init_logging(args.log.as_deref())?;
    let Some(path) = &args.config else {
        return Err(Failure::Config("bastion mef needs --config FILE".into()));
    };
    let config = load_config(path)?;
    let limits = listener_limits_of(&args.limits)?;
    let key = store_key(args.key_file.as_deref(), &config)?;
    create_private_dir(&config.data_dir)?;
    let registry = CredentialRegistry::open(&config.credentials_store, key.clone())
        .map_err(|e| Failure::Config(format!("credential store: {e}")))?;
    let tls = Arc::new(open_tls(&config, registry)?);
    let store = open_enrolments(&config, key)?;
    tracing::info!(
        fqdn = %config.fqdn,
        profiles = config.profiles.len(),
        targets = config.targets.len(),
        "MEF configured"
    );
    let listen = config.listen;
    let est = match &config.est {
        Some(est) => Some(Arc::new(open_est(&config, est)?)),
        None => None,
    };
    let mef = Arc::new(Mef::new(config, store));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bastion-mef")
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = bind(listen).await?;
        let bound = local(&listener)?;
        let stop = stop_signal()
            .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
        let refresh = tls.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CREDENTIALS_RELOAD);
            loop {
                tick.tick().await;
                refresh.refresh_revocation();
            }
        });
        let gate = connection_gate(&limits);
        let timeouts = limits.timeouts;
        let mut app = bastion_mef::server::router(mef.clone(), timeouts);
        if let Some(est) = est {
            app = app.merge(
                bastion_est::router(est, timeouts)
                    .layer(axum::middleware::from_fn_with_state(mef, refuse_revoked)),
            );
        }
        let server = bastion_mef::server::serve_app_tls(listener, tls, app, timeouts, gate);
        // Nothing after the address: scripts read it from the end of this line.
        tracing::info!("listening on {bound}");
        tokio::select! {
            result = server => match result {
                Err(e) => Err(Failure::Runtime(format!("MEF listener failed: {e}"))),
                Ok(()) => Err(Failure::Runtime("the MEF listener stopped".into())),
            },
            signal = stop => {
                tracing::info!(signal, "stopped");
                Ok(())
            }
        }
    })
}

/// The EST server of `[mef.est]`: the MEF's CA, one profile per enrolee profile (looked
/// up by the association's credential), the ledger under `<data-dir>/est`.
fn open_est(config: &MefConfig, est: &EstConfig) -> Result<Est, Failure> {
    let ca = bastion_tls::certs::CertAndKey {
        cert_pem: std::fs::read_to_string(&est.ca_cert).map_err(|e| {
            Failure::Config(format!(
                "[mef.est] cannot read {}: {e}",
                est.ca_cert.display()
            ))
        })?,
        key_pem: bastion_tls::secret::read_secret_text(&est.ca_key)
            .map_err(|e| Failure::Config(format!("[mef.est] {e}")))?,
    };
    let entries = config.profiles.iter().map(|(credential, profile)| {
        let key = match credential {
            EnroleeCredential::Kpm(id) | EnroleeCredential::Certificate(id) => id.clone(),
        };
        let certify = est.certify(&profile.enrolee_id);
        (key, bastion_est::Profile::new(&certify, None, None))
    });
    let profiles = Profiles::from_entries_by(ProfileKey::Credential, entries);
    let settings = EstSettings {
        default_validity_days: est.validity_days,
        crl_validity: Duration::from_secs(u64::from(est.crl_validity_hours) * 3600),
    };
    let state_dir = EstConfig::state_dir(&config.data_dir);
    create_private_dir(&state_dir)?;
    let server = Est::new(ca, profiles, &state_dir, settings)
        .map_err(|e| Failure::Config(format!("[mef.est] {e}")))?;
    tracing::info!(sp = %est.sp_fqdn, "certificate enrolment (EST) on the MEF listener");
    Ok(server)
}

/// Before EST: an enrolee the operator revoked gets no certificate (403, as EST refuses).
async fn refuse_revoked(
    axum::extract::State(mef): axum::extract::State<Arc<Mef>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let enrolee = request
        .extensions()
        .get::<bastion_http::tls::SaPeer>()
        .and_then(|peer| {
            let credential = match peer.0.framework() {
                bastion_tls::Framework::Psk => {
                    EnroleeCredential::Kpm(peer.0.credential().to_owned())
                }
                _ => EnroleeCredential::Certificate(peer.0.originator().to_owned()),
            };
            mef.config().profiles.get(&credential)
        })
        .map(|profile| profile.enrolee_id.clone());
    if let Some(enrolee) = enrolee {
        let store = mef.clone();
        let id = enrolee.clone();
        let revoked = tokio::task::spawn_blocking(move || store.store().is_revoked(&id)).await;
        // Fail closed: an unreadable store refuses as a revoked enrolee would be.
        if !matches!(revoked, Ok(Ok(false))) {
            tracing::info!(enrolee = %enrolee, "EST refused: enrolee revoked");
            let mut refusal =
                axum::response::Response::new(axum::body::Body::from("the enrolee is revoked\n"));
            *refusal.status_mut() = axum::http::StatusCode::FORBIDDEN;
            return refusal;
        }
    }
    next.run(request).await
}

/// Creates `dir` (mode 0700) when missing.
fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", dir.display())))
}
