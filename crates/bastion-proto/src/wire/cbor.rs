//! CBOR (RFC 8949; TS-0004 §8.4): the same data model as JSON with the same member
//! names. Decoding accepts what JSON could have said: maps with text keys, each key once;
//! text, integers, floats, booleans, null, arrays. Byte strings, tags, undefined and
//! non-text keys have no JSON meaning in oneM2M content and are refused.

use super::{short, Serialization, WireError, MAX_DEPTH};
use ciborium::value::Value as Cbor;
use serde_json::{Map, Number, Value};

const CBOR: Serialization = Serialization::Cbor;

pub(super) fn encode(pc: &Value) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(pc, &mut out)
        .map_err(|e| WireError::NotRepresentable(CBOR, short(&e.to_string())))?;
    Ok(out)
}

pub(super) fn decode(bytes: &[u8]) -> Result<Value, WireError> {
    let mut rest = bytes;
    // One level of slack: the limit counts the outermost item, our depth does not.
    let item: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH + 1)
        .map_err(|e| match e {
            ciborium::de::Error::RecursionLimitExceeded => WireError::TooDeep(CBOR),
            other => WireError::Malformed(CBOR, short(&other.to_string())),
        })?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(CBOR, "trailing data".into()));
    }
    to_json(item, 0)
}

fn to_json(item: Cbor, depth: usize) -> Result<Value, WireError> {
    let unsupported = |what: &str| Err(WireError::Unsupported(CBOR, what.to_owned()));
    Ok(match item {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Text(s) => Value::String(s),
        Cbor::Integer(i) => {
            let n = i128::from(i);
            if let Ok(u) = u64::try_from(n) {
                Value::from(u)
            } else if let Ok(s) = i64::try_from(n) {
                Value::from(s)
            } else {
                return unsupported("integer out of range");
            }
        }
        Cbor::Float(f) => match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => return unsupported("NaN or infinite number"),
        },
        Cbor::Array(items) => {
            let depth = deeper(depth)?;
            Value::Array(
                items
                    .into_iter()
                    .map(|v| to_json(v, depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        Cbor::Map(entries) => {
            let depth = deeper(depth)?;
            let mut out = Map::new();
            for (key, value) in entries {
                let Cbor::Text(key) = key else {
                    return unsupported("map key that is not text");
                };
                if out.contains_key(&key) {
                    return Err(WireError::DuplicateMember(CBOR, key));
                }
                let value = to_json(value, depth)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Cbor::Bytes(_) => return unsupported("byte string"),
        Cbor::Tag(..) => return unsupported("tagged item"),
        _ => return unsupported("simple value"),
    })
}

fn deeper(depth: usize) -> Result<usize, WireError> {
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        Err(WireError::TooDeep(CBOR))
    } else {
        Ok(depth)
    }
}
