//! The MQTT binding (TS-0010; docs/bindings.md) against the real Mosquitto broker on
//! 127.0.0.1:1883, driven by the real `mosquitto_pub`/`mosquitto_sub` (Debian
//! `mosquitto-clients`, installed by `scripts/mosquitto-clients-env`). Each test runs
//! its own `bastion serve --mqtt` with a CSE-ID of its own, so tests sharing the broker
//! never see each other's topics. Under `CI=true` a missing broker or client fails;
//! elsewhere the test says why and skips.

use crate::common;

use bastion_proto::wire::primitive;
use bastion_proto::Serialization;
use common::identity::{Bound, PskServer};
use common::{parse_ts, Server};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BROKER: &str = "mqtt://127.0.0.1:1883";
/// How long a test waits for one MQTT answer.
const ANSWER: Duration = Duration::from_secs(15);

/// Whether the broker and the clients are there; under `CI=true` their absence fails.
fn available() -> bool {
    let addr: SocketAddr = "127.0.0.1:1883".parse().expect("address");
    let why = if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        Some("no MQTT broker (Mosquitto) on 127.0.0.1:1883".to_owned())
    } else {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/mosquitto-clients-env"
        );
        match Command::new(script).output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Some(format!("{script}: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("MQTT tests need Mosquitto and mosquitto-clients under CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

/// A CSE serving MQTT with a CSE-ID no other test uses.
struct Cse {
    /// The server, plain or with a TLS-PSK listener and its credential store.
    server: Serving,
    /// The CSE-ID as a topic level (the CSE-ID without `/`), also its CSEBase `ri`.
    level: String,
    id: String,
}

enum Serving {
    Plain(Server),
    Psk(PskServer),
}

/// The configuration of a CSE with a fresh CSE-ID on the test broker, and its topic level.
fn fresh_config(extra_mqtt: &str) -> (String, String) {
    let level = fresh_level();
    let config =
        format!("[cse]\ncse-id = \"/{level}\"\n[mqtt]\nbroker = \"{BROKER}\"\n{extra_mqtt}\n");
    (config, level)
}

/// A CSE-ID (without its `/`) no other test uses, on this broker or another.
fn fresh_level() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!(
        "mq{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn start(extra_mqtt: &str) -> Cse {
    let (config, level) = fresh_config(extra_mqtt);
    Cse::serving(Serving::Plain(Server::start_with_config(&config)), level)
}

impl Cse {
    fn serving(server: Serving, level: String) -> Cse {
        let cse = Cse {
            server,
            id: format!("/{level}"),
            level,
        };
        assert!(
            cse.server()
                .log_shows("serving MQTT requests", Duration::from_secs(20)),
            "the CSE did not subscribe at the broker:\n{}",
            cse.server().log()
        );
        cse
    }

    fn server(&self) -> &Server {
        match &self.server {
            Serving::Plain(server) => server,
            Serving::Psk(psk) => &psk.srv,
        }
    }
}

/// A real `mosquitto_sub` subscribed (SUBACK seen) to one topic, waiting for `count`
/// messages.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sub {
    fn start(topic: &str) -> Sub {
        Sub::start_for(topic, 1)
    }

    fn start_for(topic: &str, count: u32) -> Sub {
        Sub::start_at(&Login::TEST_BROKER, topic, count)
    }

    fn start_at(login: &Login<'_>, topic: &str, count: u32) -> Sub {
        let count = count.to_string();
        // Line-buffered: mosquitto_sub's stdio would hold the SUBACK line back in a pipe.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                &login.port.to_string(),
                "-q",
                "1",
                "-d",
                "-W",
                "20",
            ])
            .args(["-C", &count])
            .args(login.args())
            .args(["-F", "PAYLOAD %x", "-t", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let sub = Sub { child, lines };
        sub.wait_for(|l| l.starts_with("Subscribed"))
            .expect("mosquitto_sub did not subscribe");
        sub
    }

    fn wait_for(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        self.wait_within(ANSWER, wanted)
    }

    fn wait_within(&self, within: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// The payload of the next message, or `None` when none came in time.
    fn next(&self) -> Option<Vec<u8>> {
        self.wait_for(|l| l.starts_with("PAYLOAD "))
            .map(|l| unhex(&l["PAYLOAD ".len()..]))
    }

    /// The payload of the one message, or `None` when none came within `within`.
    fn message_within(self, within: Duration) -> Option<Vec<u8>> {
        self.wait_within(within, |l| l.starts_with("PAYLOAD "))
            .map(|l| unhex(&l["PAYLOAD ".len()..]))
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Who connects where: the broker's port and, for a broker that authenticates its
/// clients, a user name and password.
struct Login<'a> {
    port: u16,
    user: Option<(&'a str, &'a str)>,
    /// mosquitto_pub/sub's TLS options (a PSK or a certificate), for a TLS broker.
    tls: &'a [&'a str],
}

impl Login<'_> {
    /// The shared test broker, anonymous.
    const TEST_BROKER: Login<'static> = Login {
        port: 1883,
        user: None,
        tls: &[],
    };

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some((user, password)) = self.user {
            args.extend(["-u", user, "-P", password].map(String::from));
        }
        args.extend(self.tls.iter().map(|a| a.to_string()));
        args
    }
}

/// Publishes `payload` on `topic` with the real `mosquitto_pub` (QoS 1, binary-safe).
fn publish(topic: &str, payload: &[u8]) {
    publish_at(&Login::TEST_BROKER, topic, payload)
}

fn publish_at(login: &Login<'_>, topic: &str, payload: &[u8]) {
    let file = tempfile::NamedTempFile::new().expect("payload file");
    std::fs::write(file.path(), payload).expect("write payload");
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &login.port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-f",
        ])
        .arg(file.path())
        .args(login.args())
        .status()
        .expect("mosquitto_pub");
    assert!(status.success(), "mosquitto_pub failed");
}

fn encode(ser: Serialization, primitive: &Value) -> Vec<u8> {
    ser.encode_pc(primitive).expect("encodable primitive")
}

fn decode(ser: Serialization, bytes: &[u8]) -> Value {
    ser.decode_pc(bytes)
        .expect("a primitive in the request's serialization")
}

impl Cse {
    /// Publishes `payload` on `/oneM2M/<kind>/<originator>/<CSE>/<ser>` and returns the
    /// answer read from the matching response topic, or `None` when none came.
    fn raw_exchange(
        &self,
        kind: &str,
        originator: &str,
        ser: Serialization,
        payload: &[u8],
    ) -> Option<Value> {
        self.raw_exchange_within(kind, originator, ser, payload, ANSWER)
    }

    /// [`Cse::raw_exchange`], waiting `within` for the answer (a message expected to be
    /// dropped is given a few seconds; what it did not do is checked afterwards).
    fn raw_exchange_within(
        &self,
        kind: &str,
        originator: &str,
        ser: Serialization,
        payload: &[u8],
        within: Duration,
    ) -> Option<Value> {
        let answer_kind = if kind == "reg_req" {
            "reg_resp"
        } else {
            "resp"
        };
        let ser_name = ser.name();
        let sub = Sub::start(&format!(
            "/oneM2M/{answer_kind}/{originator}/{}/{ser_name}",
            self.level
        ));
        publish(
            &format!("/oneM2M/{kind}/{originator}/{}/{ser_name}", self.level),
            payload,
        );
        sub.message_within(within).map(|bytes| decode(ser, &bytes))
    }

    /// The answer's bytes to `payload` published on `originator`'s request topic.
    fn answer_bytes(&self, originator: &str, ser: Serialization, payload: &[u8]) -> Vec<u8> {
        let ser_name = ser.name();
        let sub = Sub::start(&format!(
            "/oneM2M/resp/{originator}/{}/{ser_name}",
            self.level
        ));
        publish(
            &format!("/oneM2M/req/{originator}/{}/{ser_name}", self.level),
            payload,
        );
        sub.message_within(ANSWER)
            .unwrap_or_else(|| panic!("no answer:\n{}", self.server().log()))
    }

    fn exchange(
        &self,
        kind: &str,
        originator: &str,
        ser: Serialization,
        primitive: Value,
    ) -> Value {
        self.raw_exchange(kind, originator, ser, &encode(ser, &primitive))
            .unwrap_or_else(|| panic!("no answer to {primitive}:\n{}", self.server().log()))
    }

    /// A request on the `req` topic of `fr` in `ser`.
    fn request(&self, fr: &str, ser: Serialization, primitive: Value) -> Value {
        self.exchange("req", fr, ser, primitive)
    }

    /// Registers `aei` over `reg_req` (JSON) with the given AE attributes.
    fn register(&self, aei: &str, rn: &str, extra: Value) -> Value {
        let mut ae = json!({"rn": rn, "api": "Nmqtt.test", "rr": true, "srv": ["3"]});
        ae.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        let answer = self.exchange(
            "reg_req",
            &format!("cred-{aei}"),
            Serialization::Json,
            json!({"op": 1, "to": "cse-in", "fr": aei, "rqi": format!("reg-{aei}"), "rvi": "3", "ty": 2,
                   "pc": {"m2m:ae": ae}}),
        );
        assert_eq!(answer["rsc"], 2001, "{answer}");
        answer
    }
}

/// The members of a response primitive the CSE always sets, checked and removed so the
/// rest can be compared exactly.
fn strip_envelope(cse: &Cse, answer: &mut Value, rqi: &str, to: &str) {
    let o = answer.as_object_mut().expect("a primitive is an object");
    assert_eq!(o.remove("rqi"), Some(json!(rqi)));
    assert_eq!(o.remove("rvi"), Some(json!("3")));
    assert_eq!(o.remove("fr"), Some(json!(cse.id)));
    assert_eq!(o.remove("to"), Some(json!(to)));
    parse_ts(o.remove("ot").expect("ot").as_str().expect("ot text"));
}

/// Removes and checks the members a fresh resource gets from the CSE.
fn strip_created(resource: &mut Value) -> String {
    let o = resource.as_object_mut().expect("resource");
    for ts in ["ct", "lt", "et"] {
        parse_ts(
            o.remove(ts)
                .unwrap_or_else(|| panic!("{ts}"))
                .as_str()
                .expect("timestamp"),
        );
    }
    o.remove("ri")
        .expect("ri")
        .as_str()
        .expect("ri text")
        .to_owned()
}

#[test]
fn registration_and_data_in_json_cbor_and_xml_with_the_broker_as_poa() {
    if !available() {
        return;
    }
    let cse = start("");
    // Registration over reg_req: 2001 with the exact AE.
    let mut answer = cse.register("Cmqapp", "app", json!({}));
    strip_envelope(&cse, &mut answer, "reg-Cmqapp", "Cmqapp");
    let mut ae = answer["pc"]
        .as_object_mut()
        .and_then(|pc| pc.remove("m2m:ae"))
        .expect("m2m:ae");
    let ri = strip_created(&mut ae);
    assert_eq!(ri, "Cmqapp");
    assert_eq!(
        ae,
        json!({"rn": "app", "ty": 2, "pi": cse.level, "api": "Nmqtt.test", "aei": "Cmqapp",
               "rr": true, "srv": ["3"]})
    );
    assert_eq!(answer, json!({"rsc": 2001, "pc": {}}));

    // A container over req in JSON, a contentInstance and its retrieval in CBOR.
    let created = cse.request(
        "Cmqapp",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/app", "fr": "Cmqapp", "rqi": "c1", "rvi": "3", "ty": 3,
               "pc": {"m2m:cnt": {"rn": "temp"}}}),
    );
    assert_eq!(created["rsc"], 2001, "{created}");
    assert_eq!(created["rqi"], "c1");
    assert_eq!(created["pc"]["m2m:cnt"]["rn"], "temp");
    assert_eq!(created["pc"]["m2m:cnt"]["cni"], 0);
    let cin = cse.request(
        "Cmqapp",
        Serialization::Cbor,
        json!({"op": 1, "to": "cse-in/app/temp", "fr": "Cmqapp", "rqi": "c2", "rvi": "3", "ty": 4,
               "pc": {"m2m:cin": {"rn": "r1", "con": "21.5", "cnf": "text/plain:0"}}}),
    );
    assert_eq!(
        (cin["rsc"].clone(), cin["rqi"].clone()),
        (json!(2001), json!("c2")),
        "{cin}"
    );
    let mut read = cse.request(
        "Cmqapp",
        Serialization::Cbor,
        json!({"op": 2, "to": "cse-in/app/temp/r1", "fr": "Cmqapp", "rqi": "c3", "rvi": "3"}),
    );
    strip_envelope(&cse, &mut read, "c3", "Cmqapp");
    let mut body = read["pc"]
        .as_object_mut()
        .and_then(|pc| pc.remove("m2m:cin"))
        .expect("m2m:cin");
    strip_created(&mut body);
    assert_eq!(read, json!({"rsc": 2000, "pc": {}}));
    let o = body.as_object_mut().expect("cin");
    assert_eq!(
        o.remove("pi")
            .and_then(|p| p.as_str().map(str::to_owned))
            .map(|p| !p.is_empty()),
        Some(true)
    );
    assert_eq!(
        body,
        json!({"rn": "r1", "ty": 4, "con": "21.5", "cnf": "text/plain:0", "cs": 4, "st": 1})
    );
    // The same in JSON, by the latest instance.
    let latest = cse.request(
        "Cmqapp",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in/app/temp/la", "fr": "Cmqapp", "rqi": "c4", "rvi": "3"}),
    );
    assert_eq!(latest["rsc"], 2000, "{latest}");
    assert_eq!(latest["pc"]["m2m:cin"]["con"], "21.5");
    // And in XML: the primitive under m2m:rqp, the answer under m2m:rsp.
    let xml = Serialization::Xml;
    let retrieve = bastion_proto::Request {
        op: Some(bastion_proto::Operation::Retrieve),
        to: "cse-in/app/temp/r1".into(),
        fr: Some("Cmqapp".into()),
        rqi: Some("c-xml".into()),
        rvi: Some("3".into()),
        ..bastion_proto::Request::default()
    };
    let payload = primitive::encode_request(xml, &retrieve).expect("an XML primitive");
    assert!(String::from_utf8_lossy(&payload).contains("m2m:rqp"));
    let bytes = cse.answer_bytes("Cmqapp", xml, &payload);
    assert!(String::from_utf8_lossy(&bytes).contains("m2m:rsp"));
    let answer = primitive::decode_response(xml, &bytes).expect("an XML response primitive");
    assert_eq!((answer.rsc.code(), answer.rqi.as_str()), (2000, "c-xml"));
    assert_eq!(answer.rvi.as_deref(), Some("3"));
    let pc = answer.pc.expect("content");
    assert_eq!(pc["m2m:cin"]["con"], "21.5", "{pc}");
    assert_eq!(pc["m2m:cin"]["rn"], "r1", "{pc}");
    // The CSEBase advertises the broker as a point of access.
    let base = cse.request(
        "Cmqapp",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in", "fr": "Cmqapp", "rqi": "c5", "rvi": "3"}),
    );
    assert_eq!(base["rsc"], 2000, "{base}");
    let poa = base["pc"]["m2m:cb"]["poa"].as_array().expect("poa").clone();
    assert_eq!(poa.last(), Some(&json!("mqtt://127.0.0.1:1883")), "{poa:?}");
}

#[test]
fn hostile_and_refused_requests_get_their_exact_codes() {
    if !available() {
        return;
    }
    let cse = start("");
    cse.register("Cmqowner", "owner", json!({}));
    cse.register("Cmqother", "other", json!({}));
    let made = cse.request(
        "Cmqowner",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/owner", "fr": "Cmqowner", "rqi": "m1", "rvi": "3", "ty": 3,
               "pc": {"m2m:cnt": {"rn": "private"}}}),
    );
    assert_eq!(made["rsc"], 2001, "{made}");

    // fr is not the topic's originator: 4106, answered on the topic's response topic.
    let impersonation = cse.request(
        "Cmqother",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in/owner/private", "fr": "Cmqowner", "rqi": "h1", "rvi": "3"}),
    );
    assert_eq!(
        impersonation,
        json!({"rsc": 4106, "rqi": "h1", "rvi": "3", "fr": cse.id, "to": "Cmqowner",
               "pc": {"m2m:dbg": "originator does not match the request topic"}})
    );
    // The admin, all-powerful, is not taken on the word of an unauthenticated topic.
    let admin = cse.request(
        "CAdmin",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in", "fr": "CAdmin", "rqi": "h0", "rvi": "3"}),
    );
    assert_eq!(admin["rsc"], 4106, "{admin}");
    assert_eq!(
        admin["pc"]["m2m:dbg"],
        "the admin is not accepted over MQTT unless the broker enforces originators"
    );
    // A primitive that does not decode, its rqi recoverable: 4000 with the rqi echoed.
    let malformed = cse.request(
        "Cmqother",
        Serialization::Json,
        json!({"op": "retrieve", "to": "cse-in", "fr": "Cmqother", "rqi": "h2", "rvi": "3"}),
    );
    assert_eq!(
        malformed,
        json!({"rsc": 4000, "rqi": "h2", "rvi": "3", "fr": cse.id, "to": "Cmqother",
               "pc": {"m2m:dbg": "op must be a number"}})
    );
    // Not even JSON: nothing to answer with, dropped; the CSE keeps serving.
    let not_json = b"{\"op\": 2, \"rqi\": \"h0\"";
    let answer = cse.raw_exchange_within(
        "req",
        "Cmqother",
        Serialization::Json,
        not_json,
        Duration::from_secs(3),
    );
    assert_eq!(answer, None);
    // Another AE's container under the default policy: 4103.
    let denied = cse.request(
        "Cmqother",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in/owner/private", "fr": "Cmqother", "rqi": "h3", "rvi": "3"}),
    );
    assert_eq!(denied["rsc"], 4103, "{denied}");
    assert_eq!(denied["rqi"], "h3");
    // An unknown target: 4004.
    let missing = cse.request(
        "Cmqowner",
        Serialization::Cbor,
        json!({"op": 2, "to": "cse-in/owner/nothing", "fr": "Cmqowner", "rqi": "h4", "rvi": "3"}),
    );
    assert_eq!(missing["rsc"], 4004, "{missing}");
    assert_eq!(missing["rqi"], "h4");
    // Registration topics carry registrations only.
    let not_registration = cse.exchange(
        "reg_req",
        "cred-x",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in", "fr": "Cmqowner", "rqi": "h5", "rvi": "3"}),
    );
    assert_eq!(not_registration["rsc"], 4005, "{not_registration}");
    // After all that, the owner is still served.
    let fine = cse.request(
        "Cmqowner",
        Serialization::Json,
        json!({"op": 2, "to": "cse-in/owner/private", "fr": "Cmqowner", "rqi": "h6", "rvi": "3"}),
    );
    assert_eq!(fine["rsc"], 2000, "{fine}");
}

#[test]
fn a_notification_reaches_an_ae_over_mqtt() {
    if !available() {
        return;
    }
    let cse = start("");
    cse.register("Cmqsub", "sub", json!({"poa": [BROKER]}));
    let made = cse.request(
        "Cmqsub",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/sub", "fr": "Cmqsub", "rqi": "n1", "rvi": "3", "ty": 3,
               "pc": {"m2m:cnt": {"rn": "box"}}}),
    );
    assert_eq!(made["rsc"], 2001, "{made}");
    let subscribed = cse.request(
        "Cmqsub",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/sub/box", "fr": "Cmqsub", "rqi": "n2", "rvi": "3", "ty": 23,
               "pc": {"m2m:sub": {"rn": "watch", "nu": ["Cmqsub"], "enc": {"net": [3]}}}}),
    );
    assert_eq!(subscribed["rsc"], 2001, "{subscribed}");
    let sur = subscribed["pc"]["m2m:sub"]["ri"]
        .as_str()
        .expect("ri")
        .to_owned();
    // The AE's request topic, watched with the real mosquitto_sub: first the CSE asks the
    // AE to confirm its point of access (a verification request), answered 2000 with the
    // real mosquitto_pub on the AE's response topic; then the notification itself.
    let requests = Sub::start_for(&format!("/oneM2M/req/{}/Cmqsub/json", cse.level), 2);
    let cin = cse.request(
        "Cmqsub",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/sub/box", "fr": "Cmqsub", "rqi": "n3", "rvi": "3", "ty": 4,
               "pc": {"m2m:cin": {"con": "hello"}}}),
    );
    assert_eq!(cin["rsc"], 2001, "{cin}");
    let bytes = requests
        .next()
        .unwrap_or_else(|| panic!("no verification request:\n{}", cse.server().log()));
    let verification = decode(Serialization::Json, &bytes);
    assert_eq!(verification["op"], 5, "{verification}");
    assert_eq!(verification["to"], "Cmqsub");
    assert_eq!(verification["pc"]["m2m:sgn"]["vrq"], true, "{verification}");
    assert_eq!(verification["pc"]["m2m:sgn"]["cr"], "Cmqsub");
    let answer = json!({"rsc": 2000, "rqi": verification["rqi"], "rvi": "3"});
    publish(
        &format!("/oneM2M/resp/{}/Cmqsub/json", cse.level),
        &encode(Serialization::Json, &answer),
    );
    let bytes = requests
        .next()
        .unwrap_or_else(|| panic!("no NOTIFY on the AE's topic:\n{}", cse.server().log()));
    let notify = decode(Serialization::Json, &bytes);
    assert_eq!(notify["op"], 5, "{notify}");
    assert_eq!(notify["to"], "Cmqsub");
    assert_eq!(notify["fr"], cse.id);
    assert!(
        notify["rqi"].as_str().is_some_and(|r| !r.is_empty()),
        "{notify}"
    );
    let sgn = &notify["pc"]["m2m:sgn"];
    assert_eq!(sgn["nev"]["net"], 3, "{notify}");
    assert_eq!(sgn["nev"]["rep"]["m2m:cin"]["con"], "hello");
    assert!(
        sgn["sur"].as_str().is_some_and(|s| s.ends_with(&sur)),
        "{notify}"
    );
}

/// The topic's originator becomes an association identity only on the operator's word:
/// registered over MQTT with `broker-enforces-originator`, an AE is bound to that
/// identity and refused on the plain HTTP listener (4106), as an AE registered over TLS
/// is; without it, the same AE is an unauthenticated one that plain HTTP serves.
#[test]
fn the_topic_is_an_identity_only_when_the_broker_is_declared_to_enforce_it() {
    if !available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for (enforced, over_http) in [(false, 2000), (true, 4106)] {
        let cse = start(&format!("broker-enforces-originator = {enforced}"));
        let registered = cse.request(
            "Cmqbound",
            Serialization::Json,
            json!({"op": 1, "to": "cse-in", "fr": "Cmqbound", "rqi": "b1", "rvi": "3", "ty": 2,
                   "pc": {"m2m:ae": {"rn": "bound", "api": "Nmqtt.test", "rr": false, "srv": ["3"]}}}),
        );
        assert_eq!(registered["rsc"], 2001, "{registered}");
        let read = cse.request(
            "Cmqbound",
            Serialization::Json,
            json!({"op": 2, "to": "cse-in/bound", "fr": "Cmqbound", "rqi": "b2", "rvi": "3"}),
        );
        assert_eq!(read["rsc"], 2000, "enforced = {enforced}: {read}");
        let plain = runtime.block_on(cse.server().get("/cse-in/bound", "Cmqbound"));
        plain.expect(over_http);
    }
}

/// Payloads over `max-payload-bytes` never reach the pipeline and never stop the binding:
/// a little over, the message is dropped unread; far over (beyond what the MQTT client
/// reads), the client ends the connection and the binding restarts the broker session
/// clean, so the broker cannot deliver the same message again and again. An answer over
/// the limit is replaced by 5207.
#[test]
fn oversized_messages_are_dropped_and_never_stop_the_binding() {
    if !available() {
        return;
    }
    let cse = start("max-payload-bytes = 1024");
    cse.register("Cmqbig", "big", json!({}));
    let made = cse.request(
        "Cmqbig",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/big", "fr": "Cmqbig", "rqi": "box", "rvi": "3", "ty": 3,
               "pc": {"m2m:cnt": {"rn": "box"}}}),
    );
    assert_eq!(made["rsc"], 2001, "{made}");
    let big = |rqi: &str, size: usize| {
        json!({"op": 1, "to": "cse-in/big/box", "fr": "Cmqbig", "rqi": rqi, "rvi": "3", "ty": 4,
               "pc": {"m2m:cin": {"con": "x".repeat(size)}}})
    };
    let json = Serialization::Json;
    let dropped = Duration::from_secs(3);
    for (rqi, size) in [("over", 3000), ("far-over", 20_000)] {
        let payload = encode(json, &big(rqi, size));
        let answer = cse.raw_exchange_within("req", "Cmqbig", json, &payload, dropped);
        assert_eq!(answer, None, "{rqi}");
    }
    assert!(
        common::holds_within(Duration::from_secs(20), Duration::from_millis(50), || {
            cse.server().log().matches("serving MQTT requests").count() >= 2
        }),
        "the session was not restarted:\n{}",
        cse.server().log()
    );
    assert!(cse.server().log().contains("restarted clean"));
    // Served again; an answer too large for the limit is refused, not sent.
    let created = cse.request("Cmqbig", json, big("fits", 800));
    assert_eq!(
        created,
        json!({"rsc": 5207, "rqi": "fits", "rvi": "3", "fr": cse.id, "to": "Cmqbig",
               "pc": {"m2m:dbg": "the response exceeds the MQTT payload limit"}})
    );
    let read = cse.request(
        "Cmqbig",
        json,
        json!({"op": 2, "to": "cse-in/big/box", "fr": "Cmqbig", "rqi": "after", "rvi": "3"}),
    );
    assert_eq!(read["rsc"], 2000, "{read}");
    // Only the instance that fit was created: the oversized ones never reached the CSE.
    assert_eq!(read["pc"]["m2m:cnt"]["cni"], 1, "{read}");
}

/// An identity bound to a credential of the TLS listener's store may be claimed only
/// inside its association: over MQTT (no association) it is refused with 4106, as on the
/// plain HTTP listener, even on the topic that names it.
#[test]
fn an_identity_bound_to_a_credential_is_refused_over_mqtt() {
    if !available() {
        return;
    }
    let (config, level) = fresh_config("");
    let psk = PskServer::start(&config);
    psk.add_psk(
        "mqcred@bastion.example",
        "00112233445566778899aabbccddeeff",
        Bound::Ae("Cmqcred"),
    );
    let cse = Cse::serving(Serving::Psk(psk), level);
    let refused = cse.request(
        "Cmqcred",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in", "fr": "Cmqcred", "rqi": "k1", "rvi": "3", "ty": 2,
               "pc": {"m2m:ae": {"rn": "cred", "api": "Nmqtt.test", "rr": false, "srv": ["3"]}}}),
    );
    assert_eq!(refused["rsc"], 4106, "{refused}");
    assert_eq!(
        refused["pc"]["m2m:dbg"],
        "originator is bound to a security association and must use it"
    );
    // An identity without a credential registers on the same CSE.
    let registered = cse.request(
        "Cmqfree",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in", "fr": "Cmqfree", "rqi": "k2", "rvi": "3", "ty": 2,
               "pc": {"m2m:ae": {"rn": "free", "api": "Nmqtt.test", "rr": false, "srv": ["3"]}}}),
    );
    assert_eq!(registered["rsc"], 2001, "{registered}");
}

/// A broker of `scripts/mosquitto-acl-broker`, stopped when dropped.
struct AclBroker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl AclBroker {
    fn start(cse_level: &str, users: &[&str]) -> AclBroker {
        let dir = tempfile::tempdir().expect("broker directory");
        let port = common::acme::free_port();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/mosquitto-acl-broker"
        );
        let child = Command::new(script)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(cse_level)
            .args(users)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/mosquitto-acl-broker");
        let broker = AclBroker {
            child,
            port,
            _dir: dir,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let up = common::holds_within(Duration::from_secs(20), Duration::from_millis(50), || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        assert!(up, "the ACL broker did not start on port {port}");
        broker
    }
}

impl Drop for AclBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The enforced mode against a broker that really enforces it (docs/bindings.md,
/// "Identity"): Mosquitto with a password file and the per-client topic ACL. An AE that
/// publishes under its own user name is served and authenticated (registered over MQTT,
/// it is then refused on plain HTTP, 4106); another client publishing under that AE's
/// originator level is stopped by the broker, and its request never reaches the CSE.
#[test]
fn a_broker_enforcing_the_topic_acl_backs_the_enforced_mode() {
    if !available() {
        return;
    }
    let level = fresh_level();
    // The CSE's user name at the broker is its topic level (Mosquitto's password file
    // allows no ":" in a user name, so not its client ID `C::<level>`).
    let cse_user = level.clone();
    let broker = AclBroker::start(
        &level,
        &[
            &format!("{cse_user}:cse-secret"),
            "Cmqacl:ae-secret",
            "Cmqevil:evil-secret",
        ],
    );
    let secrets = tempfile::tempdir().expect("secrets");
    let password_file = secrets.path().join("broker.password");
    common::write_key_file(&password_file, "cse-secret\n");
    let server = Server::start_with_config(&format!(
        "[cse]\ncse-id = \"/{level}\"\n[mqtt]\nbroker = \"mqtt://127.0.0.1:{}\"\n\
         broker-enforces-originator = true\nusername = \"{cse_user}\"\npassword-file = \"{}\"\n",
        broker.port,
        password_file.display()
    ));
    let cse = Cse::serving(Serving::Plain(server), level.clone());
    assert!(
        !cse.server().log().contains("cse-secret"),
        "a secret in the log"
    );
    let ae = Login {
        port: broker.port,
        user: Some(("Cmqacl", "ae-secret")),
        tls: &[],
    };
    let evil = Login {
        port: broker.port,
        user: Some(("Cmqevil", "evil-secret")),
        tls: &[],
    };
    let json = Serialization::Json;
    let request_topic = format!("/oneM2M/req/Cmqacl/{level}/json");
    let ask = |login: &Login<'_>, primitive: Value| -> Value {
        let sub = Sub::start_at(login, &format!("/oneM2M/resp/Cmqacl/{level}/json"), 1);
        publish_at(login, &request_topic, &encode(json, &primitive));
        let bytes = sub
            .message_within(ANSWER)
            .unwrap_or_else(|| panic!("no answer to {primitive}:\n{}", cse.server().log()));
        decode(json, &bytes)
    };
    let registered = ask(
        &ae,
        json!({"op": 1, "to": "cse-in", "fr": "Cmqacl", "rqi": "a1", "rvi": "3", "ty": 2,
               "pc": {"m2m:ae": {"rn": "acl", "api": "Nmqtt.test", "rr": false, "srv": ["3"]}}}),
    );
    assert_eq!(registered["rsc"], 2001, "{registered}");
    // Another client claims the AE's level: the broker does not let it publish there.
    let forged = json!({"op": 1, "to": "cse-in/acl", "fr": "Cmqacl", "rqi": "a2", "rvi": "3",
                        "ty": 3, "pc": {"m2m:cnt": {"rn": "forged"}}});
    publish_at(&evil, &request_topic, &encode(json, &forged));
    std::thread::sleep(Duration::from_millis(500));
    let read = ask(
        &ae,
        json!({"op": 2, "to": "cse-in/acl/forged", "fr": "Cmqacl", "rqi": "a3", "rvi": "3"}),
    );
    assert_eq!(
        read["rsc"], 4004,
        "the forged request reached the CSE: {read}"
    );
    // The registration over the enforced topic bound the AE: plain HTTP refuses it.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(cse.server().get("/cse-in/acl", "Cmqacl"))
        .expect(4106);
}

/// `mqtts://` (TS-0010 clause 7): the CSE reaches a broker that takes TLS with pre-shared
/// keys only and knows each client by its PSK identity (Mosquitto's
/// use_identity_as_username, with the per-client topic ACL). The CSE authenticates with
/// its own PSK; an AE holding its PSK registers and writes over its own topics; a client
/// with another PSK cannot publish under the AE's level; a wrong key gets no session; the
/// CSE's key never reaches its log; the CSEBase advertises `mqtts://`.
#[test]
fn over_mqtts_the_broker_knows_every_client_by_its_psk() {
    if !available() {
        return;
    }
    let level = fresh_level();
    let cse_key = "5f0c7a1e9b2d48c3a6e0f1d2c3b4a596";
    let ae_key = "00112233445566778899aabbccddeeff";
    let evil_key = "ffeeddccbbaa99887766554433221100";
    let broker = AclBroker::start(
        &level,
        &[
            &format!("psk:{level}:{cse_key}"),
            &format!("psk:Cmqpsk:{ae_key}"),
            &format!("psk:Cmqpskevil:{evil_key}"),
        ],
    );
    let secrets = tempfile::tempdir().expect("secrets");
    let key_file = secrets.path().join("broker.psk");
    common::write_key_file(&key_file, &format!("{cse_key}\n"));
    let server = Server::start_with_config(&format!(
        "[cse]\ncse-id = \"/{level}\"\n[mqtt]\nbroker = \"mqtts://127.0.0.1:{}\"\n\
         broker-enforces-originator = true\ntls-psk-identity = \"{level}\"\n\
         tls-psk-file = \"{}\"\n",
        broker.port,
        key_file.display()
    ));
    let cse = Cse::serving(Serving::Plain(server), level.clone());
    let ae = Login {
        port: broker.port,
        user: None,
        tls: &["--psk-identity", "Cmqpsk", "--psk", ae_key],
    };
    let evil = Login {
        port: broker.port,
        user: None,
        tls: &["--psk-identity", "Cmqpskevil", "--psk", evil_key],
    };
    let json = Serialization::Json;
    let request_topic = format!("/oneM2M/req/Cmqpsk/{level}/json");
    let ask = |primitive: Value| -> Value {
        let sub = Sub::start_at(&ae, &format!("/oneM2M/resp/Cmqpsk/{level}/json"), 1);
        publish_at(&ae, &request_topic, &encode(json, &primitive));
        let bytes = sub
            .message_within(ANSWER)
            .unwrap_or_else(|| panic!("no answer to {primitive}:\n{}", cse.server().log()));
        decode(json, &bytes)
    };
    let registered = ask(
        json!({"op": 1, "to": "cse-in", "fr": "Cmqpsk", "rqi": "p1", "rvi": "3", "ty": 2,
               "pc": {"m2m:ae": {"rn": "psk", "api": "Nmqtt.test", "rr": false, "srv": ["3"]}}}),
    );
    assert_eq!(registered["rsc"], 2001, "{registered}");
    let container = ask(
        json!({"op": 1, "to": "cse-in/psk", "fr": "Cmqpsk", "rqi": "p2",
                               "rvi": "3", "ty": 3, "pc": {"m2m:cnt": {"rn": "data"}}}),
    );
    assert_eq!(container["rsc"], 2001, "{container}");
    // Another client's PSK does not let it publish under the AE's level.
    let forged = json!({"op": 1, "to": "cse-in/psk", "fr": "Cmqpsk", "rqi": "p3", "rvi": "3",
                        "ty": 3, "pc": {"m2m:cnt": {"rn": "forged"}}});
    publish_at(&evil, &request_topic, &encode(json, &forged));
    std::thread::sleep(Duration::from_millis(500));
    let read = ask(
        json!({"op": 2, "to": "cse-in/psk/forged", "fr": "Cmqpsk", "rqi": "p4",
                          "rvi": "3"}),
    );
    assert_eq!(
        read["rsc"], 4004,
        "the forged request reached the CSE: {read}"
    );
    // A wrong key gets no session at all.
    let wrong = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
        .args(["-t", &request_topic, "-m", "{}"])
        .args(["--psk-identity", "Cmqpsk", "--psk", evil_key])
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_pub");
    assert!(!wrong.success(), "a wrong PSK got a session");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = runtime.block_on(cse.server().get("/cse-in", common::ADMIN));
    base.expect(2000);
    let poa = base.body["m2m:cb"]["poa"].to_string();
    assert!(
        poa.contains(&format!("mqtts://127.0.0.1:{}", broker.port)),
        "{poa}"
    );
    assert!(
        !cse.server().log().contains(cse_key),
        "the CSE's key in its log"
    );
}

/// `mqtts://` with certificates: the broker requires a client certificate from the CA;
/// the CSE presents its own and checks the broker's against `tls-ca-file` and
/// `tls-server-name`; an AE with its certificate registers; a broker certificate the CSE's
/// anchors do not validate gets no session.
#[test]
fn over_mqtts_the_cse_and_the_broker_authenticate_each_other_by_certificate() {
    if !available() {
        return;
    }
    let level = fresh_level();
    let pki = tempfile::tempdir().expect("pki");
    let dir = pki.path();
    common::provision::ca_and_certificates(
        dir,
        &[
            ("broker", "//bastion.example/id-broker"),
            ("cse", &format!("//bastion.example/{level}")),
            ("ae", &format!("//bastion.example/{level}/Cmqcert")),
        ],
    );
    let file = |name: &str| dir.join(name).display().to_string();
    let broker = AclBroker::start(
        &level,
        &[&format!(
            "cert:{}:{}:{}",
            file("ca.pem"),
            file("broker.pem"),
            file("broker.key")
        )],
    );
    let config = |anchors: &str| {
        format!(
            "[cse]\ncse-id = \"/{level}\"\n[mqtt]\nbroker = \"mqtts://127.0.0.1:{}\"\n\
             tls-certificate-file = \"{}\"\ntls-key-file = \"{}\"\ntls-ca-file = \"{anchors}\"\n\
             tls-server-name = \"localhost\"\n",
            broker.port,
            file("cse.pem"),
            file("cse.key"),
        )
    };
    let cse = Cse::serving(
        Serving::Plain(Server::start_with_config(&config(&file("ca.pem")))),
        level.clone(),
    );
    let (ca, cert, key) = (file("ca.pem"), file("ae.pem"), file("ae.key"));
    let tls = [
        "--cafile",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--insecure",
    ];
    let ae = Login {
        port: broker.port,
        user: None,
        tls: &tls,
    };
    let json = Serialization::Json;
    let sub = Sub::start_at(&ae, &format!("/oneM2M/resp/Cmqcert/{level}/json"), 1);
    let register = json!({"op": 1, "to": "cse-in", "fr": "Cmqcert", "rqi": "c1", "rvi": "3",
        "ty": 2, "pc": {"m2m:ae": {"rn": "cert", "api": "Nmqtt.test", "rr": false, "srv": ["3"]}}});
    publish_at(
        &ae,
        &format!("/oneM2M/req/Cmqcert/{level}/json"),
        &encode(json, &register),
    );
    let bytes = sub
        .message_within(ANSWER)
        .unwrap_or_else(|| panic!("no answer:\n{}", cse.server().log()));
    assert_eq!(decode(json, &bytes)["rsc"], 2001);
    drop(cse);
    // Anchors that did not issue the broker's certificate: no session, said in the log.
    let other = tempfile::tempdir().expect("other pki");
    common::provision::make_ca(other.path(), "Other CA", &[]);
    let stranger =
        Server::start_with_config(&config(&other.path().join("ca.pem").display().to_string()));
    assert!(
        stranger.log_shows("TLS to the MQTT broker failed", Duration::from_secs(20)),
        "{}",
        stranger.log()
    );
    assert!(
        !stranger.log().contains("serving MQTT requests"),
        "{}",
        stranger.log()
    );
}

/// A `nu` of the form `mqtt://HOST:PORT/<topic>` names the whole topic (TS-0010 6.6): the
/// verification request and the notifications are published there, and the answer is
/// read from the CSE's response topics by `rqi`. The subscription's CREATE waits for the
/// verification, answered here with the real mosquitto_pub.
#[test]
fn a_notification_url_names_the_whole_topic() {
    if !available() {
        return;
    }
    let cse = start("");
    cse.register("Cmqurl", "url", json!({}));
    let made = cse.request(
        "Cmqurl",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/url", "fr": "Cmqurl", "rqi": "u1", "rvi": "3", "ty": 3,
               "pc": {"m2m:cnt": {"rn": "box"}}}),
    );
    assert_eq!(made["rsc"], 2001, "{made}");
    let topic = format!("apps/{}/inbox", cse.level);
    let deliveries = Sub::start_for(&topic, 2);
    let subscription_answer = Sub::start(&format!("/oneM2M/resp/Cmqurl/{}/json", cse.level));
    publish(
        &format!("/oneM2M/req/Cmqurl/{}/json", cse.level),
        &encode(
            Serialization::Json,
            &json!({"op": 1, "to": "cse-in/url/box", "fr": "Cmqurl", "rqi": "u2", "rvi": "3",
                    "ty": 23, "pc": {"m2m:sub": {"rn": "watch", "enc": {"net": [3]},
                    "nu": [format!("{BROKER}/{topic}")]}}}),
        ),
    );
    let bytes = deliveries
        .next()
        .unwrap_or_else(|| panic!("no verification request:\n{}", cse.server().log()));
    let verification = decode(Serialization::Json, &bytes);
    assert_eq!(verification["pc"]["m2m:sgn"]["vrq"], true, "{verification}");
    assert_eq!(verification["fr"], cse.id);
    publish(
        &format!("/oneM2M/resp/{}/inbox/json", cse.level),
        &encode(
            Serialization::Json,
            &json!({"rsc": 2000, "rqi": verification["rqi"], "rvi": "3"}),
        ),
    );
    let created = decode(
        Serialization::Json,
        &subscription_answer
            .message_within(ANSWER)
            .unwrap_or_else(|| panic!("no answer to the subscription:\n{}", cse.server().log())),
    );
    assert_eq!(created["rsc"], 2001, "{created}");
    assert_eq!(created["rqi"], "u2");
    let cin = cse.request(
        "Cmqurl",
        Serialization::Json,
        json!({"op": 1, "to": "cse-in/url/box", "fr": "Cmqurl", "rqi": "u3", "rvi": "3", "ty": 4,
               "pc": {"m2m:cin": {"con": "over mqtt"}}}),
    );
    assert_eq!(cin["rsc"], 2001, "{cin}");
    let bytes = deliveries
        .next()
        .unwrap_or_else(|| panic!("no NOTIFY on {topic}:\n{}", cse.server().log()));
    let notify = decode(Serialization::Json, &bytes);
    assert_eq!(notify["op"], 5, "{notify}");
    assert_eq!(notify["to"], format!("{BROKER}/{topic}"));
    assert_eq!(
        notify["pc"]["m2m:sgn"]["nev"]["rep"]["m2m:cin"]["con"],
        "over mqtt"
    );
}
