//! `dtls-bench`: the DTLS benchmark (`bench/dtls.sh`, issue 16): full DTLS 1.2 PSK
//! handshakes per second, with the same client code against Bastion's DTLS server and
//! against `openssl s_server -dtls1_2` (the ceiling).
//!
//! * `serve`: Bastion's `DtlsServer` (crates/bastion-tls `dtls`) on `--listen`, judged by
//!   a `TlsServer` with the PSK framework and a credential store (in a temporary
//!   directory) holding `--psk-identity` / `--psk-hex` bound to AE-ID `Cbench`; every
//!   session echoes what it receives. Runs until killed. (The CoAP binding that will put
//!   the CSE behind this server is not wired yet, so `bastion serve` cannot be measured.)
//! * `handshake`: `--concurrency` tasks, each looping: a fresh UDP socket (new source
//!   port), a full handshake including the cookie exchange (`DtlsClient`, no session ever
//!   offered), `close_notify`. Prints the `BENCH` line of `tls-bench`.
//!
//! ```text
//! dtls-bench serve --listen 127.0.0.1:18194 --psk-identity bench@bastion.example --psk-hex 0011…
//! dtls-bench handshake --connect 127.0.0.1:18194 --psk-identity bench@bastion.example \
//!     --psk-hex 0011… --cipher PSK-AES128-CCM8 --concurrency 1
//! ```

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bastion_bench::{drive, LoadArgs, Stats, IO_TIMEOUT};
use bastion_tls::dtls::{DtlsClient, DtlsLimits, DtlsServer, DtlsSession};
use bastion_tls::{ClientOptions, PskKey};
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "DTLS-PSK handshakes per second (bench/dtls.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Bastion's DTLS server with an echo application.
    Serve(ServeArgs),
    /// Full handshakes per second, each from a fresh source port, then close_notify.
    Handshake(HandshakeArgs),
}

#[derive(Args, Debug)]
struct Psk {
    /// PSK identity (KpsaID).
    #[arg(long)]
    psk_identity: String,
    /// PSK in hex.
    #[arg(long)]
    psk_hex: String,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to bind.
    #[arg(long)]
    listen: SocketAddr,
    /// Pending-handshake bound of the server.
    #[arg(long, default_value_t = 256)]
    max_pending: usize,
    #[command(flatten)]
    psk: Psk,
}

#[derive(Args, Debug)]
struct HandshakeArgs {
    /// Server address.
    #[arg(long)]
    connect: SocketAddr,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// DTLS 1.2 cipher list (OpenSSL names).
    #[arg(long, default_value = "PSK-AES128-CCM8")]
    cipher: String,
    #[command(flatten)]
    psk: Psk,
    #[command(flatten)]
    load: LoadArgs,
}

fn main() {
    let cli = Cli::parse();
    bastion_bench::main_with("dtls-bench", async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Handshake(args) => handshake(args).await,
        }
    });
}

fn psk_key(psk: &Psk) -> Result<PskKey, String> {
    PskKey::from_hex(&psk.psk_hex).map_err(|e| format!("--psk-hex: {e}"))
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let (tls, dir) = bastion_bench::psk_tls_server(
        "dtls-bench",
        &args.psk.psk_identity,
        psk_key(&args.psk)?,
        "Cbench",
    )?;
    let limits = DtlsLimits {
        max_pending_handshakes: args.max_pending,
        ..DtlsLimits::default()
    };
    let mut server = DtlsServer::bind(args.listen, tls, limits)
        .await
        .map_err(|e| e.to_string())?;
    println!("listening on {}", server.local_addr());
    while let Some(session) = server.accept().await {
        tokio::spawn(echo(session));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn echo(mut session: DtlsSession) {
    while let Some(datagram) = session.recv().await {
        if session.send(&datagram).await.is_err() {
            break;
        }
    }
}

async fn handshake(args: HandshakeArgs) -> Result<(), String> {
    let options = ClientOptions {
        tls12_ciphers: Some(args.cipher.clone()),
        ..ClientOptions::default()
    };
    let mut client = DtlsClient::psk(&args.psk.psk_identity, psk_key(&args.psk)?, &options)
        .map_err(|e| e.to_string())?;
    client.handshake_timeout = IO_TIMEOUT;
    let client = Arc::new(client);
    let addr = args.connect;
    let stats = Arc::new(Stats::default());
    drive(
        "dtls-handshake",
        args.concurrency,
        &args.load,
        stats,
        |_, stats, end| {
            let client = client.clone();
            async move {
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    let connection = match client.connect("localhost", addr).await {
                        Ok(c) => c,
                        Err(e) => {
                            stats.error(e.to_string());
                            continue;
                        }
                    };
                    let took = t.elapsed();
                    record(&stats, connection.ssl());
                    let _ = connection.close().await;
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

/// Notes the first negotiated version and suite for the `BENCH` line.
fn record(stats: &Stats, ssl: &openssl::ssl::SslRef) {
    let mut n = stats.negotiated.lock().expect("lock");
    if n.is_none() {
        let cipher = ssl.current_cipher().map_or("?", |c| c.name());
        *n = Some(format!("{}/{}", ssl.version_str(), cipher));
    }
}
