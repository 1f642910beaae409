//! Representation: how resources are serialized for clients (wrapped in `m2m:<type>`,
//! TS-0004 §8.4) and for the store (attributes plus internal `@` members), and how
//! partial RETRIEVE (`atrl`) trims them, and what a client of an older release is shown.

use bastion_proto::attrs;
use bastion_proto::attrs::release::{self, Release};
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};

/// Internal members in a stored body start with this character, which no oneM2M short
/// name contains; they never reach a client.
const INTERNAL: char = '@';
const CREATOR: &str = "@cr";
/// A `<subscription>` whose subscriber was authenticated when it subscribed.
const SUBSCRIBER_AUTHENTICATED: &str = "@sa";

/// The identity of the security association an `<AE>` or `<remoteCSE>` registered over.
const BOUND: &str = "@ba";

/// Adds to a stored body the association its registration was bound to.
pub(crate) fn mark_bound(body: &mut String, identity: &str) {
    if body.ends_with('}') && body.len() > 2 {
        body.pop();
        body.push(',');
        body.push_str(&serde_json::to_string(BOUND).unwrap_or_default());
        body.push(':');
        body.push_str(&serde_json::to_string(identity).unwrap_or_default());
        body.push('}');
    }
}

/// The association a stored `<AE>` or `<remoteCSE>` was registered over, if any.
pub(crate) fn bound_identity(body: &str) -> Option<String> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get(BOUND)?
        .as_str()
        .map(str::to_owned)
}

/// Where a resource's announced copies live (`announce.rs`), as target → copy.
const ANNOUNCED: &str = "@an";

/// Adds to a stored body where the resource's announced copies live.
pub(crate) fn mark_announced(body: &mut String, copies: &[(Box<str>, Box<str>)]) {
    if body.ends_with('}') && body.len() > 2 && !copies.is_empty() {
        let map: Map<String, Value> = copies
            .iter()
            .map(|(target, copy)| (target.to_string(), Value::String(copy.to_string())))
            .collect();
        body.pop();
        body.push(',');
        body.push_str(&serde_json::to_string(ANNOUNCED).unwrap_or_default());
        body.push(':');
        body.push_str(&serde_json::to_string(&map).unwrap_or_default());
        body.push('}');
    }
}

/// The announced copies a stored body records.
pub(crate) fn announced_copies(body: &str) -> Vec<(Box<str>, Box<str>)> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let Some(Value::Object(copies)) = map.remove(ANNOUNCED) else {
        return Vec::new();
    };
    copies
        .into_iter()
        .filter_map(|(target, copy)| Some((target.into(), copy.as_str()?.into())))
        .collect()
}

/// The announcement actions a resource still owes its targets (`announce.rs`).
const PENDING: &str = "@ap";

/// Adds to a stored body the announcement actions still pending for the resource.
pub(crate) fn mark_pending(body: &mut String, pending: &[crate::tree::Pending]) {
    if body.ends_with('}') && body.len() > 2 && !pending.is_empty() {
        let list: Vec<Value> = pending.iter().map(crate::tree::Pending::stored).collect();
        body.pop();
        body.push(',');
        body.push_str(&serde_json::to_string(PENDING).unwrap_or_default());
        body.push(':');
        body.push_str(&serde_json::to_string(&list).unwrap_or_default());
        body.push('}');
    }
}

/// The pending announcement actions a stored body records.
pub(crate) fn pending_announcements(body: &str) -> Vec<crate::tree::Pending> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let Some(Value::Array(list)) = map.remove(PENDING) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(crate::tree::Pending::from_stored)
        .collect()
}

/// Marks a stored body: its subscriber was authenticated (`acaf` rules keep applying to
/// its notifications after a restart).
pub(crate) fn mark_subscriber_authenticated(body: &mut String) {
    if body.ends_with('}') && body.len() > 2 {
        body.pop();
        body.push_str(",\"@sa\":true}");
    }
}

/// Whether a stored body carries that mark.
pub(crate) fn subscriber_authenticated(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get(SUBSCRIBER_AUTHENTICATED).and_then(Value::as_bool))
        .unwrap_or(false)
}

/// Response content as a client of `release` sees it: without the attributes its
/// release does not define (the table is `bastion_proto::attrs::release`).
pub(crate) fn for_release(release: Release, content: &mut Value) {
    release::shape_for(release, content);
}

/// `{root: attrs}`: a resource under the name `types::root_of` found for it (a
/// `<flexContainer>`'s specialization), without the write-only values of a `<mgmtObj>`
/// specialization ([`for_client`]).
pub(crate) fn wrap_as(root: &str, mut attrs: Map<String, Value>) -> Value {
    for_client(root, &mut attrs);
    let mut wrapped = Map::with_capacity(1);
    wrapped.insert(root.to_owned(), Value::Object(attrs));
    Value::Object(wrapped)
}

/// A resource's attributes as anyone but the store sees them, under its `root`: the
/// write-only values of a `<mgmtObj>` specialization (`wcrds/pwd`, `crse`, ...) removed.
/// Every representation leaving the CSE (a response, a nested child, a notification)
/// is built through here (docs/decisions.md, "Secret-valued attributes").
pub(crate) fn for_client(root: &str, attrs: &mut Map<String, Value>) {
    attrs::mgmt::strip_secrets_of_root(root, attrs);
}

/// A request's content (`{root: attrs}`) as kept where others may read it back (the
/// `pc` of a `<request>` resource): each representation through [`for_client`].
pub(crate) fn content_for_client(pc: &Value) -> Value {
    let mut pc = pc.clone();
    if let Value::Object(roots) = &mut pc {
        for (root, attrs) in roots.iter_mut() {
            if let Value::Object(attrs) = attrs {
                for_client(root, attrs);
            }
        }
    }
    pc
}

/// The stored body: the attributes plus the internal creator.
pub(crate) fn store_body(attrs: &Map<String, Value>, creator: Option<&str>) -> String {
    let mut out = serde_json::to_string(attrs).unwrap_or_else(|_| "{}".to_owned());
    if let Some(cr) = creator {
        // Appending one member to the serialized object avoids cloning the map.
        out.pop();
        if !attrs.is_empty() {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(CREATOR).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(cr).unwrap_or_default());
        out.push('}');
    }
    out
}

/// Splits a stored body into client attributes and the internal creator.
pub(crate) fn parse_body(body: &str) -> Result<(Map<String, Value>, Option<String>), String> {
    let value: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let Value::Object(mut map) = value else {
        return Err("body is not an object".into());
    };
    let creator = match map.remove(CREATOR) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    map.retain(|k, _| !k.starts_with(INTERNAL));
    Ok((map, creator))
}

/// Keeps only the attributes named in `atrl` (partial RETRIEVE). Naming something that
/// is not an attribute of the type, or not one in the request's `release`, is a bad
/// request.
pub(crate) fn partial(
    ty: ResourceType,
    attrs: &Map<String, Value>,
    atrl: &[String],
    release: Option<Release>,
) -> Result<Map<String, Value>, RequestError> {
    let mut out = Map::new();
    for name in atrl {
        if !attrs::is_attribute(ty, name) {
            return Err(RequestError::bad_request(format!(
                "{name} is not an attribute of {}",
                ty.short_name()
            )));
        }
        if let Some(release) = release.filter(|r| !release::defines(*r, ty, name)) {
            return Err(RequestError::bad_request(format!(
                "{name} is not defined in release {}",
                release.rvi()
            )));
        }
        if let Some(v) = attrs.get(name) {
            out.insert(name.clone(), v.clone());
        }
    }
    Ok(out)
}

/// The attribute list of a partial RETRIEVE given as content `{"m2m:atrl": [...]}`.
pub(crate) fn atrl_from_content(pc: &Value) -> Result<Vec<String>, RequestError> {
    let list = pc
        .as_object()
        .filter(|m| m.len() == 1)
        .and_then(|m| m.get("m2m:atrl"))
        .and_then(Value::as_array)
        .ok_or_else(|| RequestError::bad_request("RETRIEVE content must be m2m:atrl"))?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| RequestError::bad_request("m2m:atrl must list attribute names"))
        })
        .collect()
}

/// A child reference `{"nm","typ","val"}` (rcn 5/6).
pub(crate) fn child_ref(rn: &str, ty: u16, address: &str) -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("nm".into(), Value::String(rn.to_owned()));
    m.insert("typ".into(), Value::from(ty));
    m.insert("val".into(), Value::String(address.to_owned()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_body_round_trip_hides_internal_members() {
        let attrs = json!({"rn":"a","ri":"x"}).as_object().unwrap().clone();
        let body = store_body(&attrs, Some("Cme"));
        let (back, cr) = parse_body(&body).unwrap();
        assert_eq!(back, attrs);
        assert_eq!(cr.as_deref(), Some("Cme"));
        let (_, none) = parse_body(&store_body(&Map::new(), None)).unwrap();
        assert_eq!(none, None);
        let (empty, cr) = parse_body(&store_body(&Map::new(), Some("C1"))).unwrap();
        assert!(empty.is_empty());
        assert_eq!(cr.as_deref(), Some("C1"));
    }

    #[test]
    fn association_binding_is_kept_but_never_shown() {
        let attrs = json!({"rn":"a","aei":"Cabc"}).as_object().unwrap().clone();
        let mut body = store_body(&attrs, Some("Cabc"));
        assert_eq!(bound_identity(&body), None);
        mark_bound(&mut body, "12-dev@bastion.example");
        assert_eq!(
            bound_identity(&body).as_deref(),
            Some("12-dev@bastion.example")
        );
        let (back, cr) = parse_body(&body).unwrap();
        assert_eq!(back, attrs);
        assert_eq!(cr.as_deref(), Some("Cabc"));
    }
}
