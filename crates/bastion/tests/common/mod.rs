//! Harness of the conformance suite: starts the real `bastion` binary on an ephemeral port
//! with a fresh data directory and speaks oneM2M over HTTP (TS-0009) to it.
//!
//! Every test file uses a subset of it (`use crate::common;`).
#![allow(dead_code)]

pub mod acme;
pub mod coap_client;
pub mod das_limits;
pub mod das_policy;
pub mod das_tls;
pub mod enrolment;
pub mod federation;
pub mod identity;
pub mod limits;
pub mod provision;
mod receiver;
pub mod registration;
pub mod softhsm;
pub mod ws;
#[allow(unused_imports)]
pub use receiver::{Received, Receiver};

use bastion_proto::wire::{self, Serialization};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Defaults of a `bastion` started without a configuration file.
pub const CSE_ID: &str = "/id-in";
pub const CSE_RI: &str = "id-in";
pub const CSE_NAME: &str = "cse-in";
pub const SP_FQDN: &str = "bastion.example";
pub const ADMIN: &str = "CAdmin";

/// How long the binary may take to report its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `bastion serve` child process.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    log: Arc<Mutex<String>>,
    client: reqwest::Client,
    next_ri: AtomicU64,
    /// Extra `serve` arguments, kept for restarts.
    extra: Vec<String>,
    /// Holds a configuration file for as long as the server may restart.
    _config_dir: Option<tempfile::TempDir>,
    /// The release (`X-M2M-RVI`) requests speak unless a request says otherwise.
    release: &'static str,
}

impl Server {
    /// Starts the binary on a fresh data directory.
    pub fn start() -> Server {
        Server::start_with(Vec::new(), None)
    }

    /// Starts the binary with a configuration file holding `toml`; flags still set the
    /// listener and the data directory.
    pub fn start_with_config(toml: &str) -> Server {
        let config_dir = tempfile::tempdir().expect("temporary configuration directory");
        let file = config_dir.path().join("bastion.toml");
        std::fs::write(&file, toml).expect("write the configuration file");
        let extra = vec!["--config".into(), file.to_string_lossy().into_owned()];
        Server::start_with(extra, Some(config_dir))
    }

    fn start_with(extra: Vec<String>, config_dir: Option<tempfile::TempDir>) -> Server {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let log = Arc::new(Mutex::new(String::new()));
        let (child, port) = spawn(dir.path(), &log, &extra);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(32)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        Server {
            child: Some(child),
            dir,
            port,
            log,
            client,
            next_ri: AtomicU64::new(1),
            extra,
            _config_dir: config_dir,
            release: "3",
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and starts it again on the same
    /// data directory. The port changes.
    pub fn restart(&mut self) {
        self.stop();
        self.respawn();
    }

    /// Starts the binary again on the same data directory after [`Server::kill9`].
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "server still running");
        let (child, port) = spawn(self.dir.path(), &self.log, &self.extra);
        self.child = Some(child);
        self.port = port;
        // Connections to the old process are useless now.
        self.client = reqwest::Client::builder()
            .pool_max_idle_per_host(32)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
    }

    /// SIGKILL: the process dies at once, without any chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    /// Graceful stop: SIGTERM and up to 10 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server wrote to stderr/stdout so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Whether the server's log shows `needle` within `within`. The log reaches the test
    /// through a pipe and a reader thread, so a line the server wrote before answering
    /// may arrive after the answer does.
    pub fn log_shows(&self, needle: &str, within: Duration) -> bool {
        holds_within(within, Duration::from_millis(20), || {
            self.log().contains(needle)
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A fresh request identifier.
    pub fn fresh_ri(&self) -> String {
        format!("rq-{}", self.next_ri.fetch_add(1, Ordering::Relaxed))
    }

    /// Requests then speak `release` (for attributes a later release introduced).
    pub fn speaking(mut self, release: &'static str) -> Server {
        self.release = release;
        self
    }

    /// A request builder; X-M2M-RI (fresh) and X-M2M-RVI (3 unless [`Server::speaking`]
    /// said otherwise) are sent unless changed.
    pub fn request(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            srv: self,
            method: reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method"),
            path: path.to_owned(),
            origin: None,
            ty: None,
            body: None,
            content_type: None,
            ri: Some(self.fresh_ri()),
            rvi: Some(self.release.to_owned()),
            headers: Vec::new(),
            ser: Serialization::Json,
        }
    }

    /// The generic request of the brief.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        originator: Option<&str>,
        ty: Option<u32>,
        body: Option<Value>,
    ) -> Resp {
        let mut r = self.request(method, path);
        if let Some(o) = originator {
            r = r.from(o);
        }
        if let Some(t) = ty {
            r = r.ty(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await
    }

    pub async fn get(&self, path: &str, originator: &str) -> Resp {
        self.req("GET", path, Some(originator), None, None).await
    }

    pub async fn create(&self, path: &str, originator: &str, ty: u32, body: Value) -> Resp {
        self.req("POST", path, Some(originator), Some(ty), Some(body))
            .await
    }

    pub async fn update(&self, path: &str, originator: &str, body: Value) -> Resp {
        self.req("PUT", path, Some(originator), None, Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, originator: &str) -> Resp {
        self.req("DELETE", path, Some(originator), None, None).await
    }

    /// The addresses (`m2m:uril`) the admin discovers of type `ty` under `under`.
    pub async fn discovered(&self, under: &str, ty: u32) -> Vec<String> {
        let r = self.get(&format!("{under}?fu=1&ty={ty}"), "CAdmin").await;
        r.expect(2000);
        r.inner("m2m:uril")
            .as_array()
            .expect("uril")
            .iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect()
    }

    /// Registers an AE (`rr` true, `srv` ["3"]); an empty `orig` sends no X-M2M-Origin.
    /// Returns the `m2m:ae` attributes.
    pub async fn register_ae(&self, orig: &str, api: &str) -> Value {
        let mut r = self
            .request("POST", &format!("/{CSE_NAME}"))
            .ty(2)
            .json(&json!({"m2m:ae": {"api": api, "rr": true, "srv": ["3"]}}));
        if !orig.is_empty() {
            r = r.from(orig);
        }
        let resp = r.send().await;
        resp.expect(2001);
        resp.inner("m2m:ae").clone()
    }

    /// Registers the AE `aei` (an AE-ID-Stem such as `Cowner`) and returns its path.
    pub async fn ae(&self, aei: &str) -> String {
        let ae = self.register_ae(aei, "Ntest").await;
        assert_eq!(ae["aei"], aei);
        format!("/{CSE_NAME}/{}", ae["rn"].as_str().expect("rn"))
    }

    /// Registers `aei` as an AE that cannot receive (`rr` false, no `poa`), named `rn`;
    /// returns its path. Such an AE gets its notifications through a polling channel.
    pub async fn polling_ae(&self, aei: &str, rn: &str) -> String {
        let r = self
            .create(
                &format!("/{CSE_NAME}"),
                aei,
                2,
                json!({"m2m:ae": {"rn": rn, "api": "Npoll", "rr": false, "srv": ["3"]}}),
            )
            .await;
        r.expect(2001);
        format!("/{CSE_NAME}/{rn}")
    }

    /// Creates a container with the given attributes under `parent`; returns its attributes.
    pub async fn create_cnt(&self, parent: &str, orig: &str, attrs: Value) -> Value {
        let resp = self
            .create(parent, orig, 3, json!({ "m2m:cnt": attrs }))
            .await;
        resp.expect(2001);
        resp.inner("m2m:cnt").clone()
    }

    /// Creates a contentInstance with string content `con`; returns its attributes.
    pub async fn create_cin(&self, parent: &str, orig: &str, con: &str) -> Value {
        let resp = self
            .create(parent, orig, 4, json!({"m2m:cin": {"con": con}}))
            .await;
        resp.expect(2001);
        resp.inner("m2m:cin").clone()
    }

    /// Creates an ACP under `parent` as `orig`; returns its attributes.
    pub async fn create_acp(
        &self,
        parent: &str,
        orig: &str,
        rn: &str,
        pv: Value,
        pvs: Value,
    ) -> Value {
        let resp = self
            .create(
                parent,
                orig,
                1,
                json!({"m2m:acp": {"rn": rn, "pv": pv, "pvs": pvs}}),
            )
            .await;
        resp.expect(2001);
        resp.inner("m2m:acp").clone()
    }

    /// Sends raw bytes on a fresh TCP connection (`Connection: close` expected in
    /// `request`) and parses the response. For requests an HTTP client would normalise.
    pub fn raw(&self, request: &[u8]) -> RawResp {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(request).expect("write request");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        RawResp::parse(&out)
    }

    /// Sends `head` (request line and headers, ending in an empty line) and then `body`
    /// with chunked transfer coding from a second thread while reading the response, so a
    /// server that answers before consuming the body is seen, not deadlocked.
    pub fn raw_chunked(&self, head: &str, body: &[u8]) -> RawResp {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone stream");
        let mut payload = head.as_bytes().to_vec();
        for chunk in body.chunks(64 * 1024) {
            payload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            payload.extend_from_slice(chunk);
            payload.extend_from_slice(b"\r\n");
        }
        payload.extend_from_slice(b"0\r\n\r\n");
        let sender = std::thread::spawn(move || {
            // The server may stop reading at its limit; write errors are expected then.
            for piece in payload.chunks(16 * 1024) {
                if writer.write_all(piece).is_err() {
                    break;
                }
            }
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        let _ = sender.join();
        RawResp::parse(&out)
    }

    /// A raw request with the usual oneM2M headers and `Connection: close`.
    pub fn raw_simple(&self, method: &str, target: &str, originator: &str) -> RawResp {
        let text = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-M2M-Origin: {originator}\r\nX-M2M-RI: raw-1\r\nX-M2M-RVI: 3\r\nConnection: close\r\n\r\n",
            self.port
        );
        self.raw(text.as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spawns the binary and waits for its `listening on 127.0.0.1:PORT` line.
fn spawn(dir: &Path, log: &Arc<Mutex<String>>, extra: &[String]) -> (Child, u16) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bastion"));
    command
        .arg("serve")
        .args(extra)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir)
        .env("NO_COLOR", "1");
    spawn_watched(&mut command, "bastion", log, START_TIMEOUT)
}

/// Spawns `command` (`what` in messages) with its standard output and error kept in `log`,
/// and waits `within` for its first `listening on 127.0.0.1:PORT` line; a process that
/// does not report one is killed and the test fails with its output.
pub fn spawn_watched(
    command: &mut Command,
    what: &str,
    log: &Arc<Mutex<String>>,
    within: Duration,
) -> (Child, u16) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let (tx, rx) = mpsc::channel::<u16>();
    let stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    drain(stderr, log.clone(), tx.clone());
    drain(stdout, log.clone(), tx);
    match rx.recv_timeout(within) {
        Ok(port) => (child, port),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not report `listening on` within {within:?}; output:\n{}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        }
    }
}

/// Keeps reading a child's output so it never blocks on a full pipe; reports the port.
fn drain(stream: impl Read + Send + 'static, log: Arc<Mutex<String>>, tx: mpsc::Sender<u16>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        let mut reported = false;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = strip_ansi(&String::from_utf8_lossy(&line));
            if !reported {
                if let Some(port) = listening_port(&text) {
                    reported = true;
                    let _ = tx.send(port);
                }
            }
            if let Ok(mut l) = log.lock() {
                // Bound memory on chatty servers.
                if l.len() < 4 * 1024 * 1024 {
                    l.push_str(&text);
                }
            }
        }
    });
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The port of a `listening on 127.0.0.1:PORT` log line.
fn listening_port(line: &str) -> Option<u16> {
    let at = line.find("listening on")?;
    let rest = &line[at + "listening on".len()..];
    let addr_at = rest.find("127.0.0.1:")?;
    let digits: String = rest[addr_at + "127.0.0.1:".len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|p| *p != 0)
}

/// A request being built.
pub struct Req<'a> {
    srv: &'a Server,
    method: reqwest::Method,
    path: String,
    origin: Option<String>,
    ty: Option<u32>,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
    ri: Option<String>,
    rvi: Option<String>,
    headers: Vec<(String, String)>,
    /// Serialization of the body (and of the default Content-Type).
    ser: Serialization,
}

impl<'a> Req<'a> {
    /// X-M2M-Origin.
    pub fn from(mut self, originator: &str) -> Self {
        self.origin = Some(originator.to_owned());
        self
    }

    /// `ty` parameter of Content-Type (makes a POST a CREATE).
    pub fn ty(mut self, ty: u32) -> Self {
        self.ty = Some(ty);
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some(serde_json::to_vec(body).expect("serialize body"));
        self
    }

    /// A body in `ser` (CBOR or XML through the wire layer), with its Content-Type.
    pub fn body_as(mut self, ser: Serialization, body: &Value) -> Self {
        self.body = Some(ser.encode_pc(body).expect("encode body"));
        self.ser = ser;
        self
    }

    /// A body sent byte for byte.
    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Replaces the whole Content-Type header (the `ty` parameter is then not added).
    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = Some(ct.to_owned());
        self
    }

    /// Sends no Content-Type header at all, even with a body.
    pub fn no_content_type(mut self) -> Self {
        self.content_type = Some(String::new());
        self
    }

    pub fn ri(mut self, ri: &str) -> Self {
        self.ri = Some(ri.to_owned());
        self
    }

    pub fn no_ri(mut self) -> Self {
        self.ri = None;
        self
    }

    pub fn rvi(mut self, rvi: &str) -> Self {
        self.rvi = Some(rvi.to_owned());
        self
    }

    pub fn no_rvi(mut self) -> Self {
        self.rvi = None;
        self
    }

    /// An extra header (appended: giving a name twice sends it twice).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub async fn send(self) -> Resp {
        let what = format!("{} {}", self.method, self.path);
        match self.try_send().await {
            Ok(r) => r,
            Err(e) => panic!("{what}: transport error: {e}"),
        }
    }

    /// Like [`Req::send`] but reports transport errors (used while killing the server).
    pub async fn try_send(self) -> Result<Resp, reqwest::Error> {
        let url = self.srv.url(&self.path);
        let mut rb = self.srv.client.request(self.method.clone(), &url);
        if let Some(o) = &self.origin {
            rb = rb.header("X-M2M-Origin", o.as_str());
        }
        if let Some(ri) = &self.ri {
            rb = rb.header("X-M2M-RI", ri.as_str());
        }
        if let Some(rvi) = &self.rvi {
            rb = rb.header("X-M2M-RVI", rvi.as_str());
        }
        let ct = match (&self.content_type, self.ty) {
            (Some(ct), _) => Some(ct.clone()),
            (None, Some(ty)) => Some(format!("{};ty={ty}", self.ser.media_type())),
            (None, None) if self.body.is_some() => Some(self.ser.media_type().to_owned()),
            (None, None) => None,
        };
        if let Some(ct) = ct.filter(|c| !c.is_empty()) {
            rb = rb.header("Content-Type", ct);
        }
        for (k, v) in &self.headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        if let Some(body) = self.body {
            rb = rb.body(body);
        }
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?;
        Ok(Resp::new(
            format!("{} {}", self.method, self.path),
            status,
            headers,
            &bytes,
        ))
    }
}

/// A response: HTTP status, oneM2M status (`X-M2M-RSC`), headers and JSON body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub what: String,
    pub status: u16,
    /// `X-M2M-RSC`, 0 when the header is missing or not a number.
    pub rsc: u32,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (CBOR and XML bodies decoded by the wire layer, as their
    /// Content-Type says); `Null` when empty, a JSON string when not decodable.
    pub body: Value,
    pub text: String,
}

impl Resp {
    fn new(what: String, status: u16, headers: reqwest::header::HeaderMap, bytes: &[u8]) -> Resp {
        let rsc = headers
            .get("x-m2m-rsc")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let text = String::from_utf8_lossy(bytes).into_owned();
        let ser = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| wire::parse_content_type(v).ok())
            .and_then(|ct| ct.serialization);
        let body = match ser {
            _ if bytes.is_empty() => Value::Null,
            Some(ser) if ser != Serialization::Json => ser
                .decode_pc(bytes)
                .unwrap_or_else(|_| Value::String(text.clone())),
            _ => serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(text.clone())),
        };
        Resp {
            what,
            status,
            rsc,
            headers,
            body,
            text,
        }
    }

    /// Asserts the exact `X-M2M-RSC` and that the HTTP status is the TS-0009 mapping of it.
    #[track_caller]
    pub fn expect(&self, rsc: u32) -> &Self {
        assert_eq!(
            self.rsc, rsc,
            "{}: expected rsc {rsc}, got rsc {} (HTTP {}), body: {}",
            self.what, self.rsc, self.status, self.text
        );
        assert_eq!(
            self.status,
            http_status(rsc),
            "{}: rsc {rsc} must travel as HTTP {}, got HTTP {}",
            self.what,
            http_status(rsc),
            self.status
        );
        self
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The object under the root `root` (e.g. `m2m:cnt`); panics when absent.
    #[track_caller]
    pub fn inner(&self, root: &str) -> &Value {
        match self.body.get(root) {
            Some(v) => v,
            None => panic!("{}: no {root} in body: {}", self.what, self.text),
        }
    }

    /// The `m2m:dbg` text of an error response ("" when absent).
    pub fn dbg(&self) -> &str {
        self.body
            .get("m2m:dbg")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The `m2m:uril` list of a discovery response.
    #[track_caller]
    pub fn uril(&self) -> Vec<String> {
        self.inner("m2m:uril")
            .as_array()
            .unwrap_or_else(|| panic!("{}: m2m:uril is not a list: {}", self.what, self.text))
            .iter()
            .map(|v| v.as_str().expect("uril entry").to_owned())
            .collect()
    }
}

/// Starts `bastion das --listen 127.0.0.1:0 --insecure --policy POLICY` (a plain listener
/// only) and waits for it to report its address.
pub fn start_das(policy: &Path) -> das_tls::DasServer {
    das_tls::start_das_with(policy, &["--listen", "127.0.0.1:0", "--insecure"])
}

/// TS-0009 Table 6.3.2-1 for the codes this suite expects.
pub fn http_status(rsc: u32) -> u16 {
    match rsc {
        1000..=1002 => 202,
        2000 | 2002 | 2004 => 200,
        2001 => 201,
        4000 | 4102 | 4110 | 6010 => 400,
        4001 | 5001 | 5206 => 501,
        4004 | 5103 | 5107 => 404,
        4005 => 405,
        4008 => 504,
        4015 => 415,
        4101 | 4103 | 4106 | 4107 | 4108 | 4109 | 4117 | 4126 | 4127 | 4128 | 5105 | 5203
        | 5205 => 403,
        4105 | 4124 => 409,
        5000 | 5204 | 5209 | 5221 => 500,
        5207 => 406,
        other => panic!("no HTTP mapping known for rsc {other}"),
    }
}

/// A response read off a raw TCP connection.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub text: String,
}

impl RawResp {
    fn parse(bytes: &[u8]) -> RawResp {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body_text = body.to_owned();
        RawResp {
            status,
            body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
            headers,
            text: text.clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn rsc(&self) -> u32 {
        self.header("x-m2m-rsc")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[track_caller]
    pub fn expect(&self, rsc: u32) -> &Self {
        assert_eq!(self.rsc(), rsc, "expected rsc {rsc}, got: {}", self.text);
        assert_eq!(
            self.status,
            http_status(rsc),
            "HTTP status for {rsc}: {}",
            self.text
        );
        self
    }
}

/// `{"acr":[{"acor": acor, "acop": acop}]}`.
pub fn rules(acor: &[&str], acop: u32) -> Value {
    json!({"acr": [{"acor": acor, "acop": acop}]})
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A oneM2M timestamp (`YYYYMMDDThhmmss`, UTC) `offset` seconds from now.
pub fn ts(offset: i64) -> String {
    format_ts(unix_now() + offset)
}

/// Formats seconds since the epoch as a oneM2M timestamp.
pub fn format_ts(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 {
        yoe + era * 400 + 1
    } else {
        yoe + era * 400
    };
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Parses a oneM2M timestamp (fraction ignored) into seconds since the epoch.
pub fn parse_ts(s: &str) -> i64 {
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().expect("timestamp digits") };
    assert_eq!(&s[8..9], "T", "not a oneM2M timestamp: {s}");
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    let (hh, mm, ss) = (n(9, 11), n(11, 13), n(13, 15));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

/// Sleeps until the wall clock's second changes (timestamps have second granularity).
pub async fn next_second() {
    let start = unix_now();
    while unix_now() == start {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Helpers of the tests that drive the binary's subcommands and TLS listener.

/// Runs `bastion ARGS` to completion, without credential keys from the environment.
pub fn bastion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bastion"))
        .args(args)
        .env_remove("BASTION_CREDENTIALS_KEY")
        .env_remove("BASTION_PSK_HEX")
        .env("NO_COLOR", "1")
        .output()
        .expect("run bastion")
}

pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

pub fn write_key_file(file: &Path, hex: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(file, hex).expect("key file");
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The port of the `accepting TLS on 127.0.0.1:PORT` line, logged right after the
/// `listening on` line the harness waits for.
pub fn tls_port(srv: &Server) -> u16 {
    const MARK: &str = "accepting TLS on 127.0.0.1:";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = srv.log();
        if let Some(at) = log.find(MARK) {
            let digits: String = log[at + MARK.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().expect("port");
        }
        assert!(Instant::now() < deadline, "no TLS listener: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `check` holds within `within`, asked every `every` (blocking the thread: for
/// what a server writes to its log, read by a reader thread).
pub fn holds_within(within: Duration, every: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}
