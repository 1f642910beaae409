//! Servers under resource limits: `bastion serve` started through `prlimit` with a low
//! descriptor limit, the limit lowered on a running server, and bare TCP connections
//! held open against a listener.

use super::{spawn_watched, Server};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the binary may take to report its port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Server {
    /// Like [`Server::start_with_config`], with the process's descriptor limit (soft and
    /// hard) set to `nofile` from its start.
    pub fn start_with_nofile(toml: &str, nofile: u64) -> Server {
        let config_dir = tempfile::tempdir().expect("temporary configuration directory");
        let file = config_dir.path().join("bastion.toml");
        std::fs::write(&file, toml).expect("write the configuration file");
        let dir = tempfile::tempdir().expect("temporary data directory");
        let log = Arc::new(Mutex::new(String::new()));
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_bastion"))
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path())
            .env("NO_COLOR", "1");
        let (child, port) =
            spawn_watched(&mut command, "bastion under prlimit", &log, START_TIMEOUT);
        Server {
            child: Some(child),
            dir,
            port,
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            next_ri: AtomicU64::new(1),
            extra: vec!["--config".into(), file.to_string_lossy().into_owned()],
            _config_dir: Some(config_dir),
            release: "3",
        }
    }

    /// The server process's id (`prlimit` execs the binary, so it is the server's too).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// The server's resident memory (`VmRSS` of `/proc/<pid>/status`), in KiB.
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sets the running server's descriptor limit (soft and hard) to `nofile`.
    pub fn set_nofile(&self, nofile: u64) {
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(self.pid().to_string())
            .arg(format!("--nofile={nofile}:{nofile}"))
            .status()
            .expect("run prlimit");
        assert!(status.success(), "prlimit --pid failed");
    }

    /// How many times `needle` occurs in the log so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }
}

/// Opens `n` TCP connections to `port` on loopback and keeps them open, sending nothing.
/// Connections the server has not accepted yet still complete (the kernel's backlog).
pub fn bare_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("bare connection"))
        .collect()
}

/// Reads what the server sends on `stream` until it closes the connection (or 15 s
/// pass) and parses it as one response; `None` when the server closed without a byte.
pub fn read_until_closed(stream: &mut TcpStream) -> Option<super::RawResp> {
    use std::io::Read;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => {}
        // A reset is a close too; a timeout is not.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    (!out.is_empty()).then(|| super::RawResp::parse(&out))
}
