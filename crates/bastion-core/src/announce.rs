//! Announcement, the announcing side (TS-0001 9.6.26, 10.2.18; TS-0004 7.3.3.10-11): a
//! resource whose `at` lists CSE-IDs gets an announced copy (`…Annc`) at each, created over
//! the outbound routes as a request of this CSE (so over the CSE-to-CSE security
//! association), under the copy of its parent there when the parent was announced there,
//! else under the `<remoteCSE>` representing this CSE there. Where each copy lives is
//! stored with the original (`Node::announced`); `at` keeps only the targets where the copy
//! was made. Changes of the announced attributes (`lbl`, `et`, and those `aa` lists) are
//! sent to the copies, a target dropped from `at` loses its copy, and a deleted or expired
//! original takes its copies with it.
//!
//! It runs after the original's own write is durable, within the request, the targets in
//! parallel, each bounded by the outbound timeout and in-flight limits. A target that
//! cannot be reached costs the original nothing but that target: the CREATE, UPDATE or
//! DELETE it missed is kept as a [`Pending`] action with the original (durable) and retried
//! by a periodic pass with exponential backoff, bounded per resource and per target CSE;
//! a target that refuses is logged once and dropped (docs/decisions.md).
//! Targets are CSEs this CSE talks to directly (its registrar and the CSEs registered
//! here) and, on a CSE with a registrar, any other CSE, reached through the registrar: the
//! copy then goes under this CSE's `<CSEBaseAnnc>` there, created first.

use crate::bounded::join_bounded;
use crate::forward::{next_hop, Destination, Here, Owner};
use crate::notify::fresh_id;
use crate::remote_cse::Peer;
use crate::throttle::Throttle;
pub(crate) use crate::tree::{Action, Pending};
use crate::tree::{Node, Ri, Tree};
use crate::types::{node_row, MAX_ANNOUNCE_TARGETS};
use crate::Cse;
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{Map, Value};

/// One announced copy: the target's CSE-ID and the copy's SP-relative ID there.
pub(crate) type Copy = (Box<str>, Box<str>);

/// Pending actions one resource may hold: a CREATE or UPDATE and a DELETE of an older
/// copy per target.
pub(crate) const MAX_PENDING_PER_RESOURCE: usize = 2 * MAX_ANNOUNCE_TARGETS;

/// Pending actions towards one target CSE, over all resources.
pub(crate) const MAX_PENDING_PER_TARGET: usize = 4096;

/// Pending actions one periodic pass tries (the others wait for the next pass).
const MAX_RETRIES_PER_PASS: usize = 64;

/// The first retry waits this long; each failure doubles the wait, up to the cap.
const RETRY_FIRST_S: i64 = 1;
const RETRY_MAX_S: i64 = 60;

/// The type number of `<CSEBaseAnnc>` (TS-0004 6.3.4.2.1).
const CSE_BASE_ANNC: u64 = 10005;

/// A full pending store is logged once a minute.
static PENDING_FULL: Throttle = Throttle::per_minute();

/// The wait after `tries` failed tries.
fn backoff(tries: u32) -> i64 {
    let doublings = tries.saturating_sub(1).min(16);
    (RETRY_FIRST_S << doublings).min(RETRY_MAX_S)
}

impl Pending {
    fn new(target: &str, action: Action, copy: Option<&str>, now: Timestamp) -> Pending {
        Pending {
            target: target.into(),
            action,
            copy: copy.map(Into::into),
            tries: 1,
            next: Timestamp(now.0.saturating_add(backoff(1))),
        }
    }

    /// Whether `other` is the same action (backoff aside).
    fn same(&self, other: &Pending) -> bool {
        self.target == other.target && self.action == other.action && self.copy == other.copy
    }
}

/// Adds `new` to `pending`, merged with what is there for its target: a CREATE pending
/// already sends the current attributes (an UPDATE adds nothing); a DELETE cancels a
/// CREATE not made yet and an UPDATE of the copy it deletes. `false` when nothing was
/// added.
fn merge(pending: &mut Vec<Pending>, new: Pending) -> bool {
    let target = new.target.clone();
    match new.action {
        Action::Create | Action::Update => {
            let covered = pending.iter().any(|p| {
                p.target == target
                    && (p.action == Action::Create
                        || (p.action == Action::Update && p.copy == new.copy))
            });
            if covered {
                return false;
            }
        }
        Action::Delete => {
            pending.retain(|p| {
                !(p.target == target
                    && (p.action == Action::Create
                        || (p.action == Action::Update && p.copy == new.copy)))
            });
            if pending.iter().any(|p| p.same(&new)) {
                return false;
            }
        }
    }
    pending.push(new);
    true
}

/// Pending actions towards `target` over the whole tree.
fn pending_towards(tree: &Tree, target: &str) -> usize {
    tree.nodes
        .values()
        .flat_map(|n| &n.pending)
        .filter(|p| &*p.target == target)
        .count()
}

/// Keeps `new` with `node` unless that exceeds a bound (then refused, logged once a
/// minute); `pending_elsewhere` counts the actions towards its target already kept.
fn keep(node: &mut Node, new: Pending, pending_elsewhere: usize) {
    let full = node.pending.len() >= MAX_PENDING_PER_RESOURCE
        || pending_elsewhere >= MAX_PENDING_PER_TARGET;
    if full && !node.pending.iter().any(|p| p.target == new.target) {
        if PENDING_FULL.ready() {
            tracing::warn!(ri = %node.ri, target = %new.target, per_resource = MAX_PENDING_PER_RESOURCE, per_target = MAX_PENDING_PER_TARGET,
                "pending announcement actions at the cap; this one is dropped");
        }
        return;
    }
    // A target already pending is merged into (a new action for it may replace an
    // older one), but the resource's count stays a hard bound: DELETEs of different
    // copies towards one target do not merge, and must not grow without end.
    if merge(&mut node.pending, new) && node.pending.len() > MAX_PENDING_PER_RESOURCE {
        node.pending.pop();
        if PENDING_FULL.ready() {
            tracing::warn!(ri = %node.ri, per_resource = MAX_PENDING_PER_RESOURCE,
                "pending announcement actions at the cap; this one is dropped");
        }
    }
}

/// Why an announcement request got no answer, and whether trying again may help.
struct Unsent {
    why: String,
    retry: bool,
}

/// The peer an announcement request goes to.
enum Hop {
    /// The target itself.
    Direct(Peer),
    /// This CSE's registrar, which forwards it to the target.
    Registrar(Peer),
}

/// How one announcement request ended for its target.
enum Sent {
    /// Done (for a CREATE, the copy made).
    Done(Option<Copy>),
    /// Not reached: worth trying again.
    Retry,
    /// Refused or unusable: logged, not tried again.
    Dropped,
}

/// Whether a failure to reach the target, or its answer, is worth a retry: no answer, or
/// the target (or a CSE on the way) could not go on now.
fn retryable(rsc: Rsc) -> bool {
    matches!(
        rsc,
        Rsc::TargetNotReachable
            | Rsc::RemoteEntityNotReachable
            | Rsc::RequestTimeout
            | Rsc::InternalServerError
    )
}

/// Attributes every copy carries when the original has them (MA, TS-0001 9.6.1.3).
const ALWAYS: &[&str] = &["lbl", "et"];

/// The attributes naming a `<mgmtObj>`'s and a `<flexContainer>`'s specialization: MA,
/// and never changed after CREATE.
const SPECIALIZING: &[&str] = &["mgd", "cnd"];

/// The CSE-IDs `at` lists.
fn targets(attrs: &Map<String, Value>) -> Vec<String> {
    attrs
        .get("at")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The attribute names `aa` lists.
fn listed(attrs: &Map<String, Value>) -> impl Iterator<Item = &str> {
    attrs
        .get("aa")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Of `names`, the announced ones, with their values in `attrs` (null when removed).
fn announced_values<'a>(
    names: impl Iterator<Item = &'a str>,
    attrs: &Map<String, Value>,
) -> Map<String, Value> {
    // `aa` cannot name a write-only value (4000 at the request); this keeps one stored
    // before that rule out of every copy as well.
    names
        .filter(|n| ALWAYS.contains(n) || listed(attrs).any(|l| l == *n))
        .filter(|n| !bastion_proto::attrs::mgmt::withheld(attrs, n))
        .map(|n| (n.to_owned(), attrs.get(n).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// What a resource's copy is made of: its announced type and the name the copy is
/// serialized under (a specialization's: `m2m:fwrA`, `cod:binShAnnc`), the link back,
/// its attributes.
struct Original {
    announced: ResourceType,
    root: String,
    lnk: String,
    attrs: Map<String, Value>,
    parent: Option<Ri>,
}

impl Original {
    /// The content of the copy's CREATE: `lnk`, then the announced attributes.
    fn copy_content(&self) -> Value {
        let mut copy = Map::new();
        copy.insert("lnk".into(), Value::String(self.lnk.clone()));
        let names = ALWAYS.iter().copied().chain(listed(&self.attrs));
        for (k, v) in announced_values(names, &self.attrs) {
            if !v.is_null() {
                copy.insert(k, v);
            }
        }
        // The specialization a `<mgmtObjAnnc>` or `<flexContainerAnnc>` is of (MA).
        for name in SPECIALIZING {
            if let Some(v) = self.attrs.get(*name) {
                copy.insert((*name).to_owned(), v.clone());
            }
        }
        let mut pc = Map::new();
        pc.insert(self.root.clone(), Value::Object(copy));
        Value::Object(pc)
    }
}

impl Cse {
    fn announcement_request(&self, op: Operation, to: String, pc: Option<Value>) -> Request {
        Request {
            op: Some(op),
            to,
            fr: Some(self.config.cse_id.clone()),
            rqi: Some(format!("an-{}", fresh_id())),
            rvi: Some("3".to_owned()),
            pc,
            ..Default::default()
        }
    }

    /// Sends `req` to the CSE `target`: directly when it is a peer (this CSE's registrar
    /// or registered here), else through the registrar, which forwards it as any request
    /// addressed to another CSE (TS-0001 7.3.2.6). Not sent at all (no outbound port, or
    /// no peer to send it to) is no reason to try again.
    async fn send_to_cse(&self, target: &str, req: Request) -> Result<Response, Unsent> {
        let never = |why: &str| Unsent {
            why: why.to_owned(),
            retry: false,
        };
        let outbound = self
            .outbound
            .as_ref()
            .ok_or_else(|| never("this CSE sends no requests"))?;
        let peer = match self.announcement_hop(target) {
            Some(Hop::Direct(peer) | Hop::Registrar(peer)) => peer,
            None => {
                return Err(never(
                    "neither this CSE's registrar nor registered here, nor reached through the registrar",
                ))
            }
        };
        outbound
            .send(Some(&peer.csi), &peer.poa, req)
            .await
            .map_err(|e| Unsent {
                why: e.to_string(),
                retry: true,
            })
    }

    /// The peer an announcement request for `target` goes to, chosen as for any request
    /// this CSE forwards (`forward::next_hop`): the target itself when it is a peer, else
    /// the registrar. A CSE below this one (in a registree's `dcse`) is no target: this
    /// CSE's requests reach it relayed by its registrar, which vouches for no
    /// `<CSEBaseAnnc>` there (`types/announced.rs`); nor is any CSE for an IN-CSE, which
    /// has no registrar; nor this CSE itself.
    fn announcement_hop(&self, target: &str) -> Option<Hop> {
        if target == self.config.cse_id {
            return None;
        }
        let peers = self.peers(self.now());
        let here = Here {
            cse_id: &self.config.cse_id,
            cse_type: self.config.cse_type,
            registrar: self.config.registrar.as_deref(),
        };
        let dest = Destination::Cse(target.to_owned());
        let hop = next_hop(&here, &peers, &dest, Owner::Local, None).ok()?;
        if hop.csi == target {
            Some(Hop::Direct(hop.clone()))
        } else if Some(hop.csi.as_str()) == here.registrar {
            Some(Hop::Registrar(hop.clone()))
        } else {
            None
        }
    }

    /// The address of this CSE's `<CSEBaseAnnc>` at `target` (a CSE reached through the
    /// registrar): structured, under its CSEBase (`-`), named after this CSE's CSE-ID
    /// (`/id-in/-/id-mn2Annc`; docs/decisions.md).
    fn cse_base_copy_at(&self, target: &str) -> String {
        format!("{target}/-/{}", self.cse_base_copy_name())
    }

    /// The `rn` of this CSE's `<CSEBaseAnnc>` at a CSE reached through the registrar:
    /// not its `<remoteCSE>` name there (`id-mn2`), should it register there later.
    fn cse_base_copy_name(&self) -> String {
        format!("{}Annc", self.config.cse_id.trim_start_matches('/'))
    }

    /// Makes sure this CSE's `<CSEBaseAnnc>` is at `target` before a copy goes under it:
    /// CREATE under the target's CSEBase, where 4105 means it is there already.
    async fn announce_cse_base(&self, target: &str) -> Result<(), Sent> {
        let name = self.cse_base_copy_name();
        let lnk = format!("{}/{}", self.config.cse_id, self.config.cse_name);
        let pc = serde_json::json!({"m2m:cbA": {"rn": name, "lnk": lnk}});
        let mut req = self.announcement_request(Operation::Create, target.to_owned(), Some(pc));
        req.ty = Some(CSE_BASE_ANNC);
        match self.send_to_cse(target, req).await {
            Ok(resp) if resp.rsc == Rsc::Created || resp.rsc == Rsc::Conflict => Ok(()),
            Ok(resp) if retryable(resp.rsc) => {
                tracing::info!(target = %target, rsc = resp.rsc.code(), "this CSE's CSEBase not announced yet; kept to retry");
                Err(Sent::Retry)
            }
            Ok(resp) => {
                tracing::warn!(target = %target, rsc = resp.rsc.code(), "not announced: this CSE's CSEBase was refused there");
                Err(Sent::Dropped)
            }
            Err(Unsent { why, retry: true }) => {
                tracing::info!(target = %target, error = %why, "this CSE's CSEBase not announced yet; kept to retry");
                Err(Sent::Retry)
            }
            Err(Unsent { why, .. }) => {
                tracing::warn!(target = %target, error = %why, "not announced");
                Err(Sent::Dropped)
            }
        }
    }

    /// Where a copy of a resource whose parent is `parent` goes at `target`: under the
    /// parent's copy there, else (not for an instance, whose container is always announced
    /// first) under the `<remoteCSE>` of this CSE at the target, named by its CSE-ID, or
    /// at a CSE reached through the registrar under this CSE's `<CSEBaseAnnc>` there.
    fn copy_parent(&self, tree: &Tree, o: &Original, target: &str) -> Option<String> {
        let parent = o.parent.as_ref().and_then(|p| tree.get(p));
        if let Some((_, copy)) = parent
            .into_iter()
            .flat_map(|p| &p.announced)
            .find(|(t, _)| &**t == target)
        {
            return Some(copy.to_string());
        }
        if o.announced
            .original()
            .is_some_and(ResourceType::is_instance)
        {
            return None;
        }
        if let Some(Hop::Registrar(_)) = self.announcement_hop(target) {
            return Some(self.cse_base_copy_at(target));
        }
        let cb = crate::remote_cse::csr_of(tree, target)?
            .attrs
            .get("cb")?
            .as_str()?;
        Some(format!(
            "{cb}/{}",
            self.config.cse_id.trim_start_matches('/')
        ))
    }

    /// Whether the parent of `o` still waits for its own copy at `target`: then the copy
    /// of `o` waits too (it goes under the parent's).
    fn parent_pending(&self, tree: &Tree, o: &Original, target: &str) -> bool {
        o.parent
            .as_ref()
            .and_then(|p| tree.get(p))
            .is_some_and(|p| {
                p.pending
                    .iter()
                    .any(|a| &*a.target == target && a.action == Action::Create)
            })
    }

    /// Creates the copy of `o` at `target` under `place`.
    async fn make_copy(&self, o: &Original, target: &str, place: Option<String>) -> Sent {
        let Some(place) = place else {
            tracing::warn!(lnk = %o.lnk, target = %target, "not announced: its parent is not announced there and this CSE is not registered with it");
            return Sent::Dropped;
        };
        if place == self.cse_base_copy_at(target) {
            if let Err(sent) = self.announce_cse_base(target).await {
                return sent;
            }
        }
        let mut req = self.announcement_request(Operation::Create, place, Some(o.copy_content()));
        req.ty = Some(u64::from(o.announced.number()));
        let root = o.root.as_str();
        match self.send_to_cse(target, req).await {
            Ok(resp) if resp.rsc == Rsc::Created => {
                let ri = resp
                    .pc
                    .as_ref()
                    .and_then(|pc| pc.get(root)?.get("ri")?.as_str().map(str::to_owned));
                match ri {
                    Some(ri) => Sent::Done(Some((target.into(), format!("{target}/{ri}").into()))),
                    None => {
                        tracing::warn!(lnk = %o.lnk, target = %target, "announcement answered without the copy's ri");
                        Sent::Dropped
                    }
                }
            }
            Ok(resp) if retryable(resp.rsc) => {
                tracing::info!(lnk = %o.lnk, target = %target, rsc = resp.rsc.code(), "announcement not done; kept to retry");
                Sent::Retry
            }
            Ok(resp) => {
                tracing::warn!(lnk = %o.lnk, target = %target, rsc = resp.rsc.code(), "announcement refused");
                Sent::Dropped
            }
            Err(Unsent { why, retry: true }) => {
                tracing::info!(lnk = %o.lnk, target = %target, error = %why, "announcement not done; kept to retry");
                Sent::Retry
            }
            Err(Unsent { why, .. }) => {
                tracing::warn!(lnk = %o.lnk, target = %target, error = %why, "not announced");
                Sent::Dropped
            }
        }
    }

    /// Creates copies of `o` at `targets`, in parallel: the copies made, and the targets
    /// to try again (not reached, or whose parent copy is still pending there).
    async fn make_copies(&self, o: &Original, targets: &[String]) -> (Vec<Copy>, Vec<String>) {
        let places: Vec<(String, Option<String>, bool)> = {
            let tree = self.tree.read();
            targets
                .iter()
                .map(|t| {
                    let waits = self.parent_pending(&tree, o, t);
                    (t.clone(), self.copy_parent(&tree, o, t), waits)
                })
                .collect()
        };
        let sends = places.into_iter().map(|(target, place, waits)| async move {
            let sent = if waits && place.is_none() {
                Sent::Retry
            } else {
                self.make_copy(o, &target, place).await
            };
            (target, sent)
        });
        let mut made = Vec::new();
        let mut retry = Vec::new();
        for (target, sent) in join_bounded(sends.collect(), MAX_ANNOUNCE_TARGETS).await {
            match sent {
                Sent::Done(Some(copy)) => made.push(copy),
                Sent::Retry => retry.push(target),
                Sent::Done(None) | Sent::Dropped => {}
            }
        }
        (made, retry)
    }

    /// Sends one UPDATE or DELETE to `copy` at `target`.
    async fn to_copy(&self, op: Operation, target: &str, copy: &str, pc: Option<Value>) -> Sent {
        let req = self.announcement_request(op, copy.to_owned(), pc);
        match self.send_to_cse(target, req).await {
            Ok(resp) if resp.rsc.is_success() || resp.rsc == Rsc::NotFound => Sent::Done(None),
            Ok(resp) if retryable(resp.rsc) => {
                tracing::info!(copy = %copy, rsc = resp.rsc.code(), op = ?op, "announced copy not synchronized; kept to retry");
                Sent::Retry
            }
            Ok(resp) => {
                tracing::warn!(copy = %copy, rsc = resp.rsc.code(), op = ?op, "announced copy not synchronized");
                Sent::Dropped
            }
            Err(Unsent { why, retry: true }) => {
                tracing::info!(copy = %copy, error = %why, op = ?op, "announced copy not synchronized; kept to retry");
                Sent::Retry
            }
            Err(Unsent { why, .. }) => {
                tracing::warn!(copy = %copy, error = %why, op = ?op, "announced copy not synchronized");
                Sent::Dropped
            }
        }
    }

    /// Sends one UPDATE or DELETE to each copy, in parallel; the copies to try again.
    async fn to_copies(&self, op: Operation, copies: &[Copy], pc: Option<Value>) -> Vec<Copy> {
        let sends = copies.iter().map(|(target, copy)| {
            let pc = pc.clone();
            async move {
                let sent = self.to_copy(op, target, copy, pc).await;
                (matches!(sent, Sent::Retry), (target.clone(), copy.clone()))
            }
        });
        join_bounded(sends.collect(), MAX_ANNOUNCE_TARGETS)
            .await
            .into_iter()
            .filter_map(|(retry, copy)| retry.then_some(copy))
            .collect()
    }

    /// The original `ri` as its copies see it; `None` when it is not announceable.
    fn original(&self, ri: &str) -> Option<(Original, Vec<Copy>)> {
        let tree = self.tree.read();
        let node = tree.get(ri)?;
        let announced = node.ty.announced()?;
        let o = Original {
            announced,
            root: crate::types::root_of(&self.config, &tree, announced, &node.attrs),
            lnk: format!("{}/{}", self.config.cse_id, node.ri),
            attrs: node.attrs.clone(),
            parent: node.pi.clone(),
        };
        Some((o, node.announced.clone()))
    }

    /// Applies `change` to the node `ri` (where its copies live, what is pending), sets
    /// `at` to the targets where a copy was made, and stores it; the attributes to answer
    /// with. `None` when the node is gone or the write failed.
    /// `counted` names the targets whose pending actions over the tree `change` is given
    /// (to bound what it keeps).
    async fn record(
        &self,
        ri: &str,
        counted: &[&str],
        change: impl FnOnce(&dyn Fn(&str) -> usize, &mut Node),
    ) -> Option<Map<String, Value>> {
        let (written, attrs) = {
            let mut tree = self.tree.write();
            tree.get(ri)?;
            let counts: Vec<(&str, usize)> = counted
                .iter()
                .map(|t| (*t, pending_towards(&tree, t)))
                .collect();
            let count = |t: &str| counts.iter().find(|(c, _)| *c == t).map_or(0, |(_, n)| *n);
            let node = tree.get_mut(ri)?;
            change(&count, node);
            let at: Vec<Value> = node
                .announced
                .iter()
                .map(|(t, _)| Value::from(&**t))
                .collect();
            if at.is_empty() {
                node.attrs.remove("at");
            } else {
                node.attrs.insert("at".into(), Value::Array(at));
            }
            let attrs = node.attrs.clone();
            let row = node_row(node);
            (self.committer.enqueue(vec![WriteOp::Upsert(row)]), attrs)
        };
        match written.durable().await {
            Ok(()) => Some(attrs),
            Err(e) => {
                tracing::warn!(ri = %ri, error = %e, "where the announced copies live was not stored");
                None
            }
        }
    }

    /// After a CREATE of a resource (attributes `attrs`, durable): its copies at the CSEs
    /// of its `at`. Answers with the attributes as stored then.
    pub(crate) async fn announce_created(&self, attrs: Map<String, Value>) -> Map<String, Value> {
        let wanted = targets(&attrs);
        if wanted.is_empty() {
            return attrs;
        }
        let ri = attrs.get("ri").and_then(Value::as_str).unwrap_or("");
        let Some((o, _)) = self.original(ri) else {
            return attrs;
        };
        let (made, retry) = self.make_copies(&o, &wanted).await;
        let now = self.now();
        let ri = ri.to_owned();
        let counted: Vec<&str> = retry.iter().map(String::as_str).collect();
        self.record(&ri, &counted, |count, node| {
            node.announced = made;
            for target in &retry {
                let p = Pending::new(target, Action::Create, None, now);
                keep(node, p, count(target));
            }
        })
        .await
        .unwrap_or(attrs)
    }

    /// Keeps in the `at` of a new instance of `parent` only the targets where `parent`
    /// has a copy: an instance's copy goes under its container's (TS-0001 9.6.26).
    pub(crate) fn instance_targets(&self, parent: &Ri, content: &mut Map<String, Value>) {
        let Some(Value::Array(at)) = content.get_mut("at") else {
            return;
        };
        let tree = self.tree.read();
        let copies = tree
            .get(parent)
            .map(|p| p.announced.as_slice())
            .unwrap_or_default();
        at.retain(|t| copies.iter().any(|(c, _)| Some(&**c) == t.as_str()));
        if at.is_empty() {
            content.remove("at");
        }
    }

    /// After a CREATE of an instance of `parent` (durable; a `<contentInstance>` a
    /// request made, or a `<flexContainerInstance>` the CSE made): its copies under the
    /// container's copies at the CSEs of its `at` where the container has one now. An
    /// instance never changes, so where they live is not stored; they expire with it
    /// (`et` is announced), go with the container's copy, or are evicted by the target,
    /// which bounds the instance copies under a copy (`types/announced.rs`). Answers
    /// with `at` holding the targets where a copy was made; a copy not made is not
    /// retried (docs/decisions.md).
    pub(crate) async fn announce_instance(
        &self,
        parent: &Ri,
        mut attrs: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut wanted = targets(&attrs);
        {
            let tree = self.tree.read();
            let copies = tree
                .get(parent)
                .map(|p| p.announced.as_slice())
                .unwrap_or_default();
            wanted.retain(|t| copies.iter().any(|(c, _)| **c == **t));
        }
        let ty = attrs
            .get("ty")
            .and_then(Value::as_u64)
            .and_then(ResourceType::from_number);
        let (Some(announced), false) = (ty.and_then(ResourceType::announced), wanted.is_empty())
        else {
            return attrs;
        };
        let ri = attrs.get("ri").and_then(Value::as_str).unwrap_or("");
        let root = crate::types::root_of(&self.config, &self.tree.read(), announced, &attrs);
        let o = Original {
            announced,
            root,
            lnk: format!("{}/{ri}", self.config.cse_id),
            attrs: attrs.clone(),
            parent: Some(parent.clone()),
        };
        let (made, _) = self.make_copies(&o, &wanted).await;
        let at: Vec<Value> = made.iter().map(|(t, _)| Value::from(&**t)).collect();
        attrs.insert("at".into(), Value::Array(at));
        attrs
    }

    /// After an UPDATE of the resource `ri` that applied `content` (durable): targets
    /// dropped from `at` lose their copy (and a CREATE pending there is cancelled), new
    /// ones get one, and the others receive the announced attributes the content changed
    /// (all `aa` lists, when `aa` changed). What does not reach its target is kept.
    pub(crate) async fn announce_updated(
        &self,
        ri: &Ri,
        content: &Map<String, Value>,
        attrs: Map<String, Value>,
    ) -> Map<String, Value> {
        // Most UPDATEs touch no announced resource: decided without copying anything.
        let announced = || {
            self.tree
                .read()
                .get(ri)
                .is_some_and(|n| !n.announced.is_empty() || !n.pending.is_empty())
        };
        if !content.contains_key("at") && !announced() {
            return attrs;
        }
        let Some((o, current)) = self.original(ri) else {
            return attrs;
        };
        let wanted = if content.contains_key("at") {
            targets(&o.attrs)
        } else {
            current.iter().map(|(t, _)| t.to_string()).collect()
        };
        let (kept, dropped): (Vec<Copy>, Vec<Copy>) = current
            .into_iter()
            .partition(|(t, _)| wanted.iter().any(|w| **w == **t));
        let new: Vec<String> = wanted
            .iter()
            .filter(|w| !kept.iter().any(|(t, _)| **t == ***w))
            .cloned()
            .collect();
        let undeleted = self.to_copies(Operation::Delete, &dropped, None).await;
        let changed: Vec<&str> = if content.contains_key("aa") {
            ALWAYS.iter().copied().chain(listed(&o.attrs)).collect()
        } else {
            content.keys().map(String::as_str).collect()
        };
        let values = announced_values(changed.into_iter(), &o.attrs);
        let mut unupdated = Vec::new();
        if !values.is_empty() && !kept.is_empty() {
            let mut pc = Map::new();
            pc.insert(o.root.clone(), Value::Object(values));
            unupdated = self
                .to_copies(Operation::Update, &kept, Some(Value::Object(pc)))
                .await;
        }
        let (made, retry) = self.make_copies(&o, &new).await;
        let now = self.now();
        let at_changed = content.contains_key("at");
        let counted: Vec<&str> = undeleted
            .iter()
            .chain(&unupdated)
            .map(|(t, _)| &**t)
            .chain(retry.iter().map(String::as_str))
            .collect();
        self.record(ri, &counted, |count, node| {
            if at_changed {
                node.pending.retain(|p| {
                    p.action != Action::Create || wanted.iter().any(|w| **w == *p.target)
                });
            }
            node.pending.retain(|p| {
                !(p.action == Action::Create && made.iter().any(|(t, _)| *t == p.target))
            });
            let mut copies = kept;
            copies.extend(made);
            node.announced = copies;
            let actions = undeleted
                .iter()
                .map(|(t, c)| (t, Action::Delete, Some(c)))
                .chain(unupdated.iter().map(|(t, c)| (t, Action::Update, Some(c))));
            for (target, action, copy) in actions {
                let p = Pending::new(target, action, copy.map(|c| &**c), now);
                keep(node, p, count(target));
            }
            for target in &retry {
                let p = Pending::new(target, Action::Create, None, now);
                keep(node, p, count(target));
            }
        })
        .await
        .unwrap_or(attrs)
    }

    /// DELETE of the copies of resources that are gone (`copies_under`, taken before).
    /// The originals' pending actions went with them; a copy not reached now is logged
    /// and not retried: nothing durable is left to keep it with (docs/decisions.md).
    pub(crate) async fn withdraw(&self, copies: Vec<Copy>) {
        if !copies.is_empty() {
            for (target, copy) in self.to_copies(Operation::Delete, &copies, None).await {
                tracing::warn!(target = %target, copy = %copy, "the copy of a deleted original was not deleted");
            }
        }
    }

    /// One periodic pass over the pending announcement actions: those due are tried
    /// (at most [`MAX_RETRIES_PER_PASS`], in parallel within the target limit); done or
    /// refused ones are removed, failed ones wait twice as long (up to a minute).
    pub(crate) async fn retry_announcements(&self) {
        if self.write_guard().is_err() {
            return;
        }
        let now = self.now();
        let due: Vec<(Ri, Pending)> = {
            let tree = self.tree.read();
            tree.nodes
                .values()
                .flat_map(|n| n.pending.iter().map(move |p| (n, p)))
                .filter(|(_, p)| p.next <= now)
                .take(MAX_RETRIES_PER_PASS)
                .map(|(n, p)| (n.ri.clone(), p.clone()))
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let tries = due.into_iter().map(|(ri, p)| async move {
            let sent = self.retry_one(&ri, &p).await;
            (ri, p, sent)
        });
        for (ri, p, sent) in join_bounded(tries.collect(), MAX_ANNOUNCE_TARGETS).await {
            self.settle(&ri, &p, sent).await;
        }
    }

    /// Tries one pending action of the resource `ri`.
    async fn retry_one(&self, ri: &Ri, p: &Pending) -> Sent {
        let Some((o, _)) = self.original(ri) else {
            return Sent::Dropped;
        };
        match (p.action, p.copy.as_deref()) {
            (Action::Create, _) => {
                let (place, waits) = {
                    let tree = self.tree.read();
                    (
                        self.copy_parent(&tree, &o, &p.target),
                        self.parent_pending(&tree, &o, &p.target),
                    )
                };
                if place.is_none() && waits {
                    return Sent::Retry;
                }
                self.make_copy(&o, &p.target, place).await
            }
            (Action::Update, Some(copy)) => {
                // Everything announced, as it is now: the missed changes included.
                let names = ALWAYS.iter().copied().chain(listed(&o.attrs));
                let mut pc = Map::new();
                pc.insert(
                    o.root.clone(),
                    Value::Object(announced_values(names, &o.attrs)),
                );
                self.to_copy(Operation::Update, &p.target, copy, Some(Value::Object(pc)))
                    .await
            }
            (Action::Delete, Some(copy)) => {
                self.to_copy(Operation::Delete, &p.target, copy, None).await
            }
            _ => Sent::Dropped,
        }
    }

    /// Records how a retried action `p` of `ri` ended. A failure only moves its next try
    /// (the backoff is not stored); a copy made for an original that went meanwhile, or
    /// for a target no longer wanted, is deleted again.
    async fn settle(&self, ri: &Ri, p: &Pending, sent: Sent) {
        let now = self.now();
        if let Sent::Retry = sent {
            let mut tree = self.tree.write();
            if let Some(q) = tree
                .get_mut(ri)
                .and_then(|n| n.pending.iter_mut().find(|q| q.same(p)))
            {
                q.tries = q.tries.saturating_add(1);
                q.next = Timestamp(now.0.saturating_add(backoff(q.tries)));
            }
            return;
        }
        let made = match &sent {
            Sent::Done(Some(copy)) => Some(copy.clone()),
            _ => None,
        };
        let mut kept = false;
        self.record(ri, &[], |_, node| {
            let Some(i) = node.pending.iter().position(|q| q.same(p)) else {
                return;
            };
            node.pending.remove(i);
            if let Some(copy) = &made {
                node.announced.retain(|(t, _)| *t != copy.0);
                node.announced.push(copy.clone());
                kept = true;
            }
        })
        .await;
        if let (Some((target, copy)), false) = (made, kept) {
            tracing::info!(copy = %copy, "the copy was made for an original or target that went meanwhile: deleting it");
            let _ = self.to_copy(Operation::Delete, &target, &copy, None).await;
        }
    }
}

/// The copies to delete when `ri` and its subtree go: per target, only the topmost (a
/// copy's own announced children go with it at the target).
pub(crate) fn copies_under(tree: &Tree, ri: &Ri) -> Vec<Copy> {
    let mut out = Vec::new();
    let mut stack: Vec<(Ri, Vec<Box<str>>)> = vec![(ri.clone(), Vec::new())];
    while let Some((next, covered)) = stack.pop() {
        let Some(node) = tree.get(&next) else {
            continue;
        };
        let mut covered = covered;
        for (target, copy) in &node.announced {
            if !covered.contains(target) {
                out.push((target.clone(), copy.clone()));
                covered.push(target.clone());
            }
        }
        for child in &node.children {
            stack.push((child.clone(), covered.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ts0001_9_6_26_copies_carry_lnk_the_announced_and_the_listed_attributes() {
        let attrs = json!({"ri": "cnt1", "lbl": ["a"], "et": "20301231T000000", "mni": 5,
            "mbs": 10, "aa": ["mni"], "at": ["/id-in"], "cr": "Cae"});
        let o = Original {
            announced: ResourceType::Container.announced().unwrap(),
            root: "m2m:cntA".into(),
            lnk: "/id-mn/cnt1".into(),
            attrs: attrs.as_object().unwrap().clone(),
            parent: None,
        };
        assert_eq!(
            o.copy_content(),
            json!({"m2m:cntA": {"lnk": "/id-mn/cnt1", "lbl": ["a"],
                "et": "20301231T000000", "mni": 5}})
        );
        // An UPDATE sends the changed announced attributes only, a removed one as null.
        let mut after = attrs.as_object().unwrap().clone();
        after.remove("lbl");
        let changed = announced_values(["lbl", "mbs", "mni"].into_iter(), &after);
        assert_eq!(Value::Object(changed), json!({"lbl": null, "mni": 5}));
    }

    fn pending(target: &str, action: Action, copy: Option<&str>) -> Pending {
        Pending::new(target, action, copy, Timestamp(100))
    }

    #[test]
    fn pending_actions_merge_per_target() {
        let mut p = vec![pending("/id-in", Action::Create, None)];
        // A CREATE not made yet sends the current attributes: an UPDATE adds nothing.
        assert!(!merge(
            &mut p,
            pending("/id-in", Action::Update, Some("/id-in/x"))
        ));
        assert!(!merge(&mut p, pending("/id-in", Action::Create, None)));
        assert!(merge(
            &mut p,
            pending("/id-asn", Action::Update, Some("/id-asn/y"))
        ));
        assert!(!merge(
            &mut p,
            pending("/id-asn", Action::Update, Some("/id-asn/y"))
        ));
        assert_eq!(p.len(), 2);
        // A DELETE cancels the CREATE and the UPDATE of its copy, and is kept once.
        assert!(merge(
            &mut p,
            pending("/id-in", Action::Delete, Some("/id-in/old"))
        ));
        assert!(merge(
            &mut p,
            pending("/id-asn", Action::Delete, Some("/id-asn/y"))
        ));
        assert!(!merge(
            &mut p,
            pending("/id-asn", Action::Delete, Some("/id-asn/y"))
        ));
        assert_eq!(
            p.iter()
                .map(|a| (&*a.target, a.action, a.copy.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                ("/id-in", Action::Delete, Some("/id-in/old")),
                ("/id-asn", Action::Delete, Some("/id-asn/y")),
            ]
        );
        // Re-announcing after a DELETE of the old copy: both are kept.
        assert!(merge(&mut p, pending("/id-in", Action::Create, None)));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn pending_actions_are_stored_without_their_backoff() {
        let a = pending("/id-in", Action::Update, Some("/id-in/cnt9"));
        assert_eq!(
            a.stored(),
            json!({"target": "/id-in", "action": "update", "copy": "/id-in/cnt9"})
        );
        let back = Pending::from_stored(&a.stored()).unwrap();
        assert!(back.same(&a));
        assert_eq!((back.tries, back.next), (0, Timestamp(0)), "due at once");
        let c = pending("/id-in", Action::Create, None);
        assert!(Pending::from_stored(&c.stored()).unwrap().same(&c));
        for bad in [
            json!({"target": "/id-in", "action": "create", "copy": "/id-in/x"}),
            json!({"target": "/id-in", "action": "delete", "copy": null}),
            json!({"target": "/id-in", "action": "notify", "copy": "/id-in/x"}),
            json!({"action": "delete", "copy": "/id-in/x"}),
        ] {
            assert_eq!(Pending::from_stored(&bad), None, "{bad}");
        }
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_minute() {
        let waits: Vec<i64> = (1..=9).map(backoff).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), 60);
        assert_eq!(pending("/id-in", Action::Create, None).next, Timestamp(101));
    }

    #[test]
    fn a_full_resource_keeps_no_new_target() {
        let mut node = Node::new(
            ResourceType::Container,
            "cnt1",
            None,
            "c".into(),
            "c".into(),
            1,
            Map::new(),
            None,
            None,
        );
        for i in 0..MAX_PENDING_PER_RESOURCE {
            keep(
                &mut node,
                pending(&format!("/id-{i}"), Action::Create, None),
                0,
            );
        }
        keep(&mut node, pending("/id-more", Action::Create, None), 0);
        assert_eq!(node.pending.len(), MAX_PENDING_PER_RESOURCE);
        assert!(!node.pending.iter().any(|p| &*p.target == "/id-more"));
        // Towards a target with its cap reached elsewhere: refused too.
        node.pending.clear();
        keep(
            &mut node,
            pending("/id-in", Action::Create, None),
            MAX_PENDING_PER_TARGET,
        );
        assert!(node.pending.is_empty());
        // DELETEs of ever new copies towards a target already pending: still bounded.
        for i in 0..=MAX_PENDING_PER_RESOURCE {
            let copy = format!("/id-in/copy{i}");
            keep(&mut node, pending("/id-in", Action::Delete, Some(&copy)), 0);
        }
        assert_eq!(node.pending.len(), MAX_PENDING_PER_RESOURCE);
    }
}
