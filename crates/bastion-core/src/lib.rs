//! The CSE: the request pipeline from a decoded primitive to a response primitive.
//!
//! Stages (docs/architecture.md): primitive checks (one typed request per operation,
//! `checks.rs`) → originator checks → target resolution → access decision (this crate is
//! the PEP and PRP, through one `access::Enforcer` per request; `bastion-policy` is the
//! PDP) → per-type handler → durable commit → response shaping. Time comes from the
//! clock the CSE was opened with ([`Services::clock`]). Bindings call [`Cse::handle`] and
//! never see anything else.
#![forbid(unsafe_code)]

mod access;
mod announce;
pub mod audit;
pub mod authz_state;
pub mod binding;
mod blocking;
mod bounded;
mod checks;
mod commit;
pub mod config;
mod create;
mod credentials;
mod delete;
mod discovery;
pub mod dynamic;
mod expiry;
mod explain;
mod fanout;
mod forward;
mod held;
pub mod identity;
mod load;
mod missing_data;
mod nonblocking;
pub mod notify;
mod originator;
pub mod outbound;
mod outgoing;
mod pch;
mod pip;
mod poa;
mod remote_cse;
mod render;
mod resolve;
mod retrieve;
mod self_removal;
mod state;
mod subscription;
pub mod throttle;
pub mod tree;
mod types;
mod update;

pub use audit::{AuditEvent, AuditKind, AuditRule, AuditSink};
pub use binding::{Binding, Listener};
pub use config::{AuthorizationConfig, CseConfig, CseType};
pub use explain::{explanation_json, ExplainQuery};
pub use identity::CredentialBindings;
/// The notifications an operation owes (re-exported so that `types/`, below `notify`,
/// can hand them on).
pub(crate) use notify::Notices;
pub use remote_cse::Liveness;

use access::Enforcer;
use bastion_policy::{LocalIdentity, LocationService, TokenVerifier, ValidatedToken};
use bastion_proto::clock::{Clock, SystemClock};
use bastion_proto::time::Timestamp;
use bastion_proto::{Request, RequestError, Response};
use bastion_store::{Store, StoreError};
use checks::Checked;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tree::Tree;

/// What the binding knows about how a request arrived.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// Transport peer address.
    pub peer: Option<SocketAddr>,
    /// The AE-ID or CSE-ID bound to the security association the request arrived on
    /// (TS-0003 7.2.1); `None` outside any association.
    pub identity: Option<String>,
    /// The listener (binding and local address) the request arrived on; `None` for what
    /// the CSE issues itself (notifications' access checks, tests).
    pub listener: Option<Listener>,
    /// `rq_authn` (TS-0003 7.1.2): `From` was verified against `identity`. Only the
    /// pipeline sets it; whatever a binding puts here is recomputed.
    pub(crate) authenticated: bool,
    /// Role-IDs validated for this request (`credentials.rs`), sorted.
    pub(crate) roles: Vec<Box<str>>,
    /// Tokens verified for this request.
    pub(crate) tokens: Vec<Arc<ValidatedToken>>,
}

impl RequestContext {
    /// What a binding knows: the peer address and, inside a security association, the
    /// identity bound to it.
    pub fn new(peer: Option<SocketAddr>, identity: Option<String>) -> RequestContext {
        RequestContext {
            peer,
            identity,
            listener: None,
            authenticated: false,
            roles: Vec::new(),
            tokens: Vec::new(),
        }
    }
}

/// Why the CSE could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("data directory holds CSE {found}, not {configured}")]
    WrongCse { found: String, configured: String },
    #[error("stored resource {ri} is corrupt: {reason}")]
    Corrupt { ri: String, reason: String },
}

/// The warning of a full [`CseConfig::max_delayed_requests`], once a minute at most.
static DELAYED_FULL_WARNING: throttle::Throttle = throttle::Throttle::per_minute();

/// A running CSE.
pub struct Cse {
    config: CseConfig,
    local: LocalIdentity,
    tree: RwLock<Tree>,
    store: Arc<dyn Store>,
    committer: commit::Committer,
    poisoned: Arc<AtomicBool>,
    audit: Arc<dyn AuditSink>,
    /// Token verification with its cache (TS-0003 7.3.2.4).
    tokens: credentials::TokenCache,
    /// `role_authorities` of the configuration, absolute form.
    role_authorities: Vec<String>,
    /// Where originators' locations and countries come from (annex F), if configured.
    location: Option<Arc<dyn LocationService>>,
    /// How Dynamic Authorization Servers are reached (TS-0003 7.3), if at all.
    das: Option<Arc<dyn dynamic::DasConsultant>>,
    /// What DAS Servers granted, until it expires.
    dynamic: dynamic::DynamicGrants,
    /// Requests to other entities, if the binary provides a way.
    outbound: Option<Arc<dyn outbound::Outbound>>,
    /// Requests being forwarded now, to recognise one that comes back (loop protection).
    forwarding: forward::InFlight,
    /// The notification delivery engine, if the binary provides one.
    notifications: Option<Arc<dyn notify::NotificationSink>>,
    /// Which identities hold a credential of the binary's store (`identity.rs`).
    credentials: Option<Arc<dyn CredentialBindings>>,
    /// The configured administrator, absolute form.
    admin_absolute: String,
    /// Polling channel queues and relayed requests awaiting answers.
    polling: pch::PollingChannels,
    /// Which AEs' points of access confirmed they take notifications (`poa.rs`).
    poa_checks: poa::PoaChecks,
    /// Notifications waiting for their subscription's schedule (`held.rs`).
    held: held::HeldNotifications,
    /// This CSE, for tasks that outlive a request (non-blocking requests).
    me: std::sync::Weak<Cse>,
    /// The one source of "now" (expiry, tokens, schedules, `rqet`, timestamps written).
    clock: Arc<dyn Clock>,
    /// Slots for requests held until their `oet` ([`CseConfig::max_delayed_requests`]).
    delayed: tokio::sync::Semaphore,
    /// Serialises the retrieval counts of instances created with `dcnt`
    /// (`types::content_instance::count_retrieval`).
    retrieval_counts: tokio::sync::Mutex<()>,
    /// `<crossResourceSubscription>`s being created while their target subscriptions on
    /// other CSEs are made: resource ID → originator, for those CSEs' verification
    /// requests (`types/cross_resource_subscription.rs`).
    crs_pending: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The turns of `<crossResourceSubscription>` UPDATEs: resource ID → the lock one
    /// UPDATE holds from `prepare_update` until it is written, while any holds or waits
    /// for it (`types/cross_resource_subscription.rs`).
    crs_updates: crate::types::UpdateTurns,
}

/// The CSE's connections to the outside world, beside its storage.
#[derive(Clone)]
pub struct Services {
    /// Security audit events (denials, ACP and `acpi` changes).
    pub audit: Arc<dyn AuditSink>,
    /// The location part of the PIP; without it every `aclr` fails closed.
    pub location: Option<Arc<dyn LocationService>>,
    /// How to reach Dynamic Authorization Servers; without it only the indirect
    /// procedure (`tqi`) is offered.
    pub das: Option<Arc<dyn dynamic::DasConsultant>>,
    /// How to send requests to other entities (forwarding, subscription verification,
    /// remote group members); without it those requests fail with 5103.
    pub outbound: Option<Arc<dyn outbound::Outbound>>,
    /// Delivers notifications; without it notifications to URLs and `poa`s are dropped
    /// with a warning (polling channels still work).
    pub notifications: Option<Arc<dyn notify::NotificationSink>>,
    /// The credential store's bindings: an identity holding a credential may be claimed
    /// only inside its security association (TS-0003 7.2.1). Without it only
    /// registrations made over an association bind identities.
    pub credentials: Option<Arc<dyn CredentialBindings>>,
    /// Where "now" comes from: the system clock unless a test or tool sets one.
    pub clock: Arc<dyn Clock>,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            audit: Arc::new(audit::NullSink),
            location: None,
            das: None,
            outbound: None,
            notifications: None,
            credentials: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The token verifier the configuration describes: its trusted issuers, our own CSE-ID
/// as audience, its leeway.
fn token_verifier(config: &CseConfig, local: &LocalIdentity) -> TokenVerifier {
    config.authorization.token_issuers.iter().fold(
        TokenVerifier::new(local.clone()).leeway(config.authorization.token_leeway_secs),
        |v, (issuer, key)| v.trust(issuer, key.clone()),
    )
}

impl Cse {
    /// Opens the CSE on `store`: loads the resource tree (creating the CSEBase on first
    /// start) and starts the commit task. Must run inside a Tokio runtime.
    pub async fn open(config: CseConfig, store: Arc<dyn Store>) -> Result<Arc<Cse>, StartError> {
        Cse::open_with(config, store, Services::default()).await
    }

    /// Like [`Cse::open`], sending security audit events (denials, ACP and `acpi`
    /// changes) to `audit`.
    pub async fn open_with_audit(
        config: CseConfig,
        store: Arc<dyn Store>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Arc<Cse>, StartError> {
        let services = Services {
            audit,
            ..Services::default()
        };
        Cse::open_with(config, store, services).await
    }

    /// Like [`Cse::open`], with the given outside services.
    pub async fn open_with(
        config: CseConfig,
        store: Arc<dyn Store>,
        services: Services,
    ) -> Result<Arc<Cse>, StartError> {
        let poisoned = Arc::new(AtomicBool::new(false));
        let local = LocalIdentity {
            sp_id: config.sp_id.clone(),
            cse_id: config.cse_id.clone(),
            admin: config.admin.clone(),
        };
        let verifier = token_verifier(&config, &local);
        let started = services.clock.timestamp();
        let tree = load::load_tree(&config, &local, &verifier, store.as_ref(), started).await?;
        let committer = commit::Committer::start(store.clone(), poisoned.clone());
        let role_authorities = config
            .authorization
            .role_authorities
            .iter()
            .map(|a| bastion_policy::normalize_originator(&local, a))
            .collect();
        let leeway = config.authorization.token_leeway_secs;
        let admin_absolute = bastion_policy::normalize_originator(&local, &config.admin);
        let delayed_slots = config.max_delayed_requests;
        Ok(Arc::new_cyclic(|me| Cse {
            me: me.clone(),
            config,
            local,
            tree: RwLock::new(tree),
            store,
            committer,
            poisoned,
            audit: services.audit,
            tokens: credentials::TokenCache::new(verifier, leeway),
            role_authorities,
            location: services.location,
            das: services.das,
            dynamic: dynamic::DynamicGrants::default(),
            outbound: services.outbound,
            forwarding: forward::InFlight::default(),
            notifications: services.notifications,
            credentials: services.credentials,
            admin_absolute,
            polling: pch::PollingChannels::default(),
            held: held::HeldNotifications::default(),
            poa_checks: poa::PoaChecks::default(),
            clock: services.clock,
            delayed: tokio::sync::Semaphore::new(delayed_slots),
            retrieval_counts: tokio::sync::Mutex::new(()),
            crs_pending: std::sync::Mutex::default(),
            crs_updates: std::sync::Mutex::default(),
        }))
    }

    pub fn config(&self) -> &CseConfig {
        &self.config
    }

    /// Now, by this CSE's clock, in whole seconds.
    pub fn now(&self) -> Timestamp {
        self.clock.timestamp()
    }

    /// Now in milliseconds since the epoch, for what runs finer than a timestamp
    /// (missing-data detection, whose periods are milliseconds).
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    /// Every `aclr` region of every ACP (`pv` and `pvs`), deduplicated: what a network
    /// location source must watch (TS-0003 annex F: area notifications per circle).
    pub fn location_regions(&self) -> Vec<bastion_policy::context::Region> {
        let tree = self.tree.read();
        let mut out: Vec<bastion_policy::context::Region> = Vec::new();
        let sets = tree
            .nodes
            .values()
            .filter_map(|n| n.acp().map(|rules| &**rules))
            .flat_map(|acp| [&acp.pv, &acp.pvs]);
        for set in sets {
            for rule in set.rules() {
                for region in rule.contexts().iter().filter_map(|c| c.region()) {
                    if !out.contains(region) {
                        out.push(region.clone());
                    }
                }
            }
        }
        out
    }

    /// Starts the periodic pass that retries announcement actions whose target could not
    /// be reached (`announce.rs`), once a second.
    pub fn spawn_announcement_retry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let cse = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                cse.retry_announcements().await;
            }
        })
    }

    /// Starts the background expiry sweep.
    pub fn spawn_expiry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        expiry::spawn(self.clone())
    }

    /// Processes one request primitive and always produces a response primitive.
    pub async fn handle(&self, req: Request, ctx: &RequestContext) -> Response {
        let rqi = req.rqi.clone().unwrap_or_default();
        let rvi = req.rvi.clone();
        let rset = req.rset.clone();
        let no_response = req.rt == Some(bastion_proto::primitive::ResponseType::NoResponse);
        // The operations' futures are boxed: they are large, and every binding awaits
        // this one inside its own, which would otherwise copy them at each layer.
        let result = match forward::transit(&self.config.sp_id, &self.config.cse_id, &req.to) {
            // Transit (TS-0004 7.3.2.6): the hosting CSE's response is relayed as it came.
            Some(dest) => match Box::pin(self.forward(req, ctx, dest)).await {
                Ok(relayed) => return relayed,
                Err(err) => Err(err),
            },
            None => Box::pin(self.process(req, ctx)).await,
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) => Response::error(&err, String::new()),
        };
        resp.rqi = rqi;
        // The response speaks the request's release (TS-0001 8.1.3): its rvi, and only
        // the attributes that release defines. A refused rvi is answered in Release 3.
        let release = rvi.as_deref().and_then(|v| self.config.release(v));
        if let (Some(release), Some(pc)) = (release, resp.pc.as_mut()) {
            render::for_release(release, pc);
        }
        resp.rvi = Some(release.map_or("3", |r| r.rvi()).to_owned());
        resp.fr = Some(self.config.cse_id.clone());
        resp.ot = Some(self.now().format());
        // The Receiver echoes the Result Expiration Timestamp it was given (TS-0001 8.1.3).
        resp.rset = rset;
        if no_response {
            // rt = noResponse: the operation was performed (and is durable); the
            // originator asked for no result, so none is carried (docs/decisions.md).
            resp.pc = None;
            resp.cnst = None;
        }
        resp
    }

    async fn process(&self, req: Request, ctx: &RequestContext) -> Result<Response, RequestError> {
        let now = self.now();
        // Kept to be re-issued to each member when `to` names a group's `fopt`, or to
        // run later when the request is non-blocking.
        let non_blocking = matches!(
            req.rt,
            Some(
                bastion_proto::primitive::ResponseType::NonBlockingSynch
                    | bastion_proto::primitive::ResponseType::NonBlockingAsynch
            )
        );
        let kept = (non_blocking || fanout::may_address_fopt(&req.to)).then(|| req.clone());
        let execute_at = checks::execution_time(&req, now)?;
        let checked = checks::check(&self.config, req, now)?;
        let mut verified = self.verify_identity(&checked, ctx)?;
        self.gather_credentials(&checked, &mut verified, now)?;
        let ctx = &verified;
        self.check_originator(&checked, ctx)?;
        // Delayed execution (oet): a non-blocking request waits in its own task.
        let now = match execute_at {
            Some(at) if !non_blocking => self.wait_until(at).await?,
            _ => now,
        };
        let access = Enforcer::for_request(self, &checked, ctx, now);
        if let Some(result) = self.polling_uri(&checked, &access).await {
            return result;
        }
        if let Some(result) = self.self_removal(&checked, &access).await {
            return result;
        }
        if let Some(original) = kept {
            if non_blocking {
                return self.accept_non_blocking(original, &checked, ctx).await;
            }
            if let Some(result) = self.fan_out(original, &checked, &access).await {
                return result;
            }
        }
        match checked {
            Checked::Create(req) => create::create(self, req, &access).await,
            Checked::Retrieve(req) => retrieve::retrieve(self, req, &access).await,
            Checked::Update(req) => update::update(self, req, &access).await,
            Checked::Delete(req) => delete::delete(self, req, &access).await,
            Checked::Notify(req) => self.notify_hosted(req, &access).await,
        }
    }

    /// Holds the request until its Operation Execution Time `at` and returns the time
    /// it runs at. The clock reads whole seconds, never ahead of the real time, so
    /// sleeping the difference never ends before `at`.
    /// Each held request takes one of the bounded slots for its wait; none free is 5207.
    async fn wait_until(&self, at: Timestamp) -> Result<Timestamp, RequestError> {
        let Ok(_slot) = self.delayed.try_acquire() else {
            if DELAYED_FULL_WARNING.ready() {
                tracing::warn!(
                    max = self.config.max_delayed_requests,
                    "requests waiting for their execution time (oet) at the cap; more are refused"
                );
            }
            return Err(RequestError::NotAcceptable(
                "too many requests wait for their execution time (oet)".into(),
            ));
        };
        let left = u64::try_from(at.0 - self.now().0).unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_secs(left)).await;
        Ok(at.max(self.now()))
    }

    fn write_guard(&self) -> Result<(), RequestError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(RequestError::Internal(
                "storage failed; restart required".into(),
            ));
        }
        Ok(())
    }
}
