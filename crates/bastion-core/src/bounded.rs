//! Bounded concurrency: running a list of futures with at most a given number in flight,
//! in the calling task. The one home of this for every operation that sends several
//! requests at once (group fan-out, announcement, a crossResourceSubscription's targets
//! on other CSEs); kept below the modules that use it so none of them depends on another.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Requests in flight at once for one operation that sends several (the members of one
/// fan-out, the target subscriptions of one crossResourceSubscription).
pub(crate) const MAX_IN_FLIGHT: usize = 16;

/// Runs `futures` with at most `limit` in flight, in one task, and returns their outputs
/// in the original order.
pub(crate) async fn join_bounded<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let total = futures.len();
    let mut waiting = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::new();
    let mut out: Vec<Option<F::Output>> = (0..total).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        while running.len() < limit.max(1) {
            match waiting.next() {
                Some((i, f)) => running.push((i, Box::pin(f))),
                None => break,
            }
        }
        let mut i = 0;
        while i < running.len() {
            if let Poll::Ready(v) = running[i].1.as_mut().poll(cx) {
                let (idx, _) = running.swap_remove(i);
                out[idx] = Some(v);
                if let Some((j, f)) = waiting.next() {
                    running.push((j, Box::pin(f)));
                }
            } else {
                i += 1;
            }
        }
        if running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn join_bounded_keeps_order_and_limit() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let live = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let calls: Vec<_> = (0..40u64)
            .map(|i| {
                let (live, peak) = (&live, &peak);
                async move {
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(40 - i)).await;
                    live.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            })
            .collect();
        let out = join_bounded(calls, 16).await;
        assert_eq!(out, (0..40).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 16);
    }
}
