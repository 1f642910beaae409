//! Strict JSON decoding for request bodies: duplicate member names are an error (TS-0004
//! §8.4 says names in one object are unique; silently keeping one of them would let two
//! parties read different documents), and nesting depth is bounded.

use crate::error::RequestError;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Deepest nesting accepted in a body.
pub const MAX_DEPTH: usize = 32;

/// Parses `bytes` as one JSON value, rejecting duplicate keys, excessive depth and
/// trailing data.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, RequestError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| RequestError::bad_request(format!("malformed JSON: {}", short(&e))))?;
    de.end()
        .map_err(|_| RequestError::bad_request("malformed JSON: trailing data"))?;
    Ok(value)
}

fn short(e: &serde_json::Error) -> String {
    let text = e.to_string();
    text.chars().take(120).collect()
}

struct StrictSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth: self.depth })
    }
}

struct StrictVisitor {
    depth: usize,
}

impl<'de> Visitor<'de> for StrictVisitor {
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
            return Err(de::Error::custom("nesting too deep"));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictSeed { depth })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom("nesting too deep"));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member {key}")));
            }
            let v = map.next_value_seed(StrictSeed { depth })?;
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
    fn depth_and_trailing_data() {
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(parse_strict(b"{} x").is_err());
        assert!(parse_strict(b"").is_err());
        assert!(parse_strict(b"\xff").is_err());
    }
}
