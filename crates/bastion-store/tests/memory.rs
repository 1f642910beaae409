//! The backend test suite instantiated for the volatile `MemoryStore`: the same contracts as
//! the SQLite backend, "reopen" being a new handle on the same rows.

use bastion_store::testsuite;
use bastion_store::{MemoryStore, Store};

/// A factory whose first call gives a fresh store and later calls reopen the same rows.
fn factory() -> impl Fn() -> MemoryStore {
    let rows = MemoryStore::new();
    move || rows.reopen()
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            testsuite::$name(factory()).await;
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
async fn run_all_on_memory() {
    testsuite::run_all(factory).await;
}

/// A rejected batch puts back every row its earlier operations replaced or removed, indexes
/// included: the old names resolve and the old children list is whole.
#[tokio::test]
async fn rejected_batch_restores_replaced_and_removed_rows() {
    use bastion_store::testsuite::{instance, resource};
    use bastion_store::{StoreError, WriteBatch, WriteOp};

    let store = MemoryStore::new();
    let cnt = resource("cnt", "ae", "cnt", 3, 1);
    let i2 = instance("i2", "cnt", 2, 10, None);
    let i3 = instance("i3", "cnt", 3, 10, None);
    let taken = resource("taken", "ae", "taken", 3, 4);
    let batch = WriteBatch::from(vec![
        WriteOp::Upsert(cnt.clone()),
        WriteOp::Upsert(i2.clone()),
        WriteOp::Upsert(i3.clone()),
        WriteOp::Upsert(taken.clone()),
    ]);
    store.apply(batch).await.expect("seed");

    let mut renamed = cnt.clone();
    renamed.rn = "renamed".into();
    let bad = WriteBatch::from(vec![
        WriteOp::Upsert(renamed),
        WriteOp::DeleteInstancesBefore {
            pi: "cnt".into(),
            seq: 3,
        },
        WriteOp::DeleteChildren { pi: "cnt".into() },
        WriteOp::Delete { ri: "taken".into() },
        WriteOp::Upsert(resource("late", "ae", "cnt", 3, 9)),
        // "cnt" is free now (renamed above), "taken" too; this one clashes with "late".
        WriteOp::Upsert(resource("clash", "ae", "cnt", 3, 10)),
    ]);
    let outcome = store.apply(bad).await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "{outcome:?}"
    );

    assert_eq!(
        store.child_by_name("ae", "cnt").await.expect("by name"),
        Some(cnt.clone())
    );
    assert_eq!(
        store.child_by_name("ae", "renamed").await.expect("by name"),
        None
    );
    assert_eq!(store.get("late").await.expect("get"), None);
    assert_eq!(
        store.children("cnt", None).await.expect("children"),
        [i2, i3]
    );
    assert_eq!(
        store.children("ae", None).await.expect("children"),
        [cnt, taken]
    );
    assert_eq!(store.max_seq().await.expect("max"), 4);
}
