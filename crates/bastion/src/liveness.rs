//! The registrar side of the registration checks: every `[cse] liveness-check-secs` the
//! CSE asks each CSE registered with it for its CSEBase (`Cse::check_registrees`) and
//! logs the ones that do not answer (docs/federation.md, "Liveness"). The registree side
//! (an MN checking its own registration) is in `registrar.rs`.

use bastion_core::{Cse, Liveness};
use std::sync::Arc;
use std::time::Duration;

/// Checks the registrees every `every`, forever, logging each outcome.
pub fn spawn(cse: Arc<Cse>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            for (csi, outcome) in cse.check_registrees().await {
                log(&csi, &outcome);
            }
        }
    })
}

fn log(csi: &str, outcome: &Liveness) {
    match outcome {
        Liveness::Answered(rsc) => {
            tracing::debug!(registree = %csi, rsc = rsc.code(), "registree answered the liveness check")
        }
        Liveness::Unreachable(why) => {
            tracing::warn!(registree = %csi, "registree did not answer the liveness check: {why}")
        }
    }
}
