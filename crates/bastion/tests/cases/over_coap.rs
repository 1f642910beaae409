//! The CoAP runner: each case gets a fresh `bastion serve` with a `[coap]` listener, and
//! each step travels as a TS-0008 CoAP request in one serialization, written by the
//! binding's own mapping (`bastion_coap::mapping`) and sent by a small client of this
//! file: confirmable, piggybacked answer, Block1 for large requests and Block2 for large
//! answers (RFC 7959). Besides the case's checks, every answer's CoAP code must be the
//! one TS-0008 Table 6.2.4-1 gives its RSC.

use super::format::{Case, Omit, Op, Step};
use super::{member_values, query_text, rvi_echo_problem, sent_rvi, Outcome, Target};
use crate::common::Server;
use bastion_coap::{codes, mapping, Block};
use bastion_proto::wire::Serialization;
use bastion_proto::{Operation, Request};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;

/// How long a message waits for its answer before it is sent again (at most 3 times).
const ANSWER: Duration = Duration::from_secs(5);
/// Message IDs of the runner's messages (tokens are derived from them).
static NEXT_MID: AtomicU16 = AtomicU16::new(1);
/// The block size of the runner's own Block1 requests.
const BLOCK: usize = 1024;

/// Why a case cannot travel over plain CoAP, if it cannot: the admin's ID is refused
/// outside a security association (docs/bindings.md, "CoAP").
pub fn cannot_carry(case: &Case) -> Option<&'static str> {
    let mut steps = case.setup.iter().chain([&case.request]).chain(&case.after);
    steps
        .any(|s| s.fr.as_deref() == Some(crate::common::ADMIN))
        .then_some("the admin's ID is refused over plain CoAP")
}

/// A fresh binary serving CoAP, spoken to in one serialization.
pub struct OverCoap {
    /// Kept for as long as the case runs (dropping it stops the binary).
    _server: Server,
    addr: SocketAddr,
    serialization: Serialization,
    socket: UdpSocket,
}

impl OverCoap {
    pub async fn start(serialization: Serialization) -> OverCoap {
        let server = tokio::task::spawn_blocking(|| {
            Server::start_with_config("[coap]\nlisten = \"127.0.0.1:0\"\n")
        })
        .await
        .expect("start the binary");
        let addr = coap_addr(&server);
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        OverCoap {
            _server: server,
            addr,
            serialization,
            socket,
        }
    }

    /// Sends `packet` as a confirmable message until its piggybacked answer comes.
    async fn exchange(&self, mut packet: Packet) -> Result<Packet, String> {
        let mid = NEXT_MID.fetch_add(1, Ordering::Relaxed);
        let token = (u32::from(mid) ^ std::process::id()).to_be_bytes();
        packet.header.set_type(MessageType::Confirmable);
        packet.header.message_id = mid;
        packet.set_token(token.to_vec());
        let bytes = packet.to_bytes_unlimited().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65_536];
        for _ in 0..3 {
            self.socket
                .send_to(&bytes, self.addr)
                .await
                .map_err(|e| e.to_string())?;
            let deadline = tokio::time::Instant::now() + ANSWER;
            while let Ok(Ok(n)) =
                tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await
            {
                let Ok(answer) = Packet::from_bytes(&buf[..n]) else {
                    continue;
                };
                if answer.header.message_id == mid && answer.get_token() == token {
                    return Ok(answer);
                }
            }
        }
        Err(format!("no answer within 3 × {ANSWER:?}"))
    }

    /// Sends a request whose payload may need Block1 blocks, then fetches the answer's
    /// further Block2 blocks; the answer's payload is the whole body.
    async fn request(&self, packet: Packet) -> Result<Packet, String> {
        let body = packet.payload.clone();
        let mut answer = if body.len() <= BLOCK {
            self.exchange(packet.clone()).await?
        } else {
            self.upload(&packet, &body).await?
        };
        let mut whole = std::mem::take(&mut answer.payload);
        let mut next = answer
            .get_first_option(CoapOption::Block2)
            .and_then(|v| Block::parse(v));
        while let Some(b) = next.filter(|b| b.more) {
            let mut ask = packet.clone();
            ask.payload.clear();
            // The same request (method and options) asks for the next block.
            ask.clear_option(CoapOption::Block1);
            let following = Block {
                num: b.num + 1,
                more: false,
                szx: b.szx,
            };
            ask.add_option(CoapOption::Block2, following.encode());
            let mut part = self.exchange(ask).await?;
            whole.append(&mut part.payload);
            next = part
                .get_first_option(CoapOption::Block2)
                .and_then(|v| Block::parse(v));
            if whole.len() > 16 * 1024 * 1024 {
                return Err("an answer of more than 16 MiB".into());
            }
        }
        answer.payload = whole;
        Ok(answer)
    }

    /// RFC 7959 2.5: the body in blocks of [`BLOCK`], each answered 2.31 but the last.
    async fn upload(&self, packet: &Packet, body: &[u8]) -> Result<Packet, String> {
        let szx = Block::szx_for(BLOCK);
        let chunks: Vec<&[u8]> = body.chunks(BLOCK).collect();
        for (num, chunk) in chunks.iter().enumerate() {
            let mut part = packet.clone();
            part.payload = chunk.to_vec();
            let more = num + 1 < chunks.len();
            let block = Block {
                num: num as u32,
                more,
                szx,
            };
            part.add_option(CoapOption::Block1, block.encode());
            let answer = self.exchange(part).await?;
            if !more {
                return Ok(answer);
            }
            if answer.header.code != MessageClass::from(codes::CONTINUE) {
                return Ok(answer);
            }
        }
        Err("an empty upload".into())
    }
}

/// The CoAP address a server logged when it started serving.
fn coap_addr(server: &Server) -> SocketAddr {
    assert!(
        server.log_shows("serving CoAP requests", Duration::from_secs(20)),
        "no CoAP listener:\n{}",
        server.log()
    );
    let log = server.log();
    let at = log.find("serving CoAP requests addr=").expect("logged") + 27;
    log[at..]
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .expect("address")
}

fn failed(problems: Vec<String>) -> Outcome {
    Outcome {
        rsc: 0,
        pc: Value::Null,
        problems,
    }
}

impl Target for OverCoap {
    async fn send(&self, step: &Step, rqi: Option<String>) -> Outcome {
        let mut problems = Vec::new();
        let op = match step.op {
            Op::Create => Operation::Create,
            Op::Retrieve => Operation::Retrieve,
            Op::Update => Operation::Update,
            Op::Delete => Operation::Delete,
            Op::Notify => Operation::Notify,
        };
        let primitive = Request {
            op: Some(op),
            to: step.to.clone(),
            fr: step.fr.clone(),
            rqi: rqi.clone(),
            rvi: Some(step.rvi.clone().unwrap_or_else(|| "3".into())),
            ty: step.ty,
            pc: step.pc.clone(),
            rcn: step.rcn,
            drt: step.drt,
            atrl: step.atrl.clone(),
            rqet: step.rqet.clone(),
            rset: step.rset.clone(),
            ..Request::default()
        };
        let mut packet = match mapping::encode_request(&primitive, None, self.serialization) {
            Ok(packet) => packet,
            Err(e) => return failed(vec![format!("cannot write the request: {e}")]),
        };
        if step.omit.contains(&Omit::Rvi) {
            packet.clear_option(CoapOption::from(bastion_coap::options::onem2m::RVI));
        }
        // Filter criteria as the case states them, values the mapping would refuse
        // included: one Uri-Query option per value.
        for (key, v) in &step.fc {
            let values = match v {
                Value::Array(_) => member_values(v),
                one => vec![query_text(one)],
            };
            for value in values {
                packet.add_option(CoapOption::UriQuery, format!("{key}={value}").into_bytes());
            }
        }
        let answer = match self.request(packet).await {
            Ok(answer) => answer,
            Err(e) => return failed(vec![e]),
        };
        let response = match mapping::decode_response(&answer) {
            Ok(response) => response,
            Err(e) => return failed(vec![format!("not a oneM2M response: {e}")]),
        };
        let names_request = mapping::request_reference(&response).is_some();
        let expected = codes::coap_code(response.rsc, Some(op), names_request);
        let got: u8 = answer.header.code.into();
        if got != expected {
            problems.push(format!(
                "rsc {} travels as CoAP {}, got {}",
                response.rsc.code(),
                codes::dotted(expected),
                codes::dotted(got)
            ));
        }
        if let Some(rqi) = rqi.filter(|r| *r != response.rqi) {
            problems.push(format!(
                "oneM2M-RQI {rqi} not echoed: got {:?}",
                response.rqi
            ));
        }
        problems.extend(rvi_echo_problem(
            sent_rvi(step).as_deref(),
            response.rsc.code(),
            response.rvi.as_deref(),
        ));
        Outcome {
            rsc: response.rsc.code(),
            pc: response.pc.unwrap_or(Value::Null),
            problems,
        }
    }
}
