//! Resource types (TS-0004 §6.3.4.2.1): numbers, short names, JSON roots.

pub mod announced;

use announced::ANNOUNCED_OFFSET;

/// The resource types Bastion knows by number. `Other` keeps any number the spec defines
/// but Bastion does not implement, so the pipeline can tell "unknown" (4000) from
/// "not implemented" (5001).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceType {
    AccessControlPolicy,
    Ae,
    Container,
    ContentInstance,
    CseBase,
    Group,
    Role,
    Token,
    DynamicAuthorizationConsultation,
    PollingChannel,
    RemoteCse,
    /// `<request>`: created only by the CSE for non-blocking requests.
    Request,
    Subscription,
    /// `<mgmtObj>` (ty 13): one management function of a node; its specialization
    /// (`mgd`, `attrs::mgmt`) decides its attributes and its JSON root (`m2m:fwr`, ...).
    MgmtObj,
    /// `<node>` (ty 14): a oneM2M node, parent of its `<mgmtObj>`s.
    Node,
    /// `<locationPolicy>` (ty 10): how a node's position is obtained, and the
    /// `<container>` the positions are kept in.
    LocationPolicy,
    /// `<timeSeries>` (ty 29): periodic data points with missing-data detection.
    TimeSeries,
    /// `<timeSeriesInstance>` (ty 30): one data point of a `<timeSeries>`.
    TimeSeriesInstance,
    /// `<flexContainer>` (ty 28): a container whose content is the custom attributes of
    /// a specialization (`crate::flex`); serialized under the specialization's name.
    FlexContainer,
    /// `<flexContainerInstance>` (ty 58): a copy of a `<flexContainer>`'s content, made
    /// by the hosting CSE.
    FlexContainerInstance,
    /// `<schedule>` (ty 18): time windows in the 7-field `scheduleEntry` syntax; under a
    /// `<subscription>` it restricts when notifications are sent.
    Schedule,
    /// `<notificationTargetMgmtPolicyRef>` (ty 25): under a `<subscription>`, the policy
    /// that applies to some of its notification targets (`ntu`, `npi`).
    NotificationTargetMgmtPolicyRef,
    /// `<notificationTargetPolicy>` (ty 26): what the CSE does when a notification target
    /// asks to leave a subscription (`acn`), under which rules.
    NotificationTargetPolicy,
    /// `<policyDeletionRules>` (ty 27): one group of rules of a
    /// `<notificationTargetPolicy>` (`dr`, combined by `drr`).
    PolicyDeletionRules,
    /// `<crossResourceSubscription>` (ty 48): one notification when every target had an
    /// event within a time window.
    CrossResourceSubscription,
    /// An announced variant (`<AEAnnc>`, ty 10002) Bastion serves, holding its original's
    /// number (2); `announced` says which.
    Announced(u16),
    /// A type number defined by oneM2M that Bastion does not implement yet.
    Other(u16),
}

/// Type numbers defined by oneM2M up to Release 4 (core-resources.md §1), used to tell a
/// defined-but-unimplemented type (5001) from a number that means nothing (4000).
const DEFINED: &[u16] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
    58, 60, 62, 63, 64, 65, 66,
];

/// The announceable types (TS-0004 Table 6.3.4.2.1-1): each has an announced variant
/// numbered 10000 more (`<AEAnnc>` is 10002). A variant Bastion does not serve
/// (`announced`) is defined-but-unimplemented (5001), never an unknown number (4000).
const ANNOUNCEABLE: &[u16] = &[
    1, 2, 3, 4, 5, 9, 10, 13, 14, 16, 18, 24, 28, 29, 30, 34, 38, 39, 40, 41, 42, 46, 58, 60, 62,
    63, 64, 65, 66,
];

/// Whether oneM2M defines type number `n`, announced variants included.
fn is_defined(n: u16) -> bool {
    DEFINED.contains(&n)
        || n.checked_sub(ANNOUNCED_OFFSET)
            .is_some_and(|original| ANNOUNCEABLE.contains(&original))
}

impl ResourceType {
    /// Maps a `ty` number; `None` when oneM2M defines no such type.
    pub fn from_number(n: u64) -> Option<Self> {
        let n = u16::try_from(n).ok()?;
        if let Some(announced) = announced::from_number(n) {
            return Some(announced);
        }
        Some(match n {
            1 => ResourceType::AccessControlPolicy,
            2 => ResourceType::Ae,
            3 => ResourceType::Container,
            4 => ResourceType::ContentInstance,
            5 => ResourceType::CseBase,
            9 => ResourceType::Group,
            13 => ResourceType::MgmtObj,
            14 => ResourceType::Node,
            10 => ResourceType::LocationPolicy,
            15 => ResourceType::PollingChannel,
            16 => ResourceType::RemoteCse,
            17 => ResourceType::Request,
            18 => ResourceType::Schedule,
            23 => ResourceType::Subscription,
            25 => ResourceType::NotificationTargetMgmtPolicyRef,
            26 => ResourceType::NotificationTargetPolicy,
            27 => ResourceType::PolicyDeletionRules,
            28 => ResourceType::FlexContainer,
            29 => ResourceType::TimeSeries,
            30 => ResourceType::TimeSeriesInstance,
            31 => ResourceType::Role,
            32 => ResourceType::Token,
            34 => ResourceType::DynamicAuthorizationConsultation,
            58 => ResourceType::FlexContainerInstance,
            48 => ResourceType::CrossResourceSubscription,
            other if is_defined(other) => ResourceType::Other(other),
            _ => return None,
        })
    }

    pub fn number(self) -> u16 {
        match self {
            ResourceType::AccessControlPolicy => 1,
            ResourceType::Ae => 2,
            ResourceType::Container => 3,
            ResourceType::ContentInstance => 4,
            ResourceType::CseBase => 5,
            ResourceType::Group => 9,
            ResourceType::MgmtObj => 13,
            ResourceType::Node => 14,
            ResourceType::LocationPolicy => 10,
            ResourceType::PollingChannel => 15,
            ResourceType::RemoteCse => 16,
            ResourceType::Request => 17,
            ResourceType::Schedule => 18,
            ResourceType::Subscription => 23,
            ResourceType::NotificationTargetMgmtPolicyRef => 25,
            ResourceType::NotificationTargetPolicy => 26,
            ResourceType::PolicyDeletionRules => 27,
            ResourceType::FlexContainer => 28,
            ResourceType::TimeSeries => 29,
            ResourceType::TimeSeriesInstance => 30,
            ResourceType::FlexContainerInstance => 58,
            ResourceType::CrossResourceSubscription => 48,
            ResourceType::Role => 31,
            ResourceType::Token => 32,
            ResourceType::DynamicAuthorizationConsultation => 34,
            ResourceType::Announced(n) => n + ANNOUNCED_OFFSET,
            ResourceType::Other(n) => n,
        }
    }

    /// Short name used in the JSON root (`m2m:<short>`).
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::AccessControlPolicy => "acp",
            ResourceType::Ae => "ae",
            ResourceType::Container => "cnt",
            ResourceType::ContentInstance => "cin",
            ResourceType::CseBase => "cb",
            ResourceType::Group => "grp",
            ResourceType::MgmtObj => "mgo",
            ResourceType::Node => "nod",
            ResourceType::LocationPolicy => "lcp",
            ResourceType::PollingChannel => "pch",
            ResourceType::RemoteCse => "csr",
            ResourceType::Request => "req",
            ResourceType::Schedule => "sch",
            ResourceType::Subscription => "sub",
            ResourceType::NotificationTargetMgmtPolicyRef => "ntpr",
            ResourceType::NotificationTargetPolicy => "ntp",
            ResourceType::PolicyDeletionRules => "pdr",
            ResourceType::TimeSeries => "ts",
            ResourceType::TimeSeriesInstance => "tsi",
            ResourceType::FlexContainer => "fcnt",
            ResourceType::FlexContainerInstance => "fci",
            ResourceType::CrossResourceSubscription => "crs",
            ResourceType::Role => "rol",
            ResourceType::Token => "tk",
            ResourceType::DynamicAuthorizationConsultation => "dac",
            ResourceType::Announced(n) => announced::short_name(n),
            ResourceType::Other(_) => "",
        }
    }

    /// The JSON root member name, e.g. `m2m:cnt`.
    pub fn root(self) -> &'static str {
        match self {
            ResourceType::AccessControlPolicy => "m2m:acp",
            ResourceType::Ae => "m2m:ae",
            ResourceType::Container => "m2m:cnt",
            ResourceType::ContentInstance => "m2m:cin",
            ResourceType::CseBase => "m2m:cb",
            ResourceType::Group => "m2m:grp",
            // Never on the wire: a `<mgmtObj>` is named by its specialization's root
            // ([`ResourceType::root_of`]).
            ResourceType::MgmtObj => "m2m:mgo",
            ResourceType::Node => "m2m:nod",
            ResourceType::LocationPolicy => "m2m:lcp",
            ResourceType::PollingChannel => "m2m:pch",
            ResourceType::RemoteCse => "m2m:csr",
            ResourceType::Request => "m2m:req",
            ResourceType::Schedule => "m2m:sch",
            ResourceType::Subscription => "m2m:sub",
            ResourceType::NotificationTargetMgmtPolicyRef => "m2m:ntpr",
            ResourceType::NotificationTargetPolicy => "m2m:ntp",
            ResourceType::PolicyDeletionRules => "m2m:pdr",
            ResourceType::TimeSeries => "m2m:ts",
            ResourceType::TimeSeriesInstance => "m2m:tsi",
            // The generic names; a specialization is serialized under its own name
            // (`crate::flex::Specialization::root`).
            ResourceType::FlexContainer => "m2m:fcnt",
            ResourceType::FlexContainerInstance => "m2m:fci",
            ResourceType::CrossResourceSubscription => "m2m:crs",
            ResourceType::Role => "m2m:rol",
            ResourceType::Token => "m2m:tk",
            ResourceType::DynamicAuthorizationConsultation => "m2m:dac",
            ResourceType::Announced(n) => announced::root(n),
            ResourceType::Other(_) => "",
        }
    }

    /// The JSON root of the resource whose attributes are `attrs`: the type's root, or for
    /// a `<mgmtObj>` its specialization's (`m2m:fwr` for `mgd` 1001).
    /// Its `<mgmtObjAnnc>` is named by the specialization's announced root (`m2m:fwrA`).
    pub fn root_of(self, attrs: &serde_json::Map<String, serde_json::Value>) -> &'static str {
        let spec = || {
            attrs
                .get("mgd")
                .and_then(serde_json::Value::as_u64)
                .and_then(crate::attrs::mgmt::spec)
        };
        match self {
            ResourceType::MgmtObj => spec().map_or(self.root(), |s| s.root),
            ResourceType::Announced(n) if n == ResourceType::MgmtObj.number() => {
                spec().map_or(self.root(), crate::attrs::mgmt::announced_root)
            }
            _ => self.root(),
        }
    }

    /// The served type whose JSON root is `root`, a `<mgmtObj>` specialization's included.
    pub fn from_root(root: &str) -> Option<ResourceType> {
        if crate::attrs::mgmt::by_root(root).is_some() {
            return Some(ResourceType::MgmtObj);
        }
        if crate::attrs::mgmt::by_announced_root(root).is_some() {
            return ResourceType::MgmtObj.announced();
        }
        if let Some(announced) = announced::from_root(root) {
            return Some(announced);
        }
        ResourceType::SUPPORTED
            .into_iter()
            .filter(|t| *t != ResourceType::MgmtObj)
            .find(|t| t.root() == root)
    }

    /// Whether the type carries an `acpi` attribute of its own (TS-0001 9.6.1.3). A
    /// `<pollingChannel>` has none: only its parent's owner may use it (TS-0001 9.6.21).
    pub fn has_acpi(self) -> bool {
        if let ResourceType::Announced(n) = self {
            return ResourceType::from_number(u64::from(n)).is_some_and(Self::has_acpi);
        }
        !matches!(
            self,
            ResourceType::AccessControlPolicy
                | ResourceType::ContentInstance
                | ResourceType::TimeSeriesInstance
                | ResourceType::FlexContainerInstance
                | ResourceType::PollingChannel
                | ResourceType::Other(_)
        )
    }

    /// Whether Bastion implements CREATE of this type through the API.
    pub fn is_creatable(self) -> bool {
        matches!(
            self,
            ResourceType::AccessControlPolicy
                | ResourceType::Ae
                | ResourceType::Container
                | ResourceType::ContentInstance
                | ResourceType::Group
                | ResourceType::MgmtObj
                | ResourceType::Node
                | ResourceType::LocationPolicy
                | ResourceType::Role
                | ResourceType::Token
                | ResourceType::DynamicAuthorizationConsultation
                | ResourceType::PollingChannel
                | ResourceType::RemoteCse
                | ResourceType::Subscription
                | ResourceType::TimeSeries
                | ResourceType::TimeSeriesInstance
                | ResourceType::FlexContainer
                | ResourceType::Schedule
                | ResourceType::NotificationTargetMgmtPolicyRef
                | ResourceType::NotificationTargetPolicy
                | ResourceType::PolicyDeletionRules
                | ResourceType::CrossResourceSubscription
                | ResourceType::Announced(_)
        )
    }

    /// The original of an announced variant (`<AE>` for `<AEAnnc>`).
    pub fn original(self) -> Option<ResourceType> {
        match self {
            ResourceType::Announced(n) => ResourceType::from_number(u64::from(n)),
            _ => None,
        }
    }

    /// The announced variant of this type, if Bastion serves it.
    pub fn announced(self) -> Option<ResourceType> {
        announced::from_number(self.number().checked_add(ANNOUNCED_OFFSET)?)
    }

    /// The instance type a resource of this type holds in its instance index
    /// (`<contentInstance>` in a `<container>`, `<timeSeriesInstance>` in a
    /// `<timeSeries>`); `None` for types without one.
    pub fn instance_type(self) -> Option<ResourceType> {
        match self {
            ResourceType::Container => Some(ResourceType::ContentInstance),
            ResourceType::TimeSeries => Some(ResourceType::TimeSeriesInstance),
            ResourceType::FlexContainer => Some(ResourceType::FlexContainerInstance),
            _ => None,
        }
    }

    /// The type holding an index of instances of this type (the inverse of
    /// [`ResourceType::instance_type`]).
    pub fn instance_parent(self) -> Option<ResourceType> {
        match self {
            ResourceType::ContentInstance => Some(ResourceType::Container),
            ResourceType::TimeSeriesInstance => Some(ResourceType::TimeSeries),
            ResourceType::FlexContainerInstance => Some(ResourceType::FlexContainer),
            _ => None,
        }
    }

    /// Whether resources of this type are entries of a parent's instance index rather
    /// than nodes of the tree.
    pub fn is_instance(self) -> bool {
        matches!(
            self,
            ResourceType::ContentInstance
                | ResourceType::TimeSeriesInstance
                | ResourceType::FlexContainerInstance
        )
    }

    /// Whether `child` may be created under a resource of this type (TS-0001 9.6).
    pub fn allows_child(self, child: ResourceType) -> bool {
        use ResourceType::*;
        if let Announced(original) = child {
            return announced::allows_announced_child(self, original);
        }
        match self {
            Announced(original) => announced::allows_original_child(original, child),
            // `<role>` and `<token>` live in the CSE's Role/Token Repository, directly under
            // the CSEBase (TS-0003 7.4; docs/decisions.md).
            // `<locationPolicy>` under the CSEBase (TS-0001 9.6.3) and, as ACME allows,
            // under an `<AE>` (docs/decisions.md).
            CseBase => matches!(
                child,
                Ae | Container
                    | TimeSeries
                    | FlexContainer
                    | AccessControlPolicy
                    | Group
                    | LocationPolicy
                    | Role
                    | Token
                    | DynamicAuthorizationConsultation
                    | RemoteCse
                    | Subscription
                    | Node
                    | Schedule
                    | NotificationTargetPolicy
                    | CrossResourceSubscription
            ),
            Ae => matches!(
                child,
                Container
                    | TimeSeries
                    | FlexContainer
                    | AccessControlPolicy
                    | Group
                    | LocationPolicy
                    | DynamicAuthorizationConsultation
                    | Subscription
                    | PollingChannel
                    | CrossResourceSubscription
            ),
            // A registered CSE's resources on its registrar (TS-0001 9.6.4).
            RemoteCse => matches!(
                child,
                Container
                    | TimeSeries
                    | FlexContainer
                    | AccessControlPolicy
                    | Group
                    | Subscription
                    | PollingChannel
            ),
            Container => matches!(
                child,
                Container | ContentInstance | FlexContainer | Subscription
            ),
            // TS-0004 7.4.37.1 (of the children it lists, those Bastion serves); its
            // instances are made by the CSE (`<flexContainerInstance>` refuses CREATE).
            FlexContainer => matches!(
                child,
                Container | FlexContainer | TimeSeries | Subscription | FlexContainerInstance
            ),
            TimeSeries => matches!(child, TimeSeriesInstance | Subscription),
            // TS-0001 9.6.18: a node holds its management objects.
            Node => matches!(child, MgmtObj | Subscription | Schedule),
            // TS-0004 7.4.31.1: at most two `<policyDeletionRules>` (the core counts).
            NotificationTargetPolicy => matches!(child, PolicyDeletionRules | Subscription),
            // TS-0004 7.4.8.1: a subscription's notification schedule (at most one,
            // `types/schedule.rs`); TS-0004 7.4.30.1: the policy references of its targets.
            Subscription => matches!(child, Schedule | NotificationTargetMgmtPolicyRef),
            NotificationTargetMgmtPolicyRef => child == Subscription,
            AccessControlPolicy | Group | MgmtObj | LocationPolicy | Schedule
            | PolicyDeletionRules => child == Subscription,
            _ => false,
        }
    }

    /// Resource types whose instances are reported in the CSEBase `srt`.
    pub const SUPPORTED: [ResourceType; 25] = [
        ResourceType::AccessControlPolicy,
        ResourceType::Ae,
        ResourceType::Container,
        ResourceType::ContentInstance,
        ResourceType::CseBase,
        ResourceType::Group,
        ResourceType::MgmtObj,
        ResourceType::Node,
        ResourceType::LocationPolicy,
        ResourceType::Role,
        ResourceType::Token,
        ResourceType::DynamicAuthorizationConsultation,
        ResourceType::PollingChannel,
        ResourceType::RemoteCse,
        ResourceType::Request,
        ResourceType::Subscription,
        ResourceType::TimeSeries,
        ResourceType::TimeSeriesInstance,
        ResourceType::FlexContainer,
        ResourceType::FlexContainerInstance,
        ResourceType::Schedule,
        ResourceType::NotificationTargetMgmtPolicyRef,
        ResourceType::NotificationTargetPolicy,
        ResourceType::PolicyDeletionRules,
        ResourceType::CrossResourceSubscription,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for t in ResourceType::SUPPORTED {
            assert_eq!(ResourceType::from_number(t.number() as u64), Some(t));
        }
        assert_eq!(ResourceType::from_number(24), Some(ResourceType::Other(24)));
        assert_eq!(ResourceType::from_number(33), None);
        assert_eq!(ResourceType::from_number(70000), None);
    }

    #[test]
    fn ts0004_6_3_4_2_1_announced_variants_are_defined() {
        for n in [
            10001, 10002, 10003, 10004, 10009, 10010, 10013, 10014, 10016, 10018, 10028, 10029,
            10030, 10034, 10058,
        ] {
            let ty = ResourceType::from_number(n).unwrap();
            assert_eq!(ty, ResourceType::Announced(n as u16 - 10_000));
            assert_eq!(ty.number() as u64, n);
            assert_eq!(ResourceType::from_root(ty.root()), Some(ty));
            assert_eq!(ty.original().unwrap().announced(), Some(ty));
        }
        assert_eq!(ResourceType::Ae.announced().unwrap().root(), "m2m:aeA");
        // A `<mgmtObjAnnc>` is named by its specialization (TS-0004 8.2.4).
        let mgo_a = ResourceType::MgmtObj.announced().unwrap();
        let fw = serde_json::json!({"mgd": 1001});
        assert_eq!(mgo_a.root_of(fw.as_object().unwrap()), "m2m:fwrA");
        assert_eq!(ResourceType::from_root("m2m:fwrA"), Some(mgo_a));
        assert_eq!(ResourceType::from_root("m2m:batA"), Some(mgo_a));
        // Announceable, but not served here: defined, not implemented.
        for n in [10024, 10060, 10066] {
            assert_eq!(
                ResourceType::from_number(n),
                Some(ResourceType::Other(n as u16))
            );
        }
        // Not announceable, or no type at all: unknown numbers.
        for n in [10015, 10017, 10023, 10033, 10000, 20002] {
            assert_eq!(ResourceType::from_number(n), None, "{n}");
        }
    }
}
