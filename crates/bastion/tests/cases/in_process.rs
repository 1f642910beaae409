//! The in-process runner: each case gets a fresh [`Cse`] on a temporary SQLite store, and
//! each step is handed to [`Cse::handle`] as a request primitive, with no binding between.

use super::format::{Op, Step};
use super::{member_values, rvi_echo_problem, sent_rvi, Outcome, Target};
use bastion_core::{Cse, CseConfig, RequestContext};
use bastion_proto::{Operation, Request, RequestError, Response};
use bastion_store::Store;
use bastion_store_sqlite::SqliteStore;
use std::sync::Arc;

/// A fresh CSE with the configuration the binary uses by default.
pub struct InProcess {
    cse: Arc<Cse>,
    ctx: RequestContext,
    _dir: tempfile::TempDir,
}

impl InProcess {
    pub async fn start() -> InProcess {
        let dir = tempfile::tempdir().expect("temporary data directory");
        let store = SqliteStore::open(&dir.path().join("bastion.db")).expect("open the store");
        let store: Arc<dyn Store> = Arc::new(store);
        let cse = Cse::open(CseConfig::default(), store)
            .await
            .expect("open the CSE");
        // What the HTTP binding reports for a client on loopback outside any association.
        let ctx = RequestContext::new(Some(([127, 0, 0, 1], 40000).into()), None);
        InProcess {
            cse,
            ctx,
            _dir: dir,
        }
    }
}

impl Target for InProcess {
    async fn send(&self, step: &Step, rqi: Option<String>) -> Outcome {
        let sent_rqi = rqi.clone();
        let resp = match primitive(step, rqi) {
            Ok(req) => match &step.association {
                Some(identity) => {
                    let ctx = RequestContext::new(self.ctx.peer, Some(identity.clone()));
                    self.cse.handle(req, &ctx).await
                }
                None => self.cse.handle(req, &self.ctx).await,
            },
            // A filter member whose text does not parse is answered like a binding does,
            // in the request's release.
            Err(e) => {
                let mut refused = Response::error(&e, sent_rqi.clone().unwrap_or_default());
                refused.rvi = sent_rvi(step);
                refused
            }
        };
        let mut problems = Vec::new();
        if let Some(rqi) = sent_rqi.filter(|r| *r != resp.rqi) {
            problems.push(format!("rqi {rqi} not echoed: got {:?}", resp.rqi));
        }
        let sent = sent_rvi(step);
        problems.extend(rvi_echo_problem(
            sent.as_deref(),
            resp.rsc.code(),
            resp.rvi.as_deref(),
        ));
        Outcome {
            rsc: resp.rsc.code(),
            pc: resp.pc.unwrap_or(serde_json::Value::Null),
            problems,
        }
    }
}

/// The request primitive of a step. Filter members are read by the one parser of their
/// text form ([`bastion_proto::filter::FilterCriteria::take_query_param`]).
fn primitive(step: &Step, rqi: Option<String>) -> Result<Request, RequestError> {
    let mut req = Request {
        op: Some(match step.op {
            Op::Create => Operation::Create,
            Op::Retrieve => Operation::Retrieve,
            Op::Update => Operation::Update,
            Op::Delete => Operation::Delete,
            Op::Notify => Operation::Notify,
        }),
        to: step.to.clone(),
        fr: step.fr.clone(),
        rqi,
        rvi: sent_rvi(step),
        ty: step.ty,
        pc: step.pc.clone(),
        rcn: step.rcn,
        drt: step.drt,
        atrl: step.atrl.clone(),
        rqet: step.rqet.clone(),
        rset: step.rset.clone(),
        ..Request::default()
    };
    for (key, v) in &step.fc {
        for one in member_values(v) {
            req.fc.take_query_param(key, &one)?;
        }
    }
    Ok(req)
}
