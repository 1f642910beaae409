//! Content negotiation (TS-0009 §6.4.3 and §6.7; TS-0004 §6.7): which serialization a
//! `Content-Type` names, with its `ty` parameter, and which one an `Accept` header lets
//! a response use. Every binding that carries media types asks here.

use super::Serialization;
use crate::error::RequestError;

/// The family of a oneM2M media type: the plain one, or one of TS-0004 §6.7's
/// `vnd.onem2m-*` types that say what the body holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// `application/json|cbor|xml`.
    Plain,
    /// `application/vnd.onem2m-res+…`: a resource representation.
    Resource,
    /// `application/vnd.onem2m-ntfy+…`: a notification.
    Notification,
    /// `application/vnd.onem2m-preq+…`: a whole request primitive.
    RequestPrimitive,
    /// `application/vnd.onem2m-prsp+…`: a whole response primitive.
    ResponsePrimitive,
}

impl MediaKind {
    const ALL: [MediaKind; 5] = [
        MediaKind::Plain,
        MediaKind::Resource,
        MediaKind::Notification,
        MediaKind::RequestPrimitive,
        MediaKind::ResponsePrimitive,
    ];

    /// The media type of this family in `ser`, e.g. `application/vnd.onem2m-ntfy+cbor`.
    pub fn media_type(self, ser: Serialization) -> &'static str {
        use MediaKind::*;
        use Serialization::*;
        match (self, ser) {
            (Plain, Json) => "application/json",
            (Plain, Cbor) => "application/cbor",
            (Plain, Xml) => "application/xml",
            (Resource, Json) => "application/vnd.onem2m-res+json",
            (Resource, Cbor) => "application/vnd.onem2m-res+cbor",
            (Resource, Xml) => "application/vnd.onem2m-res+xml",
            (Notification, Json) => "application/vnd.onem2m-ntfy+json",
            (Notification, Cbor) => "application/vnd.onem2m-ntfy+cbor",
            (Notification, Xml) => "application/vnd.onem2m-ntfy+xml",
            (RequestPrimitive, Json) => "application/vnd.onem2m-preq+json",
            (RequestPrimitive, Cbor) => "application/vnd.onem2m-preq+cbor",
            (RequestPrimitive, Xml) => "application/vnd.onem2m-preq+xml",
            (ResponsePrimitive, Json) => "application/vnd.onem2m-prsp+json",
            (ResponsePrimitive, Cbor) => "application/vnd.onem2m-prsp+cbor",
            (ResponsePrimitive, Xml) => "application/vnd.onem2m-prsp+xml",
        }
    }
}

/// Which supported media type `media` (already lowercase, no parameters) is.
pub fn lookup(media: &str) -> Option<(MediaKind, Serialization)> {
    MediaKind::ALL.into_iter().find_map(|kind| {
        Serialization::ALL
            .into_iter()
            .find(|ser| kind.media_type(*ser) == media)
            .map(|ser| (kind, ser))
    })
}

/// A parsed `Content-Type`: the media type as sent (lowercase), the serialization when
/// Bastion supports it, and the `ty` parameter of a CREATE (TS-0009 §6.4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    pub media: String,
    pub serialization: Option<Serialization>,
    pub ty: Option<u64>,
}

impl ContentType {
    /// The serialization of a body sent with this type; 4015 when it is none Bastion
    /// supports.
    pub fn body_serialization(&self) -> Result<Serialization, RequestError> {
        self.serialization.ok_or_else(|| {
            RequestError::UnsupportedMediaType(
                format!("media type {} is not supported", shorten(&self.media)).into(),
            )
        })
    }
}

/// Parses a `Content-Type` value. A malformed or repeated `ty` is 4000; an unsupported
/// media type is not an error here (a request without body may carry any).
pub fn parse_content_type(raw: &str) -> Result<ContentType, RequestError> {
    let mut parts = raw.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut ty = None;
    for param in parts {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        if k.trim().eq_ignore_ascii_case("ty") {
            if ty.is_some() {
                return Err(RequestError::bad_request("ty given twice in Content-Type"));
            }
            ty =
                Some(v.trim().parse::<u64>().map_err(|_| {
                    RequestError::bad_request("ty in Content-Type is not a number")
                })?);
        }
    }
    let serialization = lookup(&media).map(|(_, ser)| ser);
    Ok(ContentType {
        media,
        serialization,
        ty,
    })
}

/// The serialization of a response given the request's `Accept` header: the supported
/// media range with the highest `q` (the earliest among equals); `*/*` and
/// `application/*` stand for `preferred` (the request body's serialization, else JSON).
/// No `Accept` is `preferred`; nothing acceptable is 5207 NOT_ACCEPTABLE.
pub fn negotiate_accept(
    accept: Option<&str>,
    preferred: Serialization,
) -> Result<Serialization, RequestError> {
    let Some(accept) = accept else {
        return Ok(preferred);
    };
    let mut best: Option<(u16, Serialization)> = None;
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1000), |(_, v)| quality(v.trim()))
            .unwrap_or(0);
        let ser = match media.as_str() {
            "*/*" | "application/*" => Some(preferred),
            other => lookup(other).map(|(_, ser)| ser),
        };
        if let Some(ser) = ser {
            if q > 0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, ser));
            }
        }
    }
    best.map(|(_, ser)| ser).ok_or_else(|| {
        RequestError::NotAcceptable(
            "no acceptable media type: JSON, CBOR and XML can be produced".into(),
        )
    })
}

/// An RFC 9110 qvalue in thousandths; `None` when it is not one.
fn quality(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rsc::Rsc;
    use Serialization::*;

    #[test]
    fn ts0009_6_4_3_content_type_and_ty() {
        let ct = parse_content_type("application/vnd.onem2m-res+CBOR; ty=3").unwrap();
        assert_eq!(ct.serialization, Some(Cbor));
        assert_eq!(ct.ty, Some(3));
        let ct = parse_content_type("application/xml").unwrap();
        assert_eq!((ct.serialization, ct.ty), (Some(Xml), None));
        let ct = parse_content_type("text/plain;ty=4").unwrap();
        assert_eq!(ct.serialization, None);
        assert_eq!(
            ct.body_serialization().unwrap_err().rsc(),
            Rsc::UnsupportedMediaType
        );
        assert!(parse_content_type("application/json;ty=x").is_err());
        assert!(parse_content_type("application/json;ty=1;ty=2").is_err());
        for kind in MediaKind::ALL {
            for ser in Serialization::ALL {
                assert_eq!(lookup(kind.media_type(ser)), Some((kind, ser)));
            }
        }
        assert_eq!(lookup("application/vnd.onem2m-res+yaml"), None);
    }

    #[test]
    fn accept_q_values_and_wildcards() {
        assert_eq!(negotiate_accept(None, Cbor), Ok(Cbor));
        assert_eq!(negotiate_accept(Some("*/*"), Xml), Ok(Xml));
        assert_eq!(negotiate_accept(Some("application/*"), Json), Ok(Json));
        assert_eq!(
            negotiate_accept(Some("application/xml, application/json;q=0.5"), Json),
            Ok(Xml)
        );
        assert_eq!(
            negotiate_accept(Some("application/xml;q=0.2, application/cbor;q=0.9"), Json),
            Ok(Cbor)
        );
        assert_eq!(
            negotiate_accept(Some("text/html, application/vnd.onem2m-res+xml"), Json),
            Ok(Xml)
        );
        // Equal q: the first listed wins.
        assert_eq!(
            negotiate_accept(Some("application/cbor, application/xml"), Json),
            Ok(Cbor)
        );
        for refused in ["text/html", "application/json;q=0", "application/json;q=2"] {
            assert_eq!(
                negotiate_accept(Some(refused), Json).unwrap_err().rsc(),
                Rsc::NotAcceptable,
                "{refused}"
            );
        }
    }
}
