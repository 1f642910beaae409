//! Missing-data detection of `<timeSeries>` (TS-0001 9.6.36, 10.2.4.29): one pass over
//! the tree, run by the periodic sweep beside expiry, records the data points whose wait
//! ended in each timeSeries' `mdlt`/`mdc` (`types/time_series.rs` decides what is
//! missing) and notifies the subscriptions with `net` 8 (`notify.rs`), with this CSE as
//! the originator. Its cost is one scan of the nodes per pass and one row write per
//! timeSeries that missed a point; nothing is kept per timeSeries beyond its `Series`.

use crate::notify::{Event, Notices};
use crate::subscription::NET_MISSING_DATA;
use crate::tree::{Ri, Tree};
use crate::types::{missing_due, take_missing};
use crate::Cse;
use bastion_proto::{RequestError, ResourceType};
use bastion_store::WriteOp;
use serde_json::{Map, Value};

/// Records what every timeSeries missed by now and notifies its subscribers.
pub(crate) async fn sweep(cse: &Cse) -> Result<(), RequestError> {
    let now_ms = cse.now_ms();
    if cse.write_guard().is_err() {
        return Ok(());
    }
    // Scan under the read lock: most passes find nothing and must not stall requests.
    let due: Vec<Ri> = {
        let tree = cse.tree.read();
        tree.nodes
            .values()
            .filter(|n| n.ty == ResourceType::TimeSeries && missing_due(n, now_ms))
            .map(|n| n.ri.clone())
            .collect()
    };
    if due.is_empty() {
        return Ok(());
    }
    let mut notices = Notices::default();
    let pending = {
        let mut tree = cse.tree.write();
        let mut ops = Vec::new();
        for ri in &due {
            if let Some((more, found)) = record(cse, &mut tree, ri, now_ms) {
                ops.extend(more);
                notices.extend(found);
            }
        }
        cse.committer.enqueue(ops)
    };
    pending.durable().await?;
    cse.dispatch(notices).await;
    Ok(())
}

/// The rows and notices of what timeSeries `ri` missed by `now_ms`.
fn record(cse: &Cse, tree: &mut Tree, ri: &Ri, now_ms: i64) -> Option<(Vec<WriteOp>, Notices)> {
    let (found, row) = take_missing(tree.get_mut(ri)?, now_ms)?;
    // The notification reports what this pass found (`m2m:tsn`, TS-0004 6.3.5).
    let mut report = Map::new();
    report.insert("mdc".into(), Value::from(found.len()));
    report.insert("mdlt".into(), Value::Array(found));
    let (notices, counted) = cse.detect(
        tree,
        Event {
            net: NET_MISSING_DATA,
            subject: ri,
            ty: ResourceType::TimeSeries,
            resource: &report,
            modified: &[],
            operation: 0,
            originator: &cse.config.cse_id,
        },
    );
    let mut ops = vec![row];
    ops.extend(crate::notify::counted_rows(tree, &counted));
    Some((ops, notices))
}
