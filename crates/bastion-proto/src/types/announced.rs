//! The announced variants Bastion serves (TS-0001 9.6.26; TS-0004 6.3.4.2.1): which
//! originals, their short names and JSON roots, and which children each may hold. An
//! announced variant is [`ResourceType::Announced`] holding its original's number; its own
//! number is that plus [`ANNOUNCED_OFFSET`].

use super::ResourceType;

/// What an announced variant's number adds to its original's.
pub(super) const ANNOUNCED_OFFSET: u16 = 10_000;

/// One served announced variant: the original's number, the short name and the root.
struct Served {
    original: u16,
    short: &'static str,
    root: &'static str,
}

const fn s(original: u16, short: &'static str, root: &'static str) -> Served {
    Served {
        original,
        short,
        root,
    }
}

/// The announced variants served here (docs/conformance.md, "Announced resources").
/// `<mgmtObjAnnc>`, `<flexContainerAnnc>` and `<flexContainerInstanceAnnc>` are
/// serialized under their specialization's announced name (`m2m:fwrA`, `cod:binShAnnc`:
/// [`super::ResourceType::root_of`], `crate::flex`); their generic roots here are what
/// a resource whose specialization is unknown is named by.
const SERVED: &[Served] = &[
    s(1, "acpA", "m2m:acpA"),
    s(2, "aeA", "m2m:aeA"),
    s(3, "cntA", "m2m:cntA"),
    s(4, "cinA", "m2m:cinA"),
    s(5, "cbA", "m2m:cbA"),
    s(9, "grpA", "m2m:grpA"),
    s(10, "lcpA", "m2m:lcpA"),
    s(13, "mgoA", "m2m:mgoA"),
    s(14, "nodA", "m2m:nodA"),
    s(16, "csrA", "m2m:csrA"),
    s(18, "schA", "m2m:schA"),
    s(28, "fcntA", "m2m:fcntA"),
    s(29, "tsA", "m2m:tsA"),
    s(30, "tsiA", "m2m:tsiA"),
    s(34, "dacA", "m2m:dacA"),
    s(58, "fciA", "m2m:fciA"),
];

fn served(original: u16) -> Option<&'static Served> {
    SERVED.iter().find(|s| s.original == original)
}

/// The announced variant numbered `n`, if it is served.
pub(super) fn from_number(n: u16) -> Option<ResourceType> {
    let original = n.checked_sub(ANNOUNCED_OFFSET)?;
    served(original).map(|s| ResourceType::Announced(s.original))
}

pub(super) fn short_name(original: u16) -> &'static str {
    served(original).map_or("", |s| s.short)
}

pub(super) fn root(original: u16) -> &'static str {
    served(original).map_or("", |s| s.root)
}

pub(super) fn from_root(root: &str) -> Option<ResourceType> {
    SERVED
        .iter()
        .find(|s| s.root == root)
        .map(|s| ResourceType::Announced(s.original))
}

/// Every served announced variant, in number order.
pub fn all() -> impl Iterator<Item = ResourceType> {
    SERVED.iter().map(|s| ResourceType::Announced(s.original))
}

/// Whether a resource of type `parent` holds an announced `child` of original `original`
/// (TS-0001 9.6.26): a variant whose parent was not announced sits under the
/// `<remoteCSE>` of the announcing CSE or under its `<CSEBaseAnnc>` (never an instance's
/// variant, `<contentInstanceAnnc>`, `<timeSeriesInstanceAnnc>` or
/// `<flexContainerInstanceAnnc>`: their container is always announced first); one whose
/// parent was announced sits under that parent's announced variant, where the original
/// parent holds the original child.
pub(super) fn allows_announced_child(parent: ResourceType, original: u16) -> bool {
    let Some(child) = ResourceType::from_number(u64::from(original)) else {
        return false;
    };
    match parent {
        // A CSE's own `<CSEBaseAnnc>` goes under the CSEBase of the target (TS-0001
        // 9.6.26, as ACME announces): its other copies may go under it.
        ResourceType::CseBase => child == ResourceType::CseBase,
        ResourceType::RemoteCse => !child.is_instance() && child != ResourceType::CseBase,
        // The announced tree mirrors the original one.
        ResourceType::Announced(p) => {
            ResourceType::from_number(u64::from(p)).is_some_and(|p| p.allows_child(child))
        }
        _ => false,
    }
}

/// Which originals an announced resource holds beside announced ones: a
/// `<subscription>` to it, and under an `<AEAnnc>` or `<containerAnnc>` the containers
/// and groups others create there (TS-0001 9.6.26).
pub(super) fn allows_original_child(original: u16, child: ResourceType) -> bool {
    use ResourceType::*;
    match (original, child) {
        (4 | 30 | 58, _) => false,
        (_, Subscription) => true,
        (2, Container | Group | AccessControlPolicy) | (3, Container) => true,
        _ => false,
    }
}
