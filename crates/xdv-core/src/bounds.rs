//! The bounds of a VHM's numbers, written once: the manifest's `[[vhm]]` tables and the
//! `vhm_spawn` spec are both checked against these.

use std::ops::RangeInclusive;

/// vCPUs of one VHM.
pub const VCPUS: RangeInclusive<u64> = 1..=64;
/// A VHM's scheduling weight.
pub const WEIGHT: RangeInclusive<u64> = 1..=1000;
/// Bytes of one 64 KiB WebAssembly page: memory limits are whole pages.
pub const WASM_PAGE: u64 = 65_536;
/// A vCPU's `memory_limit`, in pages: 64 KiB to 4 GiB.
pub const MEMORY_LIMIT_PAGES: RangeInclusive<u64> = 1..=65_536;
/// Logical qubits of a VHM's Q container.
pub const Q_QUBITS: RangeInclusive<u64> = 1..=1024;
/// Messages a channel holds each way (`[[channel]] capacity`, `ipc_channel`).
pub const CHANNEL_CAPACITY: RangeInclusive<u64> = 1..=4096;
/// Capabilities a parent may pass to a child at spawn.
pub const MAX_PASSED_CAPS: u64 = 16;

/// Whether `bytes` is a valid `memory_limit`: a whole number of pages within
/// [`MEMORY_LIMIT_PAGES`].
pub fn memory_limit_ok(bytes: u64) -> bool {
    bytes.is_multiple_of(WASM_PAGE) && MEMORY_LIMIT_PAGES.contains(&(bytes / WASM_PAGE))
}
