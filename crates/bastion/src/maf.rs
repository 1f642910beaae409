//! `bastion maf`: runs the M2M Authentication Function of `bastion-maf` (TS-0003 8.8)
//! until SIGINT or SIGTERM, on the listener set-up `bastion das` uses (`das.rs`).
//!
//! Start: set up logging, validate the flags (exit status 2), open the credential store
//! (MAF clients' KmID → Km, bound to their AE-ID / CSE-ID) and the sealed record file
//! (under the same store key), build the TLS server (PSK, and certificates when `--cert`
//! is given), bind, then log `listening on ADDR:PORT` last. The credential store and
//! CRLs are re-read when they change; expired records are dropped every minute. Nothing
//! secret is logged: identities, record IDs and counts only.
//!
//! With `--mef-url` the MAF is also an enrolment target of that MEF (8.8.2.3, "use of
//! remotely provisioned credential"): a PSK identity its credential store lacks that is a
//! KeID of the MEF is fetched as `/fetchCredentials/<KeID>/21` over the MAF's own
//! association with the MEF (`mef_source::MefKeySource`, the CSE's source with SUID 21),
//! and the association is bound to the enrolee ID the MEF answered: that client's Km.

use crate::cli::MafArgs;
use crate::das::{
    bind, init_logging, listener_limits_of, local, open_tls_with, spawn_revocation_refresh,
    stop_signal,
};
use crate::limits::connection_gate;
use crate::mef_source::{MefKeySource, MefSection, ProvisioningSettings, MAF_SUID};
use crate::Failure;
use bastion_maf::{Limits, Maf, MafConfig};
use bastion_tls::StoreKey;
use std::sync::Arc;

/// Runs the MAF until a stop signal.
pub fn run(args: &MafArgs) -> Result<(), Failure> {
    init_logging(args.function.log.as_deref())?;
    let config = config(args)?;
    let key = StoreKey::from_env_or_file(args.function.credentials_key_file.as_deref())
        .map_err(|e| Failure::Config(format!("credential store key: {e}")))?;
    let maf = Maf::open(config, args.state.clone(), key)
        .map_err(|e| Failure::Config(format!("MAF records: {e}")))?;
    let (clients, keys) = maf.counts(bastion_maf::unix_now());
    tracing::info!(fqdn = %maf.config().fqdn, clients, keys, "MAF records loaded");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bastion-maf")
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(args, Arc::new(maf)))
}

fn config(args: &MafArgs) -> Result<MafConfig, Failure> {
    let mut problems = Vec::new();
    if bastion_keys::KeyIdentifier::new("x", &args.fqdn).is_err() {
        problems.push(format!("--fqdn {:?} is not an FQDN", args.fqdn));
    }
    if args.sp_id.is_empty() || args.sp_id.contains('/') {
        problems.push(format!("--sp-id {:?} is not an SP-ID", args.sp_id));
    }
    if args.function.credentials_store.is_none() {
        problems.push("--credentials-store is required (the clients' KmIDs)".to_owned());
    }
    let limits = Limits::configured(
        args.max_registrations_per_client,
        args.max_keys_per_client,
        args.max_lifetime_secs,
        [
            "--max-registrations-per-client",
            "--max-keys-per-client",
            "--max-lifetime-secs",
        ],
    )
    .unwrap_or_else(|more| {
        problems.extend(more);
        Limits::default()
    });
    if !problems.is_empty() {
        return Err(Failure::Config(problems.join("; ")));
    }
    Ok(MafConfig {
        function: bastion_maf::MAF,
        fqdn: args.fqdn.to_ascii_lowercase(),
        sp_id: args.sp_id.clone(),
        limits,
    })
}

/// The MEF key source of `--mef-*`, if asked for: the `[provisioning]` checks of the CSE,
/// named by flag.
fn mef_source(args: &MafArgs) -> Result<Option<Arc<dyn bastion_tls::RemotePskSource>>, Failure> {
    let m = &args.mef;
    let (Some(url), Some(fqdn), Some(origin)) = (&m.mef_url, &m.mef_fqdn, &m.mef_origin) else {
        return Ok(None);
    };
    let section = MefSection {
        mef_url: url.clone(),
        mef_fqdn: fqdn.clone(),
        mef_psk_id: m.mef_psk_id.clone(),
        mef_psk_file: m.mef_psk_file.clone(),
        mef_certificate_file: m.mef_cert.clone(),
        mef_private_key_file: m.mef_key.clone(),
        mef_trust_anchor_file: m.mef_ca.clone(),
        fetch_timeout_ms: m.mef_timeout_ms,
        ..MefSection::default()
    };
    let settings = ProvisioningSettings::resolve(&section).map_err(|problems| {
        let problems: Vec<String> = problems
            .iter()
            .map(|p| p.replacen("[provisioning] ", "--", 1))
            .collect();
        Failure::Config(problems.join("; "))
    })?;
    let source = MefKeySource::new(&settings, origin, MAF_SUID, |p| p.to_path_buf()).map_err(
        |e| match e {
            Failure::Config(m) => Failure::Config(m.replace("[provisioning] ", "--")),
            other => other,
        },
    )?;
    tracing::info!(mef = %url, fqdn = %fqdn, "Km provisioned by the MEF accepted (SUID 21)");
    Ok(Some(Arc::new(source)))
}

/// How often expired records are dropped from memory and disk.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

async fn serve(args: &MafArgs, maf: Arc<Maf>) -> Result<(), Failure> {
    let limits = listener_limits_of(&args.function.limits)?;
    let server = open_tls_with(&args.function, mef_source(args)?)?;
    let listener = bind(args.tls_listen).await?;
    let stop = stop_signal()
        .map_err(|e| Failure::Runtime(format!("cannot install signal handlers: {e}")))?;
    spawn_revocation_refresh(server.clone());
    let purging = maf.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            purging.purge(bastion_maf::unix_now());
        }
    });
    let bound = local(&listener)?;
    let serving = bastion_maf::server::serve_tls(
        listener,
        server,
        maf,
        limits.timeouts,
        connection_gate(&limits),
    );
    // Nothing after the address: scripts read it from the end of this line.
    tracing::info!("listening on {bound}");
    tokio::select! {
        result = serving => match result {
            Err(e) => Err(Failure::Runtime(format!("MAF listener failed: {e}"))),
            Ok(()) => Err(Failure::Runtime("the MAF listener stopped".into())),
        },
        signal = stop => {
            tracing::info!(signal, "stopped");
            Ok(())
        }
    }
}
