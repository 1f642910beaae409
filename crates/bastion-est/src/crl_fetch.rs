//! The CSE's side of revocation publishing: fetch the CRL from the MEF's distribution
//! point (`[tls] crl-url`), check it, and write it to the file the TLS listener's CRL
//! reload watches (`TlsServer::reload_crls_if_changed`), so a revoked certificate's next
//! handshake and its open associations' next request fail.
//!
//! A fetched CRL replaces the one in force only if it is signed by a trust anchor that
//! is its issuer, its nextUpdate is ahead, and its CRL number is not lower than the
//! current one's (an older CRL replayed by whoever sits on the path would un-revoke).
//! The fetch is plain HTTP (`http://` only): the CRL's signature, not the channel,
//! makes it trustworthy (RFC 5280 5). The answer is bounded ([`MAX_CRL`]) and so is the
//! time it may take ([`FETCH_TIMEOUT`]); the GET is `bastion_client::Client::fetch`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bastion_client::{Client, ClientConfig};
use bastion_tls::certs;

/// The largest CRL accepted.
pub const MAX_CRL: usize = 4 * 1024 * 1024;
/// How long one fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a fetch did not replace the CRL in force (the previous one stays).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `http://host[:port]/path`.
    #[error("crl-url must be http://HOST[:PORT]/PATH: {0}")]
    Url(String),
    /// The distribution point could not be reached or answered badly.
    #[error("cannot fetch the CRL: {0}")]
    Transport(String),
    /// The distribution point answered with an error status.
    #[error("the CRL distribution point answered {0}")]
    Status(u16),
    /// The CRL fails its checks.
    #[error("the fetched CRL is refused: {0}")]
    Refused(String),
    /// The fetched CRL is older than the one in force.
    #[error(
        "the fetched CRL (number {fetched}) is older than the one in force (number {current})"
    )]
    Older {
        /// The fetched CRL's number.
        fetched: u64,
        /// The number in force.
        current: u64,
    },
    /// The file could not be written.
    #[error("cannot write {0}")]
    Write(String),
}

/// The fetch configuration of one CSE.
#[derive(Debug, Clone)]
pub struct CrlFetcher {
    url: String,
    client: Client,
    target: PathBuf,
    trust_anchors: Vec<String>,
}

/// What one fetch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// A newer CRL was written (its number).
    Updated(u64),
    /// The CRL in force is the same.
    Unchanged(u64),
}

impl CrlFetcher {
    /// Fetches `url` into `target`, trusting CRLs signed by `trust_anchors_pem`.
    pub fn new(
        url: &str,
        target: &Path,
        trust_anchors_pem: Vec<String>,
    ) -> Result<Self, FetchError> {
        let bad = || FetchError::Url(url.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        // `http::Uri` takes `host:notaport`; the port, when written, must be a number.
        let port_ok = match uri.authority().and_then(|a| a.as_str().rsplit_once(':')) {
            Some((_, port)) if !port.ends_with(']') => port.parse::<u16>().is_ok(),
            _ => true,
        };
        if uri.scheme_str() != Some("http") || !host_ok || !port_ok || uri.path().is_empty() {
            return Err(bad());
        }
        Ok(Self {
            url: url.to_owned(),
            client: Client::new(ClientConfig {
                timeout: FETCH_TIMEOUT,
                max_body_bytes: MAX_CRL,
            }),
            target: target.to_path_buf(),
            trust_anchors: trust_anchors_pem,
        })
    }

    /// The file the CRL is written to.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Fetches once and replaces the target when the CRL is newer or different.
    pub async fn fetch_once(&self) -> Result<Fetched, FetchError> {
        let (status, body) = self
            .client
            .fetch(&self.url, crate::http::PKIX_CRL)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let now = crate::service::unix_now();
        let fetched = certs::verify_crl(&body, &self.trust_anchors, now)
            .map_err(|e| FetchError::Refused(e.to_string()))?;
        let current = std::fs::read(&self.target)
            .ok()
            .and_then(|pem| certs::verify_crl(&pem, &self.trust_anchors, i64::MIN).ok());
        if let Some(current) = &current {
            if fetched.number < current.number {
                return Err(FetchError::Older {
                    fetched: fetched.number,
                    current: current.number,
                });
            }
            if current.pem == fetched.pem {
                return Ok(Fetched::Unchanged(fetched.number));
            }
        }
        write_atomically(&self.target, fetched.pem.as_bytes())
            .map_err(|e| FetchError::Write(format!("{}: {e}", self.target.display())))?;
        Ok(Fetched::Updated(fetched.number))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("fetching");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_are_taken() {
        for good in ["http://127.0.0.1:8088/crl", "http://mef.example/crl"] {
            assert!(
                CrlFetcher::new(good, Path::new("x"), vec![]).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "https://a/crl",
            "ftp://a",
            "http:///x",
            "http://a:x/y",
            "http://a/b c",
        ] {
            assert!(
                matches!(
                    CrlFetcher::new(bad, Path::new("x"), vec![]),
                    Err(FetchError::Url(_))
                ),
                "{bad}"
            );
        }
    }

    /// Answers each connection of `listener` with the next of `bodies` (DER CRLs).
    async fn serve_bodies(listener: tokio::net::TcpListener, bodies: Vec<Vec<u8>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for body in bodies {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tcp.write_all(head.as_bytes()).await;
            let _ = tcp.write_all(&body).await;
        }
    }

    fn crl_der(ca: &certs::CertAndKey, number: u64) -> Vec<u8> {
        let now = crate::service::unix_now();
        let pem = certs::create_crl_for_serials(ca, &[], number, now - 60, now + 3600).unwrap();
        openssl::x509::X509Crl::from_pem(pem.as_bytes())
            .unwrap()
            .to_der()
            .unwrap()
    }

    #[tokio::test]
    async fn only_a_signed_crl_not_older_than_the_one_in_force_is_written() {
        let ca = certs::create_ca("MEF CA", certs::Validity::days(1)).unwrap();
        let stranger = certs::create_ca("MEF CA", certs::Validity::days(1)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let second = crl_der(&ca, 2);
        let bodies = vec![
            second.clone(),
            second,
            crl_der(&ca, 1),
            crl_der(&stranger, 3),
            b"not a CRL".to_vec(),
        ];
        tokio::spawn(serve_bodies(listener, bodies));
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("fetched.pem");
        let fetcher = CrlFetcher::new(
            &format!("http://127.0.0.1:{port}/crl"),
            &target,
            vec![ca.cert_pem.clone()],
        )
        .unwrap();
        assert_eq!(fetcher.fetch_once().await.unwrap(), Fetched::Updated(2));
        let written = std::fs::read(&target).unwrap();
        // The same CRL again (ECDSA signatures differ each time: the same bytes here).
        assert!(matches!(
            fetcher.fetch_once().await,
            Ok(Fetched::Unchanged(2))
        ));
        // An older one, replayed: refused, the newer stays.
        assert!(matches!(
            fetcher.fetch_once().await,
            Err(FetchError::Older {
                fetched: 1,
                current: 2
            })
        ));
        // Same issuer name, another key: not signed by the trust anchor.
        let refused = fetcher.fetch_once().await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the fetched CRL is refused: the CRL is not signed by a trusted CA"
        );
        let refused = fetcher.fetch_once().await.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the fetched CRL is refused: cannot parse the CRL PEM"
        );
        assert_eq!(std::fs::read(&target).unwrap(), written);
    }
}
