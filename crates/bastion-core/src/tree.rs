//! The in-memory resource tree: every resource except `<contentInstance>` with its
//! attributes, children and compiled policies, plus per-container instance indexes. It is
//! the read path of the CSE and the place where writes are decided; the store only makes
//! them durable (see docs/architecture.md).

pub use crate::state::{
    AcpRules, ContainerState, DacState, GroupState, Instance, LocationPolicyState, Ri, RoleState,
    TokenState, TypeState,
};
use bastion_proto::time::Timestamp;
use bastion_proto::ResourceType;
use serde_json::{Map, Value};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// What a pending action does at its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Update,
    Delete,
}

/// An announcement action a target missed because it could not be reached (`announce.rs`
/// sends and retries it). Target,
/// action and copy are stored with the original; the backoff is not (after a restart
/// every pending action is tried at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    pub target: Box<str>,
    pub action: Action,
    /// The copy an UPDATE or DELETE goes to; `None` for a CREATE.
    pub copy: Option<Box<str>>,
    /// Failed tries so far.
    pub tries: u32,
    /// Not tried again before.
    pub next: Timestamp,
}

impl Pending {
    /// The stored form.
    pub(crate) fn stored(&self) -> Value {
        let action = match self.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        };
        serde_json::json!({"target": &*self.target, "action": action, "copy": self.copy.as_deref()})
    }

    /// From the stored form; due at once.
    pub(crate) fn from_stored(v: &Value) -> Option<Pending> {
        let action = match v.get("action")?.as_str()? {
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            _ => return None,
        };
        let copy = v.get("copy").and_then(Value::as_str).map(Into::into);
        if (action == Action::Create) != copy.is_none() {
            return None;
        }
        Some(Pending {
            target: v.get("target")?.as_str()?.into(),
            action,
            copy,
            tries: 0,
            next: Timestamp(0),
        })
    }
}

/// A resource held in memory.
#[derive(Debug)]
pub struct Node {
    pub ty: ResourceType,
    pub ri: Ri,
    /// Parent's resource ID; `None` for the CSEBase.
    pub pi: Option<Ri>,
    pub rn: String,
    /// Structured CSE-relative address, e.g. `cse-in/ae1/cnt1`.
    pub path: String,
    pub seq: i64,
    /// Every attribute as sent to clients (universal ones included).
    pub attrs: Map<String, Value>,
    /// Originator that created the resource (default access policy, TS-0003 7.1.4).
    pub creator: Option<String>,
    pub et: Option<Timestamp>,
    /// Non-instance children, oldest first.
    pub children: Vec<Ri>,
    pub child_names: HashMap<String, Ri>,
    /// Resource IDs the `acpi` attribute resolved to when it was written.
    pub acpi: Vec<Ri>,
    /// What the node's type derives from its attributes (`types/`).
    pub state: TypeState,
    /// For an `<AE>` or `<remoteCSE>` registered over a security association: that
    /// association's identity, absolute form (`identity.rs`). Stored with the resource.
    pub(crate) bound: Option<Box<str>>,
    /// Where the announced copies of this resource live (`announce.rs`): per target, its
    /// CSE-ID and the copy's SP-relative ID there. Stored with the resource.
    pub(crate) announced: Vec<(Box<str>, Box<str>)>,
    /// Announcement actions not done yet at their targets (`announce.rs`), retried by
    /// the periodic pass. Stored with the resource.
    pub(crate) pending: Vec<Pending>,
}

impl Node {
    /// A resource with no children yet and no state: its type module derives that
    /// (`types/`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ty: ResourceType,
        ri: &str,
        pi: Option<Ri>,
        rn: String,
        path: String,
        seq: i64,
        attrs: Map<String, Value>,
        creator: Option<String>,
        et: Option<Timestamp>,
    ) -> Node {
        Node {
            ty,
            ri: Arc::from(ri),
            pi,
            rn,
            path,
            seq,
            attrs,
            creator,
            et,
            children: Vec::new(),
            child_names: HashMap::new(),
            acpi: Vec::new(),
            state: TypeState::Plain,
            bound: None,
            announced: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The compiled rules of an `<accessControlPolicy>`.
    pub fn acp(&self) -> Option<&Arc<AcpRules>> {
        match &self.state {
            TypeState::Acp(rules) => Some(rules),
            _ => None,
        }
    }

    /// The instance index of a `<container>`.
    pub fn container(&self) -> Option<&ContainerState> {
        match &self.state {
            TypeState::Container(state) => Some(state),
            _ => None,
        }
    }

    pub fn container_mut(&mut self) -> Option<&mut ContainerState> {
        match &mut self.state {
            TypeState::Container(state) => Some(state),
            _ => None,
        }
    }

    /// The resolved members of a `<group>`.
    pub fn group(&self) -> Option<&GroupState> {
        match &self.state {
            TypeState::Group(state) => Some(state),
            _ => None,
        }
    }

    /// A valid `<role>`.
    pub fn role(&self) -> Option<&RoleState> {
        match &self.state {
            TypeState::Role(state) => Some(state),
            _ => None,
        }
    }

    /// A `<locationPolicy>`.
    pub fn location_policy(&self) -> Option<&LocationPolicyState> {
        match &self.state {
            TypeState::LocationPolicy(state) => Some(state),
            _ => None,
        }
    }

    /// A `<token>` whose object verified.
    pub fn token(&self) -> Option<&TokenState> {
        match &self.state {
            TypeState::Token(state) => Some(state),
            _ => None,
        }
    }

    /// A `<dynamicAuthorizationConsultation>`.
    pub fn dac(&self) -> Option<&DacState> {
        match &self.state {
            TypeState::Dac(state) => Some(state),
            _ => None,
        }
    }

    /// The parsed entries of a `<schedule>`.
    pub(crate) fn schedule(&self) -> Option<&[bastion_policy::schedule::Schedule]> {
        match &self.state {
            TypeState::Schedule(entries) => Some(entries),
            _ => None,
        }
    }

    /// The compiled criteria of a `<subscription>`.
    pub(crate) fn subscription(&self) -> Option<&Arc<crate::subscription::SubscriptionState>> {
        match &self.state {
            TypeState::Subscription(state) => Some(state),
            _ => None,
        }
    }

    pub(crate) fn cross_resource(&self) -> Option<&Arc<crate::subscription::CrossResourceState>> {
        match &self.state {
            TypeState::CrossResource(state) => Some(state),
            _ => None,
        }
    }

    pub(crate) fn subscription_mut(
        &mut self,
    ) -> Option<&mut Arc<crate::subscription::SubscriptionState>> {
        match &mut self.state {
            TypeState::Subscription(state) => Some(state),
            _ => None,
        }
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.et.is_some_and(|et| et <= now)
    }
}

#[cfg(test)]
thread_local! {
    /// Node look-ups ([`Tree::get`]) made on this thread: what the tests count to show
    /// that an operation's work does not grow with the number of siblings.
    pub(crate) static LOOKUPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The tree itself. All access goes through the core's lock.
#[derive(Debug)]
pub struct Tree {
    pub nodes: HashMap<Ri, Node>,
    pub base: Ri,
    hasher: RandomState,
    next_seq: i64,
    /// `rlid` → `<role>` resources.
    role_index: HashMap<Box<str>, Vec<Ri>>,
    /// `tkid` → `<token>` resource.
    token_index: HashMap<Box<str>, Ri>,
    /// Normalized creator → how many `<subscription>` resources it holds, for the
    /// per-originator cap. Normalized with `local` (set before any node is inserted).
    subscriptions_by_creator: HashMap<Box<str>, usize>,
    /// Parent → its `<subscription>` children, oldest first (their order among the
    /// parent's `children`), so an event finds the subscriptions it concerns without
    /// walking the subject's other children.
    subscriptions_by_parent: HashMap<Ri, Vec<Ri>>,
    /// Normalized creator → its `<locationPolicy>` resources, oldest first: where the
    /// location check finds an originator's own positions (`pip.rs`).
    location_policies_by_creator: HashMap<Box<str>, Vec<Ri>>,
    local: Option<bastion_policy::LocalIdentity>,
}

impl Tree {
    pub fn new(base: Node, next_seq: i64) -> Tree {
        let ri = base.ri.clone();
        let mut nodes = HashMap::new();
        nodes.insert(ri.clone(), base);
        Tree {
            nodes,
            base: ri,
            hasher: RandomState::new(),
            next_seq,
            role_index: HashMap::new(),
            token_index: HashMap::new(),
            subscriptions_by_creator: HashMap::new(),
            subscriptions_by_parent: HashMap::new(),
            location_policies_by_creator: HashMap::new(),
            local: None,
        }
    }

    /// Sets the identity originators are normalized with for the subscription count;
    /// nodes inserted before are not counted.
    pub fn count_subscriptions_as(mut self, local: bastion_policy::LocalIdentity) -> Tree {
        self.local = Some(local);
        self
    }

    /// How many `<subscription>` resources `originator` (any written form) created.
    pub fn subscriptions_of(&self, originator: &str) -> usize {
        let Some(local) = &self.local else {
            return 0;
        };
        let key = bastion_policy::normalize_originator(local, originator);
        self.subscriptions_by_creator
            .get(key.as_str())
            .copied()
            .unwrap_or(0)
    }

    /// The subscription-count key of `node`, when it is a subscription with a creator.
    fn subscriber_key(&self, node: &Node) -> Option<String> {
        if node.ty != ResourceType::Subscription {
            return None;
        }
        self.creator_key(node)
    }

    /// The normalized creator of `node`, when the tree normalizes and it has one.
    fn creator_key(&self, node: &Node) -> Option<String> {
        let local = self.local.as_ref()?;
        let creator = node.creator.as_deref()?;
        Some(bastion_policy::normalize_originator(local, creator))
    }

    /// The `<locationPolicy>` resources created by `originator` (normalized form),
    /// oldest first.
    pub fn location_policies_of(&self, originator: &str) -> impl Iterator<Item = &Node> {
        self.location_policies_by_creator
            .get(originator)
            .into_iter()
            .flatten()
            .filter_map(|ri| self.nodes.get(ri))
    }

    pub fn next_seq(&mut self) -> i64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn name_hash(&self, rn: &str) -> u64 {
        self.hasher.hash_one(rn)
    }

    pub fn get(&self, ri: &str) -> Option<&Node> {
        #[cfg(test)]
        LOOKUPS.with(|n| n.set(n.get() + 1));
        self.nodes.get(ri)
    }

    /// The resource IDs of the `<subscription>` children of `parent`, oldest first.
    pub fn subscriptions_under(&self, parent: &str) -> &[Ri] {
        self.subscriptions_by_parent
            .get(parent)
            .map_or(&[], Vec::as_slice)
    }

    /// `<role>` resources of this CSE whose `rlid` is `role_id` (TS-0003 7.4 Role
    /// Repository).
    pub fn roles_named(&self, role_id: &str) -> impl Iterator<Item = &Node> {
        self.role_index
            .get(role_id)
            .into_iter()
            .flatten()
            .filter_map(|ri| self.nodes.get(ri))
    }

    /// The `<token>` resource of this CSE whose `tkid` is `token_id` (Token Repository).
    pub fn token_named(&self, token_id: &str) -> Option<&Node> {
        self.token_index
            .get(token_id)
            .and_then(|ri| self.nodes.get(ri))
    }

    /// Keeps the role, token and subscription indexes in step with a node entering the
    /// tree.
    fn index(&mut self, node: &Node) {
        if let (ResourceType::Subscription, Some(parent)) = (node.ty, &node.pi) {
            self.subscriptions_by_parent
                .entry(parent.clone())
                .or_default()
                .push(node.ri.clone());
        }
        if let Some(key) = self.subscriber_key(node) {
            *self
                .subscriptions_by_creator
                .entry(key.into_boxed_str())
                .or_insert(0) += 1;
        }
        if let (TypeState::LocationPolicy(_), Some(key)) = (&node.state, self.creator_key(node)) {
            self.location_policies_by_creator
                .entry(key.into_boxed_str())
                .or_default()
                .push(node.ri.clone());
        }
        match &node.state {
            TypeState::Role(role) => self
                .role_index
                .entry(role.role_id.clone())
                .or_default()
                .push(node.ri.clone()),
            TypeState::Token(token) => {
                self.token_index
                    .insert(token.token.token_id.as_str().into(), node.ri.clone());
            }
            _ => {}
        }
    }

    /// ... and leaving it.
    fn unindex(&mut self, node: &Node) {
        if let (ResourceType::Subscription, Some(parent)) = (node.ty, &node.pi) {
            if let Some(list) = self.subscriptions_by_parent.get_mut(parent) {
                list.retain(|ri| *ri != node.ri);
                if list.is_empty() {
                    self.subscriptions_by_parent.remove(parent);
                }
            }
        }
        if let Some(key) = self.subscriber_key(node) {
            if let Some(n) = self.subscriptions_by_creator.get_mut(key.as_str()) {
                *n -= 1;
                if *n == 0 {
                    self.subscriptions_by_creator.remove(key.as_str());
                }
            }
        }
        if let (TypeState::LocationPolicy(_), Some(key)) = (&node.state, self.creator_key(node)) {
            if let Some(list) = self.location_policies_by_creator.get_mut(key.as_str()) {
                list.retain(|ri| *ri != node.ri);
                if list.is_empty() {
                    self.location_policies_by_creator.remove(key.as_str());
                }
            }
        }
        match &node.state {
            TypeState::Role(role) => {
                if let Some(list) = self.role_index.get_mut(&*role.role_id) {
                    list.retain(|ri| *ri != node.ri);
                    if list.is_empty() {
                        self.role_index.remove(&*role.role_id);
                    }
                }
            }
            TypeState::Token(token) => {
                let id = token.token.token_id.as_str();
                if self.token_index.get(id) == Some(&node.ri) {
                    self.token_index.remove(id);
                }
            }
            _ => {}
        }
    }

    pub fn get_mut(&mut self, ri: &str) -> Option<&mut Node> {
        self.nodes.get_mut(ri)
    }

    /// Whether `rn` is taken among the children of `parent` (instances included).
    pub fn name_taken(&self, parent: &Node, rn: &str) -> bool {
        parent.child_names.contains_key(rn)
            || parent
                .container()
                .is_some_and(|c| c.names.contains(&self.name_hash(rn)))
    }

    /// Inserts a node under its parent (which must exist).
    pub fn insert(&mut self, node: Node) {
        if let Some(parent) = node.pi.as_ref().and_then(|pi| self.nodes.get_mut(pi)) {
            parent.children.push(node.ri.clone());
            parent.child_names.insert(node.rn.clone(), node.ri.clone());
        }
        self.index(&node);
        self.nodes.insert(node.ri.clone(), node);
    }

    /// Removes a node and its whole subtree; returns the removed nodes, parents first.
    pub fn remove_subtree(&mut self, ri: &str) -> Vec<Node> {
        let Some(node) = self.nodes.get(ri) else {
            return Vec::new();
        };
        if let Some(parent) = node.pi.clone().and_then(|pi| self.nodes.get_mut(&pi)) {
            parent.children.retain(|c| &**c != ri);
            parent.child_names.retain(|_, c| &**c != ri);
        }
        let mut out = Vec::new();
        let mut stack: Vec<Ri> = vec![Arc::from(ri)];
        while let Some(next) = stack.pop() {
            if let Some(n) = self.nodes.remove(&next) {
                stack.extend(n.children.iter().cloned());
                self.unindex(&n);
                out.push(n);
            }
        }
        out
    }

    /// Ancestors-first walk of whether any node from `ri` up to the root has expired.
    pub fn expired_in_chain(&self, ri: &str, now: Timestamp) -> bool {
        let mut cur = self.nodes.get(ri);
        while let Some(n) = cur {
            if n.is_expired(now) {
                return true;
            }
            cur = n.pi.as_ref().and_then(|pi| self.nodes.get(pi));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ty: ResourceType, ri: &str, pi: Option<&str>, creator: &str) -> Node {
        Node::new(
            ty,
            ri,
            pi.map(Arc::from),
            ri.to_owned(),
            ri.to_owned(),
            1,
            Map::new(),
            Some(creator.to_owned()),
            None,
        )
    }

    #[test]
    fn subscriptions_are_counted_per_normalized_creator() {
        let local = bastion_policy::LocalIdentity {
            sp_id: "//bastion.example".into(),
            cse_id: "/id-in".into(),
            admin: "CAdmin".into(),
        };
        let base = node(ResourceType::CseBase, "id-in", None, "");
        let mut tree = Tree::new(base, 1).count_subscriptions_as(local);
        tree.insert(node(ResourceType::Ae, "ae", Some("id-in"), "Cabc"));
        tree.insert(node(ResourceType::Subscription, "s1", Some("ae"), "Cabc"));
        tree.insert(node(
            ResourceType::Subscription,
            "s2",
            Some("ae"),
            "/id-in/Cabc",
        ));
        tree.insert(node(
            ResourceType::Subscription,
            "s3",
            Some("id-in"),
            "Cother",
        ));
        assert_eq!(tree.subscriptions_of("//bastion.example/id-in/Cabc"), 2);
        assert_eq!(tree.subscriptions_of("Cabc"), 2);
        assert_eq!(tree.subscriptions_of("Cother"), 1);
        assert_eq!(tree.subscriptions_of("Cnone"), 0);
        tree.remove_subtree("s1");
        assert_eq!(tree.subscriptions_of("Cabc"), 1);
        // Removing the parent removes its subscriptions from the count too.
        tree.remove_subtree("ae");
        assert_eq!(tree.subscriptions_of("Cabc"), 0);
        assert_eq!(tree.subscriptions_of("Cother"), 1);
    }

    #[test]
    fn subscriptions_are_indexed_by_parent_in_child_order() {
        let base = node(ResourceType::CseBase, "id-in", None, "");
        let mut tree = Tree::new(base, 1);
        tree.insert(node(ResourceType::Ae, "ae", Some("id-in"), "Cabc"));
        tree.insert(node(ResourceType::Subscription, "s1", Some("ae"), "Cabc"));
        tree.insert(node(ResourceType::Container, "c1", Some("ae"), "Cabc"));
        tree.insert(node(ResourceType::Subscription, "s2", Some("ae"), "Cabc"));
        tree.insert(node(ResourceType::Subscription, "s3", Some("c1"), "Cabc"));
        tree.insert(node(ResourceType::Subscription, "s4", Some("ae"), "Cabc"));
        let under = |tree: &Tree, ri: &str| -> Vec<String> {
            tree.subscriptions_under(ri)
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(under(&tree, "ae"), ["s1", "s2", "s4"]);
        assert_eq!(under(&tree, "c1"), ["s3"]);
        assert!(under(&tree, "id-in").is_empty());
        tree.remove_subtree("s2");
        assert_eq!(under(&tree, "ae"), ["s1", "s4"]);
        // A removed subtree takes its subscriptions' entries with it.
        tree.remove_subtree("c1");
        assert!(under(&tree, "c1").is_empty());
        tree.remove_subtree("ae");
        assert!(under(&tree, "ae").is_empty());
        assert!(tree.subscriptions_by_parent.is_empty());
    }
}
