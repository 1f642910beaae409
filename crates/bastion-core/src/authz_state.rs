//! The resources that feed access control besides `<accessControlPolicy>`: `<group>`
//! (members named in `acor`, TS-0001 9.6.13), `<role>` and `<token>` (the Role and Token
//! Repository of TS-0003 7.4) and `<dynamicAuthorizationConsultation>` (TS-0003 7.3.2.2).
//!
//! This module owns their typed state ([`GroupState`], [`RoleState`], [`TokenState`],
//! [`DacState`]) and how it is derived from the attributes: on CREATE and UPDATE, where
//! bad values are refused with the right response status code, and on start-up, where a
//! stored value that no longer validates (an expired token, a deleted member) simply
//! grants nothing.

pub use crate::state::{DacState, GroupState, RoleState, TokenState};
use crate::tree::{Node, Tree, TypeState};
use crate::CseConfig;
use bastion_policy::token::is_role_id;
use bastion_policy::{normalize_originator, LocalIdentity, TokenContext, TokenVerifier};
use bastion_proto::id::Address;
use bastion_proto::time::Timestamp;
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// Deepest nesting of groups followed when checking membership; deeper groups are not
/// resolved (and so grant nothing).
pub const MAX_GROUP_DEPTH: usize = 8;

/// `csy` values (TS-0004 `m2m:consistencyStrategy`).
const ABANDON_MEMBER: u64 = 1;
const ABANDON_GROUP: u64 = 2;
const SET_MIXED: u64 = 3;

/// Whether a write is being checked (errors refuse it) or a stored resource is being
/// reloaded (problems make the state grant nothing instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Write,
    Load,
}

/// Resolves an identifier to a resource of this CSE: unstructured (`ri`) or structured
/// (`cse-in/...`), CSE-relative, SP-relative or absolute. `None` for other CSEs' resources
/// and for anything that does not exist.
pub fn resolve_local<'t>(tree: &'t Tree, config: &CseConfig, id: &str) -> Option<&'t Node> {
    let rest = match Address::parse(id).ok()? {
        Address::CseRelative(rest) => rest,
        Address::SpRelative { cse_id, rest } if cse_id == config.cse_id => rest,
        Address::Absolute {
            sp_id,
            cse_id,
            rest,
        } if sp_id == config.sp_id && cse_id == config.cse_id => rest,
        _ => return None,
    };
    let mut segs = rest.split('/');
    let first = segs.next()?;
    let mut cur = if first == config.cse_name || first == "-" {
        tree.get(&tree.base)?
    } else {
        tree.get(first)?
    };
    for seg in segs {
        cur = tree.get(cur.child_names.get(seg)?)?;
    }
    Some(cur)
}

/// Whether `id` names a resource on another CSE (so it cannot be checked here).
pub(crate) fn is_remote(config: &CseConfig, id: &str) -> bool {
    match Address::parse(id) {
        Ok(Address::SpRelative { cse_id, .. }) => cse_id != config.cse_id,
        Ok(Address::Absolute { sp_id, cse_id, .. }) => {
            sp_id != config.sp_id || cse_id != config.cse_id
        }
        _ => false,
    }
}

/// Derives the state of a resource of type `ty` from its attributes, fixing up the
/// attributes the CSE owns (`cnm`, `mtv`, the token's claim copies). `Plain` for types
/// without such state.
#[allow(clippy::too_many_arguments)]
pub fn derive(
    tree: &Tree,
    config: &CseConfig,
    local: &LocalIdentity,
    verifier: &TokenVerifier,
    ty: ResourceType,
    attrs: &mut Map<String, Value>,
    now: Timestamp,
    mode: Mode,
) -> Result<TypeState, RequestError> {
    Ok(match ty {
        ResourceType::Group => {
            TypeState::Group(Box::new(group_state(tree, config, local, attrs, mode)?))
        }
        ResourceType::Role => TypeState::Role(Box::new(role_state(local, attrs)?)),
        ResourceType::Token => TypeState::Token(Box::new(token_state(verifier, attrs, now)?)),
        ResourceType::DynamicAuthorizationConsultation => {
            TypeState::Dac(Box::new(dac_state(attrs)?))
        }
        _ => TypeState::Plain,
    })
}

/// `<group>` member validation (TS-0001 9.6.13, 10.2.7.1; core-resources.md §3.8):
/// duplicates are dropped, `mnm` bounds `mid` (6010), and when `mt` is not mixed every
/// local member must be of that type, a mismatch (or a member that does not exist)
/// handled per `csy`. `cnm` and `mtv` are set by the CSE.
fn group_state(
    tree: &Tree,
    config: &CseConfig,
    local: &LocalIdentity,
    attrs: &mut Map<String, Value>,
    mode: Mode,
) -> Result<GroupState, RequestError> {
    let mnm = attrs.get("mnm").and_then(Value::as_u64).unwrap_or(0);
    let mut mt = attrs.get("mt").and_then(Value::as_u64).unwrap_or(0);
    let csy = attrs
        .get("csy")
        .and_then(Value::as_u64)
        .unwrap_or(ABANDON_MEMBER);
    if mode == Mode::Write {
        if !(ABANDON_MEMBER..=SET_MIXED).contains(&csy) {
            return Err(RequestError::bad_request("csy must be 1, 2 or 3"));
        }
        if mt != 0 && ResourceType::from_number(mt).is_none() {
            return Err(RequestError::bad_request("mt is not a resource type"));
        }
    }
    let mut seen = HashSet::new();
    let mut kept: Vec<String> = Vec::new();
    let mut state = GroupState::default();
    let requested: Vec<String> = attrs
        .get("mid")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for id in requested {
        if !seen.insert(id.clone()) {
            continue;
        }
        // `.../fopt` names a sub-group's fan-out point; membership follows the group.
        let base = id.strip_suffix("/fopt").unwrap_or(&id);
        if is_remote(config, base) {
            state.has_remote = true;
            kept.push(id);
            continue;
        }
        let member = resolve_local(tree, config, base);
        let fits = member.is_some_and(|m| mt == 0 || u64::from(m.ty.number()) == mt);
        if !fits {
            match (mode, csy) {
                (Mode::Load, _) | (_, ABANDON_MEMBER) => continue,
                (_, ABANDON_GROUP) => {
                    return Err(RequestError::GroupMemberTypeInconsistent(
                        format!("member {} is missing or not of type {mt}", shown(&id)).into(),
                    ))
                }
                _ => mt = 0,
            }
        }
        let Some(member) = member else { continue };
        match member.ty {
            ResourceType::Ae => {
                let aei = member
                    .attrs
                    .get("aei")
                    .and_then(Value::as_str)
                    .unwrap_or(&member.ri);
                state
                    .aes
                    .insert(normalize_originator(local, aei).into(), member.seq);
            }
            ResourceType::Group => state.subgroups.push((member.ri.clone(), member.seq)),
            _ => {}
        }
        kept.push(id);
    }
    if mode == Mode::Write && kept.len() as u64 > mnm {
        return Err(RequestError::MaxMembersExceeded(
            "more members than maxNrOfMembers".into(),
        ));
    }
    attrs.insert("mt".into(), Value::from(mt));
    attrs.insert("csy".into(), Value::from(csy));
    attrs.insert("cnm".into(), Value::from(kept.len()));
    attrs.insert(
        "mid".into(),
        Value::Array(kept.into_iter().map(Value::String).collect()),
    );
    attrs.insert("mtv".into(), Value::Bool(true));
    Ok(state)
}

/// `<role>` (TS-0003 7.4.1): a well-formed Role-ID and a non-empty validity window.
fn role_state(
    local: &LocalIdentity,
    attrs: &Map<String, Value>,
) -> Result<RoleState, RequestError> {
    let text = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or("");
    let time = |k: &str| {
        attrs
            .get(k)
            .and_then(Value::as_str)
            .and_then(Timestamp::parse)
            .map(|t| t.0)
            .ok_or_else(|| RequestError::bad_request(format!("{k} must be a timestamp")))
    };
    let role_id = match text("rlid").split_once('@') {
        Some((relative, fqdn)) => format!("{relative}@{}", fqdn.to_ascii_lowercase()),
        None => String::new(),
    };
    if !is_role_id(&role_id) {
        return Err(RequestError::bad_request(
            "rlid must be a Role-ID: relative-id@issuer-fqdn",
        ));
    }
    let (issuer, holder) = (text("tkis"), text("tkhd"));
    if issuer.is_empty() || holder.is_empty() {
        return Err(RequestError::bad_request("tkis and tkhd must not be empty"));
    }
    let (not_before, not_after) = (time("tknb")?, time("tkna")?);
    if not_after <= not_before {
        return Err(RequestError::bad_request("tkna must be later than tknb"));
    }
    Ok(RoleState {
        role_id: role_id.into(),
        issuer: normalize_originator(local, issuer),
        holder: normalize_originator(local, holder),
        not_before,
        not_after,
    })
}

impl RoleState {
    /// Whether the role counts for `holder` (absolute form) at `now`, given the trusted
    /// role authorities (absolute form).
    pub fn valid_for(&self, holder: &str, now: i64, authorities: &[String]) -> bool {
        self.holder == holder
            && self.not_before <= now
            && now < self.not_after
            && authorities.contains(&self.issuer)
    }
}

/// `<token>` (TS-0003 7.4): `tkob` must verify against a configured issuer now; the
/// plain-text claim copies are then written from the verified claims.
fn token_state(
    verifier: &TokenVerifier,
    attrs: &mut Map<String, Value>,
    now: Timestamp,
) -> Result<TokenState, RequestError> {
    let jwt = attrs.get("tkob").and_then(Value::as_str).unwrap_or("");
    // The holder is checked when the token is used; here it is taken from the token so
    // that every other check (signature, issuer, audience, window) runs now.
    let holder = bastion_policy::token::unverified_holder(jwt).unwrap_or_default();
    let token = verifier
        .verify(
            jwt,
            &TokenContext {
                now: now.0,
                originator: &holder,
            },
        )
        .map_err(|e| RequestError::bad_request(format!("tkob rejected: {}", e.reason())))?;
    if let Some(tkid) = attrs.get("tkid").and_then(Value::as_str) {
        if tkid != token.token_id {
            return Err(RequestError::bad_request(
                "tkid differs from the token's jti",
            ));
        }
    }
    attrs.insert("tkid".into(), Value::String(token.token_id.clone()));
    attrs.insert("vr".into(), Value::String(token.version.clone()));
    attrs.insert("tkis".into(), Value::String(token.issuer.clone()));
    attrs.insert("tkhd".into(), Value::String(token.holder.clone()));
    attrs.insert(
        "tknb".into(),
        Value::String(Timestamp(token.not_before).format()),
    );
    attrs.insert(
        "tkna".into(),
        Value::String(Timestamp(token.not_after).format()),
    );
    if !token.audience.is_empty() {
        attrs.insert(
            "tkau".into(),
            Value::Array(token.audience.iter().cloned().map(Value::String).collect()),
        );
    }
    Ok(TokenState {
        token: Arc::new(token),
    })
}

/// `<dynamicAuthorizationConsultation>`: `dap` entries must be http(s) URLs.
fn dac_state(attrs: &Map<String, Value>) -> Result<DacState, RequestError> {
    let enabled = attrs.get("dae").and_then(Value::as_bool).unwrap_or(false);
    let poa: Vec<String> = attrs
        .get("dap")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if poa
        .iter()
        .any(|u| !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 2048)
    {
        return Err(RequestError::bad_request(
            "dap entries must be http:// or https:// URLs",
        ));
    }
    let lifetime = attrs
        .get("dal")
        .and_then(Value::as_str)
        .and_then(Timestamp::parse);
    Ok(DacState {
        enabled,
        poa,
        lifetime,
    })
}

fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Is `originator` (absolute form) a member of `group`, following sub-groups up to
/// [`MAX_GROUP_DEPTH`] and never visiting a group twice? `None` when the answer depends
/// on a group that could not be resolved (too deep, or gone).
pub fn is_member(tree: &Tree, group: &Node, originator: &str) -> Option<bool> {
    let mut visited: Vec<&str> = Vec::new();
    member_at(tree, group, originator, 0, &mut visited)
}

fn member_at<'t>(
    tree: &'t Tree,
    group: &'t Node,
    originator: &str,
    depth: usize,
    visited: &mut Vec<&'t str>,
) -> Option<bool> {
    let state = group.group()?;
    if depth > MAX_GROUP_DEPTH {
        return None;
    }
    visited.push(&group.ri);
    if let Some(seq) = state.aes.get(originator) {
        let ae_ri = originator.rsplit('/').next().unwrap_or("");
        if tree.get(ae_ri).is_some_and(|ae| ae.seq == *seq) {
            return Some(true);
        }
    }
    let mut unresolved = state.has_remote;
    for (ri, seq) in &state.subgroups {
        if visited.contains(&&**ri) {
            continue; // a cycle: this group is already being searched
        }
        // A sub-group deleted (or re-created) since is no longer a member.
        if let Some(sub) = tree.get(ri).filter(|g| g.seq == *seq) {
            match member_at(tree, sub, originator, depth + 1, visited) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => unresolved = true,
            }
        }
    }
    if unresolved {
        None
    } else {
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Ri;
    use serde_json::json;

    fn local(config: &CseConfig) -> LocalIdentity {
        LocalIdentity {
            sp_id: config.sp_id.clone(),
            cse_id: config.cse_id.clone(),
            admin: config.admin.clone(),
        }
    }

    /// A tree with the AE `Cm1` and a group `g` whose `mid` is `mid`.
    fn tree_with_group(config: &CseConfig, mid: Value) -> Tree {
        let base_ri: Ri = Arc::from(config.cse_ri());
        let base = Node::new(
            ResourceType::CseBase,
            config.cse_ri(),
            None,
            config.cse_name.clone(),
            config.cse_name.clone(),
            1,
            Map::new(),
            None,
            None,
        );
        let mut tree = Tree::new(base, 1);
        let ae_attrs = json!({"aei": "Cm1"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let seq = tree.next_seq();
        tree.insert(Node::new(
            ResourceType::Ae,
            "Cm1",
            Some(base_ri.clone()),
            "Cm1".into(),
            "cse-in/Cm1".into(),
            seq,
            ae_attrs,
            None,
            None,
        ));
        let mut attrs = json!({"mnm": 10, "mid": mid})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let verifier = TokenVerifier::new(local(config));
        let state = derive(
            &tree,
            config,
            &local(config),
            &verifier,
            ResourceType::Group,
            &mut attrs,
            Timestamp(0),
            Mode::Write,
        )
        .expect("valid group");
        let seq = tree.next_seq();
        let mut g = Node::new(
            ResourceType::Group,
            "g",
            Some(base_ri),
            "g".into(),
            "cse-in/g".into(),
            seq,
            attrs,
            None,
            None,
        );
        g.state = state;
        tree.insert(g);
        tree
    }

    #[test]
    fn ts0001_9_6_13_members_on_other_cses_never_grant() {
        let config = CseConfig::default();
        let tree = tree_with_group(
            &config,
            json!(["Cm1", "/id-other/Cx", "//sp2.example/c/Cy"]),
        );
        let group = tree.get("g").expect("group");
        // Kept in mid, but they cannot be evaluated here: unknown, which denies.
        assert_eq!(group.attrs["cnm"], 3);
        assert_eq!(
            is_member(&tree, group, "//bastion.example/id-other/Cx"),
            None
        );
        assert_eq!(is_member(&tree, group, "//sp2.example/c/Cy"), None);
        // A local member still is one.
        assert_eq!(
            is_member(&tree, group, "//bastion.example/id-in/Cm1"),
            Some(true)
        );
        let local_only = tree_with_group(&config, json!(["Cm1"]));
        let group = local_only.get("g").expect("group");
        assert_eq!(
            is_member(&local_only, group, "//bastion.example/id-in/Cz"),
            Some(false)
        );
    }
}
