//! The per-type state a node of the tree holds beside its attributes: compiled,
//! indexed or verified forms of them, derived whenever they are written or loaded (the
//! type modules under `types/` derive them). This is the data layer under `tree.rs`; it
//! depends on no other module of the crate, so the tree and every type module can use it.

use bastion_policy::{RuleSet, ValidatedToken};
use bastion_proto::time::Timestamp;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A resource ID, shared between the node map and child lists.
pub type Ri = Arc<str>;

/// What a node holds beyond its attributes, by resource type. A resource whose stored
/// state no longer validates (an expired token, rules this version rejects) is `Plain`,
/// and so grants or notifies nothing.
#[derive(Debug, Default)]
pub enum TypeState {
    #[default]
    Plain,
    /// `<accessControlPolicy>`: its compiled rules.
    Acp(Arc<AcpRules>),
    /// `<container>`: its instance index.
    Container(Box<ContainerState>),
    /// `<group>`: its resolved members.
    Group(Box<GroupState>),
    /// `<role>`: its validity.
    Role(Box<RoleState>),
    /// `<token>`: its verified claims.
    Token(Box<TokenState>),
    /// `<dynamicAuthorizationConsultation>`.
    Dac(Box<DacState>),
    /// `<subscription>`: its compiled criteria.
    Subscription(Arc<crate::subscription::SubscriptionState>),
    /// `<locationPolicy>`: its source and the container holding its positions.
    LocationPolicy(Box<LocationPolicyState>),
    /// `<schedule>`: its parsed `se` entries (`types/schedule.rs`).
    Schedule(Arc<[bastion_policy::schedule::Schedule]>),
    /// `<crossResourceSubscription>`: its targets, time window and delivery.
    CrossResource(Arc<crate::subscription::CrossResourceState>),
}

/// A `<locationPolicy>` as the location check reads it (`types/location_policy.rs`).
#[derive(Debug)]
pub struct LocationPolicyState {
    /// `los` is 2: the device stores its own positions in the container.
    pub device_based: bool,
    /// `loi`: the `<container>` the CSE created for the positions.
    pub container: Ri,
}

/// A compiled `<accessControlPolicy>`.
#[derive(Debug)]
pub struct AcpRules {
    pub pv: RuleSet,
    pub pvs: RuleSet,
}

/// One `<contentInstance>` as its container remembers it: enough for counters, eviction,
/// expiry and name uniqueness, without the content.
#[derive(Clone, Debug)]
pub struct Instance {
    pub seq: i64,
    pub ri: Box<str>,
    pub name_hash: u64,
    pub cs: u64,
    pub et: Option<i64>,
}

/// The instance index of a `<container>`.
#[derive(Debug, Default)]
pub struct ContainerState {
    /// Oldest first.
    pub instances: VecDeque<Instance>,
    /// Hashes of every instance's `rn`, for sibling-name uniqueness (a hash collision can
    /// only cause a spurious 4105, never a duplicate name).
    pub names: HashSet<u64>,
    pub cbs: u64,
    /// Full attributes of the newest instance, when known.
    pub latest: Option<Arc<Map<String, Value>>>,
    /// Highest `seq` ever evicted; every stored instance at or below it is gone.
    pub evicted_through: i64,
    /// Evictions whose rows are still on disk.
    pub unflushed_evictions: u32,
    /// What only a `<timeSeries>` keeps: the data generation times of its instances and
    /// where missing-data detection stands. `None` for a `<container>`.
    pub series: Option<Box<Series>>,
}

/// The per-`<timeSeries>` state beside its instance index (`types/time_series.rs`).
#[derive(Debug, Default)]
pub struct Series {
    /// `dgt` (milliseconds since the epoch) of every indexed instance, by `seq`, so an
    /// instance leaving the index frees its `dgt`.
    pub dgt_of: HashMap<i64, i64>,
    /// The `dgt`s held, for refusing a duplicate and, in order, for missing-data detection.
    pub dgts: BTreeSet<i64>,
    /// When detection runs: the data generation time (ms) the next data point is
    /// expected at. Unset until the first data point arrives.
    pub expected: Option<i64>,
}

impl Series {
    /// Forgets the `dgt` of an instance that left the index.
    pub fn forget(&mut self, seq: i64) {
        if let Some(dgt) = self.dgt_of.remove(&seq) {
            self.dgts.remove(&dgt);
        }
    }
}

impl ContainerState {
    pub fn cni(&self) -> u64 {
        self.instances.len() as u64
    }

    /// Whether a stored instance row is still live: rows of evicted instances may linger
    /// on disk until the next range delete.
    pub fn holds_row(&self, seq: i64) -> bool {
        self.instances
            .front()
            .is_some_and(|oldest| seq >= oldest.seq)
    }

    /// Position of the instance with this resource ID. `seq`, when known, finds it by
    /// binary search (instances are in `seq` order); otherwise the newest end is tried
    /// first, where most addressed instances are.
    pub fn position(&self, ri: &str, seq: Option<i64>) -> Option<usize> {
        match seq {
            Some(seq) => self
                .instances
                .binary_search_by_key(&seq, |i| i.seq)
                .ok()
                .filter(|&pos| &*self.instances[pos].ri == ri),
            None => self.instances.iter().rposition(|i| &*i.ri == ri),
        }
    }
}

/// What membership checks need of a `<group>`.
#[derive(Debug, Default)]
pub struct GroupState {
    /// Local `<AE>` members: absolute AE-ID → the member's creation `seq`. An AE that was
    /// deleted and registered again under the same AE-ID gets a new `seq` and is no longer
    /// a member: membership was granted to the registration, not to the name.
    pub aes: HashMap<Box<str>, i64>,
    /// Whether `mid` names resources on other CSEs. They cannot be evaluated here (no
    /// forwarding yet), so they never make anyone a member: membership of a group that
    /// has them and no local match is unknown, which denies.
    pub has_remote: bool,
    /// Local `<group>` members, with their creation `seq` (same reason as for AEs).
    pub subgroups: Vec<(Ri, i64)>,
}

/// A `<role>` (TS-0003 7.4): valid only between `tknb` and `tkna`, for its holder, when
/// its issuer is a configured role authority.
#[derive(Debug)]
pub struct RoleState {
    /// `rlid`, FQDN lower-case.
    pub role_id: Box<str>,
    /// `tkis`, absolute form.
    pub issuer: String,
    /// `tkhd`, absolute form.
    pub holder: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// A `<token>` whose `tkob` passed verification against the configured issuers.
#[derive(Debug)]
pub struct TokenState {
    pub token: Arc<ValidatedToken>,
}

/// A `<dynamicAuthorizationConsultation>`.
#[derive(Debug)]
pub struct DacState {
    /// `dae`
    pub enabled: bool,
    /// `dap`: where the DAS Server AE is reached.
    pub poa: Vec<String>,
    /// `dal`: proposed lifetime of granted privileges.
    pub lifetime: Option<Timestamp>,
}
