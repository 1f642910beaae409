//! TS-0008 clause 6.2, both directions and without I/O: a CoAP request ↔ a request
//! primitive (method and `ty` to operation, Uri-Path to `to`, Uri-Query to parameters and
//! filter criteria, oneM2M options to the other parameters, Content-Format and payload to
//! content), and a response primitive ↔ a CoAP response (code from
//! [`crate::codes`], oneM2M-RSC always). The query parameters are the HTTP binding's
//! ([`bastion_proto::wire::http::query_params`], [`apply_query_params`]): one list of
//! names for both bindings.
//!
//! Messaging (types, message IDs, tokens, blocks) is not here: see [`crate::endpoint`].

use crate::codes;
use crate::options::{self, onem2m};
use bastion_proto::primitive::ResponseType;
use bastion_proto::wire::http::{apply_query_params, query_params, target_decoded, Echoed};
use bastion_proto::wire::media::MediaKind;
use bastion_proto::wire::Serialization;
use bastion_proto::{Operation, Request, RequestError, Response, Rsc};
use coap_lite::{CoapOption, MessageClass, Packet};

/// Why a CoAP request is not a request primitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A oneM2M error: answered with its RSC and the code Table 6.2.4-1 gives it.
    Request(RequestError),
    /// A CoAP error (RFC 7252 5.9): answered with this CoAP code and RSC 4000.
    Coap { code: u8, reason: String },
}

impl DecodeError {
    fn coap(code: u8, reason: impl Into<String>) -> DecodeError {
        DecodeError::Coap {
            code,
            reason: reason.into(),
        }
    }
}

impl From<RequestError> for DecodeError {
    fn from(e: RequestError) -> DecodeError {
        DecodeError::Request(e)
    }
}

/// How the answer to a request is written: the content format it asked for (or the
/// plain one of its own serialization) and that format's serialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub format: u16,
    pub ser: Serialization,
}

impl Default for Answer {
    fn default() -> Answer {
        Answer {
            format: options::format_of(MediaKind::Plain, Serialization::Json),
            ser: Serialization::Json,
        }
    }
}

/// The values of option `number`.
fn values(packet: &Packet, number: u16) -> impl Iterator<Item = &Vec<u8>> {
    packet
        .get_option(CoapOption::from(number))
        .into_iter()
        .flat_map(|list| list.iter())
}

/// A non-repeatable option: absent, or once. Twice is an unrecognized use of a critical
/// option (RFC 7252 5.4.5): 4.02.
fn single(packet: &Packet, number: u16) -> Result<Option<&[u8]>, DecodeError> {
    let mut all = values(packet, number);
    let first = all.next();
    if all.next().is_some() {
        return Err(DecodeError::coap(
            codes::BAD_OPTION,
            format!("option {number} given twice"),
        ));
    }
    Ok(first.map(Vec::as_slice))
}

fn text(number: u16, bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| RequestError::bad_request(format!("option {number} is not UTF-8 text")).into())
}

fn single_text(packet: &Packet, number: u16) -> Result<Option<String>, DecodeError> {
    single(packet, number)?.map(|b| text(number, b)).transpose()
}

fn single_uint(packet: &Packet, number: u16, max: usize) -> Result<Option<u64>, DecodeError> {
    single(packet, number)?
        .map(|b| {
            options::read_uint(b, max).ok_or_else(|| {
                DecodeError::coap(codes::BAD_OPTION, format!("option {number} is too long"))
            })
        })
        .transpose()
}

/// The numbers of every option `packet` carries.
pub fn option_numbers(packet: &Packet) -> Vec<u16> {
    packet.options().map(|(n, _)| *n).collect()
}

/// Refuses what RFC 7252 5.4.1 and 5.7.2 make the binding refuse before reading anything:
/// an unrecognized critical option (4.02), a proxy request (5.05).
pub fn check_options(packet: &Packet) -> Result<(), DecodeError> {
    match options::first_unknown_critical(option_numbers(packet)) {
        None => Ok(()),
        Some(n @ (options::PROXY_URI | options::PROXY_SCHEME)) => Err(DecodeError::coap(
            codes::PROXYING_NOT_SUPPORTED,
            format!("option {n}: this CSE is no CoAP proxy"),
        )),
        Some(n) => Err(DecodeError::coap(
            codes::BAD_OPTION,
            format!("critical option {n} is not supported"),
        )),
    }
}

/// `to` from the Uri-Path options (TS-0008 Table 6.2.2.3-1): `~` first is SP-relative,
/// `_` first absolute, anything else CSE-relative.
fn target_of(packet: &Packet) -> Result<String, DecodeError> {
    let mut segments = Vec::new();
    for bytes in values(packet, options::URI_PATH) {
        let segment = text(options::URI_PATH, bytes)?;
        if segment.contains('/') {
            return Err(RequestError::bad_request("a Uri-Path segment contains '/'").into());
        }
        segments.push(segment);
    }
    Ok(target_decoded(&format!("/{}", segments.join("/")))?)
}

/// The Uri-Path segments of `to` (TS-0008 Table 6.2.2.3-1), also used for Location-Path.
pub fn path_segments(to: &str) -> Vec<String> {
    let (first, rest) = if let Some(abs) = to.strip_prefix("//") {
        (Some("_"), abs)
    } else if let Some(sp) = to.strip_prefix('/') {
        (Some("~"), sp)
    } else {
        (None, to)
    };
    first
        .into_iter()
        .chain(rest.split('/').filter(|s| !s.is_empty()))
        .map(str::to_owned)
        .collect()
}

/// What the Uri-Query options say: the operation of a non-blocking POST (`op`), the
/// tokens (`tkns`) and the parameters shared with HTTP. A `+` separates the values of a
/// list, as in TS-0009's query.
struct Query {
    op: Option<Operation>,
    tkns: Vec<String>,
    params: Vec<(String, String)>,
}

fn query_of(packet: &Packet) -> Result<Query, DecodeError> {
    let mut query = Query {
        op: None,
        tkns: Vec::new(),
        params: Vec::new(),
    };
    for bytes in values(packet, options::URI_QUERY) {
        let pair = text(options::URI_QUERY, bytes)?;
        let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        match key {
            "op" if query.op.is_some() => {
                return Err(RequestError::bad_request("query parameter op given twice").into())
            }
            "op" => {
                let op = value
                    .parse()
                    .ok()
                    .and_then(Operation::from_number)
                    .ok_or_else(|| RequestError::bad_request("op is not an operation"))?;
                query.op = Some(op);
            }
            "tkns" => query.tkns.extend(
                value
                    .split('+')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            _ => query.params.push((key.to_owned(), value.replace('+', " "))),
        }
    }
    Ok(query)
}

/// The operation (TS-0008 Table 6.2.1-1 and 6.2.2.3): a POST carries `op` in the query
/// when it is non-blocking, else it is CREATE with `ty` and NOTIFY without.
fn operation(method: u8, op: Option<Operation>, ty: Option<u64>) -> Result<Operation, DecodeError> {
    let by_method = match method {
        1 => Operation::Retrieve,
        2 => {
            return Ok(op.unwrap_or(if ty.is_some() {
                Operation::Create
            } else {
                Operation::Notify
            }))
        }
        3 => Operation::Update,
        4 => Operation::Delete,
        _ => return Err(RequestError::not_allowed("CoAP method not supported by oneM2M").into()),
    };
    match op {
        Some(op) if op != by_method => {
            Err(RequestError::bad_request("op in the query contradicts the CoAP method").into())
        }
        _ => Ok(by_method),
    }
}

/// The answer's format: Accept when given (4.06 / 5207 when unsupported), else the plain
/// format of the request's content, else JSON.
fn answer_of(packet: &Packet, body: Option<Serialization>) -> Result<Answer, DecodeError> {
    match single_uint(packet, options::ACCEPT, 2)? {
        Some(format) => {
            let format = u16::try_from(format).unwrap_or(u16::MAX);
            let ser = options::serialization_of(format).ok_or_else(|| {
                RequestError::NotAcceptable(
                    format!("content format {format} is not supported").into(),
                )
            })?;
            Ok(Answer { format, ser })
        }
        None => {
            let ser = body.unwrap_or(Serialization::Json);
            Ok(Answer {
                format: options::format_of(MediaKind::Plain, ser),
                ser,
            })
        }
    }
}

/// A CoAP request (its whole payload, reassembled if it came in blocks) as a request
/// primitive, and how to write the answer.
pub fn decode_request(packet: &Packet, payload: &[u8]) -> Result<(Request, Answer), DecodeError> {
    check_options(packet)?;
    let mut req = Request::default();
    let format = single_uint(packet, options::CONTENT_FORMAT, 2)?;
    let body = match format {
        None => None,
        Some(f) => Some(
            u16::try_from(f)
                .ok()
                .and_then(options::serialization_of)
                .ok_or_else(|| {
                    RequestError::UnsupportedMediaType(
                        format!("content format {f} is not supported").into(),
                    )
                })?,
        ),
    };
    let answer = answer_of(packet, body)?;
    req.ty = single_uint(packet, onem2m::TY, 2)?;
    let query = query_of(packet)?;
    let method: u8 = packet.header.code.into();
    req.op = Some(operation(method, query.op, req.ty)?);
    req.to = target_of(packet)?;
    req.fr = single_text(packet, onem2m::FR)?;
    req.rqi = single_text(packet, onem2m::RQI)?;
    req.rvi = single_text(packet, onem2m::RVI)?;
    req.ot = single_text(packet, onem2m::OT)?;
    req.rqet = single_text(packet, onem2m::RQET)?;
    req.rset = single_text(packet, onem2m::RSET)?;
    req.oet = single_text(packet, onem2m::OET)?;
    req.gid = single_text(packet, onem2m::GID)?;
    req.vsi = single_text(packet, onem2m::VSI)?;
    req.ec = single_uint(packet, onem2m::EC, 1)?.map(|n| n.to_string());
    if let Some(rturi) = single_text(packet, onem2m::RTURI)? {
        req.rt_nu = Some(
            rturi
                .split('&')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    req.tkns = query.tkns;
    apply_query_params(&mut req, query.params)?;
    if !payload.is_empty() {
        let ser = body.ok_or_else(|| {
            RequestError::UnsupportedMediaType("a payload needs a Content-Format".into())
        })?;
        req.pc = Some(ser.decode_pc(payload).map_err(RequestError::from)?);
    }
    Ok((req, answer))
}

fn add(packet: &mut Packet, number: u16, value: Vec<u8>) {
    packet.add_option(CoapOption::from(number), value);
}

fn add_text(packet: &mut Packet, number: u16, value: Option<&str>) {
    if let Some(v) = value {
        add(packet, number, v.as_bytes().to_vec());
    }
}

/// A response primitive to an `op` request as a CoAP response (header type, message ID
/// and token are the messaging layer's). Content `answer` cannot represent is answered
/// 5207 instead; a successful NOTIFY's answer has no payload (Table 6.2.4-1).
pub fn encode_response(resp: &Response, op: Option<Operation>, answer: Answer) -> Packet {
    let notified = op == Some(Operation::Notify) && resp.rsc == Rsc::Ok;
    let payload = match resp.pc.as_ref().filter(|_| !notified) {
        None => Vec::new(),
        Some(pc) => match answer.ser.encode_pc(pc) {
            Ok(bytes) => bytes,
            Err(why) => {
                let mut refused = Response::error(
                    &RequestError::NotAcceptable(why.to_string().into()),
                    resp.rqi.clone(),
                );
                refused.rvi.clone_from(&resp.rvi);
                return encode_response(&refused, op, answer);
            }
        },
    };
    let request_resource = request_reference(resp);
    let mut packet = Packet::new();
    packet.header.code =
        MessageClass::from(codes::coap_code(resp.rsc, op, request_resource.is_some()));
    add(
        &mut packet,
        onem2m::RSC,
        options::write_uint(resp.rsc.code().into()),
    );
    // TS-0008 6.4: Max-Age 0 disables caching, for the complete oneM2M mapping (every
    // request reaches the CSE and its access control).
    add(&mut packet, options::MAX_AGE, options::write_uint(0));
    add_text(&mut packet, onem2m::RQI, Some(&resp.rqi));
    add_text(&mut packet, onem2m::RVI, resp.rvi.as_deref());
    add_text(&mut packet, onem2m::OT, resp.ot.as_deref());
    add_text(&mut packet, onem2m::RSET, resp.rset.as_deref());
    add_text(&mut packet, onem2m::VSI, resp.vsi.as_deref());
    if let Some(cnst) = resp.cnst {
        add(&mut packet, onem2m::CTS, options::write_uint(cnst.into()));
    }
    // TS-0008 6.3.2/6.3.3: an accepted non-blocking request names its <request> resource
    // in Location-Path options too.
    if let Some(location) = resp.content_location.as_deref().or(request_resource) {
        for segment in path_segments(location) {
            add(&mut packet, options::LOCATION_PATH, segment.into_bytes());
        }
    }
    if !payload.is_empty() {
        add(
            &mut packet,
            options::CONTENT_FORMAT,
            options::write_uint(answer.format.into()),
        );
    }
    packet.payload = payload;
    packet
}

/// What the answer to a request that could not be mapped still echoes: the rqi, rvi and
/// rset options, as far as they can be read (as TS-0009 echoes its headers).
pub fn echoed(packet: &Packet) -> Echoed {
    let read = |number| single_text(packet, number).ok().flatten();
    Echoed {
        rqi: read(onem2m::RQI).unwrap_or_default(),
        rvi: read(onem2m::RVI),
        rset: read(onem2m::RSET),
    }
}

/// The `<request>` resource an accepted non-blocking request names (`m2m:uri`).
pub fn request_reference(resp: &Response) -> Option<&str> {
    if !matches!(
        resp.rsc,
        Rsc::AcceptedNonBlockingSynch | Rsc::AcceptedNonBlockingAsynch
    ) {
        return None;
    }
    resp.pc.as_ref()?.get("m2m:uri")?.as_str()
}

/// A CoAP-level refusal ([`DecodeError::Coap`]): `code`, RSC 4000, the reason as `dbg`,
/// what `echo` holds echoed.
pub fn refusal(code: u8, reason: &str, echo: &Echoed, answer: Answer) -> Packet {
    let bad = RequestError::bad_request(reason.to_owned());
    let mut packet = encode_response(&echo.error(&bad), None, answer);
    packet.header.code = MessageClass::from(code);
    packet
}

/// Why a request primitive cannot be sent over CoAP (the sender's mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("op missing")]
    NoOperation,
    #[error("CREATE needs ty")]
    CreateWithoutType,
    #[error("{0}")]
    Content(String),
}

/// A request primitive as a CoAP request to `path` (the target's path segments, or those
/// of `to` when the target has none): TS-0008 6.2. A request that is not blocking is a
/// POST with `op` in the query (6.2.1).
pub fn encode_request(
    req: &Request,
    path: Option<&str>,
    ser: Serialization,
) -> Result<Packet, EncodeError> {
    let op = req.op.ok_or(EncodeError::NoOperation)?;
    if op == Operation::Create && req.ty.is_none() {
        return Err(EncodeError::CreateWithoutType);
    }
    let blocking = req
        .rt
        .is_none_or(|rt| matches!(rt, ResponseType::Blocking | ResponseType::NoResponse));
    let method: u8 = match op {
        _ if !blocking => 2,
        Operation::Create | Operation::Notify => 2,
        Operation::Retrieve => 1,
        Operation::Update => 3,
        Operation::Delete => 4,
    };
    let mut packet = Packet::new();
    packet.header.code = MessageClass::from(method);
    let segments = match path {
        Some(p) => p
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        None => path_segments(&req.to),
    };
    for segment in segments {
        add(&mut packet, options::URI_PATH, segment.into_bytes());
    }
    if !blocking {
        add(
            &mut packet,
            options::URI_QUERY,
            format!("op={}", op.number()).into_bytes(),
        );
    }
    for (key, values) in query_params(req) {
        add(
            &mut packet,
            options::URI_QUERY,
            format!("{key}={}", values.join("+")).into_bytes(),
        );
    }
    if !req.tkns.is_empty() {
        add(
            &mut packet,
            options::URI_QUERY,
            format!("tkns={}", req.tkns.join("+")).into_bytes(),
        );
    }
    add_text(&mut packet, onem2m::FR, req.fr.as_deref());
    add_text(&mut packet, onem2m::RQI, req.rqi.as_deref());
    add_text(
        &mut packet,
        onem2m::RVI,
        Some(req.rvi.as_deref().unwrap_or("3")),
    );
    add_text(&mut packet, onem2m::OT, req.ot.as_deref());
    add_text(&mut packet, onem2m::RQET, req.rqet.as_deref());
    add_text(&mut packet, onem2m::RSET, req.rset.as_deref());
    add_text(&mut packet, onem2m::OET, req.oet.as_deref());
    add_text(&mut packet, onem2m::GID, req.gid.as_deref());
    add_text(&mut packet, onem2m::VSI, req.vsi.as_deref());
    if let Some(ec) = req.ec.as_deref().and_then(|e| e.parse::<u8>().ok()) {
        add(&mut packet, onem2m::EC, options::write_uint(ec.into()));
    }
    if let Some(nu) = &req.rt_nu {
        add_text(&mut packet, onem2m::RTURI, Some(&nu.join("&")));
    }
    if let Some(ty) = req.ty.filter(|_| op == Operation::Create) {
        add(&mut packet, onem2m::TY, options::write_uint(ty));
    }
    add(
        &mut packet,
        options::ACCEPT,
        options::write_uint(options::format_of(MediaKind::Plain, ser).into()),
    );
    if let Some(pc) = &req.pc {
        packet.payload = ser
            .encode_pc(pc)
            .map_err(|e| EncodeError::Content(e.to_string()))?;
        add(
            &mut packet,
            options::CONTENT_FORMAT,
            options::write_uint(options::format_of(MediaKind::Plain, ser).into()),
        );
    }
    Ok(packet)
}

/// Why a CoAP response is not a oneM2M response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("unknown response status code {0}")]
    UnknownRsc(u64),
}

/// A CoAP response as a response primitive: oneM2M-RSC is required and must be a known
/// code; the payload is read in its Content-Format (JSON when none is named).
pub fn decode_response(packet: &Packet) -> Result<Response, ResponseError> {
    let malformed = |e: DecodeError| ResponseError::Malformed(format!("{e:?}"));
    let code = single_uint(packet, onem2m::RSC, 2)
        .map_err(malformed)?
        .ok_or_else(|| {
            ResponseError::Malformed(format!(
                "no oneM2M-RSC option (CoAP {})",
                codes::dotted(packet.header.code.into())
            ))
        })?;
    let rsc = u16::try_from(code)
        .ok()
        .and_then(Rsc::from_code)
        .ok_or(ResponseError::UnknownRsc(code))?;
    let mut resp = Response::new(
        rsc,
        single_text(packet, onem2m::RQI)
            .map_err(malformed)?
            .unwrap_or_default(),
    );
    resp.rvi = single_text(packet, onem2m::RVI).map_err(malformed)?;
    resp.ot = single_text(packet, onem2m::OT).map_err(malformed)?;
    resp.rset = single_text(packet, onem2m::RSET).map_err(malformed)?;
    resp.vsi = single_text(packet, onem2m::VSI).map_err(malformed)?;
    if !packet.payload.is_empty() {
        let ser = single_uint(packet, options::CONTENT_FORMAT, 2)
            .map_err(malformed)?
            .and_then(|f| u16::try_from(f).ok())
            .and_then(options::serialization_of)
            .unwrap_or(Serialization::Json);
        let value = ser
            .decode_pc(&packet.payload)
            .map_err(|e| ResponseError::Malformed(format!("payload: {e}")))?;
        resp.pc = Some(value);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests;
