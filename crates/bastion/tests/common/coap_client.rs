//! libcoap's `coap-client` (Debian `libcoap3-bin`, installed by
//! `scripts/coap-client-env`) as the CoAP and CoAP-over-DTLS tests drive it.
//!
//! libcoap knows no oneM2M option, and RFC 7252 5.4.1 makes a client reject a response
//! carrying a critical option it does not know: TS-0008's options are all critical, so
//! `coap-client` drops every oneM2M response after receiving it. Its debug output
//! (`-v 7`) shows each received message before it is dropped; [`parse`] reads the CoAP
//! code, the options and the payload from there, and `-B` ends the client's wait.

use super::Server;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Whether `coap-client` is there; under `CI=true` its absence fails.
pub fn available() -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/coap-client-env");
    let why = match Command::new(script).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Some(format!("{script}: {e}")),
    };
    match why {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CoAP tests need coap-client (libcoap3-bin) under CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

/// The CoAP address a server logged when it started serving.
pub fn coap_addr(server: &Server) -> String {
    assert!(
        server.log_shows("serving CoAP requests", Duration::from_secs(20)),
        "no CoAP listener:\n{}",
        server.log()
    );
    let log = server.log();
    let at = log.find("serving CoAP requests addr=").expect("logged") + 27;
    log[at..]
        .split_whitespace()
        .next()
        .expect("address")
        .to_owned()
}

/// One response as `coap-client -v 7` printed it.
#[derive(Debug)]
pub struct Received {
    /// The message type: `ACK`, `NON`, `CON`.
    pub kind: String,
    /// `2.01`, `4.03`, …
    pub code: String,
    /// Each option as `number-or-name:value` (value bytes unescaped).
    pub options: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
}

impl Received {
    pub fn option(&self, name: &str) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The oneM2M-RSC option (307).
    pub fn rsc(&self) -> u64 {
        let v = self.option("307").expect("oneM2M-RSC option");
        v.iter().fold(0, |n, b| (n << 8) | u64::from(*b))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("payload {:?}: {e}", String::from_utf8_lossy(&self.payload)))
    }

    pub fn expect(&self, code: &str, rsc: u64) -> &Self {
        assert_eq!((self.code.as_str(), self.rsc()), (code, rsc), "{self:?}");
        self
    }
}

/// libcoap's escaping of bytes: `\xHH` for what is not printable, the character else.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') && i + 4 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 2..i + 4], 16) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The last response message in `coap-client`'s debug output.
pub fn parse(output: &str) -> Option<Received> {
    let line = output.lines().rfind(|l| {
        let code = l.split(" c:").nth(1).unwrap_or("");
        // A response code (class 2 to 5); requests and empty messages (0.xx) are the
        // client's own, printed too.
        l.starts_with("v:1 t:") && code.as_bytes().get(1) == Some(&b'.') && !code.starts_with('0')
    })?;
    let code = line.split(" c:").nth(1)?.split(' ').next()?.to_owned();
    let kind = line.split(" t:").nth(1)?.split(' ').next()?.to_owned();
    let options = match (line.find(" [ "), line.find(" ]")) {
        (Some(a), Some(b)) if a + 3 <= b => line[a + 3..b]
            .split(", ")
            .filter_map(|o| o.split_once(':'))
            .map(|(n, v)| (n.to_owned(), unescape(v)))
            .collect(),
        _ => Vec::new(),
    };
    let payload = match line.find(" :: '") {
        Some(at) => unescape(line[at + 5..].strip_suffix('\'').unwrap_or(&line[at + 5..])),
        None => Vec::new(),
    };
    Some(Received {
        kind,
        code,
        options,
        payload,
    })
}

/// One `coap-client` build aimed at one CSE: `coap-client-notls` on `coap://`, or a
/// DTLS build on `coaps://` with a PSK identity and key (`-u`, `-k`: libcoap takes
/// the key as text, so the tests' keys are printable).
pub struct Coap {
    program: &'static str,
    base: String,
    auth: Vec<String>,
}

impl Coap {
    pub fn plain(program: &'static str, addr: &str) -> Coap {
        Coap {
            program,
            base: format!("coap://{addr}"),
            auth: Vec::new(),
        }
    }

    pub fn psk(program: &'static str, addr: &str, identity: &str, key: &str) -> Coap {
        Coap {
            program,
            base: format!("coaps://{addr}"),
            auth: vec!["-u".into(), identity.into(), "-k".into(), key.into()],
        }
    }

    /// A DTLS build on `coaps://` with a client certificate (`-c`, `-j`) and the CA
    /// that issued the server's (`-C`).
    pub fn certificate(program: &'static str, addr: &str, cert: &str, key: &str, ca: &str) -> Coap {
        let auth = ["-c", cert, "-j", key, "-C", ca];
        Coap {
            program,
            base: format!("coaps://{addr}"),
            auth: auth.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The last response to `args` on `path`, or what the client printed instead.
    pub fn try_request(&self, path: &str, args: &[&str]) -> Result<Received, String> {
        let mut all: Vec<&str> = self.auth.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run(self.program, &format!("{}/{path}", self.base), &all)
    }

    pub fn request(&self, path: &str, args: &[&str]) -> Received {
        self.try_request(path, args)
            .unwrap_or_else(|text| panic!("no response to {args:?} {path}:\n{text}"))
    }

    /// A oneM2M CREATE: POST with the ty, fr, rqi and rvi options and a JSON body.
    pub fn create_args(path: &str, from: &str, ty: u8, body: &Value) -> (String, Vec<String>) {
        let args = [
            "-m".into(),
            "post".into(),
            "-O".into(),
            format!("267,0x{ty:04x}"),
            "-O".into(),
            format!("279,{from}"),
            "-O".into(),
            "283,c1".into(),
            "-O".into(),
            "271,3".into(),
            "-t".into(),
            "50".into(),
            "-e".into(),
            body.to_string(),
        ];
        (path.to_owned(), args.to_vec())
    }

    pub fn try_create(
        &self,
        path: &str,
        from: &str,
        ty: u8,
        body: &Value,
    ) -> Result<Received, String> {
        let (path, args) = Coap::create_args(path, from, ty, body);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.try_request(&path, &args)
    }

    pub fn create(&self, path: &str, from: &str, ty: u8, body: &Value) -> Received {
        self.try_create(path, from, ty, body)
            .unwrap_or_else(|text| panic!("no response to CREATE {path}:\n{text}"))
    }

    /// A oneM2M RETRIEVE: GET with the fr, rqi and rvi options and `extra`.
    pub fn retrieve(&self, path: &str, from: &str, extra: &[&str]) -> Received {
        let fr = format!("279,{from}");
        let mut args = vec!["-m", "get", "-O", &fr, "-O", "283,g1", "-O", "271,3"];
        args.extend_from_slice(extra);
        self.request(path, &args)
    }

    pub fn try_retrieve(&self, path: &str, from: &str) -> Result<Received, String> {
        let fr = format!("279,{from}");
        let args = ["-m", "get", "-O", &fr, "-O", "283,g1", "-O", "271,3"];
        self.try_request(path, &args)
    }
}

/// Runs `program` (a `coap-client` build) with `args` on `uri` and returns the last
/// response it printed, or everything it printed when there was none.
pub fn run(program: &str, uri: &str, args: &[&str]) -> Result<Received, String> {
    let out = Command::new(program)
        .args(["-v", "7", "-B", "2"])
        .args(args)
        .arg(uri)
        .output()
        .expect("coap-client runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&text).ok_or(text)
}
