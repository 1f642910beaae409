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
//! parallel, each bounded by the outbound timeout and in-flight limits; a failure is
//! logged once and costs the original nothing but that target (docs/decisions.md).
//! Targets are CSEs this CSE talks to directly: its registrar and the CSEs registered here.

use crate::fanout::join_bounded;
use crate::notify::fresh_id;
use crate::tree::{Ri, Tree};
use crate::types::{node_row, MAX_ANNOUNCE_TARGETS};
use crate::Cse;
use bastion_proto::{Operation, Request, ResourceType, Response, Rsc};
use bastion_store::WriteOp;
use serde_json::{Map, Value};

/// One announced copy: the target's CSE-ID and the copy's SP-relative ID there.
pub(crate) type Copy = (Box<str>, Box<str>);

/// Attributes every copy carries when the original has them (MA, TS-0001 9.6.1.3).
const ALWAYS: &[&str] = &["lbl", "et"];

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

/// What a resource's copy is made of: its announced type, the link back, its attributes.
struct Original {
    announced: ResourceType,
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
        let mut pc = Map::new();
        pc.insert(self.announced.root().to_owned(), Value::Object(copy));
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

    /// Sends `req` to the CSE `target`, one this CSE talks to directly.
    async fn send_to_cse(&self, target: &str, req: Request) -> Result<Response, String> {
        let outbound = self
            .outbound
            .as_ref()
            .ok_or_else(|| "this CSE sends no requests".to_owned())?;
        let peer = self
            .peers(self.now())
            .into_iter()
            .find(|p| p.csi == target)
            .ok_or_else(|| "neither this CSE's registrar nor registered here".to_owned())?;
        outbound
            .send(Some(&peer.csi), &peer.poa, req)
            .await
            .map_err(|e| e.to_string())
    }

    /// Where a copy of a resource whose parent is `parent` goes at `target`: under the
    /// parent's copy there, else (not for an instance, whose container is always announced
    /// first) under the `<remoteCSE>` of this CSE at the target, named by its CSE-ID.
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
        let cb = crate::remote_cse::csr_of(tree, target)?
            .attrs
            .get("cb")?
            .as_str()?;
        Some(format!(
            "{cb}/{}",
            self.config.cse_id.trim_start_matches('/')
        ))
    }

    /// Creates copies of `o` at `targets`, in parallel; the copies made.
    async fn make_copies(&self, o: &Original, targets: &[String]) -> Vec<Copy> {
        let places: Vec<(String, Option<String>)> = {
            let tree = self.tree.read();
            targets
                .iter()
                .map(|t| (t.clone(), self.copy_parent(&tree, o, t)))
                .collect()
        };
        let content = o.copy_content();
        let root = o.announced.root();
        let sends = places.into_iter().map(|(target, place)| {
            let content = content.clone();
            async move {
                let Some(place) = place else {
                    tracing::warn!(lnk = %o.lnk, target = %target, "not announced: its parent is not announced there and this CSE is not registered with it");
                    return None;
                };
                let mut req =
                    self.announcement_request(Operation::Create, place, Some(content));
                req.ty = Some(u64::from(o.announced.number()));
                match self.send_to_cse(&target, req).await {
                    Ok(resp) if resp.rsc == Rsc::Created => {
                        let ri = resp.pc.as_ref()?.get(root)?.get("ri")?.as_str()?;
                        Some((target.as_str().into(), format!("{target}/{ri}").into()))
                    }
                    Ok(resp) => {
                        tracing::warn!(lnk = %o.lnk, target = %target, rsc = resp.rsc.code(), "announcement refused");
                        None
                    }
                    Err(why) => {
                        tracing::warn!(lnk = %o.lnk, target = %target, error = %why, "announcement failed");
                        None
                    }
                }
            }
        });
        join_bounded(sends.collect(), MAX_ANNOUNCE_TARGETS)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Sends one UPDATE or DELETE to each copy, in parallel; failures are logged.
    async fn to_copies(&self, op: Operation, copies: &[Copy], pc: Option<Value>) {
        let sends = copies.iter().map(|(target, copy)| {
            let req = self.announcement_request(op, copy.to_string(), pc.clone());
            async move {
                match self.send_to_cse(target, req).await {
                    Ok(resp) if resp.rsc.is_success() || resp.rsc == Rsc::NotFound => {}
                    Ok(resp) => {
                        tracing::warn!(copy = %copy, rsc = resp.rsc.code(), op = ?op, "announced copy not synchronized")
                    }
                    Err(why) => {
                        tracing::warn!(copy = %copy, error = %why, op = ?op, "announced copy not synchronized")
                    }
                }
            }
        });
        join_bounded(sends.collect(), MAX_ANNOUNCE_TARGETS).await;
    }

    /// The original `ri` as its copies see it; `None` when it is not announceable.
    fn original(&self, ri: &str) -> Option<(Original, Vec<Copy>)> {
        let tree = self.tree.read();
        let node = tree.get(ri)?;
        let o = Original {
            announced: node.ty.announced()?,
            lnk: format!("{}/{}", self.config.cse_id, node.ri),
            attrs: node.attrs.clone(),
            parent: node.pi.clone(),
        };
        Some((o, node.announced.clone()))
    }

    /// Stores `copies` as the copies of `ri` and `at` as their targets; the attributes
    /// to answer with.
    async fn record_copies(&self, ri: &str, copies: Vec<Copy>) -> Option<Map<String, Value>> {
        let (pending, attrs) = {
            let mut tree = self.tree.write();
            let node = tree.get_mut(ri)?;
            let at: Vec<Value> = copies.iter().map(|(t, _)| Value::from(&**t)).collect();
            if at.is_empty() {
                node.attrs.remove("at");
            } else {
                node.attrs.insert("at".into(), Value::Array(at));
            }
            node.announced = copies;
            let attrs = node.attrs.clone();
            (
                self.committer
                    .enqueue(vec![WriteOp::Upsert(node_row(node))]),
                attrs,
            )
        };
        match pending.durable().await {
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
        let made = self.make_copies(&o, &wanted).await;
        let ri = ri.to_owned();
        self.record_copies(&ri, made).await.unwrap_or(attrs)
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

    /// After a CREATE of an instance of `parent` (durable): its copies under the
    /// container's copies at the CSEs of its `at`. An instance never changes, so where
    /// they live is not stored; they expire with it (`et` is announced) or go with the
    /// container's copy. Answers with `at` holding the targets where a copy was made.
    pub(crate) async fn announce_instance(
        &self,
        parent: &Ri,
        mut attrs: Map<String, Value>,
    ) -> Map<String, Value> {
        let wanted = targets(&attrs);
        let ty = attrs
            .get("ty")
            .and_then(Value::as_u64)
            .and_then(ResourceType::from_number);
        let (Some(announced), false) = (ty.and_then(ResourceType::announced), wanted.is_empty())
        else {
            return attrs;
        };
        let ri = attrs.get("ri").and_then(Value::as_str).unwrap_or("");
        let o = Original {
            announced,
            lnk: format!("{}/{ri}", self.config.cse_id),
            attrs: attrs.clone(),
            parent: Some(parent.clone()),
        };
        let made = self.make_copies(&o, &wanted).await;
        let at: Vec<Value> = made.iter().map(|(t, _)| Value::from(&**t)).collect();
        attrs.insert("at".into(), Value::Array(at));
        attrs
    }

    /// After an UPDATE of the resource `ri` that applied `content` (durable): targets
    /// dropped from `at` lose their copy, new ones get one, and the others receive the
    /// announced attributes the content changed (all `aa` lists, when `aa` changed).
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
                .is_some_and(|n| !n.announced.is_empty())
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
            .into_iter()
            .filter(|w| !kept.iter().any(|(t, _)| **t == **w))
            .collect();
        self.to_copies(Operation::Delete, &dropped, None).await;
        let changed: Vec<&str> = if content.contains_key("aa") {
            ALWAYS.iter().copied().chain(listed(&o.attrs)).collect()
        } else {
            content.keys().map(String::as_str).collect()
        };
        let values = announced_values(changed.into_iter(), &o.attrs);
        if !values.is_empty() && !kept.is_empty() {
            let mut pc = Map::new();
            pc.insert(o.announced.root().to_owned(), Value::Object(values));
            self.to_copies(Operation::Update, &kept, Some(Value::Object(pc)))
                .await;
        }
        let mut copies = kept;
        copies.extend(self.make_copies(&o, &new).await);
        self.record_copies(ri, copies).await.unwrap_or(attrs)
    }

    /// DELETE of the copies of resources that are gone (`copies_under`, taken before).
    pub(crate) async fn withdraw(&self, copies: Vec<Copy>) {
        if !copies.is_empty() {
            self.to_copies(Operation::Delete, &copies, None).await;
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
}
