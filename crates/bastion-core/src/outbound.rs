//! The CSE's outbound port: how it sends a request primitive to another oneM2M entity
//! (a remote CSE when forwarding, a notification target when verifying a subscription,
//! a group member on another CSE). The binary implements it over the HTTP binding with
//! `bastion-client`; the core only decides what to send and to which points of access.

use bastion_proto::{Request, Response};

/// Why an outbound request got no oneM2M response.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// No point of access could be reached (connect failed, handshake failed, timeout).
    #[error("target not reachable: {0}")]
    Unreachable(String),
    /// The peer answered, but not with a oneM2M response.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// Nothing was sent: as many outbound requests as allowed are in flight already.
    #[error("{0}")]
    Saturated(String),
}

/// Sends request primitives to other entities.
#[async_trait::async_trait]
pub trait Outbound: Send + Sync {
    /// Sends `req` to the first of `poa` (absolute `http(s)://` URIs, tried in order)
    /// that answers, and returns its response primitive. `peer` is whom those points of
    /// access belong to: the CSE-ID of a CSE (the next hop of a forwarded request,
    /// TS-0001 7.3.2.6) or the AE-ID of an AE hosted here. The security association
    /// towards it is chosen by that identity (TS-0003 8.2.1), not by the address. `None`
    /// for a URL target.
    async fn send(
        &self,
        peer: Option<&str>,
        poa: &[String],
        req: Request,
    ) -> Result<Response, OutboundError>;
}
