//! `<node>` (TS-0001 9.6.18, TS-0004 7.4.18): a oneM2M node, the parent of its
//! `<mgmtObj>`s, and the links between nodes and what they host: `nl` of an `<AE>` or
//! `<remoteCSE>`, `hcl` and `hael` of a `<node>` ([`check_links`]), and what one link
//! value names ([`link_target`], also read by the `<mgmtObj>` links).

use super::{Derive, Rederived, ResourceKind};
use crate::authz_state::{self, Mode};
use crate::tree::{Node as TreeNode, Tree, TypeState};
use crate::CseConfig;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

pub(super) struct Node;

impl ResourceKind for Node {
    fn derive(
        &self,
        cx: &Derive,
        ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        // A stored link may point at a resource deleted since; only a write is refused.
        if mode == Mode::Write {
            check_links(cx.tree, cx.config, ty, attrs)?;
        }
        Ok(TypeState::Plain)
    }

    fn rederive(
        &self,
        cx: &Derive,
        node: &TreeNode,
        content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        rederive_links(cx, node, content)
    }
}

/// [`ResourceKind::rederive`] of a type holding links: those the UPDATE sets are
/// checked, under the tree's lock; the state is kept.
pub(super) fn rederive_links(
    cx: &Derive,
    node: &TreeNode,
    content: &Map<String, Value>,
) -> Result<Option<Rederived>, RequestError> {
    check_links(cx.tree, cx.config, node.ty, content)?;
    Ok(None)
}

/// The link attributes whose target this CSE checks: (type holding it, attribute, the
/// types it may name). `hael` holds a list, each entry checked alike.
const LINKS: &[(ResourceType, &str, &[ResourceType])] = &[
    (ResourceType::Ae, "nl", &[ResourceType::Node]),
    (ResourceType::RemoteCse, "nl", &[ResourceType::Node]),
    (
        ResourceType::Node,
        "hcl",
        &[ResourceType::CseBase, ResourceType::RemoteCse],
    ),
    (ResourceType::Node, "hael", &[ResourceType::Ae]),
];

/// Checks the link attributes of a `ty` in `content` (docs/decisions.md, "Links to a
/// node"): one naming a resource of this CSE must name an existing resource of the right
/// type (4000 otherwise); one naming another CSE's resource cannot be checked here and
/// is kept as sent. This CSE's own CSE-ID names its CSEBase.
pub(crate) fn check_links(
    tree: &Tree,
    config: &CseConfig,
    ty: ResourceType,
    content: &Map<String, Value>,
) -> Result<(), RequestError> {
    for (_, name, allowed) in LINKS.iter().filter(|(t, _, _)| *t == ty) {
        let ids: Vec<&str> = match content.get(*name) {
            Some(Value::String(id)) => vec![id.as_str()],
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for id in ids {
            if !names_one_of(tree, config, id, allowed) {
                let wanted: Vec<&str> = allowed.iter().map(|t| t.short_name()).collect();
                return Err(RequestError::bad_request(format!(
                    "{name} must name an existing {}",
                    wanted.join(" or ")
                )));
            }
        }
    }
    Ok(())
}

fn names_one_of(tree: &Tree, config: &CseConfig, id: &str, allowed: &[ResourceType]) -> bool {
    match link_target(tree, config, id) {
        Target::Remote => true,
        Target::Local(target) => target.is_some_and(|n| allowed.contains(&n.ty)),
    }
}

/// What a link value names, as far as this CSE can tell.
pub(super) enum Target<'t> {
    /// A resource of another CSE: not checkable here.
    Remote,
    /// A resource of this CSE, `None` when none has that address.
    Local(Option<&'t TreeNode>),
}

/// The resource link value `id` names (docs/decisions.md, "Links to a node"): another
/// CSE's, or this CSE's (its own CSE-ID naming its CSEBase).
pub(super) fn link_target<'t>(tree: &'t Tree, config: &CseConfig, id: &str) -> Target<'t> {
    if authz_state::is_remote(config, id) {
        return Target::Remote;
    }
    Target::Local(if id == config.cse_id {
        tree.get(&tree.base)
    } else {
        authz_state::resolve_local(tree, config, id)
    })
}
