//! Verified points of access (docs/decisions.md, "An AE's `poa` is verified before
//! unsolicited traffic"): an AE writes its own `poa`, so without a check it could name a
//! bystander's address and have this CSE send notifications there. Before a subscription
//! notification (or a deletion notice) goes to an AE's `poa`, that `poa` list must have
//! answered a verification request (`vrq`) with 2000. The answer is remembered per AE
//! until its `poa` changes.
//!
//! This module owns that state: per AE, the `poa` list verified, or a verification in
//! flight with the notifications held for it (a bounded number; an unreachable `poa` is
//! tried again after [`RETRY_UNREACHABLE`]), or a failed one that is not retried before
//! [`RETRY_AFTER`]. Results of non-blocking requests, which the AE asked for in that
//! very request, and NOTIFYs relayed to it under its own ACPs are not gated.

use crate::outgoing::OutgoingNotification;
use crate::tree::Ri;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Notifications held for one AE while its `poa` is being verified; more are dropped.
pub(crate) const MAX_HELD: usize = 64;

/// AEs whose state is kept; beyond it, verified and failed entries are forgotten (they
/// are verified again when next needed).
const MAX_ENTRIES: usize = 100_000;

/// Pauses before each attempt to reach a `poa` for verification: an unreachable one is
/// tried again after them (notifications stay held meanwhile), then counts as failed.
pub(crate) const RETRY_UNREACHABLE: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// A failed verification is not repeated for this long: notifications to that `poa`
/// are dropped meanwhile, so the bystander gets at most one request per period.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(60);

enum Check {
    Verified(Vec<String>),
    Pending {
        poa: Vec<String>,
        held: Vec<OutgoingNotification>,
    },
    Failed {
        poa: Vec<String>,
        at: Instant,
    },
}

/// What to do with a notification for an AE's `poa`.
pub(crate) enum Admission {
    /// Verified: send it.
    Send(Box<OutgoingNotification>),
    /// Held until the verification in flight ends.
    Held,
    /// Nobody has verified this `poa` yet: the caller starts the verification; the
    /// notification is held for it.
    Verify,
    /// Dropped: the `poa` failed verification recently, or too many are held.
    Dropped(&'static str),
}

/// Per-AE verification state of `poa` lists.
#[derive(Default)]
pub(crate) struct PoaChecks {
    by_ae: Mutex<HashMap<Ri, Check>>,
}

impl PoaChecks {
    /// Decides about `notification`, bound for `poa` of the AE `ae`.
    pub(crate) fn admit(
        &self,
        ae: &Ri,
        poa: &[String],
        notification: OutgoingNotification,
    ) -> Admission {
        let mut map = self.by_ae.lock();
        match map.get_mut(ae) {
            Some(Check::Verified(done)) if done == poa => {
                return Admission::Send(Box::new(notification))
            }
            Some(Check::Pending { poa: asked, held }) if asked == poa => {
                if held.len() >= MAX_HELD {
                    return Admission::Dropped("too many notifications wait for verification");
                }
                held.push(notification);
                return Admission::Held;
            }
            Some(Check::Failed { poa: asked, at })
                if asked == poa && at.elapsed() < RETRY_AFTER =>
            {
                return Admission::Dropped("the point of access failed verification");
            }
            _ => {}
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, c| matches!(c, Check::Pending { .. }));
        }
        map.insert(
            ae.clone(),
            Check::Pending {
                poa: poa.to_vec(),
                held: vec![notification],
            },
        );
        Admission::Verify
    }

    /// Records the outcome of the verification of `poa` for `ae` and returns the
    /// notifications held for it: to send when `verified`, dropped otherwise. A
    /// verification overtaken by a newer one (the `poa` changed) releases nothing.
    pub(crate) fn settle(
        &self,
        ae: &Ri,
        poa: &[String],
        verified: bool,
    ) -> Vec<OutgoingNotification> {
        let mut map = self.by_ae.lock();
        let held = match map.get_mut(ae) {
            Some(Check::Pending { poa: asked, held }) if asked == poa => std::mem::take(held),
            _ => return Vec::new(),
        };
        let next = if verified {
            Check::Verified(poa.to_vec())
        } else {
            Check::Failed {
                poa: poa.to_vec(),
                at: Instant::now(),
            }
        };
        map.insert(ae.clone(), next);
        held
    }

    /// Whether `poa` of `ae` answered a verification and still is its point of access.
    pub(crate) fn is_verified(&self, ae: &Ri, poa: &[String]) -> bool {
        matches!(self.by_ae.lock().get(ae), Some(Check::Verified(done)) if done == poa)
    }

    /// Records that `poa` of `ae` answered a verification made elsewhere (a subscription
    /// naming the AE as its target).
    pub(crate) fn verified(&self, ae: &Ri, poa: &[String]) {
        let mut map = self.by_ae.lock();
        if let Some(Check::Pending { .. }) = map.get(ae) {
            return; // the verification in flight releases its held notifications
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, c| matches!(c, Check::Pending { .. }));
        }
        map.insert(ae.clone(), Check::Verified(poa.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(n: u32) -> OutgoingNotification {
        OutgoingNotification {
            subscription: format!("/id-in/sub{n}"),
            targets: vec!["http://127.0.0.1:9/".into()],
            to: "Cae".into(),
            peer: None,
            kind: Default::default(),
            event: std::sync::Arc::new(serde_json::json!({ "n": n })),
            batch: None,
            rate: None,
            latest_only: false,
            pending_latest: false,
        }
    }

    #[test]
    fn held_until_verified_then_sent_and_reverified_when_poa_changes() {
        let checks = PoaChecks::default();
        let ae: Ri = "CAE1".into();
        let poa = vec!["http://127.0.0.1:9/".to_owned()];
        assert!(matches!(
            checks.admit(&ae, &poa, note(1)),
            Admission::Verify
        ));
        assert!(matches!(checks.admit(&ae, &poa, note(2)), Admission::Held));
        let released = checks.settle(&ae, &poa, true);
        assert_eq!(released.len(), 2);
        assert_eq!(released[0].event["n"], 1, "held in order");
        assert!(matches!(
            checks.admit(&ae, &poa, note(3)),
            Admission::Send(_)
        ));
        let moved = vec!["http://127.0.0.1:10/".to_owned()];
        assert!(matches!(
            checks.admit(&ae, &moved, note(4)),
            Admission::Verify
        ));
    }

    #[test]
    fn a_failed_poa_drops_until_retry_and_holding_is_bounded() {
        let checks = PoaChecks::default();
        let ae: Ri = "CAE2".into();
        let poa = vec!["http://127.0.0.1:9/".to_owned()];
        assert!(matches!(
            checks.admit(&ae, &poa, note(1)),
            Admission::Verify
        ));
        for n in 1..MAX_HELD as u32 {
            assert!(matches!(checks.admit(&ae, &poa, note(n)), Admission::Held));
        }
        assert!(matches!(
            checks.admit(&ae, &poa, note(0)),
            Admission::Dropped(_)
        ));
        assert_eq!(checks.settle(&ae, &poa, false).len(), MAX_HELD);
        assert!(matches!(
            checks.admit(&ae, &poa, note(9)),
            Admission::Dropped(_)
        ));
        // A verification overtaken by a newer poa releases nothing.
        let other = vec!["http://127.0.0.1:11/".to_owned()];
        assert!(checks.settle(&ae, &other, true).is_empty());
    }
}
