use super::*;
use serde_json::json;

fn request(method: u8, opts: &[(u16, &[u8])], payload: &[u8]) -> Packet {
    let mut p = Packet::new();
    p.header.code = MessageClass::from(method);
    for (n, v) in opts {
        p.add_option(CoapOption::from(*n), v.to_vec());
    }
    p.payload = payload.to_vec();
    p
}

#[test]
fn post_with_ty_is_create_and_options_are_parameters() {
    let p = request(
        2,
        &[
            (options::URI_PATH, b"~"),
            (options::URI_PATH, b"id-in"),
            (options::URI_PATH, b"cb"),
            (options::CONTENT_FORMAT, &[50]),
            (onem2m::FR, b"CAdmin"),
            (onem2m::RQI, b"r1"),
            (onem2m::RVI, b"3"),
            (onem2m::TY, &[2]),
            (onem2m::EC, &[2]),
            (options::URI_QUERY, b"rcn=1"),
            (options::URI_QUERY, b"lbl=a+b"),
        ],
        br#"{"m2m:ae":{"rn":"x"}}"#,
    );
    let (req, answer) = decode_request(&p, &p.payload).expect("decodes");
    assert_eq!(req.op, Some(Operation::Create));
    assert_eq!(req.ty, Some(2));
    assert_eq!(req.to, "/id-in/cb");
    assert_eq!(req.fr.as_deref(), Some("CAdmin"));
    assert_eq!(req.rqi.as_deref(), Some("r1"));
    assert_eq!(req.ec.as_deref(), Some("2"));
    assert_eq!(req.rcn, Some(1));
    assert_eq!(req.fc.lbl, vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(req.pc, Some(json!({"m2m:ae": {"rn": "x"}})));
    assert_eq!(
        answer,
        Answer {
            format: 50,
            ser: Serialization::Json
        }
    );
}

#[test]
fn post_without_ty_is_notify_and_op_in_the_query_wins() {
    let p = request(2, &[(options::URI_PATH, b"cb")], b"");
    assert_eq!(
        decode_request(&p, b"").expect("ok").0.op,
        Some(Operation::Notify)
    );
    let p = request(
        2,
        &[(options::URI_PATH, b"cb"), (options::URI_QUERY, b"op=2")],
        b"",
    );
    assert_eq!(
        decode_request(&p, b"").expect("ok").0.op,
        Some(Operation::Retrieve)
    );
    let p = request(1, &[(options::URI_QUERY, b"op=4")], b"");
    assert!(matches!(
        decode_request(&p, b""),
        Err(DecodeError::Request(_))
    ));
}

#[test]
fn absolute_and_cse_relative_targets() {
    let p = request(
        1,
        &[
            (options::URI_PATH, b"_"),
            (options::URI_PATH, b"sp.example"),
            (options::URI_PATH, b"id-in"),
        ],
        b"",
    );
    assert_eq!(
        decode_request(&p, b"").expect("ok").0.to,
        "//sp.example/id-in"
    );
    let p = request(
        1,
        &[(options::URI_PATH, b"cb"), (options::URI_PATH, b"ae")],
        b"",
    );
    assert_eq!(decode_request(&p, b"").expect("ok").0.to, "cb/ae");
    assert_eq!(
        path_segments("//sp.example/id-in/x"),
        ["_", "sp.example", "id-in", "x"]
    );
    assert_eq!(path_segments("/id-in/x"), ["~", "id-in", "x"]);
    assert_eq!(path_segments("cb/x"), ["cb", "x"]);
}

#[test]
fn bad_options_content_formats_and_methods() {
    let p = request(1, &[(2049, b"")], b"");
    assert!(matches!(
        decode_request(&p, b""),
        Err(DecodeError::Coap {
            code: codes::BAD_OPTION,
            ..
        })
    ));
    let p = request(1, &[(onem2m::FR, b"a"), (onem2m::FR, b"b")], b"");
    assert!(matches!(
        decode_request(&p, b""),
        Err(DecodeError::Coap {
            code: codes::BAD_OPTION,
            ..
        })
    ));
    let p = request(1, &[(options::PROXY_URI, b"coap://x")], b"");
    assert!(matches!(
        decode_request(&p, b""),
        Err(DecodeError::Coap {
            code: codes::PROXYING_NOT_SUPPORTED,
            ..
        })
    ));
    let p = request(2, &[(options::CONTENT_FORMAT, &[0])], b"hi");
    let Err(DecodeError::Request(e)) = decode_request(&p, b"hi") else {
        panic!("4015 expected")
    };
    assert_eq!(e.rsc(), Rsc::UnsupportedMediaType);
    let p = request(1, &[(options::ACCEPT, &[0])], b"");
    let Err(DecodeError::Request(e)) = decode_request(&p, b"") else {
        panic!("5207 expected")
    };
    assert_eq!(e.rsc(), Rsc::NotAcceptable);
    let p = request(5, &[], b"");
    let Err(DecodeError::Request(e)) = decode_request(&p, b"") else {
        panic!("4005 expected")
    };
    assert_eq!(e.rsc(), Rsc::OperationNotAllowed);
    let p = request(2, &[], b"{}");
    let Err(DecodeError::Request(e)) = decode_request(&p, b"{}") else {
        panic!("4015 expected")
    };
    assert_eq!(e.rsc(), Rsc::UnsupportedMediaType);
}

#[test]
fn responses_carry_rsc_code_and_content() {
    let mut resp = Response::new(Rsc::Created, "r1");
    resp.rvi = Some("3".into());
    resp.pc = Some(json!({"m2m:cin": {"con": "x"}}));
    resp.content_location = Some("/id-in/cin1".into());
    let answer = Answer {
        format: 10011,
        ser: Serialization::Cbor,
    };
    let p = encode_response(&resp, Some(Operation::Create), answer);
    assert_eq!(codes::dotted(p.header.code.into()), "2.01");
    assert_eq!(
        p.get_first_option(CoapOption::from(onem2m::RSC)),
        Some(&vec![0x07, 0xd1])
    );
    assert_eq!(
        p.get_first_option(CoapOption::from(options::CONTENT_FORMAT)),
        Some(&vec![0x27, 0x1b])
    );
    let back = decode_response(&p).expect("decodes");
    assert_eq!(back.rsc, Rsc::Created);
    assert_eq!(back.rqi, "r1");
    assert_eq!(back.pc, resp.pc);
    let locations: Vec<_> = values(&p, options::LOCATION_PATH).cloned().collect();
    assert_eq!(
        locations,
        vec![b"~".to_vec(), b"id-in".to_vec(), b"cin1".to_vec()]
    );
}

#[test]
fn a_successful_notify_is_answered_without_payload() {
    let mut resp = Response::new(Rsc::Ok, "n1");
    resp.pc = Some(json!({"x": 1}));
    let p = encode_response(&resp, Some(Operation::Notify), Answer::default());
    assert_eq!(codes::dotted(p.header.code.into()), "2.04");
    assert!(p.payload.is_empty());
}

#[test]
fn requests_round_trip() {
    let mut req = Request {
        op: Some(Operation::Notify),
        to: "CAe1".into(),
        fr: Some("/id-in".into()),
        rqi: Some("n1".into()),
        pc: Some(json!({"m2m:sgn": {"vrq": true}})),
        ..Request::default()
    };
    req.fc.lbl = vec!["a".into(), "b".into()];
    let p = encode_request(&req, None, Serialization::Cbor).expect("encodes");
    assert_eq!(p.header.code, MessageClass::from(2));
    let (back, answer) = decode_request(&p, &p.payload).expect("decodes");
    assert_eq!(back.op, Some(Operation::Notify));
    assert_eq!(back.to, "CAe1");
    assert_eq!(back.fr.as_deref(), Some("/id-in"));
    assert_eq!(back.pc, req.pc);
    assert_eq!(back.fc.lbl, req.fc.lbl);
    assert_eq!(answer.ser, Serialization::Cbor);
    let p = encode_request(&req, Some("/notify/here"), Serialization::Json).expect("encodes");
    assert_eq!(
        decode_request(&p, &p.payload).expect("decodes").0.to,
        "notify/here"
    );
}

#[test]
fn an_accepted_non_blocking_request_names_its_request_resource() {
    let mut resp = Response::new(Rsc::AcceptedNonBlockingAsynch, "a1");
    resp.pc = Some(json!({"m2m:uri": "/id-in/req1"}));
    let p = encode_response(&resp, Some(Operation::Retrieve), Answer::default());
    assert_eq!(codes::dotted(p.header.code.into()), "2.01");
    let locations: Vec<_> = values(&p, options::LOCATION_PATH).cloned().collect();
    assert_eq!(
        locations,
        vec![b"~".to_vec(), b"id-in".to_vec(), b"req1".to_vec()]
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Options a request may plausibly carry, with arbitrary values.
    fn option() -> impl Strategy<Value = (u16, Vec<u8>)> {
        let numbers = prop::sample::select(vec![
            options::URI_PATH,
            options::URI_QUERY,
            options::CONTENT_FORMAT,
            options::ACCEPT,
            options::BLOCK1,
            options::BLOCK2,
            onem2m::FR,
            onem2m::RQI,
            onem2m::TY,
            onem2m::EC,
            onem2m::RTURI,
            onem2m::RVI,
            1,
            2049,
        ]);
        (numbers, prop::collection::vec(any::<u8>(), 0..12))
    }

    proptest! {
        /// Arbitrary bytes: the codec refuses or yields a packet, and the mapping then
        /// yields a request or an error, never a panic.
        #[test]
        fn arbitrary_datagrams(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Packet::from_bytes(&bytes) {
                let _ = decode_request(&p, &p.payload);
                let _ = decode_response(&p);
            }
        }

        /// Arbitrary options and payloads on each method.
        #[test]
        fn arbitrary_requests(
            method in 0u8..8,
            opts in prop::collection::vec(option(), 0..8),
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut p = Packet::new();
            p.header.code = MessageClass::from(method);
            for (n, v) in opts {
                p.add_option(CoapOption::from(n), v);
            }
            if let Ok((req, answer)) = decode_request(&p, &payload) {
                prop_assert!(req.op.is_some());
                let resp = Response::new(Rsc::Ok, req.rqi.unwrap_or_default());
                let _ = encode_response(&resp, req.op, answer).to_bytes_unlimited();
            }
            for (_, values) in p.options() {
                for v in values {
                    let _ = crate::Block::parse(v);
                }
            }
        }
    }
}
