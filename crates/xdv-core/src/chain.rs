//! The BLAKE3 hash chain over a trace's events.
//!
//! `h[0] = BLAKE3("xdv-trace-genesis" ‖ header)`, and for the event with sequence number `s` and
//! canonical encoding `body`, `h[s+1] = BLAKE3(h[s] ‖ s as u64 LE ‖ body)`. Changing any byte of
//! the header, any event, or the order of events changes every later hash.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 32-byte BLAKE3 digest. Serialized as 32 raw bytes in binary formats (the canonical event
/// encoding) and as 64 hex characters in human-readable ones (JSON).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash32(pub [u8; 32]);

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Hash32::from_hex(&s)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
        } else {
            <[u8; 32]>::deserialize(d).map(Hash32)
        }
    }
}

impl Hash32 {
    /// Hashes `bytes` with BLAKE3.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        blake3::Hash::from_hex(s).ok().map(|h| Self(*h.as_bytes()))
    }
    /// The first 12 hex characters, for display.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.short())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

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
