//! RETRIEVE (TS-0004 §7.3.3.3): plain, partial (`atrl`), with filter criteria without
//! `fu`=1 (they select the children of the result, TS-0001 8.1.2) and with every `rcn`
//! shape; `la`/`ol` of containers; discovery is handed to [`crate::discovery`].

use crate::access::Enforcer;
use crate::checks::{ResultShape, RetrieveRequest};
use crate::discovery::{self, Relations};
use crate::render::{atrl_from_content, child_ref, parse_body, partial, wrap_as};
use crate::resolve::{Target, Virtual};
use crate::tree::{Node, Ri, Tree};
use crate::types::{instance_type, live_instances};
use crate::Cse;
use bastion_policy::{AccessOperation, Attributes};
use bastion_proto::filter::FilterCriteria;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType, Response, ResultContent, Rsc};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(crate) async fn retrieve(
    cse: &Cse,
    mut req: RetrieveRequest,
    access: &Enforcer<'_>,
) -> Result<Response, RequestError> {
    let now = access.now();
    if let Some(pc) = req.pc.take() {
        req.atrl.extend(atrl_from_content(&pc)?);
    }
    let target = cse.resolve(&req, now).await?;
    if req.fc.is_discovery() {
        return discovery::discover(cse, &req, access, &target).await;
    }
    let readable = authorize_read(&req, access, &target).await?;
    // The target is returned whatever the filter criteria say; they select its children.
    let (ty, attrs, node_ri) = match &target {
        Target::Node(ri) => {
            let tree = cse.tree.read();
            let node = tree
                .get(ri)
                .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
            let mut attrs = node.attrs.clone();
            crate::types::kind(node.ty).add_sampled(&mut attrs, now, &req.envelope.rvi);
            (node.ty, Arc::new(attrs), Some(ri.clone()))
        }
        Target::Instance { parent, ri, .. } => {
            let attrs = instance_attrs(cse, parent, Some(ri), None).await?;
            (instance_type(&attrs), attrs, None)
        }
        Target::Virtual { parent, which } => {
            let attrs = instance_attrs(cse, parent, None, Some(*which)).await?;
            (instance_type(&attrs), attrs, None)
        }
    };
    if req.rcn == Some(ResultContent::OriginalResource) && ty.original().is_some() {
        // The local decision on the copy is a grant of the whole resource: one limited
        // to some attributes (`aca`) does not open the original.
        if readable.is_some() {
            access.audit_read_denied(&target);
            return Err(RequestError::NoPrivilege(
                "no privilege to retrieve this announced resource".into(),
            ));
        }
        return original_resource(cse, &req, access, &attrs).await;
    }
    let mut attrs = attrs;
    if let Target::Instance { parent, .. } | Target::Virtual { parent, .. } = &target {
        let fr = &req.envelope.fr;
        if let Some(found) = crate::types::count_retrieval(cse, parent, &attrs, fr).await? {
            Arc::make_mut(&mut attrs).insert("dcnt".to_owned(), Value::from(found));
        }
    }
    let attrs = match readable {
        Some(names) => Arc::new(only_attributes(&attrs, &names)),
        None => attrs,
    };
    let shaped = shape(cse, req.result_shape(), access, ty, attrs, node_ri.as_ref()).await?;
    Ok(shaped.into_response(Rsc::Ok))
}

/// `rcn` 7 on an announced resource (TS-0004 7.3.3.3, 6.3.4.2.16; TS-0001 9.6.26): the
/// original, retrieved from the CSE its `lnk` names *for the requesting originator* (its
/// `fr`, tokens and role-IDs travel; the request goes as a forwarded one would), so the
/// original's host makes the access decision and its response is relayed as it came.
/// It is never fetched as this CSE. An `INACTIVE` link (the original's AE is gone) is
/// 4004; an unreachable host is 5103, as for forwarding (docs/decisions.md).
async fn original_resource(
    cse: &Cse,
    req: &RetrieveRequest,
    access: &Enforcer<'_>,
    attrs: &Map<String, Value>,
) -> Result<Response, RequestError> {
    let lnk = attrs.get("lnk").and_then(Value::as_str).unwrap_or("");
    if lnk == "INACTIVE" {
        return Err(RequestError::not_found(
            "the original resource is gone: lnk is INACTIVE",
        ));
    }
    let dest = crate::forward::transit(&cse.config.sp_id, &cse.config.cse_id, lnk)
        .ok_or_else(|| RequestError::not_found("lnk names no resource of another CSE"))?;
    let env = &req.envelope;
    let onward = bastion_proto::Request {
        op: Some(bastion_proto::Operation::Retrieve),
        to: lnk.to_owned(),
        fr: Some(env.fr.clone()),
        rqi: Some(format!("rcn7-{}", crate::notify::fresh_id())),
        rvi: Some(env.rvi.clone()),
        rqet: env.rqet.clone(),
        rids: env.rids.clone(),
        tkns: env.tkns.clone(),
        tids: env.tids.clone(),
        ltids: env.ltids.clone(),
        tqi: env.tqi.then_some(true),
        atrl: req.atrl.clone(),
        ..Default::default()
    };
    cse.on_behalf(onward, access.ctx(), dest).await
}

/// The access decision of a RETRIEVE on `target` (attribute-level access control,
/// docs/decisions.md): a partial RETRIEVE needs a grant covering every attribute it
/// names; a full one needs a grant of the whole resource, or else is answered with the
/// attributes some `aca`-limited rule lets the originator read (`Some(names)`).
async fn authorize_read(
    req: &RetrieveRequest,
    access: &Enforcer<'_>,
    target: &Target,
) -> Result<Option<Vec<String>>, RequestError> {
    let op = AccessOperation::Retrieve;
    // `rcn` 7 opens the original only on a grant of the whole copy, whatever `atrl` names.
    if !req.atrl.is_empty() && req.rcn != Some(ResultContent::OriginalResource) {
        let names: Vec<&str> = req.atrl.iter().map(String::as_str).collect();
        access
            .authorize_attributes(target, op, None, Attributes::Named(&names))
            .await?;
        return Ok(None);
    }
    // A denial answered with the readable attributes is a (shaped) grant, not audited
    // as a denial; one that shows nothing is.
    match access.authorize_read_unaudited(target).await {
        Ok(_) => Ok(None),
        Err(denied @ RequestError::NoPrivilege(_)) => match access.readable_attributes(target) {
            Some(names) => Ok(Some(names)),
            None => {
                access.audit_read_denied(target);
                Err(denied)
            }
        },
        Err(e @ RequestError::TokenRequestInfo(_)) => {
            access.audit_read_denied(target);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// `attrs` reduced to the attributes named in `names`.
fn only_attributes(attrs: &Map<String, Value>, names: &[String]) -> Map<String, Value> {
    attrs
        .iter()
        .filter(|(k, _)| names.iter().any(|n| n == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The attributes of one instance of `parent`: by resource ID, or the newest/oldest.
pub(crate) async fn instance_attrs(
    cse: &Cse,
    parent: &Ri,
    ri: Option<&String>,
    which: Option<Virtual>,
) -> Result<Arc<Map<String, Value>>, RequestError> {
    let wanted: String = {
        let tree = cse.tree.read();
        let node = tree
            .get(parent)
            .ok_or_else(|| RequestError::not_found("container does not exist"))?;
        if node.attrs.get("disr").and_then(Value::as_bool) == Some(true) {
            return Err(RequestError::not_allowed(
                "retrieval is disabled on this container",
            ));
        }
        let state = node
            .container()
            .ok_or_else(|| RequestError::not_found("not a container"))?;
        match (ri, which) {
            (Some(ri), _) => ri.clone(),
            (None, Some(Virtual::Latest)) => {
                if let Some(latest) = &state.latest {
                    return Ok(latest.clone());
                }
                state
                    .instances
                    .back()
                    .map(|i| i.ri.to_string())
                    .ok_or_else(|| RequestError::not_found("container has no instances"))?
            }
            (None, _) => state
                .instances
                .front()
                .map(|i| i.ri.to_string())
                .ok_or_else(|| RequestError::not_found("container has no instances"))?,
        }
    };
    let row = cse
        .store
        .get(&wanted)
        .await
        .map_err(|_| RequestError::Internal("storage read failed".into()))?
        .ok_or_else(|| RequestError::not_found("resource does not exist"))?;
    let (attrs, _) = parse_body(&row.body)
        .map_err(|_| RequestError::Internal("stored resource is corrupt".into()))?;
    Ok(Arc::new(attrs))
}

/// What a shaped result holds, and whether a limit cut it short.
pub(crate) struct Shaped {
    pub pc: Value,
    /// Children were left out because the result reached [`Budget`]'s limits (signalled
    /// to the client as Content Status 1, partial; TS-0001 8.1.2).
    pub partial: bool,
}

impl Shaped {
    /// The 2000 (or other `rsc`) response carrying this result.
    pub(crate) fn into_response(self, rsc: Rsc) -> Response {
        let mut resp = Response::new(rsc, String::new());
        resp.pc = Some(self.pc);
        if self.partial {
            resp.cnst = Some(bastion_proto::primitive::CONTENT_STATUS_PARTIAL);
        }
        resp
    }
}

/// How much one result may still hold beside the addressed resource: a number of child
/// resources (representations or references) and an estimate of their serialized size.
/// Whatever does not fit is left out and the result is marked partial, so one request
/// cannot make the CSE materialise an unbounded tree (`rcn` 4 over a large container).
pub(crate) struct Budget {
    resources: usize,
    bytes: usize,
    pub exhausted: bool,
}

impl Budget {
    pub(crate) fn new(config: &crate::CseConfig) -> Budget {
        Budget {
            resources: config.result_limit,
            bytes: config.result_max_bytes,
            exhausted: false,
        }
    }

    /// Takes room for one more resource of about `size` bytes; `false` (and the budget
    /// marked exhausted) when it does not fit.
    pub(crate) fn take(&mut self, size: usize) -> bool {
        if self.resources == 0 || size > self.bytes {
            self.exhausted = true;
            return false;
        }
        self.resources -= 1;
        self.bytes -= size;
        true
    }

    /// Resources that may still be taken.
    pub(crate) fn resources_left(&self) -> usize {
        self.resources
    }

    /// Bytes that may still be taken.
    pub(crate) fn bytes_left(&self) -> usize {
        self.bytes
    }
}

/// Serialized size of a representation, for the [`Budget`].
fn size_of(attrs: &Map<String, Value>) -> usize {
    serde_json::to_vec(attrs).map_or(usize::MAX, |v| v.len())
}

/// Builds the response content for `rcn` (default: attributes). Children and child
/// references are those the request's originator may RETRIEVE, respectively
/// DISCOVER, itself ([`Enforcer::may_include`]); instances follow their container.
pub(crate) async fn shape(
    cse: &Cse,
    result: ResultShape<'_>,
    access: &Enforcer<'_>,
    ty: ResourceType,
    attrs: Arc<Map<String, Value>>,
    node: Option<&Ri>,
) -> Result<Shaped, RequestError> {
    // Takes the Arc by value: a representation built for this request alone is moved,
    // not cloned; a shared one (the cached latest instance) is cloned once.
    let own = |attrs: Arc<Map<String, Value>>| -> Result<Map<String, Value>, RequestError> {
        if result.atrl.is_empty() {
            Ok(Arc::unwrap_or_clone(attrs))
        } else {
            partial(ty, &attrs, result.atrl, result.release)
        }
    };
    let mut budget = Budget::new(&cse.config);
    let rcn = result.rcn.unwrap_or(ResultContent::Attributes);
    let root = crate::types::root_of(&cse.config, &cse.tree.read(), ty, &attrs);
    let pc = match rcn {
        ResultContent::Attributes => wrap_as(&root, own(attrs)?),
        ResultContent::AttributesAndChildResources | ResultContent::ChildResources => {
            let mut out = if rcn == ResultContent::ChildResources {
                Map::new()
            } else {
                own(attrs)?
            };
            if let Some(ri) = node {
                let levels = result.lvl.unwrap_or(u64::MAX);
                let within = Within {
                    levels,
                    wanted: result.children,
                    direct: true,
                };
                let mut page = Page::of(result.children);
                let room = (&mut budget, &mut page);
                nest_children(cse, access, ri, &mut out, within, room).await?;
            }
            wrap_as(&root, out)
        }
        ResultContent::AttributesAndChildReferences => {
            let mut out = own(attrs)?;
            let refs = child_refs(cse, access, node, result.children, &mut budget).await?;
            out.insert("ch".into(), Value::Array(refs));
            wrap_as(&root, out)
        }
        ResultContent::ChildReferences => {
            let refs = child_refs(cse, access, node, result.children, &mut budget).await?;
            json!({ "m2m:rrl": { "rrf": refs } })
        }
        // A RETRIEVE fetches the original before shaping (`original_resource`); no
        // other operation answers with it.
        ResultContent::OriginalResource if ty.original().is_some() => {
            return Err(RequestError::bad_request(
                "rcn 7 applies only to a RETRIEVE of an announced resource",
            ))
        }
        ResultContent::OriginalResource => {
            return Err(RequestError::bad_request(
                "rcn 7 applies only to announced resources",
            ))
        }
        _ => {
            return Err(RequestError::NotImplemented(
                "this result content is not supported".into(),
            ))
        }
    };
    Ok(Shaped {
        pc,
        partial: budget.exhausted,
    })
}

/// The originator's paging of a RETRIEVE's children (TS-0004 7.3.3.17.10, 7.3.3.17.15):
/// the first `ofst` − 1 selected direct children are skipped with their descendants,
/// then at most `lim` resources are included. Reaching `lim` is no partial result.
struct Page {
    skip: u64,
    left: u64,
}

impl Page {
    fn of(wanted: Option<&FilterCriteria>) -> Page {
        Page {
            skip: wanted
                .and_then(|fc| fc.ofst)
                .map_or(0, |o| o.saturating_sub(1)),
            left: wanted.and_then(|fc| fc.lim).unwrap_or(u64::MAX),
        }
    }

    fn is_full(&self) -> bool {
        self.left == 0
    }

    /// Whether the next selected direct child is skipped (and counts as skipped).
    fn skips(&mut self) -> bool {
        let skipped = self.skip > 0;
        self.skip = self.skip.saturating_sub(1);
        skipped
    }

    fn count_one(&mut self) {
        self.left = self.left.saturating_sub(1);
    }
}

/// Whether a child resource in memory meets the request's filter criteria (`None`:
/// every child does); its neighbours count only as far as `viewer` may discover them.
fn node_selected(
    wanted: Option<&FilterCriteria>,
    tree: &Tree,
    node: &Node,
    viewer: &Enforcer<'_>,
) -> bool {
    wanted.is_none_or(|fc| {
        let relations = discovery::node_relations(tree, node, fc, viewer);
        discovery::matches(fc, node.ty.number(), &node.attrs, &relations)
    })
}

/// Whether a stored instance meets the request's filter criteria; its parent is the
/// container or timeSeries whose labels are `parent_labels`.
fn instance_selected(
    wanted: Option<&FilterCriteria>,
    attrs: &Map<String, Value>,
    parent_labels: Option<&Value>,
) -> bool {
    wanted.is_none_or(|fc| {
        let ty = instance_type(attrs);
        let relations = Relations {
            parent_ty: ty.instance_parent().map(ResourceType::number),
            parent_labels,
            ..Relations::default()
        };
        discovery::matches(fc, ty.number(), attrs, &relations)
    })
}

/// Whether a stored instance row meets the request's filter criteria; a row that does
/// not parse is never selected.
fn row_selected(
    wanted: Option<&FilterCriteria>,
    row: &bastion_store::StoredResource,
    parent_labels: Option<&Value>,
) -> bool {
    wanted.is_none()
        || parse_body(&row.body)
            .is_ok_and(|(attrs, _)| instance_selected(wanted, &attrs, parent_labels))
}

/// Direct children as `{nm, typ, val}` references: those the originator may DISCOVER,
/// and the instances of a container it may DISCOVER, each meeting `wanted`.
async fn child_refs(
    cse: &Cse,
    reader: &Enforcer<'_>,
    node: Option<&Ri>,
    wanted: Option<&FilterCriteria>,
    budget: &mut Budget,
) -> Result<Vec<Value>, RequestError> {
    let Some(ri) = node else {
        return Ok(Vec::new());
    };
    let mut page = Page::of(wanted);
    let (mut refs, container_path) = {
        let tree = cse.tree.read();
        let Some(n) = tree.get(ri) else {
            return Ok(Vec::new());
        };
        let mut refs = Vec::new();
        for c in n.children.iter().filter_map(|c| tree.get(c)) {
            if c.is_expired(reader.now())
                || !reader.may_include(&tree, c, AccessOperation::Discovery)
                || !node_selected(wanted, &tree, c, reader)
            {
                continue;
            }
            if page.is_full() {
                break;
            }
            if page.skips() {
                continue;
            }
            let reference = child_ref(&c.rn, c.ty.number(), &c.path);
            if !budget.take(reference.to_string().len()) {
                break;
            }
            page.count_one();
            refs.push(reference);
        }
        let container = n.container().is_some_and(|c| !c.instances.is_empty())
            && reader.may_include(&tree, n, AccessOperation::Discovery);
        let labels = n.attrs.get("lbl").cloned();
        (refs, container.then(|| (n.path.clone(), labels)))
    };
    if let Some((path, labels)) = container_path {
        let read_limit = cse.config.result_max_bytes;
        let rows = instances_within(cse, ri, reader.now(), budget, read_limit).await?;
        for row in rows
            .iter()
            .filter(|r| row_selected(wanted, r, labels.as_ref()))
        {
            if page.is_full() {
                break;
            }
            if page.skips() {
                continue;
            }
            let reference = child_ref(&row.rn, row.ty, &format!("{path}/{}", row.rn));
            if !budget.take(reference.to_string().len()) {
                break;
            }
            page.count_one();
            refs.push(reference);
        }
    }
    Ok(refs)
}

/// The live instances of container `ri`, oldest first: at most as many as `budget` may
/// still take, and whose contents (`cs`, from the in-memory index) add up to at most
/// `read_limit` bytes, so what is read from storage is bounded before it is read. A
/// container holding more is read instance by instance up to that point, never whole,
/// and `budget` is then marked exhausted.
async fn instances_within(
    cse: &Cse,
    ri: &Ri,
    now: Timestamp,
    budget: &mut Budget,
    read_limit: usize,
) -> Result<Vec<bastion_store::StoredResource>, RequestError> {
    let room = budget.resources_left();
    let (wanted, all) = {
        let tree = cse.tree.read();
        let Some(state) = tree.get(ri).and_then(|n| n.container()) else {
            return Ok(Vec::new());
        };
        let mut live = state
            .instances
            .iter()
            .filter(|i| i.et.is_none_or(|et| et > now.0))
            .peekable();
        let mut bytes = read_limit;
        let mut wanted: Vec<String> = Vec::new();
        while let Some(next) = live.peek() {
            let cs = usize::try_from(next.cs).unwrap_or(usize::MAX);
            if wanted.len() >= room || cs > bytes {
                break;
            }
            bytes -= cs;
            wanted.push(next.ri.to_string());
            live.next();
        }
        (wanted, live.next().is_none())
    };
    if all {
        return live_instances(cse, ri, now).await;
    }
    budget.exhausted = true;
    let mut rows = Vec::with_capacity(wanted.len());
    for id in wanted {
        let row = cse
            .store
            .get(&id)
            .await
            .map_err(|_| RequestError::Internal("storage read failed".into()))?;
        // An instance evicted or deleted meanwhile is simply not part of the result.
        rows.extend(row);
    }
    Ok(rows)
}

/// How far [`nest_children`] goes: the levels left, the filter criteria a child must
/// meet (`None`: every child), and whether the children are the target's own (the
/// ones `ofst` skips).
#[derive(Clone, Copy)]
struct Within<'a> {
    levels: u64,
    wanted: Option<&'a FilterCriteria>,
    direct: bool,
}

/// Nests children (recursively, up to `within.levels`) as arrays under their
/// `m2m:<type>` names: each child the originator may RETRIEVE and that meets the filter
/// criteria, with its own children below it (a child left out takes its subtree with
/// it), and the instances of a container the originator could read (`ri` itself was
/// decided by the caller) unless its retrieval is disabled (`disr`).
fn nest_children<'a>(
    cse: &'a Cse,
    reader: &'a Enforcer<'a>,
    ri: &'a Ri,
    out: &'a mut Map<String, Value>,
    within: Within<'a>,
    (budget, page): (&'a mut Budget, &'a mut Page),
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RequestError>> + Send + 'a>> {
    Box::pin(async move {
        if within.levels == 0 {
            return Ok(());
        }
        let wanted = within.wanted;
        let (children, with_instances) = {
            let tree = cse.tree.read();
            let Some(n) = tree.get(ri) else { return Ok(()) };
            let children: Vec<(Ri, ResourceType, Map<String, Value>)> = n
                .children
                .iter()
                .filter_map(|c| tree.get(c))
                .filter(|c| !c.is_expired(reader.now()))
                .filter(|c| reader.may_include(&tree, c, AccessOperation::Retrieve))
                .filter(|c| node_selected(wanted, &tree, c, reader))
                .map(|c| (c.ri.clone(), c.ty, c.attrs.clone()))
                .collect();
            let with_instances = (n.container().is_some_and(|c| !c.instances.is_empty())
                && n.attrs.get("disr").and_then(Value::as_bool) != Some(true))
            .then(|| n.attrs.get("lbl").cloned());
            (children, with_instances)
        };
        for (child_ri, ty, mut attrs) in children {
            if page.is_full() {
                return Ok(());
            }
            if within.direct && page.skips() {
                continue;
            }
            if !budget.take(size_of(&attrs)) {
                return Ok(());
            }
            page.count_one();
            let below = Within {
                levels: within.levels - 1,
                wanted,
                direct: false,
            };
            let room = (&mut *budget, &mut *page);
            nest_children(cse, reader, &child_ri, &mut attrs, below, room).await?;
            push_child(cse, out, ty, attrs);
        }
        if let Some(labels) = with_instances {
            let read_limit = budget.bytes_left();
            for row in instances_within(cse, ri, reader.now(), budget, read_limit).await? {
                let Ok((attrs, _)) = parse_body(&row.body) else {
                    continue;
                };
                if !instance_selected(wanted, &attrs, labels.as_ref()) {
                    continue;
                }
                if page.is_full() {
                    break;
                }
                if within.direct && page.skips() {
                    continue;
                }
                if !budget.take(row.body.len()) {
                    break;
                }
                page.count_one();
                push_child(cse, out, instance_type(&attrs), attrs);
            }
        }
        Ok(())
    })
}

fn push_child(
    cse: &Cse,
    out: &mut Map<String, Value>,
    ty: ResourceType,
    mut attrs: Map<String, Value>,
) {
    let root = crate::types::root_of(&cse.config, &cse.tree.read(), ty, &attrs);
    crate::render::for_client(&root, &mut attrs);
    let slot = out.entry(root).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = slot {
        list.push(Value::Object(attrs));
    }
}
