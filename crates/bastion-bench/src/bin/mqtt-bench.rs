//! `mqtt-bench`: the load generator and the ceiling of the MQTT benchmark (`bench/mqtt.sh`,
//! issue 16).
//!
//! * `load`: oneM2M requests over TS-0010 through a broker, from one MQTT session. Each of
//!   `--concurrency` tasks publishes one request primitive (QoS 1) on
//!   `/oneM2M/req/<origin>/<cse>/json` and waits for the response with its `rqi` on
//!   `/oneM2M/resp/<origin>/<cse>/json`; a response counts as a success when its `rsc`
//!   starts with 2. W1 is a RETRIEVE of `--to`; W2 a CREATE of a contentInstance with a
//!   100-byte `con` in `--to`.
//! * `echo`: the ceiling. A bare responder on the same broker: it reads the `rqi` of every
//!   request on `/oneM2M/req/+/<cse>/json` and publishes a fixed ~300-byte response with
//!   that `rqi` on the matching response topic, without any oneM2M processing. The load
//!   generator runs against it unchanged, so both figures pay the same broker and client
//!   costs and differ only in the responder.
//!
//! The `BENCH` line is the one of `tls-bench` (`bastion_bench::drive`).
//!
//! ```text
//! mqtt-bench echo --broker 127.0.0.1:1883 --cse bare-echo
//! mqtt-bench load --broker 127.0.0.1:1883 --cse id-in --origin Creader \
//!     --workload w1 --to cse-in/bench/cnt/la
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bastion_bench::{drive, LoadArgs, Stats, IO_TIMEOUT};
use clap::{Args, Parser, Subcommand, ValueEnum};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[derive(Parser, Debug)]
#[command(about = "oneM2M over MQTT load generator and bare echo ceiling (bench/mqtt.sh)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Requests per second through the broker, one request in flight per task.
    Load(LoadCommand),
    /// The bare responder: a fixed response to every request, matched by rqi.
    Echo(EchoCommand),
}

#[derive(Args, Debug)]
struct Broker {
    /// The broker, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// The receiver's topic level (a CSE-ID without its leading `/`).
    #[arg(long)]
    cse: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// RETRIEVE `--to`.
    W1,
    /// CREATE a contentInstance (100-byte con) in `--to`.
    W2,
}

#[derive(Args, Debug)]
struct LoadCommand {
    #[command(flatten)]
    broker: Broker,
    /// The originator (`fr`, and the request topic's originator level).
    #[arg(long, default_value = "Creader")]
    origin: String,
    /// The request's `to`.
    #[arg(long)]
    to: String,
    #[arg(long, value_enum, default_value = "w1")]
    workload: Workload,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args, Debug)]
struct EchoCommand {
    #[command(flatten)]
    broker: Broker,
}

fn main() {
    let cli = Cli::parse();
    bastion_bench::main_with("mqtt-bench", async {
        match cli.command {
            Command::Load(args) => load(args).await,
            Command::Echo(args) => echo(args).await,
        }
    });
}

/// A session with the broker: host and port of `broker`, a client ID unique to this process.
fn session(broker: &Broker, role: &str) -> Result<(AsyncClient, EventLoop), String> {
    let (host, port) = broker
        .broker
        .rsplit_once(':')
        .ok_or("--broker is HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| "--broker port")?;
    let id = format!("mqtt-bench-{role}-{}", std::process::id());
    let mut options = MqttOptions::new(id, host, port);
    options.set_clean_session(true);
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_inflight(1000);
    options.set_keep_alive(std::time::Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 4096);
    // As the CSE's session does (bastion-mqtt): no Nagle delay on small messages.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    Ok((client, events))
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

async fn load(args: LoadCommand) -> Result<(), String> {
    let (client, mut events) = session(&args.broker, "load")?;
    let request_topic = format!("/oneM2M/req/{}/{}/json", args.origin, args.broker.cse);
    let response_topic = format!("/oneM2M/resp/{}/{}/json", args.origin, args.broker.cse);
    client
        .subscribe(&response_topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let waiting: Waiting = Arc::default();
    let dispatch = waiting.clone();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let rqi = rqi_of(&p.payload);
                    let waiter = rqi.and_then(|r| dispatch.lock().expect("lock").remove(&r));
                    if let Some(tx) = waiter {
                        let _ = tx.send(p.payload.to_vec());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("mqtt-bench: broker session: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    let next = Arc::new(AtomicU64::new(0));
    let shared = Arc::new((client, request_topic, args.origin, args.to, args.workload));
    let stats = Arc::new(Stats::default());
    drive(
        "requests",
        args.concurrency,
        &args.load,
        stats,
        |_, stats, end| {
            let shared = shared.clone();
            let waiting = waiting.clone();
            let next = next.clone();
            async move {
                let (client, topic, origin, to, workload) = &*shared;
                let mut lat = Vec::new();
                while Instant::now() < end {
                    let rqi = format!("b{}", next.fetch_add(1, Ordering::Relaxed));
                    let payload = request(*workload, origin, to, &rqi);
                    let (tx, rx) = oneshot::channel();
                    waiting.lock().expect("lock").insert(rqi.clone(), tx);
                    let t = Instant::now();
                    let sent = client
                        .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                        .await;
                    if let Err(e) = sent {
                        waiting.lock().expect("lock").remove(&rqi);
                        stats.error(format!("publish: {e}"));
                        continue;
                    }
                    let answer = match tokio::time::timeout(IO_TIMEOUT, rx).await {
                        Ok(Ok(answer)) => answer,
                        _ => {
                            waiting.lock().expect("lock").remove(&rqi);
                            stats.error("no response in time".into());
                            continue;
                        }
                    };
                    match rsc_of(&answer) {
                        Some(rsc) if rsc / 1000 == 2 => {
                            if stats.counting.load(Ordering::Relaxed) {
                                stats.ok.fetch_add(1, Ordering::Relaxed);
                                lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            }
                        }
                        other => stats.error(format!("rsc {other:?}")),
                    }
                }
                lat
            }
        },
    )
    .await;
    Ok(())
}

/// One request primitive of `workload`, in JSON.
fn request(workload: Workload, origin: &str, to: &str, rqi: &str) -> Vec<u8> {
    let primitive = match workload {
        Workload::W1 => json!({"op": 2, "to": to, "fr": origin, "rqi": rqi, "rvi": "3"}),
        Workload::W2 => json!({
            "op": 1, "to": to, "fr": origin, "rqi": rqi, "rvi": "3", "ty": 4,
            "pc": {"m2m:cin": {"con": "x".repeat(100)}}
        }),
    };
    serde_json::to_vec(&primitive).expect("a JSON value serializes")
}

fn rqi_of(payload: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    value.get("rqi")?.as_str().map(str::to_owned)
}

fn rsc_of(payload: &[u8]) -> Option<u64> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    value.get("rsc")?.as_u64()
}

async fn echo(args: EchoCommand) -> Result<(), String> {
    let (client, mut events) = session(&args.broker, "echo")?;
    let filter = format!("/oneM2M/req/+/{}/json", args.broker.cse);
    client
        .subscribe(&filter, QoS::AtLeastOnce)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    eprintln!("mqtt-bench: echoing on {filter}");
    loop {
        let publish = match events.poll().await {
            Ok(Event::Incoming(Incoming::Publish(p))) => p,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("mqtt-bench: broker session: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(rqi) = rqi_of(&publish.payload) else {
            continue;
        };
        // `/oneM2M/req/<originator>/<cse>/json` answered on `/oneM2M/resp/…` (same levels).
        let Some(levels) = publish.topic.strip_prefix("/oneM2M/req/") else {
            continue;
        };
        let topic = format!("/oneM2M/resp/{levels}");
        let answer = fixed_response(&rqi);
        let client = client.clone();
        // Publishing from the poll loop would wait on the loop itself when the request
        // channel is full; a task per answer keeps polling going.
        tokio::spawn(async move {
            let _ = client.publish(topic, QoS::AtLeastOnce, false, answer).await;
        });
    }
}

/// The echo's answer: about the size of a RETRIEVE of a small contentInstance.
fn fixed_response(rqi: &str) -> Vec<u8> {
    let answer = json!({
        "rsc": 2000, "rqi": rqi, "rvi": "3", "fr": "/bare-echo", "to": "Creader",
        "pc": {"m2m:cin": {
            "rn": "cin_0123456789", "ty": 4, "ri": "cin0123456789abcdef", "pi": "cnt0123456789",
            "ct": "20261203T080000,000000", "lt": "20261203T080000,000000", "st": 1,
            "cs": 100, "con": "x".repeat(100)
        }}
    });
    serde_json::to_vec(&answer).expect("a JSON value serializes")
}
