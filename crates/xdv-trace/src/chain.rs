//! The BLAKE3 hash chain over a trace's events.
//!
//! `h[0] = BLAKE3("xdv-trace-genesis" ‖ header)`, and for the event with sequence number `s` and
//! canonical encoding `body`, `h[s+1] = BLAKE3(h[s] ‖ s as u64 LE ‖ body)`. Changing any byte of
//! the header, any event, or the order of events changes every later hash.

use xdv_core::Hash32;

/// The running head of a hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHash {
    head: Hash32,
    next_seq: u64,
}

impl ChainHash {
    /// Starts a chain from the canonical header bytes.
    pub fn genesis(header: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"xdv-trace-genesis");
        h.update(header);
        Self {
            head: Hash32(*h.finalize().as_bytes()),
            next_seq: 0,
        }
    }

    /// A chain that continues after `len` linked events whose last hash is `head` (resuming a
    /// trace that was cut short).
    pub fn resume(head: Hash32, len: u64) -> Self {
        Self {
            head,
            next_seq: len,
        }
    }

    /// Links the next event's canonical encoding and returns its sequence number and hash.
    pub fn link(&mut self, body: &[u8]) -> (u64, Hash32) {
        let seq = self.next_seq;
        let mut h = blake3::Hasher::new();
        h.update(&self.head.0);
        h.update(&seq.to_le_bytes());
        h.update(body);
        self.head = Hash32(*h.finalize().as_bytes());
        self.next_seq += 1;
        (seq, self.head)
    }

    /// The hash of the last linked event (the genesis hash before any event).
    pub fn head(&self) -> Hash32 {
        self.head
    }

    /// The number of events linked so far.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// `true` before any event was linked.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_depends_on_every_input() {
        let mut a = ChainHash::genesis(b"h");
        let mut b = ChainHash::genesis(b"h");
        assert_eq!(a.link(b"x"), b.link(b"x"));
        assert_ne!(a.clone().link(b"y"), b.clone().link(b"z"));
        assert_ne!(
            ChainHash::genesis(b"h").head(),
            ChainHash::genesis(b"i").head()
        );
        assert_eq!(Hash32::from_hex(&a.head().to_hex()), Some(a.head()));
    }
}
