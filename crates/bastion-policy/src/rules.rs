//! Strict parsing of an `m2m:setOfAcrs` (`pv` / `pvs`, TS-0004 6.3.5.26-28; digest §2.1)
//! into a compiled [`RuleSet`], and the per-rule condition checks shared by
//! [`crate::decide`] and [`crate::explain()`] so that both always reach the same verdict.
//!
//! Parsing is done once, when an ACP is created, updated or loaded; originator patterns are
//! normalised and compiled here so that the decision does no string work beyond matching.

use crate::context::Context;
use crate::originator::{OriginatorEntry, Subject};
use crate::{AccessOperation, AccessRequest, Attributes, LocalIdentity, Pip, PolicyError};
use serde_json::{Map, Value};

/// Highest valid `acop`: all six operation bits (TS-0004 6.3.4.2.29).
const ACOP_MAX: u64 = 63;

/// A parsed, compiled `m2m:setOfAcrs`.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// One `accessControlRule` (TS-0003 7.1.5 `acr(k)`).
#[derive(Clone, Debug)]
pub struct Rule {
    acor: Box<[OriginatorEntry]>,
    acop: u8,
    /// `acco` elements, compiled; empty = no constraint.
    acco: Box<[Context]>,
    acaf: bool,
    /// `acod` elements; empty = no constraint.
    acod: Box<[ObjectDetails]>,
    /// `aca` (accessControlAttributes, TS-0004 R4): the attributes this rule covers;
    /// `None` = every attribute, the whole resource.
    aca: Option<Box<[Box<str>]>>,
}

/// One `accessControlObjectDetails` element (TS-0003 7.1.5, TS-0004 6.3.5.28 area).
#[derive(Clone, Debug)]
pub struct ObjectDetails {
    ty: Option<u16>,
    /// Kept raw: specialisations (`mgmtDefinition` / `containerDefinition`) are not
    /// evaluated yet, so an element that carries one never matches.
    spty: Option<Value>,
    chty: Box<[u16]>,
}

impl ObjectDetails {
    /// The target (parent) type this element is limited to, if any.
    pub fn target_type(&self) -> Option<u16> {
        self.ty
    }

    /// The specialisation type, verbatim.
    pub fn specialization(&self) -> Option<&Value> {
        self.spty.as_ref()
    }

    /// The child resource types this element lets the originator create.
    pub fn child_types(&self) -> &[u16] {
        &self.chty
    }

    /// TS-0003 7.1.5 `type_ok AND spec_ok AND rq.ty ∈ chty` for one element.
    pub(crate) fn allows(&self, target_type: u16, create_type: Option<u16>) -> bool {
        self.ty.is_none_or(|t| t == target_type)
            && self.spty.is_none()
            && create_type.is_some_and(|c| self.chty.contains(&c))
    }
}

impl RuleSet {
    /// Strictly parses `{"acr": [...]}`. `{}` is accepted as the empty set (a list with no
    /// elements may be omitted in the JSON serialisation); anything else that is not
    /// exactly the documented shape is rejected with a short reason.
    ///
    /// Each rule needs `acor` (array of strings) and `acop` (integer 1..=63); it may carry
    /// `acco` (array of context elements, see [`crate::context`]), `acaf` (bool) and `acod`
    /// (array of objects with `ty`, `spty`, required `chty`). `null` is never accepted.
    pub fn parse(value: &Value, local: &LocalIdentity) -> Result<RuleSet, PolicyError> {
        let top = as_object(value, "setOfAcrs")?;
        only_members(top, "setOfAcrs", &["acr"])?;
        let Some(acr) = top.get("acr") else {
            return Ok(RuleSet { rules: Vec::new() });
        };
        let acr = as_array(acr, "acr")?;
        let rules = acr
            .iter()
            .enumerate()
            .map(|(i, rule)| Rule::parse(rule, &format!("acr[{i}]"), local))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RuleSet { rules })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when the set holds no rule (it then grants nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in document order (the indices used by [`crate::Grant::Rule`]).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

impl Rule {
    fn parse(value: &Value, path: &str, local: &LocalIdentity) -> Result<Rule, PolicyError> {
        let obj = as_object(value, path)?;
        only_members(obj, path, &["acor", "acop", "acco", "acaf", "acod", "aca"])?;

        let acor_path = format!("{path}.acor");
        let acor = as_array(required(obj, "acor", path)?, &acor_path)?
            .iter()
            .enumerate()
            .map(|(i, e)| match e {
                Value::String(s) => Ok(OriginatorEntry::compile(local, s)),
                _ => Err(PolicyError::new(
                    format!("{acor_path}[{i}]"),
                    "must be a string",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;

        let acop_path = format!("{path}.acop");
        let acop = required(obj, "acop", path)?
            .as_u64()
            .filter(|v| (1..=ACOP_MAX).contains(v))
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| PolicyError::new(acop_path, "must be an integer in 1..=63"))?;

        let acaf = match obj.get("acaf") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(PolicyError::new(
                    format!("{path}.acaf"),
                    "must be a boolean",
                ))
            }
        };

        let acco = match obj.get("acco") {
            None => Vec::new(),
            Some(v) => {
                let acco_path = format!("{path}.acco");
                as_array(v, &acco_path)?
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Context::parse(c, &format!("{acco_path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };

        let acod = match obj.get("acod") {
            None => Vec::new(),
            Some(v) => {
                let acod_path = format!("{path}.acod");
                as_array(v, &acod_path)?
                    .iter()
                    .enumerate()
                    .map(|(i, d)| ObjectDetails::parse(d, &format!("{acod_path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };

        let aca = match obj.get("aca") {
            None => None,
            Some(v) => Some(attribute_names(v, &format!("{path}.aca"))?),
        };

        Ok(Rule {
            acor: acor.into(),
            acop,
            acco: acco.into(),
            acaf,
            acod: acod.into(),
            aca,
        })
    }

    /// The `acop` mask.
    pub fn operations(&self) -> u8 {
        self.acop
    }

    /// The compiled `acor` entries, in document order.
    pub fn originators(&self) -> &[OriginatorEntry] {
        &self.acor
    }

    /// `acaf`.
    pub fn requires_authentication(&self) -> bool {
        self.acaf
    }

    /// The compiled `acco` elements (empty when absent).
    pub fn contexts(&self) -> &[Context] {
        &self.acco
    }

    /// The `acod` elements (empty when absent).
    pub fn object_details(&self) -> &[ObjectDetails] {
        &self.acod
    }

    /// The `aca` list; `None` when the rule covers every attribute.
    pub fn attributes(&self) -> Option<&[Box<str>]> {
        self.aca.as_deref()
    }

    // ---- the five conditions of TS-0003 7.1.5 `rule_ok(k)` ----
    // `decide` ANDs them; `explain` reports each. Both call exactly these functions.

    /// `op_ok`: the requested operation's bit is set in `acop`.
    pub(crate) fn op_ok(&self, op: AccessOperation) -> bool {
        self.acop & op.bit() != 0
    }

    /// `authn_ok` (TS-0003 7.1.5 table 7.1.5-1): `acaf` requires `rq_authn`.
    pub(crate) fn authn_ok(&self, authenticated: bool) -> bool {
        !self.acaf || authenticated
    }

    /// `ctx_ok` (TS-0003 7.1.2, 7.1.5): no `acco` (or an empty one) imposes nothing;
    /// otherwise some element must hold.
    pub(crate) fn ctx_ok(&self, req: &AccessRequest<'_>) -> bool {
        self.acco.is_empty() || self.acco.iter().any(|c| c.holds(req))
    }

    /// `objd_ok` (TS-0003 7.1.5): `acod` constrains CREATE only; OR over its elements.
    pub(crate) fn objd_ok(&self, req: &AccessRequest<'_>) -> bool {
        req.operation != AccessOperation::Create
            || self.acod.is_empty()
            || self
                .acod
                .iter()
                .any(|d| d.allows(req.target_type, req.create_type))
    }

    /// `orig_ok` (TS-0003 7.1.3): some `acor` entry matches the originator (group and
    /// role entries through the PIP).
    pub(crate) fn orig_ok(&self, subject: &Subject<'_>, pip: &dyn Pip) -> bool {
        self.acor.iter().any(|e| e.matches(subject, pip))
    }

    /// `attr_ok` (TS-0003 R4 attribute-level access control): a rule without `aca` covers
    /// everything; one with `aca` covers only requests naming nothing outside its list,
    /// never the whole resource.
    pub(crate) fn attr_ok(&self, attributes: Attributes<'_>) -> bool {
        match (&self.aca, attributes) {
            (None, _) => true,
            (Some(_), Attributes::Whole) => false,
            (Some(aca), Attributes::Named(names)) => {
                names.iter().all(|n| aca.iter().any(|a| &**a == *n))
            }
        }
    }

    /// All six conditions, cheapest first (contexts last: calendar and distance maths).
    pub(crate) fn permits(&self, req: &AccessRequest<'_>, subject: &Subject<'_>) -> bool {
        self.attr_ok(req.attributes) && self.permits_apart_from_attributes(req, subject)
    }

    /// The five conditions of TS-0003 7.1.5 without `attr_ok`.
    pub(crate) fn permits_apart_from_attributes(
        &self,
        req: &AccessRequest<'_>,
        subject: &Subject<'_>,
    ) -> bool {
        self.op_ok(req.operation)
            && self.authn_ok(req.authenticated)
            && self.objd_ok(req)
            && self.orig_ok(subject, req.pip)
            && self.ctx_ok(req)
    }
}

impl ObjectDetails {
    fn parse(value: &Value, path: &str) -> Result<ObjectDetails, PolicyError> {
        let obj = as_object(value, path)?;
        only_members(obj, path, &["ty", "spty", "chty"])?;
        let ty = match obj.get("ty") {
            None => None,
            Some(v) => Some(resource_type(v, &format!("{path}.ty"))?),
        };
        let spty = match obj.get("spty") {
            None => None,
            Some(v @ (Value::String(_) | Value::Number(_))) => Some(v.clone()),
            Some(_) => {
                return Err(PolicyError::new(
                    format!("{path}.spty"),
                    "must be a string or an integer",
                ))
            }
        };
        let chty_path = format!("{path}.chty");
        let chty = as_array(required(obj, "chty", path)?, &chty_path)?
            .iter()
            .enumerate()
            .map(|(i, v)| resource_type(v, &format!("{chty_path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ObjectDetails {
            ty,
            spty,
            chty: chty.into(),
        })
    }
}

/// `aca`: a list of attribute short names (strings of 1..=32 characters, no duplicates
/// needed); an empty list covers no attribute.
fn attribute_names(value: &Value, path: &str) -> Result<Box<[Box<str>]>, PolicyError> {
    as_array(value, path)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) if (1..=32).contains(&s.len()) => Ok(Box::from(s.as_str())),
            _ => Err(PolicyError::new(
                format!("{path}[{i}]"),
                "must be an attribute name (a string of 1 to 32 characters)",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Vec::into_boxed_slice)
}

fn resource_type(value: &Value, path: &str) -> Result<u16, PolicyError> {
    value
        .as_u64()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| PolicyError::new(path, "must be a resource type (integer 0..=65535)"))
}

pub(crate) fn as_object<'v>(
    value: &'v Value,
    path: &str,
) -> Result<&'v Map<String, Value>, PolicyError> {
    value
        .as_object()
        .ok_or_else(|| PolicyError::new(path, "must be an object"))
}

pub(crate) fn as_array<'v>(value: &'v Value, path: &str) -> Result<&'v Vec<Value>, PolicyError> {
    value
        .as_array()
        .ok_or_else(|| PolicyError::new(path, "must be an array"))
}

fn required<'v>(
    obj: &'v Map<String, Value>,
    member: &str,
    path: &str,
) -> Result<&'v Value, PolicyError> {
    obj.get(member)
        .ok_or_else(|| PolicyError::new(format!("{path}.{member}"), "is required"))
}

pub(crate) fn only_members(
    obj: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
) -> Result<(), PolicyError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => {
            let shown: String = k.chars().take(40).collect();
            Err(PolicyError::new(path, format!("unknown member '{shown}'")))
        }
        None => Ok(()),
    }
}
