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
//! time it may take ([`FETCH_TIMEOUT`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bastion_tls::certs;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

/// The largest CRL accepted.
pub const MAX_CRL: usize = 4 * 1024 * 1024;
/// How long one fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a fetch did not replace the CRL in force (the previous one stays).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `http://host:port/path`.
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
    host: String,
    port: u16,
    path: String,
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
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty()
            || path
                .chars()
                .any(|c| c.is_ascii_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
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
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.get())
            .await
            .map_err(|_| FetchError::Transport("timed out".into()))??;
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

    async fn get(&self) -> Result<Vec<u8>, FetchError> {
        let transport = |e: &dyn std::fmt::Display| FetchError::Transport(e.to_string());
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| transport(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| transport(&e))?;
        tokio::spawn(connection);
        let authority = format!("{}:{}", self.host, self.port);
        let request = http::Request::get(self.path.as_str())
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, crate::http::PKIX_CRL)
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| transport(&e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transport(&e))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_CRL)
            .collect()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(body.to_bytes().to_vec())
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
        let f = CrlFetcher::new("http://127.0.0.1:8088/crl", Path::new("x"), vec![]).unwrap();
        assert_eq!(
            (f.host.as_str(), f.port, f.path.as_str()),
            ("127.0.0.1", 8088, "/crl")
        );
        let f = CrlFetcher::new("http://mef.example", Path::new("x"), vec![]).unwrap();
        assert_eq!((f.port, f.path.as_str()), (80, "/"));
        for bad in [
            "https://a/crl",
            "ftp://a",
            "http://:80/x",
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
}
