//! [`CoapEndpoint`]: the CoAP messaging layer of RFC 7252 and RFC 7959 over any datagram
//! transport, without sockets. It turns one received datagram into the datagrams to send
//! back ([`CoapEndpoint::handle_datagram`]):
//!
//! ```text
//!   datagram ─► size (4.13) ─► header (RST to a malformed CON) ─► de-duplication
//!     request:  options (4.02) ─► Block1 reassembly (2.31 / 4.08 / 4.13) ─► mapping
//!               ─► identity (association or none; 4107 revoked) ─► Cse::handle
//!               ─► response ─► Block2 (first block, rest kept) ─► ACK (piggybacked) / NON
//!     response or empty ACK/RST: handed to the outbound requests waiting for it
//!     empty CON (ping): RST
//! ```
//!
//! Responses are piggybacked on the ACK of a confirmable request, and sent as
//! non-confirmable messages to non-confirmable ones (TS-0008 6.3.1). A retransmitted
//! request gets the same answer again, one still being handled gets nothing (the peer
//! retransmits until it is answered).

use crate::buffers::{Blocks, BufferError, Exchanges, Seen};
use crate::mapping::{self, Answer, DecodeError};
use crate::options;
use crate::outbound::Outbound;
use crate::{codes, CoapConfig};
use bastion_core::throttle::Throttle;
use bastion_core::{Cse, Listener, RequestContext};
use bastion_proto::wire::http::Echoed;
use bastion_proto::{Operation, RequestError, Response};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A block option's value (RFC 7959 2.2): block number, more flag and size exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub num: u32,
    pub more: bool,
    pub szx: u8,
}

impl Block {
    /// Reads a Block1/Block2 value; `None` for more than 3 bytes or SZX 7 (BERT, which
    /// needs CoAP over TCP).
    pub fn parse(bytes: &[u8]) -> Option<Block> {
        let n = options::read_uint(bytes, 3)?;
        let szx = (n & 0x7) as u8;
        (szx < 7).then_some(Block {
            num: (n >> 4) as u32,
            more: n & 0x8 != 0,
            szx,
        })
    }

    pub fn size(self) -> usize {
        16 << self.szx
    }

    pub fn encode(self) -> Vec<u8> {
        options::write_uint(
            (u64::from(self.num) << 4) | (u64::from(self.more) << 3) | u64::from(self.szx),
        )
    }

    /// The largest exponent whose block size is at most `bytes` (16 at least).
    pub fn szx_for(bytes: usize) -> u8 {
        (0..=6u8).rev().find(|s| 16usize << s <= bytes).unwrap_or(0)
    }
}

/// The CoAP message handling of one listener; cheap to share behind an `Arc`.
pub struct CoapEndpoint {
    cse: Arc<Cse>,
    config: CoapConfig,
    listener: Listener,
    exchanges: Mutex<Exchanges>,
    blocks: Mutex<Blocks>,
    outbound: Arc<Outbound>,
    next_mid: Mutex<u16>,
    warn_evicted: Throttle,
    warn_buffers: Throttle,
}

/// A request as the endpoint handles it: who sent it and over what.
struct Received<'a> {
    packet: Packet,
    peer: SocketAddr,
    association: Option<&'a bastion_tls::Association>,
}

impl CoapEndpoint {
    /// An endpoint serving `cse` for requests arriving on `listener`.
    pub fn new(cse: Arc<Cse>, config: CoapConfig, listener: Listener) -> CoapEndpoint {
        let outbound = Arc::new(Outbound::new(config.max_pending));
        CoapEndpoint::with_outbound(cse, config, listener, outbound)
    }

    pub(crate) fn with_outbound(
        cse: Arc<Cse>,
        config: CoapConfig,
        listener: Listener,
        outbound: Arc<Outbound>,
    ) -> CoapEndpoint {
        CoapEndpoint {
            exchanges: Mutex::new(Exchanges::new(config.max_exchanges)),
            blocks: Mutex::new(Blocks::new(
                config.max_request_bytes,
                config.max_buffered_per_peer,
                config.max_buffered_bytes,
                config.block_lifetime,
            )),
            cse,
            listener,
            outbound,
            next_mid: Mutex::new(rand::random()),
            warn_evicted: Throttle::per_minute(),
            warn_buffers: Throttle::per_minute(),
            config,
        }
    }

    /// Handles one datagram from `peer`, received inside `association` when it came
    /// through a DTLS session (`None` over plain UDP), and returns the datagrams to send
    /// back to `peer` (none, or one). Never panics on any input.
    pub async fn handle_datagram(
        &self,
        datagram: &[u8],
        peer: SocketAddr,
        association: Option<&bastion_tls::Association>,
    ) -> Vec<Vec<u8>> {
        if datagram.len() < 4 || datagram[0] >> 6 != 1 {
            // RFC 7252 3: too short for a header, or another version: silently ignored.
            return Vec::new();
        }
        if datagram.len() > self.config.max_datagram_bytes {
            return self.too_large(datagram).into_iter().collect();
        }
        let packet = match Packet::from_bytes(datagram) {
            Ok(p) => p,
            Err(_) => return self.reject(datagram).into_iter().collect(),
        };
        let kind = packet.header.get_type();
        match packet.header.code {
            MessageClass::Empty => self.empty(&packet, peer, kind).into_iter().collect(),
            MessageClass::Request(_)
                if matches!(kind, MessageType::Confirmable | MessageType::NonConfirmable) =>
            {
                let received = Received {
                    packet,
                    peer,
                    association,
                };
                self.request(received).await.into_iter().collect()
            }
            MessageClass::Response(_) => self.response(packet, peer, kind).into_iter().collect(),
            _ => self.reject(datagram).into_iter().collect(),
        }
    }

    /// RFC 7252 4.2/4.3: a confirmable or non-confirmable message that cannot be
    /// processed is rejected with a Reset (an ACK or RST never is).
    fn reject(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        let kind = (datagram[0] >> 4) & 0x3;
        (kind <= 1).then(|| reset(u16::from_be_bytes([datagram[2], datagram[3]])))
    }

    /// A request over the datagram size limit: 4.13 with Size1 naming the limit when it
    /// is a confirmable request whose token can be read, else dropped.
    fn too_large(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        let kind = (datagram[0] >> 4) & 0x3;
        let tkl = usize::from(datagram[0] & 0xf);
        let request = (1..=31).contains(&datagram[1]);
        if kind != 0 || !request || tkl > 8 || datagram.len() < 4 + tkl {
            return None;
        }
        let mut answer = mapping::refusal(
            codes::REQUEST_ENTITY_TOO_LARGE,
            "datagram over the size limit",
            &Echoed::default(),
            Answer::default(),
        );
        answer.add_option(
            CoapOption::Size1,
            options::write_uint(self.config.max_datagram_bytes as u64),
        );
        answer.header.set_type(MessageType::Acknowledgement);
        answer.header.message_id = u16::from_be_bytes([datagram[2], datagram[3]]);
        answer.set_token(datagram[4..4 + tkl].to_vec());
        self.serialize(&answer)
    }

    /// Empty messages: a CON is a ping, answered by RST (RFC 7252 4.3); an ACK or RST
    /// concerns a request this CSE sent.
    fn empty(&self, packet: &Packet, peer: SocketAddr, kind: MessageType) -> Option<Vec<u8>> {
        let mid = packet.header.message_id;
        match kind {
            MessageType::Confirmable => Some(reset(mid)),
            MessageType::Acknowledgement => {
                self.outbound.acknowledged(peer, mid);
                None
            }
            MessageType::Reset => {
                self.outbound.reset(peer, mid);
                None
            }
            MessageType::NonConfirmable => None,
        }
    }

    /// A response to a request this CSE sent: a confirmable one is acknowledged.
    fn response(&self, packet: Packet, peer: SocketAddr, kind: MessageType) -> Option<Vec<u8>> {
        let mid = packet.header.message_id;
        let known = self.outbound.answered(peer, packet);
        match kind {
            MessageType::Confirmable if known => Some(ack(mid)),
            MessageType::Confirmable => Some(reset(mid)),
            _ => None,
        }
    }

    fn mid(&self) -> u16 {
        let mut next = self.next_mid.lock().unwrap_or_else(|e| e.into_inner());
        *next = next.wrapping_add(1);
        *next
    }

    /// A request: de-duplicated, handled, answered in the message type its own asks for.
    async fn request(&self, received: Received<'_>) -> Option<Vec<u8>> {
        let peer = received.peer;
        let mid = received.packet.header.message_id;
        let confirmable = received.packet.header.get_type() == MessageType::Confirmable;
        let (seen, evicted) = self
            .exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .begin(peer, mid, Instant::now());
        if evicted && self.warn_evicted.ready() {
            tracing::warn!(
                limit = self.config.max_exchanges,
                "CoAP de-duplication table full; the oldest message IDs are forgotten \
                 (logged once a minute)"
            );
        }
        match seen {
            Some(Seen::Answered(bytes)) if confirmable => return bytes,
            Some(_) => return None,
            None => {}
        }
        let token = received.packet.get_token().to_vec();
        let mut answer = self.answer(&received).await;
        answer.set_token(token);
        if confirmable {
            answer.header.set_type(MessageType::Acknowledgement);
            answer.header.message_id = mid;
        } else {
            answer.header.set_type(MessageType::NonConfirmable);
            answer.header.message_id = self.mid();
        }
        let bytes = self.serialize(&answer);
        self.exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered(peer, mid, bytes.clone());
        bytes
    }

    fn serialize(&self, packet: &Packet) -> Option<Vec<u8>> {
        match packet.to_bytes_unlimited() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "a CoAP answer could not be encoded");
                None
            }
        }
    }

    /// The answer to a request (header type, message ID and token are set by the
    /// caller).
    async fn answer(&self, received: &Received<'_>) -> Packet {
        let packet = &received.packet;
        if let Err(e) = mapping::check_options(packet) {
            return refused(&e, &mapping::echoed(packet));
        }
        // The transfer's key is built only when blocks are involved: most requests and
        // answers fit one datagram, and building it formats the peer's address.
        let key = || exchange_key(packet, received.peer);
        let block2 = match packet.get_first_option(CoapOption::Block2) {
            Some(v) => match Block::parse(v) {
                Some(b) => Some(b),
                None => return bad_option("Block2"),
            },
            None => None,
        };
        if let Some(b) = block2.filter(|b| b.num > 0) {
            if let Some(answer) = self.later_block(&key(), b) {
                return answer;
            }
            if packet.header.code != MessageClass::from(1) {
                return refusal_of(codes::REQUEST_ENTITY_INCOMPLETE, "no such response block");
            }
        }
        let body = match self.block1(packet, received.peer, key) {
            Ok(Body::Whole(body)) => body,
            Ok(Body::Continue(answer)) => return answer,
            Err(answer) => return answer,
        };
        let (answer, response, op) = match self.handle(received, &body).await {
            Ok(handled) => handled,
            Err(refusal) => return refusal,
        };
        let mut out = mapping::encode_response(&response, op, answer);
        if let Some(b1) = packet.get_first_option(CoapOption::Block1) {
            out.add_option(CoapOption::Block1, b1.clone());
        }
        self.first_block(out, key, received.peer, block2)
    }

    /// The request mapped and handed to the CSE, with how its answer is written.
    async fn handle(
        &self,
        received: &Received<'_>,
        body: &[u8],
    ) -> Result<(Answer, Response, Option<Operation>), Packet> {
        let (req, answer) = match mapping::decode_request(&received.packet, body) {
            Ok(decoded) => decoded,
            Err(e) => return Err(refused(&e, &mapping::echoed(&received.packet))),
        };
        let op = req.op;
        let rqi = req.rqi.clone().unwrap_or_default();
        let identity = match received.association.map(|a| a.originator()) {
            None => None,
            Some(Ok(originator)) => Some(originator.to_owned()),
            Some(Err(why)) => {
                tracing::info!(peer = %received.peer, reason = %why, "request refused: 4107");
                let e = RequestError::SecurityAssociationRequired(why.to_string().into());
                return Ok((answer, Response::error(&e, rqi), op));
            }
        };
        // A datagram's source address proves nothing: outside an association the admin
        // is refused, as over MQTT (the loopback HTTP listener is where it is honoured).
        if identity.is_none() && req.fr.as_deref().is_some_and(|fr| self.cse.is_admin(fr)) {
            let e = RequestError::NotAuthenticated(
                "the admin is not accepted over CoAP without a security association".into(),
            );
            return Ok((answer, Response::error(&e, rqi), op));
        }
        let ctx = RequestContext::new(Some(received.peer), identity).on(self.listener);
        let to = req.fr.clone();
        let mut response = self.cse.handle(req, &ctx).await;
        response.to = to;
        Ok((answer, response, op))
    }
}

/// What the Block1 option of a request leaves to handle.
enum Body {
    /// The whole body: the payload, or the reassembled blocks.
    Whole(Vec<u8>),
    /// A block was buffered; answer 2.31 Continue.
    Continue(Packet),
}

impl CoapEndpoint {
    /// RFC 7959 2.5: buffers a block of a request body; the last one yields the body.
    fn block1(
        &self,
        packet: &Packet,
        peer: SocketAddr,
        key: impl FnOnce() -> Vec<u8>,
    ) -> Result<Body, Packet> {
        let Some(raw) = packet.get_first_option(CoapOption::Block1) else {
            return Ok(Body::Whole(packet.payload.clone()));
        };
        let key = &key();
        let block = Block::parse(raw).ok_or_else(|| bad_option("Block1"))?;
        if block.more && packet.payload.len() != block.size() {
            return Err(refusal_of(
                codes::BAD_REQUEST,
                "a Block1 block of the wrong size",
            ));
        }
        if let Some(size1) = packet.get_first_option(CoapOption::Size1) {
            let announced = options::read_uint(size1, 4).unwrap_or(u64::MAX);
            if announced > self.config.max_request_bytes as u64 {
                return Err(self.body_too_large());
            }
        }
        let offset = block.num as usize * block.size();
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        match blocks.append(key, peer, offset, &packet.payload, Instant::now()) {
            Ok(()) => {}
            Err(BufferError::OutOfOrder) => {
                return Err(refusal_of(
                    codes::REQUEST_ENTITY_INCOMPLETE,
                    "a Block1 block out of order",
                ))
            }
            Err(BufferError::TooLarge(_)) => return Err(self.body_too_large()),
            Err(BufferError::Exhausted) => {
                drop(blocks);
                self.buffers_full();
                return Err(refusal_of(
                    codes::SERVICE_UNAVAILABLE,
                    "blockwise buffers are full; retry later",
                ));
            }
        }
        if block.more {
            let mut answer = Packet::new();
            answer.header.code = MessageClass::from(codes::CONTINUE);
            answer.add_option(CoapOption::Block1, block.encode());
            return Ok(Body::Continue(answer));
        }
        Ok(Body::Whole(blocks.remove(key).unwrap_or_default()))
    }

    fn body_too_large(&self) -> Packet {
        let mut answer = refusal_of(
            codes::REQUEST_ENTITY_TOO_LARGE,
            "request body over the size limit",
        );
        answer.add_option(
            CoapOption::Size1,
            options::write_uint(self.config.max_request_bytes as u64),
        );
        answer
    }

    fn buffers_full(&self) {
        if self.warn_buffers.ready() {
            tracing::warn!(
                per_peer = self.config.max_buffered_per_peer,
                total = self.config.max_buffered_bytes,
                "CoAP blockwise buffers full; transfers are refused (logged once a minute)"
            );
        }
    }

    /// RFC 7959 2.4: a response larger than the block size goes out as its first block,
    /// the whole body kept for the requests of the next ones. If it cannot be kept, a
    /// GET is simply handled again for each block.
    fn first_block(
        &self,
        mut answer: Packet,
        key: impl FnOnce() -> Vec<u8>,
        peer: SocketAddr,
        asked: Option<Block>,
    ) -> Packet {
        let limit = self
            .config
            .block_size
            .min(asked.map_or(usize::MAX, Block::size));
        let szx = Block::szx_for(limit);
        let size = 16usize << szx;
        let num = asked.map_or(0, |b| b.num);
        if answer.payload.len() <= size && num == 0 {
            return answer;
        }
        let key = key();
        let body = std::mem::take(&mut answer.payload);
        let head = answer.to_bytes_unlimited().unwrap_or_default();
        let sliced = slice(answer, &body, num, szx);
        let now = Instant::now();
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let kept = blocks
            .keep(&head_key(&key), peer, head, now)
            .and_then(|()| blocks.keep(&block2_key(&key), peer, body, now));
        drop(blocks);
        if kept.is_err() {
            self.buffers_full();
        }
        sliced
    }

    /// A later block of a response kept by [`CoapEndpoint::first_block`].
    fn later_block(&self, key: &[u8], asked: Block) -> Option<Packet> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let body = blocks.get(&block2_key(key), Instant::now())?.to_vec();
        drop(blocks);
        let head = self.kept_head(key)?;
        Some(slice(
            head,
            &body,
            asked.num,
            asked.szx.min(Block::szx_for(self.config.block_size)),
        ))
    }

    /// The options of a kept response (its code and oneM2M options) are kept beside
    /// its body.
    fn kept_head(&self, key: &[u8]) -> Option<Packet> {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = blocks.get(&head_key(key), Instant::now())?.to_vec();
        Packet::from_bytes(&bytes).ok()
    }
}

/// Block `num` of `body` at size exponent `szx`, on the head `answer`; 4.02 when the
/// block lies past the end.
fn slice(mut answer: Packet, body: &[u8], num: u32, szx: u8) -> Packet {
    let size = 16usize << szx;
    let start = (num as usize).saturating_mul(size);
    if start >= body.len() && !(start == 0 && body.is_empty()) {
        return refusal_of(codes::BAD_OPTION, "Block2 past the end of the response");
    }
    let end = (start + size).min(body.len());
    answer.clear_option(CoapOption::Block2);
    answer.add_option(
        CoapOption::Block2,
        Block {
            num,
            more: end < body.len(),
            szx,
        }
        .encode(),
    );
    answer.clear_option(CoapOption::Size2);
    answer.add_option(CoapOption::Size2, options::write_uint(body.len() as u64));
    answer.payload = body[start..end].to_vec();
    answer
}

/// What identifies one blockwise transfer (RFC 7959 2.4/2.5): the peer, the method and
/// every option but the block and size ones.
fn exchange_key(packet: &Packet, peer: SocketAddr) -> Vec<u8> {
    let mut key = peer.to_string().into_bytes();
    key.push(packet.header.code.into());
    for (number, values) in packet.options() {
        if matches!(
            *number,
            options::BLOCK1 | options::BLOCK2 | options::SIZE1 | options::SIZE2
        ) {
            continue;
        }
        for v in values {
            key.extend_from_slice(&number.to_be_bytes());
            key.extend_from_slice(&(v.len() as u16).to_be_bytes());
            key.extend_from_slice(v);
        }
    }
    key
}

fn block2_key(key: &[u8]) -> Vec<u8> {
    let mut k = b"2:".to_vec();
    k.extend_from_slice(key);
    k
}

fn head_key(key: &[u8]) -> Vec<u8> {
    let mut k = b"h:".to_vec();
    k.extend_from_slice(key);
    k
}

/// The answer to a request that could not be mapped, echoing what can be read of it.
fn refused(e: &DecodeError, echo: &Echoed) -> Packet {
    match e {
        DecodeError::Coap { code, reason } => {
            mapping::refusal(*code, reason, echo, Answer::default())
        }
        DecodeError::Request(e) => {
            mapping::encode_response(&echo.error(e), None, Answer::default())
        }
    }
}

fn refusal_of(code: u8, reason: &str) -> Packet {
    mapping::refusal(code, reason, &Echoed::default(), Answer::default())
}

fn bad_option(name: &str) -> Packet {
    refusal_of(codes::BAD_OPTION, &format!("{name} is malformed"))
}

/// An empty message of `kind` with `mid`.
fn empty(kind: MessageType, mid: u16) -> Vec<u8> {
    let mut p = Packet::new();
    p.header.set_type(kind);
    p.header.message_id = mid;
    p.header.code = MessageClass::Empty;
    p.to_bytes_unlimited().unwrap_or_default()
}

pub(crate) fn reset(mid: u16) -> Vec<u8> {
    empty(MessageType::Reset, mid)
}

pub(crate) fn ack(mid: u16) -> Vec<u8> {
    empty(MessageType::Acknowledgement, mid)
}

#[cfg(test)]
mod tests;
