//! `bastion maf-client` and `bastion mef-client`: the MAF Client procedures (TS-0003
//! 8.8.2.3–8.8.2.10) and the same procedures of a MEF Client (8.3.5.2.3–8.3.5.2.10) from
//! the command line, for a device or an operator acting for a CSE, on
//! `bastion_maf::MafClient` with the [`Function`] spoken to; and the MEF client commands
//! (8.3.9: `next-command`, `report-command`).
//!
//! Each invocation opens one MAF (MEF) security association (KmID/Km with `--psk-id` and
//! `--psk-file` or `BASTION_PSK_HEX`, or a certificate) and runs one procedure over it. A
//! key registration without `--key-file` registers the Kc both ends export from that
//! association. Key values are written, in hex, to `--key-out` (mode 0600, replaced
//! atomically) and never printed. Output: `name: value` lines; a refusal ends with exit
//! status 1 and `MAF answered RSC: reason` (`MEF answered …`) on standard error.
//!
//! `run-commands` is the client's side of the commands: it executes each one it fetches
//! over the one association and reports its status, CERT_PROV by the EST enrolment of
//! `bastion enrol` ([`crate::enrol::enrol_certificate`]) at the MEF, the other classes
//! reported not supported.

use crate::cli::{
    MafClientArgs, MafClientCommand, MafRegisterKeyArgs, MafUpdateKeyArgs, MefClientCommand,
    MefReportArgs, MefRunCommandsArgs,
};
use crate::enrol::EstFailure;
use crate::Failure;
use bastion_client::ClientConfig;
use bastion_keys::{KeyIdentifier, Suid};
use bastion_maf::client::{KeyRequest, MafKey};
use bastion_maf::Function;
use bastion_maf::MafClient;
use bastion_mef::commands::{self, class, CertProvArgs, CommandMsg, Description};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Rsc};
use bastion_tls::PskKey;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// Runs one MAF procedure and returns what to print.
pub fn run(command: &MafClientCommand) -> Result<String, Failure> {
    runtime()?.block_on(async {
        let maf = session(bastion_maf::MAF, common(command)).await?;
        procedure(&maf, bastion_maf::MAF, command)
            .await
            .map(|(out, _)| out)
    })
}

/// Runs one MEF procedure or command exchange and returns what to print.
pub fn run_mef(command: &MefClientCommand) -> Result<String, Failure> {
    let runtime = runtime()?;
    match command {
        MefClientCommand::Procedure(p) => runtime.block_on(async {
            let mef = session(bastion_maf::MEF, common(p)).await?;
            let (mut out, registration) = procedure(&mef, bastion_maf::MEF, p).await?;
            // 8.3.4.6: a command retrieve follows every registration procedure but the
            // de-registration, on the same association.
            if let Some(reg_id) = registration {
                let next = command_exchange(&mef, &reg_id, None).await?;
                out.push_str(&describe_command(&next));
            }
            Ok(out)
        }),
        MefClientCommand::NextCommand(a) => runtime.block_on(async {
            let mef = session(bastion_maf::MEF, &a.maf).await?;
            let got = command_exchange(&mef, &a.reg_id, None).await?;
            Ok(describe_command(&got))
        }),
        MefClientCommand::ReportCommand(a) => runtime.block_on(report_command(a)),
        MefClientCommand::RunCommands(a) => {
            let mut out = String::new();
            match runtime.block_on(run_commands(a, &mut out)) {
                Ok(()) => Ok(out),
                Err(e) => {
                    // What was executed and reported before the failure is still said.
                    use std::io::Write as _;
                    let mut stdout = std::io::stdout().lock();
                    let _ = stdout
                        .write_all(out.as_bytes())
                        .and_then(|()| stdout.flush());
                    Err(e)
                }
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))
}

/// MEF Client Command Retrieve (no report) or Update (`report`: cmdID, status): the
/// command the MEF issues next.
async fn command_exchange(
    mef: &MafClient,
    reg_id: &str,
    report: Option<(&str, u16)>,
) -> Result<CommandMsg, Failure> {
    let path = format!(
        "{}/{reg_id}/{}",
        bastion_maf::wire::CLIENTS,
        commands::CHILD
    );
    let (op, pc, expect) = match report {
        None => (Operation::Retrieve, None, Rsc::Ok),
        Some((cid, csc)) => {
            let msg = CommandMsg {
                cid: Some(cid.to_owned()),
                csc: Some(csc),
                dsc: None,
            };
            let pc = bastion_maf::wire::wrap(commands::ROOT, &msg);
            (Operation::Update, Some(pc), Rsc::Updated)
        }
    };
    let got = mef
        .send(op, &path, None, pc, expect)
        .await
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let msg: CommandMsg = bastion_maf::wire::unwrap(commands::ROOT, got.as_ref())
        .map_err(|e| Failure::Runtime(format!("MEF response malformed: {e}")))?;
    if msg.cid.is_none() || msg.dsc.is_none() || msg.csc.is_none() {
        return Err(Failure::Runtime(
            "MEF response malformed: a command needs cid, dsc and csc".into(),
        ));
    }
    Ok(msg)
}

async fn report_command(a: &MefReportArgs) -> Result<String, Failure> {
    if commands::status_name(a.status).is_none() {
        return Err(Failure::Config(format!(
            "--status {} is not a cmdStatusCode",
            a.status
        )));
    }
    let mef = session(bastion_maf::MEF, &a.maf).await?;
    let (next, mut out) = report(&mef, &a.reg_id, &a.cmd_id, a.status).await?;
    out.push_str(&describe_command(&next));
    Ok(out)
}

/// Reports `status` on `cid` and returns the next command, with a line when the answer
/// re-issued the cmdID just reported: that is reported 40 REPEATED_CMD_ID once (8.3.9.2
/// step 5b) and what follows returned.
async fn report(
    mef: &MafClient,
    reg_id: &str,
    cid: &str,
    status: u16,
) -> Result<(CommandMsg, String), Failure> {
    let mut next = command_exchange(mef, reg_id, Some((cid, status))).await?;
    let mut out = String::new();
    if next.cid.as_deref() == Some(cid) {
        let _ = writeln!(
            out,
            "repeated: {cid} (reported {})",
            commands::REPEATED_CMD_ID
        );
        next = command_exchange(mef, reg_id, Some((cid, commands::REPEATED_CMD_ID))).await?;
    }
    Ok((next, out))
}

/// `run-commands`: the pending commands fetched, executed and reported in turn over one
/// association, at most `--max-commands` of them, until NO_MORE_COMMANDS. Appends to `out`
/// per command `cmd-id`, `class`, `result: CODE NAME` and what it did or why it failed.
async fn run_commands(a: &MefRunCommandsArgs, out: &mut String) -> Result<(), Failure> {
    let mef = session(bastion_maf::MEF, &a.maf).await?;
    let mut next = command_exchange(&mef, &a.reg_id, None).await?;
    for _ in 0..a.max_commands {
        let (Some(cid), Some(dsc)) = (next.cid.clone(), next.dsc.as_ref()) else {
            return Err(Failure::Runtime(
                "MEF response malformed: a command needs cid and dsc".into(),
            ));
        };
        if dsc.ccl == class::NO_MORE_COMMANDS {
            let retry = dsc.arg.nmc.as_ref().map_or("", |n| n.rtd.as_str());
            let _ = writeln!(out, "no-more-commands: retry {retry}");
            return Ok(());
        }
        let _ = writeln!(out, "cmd-id: {cid}");
        let _ = writeln!(out, "class: {} {}", dsc.ccl, class::name(dsc.ccl));
        let (status, said) = execute(&mef, &a.dir, dsc).await;
        let name = commands::status_name(status).unwrap_or("?");
        let _ = writeln!(out, "result: {status} {name}");
        out.push_str(&said);
        let (following, repeated) = report(&mef, &a.reg_id, &cid, status).await?;
        out.push_str(&repeated);
        next = following;
    }
    Err(Failure::Runtime(format!(
        "more than --max-commands {} commands are pending: run again",
        a.max_commands
    )))
}

/// Executes one command: its cmdStatusCode and the lines to print. Only CERT_PROV is
/// executed; DEV_CFG and MO_NODE are 41 CLASS_NOT_SUPPORTED.
async fn execute(mef: &MafClient, dir: &Path, dsc: &Description) -> (u16, String) {
    if dsc.ccl != class::CERT_PROV {
        return (commands::CLASS_NOT_SUPPORTED, String::new());
    }
    match cert_prov(mef, dir, dsc.arg.cpa.as_ref()).await {
        Ok(said) => (commands::OK, said),
        Err((status, reason)) => (status, format!("reason: {reason}\n")),
    }
}

/// CERT_PROV (8.3.9.7) with EST: the enrolment of `bastion enrol`'s certificate
/// instruction for certSubjectID, at the path of the command's URI on this association
/// (the URI's host is the MEF's FQDN; the MEF is where the association goes), then
/// `cert.pem`, `key.pem`, `ca.pem` into `dir`, all or nothing. The error is the status to
/// report and why.
async fn cert_prov(
    mef: &MafClient,
    dir: &Path,
    args: Option<&CertProvArgs>,
) -> Result<String, (u16, String)> {
    let bad = |reason: &str| (commands::BAD_ARGUMENTS, reason.to_owned());
    let unacceptable = |reason: &str| (commands::UNACCEPTABLE_ARGUMENTS, reason.to_owned());
    let args = args.ok_or_else(|| bad("no certProvCmdArgs"))?;
    if args.cpp != 1 {
        return Err(unacceptable("only EST (certProvProtocolID 1) is supported"));
    }
    // certSubjectID: an absolute ID of the kind certSubjectType names (the CSR's SAN
    // URI); this client certifies no Node-IDs.
    match (
        args.cst,
        bastion_tls::identity::binding_from_san_uri(&args.csi),
    ) {
        (1, _) => return Err(unacceptable("Node-ID certificates are not supported")),
        (2, Some(bastion_tls::Binding::Cse(_))) | (3, Some(bastion_tls::Binding::Ae(_))) => {}
        (2, _) => return Err(unacceptable("certSubjectID is not an absolute CSE-ID")),
        (3, _) => return Err(unacceptable("certSubjectID is not an absolute AE-ID")),
        _ => return Err(unacceptable("certSubjectType is 1 to 3")),
    }
    let uri: axum::http::Uri = args
        .uri
        .parse()
        .map_err(|_| bad("the certificate provisioning URI is not a URI"))?;
    match uri.host() {
        Some(host) if host.eq_ignore_ascii_case(mef.maf_fqdn()) => {}
        Some(_) => return Err(unacceptable("the EST URI's host is not the MEF's FQDN")),
        None => return Err(bad("the certificate provisioning URI is not absolute")),
    }
    let (client, url) = mef.http();
    let base = format!("{url}{}", uri.path().trim_end_matches('/'));
    let files = crate::enrol::enrol_certificate(client, &base, &args.csi)
        .await
        .map_err(|e| match e {
            EstFailure::Client(reason) => (commands::CERT_PROV_CLIENT_ERROR, reason),
            EstFailure::Server(reason) => (commands::CERT_PROV_SERVER_ERROR, reason),
        })?;
    install(dir, &files).map_err(|e| {
        (
            commands::CERT_PROV_CLIENT_ERROR,
            format!("cannot write {}: {e}", dir.display()),
        )
    })?;
    Ok(format!(
        "certificate: {}\ncredentials: {}\n",
        args.csi,
        dir.display()
    ))
}

/// Writes `files` into `dir` (created, mode 0700, when missing), mode 0600, all or
/// nothing: every file is written and synced beside its final name before any is renamed
/// over the one it replaces.
fn install(dir: &Path, files: &[(&'static str, Zeroizing<String>)]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let staged: Vec<_> = files
        .iter()
        .map(|(name, value)| {
            let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            (tmp, dir.join(name), value)
        })
        .collect();
    let written = staged.iter().try_for_each(|(tmp, _, value)| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        file.write_all(value.as_bytes())?;
        file.sync_all()
    });
    // Renames within one directory fail only with the file system itself; no temporary
    // file is left behind either way.
    let done = written.and_then(|()| {
        staged
            .iter()
            .try_for_each(|(tmp, target, _)| std::fs::rename(tmp, target))
    });
    if let Err(e) = done {
        for (tmp, _, _) in &staged {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

fn describe_command(msg: &CommandMsg) -> String {
    let mut out = String::new();
    let dsc = msg.dsc.as_ref();
    let class = dsc.map_or(0, |d| d.ccl);
    let status = msg.csc.unwrap_or(0);
    let _ = writeln!(out, "cmd-id: {}", msg.cid.as_deref().unwrap_or(""));
    let _ = writeln!(out, "class: {class} {}", commands::class::name(class));
    let _ = writeln!(
        out,
        "status: {status} {}",
        commands::status_name(status).unwrap_or("?")
    );
    if let Some(d) = dsc {
        match &d.arg.nmc {
            Some(n) => {
                let _ = writeln!(out, "retry: {}", n.rtd);
            }
            None => {
                let args = serde_json::to_string(&d.arg).unwrap_or_default();
                let _ = writeln!(out, "args: {args}");
            }
        }
        if let Some(t) = &d.tid {
            let _ = writeln!(out, "target-id: {t}");
        }
    }
    out
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

async fn session(function: Function, args: &MafClientArgs) -> Result<MafClient, Failure> {
    let Some(tls) = crate::req::tls_client(&args.tls)? else {
        return Err(Failure::Config(format!(
            "a {} credential is required: --psk-id ({}) or --cert",
            function.name,
            if function == bastion_maf::MEF {
                "KpmID"
            } else {
                "KmID"
            }
        )));
    };
    if bastion_keys::KeyIdentifier::new("x", &args.maf_fqdn).is_err() {
        return Err(Failure::Config(format!(
            "--{}-fqdn {:?} is not an FQDN",
            function.name.to_ascii_lowercase(),
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
    .map(|client| client.for_function(function))
    .map_err(|e| Failure::Runtime(format!("{} {e}", function.name)))
}

fn in_secs(now: i64, secs: i64) -> Result<i64, Failure> {
    match secs {
        1.. => Ok(now.saturating_add(secs)),
        _ => Err(Failure::Config(
            "lifetimes are at least 1 second".to_owned(),
        )),
    }
}

/// Runs `command` over `maf`; returns what to print and, for the registration
/// procedures a command retrieve follows (8.3.4.6), the registration's ID.
async fn procedure(
    maf: &MafClient,
    function: Function,
    command: &MafClientCommand,
) -> Result<(String, Option<String>), Failure> {
    let mut registration = None;
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
            registration = Some(r.id);
        }
        MafClientCommand::Config(a) => {
            let c = maf.configuration(&a.reg_id).await.map_err(refused)?;
            let _ = writeln!(out, "expires: {}", c.et.unwrap_or_default());
            let _ = writeln!(out, "fqdn: {}", c.fqdn.unwrap_or_default());
            let _ = writeln!(out, "admin-fqdn: {}", c.adfq.unwrap_or_default());
            let _ = writeln!(out, "labels: {}", c.lbl.unwrap_or_default().join(" "));
            registration = Some(a.reg_id.clone());
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
            registration = Some(a.reg_id.clone());
        }
        MafClientCommand::Deregister(a) => {
            maf.deregister(&a.reg_id).await.map_err(refused)?;
            let _ = writeln!(out, "deregistered: {}", a.reg_id);
        }
        MafClientCommand::RegisterKey(a) => {
            let key = register_key(function, maf, a, now).await?;
            write_key(&a.key_out, &key.key)?;
            describe(&mut out, &key);
        }
        MafClientCommand::RetrieveKey(a) => {
            let key = maf
                .retrieve_key(&relative(&a.key_id, maf)?)
                .await
                .map_err(refused)?;
            if let Some(path) = &a.key_out {
                write_key(path, &key.key)?;
            }
            describe(&mut out, &key);
        }
        MafClientCommand::UpdateKey(a) => update_key(maf, a, now, &mut out).await?,
        MafClientCommand::DeregisterKey(a) => {
            maf.deregister_key(&relative(&a.key_id, maf)?)
                .await
                .map_err(refused)?;
            let _ = writeln!(out, "deregistered: {}", a.key_id);
        }
    }
    Ok((out, registration))
}

async fn register_key(
    function: Function,
    maf: &MafClient,
    a: &MafRegisterKeyArgs,
    now: i64,
) -> Result<MafKey, Failure> {
    let code = a.suid.unwrap_or(u32::from(*function.suids().start()));
    let suid = Suid::from_code(code).map_err(|e| Failure::Config(format!("--suid: {e}")))?;
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
