//! Non-blocking requests (TS-0001 8.2.2; TS-0004 7.3.2, 7.4.11; core-primitives.md §4.2;
//! core-resources.md §3.11): this module owns accepting a request with `rt` =
//! nonBlockingRequestSynch (answered 1001) or nonBlockingRequestAsynch (answered 1002),
//! both at once and with the address of a new PENDING `<request>` resource under the
//! CSEBase; running the request in a task of its own through the whole pipeline;
//! recording its outcome in the `<request>` (`rs`, `ors`); and, for the asynchronous
//! form, sending that outcome as a NOTIFY carrying `{"m2m:rsp": …}` to the request's
//! result targets.
//!
//! Result targets fail closed, because the CSE would otherwise send traffic to any URL on
//! anyone's behalf: each `rt.nu` entry must be the originator's own ID or a URL listed in
//! the `poa` of the originator's registration here (its `<AE>` or `<remoteCSE>`), checked
//! before anything is written (4000 otherwise, [`check_result_targets`]). Without `nu`
//! the originator itself is the target; an empty `nu` asks for no notification. Targets
//! are routed as subscription targets are (`notify.rs`: a URL as given, an ID to its
//! `poa`, or to its polling channel when it has none) and handed to the same delivery
//! engine (per-destination queues, retries), never awaited. The NOTIFY is handed over
//! after the `<request>` has been updated, so a receiver that RETRIEVEs it on
//! notification finds it finished.
//!
//! The `<request>` has no `acpi`, so the default policy applies: only its creator (the
//! originator of the original request) and the administrator may RETRIEVE or DELETE it;
//! every attribute is NP for UPDATE.

use crate::checks::Envelope;
use crate::notify::{is_url, NotificationKind};
use crate::tree::{Node, Ri, Tree};
use crate::types::{new_ri, node_row, universal};
use crate::{Cse, RequestContext};
use bastion_proto::primitive::ResponseType;
use bastion_proto::time::{parse_abs_rel, parse_duration, Timestamp};
use bastion_proto::{Request, RequestError, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::pin::Pin;

/// `rs` (m2m:requestStatus, TS-0004 6.3.4.2.x): the values Bastion uses.
const PENDING: u64 = 1;
const COMPLETED: u64 = 2;
const FAILED: u64 = 3;

/// How long a `<request>` is kept after its completion when the request sends no `rp`.
const DEFAULT_KEEP_SECS: i64 = 3600;
/// The longest a `<request>` is kept after its completion, whatever `rp` asks; also how
/// long a PENDING one is kept at most.
const MAX_KEEP_SECS: i64 = 24 * 3600;

/// What the pipeline answers for a request.
type Handled = Result<Response, RequestError>;

impl Cse {
    /// Accepts `original` (already through the primitive and originator checks as
    /// `req`): checks an asynchronous request's result targets, stores a PENDING
    /// `<request>`, starts the request in its own task, and answers 1001 (synch) or 1002
    /// (asynch) with the `<request>`'s address.
    ///
    /// Boxed because the spawned task runs [`Cse::handle`], whose future contains this
    /// one: an opaque recursive future cannot be shown to be `Send`.
    pub(crate) fn accept_non_blocking<'a>(
        &'a self,
        original: Request,
        req: &'a Envelope,
        ctx: &'a RequestContext,
    ) -> Pin<Box<dyn Future<Output = Handled> + Send + 'a>> {
        Box::pin(async move {
            self.write_guard()?;
            let cse = self
                .me
                .upgrade()
                .ok_or_else(|| RequestError::Internal("the CSE is shutting down".into()))?;
            // Before the `<request>` exists: a refused target leaves nothing behind.
            let targets = match original.rt {
                Some(ResponseType::NonBlockingAsynch) => {
                    Some(self.result_targets(&req.fr, original.rt_nu.as_deref())?)
                }
                _ => None,
            };
            let now = self.now();
            let persistence = result_persistence(original.rp.as_deref(), now)?;
            let (ri, path) = self.store_request(&original, req, now).await?;
            let mut inner = original;
            inner.rt = None;
            inner.rt_nu = None;
            // The task starts from what the binding knew, like any request.
            let binding = ctx.as_received();
            let originator = req.fr.clone();
            let task_ri = ri.clone();
            let accepted = if targets.is_some() {
                Rsc::AcceptedNonBlockingAsynch
            } else {
                Rsc::AcceptedNonBlockingSynch
            };
            tokio::spawn(async move {
                let resp = cse.handle(inner, &binding).await;
                let rsp = result_primitive(resp, &originator);
                if let Err(err) = cse.complete_request(&task_ri, &rsp, persistence).await {
                    tracing::warn!(ri = %task_ri, error = %err, "non-blocking result not stored");
                }
                // The result exists whether or not the `<request>` could record it (it
                // may have been deleted meanwhile): the originator asked to be told.
                if let Some(targets) = targets {
                    cse.send_result(&task_ri, &targets, Value::Object(rsp));
                }
            });
            let mut resp = Response::new(accepted, String::new());
            resp.pc = Some(json!({ "m2m:uri": path }));
            Ok(resp)
        })
    }

    /// Where an asynchronous request's result goes (core-primitives.md §2, §4.2): the
    /// originator when `nu` is absent, nowhere when it is empty, else `nu` once checked
    /// against the originator's registration ([`check_result_targets`]).
    fn result_targets(
        &self,
        originator: &str,
        nu: Option<&[String]>,
    ) -> Result<Vec<String>, RequestError> {
        let Some(nu) = nu else {
            return Ok(vec![originator.to_owned()]);
        };
        let me = bastion_policy::normalize_originator(&self.local, originator);
        let poa = {
            let tree = self.tree.read();
            self.registered_poa(&tree, originator, &me)
        };
        check_result_targets(
            nu,
            |id| bastion_policy::normalize_originator(&self.local, id) == me,
            &poa,
        )
    }

    /// The `poa` the originator registered here: its `<AE>`'s, or for a CSE its
    /// `<remoteCSE>`'s; nothing for anyone else (an AE of another CSE, the admin).
    fn registered_poa(&self, tree: &Tree, originator: &str, normalized: &str) -> Vec<String> {
        let poa = match crate::forward::owner(&self.config.sp_id, originator) {
            crate::forward::Owner::Cse(csi) => crate::remote_cse::peers_in(tree, self.now())
                .into_iter()
                .find(|p| p.csi == csi)
                .map(|p| p.poa),
            _ => crate::authz_state::resolve_local(tree, &self.config, originator)
                .filter(|n| n.ty == ResourceType::Ae)
                .filter(|n| {
                    n.attrs
                        .get("aei")
                        .and_then(Value::as_str)
                        .is_some_and(|aei| {
                            bastion_policy::normalize_originator(&self.local, aei) == normalized
                        })
                })
                .and_then(|n| n.attrs.get("poa").and_then(Value::as_array))
                .map(|poa| {
                    poa.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                }),
        };
        poa.unwrap_or_default()
    }

    /// Hands the result NOTIFY for each target to delivery (TS-0001 8.2.2 asynchronous
    /// case); never waits. Keyed by the `<request>` so its queue state is its own.
    fn send_result(&self, ri: &Ri, targets: &[String], rsp: Value) {
        let key = format!("{}/{}", self.config.cse_id, ri);
        let policy = crate::subscription::Policy::default();
        let rsp = std::sync::Arc::new(rsp);
        for target in targets {
            self.route(
                &key,
                target,
                NotificationKind::Response,
                rsp.clone(),
                &policy,
            );
        }
    }

    /// Creates the PENDING `<request>` under the CSEBase (core-resources.md §3.11).
    async fn store_request(
        &self,
        original: &Request,
        req: &Envelope,
        now: Timestamp,
    ) -> Result<(Ri, String), RequestError> {
        // Kept while it runs; `rp` counts from its completion (`complete_request`).
        let keep = now.plus_seconds(MAX_KEEP_SECS);
        let (pending, ri, path) = {
            let mut tree = self.tree.write();
            let base = tree.base.clone();
            let (base_path, base_et) = {
                let node = tree
                    .get(&base)
                    .ok_or_else(|| RequestError::Internal("CSEBase missing".into()))?;
                (node.path.clone(), node.et)
            };
            let et = base_et.map_or(keep, |b| keep.min(b));
            let seq = tree.next_seq();
            let ri = new_ri(ResourceType::Request, seq);
            let path = format!("{base_path}/{ri}");
            let mut attrs = universal(ResourceType::Request, &ri, &ri, &base, now, et);
            attrs.insert("lbl".into(), json!([req.fr]));
            attrs.insert("op".into(), json!(req.op.number()));
            attrs.insert("tg".into(), json!(req.to));
            attrs.insert("org".into(), json!(req.fr));
            attrs.insert("rid".into(), json!(original.rqi()));
            attrs.insert("mi".into(), meta_information(original));
            if let Some(pc) = &original.pc {
                attrs.insert("pc".into(), crate::render::content_for_client(pc));
            }
            attrs.insert("rs".into(), json!(PENDING));
            let node = Node::new(
                ResourceType::Request,
                &ri,
                Some(base),
                ri.clone(),
                path.clone(),
                seq,
                attrs,
                Some(req.fr.clone()),
                Some(et),
            );
            let row = node_row(&node);
            let ri = node.ri.clone();
            tree.insert(node);
            (self.committer.enqueue(vec![WriteOp::Upsert(row)]), ri, path)
        };
        pending.durable().await?;
        Ok((ri, path))
    }

    /// Records the outcome: `rs` COMPLETED for a response below 4000 (FAILED otherwise)
    /// and `ors` = the response primitive, and sets the `<request>`'s expiration to what
    /// `persistence` asks, counted from now (never past the CSEBase's). Nothing when the
    /// `<request>` is already gone.
    async fn complete_request(
        &self,
        ri: &Ri,
        rsp: &Map<String, Value>,
        persistence: Persistence,
    ) -> Result<(), RequestError> {
        self.write_guard()?;
        let now = self.now();
        let pending = {
            let mut tree = self.tree.write();
            let base_et = tree.get(&tree.base).and_then(|b| b.et);
            let et = persistence.until(now);
            let et = base_et.map_or(et, |b| et.min(b));
            let Some(node) = tree.get_mut(ri) else {
                return Ok(());
            };
            let failed = rsp
                .get("rsc")
                .and_then(Value::as_u64)
                .is_none_or(|rsc| rsc >= 4000);
            let status = if failed { FAILED } else { COMPLETED };
            node.attrs.insert("rs".into(), json!(status));
            node.attrs.insert("ors".into(), Value::Object(rsp.clone()));
            node.attrs.insert("lt".into(), Value::String(now.format()));
            node.et = Some(et);
            node.attrs.insert("et".into(), Value::String(et.format()));
            self.committer
                .enqueue(vec![WriteOp::Upsert(node_row(node))])
        };
        pending.durable().await
    }
}

/// How long a finished `<request>` stays (Result Persistence, `rp`, TS-0001 8.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    /// No `rp`: [`DEFAULT_KEEP_SECS`] after completion.
    Default,
    /// A relative `rp`: this many seconds after completion.
    For(i64),
    /// An absolute `rp`: until then, or at once when it is reached before completion.
    Until(Timestamp),
}

impl Persistence {
    /// The expiration of a `<request>` completed at `done`, at most [`MAX_KEEP_SECS`]
    /// later.
    fn until(self, done: Timestamp) -> Timestamp {
        let at = match self {
            Persistence::Default => done.plus_seconds(DEFAULT_KEEP_SECS),
            Persistence::For(secs) => done.plus_seconds(secs),
            Persistence::Until(at) => at.max(done),
        };
        at.min(done.plus_seconds(MAX_KEEP_SECS))
    }
}

/// Reads `rp` at `now`: an absolute time, a relative one in milliseconds, or an
/// `xs:duration` (`PT1H`, as some peers send); malformed, or an absolute time already
/// passed, is 4000.
fn result_persistence(rp: Option<&str>, now: Timestamp) -> Result<Persistence, RequestError> {
    let Some(rp) = rp else {
        return Ok(Persistence::Default);
    };
    if rp.starts_with('P') {
        let secs = parse_duration(rp)
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .ok_or_else(|| RequestError::bad_request("rp is malformed"))?;
        return Ok(Persistence::For(secs));
    }
    let at = parse_abs_rel(rp, now).ok_or_else(|| RequestError::bad_request("rp is malformed"))?;
    if at <= now {
        return Err(RequestError::bad_request("rp has already passed"));
    }
    // A relative value is a duration; an absolute one names an instant.
    let relative = rp.bytes().all(|b| b.is_ascii_digit());
    Ok(if relative {
        Persistence::For(at.0 - now.0)
    } else {
        Persistence::Until(at)
    })
}

/// The final response primitive as `ors` keeps it and `m2m:rsp` carries it: `rsc`, the
/// original `rqi`, `pc` when there is one, `to` the originator, `fr` this CSE, `rvi`,
/// `ot` (core-primitives.md §3), in the one mapping of response primitives
/// (`wire::primitive`).
fn result_primitive(mut resp: Response, originator: &str) -> Map<String, Value> {
    resp.to = Some(originator.to_owned());
    resp.fr.get_or_insert_with(String::new);
    bastion_proto::wire::primitive::response_members(&resp)
}

/// Checks an asynchronous request's `nu` (fail closed, so the CSE relays nothing to a
/// bystander): an ID must be the originator's own (`is_originator`, which compares
/// normalized forms), a URL must be one of the `poa` the originator registered, compared
/// exactly. Returns the targets without repeats, in the order given; 4000 names the
/// first refused kind of entry.
pub(crate) fn check_result_targets(
    nu: &[String],
    is_originator: impl Fn(&str) -> bool,
    poa: &[String],
) -> Result<Vec<String>, RequestError> {
    let mut targets: Vec<String> = Vec::with_capacity(nu.len());
    for target in nu {
        if is_url(target) {
            if !poa.iter().any(|p| p == target) {
                return Err(RequestError::bad_request(
                    "a result target URL must be a point of access of the originator",
                ));
            }
        } else if !is_originator(target) {
            return Err(RequestError::bad_request(
                "a result target must be the originator or one of its points of access",
            ));
        }
        if !targets.contains(target) {
            targets.push(target.clone());
        }
    }
    Ok(targets)
}

/// `mi`: the optional parameters of the original request worth keeping.
fn meta_information(req: &Request) -> Value {
    let mut mi = Map::new();
    if let Some(ty) = req.ty {
        mi.insert("ty".into(), json!(ty));
    }
    if let Some(rvi) = &req.rvi {
        mi.insert("rvi".into(), json!(rvi));
    }
    if let Some(rcn) = req.rcn {
        mi.insert("rcn".into(), json!(rcn));
    }
    let rt = match (req.rt, &req.rt_nu) {
        (Some(ResponseType::NonBlockingAsynch), Some(nu)) => json!({ "rtv": 2, "nu": nu }),
        (Some(ResponseType::NonBlockingAsynch), None) => json!({ "rtv": 2 }),
        _ => json!({ "rtv": 1 }),
    };
    mi.insert("rt".into(), rt);
    for (key, value) in [("rp", &req.rp), ("rqet", &req.rqet), ("rset", &req.rset)] {
        if let Some(v) = value {
            mi.insert(key.into(), json!(v));
        }
    }
    Value::Object(mi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts0001_8_1_2_result_persistence_counts_from_completion() {
        let accepted = Timestamp(1_800_000_000);
        let done = Timestamp(1_800_000_100);
        let keep = |rp: Option<&str>| result_persistence(rp, accepted).map(|p| p.until(done));
        assert_eq!(keep(None), Ok(done.plus_seconds(DEFAULT_KEEP_SECS)));
        assert_eq!(keep(Some("60000")), Ok(done.plus_seconds(60)));
        assert_eq!(keep(Some("PT2M")), Ok(done.plus_seconds(120)));
        assert_eq!(keep(Some("P30D")), Ok(done.plus_seconds(MAX_KEEP_SECS)));
        let later = accepted.plus_seconds(500);
        let later_text = later.format();
        assert_eq!(keep(Some(&later_text)), Ok(later));
        // An instant reached before completion: kept no longer than the completion.
        let soon = accepted.plus_seconds(50).format();
        assert_eq!(keep(Some(&soon)), Ok(done));
        for bad in ["soon", "PT", "20200101T000000", "-5000"] {
            let err = result_persistence(Some(bad), accepted).expect_err(bad);
            assert_eq!(err.rsc().code(), 4000, "{bad}");
        }
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The originator `Cae`, in its CSE-relative and SP-relative forms.
    fn is_cae(id: &str) -> bool {
        id == "Cae" || id == "/id-in/Cae"
    }

    const POA: &[&str] = &["http://10.0.0.5:9000/n", "https://ae.example/n"];

    #[test]
    fn own_id_and_registered_poa_are_accepted_in_order_without_repeats() {
        let nu = list(&[
            "https://ae.example/n",
            "/id-in/Cae",
            "https://ae.example/n",
            "Cae",
        ]);
        let got = check_result_targets(&nu, is_cae, &list(POA)).expect("accepted");
        assert_eq!(got, list(&["https://ae.example/n", "/id-in/Cae", "Cae"]));
        assert!(check_result_targets(&[], is_cae, &list(POA))
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn a_foreign_url_is_refused_with_4000() {
        for url in [
            "http://victim.example/",
            // Close to a registered one is not the same.
            "http://10.0.0.5:9000/n/",
            "HTTP://10.0.0.5:9000/n",
        ] {
            let nu = list(&["Cae", url]);
            let err = check_result_targets(&nu, is_cae, &list(POA)).expect_err(url);
            assert_eq!(err.rsc(), Rsc::BadRequest, "{url}");
            assert!(err.reason().contains("point of access"), "{}", err.reason());
        }
    }

    #[test]
    fn another_entity_or_a_url_outside_the_poa_is_refused() {
        let poa = list(&["mqtt://broker/ae"]);
        for target in ["Cother", "/id-mn/Cae", "/id-mn", "mqtt://broker/other", ""] {
            let err = check_result_targets(&list(&[target]), is_cae, &poa).expect_err(target);
            assert_eq!(err.rsc(), Rsc::BadRequest, "{target}");
        }
        // An `mqtt://` point of access of the originator is a target like an `http://`
        // one: the MQTT binding delivers to it.
        assert_eq!(
            check_result_targets(&poa, is_cae, &poa).expect("the originator's poa"),
            poa
        );
    }

    #[test]
    fn without_a_registration_only_the_originator_itself_is_allowed() {
        assert!(check_result_targets(&list(&["Cae"]), is_cae, &[]).is_ok());
        assert!(check_result_targets(&list(&["http://10.0.0.5:9000/n"]), is_cae, &[]).is_err());
    }

    #[test]
    fn the_request_resource_records_the_response_type() {
        let mut req = Request {
            rt: Some(ResponseType::NonBlockingAsynch),
            rt_nu: Some(list(&["Cae"])),
            ..Default::default()
        };
        assert_eq!(
            meta_information(&req)["rt"],
            json!({"rtv": 2, "nu": ["Cae"]})
        );
        req.rt_nu = Some(Vec::new());
        assert_eq!(meta_information(&req)["rt"], json!({"rtv": 2, "nu": []}));
        req.rt_nu = None;
        assert_eq!(meta_information(&req)["rt"], json!({"rtv": 2}));
        req.rt = Some(ResponseType::NonBlockingSynch);
        assert_eq!(meta_information(&req)["rt"], json!({"rtv": 1}));
    }

    #[test]
    fn the_result_primitive_keeps_the_original_rqi_and_content() {
        let mut resp = Response::new(Rsc::Created, "orig-rqi");
        resp.pc = Some(json!({"m2m:cin": {"con": "x"}}));
        resp.fr = Some("/id-in".into());
        resp.rvi = Some("3".into());
        let rsp = result_primitive(resp, "Cae");
        assert_eq!(
            Value::Object(rsp),
            json!({"rsc": 2001, "rqi": "orig-rqi", "pc": {"m2m:cin": {"con": "x"}},
                   "to": "Cae", "fr": "/id-in", "rvi": "3"})
        );
    }
}
