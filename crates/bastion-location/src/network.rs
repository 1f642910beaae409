//! The network location source (TS-0003 annex F; TS-0004 annex F): an OMA RESTful NetAPI
//! Terminal Location v1 client and notification receiver, feeding the network fixes of
//! [`LocationPip`].
//!
//! * [`LocationPip::set_circles`] reconciles the area subscriptions held at the server
//!   with the circles the access-control policies use: one `circleNotificationSubscription`
//!   per terminal × circle × criterion (`Entering` and `Leaving`, so the fix follows the
//!   terminal both ways), deleting those no longer wanted.
//! * [`LocationPip::router`] / [`LocationPip::serve`] receive the server's
//!   `subscriptionNotification`s; [`LocationPip::handle_notification`] is the same logic
//!   without HTTP. Every notification must carry the `callbackData` this PIP put in its
//!   subscriptions (a random secret per PIP), so that a third party that finds the
//!   callback URL cannot plant locations.
//! * [`LocationPip::poll_once`] / [`LocationPip::spawn_polling`] run one-shot location
//!   queries for every terminal, optionally on a timer.
//!
//! Fixes are keyed by originator and kept with the time the server says they were
//! measured (never later than their arrival); older fixes never replace newer ones, and a
//! fix older than `max_age_secs` is stale: [`LocationPip::locate`] ignores it.
//!
//! [`LocationPip::locate`]: bastion_policy::LocationService::locate

use crate::config::NetworkConfig;
use crate::error::{LocationError, NotificationError};
use crate::oma::{
    CallbackReference, CircleNotificationSubscription, CircleSubscriptionBody, CreatedSubscription,
    Criteria, Incoming, Link, NetworkFix, QueryAnswer, TerminalLocation,
};
use crate::pip::{Fix, LocationPip};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bastion_policy::context::Region;
use bastion_policy::{normalize_originator, LocalIdentity, Location};
use parking_lot::{Mutex, RwLock};
use rand::distr::{Alphanumeric, SampleString};
use reqwest::Url;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Largest notification body accepted; a terminal location is a few hundred bytes.
pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

/// An area of interest (the `accr` of an `aclr` context, TS-0004 `m2m:locationRegion`):
/// WGS 84 degrees, radius in metres.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Circle {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
}

impl Circle {
    /// The circle of a compiled `aclr`, if it is one (country lists are not circles).
    pub fn from_region(region: &Region) -> Option<Circle> {
        match *region {
            Region::Circle {
                latitude,
                longitude,
                radius_m,
            } => Some(Circle {
                latitude,
                longitude,
                radius_m,
            }),
            Region::Countries(_) => None,
        }
    }

    fn check(&self) -> Result<(), LocationError> {
        let bad = |reason| LocationError::InvalidCircle {
            latitude: self.latitude,
            longitude: self.longitude,
            radius_m: self.radius_m,
            reason,
        };
        let centre = Location {
            latitude: self.latitude,
            longitude: self.longitude,
        };
        if !centre.is_valid() {
            return Err(bad("centre out of range"));
        }
        if !(self.radius_m.is_finite() && self.radius_m > 0.0) {
            return Err(bad("radius must be a positive number of metres"));
        }
        Ok(())
    }

    /// Exact identity of the circle (`-0.0` and `0.0` are the same place).
    fn key(&self) -> [u64; 3] {
        [
            (self.latitude + 0.0).to_bits(),
            (self.longitude + 0.0).to_bits(),
            (self.radius_m + 0.0).to_bits(),
        ]
    }
}

/// What [`LocationPip::set_circles`] did. Failed operations are reported, not retried:
/// the next call tries them again.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Subscriptions created.
    pub created: usize,
    /// Subscriptions deleted (or found already gone).
    pub deleted: usize,
    /// Wanted subscriptions that already existed.
    pub unchanged: usize,
    /// Operations that failed.
    pub errors: Vec<LocationError>,
}

/// What an accepted notification did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotificationOutcome {
    /// Fixes stored.
    pub updated: usize,
    /// Entries for addresses not configured, or older than the fix held.
    pub ignored: usize,
    /// Entries the server could not locate (`NotRetrieved`, `Error`).
    pub not_located: usize,
}

type SubKey = (String, [u64; 3], Criteria);

/// The state of the network source, owned by [`LocationPip`].
pub(crate) struct Network {
    base: String,
    callback_url: String,
    callback_path: String,
    callback_data: String,
    /// `(originator, address)`, as configured (originator normalised).
    terminals: Vec<(String, String)>,
    by_address: HashMap<String, String>,
    max_age: Duration,
    poll_interval: Option<Duration>,
    tracking_accuracy_m: u32,
    requested_accuracy_m: u32,
    frequency_secs: u32,
    http: reqwest::Client,
    fixes: RwLock<HashMap<String, Fix>>,
    /// Live subscriptions → resource URL. An async lock: `set_circles` calls are
    /// serialised over their HTTP exchanges; the request path never takes it.
    subscriptions: tokio::sync::Mutex<BTreeMap<SubKey, String>>,
    /// Resource URLs the server told us it ended (final or cancellation notification).
    ended: Mutex<HashSet<String>>,
}

fn http_url(field: &str, text: &str) -> Result<Url, LocationError> {
    let url = Url::parse(text)
        .map_err(|e| LocationError::config(field, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(LocationError::config(
            field,
            format!("{text:?} must be an absolute http or https URL"),
        ));
    }
    if url.fragment().is_some() {
        return Err(LocationError::config(field, "must not have a fragment"));
    }
    Ok(url)
}

impl Network {
    pub(crate) fn new(
        config: &NetworkConfig,
        local: &LocalIdentity,
    ) -> Result<Network, LocationError> {
        let base = http_url("network.base_url", &config.base_url)?;
        if base.query().is_some() {
            return Err(LocationError::config(
                "network.base_url",
                "must not have a query",
            ));
        }
        let callback = http_url("network.callback_url", &config.callback_url)?;
        let callback_path = callback.path().to_owned();
        // The path becomes an axum route: no capture or wildcard syntax in it.
        if callback_path
            .split('/')
            .any(|s| s.starts_with(':') || s.starts_with('*'))
        {
            return Err(LocationError::config(
                "network.callback_url",
                "path segments must not start with ':' or '*'",
            ));
        }
        let mut terminals = Vec::with_capacity(config.terminals.len());
        let mut by_address = HashMap::with_capacity(config.terminals.len());
        for (i, t) in config.terminals.iter().enumerate() {
            let field = format!("network.terminals[{i}]");
            if t.originator.is_empty() {
                return Err(LocationError::config(
                    format!("{field}.originator"),
                    "empty",
                ));
            }
            if t.address.is_empty() {
                return Err(LocationError::config(format!("{field}.address"), "empty"));
            }
            let id = normalize_originator(local, &t.originator);
            if terminals.iter().any(|(o, _)| *o == id) {
                return Err(LocationError::config(
                    format!("{field}.originator"),
                    format!("{id} is listed twice"),
                ));
            }
            if by_address.insert(t.address.clone(), id.clone()).is_some() {
                return Err(LocationError::config(
                    format!("{field}.address"),
                    format!("{} is listed twice", t.address),
                ));
            }
            terminals.push((id, t.address.clone()));
        }
        let positive = |field: &str, v: u64| {
            if v == 0 {
                Err(LocationError::config(field, "must be positive"))
            } else {
                Ok(Duration::from_secs(v))
            }
        };
        let max_age = positive("network.max_age_secs", config.max_age_secs)?;
        let timeout = positive("network.request_timeout_secs", config.request_timeout_secs)?;
        let poll_interval = config
            .poll_interval_secs
            .map(|v| positive("network.poll_interval_secs", v))
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LocationError::config("network", format!("HTTP client: {e}")))?;
        Ok(Network {
            base: config.base_url.trim_end_matches('/').to_owned(),
            callback_url: callback.to_string(),
            callback_path,
            callback_data: Alphanumeric.sample_string(&mut rand::rng(), 32),
            terminals,
            by_address,
            max_age,
            poll_interval,
            tracking_accuracy_m: config.tracking_accuracy_m,
            requested_accuracy_m: config.requested_accuracy_m,
            frequency_secs: config.frequency_secs,
            http,
            fixes: RwLock::new(HashMap::new()),
            subscriptions: tokio::sync::Mutex::new(BTreeMap::new()),
            ended: Mutex::new(HashSet::new()),
        })
    }

    pub(crate) fn fresh_fix(&self, originator: &str, now: SystemTime) -> Option<Location> {
        self.fixes
            .read()
            .get(originator)
            .filter(|f| f.is_fresh(now, self.max_age))
            .map(|f| f.location)
    }

    /// Stores `fix` unless its address is unknown, it is older than the fix held, or it
    /// is already stale. Returns whether it was stored.
    fn apply(&self, fix: &NetworkFix, now: SystemTime) -> bool {
        let Some(originator) = self.by_address.get(&fix.address) else {
            tracing::debug!(address = %fix.address, "location for an unknown terminal ignored");
            return false;
        };
        let new = Fix {
            location: fix.location,
            at: fix.at.min(now),
        };
        if !new.is_fresh(now, self.max_age) {
            return false;
        }
        let mut fixes = self.fixes.write();
        if fixes.get(originator).is_some_and(|old| old.at > new.at) {
            return false;
        }
        fixes.insert(originator.clone(), new);
        true
    }

    fn mark_ended(&self, links: &[Link]) {
        if links.is_empty() {
            return;
        }
        let mut ended = self.ended.lock();
        for l in links {
            ended.insert(l.href.clone());
        }
    }

    fn ours(&self, callback_data: Option<&str>) -> bool {
        let Some(got) = callback_data else {
            return false;
        };
        let want = self.callback_data.as_bytes();
        let got = got.as_bytes();
        // Length is not secret (always 32); compare the bytes without early exit.
        got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    async fn subscribe(
        &self,
        address: &str,
        circle: &Circle,
        criteria: Criteria,
    ) -> Result<String, LocationError> {
        const OP: &str = "circle subscription";
        let body = CircleSubscriptionBody {
            circle_notification_subscription: CircleNotificationSubscription {
                address: [address],
                callback_reference: CallbackReference {
                    notify_url: &self.callback_url,
                    callback_data: &self.callback_data,
                },
                check_immediate: true,
                entering_leaving_criteria: criteria,
                frequency: self.frequency_secs,
                latitude: circle.latitude,
                longitude: circle.longitude,
                radius: circle.radius_m,
                tracking_accuracy: self.tracking_accuracy_m,
            },
        };
        let url = format!("{}/location/v1/subscriptions/area/circle", self.base);
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|source| LocationError::Transport {
                operation: OP,
                source,
            })?;
        let status = resp.status();
        if !(status == reqwest::StatusCode::CREATED || status == reqwest::StatusCode::OK) {
            return Err(LocationError::Status {
                operation: OP,
                status: status.as_u16(),
            });
        }
        let header = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| LocationError::Transport {
                operation: OP,
                source,
            })?;
        let from_body = serde_json::from_slice::<CreatedSubscription>(&bytes)
            .ok()
            .and_then(|c| c.circle_notification_subscription.resource_url);
        let Some(found) = from_body.or(header) else {
            return Err(LocationError::BadAnswer {
                operation: OP,
                reason: "neither resourceURL nor Location".into(),
            });
        };
        // Relative references are resolved against the request URL.
        let resolved = Url::parse(&url).and_then(|u| u.join(&found)).map_err(|e| {
            LocationError::BadAnswer {
                operation: OP,
                reason: format!("resourceURL {found:?}: {e}"),
            }
        })?;
        if !matches!(resolved.scheme(), "http" | "https") {
            return Err(LocationError::BadAnswer {
                operation: OP,
                reason: format!("resourceURL {found:?} is not http(s)"),
            });
        }
        Ok(resolved.to_string())
    }

    async fn unsubscribe(&self, resource_url: &str) -> Result<(), LocationError> {
        const OP: &str = "subscription deletion";
        let resp = self
            .http
            .delete(resource_url)
            .send()
            .await
            .map_err(|source| LocationError::Transport {
                operation: OP,
                source,
            })?;
        let status = resp.status();
        // 404: already gone (expired or cancelled at the server); that is what we want.
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(LocationError::Status {
                operation: OP,
                status: status.as_u16(),
            })
        }
    }
}

impl LocationPip {
    fn net(&self) -> Result<&Network, LocationError> {
        self.network.as_ref().ok_or(LocationError::NoNetwork)
    }

    /// Makes the server's area subscriptions match `circles` (TS-0003 annex F: subscribe
    /// to enter/leave notifications for each configured circle): for every terminal and
    /// circle, one `Entering` and one `Leaving` subscription with `checkImmediate`, so
    /// the current position arrives at once. Subscriptions for circles not in `circles`
    /// are deleted. Duplicate circles count once. Any invalid circle fails the whole call
    /// before anything is sent.
    pub async fn set_circles(&self, circles: &[Circle]) -> Result<SyncReport, LocationError> {
        let net = self.net()?;
        for c in circles {
            c.check()?;
        }
        let mut wanted: BTreeMap<SubKey, (&str, Circle)> = BTreeMap::new();
        for (_, address) in &net.terminals {
            for c in circles {
                for crit in [Criteria::Entering, Criteria::Leaving] {
                    wanted.insert((address.clone(), c.key(), crit), (address, *c));
                }
            }
        }
        let mut report = SyncReport::default();
        let mut subs = net.subscriptions.lock().await;
        {
            let mut ended = net.ended.lock();
            if !ended.is_empty() {
                subs.retain(|_, url| !ended.contains(url));
                ended.clear();
            }
        }
        let stale: Vec<(SubKey, String)> = subs
            .iter()
            .filter(|(k, _)| !wanted.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, url) in stale {
            match net.unsubscribe(&url).await {
                Ok(()) => {
                    subs.remove(&key);
                    report.deleted += 1;
                }
                Err(e) => report.errors.push(e),
            }
        }
        for (key, (address, circle)) in wanted {
            if subs.contains_key(&key) {
                report.unchanged += 1;
                continue;
            }
            match net.subscribe(address, &circle, key.2).await {
                Ok(url) => {
                    subs.insert(key, url);
                    report.created += 1;
                }
                Err(e) => report.errors.push(e),
            }
        }
        for e in &report.errors {
            tracing::warn!(error = %e, "location subscription reconciliation");
        }
        Ok(report)
    }

    /// The resource URLs of the subscriptions currently held at the server.
    pub async fn subscriptions(&self) -> Vec<String> {
        match &self.network {
            None => Vec::new(),
            Some(n) => n.subscriptions.lock().await.values().cloned().collect(),
        }
    }

    /// Handles one POST to the callback URL: a `subscriptionNotification` (terminal
    /// locations) or a `subscriptionCancellationNotification`. The whole body is checked
    /// before anything is applied: a refused notification changes nothing.
    pub fn handle_notification(
        &self,
        body: &[u8],
    ) -> Result<NotificationOutcome, NotificationError> {
        let Some(net) = &self.network else {
            return Err(NotificationError::NotOurs);
        };
        let incoming: Incoming = serde_json::from_slice(body)
            .map_err(|e| NotificationError::Malformed(e.to_string()))?;
        match incoming {
            Incoming::SubscriptionCancellationNotification(c) => {
                if !net.ours(c.callback_data.as_deref()) {
                    return Err(NotificationError::NotOurs);
                }
                net.mark_ended(&c.link);
                Ok(NotificationOutcome::default())
            }
            Incoming::SubscriptionNotification(n) => {
                if !net.ours(n.callback_data.as_deref()) {
                    return Err(NotificationError::NotOurs);
                }
                let fixes =
                    validate_all(&n.terminal_location).map_err(NotificationError::Malformed)?;
                let outcome = self.apply_all(net, &fixes);
                if n.is_final_notification {
                    net.mark_ended(&n.link);
                }
                Ok(outcome)
            }
        }
    }

    fn apply_all(&self, net: &Network, fixes: &[Option<NetworkFix>]) -> NotificationOutcome {
        let now = self.clock.now();
        let mut out = NotificationOutcome::default();
        for fix in fixes {
            match fix {
                None => out.not_located += 1,
                Some(f) if net.apply(f, now) => out.updated += 1,
                Some(_) => out.ignored += 1,
            }
        }
        out
    }

    /// The notification receiver as a router answering POST on the path of
    /// `callback_url`: 204 when accepted, 400 when malformed, 403 without our
    /// `callbackData`, 413 above [`MAX_NOTIFICATION_BYTES`]. Empty without a network
    /// server configured.
    pub fn router(self: &Arc<Self>) -> Router {
        let Some(net) = &self.network else {
            return Router::new();
        };
        Router::new()
            .route(&net.callback_path, post(notify))
            .layer(DefaultBodyLimit::max(MAX_NOTIFICATION_BYTES))
            .with_state(Arc::clone(self))
    }

    /// Serves [`LocationPip::router`] on its own listener until the task is dropped or
    /// the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// One location query for every configured terminal
    /// (`GET {base}/location/v1/queries/location?address=…&requestedAccuracy=…`).
    /// Returns how many fixes were stored. A malformed answer stores nothing.
    pub async fn poll_once(&self) -> Result<usize, LocationError> {
        const OP: &str = "location query";
        let net = self.net()?;
        if net.terminals.is_empty() {
            return Ok(0);
        }
        let accuracy = net.requested_accuracy_m.to_string();
        let mut query: Vec<(&str, &str)> = net
            .terminals
            .iter()
            .map(|(_, a)| ("address", a.as_str()))
            .collect();
        query.push(("requestedAccuracy", &accuracy));
        let resp = net
            .http
            .get(format!("{}/location/v1/queries/location", net.base))
            .query(&query)
            .send()
            .await
            .map_err(|source| LocationError::Transport {
                operation: OP,
                source,
            })?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(LocationError::Status {
                operation: OP,
                status: resp.status().as_u16(),
            });
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| LocationError::Transport {
                operation: OP,
                source,
            })?;
        let answer: QueryAnswer =
            serde_json::from_slice(&bytes).map_err(|e| LocationError::BadAnswer {
                operation: OP,
                reason: e.to_string(),
            })?;
        let fixes =
            validate_all(&answer.terminal_location_list.terminal_location).map_err(|reason| {
                LocationError::BadAnswer {
                    operation: OP,
                    reason,
                }
            })?;
        Ok(self.apply_all(net, &fixes).updated)
    }

    /// Runs [`LocationPip::poll_once`] every `poll_interval_secs` on the current tokio
    /// runtime, first at once. `None` when polling is not configured. The task ends by
    /// itself when the PIP is dropped; abort the handle to stop it earlier.
    pub fn spawn_polling(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let interval = self.network.as_ref()?.poll_interval?;
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pip) = weak.upgrade() else {
                    break;
                };
                match pip.poll_once().await {
                    Ok(n) => tracing::debug!(updated = n, "location query"),
                    Err(e) => tracing::warn!(error = %e, "location query failed"),
                }
            }
        }))
    }
}

fn validate_all(list: &[TerminalLocation]) -> Result<Vec<Option<NetworkFix>>, String> {
    if list.is_empty() {
        return Err("no terminalLocation".into());
    }
    list.iter().map(TerminalLocation::validate).collect()
}

async fn notify(State(pip): State<Arc<LocationPip>>, body: Bytes) -> StatusCode {
    match pip.handle_notification(&body) {
        Ok(outcome) => {
            tracing::debug!(?outcome, "location notification");
            StatusCode::NO_CONTENT
        }
        Err(e @ NotificationError::Malformed(_)) => {
            tracing::info!(error = %e, "location notification refused");
            StatusCode::BAD_REQUEST
        }
        Err(e) => {
            tracing::warn!(error = %e, "location notification refused");
            StatusCode::FORBIDDEN
        }
    }
}
