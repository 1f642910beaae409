//! `tls-bench`: the load generator of the TLS benchmark (`bench/tls.sh`, issue 4).
//!
//! It measures two things against any TLS server, with the same client code whatever
//! the server (Bastion's TLS listener or `openssl s_server`), so that the figures compare
//! the servers and not the clients:
//!
//! * `handshake`: full TLS handshakes per second. Every attempt opens a fresh TCP
//!   connection, runs a full handshake (no session is ever offered, so nothing is
//!   resumed), sends `close_notify`, then waits until the server closes the connection,
//!   so that the server's share of the work is finished before the next attempt counts.
//!   PSK (`--psk-identity`/`--psk-hex`) or certificates (`--ca`, and `--cert`/`--key`
//!   for client authentication), TLS 1.2 (`--tls12`, with `--cipher`) or 1.3 (`--tls13`,
//!   with `--ciphersuites`), key-exchange groups fixed by `--groups` (default P-256).
//! * `requests`: oneM2M RETRIEVE throughput over kept-alive HTTP/1.1 connections, plain
//!   (`http://`) or TLS (`https://`, same TLS options). Each connection sends one request
//!   at a time with `X-M2M-Origin`, a unique `X-M2M-RI`, `X-M2M-RVI: 3` and
//!   `Accept: application/json` (as `bench/onem2m.lua` does for wrk); a response counts
//!   as an error unless its status is 200 and its `X-M2M-RSC`, if any, starts with 2.
//!
//! The client is one tokio current-thread runtime (one core, like wrk -t1) driving
//! `--concurrency` / `--connections` tasks. After `--warmup` seconds (not counted) it
//! counts for `--seconds` and prints one line for scripts:
//!
//! ```text
//! BENCH kind=handshake ok=N errors=N seconds=F rate=F p50_us=N p99_us=N client_ticks=N negotiated=V/C first_error=S
//! ```
//!
//! `rate` is successes per second; `p50_us` / `p99_us` are the latencies of one handshake
//! (connect to established) or one request (write to full response); `client_ticks` is
//! this process's CPU time over the counted seconds, in clock ticks (a client near one
//! core's worth is the bottleneck, not the server).
//!
//! ```text
//! tls-bench handshake --connect 127.0.0.1:8443 --psk-identity bench@bastion.example \
//!     --psk-hex 00112233445566778899aabbccddeeff --tls12 --cipher PSK-AES128-CBC-SHA256
//! tls-bench requests --url https://127.0.0.1:8443/~/id-in/cse-in --origin Cbench \
//!     --psk-identity bench@bastion.example --psk-hex 0011… --tls12
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bastion_proto::wire::http::header;
use clap::{Args, Parser, Subcommand};
use openssl::ssl::{Ssl, SslContext, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// How long one connect, handshake, request or close may take before it counts as an error.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(about = "TLS handshake and kept-alive request load generator (bench/tls.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Full handshakes per second, each on a fresh TCP connection, then close.
    Handshake(HandshakeArgs),
    /// Sequential HTTP/1.1 RETRIEVEs per second over kept-alive connections.
    Requests(RequestArgs),
}

#[derive(Args, Debug, Clone)]
struct TlsArgs {
    /// PSK identity (KpsaID); sent NUL-terminated, as Bastion's client does.
    #[arg(long, requires = "psk_hex")]
    psk_identity: Option<String>,
    /// PSK in hex.
    #[arg(long, requires = "psk_identity")]
    psk_hex: Option<String>,
    /// Trust anchor (PEM) to verify the server certificate with; without it the server
    /// certificate is not verified (PSK suites send none).
    #[arg(long)]
    ca: Option<String>,
    /// Client certificate (PEM), for client authentication.
    #[arg(long, requires = "key")]
    cert: Option<String>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<String>,
    /// TLS 1.2 only.
    #[arg(long, conflicts_with = "tls13")]
    tls12: bool,
    /// TLS 1.3 only.
    #[arg(long)]
    tls13: bool,
    /// TLS 1.2 cipher list (OpenSSL names).
    #[arg(long)]
    cipher: Option<String>,
    /// TLS 1.3 suites (OpenSSL names).
    #[arg(long)]
    ciphersuites: Option<String>,
    /// Key-exchange groups offered (ECDHE in TLS 1.2, key shares in TLS 1.3).
    #[arg(long, default_value = "P-256")]
    groups: String,
    /// SNI host name to send (none by default).
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Seconds counted.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds run before counting starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

#[derive(Args, Debug)]
struct HandshakeArgs {
    /// Server address.
    #[arg(long)]
    connect: SocketAddr,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args, Debug)]
struct RequestArgs {
    /// http://HOST:PORT/PATH or https://HOST:PORT/PATH (HOST an IP address).
    #[arg(long)]
    url: String,
    /// Kept-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// X-M2M-Origin of every request.
    #[arg(long, default_value = "CAdmin")]
    origin: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    load: LoadArgs,
}

/// Counters shared by the tasks of one run.
#[derive(Default)]
struct Stats {
    counting: AtomicBool,
    ok: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    negotiated: Mutex<Option<String>>,
    latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    fn error(&self, what: String) {
        if self.counting.load(Ordering::Relaxed) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut first = self.first_error.lock().expect("lock");
        if first.is_none() {
            *first = Some(what);
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Handshake(args) => handshake(args).await,
            Command::Requests(args) => requests(args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("tls-bench: {e}");
        std::process::exit(2);
    }
}

fn tls_context(t: &TlsArgs) -> Result<SslContext, String> {
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

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A fresh TCP connection and a full client handshake on it.
async fn tls_connect(
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

fn record_negotiated(stats: &Stats, s: &SslStream<TcpStream>) {
    let mut n = stats.negotiated.lock().expect("lock");
    if n.is_none() {
        let cipher = s.ssl().current_cipher().map_or("?", |c| c.name());
        *n = Some(format!("{}/{}", s.ssl().version_str(), cipher));
    }
}

/// Runs `task` on `n` tasks for warm-up + counted seconds and prints the BENCH line.
async fn drive<F, Fut>(kind: &str, n: usize, load: &LoadArgs, stats: Arc<Stats>, task: F)
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
fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

async fn handshake(args: HandshakeArgs) -> Result<(), String> {
    let ctx = tls_context(&args.tls)?;
    let tls = Arc::new(args.tls.clone());
    let addr = args.connect;
    let stats = Arc::new(Stats::default());
    drive(
        "handshake",
        args.concurrency,
        &args.load,
        stats,
        |_, stats, end| {
            let ctx = ctx.clone();
            let tls = tls.clone();
            async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    let attempt = tokio::time::timeout(IO_TIMEOUT, tls_connect(&ctx, &tls, addr));
                    let mut stream = match attempt.await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            stats.error(e);
                            continue;
                        }
                        Err(_) => {
                            stats.error("handshake timed out".into());
                            continue;
                        }
                    };
                    let took = t.elapsed();
                    record_negotiated(&stats, &stream);
                    // close_notify, then wait for the server to close: its share of the
                    // handshake is done before this task starts the next one.
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
                        continue;
                    }
                    if stats.counting.load(Ordering::Relaxed) {
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        lat.push(took.as_micros().min(u32::MAX as u128) as u32);
                    }
                }
                lat
            }
        },
    )
    .await;
    Ok(())
}

/// The parts of a URL this benchmark needs.
struct Target {
    tls: bool,
    addr: SocketAddr,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("{url}: want http:// or https://"));
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = host
        .parse()
        .map_err(|_| format!("{url}: the host must be IP:PORT"))?;
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target {
        tls,
        addr,
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

async fn requests(args: RequestArgs) -> Result<(), String> {
    let target = Arc::new(parse_url(&args.url)?);
    let ctx = if target.tls {
        Some(tls_context(&args.tls)?)
    } else {
        None
    };
    let tls = Arc::new(args.tls.clone());
    let origin = Arc::new(args.origin.clone());
    let stats = Arc::new(Stats::default());
    drive(
        "requests",
        args.connections,
        &args.load,
        stats,
        |i, stats, end| {
            let ctx = ctx.clone();
            let tls = tls.clone();
            let target = target.clone();
            let origin = origin.clone();
            async move {
                let mut lat = Vec::new();
                let mut n = 0u64;
                // Reconnect after a failure, until the end of the run.
                while Instant::now() < end {
                    let result = match &ctx {
                        Some(ctx) => match tls_connect(ctx, &tls, target.addr).await {
                            Ok(s) => {
                                record_negotiated(&stats, &s);
                                connection(s, i, &mut n, &target, &origin, &stats, end, &mut lat)
                                    .await
                            }
                            Err(e) => Err(e),
                        },
                        None => match TcpStream::connect(target.addr).await {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                connection(s, i, &mut n, &target, &origin, &stats, end, &mut lat)
                                    .await
                            }
                            Err(e) => Err(format!("connect: {e}")),
                        },
                    };
                    if let Err(e) = result {
                        stats.error(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                lat
            }
        },
    )
    .await;
    Ok(())
}

/// Sequential requests on one kept-alive connection until `end`.
#[allow(clippy::too_many_arguments)]
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    task: usize,
    n: &mut u64,
    target: &Target,
    origin: &str,
    stats: &Stats,
    end: Instant,
    lat: &mut Vec<u32>,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut req = String::with_capacity(256);
    while Instant::now() < end {
        *n += 1;
        req.clear();
        req.push_str("GET ");
        req.push_str(&target.path);
        req.push_str(" HTTP/1.1\r\nHost: ");
        req.push_str(&target.host);
        let _ = write!(
            req,
            "\r\n{}: {origin}\r\n{}: b{task}-{n}\r\n{}: 3\r\n{}: application/json\r\n\r\n",
            header::ORIGIN,
            header::RI,
            header::RVI,
            header::ACCEPT
        );
        let t = Instant::now();
        let answer = tokio::time::timeout(IO_TIMEOUT, async {
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            read_response(&mut s, &mut buf).await
        });
        let (status, rsc, close) = answer.await.map_err(|_| "request timed out".to_owned())??;
        let good = status == 200 && rsc.as_deref().is_none_or(|r| r.starts_with('2'));
        if !good {
            stats.error(format!(
                "status {status} rsc {}",
                rsc.as_deref().unwrap_or("-")
            ));
        } else if stats.counting.load(Ordering::Relaxed) {
            stats.ok.fetch_add(1, Ordering::Relaxed);
            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        if close {
            return Err("server closed the kept-alive connection".into());
        }
    }
    Ok(())
}

/// Reads one HTTP/1.1 response (Content-Length bodies only) from `s`, keeping any bytes
/// past its end in `buf`. Returns the status, the X-M2M-RSC header and whether the server
/// announced `Connection: close`.
async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
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
    buf.drain(..total);
    Ok((status, rsc, close))
}

async fn fill<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 8192];
    let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed by the server".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}
