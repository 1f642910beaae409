//! What the load generators of `bench/` share (`tls-bench`, `enrol-bench`): the TLS
//! client options and context, one full handshake on a fresh connection, the run driver
//! (warm-up, counted seconds, the `BENCH` line), the counters, and a minimal HTTP/1.1
//! response reader. One client code for every figure, so figures compare servers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bastion_proto::wire::http::header;
use clap::Args;
use openssl::ssl::{Ssl, SslContext, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// Runs `run` on one tokio current-thread runtime (one core, like wrk -t1); an error is
/// printed as `NAME: error` with exit status 2.
pub fn main_with<F>(name: &str, run: F)
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run) {
        eprintln!("{name}: {e}");
        std::process::exit(2);
    }
}

/// How long one connect, handshake, request or close may take before it counts as an error.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The client's TLS options, as flags.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// PSK identity (KpsaID); sent NUL-terminated, as Bastion's client does.
    #[arg(long, requires = "psk_hex")]
    pub psk_identity: Option<String>,
    /// PSK in hex.
    #[arg(long, requires = "psk_identity")]
    pub psk_hex: Option<String>,
    /// Trust anchor (PEM) to verify the server certificate with; without it the server
    /// certificate is not verified (PSK suites send none).
    #[arg(long)]
    pub ca: Option<String>,
    /// Client certificate (PEM), for client authentication.
    #[arg(long, requires = "key")]
    pub cert: Option<String>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<String>,
    /// TLS 1.2 only.
    #[arg(long, conflicts_with = "tls13")]
    pub tls12: bool,
    /// TLS 1.3 only.
    #[arg(long)]
    pub tls13: bool,
    /// TLS 1.2 cipher list (OpenSSL names).
    #[arg(long)]
    pub cipher: Option<String>,
    /// TLS 1.3 suites (OpenSSL names).
    #[arg(long)]
    pub ciphersuites: Option<String>,
    /// Key-exchange groups offered (ECDHE in TLS 1.2, key shares in TLS 1.3).
    #[arg(long, default_value = "P-256")]
    pub groups: String,
    /// SNI host name to send (none by default).
    #[arg(long)]
    pub server_name: Option<String>,
}

/// How long a run lasts, as flags.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Seconds counted.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Seconds run before counting starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

/// Counters shared by the tasks of one run.
#[derive(Default)]
pub struct Stats {
    /// Whether the counted seconds are running (warm-up: not).
    pub counting: AtomicBool,
    /// Successes while counting.
    pub ok: AtomicU64,
    /// Failures while counting.
    pub errors: AtomicU64,
    /// The first failure, counted or not, for the `BENCH` line.
    pub first_error: Mutex<Option<String>>,
    /// The first negotiated version/suite.
    pub negotiated: Mutex<Option<String>>,
    /// Latencies the tasks hand back, in microseconds.
    pub latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    /// Counts a failure (while counting) and keeps the first one's text.
    pub fn error(&self, what: String) {
        if self.counting.load(Ordering::Relaxed) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut first = self.first_error.lock().expect("lock");
        if first.is_none() {
            *first = Some(what);
        }
    }
}

/// The client context of `t`: versions, suites, groups, no session cache, the PSK or
/// certificates.
pub fn tls_context(t: &TlsArgs) -> Result<SslContext, String> {
    let e = |what: &str| {
        let what = what.to_owned();
        move |err: openssl::error::ErrorStack| format!("{what}: {err}")
    };
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(e("context"))?;
    let (min, max) = match (t.tls12, t.tls13) {
        (true, _) => (SslVersion::TLS1_2, SslVersion::TLS1_2),
        (_, true) => (SslVersion::TLS1_3, SslVersion::TLS1_3),
        _ => (SslVersion::TLS1_2, SslVersion::TLS1_3),
    };
    b.set_min_proto_version(Some(min))
        .map_err(e("min version"))?;
    b.set_max_proto_version(Some(max))
        .map_err(e("max version"))?;
    if let Some(c) = &t.cipher {
        b.set_cipher_list(c).map_err(e("--cipher"))?;
    }
    if let Some(c) = &t.ciphersuites {
        b.set_ciphersuites(c).map_err(e("--ciphersuites"))?;
    }
    b.set_groups_list(&t.groups).map_err(e("--groups"))?;
    // Never offer a session: every handshake is a full one.
    b.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::OFF);
    match &t.ca {
        Some(ca) => {
            b.set_ca_file(ca).map_err(e("--ca"))?;
            b.set_verify(SslVerifyMode::PEER);
        }
        None => b.set_verify(SslVerifyMode::NONE),
    }
    if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
        b.set_certificate_chain_file(cert).map_err(e("--cert"))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .map_err(e("--key"))?;
        b.check_private_key().map_err(e("--key"))?;
    }
    if let (Some(id), Some(hex)) = (&t.psk_identity, &t.psk_hex) {
        let key = decode_hex(hex).ok_or("--psk-hex: not an even number of hex digits")?;
        let id = id.clone().into_bytes();
        b.set_psk_client_callback(move |_ssl, _hint, identity, psk| {
            if id.len() >= identity.len() || key.len() > psk.len() {
                return Ok(0);
            }
            identity[..id.len()].copy_from_slice(&id);
            identity[id.len()] = 0;
            psk[..key.len()].copy_from_slice(&key);
            Ok(key.len())
        });
    }
    Ok(b.build())
}

/// Bytes of an even number of hex digits.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A fresh TCP connection and a full client handshake on it.
pub async fn tls_connect(
    ctx: &SslContext,
    t: &TlsArgs,
    addr: SocketAddr,
) -> Result<SslStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut ssl = Ssl::new(ctx).map_err(|e| format!("ssl: {e}"))?;
    if let Some(name) = &t.server_name {
        ssl.set_hostname(name).map_err(|e| format!("sni: {e}"))?;
    }
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| format!("ssl: {e}"))?;
    Pin::new(&mut stream).connect().await.map_err(|e| {
        match e.ssl_error().and_then(|s| s.errors().first()) {
            Some(first) => format!("handshake: {}", first.reason().unwrap_or("?")),
            None => format!("handshake: {e}"),
        }
    })?;
    Ok(stream)
}

/// Notes the first negotiated version and suite for the `BENCH` line.
pub fn record_negotiated(stats: &Stats, s: &SslStream<TcpStream>) {
    let mut n = stats.negotiated.lock().expect("lock");
    if n.is_none() {
        let cipher = s.ssl().current_cipher().map_or("?", |c| c.name());
        *n = Some(format!("{}/{}", s.ssl().version_str(), cipher));
    }
}

/// Runs `task` on `n` tasks for warm-up + counted seconds and prints the BENCH line.
pub async fn drive<F, Fut>(kind: &str, n: usize, load: &LoadArgs, stats: Arc<Stats>, task: F)
where
    F: Fn(usize, Arc<Stats>, Instant) -> Fut,
    Fut: std::future::Future<Output = Vec<u32>> + Send + 'static,
{
    let start = Instant::now();
    let count_from = start + Duration::from_secs_f64(load.warmup);
    let end = count_from + Duration::from_secs_f64(load.seconds);
    let handles: Vec<_> = (0..n)
        .map(|i| tokio::spawn(task(i, stats.clone(), end)))
        .collect();
    tokio::time::sleep_until(count_from.into()).await;
    let ok_before = stats.ok.load(Ordering::Relaxed);
    let ticks_before = own_cpu_ticks();
    stats.counting.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    stats.counting.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let client_ticks = own_cpu_ticks().saturating_sub(ticks_before);
    let ok = stats.ok.load(Ordering::Relaxed) - ok_before;
    for h in handles {
        if let Ok(lat) = h.await {
            stats.latencies_us.lock().expect("lock").extend(lat);
        }
    }
    let mut lat = std::mem::take(&mut *stats.latencies_us.lock().expect("lock"));
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let negotiated = stats.negotiated.lock().expect("lock").clone();
    let first_error = stats.first_error.lock().expect("lock").clone();
    println!(
        "BENCH kind={kind} ok={ok} errors={} seconds={elapsed:.3} rate={:.1} p50_us={} p99_us={} client_ticks={client_ticks} negotiated={} first_error={}",
        stats.errors.load(Ordering::Relaxed),
        ok as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        negotiated.as_deref().unwrap_or("-"),
        first_error.as_deref().unwrap_or("-"),
    );
}

/// User + system CPU time of this process so far, in clock ticks (/proc/self/stat), to
/// tell whether the client itself was the bottleneck.
pub fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// One full handshake on a fresh connection, then `close_notify` and a wait until the
/// server closes, so that the server's share of the work is done before the caller goes
/// on. The handshake's latency, or why it failed (counted in `stats`).
pub async fn handshake_once(
    ctx: &SslContext,
    tls: &TlsArgs,
    addr: SocketAddr,
    stats: &Stats,
) -> Option<Duration> {
    let t = Instant::now();
    let attempt = tokio::time::timeout(IO_TIMEOUT, tls_connect(ctx, tls, addr));
    let mut stream = match attempt.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.error(e);
            return None;
        }
        Err(_) => {
            stats.error("handshake timed out".into());
            return None;
        }
    };
    let took = t.elapsed();
    record_negotiated(stats, &stream);
    let closed = tokio::time::timeout(IO_TIMEOUT, async {
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 512];
        while let Ok(n) = stream.get_mut().read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    if closed.await.is_err() {
        stats.error("server did not close the connection".into());
        return None;
    }
    Some(took)
}

/// Reads one HTTP/1.1 response (Content-Length bodies only) from `s`, keeping any bytes
/// past its end in `buf`. Returns the status, the X-M2M-RSC header and whether the server
/// announced `Connection: close`.
pub async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(u16, Option<String>, bool), String> {
    read_response_with(s, buf, |_| {}).await
}

/// [`read_response`], showing the body to `body` before it is dropped from `buf`.
pub async fn read_response_with<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    body: impl FnOnce(&[u8]),
) -> Result<(u16, Option<String>, bool), String> {
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        fill(s, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "non-UTF-8 head")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("bad status line")?;
    let (mut length, mut rsc, mut close) = (None, None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case(header::RSC) {
            rsc = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked responses are not supported".into());
        }
    }
    let total = head_end + length.ok_or("response without Content-Length")?;
    while buf.len() < total {
        fill(s, buf).await?;
    }
    body(&buf[head_end..total]);
    buf.drain(..total);
    Ok((status, rsc, close))
}

/// Reads what `s` has into `buf`; an end of stream is an error.
pub async fn fill<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed by the server".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// A TLS server with the PSK framework whose credential store (in a temporary directory,
/// returned for removal) holds `identity` with `key`, bound to AE-ID `originator`: the
/// bench servers' DTLS associations are judged exactly as `bastion serve` judges them.
pub fn psk_tls_server(
    name: &str,
    identity: &str,
    key: bastion_tls::PskKey,
    originator: &str,
) -> Result<(Arc<bastion_tls::TlsServer>, std::path::PathBuf), String> {
    use bastion_tls::{Binding, CredentialRegistry, ServerSettings, StoreKey, TlsServer};
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let store = StoreKey::generate().map_err(|e| e.to_string())?;
    let registry =
        CredentialRegistry::open(dir.join("credentials.bin"), store).map_err(|e| e.to_string())?;
    let binding = Binding::ae(originator).map_err(|e| e.to_string())?;
    registry
        .add_psk(identity, key, Some(binding))
        .map_err(|e| e.to_string())?;
    let settings = ServerSettings {
        psk: true,
        ..ServerSettings::default()
    };
    let tls = TlsServer::new(&settings, registry).map_err(|e| e.to_string())?;
    Ok((Arc::new(tls), dir))
}
