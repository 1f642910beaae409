//! The DTLS client side of a security association (Entity A over UDP): the same PSK and
//! certificate configuration as [`crate::TlsClient`] (`client.rs`), on a connected UDP
//! socket, with the handshake and retransmissions driven here.

use std::net::SocketAddr;
use std::time::Duration;

use openssl::ssl::{ErrorCode, SslConnector, SslRef, SslStream};
use tokio::net::UdpSocket;

use super::pipe::DatagramPipe;
use super::DtlsError;
use crate::client::{
    certificate_connector, check_server_identity, psk_connector, validate_key_server_identity,
    ClientConfigError, ClientOptions,
};
use crate::credentials::{validate_kpsa_id, PskKey};
use crate::server::{HandshakeError, Transport};

/// How often a waiting client lets OpenSSL check its retransmission timer.
const TICK: Duration = Duration::from_millis(100);
/// Largest datagram a client reads.
const MAX_DATAGRAM: usize = 16 * 1024 + 256;

/// A configured DTLS client.
pub struct DtlsClient {
    connector: SslConnector,
    expected_server: Option<String>,
    /// Path MTU handshake messages are fragmented for.
    pub mtu: u32,
    /// How long [`DtlsClient::connect`] waits for the handshake.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for DtlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsClient")
            .field("expected_server", &self.expected_server)
            .finish_non_exhaustive()
    }
}

impl DtlsClient {
    fn with(connector: SslConnector, expected_server: Option<String>) -> Self {
        Self {
            connector,
            expected_server,
            mtu: 1400,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// A PSK client presenting `kpsa_id` with key `key` (`options.tls12_ciphers`
    /// narrows the suites; versions are always DTLS 1.2).
    pub fn psk(
        kpsa_id: &str,
        key: PskKey,
        options: &ClientOptions,
    ) -> Result<Self, ClientConfigError> {
        validate_kpsa_id(kpsa_id)?;
        let connector = psk_connector(kpsa_id, key, options, Transport::Dtls)?;
        Ok(Self::with(connector, None))
    }

    /// A PSK client presenting a key-server identity (GBA, as
    /// [`crate::TlsClient::psk_with_identity`]).
    pub fn psk_with_identity(
        identity: &str,
        key: PskKey,
        options: &ClientOptions,
    ) -> Result<Self, ClientConfigError> {
        validate_key_server_identity(identity)?;
        let connector = psk_connector(identity, key, options, Transport::Dtls)?;
        Ok(Self::with(connector, None))
    }

    /// A certificate client, as [`crate::TlsClient::certificate`].
    pub fn certificate(
        chain_pem: &str,
        key_pem: &str,
        trust_anchors_pem: &str,
        expected_server_id: Option<&str>,
        options: &ClientOptions,
    ) -> Result<Self, ClientConfigError> {
        let connector = certificate_connector(
            chain_pem,
            key_pem,
            trust_anchors_pem,
            options,
            Transport::Dtls,
        )?;
        Ok(Self::with(connector, expected_server_id.map(str::to_owned)))
    }

    /// Runs the handshake with `server` from an ephemeral local port; `server_name` goes
    /// into SNI and is checked against the server certificate's dNSNames.
    pub async fn connect(
        &self,
        server_name: &str,
        server: SocketAddr,
    ) -> Result<DtlsConnection, DtlsError> {
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        self.connect_on(socket, server_name, server).await
    }

    /// [`DtlsClient::connect`] from `socket` (for instance one bound to a chosen port).
    pub async fn connect_on(
        &self,
        socket: UdpSocket,
        server_name: &str,
        server: SocketAddr,
    ) -> Result<DtlsConnection, DtlsError> {
        socket.connect(server).await?;
        let mut ssl = self
            .connector
            .configure()
            .map_err(HandshakeError::from)?
            .into_ssl(server_name)
            .map_err(HandshakeError::from)?;
        ssl.set_mtu(self.mtu)?;
        let stream = SslStream::new(ssl, DatagramPipe::default())?;
        let mut connection = DtlsConnection {
            socket,
            stream,
            buf: vec![0; MAX_DATAGRAM],
        };
        tokio::time::timeout(self.handshake_timeout, connection.handshake())
            .await
            .map_err(|_| DtlsError::TimedOut)??;
        check_server_identity(connection.ssl(), self.expected_server.as_deref())?;
        Ok(connection)
    }
}

/// An established client association on a connected UDP socket.
#[derive(Debug)]
pub struct DtlsConnection {
    socket: UdpSocket,
    stream: SslStream<DatagramPipe>,
    buf: Vec<u8>,
}

impl DtlsConnection {
    async fn handshake(&mut self) -> Result<(), DtlsError> {
        loop {
            let result = self.stream.connect();
            self.flush().await?;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == ErrorCode::WANT_READ => self.wait().await?,
                Err(e) => return Err(HandshakeError::from_ssl(&e).into()),
            }
        }
    }

    /// Waits for a datagram (queued for OpenSSL) or a timer tick.
    async fn wait(&mut self) -> Result<(), DtlsError> {
        tokio::select! {
            received = self.socket.recv(&mut self.buf) => {
                let n = received?;
                self.stream.get_mut().push(&self.buf[..n]);
            }
            _ = tokio::time::sleep(TICK) => {}
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DtlsError> {
        for datagram in self.stream.get_mut().take_outbound() {
            self.socket.send(&datagram).await?;
        }
        Ok(())
    }

    /// The OpenSSL connection (negotiated suite, peer certificate, RFC 5705 export).
    pub fn ssl(&self) -> &SslRef {
        self.stream.ssl()
    }

    /// The local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one application datagram.
    pub async fn send(&mut self, datagram: &[u8]) -> Result<(), DtlsError> {
        let written = self.stream.ssl_write(datagram);
        self.flush().await?;
        written
            .map(|_| ())
            .map_err(|e| HandshakeError::from_ssl(&e).into())
    }

    /// The next application datagram; [`DtlsError::Closed`] once the server closed the
    /// association. The caller bounds the wait.
    pub async fn recv(&mut self) -> Result<Vec<u8>, DtlsError> {
        let mut plaintext = vec![0u8; MAX_DATAGRAM];
        loop {
            let result = self.stream.ssl_read(&mut plaintext);
            self.flush().await?;
            match result {
                Ok(n) => return Ok(plaintext[..n].to_vec()),
                Err(e) if e.code() == ErrorCode::WANT_READ => self.wait().await?,
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Err(DtlsError::Closed),
                Err(e) => return Err(HandshakeError::from_ssl(&e).into()),
            }
        }
    }

    /// Sends close_notify.
    pub async fn close(mut self) -> Result<(), DtlsError> {
        let _ = self.stream.shutdown();
        self.flush().await
    }
}
