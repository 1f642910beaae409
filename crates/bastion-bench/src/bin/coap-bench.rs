//! `coap-bench`: the load generator and the ceiling of the CoAP benchmark (`bench/coap.sh`,
//! issue 16).
//!
//! * `load`: oneM2M RETRIEVEs over TS-0008 to `--server`. Each of `--concurrency` tasks
//!   has its own UDP socket (plain) or its own DTLS-PSK association (`--psk-identity`,
//!   `--psk-hex`; `bastion_tls::DtlsClient`) and keeps one confirmable GET of `--to` with
//!   the `fr`, `rqi` and `rvi` options in flight; an answer counts as a success when its
//!   token matches and its oneM2M-RSC option starts with 2. No retransmission: on
//!   loopback a lost datagram is an error (after 10 s).
//! * `echo`: the ceiling. A bare responder: every confirmable request gets a piggybacked
//!   2.05 with oneM2M-RSC 2000, the request's `rqi` and a fixed ~300-byte JSON payload,
//!   without any oneM2M processing; over DTLS its sessions come from the same
//!   `DtlsServer` as Bastion's, with the PSK bound as in Bastion's store. The load
//!   generator runs against it unchanged.
//!
//! The `BENCH` line is the one of `tls-bench` (`bastion_bench::drive`).
//!
//! ```text
//! coap-bench echo --listen 127.0.0.1:15690 [--psk-identity ID --psk-hex HEX]
//! coap-bench load --server 127.0.0.1:5683 --origin Creader --to cse-in/bench/cnt/la \
//!     [--psk-identity ID --psk-hex HEX] --concurrency 8
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bastion_bench::{drive, LoadArgs, Stats, IO_TIMEOUT};
use bastion_tls::dtls::{DtlsClient, DtlsConnection, DtlsLimits, DtlsServer, DtlsSession};
use bastion_tls::{ClientOptions, PskKey};
use clap::{Args, Parser, Subcommand};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use serde_json::json;
use tokio::net::UdpSocket;

/// oneM2M CoAP options (TS-0008 6.2.2.4).
const FR: u16 = 279;
const RQI: u16 = 283;
const RVI: u16 = 271;
const RSC: u16 = 307;

#[derive(Parser, Debug)]
#[command(about = "oneM2M over CoAP (and CoAP/DTLS) load generator and bare echo (bench/coap.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Requests per second, one confirmable request in flight per task.
    Load(LoadCommand),
    /// The bare responder: a fixed 2.05 answer to every confirmable request.
    Echo(EchoCommand),
}

#[derive(Args, Debug)]
struct Psk {
    /// PSK identity (KpsaID); with --psk-hex, DTLS instead of plain UDP.
    #[arg(long, requires = "psk_hex")]
    psk_identity: Option<String>,
    /// PSK in hex.
    #[arg(long, requires = "psk_identity")]
    psk_hex: Option<String>,
}

impl Psk {
    fn key(&self) -> Result<Option<(String, PskKey)>, String> {
        match (&self.psk_identity, &self.psk_hex) {
            (Some(id), Some(hex)) => {
                let key = PskKey::from_hex(hex).map_err(|e| format!("--psk-hex: {e}"))?;
                Ok(Some((id.clone(), key)))
            }
            _ => Ok(None),
        }
    }
}

#[derive(Args, Debug)]
struct LoadCommand {
    /// The CoAP (or CoAPS) server, ADDR:PORT.
    #[arg(long)]
    server: SocketAddr,
    /// The originator (`fr`).
    #[arg(long, default_value = "Creader")]
    origin: String,
    /// The path to RETRIEVE (Uri-Path segments).
    #[arg(long)]
    to: String,
    /// Requests in flight at once (one socket or association each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    psk: Psk,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args, Debug)]
struct EchoCommand {
    /// Address to bind.
    #[arg(long)]
    listen: SocketAddr,
    /// The AE-ID the PSK is bound to (as in Bastion's store).
    #[arg(long, default_value = "Creader")]
    origin: String,
    #[command(flatten)]
    psk: Psk,
}

fn main() {
    let cli = Cli::parse();
    bastion_bench::main_with("coap-bench", async {
        match cli.command {
            Command::Load(args) => load(args).await,
            Command::Echo(args) => echo(args).await,
        }
    });
}

/// One task's way to the server.
enum Link {
    Udp(UdpSocket),
    Dtls(Box<DtlsConnection>),
}

impl Link {
    async fn open(server: SocketAddr, psk: &Option<(String, PskKey)>) -> Result<Link, String> {
        match psk {
            None => {
                let socket = UdpSocket::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                socket.connect(server).await.map_err(|e| e.to_string())?;
                Ok(Link::Udp(socket))
            }
            Some((id, key)) => {
                let client = DtlsClient::psk(id, key.clone(), &ClientOptions::default())
                    .map_err(|e| e.to_string())?;
                let session = client
                    .connect("localhost", server)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Link::Dtls(Box::new(session)))
            }
        }
    }

    async fn exchange(&mut self, request: &[u8], buf: &mut [u8]) -> Result<Vec<u8>, String> {
        match self {
            Link::Udp(socket) => {
                socket.send(request).await.map_err(|e| e.to_string())?;
                let n = socket.recv(buf).await.map_err(|e| e.to_string())?;
                Ok(buf[..n].to_vec())
            }
            Link::Dtls(session) => {
                session.send(request).await.map_err(|e| e.to_string())?;
                session.recv().await.map_err(|e| e.to_string())
            }
        }
    }
}

/// The confirmable GET of `to` as `origin`.
fn request(mid: u16, to: &str, origin: &str) -> Result<Vec<u8>, String> {
    let mut packet = Packet::new();
    packet.header.set_type(MessageType::Confirmable);
    packet.header.code = MessageClass::Request(RequestType::Get);
    packet.header.message_id = mid;
    packet.set_token(mid.to_be_bytes().to_vec());
    for segment in to.split('/').filter(|s| !s.is_empty()) {
        packet.add_option(CoapOption::UriPath, segment.as_bytes().to_vec());
    }
    packet.add_option(CoapOption::Unknown(FR), origin.as_bytes().to_vec());
    packet.add_option(CoapOption::Unknown(RQI), format!("b{mid}").into_bytes());
    packet.add_option(CoapOption::Unknown(RVI), b"3".to_vec());
    packet.to_bytes().map_err(|e| e.to_string())
}

/// The oneM2M-RSC of an answer to message `mid`.
fn rsc_of(answer: &[u8], mid: u16) -> Result<u64, String> {
    let packet = Packet::from_bytes(answer).map_err(|e| format!("not CoAP: {e}"))?;
    if packet.header.message_id != mid || packet.get_token() != mid.to_be_bytes() {
        return Err("an answer to another request".into());
    }
    let rsc = packet
        .get_first_option(CoapOption::Unknown(RSC))
        .ok_or("no oneM2M-RSC option")?;
    Ok(rsc.iter().fold(0, |n, b| (n << 8) | u64::from(*b)))
}

async fn load(args: LoadCommand) -> Result<(), String> {
    let psk = Arc::new(args.psk.key()?);
    let shared = Arc::new((args.server, args.to, args.origin));
    let stats = Arc::new(Stats::default());
    let next = Arc::new(AtomicU16::new(0));
    drive(
        "requests",
        args.concurrency,
        &args.load,
        stats,
        |_, stats, end| {
            let (shared, psk, next) = (shared.clone(), psk.clone(), next.clone());
            async move {
                let (server, to, origin) = &*shared;
                let mut lat = Vec::new();
                let mut link = match Link::open(*server, &psk).await {
                    Ok(link) => {
                        if let Link::Dtls(session) = &link {
                            let suite = session.ssl().current_cipher().map(|c| c.name());
                            let mut negotiated = stats.negotiated.lock().expect("lock");
                            if negotiated.is_none() {
                                *negotiated = suite.map(str::to_owned);
                            }
                        }
                        link
                    }
                    Err(e) => {
                        stats.error(format!("connect: {e}"));
                        return lat;
                    }
                };
                let mut buf = vec![0u8; 65_536];
                while Instant::now() < end {
                    let mid = next.fetch_add(1, Ordering::Relaxed);
                    let bytes = match request(mid, to, origin) {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            stats.error(e);
                            return lat;
                        }
                    };
                    let t = Instant::now();
                    let answer =
                        tokio::time::timeout(IO_TIMEOUT, link.exchange(&bytes, &mut buf)).await;
                    let outcome = match answer {
                        Ok(Ok(answer)) => rsc_of(&answer, mid),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err("no answer in time".into()),
                    };
                    match outcome {
                        Ok(rsc) if rsc / 1000 == 2 => {
                            if stats.counting.load(Ordering::Relaxed) {
                                stats.ok.fetch_add(1, Ordering::Relaxed);
                                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                        }
                        Ok(rsc) => stats.error(format!("rsc {rsc}")),
                        Err(e) => stats.error(e),
                    }
                }
                lat
            }
        },
    )
    .await;
    Ok(())
}

/// The echo's answer to `request`: about the size of a RETRIEVE of a small
/// contentInstance; `None` for what is not a confirmable request.
fn answer(request: &[u8]) -> Option<Vec<u8>> {
    let req = Packet::from_bytes(request).ok()?;
    if req.header.get_type() != MessageType::Confirmable
        || !matches!(req.header.code, MessageClass::Request(_))
    {
        return None;
    }
    let rqi = req.get_first_option(CoapOption::Unknown(RQI))?.clone();
    let mut out = Packet::new();
    out.header.set_type(MessageType::Acknowledgement);
    out.header.code = MessageClass::Response(ResponseType::Content);
    out.header.message_id = req.header.message_id;
    out.set_token(req.get_token().to_vec());
    out.add_option(CoapOption::ContentFormat, vec![50]);
    out.add_option(CoapOption::Unknown(RSC), 2000u16.to_be_bytes().to_vec());
    out.add_option(CoapOption::Unknown(RQI), rqi);
    out.add_option(CoapOption::Unknown(RVI), b"3".to_vec());
    out.payload = serde_json::to_vec(&json!({"m2m:cin": {
        "rn": "cin_0123456789", "ty": 4, "ri": "cin0123456789abcdef", "pi": "cnt0123456789",
        "ct": "20261203T080000,000000", "lt": "20261203T080000,000000", "st": 1,
        "cs": 100, "con": "x".repeat(100)
    }}))
    .ok()?;
    out.to_bytes().ok()
}

async fn echo(args: EchoCommand) -> Result<(), String> {
    match args.psk.key()? {
        None => echo_udp(args.listen).await,
        Some((id, key)) => {
            let (tls, dir) = bastion_bench::psk_tls_server("coap-bench", &id, key, &args.origin)?;
            let mut server = DtlsServer::bind(args.listen, tls, DtlsLimits::default())
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("coap-bench: echoing over DTLS on {}", server.local_addr());
            while let Some(session) = server.accept().await {
                tokio::spawn(echo_session(session));
            }
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
    }
}

async fn echo_udp(listen: SocketAddr) -> Result<(), String> {
    let socket = UdpSocket::bind(listen).await.map_err(|e| e.to_string())?;
    eprintln!(
        "coap-bench: echoing on {}",
        socket.local_addr().map_err(|e| e.to_string())?
    );
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(out) = answer(&buf[..n]) {
            let _ = socket.send_to(&out, peer).await;
        }
    }
}

async fn echo_session(mut session: DtlsSession) {
    while let Some(datagram) = session.recv().await {
        if let Some(out) = answer(&datagram) {
            if session.send(&out).await.is_err() {
                break;
            }
        }
    }
}
