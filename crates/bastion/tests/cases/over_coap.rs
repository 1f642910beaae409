//! The CoAP runner: each case gets a fresh `bastion serve` with a `[coap]` listener, and
//! each step travels as a TS-0008 CoAP request in one serialization, written by the
//! binding's own mapping (`bastion_coap::mapping`) and sent by a small client of this
//! file: confirmable, piggybacked answer, Block1 for large requests and Block2 for large
//! answers (RFC 7959). Besides the case's checks, every answer's CoAP code must be the
//! one TS-0008 Table 6.2.4-1 gives its RSC.
//!
//! Over DTLS ([`OverCoap::start_dtls`]) every originator of the case gets its own PSK
//! credential bound to it (provisioned before the binary starts) and its own
//! association (`bastion_tls::DtlsClient`), so each step travels inside the association
//! of its `fr`, as a real device's requests would.

use super::format::{Case, Omit, Op, Step};
use super::{member_values, query_text, rvi_echo_problem, sent_rvi, Outcome, Target};
use crate::common::Server;
use bastion_coap::{codes, mapping, Block};
use bastion_proto::wire::Serialization;
use bastion_proto::{Operation, Request};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet};
use serde_json::Value;
use std::collections::HashMap;
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

/// Why a case cannot travel over CoAP/DTLS-PSK, if it cannot: each originator needs a
/// credential bound to it before the case starts.
pub fn cannot_carry_dtls(case: &Case) -> Option<&'static str> {
    let steps = || case.setup.iter().chain([&case.request]).chain(&case.after);
    if steps().any(|s| s.fr.is_none()) {
        return Some("a step without an originator has no association to travel in");
    }
    // An expected 4107: the case checks a request made without any association, which
    // a run giving every originator one cannot reproduce.
    let outside = case.expect.rsc == 4107 || steps().any(|s| s.rsc == Some(4107));
    if outside {
        return Some("the case checks a request without a security association");
    }
    let mut originators = steps().filter_map(|s| s.fr.as_deref());
    if originators.clone().any(|fr| fr.starts_with('S')) {
        return Some("an AE-ID the CSE assigns cannot be bound to a credential in advance");
    }
    originators
        .any(|fr| !bindable(fr))
        .then_some("an originator in a form no credential is bound to (SP-relative, say)")
}

/// Whether `bastion credentials add` binds a credential to `fr`: a CSE-ID, or an AE-ID
/// in its CSE-relative form.
fn bindable(fr: &str) -> bool {
    is_cse_id(fr) || !fr.contains('/') && bastion_tls::Binding::ae(fr).is_ok()
}

/// A CSE-ID as `bastion credentials add --cse-id` takes it: `/` and one segment.
fn is_cse_id(fr: &str) -> bool {
    fr.strip_prefix('/').is_some_and(|id| !id.contains('/'))
        && bastion_tls::Binding::cse(fr).is_ok()
}

/// How the runner's messages reach the binary.
enum Link {
    /// Plain UDP, to the listener's address.
    Udp(UdpSocket, SocketAddr),
    /// One DTLS-PSK association per originator.
    Dtls(HashMap<String, tokio::sync::Mutex<bastion_tls::DtlsConnection>>),
}

/// A fresh binary serving CoAP, spoken to in one serialization.
pub struct OverCoap {
    /// Kept for as long as the case runs (dropping it stops the binary).
    _server: Server,
    /// Keys and the credential store of a DTLS run.
    _files: Option<tempfile::TempDir>,
    serialization: Serialization,
    link: Link,
}

/// The credential store's key (test only).
const STORE_KEY: &str = "5a1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The PSK of originator number `n` of a case (test only).
fn psk_hex(n: usize) -> String {
    format!(
        "{:032x}",
        0x0123_4567_89ab_cdef_u128.wrapping_mul(n as u128 + 7)
    )
}

impl OverCoap {
    pub async fn start(serialization: Serialization) -> OverCoap {
        let server = tokio::task::spawn_blocking(|| {
            Server::start_with_config("[coap]\nlisten = \"127.0.0.1:0\"\n")
        })
        .await
        .expect("start the binary");
        let addr = coap_addr(&server, "serving CoAP requests addr=");
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        OverCoap {
            _server: server,
            _files: None,
            serialization,
            link: Link::Udp(socket, addr),
        }
    }

    /// A fresh binary serving CoAP over DTLS (`[coap] tls-listen` on a TLS-PSK
    /// listener) whose store holds one PSK credential per originator of `case`, each
    /// with its association open.
    pub async fn start_dtls(serialization: Serialization, case: &Case) -> OverCoap {
        let mut originators: Vec<String> = case
            .setup
            .iter()
            .chain([&case.request])
            .chain(&case.after)
            .filter_map(|s| s.fr.clone())
            .collect();
        originators.sort();
        originators.dedup();
        let files = tempfile::tempdir().expect("files");
        let dir = files.path().to_path_buf();
        let names = originators.clone();
        let server = tokio::task::spawn_blocking(move || provision_and_start(&dir, &names))
            .await
            .expect("start the binary");
        let addr = coap_addr(&server, "serving CoAP requests over DTLS addr=");
        let mut sessions = HashMap::new();
        for (n, fr) in originators.into_iter().enumerate() {
            let key = bastion_tls::PskKey::from_hex(&psk_hex(n)).expect("key");
            let client = bastion_tls::DtlsClient::psk(
                &format!("o{n}@bastion.example"),
                key,
                &bastion_tls::ClientOptions::default(),
            )
            .expect("DTLS client");
            let session = client.connect("localhost", addr).await.expect("handshake");
            sessions.insert(fr, tokio::sync::Mutex::new(session));
        }
        OverCoap {
            _server: server,
            _files: Some(files),
            serialization,
            link: Link::Dtls(sessions),
        }
    }

    /// Sends `packet` as a confirmable message (inside `fr`'s association over DTLS)
    /// until its piggybacked answer comes.
    async fn exchange(&self, fr: Option<&str>, packet: Packet) -> Result<Packet, String> {
        match &self.link {
            Link::Udp(socket, addr) => exchange_udp(socket, *addr, packet).await,
            Link::Dtls(sessions) => {
                let session = fr
                    .and_then(|fr| sessions.get(fr))
                    .ok_or("no association for this originator")?;
                exchange_dtls(&mut *session.lock().await, packet).await
            }
        }
    }
}

/// Gives `packet` a fresh message ID and token, confirmable; returns its bytes and both.
fn stamp(mut packet: Packet) -> Result<(Vec<u8>, u16, [u8; 4]), String> {
    let mid = NEXT_MID.fetch_add(1, Ordering::Relaxed);
    let token = (u32::from(mid) ^ std::process::id()).to_be_bytes();
    packet.header.set_type(MessageType::Confirmable);
    packet.header.message_id = mid;
    packet.set_token(token.to_vec());
    let bytes = packet.to_bytes_unlimited().map_err(|e| e.to_string())?;
    Ok((bytes, mid, token))
}

async fn exchange_dtls(
    session: &mut bastion_tls::DtlsConnection,
    packet: Packet,
) -> Result<Packet, String> {
    let (bytes, mid, token) = stamp(packet)?;
    for _ in 0..3 {
        session.send(&bytes).await.map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + ANSWER;
        while let Ok(received) = tokio::time::timeout_at(deadline, session.recv()).await {
            let datagram = received.map_err(|e| e.to_string())?;
            let Ok(answer) = Packet::from_bytes(&datagram) else {
                continue;
            };
            if answer.header.message_id == mid && answer.get_token() == token {
                return Ok(answer);
            }
        }
    }
    Err(format!("no answer within 3 × {ANSWER:?}"))
}

/// Writes the store key, adds one PSK credential per originator (KpsaID `o<N>@…`,
/// bound to it), then starts the binary on that store.
fn provision_and_start(dir: &std::path::Path, originators: &[String]) -> Server {
    use crate::common::provision::{add_psk_credential, Store};
    let key_file = dir.join("store.key");
    crate::common::write_key_file(&key_file, STORE_KEY);
    let key_file = key_file.to_string_lossy().into_owned();
    let store = dir.join("credentials.store").to_string_lossy().into_owned();
    for (n, fr) in originators.iter().enumerate() {
        let psk_file = dir.join(format!("o{n}.psk"));
        crate::common::write_key_file(&psk_file, &psk_hex(n));
        let flag = if fr.starts_with('/') {
            "--cse-id"
        } else {
            "--originator"
        };
        add_psk_credential(
            Store::File(&store),
            &key_file,
            &format!("o{n}@bastion.example"),
            &psk_file.to_string_lossy(),
            &[flag, fr],
        );
    }
    Server::start_with_config(&format!(
        "[coap]\ntls-listen = \"127.0.0.1:0\"\n[tls]\nlisten = \"127.0.0.1:0\"\n\
         frameworks = [\"psk\"]\ncredentials-key-file = \"{key_file}\"\n\
         credentials-store = \"{store}\"\n"
    ))
}

/// Sends `packet` as a confirmable message until its piggybacked answer comes.
async fn exchange_udp(
    socket: &UdpSocket,
    addr: SocketAddr,
    packet: Packet,
) -> Result<Packet, String> {
    let (bytes, mid, token) = stamp(packet)?;
    let mut buf = vec![0u8; 65_536];
    for _ in 0..3 {
        socket
            .send_to(&bytes, addr)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + ANSWER;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
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

impl OverCoap {
    /// Sends a request whose payload may need Block1 blocks, then fetches the answer's
    /// further Block2 blocks; the answer's payload is the whole body.
    async fn request(&self, fr: Option<&str>, packet: Packet) -> Result<Packet, String> {
        let body = packet.payload.clone();
        let mut answer = if body.len() <= BLOCK {
            self.exchange(fr, packet.clone()).await?
        } else {
            self.upload(fr, &packet, &body).await?
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
            let mut part = self.exchange(fr, ask).await?;
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
    async fn upload(
        &self,
        fr: Option<&str>,
        packet: &Packet,
        body: &[u8],
    ) -> Result<Packet, String> {
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
            let answer = self.exchange(fr, part).await?;
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

/// The CoAP address a server logged after `mark` when it started serving.
fn coap_addr(server: &Server, mark: &str) -> SocketAddr {
    assert!(
        server.log_shows(mark, Duration::from_secs(20)),
        "no CoAP listener:\n{}",
        server.log()
    );
    let log = server.log();
    let at = log.find(mark).expect("logged") + mark.len();
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
        let answer = match self.request(step.fr.as_deref(), packet).await {
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
