//! `bastion mef`: runs the M2M Enrolment Function of `bastion-mef` (TS-0003 8.3) until
//! SIGINT or SIGTERM, and its operator commands (`revoke`, `list`).
//!
//! Start: logging, the configuration file (a bad one is exit status 2), the store key
//! (`BASTION_CREDENTIALS_KEY` or `--key-file`, else the file the configuration names),
//! the credential store (KpmID → Kpm, the targets' PSKs), the enrolment store (sealed
//! under the same key), the TLS listener (PSK, and certificates when `cert`/`key`/`ca` are
//! configured) on bastion-http's listener machinery under the caps and timeouts of `bastion
//! das` (`--max-connections` … `--idle-timeout-ms`), then `listening on ADDR:PORT` last.
//! The credential store is re-read when it changes, as `bastion serve` does; every lookup
//! in the enrolment store first reads the entries another process appended to it, so
//! `bastion mef revoke` applies to the next fetch. With `[mef.clients]` the MEF client procedures (8.3.5) and commands
//! (8.3.9) are served too (`clients.sealed`, `commands.sealed`), and `bastion mef command`
//! queues and lists commands ([`command`]); a running MEF reads the command file afresh
//! when it changed.
//!
//! With `[mef.est]` the MEF is also the registration authority of certificate enrolment
//! (TS-0003 8.3.6): `bastion_est::router` is mounted on the same listener, so an enrolee
//! enrols over the association it enrols on (Kpm, certificate-less TLS, or its device
//! certificate). Its profiles are the MEF's: the credential the association was made
//! with (KpmID, or the certificate's identity) is certified as the absolute form of its
//! enrolee ID (`EstConfig::certify`), whatever the CSR asks; a revoked enrolee is refused
//! before the EST handler sees the request.
//!
//! With `key-store` configured, Ke is kept in that key store (opened before the
//! listener: a missing PIN is exit status 2), expired enrolments are swept and their keys
//! deleted every [`SWEEP`], and `revoke` deletes the revoked enrolments' keys.

use crate::cli::{
    MefArgs, MefCommand, MefCommandAddArgs, MefCommandArgs, MefCommandClass, MefCommandCommand,
    MefRunArgs, MefStoreArgs,
};
use crate::das::{bind, init_logging, listener_limits_of, local, stop_signal};
use crate::limits::connection_gate;
use crate::Failure;
use bastion_est::{Est, EstSettings, ProfileKey, Profiles};
use bastion_keystore::StoreSecrets;
use bastion_mef::commands::{self, Description, MefCommands};
use bastion_mef::config::{EnroleeCredential, EstConfig};
use bastion_mef::{EnrolmentStore, KeKeeper, Mef, MefConfig};
use bastion_tls::{CredentialRegistry, ServerCertificate, ServerSettings, StoreKey, TlsServer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often expired MEF client records, and the commands of ended registrations, go.
const PURGE_EVERY: Duration = Duration::from_secs(60);

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
        Some(MefCommand::Command(command)) => self::command(command).map(Some),
        None => serve(&args.run).map(|()| None),
    }
}

/// The MEF client records (MEF function of `bastion_maf`) with the commands under them.
fn open_clients(
    config: &MefConfig,
    clients: &bastion_mef::config::ClientsConfig,
    key: StoreKey,
) -> Result<(bastion_maf::Maf, Arc<MefCommands>), Failure> {
    let commands = Arc::new(
        MefCommands::open(
            &config.commands_path(),
            key.clone(),
            clients.command_retry_seconds,
            clients.max_commands,
        )
        .map_err(|e| Failure::Runtime(format!("MEF client commands: {e}")))?,
    );
    let maf_config = bastion_maf::MafConfig {
        function: bastion_maf::MEF,
        fqdn: config.fqdn.to_ascii_lowercase(),
        sp_id: clients.sp_id.clone(),
        limits: clients.limits,
    };
    let records = bastion_maf::Maf::open(maf_config, config.clients_path(), key)
        .map_err(|e| Failure::Runtime(format!("MEF client records: {e}")))?
        .with_children(commands.clone());
    Ok((records, commands))
}

/// `bastion mef command add|list`: the operator's side of the MEF client commands.
fn command(args: &MefCommandArgs) -> Result<String, Failure> {
    let store = &args.store;
    let config = load_config(&store.config)?;
    let Some(clients) = &config.clients else {
        return Err(Failure::Config(
            "the MEF serves no client procedures: [mef.clients] is not configured".into(),
        ));
    };
    let key = store_key(store.key_file.as_deref(), &config)?;
    if !config.clients_path().exists() {
        return Err(Failure::Runtime(format!(
            "{}: no MEF client records yet (start the MEF first)",
            config.clients_path().display()
        )));
    }
    let (records, commands) = open_clients(&config, clients, key)?;
    let now = bastion_maf::unix_now();
    match &args.command {
        MefCommandCommand::Add(a) => {
            let Some(registration) = records.registration(&a.reg_id, now) else {
                return Err(Failure::Config(format!(
                    "no live MEF client registration {:?}",
                    a.reg_id
                )));
            };
            let description = describe(&config.fqdn, a).map_err(Failure::Config)?;
            let id = commands
                .add(&registration, description)
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            Ok(format!("cmd-id: {id}\n"))
        }
        MefCommandCommand::List => {
            let queues = commands
                .snapshot()
                .map_err(|e| Failure::Runtime(e.to_string()))?;
            let mut out = String::new();
            for (reg_id, queue) in queues.queues() {
                for c in queue.done.iter().chain(queue.pending.iter()) {
                    let state = match (c.status, c.issued) {
                        (Some(code), _) => format!(
                            "reported {code} {}",
                            commands::status_name(code).unwrap_or("?")
                        ),
                        (None, 0) => "queued".to_owned(),
                        (None, 1) => "issued".to_owned(),
                        (None, n) => format!("reissued {}", n - 1),
                    };
                    out.push_str(&format!(
                        "{reg_id}\t{}\t{}\t{}\t{state}\n",
                        queue.client,
                        c.id,
                        commands::class::name(c.description.ccl)
                    ));
                }
            }
            Ok(out)
        }
    }
}

/// The cmdDescription of `bastion mef command add`.
fn describe(mef_fqdn: &str, a: &MefCommandAddArgs) -> Result<Description, String> {
    let need = |v: &Option<String>, flag: &str| {
        v.clone()
            .ok_or_else(|| format!("--class {} needs {flag}", a.class.name()))
    };
    let target = a.target_id.clone();
    match a.class {
        MefCommandClass::CertProv => Description::cert_prov(
            mef_fqdn,
            match a.protocol.as_deref().unwrap_or("est") {
                "est" => 1,
                "scep" => 2,
                other => return Err(format!("--protocol {other:?}: est or scep")),
            },
            &need(&a.uri, "--uri")?,
            match need(&a.subject_type, "--subject-type")?.as_str() {
                "node" => 1,
                "cse" => 2,
                "ae" => 3,
                other => return Err(format!("--subject-type {other:?}: node, cse or ae")),
            },
            &need(&a.subject_id, "--subject-id")?,
            target,
        ),
        MefCommandClass::DevCfg => Description::dev_cfg(
            mef_fqdn,
            match need(&a.dm, "--dm")?.as_str() {
                "oma-dm-1.3" => 1,
                "oma-dm-2.0" => 2,
                "lwm2m" => 3,
                "tr-069" => 4,
                other => {
                    return Err(format!(
                        "--dm {other:?}: oma-dm-1.3, oma-dm-2.0, lwm2m or tr-069"
                    ))
                }
            },
            &need(&a.uri, "--uri")?,
            target,
        ),
        MefCommandClass::MoNode => Description::mo_node(
            &need(&a.object_path, "--object-path")?,
            match need(&a.object_type, "--object-type")?.as_str() {
                "authentication-profile" => 1,
                "trust-anchor" => 2,
                "maf-client-reg-cfg" => 3,
                other => {
                    return Err(format!(
                        "--object-type {other:?}: authentication-profile, trust-anchor or \
                         maf-client-reg-cfg"
                    ))
                }
            },
            a.suid,
            target,
        ),
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
    let store = open_enrolments(&config, key.clone())?;
    let clients = match &config.clients {
        Some(c) => Some(open_clients(&config, c, key)?),
        None => None,
    };
    let keys = open_keys(&config, args.key_file.as_deref())?;
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
    let mut mef = Mef::new(config, store).with_keys(keys);
    let mut purging = None;
    if let Some((records, commands)) = clients {
        let records = Arc::new(records);
        let (registrations, keys) = records.counts(bastion_maf::unix_now());
        tracing::info!(registrations, keys, "MEF client records loaded");
        purging = Some((records.clone(), commands));
        mef = mef.with_clients(records);
    }
    let mef = Arc::new(mef);
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
        if let Some((records, commands)) = purging {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PURGE_EVERY);
                loop {
                    tick.tick().await;
                    let now = bastion_maf::unix_now();
                    records.purge(now);
                    let live = |id: &str| records.registration(id, now).is_some();
                    if let Err(e) = commands.purge(live) {
                        tracing::error!(error = %e, "cannot purge the MEF client commands");
                    }
                }
            });
        }
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
