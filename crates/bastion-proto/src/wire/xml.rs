//! XML (TS-0004 §8.3 and its XSD files): the root element is the content's one root
//! member, in the `m2m` namespace (`<m2m:cin xmlns:m2m="…">`); members are unqualified
//! child elements named by their short names; child resources and other `m2m:` members
//! keep their prefix. As in the schemas, a resource's `rn` is an XML attribute, a list of
//! simple values is one element holding them space-separated (`<lbl>a b</lbl>`), a list
//! of complex values is the element repeated, and null is `xsi:nil="true"`. A
//! `<flexContainer>` or `<flexContainerInstance>` is an element named by its
//! specialization (`<cod:binSh xmlns:cod="…">`): read by the prefix as written, written
//! with the namespace its definition gives (docs/flex.md).
//!
//! XML text carries no types, so reading needs a table: the attribute policies of
//! [`crate::attrs`] for resource attributes, the installed specializations
//! ([`crate::flex::installed`]) for custom attributes, [`MEMBERS`] for the members of
//! complex types and [`ROOTS`] for non-resource roots. A number or boolean that does not parse
//! stays text, so the attribute checks report it like a mistyped JSON value. `con` and
//! other values of any type read back as text. DOCTYPEs are refused (no entity
//! expansion), nesting is bounded by [`MAX_DEPTH`], and so is the element count by the
//! body size the binding accepts.

use super::{short, Serialization, WireError, MAX_DEPTH};
use crate::attrs::{self, Kind};
use crate::flex::{self, Specialization};
use crate::types::ResourceType;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use serde_json::{Map, Value};

const XML: Serialization = Serialization::Xml;

/// The oneM2M protocol namespace (TS-0004 §8.3).
pub const M2M_NS: &str = "http://www.onem2m.org/xml/protocols";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// How an element's content is typed when read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XKind {
    Str,
    Int,
    Bool,
    StrList,
    IntList,
    /// Space-separated booleans, `true`/`false` or `1`/`0` (`lda` of `[cmdhLimits]`).
    BoolList,
    /// One element with child elements.
    Obj,
    /// Repeated elements, each with child elements: always a JSON array.
    ObjList,
    /// Repeated elements, each holding one text value that may contain spaces (a
    /// schedule): always a JSON array of strings.
    TextList,
    /// A number, whole or not (custom attributes of kind `float`).
    Num,
    /// Text, or child elements when it has some.
    Any,
    /// `cr`: empty is null (a CREATE asking for the creator), else text.
    CreatorNull,
}

/// Members of complex data types (TS-0004 §6.3.5), by short name: short names are unique
/// across the complex types Bastion reads, so one table serves them all.
const MEMBERS: &[(&str, XKind)] = &[
    // setOfAcrs (pv, pvs) and accessControlRule
    ("pv", XKind::Obj),
    ("pvs", XKind::Obj),
    ("acr", XKind::ObjList),
    ("acor", XKind::StrList),
    ("acop", XKind::Int),
    ("acco", XKind::ObjList),
    ("actw", XKind::TextList),
    ("acip", XKind::Obj),
    ("ipv4", XKind::StrList),
    ("ipv6", XKind::StrList),
    ("aclr", XKind::Obj),
    ("accc", XKind::StrList),
    ("acaf", XKind::Bool),
    ("aca", XKind::StrList),
    // eventNotificationCriteria (enc)
    ("net", XKind::IntList),
    ("om", XKind::ObjList),
    ("ops", XKind::Int),
    ("org", XKind::Str),
    ("atr", XKind::StrList),
    ("chty", XKind::IntList),
    ("crb", XKind::Str),
    ("cra", XKind::Str),
    ("ms", XKind::Str),
    ("us", XKind::Str),
    ("sts", XKind::Int),
    ("stb", XKind::Int),
    ("exb", XKind::Str),
    ("exa", XKind::Str),
    ("sza", XKind::Int),
    ("szb", XKind::Int),
    // timeSeriesNotification (m2m:tsn) and the missingData condition (md)
    ("m2m:tsn", XKind::Obj),
    ("mdlt", XKind::StrList),
    ("mdc", XKind::Int),
    ("md", XKind::Obj),
    // eventNotificationCriteriaSet (encs) of a <crossResourceSubscription>
    ("encs", XKind::Obj),
    // batchNotify (bn), rateLimit (rl)
    ("num", XKind::Int),
    ("dur", XKind::Str),
    ("mnn", XKind::Int),
    ("tww", XKind::Str),
    // notification (m2m:sgn) and aggregatedNotification (m2m:agn)
    ("nev", XKind::Obj),
    ("rep", XKind::Any),
    ("sur", XKind::Str),
    ("vrq", XKind::Bool),
    ("sud", XKind::Bool),
    ("cr", XKind::Str),
    ("m2m:sgn", XKind::ObjList),
    // childResourceRef (ch, rrf), resource creation (m2m:rce)
    ("ch", XKind::ObjList),
    ("rrf", XKind::ObjList),
    ("nm", XKind::Str),
    ("typ", XKind::Int),
    ("val", XKind::Str),
    ("uri", XKind::Str),
    // <CSEBase> supported resource types
    ("srt", XKind::IntList),
    // response primitives of m2m:agr
    ("m2m:rsp", XKind::ObjList),
    ("rsc", XKind::Int),
    ("rqi", XKind::Str),
    ("rvi", XKind::Str),
    ("pc", XKind::Any),
    ("to", XKind::Str),
    ("fr", XKind::Str),
    ("ot", XKind::Str),
    ("op", XKind::Int),
    // scheduleEntries (`se` of <schedule>): each entry holds spaces
    ("se", XKind::Obj),
    ("sce", XKind::TextList),
    // m2m:actionStatus of the <mgmtObj> specializations (TS-0004 6.3.5.14)
    ("uds", XKind::Obj),
    ("ins", XKind::Obj),
    ("acts", XKind::Obj),
    ("cas", XKind::Obj),
    ("acn", XKind::Str),
    ("sus", XKind::Int),
    // deletionContexts (dr of <policyDeletionRules>) and the target-removal members of
    // a notification (TS-0004 6.3.5.37, 6.3.5.13)
    ("tod", XKind::TextList),
    ("lr", XKind::ObjList),
    ("ntt", XKind::Str),
    ("trr", XKind::Bool),
    ("tra", XKind::Bool),
    // m2m:backOffParameters of [cmdhNwAccessRule] (TS-0004 6.3.5.54); the links of a
    // `cmlk` are childResourceRef-shaped (nm, typ, val above)
    ("bops", XKind::ObjList),
    ("nwa", XKind::Int),
    ("ibt", XKind::Int),
    ("abt", XKind::Int),
    ("mbt", XKind::Int),
    ("rbt", XKind::Int),
    // TS-0022 specializations: dcfg:wifiCredentials (wcrds), m2m:ipAddress entries of
    // ipad/ripa, the scheduleEntries of rpsc/mesc (their sce above)
    ("enct", XKind::Int),
    ("unm", XKind::Str),
    ("pwd", XKind::Str),
    ("wepk", XKind::Str),
    ("wpap", XKind::Str),
    ("ip4", XKind::Str),
    ("ip6", XKind::Str),
    ("rpsc", XKind::Obj),
    ("mesc", XKind::Obj),
];

/// Roots that are not resources (TS-0004 §6.3.5, §7.2.1).
const ROOTS: &[(&str, XKind)] = &[
    ("m2m:dbg", XKind::Str),
    ("m2m:uri", XKind::Str),
    ("m2m:uril", XKind::StrList),
    ("m2m:atrl", XKind::StrList),
    // a request primitive delivered through <pollingChannelURI>, or all of them
    ("m2m:rqp", XKind::Obj),
    ("m2m:agrq", XKind::Obj),
];

/// Members whose type depends on the element holding them: (parent, member, kind).
const MEMBERS_IN: &[(&str, &str, XKind)] = &[
    // eventNotificationCriteria's `net` is a list; a notification event's is one value.
    ("nev", "net", XKind::Int),
    // A criteria set repeats eventNotificationCriteria.
    ("encs", "enc", XKind::ObjList),
    // A request's content holds one notification; only m2m:agn repeats them.
    ("pc", "m2m:sgn", XKind::Obj),
    // The content of a whole primitive (`wire::primitive`) holds what a body's root
    // would: the same types one level down.
    ("pc", "m2m:uril", XKind::StrList),
    ("pc", "m2m:atrl", XKind::StrList),
    ("pc", "m2m:dbg", XKind::Str),
    ("pc", "m2m:uri", XKind::Str),
    // An aggregated request repeats request primitives.
    ("m2m:agrq", "m2m:rqp", XKind::ObjList),
];

/// Lists of complex values that may be empty: XML writes an empty one as no elements,
/// so reading the parent without any puts the empty list back: (parent, member).
const EMPTY_LISTS: &[(&str, &str)] = &[("pv", "acr"), ("pvs", "acr")];

fn member_kind(name: &str) -> Option<XKind> {
    MEMBERS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

fn member_kind_in(parent: &str, name: &str) -> Option<XKind> {
    MEMBERS_IN
        .iter()
        .find(|(p, n, _)| *p == parent && *n == name)
        .map(|(_, _, k)| *k)
        .or_else(|| member_kind(name))
}

fn from_attr_kind(kind: Kind) -> Option<XKind> {
    Some(match kind {
        Kind::Str | Kind::Timestamp | Kind::ContentInfo | Kind::Originator => XKind::Str,
        Kind::NonNegInt
        | Kind::PositiveInt
        | Kind::Range(..)
        | Kind::Int
        | Kind::LocationSource
        | Kind::EventCat
        | Kind::Millis => XKind::Int,
        Kind::Bool => XKind::Bool,
        Kind::StrList | Kind::Labels | Kind::Serializations | Kind::Durations => XKind::StrList,
        Kind::EventCats | Kind::EventCatsWithDef | Kind::MinMax | Kind::Suids => XKind::IntList,
        Kind::WifiCredentials => XKind::Obj,
        Kind::IpAddresses => XKind::ObjList,
        Kind::Booleans => XKind::BoolList,
        Kind::MgmtLinks => XKind::ObjList,
        Kind::BackOff => XKind::Obj,
        Kind::CreatorNull => XKind::CreatorNull,
        // Complex and free values: the member table knows more where it can.
        Kind::Number => XKind::Num,
        Kind::Object | Kind::Any => return None,
    })
}

/// The resource type whose root element is `name` (`m2m:cnt`).
fn type_by_root(name: &str) -> Option<ResourceType> {
    if !name.starts_with("m2m:") {
        return None;
    }
    ResourceType::from_root(name)
}

/// A resource an element holds: one of a type, or a `<flexContainer>` or
/// `<flexContainerInstance>` under a specialization's name (`cod:binSh`), whose members
/// are typed by the specialization when it is known ([`flex::installed`]).
#[derive(Clone, Copy)]
enum Res {
    Type(ResourceType),
    Flex(Option<&'static Specialization>),
    /// A `<flexContainerAnnc>` or `<flexContainerInstanceAnnc>` (both `cod:binShAnnc`),
    /// typed by the specialization too.
    FlexAnnc(&'static Specialization),
}

/// The prefix of a specialization's name: `cod` of `cod:binSh`; `None` for `m2m:` and
/// unprefixed names.
fn flex_prefix(name: &str) -> Option<&str> {
    name.split_once(':')
        .map(|(prefix, _)| prefix)
        .filter(|p| *p != "m2m")
}

/// The resource held by an element named `name`, if it holds one.
fn resource_by_root(name: &str) -> Option<Res> {
    match type_by_root(name) {
        Some(ty) => Some(Res::Type(ty)),
        None if flex_prefix(name).is_some() => {
            let specs = flex::installed();
            Some(match (specs.by_root(name), specs.by_announced_root(name)) {
                (None, Some(spec)) => Res::FlexAnnc(spec),
                (spec, _) => Res::Flex(spec.map(|s| &**s)),
            })
        }
        None => None,
    }
}

/// How member `key` of resource `res` is typed.
fn attribute_kind(res: Res, key: &str) -> Option<XKind> {
    match res {
        Res::Type(t) => attrs::find(t, key).and_then(|d| from_attr_kind(d.kind)),
        Res::FlexAnnc(spec) => [
            ResourceType::FlexContainer,
            ResourceType::FlexContainerInstance,
        ]
        .into_iter()
        .filter_map(ResourceType::announced)
        .find_map(|a| attrs::find(a, key))
        .map(|d| d.kind)
        .or_else(|| spec.attribute(key).map(|a| a.kind))
        .and_then(from_attr_kind),
        Res::Flex(spec) => attrs::find(ResourceType::FlexContainer, key)
            .or_else(|| attrs::find(ResourceType::FlexContainerInstance, key))
            .map(|d| d.kind)
            .or_else(|| spec?.attribute(key).map(|a| a.kind))
            .and_then(from_attr_kind),
    }
}

// ---------------------------------------------------------------------------------
// Encoding

pub(super) fn encode(pc: &Value) -> Result<Vec<u8>, WireError> {
    let not = |why: &str| Err(WireError::NotRepresentable(XML, why.to_owned()));
    let Some((name, value)) = pc
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        return not("XML content needs exactly one root member");
    };
    if !name.starts_with("m2m:") && flex_prefix(name).is_none() {
        return not("the XML root must be an m2m: name or a specialization's");
    }
    if value.is_array() && !is_simple_list(value) {
        return not("the XML root cannot be a list of complex values");
    }
    let mut decl = format!(" xmlns:m2m=\"{M2M_NS}\"");
    let mut prefixes = Vec::new();
    flex_prefixes(name, value, &mut prefixes, 0);
    for prefix in prefixes {
        let ns = flex::installed().namespace_of(prefix);
        decl.push_str(&format!(
            " xmlns:{prefix}=\"{}\"",
            quick_xml::escape::escape(ns.as_str())
        ));
    }
    if has_null(value) {
        decl.push_str(&format!(" xmlns:xsi=\"{XSI_NS}\""));
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    write_element(&mut out, name, value, &decl, 0)?;
    Ok(out.into_bytes())
}

/// The specialization prefixes element names in `value` (and `name`) use, each once,
/// to be declared on the root element.
fn flex_prefixes<'a>(name: &'a str, value: &'a Value, out: &mut Vec<&'a str>, depth: usize) {
    if let Some(prefix) = flex_prefix(name) {
        if !out.contains(&prefix) {
            out.push(prefix);
        }
    }
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                flex_prefixes(key, member, out, depth + 1);
            }
        }
        Value::Array(items) => {
            for item in items {
                flex_prefixes("", item, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.iter().any(has_null),
        Value::Object(m) => m.values().any(has_null),
        _ => false,
    }
}

fn is_simple_list(v: &Value) -> bool {
    v.as_array().is_some_and(|items| {
        items
            .iter()
            .all(|i| matches!(i, Value::String(_) | Value::Number(_) | Value::Bool(_)))
    })
}

/// An element name Bastion writes: a short name, or a prefix (`m2m:`, a
/// specialization's) and one.
fn check_name(name: &str) -> Result<(), WireError> {
    let plain = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let ok = match name.split_once(':') {
        Some((prefix, local)) => plain(prefix) && plain(local),
        None => plain(name),
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::NotRepresentable(
            XML,
            format!("member name {} is not an XML name", short(name)),
        ))
    }
}

fn write_element(
    out: &mut String,
    name: &str,
    value: &Value,
    attrs: &str,
    depth: usize,
) -> Result<(), WireError> {
    check_name(name)?;
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep(XML));
    }
    match value {
        Value::Null => {
            out.push_str(&format!("<{name}{attrs} xsi:nil=\"true\"/>"));
        }
        Value::Object(members) => {
            let rn = members
                .get("rn")
                .and_then(Value::as_str)
                .filter(|_| resource_by_root(name).is_some());
            out.push('<');
            out.push_str(name);
            out.push_str(attrs);
            if let Some(rn) = rn {
                out.push_str(" rn=\"");
                out.push_str(&quick_xml::escape::escape(rn));
                out.push('"');
            }
            out.push('>');
            for (key, member) in members {
                if key == "rn" && rn.is_some() {
                    continue;
                }
                let repeated = matches!(member_kind(key), Some(XKind::TextList | XKind::ObjList));
                match member {
                    Value::Array(_) if repeated || !is_simple_list(member) => {
                        for item in member.as_array().into_iter().flatten() {
                            if item.is_array() {
                                return Err(WireError::NotRepresentable(
                                    XML,
                                    format!("{} is a list of lists", short(key)),
                                ));
                            }
                            write_element(out, key, item, "", depth + 1)?;
                        }
                    }
                    _ => write_element(out, key, member, "", depth + 1)?,
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Array(items) => {
            let mut words = Vec::with_capacity(items.len());
            for item in items {
                let word = scalar_text(item);
                if word.is_empty() || word.contains(char::is_whitespace) {
                    return Err(WireError::NotRepresentable(
                        XML,
                        format!("an entry of {} is empty or has spaces", short(name)),
                    ));
                }
                words.push(word);
            }
            out.push_str(&format!(
                "<{name}{attrs}>{}</{name}>",
                quick_xml::escape::escape(words.join(" "))
            ));
        }
        scalar => {
            out.push_str(&format!(
                "<{name}{attrs}>{}</{name}>",
                quick_xml::escape::escape(scalar_text(scalar))
            ));
        }
    }
    Ok(())
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------
// Decoding

/// One element as read: its member name (`m2m:` kept for the oneM2M namespace), `rn`,
/// nil, children and text.
#[derive(Debug, Default)]
struct Node {
    key: String,
    rn: Option<String>,
    nil: bool,
    children: Vec<Node>,
    text: String,
}

pub(super) fn decode(bytes: &[u8]) -> Result<Value, WireError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| WireError::Malformed(XML, "not UTF-8".into()))?;
    let root = parse_tree(text)?;
    let key = root.key.clone();
    let value = match resource_by_root(&key) {
        Some(res) => object_value(root, Some(res))?,
        None => {
            let kind = ROOTS
                .iter()
                .find(|(n, _)| *n == key)
                .map_or(XKind::Any, |(_, k)| *k);
            typed(root, kind)?
        }
    };
    let mut out = Map::new();
    out.insert(key, value);
    Ok(Value::Object(out))
}

fn malformed(why: impl Into<String>) -> WireError {
    WireError::Malformed(XML, why.into())
}

fn parse_tree(text: &str) -> Result<Node, WireError> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| malformed(short(&e.to_string())))?;
        let ns_m2m = matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == M2M_NS);
        let ns_unbound = matches!(ns, ResolveResult::Unbound);
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(malformed("more than one root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(WireError::TooDeep(XML));
                }
                let local = start.local_name().into_inner().to_owned();
                let prefix = start.name().prefix().map(|p| p.into_inner().to_owned());
                let key = if ns_m2m {
                    format!("m2m:{local}")
                } else if ns_unbound && !stack.is_empty() {
                    local
                } else if let (ResolveResult::Bound(_), Some(prefix)) =
                    (&ns, prefix.filter(|p| p != "m2m"))
                {
                    // A specialization's element (`<cod:binSh xmlns:cod="…">`): named by
                    // its prefix as written, whatever namespace that prefix stands for.
                    format!("{prefix}:{local}")
                } else if stack.is_empty() {
                    return Err(WireError::Unsupported(
                        XML,
                        format!("root element {} is not in the m2m namespace", short(&local)),
                    ));
                } else {
                    return Err(WireError::Unsupported(
                        XML,
                        format!("element {} is in a foreign namespace", short(&local)),
                    ));
                };
                let mut node = Node {
                    key,
                    ..Node::default()
                };
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| malformed(short(&e.to_string())))?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (ans, alocal) = reader.resolver().resolve_attribute(attr.key);
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| malformed(short(&e.to_string())))?
                        .into_owned();
                    let alocal = alocal.into_inner();
                    match ans {
                        ResolveResult::Bound(n) if n.as_ref() == XSI_NS => {
                            if alocal == "nil" {
                                node.nil = matches!(value.trim(), "true" | "1");
                            }
                        }
                        ResolveResult::Unbound if alocal == "rn" => node.rn = Some(value),
                        _ => {
                            return Err(WireError::Unsupported(
                                XML,
                                format!("attribute {} on {}", short(alocal), node.key),
                            ))
                        }
                    }
                }
                if matches!(event, Event::Empty(_)) {
                    close(node, &mut stack, &mut root);
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                close(node, &mut stack, &mut root);
            }
            Event::Text(t) => append_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => append_text(&mut stack, &c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => {
                        let name = r.xml10_content();
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| {
                                WireError::Unsupported(XML, format!("entity &{};", short(&name)))
                            })?
                            .to_owned()
                    }
                    Err(e) => return Err(malformed(short(&e.to_string()))),
                };
                append_text(&mut stack, &resolved)?;
            }
            Event::DocType(_) => {
                return Err(WireError::Unsupported(XML, "DOCTYPE".into()));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn close(node: Node, stack: &mut [Node], root: &mut Option<Node>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

fn append_text(stack: &mut [Node], text: &str) -> Result<(), WireError> {
    match stack.last_mut() {
        Some(node) => {
            node.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

/// An element with members: for a resource (`res`), `rn` from the attribute, members
/// typed by the resource type's attribute policy (or its specialization), child
/// resources as arrays under their root names.
fn object_value(node: Node, ty: Option<Res>) -> Result<Value, WireError> {
    if node.nil {
        return Ok(Value::Null);
    }
    if !node.text.trim().is_empty() {
        return Err(malformed(format!(
            "{} holds text where members were expected",
            short(&node.key)
        )));
    }
    let mut out = Map::new();
    if let Some(rn) = node.rn {
        out.insert("rn".into(), Value::String(rn));
    }
    for child in node.children {
        let key = child.key.clone();
        if let Some(child_res) = resource_by_root(&key) {
            // Child resources of a resource (rcn 4, 8) are a list; a resource wrapped
            // in other content (`rep`, `pc`, `m2m:rce`) is the one value.
            let value = object_value(child, Some(child_res))?;
            if ty.is_some() {
                push_item(&mut out, key, value);
            } else if out.insert(key.clone(), value).is_some() {
                return Err(WireError::DuplicateMember(XML, key));
            }
            continue;
        }
        let kind = ty
            .and_then(|t| attribute_kind(t, &key))
            .or_else(|| member_kind_in(&node.key, &key))
            .unwrap_or(XKind::Any);
        if kind == XKind::ObjList || kind == XKind::TextList {
            let value = if kind == XKind::ObjList {
                object_value(child, None)?
            } else {
                typed(child, XKind::Str)?
            };
            push_item(&mut out, key, value);
            continue;
        }
        if out.contains_key(&key) {
            return Err(WireError::DuplicateMember(XML, key));
        }
        let value = typed(child, kind)?;
        out.insert(key, value);
    }
    for (_, member) in EMPTY_LISTS.iter().filter(|(p, _)| *p == node.key) {
        out.entry(*member)
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    Ok(Value::Object(out))
}

/// Appends to the array under `key`. A key's kind is fixed by its name, so every value
/// stored under it came through here and is an array.
fn push_item(out: &mut Map<String, Value>, key: String, value: Value) {
    if let Value::Array(items) = out.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        items.push(value);
    }
}

fn typed(node: Node, kind: XKind) -> Result<Value, WireError> {
    if node.nil {
        return Ok(Value::Null);
    }
    let leaf = |node: &Node| -> Result<(), WireError> {
        if node.children.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!(
                "{} has child elements where a value was expected",
                short(&node.key)
            )))
        }
    };
    Ok(match kind {
        XKind::Obj | XKind::ObjList => object_value(node, None)?,
        XKind::TextList => Value::Array(vec![typed(node, XKind::Str)?]),
        XKind::Any if !node.children.is_empty() => object_value(node, None)?,
        XKind::Any | XKind::Str => {
            leaf(&node)?;
            Value::String(node.text)
        }
        XKind::CreatorNull => {
            leaf(&node)?;
            if node.text.trim().is_empty() {
                Value::Null
            } else {
                Value::String(node.text)
            }
        }
        XKind::Int => {
            leaf(&node)?;
            number(node.text.trim()).unwrap_or(Value::String(node.text))
        }
        XKind::Num => {
            leaf(&node)?;
            let text = node.text.trim();
            number(text)
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                })
                .unwrap_or(Value::String(node.text))
        }
        XKind::Bool => {
            leaf(&node)?;
            match node.text.trim() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => Value::String(node.text),
            }
        }
        XKind::StrList => {
            leaf(&node)?;
            Value::Array(
                node.text
                    .split_whitespace()
                    .map(|w| Value::String(w.to_owned()))
                    .collect(),
            )
        }
        XKind::BoolList => {
            leaf(&node)?;
            Value::Array(
                node.text
                    .split_whitespace()
                    .map(|w| match w {
                        "true" | "1" => Value::Bool(true),
                        "false" | "0" => Value::Bool(false),
                        _ => Value::String(w.to_owned()),
                    })
                    .collect(),
            )
        }
        XKind::IntList => {
            leaf(&node)?;
            Value::Array(
                node.text
                    .split_whitespace()
                    .map(|w| number(w).unwrap_or_else(|| Value::String(w.to_owned())))
                    .collect(),
            )
        }
    })
}

fn number(text: &str) -> Option<Value> {
    text.parse::<u64>()
        .map(Value::from)
        .or_else(|_| text.parse::<i64>().map(Value::from))
        .ok()
}
