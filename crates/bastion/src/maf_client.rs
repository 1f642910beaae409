//! `bastion maf-client`: the MAF Client procedures (TS-0003 8.8.2.3–8.8.2.10) from the
//! command line, for a device or an operator acting for a CSE, on `bastion_maf::MafClient`.
//!
//! Each invocation opens one MAF security association (KmID/Km with `--psk-id` and
//! `--psk-file` or `BASTION_PSK_HEX`, or a certificate) and runs one procedure over it. A
//! key registration without `--key-file` registers the Kc both ends export from that
//! association. Key values are written, in hex, to `--key-out` (mode 0600, replaced
//! atomically) and never printed. Output: `name: value` lines; a refusal ends with exit
//! status 1 and `MAF answered RSC: reason` on standard error.

use crate::cli::{MafClientArgs, MafClientCommand, MafRegisterKeyArgs, MafUpdateKeyArgs};
use crate::Failure;
use bastion_client::ClientConfig;
use bastion_keys::{KeyIdentifier, Suid};
use bastion_maf::client::{KeyRequest, MafKey};
use bastion_maf::MafClient;
use bastion_proto::time::Timestamp;
use bastion_tls::PskKey;
use std::fmt::Write;
use std::time::Duration;

/// Runs one procedure and returns what to print.
pub fn run(command: &MafClientCommand) -> Result<String, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(procedure(command))
}

fn common(command: &MafClientCommand) -> &MafClientArgs {
    match command {
        MafClientCommand::Register(a) => &a.maf,
        MafClientCommand::Config(a) | MafClientCommand::Deregister(a) => &a.maf,
        MafClientCommand::Update(a) => &a.maf,
        MafClientCommand::RegisterKey(a) => &a.maf,
        MafClientCommand::RetrieveKey(a) | MafClientCommand::DeregisterKey(a) => &a.maf,
        MafClientCommand::UpdateKey(a) => &a.maf,
    }
}

async fn session(args: &MafClientArgs) -> Result<MafClient, Failure> {
    let Some(tls) = crate::req::tls_client(&args.tls)? else {
        return Err(Failure::Config(
            "a MAF credential is required: --psk-id (KmID) or --cert".to_owned(),
        ));
    };
    if bastion_keys::KeyIdentifier::new("x", &args.maf_fqdn).is_err() {
        return Err(Failure::Config(format!(
            "--maf-fqdn {:?} is not an FQDN",
            args.maf_fqdn
        )));
    }
    let config = ClientConfig {
        timeout: Duration::from_secs(args.timeout.max(1)),
        ..ClientConfig::default()
    };
    MafClient::session(
        &tls,
        &args.url,
        args.tls.server_name.as_deref(),
        &args.maf_fqdn,
        &args.from,
        config,
    )
    .await
    .map_err(|e| Failure::Runtime(e.to_string()))
}

fn in_secs(now: i64, secs: i64) -> Result<i64, Failure> {
    match secs {
        1.. => Ok(now.saturating_add(secs)),
        _ => Err(Failure::Config(
            "lifetimes are at least 1 second".to_owned(),
        )),
    }
}

async fn procedure(command: &MafClientCommand) -> Result<String, Failure> {
    let maf = session(common(command)).await?;
    let now = bastion_maf::unix_now();
    let refused = |e: bastion_maf::MafClientError| Failure::Runtime(e.to_string());
    let mut out = String::new();
    match command {
        MafClientCommand::Register(a) => {
            let r = maf
                .register(in_secs(now, a.expires_in)?, a.label.clone(), &a.admin_fqdn)
                .await
                .map_err(refused)?;
            let _ = writeln!(out, "reg-id: {}", r.id);
            let _ = writeln!(out, "expires: {}", Timestamp(r.expires).format());
            let _ = writeln!(out, "client-id: {}", r.client_id);
            let _ = writeln!(out, "admin-fqdn: {}", r.admin_fqdn);
        }
        MafClientCommand::Config(a) => {
            let c = maf.configuration(&a.reg_id).await.map_err(refused)?;
            let _ = writeln!(out, "expires: {}", c.et.unwrap_or_default());
            let _ = writeln!(out, "fqdn: {}", c.fqdn.unwrap_or_default());
            let _ = writeln!(out, "admin-fqdn: {}", c.adfq.unwrap_or_default());
            let _ = writeln!(out, "labels: {}", c.lbl.unwrap_or_default().join(" "));
        }
        MafClientCommand::Update(a) => {
            let expires = a.expires_in.map(|s| in_secs(now, s)).transpose()?;
            let labels = (!a.label.is_empty()).then(|| a.label.clone());
            let c = maf
                .update_registration(&a.reg_id, expires, labels)
                .await
                .map_err(refused)?;
            if let Some(et) = c.et {
                let _ = writeln!(out, "expires: {et}");
            }
            if let Some(lbl) = c.lbl {
                let _ = writeln!(out, "labels: {}", lbl.join(" "));
            }
        }
        MafClientCommand::Deregister(a) => {
            maf.deregister(&a.reg_id).await.map_err(refused)?;
            let _ = writeln!(out, "deregistered: {}", a.reg_id);
        }
        MafClientCommand::RegisterKey(a) => {
            let key = register_key(&maf, a, now).await?;
            write_key(&a.key_out, &key.key)?;
            describe(&mut out, &key);
        }
        MafClientCommand::RetrieveKey(a) => {
            let key = maf
                .retrieve_key(&relative(&a.key_id, &maf)?)
                .await
                .map_err(refused)?;
            if let Some(path) = &a.key_out {
                write_key(path, &key.key)?;
            }
            describe(&mut out, &key);
        }
        MafClientCommand::UpdateKey(a) => update_key(&maf, a, now, &mut out).await?,
        MafClientCommand::DeregisterKey(a) => {
            maf.deregister_key(&relative(&a.key_id, &maf)?)
                .await
                .map_err(refused)?;
            let _ = writeln!(out, "deregistered: {}", a.key_id);
        }
    }
    Ok(out)
}

async fn register_key(
    maf: &MafClient,
    a: &MafRegisterKeyArgs,
    now: i64,
) -> Result<MafKey, Failure> {
    let suid = Suid::from_code(a.suid).map_err(|e| Failure::Config(format!("--suid: {e}")))?;
    let key = a
        .key_file
        .as_deref()
        .map(PskKey::from_file)
        .transpose()
        .map_err(|e| Failure::Config(format!("--key-file: {e}")))?;
    maf.register_key(KeyRequest {
        expires: in_secs(now, a.expires_in)?,
        labels: a.label.clone(),
        admin_fqdn: a.admin_fqdn.clone(),
        suid,
        target_ids: a.target.clone(),
        key,
    })
    .await
    .map_err(|e| Failure::Runtime(e.to_string()))
}

async fn update_key(
    maf: &MafClient,
    a: &MafUpdateKeyArgs,
    now: i64,
    out: &mut String,
) -> Result<(), Failure> {
    let expires = a.expires_in.map(|s| in_secs(now, s)).transpose()?;
    let labels = (!a.label.is_empty()).then(|| a.label.clone());
    let targets = (!a.target.is_empty()).then(|| a.target.clone());
    let k = maf
        .update_key(&relative(&a.key_id, maf)?, expires, labels, targets)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    if let Some(et) = k.et {
        let _ = writeln!(out, "expires: {et}");
    }
    if let Some(lbl) = k.lbl {
        let _ = writeln!(out, "labels: {}", lbl.join(" "));
    }
    if let Some(tids) = k.tids {
        let _ = writeln!(out, "targets: {}", tids.join(" "));
    }
    Ok(())
}

/// The RelativeKeyID of `--key-id`, given alone or as `RelativeKeyID@MAF-FQDN` of this MAF.
fn relative(key_id: &str, maf: &MafClient) -> Result<String, Failure> {
    let bad = |why: String| Failure::Config(format!("--key-id {key_id:?}: {why}"));
    if key_id.contains('@') {
        let id = KeyIdentifier::parse(key_id).map_err(|e| bad(e.to_string()))?;
        if !id.fqdn().eq_ignore_ascii_case(maf.maf_fqdn()) {
            return Err(bad(format!("not a key of {}", maf.maf_fqdn())));
        }
        return Ok(id.relative().to_owned());
    }
    KeyIdentifier::new(key_id, maf.maf_fqdn())
        .map(|id| id.relative().to_owned())
        .map_err(|e| bad(e.to_string()))
}

fn write_key(path: &std::path::Path, key: &PskKey) -> Result<(), Failure> {
    let mut text = key.to_hex();
    text.push('\n');
    bastion_tls::sealed::write_atomically(path, text.as_bytes())
        .map_err(|e| Failure::Runtime(format!("--key-out: {e}")))
}

fn describe(out: &mut String, key: &MafKey) {
    let _ = writeln!(out, "key-id: {}", key.identifier);
    let _ = writeln!(out, "expires: {}", Timestamp(key.expires).format());
    let _ = writeln!(out, "suid: {}", key.suid.code());
    let _ = writeln!(
        out,
        "source: {} ({})",
        key.source.originator(),
        bastion_maf::wire::kind_of(&key.source)
    );
    if !key.target_ids.is_empty() {
        let _ = writeln!(out, "targets: {}", key.target_ids.join(" "));
    }
}
