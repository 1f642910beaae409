//! `<subscription>` (ty 23; TS-0001 9.6.8 and 10.2.11; core-resources.md §3.7): what a
//! subscriber may ask for, compiled into the [`SubscriptionState`] the event detector
//! (`notify.rs`) evaluates, and the verification of notification targets on CREATE.
//!
//! Supported: `net` 1-4 (update, delete, create and delete of a direct child), `nct` 1-3
//! with the defaults of TS-0001 table 9.6.8-4, the `enc` conditions `crb` `cra` `ms` `us`
//! `sts` `stb` `exb` `exa` `sza` `szb` `atr` `chty` `om` with `fo`, `exc`, `bn`, `rl`,
//! `ln`, `pn`, `su`, `net` 7 (blocking update, with its own rules: [`blocking_rules`]),
//! and the Release 4 `nse` (statistics per target, `nsi`) and `eeno`
//! (the event's originator in each notification). What is not supported is refused with 5001 instead of being accepted
//! and silently ignored: `net` 5 and 6, `psn`, `nfu`. `net` 8 (missing data of a
//! `<timeSeries>`) is sent with `nct` 5 as each detection finds points
//! (`types/time_series.rs`), or, with `enc.md` `{num, dur}`, only once `num` missing
//! points fall within `dur` of each other ([`MissingWindow`]).

use bastion_proto::time::{parse_duration, Timestamp};
use bastion_proto::{RequestError, ResourceType};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `notificationEventType` values this CSE detects.
pub(crate) const NET_UPDATE: u8 = 1;
pub(crate) const NET_DELETE: u8 = 2;
pub(crate) const NET_CREATE_CHILD: u8 = 3;
pub(crate) const NET_DELETE_CHILD: u8 = 4;
/// `blockingUpdate`: the UPDATE waits for the target's consent (`notify::blocking`).
pub(crate) const NET_BLOCKING_UPDATE: u8 = 7;

/// `notificationContentType` values.
pub(crate) const NCT_ALL: u8 = 1;
pub(crate) const NCT_MODIFIED: u8 = 2;
pub(crate) const NCT_RI: u8 = 3;
/// `timeSeriesNotification`, the content of `net` 8.
pub(crate) const NCT_TSN: u8 = 5;
/// `reportOnGeneratedMissingDataPoints`.
pub(crate) const NET_MISSING_DATA: u8 = 8;

/// A compiled `<subscription>`.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionState {
    pub nu: Vec<String>,
    pub net: Vec<u8>,
    pub nct: u8,
    pub(crate) criteria: Criteria,
    /// Notifications left before the subscription ends (`exc`).
    pub exc: Option<u64>,
    pub(crate) policy: Policy,
    /// Where the deletion notice goes (`su`).
    pub su: Option<String>,
    /// The subscriber, whose RETRIEVE privilege every notification re-checks.
    pub creator: String,
    /// Whether the subscriber was authenticated (TS-0003 7.1.2 `acaf`) when it subscribed.
    pub authenticated: bool,
    /// `eeno` (enableEventNotificationOriginator): each event notification names the
    /// originator of the request that caused it.
    pub event_originator: bool,
    /// `nse` (notificationStatsEnable): `nsi` counts events, requests and responses.
    pub stats: bool,
    /// `enc.md`: the missing points seen within the window, shared by the clones of this
    /// state (it is runtime state, not stored: a restart starts an empty window).
    pub(crate) missing: Option<Arc<MissingWindow>>,
    /// Of a `<crossResourceSubscription>`'s delivery: the target subscriptions it made on
    /// other CSEs (SP-relative IDs), deleted there when it ends.
    pub(crate) remote_companions: Vec<String>,
    /// Of a `<crossResourceSubscription>`'s delivery: the `srat` subscriptions on other
    /// CSEs whose `nu` it joined (SP-relative IDs), left when it ends.
    pub(crate) remote_joined: Vec<String>,
}

/// `enc.md` (`m2m:missingData`, TS-0001 9.6.8): notify when `num` missing data points of
/// a `<timeSeries>` fall within `dur`. Holds at most `num` points (their expected data
/// generation times, ms), so its size is bounded by [`MAX_MISSING_NUM`].
#[derive(Debug)]
pub struct MissingWindow {
    pub num: usize,
    pub dur_ms: i64,
    points: Mutex<VecDeque<(i64, Value)>>,
}

/// The largest `md.num` accepted: the window holds that many points.
pub(crate) const MAX_MISSING_NUM: u64 = 1000;

impl MissingWindow {
    /// Adds the points one detection found (`mdlt` entries); when `num` of them lie within
    /// `dur`, returns the report `{"mdlt": […], "mdc": num}` of the newest `num` and starts
    /// an empty window.
    pub(crate) fn add(&self, found: &[Value]) -> Option<Map<String, Value>> {
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        for point in found {
            let at = point
                .as_str()
                .and_then(Timestamp::parse)
                .map(|t| t.0.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            points.push_back((at, point.clone()));
            // Only the points within `dur` of the newest count.
            while points
                .front()
                .is_some_and(|(t, _)| at.saturating_sub(*t) > self.dur_ms)
            {
                points.pop_front();
            }
            // Bounded: more than `num` points are never needed to decide.
            if points.len() > self.num {
                points.pop_front();
            }
        }
        if points.len() < self.num {
            return None;
        }
        let mdlt: Vec<Value> = points.drain(..).map(|(_, v)| v).collect();
        let mut report = Map::new();
        report.insert("mdc".into(), Value::from(mdlt.len()));
        report.insert("mdlt".into(), Value::Array(mdlt));
        Some(report)
    }
}

/// Delivery policies handed to the delivery engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Policy {
    /// `bn`: at most `num` events or `dur` after the first, then one NOTIFY.
    pub batch: Option<(u32, Duration)>,
    /// `rl`: at most `mnn` NOTIFYs per `tww`.
    pub rate: Option<(u32, Duration)>,
    /// `ln`: only the newest of a batch or backlog.
    pub latest_only: bool,
    /// `pn` = 1 (sendLatest) while a target is unreachable.
    pub pending_latest: bool,
}

/// One operation monitor of `om`: the operations (1 C … 5 N) and the originators it
/// watches (empty: all).
type Monitor = (Vec<u8>, Vec<String>);

/// `eventNotificationCriteria` conditions (TS-0004 6.3.5.x `m2m:eventNotificationCriteria`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Criteria {
    created_before: Option<Timestamp>,
    created_after: Option<Timestamp>,
    modified_since: Option<Timestamp>,
    unmodified_since: Option<Timestamp>,
    state_tag_smaller: Option<u64>,
    state_tag_bigger: Option<u64>,
    expire_before: Option<Timestamp>,
    expire_after: Option<Timestamp>,
    size_above: Option<u64>,
    size_below: Option<u64>,
    /// `atr`: an update notifies only when one of these attributes changed.
    pub attributes: Vec<String>,
    /// `chty`: child events only for these types.
    child_types: Vec<u16>,
    /// `om`: a list of monitors, each operations (1 C, 2 R, 3 U, 4 D, 5 N) and
    /// originators; an event one of them matches notifies.
    monitor: Option<Vec<Monitor>>,
    /// `fo` = 2: any condition suffices.
    any: bool,
    /// `md`: `num` missing points within `dur` (ms).
    missing: Option<(usize, i64)>,
}

/// One detected event, as the criteria see it.
pub(crate) struct EventFacts<'a> {
    pub net: u8,
    /// The resource the conditions look at: the subscribed-to one (net 1, 2) or the
    /// child (net 3, 4).
    pub resource: &'a Map<String, Value>,
    pub child_type: Option<u16>,
    /// Attribute names an UPDATE changed.
    pub modified: &'a [String],
    /// The operation (1-5) and originator of the request that caused the event.
    pub operation: u8,
    pub originator: &'a str,
}

impl Criteria {
    /// Whether `om` is set: its notifications then name the operation and originator.
    pub fn has_monitor(&self) -> bool {
        self.monitor.is_some()
    }

    /// Whether an event passes `enc` (TS-0001 table 9.6.8-2; `fo` combines the
    /// attribute conditions, `chty`, `atr` and `om` always apply).
    pub fn admits(&self, e: &EventFacts) -> bool {
        if !self.child_types.is_empty()
            && e.child_type.is_some_and(|t| !self.child_types.contains(&t))
        {
            return false;
        }
        if e.net == NET_UPDATE
            && !self.attributes.is_empty()
            && !self.attributes.iter().any(|a| e.modified.contains(a))
        {
            return false;
        }
        if let Some(monitors) = &self.monitor {
            let matches = |(ops, orgs): &Monitor| {
                (ops.is_empty() || ops.contains(&e.operation))
                    && (orgs.is_empty() || orgs.iter().any(|o| o == e.originator))
            };
            if !monitors.iter().any(matches) {
                return false;
            }
        }
        let time = |name: &str| {
            e.resource
                .get(name)
                .and_then(Value::as_str)
                .and_then(Timestamp::parse)
        };
        let number = |name: &str| e.resource.get(name).and_then(Value::as_u64);
        let checks: [Option<bool>; 10] = [
            self.created_before
                .map(|t| time("ct").is_some_and(|v| v < t)),
            self.created_after
                .map(|t| time("ct").is_some_and(|v| v > t)),
            self.modified_since
                .map(|t| time("lt").is_some_and(|v| v > t)),
            self.unmodified_since
                .map(|t| time("lt").is_some_and(|v| v < t)),
            self.state_tag_smaller
                .map(|n| number("st").is_some_and(|v| v < n)),
            self.state_tag_bigger
                .map(|n| number("st").is_some_and(|v| v > n)),
            self.expire_before
                .map(|t| time("et").is_some_and(|v| v < t)),
            self.expire_after.map(|t| time("et").is_some_and(|v| v > t)),
            self.size_above
                .map(|n| number("cs").is_some_and(|v| v >= n)),
            self.size_below.map(|n| number("cs").is_some_and(|v| v < n)),
        ];
        let mut set = checks.iter().flatten().peekable();
        if set.peek().is_none() {
            return true;
        }
        if self.any {
            set.any(|ok| *ok)
        } else {
            set.all(|ok| *ok)
        }
    }
}

impl SubscriptionState {
    /// Compiles a subscription's attributes (already checked against the attribute
    /// policy). `target` is the type of the subscribed-to resource, for `chty`.
    pub fn compile(
        attrs: &Map<String, Value>,
        target: ResourceType,
        creator: &str,
        authenticated: bool,
    ) -> Result<SubscriptionState, RequestError> {
        for unsupported in ["psn", "nfu"] {
            if attrs.contains_key(unsupported) {
                return Err(RequestError::NotImplemented(
                    format!("subscription attribute {unsupported} is not supported").into(),
                ));
            }
        }
        let nu = notification_uris(attrs.get("nu"))?;
        let (net, criteria) = match attrs.get("enc") {
            Some(Value::Object(enc)) => event_criteria(enc, target)?,
            _ => (vec![NET_UPDATE], Criteria::default()),
        };
        let nct = content_type(&net, attrs.get("nct").and_then(Value::as_u64))?;
        if net.contains(&NET_BLOCKING_UPDATE) {
            blocking_rules(attrs, &net, &nu)?;
        }
        let exc = match attrs.get("exc").and_then(Value::as_u64) {
            Some(0) => return Err(bad("exc must be at least 1")),
            other => other,
        };
        let policy = Policy {
            batch: attrs
                .get("bn")
                .map(|v| pair(v, "num", "dur", "bn"))
                .transpose()?,
            rate: attrs
                .get("rl")
                .map(|v| pair(v, "mnn", "tww", "rl"))
                .transpose()?,
            latest_only: attrs.get("ln").and_then(Value::as_bool).unwrap_or(false),
            pending_latest: match attrs.get("pn").and_then(Value::as_u64) {
                None | Some(2) => false,
                Some(1) => true,
                Some(_) => return Err(bad("pn must be 1 or 2")),
            },
        };
        let su = attrs.get("su").and_then(Value::as_str).map(str::to_owned);
        if let Some(su) = &su {
            check_target(su, "su")?;
        }
        let missing = criteria.missing.map(|(num, dur_ms)| {
            Arc::new(MissingWindow {
                num,
                dur_ms,
                points: Mutex::new(VecDeque::with_capacity(num)),
            })
        });
        Ok(SubscriptionState {
            nu,
            net,
            nct,
            criteria,
            exc,
            policy,
            su,
            creator: creator.to_owned(),
            authenticated,
            event_originator: attrs.get("eeno").and_then(Value::as_bool).unwrap_or(false),
            stats: attrs.get("nse").and_then(Value::as_bool).unwrap_or(false),
            missing,
            remote_companions: Vec::new(),
            remote_joined: Vec::new(),
        })
    }
}

impl SubscriptionState {
    /// Whether this is a blocking-update subscription (`net` 7).
    pub fn is_blocking_update(&self) -> bool {
        self.net == [NET_BLOCKING_UPDATE]
    }

    /// Every entity this subscription will send to: the `nu` entries and the `su` of the
    /// deletion notice. Each is verified the same way before the subscription takes
    /// effect (`Cse::verify_targets`): NOTIFY privilege for a target on this CSE, a
    /// verification request for any other.
    pub fn targets(&self) -> Vec<String> {
        let mut all = self.nu.clone();
        if let Some(su) = &self.su {
            if !all.contains(su) {
                all.push(su.clone());
            }
        }
        all
    }
}

/// A compiled `<crossResourceSubscription>` (TS-0004 7.4.58, 7.5.1.2.18): the
/// subscriptions whose notifications it counts, its time window, and how its own
/// notification is delivered (`delivery`: its `nu`, `exc`, `su` and creator, compiled as a
/// subscription with no criteria). The window is runtime state: a restart starts an
/// empty one.
#[derive(Debug)]
pub struct CrossResourceState {
    /// The target subscriptions: those it made (`rrats`, in `rrat` order), then the
    /// existing ones `srat` named; at most [`MAX_CRS_TARGETS`] in all.
    pub targets: Vec<Arc<str>>,
    /// The `srat` subscriptions whose `nu` names it (resource IDs, in `srat` order).
    pub srat: Vec<Arc<str>>,
    /// Subscriptions an UPDATE took out of `srat`: their `nu` no longer names it once the
    /// UPDATE is written (used by that write only).
    pub released: Vec<Arc<str>>,
    /// While it is being created or updated: what that did on other CSEs (target
    /// subscriptions made, `srat` subscriptions joined), undone unless it is written.
    pub(crate) creating: Mutex<Option<Box<dyn Undo>>>,
    pub window_ms: i64,
    /// `twt` 2 (sliding): a window starts at the first notification; else (1, periodic)
    /// windows follow each other from `origin_ms`.
    pub sliding: bool,
    pub origin_ms: i64,
    pub delivery: Arc<SubscriptionState>,
    window: Mutex<Window>,
}

/// What a CREATE did outside its own write (a crossResourceSubscription's target
/// subscriptions on other CSEs): undone when dropped, unless kept.
pub(crate) trait Undo: Send + std::fmt::Debug {
    /// The CREATE was written: nothing is undone.
    fn keep(self: Box<Self>);
}

/// The most targets one `<crossResourceSubscription>` may name: one bit each in
/// [`Window`].
pub(crate) const MAX_CRS_TARGETS: usize = 32;

/// `twt` 2 (`m2m:timeWindowType` slidingWindow); 1 is periodicWindow.
pub(crate) const TWT_SLIDING: u64 = 2;

/// The current time window: when it started and which targets notified in it.
#[derive(Debug, Default)]
struct Window {
    start_ms: Option<i64>,
    seen: u64,
}

impl CrossResourceState {
    pub(crate) fn new(
        targets: Vec<Arc<str>>,
        window_ms: i64,
        sliding: bool,
        origin_ms: i64,
        delivery: Arc<SubscriptionState>,
    ) -> CrossResourceState {
        CrossResourceState {
            targets,
            srat: Vec::new(),
            released: Vec::new(),
            creating: Mutex::new(None),
            window_ms: window_ms.max(1),
            sliding,
            origin_ms,
            delivery,
            window: Mutex::new(Window::default()),
        }
    }

    /// Records a notification from target subscription `target` at `now_ms`; true when
    /// every target has now notified within the window, which then starts over.
    pub(crate) fn record(&self, target: &str, now_ms: i64) -> bool {
        let Some(index) = self.targets.iter().position(|t| &**t == target) else {
            return false;
        };
        let all = if self.targets.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.targets.len()) - 1
        };
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let start = if self.sliding {
            match w.start_ms {
                Some(start) if now_ms.saturating_sub(start) <= self.window_ms => start,
                _ => now_ms,
            }
        } else {
            let k = now_ms
                .saturating_sub(self.origin_ms)
                .div_euclid(self.window_ms);
            self.origin_ms
                .saturating_add(k.saturating_mul(self.window_ms))
        };
        if w.start_ms != Some(start) {
            *w = Window {
                start_ms: Some(start),
                seen: 0,
            };
        }
        w.seen |= 1 << index;
        if w.seen != all {
            return false;
        }
        // Notified: the stored notifications are used up; a sliding window waits for the
        // next one to start again.
        w.seen = 0;
        if self.sliding {
            w.start_ms = None;
        }
        true
    }
}

/// The batch duration when `bn` gives only a number: the service provider's default
/// (TS-0004 7.4.8.2.1), 60 s here.
pub(crate) const DEFAULT_BATCH_DURATION: &str = "PT60S";
/// The batch size when `bn` gives only a duration: a destination queue's capacity, so
/// the duration decides (docs/decisions.md).
pub(crate) const DEFAULT_BATCH_NUMBER: u64 = 1024;

/// The attributes the hosting CSE fills in when the subscriber leaves them out
/// (TS-0004 7.4.8.2.1 Recv-6.5): `nct` by TS-0001 table 9.6.8-4 and the missing half of
/// `bn`, for a representation `state` compiled from. They are stored and returned as
/// if given.
pub(crate) fn filled_defaults(
    attrs: &Map<String, Value>,
    state: &SubscriptionState,
) -> Map<String, Value> {
    let mut out = Map::new();
    if !attrs.contains_key("nct") {
        out.insert("nct".into(), Value::from(state.nct));
    }
    if let Some(Value::Object(bn)) = attrs.get("bn") {
        let mut bn = bn.clone();
        if !bn.contains_key("dur") {
            bn.insert("dur".into(), Value::from(DEFAULT_BATCH_DURATION));
        }
        if !bn.contains_key("num") {
            bn.insert("num".into(), Value::from(DEFAULT_BATCH_NUMBER));
        }
        if Some(&Value::Object(bn.clone())) != attrs.get("bn") {
            out.insert("bn".into(), Value::Object(bn));
        }
    }
    if state.stats {
        out.insert("nsi".into(), statistics_for(&state.nu, None));
    }
    out
}

/// `nsi` (notificationStatsInfo, TS-0004 7.4.8) after a write of a subscription's
/// attributes `attrs`: one record per `nu` target while `nse` is true, all zero when
/// statistics were (re-)enabled by this write (`enabled`), else the records kept for the
/// targets still there; kept as they are while `nse` is false; gone with `nse`.
pub(crate) fn statistics_after_write(attrs: &mut Map<String, Value>, enabled: bool) {
    match attrs.get("nse").and_then(Value::as_bool) {
        None => {
            attrs.remove("nsi");
        }
        Some(false) => {}
        Some(true) => {
            let nu = strings(attrs.get("nu"), "nu").unwrap_or_default();
            let kept = (!enabled).then(|| attrs.get("nsi")).flatten();
            let nsi = statistics_for(&nu, kept);
            attrs.insert("nsi".into(), nsi);
        }
    }
}

/// One `m2m:notificationStatsInfo` record per target: `tg` the target, `rqs` requests
/// sent, `rsr` responses received, `noec` events; counts taken from `kept` where it has
/// the target.
fn statistics_for(nu: &[String], kept: Option<&Value>) -> Value {
    let old = |tg: &str| {
        kept.and_then(Value::as_array)
            .and_then(|l| l.iter().find(|r| r["tg"] == tg))
            .cloned()
    };
    let records: Vec<Value> = nu
        .iter()
        .map(|tg| {
            old(tg).unwrap_or_else(|| serde_json::json!({"tg": tg, "rqs": 0, "rsr": 0, "noec": 0}))
        })
        .collect();
    Value::Array(records)
}

/// Adds `n` to the member `field` of the `nsi` records of `attrs` whose target passes
/// `which`.
pub(crate) fn count_statistic(
    attrs: &mut Map<String, Value>,
    field: &str,
    which: impl Fn(&str) -> bool,
) {
    let Some(Value::Array(records)) = attrs.get_mut("nsi") else {
        return;
    };
    for record in records {
        if record["tg"].as_str().is_some_and(&which) {
            let now = record[field].as_u64().unwrap_or(0);
            record[field] = Value::from(now + 1);
        }
    }
}

fn bad(reason: &str) -> RequestError {
    RequestError::bad_request(reason.to_owned())
}

/// A notification target: a URL or an AE-ID / CSE-ID / resource ID.
fn valid_target(s: &str) -> bool {
    !s.is_empty() && s.len() <= 1024 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether a notification target is a URL (else an entity or resource ID): a point of
/// access of a binding (`http(s)://`, `mqtt(s)://`, `coap(s)://`, `ws(s)://`; a scheme
/// without a transport registered is refused when sent to).
pub(crate) fn is_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    [
        "http://", "https://", "mqtt://", "mqtts://", "coap://", "coaps://", "ws://", "wss://",
    ]
    .iter()
    .any(|scheme| lower.starts_with(scheme))
}

/// Refuses a target `what` (`nu` entry, `su`) that is no URI or entity ID, or a URL whose
/// `ct` query member names no serialization Bastion writes (TS-0004 7.4.8): it could
/// never be sent to.
fn check_target(target: &str, what: &str) -> Result<(), RequestError> {
    let shown: String = target.chars().take(40).collect();
    if !valid_target(target) {
        return Err(RequestError::bad_request(format!(
            "{what} entry {shown:?} is not a URI or an entity ID"
        )));
    }
    if is_url(target) && bastion_proto::wire::target_serialization(target).is_none() {
        return Err(RequestError::bad_request(format!(
            "{what} entry {shown:?}: ct must be one of json, cbor, xml, given once"
        )));
    }
    Ok(())
}

fn notification_uris(value: Option<&Value>) -> Result<Vec<String>, RequestError> {
    let list: Vec<String> = value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        return Err(bad("nu must name at least one target"));
    }
    if list.len() > 16 {
        return Err(bad("nu names more than 16 targets"));
    }
    for target in &list {
        check_target(target, "nu")?;
    }
    Ok(list)
}

/// The attributes besides `enc` and `nu` that a blocking-update subscription may hold:
/// the universal and common ones, and `nct`, which the CSE fills in (2).
const BLOCKING_MAY_HOLD: [&str; 13] = [
    "rn", "ty", "ri", "pi", "ct", "lt", "et", "acpi", "lbl", "daci", "cr", "nct", "nu",
];

/// A blocking-update subscription (TS-0004 7.4.8.2.1, `net` 7): `net` 7 alone, exactly one
/// target that is a oneM2M resource ID, no subscription attribute but `enc` and `nu`, and
/// no condition in `enc` but `atr`; else 4000. At most one per resource (4124) is checked
/// against the tree by the caller.
pub(crate) fn blocking_rules(
    attrs: &Map<String, Value>,
    net: &[u8],
    nu: &[String],
) -> Result<(), RequestError> {
    if net != [NET_BLOCKING_UPDATE] {
        return Err(bad(
            "blocking update (net 7) cannot be combined with other event types",
        ));
    }
    if nu.len() != 1 || is_url(&nu[0]) {
        return Err(bad(
            "a blocking update names exactly one target, by its resource ID",
        ));
    }
    if let Some(k) = attrs
        .keys()
        .find(|k| *k != "enc" && !BLOCKING_MAY_HOLD.contains(&k.as_str()))
    {
        return Err(RequestError::bad_request(format!(
            "a blocking-update subscription cannot hold {k}"
        )));
    }
    let enc = attrs.get("enc").and_then(Value::as_object);
    if let Some(k) = enc.and_then(|e| e.keys().find(|k| *k != "net" && *k != "atr")) {
        return Err(RequestError::bad_request(format!(
            "a blocking-update subscription takes no condition {k}"
        )));
    }
    Ok(())
}

/// `nct` against the `net` list (TS-0001 table 9.6.8-4): every event type must allow it;
/// when absent, all event types here default to 1, a blocking update to 2.
fn content_type(net: &[u8], nct: Option<u64>) -> Result<u8, RequestError> {
    let Some(nct) = nct else {
        if net.contains(&NET_MISSING_DATA) {
            // Its default (5) is allowed for no other event type.
            if net.len() > 1 {
                return Err(bad(
                    "missing data (net 8) cannot share a subscription with other event types",
                ));
            }
            return Ok(NCT_TSN);
        }
        return Ok(if net.contains(&NET_BLOCKING_UPDATE) {
            NCT_MODIFIED
        } else {
            NCT_ALL
        });
    };
    let allowed = |n: u8| match nct {
        1 | 3 => (1..=4).contains(&n),
        2 => n == NET_UPDATE || n == NET_BLOCKING_UPDATE,
        5 => n == NET_MISSING_DATA,
        _ => false,
    };
    if !(1..=5).contains(&nct) {
        return Err(bad("nct must be 1 to 5"));
    }
    if let Some(n) = net.iter().find(|n| !allowed(**n)) {
        return Err(RequestError::bad_request(format!(
            "nct {nct} is not allowed with notificationEventType {n}"
        )));
    }
    Ok(nct as u8)
}

/// `{"num": n, "dur": "PT…"}` of `bn`, `{"mnn": n, "tww": "PT…"}` of `rl`.
fn pair(v: &Value, count: &str, span: &str, what: &str) -> Result<(u32, Duration), RequestError> {
    let obj = v
        .as_object()
        .ok_or_else(|| RequestError::bad_request(format!("{what} must be an object")))?;
    if let Some(k) = obj.keys().find(|k| *k != count && *k != span) {
        return Err(RequestError::bad_request(format!(
            "unknown member {k} in {what}"
        )));
    }
    // A missing batch size: the duration alone ends a batch (`filled_defaults`).
    let n = match obj.get(count) {
        None if what == "bn" => Some(DEFAULT_BATCH_NUMBER),
        v => v.and_then(Value::as_u64),
    }
    .filter(|n| (1..=10_000).contains(n))
    .ok_or_else(|| RequestError::bad_request(format!("{what}.{count} must be 1 to 10000")))?;
    // A missing batch duration takes the service provider's default (TS-0001 9.6.8).
    let default = (what == "bn").then_some(Duration::from_secs(60));
    let d = match obj.get(span) {
        Some(Value::String(s)) => parse_duration(s),
        None => default,
        _ => None,
    }
    .filter(|d| !d.is_zero())
    .ok_or_else(|| RequestError::bad_request(format!("{what}.{span} must be a duration")))?;
    Ok((n as u32, d))
}

const ENC_MEMBERS: [&str; 16] = [
    "crb", "cra", "ms", "us", "sts", "stb", "exb", "exa", "sza", "szb", "atr", "net", "om", "chty",
    "fo", "md",
];

fn event_criteria(
    enc: &Map<String, Value>,
    target: ResourceType,
) -> Result<(Vec<u8>, Criteria), RequestError> {
    if let Some(k) = enc.keys().find(|k| !ENC_MEMBERS.contains(&k.as_str())) {
        return Err(RequestError::bad_request(format!(
            "unknown member {k} in enc"
        )));
    }
    if enc.contains_key("md") && target != ResourceType::TimeSeries {
        return Err(bad("md applies to timeSeries only"));
    }
    if enc.contains_key("net") && enc.contains_key("om") {
        return Err(bad("enc cannot hold both net and om"));
    }
    let time = |name: &str| -> Result<Option<Timestamp>, RequestError> {
        enc.get(name)
            .map(|v| {
                v.as_str().and_then(Timestamp::parse).ok_or_else(|| {
                    RequestError::bad_request(format!("enc.{name} must be a timestamp"))
                })
            })
            .transpose()
    };
    let number = |name: &str| -> Result<Option<u64>, RequestError> {
        enc.get(name)
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    RequestError::bad_request(format!("enc.{name} must be a non-negative integer"))
                })
            })
            .transpose()
    };
    // An operation monitor watches every kind of event; `om` then picks the operations.
    let net = match enc.get("om") {
        Some(_) => vec![NET_UPDATE, NET_DELETE, NET_CREATE_CHILD, NET_DELETE_CHILD],
        None => event_types(enc.get("net"))?,
    };
    if net.contains(&NET_MISSING_DATA) && target != ResourceType::TimeSeries {
        return Err(bad("missing data (net 8) applies to timeSeries only"));
    }
    // `md` says when a missing-data notification is sent: only with `net` 8.
    let missing = enc.get("md").map(missing_data).transpose()?;
    if missing.is_some() && !net.contains(&NET_MISSING_DATA) {
        return Err(bad("md needs notificationEventType 8 (missing data)"));
    }
    let criteria = Criteria {
        created_before: time("crb")?,
        created_after: time("cra")?,
        modified_since: time("ms")?,
        unmodified_since: time("us")?,
        state_tag_smaller: number("sts")?,
        state_tag_bigger: number("stb")?,
        expire_before: time("exb")?,
        expire_after: time("exa")?,
        size_above: number("sza")?,
        size_below: number("szb")?,
        attributes: strings(enc.get("atr"), "atr")?,
        child_types: child_types(enc.get("chty"), target)?,
        monitor: enc.get("om").map(operation_monitors).transpose()?,
        any: match number("fo")? {
            None | Some(1) => false,
            Some(2) => true,
            Some(_) => return Err(bad("enc.fo must be 1 or 2")),
        },
        missing,
    };
    Ok((net, criteria))
}

/// `md` (`m2m:missingData`): `{"num": 1…1000, "dur": "PT…"}`, both present.
fn missing_data(value: &Value) -> Result<(usize, i64), RequestError> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad("enc.md must be an object"))?;
    if let Some(k) = obj.keys().find(|k| *k != "num" && *k != "dur") {
        return Err(RequestError::bad_request(format!(
            "unknown member {k} in enc.md"
        )));
    }
    let num = obj
        .get("num")
        .and_then(Value::as_u64)
        .filter(|n| (1..=MAX_MISSING_NUM).contains(n))
        .ok_or_else(|| bad("enc.md.num must be 1 to 1000"))?;
    let dur = obj
        .get("dur")
        .and_then(Value::as_str)
        .and_then(parse_duration)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| bad("enc.md.dur must be a duration"))?;
    let dur_ms = i64::try_from(dur.as_millis()).unwrap_or(i64::MAX);
    Ok((num as usize, dur_ms))
}

fn event_types(value: Option<&Value>) -> Result<Vec<u8>, RequestError> {
    let Some(value) = value else {
        return Ok(vec![NET_UPDATE]);
    };
    let list = value
        .as_array()
        .filter(|l| !l.is_empty() && l.len() <= 8)
        .ok_or_else(|| bad("enc.net must be a non-empty list"))?;
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        match v.as_u64() {
            Some(n @ (1..=4 | 7 | 8)) => {
                if !out.contains(&(n as u8)) {
                    out.push(n as u8);
                }
            }
            Some(n @ (5 | 6)) => {
                return Err(RequestError::NotImplemented(
                    format!("notificationEventType {n} is not supported").into(),
                ))
            }
            _ => return Err(bad("enc.net values must be 1 to 8")),
        }
    }
    Ok(out)
}

fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>, RequestError> {
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    RequestError::bad_request(format!("enc.{what} must list strings"))
                })
            })
            .collect(),
        Some(_) => Err(RequestError::bad_request(format!(
            "enc.{what} must be a list"
        ))),
    }
}

fn child_types(value: Option<&Value>, target: ResourceType) -> Result<Vec<u16>, RequestError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let list = value
        .as_array()
        .ok_or_else(|| bad("enc.chty must be a list"))?;
    list.iter()
        .map(|v| {
            v.as_u64()
                .and_then(ResourceType::from_number)
                .filter(|t| target.allows_child(*t))
                .map(|t| t.number())
                .ok_or_else(|| bad("enc.chty names a type the resource cannot hold"))
        })
        .collect()
}

/// `om`: a list of `m2m:operationMonitor` (TS-0004 6.3.5.x). One object alone is taken
/// as a list of one, the form an XML list of one element decodes to.
fn operation_monitors(value: &Value) -> Result<Vec<Monitor>, RequestError> {
    match value {
        Value::Array(list) if !list.is_empty() => list.iter().map(operation_monitor).collect(),
        Value::Object(_) => Ok(vec![operation_monitor(value)?]),
        _ => Err(bad("enc.om must be a non-empty list of operation monitors")),
    }
}

fn operation_monitor(value: &Value) -> Result<Monitor, RequestError> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad("enc.om must be an object"))?;
    if let Some(k) = obj.keys().find(|k| *k != "ops" && *k != "org") {
        return Err(RequestError::bad_request(format!(
            "unknown member {k} in enc.om"
        )));
    }
    let ops = match obj.get("ops") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_u64()
                    .filter(|n| (1..=5).contains(n))
                    .map(|n| n as u8)
                    .ok_or_else(|| bad("enc.om.ops values must be 1 to 5"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Number(n)) => vec![n
            .as_u64()
            .filter(|n| (1..=5).contains(n))
            .map(|n| n as u8)
            .ok_or_else(|| bad("enc.om.ops values must be 1 to 5"))?],
        Some(_) => return Err(bad("enc.om.ops must be a list")),
    };
    let org = match obj.get("org") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(other) => strings(Some(other), "om.org")?,
    };
    Ok((ops, org))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> Result<SubscriptionState, RequestError> {
        let Value::Object(m) = v else { panic!() };
        SubscriptionState::compile(&m, ResourceType::Container, "Csub", false)
    }

    fn rsc(r: Result<SubscriptionState, RequestError>) -> u16 {
        r.err().map(|e| e.rsc().code()).unwrap_or(0)
    }

    #[test]
    fn ts0001_9_6_8_defaults() {
        let s = compile(json!({"nu": ["http://127.0.0.1:9/n"]})).unwrap();
        assert_eq!((s.net.clone(), s.nct, s.exc), (vec![1], 1, None));
        assert_eq!(s.policy, Policy::default());
    }

    #[test]
    fn ts0001_table_9_6_8_4_content_type_per_event_type() {
        let with =
            |net: Value, nct: u64| compile(json!({"nu": ["Cx"], "enc": {"net": net}, "nct": nct}));
        assert!(with(json!([1]), 2).is_ok());
        assert_eq!(rsc(with(json!([1, 3]), 2)), 4000);
        assert!(with(json!([2, 3, 4]), 3).is_ok());
        assert_eq!(rsc(with(json!([1]), 4)), 4000);
        assert_eq!(rsc(with(json!([1]), 9)), 4000);
        assert_eq!(rsc(with(json!([5]), 1)), 5001);
        assert_eq!(rsc(with(json!([9]), 1)), 4000);
        assert_eq!(rsc(with(json!([]), 1)), 4000);
    }

    #[test]
    fn enc_rejects_what_it_cannot_honour() {
        let enc = |e: Value| compile(json!({"nu": ["Cx"], "enc": e}));
        assert_eq!(rsc(enc(json!({"zz": 1}))), 4000);
        assert_eq!(rsc(enc(json!({"md": {"num": 1}}))), 4000);
        assert_eq!(rsc(enc(json!({"net": [1], "om": {"ops": [1]}}))), 4000);
        assert_eq!(
            rsc(enc(json!({"chty": [2]}))),
            4000,
            "a container holds no AE"
        );
        assert!(enc(json!({"chty": [4, 3]})).is_ok());
        assert_eq!(rsc(enc(json!({"crb": "yesterday"}))), 4000);
        assert_eq!(rsc(enc(json!({"fo": 3}))), 4000);
        assert_eq!(rsc(compile(json!({"nu": ["Cx"], "psn": 1}))), 5001);
        assert_eq!(rsc(compile(json!({"nu": ["Cx"], "exc": 0}))), 4000);
        assert_eq!(rsc(compile(json!({"nu": []}))), 4000);
        assert_eq!(rsc(compile(json!({"nu": ["a b"]}))), 4000);
    }

    #[test]
    fn ts0001_9_6_8_missing_data_condition() {
        let ts = |enc: Value| {
            let Value::Object(m) = json!({"nu": ["Cx"], "enc": enc}) else {
                panic!()
            };
            SubscriptionState::compile(&m, ResourceType::TimeSeries, "Csub", false)
        };
        let md = |md: Value| ts(json!({"net": [8], "md": md}));
        assert_eq!(rsc(ts(json!({"md": {"num": 2, "dur": "PT1M"}}))), 4000);
        assert_eq!(rsc(md(json!({"num": 0, "dur": "PT1M"}))), 4000);
        assert_eq!(rsc(md(json!({"num": 1001, "dur": "PT1M"}))), 4000);
        assert_eq!(rsc(md(json!({"num": 2}))), 4000);
        assert_eq!(rsc(md(json!({"num": 2, "dur": "PT0S"}))), 4000);
        assert_eq!(rsc(md(json!({"num": 2, "dur": "PT1M", "x": 1}))), 4000);
        let s = md(json!({"num": 3, "dur": "PT10S"})).unwrap();
        let window = s.missing.clone().unwrap();
        let at = |t: &str| Value::from(t);
        // Two within 10 s, then a third 20 s later: the window restarts at the second.
        assert!(window
            .add(&[at("20260101T000000"), at("20260101T000005")])
            .is_none());
        assert!(window.add(&[at("20260101T000020")]).is_none());
        assert!(window.add(&[at("20260101T000025")]).is_none());
        let report = window.add(&[at("20260101T000028")]).unwrap();
        assert_eq!(report["mdc"], 3);
        assert_eq!(
            report["mdlt"],
            json!(["20260101T000020", "20260101T000025", "20260101T000028"])
        );
        // Reported points start a new window.
        assert!(window.add(&[at("20260101T000029")]).is_none());
    }

    fn crs(sliding: bool) -> CrossResourceState {
        let delivery = compile(json!({"nu": ["Cx"]})).unwrap();
        let targets = vec![Arc::from("s0"), Arc::from("s1"), Arc::from("s2")];
        CrossResourceState::new(targets, 1000, sliding, 10_000, Arc::new(delivery))
    }

    #[test]
    fn ts0004_7_5_1_2_18_periodic_window() {
        let c = crs(false);
        // Windows [10000, 11000), [11000, 12000), ...
        assert!(!c.record("s0", 10_100));
        assert!(!c.record("s1", 10_500));
        assert!(!c.record("nobody", 10_600));
        assert!(c.record("s2", 10_999), "all three in one window");
        // Used up: the same window needs all three again.
        assert!(!c.record("s0", 10_999));
        // s0 and s1 in one window, s2 in the next: nothing.
        assert!(!c.record("s0", 11_100));
        assert!(!c.record("s1", 11_200));
        assert!(!c.record("s2", 12_000));
        assert!(!c.record("s0", 12_100));
        assert!(c.record("s1", 12_999));
    }

    #[test]
    fn ts0004_7_5_1_2_18_sliding_window() {
        let c = crs(true);
        // The window starts at the first notification (10500) and lasts 1000 ms.
        assert!(!c.record("s0", 10_500));
        assert!(!c.record("s1", 11_400));
        // 1600 ms after the start: a new window starts here, with s2 alone.
        assert!(!c.record("s2", 12_100));
        assert!(!c.record("s0", 12_200));
        assert!(c.record("s1", 13_000), "s2, s0, s1 within 1000 ms of 12100");
        // After a notification the next one starts a new window.
        assert!(!c.record("s1", 13_001));
        assert!(!c.record("s1", 13_002));
    }

    #[test]
    fn batch_and_rate_policies() {
        let s = compile(json!({"nu": ["Cx"], "bn": {"num": 3, "dur": "PT2S"},
            "rl": {"mnn": 5, "tww": "PT1M"}, "ln": true, "pn": 1}))
        .unwrap();
        assert_eq!(s.policy.batch, Some((3, Duration::from_secs(2))));
        assert_eq!(s.policy.rate, Some((5, Duration::from_secs(60))));
        assert!(s.policy.latest_only && s.policy.pending_latest);
        let s = compile(json!({"nu": ["Cx"], "bn": {"num": 2}})).unwrap();
        assert_eq!(s.policy.batch, Some((2, Duration::from_secs(60))));
        assert_eq!(rsc(compile(json!({"nu": ["Cx"], "rl": {"mnn": 2}}))), 4000);
        assert_eq!(rsc(compile(json!({"nu": ["Cx"], "bn": {"num": 0}}))), 4000);
        assert_eq!(
            rsc(compile(json!({"nu": ["Cx"], "bn": {"num": 1, "x": 1}}))),
            4000
        );
    }

    #[test]
    fn criteria_all_or_any() {
        let resource = json!({"ct": "20260101T000000", "st": 5, "cs": 10});
        let Value::Object(resource) = resource else {
            panic!()
        };
        let facts = |net| EventFacts {
            net,
            resource: &resource,
            child_type: Some(4),
            modified: &[],
            operation: 1,
            originator: "Cx",
        };
        let enc = |e: Value| compile(json!({"nu": ["Cx"], "enc": e})).unwrap().criteria;
        assert!(enc(json!({"stb": 4, "sza": 10})).admits(&facts(3)));
        assert!(!enc(json!({"stb": 5, "sza": 10})).admits(&facts(3)));
        assert!(enc(json!({"stb": 5, "sza": 10, "fo": 2})).admits(&facts(3)));
        assert!(!enc(json!({"chty": [3]})).admits(&facts(3)));
        assert!(!enc(json!({"atr": ["lbl"]})).admits(&facts(1)));
        assert!(enc(json!({"cra": "20251231T000000"})).admits(&facts(3)));
        assert!(!enc(json!({"om": {"org": ["Cother"]}})).admits(&facts(3)));
        assert!(enc(json!({"om": {"ops": [1], "org": "Cx"}})).admits(&facts(3)));
    }
}
