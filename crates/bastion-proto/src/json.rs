//! Strict JSON decoding for request bodies: duplicate member names are an error (TS-0004
//! §8.4 says names in one object are unique; silently keeping one of them would let two
//! parties read different documents), and nesting depth is bounded.

use crate::error::RequestError;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// The strings of a JSON list (`nu`, `poa`, `rrat`, …): other values, and anything but a
/// list, give nothing.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Deepest nesting accepted in a body.
pub const MAX_DEPTH: usize = 32;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON, or trailing data after the value; the text is serde_json's, shortened.
    Malformed(String),
    /// An object names this member twice.
    DuplicateMember(String),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Malformed(why) => write!(f, "malformed JSON: {why}"),
            JsonError::DuplicateMember(name) => {
                write!(f, "malformed JSON: duplicate member {name}")
            }
            JsonError::TooDeep => write!(f, "malformed JSON: nesting too deep"),
        }
    }
}

/// Parses `bytes` as one JSON value, rejecting duplicate keys, excessive depth and
/// trailing data, and says which.
pub fn parse_value(bytes: &[u8]) -> Result<Value, JsonError> {
    let why = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed {
        depth: 0,
        why: &why,
    }
    .deserialize(&mut de)
    .map_err(|e| {
        why.take()
            .unwrap_or_else(|| JsonError::Malformed(short(&e)))
    })?;
    de.end()
        .map_err(|_| JsonError::Malformed("trailing data".into()))?;
    Ok(value)
}

/// [`parse_value`] for request bodies: any failure is 4000 with a short reason.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, RequestError> {
    parse_value(bytes).map_err(|e| RequestError::bad_request(e.to_string()))
}

fn short(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.chars().take(120).collect()
}

/// Carries the nesting depth and where to record a failure of our own (duplicate
/// member, depth), so callers need not parse serde_json's error text.
struct StrictSeed<'w> {
    depth: usize,
    why: &'w Cell<Option<JsonError>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor {
            depth: self.depth,
            why: self.why,
        })
    }
}

struct StrictVisitor<'w> {
    depth: usize,
    why: &'w Cell<Option<JsonError>>,
}

impl StrictVisitor<'_> {
    /// Records `why` and returns the error that stops serde_json.
    fn fail<E: de::Error>(&self, why: JsonError) -> E {
        let err = E::custom(&why);
        self.why.set(Some(why));
        err
    }
}

impl<'de> Visitor<'de> for StrictVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(self.fail(JsonError::TooDeep));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictSeed {
            depth,
            why: self.why,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(self.fail(JsonError::TooDeep));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.fail(JsonError::DuplicateMember(key)));
            }
            let v = map.next_value_seed(StrictSeed {
                depth,
                why: self.why,
            })?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"m2m:cnt":{"rn":"x","rn":"y"}}"#).is_err());
        assert!(parse_strict(br#"{"m2m:cnt":{"rn":"x"}}"#).is_ok());
    }

    #[test]
    fn failures_say_what_they_are() {
        assert_eq!(
            parse_value(br#"{"a":{"b":1,"b":2}}"#),
            Err(JsonError::DuplicateMember("b".into()))
        );
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert_eq!(parse_value(deep.as_bytes()), Err(JsonError::TooDeep));
        assert!(matches!(parse_value(b"{"), Err(JsonError::Malformed(_))));
        assert!(matches!(parse_value(b"1 2"), Err(JsonError::Malformed(_))));
    }

    #[test]
    fn depth_and_trailing_data() {
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(parse_strict(b"{} x").is_err());
        assert!(parse_strict(b"").is_err());
        assert!(parse_strict(b"\xff").is_err());
    }
}
