//! `https://` for [`Client`](crate::Client): a [`Connector`] that opens TCP and runs the
//! client side of a security association (TS-0003 8.2.1, Entity A) with
//! [`bastion_tls::TlsClient`], PSK or certificate. The server's name for SNI and
//! certificate checks is the target host unless [`TlsConnector::with_server_name`] says
//! otherwise (useful when the URI holds an IP literal).

use crate::{ClientError, Connector, Endpoint, Io};
use async_trait::async_trait;
use bastion_tls::TlsClient;
use std::sync::Arc;

/// TLS over TCP for `https://`.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    client: Arc<TlsClient>,
    server_name: Option<String>,
}

impl TlsConnector {
    /// A connector handshaking with `client` (built with `TlsClient::psk` or
    /// `TlsClient::certificate`).
    pub fn new(client: TlsClient) -> TlsConnector {
        TlsConnector {
            client: Arc::new(client),
            server_name: None,
        }
    }

    /// Sends `name` in SNI and checks the server certificate against it instead of the
    /// target host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsConnector {
        self.server_name = Some(name.into());
        self
    }
}

#[async_trait]
impl Connector for TlsConnector {
    async fn connect(&self, endpoint: &Endpoint) -> Result<Box<dyn Io>, ClientError> {
        if endpoint.scheme != "https" {
            return Err(ClientError::UnsupportedScheme(endpoint.scheme.clone()));
        }
        let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let name = self.server_name.as_deref().unwrap_or(&endpoint.host);
        let stream = self
            .client
            .connect(name, tcp)
            .await
            .map_err(ClientError::Handshake)?;
        Ok(Box::new(stream))
    }
}
