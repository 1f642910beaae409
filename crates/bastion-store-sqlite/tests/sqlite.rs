//! The backend test suite instantiated for `SqliteStore`, plus SQLite-specific tests: schema
//! migration and refusal, file creation, and crash durability (a child process killed with
//! SIGKILL while applying batches loses none it acknowledged).

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion_store::testsuite::{self, instance, resource};
use bastion_store::{RowKind, Store, StoreError, WriteBatch, WriteOp};
use bastion_store_sqlite::{SqliteStore, SQLITE_SCHEMA_VERSION};
use tempfile::TempDir;

/// A factory whose first call opens a fresh store and later calls reopen the same file.
fn factory() -> (TempDir, impl Fn() -> SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    (dir, move || SqliteStore::open(&path).expect("open store"))
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, open) = factory();
            testsuite::$name(open).await;
        }
    )*};
}

suite!(
    upsert_then_get,
    upsert_replaces,
    children_in_seq_order_and_by_type,
    child_by_name,
    delete,
    delete_children,
    delete_instances_before,
    load_tree_excludes_instances,
    load_instance_index_only_instances,
    instance_kind_is_data_not_type,
    stream_instance_index_delivers_every_instance,
    max_seq,
    empty_batch,
    batch_is_atomic,
    apply_order_is_call_order,
    concurrent_applies,
    survives_reopen,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_sqlite() {
    let mut dirs = Vec::new();
    testsuite::run_all(|| {
        let (dir, open) = factory();
        dirs.push(dir);
        open
    })
    .await;
}

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

#[tokio::test]
async fn creates_missing_parent_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/b/c/store.db");
    let store = SqliteStore::open(&path).expect("open");
    assert!(path.is_file());
    assert_eq!(store.path(), path);
    assert_eq!(store.max_seq().await.expect("max"), 0);
}

#[tokio::test]
async fn empty_file_migrates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    std::fs::write(&path, b"").expect("create empty file");
    let store = SqliteStore::open(&path).expect("open v0");
    store
        .apply(WriteBatch::new().upsert(resource("cb", "", "cse", 5, 1)))
        .await
        .expect("apply");
    drop(store);
    assert_eq!(user_version(&path), SQLITE_SCHEMA_VERSION);
}

#[tokio::test]
async fn v0_database_migrates_and_reopen_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    {
        // A valid SQLite database at schema version 0 (no Bastion table).
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE unrelated (x); DROP TABLE unrelated;")
            .expect("touch");
    }
    assert_eq!(user_version(&path), 0);
    let store = SqliteStore::open(&path).expect("migrate v0");
    store
        .apply(WriteBatch::new().upsert(resource("cb", "", "cse", 5, 1)))
        .await
        .expect("apply");
    drop(store);
    assert_eq!(user_version(&path), SQLITE_SCHEMA_VERSION);
    let store = SqliteStore::open(&path).expect("reopen current version");
    assert_eq!(store.max_seq().await.expect("max"), 1);
}

/// The schema of version 1 exactly as released (migration step 0 -> 1), where instance-ness
/// was `ty = 4`; kept here so the test builds a data directory as that release left it.
const SCHEMA_V1: &str = "CREATE TABLE resources (
        ri   TEXT    NOT NULL PRIMARY KEY,
        pi   TEXT    NOT NULL,
        rn   TEXT    NOT NULL,
        ty   INTEGER NOT NULL,
        seq  INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        et   TEXT,
        body TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX resources_pi_rn ON resources (pi, rn);
    CREATE INDEX resources_pi_seq ON resources (pi, seq);
    CREATE INDEX resources_tree_seq ON resources (seq) WHERE ty <> 4;
    PRAGMA application_id = 1112757326;
    PRAGMA user_version = 1;";

#[tokio::test]
async fn v1_database_migrates_contentinstances_to_instance_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(SCHEMA_V1).expect("old schema");
        let mut ae = resource("ae", "cb", "app", 2, 2);
        ae.et = Some("20991231T000000".into());
        let mut cin4 = instance("cin4", "cnt", 4, 11, Some("20991231T000000"));
        cin4.body = r#"{"ri":"cin4"}"#.into();
        let rows = [
            resource("cb", "", "cse", 5, 1),
            ae,
            resource("cnt", "ae", "cnt", 3, 3),
            cin4,
            resource("sub", "cnt", "sub", 23, 5),
            instance("cin6", "cnt", 6, 22, None),
        ];
        for r in rows {
            conn.execute(
                "INSERT INTO resources (ri, pi, rn, ty, seq, size, et, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![r.ri, r.pi, r.rn, r.ty, r.seq, r.size, r.et, r.body],
            )
            .expect("insert v1 row");
        }
    }
    assert_eq!(user_version(&path), 1);

    let store = SqliteStore::open(&path).expect("migrate v1");
    assert_eq!(user_version(&path), SQLITE_SCHEMA_VERSION);
    let tree = store.load_tree().await.expect("tree");
    assert_eq!(
        tree.iter()
            .map(|r| (r.ri.as_str(), r.kind))
            .collect::<Vec<_>>(),
        [
            ("cb", RowKind::Tree),
            ("ae", RowKind::Tree),
            ("cnt", RowKind::Tree),
            ("sub", RowKind::Tree),
        ]
    );
    assert_eq!(tree[1].et.as_deref(), Some("20991231T000000"));
    let index = store.load_instance_index().await.expect("index");
    assert_eq!(
        index
            .iter()
            .map(|e| (
                e.ri.as_str(),
                e.pi.as_str(),
                e.rn.as_str(),
                e.ty,
                e.seq,
                e.size
            ))
            .collect::<Vec<_>>(),
        [
            ("cin4", "cnt", "cin_4", 4, 4, 11),
            ("cin6", "cnt", "cin_6", 4, 6, 22)
        ]
    );
    assert_eq!(index[0].et.as_deref(), Some("20991231T000000"));
    let cin4 = store.get("cin4").await.expect("get").expect("cin4 kept");
    assert_eq!(cin4.kind, RowKind::Instance);
    assert_eq!(cin4.body, r#"{"ri":"cin4"}"#);
    assert_eq!(store.max_seq().await.expect("max"), 6);

    // Eviction after the migration removes migrated instances and never the tree row.
    store
        .apply(WriteBatch::from(vec![WriteOp::DeleteInstancesBefore {
            pi: "cnt".into(),
            seq: 6,
        }]))
        .await
        .expect("evict");
    let left: Vec<String> = store
        .children("cnt", None)
        .await
        .expect("children")
        .into_iter()
        .map(|r| r.ri)
        .collect();
    assert_eq!(left, ["sub", "cin6"]);
    drop(store);

    // Reopening the migrated file runs no step again.
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(user_version(&path), SQLITE_SCHEMA_VERSION);
    assert_eq!(store.load_instance_index().await.expect("index").len(), 1);
    assert_eq!(store.load_tree().await.expect("tree").len(), 4);
}

#[test]
fn instance_column_accepts_only_the_two_kinds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    drop(SqliteStore::open(&path).expect("create"));
    let conn = rusqlite::Connection::open(&path).expect("open");
    let err = conn
        .execute(
            "INSERT INTO resources (ri, pi, rn, ty, instance, seq, body) \
             VALUES ('x', 'cb', 'x', 30, 2, 1, '{}')",
            [],
        )
        .expect_err("instance = 2 must be refused");
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ConstraintViolation),
        "{err}"
    );
}

#[test]
fn too_new_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", SQLITE_SCHEMA_VERSION + 1)
            .expect("set version");
    }
    let err = SqliteStore::open(&path).expect_err("must refuse");
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: SQLITE_SCHEMA_VERSION + 1,
            supported: SQLITE_SCHEMA_VERSION,
        }
    );
    // Nothing was changed.
    assert_eq!(user_version(&path), SQLITE_SCHEMA_VERSION + 1);
}

#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a_u8; 8192]).expect("write");
    let err = SqliteStore::open(&garbage).expect_err("not a database");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

    let other_app = dir.path().join("other.db");
    {
        let conn = rusqlite::Connection::open(&other_app).expect("open");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.pragma_update(None, "application_id", 7)
            .expect("app id");
    }
    let err = SqliteStore::open(&other_app).expect_err("not a Bastion store");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[test]
fn directory_path_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqliteStore::open(dir.path()).expect_err("a directory is no database");
    assert!(
        matches!(err, StoreError::Io(_) | StoreError::Backend(_)),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).expect("open");
    store
        .apply(WriteBatch::new().upsert(resource("cb", "", "cse", 5, 1)))
        .await
        .expect("seed");
    // Another connection takes the write lock and keeps an uncommitted row...
    let other = rusqlite::Connection::open(&path).expect("open other");
    other
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO resources (ri, pi, rn, ty, seq, size, et, body) \
             VALUES ('foreign', 'cb', 'foreign', 2, 99, 0, NULL, '{}');",
        )
        .expect("hold the write lock");
    // ...so the writer thread is stuck waiting for it (busy timeout) with our batch.
    let pending = store.apply(WriteBatch::new().upsert(resource("ae", "cb", "ae", 2, 2)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for _ in 0..20 {
        assert!(store.get("cb").await.expect("get").is_some());
        assert_eq!(store.get("foreign").await.expect("get"), None, "dirty read");
        assert_eq!(store.load_tree().await.expect("tree").len(), 1);
        assert_eq!(store.max_seq().await.expect("max"), 1);
    }
    let elapsed = started.elapsed();
    other.execute_batch("ROLLBACK").expect("release the lock");
    pending
        .await
        .expect("the batch commits once the lock is free");
    assert!(
        elapsed < Duration::from_secs(2),
        "reads waited for the writer: {elapsed:?}"
    );
    assert!(store.get("ae").await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_groups_batches_and_isolates_a_failing_one() {
    let (_dir, open) = factory();
    let store = open();
    store
        .apply(
            WriteBatch::new()
                .upsert(resource("cnt", "ae", "cnt", 3, 1))
                .upsert(resource("taken", "cnt", "taken", 3, 2)),
        )
        .await
        .expect("seed");
    let before = store.stats();
    // Enqueued back to back, so the writer finds most of them already queued.
    let pending: Vec<_> = (0..100_i64)
        .map(|i| {
            let seq = 10 + i;
            let rn = if i == 50 {
                "taken".to_owned()
            } else {
                format!("c{seq}")
            };
            store.apply(
                WriteBatch::new()
                    .upsert(instance(&format!("i{seq}"), "cnt", seq, 1, None))
                    .upsert(resource(&format!("r{seq}"), "cnt", &rn, 3, seq)),
            )
        })
        .collect();
    let mut results = Vec::new();
    for p in pending {
        results.push(p.await);
    }
    for (i, result) in results.iter().enumerate() {
        if i == 50 {
            assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        } else {
            assert!(result.is_ok(), "batch {i}: {result:?}");
        }
    }
    assert_eq!(
        store.get("i60").await.expect("get"),
        None,
        "failed batch left a row"
    );
    assert!(store.get("i59").await.expect("get").is_some());
    assert!(store.get("i61").await.expect("get").is_some());
    let after = store.stats();
    assert_eq!(after.batches - before.batches, 99);
    assert_eq!(after.failed_batches - before.failed_batches, 1);
    let commits = after.commits - before.commits;
    assert!(
        commits < 50,
        "no group commit: {commits} commits for 100 batches"
    );
    assert!(!after.poisoned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_poisons_until_reopen() {
    let (_dir, open) = factory();
    let store = open();
    store
        .apply(WriteBatch::new().upsert(resource("cb", "", "cse", 5, 1)))
        .await
        .expect("seed");
    store.fail_next_commit_for_testing();
    let err = store
        .apply(WriteBatch::new().upsert(resource("lost", "cb", "lost", 2, 2)))
        .await
        .expect_err("commit fails");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(store.is_poisoned());
    assert!(store.stats().poisoned);
    let err = store
        .apply(WriteBatch::new().upsert(resource("later", "cb", "later", 2, 3)))
        .await
        .expect_err("poisoned");
    assert_eq!(err, StoreError::Poisoned);
    // Reads still work and show the durable truth.
    assert_eq!(store.get("lost").await.expect("get"), None);
    assert_eq!(store.max_seq().await.expect("max"), 1);
    drop(store);

    let store = open();
    assert!(!store.is_poisoned());
    assert_eq!(store.get("lost").await.expect("get"), None);
    store
        .apply(WriteBatch::new().upsert(resource("later", "cb", "later", 2, 3)))
        .await
        .expect("writable after reopen");
}

// ---------------------------------------------------------------------------------------
// Crash durability.

const CHILD_ENV: &str = "BASTION_STORE_CRASH_CHILD_DB";

/// The child side of `acknowledged_batches_survive_sigkill`: does nothing unless the parent
/// re-executes this test binary with `CHILD_ENV` set. Then it applies batches from several
/// tasks (so group commit is exercised) and prints `ACK <seq>` after each `Ok`. It stops by
/// itself after 20 s should nobody kill it.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(SqliteStore::open(Path::new(&path)).expect("open"));
        store
            .apply(WriteBatch::new().upsert(resource("cnt", "cb", "cnt", 3, 1)))
            .await
            .expect("seed");
        println!("ACK 1");
        let next = Arc::new(AtomicI64::new(2));
        let deadline = Instant::now() + Duration::from_secs(20);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, next) = (Arc::clone(&store), Arc::clone(&next));
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let seq = next.fetch_add(1, Ordering::SeqCst);
                        let mut cin = instance(&format!("i{seq}"), "cnt", seq, 300, None);
                        cin.body = format!(r#"{{"con":"{}"}}"#, "v".repeat(300));
                        let mut cnt = resource("cnt", "cb", "cnt", 3, 1);
                        cnt.body = format!(r#"{{"cni":{seq}}}"#);
                        store
                            .apply(WriteBatch::new().upsert(cin).upsert(cnt))
                            .await
                            .expect("apply");
                        println!("ACK {seq}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
}

#[tokio::test]
async fn acknowledged_batches_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("crash.db");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("ACK ") {
                acked.push(seq.trim().parse::<i64>().expect("seq"));
            }
        }
        acked
    });

    std::thread::sleep(Duration::from_millis(1200));
    match Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
    {
        Ok(status) => assert!(status.success(), "kill -9 failed: {status:?}"),
        // No `kill` binary: std's Child::kill sends the same SIGKILL on Unix.
        Err(_) => child.kill().expect("SIGKILL the child"),
    }
    let exit = child.wait().expect("wait child");
    assert_eq!(
        exit.signal(),
        Some(9),
        "child must have died of SIGKILL, not finished: {exit:?}"
    );
    let acked = reader.join().expect("reader thread");
    assert!(
        acked.len() > 10,
        "child acknowledged only {} batches",
        acked.len()
    );

    let store = SqliteStore::open(&path).expect("reopen after crash");
    let stored: std::collections::HashSet<i64> = store
        .load_instance_index()
        .await
        .expect("index")
        .into_iter()
        .map(|e| e.seq)
        .collect();
    let lost: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|&seq| seq != 1 && !stored.contains(&seq))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after SIGKILL: {lost:?}"
    );
    assert!(store.get("cnt").await.expect("get").is_some());
    eprintln!(
        "crash test: {} batches acknowledged, {} on disk",
        acked.len(),
        stored.len() + 1
    );
}
