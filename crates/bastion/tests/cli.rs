//! End-to-end tests of the `bastion` binary: help output, the default configuration file,
//! configuration errors and their exit status, and a served CSE answering a raw HTTP
//! request, stopping on SIGTERM and reopening its data directory.
//!
//! Every spawned server is owned by a [`Server`] guard whose `Drop` kills it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bastion");
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A command running the binary with a clean logging environment.
fn bastion(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd).env_remove("RUST_LOG");
    cmd
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    match bastion(cwd).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run {BIN}: {e}"),
    }
}

fn tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `bastion serve`; killed when dropped.
struct Server {
    child: Child,
    /// Standard-error lines, read by a background thread.
    lines: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl Server {
    fn start(cwd: &Path, args: &[&str]) -> Server {
        let mut child = match bastion(cwd)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot start {BIN}: {e}"),
        };
        let (tx, lines) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads standard error until a line contains `needle`; `None` if the stream ends or
    /// the timeout passes first.
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits for `listening on 127.0.0.1:PORT` and returns the port.
    fn port(&mut self) -> u16 {
        let Some(line) = self.wait_for_line("listening on ", START_TIMEOUT) else {
            panic!(
                "no listening line; stderr so far:\n{}",
                self.seen.join("\n")
            );
        };
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        let port = addr
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(port) if port != 0 => port,
            _ => panic!("cannot parse the port from {line:?}"),
        }
    }

    /// Waits for the process to exit by itself.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("cannot wait for the server: {e}"),
            }
        }
        None
    }

    /// The rest of standard error, once the process has exited.
    fn drain_lines(&mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    #[cfg(unix)]
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(
            matches!(status, Ok(s) if s.success()),
            "kill -{name} failed: {status:?}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one raw HTTP/1.1 request and returns the whole response (the server closes the
/// connection because of `Connection: close`).
fn http(port: u16, request: &str) -> String {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => panic!("cannot connect to port {port}: {e}"),
    };
    let timeout = Some(Duration::from_secs(10));
    assert!(stream.set_read_timeout(timeout).is_ok());
    assert!(stream.set_write_timeout(timeout).is_ok());
    if let Err(e) = stream.write_all(request.as_bytes()) {
        panic!("cannot send the request: {e}");
    }
    let mut response = Vec::new();
    if let Err(e) = stream.read_to_end(&mut response) {
        panic!(
            "cannot read the response: {e}; got so far: {}",
            text(&response)
        );
    }
    text(&response)
}

const RETRIEVE_CSE_BASE: &str = "GET /cse-in HTTP/1.1\r\nHost: x\r\nX-M2M-Origin: CAdmin\r\n\
    X-M2M-RI: 1\r\nX-M2M-RVI: 3\r\nConnection: close\r\n\r\n";

fn assert_cse_base_retrieved(response: &str) {
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response
            .lines()
            .any(|l| l.to_ascii_lowercase().replace(' ', "") == "x-m2m-rsc:2000"),
        "{response}"
    );
    assert!(response.contains("\"m2m:cb\""), "{response}");
}

#[test]
fn help_lists_subcommands_and_flags() {
    let dir = tempdir();
    let out = run(dir.path(), &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("serve"), "{help}");
    assert!(help.contains("config"), "{help}");

    let out = run(dir.path(), &["serve", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--data-dir",
        "--cse-id",
        "--cse-name",
        "--sp-id",
        "--cse-type",
        "--admin",
        "--log",
    ] {
        assert!(help.contains(flag), "serve --help lacks {flag}:\n{help}");
    }

    let out = run(dir.path(), &["config", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("default") && help.contains("check"), "{help}");
}

#[test]
fn config_default_parses_and_checks() {
    let dir = tempdir();
    let out = run(dir.path(), &["config", "default"]);
    assert!(out.status.success());
    let file = text(&out.stdout);
    let parsed: toml::Table = match file.parse() {
        Ok(t) => t,
        Err(e) => panic!("config default is not TOML: {e}"),
    };
    for section in ["cse", "http", "storage", "log"] {
        assert!(parsed.contains_key(section), "no [{section}]");
    }

    let path = dir.path().join("bastion.toml");
    assert!(std::fs::write(&path, &file).is_ok());
    let out = run(
        dir.path(),
        &["config", "check", "--config", &path.to_string_lossy()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resolved = text(&out.stdout);
    assert!(resolved.contains("cse-id = \"/id-in\""), "{resolved}");
    assert!(
        resolved.contains("listen = \"127.0.0.1:8080\""),
        "{resolved}"
    );
    // The check output is itself a valid configuration file.
    assert!(resolved.parse::<toml::Table>().is_ok(), "{resolved}");

    // Flags override the file in what check reports.
    let out = run(
        dir.path(),
        &[
            "config",
            "check",
            "--config",
            &path.to_string_lossy(),
            "--cse-id",
            "/id-other",
        ],
    );
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("cse-id = \"/id-other\""));
}

#[test]
fn bad_cse_id_exits_2_with_a_message() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let out = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.to_string_lossy(),
            "--cse-id",
            "id-in",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cse-id") && err.contains("\"/\""), "{err}");
    assert!(!data.exists(), "nothing may be created on a config error");

    let out = run(dir.path(), &["config", "check", "--cse-id", "/a/b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cse-id"));
}

#[test]
fn bad_config_file_exits_2() {
    let dir = tempdir();
    let path = dir.path().join("bad.toml");
    assert!(std::fs::write(&path, "[http]\nlisen = \"127.0.0.1:1\"\n").is_ok());
    let out = run(
        dir.path(),
        &["config", "check", "--config", &path.to_string_lossy()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("lisen"), "{err}");

    let missing = dir.path().join("missing.toml");
    let out = run(
        dir.path(),
        &["serve", "--config", &missing.to_string_lossy()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read config file"));
}

#[test]
fn serve_answers_http() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.to_string_lossy(),
        ],
    );
    let port = server.port();
    let response = http(port, RETRIEVE_CSE_BASE);
    assert_cse_base_retrieved(&response);
    assert!(
        response.contains(&format!("http://127.0.0.1:{port}")),
        "poa advertises the bound address: {response}"
    );
    assert!(data.join("bastion.db").exists());
}

#[cfg(unix)]
#[test]
fn sigterm_stops_and_the_data_dir_reopens() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let data = data.to_string_lossy();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", &data];

    let mut server = Server::start(dir.path(), &args);
    let port = server.port();
    assert_cse_base_retrieved(&http(port, RETRIEVE_CSE_BASE));
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(20));
    let log = server.drain_lines();
    assert!(
        matches!(status, Some(s) if s.success()),
        "{status:?}\n{log}"
    );
    assert!(log.contains("SIGTERM") && log.contains("stopped"), "{log}");

    // The same data directory opens again and serves the same CSE.
    let mut server = Server::start(dir.path(), &args);
    let port = server.port();
    assert_cse_base_retrieved(&http(port, RETRIEVE_CSE_BASE));
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(matches!(status, Some(s) if s.success()), "{status:?}");

    // Another CSE-ID refuses the directory: a start failure, exit status 1.
    let mut server = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--cse-id",
            "/id-other",
        ],
    );
    let status = server.wait_exit(Duration::from_secs(20));
    let log = server.drain_lines();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(log.contains("/id-in") && log.contains("/id-other"), "{log}");
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", data_arg.as_str()];
    let mut first = Server::start(dir.path(), &args);
    first.port();
    let mut cmd = bastion(dir.path());
    let out = cmd.arg("serve").args(args).output().expect("run bastion");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("in use by another bastion process"),
        "{stderr}"
    );
}

// ---- bastion keys derive ----------------------------------------------------------

/// The known-answer data of `bastion-keys`, computed by an independent implementation.
fn kat_derivations() -> Vec<serde_json::Value> {
    let text = include_str!("../../bastion-keys/tests/data/kat.json");
    let kat: serde_json::Value = serde_json::from_str(text).expect("kat.json parses");
    kat["derivations"]
        .as_array()
        .expect("derivations array")
        .clone()
}

/// `bastion keys derive` with no Ke in the environment unless the caller adds one.
fn keys_derive(cwd: &Path, args: &[&str]) -> Output {
    let mut cmd = bastion(cwd);
    cmd.env_remove("BASTION_KE_HEX")
        .args(["keys", "derive"])
        .args(args);
    match cmd.output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run {BIN}: {e}"),
    }
}

/// The flags one KAT vector names, after the kind.
fn vector_flags(vector: &serde_json::Value) -> Vec<String> {
    let field = |name: &str| vector[name].as_str().unwrap_or_default().to_owned();
    let kind = field("kind");
    let mut flags = vec![kind.clone()];
    match kind.as_str() {
        "km" => flags.extend(["--maf-id".to_owned(), field("maf_id")]),
        "kpsa" => flags.extend(["--enrolee-id".to_owned(), field("enrolee_id")]),
        _ => flags.extend([
            "--suid".to_owned(),
            vector["suid"].to_string(),
            "--target-id".to_owned(),
            field("target_id"),
        ]),
    }
    flags
}

#[test]
fn keys_derive_prints_the_known_answer_of_every_vector() {
    let dir = tempdir();
    let vectors = kat_derivations();
    assert!(vectors.len() >= 8);
    for vector in vectors {
        let ke = vector["ke"].as_str().unwrap_or_default();
        let mut args = vector_flags(&vector);
        args.extend(["--ke-hex".to_owned(), ke.to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = keys_derive(dir.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let want = format!("{}\n", vector["key"].as_str().unwrap_or_default());
        assert_eq!(text(&out.stdout), want, "{args:?}");
        assert!(!text(&out.stdout).contains(ke), "Ke printed");
    }
}

#[test]
fn keys_derive_reads_ke_from_an_owner_only_file_or_the_environment() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let vector = &kat_derivations()[0];
    let ke = vector["ke"].as_str().unwrap_or_default();
    let want = vector["key"].as_str().unwrap_or_default();
    let flags = vector_flags(vector);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ke_file = dir.path().join("ke.hex");
    std::fs::write(&ke_file, format!("{ke}\n")).expect("write Ke file");
    std::fs::set_permissions(&ke_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let mut args = flags.clone();
    args.extend(["--ke-file", "ke.hex", "--ke-id", "00ff@mef.example.com"]);
    let out = keys_derive(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{want}\nkey-id: 00ff@mef.example.com\n")
    );

    let out = bastion(dir.path())
        .env("BASTION_KE_HEX", ke)
        .args(["keys", "derive"])
        .args(&flags)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{want}\n"));

    std::fs::set_permissions(&ke_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut args = flags.clone();
    args.extend(["--ke-file", "ke.hex"]);
    let out = keys_derive(dir.path(), &args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("mode 0600"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains(ke), "Ke in an error");
}

#[test]
fn keys_derive_refuses_bad_input_with_status_2_and_one_line() {
    let dir = tempdir();
    let ke = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let cases: &[(&[&str], &str)] = &[
        (&["km", "--maf-id", "maf.example.com"], "no enrolment key"),
        (
            &["km", "--ke-hex", "zz", "--maf-id", "m"],
            "--ke-hex is not hex",
        ),
        (
            &["km", "--ke-hex", "0011", "--maf-id", "m"],
            "must be 32 bytes, got 2",
        ),
        (&["km", "--ke-hex", ke], "km needs --maf-id"),
        (
            &["km", "--ke-hex", ke, "--maf-id", "m", "--suid", "22"],
            "km does not take --suid",
        ),
        (
            &["kpsa", "--ke-hex", ke, "--enrolee-id", "CAE é"],
            "printable ASCII",
        ),
        (
            &["kuc", "--ke-hex", ke, "--suid", "20", "--target-id", "t"],
            "SUID 20 is not defined",
        ),
        (
            &["kuc", "--ke-hex", ke, "--suid", "x", "--target-id", "t"],
            "is not a decimal number",
        ),
        (
            &["km", "--ke-hex", ke, "--maf-id", "m", "--ke-id", "nope"],
            "--ke-id: key identifier must be RelativeKeyID@FQDN",
        ),
    ];
    for (args, reason) in cases {
        let out = keys_derive(dir.path(), args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed a key");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("bastion: error: "), "{stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert!(!stderr.contains(ke), "Ke in an error");
    }
}
