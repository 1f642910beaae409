//! A real ACME CSE (`acmecse` from PyPI, installed by `scripts/acme-env`) started headless
//! on loopback for the interoperability tests (tests/acme_interop.rs).
//!
//! Each [`Acme`] gets its own temporary base directory holding the ini file written here
//! (free port, in-memory database, no web or text UI, file logging only), and is killed
//! when dropped. Under `CI=true` a missing or broken ACME installation fails the test;
//! elsewhere [`acmecse`] returns `None` and says why, and the test skips.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Request IDs of the requests the tests send to ACME directly.
static NEXT_RI: AtomicU64 = AtomicU64::new(1);

/// The release version ACME puts in its requests (`[cse] releaseVersion`): ACME's
/// default, Release 5.
pub const ACME_RELEASE: &str = "5";

/// The SP both CSEs belong to (Bastion's default SP-ID).
pub const SP_ID: &str = "//bastion.example";

/// ACME needs a few seconds to import its init resources after its HTTP server listens.
const START_TIMEOUT: Duration = Duration::from_secs(40);

/// The `acmecse` launcher of the venv `scripts/acme-env` prepares, or why there is none.
/// Under `CI=true` a missing ACME fails the test; elsewhere the caller skips.
pub fn acmecse() -> Option<PathBuf> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/acme-env");
    let why = match Command::new(&script).output() {
        Ok(o) if o.status.success() => {
            let python = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            let launcher = python.with_file_name("acmecse");
            if launcher.is_file() {
                return Some(launcher);
            }
            format!("{} is missing", launcher.display())
        }
        Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
        Err(e) => e.to_string(),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("scripts/acme-env failed under CI: {why}");
    }
    eprintln!("SKIPPED: no ACME CSE ({}): {why}", script.display());
    None
}

/// What the ACME instance is.
pub enum Role<'a> {
    /// An IN-CSE (no registrar).
    In,
    /// An MN-CSE registering with the CSE at `registrar` (`http://127.0.0.1:PORT`), whose
    /// CSE-ID stem and CSEBase name are given.
    Mn {
        registrar_port: u16,
        registrar_id: &'a str,
        registrar_name: &'a str,
    },
    /// An MN-CSE registering over `https://localhost:PORT` with HTTP Basic credentials
    /// (`[cse.registrar.security] httpUsername/httpPassword`). ACME verifies no server
    /// certificate unless its own HTTP server runs TLS, so it does not here.
    MnOverTlsWithBasic {
        registrar_tls_port: u16,
        registrar_id: &'a str,
        registrar_name: &'a str,
        user: &'a str,
        password: &'a str,
    },
}

/// A running ACME CSE.
pub struct Acme {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// CSE-ID stem (`id-acme`) and CSEBase name (`cse-acme`).
    pub cse_id: String,
    pub cse_name: String,
    client: reqwest::Client,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn ini(role: &Role<'_>, port: u16, cse_id: &str, cse_name: &str, check_interval: u32) -> String {
    let (cse_type, registrar, address, security) = match role {
        Role::In => ("IN", String::new(), String::new(), String::new()),
        Role::Mn {
            registrar_port,
            registrar_id,
            registrar_name,
        } => (
            "MN",
            format!(
                "registrarCseHost=127.0.0.1\nregistrarCsePort={registrar_port}\n\
                 registrarCseID={registrar_id}\nregistrarCseName={registrar_name}\n"
            ),
            String::new(),
            String::new(),
        ),
        Role::MnOverTlsWithBasic {
            registrar_tls_port,
            registrar_id,
            registrar_name,
            user,
            password,
        } => (
            "MN",
            format!(
                "registrarCseHost=localhost\nregistrarCsePort={registrar_tls_port}\n\
                 registrarCseID={registrar_id}\nregistrarCseName={registrar_name}\n"
            ),
            format!("address=https://localhost:{registrar_tls_port}\n"),
            format!("[cse.registrar.security]\nhttpUsername={user}\nhttpPassword={password}\n\n"),
        ),
    };
    let in_id = match role {
        Role::In => format!("/{cse_id}"),
        Role::Mn { registrar_id, .. } | Role::MnOverTlsWithBasic { registrar_id, .. } => {
            format!("/{registrar_id}")
        }
    };
    format!(
        "[basic.config]\ncseType={cse_type}\nserviceProviderID={SP_ID}\ncseID={cse_id}\n\
         cseName={cse_name}\nadminID=CAdmin\nnetworkInterface=127.0.0.1\ncseHost=127.0.0.1\n\
         httpPort={port}\nlogLevel=debug\ndatabaseType=memory\nconsoleTheme=dark\n\
         consoleType=simple\nsecret=interop-test\n{registrar}\n\
         [cse]\nreleaseVersion={ACME_RELEASE}\nasyncSubscriptionNotifications=false\n\n\
         [cse.registration]\nallowedCSROriginators=/id-*\ncheckInterval={check_interval}\n\n\
         [cse.registrar]\nINCSEcseID={in_id}\n{address}\n{security}\
         [cse.statistics]\nenable=false\n\n[webui]\nenable=false\n\n\
         [textui]\nenable=false\nstartWithTUI=false\n\n[console]\nheadless=true\n\n\
         [logging]\nenableFileLogging=true\nenableScreenLogging=false\npath=LOGDIR\n"
    )
}

impl Acme {
    /// Starts ACME as `role` with CSE-ID `/cse_id` and CSEBase `cse_name`; returns once its
    /// CSEBase answers its admin. `check_interval` is ACME's registration check period (s).
    pub fn start(
        launcher: &Path,
        role: Role<'_>,
        cse_id: &str,
        cse_name: &str,
        check_interval: u32,
    ) -> Acme {
        let dir = tempfile::tempdir().expect("ACME base directory");
        let port = free_port();
        let logs = dir.path().join("logs");
        let text = ini(&role, port, cse_id, cse_name, check_interval)
            .replace("LOGDIR", &logs.to_string_lossy());
        std::fs::write(dir.path().join("acme.ini"), text).expect("write acme.ini");
        let child = Command::new(launcher)
            .args(["--config", "acme.ini", "--base-directory"])
            .arg(dir.path())
            .args(["--headless", "--db-type", "memory"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", launcher.display()));
        let acme = Acme {
            child: Some(child),
            dir,
            port,
            cse_id: cse_id.to_owned(),
            cse_name: cse_name.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("HTTP client"),
        };
        acme.wait_started();
        acme
    }

    fn wait_started(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let rt = tokio::runtime::Handle::current();
        loop {
            let base = format!("/{}", self.cse_name);
            let up = rt.block_on(async {
                self.try_req("GET", &base, "CAdmin", None, None)
                    .await
                    .is_some_and(|(rsc, _)| rsc == 2000)
            });
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ACME did not start within {START_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// ACME's log file (all of it).
    pub fn log(&self) -> String {
        // Rotated files are `NAME.log.1` (newer) … `NAME.log.N` (older): oldest first.
        let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(self.dir.path().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let path = e.path();
                let age = path
                    .extension()
                    .and_then(|x| x.to_str())
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                (age, path)
            })
            .collect();
        files.sort_by_key(|f| std::cmp::Reverse(f.0));
        files
            .iter()
            .map(|(_, p)| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// Whether ACME's log shows `needle` within `within`.
    pub fn log_shows(&self, needle: &str, within: Duration) -> bool {
        super::holds_within(within, Duration::from_millis(100), || {
            self.log().contains(needle)
        })
    }

    async fn try_req(
        &self,
        method: &str,
        path: &str,
        from: &str,
        ty: Option<u32>,
        body: Option<&Value>,
    ) -> Option<(u32, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.url()))
            .header("X-M2M-Origin", from)
            .header(
                "X-M2M-RI",
                format!("acme-test-{}", NEXT_RI.fetch_add(1, Ordering::Relaxed)),
            )
            .header("X-M2M-RVI", ACME_RELEASE)
            .header("Accept", "application/json");
        if let Some(b) = body {
            let ct = match ty {
                Some(t) => format!("application/json;ty={t}"),
                None => "application/json".to_owned(),
            };
            rb = rb.header("Content-Type", ct).body(b.to_string());
        }
        let resp = rb.send().await.ok()?;
        let rsc = resp
            .headers()
            .get("x-m2m-rsc")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let text = resp.text().await.ok()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Some((rsc, body))
    }

    /// A CREATE of type `ty` under `parent` on ACME directly, which must answer 2001;
    /// returns the created representation.
    pub async fn create(&self, parent: &str, from: &str, ty: u32, body: Value) -> Value {
        let (rsc, created) = self.req("POST", parent, from, Some(ty), Some(body)).await;
        assert_eq!(rsc, 2001, "CREATE under {parent}: {created}");
        created
    }

    /// One request to ACME directly; returns its `X-M2M-RSC` and JSON body.
    pub async fn req(
        &self,
        method: &str,
        path: &str,
        from: &str,
        ty: Option<u32>,
        body: Option<Value>,
    ) -> (u32, Value) {
        self.try_req(method, path, from, ty, body.as_ref())
            .await
            .unwrap_or_else(|| panic!("ACME did not answer {method} {path}; log:\n{}", self.log()))
    }

    /// Stops ACME at once (SIGKILL: it cannot deregister on the way out).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Acme {
    fn drop(&mut self) {
        self.kill();
    }
}
