//! The binding's bounded memory: the answers kept for de-duplication
//! ([`Exchanges`], RFC 7252 4.5) and the bodies buffered by blockwise transfers
//! ([`Blocks`], RFC 7959): request bodies being reassembled (Block1) and response bodies
//! being served block by block (Block2). Every store has a count or byte budget, per peer
//! and in total, and forgets entries after a lifetime; a full store refuses or evicts,
//! never grows.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// RFC 7252 4.8.2: EXCHANGE_LIFETIME, how long a message ID may be retransmitted.
pub const EXCHANGE_LIFETIME: Duration = Duration::from_secs(247);

/// What is known of a received request message: still being handled, or answered with
/// these bytes (sent again when the message is retransmitted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    InProgress,
    Answered(Option<Vec<u8>>),
}

/// The message IDs received per peer within [`EXCHANGE_LIFETIME`], at most `capacity`;
/// when full the oldest is forgotten (a retransmission of it is then handled again).
pub struct Exchanges {
    capacity: usize,
    /// foldhash's quality hasher, seeded per process: every datagram looks up and
    /// inserts here, where SipHash cost more than the rest of the table work; a peer
    /// cannot predict the seed to aim collisions, and the table is bounded anyway.
    seen: HashMap<(SocketAddr, u16), Seen, foldhash::quality::RandomState>,
    order: VecDeque<(Instant, (SocketAddr, u16))>,
}

impl Exchanges {
    pub fn new(capacity: usize) -> Exchanges {
        Exchanges {
            capacity: capacity.max(1),
            seen: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// What is known of `(peer, mid)`; unknown ones are recorded as in progress. The
    /// boolean says whether an older entry had to be evicted to make room.
    pub fn begin(&mut self, peer: SocketAddr, mid: u16, now: Instant) -> (Option<Seen>, bool) {
        self.expire(now);
        let key = (peer, mid);
        match self.seen.entry(key) {
            Entry::Occupied(known) => return (Some(known.get().clone()), false),
            Entry::Vacant(new) => {
                new.insert(Seen::InProgress);
            }
        }
        self.order.push_back((now, key));
        // Room is made after the insertion, so the new entry is never the one evicted
        // (it is the newest in `order`).
        let mut evicted = false;
        while self.seen.len() > self.capacity {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.seen.remove(&old);
                    evicted = true;
                }
                None => break,
            }
        }
        (None, evicted)
    }

    /// Records the answer sent for `(peer, mid)`.
    pub fn answered(&mut self, peer: SocketAddr, mid: u16, bytes: Option<Vec<u8>>) {
        if let Some(seen) = self.seen.get_mut(&(peer, mid)) {
            *seen = Seen::Answered(bytes);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.order.front() {
            if now.duration_since(*at) < EXCHANGE_LIFETIME {
                break;
            }
            self.seen.remove(key);
            self.order.pop_front();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
    }
}

/// Why a body cannot be buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// The body would exceed the per-body limit (the limit).
    TooLarge(usize),
    /// The peer's or the binding's budget is used up.
    Exhausted,
    /// A block that does not continue the body buffered so far.
    OutOfOrder,
}

struct Body {
    peer: SocketAddr,
    at: Instant,
    bytes: Vec<u8>,
}

/// At most this many bodies are buffered at once, whatever their size: expiry scans
/// them, so their number is bounded as well as their bytes.
pub const MAX_BODIES: usize = 4096;

/// Bodies of blockwise transfers by key (the peer and the request's options), within
/// byte budgets per body, per peer and in total, at most [`MAX_BODIES`], each for
/// `lifetime` after its last use.
pub struct Blocks {
    max_body: usize,
    per_peer: usize,
    total: usize,
    lifetime: Duration,
    bodies: HashMap<Vec<u8>, Body>,
    used: usize,
    used_by: HashMap<SocketAddr, usize>,
}

impl Blocks {
    pub fn new(max_body: usize, per_peer: usize, total: usize, lifetime: Duration) -> Blocks {
        Blocks {
            max_body,
            per_peer,
            total,
            lifetime,
            bodies: HashMap::new(),
            used: 0,
            used_by: HashMap::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        let old: Vec<Vec<u8>> = self
            .bodies
            .iter()
            .filter(|(_, b)| now.duration_since(b.at) >= self.lifetime)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.remove(&key);
        }
    }

    /// Forgets the body under `key`, returning it.
    pub fn remove(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let body = self.bodies.remove(key)?;
        self.used -= body.bytes.len();
        if let Some(n) = self.used_by.get_mut(&body.peer) {
            *n -= body.bytes.len();
            if *n == 0 {
                self.used_by.remove(&body.peer);
            }
        }
        Some(body.bytes)
    }

    fn reserve(&mut self, peer: SocketAddr, extra: usize) -> Result<(), BufferError> {
        let mine = self.used_by.get(&peer).copied().unwrap_or(0);
        if mine + extra > self.per_peer || self.used + extra > self.total {
            return Err(BufferError::Exhausted);
        }
        self.used += extra;
        *self.used_by.entry(peer).or_default() += extra;
        Ok(())
    }

    /// Appends `block` at `offset` to the body under `key` (offset 0 starts it anew).
    pub fn append(
        &mut self,
        key: &[u8],
        peer: SocketAddr,
        offset: usize,
        block: &[u8],
        now: Instant,
    ) -> Result<(), BufferError> {
        self.expire(now);
        if offset == 0 {
            self.remove(key);
        }
        let have = self.bodies.get(key).map_or(0, |b| b.bytes.len());
        if have != offset {
            return Err(BufferError::OutOfOrder);
        }
        if offset + block.len() > self.max_body {
            self.remove(key);
            return Err(BufferError::TooLarge(self.max_body));
        }
        let full = !self.bodies.contains_key(key) && self.bodies.len() >= MAX_BODIES;
        if let Err(e) = if full {
            Err(BufferError::Exhausted)
        } else {
            self.reserve(peer, block.len())
        } {
            self.remove(key);
            return Err(e);
        }
        let body = self.bodies.entry(key.to_vec()).or_insert_with(|| Body {
            peer,
            at: now,
            bytes: Vec::new(),
        });
        body.at = now;
        body.bytes.extend_from_slice(block);
        Ok(())
    }

    /// Keeps a whole body under `key` (a response served block by block).
    pub fn keep(
        &mut self,
        key: &[u8],
        peer: SocketAddr,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Result<(), BufferError> {
        self.expire(now);
        self.remove(key);
        if self.bodies.len() >= MAX_BODIES {
            return Err(BufferError::Exhausted);
        }
        self.reserve(peer, bytes.len())?;
        self.bodies.insert(
            key.to_vec(),
            Body {
                peer,
                at: now,
                bytes,
            },
        );
        Ok(())
    }

    /// The body under `key`, if still kept; its lifetime starts again.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<&[u8]> {
        self.expire(now);
        let body = self.bodies.get_mut(key)?;
        body.at = now;
        Some(&body.bytes)
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn exchanges_are_bounded_and_remember_answers() {
        let now = Instant::now();
        let mut ex = Exchanges::new(2);
        assert_eq!(ex.begin(peer(1), 7, now), (None, false));
        assert_eq!(ex.begin(peer(1), 7, now), (Some(Seen::InProgress), false));
        ex.answered(peer(1), 7, Some(vec![1]));
        assert_eq!(
            ex.begin(peer(1), 7, now).0,
            Some(Seen::Answered(Some(vec![1])))
        );
        assert_eq!(ex.begin(peer(2), 7, now), (None, false));
        assert_eq!(ex.begin(peer(3), 7, now), (None, true));
        assert_eq!(ex.len(), 2);
        let later = now + EXCHANGE_LIFETIME;
        assert_eq!(ex.begin(peer(1), 7, later), (None, false));
        assert_eq!(ex.len(), 1);
    }

    #[test]
    fn blocks_are_bounded_per_body_peer_and_total() {
        let now = Instant::now();
        let mut b = Blocks::new(10, 8, 12, Duration::from_secs(60));
        b.append(b"k", peer(1), 0, b"abcd", now).expect("first");
        assert_eq!(
            b.append(b"k", peer(1), 2, b"x", now),
            Err(BufferError::OutOfOrder)
        );
        b.append(b"k", peer(1), 4, b"efgh", now).expect("second");
        assert_eq!(
            b.append(b"j", peer(1), 0, b"x", now),
            Err(BufferError::Exhausted),
            "peer budget"
        );
        b.append(b"m", peer(2), 0, b"1234", now)
            .expect("other peer");
        assert_eq!(
            b.append(b"n", peer(3), 0, b"1", now),
            Err(BufferError::Exhausted),
            "total"
        );
        assert_eq!(b.remove(b"k").as_deref(), Some(&b"abcdefgh"[..]));
        assert_eq!(
            b.append(b"k", peer(1), 0, &[0; 11], now),
            Err(BufferError::TooLarge(10))
        );
        assert_eq!(b.used(), 4);
        assert!(b.get(b"m", now + Duration::from_secs(61)).is_none());
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn the_number_of_bodies_is_bounded_too() {
        let now = Instant::now();
        let mut b = Blocks::new(16, usize::MAX, usize::MAX, Duration::from_secs(60));
        for i in 0..MAX_BODIES {
            let key = i.to_be_bytes();
            b.append(&key, peer(1), 0, b"x", now).expect("room");
        }
        let more = usize::MAX.to_be_bytes();
        assert_eq!(
            b.append(&more, peer(1), 0, b"x", now),
            Err(BufferError::Exhausted)
        );
        // A body already buffered still grows.
        b.append(&0usize.to_be_bytes(), peer(1), 1, b"y", now)
            .expect("continues");
    }
}
