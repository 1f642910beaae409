use super::*;
use serde_json::json;
use Serialization::*;

const T: &str = "20261202T051500";

/// One representation of every implemented resource type, as the core returns it, and
/// the other content Bastion sends (errors, lists, notifications, creation results).
fn samples() -> Vec<Value> {
    let universal = |extra: Value| {
        let mut base = json!({"ri": "r1", "pi": "p1", "ct": T, "lt": T, "et": T,
            "lbl": ["key:a", "b"], "acpi": ["cse-in/acp1"]});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    };
    let without_acpi = |mut v: Value| {
        v.as_object_mut().unwrap().remove("acpi");
        v
    };
    vec![
        json!({"m2m:ae": universal(json!({"rn": "app", "ty": 2, "api": "Nx.app", "aei": "Cae",
            "rr": true, "srv": ["3", "4"], "poa": ["http://h:1/n"], "csz": ["application/cbor"],
            "apn": "name", "regs": 1}))}),
        json!({"m2m:cnt": universal(json!({"rn": "box", "ty": 3, "cr": "Cae", "st": 0,
            "mni": 10, "mbs": 1000, "mia": 60, "cni": 2, "cbs": 20, "li": "cse-in/box/la",
            "disr": false}))}),
        // Announced variants (TS-0001 9.6.26), typed by their derived policies.
        json!({"m2m:aeA": universal(json!({"rn": "app", "ty": 10002, "lnk": "/id-mn/Cae",
            "api": "Nx.app", "rr": true, "srv": ["3"], "poa": ["http://h:1/n"]}))}),
        json!({"m2m:cntA": universal(json!({"rn": "box", "ty": 10003, "lnk": "/id-mn/cnt1",
            "mni": 10, "ast": 1}))}),
        json!({"m2m:cinA": {"rn": "cin_1", "ty": 10004, "ri": "c1", "pi": "p", "ct": T,
            "lt": T, "et": T, "lnk": "/id-mn/cin1", "cs": 5, "con": "21"}}),
        json!({"m2m:cin": {"rn": "cin_1", "ty": 4, "ri": "c1", "pi": "p", "ct": T, "lt": T,
            "et": T, "st": 3, "cs": 5, "cnf": "text/plain:0", "con": "hello <&> \"x\"",
            "cr": "Cae"}}),
        json!({"m2m:acp": without_acpi(universal(json!({"rn": "acp1", "ty": 1,
            "pv": {"acr": [{"acor": ["Cae", "all"], "acop": 63,
                "acco": [{"actw": ["* * 0-5 * * * *", "* * 22 * * * *"],
                    "acip": {"ipv4": ["10.0.0.0/8"]}}]},
                {"acor": ["Cother"], "acop": 2}]},
            "pvs": {"acr": [{"acor": ["CAdmin"], "acop": 63}]}})))}),
        json!({"m2m:cb": {"rn": "cse-in", "ty": 5, "ri": "id-in", "pi": "", "ct": T, "lt": T,
            "cst": 1, "csi": "/id-in", "srt": [1, 2, 3, 4, 5, 9, 23], "poa": ["http://127.0.0.1:8080"],
            "csz": ["application/json", "application/cbor", "application/xml"],
            "srv": ["2a", "3", "4"]}}),
        json!({"m2m:grp": universal(json!({"rn": "g", "ty": 9, "cr": "Cae", "mt": 3,
            "cnm": 2, "mnm": 5, "mid": ["cse-in/a", "cse-in/b"], "mtv": true, "csy": 1,
            "gn": "group"}))}),
        json!({"m2m:rol": universal(json!({"rn": "r", "ty": 31, "rlid": "role1",
            "tkis": "issuer", "tkhd": "holder", "tknb": T, "tkna": T, "rlnm": "reader"}))}),
        json!({"m2m:tk": universal(json!({"rn": "t", "ty": 32, "tkid": "tk1", "tkob": "a.b.c",
            "vr": "1", "tkis": "issuer", "tkau": ["id-in"], "tknb": T, "tkna": T}))}),
        json!({"m2m:dac": universal(json!({"rn": "d", "ty": 34, "dae": true,
            "dap": ["http://das:1/"], "dal": T}))}),
        json!({"m2m:sub": universal(json!({"rn": "s", "ty": 23, "cr": "Cae",
            "enc": {"net": [1, 3], "chty": [4], "atr": ["lbl"]}, "exc": 5,
            "nu": ["Cae", "http://h:1/n?ct=cbor"], "bn": {"num": 2, "dur": "PT5S"},
            "rl": {"mnn": 3, "tww": "PT1M"}, "nct": 1, "ln": false, "su": "Cae"}))}),
        json!({"m2m:pch": {"rn": "pc", "ty": 15, "ri": "pc1", "pi": "p", "ct": T, "lt": T,
            "et": T}}),
        json!({"m2m:csr": universal(json!({"rn": "mn", "ty": 16, "cst": 2, "cb": "/id-mn/mn",
            "csi": "/id-mn", "rr": true, "srv": ["3"], "poa": ["http://mn:1"]}))}),
        json!({"m2m:req": {"rn": "req1", "ty": 17, "ri": "q", "pi": "p", "ct": T, "lt": T,
            "et": T, "op": 1, "tg": "cse-in/app", "org": "Cae", "rid": "rq", "rs": 2,
            "ors": {"rsc": 2001, "rqi": "rq", "pc": {"m2m:cnt": {"rn": "x"}}}}}),
        // rcn=4: attributes and child resources.
        json!({"m2m:ae": {"rn": "app", "ty": 2, "api": "Nx", "rr": false, "srv": ["3"],
            "m2m:cnt": [{"rn": "a", "ty": 3, "cni": 0}, {"rn": "b", "ty": 3, "cni": 1,
            "m2m:cin": [{"rn": "i", "ty": 4, "con": "v"}]}]}}),
        json!({"m2m:ae": {"rn": "app", "ty": 2, "ch": [{"nm": "a", "typ": 3, "val": "cse-in/app/a"}]}}),
        json!({"m2m:dbg": "no privilege"}),
        json!({"m2m:uril": ["cse-in/a", "cse-in/b"]}),
        json!({"m2m:uril": []}),
        json!({"m2m:rrl": {"rrf": [{"nm": "a", "typ": 3, "val": "cse-in/a"}]}}),
        json!({"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"rn": "i", "ty": 4, "con": "v"}},
            "net": 3}, "sur": "cse-in/app/s", "cr": "Cae"}}),
        json!({"m2m:sgn": {"vrq": true, "sur": "cse-in/app/s", "cr": "Cae"}}),
        json!({"m2m:sgn": {"sud": true, "sur": "cse-in/app/s"}}),
        json!({"m2m:agn": {"m2m:sgn": [{"nev": {"net": 3}, "sur": "s"}, {"sur": "s"}]}}),
        json!({"m2m:rce": {"m2m:cnt": {"rn": "c", "ty": 3}, "uri": "cse-in/c"}}),
        json!({"m2m:agr": {"m2m:rsp": [{"rsc": 2000, "rqi": "r", "pc": {"m2m:cnt": {"rn": "c"}},
            "to": "Cae", "fr": "/id-in"}]}}),
        // An empty set of rules, and a request primitive queued on a polling channel.
        json!({"m2m:acp": {"rn": "open", "ty": 1, "pv": {"acr": []},
            "pvs": {"acr": [{"acor": ["Cae"], "acop": 63}]}}}),
        json!({"m2m:rqp": {"op": 5, "to": "Cpoll", "fr": "/id-in", "rqi": "pch-1", "rvi": "3",
            "pc": {"m2m:sgn": {"nev": {"rep": {"m2m:cin": {"rn": "i", "ty": 4, "con": "q"}},
            "net": 3}, "sur": "/id-in/sub1"}}}}),
        // Every request waiting on a channel with requestAggregation, one or several;
        // an access control rule limited to attributes (aca).
        json!({"m2m:agrq": {"m2m:rqp": [{"op": 5, "to": "Cpoll", "fr": "/id-in", "rqi": "a"}]}}),
        json!({"m2m:agrq": {"m2m:rqp": [{"op": 5, "to": "Cpoll", "fr": "/id-in", "rqi": "a"},
            {"op": 5, "to": "Cpoll", "fr": "/id-in", "rqi": "b"}]}}),
        json!({"m2m:acp": {"rn": "a", "ty": 1, "pv": {"acr": [{"acor": ["Cr"], "acop": 2,
            "aca": ["lbl"]}]}, "pvs": {"acr": [{"acor": ["Cae"], "acop": 63}]}}}),
        json!({"m2m:pch": {"rn": "pch", "ty": 15, "rqag": true}}),
        json!({"m2m:cb": {"rn": "cse-in", "ty": 5, "ctm": T}}),
        // CMDH policy resources (TS-0004 D.12): links, nested back-off sets, lists of
        // numbers and of booleans, negative milliseconds.
        json!({"m2m:cmp": universal(json!({"rn": "pol", "ty": 13, "mgd": 1011, "cpn": "p",
            "cmlk": [{"nm": "defs", "typ": 1013, "val": "cse-in/N1/defs"},
                {"nm": "buf", "typ": 1019, "val": "/id-mn/buf"}]}))}),
        json!({"m2m:cmwr": universal(json!({"rn": "rule", "ty": 13, "mgd": 1018,
            "ttn": ["3gpp"], "mrv": 0, "swt": 5,
            "bop": {"bops": [{"nwa": 5, "ibt": 1, "abt": 2, "mbt": 3, "rbt": 4}]},
            "cmlk": [{"nm": "allowedSchedule", "typ": 1018, "val": "cse-in/N1/sch"}]}))}),
        json!({"m2m:cml": universal(json!({"rn": "lim", "ty": 13, "mgd": 1016, "od": 1,
            "ror": ["default"], "lec": [2, 100], "lqet": [0, -1], "lset": [-1, -1],
            "loet": [10, 2560], "lrp": [0, 0], "lda": [false, true], "rctn": true}))}),
        json!({"m2m:cmpv": universal(json!({"rn": "par", "ty": 13, "mgd": 1015,
            "aec": [0], "dqet": -1, "dset": 5, "doet": 0, "drp": -1, "dda": false}))}),
        // TS-0022 specializations: a nested credentials object, lists of address
        // objects, a list of suid numbers, schedule entries.
        json!({"m2m:wific": universal(json!({"rn": "wifi", "ty": 13, "mgd": 1028,
            "ssid": "home", "scan": false, "cons": 1, "scanr": ["home", "guest"],
            "wcrds": {"enct": 7, "unm": "dev", "pwd": "secret"}}))}),
        json!({"m2m:mnwk": universal(json!({"rn": "mn", "ty": 13, "mgd": 1031, "cnb": 6,
            "rss": -70, "ipad": [{"ip4": "10.0.0.2"}, {"ip6": "fe80::2"}],
            "ripa": [{"ip4": "10.0.0.1"}], "apna": "iot"}))}),
        json!({"m2m:nycfc": universal(json!({"rn": "cert", "ty": 13, "mgd": 1023,
            "suids": [40, 41], "mcff": "application/pkcs7mime", "mcfc": "MIIB"}))}),
        json!({"m2m:datc": universal(json!({"rn": "dc", "ty": 13, "mgd": 1021,
            "cntp": "cse-in/ae/cnt", "rpsc": {"sce": ["0 0 * * * * *"]}, "meil": 60}))}),
    ]
}

#[test]
fn every_representation_round_trips_in_every_serialization() {
    for ser in Serialization::ALL {
        for sample in samples() {
            let bytes = ser
                .encode_pc(&sample)
                .unwrap_or_else(|e| panic!("{ser:?} encode {sample}: {e}"));
            let back = ser
                .decode_pc(&bytes)
                .unwrap_or_else(|e| panic!("{ser:?} decode {sample}: {e}"));
            assert_eq!(back, sample, "{ser:?}: {}", String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn ts0004_8_3_xml_names_namespace_attributes_and_lists() {
    let pc = json!({"m2m:cnt": {"rn": "box", "lbl": ["a", "b"], "mni": 3, "cr": null}});
    let xml = String::from_utf8(Xml.encode_pc(&pc).unwrap()).unwrap();
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><m2m:cnt \
         xmlns:m2m=\"http://www.onem2m.org/xml/protocols\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" rn=\"box\">\
         <lbl>a b</lbl><mni>3</mni><cr xsi:nil=\"true\"/></m2m:cnt>"
    );
    // Another prefix bound to the same namespace, whitespace, entities, CDATA, and an
    // empty `cr` asking for the creator.
    let written = r#"<?xml version="1.0"?>
        <x:cin xmlns:x="http://www.onem2m.org/xml/protocols" rn="i&amp;1">
          <cnf>text/plain:0</cnf>
          <con><![CDATA[<b>]]>&#x41;&lt;</con>
          <lbl> a  b </lbl>
          <cr/>
        </x:cin>"#;
    assert_eq!(
        Xml.decode_pc(written.as_bytes()).unwrap(),
        json!({"m2m:cin": {"rn": "i&1", "cnf": "text/plain:0", "con": "<b>A<",
            "lbl": ["a", "b"], "cr": null}})
    );
    // Typed by the attribute policy: a bad number stays text for the checks to refuse.
    assert_eq!(
        Xml.decode_pc(br#"<m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols"><mni>-x</mni><disr>1</disr></m2m:cnt>"#)
            .unwrap(),
        json!({"m2m:cnt": {"mni": "-x", "disr": true}})
    );
}

#[test]
fn xml_decoding_refuses_what_is_not_onem2m_content() {
    let cases: [(&[u8], &str); 10] = [
        (b"<cnt/>", "unsupported XML: root element cnt is not in the m2m namespace"),
        (
            br#"<m2m:cnt xmlns:m2m="urn:other"/>"#,
            "unsupported XML: root element cnt is not in the m2m namespace",
        ),
        (
            br#"<!DOCTYPE x [<!ENTITY a "b">]><m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols"/>"#,
            "unsupported XML: DOCTYPE",
        ),
        (
            br#"<m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols" mni="3"/>"#,
            "unsupported XML: attribute mni on m2m:cnt",
        ),
        (
            br#"<m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols"><mni>1</mni><mni>2</mni></m2m:cnt>"#,
            "malformed XML: duplicate member mni",
        ),
        (
            br#"<m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols"><mni>1</mni>"#,
            "malformed XML: unclosed element",
        ),
        (
            br#"<m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols"/><m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols"/>"#,
            "malformed XML: more than one root element",
        ),
        (
            br#"<m2m:cnt xmlns:m2m="http://www.onem2m.org/xml/protocols">text</m2m:cnt>"#,
            "malformed XML: m2m:cnt holds text where members were expected",
        ),
        (b"", "malformed XML: no root element"),
        (b"\xff", "malformed XML: not UTF-8"),
    ];
    for (bytes, reason) in cases {
        let err = Xml.decode_pc(bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            reason,
            "{}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(RequestError::from(err).rsc(), crate::Rsc::BadRequest);
    }
    let deep = format!(
        "<m2m:cnt xmlns:m2m=\"{}\">{}{}</m2m:cnt>",
        xml::M2M_NS,
        "<a>".repeat(40),
        "</a>".repeat(40)
    );
    assert_eq!(Xml.decode_pc(deep.as_bytes()), Err(WireError::TooDeep(Xml)));
}

#[test]
fn xml_encoding_refuses_what_it_cannot_say() {
    for pc in [
        json!({"a": 1, "b": 2}),
        json!({"cnt": {}}),
        json!("text"),
        json!({"m2m:cin": {"con": {"a b": 1}}}),
        json!({"m2m:cnt": {"lbl": ["has space"]}}),
    ] {
        assert!(
            matches!(Xml.encode_pc(&pc), Err(WireError::NotRepresentable(Xml, _))),
            "{pc}"
        );
    }
}

#[test]
fn rfc8949_cbor_decoding_is_strict_and_bounded() {
    // {"a": 1, "a": 2}
    assert_eq!(
        Cbor.decode_pc(&[0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02]),
        Err(WireError::DuplicateMember(Cbor, "a".into()))
    );
    let cases: [(&[u8], &str); 5] = [
        (&[0x41, 0x00], "unsupported CBOR: byte string"),
        (&[0xc1, 0x01], "unsupported CBOR: tagged item"),
        (
            &[0xa1, 0x01, 0x01],
            "unsupported CBOR: map key that is not text",
        ),
        (&[0x01, 0x02], "malformed CBOR: trailing data"),
        (
            &[0xf9, 0x7e, 0x00],
            "unsupported CBOR: NaN or infinite number",
        ),
    ];
    for (bytes, reason) in cases {
        assert_eq!(
            Cbor.decode_pc(bytes).unwrap_err().to_string(),
            reason,
            "{bytes:x?}"
        );
    }
    assert!(matches!(
        Cbor.decode_pc(&[0xa1]),
        Err(WireError::Malformed(Cbor, _))
    ));
    assert!(matches!(
        Cbor.decode_pc(&[]),
        Err(WireError::Malformed(Cbor, _))
    ));
    // A header claiming 2^60 entries must fail on the missing data, not allocate.
    assert!(Cbor.decode_pc(&[0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0]).is_err());
    let deep: Vec<u8> = std::iter::repeat_n(0x81, 40).chain([0x01]).collect();
    assert_eq!(Cbor.decode_pc(&deep), Err(WireError::TooDeep(Cbor)));
    let ok: Vec<u8> = std::iter::repeat_n(0x81, 32).chain([0x01]).collect();
    assert!(Cbor.decode_pc(&ok).is_ok());
}

#[test]
fn json_keeps_todays_strict_behaviour() {
    assert_eq!(
        Json.decode_pc(br#"{"a":1,"a":2}"#),
        Err(WireError::DuplicateMember(Json, "a".into()))
    );
    assert_eq!(
        RequestError::from(Json.decode_pc(b"{").unwrap_err()).rsc(),
        crate::Rsc::BadRequest
    );
    assert_eq!(
        Json.encode_pc(&json!({"m2m:dbg": "x"})).unwrap(),
        br#"{"m2m:dbg":"x"}"#
    );
}

#[test]
fn names_and_media_types() {
    for ser in Serialization::ALL {
        assert_eq!(Serialization::from_name(ser.name()), Some(ser));
        assert_eq!(ser.media_type(), format!("application/{}", ser.name()));
    }
    assert_eq!(Serialization::from_name("CBOR"), Some(Cbor));
    assert_eq!(Serialization::from_name("yaml"), None);
}

#[test]
fn ts0004_7_4_8_ct_query_member_of_a_notification_uri() {
    let split =
        |t| target_serialization(t).map(|(sent, ser)| (sent.into_owned(), ser.map(|s| s.name())));
    assert_eq!(
        split("http://h:1/n?ct=cbor"),
        Some(("http://h:1/n".into(), Some("cbor")))
    );
    assert_eq!(split("http://h:1/n"), Some(("http://h:1/n".into(), None)));
    // After the application's own members, which are sent on.
    assert_eq!(
        split("http://h:1/n?q=true&ct=xml"),
        Some(("http://h:1/n?q=true".into(), Some("xml")))
    );
    assert_eq!(
        split("http://h:1/n?q=1"),
        Some(("http://h:1/n?q=1".into(), None))
    );
    for bad in [
        "http://h:1/n?ct=yaml",
        "http://h:1/n?ct=",
        "http://h:1/n?ct=json&ct=xml",
    ] {
        assert_eq!(split(bad), None, "{bad}");
    }
}

#[test]
fn xml_specialization_roots_round_trip_with_typed_custom_attributes() {
    // A flexContainer under its specialization's name, with a child instance (rcn 4).
    let pc = json!({"cod:bat": {
        "rn": "b", "ty": 28, "cnd": "org.onem2m.common.moduleclass.battery", "st": 2,
        "lvl": 80, "charg": true, "chaVe": 4.5, "dgt": "20260101T000000", "lbl": ["a"],
        "cod:bat": [{"rn": "i", "ty": 58, "lvl": 79, "org": "Cme"}],
        "m2m:cnt": [{"rn": "c", "ty": 3}]
    }});
    let bytes = Xml.encode_pc(&pc).expect("encodes");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(
        text.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><cod:bat xmlns:m2m=\"http://www.onem2m.org/xml/protocols\" xmlns:cod=\"urn:bastion:flex:cod\" rn=\"b\">"
        ),
        "{text}"
    );
    assert_eq!(Xml.decode_pc(&bytes), Ok(pc));
    // The prefix names the specialization whatever namespace it is bound to; an
    // attribute the specialization does not define stays text for the CSE to refuse.
    let sent = "<x:binSh xmlns:x=\"http://example.com/any\"><cnd>c</cnd>\
                <powSe>false</powSe><speed>3</speed></x:binSh>";
    assert_eq!(
        Xml.decode_pc(sent.as_bytes()),
        Ok(json!({"x:binSh": {"cnd": "c", "powSe": "false", "speed": "3"}}))
    );
    let sent = "<cod:binSh xmlns:cod=\"http://example.com/any\"><powSe>false</powSe></cod:binSh>";
    assert_eq!(
        Xml.decode_pc(sent.as_bytes()),
        Ok(json!({"cod:binSh": {"powSe": false}}))
    );
    // A default (unprefixed) foreign namespace is still refused.
    let sent = "<binSh xmlns=\"http://example.com/any\"><powSe>false</powSe></binSh>";
    assert!(matches!(
        Xml.decode_pc(sent.as_bytes()),
        Err(WireError::Unsupported(Xml, _))
    ));
}

#[test]
fn ts0004_8_2_4_announced_specializations_round_trip_with_typed_members() {
    // A `<mgmtObjAnnc>` under its specialization's announced name, a
    // `<flexContainerAnnc>` under the specialization's root and `Annc`: every member
    // comes back with its type from XML text, and unchanged from CBOR.
    for pc in [
        json!({"m2m:fwrA": {"rn": "fw", "ty": 10013, "lnk": "/id-mn/fw1", "mgd": 1001,
            "vr": "1.0", "ud": false, "lbl": ["a"]}}),
        json!({"m2m:batA": {"ty": 10013, "lnk": "/id-mn/b", "mgd": 1006, "btl": 50, "bts": 1}}),
        json!({"cod:binShAnnc": {"rn": "sw", "ty": 10028, "lnk": "/id-mn/fc1",
            "cnd": "org.onem2m.common.moduleclass.binarySwitch", "powSe": true, "ast": 1}}),
        json!({"cod:batAnnc": {"ty": 10028, "lnk": "/id-mn/b",
            "cnd": "org.onem2m.common.moduleclass.battery", "lvl": 80, "chaVe": 4.5}}),
    ] {
        for s in [Xml, Cbor] {
            let bytes = s.encode_pc(&pc).expect("encodes");
            assert_eq!(s.decode_pc(&bytes), Ok(pc.clone()), "{s:?}");
        }
    }
}
