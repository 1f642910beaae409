//! What the core's integration tests share: a request primitive as a binding would hand
//! it over, sending it with no transport facts, a notification sink that keeps what it
//! is given, an outbound port that confirms every verification request, and a CSE with
//! location information on a manual clock.
#![allow(dead_code)] // each test file uses its own part

use bastion_core::notify::{NotificationSink, OutgoingNotification};
use bastion_core::outbound::{Outbound, OutboundError};
use bastion_core::{Cse, CseConfig, RequestContext, Services};
use bastion_location::{LocationConfig, LocationPip};
use bastion_policy::LocalIdentity;
use bastion_proto::clock::ManualClock;
use bastion_proto::time::Timestamp;
use bastion_proto::{Operation, Request, Response, Rsc};
use bastion_store::{MemoryStore, Store};
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;

/// A request from `fr` with a fixed `rqi` and release 3.
pub fn request(op: Operation, to: &str, fr: &str, ty: Option<u64>, pc: Option<Value>) -> Request {
    Request {
        op: Some(op),
        to: to.to_owned(),
        fr: Some(fr.to_owned()),
        rqi: Some("r1".to_owned()),
        rvi: Some("3".to_owned()),
        ty,
        pc,
        ..Request::default()
    }
}

/// Handles `req` as one received outside any security association, peer unknown.
pub async fn send(cse: &Cse, req: Request) -> Response {
    cse.handle(req, &RequestContext::new(None, None)).await
}

/// A CSE on `store` whose time is `clock`, whose notifications go to `sent`, whose
/// verification requests are confirmed, and whose periodic pass (when spawned) runs every
/// 10 ms.
pub async fn open_on_clock(
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    sent: Arc<Sent>,
) -> Arc<Cse> {
    let services = Services {
        clock,
        notifications: Some(sent),
        outbound: Some(Arc::new(Confirming)),
        ..Services::default()
    };
    let config = CseConfig {
        expiry_interval_ms: 10,
        ..CseConfig::default()
    };
    Cse::open_with(config, store, services).await.expect("cse")
}

/// Every notification the CSE hands to delivery.
#[derive(Default)]
pub struct Sent(pub Mutex<Vec<Value>>);

impl NotificationSink for Sent {
    fn submit(&self, n: OutgoingNotification) -> Result<(), String> {
        self.0.lock().push((*n.event).clone());
        Ok(())
    }
    fn flush(&self, _subscription: &str) {}
}

/// Confirms every verification request.
pub struct Confirming;

#[async_trait::async_trait]
impl Outbound for Confirming {
    async fn send(
        &self,
        _peer: Option<&str>,
        _poa: &[String],
        req: Request,
    ) -> Result<Response, OutboundError> {
        Ok(Response::new(Rsc::Ok, req.rqi.unwrap_or_default()))
    }
}

/// A CSE with the default configuration on a volatile store, its clock a manual one at
/// `start`, its location information from `location`.
pub async fn located(location: LocationConfig, start: Timestamp) -> (Arc<Cse>, Arc<ManualClock>) {
    let config = CseConfig::default();
    let local = LocalIdentity {
        sp_id: config.sp_id.clone(),
        cse_id: config.cse_id.clone(),
        admin: config.admin.clone(),
    };
    let pip = LocationPip::new(&location, &local).expect("location PIP");
    let clock = Arc::new(ManualClock::at(start));
    let services = Services {
        clock: clock.clone(),
        location: Some(Arc::new(pip)),
        ..Services::default()
    };
    let cse = Cse::open_with(config, Arc::new(MemoryStore::new()), services)
        .await
        .expect("cse");
    (cse, clock)
}

/// Sends one request built by [`request`].
pub async fn call(
    cse: &Cse,
    op: Operation,
    to: &str,
    fr: &str,
    ty: Option<u64>,
    pc: Option<Value>,
) -> Response {
    send(cse, request(op, to, fr, ty, pc)).await
}

/// Creates a resource of type `ty` under `to`, which must succeed; returns the content.
pub async fn created(cse: &Cse, to: &str, fr: &str, ty: u64, pc: Value) -> Value {
    let r = call(cse, Operation::Create, to, fr, Some(ty), Some(pc)).await;
    assert_eq!(r.rsc.code(), 2001, "{:?}", r.pc);
    r.pc.expect("content")
}
