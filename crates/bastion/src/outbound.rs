//! The CSE's outbound port ([`bastion_core::outbound::Outbound`]) over the HTTP binding
//! with `bastion-client`: forwarding to remote CSEs (TS-0001 7.3.2.6).
//!
//! Owns which client carries a request to a point of access: the registrar's `url` (and
//! any `poa` with the same scheme, host and port) goes through the registrar client, over
//! the configured TLS security association when it is `https://`; any other `http://`
//! point of access through a plain client. An `https://` point of access other than the
//! registrar's is skipped: this CSE holds no client credential for it. Responses are
//! returned as the peer sent them.

use bastion_client::{Client, ClientError};
use bastion_core::outbound::{Outbound, OutboundError};
use bastion_proto::{Request, Response};

/// Outbound requests over HTTP(S).
pub struct HttpOutbound {
    plain: Client,
    /// The registrar's URL and the client holding its credential.
    registrar: Option<(String, Client)>,
}

impl HttpOutbound {
    pub fn new(registrar: Option<(String, Client)>) -> HttpOutbound {
        HttpOutbound {
            plain: Client::default(),
            registrar,
        }
    }

    fn client_for(&self, target: &str) -> Option<&Client> {
        if let Some((url, client)) = &self.registrar {
            if origin(target) == origin(url) {
                return Some(client);
            }
        }
        target.starts_with("http://").then_some(&self.plain)
    }
}

/// `scheme://authority` of a URI, lower-cased.
fn origin(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority = rest.split('/').next().unwrap_or("");
    format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    )
}

#[async_trait::async_trait]
impl Outbound for HttpOutbound {
    async fn send(&self, poa: &[String], req: Request) -> Result<Response, OutboundError> {
        let mut last = String::from("no usable point of access");
        for target in poa {
            let Some(client) = self.client_for(target) else {
                last = format!("{target}: no client credential for this point of access");
                continue;
            };
            match client.send(target, &req).await {
                Ok(resp) => return Ok(resp),
                // Nothing reached the peer: the next point of access may be tried.
                Err(e @ (ClientError::Connect(_) | ClientError::Handshake(_))) => {
                    last = format!("{target}: {e}");
                }
                Err(e @ (ClientError::UnknownRsc(_) | ClientError::MalformedResponse(_))) => {
                    return Err(OutboundError::InvalidResponse(e.to_string()))
                }
                Err(e) => return Err(OutboundError::Unreachable(format!("{target}: {e}"))),
            }
        }
        Err(OutboundError::Unreachable(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrar_url_selects_the_registrar_client() {
        let out = HttpOutbound::new(Some(("https://127.0.0.1:8443".into(), Client::default())));
        assert!(out.client_for("https://127.0.0.1:8443").is_some());
        assert!(out.client_for("HTTPS://127.0.0.1:8443/").is_some());
        assert!(out.client_for("https://127.0.0.1:9443").is_none());
        assert!(out.client_for("http://127.0.0.1:8080").is_some());
        assert!(out.client_for("mqtt://broker").is_none());
    }
}
