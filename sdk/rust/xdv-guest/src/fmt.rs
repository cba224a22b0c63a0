//! Text without an allocator: a fixed-capacity buffer that `core::fmt` writes into.

/// `N` bytes of text on the stack. Writes past the capacity are cut at a character boundary
/// and the write reports an error, so formatting never allocates and never overflows.
///
/// ```no_run
/// use core::fmt::Write;
/// let mut b = xdv_guest::fmt::Buf::<64>::new();
/// let _ = write!(b, "OPENQASM 2.0; ry({:.6}) q[0];", 0.25f64);
/// assert!(b.as_str().starts_with("OPENQASM"));
/// ```
pub struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Buf {
            bytes: [0; N],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole `str`s (or their prefixes cut at a char boundary) are ever copied in.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// Forgets the text.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when nothing is written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for Buf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = N - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take == s.len() {
            Ok(())
        } else {
            Err(core::fmt::Error)
        }
    }
}
