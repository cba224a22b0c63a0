//! A value that counts its mutable borrows.
//!
//! The simulator checks every invariant after every event, and checking the capability space is
//! most of that cost, while most events leave the space alone. A [`Versioned`] value bumps its
//! version on every `&mut` access, so a check whose result depends only on the value can be
//! skipped while the version is the one it last passed at. The count is conservative: a mutable
//! borrow that changes nothing still counts, and nothing can change the value without one.

use std::ops::{Deref, DerefMut};

/// `T` with a count of the mutable borrows it has lent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Versioned<T> {
    value: T,
    version: u64,
}

impl<T> Versioned<T> {
    /// How many mutable borrows the value has lent: equal versions mean an unchanged value.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

impl<T> Deref for Versioned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Versioned<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.version += 1;
        &mut self.value
    }
}

#[cfg(test)]
mod tests {
    use super::Versioned;

    #[test]
    fn every_mutable_borrow_counts_and_shared_ones_do_not() {
        let mut v = Versioned::<Vec<u32>>::default();
        assert_eq!(v.version(), 0);
        let _ = v.len();
        assert_eq!(v.version(), 0);
        v.push(1);
        let _ = &mut *v;
        assert_eq!(v.version(), 2);
        assert_eq!(*v, [1]);
    }
}
