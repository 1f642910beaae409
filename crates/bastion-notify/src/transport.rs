//! Which transport carries a NOTIFY to each target: the engine queues and retries, the
//! [`Routes`] decide how each point of access is reached. The CSE's routes know its
//! security associations with other CSEs (TS-0003 8.2.1) and choose a
//! [`Transport`] by the target's URI scheme; a bare [`Client`] or a [`Schemes`] registry
//! reaches every target the same way.

use bastion_client::{Client, Schemes, Transport};
use std::sync::Arc;

/// The transport to send one target's NOTIFY with, or why the target must not be tried.
pub type Route = Result<Arc<dyn Transport>, String>;

/// Chooses, on every attempt, the transport for each target of a destination.
pub trait Routes: Send + Sync {
    /// For each of `targets`, in order, the transport to send with, or why the target
    /// must not be tried (it is then counted as unusable for this attempt). `peer` is the
    /// CSE-ID of the CSE the notification is handed to when the receiver sits behind
    /// another CSE, `None` when the targets are the receiver's own.
    fn routes(&self, peer: Option<&str>, targets: &[String]) -> Vec<Route>;
}

/// Every target through this one client.
impl Routes for Client {
    fn routes(&self, _peer: Option<&str>, targets: &[String]) -> Vec<Route> {
        let client: Arc<dyn Transport> = Arc::new(self.clone());
        targets.iter().map(|_| Ok(client.clone())).collect()
    }
}

/// Every target through the transport of its scheme; a scheme none serves is refused.
impl Routes for Schemes {
    fn routes(&self, _peer: Option<&str>, targets: &[String]) -> Vec<Route> {
        targets
            .iter()
            .map(|target| {
                self.transport_for(target)
                    .cloned()
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}

impl<T: Routes + ?Sized> Routes for Arc<T> {
    fn routes(&self, peer: Option<&str>, targets: &[String]) -> Vec<Route> {
        (**self).routes(peer, targets)
    }
}

/// Told of every attempt to send a subscription's notification, for the statistics a
/// subscription may keep per target (`nse`/`nsi`, TS-0004 7.4.8). Called from the
/// destination's worker: it must not block.
pub trait DeliveryObserver: Send + Sync {
    /// One NOTIFY for `subscription` to `to` (the target as submitted) was sent;
    /// `answered` when a target answered it.
    fn attempted(&self, subscription: &str, to: &str, answered: bool);
}
