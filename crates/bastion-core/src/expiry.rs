//! Expiry (TS-0001 §9.6.1.3; core-resources.md §4): resources whose `et` has passed are
//! removed with their subtrees by a periodic sweep. Until the sweep runs, resolution
//! already treats them as absent. The same periodic task runs missing-data detection of
//! `<timeSeries>` (`missing_data.rs`) and releases notifications held by a subscription's
//! schedule (`notify.rs`, `held.rs`).

use crate::tree::Ri;
use crate::types::{remove_instance, remove_node};
use crate::Cse;
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn spawn(cse: Arc<Cse>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval(Duration::from_millis(cse.config.expiry_interval_ms.max(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = sweep(&cse).await {
                tracing::warn!(error = %err, "expiry sweep failed");
            }
            // Missing-data detection rides on the same periodic pass: one task for
            // every timeSeries (missing_data.rs).
            if let Err(err) = crate::missing_data::sweep(&cse).await {
                tracing::warn!(error = %err, "missing-data detection failed");
            }
            // Notifications held by a subscription's schedule leave when it opens.
            cse.release_held();
        }
    })
}

/// Removes everything expired at this moment.
pub(crate) async fn sweep(cse: &Cse) -> Result<(), bastion_proto::RequestError> {
    let now = cse.now();
    if cse.write_guard().is_err() {
        return Ok(());
    }
    // Scan under the read lock: most sweeps find nothing and must not stall requests.
    let (expired_nodes, expired_instances) = {
        let tree = cse.tree.read();
        let nodes: Vec<Ri> = tree
            .nodes
            .values()
            .filter(|n| n.pi.is_some() && n.is_expired(now))
            .map(|n| n.ri.clone())
            .collect();
        let instances: Vec<(Ri, String, i64)> = tree
            .nodes
            .values()
            .filter_map(|n| Some((n, n.container()?)))
            .flat_map(|(n, c)| {
                c.instances
                    .iter()
                    .filter(|i| i.et.is_some_and(|et| et <= now.0))
                    .map(move |i| (n.ri.clone(), i.ri.to_string(), i.seq))
            })
            .collect();
        (nodes, instances)
    };
    if expired_nodes.is_empty() && expired_instances.is_empty() {
        return Ok(());
    }
    let mut notices = crate::notify::Notices::default();
    let mut ended = Vec::new();
    let mut copies = Vec::new();
    let pending = {
        let mut tree = cse.tree.write();
        let mut ops = Vec::new();
        for (parent, ri, seq) in &expired_instances {
            if let Some(more) = remove_instance(&mut tree, parent, ri, Some(*seq)) {
                ops.extend(more);
            }
        }
        // An expired resource is deleted by the CSE itself (TS-0001 9.6.1.3: `net` 2
        // and 4 still apply, with this CSE as the originator).
        let originator = cse.config.cse_id.clone();
        // What goes with an expired resource (a locationPolicy's container) goes too.
        let linked: Vec<Ri> = expired_nodes
            .iter()
            .flat_map(|ri| crate::types::linked(&tree, ri))
            .collect();
        for ri in expired_nodes.iter().chain(&linked) {
            copies.extend(crate::announce::copies_under(&tree, ri));
            let (more, gone, counted) = cse.on_remove(&mut tree, ri, &originator);
            notices.extend(more);
            ended.extend(gone);
            ops.extend(remove_node(&mut tree, ri));
            ops.extend(crate::notify::counted_rows(&tree, &counted));
        }
        tracing::debug!(
            nodes = expired_nodes.len(),
            instances = expired_instances.len(),
            "expired"
        );
        cse.committer.enqueue(ops)
    };
    pending.durable().await?;
    for ri in &expired_nodes {
        cse.polling.remove(ri);
    }
    cse.dispatch(notices).await;
    for (ri, state) in ended {
        cse.subscription_ended(&ri, &state);
    }
    cse.withdraw(copies).await;
    Ok(())
}
