//! `enrol-bench`: the load generator of the enrolment benchmark (`bench/enrol.sh`, issue
//! 15): enrolments per second against a running `bastion mef`, and, as their ceiling,
//! bare TLS-PSK handshakes per second against the same listener with the same keys.
//!
//! `--enrolees FILE` lists one enrolee a line, `KPMID KPM-HEX`; one task runs per enrolee,
//! so the file's length is the concurrency. Each task loops until the end of the run:
//!
//! * `--mode enrol`: the whole enrolment of `bastion enrol --enrol-only` minus the files:
//!   a fresh TCP connection, a full TLS-PSK handshake with its KpmID/Kpm, Ke/RelativeKeID
//!   exported (`EXPORTER-oneM2M-Bootstrap`), `POST /enrolment` with the indications
//!   (2000), `POST /enrolment` with the final message (2001, the MEF's KeID checked equal
//!   to ours: the MEF answers only once the record is durable), then close.
//! * `--mode handshake`: the handshake alone, then close (the shared `handshake_once` of
//!   `tls-bench handshake`).
//!
//! Output: the `BENCH` line of `tls-bench` (`kind=enrol` or `kind=handshake`; `p50_us`,
//! `p99_us` are whole enrolments or handshakes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion_bench::{
    drive, handshake_once, read_response_with, record_negotiated, tls_connect, tls_context,
    LoadArgs, Stats, TlsArgs, IO_TIMEOUT,
};
use bastion_proto::wire::http::header;
use clap::{Parser, ValueEnum};
use openssl::ssl::SslContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
#[command(about = "Enrolments per second against a bastion mef, and its TLS-PSK handshake ceiling")]
struct Cli {
    /// The MEF's TLS listener.
    #[arg(long)]
    connect: std::net::SocketAddr,
    /// Enrolees, one a line: KPMID KPM-HEX (one concurrent task each).
    #[arg(long)]
    enrolees: std::path::PathBuf,
    /// The FQDN of the MEF's KeIDs.
    #[arg(long, default_value = "mef.example.com")]
    fqdn: String,
    /// What each task repeats.
    #[arg(long, value_enum, default_value = "enrol")]
    mode: Mode,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Handshake, Ke export, indications, final.
    Enrol,
    /// Handshake and close.
    Handshake,
}

/// One enrolee: its TLS context (its PSK) and options.
struct Enrolee {
    kpm_id: String,
    ctx: SslContext,
    tls: TlsArgs,
}

fn main() {
    bastion_bench::main_with("enrol-bench", run(Cli::parse()));
}

fn enrolees(cli: &Cli) -> Result<Vec<Arc<Enrolee>>, String> {
    let text = std::fs::read_to_string(&cli.enrolees)
        .map_err(|e| format!("{}: {e}", cli.enrolees.display()))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (kpm_id, hex) = line
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("{line:?}: expected KPMID KPM-HEX"))?;
        let tls = TlsArgs {
            psk_identity: Some(kpm_id.to_owned()),
            psk_hex: Some(hex.trim().to_owned()),
            ..cli.tls.clone()
        };
        out.push(Arc::new(Enrolee {
            kpm_id: kpm_id.to_owned(),
            ctx: tls_context(&tls)?,
            tls,
        }));
    }
    match out.is_empty() {
        true => Err("no enrolees".into()),
        false => Ok(out),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let enrolees = enrolees(&cli)?;
    let stats = Arc::new(Stats::default());
    let (addr, fqdn, mode) = (cli.connect, Arc::new(cli.fqdn.clone()), cli.mode);
    let kind = match mode {
        Mode::Enrol => "enrol",
        Mode::Handshake => "handshake",
    };
    drive(kind, enrolees.len(), &cli.load, stats, |i, stats, end| {
        let enrolee = enrolees[i].clone();
        let fqdn = fqdn.clone();
        async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let took = match mode {
                    Mode::Handshake => {
                        handshake_once(&enrolee.ctx, &enrolee.tls, addr, &stats).await
                    }
                    Mode::Enrol => {
                        let t = Instant::now();
                        let once = enrol_once(&enrolee, addr, &fqdn, i, n, &stats);
                        match tokio::time::timeout(IO_TIMEOUT, once).await {
                            Ok(Ok(())) => Some(t.elapsed()),
                            Ok(Err(e)) => {
                                stats.error(e);
                                None
                            }
                            Err(_) => {
                                stats.error("enrolment timed out".into());
                                None
                            }
                        }
                    }
                };
                match took {
                    Some(took) if stats.counting.load(Ordering::Relaxed) => {
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        lat.push(took.as_micros().min(u32::MAX as u128) as u32);
                    }
                    Some(_) => {}
                    // A refused enrolment (e.g. a full store) must not spin.
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            lat
        }
    })
    .await;
    Ok(())
}

/// One enrolment on a fresh association.
async fn enrol_once(
    enrolee: &Enrolee,
    addr: std::net::SocketAddr,
    fqdn: &str,
    task: usize,
    n: u64,
    stats: &Stats,
) -> Result<(), String> {
    let mut stream = tls_connect(&enrolee.ctx, &enrolee.tls, addr).await?;
    record_negotiated(stats, &stream);
    let ke = bastion_tls::exporter::export_bootstrap_key(stream.ssl())
        .map_err(|e| format!("Ke export: {e}"))?;
    let ke_id = ke
        .key_identifier(fqdn)
        .map_err(|e| format!("KeID: {e}"))?
        .to_string();
    let origin = format!("12-{}", enrolee.kpm_id);
    let mut buf = Vec::with_capacity(4096);
    let steps: [(&str, &str, u16, &str); 2] = [
        ("1", r#"{"sec:enrInd":{}}"#, 200, "2000"),
        ("2", r#"{"sec:enrFin":{"res":[]}}"#, 201, "2001"),
    ];
    for (step, body, want_status, want_rsc) in steps {
        let request = format!(
            "POST /enrolment HTTP/1.1\r\nHost: mef\r\n{}: {origin}\r\n{}: e{task}-{n}-{step}\r\n\
             {}: 3\r\nContent-Type: application/json\r\n{}: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            header::ORIGIN,
            header::RI,
            header::RVI,
            header::ACCEPT,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut keid = None;
        let (status, rsc, _close) = read_response_with(&mut stream, &mut buf, |b| {
            keid = serde_json::from_slice::<serde_json::Value>(b)
                .ok()
                .and_then(|v| v["sec:enr"]["keid"].as_str().map(str::to_owned));
        })
        .await?;
        if status != want_status || rsc.as_deref() != Some(want_rsc) {
            return Err(format!(
                "step {step}: status {status} rsc {}",
                rsc.as_deref().unwrap_or("-")
            ));
        }
        if step == "2" && keid.as_deref() != Some(ke_id.as_str()) {
            return Err(format!("the MEF's KeID {keid:?} is not ours"));
        }
    }
    // The MEF closes after the final answer; wait for it, as a handshake run does.
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 512];
    while let Ok(n) = stream.get_mut().read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    Ok(())
}
