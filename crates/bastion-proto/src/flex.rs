//! Specializations of `<flexContainer>` (TS-0001 9.6.35, 9.6.1.2.2; TS-0004 7.4.37):
//! what a `containerDefinition` (`cnd`) stands for. A specialization names the member a
//! resource of it is serialized under (its root, `cod:binSh`; the `ty` stays 28) and its
//! custom attributes, each with a kind and whether CREATE must carry it.
//!
//! Specializations are data: a JSON document (the format is in docs/flex.md) parsed by
//! [`Specializations::add_document`]. A few TS-0023 ModuleClasses ship with Bastion
//! ([`Specializations::shipped`]); the binary adds the files its configuration names.
//! Nothing here reads a file. Every document is bounded ([`MAX_SPECIALIZATIONS`],
//! [`MAX_CUSTOM_ATTRIBUTES`], [`MAX_NAME_LEN`]).

use crate::attrs::{self, Kind, Phase};
use crate::error::RequestError;
use crate::types::ResourceType;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The most specializations one CSE holds.
pub const MAX_SPECIALIZATIONS: usize = 4096;
/// The most custom attributes one specialization defines.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 128;
/// The longest `cnd`, root or attribute name.
pub const MAX_NAME_LEN: usize = 128;

/// What the name of a specialization's announced variant adds to its root (TS-0004
/// 6.3.5.39; TS-0023: `binShAnnc` for `binSh`).
pub const ANNOUNCED_SUFFIX: &str = "Annc";

/// The specializations Bastion ships (`crates/bastion-proto/specializations/`).
const SHIPPED: &[(&str, &str)] = &[(
    "common-moduleclasses.json",
    include_str!("../specializations/common-moduleclasses.json"),
)];

/// The specializations the XML codec reads and writes by (`crate::wire`): XML text
/// carries no types, so a custom attribute's kind comes from here.
static WIRE: OnceLock<Arc<Specializations>> = OnceLock::new();

/// Makes `specs` the specializations the XML codec uses. The binary does it once at
/// start, before any request is decoded; a later call changes nothing.
pub fn install(specs: Arc<Specializations>) {
    let _ = WIRE.set(specs);
}

/// The specializations the XML codec uses: those installed, else the shipped ones.
pub fn installed() -> &'static Specializations {
    WIRE.get_or_init(|| Arc::new(Specializations::shipped()))
}

/// The XML namespace written for a prefix no specialization declares one for.
pub fn fallback_namespace(prefix: &str) -> String {
    format!("urn:bastion:flex:{prefix}")
}

/// One custom attribute of a specialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomAttribute {
    pub name: String,
    pub kind: Kind,
    /// CREATE must carry it, and UPDATE cannot remove it.
    pub mandatory: bool,
}

/// One specialization of `<flexContainer>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Specialization {
    /// The `containerDefinition` naming it.
    pub cnd: String,
    /// The member name its resources are serialized under (`cod:binSh`).
    pub root: String,
    /// The XML namespace of the root's prefix, when the definition gives one.
    pub namespace: Option<String>,
    pub attributes: Vec<CustomAttribute>,
}

impl Specialization {
    /// The custom attribute `name`, if the specialization defines it.
    pub fn attribute(&self, name: &str) -> Option<&CustomAttribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Checks the custom attributes of a CREATE or UPDATE content (the attributes every
    /// `<flexContainer>` has are left to its attribute policy): an attribute the
    /// specialization does not define, a value of the wrong kind, a mandatory one
    /// missing from CREATE or removed by UPDATE are 4000 (TS-0004 7.4.37.2.1, .3).
    pub fn validate(&self, phase: Phase, content: &Map<String, Value>) -> Result<(), RequestError> {
        for (name, value) in content {
            if is_common(name) {
                continue;
            }
            let def = self.attribute(name).ok_or_else(|| {
                RequestError::bad_request(format!("{name} is not an attribute of {}", self.root))
            })?;
            if value.is_null() {
                if phase == Phase::Create || def.mandatory {
                    return Err(RequestError::bad_request(format!(
                        "attribute {name} cannot be null"
                    )));
                }
                continue;
            }
            attrs::check_kind(name, def.kind, value)?;
        }
        if phase == Phase::Create {
            if let Some(missing) = self
                .attributes
                .iter()
                .find(|a| a.mandatory && content.get(&a.name).is_none_or(Value::is_null))
            {
                return Err(RequestError::bad_request(format!(
                    "mandatory attribute {} missing",
                    missing.name
                )));
            }
        }
        Ok(())
    }

    /// The member name its announced variant (`<flexContainerAnnc>`) is serialized
    /// under: the root and [`ANNOUNCED_SUFFIX`] (`cod:binShAnnc`).
    pub fn announced_root(&self) -> String {
        format!("{}{ANNOUNCED_SUFFIX}", self.root)
    }

    /// The custom attributes among `attrs`.
    pub fn custom<'a>(
        &'a self,
        attrs: &'a Map<String, Value>,
    ) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        attrs.iter().filter(|(k, _)| self.attribute(k).is_some())
    }
}

/// Whether `name` is an attribute every `<flexContainer>` has (universal, common or
/// resource-specific), so never a custom one.
pub fn is_common(name: &str) -> bool {
    attrs::is_attribute(ResourceType::FlexContainer, name)
}

/// The specializations a CSE knows, by `cnd` and by root.
#[derive(Clone, Debug, Default)]
pub struct Specializations {
    by_cnd: HashMap<String, Arc<Specialization>>,
    by_root: HashMap<String, Arc<Specialization>>,
}

/// Why a specialization document was refused; the text names the document's problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    specializations: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    cnd: String,
    root: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    attributes: Vec<AttributeEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributeEntry {
    name: String,
    kind: String,
    #[serde(default)]
    mandatory: bool,
}

/// A kind's name in a document.
fn kind_named(name: &str) -> Option<Kind> {
    Some(match name {
        "string" => Kind::Str,
        "boolean" => Kind::Bool,
        "integer" => Kind::Int,
        "nonNegInteger" => Kind::NonNegInt,
        "positiveInteger" => Kind::PositiveInt,
        "float" => Kind::Number,
        "timestamp" => Kind::Timestamp,
        "list" => Kind::StrList,
        "any" => Kind::Any,
        _ => return None,
    })
}

/// A name made of letters, digits and `_`, `-`, `.`, starting with a letter or `_`.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A root: `prefix:name`, both plain names, and not in the `m2m:` namespace.
fn is_root(root: &str) -> bool {
    root.split_once(':').is_some_and(|(prefix, local)| {
        prefix != "m2m" && is_plain_name(prefix) && is_plain_name(local)
    })
}

impl Specializations {
    /// The specializations Bastion ships.
    pub fn shipped() -> Self {
        let mut specs = Specializations::default();
        for (_, text) in SHIPPED {
            // The shipped files are tested to load whole (below); a refused one would
            // only leave its specializations out.
            let _ = specs.add_document(text);
        }
        specs
    }

    /// Adds every specialization of a JSON document. A malformed document, a bad name
    /// or kind, a custom attribute that shadows a `<flexContainer>` attribute, or a
    /// `cnd` or root already defined refuses the whole document and changes nothing.
    pub fn add_document(&mut self, text: &str) -> Result<usize, DefinitionError> {
        let doc: Document =
            serde_json::from_str(text).map_err(|e| DefinitionError(e.to_string()))?;
        let mut added: Vec<Specialization> = Vec::with_capacity(doc.specializations.len());
        for entry in doc.specializations {
            let spec = entry.build()?;
            let taken = |s: &Specialization| s.cnd == spec.cnd || s.root == spec.root;
            if self.by_cnd.contains_key(&spec.cnd)
                || self.by_root.contains_key(&spec.root)
                || added.iter().any(taken)
            {
                return Err(DefinitionError(format!(
                    "{} ({}) is defined twice",
                    spec.cnd, spec.root
                )));
            }
            added.push(spec);
        }
        if self.by_cnd.len() + added.len() > MAX_SPECIALIZATIONS {
            return Err(DefinitionError(format!(
                "more than {MAX_SPECIALIZATIONS} specializations"
            )));
        }
        let n = added.len();
        for spec in added {
            let spec = Arc::new(spec);
            self.by_cnd.insert(spec.cnd.clone(), spec.clone());
            self.by_root.insert(spec.root.clone(), spec);
        }
        Ok(n)
    }

    /// The specialization a `cnd` names.
    pub fn by_cnd(&self, cnd: &str) -> Option<&Arc<Specialization>> {
        self.by_cnd.get(cnd)
    }

    /// The specialization serialized under `root`.
    pub fn by_root(&self, root: &str) -> Option<&Arc<Specialization>> {
        self.by_root.get(root)
    }

    /// The specialization whose announced variant (`<flexContainerAnnc>`) is
    /// serialized under `root`: its own root and [`ANNOUNCED_SUFFIX`] (`cod:binShAnnc`).
    pub fn by_announced_root(&self, root: &str) -> Option<&Arc<Specialization>> {
        self.by_root(root.strip_suffix(ANNOUNCED_SUFFIX)?)
    }

    /// Whether any specialization defines the custom attribute `name`.
    pub fn defines_attribute(&self, name: &str) -> bool {
        self.by_cnd.values().any(|s| s.attribute(name).is_some())
    }

    /// The XML namespace to declare for `prefix`: the one a specialization with that
    /// prefix declares, else [`fallback_namespace`].
    pub fn namespace_of(&self, prefix: &str) -> String {
        self.by_root
            .values()
            .filter(|s| s.root.split_once(':').is_some_and(|(p, _)| p == prefix))
            .find_map(|s| s.namespace.clone())
            .unwrap_or_else(|| fallback_namespace(prefix))
    }

    /// How many specializations are known.
    pub fn len(&self) -> usize {
        self.by_cnd.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.by_cnd.is_empty()
    }

    /// The member name a `<flexContainer>` or `<flexContainerInstance>` of `cnd` is
    /// serialized under: its specialization's root, or the generic `m2m:fcnt` /
    /// `m2m:fci` when the `cnd` is no longer known (a definition file removed).
    /// The announced variants of a `<flexContainer>` (ty 10028) and of its instances
    /// (10058, whose `cnd` is their parent's) are named by the specialization's root and
    /// [`ANNOUNCED_SUFFIX`], else `m2m:fcntA` / `m2m:fciA`.
    pub fn root_of(&self, ty: ResourceType, cnd: Option<&str>) -> String {
        let spec = cnd.and_then(|c| self.by_cnd(c));
        match (spec, ty.original()) {
            (None, _) => ty.root().to_owned(),
            (Some(s), None) => s.root.clone(),
            (Some(s), Some(_)) => s.announced_root(),
        }
    }
}

impl Entry {
    fn build(self) -> Result<Specialization, DefinitionError> {
        let bad = |why: String| Err(DefinitionError(why));
        if self.cnd.is_empty()
            || self.cnd.len() > MAX_NAME_LEN
            || self.cnd.contains(char::is_whitespace)
        {
            return bad(format!(
                "cnd {:?} is empty, too long or has spaces",
                short(&self.cnd)
            ));
        }
        if !is_root(&self.root) {
            return bad(format!(
                "root {:?} of {} must be prefix:name outside m2m:",
                short(&self.root),
                self.cnd
            ));
        }
        // `…Annc` names the announced variants (`Specializations::by_announced_root`).
        if self.root.ends_with(ANNOUNCED_SUFFIX) {
            return bad(format!(
                "root {:?} of {} must not end with {ANNOUNCED_SUFFIX}",
                short(&self.root),
                self.cnd
            ));
        }
        if self.attributes.len() > MAX_CUSTOM_ATTRIBUTES {
            return bad(format!(
                "{} defines more than {MAX_CUSTOM_ATTRIBUTES} attributes",
                self.cnd
            ));
        }
        let mut attributes: Vec<CustomAttribute> = Vec::with_capacity(self.attributes.len());
        for a in self.attributes {
            if !is_plain_name(&a.name) {
                return bad(format!(
                    "attribute name {:?} of {}",
                    short(&a.name),
                    self.cnd
                ));
            }
            if is_common(&a.name) {
                return bad(format!(
                    "attribute {} of {} is an attribute of every flexContainer",
                    a.name, self.cnd
                ));
            }
            if attributes.iter().any(|b| b.name == a.name) {
                return bad(format!(
                    "attribute {} of {} is defined twice",
                    a.name, self.cnd
                ));
            }
            let Some(kind) = kind_named(&a.kind) else {
                return bad(format!("kind {:?} of {}", short(&a.kind), a.name));
            };
            attributes.push(CustomAttribute {
                name: a.name,
                kind,
                mandatory: a.mandatory,
            });
        }
        if let Some(ns) = &self.namespace {
            if ns.is_empty()
                || ns.len() > 512
                || ns.contains(|c: char| c.is_whitespace() || c == '"')
            {
                return bad(format!(
                    "namespace of {} is empty, too long or not a URI",
                    self.cnd
                ));
            }
        }
        Ok(Specialization {
            cnd: self.cnd,
            root: self.root,
            namespace: self.namespace,
            attributes,
        })
    }
}

fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn shipped_documents_load_entirely() {
        let mut specs = Specializations::default();
        for (name, text) in SHIPPED {
            specs
                .add_document(text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(specs.len(), Specializations::shipped().len());
        let switch = specs
            .by_cnd("org.onem2m.common.moduleclass.binarySwitch")
            .expect("binarySwitch");
        assert_eq!(switch.root, "cod:binSh");
        assert_eq!(specs.by_root("cod:binSh"), Some(switch));
    }

    #[test]
    fn ts0004_7_4_37_custom_attributes_are_checked_against_the_specialization() {
        let specs = Specializations::shipped();
        let switch = specs.by_root("cod:binSh").expect("binarySwitch");
        let ok = |phase, v| switch.validate(phase, &obj(v)).is_ok();
        assert!(ok(
            Phase::Create,
            json!({"cnd": "x", "powSe": true, "lbl": ["a"]})
        ));
        assert!(!ok(Phase::Create, json!({"cnd": "x"})), "mandatory powSe");
        assert!(!ok(Phase::Create, json!({"powSe": "on"})), "wrong kind");
        assert!(
            !ok(Phase::Create, json!({"powSe": true, "speed": 1})),
            "unknown"
        );
        assert!(ok(Phase::Update, json!({"dgt": null})));
        assert!(
            !ok(Phase::Update, json!({"powSe": null})),
            "mandatory removed"
        );
        let battery = specs.by_root("cod:bat").expect("battery");
        assert!(battery
            .validate(Phase::Create, &obj(json!({"lvl": -1})))
            .is_ok());
        assert!(battery
            .validate(Phase::Create, &obj(json!({"lvl": 1.5})))
            .is_err());
    }

    #[test]
    fn bad_documents_change_nothing() {
        let mut specs = Specializations::shipped();
        let before = specs.len();
        let doc = |cnd: &str, root: &str, attrs: Value| {
            json!({"specializations": [
                {"cnd": "a.fine.one", "root": "x:fine", "attributes": []},
                {"cnd": cnd, "root": root, "attributes": attrs}
            ]})
            .to_string()
        };
        for text in [
            doc("a.b", "m2m:fcnt", json!([])),
            doc("a.b", "nocolon", json!([])),
            doc("a b", "x:y", json!([])),
            doc("a.b", "x:y", json!([{"name": "cnd", "kind": "string"}])),
            doc("a.b", "x:y", json!([{"name": "v", "kind": "decimal"}])),
            doc(
                "a.b",
                "x:y",
                json!([{"name": "v", "kind": "string"}, {"name": "v", "kind": "string"}]),
            ),
            doc(
                "org.onem2m.common.moduleclass.binarySwitch",
                "x:y",
                json!([]),
            ),
            doc("a.b", "cod:binSh", json!([])),
            // `…Annc` names an announced variant.
            doc("a.b", "x:yAnnc", json!([])),
            doc("a.fine.one", "x:other", json!([])),
            "{\"specializations\": 1}".to_owned(),
            "{\"specializations\": [], \"extra\": 1}".to_owned(),
        ] {
            assert!(specs.add_document(&text).is_err(), "{text}");
            assert_eq!(specs.len(), before, "{text}");
        }
        assert_eq!(specs.add_document(&doc("a.b", "x:y", json!([]))), Ok(2));
        assert_eq!(
            specs.root_of(ResourceType::FlexContainer, Some("a.b")),
            "x:y"
        );
        assert_eq!(
            specs.root_of(ResourceType::FlexContainer, Some("gone")),
            "m2m:fcnt"
        );
        // The announced variant: the root and `Annc`, or the generic name.
        let annc = ResourceType::FlexContainer.announced().expect("served");
        assert_eq!(specs.root_of(annc, Some("a.b")), "x:yAnnc");
        assert_eq!(specs.root_of(annc, Some("gone")), "m2m:fcntA");
        assert_eq!(
            specs.by_announced_root("x:yAnnc").map(|s| s.cnd.as_str()),
            Some("a.b")
        );
        assert!(specs.by_announced_root("x:y").is_none());
    }
}
