//! Criterion benchmark of `Notifier::submit`, the call the core makes on its request path.
//!
//! `one_destination`: every event to the same destination, cycling over 16 subscriptions.
//! `many_destinations`: events spread over 256 destinations (map lookup and worker start
//! on first use). `batched`: one destination with a `bn` policy (num 64), so most submits
//! only append to a batch buffer.
//!
//! Destinations are ports with nothing listening and a one-hour backoff, so workers fail
//! once and then sleep: the measurement is the enqueue cost, not HTTP. Each notifier takes
//! at most `CHUNK` events before it is replaced (outside the timed region), which bounds
//! memory however many iterations criterion asks for.

use bastion_client::Client;
use bastion_notify::{Batch, Content, Delivery, DeliveryPolicy, Notifier, NotifierConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Events per notifier before a fresh one is made.
const CHUNK: u64 = 10_000;

/// `n` URLs on which nothing listens.
fn dead_urls(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            format!("http://{addr}/notify")
        })
        .collect()
}

fn notifier() -> Notifier {
    let config = NotifierConfig {
        queue_capacity: CHUNK as usize,
        backoff_initial: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        ..NotifierConfig::default()
    };
    Notifier::new(config, Client::default())
}

/// Times `iters` submits spread over `urls`, with `policy`.
fn run(
    rt: &tokio::runtime::Runtime,
    urls: &[String],
    policy: &DeliveryPolicy,
    iters: u64,
) -> Duration {
    let subs: Vec<String> = (0..16).map(|i| format!("/id-in/sub{i}")).collect();
    let event =
        json!({"nev": {"rep": {"m2m:cin": {"con": "21.5"}}, "net": 3}, "sur": "/id-in/sub0"});
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let chunk = CHUNK.min(iters - done);
        let n = rt.block_on(async { notifier() });
        let deliveries: Vec<Delivery> = (0..chunk)
            .map(|i| Delivery {
                subscription: subs[i as usize % subs.len()].clone(),
                targets: vec![urls[i as usize % urls.len()].clone()],
                to: "Cae1".into(),
                peer: None,
                // One event per delivery, as the core submits them.
                event: std::sync::Arc::new(event.clone()),
                content: Content::Notification,
                policy: policy.clone(),
            })
            .collect();
        let _guard = rt.enter();
        let start = Instant::now();
        for d in deliveries {
            let _ = black_box(n.submit(d));
        }
        total += start.elapsed();
        rt.block_on(n.shutdown(Duration::ZERO));
        done += chunk;
    }
    total
}

fn bench_submit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let one = dead_urls(1);
    let many = dead_urls(256);
    let plain = DeliveryPolicy::default();
    let batched = DeliveryPolicy {
        batch: Some(Batch {
            num: 64,
            dur: Duration::from_secs(3600),
        }),
        ..DeliveryPolicy::default()
    };
    let mut group = c.benchmark_group("submit");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("one_destination", |b| {
        b.iter_custom(|iters| run(&rt, &one, &plain, iters))
    });
    group.bench_function("many_destinations", |b| {
        b.iter_custom(|iters| run(&rt, &many, &plain, iters))
    });
    group.bench_function("batched", |b| {
        b.iter_custom(|iters| run(&rt, &one, &batched, iters))
    });
    group.finish();
}

criterion_group!(benches, bench_submit);
criterion_main!(benches);
