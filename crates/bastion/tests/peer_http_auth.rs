//! The opt-in binding of a peer CSE's identity by HTTP Basic or Bearer credentials over
//! server-authenticated TLS (issue 14, interoperability item 5; docs/security.md,
//! "HTTP-authenticated peer CSEs"): the real binary, credentials added with `bastion
//! credentials add-http-peer`, requests sent by `curl`, a client the project did not
//! write, which verifies the server's certificate and presents none of its own.

use crate::common;

use common::provision::*;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const STORE_KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const SECRET: &str = "Zq8-mN3_vT6.pL1~wK4+xR7/eY2=";
const USER: &str = "acme-mn";

/// A CSE whose TLS listener serves certificates and, when `opt_in`, peer HTTP
/// authentication; the files of its PKI and store key.
struct Peer {
    srv: Server,
    files: tempfile::TempDir,
    tls_port: u16,
}

impl Peer {
    fn start(opt_in: bool) -> Peer {
        let files = tempfile::tempdir().expect("files");
        let f = files.path();
        write_key_file(&f.join("store.key"), STORE_KEY);
        ca_and_certificates(f, &[("srv", "//bastion.example/id-in")]);
        let mut config = format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\nframeworks = [\"certificate\"]\n\
             certificate-file = \"{}\"\nkey-file = \"{}\"\ntrust-anchor-files = [\"{}\"]\n\
             credentials-key-file = \"{}\"\n",
            path(f, "srv.pem"),
            path(f, "srv.key"),
            path(f, "ca.pem"),
            path(f, "store.key")
        );
        if opt_in {
            config.push_str("peer-http-authentication = true\n");
        } else {
            config.push_str("require-client-certificate = false\n");
        }
        let srv = Server::start_with_config(&config);
        let tls_port = tls_port(&srv);
        Peer {
            srv,
            files,
            tls_port,
        }
    }

    fn credentials(&self, args: &[&str]) -> std::process::Output {
        let dir = self.srv.data_dir().to_string_lossy().into_owned();
        let key = path(self.files.path(), "store.key");
        let mut all = vec!["credentials"];
        all.extend_from_slice(&args[..1]);
        all.extend_from_slice(&["--data-dir", &dir, "--key-file", &key]);
        all.extend_from_slice(&args[1..]);
        bastion(&all)
    }

    /// One oneM2M request with curl: `auth` is curl's own arguments for the credentials
    /// (none, `-u user:secret`, or an `Authorization` header). Returns the rsc and body,
    /// or `None` when curl got no HTTP response.
    fn curl(
        &self,
        auth: &[&str],
        method: &str,
        to: &str,
        from: &str,
        body: Option<&str>,
    ) -> Option<(String, String)> {
        let url = format!("https://localhost:{}{to}", self.tls_port);
        let ca = path(self.files.path(), "ca.pem");
        let mut args = vec![
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            &ca,
            "-X",
            method,
            "-D",
            "-",
            "-H",
            "X-M2M-RVI: 3",
            "-H",
            "Accept: application/json",
        ];
        let origin = format!("X-M2M-Origin: {from}");
        args.extend_from_slice(&["-H", &origin, "-H", "X-M2M-RI: peer-http-1"]);
        if let Some(body) = body {
            args.extend_from_slice(&[
                "-H",
                "Content-Type: application/json;ty=16",
                "--data-binary",
                body,
            ]);
        }
        args.extend_from_slice(auth);
        args.push(&url);
        let out = Command::new("curl")
            .args(&args)
            .output()
            .expect("curl is needed by this test (Debian package curl); it is a real HTTP client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let rsc = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("X-M2M-RSC: ")
                    .or_else(|| l.strip_prefix("x-m2m-rsc: "))
            })?
            .trim()
            .to_owned();
        Some((rsc, body.to_owned()))
    }

    /// Adds the HTTP peer credential of `/id-mn` and waits until the listener accepts it.
    fn provision(&self) {
        let secret_file = self.files.path().join("peer.secret");
        write_key_file(&secret_file, SECRET);
        let added = ok(&self.credentials(&[
            "add-http-peer",
            "--user",
            USER,
            "--secret-file",
            &secret_file.to_string_lossy(),
            "--cse-id",
            "/id-mn",
        ]));
        assert_eq!(
            added,
            format!("added {USER}\thttp-peer\tcse /id-mn\tactive\n")
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let basic = format!("{USER}:{SECRET}");
        while self
            .curl(&["-u", &basic], "GET", "/cse-in", "/id-mn", None)
            .is_some_and(|(rsc, _)| rsc == "4107")
        {
            assert!(
                Instant::now() < deadline,
                "the HTTP peer credential is never accepted"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

const CSR: &str = r#"{"m2m:csr": {"rn": "id-mn", "cb": "/id-mn/cse-mn", "csi": "/id-mn", "cst": 2, "rr": true, "poa": ["http://127.0.0.1:9"], "srv": ["3"]}}"#;

#[test]
fn opt_in_http_basic_and_bearer_bind_a_peer_cse_over_server_authenticated_tls() {
    let p = Peer::start(true);
    p.provision();
    let basic = format!("{USER}:{SECRET}");
    let bearer = format!("Authorization: Bearer {SECRET}");

    // Registration as /id-mn with Basic, then reads with Bearer: the CSE-ID the
    // credential binds is the originator.
    let (rsc, body) = p
        .curl(&["-u", &basic], "POST", "/cse-in", "/id-mn", Some(CSR))
        .expect("an answer");
    assert_eq!(rsc, "2001", "{body}\n{}", p.srv.log());
    let (rsc, body) = p
        .curl(&["-H", &bearer], "GET", "/cse-in/id-mn", "/id-mn", None)
        .expect("an answer");
    assert_eq!(rsc, "2000", "{body}");
    assert!(body.contains("\"csi\":\"/id-mn\""), "{body}");

    // The credential binds /id-mn only: another originator is not authenticated.
    let (rsc, _) = p
        .curl(&["-u", &basic], "GET", "/cse-in/id-mn", "/id-other", None)
        .expect("an answer");
    assert_eq!(rsc, "4106");

    // No credentials, or wrong ones: 4107 with a short reason, never the secret.
    let (rsc, body) = p
        .curl(&[], "GET", "/cse-in/id-mn", "/id-mn", None)
        .expect("an answer");
    assert_eq!(rsc, "4107");
    assert_eq!(
        body,
        r#"{"m2m:dbg":"no HTTP Basic or Bearer credentials for this server-authenticated association"}"#
    );
    let wrong = format!("{USER}:{}", SECRET.replace('Z', "Y"));
    for auth in [
        vec!["-u", wrong.as_str()],
        vec!["-H", "Authorization: Bearer not-the-secret-at-all"],
    ] {
        let (rsc, body) = p
            .curl(&auth, "GET", "/cse-in/id-mn", "/id-mn", None)
            .expect("an answer");
        assert_eq!(rsc, "4107");
        assert_eq!(
            body,
            r#"{"m2m:dbg":"the HTTP credentials were not accepted"}"#
        );
    }

    // Revoked: the next request is refused.
    assert_eq!(
        ok(&p.credentials(&["revoke", "--id", USER])),
        format!("revoked {USER}\thttp-peer\tcse /id-mn\trevoked\n")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rsc, _) = p
            .curl(&["-u", &basic], "GET", "/cse-in/id-mn", "/id-mn", None)
            .expect("an answer");
        if rsc == "4107" {
            break;
        }
        assert!(Instant::now() < deadline, "revocation never applied");
        std::thread::sleep(Duration::from_millis(200));
    }

    assert!(p.srv.log().contains("peer HTTP authentication is on"));
    assert!(!p.srv.log().contains(SECRET), "the secret reached the log");
}

#[test]
fn without_the_opt_in_a_client_without_certificate_gets_no_association() {
    let p = Peer::start(false);
    p.provision_refused();
}

impl Peer {
    /// The credential can be added, but the listener never accepts a client without a
    /// certificate, so curl gets no HTTP answer at all.
    fn provision_refused(&self) {
        let secret_file = self.files.path().join("peer.secret");
        write_key_file(&secret_file, SECRET);
        ok(&self.credentials(&[
            "add-http-peer",
            "--user",
            USER,
            "--secret-file",
            &secret_file.to_string_lossy(),
            "--cse-id",
            "/id-mn",
        ]));
        let basic = format!("{USER}:{SECRET}");
        assert_eq!(
            self.curl(&["-u", &basic], "POST", "/cse-in", "/id-mn", Some(CSR)),
            None
        );
        assert!(self
            .srv
            .log_shows("TLS handshake refused", Duration::from_secs(5)));
    }
}

#[test]
fn the_opt_in_needs_the_certificate_framework_and_an_optional_client_certificate() {
    for (extra, problem) in [
        (
            "frameworks = [\"psk\"]\npeer-http-authentication = true\n",
            "tls: peer-http-authentication needs the certificate framework",
        ),
        (
            "frameworks = [\"certificate\"]\ncertificate-file = \"a\"\nkey-file = \"b\"\n\
             trust-anchor-files = [\"c\"]\npeer-http-authentication = true\n\
             require-client-certificate = true\n",
            "cannot be combined with require-client-certificate = true",
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("bastion.toml");
        std::fs::write(&config, format!("[tls]\nlisten = \"127.0.0.1:0\"\n{extra}")).unwrap();
        let data = dir.path().join("data");
        let out = bastion(&[
            "serve",
            "--config",
            &config.to_string_lossy(),
            "--data-dir",
            &data.to_string_lossy(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(problem),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_http_peer_secret_is_checked_and_never_printed() {
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path();
    write_key_file(&f.join("store.key"), STORE_KEY);
    let store = path(f, "credentials.store");
    let key = path(f, "store.key");
    for (secret, user, cse, reason) in [
        (
            "short",
            USER,
            "/id-mn",
            "the secret must be 16 to 64 characters",
        ),
        (
            "has spaces in the secret!",
            USER,
            "/id-mn",
            "the secret must be 16 to 64 characters",
        ),
        (
            SECRET,
            "bad@user",
            "/id-mn",
            "invalid HTTP user name \"bad@user\"",
        ),
        (SECRET, USER, "Cae", "invalid CSE-ID"),
    ] {
        let file = f.join("s");
        write_key_file(&file, secret);
        let out = bastion(&[
            "credentials",
            "add-http-peer",
            "--store",
            &store,
            "--key-file",
            &key,
            "--user",
            user,
            "--secret-file",
            &file.to_string_lossy(),
            "--cse-id",
            cse,
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains(secret), "{stderr}");
    }
}
