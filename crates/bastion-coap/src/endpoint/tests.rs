//! The endpoint against a CSE in process (volatile store): what `handle_datagram` returns
//! for each kind of datagram, as a DTLS layer would call it.

use super::*;
use crate::options::onem2m;
use bastion_core::CseConfig;
use bastion_proto::Request;
use serde_json::{json, Value};

const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 40000);

async fn endpoint(config: CoapConfig) -> CoapEndpoint {
    let store: Arc<dyn bastion_store::Store> = Arc::new(bastion_store::MemoryStore::new());
    let cse = Cse::open(CseConfig::default(), store).await.expect("CSE");
    let listener = Listener {
        scheme: "coap",
        local: "127.0.0.1:5683".parse().expect("addr"),
    };
    CoapEndpoint::new(cse, config, listener)
}

/// A confirmable request from `fr` to the Uri-Path `path`.
fn request(code: u8, mid: u16, path: &[&str], fr: &str) -> Packet {
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::from(code);
    p.header.message_id = mid;
    p.set_token(mid.to_be_bytes().to_vec());
    for segment in path {
        p.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    p.add_option(CoapOption::from(onem2m::FR), fr.as_bytes().to_vec());
    p.add_option(
        CoapOption::from(onem2m::RQI),
        format!("r{mid}").into_bytes(),
    );
    p.add_option(CoapOption::from(onem2m::RVI), b"3".to_vec());
    p
}

/// The blocks of one request repeat its options, the rqi included (RFC 7959 2.5).
fn same_rqi(mut p: Packet, rqi: &str) -> Packet {
    p.clear_option(CoapOption::from(onem2m::RQI));
    p.add_option(CoapOption::from(onem2m::RQI), rqi.as_bytes().to_vec());
    p
}

fn create(mid: u16, path: &[&str], fr: &str, ty: u8, body: &Value) -> Packet {
    let mut p = request(2, mid, path, fr);
    p.add_option(CoapOption::from(onem2m::TY), vec![ty]);
    p.add_option(CoapOption::ContentFormat, vec![50]);
    p.payload = body.to_string().into_bytes();
    p
}

async fn send(e: &CoapEndpoint, p: &Packet) -> Packet {
    let out = e
        .handle_datagram(&p.to_bytes_unlimited().expect("encodes"), PEER.into(), None)
        .await;
    assert_eq!(out.len(), 1, "one answer");
    Packet::from_bytes(&out[0]).expect("CoAP")
}

fn rsc(p: &Packet) -> u64 {
    options::read_uint(
        p.get_first_option(CoapOption::from(onem2m::RSC))
            .expect("RSC"),
        2,
    )
    .expect("uint")
}

fn code(p: &Packet) -> String {
    codes::dotted(p.header.code.into())
}

/// An AE `Ctest` with a container `box` holding one instance whose content is `con`.
async fn populated(e: &CoapEndpoint, con: &str) {
    let ae = json!({"m2m:ae": {"rn": "app", "api": "Ntest", "rr": false, "srv": ["3"]}});
    assert_eq!(
        rsc(&send(e, &create(1, &["cse-in"], "Ctest", 2, &ae)).await),
        2001
    );
    let cnt = json!({"m2m:cnt": {"rn": "box"}});
    assert_eq!(
        rsc(&send(e, &create(2, &["cse-in", "app"], "Ctest", 3, &cnt)).await),
        2001
    );
    let req = Request {
        op: Some(bastion_proto::Operation::Create),
        to: "cse-in/app/box".into(),
        fr: Some("Ctest".into()),
        rqi: Some("big".into()),
        rvi: Some("3".into()),
        ty: Some(4),
        pc: Some(json!({"m2m:cin": {"rn": "big", "con": con}})),
        ..Request::default()
    };
    let ctx = RequestContext::new(Some(PEER.into()), None);
    assert_eq!(e.cse.handle(req, &ctx).await.rsc.code(), 2001);
}

#[tokio::test]
async fn requests_are_answered_piggybacked_and_deduplicated() {
    let e = endpoint(CoapConfig::default()).await;
    let get = request(1, 10, &["cse-in"], "Cnobody");
    let bytes = get.to_bytes().expect("encodes");
    let first = e.handle_datagram(&bytes, PEER.into(), None).await;
    let again = e.handle_datagram(&bytes, PEER.into(), None).await;
    assert_eq!(first, again, "a retransmission gets the same answer");
    let answer = Packet::from_bytes(&first[0]).expect("CoAP");
    assert_eq!(answer.header.get_type(), MessageType::Acknowledgement);
    assert_eq!(answer.header.message_id, 10);
    assert_eq!(answer.get_token(), get.get_token());
    // An unregistered originator: 4106 travels as 4.03.
    assert_eq!((code(&answer), rsc(&answer)), ("4.03".into(), 4106));
    // A non-confirmable request: a non-confirmable answer with another message ID.
    let mut non = request(1, 11, &["cse-in"], "Cnobody");
    non.header.set_type(MessageType::NonConfirmable);
    let answer = send(&e, &non).await;
    assert_eq!(answer.header.get_type(), MessageType::NonConfirmable);
    assert_ne!(answer.header.message_id, 11);
    assert_eq!(answer.get_token(), non.get_token());
}

#[tokio::test]
async fn pings_bad_options_and_the_admin() {
    let e = endpoint(CoapConfig::default()).await;
    let ping = e.handle_datagram(&[0x40, 0, 0, 5], PEER.into(), None).await;
    assert_eq!(ping, vec![reset(5)]);
    assert!(
        e.handle_datagram(&[0x60, 0, 0, 5], PEER.into(), None)
            .await
            .is_empty(),
        "an ACK nobody waits for"
    );
    let mut bad = request(1, 20, &["cse-in"], "Cx");
    bad.add_option(CoapOption::from(2049), b"?".to_vec());
    let answer = send(&e, &bad).await;
    assert_eq!((code(&answer), rsc(&answer)), ("4.02".into(), 4000));
    assert_eq!(
        answer.get_first_option(CoapOption::from(onem2m::RQI)),
        Some(&b"r20".to_vec())
    );
    let admin = send(&e, &request(1, 21, &["cse-in"], "CAdmin")).await;
    assert_eq!((code(&admin), rsc(&admin)), ("4.03".into(), 4106));
}

#[tokio::test]
async fn a_large_answer_is_served_block_by_block_from_one_representation() {
    let e = endpoint(CoapConfig::default()).await;
    let con: String = "x".repeat(300);
    populated(&e, &con).await;
    let path = ["cse-in", "app", "box", "big"];
    let mut whole = Vec::new();
    let mut num = 0;
    loop {
        let mut get = request(1, 100 + num as u16, &path, "Ctest");
        get.add_option(
            CoapOption::Block2,
            Block {
                num,
                more: false,
                szx: 2,
            }
            .encode(),
        );
        let answer = send(&e, &get).await;
        assert_eq!((code(&answer), rsc(&answer)), ("2.05".into(), 2000));
        let block = Block::parse(answer.get_first_option(CoapOption::Block2).expect("Block2"))
            .expect("block");
        assert_eq!((block.num, block.szx), (num, 2));
        whole.extend_from_slice(&answer.payload);
        if !block.more {
            break;
        }
        assert_eq!(answer.payload.len(), 64);
        num += 1;
    }
    assert!(num >= 5, "{num} blocks");
    let value: Value = serde_json::from_slice(&whole).expect("reassembles");
    assert_eq!(value["m2m:cin"]["con"], con.as_str());
    // Past the end: 4.02.
    let mut past = request(1, 200, &path, "Ctest");
    past.add_option(
        CoapOption::Block2,
        Block {
            num: 99,
            more: false,
            szx: 2,
        }
        .encode(),
    );
    assert_eq!(code(&send(&e, &past).await), "4.02");
}

#[tokio::test]
async fn a_large_request_comes_in_blocks_within_its_bounds() {
    let config = CoapConfig {
        max_request_bytes: 4096,
        ..CoapConfig::default()
    };
    let e = endpoint(config).await;
    populated(&e, "small").await;
    let body = json!({"m2m:cin": {"rn": "up", "con": "y".repeat(200)}}).to_string();
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(64).collect();
    for (num, chunk) in chunks.iter().enumerate() {
        let part = create(
            300 + num as u16,
            &["cse-in", "app", "box"],
            "Ctest",
            4,
            &json!(null),
        );
        let mut part = same_rqi(part, "up");
        part.payload = chunk.to_vec();
        let more = num + 1 < chunks.len();
        part.add_option(
            CoapOption::Block1,
            Block {
                num: num as u32,
                more,
                szx: 2,
            }
            .encode(),
        );
        let answer = send(&e, &part).await;
        if more {
            assert_eq!(code(&answer), "2.31", "block {num}");
        } else {
            assert_eq!((code(&answer), rsc(&answer)), ("2.01".into(), 2001));
        }
    }
    // A body announced (Size1) over the limit: 4.13 with Size1 the limit.
    let mut big = create(400, &["cse-in", "app", "box"], "Ctest", 4, &json!(null));
    big.payload = vec![b' '; 64];
    big.add_option(
        CoapOption::Block1,
        Block {
            num: 0,
            more: true,
            szx: 2,
        }
        .encode(),
    );
    big.add_option(CoapOption::Size1, options::write_uint(10_000));
    let answer = send(&e, &big).await;
    assert_eq!(code(&answer), "4.13");
    assert_eq!(
        answer.get_first_option(CoapOption::Size1),
        Some(&options::write_uint(4096))
    );
}

#[tokio::test]
async fn full_block_buffers_refuse_with_5_03() {
    let config = CoapConfig {
        max_buffered_per_peer: 1024,
        max_buffered_bytes: 1024,
        ..CoapConfig::default()
    };
    let e = endpoint(config).await;
    let mut refused = None;
    for num in 0..20u32 {
        let part = create(500 + num as u16, &["cse-in"], "Cfill", 2, &json!(null));
        let mut part = same_rqi(part, "fill");
        part.payload = vec![b' '; 64];
        part.add_option(
            CoapOption::Block1,
            Block {
                num,
                more: true,
                szx: 2,
            }
            .encode(),
        );
        let answer = send(&e, &part).await;
        if code(&answer) != "2.31" {
            refused = Some(code(&answer));
            break;
        }
    }
    assert_eq!(refused.as_deref(), Some("5.03"));
}
