//! The state of one destination: per-subscription batch buffers, ready notifications and
//! rate windows. Pure: every method takes `now`, nothing here sleeps or does I/O, so the
//! batching and rate semantics are unit-tested with a synthetic clock.

use crate::config::{DeliveryPolicy, PendingPolicy};
use crate::payload::{Charge, Payload};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// One NOTIFY waiting to be sent (or in flight): a single event, a batch, or the newest
/// event of a batch.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Subscription resource ID, for rate state and logs.
    pub sub: String,
    /// `to` of the NOTIFY.
    pub to: String,
    /// What the `pc` is made of, built only when the NOTIFY is sent.
    pub body: Body,
    /// Events this NOTIFY accounts for.
    pub events: u64,
    /// Sent under `ln`: the request carries `ec` 4 (latest).
    pub latest: bool,
    /// Order of arrival in the destination, across subscriptions.
    seq: u64,
}

/// The events of one NOTIFY, each still charged to the byte budgets.
#[derive(Debug)]
pub(crate) enum Body {
    /// `{"m2m:sgn": event}`.
    Sgn(Payload),
    /// `{"m2m:agn": {"m2m:sgn": [events]}}`.
    Agn(Vec<Payload>),
    /// `{"m2m:rsp": response}`.
    Rsp(Payload),
}

impl Body {
    /// The `pc` of the NOTIFY, and the charges, which stay taken until the notification
    /// is finished (the request holds the events meanwhile).
    pub fn into_pc(self) -> (Value, Vec<Charge>) {
        let mut charges = Vec::new();
        let mut take = |p: Payload| {
            let Payload { event, charge } = p;
            charges.push(charge);
            Payload {
                event,
                charge: Charge::none(),
            }
            .into_value()
        };
        let pc = match self {
            Body::Sgn(p) => json!({ "m2m:sgn": take(p) }),
            Body::Rsp(p) => json!({ "m2m:rsp": take(p) }),
            Body::Agn(events) => {
                let events: Vec<Value> = events.into_iter().map(take).collect();
                json!({ "m2m:agn": { "m2m:sgn": events } })
            }
        };
        (pc, charges)
    }
}

/// What the worker should do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Send this notification now (its first attempt is already counted in the rate log).
    Send(Outgoing),
    /// Nothing can be sent before this instant (a batch timer or a rate window).
    Wait(Instant),
    /// Nothing is held at all.
    Idle,
}

/// The rejected event did not fit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// One subscription's state within a destination.
#[derive(Debug)]
struct SubQueue {
    policy: DeliveryPolicy,
    /// Buffered events of the current batch (only the newest under `ln`).
    batch: Vec<Payload>,
    /// Events received since the current batch started (counts superseded ones, so `num`
    /// is reached by arrivals, as the specification counts them).
    batch_received: u32,
    /// When the first event of the current batch arrived.
    batch_started: Option<Instant>,
    /// `to` of the newest batched event.
    batch_to: String,
    /// Notifications formed and waiting, oldest first.
    ready: VecDeque<Outgoing>,
    /// Instants of the attempts inside the current rate window, oldest first.
    sent: VecDeque<Instant>,
}

impl SubQueue {
    fn new(policy: DeliveryPolicy) -> SubQueue {
        SubQueue {
            policy,
            batch: Vec::new(),
            batch_received: 0,
            batch_started: None,
            batch_to: String::new(),
            ready: VecDeque::new(),
            sent: VecDeque::new(),
        }
    }

    /// Whether a newer notification replaces the older held ones.
    fn collapses(&self, unreachable: bool) -> bool {
        self.policy.latest_only || (unreachable && self.policy.pending == PendingPolicy::SendLatest)
    }

    /// When the current batch must be sent, if one is buffered.
    fn batch_deadline(&self) -> Option<Instant> {
        let started = self.batch_started?;
        let dur = self.policy.batch.map(|b| b.dur).unwrap_or_default();
        Some(started + dur)
    }

    /// Drops rate-log entries older than the window; returns when the next attempt is
    /// allowed, or `None` when it is allowed now.
    fn rate_blocked_until(&mut self, now: Instant) -> Option<Instant> {
        let Some(rate) = self.policy.rate else {
            self.sent.clear();
            return None;
        };
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= rate.window)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < rate.max.max(1) as usize {
            return None;
        }
        self.sent.front().map(|t| *t + rate.window)
    }

    /// Whether this subscription still needs state kept (events or a live rate window).
    fn is_empty(&mut self, now: Instant) -> bool {
        self.batch.is_empty() && self.ready.is_empty() && {
            self.rate_blocked_until(now);
            self.sent.is_empty()
        }
    }
}

/// All state of one destination. Events are counted in `pending` from acceptance until
/// they are delivered, dropped or superseded.
#[derive(Debug, Default)]
pub(crate) struct DestQueue {
    subs: HashMap<String, SubQueue>,
    pending: u64,
    /// The last attempt to this destination failed (cleared by a successful one).
    unreachable: bool,
    next_seq: u64,
}

impl DestQueue {
    /// Events held (queued, batched, in flight).
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Accepts one event; returns how many older events it superseded.
    pub fn accept(
        &mut self,
        sub: &str,
        to: &str,
        event: Payload,
        policy: &DeliveryPolicy,
        capacity: usize,
        now: Instant,
    ) -> Result<u64, Full> {
        if self.pending >= capacity as u64 {
            return Err(Full);
        }
        self.pending += 1;
        let mut superseded = self.apply_policy(sub, policy);
        let Some(sq) = self.subs.get_mut(sub) else {
            return Ok(superseded);
        };
        match policy.batch {
            Some(batch) => {
                if sq.batch.is_empty() {
                    sq.batch_started = Some(now);
                    sq.batch_received = 0;
                }
                if policy.latest_only {
                    superseded += sq.batch.len() as u64;
                    sq.batch.clear();
                }
                sq.batch.push(event);
                sq.batch_received = sq.batch_received.saturating_add(1);
                sq.batch_to = to.to_owned();
                if sq.batch_received >= batch.num.max(1) {
                    superseded += self.form_batch(sub);
                }
            }
            None => {
                let out = single(sub, to, event, policy.latest_only);
                superseded += self.push_ready(sub, out);
            }
        }
        self.pending = self.pending.saturating_sub(superseded);
        Ok(superseded)
    }

    /// Accepts one response primitive (`m2m:rsp`): like an event without a batch
    /// policy, but never aggregated, whatever `policy.batch` says; returns how many older
    /// notifications it superseded.
    pub fn accept_response(
        &mut self,
        sub: &str,
        to: &str,
        rsp: Payload,
        policy: &DeliveryPolicy,
        capacity: usize,
    ) -> Result<u64, Full> {
        if self.pending >= capacity as u64 {
            return Err(Full);
        }
        self.pending += 1;
        let mut superseded = self.apply_policy(sub, policy);
        let out = Outgoing {
            sub: sub.to_owned(),
            to: to.to_owned(),
            body: Body::Rsp(rsp),
            events: 1,
            latest: false,
            seq: 0,
        };
        superseded += self.push_ready(sub, out);
        self.pending = self.pending.saturating_sub(superseded);
        Ok(superseded)
    }

    /// Installs the newest policy of `sub`; a batch left without a batch policy is sent.
    fn apply_policy(&mut self, sub: &str, policy: &DeliveryPolicy) -> u64 {
        let sq = self
            .subs
            .entry(sub.to_owned())
            .or_insert_with(|| SubQueue::new(policy.clone()));
        if sq.policy == *policy {
            return 0;
        }
        let had_batch = !sq.batch.is_empty();
        sq.policy = policy.clone();
        if had_batch && policy.batch.is_none() {
            self.form_batch(sub)
        } else {
            0
        }
    }

    /// Turns `sub`'s buffered batch into a ready notification; returns superseded events.
    fn form_batch(&mut self, sub: &str) -> u64 {
        let Some(sq) = self.subs.get_mut(sub) else {
            return 0;
        };
        sq.batch_started = None;
        sq.batch_received = 0;
        let events = std::mem::take(&mut sq.batch);
        let to = std::mem::take(&mut sq.batch_to);
        let out = if sq.policy.latest_only {
            match events.into_iter().last() {
                Some(ev) => single(sub, &to, ev, true),
                None => return 0,
            }
        } else if events.is_empty() {
            return 0;
        } else {
            Outgoing {
                sub: sub.to_owned(),
                to,
                events: events.len() as u64,
                body: Body::Agn(events),
                latest: false,
                seq: 0,
            }
        };
        self.push_ready(sub, out)
    }

    /// Appends a notification to `sub`'s ready queue, first dropping the older ones when
    /// the policy keeps only the newest; returns the events dropped.
    fn push_ready(&mut self, sub: &str, mut out: Outgoing) -> u64 {
        out.seq = self.next_seq;
        self.next_seq += 1;
        let unreachable = self.unreachable;
        let Some(sq) = self.subs.get_mut(sub) else {
            return 0;
        };
        let mut dropped = 0;
        if sq.collapses(unreachable) {
            dropped = sq.ready.drain(..).map(|o| o.events).sum();
        }
        sq.ready.push_back(out);
        dropped
    }

    /// Sends every batch whose `dur` has elapsed; returns superseded events.
    fn form_due_batches(&mut self, now: Instant) -> u64 {
        let due: Vec<String> = self
            .subs
            .iter()
            .filter(|(_, sq)| sq.batch_deadline().is_some_and(|d| d <= now))
            .map(|(sub, _)| sub.clone())
            .collect();
        let dropped = due.iter().map(|sub| self.form_batch(sub)).sum();
        self.pending = self.pending.saturating_sub(dropped);
        dropped
    }

    /// `flush`: sends `sub`'s buffered batch now; returns superseded events.
    pub fn flush(&mut self, sub: &str) -> u64 {
        let dropped = self.form_batch(sub);
        self.pending = self.pending.saturating_sub(dropped);
        dropped
    }

    /// Sends every buffered batch now (shutdown); returns superseded events.
    pub fn flush_all(&mut self) -> u64 {
        let subs: Vec<String> = self.subs.keys().cloned().collect();
        subs.iter().map(|sub| self.flush(sub)).sum()
    }

    /// Picks the next notification: the earliest-arrived head among subscriptions whose
    /// rate window allows an attempt, and counts that attempt in its window. Also sends
    /// due batches. Returns the step and the events superseded on the way.
    pub fn next_step(&mut self, now: Instant) -> (Step, u64) {
        let dropped = self.form_due_batches(now);
        let mut best: Option<(u64, &str)> = None;
        let mut wake: Option<Instant> = None;
        for (sub, sq) in self.subs.iter_mut() {
            wake = earliest(wake, sq.batch_deadline());
            let Some(head) = sq.ready.front().map(|o| o.seq) else {
                continue;
            };
            match sq.rate_blocked_until(now) {
                Some(until) => wake = earliest(wake, Some(until)),
                None if best.is_none_or(|(seq, _)| head < seq) => best = Some((head, sub)),
                None => {}
            }
        }
        let chosen = best.map(|(_, sub)| sub.to_owned());
        if let Some(out) = chosen.and_then(|sub| self.pop(&sub, now)) {
            return (Step::Send(out), dropped);
        }
        let step = match wake {
            Some(at) => Step::Wait(at),
            None => Step::Idle,
        };
        (step, dropped)
    }

    /// Removes `sub`'s head and records the attempt in its rate window.
    fn pop(&mut self, sub: &str, now: Instant) -> Option<Outgoing> {
        let sq = self.subs.get_mut(sub)?;
        let out = sq.ready.pop_front()?;
        if sq.policy.rate.is_some() {
            sq.sent.push_back(now);
        }
        Some(out)
    }

    /// For a retry of `sub`'s in-flight notification: `None` records the attempt now,
    /// `Some(t)` means the rate window forbids an attempt before `t`.
    pub fn retry_slot(&mut self, sub: &str, now: Instant) -> Option<Instant> {
        let sq = self.subs.get_mut(sub)?;
        if let Some(until) = sq.rate_blocked_until(now) {
            return Some(until);
        }
        if sq.policy.rate.is_some() {
            sq.sent.push_back(now);
        }
        None
    }

    /// After a failed attempt of `sub`'s in-flight notification: marks the destination
    /// unreachable and tells whether a newer notification of `sub` replaces it.
    pub fn failed(&mut self, sub: &str) -> bool {
        self.unreachable = true;
        let unreachable = self.unreachable;
        self.subs
            .get(sub)
            .is_some_and(|sq| !sq.ready.is_empty() && sq.collapses(unreachable))
    }

    /// A notification answered: the destination is reachable again.
    pub fn reached(&mut self) {
        self.unreachable = false;
    }

    /// The in-flight notification of `events` events is finished (delivered or dropped).
    pub fn finish(&mut self, events: u64) {
        self.pending = self.pending.saturating_sub(events);
    }

    /// Whether the worker may exit: no events held and no rate window still running
    /// (forgetting a running window would let a new worker exceed the limit).
    pub fn can_retire(&mut self, now: Instant) -> bool {
        self.subs.retain(|_, sq| !sq.is_empty(now));
        self.pending == 0 && self.subs.is_empty()
    }

    /// Drops every queued and batched event (shutdown); the in-flight one is the
    /// worker's. Returns the events dropped.
    pub fn abandon_queued(&mut self) -> u64 {
        let mut dropped = 0;
        for sq in self.subs.values_mut() {
            dropped += sq.batch.len() as u64;
            sq.batch.clear();
            sq.batch_started = None;
            dropped += sq.ready.drain(..).map(|o| o.events).sum::<u64>();
        }
        self.pending = self.pending.saturating_sub(dropped);
        dropped
    }
}

/// A NOTIFY carrying one event.
fn single(sub: &str, to: &str, event: Payload, latest: bool) -> Outgoing {
    Outgoing {
        sub: sub.to_owned(),
        to: to.to_owned(),
        body: Body::Sgn(event),
        events: 1,
        latest,
        seq: 0,
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Batch, RateLimit};
    use std::time::Duration;

    const CAP: usize = 100;

    fn ev(n: u32) -> Payload {
        event(json!({ "n": n }))
    }

    fn event(value: Value) -> Payload {
        Payload {
            event: std::sync::Arc::new(value),
            charge: Charge::none(),
        }
    }

    /// The value [`ev`] holds, for comparing `pc`s.
    fn val(n: u32) -> Value {
        json!({ "n": n })
    }

    impl Outgoing {
        /// The `pc` it would be sent with.
        fn pc(&self) -> Value {
            let value = |p: &Payload| (*p.event).clone();
            match &self.body {
                Body::Sgn(p) => json!({ "m2m:sgn": value(p) }),
                Body::Rsp(p) => json!({ "m2m:rsp": value(p) }),
                Body::Agn(events) => {
                    let events: Vec<Value> = events.iter().map(value).collect();
                    json!({ "m2m:agn": { "m2m:sgn": events } })
                }
            }
        }
    }

    fn send(q: &mut DestQueue, now: Instant) -> Outgoing {
        match q.next_step(now).0 {
            Step::Send(o) => o,
            other => panic!("expected a notification, got {other:?}"),
        }
    }

    #[test]
    fn single_events_keep_arrival_order_across_subscriptions() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy::default();
        q.accept("a", "to", ev(1), &p, CAP, now).unwrap();
        q.accept("b", "to", ev(2), &p, CAP, now).unwrap();
        q.accept("a", "to", ev(3), &p, CAP, now).unwrap();
        let order: Vec<Value> = (0..3).map(|_| send(&mut q, now).pc()).collect();
        assert_eq!(
            order,
            vec![
                json!({"m2m:sgn": val(1)}),
                json!({"m2m:sgn": val(2)}),
                json!({"m2m:sgn": val(3)})
            ]
        );
        assert_eq!(
            q.pending(),
            3,
            "in-flight events stay counted until finished"
        );
        assert!(matches!(q.next_step(now).0, Step::Idle));
    }

    #[test]
    fn a_response_goes_alone_as_m2m_rsp_even_under_a_batch_policy() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy {
            batch: Some(Batch {
                num: 5,
                dur: Duration::from_secs(60),
            }),
            ..DeliveryPolicy::default()
        };
        let rsp = json!({"rsc": 2001, "rqi": "r1"});
        q.accept_response("req", "Cae", event(rsp.clone()), &p, CAP)
            .unwrap();
        let out = send(&mut q, now);
        assert_eq!((out.to.as_str(), out.events, out.latest), ("Cae", 1, false));
        assert_eq!(out.pc(), json!({ "m2m:rsp": rsp }));
        assert_eq!(q.pending(), 1);
        assert_eq!(
            q.accept_response("req", "Cae", event(json!({})), &p, 1),
            Err(Full),
            "capacity counts responses like events"
        );
    }

    #[test]
    fn capacity_counts_every_held_event() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy::default();
        q.accept("a", "to", ev(1), &p, 2, now).unwrap();
        q.accept("a", "to", ev(2), &p, 2, now).unwrap();
        assert_eq!(q.accept("a", "to", ev(3), &p, 2, now), Err(Full));
        let _ = send(&mut q, now);
        assert_eq!(q.accept("a", "to", ev(3), &p, 2, now), Err(Full));
        q.finish(1);
        assert!(q.accept("a", "to", ev(3), &p, 2, now).is_ok());
    }

    #[test]
    fn batch_by_num_then_by_dur() {
        let mut q = DestQueue::default();
        let t0 = Instant::now();
        let dur = Duration::from_secs(10);
        let p = DeliveryPolicy {
            batch: Some(Batch { num: 2, dur }),
            ..DeliveryPolicy::default()
        };
        for n in 1..=3 {
            q.accept("s", "to", ev(n), &p, CAP, t0).unwrap();
        }
        let first = send(&mut q, t0);
        assert_eq!(
            first.pc(),
            json!({"m2m:agn": {"m2m:sgn": [val(1), val(2)]}})
        );
        assert_eq!(first.events, 2);
        match q.next_step(t0).0 {
            Step::Wait(at) => assert_eq!(at, t0 + dur),
            other => panic!("expected the batch timer, got {other:?}"),
        }
        let second = send(&mut q, t0 + dur);
        assert_eq!(second.pc(), json!({"m2m:agn": {"m2m:sgn": [val(3)]}}));
    }

    #[test]
    fn latest_only_batch_sends_the_newest_as_one_sgn() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy {
            batch: Some(Batch {
                num: 3,
                dur: Duration::from_secs(10),
            }),
            latest_only: true,
            ..DeliveryPolicy::default()
        };
        let mut superseded = 0;
        for n in 1..=3 {
            superseded += q.accept("s", "to", ev(n), &p, CAP, now).unwrap();
        }
        assert_eq!(superseded, 2);
        let out = send(&mut q, now);
        assert_eq!(out.pc(), json!({"m2m:sgn": val(3)}));
        assert!(out.latest);
        assert_eq!(q.pending(), 1);
    }

    #[test]
    fn flush_sends_a_partial_batch() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy {
            batch: Some(Batch {
                num: 10,
                dur: Duration::from_secs(60),
            }),
            ..DeliveryPolicy::default()
        };
        q.accept("s", "to", ev(1), &p, CAP, now).unwrap();
        assert!(matches!(q.next_step(now).0, Step::Wait(_)));
        q.flush("s");
        assert_eq!(
            send(&mut q, now).pc(),
            json!({"m2m:agn": {"m2m:sgn": [val(1)]}})
        );
    }

    #[test]
    fn sliding_rate_window_holds_the_excess_in_order() {
        let mut q = DestQueue::default();
        let t0 = Instant::now();
        let window = Duration::from_secs(1);
        let p = DeliveryPolicy {
            rate: Some(RateLimit { max: 2, window }),
            ..DeliveryPolicy::default()
        };
        for n in 1..=5 {
            q.accept("s", "to", ev(n), &p, CAP, t0).unwrap();
        }
        assert_eq!(send(&mut q, t0).pc(), json!({"m2m:sgn": val(1)}));
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(send(&mut q, t1).pc(), json!({"m2m:sgn": val(2)}));
        match q.next_step(t1).0 {
            Step::Wait(at) => assert_eq!(at, t0 + window),
            other => panic!("expected to wait for the window, got {other:?}"),
        }
        // Sliding: at t0+1s the first attempt leaves the window, the second does not.
        assert_eq!(send(&mut q, t0 + window).pc(), json!({"m2m:sgn": val(3)}));
        assert!(matches!(q.next_step(t0 + window).0, Step::Wait(at) if at == t1 + window));
        assert_eq!(send(&mut q, t1 + window).pc(), json!({"m2m:sgn": val(4)}));
    }

    #[test]
    fn rate_limited_subscription_does_not_hold_back_others() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let limited = DeliveryPolicy {
            rate: Some(RateLimit {
                max: 1,
                window: Duration::from_secs(60),
            }),
            ..DeliveryPolicy::default()
        };
        q.accept("slow", "to", ev(1), &limited, CAP, now).unwrap();
        q.accept("slow", "to", ev(2), &limited, CAP, now).unwrap();
        q.accept("free", "to", ev(3), &DeliveryPolicy::default(), CAP, now)
            .unwrap();
        assert_eq!(send(&mut q, now).sub, "slow");
        assert_eq!(send(&mut q, now).sub, "free");
        assert!(matches!(q.next_step(now).0, Step::Wait(_)));
        assert!(!q.can_retire(now));
    }

    #[test]
    fn send_latest_collapses_only_while_unreachable() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy {
            pending: PendingPolicy::SendLatest,
            ..DeliveryPolicy::default()
        };
        q.accept("s", "to", ev(1), &p, CAP, now).unwrap();
        let _in_flight = send(&mut q, now);
        q.accept("s", "to", ev(2), &p, CAP, now).unwrap();
        assert!(q.failed("s"), "a newer event replaces the failing one");
        q.finish(1);
        assert_eq!(q.accept("s", "to", ev(3), &p, CAP, now), Ok(1));
        assert_eq!(q.accept("s", "to", ev(4), &p, CAP, now), Ok(1));
        assert_eq!(send(&mut q, now).pc(), json!({"m2m:sgn": val(4)}));
        q.reached();
        q.accept("s", "to", ev(5), &p, CAP, now).unwrap();
        assert_eq!(q.accept("s", "to", ev(6), &p, CAP, now), Ok(0));
    }

    #[test]
    fn retire_and_abandon() {
        let mut q = DestQueue::default();
        let now = Instant::now();
        let p = DeliveryPolicy {
            batch: Some(Batch {
                num: 5,
                dur: Duration::from_secs(5),
            }),
            ..DeliveryPolicy::default()
        };
        assert!(q.can_retire(now));
        q.accept("s", "to", ev(1), &p, CAP, now).unwrap();
        q.accept("t", "to", ev(2), &DeliveryPolicy::default(), CAP, now)
            .unwrap();
        assert!(!q.can_retire(now));
        assert_eq!(q.abandon_queued(), 2);
        assert!(q.can_retire(now));
    }
}
