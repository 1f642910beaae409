//! `<timeSeries>` (TS-0001 9.6.36; TS-0004 7.4.36) and `<timeSeriesInstance>` (TS-0001
//! 9.6.37; TS-0004 7.4.37): a `<container>`-like index of data points, each with its
//! data generation time (`dgt`), and missing-data detection.
//!
//! The instance index, its limits (`mni`, `mbs`, `mia`), eviction and counters are the
//! container's (`container.rs`, `content_instance.rs`); this module adds what is
//! particular: the periodicity attributes and their rules, the refusal of a second data
//! point with the same `dgt`, and the detection of data points that did not arrive.
//!
//! Detection (docs/decisions.md, "timeSeries missing data"): while `mdd` is true, the
//! data point after one generated at `d` is expected at `d + pei`. It may carry a `dgt`
//! up to `peid` either side; the CSE waits until `expected + max(peid, mdt)` on its own
//! clock, then, when no held point covers it, records the expected time in `mdlt` (the
//! newest `mdn` kept, `mdc` their number), notifies the subscriptions with `net` 8, and
//! expects the next point `pei` later. Held points are matched to expected times by the
//! pass ([`overdue`]), so a gap is found even after later points arrived. The check is one pass of the CSE's periodic sweep (`missing_data.rs`, run
//! with expiry) over the tree, no task per resource; its position (`Series::expected`) is rebuilt at start-up
//! from the newest data point and the newest `mdlt` entry, both stored.

use super::container::{bump_state_tag, container_row, write_limits};
use super::content_instance::{create_instance, InstanceRules};
use super::{merged, Derive, Rederived, ResourceKind, Written};
use crate::authz_state::Mode;
use crate::checks::CreateRequest;
use crate::state::Series;
use crate::tree::{ContainerState, Node, Ri, TypeState};
use crate::Cse;
use async_trait::async_trait;
use bastion_proto::time;
use bastion_proto::{RequestError, ResourceType, Response};
use bastion_store::WriteOp;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, VecDeque};

/// The most `mdlt` entries kept when `mdn` does not say (docs/decisions.md).
pub(crate) const MISSING_LIST_CAP: u64 = 1000;

/// Attributes that cannot change while detection runs (TS-0001 9.6.36).
const LOCKED_WHILE_DETECTING: [&str; 4] = ["pei", "peid", "mdn", "mdt"];

pub(super) struct TimeSeries;

#[async_trait]
impl ResourceKind for TimeSeries {
    fn check_child_name(&self, rn: &str) -> Result<(), RequestError> {
        super::container::check_instance_holder_child_name(rn)
    }

    fn initial_attrs(&self, attrs: &mut Map<String, Value>) {
        super::container::initial_instance_counters(attrs);
        attrs.insert("mdd".into(), Value::Bool(false));
        attrs.insert("mdc".into(), Value::from(0));
        attrs.insert("mdlt".into(), Value::Array(Vec::new()));
    }

    /// An empty index with an empty series: instances are indexed as they are created
    /// or, at start-up, streamed in after every node is loaded (`load.rs`). A CREATE
    /// must keep the periodicity rules.
    fn derive(
        &self,
        _cx: &Derive,
        _ty: ResourceType,
        attrs: &mut Map<String, Value>,
        mode: Mode,
    ) -> Result<TypeState, RequestError> {
        if mode == Mode::Write {
            check_periodicity(attrs)?;
        }
        Ok(TypeState::Container(Box::new(ContainerState {
            series: Some(Box::default()),
            ..ContainerState::default()
        })))
    }

    /// The merged attributes must keep the periodicity rules, and what detection relies
    /// on stays fixed while it runs. The state (the index) is kept.
    fn rederive(
        &self,
        _cx: &Derive,
        node: &Node,
        content: &Map<String, Value>,
    ) -> Result<Option<Rederived>, RequestError> {
        let detecting = detects(&node.attrs) && content.get("mdd") != Some(&Value::Bool(false));
        if let Some(name) = LOCKED_WHILE_DETECTING
            .iter()
            .find(|name| {
                content
                    .get(**name)
                    .is_some_and(|v| node.attrs.get(**name) != Some(v))
            })
            .filter(|_| detecting)
        {
            return Err(RequestError::bad_request(format!(
                "{name} cannot change while missingDataDetect is true"
            )));
        }
        check_periodicity(&merged(&node.attrs, content))?;
        Ok(None)
    }

    /// Every UPDATE bumps `st` and applies lowered limits. Turning detection on starts
    /// a new record at the next data point; a lowered `mdn` trims the record.
    fn write_update(&self, node: &mut Node, previous: &Map<String, Value>) -> Written {
        bump_state_tag(node);
        let switched_on = previous.contains_key("mdd") && detects(&node.attrs);
        if previous.contains_key("mdd") {
            if let Some(series) = node.container_mut().and_then(|c| c.series.as_mut()) {
                series.expected = None;
            }
        }
        if switched_on {
            node.attrs.insert("mdlt".into(), Value::Array(Vec::new()));
        }
        let before = node.attrs.get("mdc").cloned();
        trim_missing(&mut node.attrs);
        let record_changed = switched_on || node.attrs.get("mdc") != before.as_ref();
        Written {
            ops: write_limits(node),
            also_modified: if record_changed {
                &["st", "mdlt", "mdc"]
            } else {
                &["st"]
            },
        }
    }
}

pub(super) struct TimeSeriesInstance;

impl InstanceRules for TimeSeriesInstance {
    fn ty(&self) -> ResourceType {
        ResourceType::TimeSeriesInstance
    }

    /// `<timeSeriesInstance>` has no `st` (TS-0004 7.4.37).
    fn carries_state_tag(&self) -> bool {
        false
    }

    /// A second data point with the same `dgt` is refused (TS-0001 9.6.37; 4105).
    fn admit(&self, parent: &Node, content: &Map<String, Value>) -> Result<(), RequestError> {
        let dgt = dgt_ms(content).ok_or_else(|| RequestError::bad_request("dgt is required"))?;
        let taken = series(parent).is_some_and(|s| s.dgts.contains(&dgt));
        if taken {
            return Err(RequestError::Conflict(
                "a timeSeriesInstance with this dataGenerationTime exists".into(),
            ));
        }
        Ok(())
    }

    /// Indexes the `dgt`; the first data point starts the expectation.
    fn admitted(&self, parent: &mut Node, seq: i64, attrs: &Map<String, Value>) {
        let Some(dgt) = dgt_ms(attrs) else {
            return;
        };
        let period = detection(&parent.attrs).map(|d| d.pei);
        let Some(series) = parent.container_mut().and_then(|c| c.series.as_mut()) else {
            return;
        };
        series.dgt_of.insert(seq, dgt);
        series.dgts.insert(dgt);
        // The first point starts the expectation; later ones are matched against it by
        // the detection pass (`overdue`), so a gap is found even when the next point
        // arrives before the pass runs.
        if let (Some(pei), None) = (period, series.expected) {
            series.expected = Some(dgt + pei);
        }
    }
}

#[async_trait]
impl ResourceKind for TimeSeriesInstance {
    async fn create_entry(
        &self,
        cse: &Cse,
        req: &CreateRequest,
        content: &mut Map<String, Value>,
        parent: &Ri,
        now: time::Timestamp,
    ) -> Option<Result<Response, RequestError>> {
        let content = std::mem::take(content);
        Some(create_instance(self, cse, req, content, parent, now).await)
    }
}

/// `peid` at most half of `pei` (TS-0001 9.6.36); detection needs `pei`, and a detect
/// timer shorter than the delta would decide before a point may still arrive.
fn check_periodicity(attrs: &Map<String, Value>) -> Result<(), RequestError> {
    let num = |name: &str| attrs.get(name).and_then(Value::as_u64);
    if let (Some(pei), Some(peid)) = (num("pei"), num("peid")) {
        if peid > pei / 2 {
            return Err(RequestError::bad_request(
                "periodicIntervalDelta must be at most half of periodicInterval",
            ));
        }
    }
    if detects(attrs) && num("pei").is_none() {
        return Err(RequestError::bad_request(
            "missingDataDetect needs a periodicInterval",
        ));
    }
    if let (Some(mdt), Some(peid)) = (num("mdt"), num("peid")) {
        if detects(attrs) && mdt <= peid {
            return Err(RequestError::bad_request(
                "missingDataDetectTimer must be longer than periodicIntervalDelta",
            ));
        }
    }
    Ok(())
}

fn detects(attrs: &Map<String, Value>) -> bool {
    attrs.get("mdd").and_then(Value::as_bool) == Some(true)
}

/// A timeSeries' detection parameters, in milliseconds, when detection runs.
#[derive(Clone, Copy)]
struct Detection {
    pei: i64,
    /// How far a point's `dgt` may be from its expected time (`peid`).
    tolerance: i64,
    /// How long after the expected time the CSE waits for the point.
    grace: i64,
}

fn detection(attrs: &Map<String, Value>) -> Option<Detection> {
    if !detects(attrs) {
        return None;
    }
    let ms = |name: &str| {
        attrs
            .get(name)
            .and_then(Value::as_u64)
            .map(|v| v.min(i64::MAX as u64 / 4) as i64)
    };
    let pei = ms("pei").filter(|p| *p > 0)?;
    let tolerance = ms("peid").unwrap_or(0);
    let grace = tolerance.max(ms("mdt").unwrap_or(0));
    Some(Detection {
        pei,
        tolerance,
        grace,
    })
}

/// The most entries `mdlt` keeps.
fn missing_cap(attrs: &Map<String, Value>) -> usize {
    let mdn = attrs.get("mdn").and_then(Value::as_u64);
    mdn.unwrap_or(MISSING_LIST_CAP).min(MISSING_LIST_CAP) as usize
}

/// Keeps the newest `mdn` entries of `mdlt` and sets `mdc` to their number.
fn trim_missing(attrs: &mut Map<String, Value>) {
    let cap = missing_cap(attrs);
    let mut list = match attrs.remove("mdlt") {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    if list.len() > cap {
        list.drain(..list.len() - cap);
    }
    attrs.insert("mdc".into(), Value::from(list.len()));
    attrs.insert("mdlt".into(), Value::Array(list));
}

fn series(node: &Node) -> Option<&Series> {
    node.container()?.series.as_deref()
}

/// A data generation time in milliseconds since the epoch.
/// Kept to the millisecond: a series may be periodic below a second (`pei` is in ms).
fn dgt_ms(attrs: &Map<String, Value>) -> Option<i64> {
    attrs.get("dgt")?.as_str().and_then(time::parse_millis)
}

/// The data points a timeSeries missed by `now_ms`: their expected times (at most `cap`,
/// the newest), and where the expectation moves to.
///
/// Walks the expected times from `expected` on against the data points held (`dgts`,
/// sorted): a point within the tolerance of an expected time covers it and the next is
/// expected one period after that point (never earlier); an expected time with no point
/// whose wait has ended is missing. The walk visits each held point once and counts runs
/// of missing times arithmetically, so a long outage costs no more than a short one.
fn overdue(
    expected: i64,
    d: Detection,
    now_ms: i64,
    cap: usize,
    dgts: &BTreeSet<i64>,
) -> (Vec<i64>, i64) {
    let mut missing = Missing::new(cap);
    let mut e = expected;
    for &point in dgts.range(expected.saturating_sub(d.tolerance)..) {
        if point > e.saturating_add(d.tolerance) {
            // The times before this point's own window that are due are missing.
            let before = (point - d.tolerance - e - 1) / d.pei + 1;
            e = missing.run(e, before.min(due(e, d, now_ms)), d.pei);
            if point > e.saturating_add(d.tolerance) {
                break; // the next expected time is not due yet
            }
        }
        e = e.max(point + d.pei);
    }
    let e = missing.run(e, due(e, d, now_ms), d.pei);
    (missing.points.into(), e)
}

/// How many expected times from `e` on, one period apart, have had their wait end by `now_ms`.
fn due(e: i64, d: Detection, now_ms: i64) -> i64 {
    if now_ms <= e.saturating_add(d.grace) {
        0
    } else {
        (now_ms - e - d.grace - 1) / d.pei + 1
    }
}

/// The newest missing times found, at most `cap`.
struct Missing {
    points: VecDeque<i64>,
    cap: usize,
}

impl Missing {
    fn new(cap: usize) -> Missing {
        Missing {
            points: VecDeque::new(),
            cap,
        }
    }

    /// Records `count` missing times from `from` on, one `pei` apart (only the newest
    /// `cap` are kept), and returns the time after them.
    fn run(&mut self, from: i64, count: i64, pei: i64) -> i64 {
        let kept = count.min(self.cap as i64);
        for k in count - kept..count {
            if self.points.len() == self.cap {
                self.points.pop_front();
            }
            self.points.push_back(from + k * pei);
        }
        from + count * pei
    }
}

/// Whether timeSeries `node` waited for a data point past its time at `now_ms`.
pub(crate) fn missing_due(node: &Node, now_ms: i64) -> bool {
    let (Some(d), Some(e)) = (
        detection(&node.attrs),
        series(node).and_then(|s| s.expected),
    ) else {
        return false;
    };
    now_ms > e.saturating_add(d.grace)
}

/// Records the data points timeSeries `node` missed by `now_ms` in its `mdlt` and
/// `mdc`, and moves its expectation past them: the points found (as timestamps) and the
/// row to store. `None` when nothing is missing.
pub(crate) fn take_missing(node: &mut Node, now_ms: i64) -> Option<(Vec<Value>, WriteOp)> {
    let d = detection(&node.attrs)?;
    // The report names every point found (up to the hard cap); `mdn` bounds the record.
    let cap = MISSING_LIST_CAP as usize;
    let series = node.container_mut()?.series.as_mut()?;
    let (points, next) = overdue(series.expected?, d, now_ms, cap, &series.dgts);
    series.expected = Some(next);
    if points.is_empty() {
        return None;
    }
    let found: Vec<Value> = points
        .into_iter()
        .map(|p| time::format_millis(p).into())
        .collect();
    let mut list = match node.attrs.remove("mdlt") {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    list.extend(found.iter().cloned());
    node.attrs.insert("mdlt".into(), Value::Array(list));
    trim_missing(&mut node.attrs);
    Some((found, WriteOp::Upsert(container_row(node))))
}

/// At start-up: the `dgt` index of every timeSeries (read from its stored instances) and
/// where detection resumes: after the newest data point or the newest recorded missing
/// one, whichever is later.
pub(crate) fn restore_series(node: &mut Node, rows: &[(i64, Map<String, Value>)]) {
    let pei = detection(&node.attrs).map(|d| d.pei);
    let newest_missing = node
        .attrs
        .get("mdlt")
        .and_then(Value::as_array)
        .and_then(|l| l.last())
        .and_then(Value::as_str)
        .and_then(time::parse_millis);
    let Some(series) = node.container_mut().and_then(|c| c.series.as_mut()) else {
        return;
    };
    for (seq, attrs) in rows {
        if let Some(dgt) = dgt_ms(attrs) {
            series.dgt_of.insert(*seq, dgt);
            series.dgts.insert(dgt);
        }
    }
    let newest = series.dgts.last().copied().max(newest_missing);
    series.expected = pei.zip(newest).map(|(pei, newest)| newest + pei);
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Detection = Detection {
        pei: 1000,
        tolerance: 100,
        grace: 200,
    };

    fn held(points: &[i64]) -> BTreeSet<i64> {
        points.iter().copied().collect()
    }

    #[test]
    fn overdue_points_are_counted_from_the_expectation() {
        let none = BTreeSet::new();
        assert_eq!(overdue(10_000, D, 10_200, 10, &none), (vec![], 10_000));
        assert_eq!(
            overdue(10_000, D, 10_201, 10, &none),
            (vec![10_000], 11_000)
        );
        assert_eq!(
            overdue(10_000, D, 12_500, 10, &none),
            (vec![10_000, 11_000, 12_000], 13_000)
        );
        // Only the newest `cap` are shown; the expectation still moves past all.
        assert_eq!(
            overdue(10_000, D, 12_500, 2, &none),
            (vec![11_000, 12_000], 13_000)
        );
    }

    #[test]
    fn a_gap_is_found_even_when_later_points_already_arrived() {
        // 10 000 and 12 000 missing; 11 050 and 13 000 held (within the tolerance).
        let dgts = held(&[9_000, 11_050, 13_000]);
        assert_eq!(
            overdue(10_000, D, 13_500, 10, &dgts),
            (vec![10_000, 12_050], 14_000)
        );
        // Nothing due yet: points covering their times move the expectation only.
        assert_eq!(
            overdue(10_000, D, 10_100, 10, &held(&[10_000])),
            (vec![], 11_000)
        );
    }

    #[test]
    fn a_point_off_the_grid_realigns_and_a_late_one_is_ignored() {
        // 10 400 is outside 10 000's tolerance: 10 000 is missing and the next is
        // expected a period after 10 400.
        assert_eq!(
            overdue(10_000, D, 11_300, 10, &held(&[10_400])),
            (vec![10_000], 11_400)
        );
        // A point older than the expectation (it arrived after being counted) is not
        // counted again.
        assert_eq!(
            overdue(10_000, D, 10_500, 10, &held(&[8_000])),
            (vec![10_000], 11_000)
        );
    }

    #[test]
    fn a_long_outage_is_counted_without_walking_it() {
        let week_ms = 7 * 24 * 3600 * 1000;
        let d = Detection {
            pei: 1,
            tolerance: 0,
            grace: 1,
        };
        // Every millisecond of a week missing but one, held at `week_ms - 5`: the newest
        // three missing are the ones after it whose wait has ended.
        let (points, next) = overdue(0, d, week_ms, 3, &held(&[week_ms - 5]));
        assert_eq!(points, vec![week_ms - 4, week_ms - 3, week_ms - 2]);
        assert_eq!(next, week_ms - 1);
        let (points, _) = overdue(0, d, week_ms - 4, 3, &held(&[week_ms - 5]));
        assert_eq!(points, vec![week_ms - 8, week_ms - 7, week_ms - 6]);
    }

    #[test]
    fn periodicity_rules() {
        let obj = |v: Value| v.as_object().cloned().expect("object");
        let ok = |v: Value| check_periodicity(&obj(v)).is_ok();
        assert!(ok(serde_json::json!({"pei": 1000, "peid": 500})));
        assert!(!ok(serde_json::json!({"pei": 1000, "peid": 501})));
        assert!(!ok(serde_json::json!({"mdd": true})));
        assert!(ok(serde_json::json!({"mdd": true, "pei": 1000})));
        assert!(!ok(
            serde_json::json!({"mdd": true, "pei": 1000, "peid": 100, "mdt": 100})
        ));
    }
}
