//! The wire layer: the one place where primitive content (`pc`, a [`serde_json::Value`]
//! everywhere inside Bastion) becomes bytes and back, in each serialization TS-0004 §8
//! defines (JSON, CBOR, XML), and where media types are negotiated ([`media`]).
//!
//! Bindings call [`Serialization::decode_pc`] on a received body and
//! [`Serialization::encode_pc`] on content to send; they never pick a codec themselves.
//! Every decoder is strict and bounded the same way: nesting at most [`MAX_DEPTH`], no
//! duplicate member names, no trailing data; any failure is a [`WireError`], which a
//! request reports as 4000 BAD_REQUEST with a short reason.

mod cbor;
pub mod http;
pub mod media;
pub mod primitive;
mod xml;

use crate::error::RequestError;
use crate::json;
use serde_json::Value;
use std::fmt;

pub use crate::json::MAX_DEPTH;
pub use media::{negotiate_accept, parse_content_type, ContentType, MediaKind};

/// A serialization of primitive content (TS-0004 §8.2-§8.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serialization {
    Json,
    Cbor,
    Xml,
}

/// Why content could not be decoded or encoded in a serialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Not well-formed in the serialization, or trailing data; the text is short.
    Malformed(Serialization, String),
    /// An object names this member twice.
    DuplicateMember(Serialization, String),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep(Serialization),
    /// Well-formed, but outside what oneM2M content can be (a CBOR byte string, an XML
    /// root outside the `m2m` namespace, ...).
    Unsupported(Serialization, String),
    /// Content that this serialization cannot represent (encoding only: e.g. a `con`
    /// object whose member names are not XML names).
    NotRepresentable(Serialization, String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed(s, why) => write!(f, "malformed {}: {why}", s.label()),
            WireError::DuplicateMember(s, name) => {
                write!(f, "malformed {}: duplicate member {name}", s.label())
            }
            WireError::TooDeep(s) => write!(f, "malformed {}: nesting too deep", s.label()),
            WireError::Unsupported(s, why) => write!(f, "unsupported {}: {why}", s.label()),
            WireError::NotRepresentable(s, why) => {
                write!(f, "content cannot be sent as {}: {why}", s.label())
            }
        }
    }
}

impl std::error::Error for WireError {}

impl From<WireError> for RequestError {
    /// A body that cannot be decoded is the sender's fault: 4000 with the short reason.
    fn from(e: WireError) -> RequestError {
        RequestError::bad_request(e.to_string())
    }
}

/// The serialization a notification URI asks for with a `ct` query member (TS-0004
/// 7.4.8: `?ct=json`, `cbor` or `xml`, appended with `&` after the application's own
/// query members: `?q=1&ct=json`), and the URI without that member, as it is sent.
/// `None` when `ct` names no serialization Bastion writes or is given twice.
pub fn target_serialization(
    target: &str,
) -> Option<(std::borrow::Cow<'_, str>, Option<Serialization>)> {
    use std::borrow::Cow;
    let Some((base, query)) = target.split_once('?') else {
        return Some((Cow::Borrowed(target), None));
    };
    let mut asked = None;
    let mut kept = Vec::new();
    for member in query.split('&') {
        match member.strip_prefix("ct=") {
            Some(name) if asked.is_none() => asked = Some(Serialization::from_name(name)?),
            Some(_) => return None,
            None => kept.push(member),
        }
    }
    if asked.is_none() {
        return Some((Cow::Borrowed(target), None));
    }
    let sent = if kept.is_empty() {
        Cow::Borrowed(base)
    } else {
        Cow::Owned(format!("{base}?{}", kept.join("&")))
    };
    Some((sent, asked))
}

impl Serialization {
    /// All serializations, JSON first (the default where nothing else is asked for).
    pub const ALL: [Serialization; 3] =
        [Serialization::Json, Serialization::Cbor, Serialization::Xml];

    /// The name used in media type suffixes, `csz` entries' subtypes and `?ct=`.
    pub fn name(self) -> &'static str {
        match self {
            Serialization::Json => "json",
            Serialization::Cbor => "cbor",
            Serialization::Xml => "xml",
        }
    }

    /// The `ct` query value of a notification URI (TS-0004 7.4.8): `json`, `cbor`, `xml`.
    pub fn from_name(name: &str) -> Option<Serialization> {
        Serialization::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// The name in messages: `JSON`, `CBOR`, `XML`.
    pub fn label(self) -> &'static str {
        match self {
            Serialization::Json => "JSON",
            Serialization::Cbor => "CBOR",
            Serialization::Xml => "XML",
        }
    }

    /// The plain media type, `application/json|cbor|xml`, which responses carry.
    pub fn media_type(self) -> &'static str {
        MediaKind::Plain.media_type(self)
    }

    /// Decodes a received body into primitive content.
    pub fn decode_pc(self, bytes: &[u8]) -> Result<Value, WireError> {
        match self {
            Serialization::Json => json::parse_value(bytes).map_err(|e| match e {
                json::JsonError::Malformed(why) => WireError::Malformed(self, why),
                json::JsonError::DuplicateMember(name) => WireError::DuplicateMember(self, name),
                json::JsonError::TooDeep => WireError::TooDeep(self),
            }),
            Serialization::Cbor => cbor::decode(bytes),
            Serialization::Xml => xml::decode(bytes),
        }
    }

    /// Encodes primitive content for sending. JSON and CBOR represent every value; XML
    /// needs one root member named like an element (see [`xml`]'s rules).
    pub fn encode_pc(self, pc: &Value) -> Result<Vec<u8>, WireError> {
        match self {
            Serialization::Json => serde_json::to_vec(pc)
                .map_err(|e| WireError::NotRepresentable(self, short(&e.to_string()))),
            Serialization::Cbor => cbor::encode(pc),
            Serialization::Xml => xml::encode(pc),
        }
    }
}

/// Error texts from the codecs go back to clients: keep them short.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests;
