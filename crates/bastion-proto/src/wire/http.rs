//! The TS-0009 HTTP binding's mapping, both directions, over the `http` crate's types
//! and without I/O: a request primitive ↔ method, path (`to`), query parameters,
//! `X-M2M-*` headers, `Authorization`, `Content-Type`/`Accept` and body; a response
//! primitive ↔ status, headers and body. The server, the outbound client, the DAS and the
//! operator tools all map through here, so the header names live only in [`header`].
//! Bodies are read and written with [`Serialization`]; how many bytes are read, and for
//! how long, stays with the caller that owns the connection.

use super::{media, ContentType, Serialization, WireError};
use crate::filter::REQUEST_QUERY_KEYS;
use crate::primitive::ResponseType;
use crate::{Operation, Request, RequestError, Response, Rsc};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::fmt;

/// The header names of the binding (TS-0009 §6.4), lowercase as HTTP/2 sends them.
pub mod header {
    pub const ORIGIN: &str = "x-m2m-origin";
    pub const RI: &str = "x-m2m-ri";
    pub const RVI: &str = "x-m2m-rvi";
    pub const GID: &str = "x-m2m-gid";
    pub const OT: &str = "x-m2m-ot";
    pub const RST: &str = "x-m2m-rst";
    pub const RET: &str = "x-m2m-ret";
    pub const OET: &str = "x-m2m-oet";
    pub const EC: &str = "x-m2m-ec";
    pub const VSI: &str = "x-m2m-vsi";
    pub const RTU: &str = "x-m2m-rtu";
    pub const RSC: &str = "x-m2m-rsc";
    pub const CTS: &str = "x-m2m-cts";
    /// `tkns`, joined by `+` (TS-0009 §6.4.x, TS-0003 §7.3.2).
    pub const AUTHORIZATION: &str = "authorization";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const ACCEPT: &str = "accept";
    pub const CONTENT_LOCATION: &str = "content-location";
}

/// Why a primitive could not be written as HTTP (the sender's mistake, never the peer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The request has no `op`.
    NoOperation,
    /// A CREATE without `ty`: HTTP carries it in `Content-Type`.
    CreateWithoutType,
    /// A parameter whose text cannot be a header value.
    InvalidHeader(&'static str),
    /// A token that is empty or holds the `+` separating tokens.
    InvalidToken,
    /// `to` and the query do not form a URI path.
    InvalidTarget(String),
    /// The content cannot be written in the serialization.
    Content(WireError),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NoOperation => f.write_str("op missing"),
            EncodeError::CreateWithoutType => f.write_str("CREATE needs ty"),
            EncodeError::InvalidHeader(name) => write!(f, "{name} is not a valid header value"),
            EncodeError::InvalidToken => f.write_str("a token is empty or contains '+'"),
            EncodeError::InvalidTarget(why) => write!(f, "target path: {why}"),
            EncodeError::Content(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why an HTTP response is not a oneM2M response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// No or an unreadable `X-M2M-RSC`, a header that is not text, or a body that does
    /// not decode.
    Malformed(String),
    /// `X-M2M-RSC` holds a number that is no response status code.
    UnknownRsc(u16),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "malformed response: {why}"),
            ResponseError::UnknownRsc(code) => write!(f, "unknown response status code {code}"),
        }
    }
}

impl std::error::Error for ResponseError {}

// ---------------------------------------------------------------------------------
// Request primitive → HTTP request

/// Characters escaped in a path: what a URI path cannot hold, and `%`.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A query value also escapes the separators of pairs, `+` (a space) and `/`.
const QUERY: &AsciiSet = &PATH.add(b'&').add(b'=').add(b'+').add(b'/');

/// `to` → request path (TS-0009 Table 6.2.2.1-1): CSE-relative as it is, SP-relative
/// under `/~`, absolute under `/_`; percent-encoded.
pub fn path_of(to: &str) -> String {
    let raw = if let Some(abs) = to.strip_prefix("//") {
        format!("/_/{abs}")
    } else if to.starts_with('/') {
        format!("/~{to}")
    } else {
        format!("/{to}")
    };
    utf8_percent_encode(&raw, PATH).to_string()
}

/// A request's parameters and filter criteria that travel as query parameters
/// (TS-0009 Table 6.2.2.2-1, TS-0008 6.2.2.3), in order: each key with its values (a
/// list parameter has several; the others one). Every binding with a query maps these.
pub fn query_params(req: &Request) -> Vec<(String, Vec<String>)> {
    let mut q: Vec<(String, Vec<String>)> = Vec::new();
    let one = |q: &mut Vec<(String, Vec<String>)>, key: &str, value: String| {
        q.push((key.to_owned(), vec![value]));
    };
    fn list<T: ToString>(q: &mut Vec<(String, Vec<String>)>, key: &str, values: &[T]) {
        if !values.is_empty() {
            q.push((key.to_owned(), values.iter().map(T::to_string).collect()));
        }
    }
    if let Some(rt) = req.rt {
        one(&mut q, "rt", rt.number().to_string());
    }
    if let Some(v) = &req.rp {
        one(&mut q, "rp", v.clone());
    }
    if let Some(v) = req.rcn {
        one(&mut q, "rcn", v.to_string());
    }
    if let Some(v) = req.da {
        one(&mut q, "da", v.to_string());
    }
    if let Some(v) = req.drt {
        one(&mut q, "drt", v.to_string());
    }
    list(&mut q, "rids", &req.rids);
    list(&mut q, "tids", &req.tids);
    list(&mut q, "ltids", &req.ltids);
    if let Some(v) = req.tqi {
        one(&mut q, "tqi", v.to_string());
    }
    list(&mut q, "atrl", &req.atrl);
    let fc = &req.fc;
    for (key, value) in [
        ("fu", fc.fu),
        ("fo", fc.fo),
        ("sts", fc.sts),
        ("stb", fc.stb),
        ("sza", fc.sza),
        ("szb", fc.szb),
        ("lim", fc.lim),
        ("lvl", fc.lvl),
        ("ofst", fc.ofst),
    ] {
        if let Some(v) = value {
            one(&mut q, key, v.to_string());
        }
    }
    for (key, value) in [
        ("crb", fc.crb),
        ("cra", fc.cra),
        ("ms", fc.ms),
        ("us", fc.us),
        ("exb", fc.exb),
        ("exa", fc.exa),
    ] {
        if let Some(t) = value {
            one(&mut q, key, t.format());
        }
    }
    list(&mut q, "ty", &fc.ty);
    list(&mut q, "chty", &fc.chty);
    list(&mut q, "pty", &fc.pty);
    list(&mut q, "lbl", &fc.lbl);
    list(&mut q, "clbl", &fc.clbl);
    list(&mut q, "palb", &fc.palb);
    list(&mut q, "cty", &fc.cty);
    if let Some(v) = &fc.arp {
        one(&mut q, "arp", v.clone());
    }
    for (name, value) in &fc.atr {
        one(&mut q, name, value.clone());
    }
    q
}

/// The query string (without `?`) of [`query_params`]: a list parameter is one pair,
/// its values joined by `+` (an encoded space).
pub fn query_of(req: &Request) -> String {
    query_params(req)
        .iter()
        .map(|(key, values)| {
            let joined: Vec<String> = values
                .iter()
                .map(|v| utf8_percent_encode(v, QUERY).to_string())
                .collect();
            format!("{}={}", utf8_percent_encode(key, QUERY), joined.join("+"))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn value_of(name: &'static str, value: &str) -> Result<HeaderValue, EncodeError> {
    HeaderValue::from_str(value).map_err(|_| EncodeError::InvalidHeader(name))
}

/// A request primitive as an HTTP request (TS-0009 §6.2-§6.4): the URI is the path and
/// query only (the caller adds the authority it connects to); the body is the content in
/// `ser`, which `Content-Type` and `Accept` name. A missing `rvi` is sent as `3`.
pub fn encode_request(
    req: &Request,
    ser: Serialization,
) -> Result<http::Request<Vec<u8>>, EncodeError> {
    let op = req.op.ok_or(EncodeError::NoOperation)?;
    let method = match op {
        Operation::Create | Operation::Notify => Method::POST,
        Operation::Retrieve => Method::GET,
        Operation::Update => Method::PUT,
        Operation::Delete => Method::DELETE,
    };
    let ty = match (op, req.ty) {
        (Operation::Create, Some(ty)) => Some(ty),
        (Operation::Create, None) => return Err(EncodeError::CreateWithoutType),
        _ => None,
    };
    let path = path_of(&req.to);
    let query = query_of(req);
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let uri = Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| EncodeError::InvalidTarget(e.to_string()))?;
    let body = match &req.pc {
        Some(pc) => ser.encode_pc(pc).map_err(EncodeError::Content)?,
        None => Vec::new(),
    };
    let content_type = match ty {
        Some(ty) => Some(format!("{};ty={ty}", ser.media_type())),
        None if !body.is_empty() || op == Operation::Notify => Some(ser.media_type().into()),
        None => None,
    };
    let mut out = http::Request::new(body);
    *out.method_mut() = method;
    *out.uri_mut() = uri;
    let h = out.headers_mut();
    h.insert(
        http::header::ACCEPT,
        HeaderValue::from_static(ser.media_type()),
    );
    let mut set = |name: &'static str, value: Option<&str>| -> Result<(), EncodeError> {
        if let Some(v) = value {
            h.insert(HeaderName::from_static(name), value_of(name, v)?);
        }
        Ok(())
    };
    set(header::ORIGIN, req.fr.as_deref())?;
    set(header::RI, req.rqi.as_deref())?;
    set(header::RVI, Some(req.rvi.as_deref().unwrap_or("3")))?;
    set(header::GID, req.gid.as_deref())?;
    set(header::OT, req.ot.as_deref())?;
    set(header::RST, req.rset.as_deref())?;
    set(header::RET, req.rqet.as_deref())?;
    set(header::OET, req.oet.as_deref())?;
    set(header::EC, req.ec.as_deref())?;
    set(header::VSI, req.vsi.as_deref())?;
    let rtu = req.rt_nu.as_ref().map(|nu| nu.join("&"));
    set(header::RTU, rtu.as_deref())?;
    if !req.tkns.is_empty() {
        if req.tkns.iter().any(|t| t.is_empty() || t.contains('+')) {
            return Err(EncodeError::InvalidToken);
        }
        set(header::AUTHORIZATION, Some(&req.tkns.join("+")))?;
    }
    set(header::CONTENT_TYPE, content_type.as_deref())?;
    Ok(out)
}

// ---------------------------------------------------------------------------------
// HTTP request → request primitive

/// One header: absent, or exactly one visible-ASCII value (trimmed). Twice, or not
/// text, is 4000.
pub fn single_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, RequestError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RequestError::bad_request(format!(
            "header {name} given twice"
        )));
    }
    let text = first
        .to_str()
        .map_err(|_| RequestError::bad_request(format!("header {name} is not visible ASCII")))?;
    Ok(Some(text.trim().to_owned()))
}

/// What an answer to a request that could not be decoded (or was refused before it
/// was) still echoes: `rqi`, `rvi` and `rset` as far as they can be read (TS-0009
/// 6.4: `X-M2M-RI`, `X-M2M-RVI`, `X-M2M-RST`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Echoed {
    /// `X-M2M-RI`, empty when unreadable.
    pub rqi: String,
    /// `X-M2M-RVI`.
    pub rvi: Option<String>,
    /// `X-M2M-RST`.
    pub rset: Option<String>,
}

impl Echoed {
    /// Reads what can be echoed from `headers`.
    pub fn from_headers(headers: &HeaderMap) -> Echoed {
        let read = |name| single_header(headers, name).ok().flatten();
        Echoed {
            rqi: read(header::RI).unwrap_or_default(),
            rvi: read(header::RVI),
            rset: read(header::RST),
        }
    }

    /// An answer with `rsc` and these values echoed (`rvi` 3 when none was readable).
    pub fn response(&self, rsc: Rsc) -> Response {
        self.echo_into(Response::new(rsc, self.rqi.clone()))
    }

    /// An answer carrying `error` with these values echoed.
    pub fn error(&self, error: &RequestError) -> Response {
        self.echo_into(Response::error(error, self.rqi.clone()))
    }

    fn echo_into(&self, mut r: Response) -> Response {
        r.rvi = Some(self.rvi.clone().unwrap_or_else(|| "3".to_owned()));
        r.rset = self.rset.clone();
        r
    }
}

/// The parsed `Content-Type`, when there is one.
pub fn content_type(headers: &HeaderMap) -> Result<Option<ContentType>, RequestError> {
    single_header(headers, header::CONTENT_TYPE)?
        .map(|raw| media::parse_content_type(&raw))
        .transpose()
}

/// The serialization of the answer: `Accept` (TS-0009 §6.4.3), where `*/*` or no
/// `Accept` means the serialization of the request's body, else JSON; 5207 when nothing
/// the client accepts can be produced.
pub fn answer_serialization(headers: &HeaderMap) -> Result<Serialization, RequestError> {
    let preferred = content_type(headers)?
        .and_then(|ct| ct.serialization)
        .unwrap_or(Serialization::Json);
    let accept = single_header(headers, header::ACCEPT)?;
    media::negotiate_accept(accept.as_deref(), preferred)
}

/// Everything of a request but its body (TS-0009 §6.2, §6.4): method and `ty` to
/// operation, path to `to`, headers and query to parameters; also the parsed
/// `Content-Type` the body is to be read with ([`decode_body`]).
pub fn decode_request_head(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(Request, Option<ContentType>), RequestError> {
    let mut req = Request::default();
    let ct = content_type(headers)?;
    let ty = ct.as_ref().and_then(|ct| ct.ty);
    req.op = Some(match *method {
        Method::GET => Operation::Retrieve,
        Method::PUT => Operation::Update,
        Method::DELETE => Operation::Delete,
        Method::POST if ty.is_some() => Operation::Create,
        Method::POST => Operation::Notify,
        _ => {
            return Err(RequestError::not_allowed(
                "HTTP method not supported by oneM2M",
            ))
        }
    });
    req.ty = ty;
    req.to = target(uri.path())?;
    req.fr = single_header(headers, header::ORIGIN)?;
    req.rqi = single_header(headers, header::RI)?;
    req.rvi = single_header(headers, header::RVI)?;
    req.gid = single_header(headers, header::GID)?;
    req.ot = single_header(headers, header::OT)?;
    req.rset = single_header(headers, header::RST)?;
    req.rqet = single_header(headers, header::RET)?;
    req.oet = single_header(headers, header::OET)?;
    req.ec = single_header(headers, header::EC)?;
    req.vsi = single_header(headers, header::VSI)?;
    if let Some(rtu) = single_header(headers, header::RTU)? {
        req.rt_nu = Some(
            rtu.split('&')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    // An HTTP authentication scheme (`Basic …`, `Bearer …`: a space after the scheme)
    // is the transport's credential, not oneM2M tokens, which never contain a space
    // (TS-0009 6.4, TS-0003 7.3.2). It is left out of `tkns`: it grants nothing and
    // fails nothing (docs/security.md, "Authorization headers").
    if let Some(auth) =
        single_header(headers, header::AUTHORIZATION)?.filter(|a| !is_http_auth_scheme(a))
    {
        req.tkns = auth
            .split('+')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
    }
    answer_serialization(headers)?;
    if let Some(query) = uri.query() {
        apply_query(&mut req, query)?;
    }
    Ok((req, ct))
}

/// Whether an `Authorization` value is an HTTP scheme with credentials (RFC 9110
/// 11.4: `scheme SP credentials`) rather than a `+`-joined list of oneM2M tokens.
pub fn is_http_auth_scheme(value: &str) -> bool {
    value.trim().contains(' ')
}

/// A received body as primitive content, in the serialization `ct` names: none for an
/// empty body; 4015 for a body without a supported `Content-Type`; 4000 when it does not
/// decode.
pub fn decode_body(
    ct: Option<&ContentType>,
    body: &[u8],
) -> Result<Option<serde_json::Value>, RequestError> {
    if body.is_empty() {
        return Ok(None);
    }
    let Some(ct) = ct else {
        return Err(RequestError::UnsupportedMediaType(
            "a body needs a Content-Type".into(),
        ));
    };
    let ser = ct.body_serialization()?;
    Ok(Some(ser.decode_pc(body)?))
}

/// A whole HTTP request as a request primitive: [`decode_request_head`] and
/// [`decode_body`].
pub fn decode_request(http: &http::Request<Vec<u8>>) -> Result<Request, RequestError> {
    let (mut req, ct) = decode_request_head(http.method(), http.uri(), http.headers())?;
    req.pc = decode_body(ct.as_ref(), http.body())?;
    Ok(req)
}

/// Path → `to` (TS-0009 Table 6.2.2.1-1), percent-decoding first.
pub fn target(path: &str) -> Result<String, RequestError> {
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| RequestError::bad_request("path is not UTF-8"))?;
    target_decoded(&decoded)
}

/// [`target`] of a path that is already percent-decoded: `/~/x` is SP-relative `/x`,
/// `/_/x` absolute `//x`, anything else CSE-relative.
pub fn target_decoded(decoded: &str) -> Result<String, RequestError> {
    let rest = decoded.strip_prefix('/').unwrap_or(decoded);
    let to = if let Some(sp) = rest.strip_prefix("~/") {
        format!("/{sp}")
    } else if let Some(abs) = rest.strip_prefix("_/") {
        format!("//{abs}")
    } else if rest == "~" || rest == "_" {
        return Err(RequestError::bad_request("incomplete target address"));
    } else {
        rest.to_owned()
    };
    Ok(to)
}

fn decode_component(s: &str) -> Result<String, RequestError> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| RequestError::bad_request("query is not UTF-8"))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, RequestError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(RequestError::bad_request(format!(
            "{key} must be a boolean"
        ))),
    }
}

fn parse_uint(key: &str, v: &str) -> Result<u64, RequestError> {
    v.parse::<u64>()
        .map_err(|_| RequestError::bad_request(format!("{key} must be an unsigned integer")))
}

fn words(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(' ').filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Query parameters (TS-0009 Table 6.2.2.2-1): `key=value` pairs joined by `&`,
/// percent-decoded, `+` a space; then [`apply_query_params`].
pub fn apply_query(req: &mut Request, query: &str) -> Result<(), RequestError> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode_component(k)?, decode_component(v)?));
    }
    apply_query_params(req, pairs)
}

/// Decoded query parameters (TS-0009 Table 6.2.2.2-1, TS-0008 6.2.2.3), the values of a
/// list parameter separated by spaces: request parameters, then filter criteria, then
/// attribute conditions. A single-valued parameter given twice is a bad request.
pub fn apply_query_params(
    req: &mut Request,
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<(), RequestError> {
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in pairs {
        let multi = matches!(
            key.as_str(),
            "rids"
                | "tids"
                | "ltids"
                | "atrl"
                | "ty"
                | "lbl"
                | "cty"
                | "chty"
                | "pty"
                | "clbl"
                | "palb"
        );
        if !multi {
            if seen.contains(&key) {
                return Err(RequestError::bad_request(format!(
                    "query parameter {key} given twice"
                )));
            }
            seen.push(key.clone());
        }
        if !REQUEST_QUERY_KEYS.contains(&key.as_str()) {
            req.fc.take_query_param(&key, &value)?;
            continue;
        }
        match key.as_str() {
            "rcn" => req.rcn = Some(parse_uint("rcn", &value)?),
            "drt" => req.drt = Some(parse_uint("drt", &value)?),
            "rt" => {
                req.rt = Some(
                    ResponseType::from_number(parse_uint("rt", &value)?)
                        .ok_or_else(|| RequestError::bad_request("rt is not a response type"))?,
                )
            }
            "rp" => req.rp = Some(value),
            "da" => req.da = Some(parse_bool("da", &value)?),
            "tqi" => req.tqi = Some(parse_bool("tqi", &value)?),
            "rids" => req.rids.extend(words(&value)),
            "tids" => req.tids.extend(words(&value)),
            "ltids" => req.ltids.extend(words(&value)),
            "atrl" => req.atrl.extend(words(&value)),
            "asi" | "auri" | "sqi" if parse_bool(&key, &value)? => {
                return Err(RequestError::NotImplemented(
                    format!("{key} is not supported yet").into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Response primitive ↔ HTTP response

/// A response primitive as an HTTP response (TS-0009 §6.3, §6.4): status from the RSC
/// table, `X-M2M-RSC` always, `rqi`/`rvi`/`ot`/`rset`/`vsi`/`cnst` and `Content-Location` when
/// set, the content in `ser`. Content that `ser` cannot represent (a `con` object whose
/// member names are no XML names) is answered 5207 NOT_ACCEPTABLE instead.
pub fn encode_response(resp: &Response, ser: Serialization) -> http::Response<Vec<u8>> {
    let body = match resp.pc.as_ref().map(|pc| ser.encode_pc(pc)) {
        Some(Ok(body)) => body,
        None => Vec::new(),
        Some(Err(why)) => {
            let mut refused = Response::error(
                &RequestError::NotAcceptable(why.to_string().into()),
                resp.rqi.clone(),
            );
            refused.rvi.clone_from(&resp.rvi);
            refused.fr.clone_from(&resp.fr);
            return encode_response(&refused, ser);
        }
    };
    let has_body = !body.is_empty();
    let mut out = http::Response::new(body);
    *out.status_mut() =
        StatusCode::from_u16(resp.rsc.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set(header::RSC, Some(&resp.rsc.code().to_string()));
    set(header::RI, Some(&resp.rqi));
    set(header::RVI, resp.rvi.as_deref());
    set(header::OT, resp.ot.as_deref());
    set(header::RST, resp.rset.as_deref());
    set(header::VSI, resp.vsi.as_deref());
    set(
        header::CTS,
        resp.cnst.map(|s| u16::from(s).to_string()).as_deref(),
    );
    set(header::CONTENT_LOCATION, resp.content_location.as_deref());
    if has_body {
        set(header::CONTENT_TYPE, Some(ser.media_type()));
    }
    out
}

fn response_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ResponseError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| ResponseError::Malformed(format!("{name} is not visible ASCII"))),
    }
}

/// An HTTP response as a response primitive: `X-M2M-RSC` is required and must be a known
/// code; the body is read in the serialization its `Content-Type` names (JSON when it
/// names none).
pub fn decode_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ResponseError> {
    let code = response_header(headers, header::RSC)?
        .ok_or_else(|| {
            ResponseError::Malformed(format!("no X-M2M-RSC (HTTP status {})", status.as_u16()))
        })?
        .parse::<u16>()
        .map_err(|_| ResponseError::Malformed("X-M2M-RSC is not a number".into()))?;
    let rsc = Rsc::from_code(code).ok_or(ResponseError::UnknownRsc(code))?;
    let mut resp = Response::new(
        rsc,
        response_header(headers, header::RI)?.unwrap_or_default(),
    );
    resp.rvi = response_header(headers, header::RVI)?;
    resp.fr = response_header(headers, header::ORIGIN)?;
    resp.ot = response_header(headers, header::OT)?;
    resp.rset = response_header(headers, header::RST)?;
    resp.vsi = response_header(headers, header::VSI)?;
    resp.content_location = response_header(headers, header::CONTENT_LOCATION)?;
    resp.cnst = response_header(headers, header::CTS)?.and_then(|v| v.parse().ok());
    if !body.is_empty() {
        let ser = response_header(headers, header::CONTENT_TYPE)?
            .and_then(|raw| media::parse_content_type(&raw).ok())
            .and_then(|ct| ct.serialization)
            .unwrap_or(Serialization::Json);
        let value = ser
            .decode_pc(body)
            .map_err(|e| ResponseError::Malformed(format!("body: {e}")))?;
        resp.pc = Some(value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests;
