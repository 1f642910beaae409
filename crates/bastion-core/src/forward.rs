//! Forwarding of transit requests (TS-0001 7.3.2.6, TS-0004 7.3.2.6; core-primitives.md
//! §7.2): a request whose `to` names another CSE is not resolved here. After the
//! primitive and originator checks it goes, unchanged but for a CSE-relative `fr`, to the
//! next hop through the binary's [`Outbound`](crate::outbound::Outbound) port, and the
//! next hop's response is relayed as it came. This CSE makes no access decision on it:
//! the hosting CSE evaluates its own policies against the original originator.
//!
//! Owns: the transit test on `to`, the classification of originators by the CSE they
//! belong to, the choice of the next hop (with loop protection) and the `fr` rewrite.
//! The pure parts are free functions, tested below.
//!
//! Loop protection, besides never choosing the sender as next hop: every request being
//! forwarded is held in [`InFlight`] by its onward `fr` and its `rqi` (both travel
//! unchanged from hop to hop); one that arrives while this CSE is still forwarding it
//! has come back round, and is answered 5103 instead of being sent on again
//! (docs/decisions.md). TS-0004 carries no hop count.

use crate::checks;
use crate::config::CseType;
pub(crate) use crate::originator::{owner, Owner};
use crate::outbound::OutboundError;
use crate::remote_cse::Peer;
use crate::{Cse, RequestContext};
use bastion_proto::time::parse_abs_rel;
use bastion_proto::{Operation, Request, RequestError, ResourceType, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The requests this CSE is forwarding now, by onward `fr` and `rqi`, with how many
/// times each is held (a key may be held again only by a loop, which is refused, or by
/// an originator reusing a `rqi` concurrently).
#[derive(Debug, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashMap<(String, String), usize>>>);

impl InFlight {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), usize>> {
        // A poisoned map only means a panic while it was held; its content is still a
        // set of counters.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request from `fr` with `rqi` is being forwarded by this CSE now.
    fn contains(&self, fr: &str, rqi: &str) -> bool {
        self.held().contains_key(&(fr.to_owned(), rqi.to_owned()))
    }

    /// Holds `(fr, rqi)` until the returned guard is dropped.
    fn enter(&self, fr: &str, rqi: &str) -> Forwarding {
        let key = (fr.to_owned(), rqi.to_owned());
        *self.held().entry(key.clone()).or_insert(0) += 1;
        Forwarding {
            set: self.0.clone(),
            key,
        }
    }
}

/// One request held in [`InFlight`]; released when dropped, also when the forwarding
/// future is cancelled.
struct Forwarding {
    set: Arc<Mutex<HashMap<(String, String), usize>>>,
    key: (String, String),
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        let mut held = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// Where a transit request is headed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Another CSE of this M2M service provider (its SP-relative CSE-ID).
    Cse(String),
    /// A CSE of another service provider: no `<remoteCSE>` here can match it.
    OtherSp,
}

/// `Some` when this CSE is not the host of `to` (TS-0004 7.3.2.8). Only the scope prefix
/// is looked at; the rest is validated by whoever hosts the target.
pub(crate) fn transit(sp_id: &str, cse_id: &str, to: &str) -> Option<Destination> {
    // A malformed address is the hosting pipeline's to refuse (4000), not a route.
    if bastion_proto::id::Address::parse(to).is_err()
        || to
            .split('/')
            .skip(3)
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    if let Some(abs) = to.strip_prefix("//") {
        let (sp, rest) = abs.split_once('/').unwrap_or((abs, ""));
        if sp != sp_id.trim_start_matches('/') {
            return Some(Destination::OtherSp);
        }
        let cse = rest.split('/').next().unwrap_or("");
        return (cse != cse_id.trim_start_matches('/') && !cse.is_empty())
            .then(|| Destination::Cse(format!("/{cse}")));
    }
    let rest = to.strip_prefix('/')?;
    let cse = rest.split('/').next().unwrap_or("");
    (cse != cse_id.trim_start_matches('/') && !cse.is_empty())
        .then(|| Destination::Cse(format!("/{cse}")))
}

/// `fr` as sent onward: a CSE-relative AE-ID-Stem gets this CSE's CSE-ID in front
/// (`Cabc` → `/id-mn/Cabc`), an S-type stem becomes SP-relative (`Sabc` → `/Sabc`);
/// SP-relative and absolute forms travel unchanged (core-primitives.md §7.2).
pub(crate) fn onward_originator(cse_id: &str, fr: &str) -> String {
    if fr.starts_with('/') {
        fr.to_owned()
    } else if fr.starts_with('S') {
        format!("/{fr}")
    } else {
        format!("{cse_id}/{fr}")
    }
}

/// What the next-hop choice needs to know about this CSE.
pub(crate) struct Here<'a> {
    pub cse_id: &'a str,
    pub cse_type: CseType,
    pub registrar: Option<&'a str>,
}

/// The next hop for a request to `dest` (TS-0001 7.3.2.6):
///
/// 1. a `<remoteCSE>` whose `csi` is the target, else one listing it in `dcse`;
/// 2. otherwise, on a CSE that is not the IN-CSE, the registrar, but only for requests
///    originating here or below (a request that came down from the registrar never goes
///    back up);
/// 3. otherwise 4004.
///
/// `origin` is the CSE the originator belongs to; `sender` the CSE the request came from
/// (the association's, else the originator's). A hop equal to `sender` is refused (loop
/// protection; docs/decisions.md).
pub(crate) fn next_hop<'p>(
    here: &Here<'_>,
    peers: &'p [Peer],
    dest: &Destination,
    origin: Owner<'_>,
    sender: Option<&str>,
) -> Result<&'p Peer, RequestError> {
    let own = here.cse_id;
    let direct = match dest {
        Destination::Cse(target) => peers
            .iter()
            .find(|p| p.csi == *target && p.csi != own)
            .or_else(|| {
                peers
                    .iter()
                    .find(|p| p.csi != own && p.dcse.iter().any(|d| d == target))
            }),
        Destination::OtherSp => None,
    };
    let hop = match direct {
        Some(peer) => peer,
        None => {
            let registrar = here
                .registrar
                .filter(|_| here.cse_type != CseType::In)
                .filter(|_| from_below(here, peers, origin))
                .ok_or_else(|| RequestError::not_found("no route to the target CSE"))?;
            peers.iter().find(|p| p.csi == registrar).ok_or_else(|| {
                RequestError::TargetNotReachable(
                    "registration with the registrar CSE is not complete".into(),
                )
            })?
        }
    };
    if sender == Some(hop.csi.as_str()) {
        return Err(RequestError::not_found(
            "no route to the target CSE: the next hop is the CSE the request came from",
        ));
    }
    Ok(hop)
}

/// Whether the originator belongs to this CSE or to a CSE below it (a registree other
/// than the registrar, or one of its `dcse`).
fn from_below(here: &Here<'_>, peers: &[Peer], origin: Owner<'_>) -> bool {
    let cse = match origin {
        Owner::Local => return true,
        Owner::Cse(c) | Owner::AeOf(c) => c,
        Owner::Unanchored => return false,
    };
    cse == here.cse_id
        || peers
            .iter()
            .filter(|p| Some(p.csi.as_str()) != here.registrar)
            .any(|p| p.csi == cse || p.dcse.iter().any(|d| d == cse))
}

/// The CSE a request came from: the one its association is bound to, else the one its
/// originator belongs to; `None` for this CSE's own originators.
fn sender<'a>(own: &str, sp_id: &str, identity: Option<&'a str>, fr: &'a str) -> Option<&'a str> {
    if let Some(Owner::Cse(c)) = identity.map(|i| owner(sp_id, i)) {
        return Some(c);
    }
    match owner(sp_id, fr) {
        Owner::Cse(c) | Owner::AeOf(c) if c != own => Some(c),
        _ => None,
    }
}

impl Cse {
    /// Who hosts `to` when this CSE does not ([`transit`]): `Some(Some(csi))` another CSE
    /// of this service provider (its SP-relative CSE-ID), `Some(None)` one of another
    /// service provider.
    pub(crate) fn other_host(&self, to: &str) -> Option<Option<String>> {
        match transit(&self.config.sp_id, &self.config.cse_id, to)? {
            Destination::Cse(csi) => Some(Some(csi)),
            Destination::OtherSp => Some(None),
        }
    }

    /// Forwards a transit request and relays the response (TS-0004 7.3.2.6). The
    /// primitive checks and the originator checks (4106/4107, association binding) run
    /// first, as for a hosted request; registration requests are refused (4000), a passed
    /// `oet` is 4008, an unreachable next hop 5103.
    pub(crate) async fn forward(
        &self,
        req: Request,
        ctx: &RequestContext,
        dest: Destination,
    ) -> Result<Response, RequestError> {
        self.relay(req, ctx, dest, true).await
    }

    /// Sends a request this CSE issues itself on behalf of the originator of the request
    /// it is serving (`rcn` 7 fetching an announced resource's original, TS-0004
    /// 7.3.3.3): the same checks, identity binding, routing and `fr` rewrite as a
    /// forwarded request, but it did not arrive from another CSE, so no next hop is
    /// refused for being the one it came from.
    pub(crate) async fn on_behalf(
        &self,
        req: Request,
        ctx: &RequestContext,
        dest: Destination,
    ) -> Result<Response, RequestError> {
        self.relay(req, ctx, dest, false).await
    }

    async fn relay(
        &self,
        mut req: Request,
        ctx: &RequestContext,
        dest: Destination,
        transit: bool,
    ) -> Result<Response, RequestError> {
        // Before anything else: a request that came back round is not checked, resolved
        // or sent again.
        if let (Some(fr), Some(rqi)) = (&req.fr, &req.rqi) {
            if self.forwarding.contains(fr, rqi) {
                tracing::warn!(to = %req.to, rqi = %rqi, "forwarding loop: a request this CSE forwarded came back");
                return Err(RequestError::TargetNotReachable(
                    "forwarding loop: this request came back to a CSE that forwarded it".into(),
                ));
            }
        }
        let now = self.now();
        let checked = checks::check(&self.config, req.clone(), now)?;
        let verified = self.verify_identity(&checked, ctx)?;
        self.check_originator(&checked, &verified)?;
        let registration = checked.op == Operation::Create
            && matches!(
                checked.ty,
                Some(ResourceType::Ae) | Some(ResourceType::RemoteCse)
            );
        if registration {
            return Err(RequestError::bad_request(
                "registration requests are never forwarded",
            ));
        }
        // rqet and rset were checked with the primitive; oet in the past is only an
        // error when forwarding (core-primitives.md §7.2).
        if let Some(oet) = &req.oet {
            if parse_abs_rel(oet, now).is_some_and(|at| at <= now) {
                return Err(RequestError::RequestTimeout(
                    "oet has already passed".into(),
                ));
            }
        }
        let peers = self.peers(now);
        let here = Here {
            cse_id: &self.config.cse_id,
            cse_type: self.config.cse_type,
            registrar: self.config.registrar.as_deref(),
        };
        let origin = owner(&self.config.sp_id, &checked.fr);
        let from = if transit {
            sender(
                &self.config.cse_id,
                &self.config.sp_id,
                ctx.identity.as_deref(),
                &checked.fr,
            )
        } else {
            None
        };
        let hop = next_hop(&here, &peers, &dest, origin, from)?;
        if hop.poa.is_empty() {
            return Err(RequestError::TargetNotReachable(
                "the next hop advertises no point of access".into(),
            ));
        }
        let outbound = self.outbound.as_ref().ok_or_else(|| {
            RequestError::TargetNotReachable("this CSE cannot send requests".into())
        })?;
        let onward = onward_originator(&self.config.cse_id, &checked.fr);
        // The primitive checks required a `rqi`.
        let rqi = req.rqi.clone().unwrap_or_default();
        let _held = self.forwarding.enter(&onward, &rqi);
        req.fr = Some(onward);
        tracing::debug!(to = %req.to, next_hop = %hop.csi, "forwarding");
        outbound
            .send(Some(&hop.csi), &hop.poa, req)
            .await
            .map_err(|e| match e {
                OutboundError::Saturated(why) => {
                    RequestError::TargetNotReachable(format!("not forwarded: {why}").into())
                }
                e => {
                    tracing::info!(next_hop = %hop.csi, error = %e, "forwarding failed");
                    RequestError::TargetNotReachable(
                        "the next hop towards the target is not reachable".into(),
                    )
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = "//bastion.example";

    fn peer(csi: &str, dcse: &[&str]) -> Peer {
        Peer {
            csi: csi.into(),
            dcse: dcse.iter().map(|d| d.to_string()).collect(),
            poa: vec![format!("http://{}", csi.trim_start_matches('/'))],
        }
    }

    fn mn() -> Here<'static> {
        Here {
            cse_id: "/id-mn",
            cse_type: CseType::Mn,
            registrar: Some("/id-in"),
        }
    }

    fn inc() -> Here<'static> {
        Here {
            cse_id: "/id-in",
            cse_type: CseType::In,
            registrar: None,
        }
    }

    fn dest(c: &str) -> Destination {
        Destination::Cse(c.into())
    }

    #[test]
    fn ts0004_7_3_2_8_transit_or_hosted() {
        let t = |to| transit(SP, "/id-mn", to);
        assert_eq!(t("cse-mn/x"), None);
        assert_eq!(t("/id-mn/cse-mn/x"), None);
        assert_eq!(t("/id-mn"), None);
        assert_eq!(t("//bastion.example/id-mn/cse-mn"), None);
        assert_eq!(t("/id-in/cse-in/ae"), Some(dest("/id-in")));
        assert_eq!(t("/id-in"), Some(dest("/id-in")));
        assert_eq!(t("//bastion.example/id-in/x"), Some(dest("/id-in")));
        assert_eq!(t("//other.example/id-in/x"), Some(Destination::OtherSp));
    }

    #[test]
    fn originators_by_owner() {
        assert_eq!(owner(SP, "Cabc"), Owner::Local);
        assert_eq!(owner(SP, "CAdmin"), Owner::Local);
        assert_eq!(owner(SP, "/id-mn"), Owner::Cse("/id-mn"));
        assert_eq!(owner(SP, "//bastion.example/id-mn"), Owner::Cse("/id-mn"));
        assert_eq!(owner(SP, "/id-mn/Cabc"), Owner::AeOf("/id-mn"));
        assert_eq!(
            owner(SP, "//bastion.example/id-mn/Cabc"),
            Owner::AeOf("/id-mn")
        );
        assert_eq!(owner(SP, "/Sabc"), Owner::Unanchored);
        assert_eq!(owner(SP, "//other.example/id-mn/Cabc"), Owner::Unanchored);
        assert_eq!(owner(SP, "//bastion.examplex/id-mn"), Owner::Unanchored);
        assert_eq!(owner(SP, "/id-mn/cnt/x"), Owner::Unanchored);
    }

    #[test]
    fn ts0001_7_3_2_6_fr_rewritten_to_sp_relative() {
        assert_eq!(onward_originator("/id-mn", "Cabc"), "/id-mn/Cabc");
        assert_eq!(onward_originator("/id-mn", "Sabc"), "/Sabc");
        assert_eq!(onward_originator("/id-mn", "/id-asn/Cx"), "/id-asn/Cx");
        assert_eq!(
            onward_originator("/id-mn", "//bastion.example/id-mn/Cx"),
            "//bastion.example/id-mn/Cx"
        );
    }

    #[test]
    fn ts0001_7_3_2_6_csi_then_dcse_then_registrar() {
        let peers = [peer("/id-in", &[]), peer("/id-asn", &["/id-asn2"])];
        let hop =
            |d: &str| next_hop(&mn(), &peers, &dest(d), Owner::Local, None).map(|p| p.csi.clone());
        assert_eq!(hop("/id-asn").as_deref(), Ok("/id-asn"));
        assert_eq!(hop("/id-asn2").as_deref(), Ok("/id-asn"));
        assert_eq!(hop("/id-other").as_deref(), Ok("/id-in"));
        // Another SP: only the registrar can lead there.
        let other = next_hop(&mn(), &peers, &Destination::OtherSp, Owner::Local, None);
        assert_eq!(other.map(|p| p.csi.clone()).as_deref(), Ok("/id-in"));
    }

    #[test]
    fn ts0001_7_3_2_6_in_cse_without_match_is_4004() {
        let peers = [peer("/id-mn", &[])];
        let err = next_hop(&inc(), &peers, &dest("/id-x"), Owner::Local, None).unwrap_err();
        assert_eq!(err.rsc().code(), 4004);
        let hop = next_hop(&inc(), &peers, &dest("/id-mn"), Owner::AeOf("/id-in"), None);
        assert_eq!(hop.map(|p| p.csi.clone()).as_deref(), Ok("/id-mn"));
    }

    #[test]
    fn requests_from_the_registrar_never_go_back_up() {
        let peers = [peer("/id-in", &[]), peer("/id-asn", &[])];
        let err = next_hop(
            &mn(),
            &peers,
            &dest("/id-other"),
            Owner::AeOf("/id-in"),
            Some("/id-in"),
        )
        .unwrap_err();
        assert_eq!(err.rsc().code(), 4004);
        // From below, up it goes.
        let up = next_hop(
            &mn(),
            &peers,
            &dest("/id-other"),
            Owner::AeOf("/id-asn"),
            Some("/id-asn"),
        );
        assert_eq!(up.map(|p| p.csi.clone()).as_deref(), Ok("/id-in"));
        // An unknown CSE's originator is not from below.
        let stranger = next_hop(
            &mn(),
            &peers,
            &dest("/id-other"),
            Owner::AeOf("/id-x"),
            None,
        );
        assert_eq!(stranger.unwrap_err().rsc().code(), 4004);
    }

    #[test]
    fn never_back_to_the_sender() {
        // The IN would route to /id-mn a request that /id-mn itself sent.
        let peers = [peer("/id-mn", &[])];
        let err = next_hop(
            &inc(),
            &peers,
            &dest("/id-mn"),
            Owner::AeOf("/id-mn"),
            Some("/id-mn"),
        )
        .unwrap_err();
        assert_eq!(err.rsc().code(), 4004);
    }

    #[test]
    fn registrar_not_yet_registered_is_5103() {
        let peers = [peer("/id-asn", &[])];
        let err = next_hop(&mn(), &peers, &dest("/id-x"), Owner::Local, None);
        assert_eq!(err.unwrap_err().rsc().code(), 5103);
    }

    #[test]
    fn in_flight_requests_are_held_until_released() {
        let set = InFlight::default();
        assert!(!set.contains("/id-in/CAdmin", "r1"));
        let first = set.enter("/id-in/CAdmin", "r1");
        let second = set.enter("/id-in/CAdmin", "r1");
        assert!(set.contains("/id-in/CAdmin", "r1"));
        assert!(!set.contains("/id-in/CAdmin", "r2"));
        assert!(!set.contains("/id-in/Cother", "r1"));
        drop(first);
        assert!(set.contains("/id-in/CAdmin", "r1"), "still held once");
        drop(second);
        assert!(!set.contains("/id-in/CAdmin", "r1"));
    }

    #[test]
    fn senders() {
        let own = "/id-in";
        assert_eq!(sender(own, SP, Some("/id-mn"), "/id-mn/Cx"), Some("/id-mn"));
        assert_eq!(sender(own, SP, Some("Cae"), "Cae"), None);
        assert_eq!(sender(own, SP, None, "/id-mn/Cx"), Some("/id-mn"));
        assert_eq!(sender(own, SP, None, "/id-in/Cx"), None);
        assert_eq!(sender(own, SP, None, "Cx"), None);
    }
}
