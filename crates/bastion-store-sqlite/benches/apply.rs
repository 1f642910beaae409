//! Write-path benchmarks of `SqliteStore` (WAL, synchronous=FULL, group commit) in a temp dir:
//!
//! * `apply/single`: latency of one batch applied alone (one fsynced commit per batch);
//! * `apply/concurrent_32`: 32 tasks applying concurrently; reported per batch, so the
//!   throughput line is batches per second.
//!
//! Each batch is what a contentInstance CREATE writes: one Upsert of a ~300-byte
//! contentInstance plus one Upsert of its parent container (updated counters).

use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion_store::testsuite::{instance, resource};
use bastion_store::{Store, WriteBatch};
use bastion_store_sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const APPLIERS: u64 = 32;

fn cin_batch(container: &str, seq: i64) -> WriteBatch {
    let mut cin = instance(&format!("{container}-i{seq}"), container, seq, 300, None);
    cin.body = format!(
        r#"{{"cnf":"text/plain:0","cs":300,"con":"{}","st":{seq}}}"#,
        "x".repeat(300)
    );
    let mut cnt = resource(container, "ae", container, 3, 1);
    cnt.body = format!(
        r#"{{"cni":{seq},"cbs":{},"st":{seq},"mni":100000}}"#,
        seq * 300
    );
    WriteBatch::new().upsert(cin).upsert(cnt)
}

fn bench_apply(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("open"));
    let seq = Arc::new(AtomicI64::new(1));

    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(1));

    group.bench_function("single", |b| {
        b.iter(|| {
            let batch = cin_batch("cnt-single", seq.fetch_add(1, Ordering::Relaxed));
            rt.block_on(store.apply(batch)).expect("apply");
        })
    });

    group.bench_function("concurrent_32", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(APPLIERS);
            let started = Instant::now();
            rt.block_on(async {
                let tasks: Vec<_> = (0..APPLIERS)
                    .map(|t| {
                        let (store, seq) = (Arc::clone(&store), Arc::clone(&seq));
                        tokio::spawn(async move {
                            let container = format!("cnt-{t}");
                            for _ in 0..per_task {
                                let batch =
                                    cin_batch(&container, seq.fetch_add(1, Ordering::Relaxed));
                                store.apply(black_box(batch)).await.expect("apply");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
            });
            // Scale to exactly `iters` batches.
            let done = per_task * APPLIERS;
            started
                .elapsed()
                .mul_f64(iters as f64 / done as f64)
                .max(Duration::from_nanos(1))
        })
    });
    group.finish();
    // Average group size = batches / commits over the whole run (warm-up included).
    let stats = store.stats();
    eprintln!(
        "writer: {} batches in {} commits ({:.1} batches per commit)",
        stats.batches,
        stats.commits,
        stats.batches as f64 / stats.commits.max(1) as f64
    );
}

criterion_group!(benches, bench_apply);
criterion_main!(benches);
