//! One NOTIFY on the wire: building the request primitive, trying the targets in order,
//! classifying what came back, and the retry schedule.

use crate::config::NotifierConfig;
use crate::error::TargetFailure;
use crate::transport::Routes;
use bastion_client::ClientError;
use bastion_proto::{Operation, Request, Response};
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `ec` (event category) of a notification sent under `ln`: 4, "latest".
const EC_LATEST: &str = "4";

/// What one attempt at a destination achieved.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A target answered; the response when it was a oneM2M one.
    Answered(Box<AnswerKind>),
    /// No target answered but some may later (network failure, timeout).
    Transient(Vec<TargetFailure>),
    /// No target can ever be used (bad URL, unsupported scheme, unencodable request).
    Unusable(Vec<TargetFailure>),
}

/// How a target answered.
#[derive(Debug)]
pub(crate) enum AnswerKind {
    /// A oneM2M response, whatever its status code (boxed: a response is large).
    OneM2m(Box<Response>),
    /// An HTTP answer that is not a oneM2M response this CSE understands.
    Other {
        target: String,
        code: Option<u16>,
        reason: String,
    },
}

/// How the client's error for one target is treated.
enum Verdict {
    /// The server answered (not a oneM2M response, or one we cannot read).
    Answered { code: Option<u16> },
    /// Trying again later may work.
    Transient,
    /// Trying again can never work for this target.
    Unusable,
}

/// Sorts a client error. A reachable server that answers something non-oneM2M counts as
/// an answer: URL targets' responses are not interpreted (core-resources.md §3.7).
fn verdict(err: &ClientError) -> Verdict {
    match err {
        ClientError::MalformedResponse(_) | ClientError::BodyTooLarge(_) => {
            Verdict::Answered { code: None }
        }
        ClientError::UnknownRsc(code) => Verdict::Answered { code: Some(*code) },
        ClientError::InvalidTarget(_)
        | ClientError::UnsupportedScheme(_)
        | ClientError::InvalidRequest(_) => Verdict::Unusable,
        _ => Verdict::Transient,
    }
}

/// Sends `req` to each target in turn, one exchange each bounded by `timeout`, until one
/// answers. The transport is asked anew on every attempt, so a revoked association stops
/// the next one.
pub(crate) async fn attempt(
    transport: &dyn Routes,
    peer: Option<&str>,
    targets: &[String],
    req: &Request,
    timeout: Duration,
) -> Outcome {
    let mut failures = Vec::new();
    let mut transient = false;
    for (target, route) in targets.iter().zip(transport.routes(peer, targets)) {
        let transport = match route {
            Ok(transport) => transport,
            Err(reason) => {
                failures.push(TargetFailure {
                    target: target.clone(),
                    reason,
                });
                continue;
            }
        };
        let err = match tokio::time::timeout(timeout, transport.send(target, req)).await {
            Ok(Ok(resp)) => return Outcome::Answered(Box::new(AnswerKind::OneM2m(Box::new(resp)))),
            Ok(Err(err)) => err,
            Err(_) => ClientError::Timeout(timeout),
        };
        match verdict(&err) {
            Verdict::Answered { code } => {
                return Outcome::Answered(Box::new(AnswerKind::Other {
                    target: target.clone(),
                    code,
                    reason: err.to_string(),
                }))
            }
            Verdict::Transient => transient = true,
            Verdict::Unusable => {}
        }
        failures.push(TargetFailure {
            target: target.clone(),
            reason: err.to_string(),
        });
    }
    if transient {
        Outcome::Transient(failures)
    } else {
        Outcome::Unusable(failures)
    }
}

/// Builds the NOTIFY primitive: `fr` the hosting CSE, a fresh `rqi`, the given `pc`.
pub(crate) fn notify_request(
    config: &NotifierConfig,
    rqi: String,
    to: &str,
    pc: Value,
    latest: bool,
) -> Request {
    Request {
        op: Some(Operation::Notify),
        to: to.to_owned(),
        fr: Some(config.originator.clone()),
        rqi: Some(rqi),
        rvi: Some(config.release.clone()),
        pc: Some(pc),
        ec: latest.then(|| EC_LATEST.to_owned()),
        ..Request::default()
    }
}

/// Request identifiers and jitter: a random per-process prefix (so identifiers do not
/// repeat across restarts) and a SplitMix64 sequence seeded from the standard library's
/// per-process random hasher keys (no extra dependency for non-cryptographic randomness).
#[derive(Debug)]
pub(crate) struct Entropy {
    prefix: String,
    next_rqi: AtomicU64,
    state: AtomicU64,
}

impl Entropy {
    pub fn new() -> Entropy {
        let seed = RandomState::new().hash_one(std::process::id());
        Entropy {
            prefix: format!("ntf-{:08x}-", seed >> 32),
            next_rqi: AtomicU64::new(1),
            state: AtomicU64::new(seed),
        }
    }

    /// A request identifier unique within this notifier and very likely across restarts.
    pub fn rqi(&self) -> String {
        let n = self.next_rqi.fetch_add(1, Ordering::Relaxed);
        format!("{}{n}", self.prefix)
    }

    /// A pseudo-random 64-bit number (SplitMix64 step).
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The wait after the `failures`-th failed attempt (1-based): `backoff_initial`
/// doubled per earlier failure, capped at `backoff_max`, then "equal jitter": uniformly
/// in `[d/2, d]`, so synchronised retries of many notifications spread out while the wait
/// never drops below half the schedule.
pub(crate) fn backoff(config: &NotifierConfig, failures: u32, random: u64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let base = config
        .backoff_initial
        .saturating_mul(1u32 << doublings.min(31))
        .min(config.backoff_max);
    let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
    let half = nanos / 2;
    let spread = nanos - half;
    let jitter = if spread == 0 {
        0
    } else {
        random % (spread + 1)
    };
    Duration::from_nanos(half + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_half() {
        let config = NotifierConfig {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            ..NotifierConfig::default()
        };
        let e = Entropy::new();
        for (failures, full) in [(1, 500), (2, 1000), (3, 2000), (7, 30_000), (40, 30_000)] {
            let full = Duration::from_millis(full);
            for _ in 0..50 {
                let d = backoff(&config, failures, e.next_u64());
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?} vs {full:?}");
            }
        }
        assert_eq!(backoff(&config, 1, 0), Duration::from_millis(250));
    }

    #[test]
    fn rqis_are_unique() {
        let e = Entropy::new();
        let a = e.rqi();
        let b = e.rqi();
        assert_ne!(a, b);
        assert!(a.starts_with("ntf-"));
    }

    #[test]
    fn request_carries_the_notify_parameters() {
        let config = NotifierConfig::default();
        let req = notify_request(&config, "r1".into(), "Cae", serde_json::json!({}), true);
        assert_eq!(req.op, Some(Operation::Notify));
        assert_eq!(req.fr.as_deref(), Some("/id-in"));
        assert_eq!(req.rvi.as_deref(), Some("3"));
        assert_eq!(req.ec.as_deref(), Some("4"));
    }
}
