//! Capabilities: typed handles into the VHM's own capability table.
//!
//! ```no_run
//! use xdv_guest::cap::{Endpoint, Handle};
//! use xdv_guest::Rights;
//! let ep: Handle<Endpoint> = Handle::find(0).expect("a manifest channel");
//! let send_only = ep.derive(Rights::SEND | Rights::INSPECT, 0).expect("derive");
//! let info = send_only.info().expect("inspect");
//! assert_eq!(info.rights, Rights::SEND | Rights::INSPECT);
//! ```

use crate::{check, sys, Result};
use core::marker::PhantomData;

/// A set of rights (the ABI's bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights(pub u32);

impl Rights {
    /// No right.
    pub const NONE: Rights = Rights(0);
    /// `cap_info`, and reading the object's state.
    pub const INSPECT: Rights = Rights(sys::RIGHT_INSPECT);
    /// `cap_derive` into the holder's table.
    pub const DERIVE: Rights = Rights(sys::RIGHT_DERIVE);
    /// Passing a derived copy to another VHM.
    pub const TRANSFER: Rights = Rights(sys::RIGHT_TRANSFER);
    /// Budget: carve a child. Module: run it as a child's image.
    pub const SPAWN: Rights = Rights(sys::RIGHT_SPAWN);
    /// VHM: wait for it. Q job: wait for it.
    pub const WAIT: Rights = Rights(sys::RIGHT_WAIT);
    /// VHM: kill it.
    pub const KILL: Rights = Rights(sys::RIGHT_KILL);
    /// Endpoint: send.
    pub const SEND: Rights = Rights(sys::RIGHT_SEND);
    /// Endpoint: receive. Q job: read its result.
    pub const RECV: Rights = Rights(sys::RIGHT_RECV);
    /// Budget: create channels.
    pub const CHANNEL: Rights = Rights(sys::RIGHT_CHANNEL);
    /// Q container, Φ window: submit work.
    pub const SUBMIT: Rights = Rights(sys::RIGHT_SUBMIT);

    /// `true` when every right of `other` is in `self`.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Rights {
    type Output = Rights;
    fn bitor(self, rhs: Rights) -> Rights {
        Rights(self.0 | rhs.0)
    }
}

/// A kind of kernel object, with its ABI type code.
pub trait Kind {
    /// The type code `cap_find` takes and `cap_info` reports.
    const TYPE: u32;
}

macro_rules! kinds {
    ($($(#[doc = $d:literal])* $name:ident = $code:path;)*) => {$(
        $(#[doc = $d])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {}
        impl Kind for $name {
            const TYPE: u32 = $code;
        }
    )*};
}

kinds! {
    /// A child VHM (wait, kill).
    Vhm = sys::TYPE_VHM;
    /// The VHM's own budget (spawn, channels).
    Budget = sys::TYPE_BUDGET;
    /// A guest module (spawn a child from it).
    Module = sys::TYPE_MODULE;
    /// One end of an IPC channel.
    Endpoint = sys::TYPE_ENDPOINT;
    /// One of the VHM's vCPUs.
    Vcpu = sys::TYPE_VCPU;
    /// The VHM's Q container.
    QContainer = sys::TYPE_Q_CONTAINER;
    /// A Q job.
    QJob = sys::TYPE_Q_JOB;
    /// A Φ coherence window.
    PhiWindow = sys::TYPE_PHI_WINDOW;
}

/// A handle on a capability naming a `T`. It is a plain number valid only in this VHM's table;
/// the rights are the capability's (see [`Handle::info`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Handle<T: Kind> {
    raw: u64,
    kind: PhantomData<T>,
}

impl<T: Kind> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Kind> Copy for Handle<T> {}

/// What [`Handle::info`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// The object type code.
    pub object_type: u32,
    /// The capability's rights.
    pub rights: Rights,
    /// Its badge (0: none).
    pub badge: u64,
    /// The object's number as this VHM sees it.
    pub number: u64,
}

impl<T: Kind> Handle<T> {
    /// A handle from its raw value. Nothing is checked: a wrong value fails in the call that
    /// uses it ([`crate::Error::BadHandle`] or [`crate::Error::Type`]).
    pub const fn from_raw(raw: u64) -> Self {
        Handle {
            raw,
            kind: PhantomData,
        }
    }

    /// The raw value the ABI passes.
    pub const fn raw(self) -> u64 {
        self.raw
    }

    /// The `index`-th capability of type `T` in the caller's table (see `docs/abi.md`,
    /// "Initial capabilities", for their order).
    ///
    /// # Errors
    ///
    /// [`crate::Error::NoEnt`] when there are fewer.
    pub fn find(index: u32) -> Result<Self> {
        // SAFETY: no memory is passed.
        check(unsafe { sys::cap_find(T::TYPE as i32, index as i32) }).map(|h| Self::from_raw(h as u64))
    }

    /// A copy in this VHM's table with `rights` (a subset) and `badge` (0 keeps the source's).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Perm`] without `derive` or for rights beyond the source's,
    /// [`crate::Error::Quota`] with a full table.
    pub fn derive(self, rights: Rights, badge: u64) -> Result<Self> {
        // SAFETY: no memory is passed.
        check(unsafe { sys::cap_derive(self.raw as i64, rights.0 as i32, badge as i64) })
            .map(|h| Self::from_raw(h as u64))
    }

    /// Removes every capability derived from this one, in every VHM; how many.
    ///
    /// # Errors
    ///
    /// [`crate::Error::BadHandle`].
    pub fn revoke(self) -> Result<u32> {
        // SAFETY: no memory is passed.
        check(i64::from(unsafe { sys::cap_revoke(self.raw as i64) })).map(|n| n as u32)
    }

    /// Removes this capability from the table.
    ///
    /// # Errors
    ///
    /// [`crate::Error::BadHandle`].
    pub fn drop_cap(self) -> Result<()> {
        // SAFETY: no memory is passed.
        check(i64::from(unsafe { sys::cap_drop(self.raw as i64) })).map(drop)
    }

    /// The capability's type, rights, badge and object number.
    ///
    /// # Errors
    ///
    /// [`crate::Error::BadHandle`], [`crate::Error::Perm`] without `inspect`.
    pub fn info(self) -> Result<Info> {
        let mut out = sys::CapInfo::default();
        // SAFETY: `out` is a live, writable `CapInfo` of the size the call writes.
        check(i64::from(unsafe {
            sys::cap_info(self.raw as i64, (&mut out as *mut sys::CapInfo).cast())
        }))?;
        Ok(Info {
            object_type: out.object_type,
            rights: Rights(out.rights),
            badge: out.badge,
            number: out.number,
        })
    }
}

/// A capability to pass to a child at spawn: an entry of the spawn spec's table.
pub type PassedCapability = sys::PassedCap;

/// An entry passing `handle` with `rights` and `badge` (0 keeps the held one's).
pub fn pass<T: Kind>(handle: Handle<T>, rights: Rights, badge: u64) -> PassedCapability {
    sys::PassedCap {
        handle: handle.raw(),
        rights: rights.0,
        reserved: 0,
        badge,
    }
}
