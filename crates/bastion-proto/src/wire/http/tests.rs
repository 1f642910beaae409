use super::*;
use crate::time::Timestamp;
use serde_json::json;

/// A request with every parameter the binding carries set.
fn full_request() -> Request {
    let mut req = Request {
        op: Some(Operation::Retrieve),
        to: "/id-in/cse-in/box a".into(),
        fr: Some("Cae".into()),
        rqi: Some("rq-1".into()),
        rvi: Some("4".into()),
        gid: Some("g1".into()),
        ot: Some("20261202T051500".into()),
        rset: Some("20261202T061500".into()),
        rqet: Some("PT10S".into()),
        oet: Some("20261202T051501".into()),
        ec: Some("2".into()),
        vsi: Some("vendor/1".into()),
        rt: Some(ResponseType::NonBlockingAsynch),
        rt_nu: Some(vec!["http://a:1/n".into(), "Cother".into()]),
        rp: Some("PT5M".into()),
        rcn: Some(4),
        da: Some(true),
        drt: Some(2),
        rids: vec!["r1@roles.example".into()],
        tids: vec!["t1@das.example".into(), "t2@das.example".into()],
        ltids: vec!["l1".into()],
        tqi: Some(true),
        atrl: vec!["rn".into(), "lbl".into()],
        tkns: vec!["a.b.c".into(), "d.e.f".into()],
        ..Request::default()
    };
    req.fc.fu = Some(1);
    req.fc.lim = Some(5);
    req.fc.ty = vec![3, 4];
    req.fc.lbl = vec!["key:a b".into(), "c&d".into()];
    req.fc.crb = Timestamp::parse("20261202T000000");
    req
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
}

fn round_trip(req: &Request, ser: Serialization) -> Request {
    let http = encode_request(req, ser).unwrap();
    decode_request(&http).unwrap()
}

#[test]
fn ts0009_6_4_every_request_header_has_its_exact_value() {
    let http = encode_request(&full_request(), Serialization::Json).unwrap();
    assert_eq!(http.method(), Method::GET);
    assert_eq!(http.uri().path(), "/~/id-in/cse-in/box%20a");
    let h = http.headers();
    for (name, value) in [
        ("x-m2m-origin", "Cae"),
        ("x-m2m-ri", "rq-1"),
        ("x-m2m-rvi", "4"),
        ("x-m2m-gid", "g1"),
        ("x-m2m-ot", "20261202T051500"),
        ("x-m2m-rst", "20261202T061500"),
        ("x-m2m-ret", "PT10S"),
        ("x-m2m-oet", "20261202T051501"),
        ("x-m2m-ec", "2"),
        ("x-m2m-vsi", "vendor/1"),
        ("x-m2m-rtu", "http://a:1/n&Cother"),
        ("authorization", "a.b.c+d.e.f"),
        ("accept", "application/json"),
    ] {
        assert_eq!(header(h, name), value, "{name}");
    }
    assert!(h.get("content-type").is_none(), "a RETRIEVE has no body");
    assert_eq!(
        http.uri().query(),
        Some(
            "rt=2&rp=PT5M&rcn=4&da=true&drt=2&rids=r1@roles.example\
             &tids=t1@das.example+t2@das.example&ltids=l1&tqi=true&atrl=rn+lbl\
             &fu=1&lim=5&crb=20261202T000000&ty=3+4&lbl=key:a%20b+c%26d"
        )
    );
}

#[test]
fn ts0009_every_request_parameter_round_trips() {
    let sent = full_request();
    let back = round_trip(&sent, Serialization::Json);
    assert_eq!(back.op, Some(Operation::Retrieve));
    assert_eq!(back.to, sent.to);
    assert_eq!(back.fr, sent.fr);
    assert_eq!(back.rqi, sent.rqi);
    assert_eq!(back.rvi, sent.rvi);
    assert_eq!(back.gid, sent.gid);
    assert_eq!(back.ot, sent.ot);
    assert_eq!(back.rset, sent.rset);
    assert_eq!(back.rqet, sent.rqet);
    assert_eq!(back.oet, sent.oet);
    assert_eq!(back.ec, sent.ec);
    assert_eq!(back.vsi, sent.vsi);
    assert_eq!(back.rt, sent.rt);
    assert_eq!(back.rt_nu, sent.rt_nu);
    assert_eq!(back.rp, sent.rp);
    assert_eq!(back.rcn, sent.rcn);
    assert_eq!(back.da, sent.da);
    assert_eq!(back.drt, sent.drt);
    assert_eq!(back.rids, sent.rids);
    assert_eq!(back.tids, sent.tids);
    assert_eq!(back.ltids, sent.ltids);
    assert_eq!(back.tqi, sent.tqi);
    assert_eq!(back.atrl, sent.atrl);
    assert_eq!(back.tkns, sent.tkns);
    assert_eq!(back.fc.fu, Some(1));
    assert_eq!(back.fc.lim, Some(5));
    assert_eq!(back.fc.ty, vec![3, 4]);
    assert_eq!(
        back.fc.lbl,
        vec!["key:a", "b", "c&d"],
        "a list splits on spaces"
    );
    assert_eq!(back.fc.crb, sent.fc.crb);
    assert_eq!(back.pc, None);
}

#[test]
fn ts0009_6_2_2_1_to_and_path_in_every_form() {
    for (to, path) in [
        ("cse-in/ae1", "/cse-in/ae1"),
        ("/id-in/cse-in", "/~/id-in/cse-in"),
        ("//sp.example/id-in/c1", "/_/sp.example/id-in/c1"),
        ("cse-in/a b", "/cse-in/a%20b"),
    ] {
        assert_eq!(path_of(to), path);
        assert_eq!(target(path).unwrap(), to);
    }
    assert_eq!(path_of(""), "/");
    assert_eq!(target("/~").unwrap_err().rsc(), Rsc::BadRequest);
    assert_eq!(target("/%ff").unwrap_err().rsc(), Rsc::BadRequest);
}

#[test]
fn ts0009_6_4_3_operations_types_and_content_in_every_serialization() {
    let pc = json!({"m2m:cnt": {"rn": "box", "mni": 3}});
    for ser in Serialization::ALL {
        let create = Request {
            op: Some(Operation::Create),
            to: "cse-in".into(),
            ty: Some(3),
            pc: Some(pc.clone()),
            ..Request::default()
        };
        let http = encode_request(&create, ser).unwrap();
        assert_eq!(http.method(), Method::POST);
        assert_eq!(
            header(http.headers(), "content-type"),
            format!("{};ty=3", ser.media_type())
        );
        assert_eq!(header(http.headers(), "accept"), ser.media_type());
        assert_eq!(
            header(http.headers(), "x-m2m-rvi"),
            "3",
            "rvi defaults to 3"
        );
        let back = decode_request(&http).unwrap();
        assert_eq!(back.op, Some(Operation::Create));
        assert_eq!(back.ty, Some(3));
        assert_eq!(back.pc, Some(pc.clone()), "{ser:?}");
        assert_eq!(answer_serialization(http.headers()).unwrap(), ser);
        for (op, method) in [
            (Operation::Retrieve, Method::GET),
            (Operation::Update, Method::PUT),
            (Operation::Delete, Method::DELETE),
            (Operation::Notify, Method::POST),
        ] {
            let req = Request {
                op: Some(op),
                to: "cse-in".into(),
                ..Request::default()
            };
            let http = encode_request(&req, ser).unwrap();
            assert_eq!(http.method(), method);
            assert_eq!(round_trip(&req, ser).op, Some(op));
        }
    }
}

#[test]
fn requests_that_cannot_be_written_say_why() {
    let no_op = Request::default();
    assert_eq!(
        encode_request(&no_op, Serialization::Json).unwrap_err(),
        EncodeError::NoOperation
    );
    let no_ty = Request {
        op: Some(Operation::Create),
        ..Request::default()
    };
    assert_eq!(
        encode_request(&no_ty, Serialization::Json).unwrap_err(),
        EncodeError::CreateWithoutType
    );
    let bad_token = Request {
        op: Some(Operation::Retrieve),
        tkns: vec!["a+b".into()],
        ..Request::default()
    };
    assert_eq!(
        encode_request(&bad_token, Serialization::Json).unwrap_err(),
        EncodeError::InvalidToken
    );
    let bad_origin = Request {
        op: Some(Operation::Retrieve),
        fr: Some("C\nx".into()),
        ..Request::default()
    };
    assert_eq!(
        encode_request(&bad_origin, Serialization::Json).unwrap_err(),
        EncodeError::InvalidHeader("x-m2m-origin")
    );
}

#[test]
fn ts0009_received_heads_that_are_bad_requests() {
    let head = |method: Method, uri: &str, headers: &[(&str, &str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        decode_request_head(&method, &uri.parse().unwrap(), &h).map(|(req, _)| req)
    };
    let twice = head(
        Method::GET,
        "/cse-in",
        &[("x-m2m-origin", "Ca"), ("x-m2m-origin", "Cb")],
    );
    assert_eq!(twice.unwrap_err().rsc(), Rsc::BadRequest);
    assert_eq!(
        head(Method::PATCH, "/cse-in", &[]).unwrap_err().rsc(),
        Rsc::OperationNotAllowed
    );
    assert_eq!(
        head(Method::GET, "/cse-in?rcn=1&rcn=2", &[])
            .unwrap_err()
            .rsc(),
        Rsc::BadRequest
    );
    assert_eq!(
        head(Method::GET, "/cse-in?rcn=x", &[]).unwrap_err().rsc(),
        Rsc::BadRequest
    );
    assert_eq!(
        head(Method::GET, "/cse-in?rt=9", &[]).unwrap_err().rsc(),
        Rsc::BadRequest
    );
    assert_eq!(
        head(Method::GET, "/cse-in", &[("accept", "text/html")])
            .unwrap_err()
            .rsc(),
        Rsc::NotAcceptable
    );
    let no_type = decode_body(None, b"{}").unwrap_err();
    assert_eq!(no_type.rsc(), Rsc::UnsupportedMediaType);
    let ok = head(Method::GET, "/cse-in?ty=3&ty=4&lbl=a&lbl=b", &[]).unwrap();
    assert_eq!(ok.fc.ty, vec![3, 4]);
    assert_eq!(ok.fc.lbl, vec!["a", "b"]);
}

#[test]
fn ts0009_6_3_every_response_parameter_round_trips() {
    for ser in Serialization::ALL {
        let mut resp = Response::new(Rsc::Created, "rq-9");
        resp.rvi = Some("3".into());
        resp.ot = Some("20261202T051500".into());
        resp.rset = Some("20261202T061500".into());
        resp.vsi = Some("vendor/2".into());
        resp.cnst = Some(2);
        resp.content_location = Some("cse-in/box".into());
        resp.pc = Some(json!({"m2m:cnt": {"rn": "box", "ty": 3, "cni": 0}}));
        let http = encode_response(&resp, ser);
        assert_eq!(http.status(), StatusCode::CREATED);
        let h = http.headers();
        for (name, value) in [
            ("x-m2m-rsc", "2001"),
            ("x-m2m-ri", "rq-9"),
            ("x-m2m-rvi", "3"),
            ("x-m2m-ot", "20261202T051500"),
            ("x-m2m-rst", "20261202T061500"),
            ("x-m2m-vsi", "vendor/2"),
            ("x-m2m-cts", "2"),
            ("content-location", "cse-in/box"),
            ("content-type", ser.media_type()),
        ] {
            assert_eq!(header(h, name), value, "{ser:?} {name}");
        }
        let back = decode_response(http.status(), http.headers(), http.body()).unwrap();
        assert_eq!(back.rsc, Rsc::Created);
        assert_eq!(back.rqi, "rq-9");
        assert_eq!(back.rvi, resp.rvi);
        assert_eq!(back.ot, resp.ot);
        assert_eq!(back.rset, resp.rset);
        assert_eq!(back.vsi, resp.vsi);
        assert_eq!(back.cnst, Some(2));
        assert_eq!(back.content_location, resp.content_location);
        assert_eq!(back.pc, resp.pc, "{ser:?}");
    }
}

#[test]
fn ts0009_6_3_responses_without_content_and_refused_content() {
    let deleted = Response::new(Rsc::Deleted, "r");
    let http = encode_response(&deleted, Serialization::Json);
    assert_eq!(http.status(), StatusCode::OK);
    assert!(http.body().is_empty());
    assert!(http.headers().get("content-type").is_none());
    let back = decode_response(http.status(), http.headers(), http.body()).unwrap();
    assert_eq!((back.rsc, back.pc), (Rsc::Deleted, None));
    let mut odd = Response::new(Rsc::Ok, "r");
    odd.pc = Some(json!({"m2m:cin": {"con": {"not an xml name": 1}}}));
    let refused = encode_response(&odd, Serialization::Xml);
    assert_eq!(header(refused.headers(), "x-m2m-rsc"), "5207");
    assert_eq!(header(refused.headers(), "x-m2m-ri"), "r");
}

#[test]
fn responses_that_are_not_onem2m_say_why() {
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    };
    assert_eq!(
        decode_response(StatusCode::OK, &headers(&[]), b"").unwrap_err(),
        ResponseError::Malformed("no X-M2M-RSC (HTTP status 200)".into())
    );
    assert_eq!(
        decode_response(StatusCode::OK, &headers(&[("x-m2m-rsc", "x")]), b"").unwrap_err(),
        ResponseError::Malformed("X-M2M-RSC is not a number".into())
    );
    assert_eq!(
        decode_response(StatusCode::OK, &headers(&[("x-m2m-rsc", "2999")]), b"").unwrap_err(),
        ResponseError::UnknownRsc(2999)
    );
    let xml = Serialization::Xml
        .encode_pc(&json!({"m2m:dbg": "x"}))
        .unwrap();
    let read = decode_response(
        StatusCode::BAD_REQUEST,
        &headers(&[
            ("x-m2m-rsc", "4000"),
            ("content-type", "application/vnd.onem2m-res+xml"),
        ]),
        &xml,
    )
    .unwrap();
    assert_eq!(read.pc, Some(json!({"m2m:dbg": "x"})));
}

#[test]
fn ts0009_6_4_http_authentication_schemes_are_not_onem2m_tokens() {
    let tokens_of = |auth: &str| {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(auth).unwrap());
        decode_request_head(&Method::GET, &"/cse-in".parse().unwrap(), &h)
            .map(|(req, _)| req.tkns)
            .unwrap()
    };
    assert!(tokens_of("Basic dXNlcjpwYXNz").is_empty());
    assert!(tokens_of("Bearer some-opaque-token").is_empty());
    assert_eq!(tokens_of("a.b.c+d.e.f"), vec!["a.b.c", "d.e.f"]);
    assert_eq!(tokens_of("a.b.c"), vec!["a.b.c"]);
}
