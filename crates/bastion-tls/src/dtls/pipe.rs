//! The datagram adapter between OpenSSL and a UDP socket (tokio-openssl has no datagram
//! support): an in-memory queue per peer that OpenSSL reads one datagram at a time from
//! and writes whole datagrams into. The socket loop pushes what it received, runs the
//! connection, then sends what the connection wrote. Never blocks: an empty queue reads
//! as `WouldBlock`, which is also when OpenSSL checks its retransmission timer.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

/// Datagrams a peer may have waiting before the oldest is dropped; the loop drains the
/// queue right after each push, so more than one only queues in a burst.
const MAX_QUEUED: usize = 8;

/// One peer's datagrams in each direction.
#[derive(Debug, Default)]
pub(crate) struct DatagramPipe {
    inbound: VecDeque<Vec<u8>>,
    outbound: Vec<Vec<u8>>,
}

impl DatagramPipe {
    /// Queues a received datagram for the connection (dropping the oldest when full, as
    /// the network could have).
    pub(crate) fn push(&mut self, datagram: &[u8]) {
        if self.inbound.len() >= MAX_QUEUED {
            self.inbound.pop_front();
        }
        self.inbound.push_back(datagram.to_vec());
    }

    /// The datagrams the connection wrote since the last call.
    pub(crate) fn take_outbound(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbound)
    }
}

impl Read for DatagramPipe {
    /// One whole datagram per read; a datagram longer than `buf` is cut, as a socket
    /// would (OpenSSL always offers a buffer for the largest record).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(datagram) = self.inbound.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let n = datagram.len().min(buf.len());
        buf[..n].copy_from_slice(&datagram[..n]);
        Ok(n)
    }
}

impl Write for DatagramPipe {
    /// Each write is one datagram (OpenSSL writes a whole flight or record at once).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbound.push(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_datagram_per_read_and_would_block_when_empty() {
        let mut pipe = DatagramPipe::default();
        pipe.push(b"first");
        pipe.push(b"second");
        let mut buf = [0u8; 64];
        assert_eq!(pipe.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"first");
        assert_eq!(pipe.read(&mut buf).unwrap(), 6);
        let err = pipe.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        pipe.write_all(b"out").unwrap();
        assert_eq!(pipe.take_outbound(), vec![b"out".to_vec()]);
        assert!(pipe.take_outbound().is_empty());
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let mut pipe = DatagramPipe::default();
        for i in 0..=MAX_QUEUED as u8 {
            pipe.push(&[i]);
        }
        let mut buf = [0u8; 4];
        assert_eq!(pipe.read(&mut buf).unwrap(), 1);
        assert_eq!(buf[0], 1);
    }
}
