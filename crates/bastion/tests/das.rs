//! End-to-end tests of `bastion das` (TS-0003 7.3; docs/das.md): the real binary on a free
//! port with a temporary policy, asked over HTTP with `bastion-client`; tokens are checked
//! with the CSE's own `TokenVerifier`.

use crate::common;

use bastion_client::Client;
use bastion_das::{consult, DasError};
use bastion_policy::{IssuerKey, LocalIdentity, TokenContext, TokenVerifier};
use bastion_proto::security_info::{DynAuthDasRequest, SecurityInfo};
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, Rsc};
use common::das_policy::{das_policy, write_das_files};
use common::das_tls::DasServer;
use common::start_das;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_bastion");
const SECRET: &str = "das-integration-test-secret-0123456789";
const ISSUER: &str = "//bastion.example/id-das/Cdas";

/// Csensor1 granted by dynamic ACP info, `Cfleet-` originators by tokens.
const RULES: &str = r#"
[[rule]]
name = "sensor-acp"
originators = ["Csensor1"]
targets = ["/id-in/farm"]
operations = ["retrieve"]
[rule.acp]
lifetime = 600
privileges = { acr = [{ acor = ["Csensor1"], acop = 2 }] }

[[rule]]
name = "fleet-token"
originator_prefixes = ["Cfleet-"]
operations = ["create", "retrieve"]
[rule.token]
audience = ["//bastion.example/id-in"]
lifetime = 300
[[rule.token.permissions]]
ris = ["/id-in/farm"]
pv = { acr = [{ acor = ["all"], acop = 3 }] }
"#;

/// A running `bastion das` with its policy and secret files.
struct Das {
    /// Killed when the test drops it.
    _process: DasServer,
    url: String,
    _dir: tempfile::TempDir,
}

fn start() -> Das {
    let dir = tempfile::tempdir().expect("temporary directory");
    // The newline ending the secret file is dropped.
    let file = write_das_files(dir.path(), &format!("{SECRET}\n"), &das_policy(RULES));
    let process = start_das(&file);
    Das {
        url: process.plain_url.clone().expect("plain listener"),
        _process: process,
        _dir: dir,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn dreq(or: &str, op: u64, trid: Option<&str>) -> DynAuthDasRequest {
    DynAuthDasRequest {
        or: or.into(),
        op,
        trid: trid.map(str::to_owned),
        ..DynAuthDasRequest::default()
    }
}

fn verifier() -> TokenVerifier {
    TokenVerifier::new(LocalIdentity {
        sp_id: "//bastion.example".into(),
        cse_id: "/id-in".into(),
        admin: "CAdmin".into(),
    })
    .trust(
        ISSUER,
        IssuerKey::hs256(SECRET.as_bytes().to_vec()).expect("key"),
    )
}

/// A NOTIFY from `from` with `pc`.
fn notify(from: &str, pc: Value) -> Request {
    Request {
        op: Some(Operation::Notify),
        fr: Some(from.into()),
        rqi: Some("rq-1".into()),
        rvi: Some("3".into()),
        pc: Some(pc),
        ..Request::default()
    }
}

#[tokio::test]
async fn ts0003_7_3_2_2_direct_flow_grants_dynamic_acp_info() {
    let das = start();
    let client = Client::default();
    let before = now();
    let dres = consult(
        &client,
        &das.url,
        "/id-in",
        dreq("Csensor1", 2, Some("/id-in/farm/cnt1")),
    )
    .await
    .expect("answer");
    let dai = dres.dai.expect("dynamic ACP info");
    assert_eq!(dai.gp, json!({"acr": [{"acor": ["Csensor1"], "acop": 2}]}));
    let pl = Timestamp::parse(dai.pl.as_deref().unwrap_or(""))
        .expect("pl timestamp")
        .0;
    assert!((before + 600..=now() + 600).contains(&pl), "pl {pl}");
    assert!(dres.tkns.is_empty());

    // Another operation, or a target outside /id-in/farm: no rule, nothing granted.
    for (op, trid) in [(3, "/id-in/farm"), (2, "/id-in/farmhouse")] {
        let deny = consult(
            &client,
            &das.url,
            "/id-in",
            dreq("Csensor1", op, Some(trid)),
        )
        .await
        .expect("answer");
        assert!(deny.is_denial(), "{op} {trid}: {deny:?}");
    }
}

#[tokio::test]
async fn ts0003_7_3_2_4_issued_tokens_verify_and_are_found_by_id() {
    let das = start();
    let client = Client::default();
    let dres = consult(
        &client,
        &das.url,
        "/id-in",
        dreq("Cfleet-7", 1, Some("/id-in/farm")),
    )
    .await
    .expect("answer");
    assert!(dres.dai.is_none());
    assert_eq!(dres.tkns.len(), 1);
    let token = &dres.tkns[0];
    let v = verifier()
        .verify(
            token,
            &TokenContext {
                now: now(),
                originator: "Cfleet-7",
            },
        )
        .expect("the CSE verifier accepts the token");
    assert_eq!(v.holder, "//bastion.example/id-in/Cfleet-7");
    assert_eq!(v.issuer, ISSUER);
    assert_eq!(v.not_after - v.not_before, 300);
    assert_eq!(v.audience, vec!["//bastion.example/id-in".to_owned()]);
    assert_eq!(v.rules_for("/id-in/farm").count(), 1);
    assert!(v.token_id.ends_with("@das.example"));
    // Only the holder may use it.
    assert!(verifier()
        .verify(
            token,
            &TokenContext {
                now: now(),
                originator: "Cfleet-8"
            }
        )
        .is_err());

    // Token-ID request (TS-0003 7.3.2.3 step 4): the same token for its holder only.
    let mut by_id = dreq("Cfleet-7", 1, None);
    by_id.tids = vec![v.token_id.clone(), "unknown@das.example".into()];
    let again = consult(&client, &das.url, "/id-in", by_id.clone())
        .await
        .expect("answer");
    assert_eq!(again.tkns, vec![token.clone()]);
    by_id.or = "Cfleet-8".into();
    let other = consult(&client, &das.url, "/id-in", by_id)
        .await
        .expect("answer");
    assert!(other.is_denial());
}

#[tokio::test]
async fn ts0003_7_3_2_3_indirect_flow_the_originator_asks_itself() {
    let das = start();
    let client = Client::default();
    // An AE asking for itself gets tokens.
    let dres = consult(&client, &das.url, "Cfleet-9", dreq("Cfleet-9", 2, None))
        .await
        .expect("answer");
    assert_eq!(dres.tkns.len(), 1);
    assert!(verifier()
        .verify(
            &dres.tkns[0],
            &TokenContext {
                now: now(),
                originator: "Cfleet-9"
            }
        )
        .is_ok());
    // Dynamic ACP info is only for hosting CSEs: an AE gets a denial.
    let acp = consult(
        &client,
        &das.url,
        "Csensor1",
        dreq("Csensor1", 2, Some("/id-in/farm")),
    )
    .await
    .expect("answer");
    assert!(acp.is_denial());
    // An AE asking for someone else: 4103.
    let req = notify(
        "Cmallory",
        SecurityInfo::DasRequest(dreq("Cfleet-9", 2, None)).to_pc(),
    );
    let resp = client.send(&das.url, &req).await.expect("response");
    assert_eq!(resp.rsc, Rsc::OriginatorHasNoPrivilege);
    assert_eq!(
        resp.pc,
        Some(json!({"m2m:dbg": "requester may not ask for this originator"}))
    );
    let err = consult(&client, &das.url, "Cmallory", dreq("Cfleet-9", 2, None)).await;
    assert!(matches!(
        err,
        Err(DasError::Status(Rsc::OriginatorHasNoPrivilege))
    ));
}

#[tokio::test]
async fn no_matching_rule_is_an_empty_response() {
    let das = start();
    let client = Client::default();
    let req = notify(
        "/id-in",
        SecurityInfo::DasRequest(dreq("Cstranger", 2, Some("/id-in/farm"))).to_pc(),
    );
    let resp = client.send(&das.url, &req).await.expect("response");
    assert_eq!(resp.rsc, Rsc::Ok);
    assert_eq!(resp.rqi, "rq-1");
    assert_eq!(resp.rvi.as_deref(), Some("3"));
    assert_eq!(resp.pc, Some(json!({"m2m:seci": {"sit": 2, "dres": {}}})));
}

#[tokio::test]
async fn malformed_requests_get_exact_onem2m_errors() {
    let das = start();
    let client = Client::default();
    let cases: Vec<(Request, Rsc, &str)> = vec![
        (
            notify("/id-in", json!({"m2m:sgn": {}})),
            Rsc::BadRequest,
            "content is not a single m2m:seci object",
        ),
        (
            notify("/id-in", json!({"m2m:seci": {"sit": 2, "dres": {}}})),
            Rsc::BadRequest,
            "securityInfo sit 2 is a response, not a request",
        ),
        (
            notify("/id-in", json!({"m2m:seci": {"sit": 5}})),
            Rsc::BadRequest,
            "securityInfo type 5 is not supported",
        ),
        (
            notify(
                "/id-in",
                json!({"m2m:seci": {"sit": 1, "dreq": {"or": "Cae", "op": 9}}}),
            ),
            Rsc::BadRequest,
            "dreq.op is not an operation",
        ),
        (
            notify(
                "/id-in",
                json!({"m2m:seci": {"sit": 1, "dreq": {"or": "Cae", "op": 1, "rts": "now"}}}),
            ),
            Rsc::BadRequest,
            "rts is not a oneM2M timestamp",
        ),
        (
            Request {
                fr: None,
                ..notify(
                    "/id-in",
                    SecurityInfo::DasRequest(dreq("Cae", 1, None)).to_pc(),
                )
            },
            Rsc::BadRequest,
            "X-M2M-Origin missing",
        ),
        (
            Request {
                op: Some(Operation::Create),
                ty: Some(3),
                ..notify("/id-in", json!({"m2m:cnt": {}}))
            },
            Rsc::OperationNotAllowed,
            "a DAS Server accepts only NOTIFY (POST without ty)",
        ),
        (
            Request {
                op: Some(Operation::Retrieve),
                pc: None,
                ..notify("/id-in", Value::Null)
            },
            Rsc::OperationNotAllowed,
            "a DAS Server accepts only NOTIFY (POST without ty)",
        ),
    ];
    for (req, rsc, reason) in cases {
        let resp = client.send(&das.url, &req).await.expect("response");
        assert_eq!(resp.rsc, rsc, "{reason}");
        assert_eq!(resp.pc, Some(json!({"m2m:dbg": reason})));
    }

    // Unknown member in dreq: 4000 with serde's reason.
    let resp = client
        .send(
            &das.url,
            &notify(
                "/id-in",
                json!({"m2m:seci": {"sit": 1, "dreq": {"or": "C", "op": 1, "x": 1}}}),
            ),
        )
        .await
        .expect("response");
    assert_eq!(resp.rsc, Rsc::BadRequest);

    // Raw HTTP: duplicate JSON members, wrong media type, missing X-M2M-RI.
    let addr = das.url.trim_start_matches("http://").to_owned();
    let dup = r#"{"m2m:seci":{"sit":1,"sit":1}}"#;
    let (status, rsc) = raw(&addr, "application/json", dup, true);
    assert_eq!((status, rsc.as_str()), (400, "4000"));
    let (status, rsc) = raw(&addr, "text/plain", "x", true);
    assert_eq!((status, rsc.as_str()), (415, "4015"));
    let (status, rsc) = raw(&addr, "application/json", "{}", false);
    assert_eq!((status, rsc.as_str()), (400, "4000"));
    // `ty` in Content-Type: a CREATE is 4005; a `ty` that is no number is 4000, as at the
    // CSE (the shared Content-Type parser).
    let (status, rsc) = raw(&addr, "application/json;ty=3", "{}", true);
    assert_eq!((status, rsc.as_str()), (405, "4005"));
    let (status, rsc) = raw(&addr, "application/json;ty=x", "{}", true);
    assert_eq!((status, rsc.as_str()), (400, "4000"));
}

/// One raw HTTP/1.1 POST; returns the status and X-M2M-RSC.
fn raw(addr: &str, content_type: &str, body: &str, with_ri: bool) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let ri = if with_ri { "X-M2M-RI: r1\r\n" } else { "" };
    let request = format!(
        "POST /das HTTP/1.1\r\nHost: {addr}\r\nX-M2M-Origin: /id-in\r\n{ri}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rsc = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-m2m-rsc:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, rsc)
}

#[test]
fn an_invalid_policy_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("das.toml");
    std::fs::write(&file, das_policy(&RULES.replace("Cfleet-", "Cfleet-*"))).expect("policy");
    let out = Command::new(BIN)
        .args(["das", "--listen", "127.0.0.1:0", "--policy"])
        .arg(&file)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bastion das");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without '*'"), "{stderr}");
}
