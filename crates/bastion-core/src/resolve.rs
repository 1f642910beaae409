//! Target resolution: from a `to` address to the addressed resource (TS-0004 §7.3.2.8 for
//! hosting vs transit; core-primitives.md §7.1 for structured, unstructured and hybrid
//! addresses), and the registered-originator checks (TS-0001 §10.2.2.2; TS-0003 7.2.1).

use crate::checks::Envelope;
use crate::tree::{Ri, Tree};
use crate::Cse;
use bastion_proto::id::Address;
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, RequestError, ResourceType};

/// A container's virtual children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Virtual {
    Latest,
    Oldest,
}

/// What a `to` address designates.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A resource held in the tree.
    Node(Ri),
    /// A `<contentInstance>` of the container `parent`.
    Instance { parent: Ri, ri: String, seq: i64 },
    /// `la` or `ol` of the container `parent`.
    Virtual { parent: Ri, which: Virtual },
}

impl Target {
    /// The tree node whose access rules govern this target.
    pub fn governing(&self) -> &Ri {
        match self {
            Target::Node(ri) => ri,
            Target::Instance { parent, .. } | Target::Virtual { parent, .. } => parent,
        }
    }

    /// The parent a CREATE addressed to this target would create under: only a resource
    /// held in the tree can have children (TS-0004 7.3.3.2).
    pub fn create_parent(&self) -> Result<&Ri, RequestError> {
        match self {
            Target::Node(ri) => Ok(ri),
            Target::Virtual { .. } => Err(RequestError::not_allowed(
                "virtual resources cannot be created",
            )),
            Target::Instance { .. } => Err(RequestError::InvalidChildType(
                "a contentInstance has no children".into(),
            )),
        }
    }
}

enum Step {
    Found(Target),
    InstanceByName { parent: Ri, rn: String },
    InstanceById(String),
}

/// Whether a stored row of type number `ty` is an instance (`<contentInstance>`,
/// `<timeSeriesInstance>`) rather than a node of the tree.
fn is_instance_row(ty: u16) -> bool {
    ResourceType::from_number(u64::from(ty)).is_some_and(ResourceType::is_instance)
}

fn not_found() -> RequestError {
    RequestError::not_found("resource does not exist")
}

impl Cse {
    /// Resolves the request's target, hiding expired resources.
    pub(crate) async fn resolve(
        &self,
        req: &Envelope,
        now: Timestamp,
    ) -> Result<Target, RequestError> {
        let rest = self.hosted_part(&req.to)?;
        let step = {
            let tree = self.tree.read();
            walk(&tree, &self.config.cse_name, rest, now)?
        };
        match step {
            Step::Found(t) => Ok(t),
            Step::InstanceByName { parent, rn } => {
                let found = self
                    .store
                    .child_by_name(&parent, &rn)
                    .await
                    .map_err(store_read)?
                    .filter(|r| is_instance_row(r.ty));
                let res = found.ok_or_else(not_found)?;
                self.live_instance(parent, res.ri, res.seq, now)
            }
            Step::InstanceById(ri) => {
                let res = self.store.get(&ri).await.map_err(store_read)?;
                let res = res
                    .filter(|r| is_instance_row(r.ty))
                    .ok_or_else(not_found)?;
                let parent: Ri = {
                    let tree = self.tree.read();
                    let node = tree.get(&res.pi).ok_or_else(not_found)?;
                    node.ri.clone()
                };
                self.live_instance(parent, res.ri, res.seq, now)
            }
        }
    }

    /// An instance exists for the caller only while its container still indexes it and
    /// neither it nor an ancestor has expired.
    fn live_instance(
        &self,
        parent: Ri,
        ri: String,
        seq: i64,
        now: Timestamp,
    ) -> Result<Target, RequestError> {
        let tree = self.tree.read();
        let node = tree.get(&parent).ok_or_else(not_found)?;
        if tree.expired_in_chain(&parent, now) {
            return Err(not_found());
        }
        let state = node.container().ok_or_else(not_found)?;
        let pos = state.position(&ri, Some(seq)).ok_or_else(not_found)?;
        if state.instances[pos].et.is_some_and(|et| et <= now.0) {
            return Err(not_found());
        }
        Ok(Target::Instance { parent, ri, seq })
    }

    /// The CSE-relative part of `to` when this CSE hosts it; other CSEs are not reachable
    /// until forwarding exists, which TS-0004 §7.3.2.6 answers with 4004.
    fn hosted_part<'a>(&self, to: &'a str) -> Result<&'a str, RequestError> {
        let no_route = || RequestError::not_found("target CSE is not reachable from this CSE");
        match Address::parse(to)? {
            Address::CseRelative(rest) => Ok(rest),
            Address::SpRelative { cse_id, rest } if cse_id == self.config.cse_id => Ok(rest),
            Address::Absolute {
                sp_id,
                cse_id,
                rest,
            } if sp_id == self.config.sp_id && cse_id == self.config.cse_id => Ok(rest),
            _ => Err(no_route()),
        }
    }

    /// Registered-originator checks (TS-0003 7.2.1): an AE-ID of this CSE must belong to
    /// a registered AE (4106). An originator of another CSE is accepted inside an
    /// association (`verify_identity` bound it to the association, directly or as relayed
    /// by a registered CSE). Outside one, a CSE-ID is 4107 and an AE-ID of another CSE
    /// 4106, unless `trust_loopback_cses` is on and the peer is on loopback: then they are
    /// accepted when they belong to a CSE this CSE knows (`Cse::vouched_in`), or a CSE-ID
    /// registers itself. The admin and `<AE>` CREATE are exempt.
    pub(crate) fn check_originator(
        &self,
        req: &Envelope,
        ctx: &crate::RequestContext,
    ) -> Result<(), RequestError> {
        if self.is_admin(&req.fr)
            || (req.op == Operation::Create && req.ty == Some(ResourceType::Ae))
        {
            return Ok(());
        }
        let tree = self.tree.read();
        let kind = self.local_ae_stem(&req.fr)?;
        if ctx.identity.is_some() && matches!(kind, OriginatorKind::Cse | OriginatorKind::ForeignAe)
        {
            return Ok(());
        }
        // Development only: other CSEs on the plain listener of this host.
        let loopback_trusted =
            self.config.trust_loopback_cses && ctx.peer.is_some_and(|p| p.ip().is_loopback());
        let vouched = || match crate::originator::owner(&self.config.sp_id, &req.fr) {
            crate::originator::Owner::Cse(c) | crate::originator::Owner::AeOf(c) => {
                self.vouched_in(&tree, c)
            }
            _ => false,
        };
        match kind {
            OriginatorKind::LocalAe(stem) => {
                let registered = tree.get(stem).is_some_and(|n| n.ty == ResourceType::Ae);
                if registered {
                    Ok(())
                } else {
                    Err(RequestError::NotAuthenticated(
                        "originator is not a registered AE".into(),
                    ))
                }
            }
            OriginatorKind::Cse if !loopback_trusted => Err(security_association_required()),
            OriginatorKind::Cse => {
                let registering =
                    req.op == Operation::Create && req.ty == Some(ResourceType::RemoteCse);
                if registering || vouched() || self.deregistering(req) {
                    Ok(())
                } else {
                    Err(security_association_required())
                }
            }
            OriginatorKind::ForeignAe if loopback_trusted && vouched() => Ok(()),
            OriginatorKind::ForeignAe => Err(RequestError::NotAuthenticated(
                "originator is not registered with this CSE".into(),
            )),
        }
    }

    /// Whether `req` is a CSE's DELETE of its own `<remoteCSE>` here (by structured or
    /// unstructured address). Peers such as ACME clean up a registration this way before
    /// registering; without one it is an honest 4004, not 4107, and it reaches nothing
    /// else (TS-0001 10.1.1.2.2; docs/decisions.md).
    fn deregistering(&self, req: &Envelope) -> bool {
        let crate::originator::Owner::Cse(csi) =
            crate::originator::owner(&self.config.sp_id, &req.fr)
        else {
            return false;
        };
        let stem = csi.trim_start_matches('/');
        req.op == Operation::Delete
            && self.hosted_part(&req.to).is_ok_and(|rest| {
                rest == stem || rest == format!("{}/{stem}", self.config.cse_name)
            })
    }

    /// Classifies an originator by its form.
    fn local_ae_stem<'a>(&self, fr: &'a str) -> Result<OriginatorKind<'a>, RequestError> {
        let sp_relative = match fr.strip_prefix(self.config.sp_id.as_str()) {
            Some(rest) if rest.starts_with('/') => rest,
            _ if fr.starts_with("//") => return Ok(OriginatorKind::ForeignAe),
            _ => fr,
        };
        if let Some(path) = sp_relative.strip_prefix('/') {
            return Ok(match path.split_once('/') {
                None if path.starts_with('S') => OriginatorKind::LocalAe(path),
                None => OriginatorKind::Cse,
                Some((cse, stem)) if format!("/{cse}") == self.config.cse_id && is_stem(stem) => {
                    OriginatorKind::LocalAe(stem)
                }
                Some(_) => OriginatorKind::ForeignAe,
            });
        }
        if is_stem(sp_relative) {
            Ok(OriginatorKind::LocalAe(sp_relative))
        } else {
            Err(RequestError::bad_request(
                "originator is neither an AE-ID nor a CSE-ID",
            ))
        }
    }
}

enum OriginatorKind<'a> {
    LocalAe(&'a str),
    ForeignAe,
    Cse,
}

fn security_association_required() -> RequestError {
    RequestError::SecurityAssociationRequired(
        "a CSE originator needs a security association".into(),
    )
}

/// An AE-ID-Stem: `C` or `S` followed by at least one identifier character.
fn is_stem(s: &str) -> bool {
    (s.starts_with('C') || s.starts_with('S')) && s.len() > 1 && !s.contains('/')
}

fn store_read(err: bastion_store::StoreError) -> RequestError {
    tracing::error!(error = %err, "storage read failed");
    RequestError::Internal("storage read failed".into())
}

/// Walks the tree segment by segment.
fn walk(tree: &Tree, cse_name: &str, rest: &str, now: Timestamp) -> Result<Step, RequestError> {
    if rest.is_empty() {
        return Ok(Step::Found(Target::Node(tree.base.clone())));
    }
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or("");
    let mut cur = if first == cse_name || first == "-" {
        tree.base.clone()
    } else {
        match tree.get(first) {
            Some(n) => {
                if tree.expired_in_chain(&n.ri, now) {
                    return Err(not_found());
                }
                n.ri.clone()
            }
            None => {
                return if segments.next().is_none() {
                    Ok(Step::InstanceById(first.to_owned()))
                } else {
                    Err(not_found())
                };
            }
        }
    };
    let mut segments = segments.peekable();
    while let Some(seg) = segments.next() {
        let node = tree.get(&cur).ok_or_else(not_found)?;
        if let Some(child) = node.child_names.get(seg) {
            let child_node = tree.get(child).ok_or_else(not_found)?;
            if child_node.is_expired(now) {
                return Err(not_found());
            }
            cur = child.clone();
            continue;
        }
        if node.container().is_none() || segments.peek().is_some() {
            return Err(not_found());
        }
        return Ok(match seg {
            "la" => Step::Found(Target::Virtual {
                parent: cur,
                which: Virtual::Latest,
            }),
            "ol" => Step::Found(Target::Virtual {
                parent: cur,
                which: Virtual::Oldest,
            }),
            rn => Step::InstanceByName {
                parent: cur,
                rn: rn.to_owned(),
            },
        });
    }
    Ok(Step::Found(Target::Node(cur)))
}
