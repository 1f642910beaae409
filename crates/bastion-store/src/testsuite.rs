//! The backend-independent test suite: every [`Store`] backend must pass it.
//!
//! Each test takes a factory `open: Fn() -> S`. The first call must open a fresh, empty
//! store; every later call on the same factory must reopen the *same* storage (for SQLite:
//! the same file), which is how durability across a restart is tested. Give every test its
//! own factory. [`run_all`] runs them all, asking `new_factory` for one per test.
//!
//! Tests that spawn tasks need a multi-threaded tokio runtime.
//!
//! The suite panics on failure, like any test; it is compiled only with the `testsuite`
//! feature.

use std::sync::Arc;

use crate::{InstanceEntry, RowKind, Store, StoreError, StoredResource, WriteBatch, WriteOp};

/// The oneM2M resource type of `<contentInstance>`, the instances [`instance`] builds.
pub const TY_CONTENT_INSTANCE: u16 = 4;

/// A tree resource ([`RowKind::Tree`]) with a small JSON body derived from its fields.
pub fn resource(ri: &str, pi: &str, rn: &str, ty: u16, seq: i64) -> StoredResource {
    StoredResource {
        ri: ri.to_owned(),
        pi: pi.to_owned(),
        rn: rn.to_owned(),
        ty,
        kind: RowKind::Tree,
        seq,
        size: 0,
        et: None,
        body: format!(r#"{{"ri":"{ri}","rn":"{rn}","ty":{ty}}}"#),
    }
}

/// A contentInstance ([`RowKind::Instance`]) of `pi` with the given content size and
/// expiration.
pub fn instance(ri: &str, pi: &str, seq: i64, size: i64, et: Option<&str>) -> StoredResource {
    StoredResource {
        kind: RowKind::Instance,
        size,
        et: et.map(str::to_owned),
        ..resource(ri, pi, &format!("cin_{seq}"), TY_CONTENT_INSTANCE, seq)
    }
}

fn entry(r: &StoredResource) -> InstanceEntry {
    InstanceEntry {
        ri: r.ri.clone(),
        pi: r.pi.clone(),
        rn: r.rn.clone(),
        ty: r.ty,
        seq: r.seq,
        size: r.size,
        et: r.et.clone(),
    }
}

async fn put<S: Store>(store: &S, resources: &[StoredResource]) {
    let batch = WriteBatch {
        ops: resources.iter().cloned().map(WriteOp::Upsert).collect(),
    };
    store.apply(batch).await.expect("apply");
}

fn ris(resources: &[StoredResource]) -> Vec<&str> {
    resources.iter().map(|r| r.ri.as_str()).collect()
}

/// Runs every test of the suite, each on a store from a fresh factory.
pub async fn run_all<M, F, S>(mut new_factory: M)
where
    M: FnMut() -> F,
    F: Fn() -> S,
    S: Store,
{
    upsert_then_get(new_factory()).await;
    upsert_replaces(new_factory()).await;
    children_in_seq_order_and_by_type(new_factory()).await;
    child_by_name(new_factory()).await;
    delete(new_factory()).await;
    delete_children(new_factory()).await;
    delete_instances_before(new_factory()).await;
    load_tree_excludes_instances(new_factory()).await;
    load_instance_index_only_instances(new_factory()).await;
    instance_kind_is_data_not_type(new_factory()).await;
    stream_instance_index_delivers_every_instance(new_factory()).await;
    max_seq(new_factory()).await;
    empty_batch(new_factory()).await;
    batch_is_atomic(new_factory()).await;
    apply_order_is_call_order(new_factory()).await;
    concurrent_applies(new_factory()).await;
    survives_reopen(new_factory()).await;
}

/// Upsert then get returns exactly what was stored; an unknown `ri` is `None`.
pub async fn upsert_then_get<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    let cse = resource("cb", "", "cse", 5, 1);
    let mut ae = resource("ae1", "cb", "app", 2, 2);
    ae.et = Some("20991231T235959".into());
    ae.body = format!(
        r#"{{"lbl":["ünïcødé ✓ \"quoted\""],"pad":"{}"}}"#,
        "x".repeat(256 * 1024)
    );
    put(&store, &[cse.clone(), ae.clone()]).await;
    assert_eq!(store.get("cb").await.expect("get"), Some(cse));
    assert_eq!(store.get("ae1").await.expect("get"), Some(ae));
    assert_eq!(store.get("nope").await.expect("get"), None);
}

/// An upsert of an existing `ri` replaces every column, freeing the old name.
pub async fn upsert_replaces<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    put(
        &store,
        &[
            resource("p1", "", "p1", 2, 1),
            resource("p2", "", "p2", 2, 2),
        ],
    )
    .await;
    let mut old = resource("r", "p1", "old", 3, 3);
    old.et = Some("20300101T000000".into());
    old.size = 7;
    put(&store, &[old]).await;
    let new = StoredResource {
        ri: "r".into(),
        pi: "p2".into(),
        rn: "new".into(),
        ty: 4,
        kind: RowKind::Instance,
        seq: 9,
        size: 42,
        et: None,
        body: r#"{"con":"v2"}"#.into(),
    };
    put(&store, std::slice::from_ref(&new)).await;
    assert_eq!(store.get("r").await.expect("get"), Some(new.clone()));
    assert_eq!(
        store.child_by_name("p1", "old").await.expect("by name"),
        None
    );
    assert_eq!(
        store.child_by_name("p2", "new").await.expect("by name"),
        Some(new)
    );
    assert!(store
        .children("p1", None)
        .await
        .expect("children")
        .is_empty());
    // The old name is free again.
    put(&store, &[resource("r2", "p1", "old", 3, 10)]).await;
}

/// `children` is ordered by `seq`, whatever the insertion order, and filters by type.
pub async fn children_in_seq_order_and_by_type<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    put(
        &store,
        &[resource("p", "", "p", 3, 1), resource("q", "", "q", 3, 2)],
    )
    .await;
    put(
        &store,
        &[
            instance("c5", "p", 5, 1, None),
            resource("s3", "p", "sub", 23, 3),
            instance("c9", "p", 9, 1, None),
            resource("k1", "p", "cnt", 3, 100),
            instance("c4", "p", 4, 1, None),
            instance("x7", "q", 7, 1, None),
        ],
    )
    .await;
    put(&store, &[resource("k0", "p", "cnt0", 3, 0)]).await;
    let all = store.children("p", None).await.expect("children");
    assert_eq!(ris(&all), ["k0", "s3", "c4", "c5", "c9", "k1"]);
    let cins = store.children("p", Some(4)).await.expect("children");
    assert_eq!(ris(&cins), ["c4", "c5", "c9"]);
    let cnts = store.children("p", Some(3)).await.expect("children");
    assert_eq!(ris(&cnts), ["k0", "k1"]);
    assert!(store
        .children("p", Some(1))
        .await
        .expect("children")
        .is_empty());
    assert!(store
        .children("none", None)
        .await
        .expect("children")
        .is_empty());
    assert_eq!(all[1], resource("s3", "p", "sub", 23, 3));
}

/// `child_by_name` finds a child by parent and name only.
pub async fn child_by_name<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    let a = resource("a", "cb", "same", 2, 1);
    let b = resource("b", "other", "same", 2, 2);
    put(&store, &[a.clone(), b.clone()]).await;
    assert_eq!(
        store.child_by_name("cb", "same").await.expect("by name"),
        Some(a)
    );
    assert_eq!(
        store.child_by_name("other", "same").await.expect("by name"),
        Some(b)
    );
    assert_eq!(store.child_by_name("cb", "a").await.expect("by name"), None);
    assert_eq!(
        store
            .child_by_name("nobody", "same")
            .await
            .expect("by name"),
        None
    );
}

/// `Delete` removes one row; deleting a missing row is not an error.
pub async fn delete<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    put(
        &store,
        &[
            resource("a", "cb", "a", 2, 1),
            resource("b", "cb", "b", 2, 2),
        ],
    )
    .await;
    store
        .apply(WriteBatch::new().delete("a"))
        .await
        .expect("delete");
    assert_eq!(store.get("a").await.expect("get"), None);
    assert!(store.get("b").await.expect("get").is_some());
    assert_eq!(store.child_by_name("cb", "a").await.expect("by name"), None);
    store
        .apply(WriteBatch::new().delete("a"))
        .await
        .expect("delete missing");
    // The name is free again.
    put(&store, &[resource("a2", "cb", "a", 2, 3)]).await;
}

/// `stream_instance_index` hands over every instance, and only instances, in chunks no
/// larger than asked for.
pub async fn stream_instance_index_delivers_every_instance<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    let mut rows = vec![resource("cnt", "ae", "cnt", 3, 1)];
    for i in 0..25 {
        rows.push(instance(&format!("i{i:02}"), "cnt", 2 + i, 10, None));
    }
    put(&store, &rows).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<InstanceEntry>>(1);
    let consume = async {
        let mut seen = Vec::new();
        while let Some(chunk) = rx.recv().await {
            assert!(
                !chunk.is_empty() && chunk.len() <= 7,
                "chunk of {}",
                chunk.len()
            );
            seen.extend(chunk.into_iter().map(|e| e.seq));
        }
        seen
    };
    let (done, mut seen) = tokio::join!(store.stream_instance_index(7, tx), consume);
    done.expect("stream");
    seen.sort_unstable();
    assert_eq!(seen, (2..27).collect::<Vec<i64>>());
}

/// `DeleteInstancesBefore` removes only that container's instances older than `seq`.
pub async fn delete_instances_before<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    put(
        &store,
        &[
            resource("cnt", "ae", "cnt", 3, 1),
            instance("i1", "cnt", 2, 10, None),
            resource("sub", "cnt", "sub", 3, 3),
            instance("i2", "cnt", 4, 10, None),
            instance("i3", "cnt", 5, 10, None),
            instance("j1", "other", 1, 10, None),
        ],
    )
    .await;
    store
        .apply(WriteBatch {
            ops: vec![WriteOp::DeleteInstancesBefore {
                pi: "cnt".into(),
                seq: 5,
            }],
        })
        .await
        .expect("delete instances before");
    for gone in ["i1", "i2"] {
        assert_eq!(store.get(gone).await.expect("get"), None, "{gone}");
    }
    for kept in ["cnt", "sub", "i3", "j1"] {
        assert!(store.get(kept).await.expect("get").is_some(), "{kept}");
    }
}

/// `DeleteChildren` removes every row of that parent, and only those.
pub async fn delete_children<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    put(
        &store,
        &[
            resource("cnt", "ae", "cnt", 3, 1),
            resource("other", "ae", "other", 3, 2),
            instance("i1", "cnt", 3, 10, None),
            instance("i2", "cnt", 4, 10, None),
            resource("sub", "cnt", "sub", 23, 5),
            resource("grand", "sub", "g", 23, 6),
            instance("j1", "other", 7, 10, None),
        ],
    )
    .await;
    store
        .apply(WriteBatch::new().delete_children("cnt"))
        .await
        .expect("delete children");
    assert!(store
        .children("cnt", None)
        .await
        .expect("children")
        .is_empty());
    for gone in ["i1", "i2", "sub"] {
        assert_eq!(store.get(gone).await.expect("get"), None, "{gone}");
    }
    for kept in ["cnt", "other", "grand", "j1"] {
        assert!(store.get(kept).await.expect("get").is_some(), "{kept}");
    }
    store
        .apply(WriteBatch::new().delete_children("cnt"))
        .await
        .expect("delete no children");
}

/// `load_tree` returns every tree row and no instance, ordered by `seq`.
pub async fn load_tree_excludes_instances<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    assert!(store.load_tree().await.expect("load").is_empty());
    let cnt = resource("cnt", "ae", "cnt", 3, 3);
    let ae = resource("ae", "cb", "ae", 2, 2);
    let cb = resource("cb", "", "cse", 5, 1);
    let acp = resource("acp", "cb", "acp", 1, 6);
    put(
        &store,
        &[cnt.clone(), instance("i1", "cnt", 4, 1, None), ae.clone()],
    )
    .await;
    put(
        &store,
        &[acp.clone(), instance("i2", "cnt", 5, 1, None), cb.clone()],
    )
    .await;
    assert_eq!(store.load_tree().await.expect("load"), [cb, ae, cnt, acp]);
}

/// `load_instance_index` returns only instances, without bodies, ordered by `seq`.
pub async fn load_instance_index_only_instances<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    assert!(store.load_instance_index().await.expect("load").is_empty());
    let i3 = instance("i3", "c2", 30, 300, Some("20991231T000000"));
    let i1 = instance("i1", "c1", 10, 100, None);
    let i2 = instance("i2", "c1", 20, 200, Some("20301231T000000"));
    put(
        &store,
        &[
            resource("c1", "ae", "c1", 3, 1),
            i3.clone(),
            resource("c2", "ae", "c2", 3, 2),
            i1.clone(),
            i2.clone(),
            resource("late", "ae", "late", 3, 40),
        ],
    )
    .await;
    let index = store.load_instance_index().await.expect("load");
    assert_eq!(index, [entry(&i1), entry(&i2), entry(&i3)]);
}

/// A row's [`RowKind`], not its resource type, decides where it loads and what
/// `DeleteInstancesBefore` removes: `<timeSeriesInstance>` (30) and
/// `<flexContainerInstance>` (58) rows are instances like `<contentInstance>`, and the kind
/// of a row changes with an upsert.
pub async fn instance_kind_is_data_not_type<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    let as_kind = |mut r: StoredResource, ty: u16, kind: RowKind| {
        r.ty = ty;
        r.kind = kind;
        r
    };
    let ts = resource("ts", "ae", "ts", 29, 1);
    let tsi1 = as_kind(instance("tsi1", "ts", 2, 5, None), 30, RowKind::Instance);
    let sub = resource("sub", "ts", "sub", 23, 3);
    let tsi2 = as_kind(
        instance("tsi2", "ts", 4, 6, Some("20991231T000000")),
        30,
        RowKind::Instance,
    );
    let fcn = resource("fcn", "ae", "fcn", 28, 5);
    let fcci = as_kind(instance("fcci", "fcn", 6, 7, None), 58, RowKind::Instance);
    // A type the store has never heard of, kept in the tree.
    let odd = as_kind(resource("odd", "ae", "odd", 4, 7), 4, RowKind::Tree);
    put(
        &store,
        &[
            ts.clone(),
            tsi1.clone(),
            sub.clone(),
            tsi2.clone(),
            fcn.clone(),
            fcci.clone(),
            odd.clone(),
        ],
    )
    .await;
    assert_eq!(
        store.load_tree().await.expect("tree"),
        [ts.clone(), sub.clone(), fcn.clone(), odd.clone()]
    );
    assert_eq!(
        store.load_instance_index().await.expect("index"),
        [entry(&tsi1), entry(&tsi2), entry(&fcci)]
    );
    assert_eq!(store.get("tsi2").await.expect("get"), Some(tsi2.clone()));
    assert_eq!(
        ris(&store.children("ts", Some(30)).await.expect("children")),
        ["tsi1", "tsi2"]
    );

    // Eviction removes the instances below `seq`, never a tree row among them.
    store
        .apply(WriteBatch {
            ops: vec![WriteOp::DeleteInstancesBefore {
                pi: "ts".into(),
                seq: 5,
            }],
        })
        .await
        .expect("delete instances before");
    assert_eq!(
        ris(&store.children("ts", None).await.expect("children")),
        ["sub"]
    );

    // An upsert moves a row between kinds.
    let fcci_in_tree = as_kind(fcci.clone(), 58, RowKind::Tree);
    put(&store, std::slice::from_ref(&fcci_in_tree)).await;
    assert!(store.load_instance_index().await.expect("index").is_empty());
    assert_eq!(
        store.load_tree().await.expect("tree"),
        [ts, sub, fcn, fcci_in_tree, odd]
    );
}

/// `max_seq` is 0 when empty, else the largest stored `seq`, whatever its type.
pub async fn max_seq<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    assert_eq!(store.max_seq().await.expect("max"), 0);
    put(&store, &[resource("cb", "", "cse", 5, 3)]).await;
    assert_eq!(store.max_seq().await.expect("max"), 3);
    put(
        &store,
        &[
            instance("i", "cb", 17, 1, None),
            resource("ae", "cb", "ae", 2, 9),
        ],
    )
    .await;
    assert_eq!(store.max_seq().await.expect("max"), 17);
    put(&store, &[resource("ae2", "cb", "ae2", 2, 21)]).await;
    assert_eq!(store.max_seq().await.expect("max"), 21);
    store
        .apply(WriteBatch::new().delete("ae2"))
        .await
        .expect("delete");
    assert_eq!(store.max_seq().await.expect("max"), 17);
}

/// An empty batch commits and changes nothing.
pub async fn empty_batch<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    store.apply(WriteBatch::new()).await.expect("empty batch");
    assert_eq!(store.max_seq().await.expect("max"), 0);
}

/// A batch whose second op violates `(pi, rn)` uniqueness leaves nothing of itself and
/// answers [`StoreError::Conflict`]; a good batch queued alongside still commits.
pub async fn batch_is_atomic<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    put(
        &store,
        &[
            resource("cnt", "ae", "cnt", 3, 1),
            resource("keep", "cnt", "taken", 3, 2),
        ],
    )
    .await;

    let bad = WriteBatch::new()
        .upsert(resource("new1", "cnt", "fresh", 3, 3))
        .upsert(resource("new2", "cnt", "taken", 3, 4));
    let bad_with_delete = WriteBatch::new()
        .delete("keep")
        .upsert(resource("new3", "cnt", "fresh3", 3, 5))
        .delete_children("cnt")
        .upsert(resource("cnt", "ae", "cnt", 3, 1))
        .upsert(resource("new4", "ae", "cnt", 3, 6));
    let good = WriteBatch::new()
        .upsert(resource("good1", "cnt", "good1", 3, 7))
        .upsert(resource("good2", "cnt", "good2", 3, 8));
    // Enqueued together so a group-committing backend puts them in one transaction.
    let (bad, bad_with_delete, good) = tokio::join!(
        store.apply(bad),
        store.apply(bad_with_delete),
        store.apply(good)
    );
    assert!(matches!(bad, Err(StoreError::Conflict(_))), "{bad:?}");
    assert!(
        matches!(bad_with_delete, Err(StoreError::Conflict(_))),
        "{bad_with_delete:?}"
    );
    good.expect("the good batch commits");

    for gone in ["new1", "new2", "new3", "new4"] {
        assert_eq!(store.get(gone).await.expect("get"), None, "{gone}");
    }
    let children = store.children("cnt", None).await.expect("children");
    assert_eq!(ris(&children), ["keep", "good1", "good2"]);

    // The store still works after a rejected batch.
    put(&store, &[resource("after", "cnt", "after", 3, 9)]).await;
    assert_eq!(store.max_seq().await.expect("max"), 9);
}

/// Batches apply in the order of the `apply` calls, even when their futures are awaited in
/// another order (the trait's ordering contract).
pub async fn apply_order_is_call_order<F: Fn() -> S, S: Store>(open: F) {
    let store = open();
    let n = 50;
    let pending: Vec<_> = (0..n)
        .map(|i| {
            let mut r = resource("x", "cb", "x", 3, 1);
            r.body = format!(r#"{{"v":{i}}}"#);
            r.seq = i;
            store.apply(WriteBatch::new().upsert(r))
        })
        .collect();
    for p in pending.into_iter().rev() {
        p.await.expect("apply");
    }
    let x = store.get("x").await.expect("get").expect("x stored");
    assert_eq!(
        x.body,
        format!(r#"{{"v":{}}}"#, n - 1),
        "last call must win"
    );
}

/// 200 applies from concurrent tasks all commit.
pub async fn concurrent_applies<F: Fn() -> S, S: Store>(open: F) {
    let store = Arc::new(open());
    put(&*store, &[resource("cnt", "ae", "cnt", 3, 0)]).await;
    let tasks: Vec<_> = (1..=200)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut cnt = resource("cnt", "ae", "cnt", 3, 0);
                cnt.body = format!(r#"{{"cni":{i}}}"#);
                let batch = WriteBatch::new()
                    .upsert(instance(&format!("i{i}"), "cnt", i, 300, None))
                    .upsert(cnt);
                store.apply(batch).await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("apply");
    }
    let cins = store.children("cnt", Some(4)).await.expect("children");
    assert_eq!(cins.len(), 200);
    assert!(cins.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(store.load_instance_index().await.expect("index").len(), 200);
    assert_eq!(store.max_seq().await.expect("max"), 200);
}

/// Committed data survives closing and reopening the store.
pub async fn survives_reopen<F: Fn() -> S, S: Store>(open: F) {
    let cb = resource("cb", "", "cse", 5, 1);
    let cnt = resource("cnt", "cb", "cnt", 3, 2);
    let i4 = instance("i4", "cnt", 4, 44, Some("20991231T000000"));
    {
        let store = open();
        put(
            &store,
            &[cb.clone(), cnt.clone(), instance("i3", "cnt", 3, 33, None)],
        )
        .await;
        put(&store, &[i4.clone(), resource("gone", "cb", "gone", 2, 5)]).await;
        store
            .apply(WriteBatch::new().delete("gone").delete("i3"))
            .await
            .expect("delete");
    }
    let store = open();
    assert_eq!(store.load_tree().await.expect("tree"), [cb, cnt]);
    assert_eq!(
        store.load_instance_index().await.expect("index"),
        [entry(&i4)]
    );
    assert_eq!(store.get("i4").await.expect("get"), Some(i4));
    assert_eq!(store.max_seq().await.expect("max"), 4);
    // And it is writable again.
    put(&store, &[resource("ae", "cb", "ae", 2, 6)]).await;
    drop(store);
    let store = open();
    assert_eq!(store.max_seq().await.expect("max"), 6);
}
