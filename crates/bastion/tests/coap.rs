//! The CoAP binding (TS-0008; docs/bindings.md) driven by the real `coap-client` of
//! libcoap (Debian `libcoap3-bin`, installed by `scripts/coap-client-env`), against the
//! real `bastion serve` with a `[coap]` listener. Under `CI=true` a missing client fails;
//! elsewhere the test says why and skips.
//!
//! How its answers are read: tests/common/coap_client.rs.

use crate::common;

use common::coap_client::{available, coap_addr, Coap, Received};
use common::identity::{Bound, PskServer};
use common::Server;
use serde_json::{json, Value};
use std::time::Duration;

const CLIENT: &str = "coap-client-notls";

fn start() -> (Server, String) {
    let server = Server::start_with_config("[coap]\nlisten = \"127.0.0.1:0\"\n");
    let addr = coap_addr(&server);
    (server, addr)
}

/// Runs `coap-client` with `args` on `coap://addr/path` and returns the last response.
fn coap(addr: &str, path: &str, args: &[&str]) -> Received {
    Coap::plain(CLIENT, addr).request(path, args)
}

/// A oneM2M CREATE: POST with the ty, fr, rqi and rvi options and a JSON body.
fn create(addr: &str, path: &str, from: &str, ty: u8, body: &Value) -> Received {
    Coap::plain(CLIENT, addr).create(path, from, ty, body)
}

fn retrieve(addr: &str, path: &str, from: &str, extra: &[&str]) -> Received {
    Coap::plain(CLIENT, addr).retrieve(path, from, extra)
}

fn ae(rn: &str) -> Value {
    json!({"m2m:ae": {"rn": rn, "api": "Ncoap.test", "rr": false, "srv": ["3"]}})
}

#[test]
fn an_ae_registers_creates_a_content_instance_and_reads_it_back() {
    if !available() {
        return;
    }
    let (_server, addr) = start();
    let registered = create(&addr, "cse-in", "Ccoapae", 2, &ae("coapae"));
    registered.expect("2.01", 2001);
    assert_eq!(registered.json()["m2m:ae"]["aei"], "Ccoapae");
    assert_eq!(registered.option("283"), Some(&b"c1"[..]), "rqi echoed");
    assert_eq!(
        registered.option("Content-Format"),
        Some(&b"application/json"[..])
    );
    create(
        &addr,
        "cse-in/coapae",
        "Ccoapae",
        3,
        &json!({"m2m:cnt": {"rn": "box"}}),
    )
    .expect("2.01", 2001);
    create(
        &addr,
        "cse-in/coapae/box",
        "Ccoapae",
        4,
        &json!({"m2m:cin": {"con": "21.5"}}),
    )
    .expect("2.01", 2001);
    // The CSEBase advertises the CoAP listener as a point of access.
    let base = retrieve(&addr, "cse-in", "Ccoapae", &[]);
    base.expect("2.05", 2000);
    let poa = base.json()["m2m:cb"]["poa"].clone();
    let last = poa.as_array().and_then(|p| p.last()).cloned();
    assert_eq!(last, Some(json!(format!("coap://{addr}"))), "{poa}");
    let latest = retrieve(&addr, "cse-in/coapae/box/la", "Ccoapae", &[]);
    latest.expect("2.05", 2000);
    assert_eq!(latest.kind, "ACK", "piggybacked on the ACK");
    // A non-confirmable request gets a non-confirmable answer.
    let non = retrieve(&addr, "cse-in/coapae/box/la", "Ccoapae", &["-N"]);
    non.expect("2.05", 2000);
    assert_eq!(non.kind, "NON");
    assert_eq!(latest.json()["m2m:cin"]["con"], "21.5");
    // SP-relative addressing: `~` first (TS-0008 Table 6.2.2.3-1).
    retrieve(&addr, "~/id-in/cse-in/coapae/box", "Ccoapae", &[]).expect("2.05", 2000);
    retrieve(&addr, "cse-in/coapae/none", "Ccoapae", &[]).expect("4.04", 4004);
    // Filter criteria travel in Uri-Query: a discovery of the container's instances.
    let found = retrieve(&addr, "cse-in/coapae?fu=1&ty=4", "Ccoapae", &[]);
    found.expect("2.05", 2000);
    let uril = found.json()["m2m:uril"].clone();
    assert_eq!(uril.as_array().map(Vec::len), Some(1), "{uril}");
}

#[test]
fn a_large_resource_travels_in_blocks_both_ways() {
    if !available() {
        return;
    }
    let (_server, addr) = start();
    create(&addr, "cse-in", "Ccoapbig", 2, &ae("big")).expect("2.01", 2001);
    create(
        &addr,
        "cse-in/big",
        "Ccoapbig",
        3,
        &json!({"m2m:cnt": {"rn": "box"}}),
    )
    .expect("2.01", 2001);
    // 3000 bytes of content: the request goes up in Block1 blocks of 512 (2.31 each).
    let con: String = (0..3000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let body = json!({"m2m:cin": {"rn": "large", "con": con}}).to_string();
    let made = coap(
        &addr,
        "cse-in/big/box",
        &[
            "-m",
            "post",
            "-b",
            "512",
            "-O",
            "267,0x0004",
            "-O",
            "279,Ccoapbig",
            "-O",
            "283,b1",
            "-O",
            "271,3",
            "-t",
            "50",
            "-e",
            &body,
        ],
    );
    made.expect("2.01", 2001);
    // The created representation is itself too large: its first block comes back.
    assert!(made.option("Block2").is_some(), "{made:?}");
    assert_eq!(made.payload.len(), 1024);
    // The answer comes back in Block2 blocks of 1024: block by block, each from its own
    // `coap-client -b N,1024`.
    let mut whole = Vec::new();
    for num in 0.. {
        let block = format!("{num},1024");
        let got = retrieve(&addr, "cse-in/big/box/large", "Ccoapbig", &["-b", &block]);
        got.expect("2.05", 2000);
        let b2 = got.option("Block2").expect("Block2 option").to_vec();
        let b2 = String::from_utf8(b2).expect("printed");
        whole.extend_from_slice(&got.payload);
        if !b2.contains("/M/") {
            assert!(num >= 2, "at least three blocks: {b2}");
            break;
        }
        assert_eq!(got.payload.len(), 1024);
        assert!(num < 10, "too many blocks");
    }
    let value: Value = serde_json::from_slice(&whole).expect("the blocks form the resource");
    assert_eq!(value["m2m:cin"]["con"], con.as_str());
}

#[test]
fn bad_options_methods_and_content_formats_get_their_codes() {
    if !available() {
        return;
    }
    let (_server, addr) = start();
    // An unknown critical option: 4.02 Bad Option (RFC 7252 5.4.1), RSC 4000.
    retrieve(&addr, "cse-in", "Ccoapx", &["-O", "2049,x"]).expect("4.02", 4000);
    // A method oneM2M does not map: 4.05, OPERATION_NOT_ALLOWED.
    coap(&addr, "cse-in", &["-m", "fetch", "-O", "279,Ccoapx"]).expect("4.05", 4005);
    // A payload in a content format Bastion does not read (text/plain): 4.15, 4015.
    coap(
        &addr,
        "cse-in",
        &[
            "-m",
            "post",
            "-O",
            "267,0x0002",
            "-O",
            "279,Ccoapx",
            "-t",
            "0",
            "-e",
            "hello",
        ],
    )
    .expect("4.15", 4015);
    // An answer in a format Bastion does not write: 4.06, NOT_ACCEPTABLE.
    retrieve(&addr, "cse-in", "Ccoapx", &["-A", "0"]).expect("4.06", 5207);
    // The admin is not accepted without a security association: 4.03, 4106.
    retrieve(&addr, "cse-in", "CAdmin", &[]).expect("4.03", 4106);
}

/// An identity bound to a credential may be claimed only inside its association: over
/// plain CoAP it is refused with 4106, as on the plain HTTP listener.
#[test]
fn an_identity_bound_to_a_credential_is_refused_over_plain_coap() {
    if !available() {
        return;
    }
    let psk = PskServer::start("[coap]\nlisten = \"127.0.0.1:0\"\n");
    psk.add_psk(
        "coapcred@bastion.example",
        "00112233445566778899aabbccddeeff",
        Bound::Ae("Ccoapcred"),
    );
    let addr = coap_addr(&psk.srv);
    let refused = create(&addr, "cse-in", "Ccoapcred", 2, &ae("cred"));
    refused.expect("4.03", 4106);
    assert_eq!(
        refused.json()["m2m:dbg"],
        "originator is bound to a security association and must use it"
    );
    create(&addr, "cse-in", "Ccoapfree", 2, &ae("free")).expect("2.01", 2001);
}

/// A notification target played by a UDP socket of the test: it reads the CSE's CoAP
/// requests with the binding's codec.
struct Target {
    socket: std::net::UdpSocket,
}

impl Target {
    fn new() -> Target {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("target socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        Target { socket }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("address").port()
    }

    /// The next request the CSE sends, with its sender.
    fn next(&self) -> (coap_lite::Packet, std::net::SocketAddr) {
        let mut buf = [0u8; 2048];
        let (n, from) = self
            .socket
            .recv_from(&mut buf)
            .expect("a request from the CSE");
        let packet = coap_lite::Packet::from_bytes(&buf[..n]).expect("a CoAP message");
        (packet, from)
    }

    fn send(&self, packet: &coap_lite::Packet, to: std::net::SocketAddr) {
        let bytes = packet.to_bytes().expect("encodes");
        self.socket.send_to(&bytes, to).expect("send");
    }

    /// Answers `request` 2000 (2.04, no payload), piggybacked on the ACK or, when
    /// `separate`, as an empty ACK and then a confirmable response.
    fn answer(&self, request: &coap_lite::Packet, from: std::net::SocketAddr, separate: bool) {
        use coap_lite::{MessageClass, MessageType};
        let rqi = request
            .get_first_option(coap_lite::CoapOption::Unknown(283))
            .cloned()
            .unwrap_or_default();
        let mut answer = coap_lite::Packet::new();
        answer.header.code = MessageClass::from(0x44);
        answer.set_token(request.get_token().to_vec());
        answer.add_option(coap_lite::CoapOption::Unknown(307), vec![0x07, 0xd0]);
        answer.add_option(coap_lite::CoapOption::Unknown(283), rqi);
        if separate {
            let mut ack = coap_lite::Packet::new();
            ack.header.set_type(MessageType::Acknowledgement);
            ack.header.message_id = request.header.message_id;
            self.send(&ack, from);
            answer.header.set_type(MessageType::Confirmable);
            answer.header.message_id = request.header.message_id.wrapping_add(1000);
            self.send(&answer, from);
            // The CSE acknowledges the separate response.
            let (acked, _) = self.next();
            assert_eq!(acked.header.get_type(), MessageType::Acknowledgement);
            assert_eq!(acked.header.message_id, answer.header.message_id);
        } else {
            answer.header.set_type(MessageType::Acknowledgement);
            answer.header.message_id = request.header.message_id;
            self.send(&answer, from);
        }
    }
}

fn text_option(packet: &coap_lite::Packet, number: u16) -> Option<String> {
    packet
        .get_first_option(coap_lite::CoapOption::Unknown(number))
        .or_else(|| packet.get_first_option(coap_lite::CoapOption::from(number)))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn uri_path(packet: &coap_lite::Packet) -> Vec<String> {
    packet
        .get_option(coap_lite::CoapOption::UriPath)
        .map(|l| {
            l.iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Notifications to an AE whose point of access is `coap://` and to a `coap://` URL go
/// out as confirmable CoAP POSTs (NOTIFY: no ty option) from the CSE's CoAP socket;
/// the answer is taken piggybacked and also as a separate response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_coap_targets() {
    if !available() {
        return;
    }
    let (server, addr) = start();
    let target = Target::new();
    let poa = format!("coap://127.0.0.1:{}", target.port());
    server
        .request("POST", "/cse-in")
        .from("Cnotified")
        .ty(2)
        .json(
            &json!({"m2m:ae": {"rn": "notified", "api": "Ncoap.test", "rr": true,
                                 "srv": ["3"], "poa": [poa]}}),
        )
        .send()
        .await
        .expect(2001);
    server
        .request("POST", "/cse-in/notified")
        .from("Cnotified")
        .ty(3)
        .json(&json!({"m2m:cnt": {"rn": "box"}}))
        .send()
        .await
        .expect(2001);
    let url = format!("coap://127.0.0.1:{}/hook/in", target.port());
    let target = std::sync::Arc::new(target);
    let verifier = std::thread::spawn({
        let (target, addr) = (target.clone(), addr.clone());
        move || {
            // The subscription's verification request to the URL (the AE's comes with
            // its first notification), answered separately: empty ACK, then a CON.
            let (request, from) = target.next();
            assert_eq!(from.to_string(), addr, "sent from the CSE's CoAP socket");
            assert_eq!(
                request.header.get_type(),
                coap_lite::MessageType::Confirmable
            );
            assert_eq!(u8::from(request.header.code), 2, "POST");
            assert!(request
                .get_first_option(coap_lite::CoapOption::Unknown(267))
                .is_none());
            target.answer(&request, from, true);
            (uri_path(&request), text_option(&request, 279))
        }
    });
    let made = server
        .request("POST", "/cse-in/notified/box")
        .from("Cnotified")
        .ty(23)
        .json(&json!({"m2m:sub": {"rn": "watch", "nu": ["Cnotified", url], "enc": {"net": [3]}}}))
        .send()
        .await;
    let seen = tokio::task::spawn_blocking(move || verifier.join())
        .await
        .expect("joined")
        .unwrap_or_else(|_| panic!("verifier failed; CSE log:\n{}", server.log()));
    made.expect(2001);
    assert_eq!(
        seen,
        (
            vec!["hook".to_owned(), "in".to_owned()],
            Some("/id-in".to_owned())
        )
    );
    // A new instance is notified to both, with the representation in JSON.
    server
        .request("POST", "/cse-in/notified/box")
        .from("Cnotified")
        .ty(4)
        .json(&json!({"m2m:cin": {"con": "ping"}}))
        .send()
        .await
        .expect(2001);
    // The URL gets the notification; the AE, reached by its point of access (to = its
    // AE-ID), is verified first (on its first notification), then notified.
    let mut got = Vec::new();
    while got.len() < 3 {
        let (request, from) = tokio::task::block_in_place(|| target.next());
        let sgn: Value = serde_json::from_slice(&request.payload).expect("JSON notification");
        let kind = if sgn["m2m:sgn"]["vrq"] == true {
            "verification".to_owned()
        } else {
            sgn["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"].to_string()
        };
        assert_eq!(text_option(&request, 279).as_deref(), Some("/id-in"));
        got.push((uri_path(&request).join("/"), kind));
        tokio::task::block_in_place(|| target.answer(&request, from, false));
    }
    got.sort();
    let expected = [
        ("Cnotified", "\"ping\""),
        ("Cnotified", "verification"),
        ("hook/in", "\"ping\""),
    ];
    assert_eq!(got, expected.map(|(p, k)| (p.to_owned(), k.to_owned())));
}

/// A raw UDP peer of the test, for what no well-behaved client sends.
fn raw_exchange(addr: &str, datagram: &[u8]) -> Option<coap_lite::Packet> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    socket.send_to(datagram, addr).expect("send");
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).ok()?;
    Some(coap_lite::Packet::from_bytes(&buf[..n]).expect("a CoAP message"))
}

fn get_request(mid: u16, extra: &[(u16, Vec<u8>)], payload: &[u8]) -> coap_lite::Packet {
    let mut p = coap_lite::Packet::new();
    p.header.set_type(coap_lite::MessageType::Confirmable);
    p.header.code = coap_lite::MessageClass::from(1);
    p.header.message_id = mid;
    p.set_token(vec![0xab, 0xcd]);
    p.add_option(coap_lite::CoapOption::UriPath, b"cse-in".to_vec());
    p.add_option(coap_lite::CoapOption::Unknown(279), b"Crawpeer".to_vec());
    p.add_option(coap_lite::CoapOption::Unknown(283), b"raw1".to_vec());
    for (n, v) in extra {
        p.add_option(coap_lite::CoapOption::from(*n), v.clone());
    }
    p.payload = payload.to_vec();
    p
}

fn code_of(p: &coap_lite::Packet) -> String {
    bastion_coap::codes::dotted(p.header.code.into())
}

/// RFC 7252's message layer: a malformed confirmable message and a ping are answered
/// with RST, a retransmitted request gets the very same answer, a datagram over the size
/// limit 4.13 with Size1, and a Block1 block out of order 4.08.
#[test]
fn the_message_layer_rejects_and_deduplicates() {
    if !available() {
        return;
    }
    let (_server, addr) = start();
    use coap_lite::MessageType;
    // A CON whose option runs past the end: RST with its message ID.
    let rst = raw_exchange(&addr, &[0x40, 0x01, 0x12, 0x34, 0xbd]).expect("answered");
    assert_eq!(rst.header.get_type(), MessageType::Reset);
    assert_eq!(rst.header.message_id, 0x1234);
    // An empty CON is a ping: RST.
    let pong = raw_exchange(&addr, &[0x40, 0x00, 0x00, 0x07]).expect("answered");
    assert_eq!(pong.header.get_type(), MessageType::Reset);
    assert_eq!(pong.header.message_id, 7);
    // Another CoAP version is ignored.
    assert!(raw_exchange(&addr, &[0x80, 0x01, 0x00, 0x08]).is_none());
    // The same message twice: the same answer, handled once.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let bytes = get_request(99, &[], b"").to_bytes().expect("encodes");
    let mut answers = Vec::new();
    for _ in 0..2 {
        socket.send_to(&bytes, &addr).expect("send");
        let mut buf = [0u8; 2048];
        let n = socket.recv(&mut buf).expect("answered");
        answers.push(buf[..n].to_vec());
    }
    assert_eq!(answers[0], answers[1]);
    let first = coap_lite::Packet::from_bytes(&answers[0]).expect("CoAP");
    assert_eq!(first.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(first.get_token(), [0xab, 0xcd]);
    // Over the datagram limit (1400 bytes by default): 4.13, Size1 the limit.
    let big = get_request(100, &[(12, vec![50])], &[b' '; 1500]);
    let refused =
        raw_exchange(&addr, &big.to_bytes_unlimited().expect("encodes")).expect("answered");
    assert_eq!(code_of(&refused), "4.13");
    assert_eq!(
        refused.get_first_option(coap_lite::CoapOption::Size1),
        Some(&vec![0x05, 0x78])
    );
    // Block 1 of a body whose block 0 never came: 4.08 Request Entity Incomplete.
    let block1 = bastion_coap::Block {
        num: 1,
        more: true,
        szx: 2,
    }
    .encode();
    let out_of_order = get_request(101, &[(12, vec![50]), (27, block1)], &[b' '; 64]);
    let refused =
        raw_exchange(&addr, &out_of_order.to_bytes().expect("encodes")).expect("answered");
    assert_eq!(code_of(&refused), "4.08");
}
