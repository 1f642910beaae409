//! The stateless half of the DTLS cookie exchange (RFC 6347 4.2.1): reads the first
//! ClientHello record of a datagram, computes and checks the cookie (HMAC-SHA256 over the
//! peer address with a per-process secret rotated every [`CookieKeys::rotation`]), writes
//! the HelloVerifyRequest, and derives the cookie-less ClientHello that puts a fresh
//! OpenSSL connection in the state it would have after sending that HelloVerifyRequest
//! itself (see [`initial_hello`]). Nothing here allocates per-peer state: a spoofed
//! source address costs one HMAC and one small reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::ssl::{Ssl, SslContextBuilder};
use zeroize::Zeroizing;

/// Content type of a handshake record.
const HANDSHAKE: u8 = 22;
/// Handshake message types.
const CLIENT_HELLO: u8 = 1;
const HELLO_VERIFY_REQUEST: u8 = 3;
/// DTLS record header: type, version, epoch, 48-bit sequence number, length.
const RECORD_HEADER: usize = 13;
/// DTLS handshake header: type, length, message_seq, fragment offset, fragment length.
const HANDSHAKE_HEADER: usize = 12;
/// client_version (2) and random (32) precede the session ID.
const SESSION_ID_AT: usize = 34;
/// Length of a cookie: the whole HMAC-SHA256 output.
pub const COOKIE_LEN: usize = 32;

/// The cookie secrets: the current one, and the one before it so that a cookie handed
/// out just before a rotation still verifies.
#[derive(Debug)]
pub struct CookieKeys {
    rotation: Duration,
    state: Mutex<Secrets>,
}

struct Secrets {
    current: Zeroizing<[u8; 32]>,
    previous: Zeroizing<[u8; 32]>,
    rotated_at: Instant,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

fn random_secret() -> Result<Zeroizing<[u8; 32]>, ErrorStack> {
    let mut secret = Zeroizing::new([0u8; 32]);
    openssl::rand::rand_bytes(secret.as_mut())?;
    Ok(secret)
}

impl CookieKeys {
    /// Fresh random secrets, replaced every `rotation`.
    pub fn new(rotation: Duration) -> Result<Self, ErrorStack> {
        Ok(Self {
            rotation,
            state: Mutex::new(Secrets {
                current: random_secret()?,
                previous: random_secret()?,
                rotated_at: Instant::now(),
            }),
        })
    }

    /// How often the secret is replaced; a cookie verifies for up to twice this.
    pub fn rotation(&self) -> Duration {
        self.rotation
    }

    /// Replaces the secret when it is older than the rotation interval.
    pub fn rotate_if_due(&self, now: Instant) -> Result<(), ErrorStack> {
        let mut state = self.lock();
        if now.saturating_duration_since(state.rotated_at) < self.rotation {
            return Ok(());
        }
        let fresh = random_secret()?;
        state.previous = std::mem::replace(&mut state.current, fresh);
        state.rotated_at = now;
        Ok(())
    }

    /// The cookie for `peer` under the current secret.
    pub fn cookie(&self, peer: SocketAddr) -> Result<[u8; COOKIE_LEN], ErrorStack> {
        let current = self.lock().current.clone();
        mac(&current, peer)
    }

    /// Whether `cookie` is the one handed to `peer` under the current or previous secret
    /// (compared in constant time).
    pub fn verify(&self, peer: SocketAddr, cookie: &[u8]) -> bool {
        if cookie.len() != COOKIE_LEN {
            return false;
        }
        let (current, previous) = {
            let state = self.lock();
            (state.current.clone(), state.previous.clone())
        };
        [current, previous].iter().any(|secret| {
            mac(secret, peer).is_ok_and(|expected| openssl::memcmp::eq(&expected, cookie))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Secrets> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// HMAC-SHA256(secret, family ‖ address ‖ port).
fn mac(secret: &[u8; 32], peer: SocketAddr) -> Result<[u8; COOKIE_LEN], ErrorStack> {
    let key = PKey::hmac(secret)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    match peer.ip() {
        std::net::IpAddr::V4(ip) => {
            signer.update(&[4])?;
            signer.update(&ip.octets())?;
        }
        std::net::IpAddr::V6(ip) => {
            signer.update(&[6])?;
            signer.update(&ip.octets())?;
        }
    }
    signer.update(&peer.port().to_be_bytes())?;
    let mut out = [0u8; COOKIE_LEN];
    signer.sign(&mut out)?;
    Ok(out)
}

/// What OpenSSL's cookie callbacks of one server connection check: the peer address and
/// the server's secrets (ex-data of the connection, set by `TlsServer::dtls_ssl`).
#[derive(Debug, Clone)]
pub struct PeerCookie {
    /// The datagram source address the cookie is bound to.
    pub peer: SocketAddr,
    /// The secrets of the DTLS server.
    pub keys: Arc<CookieKeys>,
}

/// Installs the cookie callbacks on a DTLS context: they compute and check the same
/// cookie as [`CookieKeys`], for the address stored in the connection's ex-data. A
/// connection without one can neither hand out nor accept a cookie.
pub(crate) fn install_callbacks(b: &mut SslContextBuilder, index: Index<Ssl, PeerCookie>) {
    b.set_cookie_generate_cb(move |ssl, out| {
        let peer = ssl.ex_data(index).ok_or_else(ErrorStack::get)?;
        let cookie = peer.keys.cookie(peer.peer)?;
        let into = out.get_mut(..COOKIE_LEN).ok_or_else(ErrorStack::get)?;
        into.copy_from_slice(&cookie);
        Ok(COOKIE_LEN)
    });
    b.set_cookie_verify_cb(move |ssl, cookie| {
        ssl.ex_data(index)
            .is_some_and(|peer| peer.keys.verify(peer.peer, cookie))
    });
}

/// The parts of a datagram's first record, when it is an unfragmented ClientHello in
/// epoch 0, that the cookie exchange needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// The whole first record (header included).
    record: &'a [u8],
    /// The 48-bit record sequence number.
    pub record_seq: u64,
    /// The handshake message sequence number (0 first, 1 after a HelloVerifyRequest).
    pub message_seq: u16,
    /// The client random, which tells a new handshake from a duplicated datagram.
    pub random: &'a [u8],
    /// Offset in `record` of the cookie's length byte.
    cookie_at: usize,
    /// The cookie (empty in a first ClientHello).
    pub cookie: &'a [u8],
}

fn be(bytes: &[u8]) -> usize {
    bytes.iter().fold(0, |n, b| (n << 8) | usize::from(*b))
}

/// Reads the first record of `datagram` as a ClientHello; `None` for anything else
/// (other content types, later epochs, fragments, truncation).
pub fn parse_client_hello(datagram: &[u8]) -> Option<ClientHello<'_>> {
    let header = datagram.get(..RECORD_HEADER)?;
    if header[0] != HANDSHAKE || header[1] != 0xfe || be(&header[3..5]) != 0 {
        return None;
    }
    let record_end = RECORD_HEADER + be(&header[11..13]);
    let record = datagram.get(..record_end)?;
    let hs = record.get(RECORD_HEADER..RECORD_HEADER + HANDSHAKE_HEADER)?;
    let length = be(&hs[1..4]);
    if hs[0] != CLIENT_HELLO || be(&hs[6..9]) != 0 || be(&hs[9..12]) != length {
        return None;
    }
    let body_at = RECORD_HEADER + HANDSHAKE_HEADER;
    if body_at + length != record_end {
        return None;
    }
    let session_len = usize::from(*record.get(body_at + SESSION_ID_AT)?);
    if session_len > 32 {
        return None;
    }
    let cookie_at = body_at + SESSION_ID_AT + 1 + session_len;
    let cookie_len = usize::from(*record.get(cookie_at)?);
    let cookie = record.get(cookie_at + 1..cookie_at + 1 + cookie_len)?;
    Some(ClientHello {
        record,
        record_seq: u64::try_from(be(&header[5..11])).unwrap_or(u64::MAX),
        message_seq: u16::try_from(be(&hs[4..6])).unwrap_or(u16::MAX),
        random: &record[body_at + 2..body_at + SESSION_ID_AT],
        cookie_at,
        cookie,
    })
}

fn put_u24(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
}

/// The HelloVerifyRequest answering `hello` with `cookie` (RFC 6347 4.2.1): record and
/// server_version DTLS 1.0 as the RFC recommends, the record sequence number copied from
/// the ClientHello, message_seq 0.
pub fn hello_verify_request(hello: &ClientHello<'_>, cookie: &[u8]) -> Vec<u8> {
    let body_len = 3 + cookie.len();
    let mut out = Vec::with_capacity(RECORD_HEADER + HANDSHAKE_HEADER + body_len);
    out.extend_from_slice(&[HANDSHAKE, 0xfe, 0xff, 0, 0]);
    out.extend_from_slice(&hello.record_seq.to_be_bytes()[2..]);
    out.extend_from_slice(&((HANDSHAKE_HEADER + body_len) as u16).to_be_bytes());
    out.push(HELLO_VERIFY_REQUEST);
    put_u24(&mut out, body_len);
    out.extend_from_slice(&[0, 0, 0, 0, 0]);
    put_u24(&mut out, body_len);
    out.extend_from_slice(&[0xfe, 0xff, cookie.len() as u8]);
    out.extend_from_slice(cookie);
    out
}

/// The first ClientHello `hello` (which carries a cookie, message_seq 1) answered: the
/// same message without the cookie, message_seq 0, one record earlier. Fed to a fresh
/// connection before `hello` itself, it makes OpenSSL answer with a HelloVerifyRequest
/// (discarded: the peer has had ours) and then expect exactly `hello`, as after its own
/// cookie exchange. Neither the first ClientHello nor the HelloVerifyRequest is part of
/// the handshake transcript (RFC 6347 4.2.1), so the copy changes nothing the peer sees.
/// `None` when `hello` cannot follow a first ClientHello.
pub fn initial_hello(hello: &ClientHello<'_>) -> Option<Vec<u8>> {
    if hello.message_seq != 1 || hello.record_seq == 0 || hello.cookie.is_empty() {
        return None;
    }
    let record = hello.record;
    let cookie_end = hello.cookie_at + 1 + hello.cookie.len();
    let removed = hello.cookie.len();
    let mut out = Vec::with_capacity(record.len() - removed);
    out.extend_from_slice(&record[..5]);
    out.extend_from_slice(&(hello.record_seq - 1).to_be_bytes()[2..]);
    out.extend_from_slice(&((record.len() - RECORD_HEADER - removed) as u16).to_be_bytes());
    let length = record.len() - RECORD_HEADER - HANDSHAKE_HEADER - removed;
    out.push(CLIENT_HELLO);
    put_u24(&mut out, length);
    out.extend_from_slice(&[0, 0, 0, 0, 0]);
    put_u24(&mut out, length);
    out.extend_from_slice(&record[RECORD_HEADER + HANDSHAKE_HEADER..hello.cookie_at]);
    out.push(0);
    out.extend_from_slice(&record[cookie_end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record: version DTLS 1.2, `seq`, message_seq `msg_seq`, a 3-byte
    /// session ID, `cookie`, and two bytes standing for the rest of the message.
    fn hello(seq: u8, msg_seq: u8, cookie: &[u8]) -> Vec<u8> {
        let mut body = vec![0xfe, 0xfd];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[3, 1, 2, 3, cookie.len() as u8]);
        body.extend_from_slice(cookie);
        body.extend_from_slice(&[0xaa, 0xbb]);
        let mut hs = vec![CLIENT_HELLO];
        put_u24(&mut hs, body.len());
        hs.extend_from_slice(&[0, msg_seq, 0, 0, 0]);
        put_u24(&mut hs, body.len());
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, seq];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn a_client_hello_is_read_and_its_cookie_found() {
        let datagram = hello(1, 1, &[9; 32]);
        let parsed = parse_client_hello(&datagram).unwrap();
        assert_eq!(parsed.record_seq, 1);
        assert_eq!(parsed.message_seq, 1);
        assert_eq!(parsed.cookie, &[9; 32]);
        assert_eq!(parsed.random, &[7; 32]);
        assert_eq!(parse_client_hello(&hello(0, 0, &[])).unwrap().cookie, b"");
    }

    #[test]
    fn anything_else_is_not_a_client_hello() {
        let good = hello(1, 1, &[9; 4]);
        for cut in 0..good.len() {
            assert_eq!(parse_client_hello(&good[..cut]), None, "cut at {cut}");
        }
        let mut alert = good.clone();
        alert[0] = 21;
        let mut epoch1 = good.clone();
        epoch1[4] = 1;
        let mut fragment = good.clone();
        fragment[RECORD_HEADER + 8] = 1;
        let mut long_session = good.clone();
        long_session[RECORD_HEADER + HANDSHAKE_HEADER + SESSION_ID_AT] = 33;
        for bad in [
            alert,
            epoch1,
            fragment,
            long_session,
            vec![],
            vec![0xff; 200],
        ] {
            assert_eq!(parse_client_hello(&bad), None);
        }
    }

    /// Every truncation and single-byte change of a ClientHello, and pseudo-random
    /// datagrams, parse or are refused without panicking.
    #[test]
    fn damaged_and_random_datagrams_never_panic() {
        let good = hello(5, 1, &[9; 32]);
        for at in 0..good.len() {
            for value in [0u8, 1, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                if let Some(parsed) = parse_client_hello(&bad) {
                    let _ = initial_hello(&parsed);
                    let _ = hello_verify_request(&parsed, &[1; COOKIE_LEN]);
                }
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..600 {
            let datagram: Vec<u8> = (0..len)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Mostly plausible headers, so that parsing goes deep.
                    match i {
                        0 => HANDSHAKE,
                        1 => 0xfe,
                        13 => CLIENT_HELLO,
                        _ => state as u8,
                    }
                })
                .collect();
            if let Some(parsed) = parse_client_hello(&datagram) {
                let _ = initial_hello(&parsed);
            }
        }
    }

    #[test]
    fn the_initial_hello_is_the_same_message_without_cookie_one_record_earlier() {
        let second = hello(5, 1, &[9; 32]);
        let parsed = parse_client_hello(&second).unwrap();
        let first = initial_hello(&parsed).unwrap();
        assert_eq!(first, hello(4, 0, &[]));
        assert_eq!(initial_hello(&parse_client_hello(&first).unwrap()), None);
    }

    #[test]
    fn the_hello_verify_request_carries_the_cookie_and_record_number() {
        let datagram = hello(3, 0, &[]);
        let hvr = hello_verify_request(&parse_client_hello(&datagram).unwrap(), &[1, 2]);
        assert_eq!(
            hvr,
            [
                22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, 0, 17, // record header
                3, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, // handshake header
                0xfe, 0xff, 2, 1, 2, // version, cookie
            ]
        );
    }

    #[test]
    fn cookies_bind_the_address_and_survive_one_rotation() {
        let keys = CookieKeys::new(Duration::from_secs(60)).unwrap();
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let cookie = keys.cookie(a).unwrap();
        assert!(keys.verify(a, &cookie));
        assert!(!keys.verify(b, &cookie));
        assert!(!keys.verify(a, &cookie[..31]));
        let later = Instant::now() + Duration::from_secs(61);
        keys.rotate_if_due(later).unwrap();
        assert!(keys.verify(a, &cookie));
        keys.rotate_if_due(later + Duration::from_secs(61)).unwrap();
        assert!(!keys.verify(a, &cookie));
    }
}
