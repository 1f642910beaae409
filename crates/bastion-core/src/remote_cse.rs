//! `<remoteCSE>` (ty 16, `m2m:csr`; TS-0001 9.6.4, core-resources.md §3.9): CSE
//! registration (TS-0001 10.2.2.2 / 10.1.1.2; core-primitives.md §8), the rules for who
//! may change or remove a registration, and what the rest of the core needs to know about
//! the registered CSEs: their points of access and descendants for forwarding
//! (`forward.rs`), and which originators of other CSEs a request may carry
//! (TS-0003 7.2.1 across hops; docs/decisions.md, "Remote CSEs and forwarding").
//!
//! RETRIEVE, UPDATE and DELETE of a `<remoteCSE>` use the generic handlers; this module
//! adds the checks they call ([`check_update`], [`check_delete`]).

use crate::checks::{CreateRequest, Envelope};
use crate::originator::{owner, Owner};
use crate::tree::{Node, Ri, Tree};
pub(crate) use crate::types::csr_of;
use crate::types::{check_dcse, common, created, new_ri, node_row, resolve_acpi, universal};
use crate::{Cse, CseType};
use bastion_proto::attrs::{self, Phase};
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response};
use bastion_store::WriteOp;
use serde_json::{Map, Value};

/// One registered remote CSE, as forwarding and the originator checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Peer {
    /// SP-relative CSE-ID (`csi`).
    pub csi: String,
    /// `dcse`: CSEs reachable through it.
    pub dcse: Vec<String>,
    /// `poa`, in the order to try.
    pub poa: Vec<String>,
}

fn strings(attrs: &Map<String, Value>, key: &str) -> Vec<String> {
    attrs
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The live `<remoteCSE>` children of the CSEBase.
pub(crate) fn peers_in(tree: &Tree, now: Timestamp) -> Vec<Peer> {
    let Some(base) = tree.get(&tree.base) else {
        return Vec::new();
    };
    base.children
        .iter()
        .filter_map(|ri| tree.get(ri))
        .filter(|n| n.ty == ResourceType::RemoteCse && !n.is_expired(now))
        .filter_map(|n| {
            Some(Peer {
                csi: n.attrs.get("csi")?.as_str()?.to_owned(),
                dcse: strings(&n.attrs, "dcse"),
                poa: strings(&n.attrs, "poa"),
            })
        })
        .collect()
}

/// Whether `cse` is below this CSE: a registree's CSE-ID or one of its descendants
/// (every `<remoteCSE>` but the registrar's).
fn is_descendant(peers: &[Peer], registrar: Option<&str>, cse: &str) -> bool {
    peers
        .iter()
        .filter(|p| Some(p.csi.as_str()) != registrar)
        .any(|p| p.csi == cse || p.dcse.iter().any(|d| d == cse))
}

impl Cse {
    /// The registered remote CSEs.
    pub(crate) fn peers(&self, now: Timestamp) -> Vec<Peer> {
        peers_in(&self.tree.read(), now)
    }

    /// Whether a request of an originator belonging to the CSE `cse` (another CSE of
    /// this SP) may be served outside a security association: `cse` is registered here
    /// (`csi`, or in the `dcse` of a registree), or it is not below this CSE and this CSE
    /// has a registrar, from which requests of the whole SP come down
    /// (TS-0001 7.3.2.6).
    pub(crate) fn vouched_in(&self, tree: &Tree, cse: &str) -> bool {
        if cse == self.config.cse_id {
            return false;
        }
        let peers = peers_in(tree, self.now());
        let registrar = self.config.registrar.as_deref();
        if peers
            .iter()
            .any(|p| p.csi == cse || p.dcse.iter().any(|d| d == cse))
        {
            return true;
        }
        registrar.is_some_and(|r| peers.iter().any(|p| p.csi == r))
    }

    /// Which originators an association bound to a CSE may carry besides that CSE
    /// itself (TS-0003 7.2.1 across hops; docs/decisions.md): `true` when `fr` may arrive
    /// on an association bound to `identity`, `false` when it is an impersonation (4106).
    /// A relayed originator is never authenticated here (`identity.rs`).
    ///
    /// * a registered CSE relays its own AEs (`/id-mn/Cabc`) and the CSEs of its `dcse`
    ///   with their AEs;
    /// * the registrar relays any originator of the SP that is neither this CSE's nor
    ///   below it.
    pub(crate) fn relays(&self, identity: &str, fr: &str) -> bool {
        let sp = self.config.sp_id.as_str();
        let Owner::Cse(relay) = owner(sp, identity) else {
            return false;
        };
        let cse = match owner(sp, fr) {
            Owner::AeOf(c) => c,
            Owner::Cse(c) => c,
            Owner::Local | Owner::Unanchored => return false,
        };
        if cse == self.config.cse_id {
            return false;
        }
        let peers = self.peers(self.now());
        let registrar = self.config.registrar.as_deref();
        let Some(relay_csr) = peers.iter().find(|p| p.csi == relay) else {
            return false;
        };
        if cse == relay {
            return true;
        }
        if Some(relay) == registrar {
            return !is_descendant(&peers, registrar, cse);
        }
        let registered_itself = peers.iter().any(|p| p.csi == cse);
        relay_csr.dcse.iter().any(|d| d == cse) && !registered_itself
    }

    /// Creates or refreshes this CSE's own `<remoteCSE>` for another CSE (the registrar,
    /// once this CSE registered with it; core-resources.md §3.9). `attrs` holds the
    /// `<remoteCSE>` attributes (`cb`, `poa`, `cst`, `srv`, `rr`); `csi` is `csi`.
    pub async fn upsert_remote_cse(
        &self,
        csi: &str,
        mut attrs: Map<String, Value>,
    ) -> Result<(), RequestError> {
        let now = self.now();
        check_poa_not_own(&self.config.poa, attrs.get("poa"))?;
        attrs.insert("csi".into(), Value::String(csi.to_owned()));
        self.write_guard()?;
        let pending = {
            let mut tree = self.tree.write();
            let existing = csr_of(&tree, csi).map(|n| n.ri.clone());
            match existing {
                Some(ri) => {
                    let node = tree
                        .get_mut(&ri)
                        .ok_or_else(|| RequestError::not_found("remoteCSE vanished"))?;
                    for key in ["poa", "srv", "rr", "cb", "cst"] {
                        if let Some(v) = attrs.get(key) {
                            node.attrs.insert(key.into(), v.clone());
                        }
                    }
                    node.attrs.insert("lt".into(), Value::String(now.format()));
                    self.committer
                        .enqueue(vec![WriteOp::Upsert(node_row(node))])
                }
                None => {
                    let base = tree.base.clone();
                    let (node, _) = self.new_csr(&mut tree, &base, csi, attrs, now)?;
                    let row = node_row(&node);
                    tree.insert(node);
                    self.committer.enqueue(vec![WriteOp::Upsert(row)])
                }
            }
        };
        pending.durable().await
    }

    /// Builds a `<remoteCSE>` node for `csi` under `parent` from validated content.
    fn new_csr(
        &self,
        tree: &mut Tree,
        parent_ri: &Ri,
        csi: &str,
        mut content: Map<String, Value>,
        now: Timestamp,
    ) -> Result<(Node, Map<String, Value>), RequestError> {
        let seq = tree.next_seq();
        let parent = tree
            .get(parent_ri)
            .ok_or_else(|| RequestError::not_found("CSEBase missing"))?;
        let ri = new_ri(ResourceType::RemoteCse, seq);
        let stem = csi.trim_start_matches('/').to_owned();
        let c = common(
            ResourceType::RemoteCse,
            tree,
            parent,
            &mut content,
            || stem,
            &self.config,
            now,
        )?;
        let acpi = resolve_acpi(tree, &self.config, content.get("acpi"))?;
        let path = format!("{}/{}", parent.path, c.rn);
        let mut attrs = universal(ResourceType::RemoteCse, &ri, &c.rn, parent_ri, now, c.et);
        if c.creator_attr {
            attrs.insert("cr".into(), Value::String(csi.to_owned()));
        }
        attrs.extend(content);
        let mut node = Node::new(
            ResourceType::RemoteCse,
            &ri,
            Some(parent_ri.clone()),
            c.rn,
            path,
            seq,
            attrs.clone(),
            Some(csi.to_owned()),
            Some(c.et),
        );
        node.acpi = acpi;
        Ok((node, attrs))
    }
}

/// A `<remoteCSE>` whose `poa` leads back to this CSE would make every request forwarded
/// to it come back here (a forwarding loop): 4000 when one of `poa` names the port of one
/// of this CSE's own points of access (`own`) on the same host, or on a loopback or
/// unspecified address when this CSE's is one too. Host names other than `localhost` are
/// not resolved; a loop through them is caught when it happens (forward.rs).
fn check_poa_not_own(own: &[String], poa: Option<&Value>) -> Result<(), RequestError> {
    let Some(list) = poa.and_then(Value::as_array) else {
        return Ok(());
    };
    let own: Vec<(String, u16)> = own.iter().filter_map(|p| host_port(p)).collect();
    for candidate in list.iter().filter_map(Value::as_str) {
        let Some((host, port)) = host_port(candidate) else {
            continue;
        };
        let same = own.iter().any(|(own_host, own_port)| {
            *own_port == port && (*own_host == host || (is_local(own_host) && is_local(&host)))
        });
        if same {
            return Err(RequestError::bad_request(
                "poa names a point of access of this CSE itself (a forwarding loop)",
            ));
        }
    }
    Ok(())
}

/// Host (lower case, without brackets or trailing dot) and port of an `http(s)://` URI;
/// the scheme's default port when none is written.
fn host_port(uri: &str) -> Option<(String, u16)> {
    let (scheme, rest) = uri.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((host.trim_end_matches('.').to_ascii_lowercase(), port))
}

/// `localhost`, a loopback or an unspecified address: this machine, whichever it is.
fn is_local(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback() || ip.is_unspecified())
}

/// Whether `fr` is an AE-ID (and not the administrator, who may manage registrations).
fn is_ae_originator(cse: &Cse, fr: &str) -> bool {
    if cse.is_admin(fr) {
        return false;
    }
    !matches!(owner(&cse.config.sp_id, fr), Owner::Cse(_))
}

/// CSE registration: CREATE `<remoteCSE>` under the CSEBase by the registree CSE
/// (TS-0001 10.1.1.2; core-primitives.md §8). Like `<AE>` registration it is not governed
/// by ACPs: the originator checks (and, inside an association, the identity bound to it)
/// decided who the registree is.
impl Cse {
    pub(crate) async fn register_remote_cse(
        &self,
        req: &CreateRequest,
        ctx: &crate::RequestContext,
        parent_ri: &Ri,
        now: Timestamp,
    ) -> Result<Response, RequestError> {
        register(self, req, ctx, parent_ri, now).await
    }

    /// UPDATE of a `<remoteCSE>`: never by an AE (4005, TS-0001 10.2.2.2); a new `dcse`
    /// is checked like at registration.
    pub(crate) fn check_remote_cse_update(
        &self,
        req: &Envelope,
        content: &Map<String, Value>,
    ) -> Result<(), RequestError> {
        if is_ae_originator(self, &req.fr) {
            return Err(RequestError::not_allowed("an AE cannot update a remoteCSE"));
        }
        // `dcse` is checked where the UPDATE is written, under the tree's write lock
        // (`types::remote_cse`), so two registrees cannot both list one CSE.
        check_poa_not_own(&self.config.poa, content.get("poa"))
    }

    /// DELETE of a `<remoteCSE>` (deregistration): never by an AE (4005, TS-0001
    /// 10.2.2.2), checked before access control like the other registration rules.
    pub(crate) fn check_remote_cse_delete(&self, req: &Envelope) -> Result<(), RequestError> {
        if is_ae_originator(self, &req.fr) {
            return Err(RequestError::not_allowed("an AE cannot delete a remoteCSE"));
        }
        Ok(())
    }
}

async fn register(
    cse: &Cse,
    req: &CreateRequest,
    ctx: &crate::RequestContext,
    parent_ri: &Ri,
    now: Timestamp,
) -> Result<Response, RequestError> {
    let mut content = req.content(ResourceType::RemoteCse)?;
    if cse.config.cse_type == CseType::Asn {
        return Err(RequestError::not_allowed(
            "an ASN-CSE accepts no CSE registrations",
        ));
    }
    // An AE must not create a <remoteCSE> (TS-0001 10.2.2.2).
    let csi = match owner(&cse.config.sp_id, &req.fr) {
        Owner::Cse(c) if c == cse.config.cse_id => {
            return Err(RequestError::bad_request(
                "a CSE cannot register with itself",
            ))
        }
        Owner::Cse(c) => c.to_owned(),
        _ => {
            return Err(RequestError::not_allowed(
                "only a CSE can register a remoteCSE",
            ))
        }
    };
    if *parent_ri != cse.tree.read().base {
        return Err(RequestError::InvalidChildType(
            "a remoteCSE registration is created under the CSEBase".into(),
        ));
    }
    attrs::validate(ResourceType::RemoteCse, Phase::Create, &content)?;
    // Over an association only the CSE it is bound to registers (never one it relays),
    // and its CSE-ID is bound to that association from now on.
    let bound = match ctx.identity.as_deref().map(|i| cse.absolute(i)) {
        Some(identity) if !crate::originator::same_identity(&identity, &cse.absolute(&csi)) => {
            return Err(RequestError::NotAuthenticated(
                "a CSE registers over its own security association".into(),
            ))
        }
        identity => identity.map(String::into_boxed_str),
    };
    check_poa_not_own(&cse.config.poa, content.get("poa"))?;
    // The CSE-ID is the registree's own, whatever it sent (core-resources.md §3.9).
    content.insert("csi".into(), Value::String(csi.clone()));
    cse.write_guard()?;
    let (pending, attrs) = {
        let mut tree = cse.tree.write();
        if csr_of(&tree, &csi).is_some() {
            return Err(RequestError::AlreadyRegistered(
                "a CSE with this CSE-ID is already registered".into(),
            ));
        }
        check_dcse(&cse.config, &tree, &csi, content.get("dcse"))?;
        crate::types::check_links(&tree, &cse.config, ResourceType::RemoteCse, &content)?;
        let (mut node, attrs) = cse.new_csr(&mut tree, parent_ri, &csi, content, now)?;
        // Registered over an association: the CSE-ID is bound to it from now on.
        node.bound = bound;
        let row = node_row(&node);
        tree.insert(node);
        (cse.committer.enqueue(vec![WriteOp::Upsert(row)]), attrs)
    };
    pending.durable().await?;
    tracing::info!(csi = %csi, "remote CSE registered");
    created(cse, req, ResourceType::RemoteCse, attrs)
}

#[cfg(test)]
mod poa_tests {
    use super::*;
    use serde_json::json;

    fn refused(own: &[&str], poa: &[&str]) -> bool {
        let own: Vec<String> = own.iter().map(|s| s.to_string()).collect();
        check_poa_not_own(&own, Some(&json!(poa))).is_err()
    }

    #[test]
    fn a_poa_leading_back_to_this_cse_is_refused() {
        let own = ["https://127.0.0.1:8443", "http://127.0.0.1:8080"];
        assert!(refused(&own, &["http://127.0.0.1:8080"]));
        assert!(refused(&own, &["http://localhost:8080/cse-in"]));
        assert!(refused(&own, &["https://[::1]:8443"]));
        assert!(refused(&own, &["http://127.0.0.2:8443"]));
        assert!(refused(
            &own,
            &["http://elsewhere.example", "http://0.0.0.0:8080"]
        ));
        assert!(refused(
            &["http://mn.example:80"],
            &["http://MN.example./x"]
        ));
        assert!(refused(
            &["http://[::ffff:127.0.0.1]:80"],
            &["http://127.0.0.1"]
        ));
        let err = check_poa_not_own(
            &["http://127.0.0.1:8080".into()],
            Some(&json!(["http://127.0.0.1:8080"])),
        );
        assert_eq!(err.unwrap_err().rsc().code(), 4000);
    }

    #[test]
    fn other_points_of_access_pass() {
        let own = ["http://127.0.0.1:8080"];
        assert!(!refused(&own, &["http://127.0.0.1:8081"]));
        assert!(!refused(&own, &["http://mn.example:8080"]));
        assert!(!refused(&own, &["mqtt://127.0.0.1:8080"]));
        assert!(!refused(
            &["http://10.0.0.1:8080"],
            &["http://127.0.0.1:8080"]
        ));
        assert!(check_poa_not_own(&["http://127.0.0.1:8080".into()], None).is_ok());
    }
}

/// Numbers the liveness checks' requests, so that each carries its own request ID.
static NEXT_CHECK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How a registree answered one liveness check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It answered RETRIEVE of its CSEBase with this status (2000 when alive and
    /// letting this CSE read it; anything else still proves it is up).
    Answered(bastion_proto::Rsc),
    /// Nothing answered at its points of access.
    Unreachable(String),
}

impl Cse {
    /// Checks the liveness of every CSE registered here (not the registrar): RETRIEVE of
    /// its CSEBase (`cb`) as this CSE, through its points of access. Returns each
    /// registree's CSE-ID with its answer; the caller logs them. Nothing is deleted: a
    /// registree that is down for a while keeps its registration (docs/decisions.md).
    pub async fn check_registrees(&self) -> Vec<(String, Liveness)> {
        let Some(outbound) = self.outbound.clone() else {
            return Vec::new();
        };
        let registrees: Vec<(String, String, Vec<String>)> = {
            let tree = self.tree.read();
            let now = self.now();
            let registrar = self.config.registrar.as_deref();
            peers_in(&tree, now)
                .into_iter()
                .filter(|p| Some(p.csi.as_str()) != registrar)
                .filter_map(|p| {
                    let node = csr_of(&tree, &p.csi)?;
                    let cb = node.attrs.get("cb")?.as_str()?.to_owned();
                    Some((p.csi, cb, p.poa))
                })
                .collect()
        };
        let mut answers = Vec::with_capacity(registrees.len());
        for (csi, cb, poa) in registrees {
            let n = NEXT_CHECK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let req = bastion_proto::Request {
                op: Some(bastion_proto::Operation::Retrieve),
                to: cb,
                fr: Some(self.config.cse_id.clone()),
                rqi: Some(format!("live-{}-{n}", self.now().0)),
                rvi: Some("3".into()),
                ..bastion_proto::Request::default()
            };
            let outcome = match outbound.send(Some(&csi), &poa, req).await {
                Ok(resp) => Liveness::Answered(resp.rsc),
                Err(e) => Liveness::Unreachable(e.to_string()),
            };
            answers.push((csi, outcome));
        }
        answers
    }
}
