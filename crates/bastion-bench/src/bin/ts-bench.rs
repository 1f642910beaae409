//! `ts-bench`: the load generator of the timeSeries benchmark (`bench/time-series.sh`,
//! issue 17): a `<timeSeries>` with missing-data detection receiving data points at a
//! fixed rate over HTTP, on the wall clock, as a device would send them.
//!
//! Point `k` is due at `start + k * pei` (wall clock, `pei` = 1000 / `--rate` ms) and
//! carries that time as its `dgt`, to the millisecond. Every `--skip-every`-th point is
//! deliberately not sent (none in the last second, so each gap's wait ends while the
//! run still polls). `--connections` keep-alive connections share the points round-robin,
//! one request in flight each; a connection that falls behind sends at once, and a
//! point's latency is measured from when it was due, not from when it was sent, so a
//! server that cannot keep the rate shows it in the latencies instead of hiding it.
//!
//! While the run lasts, and once after it, the timeSeries is read every 500 ms and the
//! union of its `mdlt` entries kept: `mdlt` holds only the newest `mdn` entries, and the
//! times after the last point become missing as soon as the run ends. Entries between
//! the first and the last point sent are compared with the points skipped.
//!
//! Output: one line
//! `BENCH kind=tsi target_rate=N ok=N errors=N seconds=F rate=F p50_us=N p99_us=N
//!  skipped=N detected=N undetected=N false_missing=N first_error=S`,
//! where `rate` is the 2001 answers to the counted points (those after `--warmup`) over
//! the time from when the first of them was due until the last answer.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bastion_bench::{read_response_with, LoadArgs, Stats, IO_TIMEOUT};
use bastion_proto::time::{format_millis, parse_millis};
use clap::Parser;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "Data points at a fixed rate into a timeSeries with missing-data detection")]
struct Cli {
    /// The CSE's HTTP listener.
    #[arg(long)]
    connect: SocketAddr,
    /// The timeSeries, e.g. /cse-in/Cbench/ts.
    #[arg(long)]
    path: String,
    /// X-M2M-Origin of every request.
    #[arg(long, default_value = "CAdmin")]
    origin: String,
    /// Data points per second; 1000 must be a multiple of it (the period is whole ms).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Keep-alive connections sharing the points.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Every this many points one is not sent (0: none).
    #[arg(long, default_value_t = 100)]
    skip_every: u64,
    #[command(flatten)]
    load: LoadArgs,
}

/// The schedule of one run.
struct Plan {
    cli: Cli,
    /// Wall-clock ms of point 0.
    start_ms: i64,
    /// The monotonic instant of point 0.
    start: Instant,
    pei_ms: i64,
    points: u64,
    /// Points before this one are warm-up.
    counted_from: u64,
}

impl Plan {
    fn new(cli: Cli) -> Result<Plan, String> {
        if cli.rate == 0 || 1000 % cli.rate != 0 {
            return Err("--rate must divide 1000".into());
        }
        let pei_ms = i64::from(1000 / cli.rate);
        let now_ms = wall_ms();
        // Start on the second after next, so that set-up never eats into the schedule.
        let start_ms = (now_ms / 1000 + 2) * 1000;
        let start = Instant::now() + Duration::from_millis((start_ms - now_ms) as u64);
        let rate = f64::from(cli.rate);
        let counted_from = (cli.load.warmup * rate) as u64;
        let points = counted_from + (cli.load.seconds * rate) as u64;
        Ok(Plan {
            cli,
            start_ms,
            start,
            pei_ms,
            points,
            counted_from,
        })
    }

    fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_millis(k * self.pei_ms as u64)
    }

    fn dgt_ms(&self, k: u64) -> i64 {
        self.start_ms + k as i64 * self.pei_ms
    }

    /// Whether point `k` is deliberately not sent.
    fn skipped(&self, k: u64) -> bool {
        let last_second = self.points.saturating_sub(u64::from(self.cli.rate));
        self.cli.skip_every > 0
            && k % self.cli.skip_every == self.cli.skip_every - 1
            && k < last_second
    }
}

fn wall_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

fn main() {
    bastion_bench::main_with("ts-bench", run(Cli::parse()));
}

async fn run(cli: Cli) -> Result<(), String> {
    let plan = Arc::new(Plan::new(cli)?);
    let stats = Arc::new(Stats::default());
    let missing = Arc::new(Mutex::new(BTreeSet::new()));
    let poller = tokio::spawn(poll_missing(plan.clone(), missing.clone()));
    let senders: Vec<_> = (0..plan.cli.connections.max(1))
        .map(|i| tokio::spawn(send_points(plan.clone(), stats.clone(), i)))
        .collect();
    let mut latencies = Vec::new();
    for s in senders {
        latencies.extend(s.await.map_err(|e| e.to_string())?);
    }
    // From when the first counted point was due until the last answer: a server that
    // lags stretches it, and the rate shows that.
    let counted_secs = plan.due(plan.counted_from).elapsed().as_secs_f64();
    poller.await.map_err(|e| e.to_string())?;
    report(
        &plan,
        &stats,
        &mut latencies,
        counted_secs,
        &missing.lock().expect("lock"),
    );
    Ok(())
}

/// Sends the points `k ≡ lane (mod connections)` on one keep-alive connection; returns
/// the latencies (µs, from when each was due) of the counted ones.
async fn send_points(plan: Arc<Plan>, stats: Arc<Stats>, lane: usize) -> Vec<u32> {
    let mut latencies = Vec::new();
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    let step = plan.cli.connections.max(1) as u64;
    for k in (lane as u64..plan.points).step_by(step as usize) {
        if plan.skipped(k) {
            continue;
        }
        let due = plan.due(k);
        tokio::time::sleep_until(due.into()).await;
        let counted = k >= plan.counted_from;
        let request = point_request(&plan, k);
        match tokio::time::timeout(
            IO_TIMEOUT,
            exchange(&mut conn, &plan, &request, &mut buf, |_| {}),
        )
        .await
        {
            Ok(Ok((201, Some(rsc)))) if rsc == "2001" => {
                if counted {
                    stats.ok.fetch_add(1, Ordering::Relaxed);
                    let us = due.elapsed().as_micros();
                    latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
            Ok(Ok((status, rsc))) => count_error(&stats, counted, format!("{status} rsc={rsc:?}")),
            Ok(Err(e)) => {
                conn = None;
                count_error(&stats, counted, e);
            }
            Err(_) => {
                conn = None;
                count_error(&stats, counted, "timed out".into());
            }
        }
    }
    latencies
}

fn count_error(stats: &Stats, counted: bool, what: String) {
    if counted {
        stats.errors.fetch_add(1, Ordering::Relaxed);
    }
    let mut first = stats.first_error.lock().expect("lock");
    if first.is_none() {
        *first = Some(what);
    }
}

fn point_request(plan: &Plan, k: u64) -> Vec<u8> {
    let body = format!(
        "{{\"m2m:tsi\":{{\"dgt\":\"{}\",\"con\":\"21.5\"}}}}",
        format_millis(plan.dgt_ms(k))
    );
    format!(
        "POST {} HTTP/1.1\r\nHost: bench\r\nX-M2M-Origin: {}\r\nX-M2M-RI: p{k}\r\nX-M2M-RVI: 3\r\n\
         Accept: application/json\r\nContent-Type: application/json;ty=30\r\n\
         Content-Length: {}\r\n\r\n{body}",
        plan.cli.path,
        plan.cli.origin,
        body.len()
    )
    .into_bytes()
}

/// One request on the kept connection (opened when there is none): status and RSC;
/// `body` sees the answer's body.
async fn exchange(
    conn: &mut Option<TcpStream>,
    plan: &Plan,
    request: &[u8],
    buf: &mut Vec<u8>,
    body: impl FnOnce(&[u8]),
) -> Result<(u16, Option<String>), String> {
    if conn.is_none() {
        let s = TcpStream::connect(plan.cli.connect)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        buf.clear();
        *conn = Some(s);
    }
    let s = conn.as_mut().ok_or("no connection")?;
    s.write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let (status, rsc, close) = read_response_with(s, buf, body).await?;
    if close {
        *conn = None;
    }
    Ok((status, rsc))
}

/// Reads the timeSeries every 500 ms until 2.5 s after the last point was due, keeping
/// every `mdlt` entry seen (as ms).
async fn poll_missing(plan: Arc<Plan>, missing: Arc<Mutex<BTreeSet<i64>>>) {
    let end = plan.due(plan.points) + Duration::from_millis(2500);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: bench\r\nX-M2M-Origin: {}\r\nX-M2M-RI: poll\r\nX-M2M-RVI: 3\r\n\
         Accept: application/json\r\n\r\n",
        plan.cli.path, plan.cli.origin
    );
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(entries) = read_mdlt(&mut conn, &plan, request.as_bytes(), &mut buf).await {
            missing.lock().expect("lock").extend(entries);
        } else {
            conn = None;
        }
        if Instant::now() >= end {
            break;
        }
    }
}

/// The `mdlt` entries of one read of the timeSeries, as ms.
async fn read_mdlt(
    conn: &mut Option<TcpStream>,
    plan: &Plan,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<Vec<i64>, String> {
    let mut entries = Vec::new();
    exchange(conn, plan, request, buf, |body| {
        let v: Value = serde_json::from_slice(body).unwrap_or_default();
        let list = v["m2m:ts"]["mdlt"].as_array().cloned().unwrap_or_default();
        entries = list
            .iter()
            .filter_map(|e| e.as_str().and_then(parse_millis))
            .collect();
    })
    .await?;
    Ok(entries)
}

fn report(plan: &Plan, stats: &Stats, latencies: &mut [u32], secs: f64, missing: &BTreeSet<i64>) {
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or(0)
    };
    let skipped: BTreeSet<i64> = (0..plan.points)
        .filter(|k| plan.skipped(*k))
        .map(|k| plan.dgt_ms(k))
        .collect();
    let last_sent = (0..plan.points)
        .rev()
        .find(|k| !plan.skipped(*k))
        .map_or(0, |k| plan.dgt_ms(k));
    let within: BTreeSet<i64> = missing.range(plan.start_ms..=last_sent).copied().collect();
    let detected = skipped.intersection(&within).count();
    let ok = stats.ok.load(Ordering::Relaxed);
    println!(
        "BENCH kind=tsi target_rate={} ok={ok} errors={} seconds={secs:.3} rate={:.1} p50_us={} p99_us={} \
         skipped={} detected={detected} undetected={} false_missing={} first_error={}",
        plan.cli.rate,
        stats.errors.load(Ordering::Relaxed),
        ok as f64 / secs,
        pct(0.50),
        pct(0.99),
        skipped.len(),
        skipped.len() - detected,
        within.difference(&skipped).count(),
        stats.first_error.lock().expect("lock").as_deref().unwrap_or("-"),
    );
}
