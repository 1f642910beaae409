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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion_bench::{
    drive, handshake_once, read_response, record_negotiated, tls_connect, tls_context, LoadArgs,
    Stats, TlsArgs, IO_TIMEOUT,
};
use bastion_proto::wire::http::header;
use clap::{Args, Parser, Subcommand};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

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

fn main() {
    let cli = Cli::parse();
    bastion_bench::main_with("tls-bench", async {
        match cli.command {
            Command::Handshake(args) => handshake(args).await,
            Command::Requests(args) => requests(args).await,
        }
    });
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
                    let Some(took) = handshake_once(&ctx, &tls, addr, &stats).await else {
                        continue;
                    };
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
