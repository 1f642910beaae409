//! Which client carries a NOTIFY to each target: the engine queues and retries, the
//! [`Transport`] decides how each point of access is reached. The CSE's transport knows
//! its security associations with other CSEs (TS-0003 8.2.1); a bare [`Client`] reaches
//! every target the same way.

use bastion_client::Client;

/// Chooses, on every attempt, the client for each target of a destination.
pub trait Transport: Send + Sync {
    /// For each of `targets`, in order, the client to send with, or why the target must
    /// not be tried (it is then counted as unusable for this attempt). `peer` is the
    /// CSE-ID of the CSE the notification is handed to when the receiver sits behind
    /// another CSE, `None` when the targets are the receiver's own.
    fn routes(&self, peer: Option<&str>, targets: &[String]) -> Vec<Result<Client, String>>;
}

/// Every target through this one client.
impl Transport for Client {
    fn routes(&self, _peer: Option<&str>, targets: &[String]) -> Vec<Result<Client, String>> {
        targets.iter().map(|_| Ok(self.clone())).collect()
    }
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn routes(&self, peer: Option<&str>, targets: &[String]) -> Vec<Result<Client, String>> {
        (**self).routes(peer, targets)
    }
}
