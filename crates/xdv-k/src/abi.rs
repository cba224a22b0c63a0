//! The xdv guest ABI: hypercalls imported from module `xdv`.
//!
//! Guests import any subset of [`HYPERCALLS`] and may export `xdv_irq(vector: i32, arg: i64)` to
//! receive interrupts. Calls that take pointers need the guest to export its linear memory as
//! `memory`. Every call returns to the guest at a deterministic point where pending interrupts
//! are delivered. Negative return values are the error codes below.
//!
//! Groups reserve room for later calls: capabilities, nesting, IPC, Q and Φ each get their own
//! group, and existing numbers never change meaning ([`ABI_VERSION`] rises when calls are added).

pub use wasmi::ValType;

/// Version of the hypercall ABI.
pub const ABI_VERSION: u32 = 1;

/// The export a guest provides to receive interrupts: `(vector: i32, arg: i64) -> ()`.
pub const IRQ_EXPORT: &str = "xdv_irq";
/// The export that pointer-taking hypercalls read and write.
pub const MEMORY_EXPORT: &str = "memory";
/// The interrupt vector of the VHM's virtual timer.
pub const TIMER_VECTOR: u32 = 0;
/// Longest message `log` accepts, in bytes.
pub const MAX_LOG_BYTES: u32 = 4096;

/// Success.
pub const OK: i64 = 0;
/// `sleep` returned early because an interrupt arrived (not an error).
pub const SLEEP_INTERRUPTED: i64 = 1;
/// An argument has an invalid value (negative time, zero-length where not allowed, …).
pub const E_INVAL: i64 = -1;
/// A pointer/length pair reaches outside the guest's linear memory.
pub const E_FAULT: i64 = -2;
/// No such object: an unknown vCPU or interrupt vector.
pub const E_NOENT: i64 = -3;
/// A length is over the call's limit.
pub const E_TOOBIG: i64 = -4;
/// The call needs an exported `memory` and the guest has none.
pub const E_NOMEM: i64 = -5;

/// Error codes with their names and meanings, for documentation and messages.
pub const ERROR_CODES: &[(i64, &str, &str)] = &[
    (E_INVAL, "E_INVAL", "an argument has an invalid value"),
    (
        E_FAULT,
        "E_FAULT",
        "a pointer/length pair reaches outside linear memory",
    ),
    (E_NOENT, "E_NOENT", "no such vCPU or interrupt vector"),
    (E_TOOBIG, "E_TOOBIG", "a length is over the call's limit"),
    (E_NOMEM, "E_NOMEM", "the call needs an exported `memory`"),
];

/// The name of an error code, `"?"` for unknown values.
pub fn error_name(code: i64) -> &'static str {
    ERROR_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("?", |(_, n, _)| n)
}

/// Every hypercall of this ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hypercall {
    /// `log(ptr: i32, len: i32) -> i32`
    Log,
    /// `exit(code: i32)`: stops the whole VHM; never returns.
    Exit,
    /// `yield()`: ends the current slice.
    Yield,
    /// `vcpu_id() -> i32`
    VcpuId,
    /// `vcpu_count() -> i32`
    VcpuCount,
    /// `time() -> i64`: this vCPU's virtual time in ns.
    Time,
    /// `sleep(until_ns: i64) -> i32`: parks until a virtual time; 0 woke on time, 1 interrupted.
    Sleep,
    /// `random() -> i64`: the next value of the VHM's seeded random stream.
    Random,
    /// `timer_set(period_ns: i64) -> i32`: arms the periodic virtual timer (0 disarms).
    TimerSet,
    /// `irq_send(vcpu: i32, vector: i32, arg: i64) -> i32`: raises an interrupt on a sibling vCPU.
    IrqSend,
}

/// Groups of hypercalls. Only `Lifecycle` exists in ABI version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Lifecycle, time and interrupts.
    Lifecycle,
}

/// The description of one hypercall: the single source of its name, signature and rules.
#[derive(Debug, Clone, Copy)]
pub struct HypercallDesc {
    /// The call.
    pub call: Hypercall,
    /// Import name in module `xdv`.
    pub name: &'static str,
    /// Group.
    pub group: Group,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result type, if any.
    pub result: Option<ValType>,
    /// Deepest privilege level allowed to call it (`u8::MAX`: every level).
    pub max_level: u8,
    /// One-line meaning.
    pub doc: &'static str,
}

use ValType::{I32, I64};

/// The hypercall table, in ABI order.
pub const HYPERCALLS: &[HypercallDesc] = &[
    HypercallDesc { call: Hypercall::Log, name: "log", group: Group::Lifecycle, params: &[I32, I32], result: Some(I32), max_level: u8::MAX, doc: "append `len` bytes at `ptr` to the trace; 0, E_FAULT, E_TOOBIG or E_NOMEM" },
    HypercallDesc { call: Hypercall::Exit, name: "exit", group: Group::Lifecycle, params: &[I32], result: None, max_level: u8::MAX, doc: "stop every vCPU of the VHM with exit code `code`; does not return" },
    HypercallDesc { call: Hypercall::Yield, name: "yield", group: Group::Lifecycle, params: &[], result: None, max_level: u8::MAX, doc: "end the current slice now; pending interrupts are delivered" },
    HypercallDesc { call: Hypercall::VcpuId, name: "vcpu_id", group: Group::Lifecycle, params: &[], result: Some(I32), max_level: u8::MAX, doc: "index of the calling vCPU, from 0" },
    HypercallDesc { call: Hypercall::VcpuCount, name: "vcpu_count", group: Group::Lifecycle, params: &[], result: Some(I32), max_level: u8::MAX, doc: "number of vCPUs of the VHM" },
    HypercallDesc { call: Hypercall::Time, name: "time", group: Group::Lifecycle, params: &[], result: Some(I64), max_level: u8::MAX, doc: "the calling vCPU's virtual time in ns" },
    HypercallDesc { call: Hypercall::Sleep, name: "sleep", group: Group::Lifecycle, params: &[I64], result: Some(I32), max_level: u8::MAX, doc: "park until virtual time `until_ns`; 0 on time (at once when already past), 1 when an interrupt woke it or was already pending, E_INVAL if negative" },
    HypercallDesc { call: Hypercall::Random, name: "random", group: Group::Lifecycle, params: &[], result: Some(I64), max_level: u8::MAX, doc: "64 random bits from the VHM's own stream, seeded by (host seed, VHM name)" },
    HypercallDesc { call: Hypercall::TimerSet, name: "timer_set", group: Group::Lifecycle, params: &[I64], result: Some(I32), max_level: u8::MAX, doc: "fire vector 0 on the calling vCPU every `period_ns` (0 disarms); E_INVAL if negative" },
    HypercallDesc { call: Hypercall::IrqSend, name: "irq_send", group: Group::Lifecycle, params: &[I32, I32, I64], result: Some(I32), max_level: u8::MAX, doc: "raise `vector` with `arg` on vCPU `vcpu` of the same VHM; E_NOENT for an unknown vCPU or vector" },
];

impl Hypercall {
    /// The call's description.
    pub fn desc(self) -> &'static HypercallDesc {
        HYPERCALLS
            .iter()
            .find(|d| d.call == self)
            .expect("every Hypercall is in HYPERCALLS")
    }
}

/// Looks a hypercall up by import name.
pub fn by_name(name: &str) -> Option<&'static HypercallDesc> {
    HYPERCALLS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, d) in HYPERCALLS.iter().enumerate() {
            assert_eq!(d.call.desc().name, d.name);
            assert_eq!(by_name(d.name).map(|x| x.call), Some(d.call));
            assert!(
                HYPERCALLS[..i].iter().all(|o| o.name != d.name),
                "duplicate {}",
                d.name
            );
            assert!(d.params.len() <= 3, "hypercalls take at most 3 arguments");
        }
        for (c, n, _) in ERROR_CODES {
            assert!(*c < 0);
            assert_eq!(error_name(*c), *n);
        }
    }
}
