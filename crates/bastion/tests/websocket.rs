//! The WebSocket binding (TS-0020; docs/bindings.md) of the real binary, driven by the
//! Python `websockets` client (PyPI, in the venv of `scripts/python-env`) through
//! `tests/ws_driver.py`, and by tokio-tungstenite where a TLS-PSK association comes
//! first (`wss://`) or frames must be sent that a well-behaved client would not send.
//! Under `CI=true` a missing Python environment fails; elsewhere those tests say why and
//! skip.

use crate::common;

use bastion_proto::wire::Serialization;
use common::identity::{Bound, PskServer};
use common::ws::{connect_plain, upgrade, ws_port, Incoming, WsClient};
use common::{Server, ADMIN};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const SENSOR_ID: &str = "ws-sensor@bastion.example";
const SENSOR_KEY: &str = "00112233445566778899aabbccddeeff";
const MISMATCH: &str = "originator does not match the authenticated identity";
const BOUND_ELSEWHERE: &str = "originator is bound to a security association and must use it";

/// A server with a plain WebSocket listener (and `extra` lines in `[ws]`).
fn ws_server(extra: &str) -> (Server, u16) {
    let srv = Server::start_with_config(&format!("[ws]\nlisten = \"127.0.0.1:0\"\n{extra}\n"));
    let port = ws_port(&srv, "ws");
    (srv, port)
}

// ---------------------------------------------------------------------------------
// The Python client.

/// The python of `scripts/python-env` (cbor2 and websockets), or `None` (skip) with the
/// reason printed; under `CI=true` its absence fails.
fn python() -> Option<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-env");
    let why = match Command::new(&script).output() {
        Ok(o) if o.status.success() => {
            return Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("scripts/python-env failed under CI: {why}");
    }
    eprintln!(
        "SKIPPED: no Python with websockets ({}): {why}",
        script.display()
    );
    None
}

/// One connection of the Python client, commanded line by line (tests/ws_driver.py).
struct Driver {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The upgrade's outcome: `{"subprotocol": ..}` or `{"refused": status}`.
    opened: Value,
}

impl Driver {
    fn open(python: &PathBuf, port: u16, offered: &str) -> Driver {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ws_driver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(format!("ws://127.0.0.1:{port}/"))
            .arg(offered)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the driver");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let opened = read_line(&mut stdout);
        Driver {
            child,
            stdin,
            stdout,
            opened,
        }
    }

    fn command(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").expect("to the driver");
        self.stdin.flush().expect("flush");
        read_line(&mut self.stdout)
    }

    fn send(&mut self, primitive: Value) {
        assert_eq!(
            self.command(json!({ "send": primitive })),
            json!({"sent": true})
        );
    }

    /// The next message: `{"message": primitive, "frame": "text"|"binary"}`, or
    /// `{"closed": code, "reason": ..}`.
    fn recv(&mut self) -> Value {
        self.command(json!({"recv": 15}))
    }

    /// Reads until the response to `rqi` has come and the NOTIFY requests of the CSE
    /// (each answered 2000) satisfy `enough`; returns the response and the NOTIFYs.
    fn answer_notifies_until(
        &mut self,
        rqi: &str,
        enough: impl Fn(&[Value]) -> bool,
    ) -> (Value, Vec<Value>) {
        let (mut answer, mut seen) = (None, Vec::new());
        while answer.is_none() || !enough(&seen) {
            let got = self.recv();
            let message = got
                .get("message")
                .cloned()
                .unwrap_or_else(|| panic!("{got}"));
            if message["op"] == 5 {
                self.send(json!({"rsc": 2000, "rqi": message["rqi"], "rvi": "3"}));
                seen.push(message);
            } else {
                assert_eq!(message["rqi"], rqi, "{message}");
                answer = Some(message);
            }
        }
        (answer.expect("answer"), seen)
    }

    /// Sends a request and returns the primitive answering it.
    fn exchange(&mut self, primitive: Value) -> Value {
        self.send(primitive);
        let got = self.recv();
        got.get("message")
            .cloned()
            .unwrap_or_else(|| panic!("no answer: {got}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> Value {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("from the driver");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver said {line:?}"))
}

fn register(rqi: &str, rn: &str, poa: &[String]) -> Value {
    json!({"op": 1, "to": "/id-in", "fr": "C", "rqi": rqi, "rvi": "3", "ty": 2,
           "pc": {"m2m:ae": {"rn": rn, "api": "Nws.test", "rr": true, "srv": ["3"], "poa": poa}}})
}

/// Registration, a container, a content instance and its retrieval, in the
/// serialization `offered` names, from the Python client.
fn crud_over_python(offered: &str, frame: &str) {
    let Some(python) = python() else { return };
    let (_srv, port) = ws_server("");
    let mut ae = Driver::open(&python, port, offered);
    assert_eq!(ae.opened, json!({"subprotocol": offered}));

    let created = ae.exchange(register("r-1", "wsapp", &[]));
    assert_eq!(created["rsc"], 2001, "{created}");
    assert_eq!(created["rqi"], "r-1");
    assert_eq!(created["rvi"], "3");
    assert_eq!(created["fr"], "/id-in");
    let aei = created["pc"]["m2m:ae"]["aei"]
        .as_str()
        .expect("aei")
        .to_owned();
    assert!(aei.starts_with('C'), "{created}");
    assert_eq!(created["pc"]["m2m:ae"]["rn"], "wsapp");
    assert_eq!(created["pc"]["m2m:ae"]["api"], "Nws.test");

    let cnt = ae.exchange(
        json!({"op": 1, "to": "/id-in/cse-in/wsapp", "fr": aei, "rqi": "r-2",
        "rvi": "3", "ty": 3, "pc": {"m2m:cnt": {"rn": "data", "mni": 5}}}),
    );
    assert_eq!(cnt["rsc"], 2001, "{cnt}");
    assert_eq!(cnt["to"], aei);
    assert_eq!(cnt["pc"]["m2m:cnt"]["rn"], "data");
    assert_eq!(cnt["pc"]["m2m:cnt"]["mni"], 5);

    let cin = ae.exchange(json!({"op": 1, "to": "/id-in/cse-in/wsapp/data", "fr": aei, "rqi": "r-3",
        "rvi": "3", "ty": 4, "pc": {"m2m:cin": {"rn": "c1", "cnf": "text/plain:0", "con": "21.5"}}}));
    assert_eq!(cin["rsc"], 2001, "{cin}");
    assert_eq!(cin["pc"]["m2m:cin"]["con"], "21.5");
    assert_eq!(cin["pc"]["m2m:cin"]["cs"], 4);

    ae.send(
        json!({"op": 2, "to": "/id-in/cse-in/wsapp/data/la", "fr": aei, "rqi": "r-4", "rvi": "3"}),
    );
    let got = ae.recv();
    assert_eq!(got["frame"], frame, "{got}");
    let latest = &got["message"];
    assert_eq!(latest["rsc"], 2000, "{latest}");
    assert_eq!(latest["rqi"], "r-4");
    assert_eq!(latest["pc"]["m2m:cin"]["rn"], "c1");
    assert_eq!(latest["pc"]["m2m:cin"]["con"], "21.5");
}

#[test]
fn ts0020_json_registration_container_instance_and_retrieve() {
    crud_over_python("oneM2M.json", "text");
}

#[test]
fn ts0020_cbor_registration_container_instance_and_retrieve() {
    crud_over_python("oneM2M.cbor", "binary");
}

/// TS-0020 6.2.2.7/6.2.3.5: the server picks one of the offered oneM2M names, the first
/// acceptable in the client's order, as spelled; an upgrade offering none is refused
/// with HTTP 400 (6.2.3.1: "any appropriate HTTP error status code"; docs/decisions.md).
#[test]
fn ts0020_6_2_3_subprotocol_negotiation_and_refusal() {
    let Some(python) = python() else { return };
    let (_srv, port) = ws_server("");
    let refused = Driver::open(&python, port, "chat");
    assert_eq!(refused.opened, json!({"refused": 400}));
    let refused = Driver::open(&python, port, "oneM2M.yaml,onem2m");
    assert_eq!(refused.opened, json!({"refused": 400}));
    let chosen = Driver::open(&python, port, "chat,onem2m.r2.0.json,oneM2M.cbor");
    assert_eq!(chosen.opened, json!({"subprotocol": "onem2m.r2.0.json"}));
    let xml = Driver::open(&python, port, "oneM2M.xml");
    assert_eq!(xml.opened, json!({"subprotocol": "oneM2M.xml"}));
}

/// A request that cannot be read but whose `rqi` can is answered 4000 with `m2m:dbg`;
/// a message that is no primitive ends the connection with 1007, and a frame of the
/// other type with 1003 (docs/bindings.md).
#[test]
fn malformed_messages_are_answered_or_closed_with_the_right_code() {
    let Some(python) = python() else { return };
    let (_srv, port) = ws_server("");
    let mut ws = Driver::open(&python, port, "oneM2M.json");
    let bad = ws.exchange(json!({"op": 2, "to": 5, "fr": "Cx", "rqi": "bad-1", "rvi": "3"}));
    assert_eq!(bad["rsc"], 4000, "{bad}");
    assert_eq!(bad["rqi"], "bad-1");
    assert_eq!(bad["to"], "Cx");
    assert_eq!(bad["pc"]["m2m:dbg"], "to must be a string", "{bad}");
    let op = ws.exchange(json!({"op": 9, "to": "/id-in", "fr": "Cx", "rqi": "bad-2", "rvi": "3"}));
    assert_eq!(op["rsc"], 4000, "{op}");
    assert_eq!(op["rqi"], "bad-2");
    assert_eq!(op["pc"]["m2m:dbg"], "op must be an operation (1-5)", "{op}");

    assert_eq!(ws.command(json!({"text": "{not json"}))["sent"], true);
    let closed = ws.recv();
    assert_eq!(closed["closed"], 1007, "{closed}");

    let mut ws = Driver::open(&python, port, "oneM2M.json");
    assert_eq!(ws.command(json!({"binary": "7b7d"}))["sent"], true);
    let closed = ws.recv();
    assert_eq!(closed["closed"], 1003, "{closed}");
    assert_eq!(
        closed["reason"],
        "binary frames do not carry JSON primitives"
    );

    let mut ws = Driver::open(&python, port, "oneM2M.json");
    ws.send(json!({"op": 2, "to": "/id-in", "fr": "Cx", "rvi": "3"}));
    let closed = ws.recv();
    assert_eq!(closed["closed"], 1007, "{closed}");
}

/// A subscription's notifications reach the AE over the connection it opened (its `poa`
/// names the `ws://` listener), are answered there and matched by `rqi`, while the AE's
/// own request on the same connection is answered too; in JSON and CBOR. (No
/// verification request: the subscriber is its own notification target.)
#[test]
fn ts0020_notify_over_the_aes_own_connection() {
    let Some(python) = python() else { return };
    for offered in ["oneM2M.json", "oneM2M.cbor"] {
        let (_srv, port) = ws_server("");
        let mut ae = Driver::open(&python, port, offered);
        let poa = [format!("ws://127.0.0.1:{port}")];
        let created = ae.exchange(register("n-1", "listener", &poa));
        assert_eq!(created["rsc"], 2001, "{created}");
        let aei = created["pc"]["m2m:ae"]["aei"]
            .as_str()
            .expect("aei")
            .to_owned();
        let cnt = ae.exchange(
            json!({"op": 1, "to": "/id-in/cse-in/listener", "fr": aei, "rqi": "n-2",
            "rvi": "3", "ty": 3, "pc": {"m2m:cnt": {"rn": "box"}}}),
        );
        assert_eq!(cnt["rsc"], 2001, "{cnt}");

        ae.send(
            json!({"op": 1, "to": "/id-in/cse-in/listener/box", "fr": aei, "rqi": "n-3",
            "rvi": "3", "ty": 23, "pc": {"m2m:sub": {"rn": "s", "nu": [aei], "nct": 1,
            "enc": {"net": [3]}}}}),
        );
        let (sub, mut notified) = ae.answer_notifies_until("n-3", |_| true);
        assert_eq!(sub["rsc"], 2001, "{offered}: {sub}");
        let sur = sub["pc"]["m2m:sub"]["ri"].as_str().expect("ri").to_owned();

        ae.send(
            json!({"op": 1, "to": "/id-in/cse-in/listener/box", "fr": aei, "rqi": "n-4",
            "rvi": "3", "ty": 4, "pc": {"m2m:cin": {"con": "on"}}}),
        );
        let event = |n: &Value| n["pc"]["m2m:sgn"].get("nev").is_some();
        let (answer, more) = ae.answer_notifies_until("n-4", |seen| seen.iter().any(event));
        assert_eq!(answer["rsc"], 2001, "{answer}");
        notified.extend(more);
        // Every NOTIFY came from the CSE to this AE over its connection: the event, and
        // the verification request of the AE's point of access, whenever it was sent.
        for notify in &notified {
            assert_eq!(notify["to"], aei.as_str(), "{notify}");
            assert_eq!(notify["fr"], "/id-in", "{notify}");
            if notify["pc"]["m2m:sgn"]["vrq"] == true {
                assert_eq!(notify["pc"]["m2m:sgn"]["cr"], aei.as_str(), "{notify}");
            }
        }
        let notify = notified.iter().find(|n| event(n)).expect("the event");
        let sgn = &notify["pc"]["m2m:sgn"];
        assert!(
            sgn["sur"].as_str().is_some_and(|s| s.ends_with(&sur)),
            "{notify}"
        );
        assert_eq!(sgn["nev"]["net"], 3, "{notify}");
        assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["con"], "on", "{notify}");
    }
}

/// `[ws] max-connections`: one more upgrade is answered 503 while the limit is held.
#[test]
fn connections_are_bounded() {
    let Some(python) = python() else { return };
    let (srv, port) = ws_server("max-connections = 1");
    let first = Driver::open(&python, port, "oneM2M.json");
    assert_eq!(first.opened, json!({"subprotocol": "oneM2M.json"}));
    let second = Driver::open(&python, port, "oneM2M.json");
    assert_eq!(second.opened, json!({"refused": 503}));
    assert!(srv.log_shows("WebSocket connections exhausted", Duration::from_secs(5)));
    drop(first);
    // The slot is free again once the first connection is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = Driver::open(&python, port, "oneM2M.json");
        if again.opened == json!({"subprotocol": "oneM2M.json"}) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", again.opened);
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------
// The Rust client: TLS-PSK, bounds.

/// A message over `[ws] max-message-bytes` ends the connection with 1009; an answer over
/// it becomes 5207 (the operation itself was performed).
#[tokio::test(flavor = "multi_thread")]
async fn messages_are_bounded() {
    let (_srv, port) = tokio::task::block_in_place(|| ws_server("max-message-bytes = 2048"));
    let mut ae = connect_plain(port, Serialization::Json).await;
    let created = ae.exchange(&register("b-1", "big", &[])).await;
    assert_eq!(created["rsc"], 2001, "{created}");
    let aei = created["pc"]["m2m:ae"]["aei"].clone();
    let cnt = ae
        .exchange(
            &json!({"op": 1, "to": "/id-in/cse-in/big", "fr": aei, "rqi": "b-2",
            "rvi": "3", "ty": 3, "pc": {"m2m:cnt": {"rn": "c"}}}),
        )
        .await;
    assert_eq!(cnt["rsc"], 2001, "{cnt}");
    for n in 0..3 {
        let cin = ae
            .exchange(&json!({"op": 1, "to": "/id-in/cse-in/big/c", "fr": aei,
                "rqi": format!("b-cin-{n}"), "rvi": "3", "ty": 4,
                "pc": {"m2m:cin": {"con": "y".repeat(1000)}}}))
            .await;
        assert_eq!(cin["rsc"], 2001, "{cin}");
    }
    // Attributes and child resources: three instances of 1000 bytes do not fit.
    let all = ae
        .exchange(
            &json!({"op": 2, "to": "/id-in/cse-in/big/c", "fr": aei, "rqi": "b-3",
            "rvi": "3", "rcn": 4}),
        )
        .await;
    assert_eq!(all["rsc"], 5207, "{all}");
    assert_eq!(all["rqi"], "b-3");
    assert_eq!(
        all["pc"]["m2m:dbg"],
        "the response exceeds the WebSocket message limit"
    );

    let mut ws = connect_plain(port, Serialization::Json).await;
    let big = "x".repeat(4096);
    ws.send(&json!({"op": 2, "to": "/id-in", "fr": "Cx", "rqi": big, "rvi": "3"}))
        .await;
    match ws.next(Duration::from_secs(10)).await {
        Incoming::Closed(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close 1009, got {other:?}"),
    }
}

/// `[ws] idle-timeout-secs`: a silent connection is pinged, and closed (1001) when it
/// does not answer.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_pinged_then_closed() {
    let (_srv, port) = tokio::task::block_in_place(|| ws_server("idle-timeout-secs = 1"));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (ws, _) = upgrade(tcp, "ws://127.0.0.1/", "oneM2M.json")
        .await
        .expect("upgrade");
    // Not reading: the ping goes unanswered.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut client = WsClient {
        ws,
        ser: Serialization::Json,
    };
    assert!(matches!(
        client.next(Duration::from_secs(5)).await,
        Incoming::Ping
    ));
    match client.next(Duration::from_secs(5)).await {
        Incoming::Closed(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Away);
            assert_eq!(frame.reason.as_str(), "idle");
        }
        other => panic!("expected a close 1001, got {other:?}"),
    }
}

/// A `wss://` connection over TLS-PSK to a server with both WebSocket listeners.
struct Wss {
    psk: PskServer,
    ws_port: u16,
    wss_port: u16,
}

fn wss_server() -> Wss {
    let psk = PskServer::start("[ws]\nlisten = \"127.0.0.1:0\"\ntls-listen = \"127.0.0.1:0\"\n");
    psk.add_psk(SENSOR_ID, SENSOR_KEY, Bound::Ae("Cwsdev"));
    Wss {
        ws_port: ws_port(&psk.srv, "ws"),
        wss_port: ws_port(&psk.srv, "wss"),
        psk,
    }
}

async fn connect_psk(
    port: u16,
    ser: Serialization,
) -> WsClient<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> {
    let stream = common::provision::psk_stream(port, SENSOR_ID, SENSOR_KEY).await;
    let (ws, chosen) = upgrade(stream, "wss://localhost/", common::ws::subprotocol(ser))
        .await
        .expect("upgrade");
    assert_eq!(chosen.as_deref(), Some(common::ws::subprotocol(ser)));
    WsClient { ws, ser }
}

/// TS-0020 7 with TS-0003 7.2.1: over `wss://` the TLS-PSK association's identity binds
/// `fr` as over HTTPS (another originator is 4106); the bound AE-ID outside it, on the
/// `ws://` listener, is 4106; the CSEBase advertises both points of access; and a
/// credential revoked while the connection is open gets 4107 and the close (1008).
#[tokio::test(flavor = "multi_thread")]
async fn ts0003_wss_binds_the_originator_to_the_association() {
    let s = tokio::task::block_in_place(wss_server);
    for ser in [Serialization::Json, Serialization::Cbor] {
        let mut dev = connect_psk(s.wss_port, ser).await;
        let impostor = dev
            .exchange(&json!({"op": 2, "to": "/id-in", "fr": "Cother", "rqi": "i-1", "rvi": "3"}))
            .await;
        assert_eq!(impostor["rsc"], 4106, "{impostor}");
        assert_eq!(impostor["rqi"], "i-1");
        assert_eq!(impostor["pc"]["m2m:dbg"], MISMATCH);
    }
    let mut dev = connect_psk(s.wss_port, Serialization::Json).await;
    let created = dev
        .exchange(
            &json!({"op": 1, "to": "/id-in", "fr": "Cwsdev", "rqi": "i-2", "rvi": "3",
            "ty": 2, "pc": {"m2m:ae": {"rn": "dev", "api": "Nws.dev", "rr": false, "srv": ["3"]}}}),
        )
        .await;
    assert_eq!(created["rsc"], 2001, "{created}");
    assert_eq!(created["pc"]["m2m:ae"]["aei"], "Cwsdev");

    let mut plain = connect_plain(s.ws_port, Serialization::Json).await;
    let outside = plain
        .exchange(
            &json!({"op": 2, "to": "/id-in/cse-in/dev", "fr": "Cwsdev", "rqi": "i-3", "rvi": "3"}),
        )
        .await;
    assert_eq!(outside["rsc"], 4106, "{outside}");
    assert_eq!(outside["pc"]["m2m:dbg"], BOUND_ELSEWHERE);

    let cb = s.psk.srv.get("/cse-in", ADMIN).await;
    cb.expect(2000);
    let poa = cb.inner("m2m:cb")["poa"].clone();
    let has = |p: String| {
        poa.as_array()
            .is_some_and(|a| a.contains(&Value::String(p)))
    };
    assert!(has(format!("ws://127.0.0.1:{}", s.ws_port)), "{poa}");
    assert!(has(format!("wss://127.0.0.1:{}", s.wss_port)), "{poa}");

    let own = dev
        .exchange(
            &json!({"op": 2, "to": "/id-in/cse-in/dev", "fr": "Cwsdev", "rqi": "i-4", "rvi": "3"}),
        )
        .await;
    assert_eq!(own["rsc"], 2000, "{own}");
    tokio::task::block_in_place(|| s.psk.revoke(SENSOR_ID));
    // The server re-reads the store within a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let revoked = dev
        .exchange(
            &json!({"op": 2, "to": "/id-in/cse-in/dev", "fr": "Cwsdev", "rqi": "i-5", "rvi": "3"}),
        )
        .await;
    assert_eq!(revoked["rsc"], 4107, "{revoked}");
    assert_eq!(revoked["rqi"], "i-5");
    assert_eq!(
        revoked["pc"]["m2m:dbg"],
        "the security association's credential was revoked"
    );
    match dev.next(Duration::from_secs(5)).await {
        Incoming::Closed(Some(frame)) => assert_eq!(frame.code, CloseCode::Policy),
        other => panic!("expected a close 1008, got {other:?}"),
    }
}

/// The Rust client sends what the Python client would not: a text frame that is not
/// UTF-8 is closed with 1007 by the WebSocket layer itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_text_frame_that_is_not_utf8_is_closed_1007() {
    let (_srv, port) = tokio::task::block_in_place(|| ws_server(""));
    let mut ws = connect_plain(port, Serialization::Json).await;
    let frame = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    ws.send_raw(Message::Frame(frame)).await;
    match ws.next(Duration::from_secs(10)).await {
        Incoming::Closed(Some(frame)) => assert_eq!(frame.code, CloseCode::Invalid),
        other => panic!("expected a close 1007, got {other:?}"),
    }
}

/// `[ws] max-in-flight`: while a request waits (a subscription CREATE whose verification
/// request goes to an AE that no longer answers), one more request on that connection is
/// answered 5000, and the waiting one ends when the CSE's own request times out (5204).
#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_are_bounded_per_connection() {
    let (srv, port) =
        tokio::task::block_in_place(|| ws_server("max-in-flight = 1\nresponse-timeout-ms = 3000"));
    let poa = [format!("ws://127.0.0.1:{port}")];
    // The target: registered over its own connection, then silent.
    let mut silent = connect_plain(port, Serialization::Json).await;
    let target = silent.exchange(&register("f-1", "silent", &poa)).await;
    assert_eq!(target["rsc"], 2001, "{target}");
    let target_id = target["pc"]["m2m:ae"]["aei"].clone();

    let mut ae = connect_plain(port, Serialization::Json).await;
    let created = ae.exchange(&register("f-2", "busy", &[])).await;
    let aei = created["pc"]["m2m:ae"]["aei"].clone();
    let cnt = ae
        .exchange(
            &json!({"op": 1, "to": "/id-in/cse-in/busy", "fr": aei, "rqi": "f-3",
            "rvi": "3", "ty": 3, "pc": {"m2m:cnt": {"rn": "c"}}}),
        )
        .await;
    assert_eq!(cnt["rsc"], 2001, "{cnt}");
    // The admin (honoured on the loopback ws:// listener, as on plain HTTP) may have
    // another AE notified.
    ae.send(
        &json!({"op": 1, "to": "/id-in/cse-in/busy/c", "fr": ADMIN, "rqi": "f-4",
        "rvi": "3", "ty": 23, "pc": {"m2m:sub": {"rn": "s", "nu": [target_id]}}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = ae
        .exchange(
            &json!({"op": 2, "to": "/id-in/cse-in/busy", "fr": aei, "rqi": "f-5",
            "rvi": "3"}),
        )
        .await;
    assert_eq!(refused["rsc"], 5000, "{refused}");
    assert_eq!(refused["rqi"], "f-5");
    assert_eq!(
        refused["pc"]["m2m:dbg"],
        "1 requests are already in flight on this WebSocket connection"
    );
    let sub = ae.primitive().await;
    assert_eq!(sub["rqi"], "f-4", "{sub}");
    assert_eq!(sub["rsc"], 5204, "{sub}");
    assert!(tokio::task::block_in_place(|| srv.log_shows(
        "WebSocket requests in flight exhausted",
        Duration::from_secs(5)
    )));
    // The verification request did reach the silent AE over its own connection.
    let asked = silent.primitive().await;
    assert_eq!(asked["op"], 5, "{asked}");
    assert_eq!(asked["to"], target_id);
    assert_eq!(asked["pc"]["m2m:sgn"]["vrq"], true, "{asked}");
}
