//! The security audit log: one structured event for every access denied by the PEP
//! (4103), every change to an `<accessControlPolicy>` (create, update, delete) and every
//! change to a resource's `acpi` (docs/authorization.md, "The audit log").
//!
//! The core hands events to an [`AuditSink`]. A sink must never block the request path:
//! [`FileSink`] queues each event on a bounded channel read by its own thread, which
//! appends one JSON object per line and rotates the file at a configurable size; when the
//! channel is full the event is dropped and counted, and the writer reports the count in
//! a warning. [`MemorySink`] keeps events in memory for tests.
//!
//! Events carry no secrets: no request content, no ACP rules, and the admin originator, in
//! whatever form it was written (stem, SP-relative, absolute), is written as
//! [`ADMIN_PLACEHOLDER`] (on the plain listener, where the admin holds no credential, its
//! name acts like a password).

use serde::{Serialize, Serializer};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// What the audit log shows instead of the configured admin originator.
pub const ADMIN_PLACEHOLDER: &str = "(admin)";

/// Events queued for the writer thread of a [`FileSink`] before new ones are dropped.
pub const DEFAULT_QUEUE: usize = 4096;

/// The kinds of audited events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditKind {
    /// The PEP refused a request (4103).
    Deny,
    AcpCreate,
    AcpUpdate,
    AcpDelete,
    /// A resource's `acpi` was set (UPDATE of `acpi`, or CREATE carrying a non-empty one).
    AcpiChange,
    /// A `<role>` was created, updated or deleted.
    RoleChange,
    /// A `<token>` was created, updated or deleted.
    TokenChange,
}

/// Which rule let a write through, or `None` for a deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditRule {
    /// Denied: serialized as the string `"none"`.
    None,
    /// The configured administrator: `{"by":"admin"}`.
    Admin,
    /// The default policy (the creator): `{"by":"creator"}`.
    Creator,
    /// The default policy (the custodian, `cstn`): `{"by":"custodian"}`.
    Custodian,
    /// The default policy of the `<CSEBase>` letting a registered AE or remote CSE
    /// read it (`[access] registered-retrieve-cse-base`), or a registered CSE create its
    /// `<CSEBaseAnnc>` there (`types/announced.rs`): `{"by":"registration"}`.
    Registration,
    /// Rule `rule` (index in its `acr` list) of the ACP `acp`:
    /// `{"by":"rule","acp":"…","rule":n}`.
    Rule { acp: crate::tree::Ri, rule: usize },
    /// Rule `rule` of the permissions a token carries for the target (TS-0003 7.3.2.3):
    /// `{"by":"token","token":"<tkid>","rule":n}`.
    Token { token: Box<str>, rule: usize },
    /// Rule `rule` of dynamic ACP information a DAS granted (TS-0003 7.3.2.2):
    /// `{"by":"das","das":"<dap URI>","rule":n}`.
    Dynamic { das: Box<str>, rule: usize },
}

impl Serialize for AuditRule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let by = match self {
            AuditRule::None => return s.serialize_str("none"),
            AuditRule::Admin => "admin",
            AuditRule::Creator => "creator",
            AuditRule::Custodian => "custodian",
            AuditRule::Registration => "registration",
            AuditRule::Rule { .. } => "rule",
            AuditRule::Token { .. } => "token",
            AuditRule::Dynamic { .. } => "das",
        };
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("by", by)?;
        match self {
            AuditRule::Rule { acp, rule } => {
                map.serialize_entry("acp", &**acp)?;
                map.serialize_entry("rule", rule)?;
            }
            AuditRule::Token { token, rule } => {
                map.serialize_entry("token", &**token)?;
                map.serialize_entry("rule", rule)?;
            }
            AuditRule::Dynamic { das, rule } => {
                map.serialize_entry("das", &**das)?;
                map.serialize_entry("rule", rule)?;
            }
            _ => {}
        }
        map.end()
    }
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// When the event happened: UTC oneM2M timestamp (`YYYYMMDDThhmmss`).
    pub time: String,
    pub event: AuditKind,
    /// `From` as received ([`ADMIN_PLACEHOLDER`] for the administrator).
    pub originator: String,
    /// Structured CSE-relative path of the resource whose rules decided (for a deny) or
    /// that changed, e.g. `cse-in/ae1/acp1`.
    pub target: String,
    /// The access-control operation, e.g. `UPDATE`.
    pub operation: &'static str,
    /// The response status code sent.
    pub rsc: u16,
    /// The deciding rule.
    pub rule: AuditRule,
    /// Transport peer address (`ip:port`), when known.
    pub peer: Option<String>,
}

/// Where audit events go. `record` is called on the request path and must not block.
pub trait AuditSink: Send + Sync + 'static {
    fn record(&self, event: AuditEvent);
}

/// Discards every event (the default of [`crate::Cse::open`]).
#[derive(Debug, Default)]
pub struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, _event: AuditEvent) {}
}

/// Keeps every event in memory; for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: parking_lot::Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    /// Every event recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().clone()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: AuditEvent) {
        self.events.lock().push(event);
    }
}

/// Size-based rotation settings of a [`FileSink`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated before a line would take it past this size (a single longer line
    /// still goes into a fresh file).
    pub max_bytes: u64,
    /// Files kept, the current one included: `audit.log`, `audit.log.1`, … up to
    /// `audit.log.<keep-1>`. At least 1 (then the file is simply truncated).
    pub keep: u32,
}

/// Appends events as JSON lines from a background thread (see the module docs).
pub struct FileSink {
    queue: SyncSender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending and starts the writer thread.
    /// Errors opening the file are returned here, so a misconfigured path stops start-up.
    pub fn open(path: &Path, rotation: Rotation, queue: usize) -> io::Result<FileSink> {
        let writer = Writer::open(path.to_path_buf(), rotation)?;
        let (tx, rx) = sync_channel(queue.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("bastion-audit".into())
            .spawn(move || writer.run(rx, &counter))?;
        Ok(FileSink { queue: tx, dropped })
    }

    /// Events dropped so far because the queue was full (reset when reported).
    pub fn pending_drops(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl AuditSink for FileSink {
    fn record(&self, event: AuditEvent) {
        match self.queue.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread's state: the open file and its size.
struct Writer {
    path: PathBuf,
    rotation: Rotation,
    file: BufWriter<File>,
    size: u64,
}

impl Writer {
    fn open(path: PathBuf, rotation: Rotation) -> io::Result<Writer> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path,
            rotation,
            file: BufWriter::new(file),
            size,
        })
    }

    fn run(mut self, rx: Receiver<AuditEvent>, dropped: &AtomicU64) {
        while let Ok(event) = rx.recv() {
            self.write(&event);
            // Write whatever else is queued, then flush once.
            while let Ok(event) = rx.try_recv() {
                self.write(&event);
            }
            if let Err(e) = self.file.flush() {
                tracing::error!(path = %self.path.display(), error = %e, "cannot write the audit log");
            }
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(dropped = lost, "audit log queue full: events were dropped");
            }
        }
        let _ = self.file.flush();
    }

    fn write(&mut self, event: &AuditEvent) {
        let mut line = match serde_json::to_vec(event) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an audit event");
                return;
            }
        };
        line.push(b'\n');
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.rotation.max_bytes {
            if let Err(e) = self.rotate() {
                tracing::error!(path = %self.path.display(), error = %e, "cannot rotate the audit log");
            }
        }
        match self.file.write_all(&line) {
            Ok(()) => self.size += len,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot write the audit log")
            }
        }
    }

    /// `audit.log.<k-2>` → `.<k-1>`, …, `audit.log` → `.1`, then a fresh `audit.log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let keep = self.rotation.keep.max(1);
        if keep > 1 {
            for i in (1..keep - 1).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

impl crate::Cse {
    /// The PEP refused `op` on the resource at `path` (4103).
    pub(crate) fn audit_deny(
        &self,
        originator: &str,
        ctx: &crate::RequestContext,
        path: &str,
        op: bastion_policy::AccessOperation,
    ) {
        self.audit_event(
            AuditKind::Deny,
            originator,
            ctx,
            path,
            op,
            bastion_proto::Rsc::OriginatorHasNoPrivilege,
            AuditRule::None,
        );
    }

    /// The access-control changes one successful write made, each as `(kind, path)`.
    pub(crate) fn audit_changes<'p>(
        &self,
        originator: &str,
        ctx: &crate::RequestContext,
        op: bastion_policy::AccessOperation,
        rsc: bastion_proto::Rsc,
        rule: &AuditRule,
        changes: impl IntoIterator<Item = (AuditKind, &'p str)>,
    ) {
        for (kind, path) in changes {
            self.audit_event(kind, originator, ctx, path, op, rsc, rule.clone());
        }
    }

    /// A successful write that changed access control.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit_event(
        &self,
        event: AuditKind,
        originator: &str,
        ctx: &crate::RequestContext,
        path: &str,
        op: bastion_policy::AccessOperation,
        rsc: bastion_proto::Rsc,
        rule: AuditRule,
    ) {
        // Every written form of the admin's ID (stem, SP-relative, absolute) is redacted.
        let originator = if self.is_admin(originator) {
            ADMIN_PLACEHOLDER.to_owned()
        } else {
            originator.to_owned()
        };
        self.audit.record(AuditEvent {
            time: self.now().format(),
            event,
            originator,
            target: path.to_owned(),
            operation: op.name(),
            rsc: rsc.code(),
            rule,
            peer: ctx.peer.map(|p| p.to_string()),
        });
    }
}

/// `audit.log` → `audit.log.<n>`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            time: "20250102T030405".into(),
            event: AuditKind::Deny,
            originator: format!("Cuser{n}"),
            target: "cse-in/ae/cnt".into(),
            operation: "RETRIEVE",
            rsc: 4103,
            rule: AuditRule::None,
            peer: Some("127.0.0.1:5000".into()),
        }
    }

    fn wait_for(mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn json_shape() {
        let deny = serde_json::to_value(event(1)).expect("serializes");
        assert_eq!(
            deny,
            serde_json::json!({
                "time": "20250102T030405", "event": "deny", "originator": "Cuser1",
                "target": "cse-in/ae/cnt", "operation": "RETRIEVE", "rsc": 4103,
                "rule": "none", "peer": "127.0.0.1:5000"
            })
        );
        let grant = AuditEvent {
            event: AuditKind::AcpiChange,
            rule: AuditRule::Rule {
                acp: "acp1".into(),
                rule: 2,
            },
            peer: None,
            ..event(1)
        };
        let v = serde_json::to_value(grant).expect("serializes");
        assert_eq!(v["event"], "acpi-change");
        assert_eq!(
            v["rule"],
            serde_json::json!({"by": "rule", "acp": "acp1", "rule": 2})
        );
        assert_eq!(v["peer"], serde_json::Value::Null);
        for (kind, name) in [
            (AuditKind::AcpCreate, "acp-create"),
            (AuditKind::AcpUpdate, "acp-update"),
            (AuditKind::AcpDelete, "acp-delete"),
        ] {
            assert_eq!(serde_json::to_value(kind).expect("kind"), name);
        }
        assert_eq!(
            serde_json::to_value(AuditRule::Admin).expect("rule"),
            serde_json::json!({"by": "admin"})
        );
        assert_eq!(
            serde_json::to_value(AuditRule::Creator).expect("rule"),
            serde_json::json!({"by": "creator"})
        );
    }

    #[test]
    fn rotates_keeping_n_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let line_len = serde_json::to_vec(&event(10)).expect("json").len() as u64 + 1;
        // Three lines per file, three files kept.
        let mut w = Writer::open(
            path.clone(),
            Rotation {
                max_bytes: line_len * 3,
                keep: 3,
            },
        )
        .expect("open");
        for n in 10..20 {
            w.write(&event(n));
        }
        w.file.flush().expect("flush");
        let names = |p: &Path| -> Vec<String> {
            lines(p)
                .iter()
                .map(|v| v["originator"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        // 10 events: 10-12, 13-15, 16-18 rotated out in turn, 19 current; .2 is the oldest
        // kept, so 10-12 are gone.
        assert_eq!(names(&path), ["Cuser19"]);
        assert_eq!(
            names(&numbered(&path, 1)),
            ["Cuser16", "Cuser17", "Cuser18"]
        );
        assert_eq!(
            names(&numbered(&path, 2)),
            ["Cuser13", "Cuser14", "Cuser15"]
        );
        assert!(!numbered(&path, 3).exists());
        // Reopening continues the current file with its size.
        drop(w);
        let w = Writer::open(
            path.clone(),
            Rotation {
                max_bytes: line_len * 3,
                keep: 3,
            },
        )
        .expect("reopen");
        assert_eq!(w.size, line_len);
    }

    #[test]
    fn file_sink_writes_from_its_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let sink = FileSink::open(
            &path,
            Rotation {
                max_bytes: 1 << 20,
                keep: 2,
            },
            DEFAULT_QUEUE,
        )
        .expect("open");
        sink.record(event(1));
        sink.record(event(2));
        wait_for(|| lines(&path).len() == 2);
        let all = lines(&path);
        assert_eq!(all[0]["originator"], "Cuser1");
        assert_eq!(all[1]["originator"], "Cuser2");
        assert_eq!(all[1]["event"], "deny");
        assert_eq!(sink.pending_drops(), 0);
    }

    #[test]
    fn keep_one_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut w = Writer::open(
            path.clone(),
            Rotation {
                max_bytes: 10,
                keep: 1,
            },
        )
        .expect("open");
        w.write(&event(1));
        w.write(&event(2));
        w.file.flush().expect("flush");
        let all = lines(&path);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["originator"], "Cuser2");
        assert!(!numbered(&path, 1).exists());
    }

    #[test]
    fn full_queue_drops_and_counts() {
        let (tx, _rx) = sync_channel(1);
        let sink = FileSink {
            queue: tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        sink.record(event(1));
        sink.record(event(2));
        sink.record(event(3));
        assert_eq!(sink.pending_drops(), 2);
    }
}
