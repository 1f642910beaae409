//! MEF Client Commands (TS-0003 8.3.9; data types 12.3.2.3–12.3.2.7, 12.4.4–12.4.10): the
//! operator queues commands for a MEF Client registration (`bastion mef command add`);
//! the client RETRIEVEs `<MEF-FQDN>/clients/<mefClientRegID>/cmd` (its `<mefClientCmd>`),
//! executes the command and reports with an UPDATE of the same resource carrying cmdID
//! and cmdStatusCode; the answer to either is the command to execute next, or
//! NO_MORE_COMMANDS with a retryDuration.
//!
//! | request | answer |
//! |---|---|
//! | RETRIEVE `…/cmd` | 2000 `mef:cmd` {cid, dsc, csc 10 ISSUED or 11 REISSUED} |
//! | UPDATE `…/cmd` `{"mef:cmd": {"cid", "csc"}}` | 2004 `mef:cmd` with the next command |
//!
//! The rules ([`CommandQueues`]) are pure; [`MefCommands`] runs them on a
//! [`SharedDocument`] (sealed, `BSTNMCQ1`) that the running MEF and the operator's
//! command both change under a file lock. A report whose cmdID is not the command last
//! issued (a repeated report, a stale one) is discarded and answered with the next
//! command, as 8.3.9.3 step 2b says; a report's status must be one a MEF Client assigns
//! (20, 40–43, 100–305), else 4000. Each registration holds at most `max` queued commands
//! (5207 beyond) and keeps the last [`DONE_KEPT`] reported ones for the operator.

use std::collections::{BTreeMap, VecDeque};

use bastion_maf::server::RegistrationChildren;
use bastion_maf::ClientRegistration;
use bastion_proto::{Operation, Request, RequestError, Rsc};
use bastion_tls::sealed::{DocumentError, SharedDocument};
use bastion_tls::StoreKey;
use serde::{Deserialize, Serialize};

/// Magic of the sealed command file.
pub const MAGIC: &[u8; 8] = b"BSTNMCQ1";
/// Root short name of a `<mefClientCmd>` representation.
pub const ROOT: &str = "mef:cmd";
/// The child of a registration that is its command.
pub const CHILD: &str = "cmd";
/// Reported commands kept per registration for `bastion mef command list`.
pub const DONE_KEPT: usize = 16;

/// `sec:cmdClassID` (12.3.2.3).
pub mod class {
    /// NO_MORE_COMMANDS.
    pub const NO_MORE_COMMANDS: u8 = 0;
    /// CERT_PROV.
    pub const CERT_PROV: u8 = 1;
    /// DEV_CFG.
    pub const DEV_CFG: u8 = 2;
    /// MO_NODE.
    pub const MO_NODE: u8 = 3;

    /// The name of a class.
    pub fn name(code: u8) -> &'static str {
        match code {
            NO_MORE_COMMANDS => "NO_MORE_COMMANDS",
            CERT_PROV => "CERT_PROV",
            DEV_CFG => "DEV_CFG",
            MO_NODE => "MO_NODE",
            _ => "UNKNOWN",
        }
    }
}

/// `sec:cmdStatusCode` (12.3.2.4): code, name (without the `MEF_CLIENT_CMD_` prefix), and
/// whether a MEF Client assigns it (the others, 10 and 11, are the MEF's).
pub const STATUS_CODES: &[(u16, &str, bool)] = &[
    (10, "ISSUED", false),
    (11, "REISSUED", false),
    (20, "OK", true),
    (40, "REPEATED_CMD_ID", true),
    (41, "CLASS_NOT_SUPPORTED", true),
    (42, "BAD_ARGUMENTS", true),
    (43, "UNACCEPTABLE_ARGUMENTS", true),
    (100, "CERT_PROV_SERVER_ERROR", true),
    (101, "CERT_PROV_CLIENT_ERROR", true),
    (201, "DEV_CFG_SERVER_ERROR", true),
    (202, "DEV_CFG_CLIENT_ERROR", true),
    (300, "MO_NODE_NOT_FOUND", true),
    (301, "MO_NODE_TYPE_CONFLICT", true),
    (302, "MO_NODE_BAD_ARGS", true),
    (303, "MO_NODE_UNACCEPTABLE_ARGS", true),
    (304, "MO_NODE_INCONSISTENT_CONFIG", true),
    (305, "MO_NODE_EXECUTION_ERROR", true),
];

/// ISSUED.
pub const ISSUED: u16 = 10;
/// REISSUED.
pub const REISSUED: u16 = 11;
/// OK.
pub const OK: u16 = 20;
/// REPEATED_CMD_ID.
pub const REPEATED_CMD_ID: u16 = 40;
/// CLASS_NOT_SUPPORTED.
pub const CLASS_NOT_SUPPORTED: u16 = 41;
/// BAD_ARGUMENTS.
pub const BAD_ARGUMENTS: u16 = 42;
/// UNACCEPTABLE_ARGUMENTS.
pub const UNACCEPTABLE_ARGUMENTS: u16 = 43;
/// CERT_PROV_SERVER_ERROR.
pub const CERT_PROV_SERVER_ERROR: u16 = 100;
/// CERT_PROV_CLIENT_ERROR.
pub const CERT_PROV_CLIENT_ERROR: u16 = 101;

/// The name of a status code, `None` when it is not one.
pub fn status_name(code: u16) -> Option<&'static str> {
    STATUS_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, n, _)| *n)
}

/// `sec:cmdDescription` (12.4.4): the class, its arguments, the entity it is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// cmdClassID.
    pub ccl: u8,
    /// cmdArgs (a choice of one member).
    pub arg: Args,
    /// targetID: the AE or CSE of the client's node the command is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
}

/// `sec:cmdArgs` (12.4.5): exactly one member, the one of the class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// noMoreCmdArgs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmc: Option<NoMoreArgs>,
    /// certProvCmdArgs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpa: Option<CertProvArgs>,
    /// devCfgCmdArgs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dca: Option<DevCfgArgs>,
    /// MONodeCmdArgs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mna: Option<MoNodeArgs>,
}

/// `sec:noMoreCmdArgs` (12.4.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoMoreArgs {
    /// retryDuration, an `xs:duration` (`PT3600S`).
    pub rtd: String,
}

/// `sec:certProvCmdArgs` (12.4.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertProvArgs {
    /// certProvProtocolID: 1 EST, 2 SCEP.
    pub cpp: u8,
    /// The protocol's base URI (its host is the MEF's FQDN).
    pub uri: String,
    /// certSubjectType: 1 Node-ID, 2 CSE-ID, 3 AE-ID.
    pub cst: u8,
    /// certSubjectID.
    pub csi: String,
}

/// `sec:devCfgCmdArgs` (12.4.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevCfgArgs {
    /// deviceConfigURI: `<devMgmtID>:<DM server URI>` (devMgmtID 1 OMA DM 1.3, 2 OMA DM
    /// 2.0, 3 LwM2M, 4 BBF TR-069).
    pub dcu: String,
}

/// `sec:MONodeCmdArgs` (12.4.9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoNodeArgs {
    /// objectPath.
    pub obp: String,
    /// objectTypeID: 1 [authenticationProfile], 2 [trustAnchorCred], 3 [MAFClientRegCfg].
    pub oti: u8,
    /// objectTypeSpecificArgs (authProfileMONodeArgs, for 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ota: Option<AuthProfileArgs>,
}

/// `sec:authProfileMONodeArgs` (12.4.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthProfileArgs {
    /// The SUID expected in the [authenticationProfile] node.
    pub suid: u32,
}

/// The `<mefClientCmd>` representation: what the MEF issues, and (cid and csc only) what
/// the client reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandMsg {
    /// cmdID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// cmdDescription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsc: Option<Description>,
    /// cmdStatusCode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csc: Option<u16>,
}

fn host_of(uri: &str) -> Option<&str> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

/// A URI the command may name: on the MEF's own FQDN (8.3.9.7, 8.3.9.8 step 1).
fn check_uri(uri: &str, mef_fqdn: &str) -> Result<(), String> {
    match host_of(uri) {
        Some(host) if host.eq_ignore_ascii_case(mef_fqdn) => Ok(()),
        Some(host) => Err(format!(
            "the URI's host {host} is not the MEF's FQDN {mef_fqdn}"
        )),
        None => Err(format!("{uri:?} is not an absolute URI")),
    }
}

impl Description {
    /// CERT_PROV: `protocol` 1 EST / 2 SCEP, `subject_type` 1 Node / 2 CSE / 3 AE.
    pub fn cert_prov(
        mef_fqdn: &str,
        protocol: u8,
        uri: &str,
        subject_type: u8,
        subject_id: &str,
        target: Option<String>,
    ) -> Result<Description, String> {
        check_uri(uri, mef_fqdn)?;
        if !(1..=2).contains(&protocol) || !(1..=3).contains(&subject_type) {
            return Err("protocol 1-2 and subject type 1-3".into());
        }
        if subject_id.is_empty() {
            return Err("a certificate subject ID is required".into());
        }
        Ok(Description {
            ccl: class::CERT_PROV,
            arg: Args {
                cpa: Some(CertProvArgs {
                    cpp: protocol,
                    uri: uri.to_owned(),
                    cst: subject_type,
                    csi: subject_id.to_owned(),
                }),
                ..Args::default()
            },
            tid: target,
        })
    }

    /// DEV_CFG: `dm` 1 OMA DM 1.3, 2 OMA DM 2.0, 3 LwM2M, 4 TR-069.
    pub fn dev_cfg(
        mef_fqdn: &str,
        dm: u8,
        uri: &str,
        target: Option<String>,
    ) -> Result<Description, String> {
        check_uri(uri, mef_fqdn)?;
        if !(1..=4).contains(&dm) {
            return Err("devMgmtID is 1 to 4".into());
        }
        Ok(Description {
            ccl: class::DEV_CFG,
            arg: Args {
                dca: Some(DevCfgArgs {
                    dcu: format!("{dm}:{uri}"),
                }),
                ..Args::default()
            },
            tid: target,
        })
    }

    /// MO_NODE: `object_type` 1 [authenticationProfile] (with `suid`), 2
    /// [trustAnchorCred], 3 [MAFClientRegCfg].
    pub fn mo_node(
        path: &str,
        object_type: u8,
        suid: Option<u32>,
        target: Option<String>,
    ) -> Result<Description, String> {
        if path.is_empty() {
            return Err("an object path is required".into());
        }
        let ota = match (object_type, suid) {
            (1, Some(suid)) => {
                bastion_keys::Suid::from_code(suid).map_err(|e| e.to_string())?;
                Some(AuthProfileArgs { suid })
            }
            (1, None) => return Err("an [authenticationProfile] node needs its SUID".into()),
            (2 | 3, None) => None,
            (2 | 3, Some(_)) => return Err("only [authenticationProfile] takes a SUID".into()),
            _ => return Err("objectTypeID is 1 to 3".into()),
        };
        Ok(Description {
            ccl: class::MO_NODE,
            arg: Args {
                mna: Some(MoNodeArgs {
                    obp: path.to_owned(),
                    oti: object_type,
                    ota,
                }),
                ..Args::default()
            },
            tid: target,
        })
    }

    /// NO_MORE_COMMANDS with `retry_secs`.
    pub fn no_more(retry_secs: u64) -> Description {
        Description {
            ccl: class::NO_MORE_COMMANDS,
            arg: Args {
                nmc: Some(NoMoreArgs {
                    rtd: format!("PT{retry_secs}S"),
                }),
                ..Args::default()
            },
            tid: None,
        }
    }
}

/// One queued or reported command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// cmdID.
    pub id: String,
    pub description: Description,
    /// How often it was issued (0: queued, never retrieved).
    pub issued: u32,
    /// The status the client reported.
    pub status: Option<u16>,
}

/// The commands of one registration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    /// The MEF Client (its bound identity), for the operator.
    pub client: String,
    /// Queued, the first one issued next.
    pub pending: VecDeque<Command>,
    /// Reported, oldest first, at most [`DONE_KEPT`].
    pub done: VecDeque<Command>,
}

/// Why a command was not queued or a report not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Malformed report: 4000.
    #[error("{0}")]
    BadRequest(String),
    /// The registration's queue is full: 5207.
    #[error("{0}")]
    Full(String),
}

/// Every registration's commands, by mefClientRegID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandQueues {
    queues: BTreeMap<String, Queue>,
}

impl CommandQueues {
    /// Queues `description` as command `id` for registration `reg_id` of `client`.
    pub fn add(
        &mut self,
        reg_id: &str,
        client: &str,
        id: String,
        description: Description,
        max: usize,
    ) -> Result<&Command, CommandError> {
        let queue = self.queues.entry(reg_id.to_owned()).or_default();
        queue.client = client.to_owned();
        if queue.pending.len() >= max {
            return Err(CommandError::Full(format!(
                "at most {max} queued commands per registration"
            )));
        }
        queue.pending.push_back(Command {
            id,
            description,
            issued: 0,
            status: None,
        });
        Ok(queue.pending.back().expect("just pushed"))
    }

    /// Whether `reg_id` has a command to issue.
    pub fn has_pending(&self, reg_id: &str) -> bool {
        self.queues
            .get(reg_id)
            .is_some_and(|q| !q.pending.is_empty())
    }

    /// MEF Client Command Retrieve (8.3.9.2): the next command, ISSUED the first time and
    /// REISSUED after; `None` when there is none (NO_MORE_COMMANDS).
    pub fn retrieve(&mut self, reg_id: &str) -> Option<CommandMsg> {
        let command = self.queues.get_mut(reg_id)?.pending.front_mut()?;
        command.issued = command.issued.saturating_add(1);
        Some(CommandMsg {
            cid: Some(command.id.clone()),
            dsc: Some(command.description.clone()),
            csc: Some(if command.issued == 1 {
                ISSUED
            } else {
                REISSUED
            }),
        })
    }

    /// MEF Client Command Update (8.3.9.3 step 2): records `status` when `cmd_id` is the
    /// command last issued to `reg_id`; returns whether it was recorded (else discarded).
    pub fn report(
        &mut self,
        reg_id: &str,
        cmd_id: &str,
        status: u16,
    ) -> Result<bool, CommandError> {
        match STATUS_CODES.iter().find(|(c, _, _)| *c == status) {
            Some((_, _, true)) => {}
            Some((_, name, false)) => {
                return Err(CommandError::BadRequest(format!(
                    "cmdStatusCode {status} ({name}) is assigned by the MEF, not reported"
                )))
            }
            None => {
                return Err(CommandError::BadRequest(format!(
                    "cmdStatusCode {status} is not defined"
                )))
            }
        }
        let Some(queue) = self.queues.get_mut(reg_id) else {
            return Ok(false);
        };
        let issued = queue
            .pending
            .front()
            .is_some_and(|c| c.issued > 0 && c.id == cmd_id);
        if !issued {
            return Ok(false);
        }
        let mut command = queue.pending.pop_front().expect("checked");
        command.status = Some(status);
        queue.done.push_back(command);
        while queue.done.len() > DONE_KEPT {
            queue.done.pop_front();
        }
        Ok(true)
    }

    /// Drops the commands of registrations that are no longer live; returns how many
    /// registrations' queues went.
    pub fn retain_registrations(&mut self, live: impl Fn(&str) -> bool) -> usize {
        let before = self.queues.len();
        self.queues.retain(|id, _| live(id));
        before - self.queues.len()
    }

    /// Every registration's queue, by mefClientRegID.
    pub fn queues(&self) -> &BTreeMap<String, Queue> {
        &self.queues
    }
}

/// A fresh cmdID: 32 lower-case hex characters.
pub fn fresh_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bastion_keys::hex::encode(&bytes))
}

/// The MEF's commands on disk, served under each MEF Client registration.
#[derive(Debug)]
pub struct MefCommands {
    document: SharedDocument<CommandQueues>,
    retry_secs: u64,
    max: usize,
}

impl MefCommands {
    /// The command file at `path`; NO_MORE_COMMANDS tells clients to come back after
    /// `retry_secs`; at most `max` queued commands per registration.
    pub fn open(
        path: &std::path::Path,
        key: StoreKey,
        retry_secs: u64,
        max: usize,
    ) -> Result<MefCommands, DocumentError> {
        Ok(MefCommands {
            document: SharedDocument::open(path, key, MAGIC)?,
            retry_secs,
            max,
        })
    }

    /// Queues a command (the operator's `bastion mef command add`); returns its cmdID.
    pub fn add(
        &self,
        registration: &ClientRegistration,
        description: Description,
    ) -> Result<String, CommandAddError> {
        let id = fresh_id().map_err(CommandAddError::Other)?;
        let max = self.max;
        self.document
            .change(|q| {
                q.add(
                    &registration.id,
                    registration.client.originator(),
                    id.clone(),
                    description,
                    max,
                )
                .map(|_| ())
            })?
            .map_err(|e| CommandAddError::Other(e.to_string()))?;
        Ok(id)
    }

    /// The queues as they are now.
    pub fn snapshot(&self) -> Result<CommandQueues, DocumentError> {
        self.document.read(Clone::clone)
    }

    /// Drops the queues of registrations `live` says are gone.
    pub fn purge(&self, live: impl Fn(&str) -> bool) -> Result<usize, DocumentError> {
        if self.document.read(|q| q.queues.keys().all(|id| live(id)))? {
            return Ok(0);
        }
        Ok(self
            .document
            .change(|q| Ok::<_, CommandError>(q.retain_registrations(&live)))?
            .unwrap_or(0))
    }

    fn no_more(&self) -> Result<CommandMsg, RequestError> {
        Ok(CommandMsg {
            cid: Some(fresh_id().map_err(|e| RequestError::Internal(e.into()))?),
            dsc: Some(Description::no_more(self.retry_secs)),
            csc: Some(ISSUED),
        })
    }

    /// The next command for `reg_id` (issuing it), or NO_MORE_COMMANDS.
    fn next(&self, reg_id: &str) -> Result<CommandMsg, RequestError> {
        if !self
            .document
            .read(|q| q.has_pending(reg_id))
            .map_err(stored)?
        {
            return self.no_more();
        }
        let issued = self
            .document
            .change(|q| Ok::<_, CommandError>(q.retrieve(reg_id)))
            .map_err(stored)?
            .unwrap_or(None);
        match issued {
            Some(msg) => Ok(msg),
            None => self.no_more(),
        }
    }
}

/// Why the operator's command was not queued.
#[derive(Debug, thiserror::Error)]
pub enum CommandAddError {
    /// The command file failed.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The queue is full, or no random identifier.
    #[error("{0}")]
    Other(String),
}

fn stored(e: DocumentError) -> RequestError {
    tracing::error!(error = %e, "the MEF's command file failed");
    RequestError::Internal("the MEF cannot store its commands".into())
}

fn wrap(msg: &CommandMsg) -> serde_json::Value {
    bastion_maf::wire::wrap(ROOT, msg)
}

impl RegistrationChildren for MefCommands {
    fn serve(
        &self,
        registration: &ClientRegistration,
        child: &str,
        req: &Request,
        _now: i64,
    ) -> Result<(Rsc, Option<serde_json::Value>), RequestError> {
        if child != CHILD {
            return Err(RequestError::NotFound(
                format!("no MEF resource {:?}", req.to).into(),
            ));
        }
        let reg_id = registration.id.as_str();
        match req.op.unwrap_or(Operation::Retrieve) {
            Operation::Retrieve => {
                let msg = self.next(reg_id)?;
                tracing::info!(
                    mcri = reg_id,
                    cid = msg.cid.as_deref().unwrap_or(""),
                    class = msg.dsc.as_ref().map_or(0, |d| d.ccl),
                    "MEF client command retrieved"
                );
                Ok((Rsc::Ok, Some(wrap(&msg))))
            }
            Operation::Update => {
                let report: CommandMsg = bastion_maf::wire::unwrap(ROOT, req.pc.as_ref())
                    .map_err(RequestError::bad_request)?;
                let (Some(cid), Some(csc), None) = (report.cid, report.csc, report.dsc) else {
                    return Err(RequestError::bad_request(
                        "a command report carries cid and csc only",
                    ));
                };
                let recorded = self
                    .document
                    .change(|q| q.report(reg_id, &cid, csc))
                    .map_err(stored)?
                    .map_err(|e| RequestError::bad_request(e.to_string()))?;
                tracing::info!(mcri = reg_id, cid = %cid, status = csc, recorded,
                    "MEF client command report");
                let msg = self.next(reg_id)?;
                Ok((Rsc::Updated, Some(wrap(&msg))))
            }
            _ => Err(RequestError::not_allowed(
                "a MEF client command takes RETRIEVE and UPDATE",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> Description {
        Description::cert_prov(
            "mef.example.com",
            1,
            "https://mef.example.com:8444/.well-known/est",
            3,
            "Cdev",
            None,
        )
        .unwrap()
    }

    #[test]
    fn commands_are_issued_reissued_reported_and_then_none_are_left() {
        let mut q = CommandQueues::default();
        q.add("r1", "Cdev", "c1".into(), cert(), 4).unwrap();
        q.add("r1", "Cdev", "c2".into(), Description::no_more(5), 4)
            .unwrap();
        let first = q.retrieve("r1").unwrap();
        assert_eq!(
            (first.cid.as_deref(), first.csc),
            (Some("c1"), Some(ISSUED))
        );
        let again = q.retrieve("r1").unwrap();
        assert_eq!(
            (again.cid.as_deref(), again.csc),
            (Some("c1"), Some(REISSUED))
        );
        // Not issued yet: discarded.
        assert_eq!(q.report("r1", "c2", OK), Ok(false));
        assert_eq!(q.report("r1", "c1", OK), Ok(true));
        // Repeated: discarded, the recorded status stays.
        assert_eq!(q.report("r1", "c1", 41), Ok(false));
        assert_eq!(q.queues()["r1"].done[0].status, Some(OK));
        assert_eq!(q.retrieve("r1").unwrap().cid.as_deref(), Some("c2"));
        assert_eq!(q.report("r1", "c2", REPEATED_CMD_ID), Ok(true));
        assert_eq!(q.retrieve("r1"), None);
        assert_eq!(q.retrieve("other"), None);
    }

    #[test]
    fn only_client_status_codes_are_reported_and_queues_are_bounded() {
        let mut q = CommandQueues::default();
        q.add("r1", "Cdev", "c1".into(), cert(), 1).unwrap();
        assert_eq!(
            q.add("r1", "Cdev", "c2".into(), cert(), 1),
            Err(CommandError::Full(
                "at most 1 queued commands per registration".into()
            ))
        );
        q.retrieve("r1");
        assert_eq!(
            q.report("r1", "c1", ISSUED),
            Err(CommandError::BadRequest(
                "cmdStatusCode 10 (ISSUED) is assigned by the MEF, not reported".into()
            ))
        );
        assert_eq!(
            q.report("r1", "c1", 99),
            Err(CommandError::BadRequest(
                "cmdStatusCode 99 is not defined".into()
            ))
        );
        assert_eq!(q.retain_registrations(|id| id != "r1"), 1);
        assert!(!q.has_pending("r1"));
    }

    #[test]
    fn descriptions_follow_the_spec_and_name_only_the_mefs_own_uris() {
        assert_eq!(
            bastion_maf::wire::wrap("d", &cert()),
            serde_json::json!({"d": {"ccl": 1, "arg": {"cpa": {"cpp": 1,
                "uri": "https://mef.example.com:8444/.well-known/est", "cst": 3, "csi": "Cdev"}}}})
        );
        assert_eq!(
            Description::dev_cfg("mef.example.com", 3, "coaps://dm.example.com", None),
            Err("the URI's host dm.example.com is not the MEF's FQDN mef.example.com".into())
        );
        let dm = Description::dev_cfg("mef.example.com", 3, "coaps://MEF.example.com:5684", None)
            .unwrap();
        assert_eq!(dm.arg.dca.unwrap().dcu, "3:coaps://MEF.example.com:5684");
        assert!(Description::mo_node("./auth/1", 1, None, None).is_err());
        let mo = Description::mo_node("./auth/1", 1, Some(22), Some("Cdev".into())).unwrap();
        assert_eq!(mo.arg.mna.unwrap().ota, Some(AuthProfileArgs { suid: 22 }));
        assert_eq!(
            bastion_maf::wire::wrap("d", &Description::no_more(60)),
            serde_json::json!({"d": {"ccl": 0, "arg": {"nmc": {"rtd": "PT60S"}}}})
        );
        assert_eq!(status_name(305), Some("MO_NODE_EXECUTION_ERROR"));
    }
}
