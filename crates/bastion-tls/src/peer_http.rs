//! HTTP authentication of a peer CSE over server-authenticated TLS: the opt-in way to bind
//! the identity of a remote CSE that can authenticate to its registrar only with HTTP
//! Basic or Bearer credentials (ACME, for one), off unless a listener enables it
//! ([`crate::ServerSettings::peer_http_authentication`]).
//!
//! The TLS handshake authenticates only the server; every request on such an association
//! must carry `Authorization: Basic base64(user:secret)` or `Authorization: Bearer
//! secret` naming a credential of kind [`crate::CredentialKind::HttpPeer`], which binds a
//! CSE-ID. The assurance is weaker than a PSK or certificate association (a bearer
//! secret, replayable by whoever learns it; no binding to the TLS session): see
//! docs/security.md, "HTTP-authenticated peer CSEs".
//!
//! Secrets are compared through SHA-256 digests in constant time, so neither the content
//! nor the length of a stored secret shows in the time an answer takes.

use openssl::hash::{hash, MessageDigest};
use zeroize::Zeroizing;

/// Longest `Authorization` value looked at; longer ones are refused unread.
pub const MAX_AUTHORIZATION_LEN: usize = 512;

/// Credentials a request presented in its `Authorization` header.
pub enum HttpCredential {
    /// `Basic`: a user name and its secret.
    Basic {
        /// The user name: the credential's identifier in the store.
        user: String,
        /// The secret (wiped on drop).
        secret: Zeroizing<Vec<u8>>,
    },
    /// `Bearer`: the secret alone.
    Bearer(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for HttpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("secret", &"<redacted>")
                .finish(),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl HttpCredential {
    /// Parses an `Authorization` value (RFC 7617 Basic, RFC 6750 Bearer; the scheme is
    /// case-insensitive). `None` for any other scheme or a malformed value.
    pub fn parse(value: &[u8]) -> Option<HttpCredential> {
        if value.len() > MAX_AUTHORIZATION_LEN {
            return None;
        }
        let value = std::str::from_utf8(value).ok()?.trim();
        let (scheme, rest) = value.split_once(' ')?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = Zeroizing::new(openssl::base64::decode_block(rest).ok()?);
            let colon = decoded.iter().position(|&b| b == b':')?;
            let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
            let secret = Zeroizing::new(decoded[colon + 1..].to_vec());
            Some(HttpCredential::Basic { user, secret })
        } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            Some(HttpCredential::Bearer(Zeroizing::new(
                rest.as_bytes().to_vec(),
            )))
        } else {
            None
        }
    }

    /// The presented secret.
    pub(crate) fn secret(&self) -> &[u8] {
        match self {
            Self::Basic { secret, .. } | Self::Bearer(secret) => secret,
        }
    }
}

/// Whether two secrets are equal, in time independent of their content and lengths.
pub(crate) fn secrets_equal(stored: &[u8], presented: &[u8]) -> bool {
    let digest = |bytes: &[u8]| hash(MessageDigest::sha256(), bytes).ok();
    match (digest(stored), digest(presented)) {
        (Some(a), Some(b)) => openssl::memcmp::eq(&a, &b),
        _ => false,
    }
}

/// Checks a user name of an HTTP peer credential: 1 to 64 characters of
/// `A-Z a-z 0-9 . _ -` (no `@`, so it never collides with a KpsaID in the store, and no
/// `:`, which Basic reserves).
pub fn validate_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_secret: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            openssl::base64::encode_block(user_secret.as_bytes())
        )
        .into_bytes()
    }

    #[test]
    fn basic_and_bearer_parse_case_insensitively() {
        match HttpCredential::parse(&basic("acme-mn:s3cret:with:colons")).unwrap() {
            HttpCredential::Basic { user, secret } => {
                assert_eq!(user, "acme-mn");
                assert_eq!(&secret[..], b"s3cret:with:colons");
            }
            other => panic!("{other:?}"),
        }
        let bearer = HttpCredential::parse(b"bEaReR abc.def-123").unwrap();
        assert_eq!(bearer.secret(), b"abc.def-123");
        assert_eq!(format!("{bearer:?}"), "Bearer(<redacted>)");
    }

    #[test]
    fn other_schemes_and_malformed_values_are_not_credentials() {
        for value in [
            &b"Digest username=x"[..],
            b"Basic",
            b"Basic !!!notbase64",
            b"Bearer ",
            b"",
            &basic("no-colon")[..],
        ] {
            assert!(HttpCredential::parse(value).is_none(), "{value:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_LEN));
        assert!(HttpCredential::parse(long.as_bytes()).is_none());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(secrets_equal(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!secrets_equal(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!secrets_equal(b"0123456789abcdef", b"0123456789abcdef0"));
    }

    #[test]
    fn user_names_are_tokens_without_at_or_colon() {
        assert!(validate_user("acme-mn_1.x"));
        for bad in ["", "a@b", "a:b", "a b", &"x".repeat(65)] {
            assert!(!validate_user(bad), "{bad:?}");
        }
    }
}
