//! Write xdv VHM guests in Rust.
//!
//! A guest is a `no_std` `cdylib` built for `wasm32-unknown-unknown`. This crate gives it a safe
//! API over the hypercall ABI (`docs/abi.md`): every call returns [`Result`] with the ABI's
//! error codes as [`Error`], handles are typed ([`Handle<Endpoint>`](Handle), …), and the
//! structures the ABI passes through memory are built for you.
//!
//! ```no_run
//! #![no_std]
//! #![no_main]
//! use xdv_guest::{log, time};
//!
//! fn main() {
//!     log!("hello from vcpu {} at {} ns", xdv_guest::vcpu_id(), time::now());
//! }
//! xdv_guest::entry!(main);
//! ```
//!
//! - [`entry!`] exports the entry function (the manifest's `vhm.k.entry`, `main` by default)
//!   and declares the ABI version the guest targets, which xdv checks at `check` and spawn.
//! - [`irq_handler!`] exports the interrupt handler, with no `unsafe` in user code.
//! - The `panic-handler` feature (on by default) logs a panic's message and exits with
//!   [`PANIC_EXIT_CODE`].
//! - The `alloc` feature adds a global allocator and the helpers that allocate.
//!
//! Groups: [`time`] (clock, sleep, timers), [`cap`] (capabilities), [`vhm`] (children and
//! policy), [`ipc`] (channels), [`q`] (Q containers and jobs), [`phi`] (Φ windows).

#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod cap;
pub mod fmt;
pub mod ipc;
pub mod phi;
pub mod q;
pub mod sys;
pub mod time;
pub mod vhm;

pub use cap::{Handle, Rights};

/// The exit code of a guest that panicked (with the `panic-handler` feature): `exit(101)`,
/// after a `log` of `panic: ` and the panic's message and location.
pub const PANIC_EXIT_CODE: i32 = 101;

/// An ABI error code, as a call returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `E_INVAL`: an argument has an invalid value.
    Inval,
    /// `E_FAULT`: a pointer/length pair reaches outside linear memory.
    Fault,
    /// `E_NOENT`: no such vCPU, vector, capability index or frame.
    NoEnt,
    /// `E_TOOBIG`: a length is over the call's limit.
    TooBig,
    /// `E_NOMEM`: the call needs an exported `memory`.
    NoMem,
    /// `E_BADHANDLE`: no such capability (forged, stale or foreign handle).
    BadHandle,
    /// `E_PERM`: a missing right, or rights asked beyond the source's.
    Perm,
    /// `E_TYPE`: the capability names another type of object.
    Type,
    /// `E_QUOTA`: over budget, nesting depth, child count or privilege level.
    Quota,
    /// `E_FULL`: the channel queue is full.
    Full,
    /// `E_CLOSED`: the other end of the channel is closed.
    Closed,
    /// `E_BUSY`: children, a lent qubit, or a job that has not finished.
    Busy,
    /// A code this SDK does not know (from a newer host).
    Other(i64),
}

impl Error {
    /// The error of a negative return value.
    pub fn from_code(code: i64) -> Error {
        match code {
            sys::E_INVAL => Error::Inval,
            sys::E_FAULT => Error::Fault,
            sys::E_NOENT => Error::NoEnt,
            sys::E_TOOBIG => Error::TooBig,
            sys::E_NOMEM => Error::NoMem,
            sys::E_BADHANDLE => Error::BadHandle,
            sys::E_PERM => Error::Perm,
            sys::E_TYPE => Error::Type,
            sys::E_QUOTA => Error::Quota,
            sys::E_FULL => Error::Full,
            sys::E_CLOSED => Error::Closed,
            sys::E_BUSY => Error::Busy,
            other => Error::Other(other),
        }
    }

    /// The ABI's code (`-1` for [`Error::Inval`], …).
    pub fn code(self) -> i64 {
        match self {
            Error::Inval => sys::E_INVAL,
            Error::Fault => sys::E_FAULT,
            Error::NoEnt => sys::E_NOENT,
            Error::TooBig => sys::E_TOOBIG,
            Error::NoMem => sys::E_NOMEM,
            Error::BadHandle => sys::E_BADHANDLE,
            Error::Perm => sys::E_PERM,
            Error::Type => sys::E_TYPE,
            Error::Quota => sys::E_QUOTA,
            Error::Full => sys::E_FULL,
            Error::Closed => sys::E_CLOSED,
            Error::Busy => sys::E_BUSY,
            Error::Other(c) => c,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self {
            Error::Inval => "E_INVAL",
            Error::Fault => "E_FAULT",
            Error::NoEnt => "E_NOENT",
            Error::TooBig => "E_TOOBIG",
            Error::NoMem => "E_NOMEM",
            Error::BadHandle => "E_BADHANDLE",
            Error::Perm => "E_PERM",
            Error::Type => "E_TYPE",
            Error::Quota => "E_QUOTA",
            Error::Full => "E_FULL",
            Error::Closed => "E_CLOSED",
            Error::Busy => "E_BUSY",
            Error::Other(c) => return write!(f, "error {c}"),
        };
        write!(f, "{name} ({})", self.code())
    }
}

/// The result of a hypercall.
pub type Result<T> = core::result::Result<T, Error>;

/// A return value: negative is an error, anything else is the value.
pub(crate) fn check(ret: i64) -> Result<i64> {
    if ret < 0 {
        Err(Error::from_code(ret))
    } else {
        Ok(ret)
    }
}

/// Appends `bytes` to the trace as a `log` event (at most [`sys::MAX_LOG_BYTES`]).
///
/// # Errors
///
/// [`Error::TooBig`] over the limit.
pub fn log_bytes(bytes: &[u8]) -> Result<()> {
    // SAFETY: the pointer and length name `bytes`, which lives for the call.
    check(i64::from(unsafe { sys::log(bytes.as_ptr(), bytes.len() as i32) })).map(drop)
}

/// Appends `text` to the trace as a `log` event.
///
/// # Errors
///
/// As [`log_bytes`].
pub fn log_str(text: &str) -> Result<()> {
    log_bytes(text.as_bytes())
}

/// Formats its arguments into a 512-byte buffer on the stack and logs them (text past 512 bytes
/// is cut). Returns the [`Result`] of the `log`.
///
/// ```no_run
/// xdv_guest::log!("theta = {:.4}", 0.5f64);
/// ```
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut buf = $crate::fmt::Buf::<512>::new();
        let _ = core::fmt::Write::write_fmt(&mut buf, format_args!($($arg)*));
        $crate::log_bytes(buf.as_bytes())
    }};
}

/// Stops every vCPU of the VHM with exit code `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: `exit` takes no memory and does not return.
    unsafe { sys::exit(code) }
}

/// Ends the current slice; pending interrupts are delivered.
pub fn yield_now() {
    // SAFETY: no arguments.
    unsafe { sys::r#yield() }
}

/// The index of the calling vCPU, from 0.
pub fn vcpu_id() -> u32 {
    // SAFETY: no arguments.
    unsafe { sys::vcpu_id() as u32 }
}

/// The number of vCPUs of the VHM.
pub fn vcpu_count() -> u32 {
    // SAFETY: no arguments.
    unsafe { sys::vcpu_count() as u32 }
}

/// 64 random bits from the VHM's own stream, seeded by the host seed and the VHM's name.
pub fn random() -> u64 {
    // SAFETY: no arguments.
    unsafe { sys::random() as u64 }
}

/// Raises `vector` with `arg` on vCPU `vcpu` of this VHM.
///
/// # Errors
///
/// [`Error::NoEnt`] for an unknown vCPU or vector.
pub fn irq_send(vcpu: u32, vector: u32, arg: i64) -> Result<()> {
    // SAFETY: no memory is passed.
    check(i64::from(unsafe { sys::irq_send(vcpu as i32, vector as i32, arg) })).map(drop)
}

/// Exports the guest's entry functions and declares the ABI version it was built for (a custom
/// section `xdv.abi` that xdv checks). Use it once per guest.
///
/// `entry!(main)` exports `main` as the entry `"main"`; `entry!(main => "main", worker =>
/// "worker")` exports several, for manifests whose `vhm.k.entry` names another.
#[macro_export]
macro_rules! entry {
    ($f:ident) => {
        $crate::entry!($f => "main");
    };
    ($($f:ident => $name:literal),+ $(,)?) => {
        #[link_section = "xdv.abi"]
        #[used]
        static __XDV_ABI_VERSION: [u8; 4] = $crate::sys::ABI_VERSION.to_le_bytes();
        $(
            const _: () = {
                #[export_name = $name]
                extern "C" fn __xdv_entry() {
                    $f()
                }
            };
        )+
    };
}

/// An interrupt as the handler receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupt {
    /// The vector (0 is the timer).
    pub vector: u32,
    /// Its argument: a timer tick's count, an endpoint number, a job number, `E_CLOSED`, …
    pub arg: i64,
}

/// Exports `handler: fn(Interrupt)` as the guest's interrupt handler `xdv_irq`.
///
/// ```no_run
/// fn on_irq(irq: xdv_guest::Interrupt) {
///     let _ = xdv_guest::log!("irq {} arg {}", irq.vector, irq.arg);
/// }
/// xdv_guest::irq_handler!(on_irq);
/// ```
#[macro_export]
macro_rules! irq_handler {
    ($f:ident) => {
        const _: () = {
            #[export_name = "xdv_irq"]
            extern "C" fn __xdv_irq(vector: i32, arg: i64) {
                $f($crate::Interrupt {
                    vector: vector as u32,
                    arg,
                })
            }
        };
    };
}

#[cfg(all(feature = "panic-handler", target_arch = "wasm32"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut buf = fmt::Buf::<512>::new();
    let _ = core::fmt::Write::write_fmt(&mut buf, format_args!("panic: {}", info));
    let _ = log_bytes(buf.as_bytes());
    exit(PANIC_EXIT_CODE)
}

#[cfg(all(feature = "alloc", target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
