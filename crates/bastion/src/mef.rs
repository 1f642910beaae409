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
//! to the next fetch. With `key-store` configured, Ke is kept in that key store (opened
//! before the listener: a missing PIN is exit status 2), expired enrolments are swept and
//! their keys deleted every [`SWEEP`], and `revoke` deletes the revoked enrolments' keys.

use crate::cli::{MefArgs, MefCommand, MefRunArgs, MefStoreArgs};
use crate::das::{bind, init_logging, listener_limits_of, local, stop_signal};
use crate::limits::connection_gate;
use crate::Failure;
use bastion_keystore::StoreSecrets;
use bastion_mef::{EnrolmentStore, KeKeeper, Mef, MefConfig};
use bastion_tls::{CredentialRegistry, ServerCertificate, ServerSettings, StoreKey, TlsServer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the credential store is checked for changes.
const CREDENTIALS_RELOAD: Duration = Duration::from_secs(1);
/// How often expired enrolments are dropped and their keys deleted from the key store.
const SWEEP: Duration = Duration::from_secs(30);

/// Runs the MEF, or the operator command; returns what to print.
pub fn run(args: &MefArgs) -> Result<Option<String>, Failure> {
    match &args.command {
        Some(MefCommand::Revoke(revoke)) => {
            let config = load_config(&revoke.store.config)?;
            let store = open_store(&revoke.store)?;
            let revocation = store
                .revoke(&revoke.enrolee)
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            let done = format!(
                "revoked {}: {} enrolment(s); it cannot enrol again\n",
                revoke.enrolee, revocation.count
            );
            // The revocation holds already (revoked records release nothing); deleting
            // the keys is the second step, and its failure is reported as such.
            if !revocation.keys.is_empty() {
                let not_deleted = |e: String| {
                    Failure::Runtime(format!(
                        "{}; but its keys were not deleted from the key store: {e}",
                        done.trim_end()
                    ))
                };
                let keys = open_keys(&config, revoke.store.key_file.as_deref())
                    .map_err(|e| not_deleted(e.to_string()))?;
                if let Some(store) = keys.store() {
                    for name in &revocation.keys {
                        match store.delete(name) {
                            Ok(()) | Err(bastion_keystore::KeyStoreError::NotFound(_)) => {}
                            Err(e) => return Err(not_deleted(e.to_string())),
                        }
                    }
                }
            }
            Ok(Some(done))
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

/// The keeper of Ke: the configured key store (the file store under the credential
/// store's key, a token with its PIN), or the sealed records.
fn open_keys(config: &MefConfig, key_file: Option<&Path>) -> Result<KeKeeper, Failure> {
    let Some(spec) = &config.key_store else {
        return Ok(KeKeeper::sealed());
    };
    let secrets = StoreSecrets {
        key_file: key_file
            .or(config.credentials_key_file.as_deref())
            .map(Path::to_owned),
        pin_file: config.key_store_pin_file.clone(),
    };
    let store = bastion_keystore::open(spec, &secrets).map_err(|e| {
        let message = format!("key store {spec}: {e}");
        match e.is_usage() {
            true => Failure::Config(message),
            false => Failure::Runtime(message),
        }
    })?;
    tracing::info!(key_store = %spec, level = %store.protection_level(),
        "enrolment keys kept in the key store");
    Ok(KeKeeper::in_store(store))
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
    let keys = open_keys(&config, args.key_file.as_deref())?;
    tracing::info!(
        fqdn = %config.fqdn,
        profiles = config.profiles.len(),
        targets = config.targets.len(),
        "MEF configured"
    );
    let listen = config.listen;
    let mef = Arc::new(Mef::new(config, store).with_keys(keys));
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
        let sweeper = mef.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            loop {
                tick.tick().await;
                let mef = sweeper.clone();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                match tokio::task::spawn_blocking(move || mef.sweep(now)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(keys = n, "expired enrolments' keys deleted"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "expiry sweep failed"),
                    Err(_) => tracing::warn!("expiry sweep task failed"),
                }
            }
        });
        let gate = connection_gate(&limits);
        let server = bastion_mef::server::serve_tls(listener, tls, mef, limits.timeouts, gate);
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
