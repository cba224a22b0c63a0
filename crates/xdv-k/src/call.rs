//! Hypercalls decoded once, at the K edge: each call's arguments typed and named, and the guest
//! memory it passes data in already read. The hypervisor matches on a [`Call`]; it never counts
//! argument positions or reads a guest's memory to learn what was asked.
//!
//! A read is kept as its result: the hypervisor checks a call's handles and numbers in the
//! order the ABI documents, and reports a bad pointer only where that order reaches it. Reads
//! are bounded by each call's limit, so decoding costs at most that many bytes.

use crate::abi::{self, Hypercall};
use crate::engine::GuestVcpu;
use crate::layout;
use xdv_core::event::HypercallRecord;

/// Bytes read from guest memory, or the ABI error code of the read (`E_NOMEM`, `E_FAULT`,
/// `E_TOOBIG`).
pub type Read = Result<Vec<u8>, i64>;

/// Longest message `ipc_send` passes.
pub const MAX_MESSAGE: u32 = 64 * 1024;
/// Largest module a guest may pass as bytes to `vhm_spawn`.
pub const MAX_CODE: u32 = 4 << 20;
/// Longest child name, in bytes.
pub const MAX_NAME: u32 = 64;
/// Longest frame name `phi_frame` reads.
pub const MAX_FRAME_NAME: u32 = 64;

/// What `vhm_spawn` passes: the spec and, once it is read, the name, code and capability table
/// it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRead {
    /// The spec's bytes (104 when the guest passed at least that many, else 88).
    pub spec: Read,
    /// The child's name, when the spec was read.
    pub name: Option<Read>,
    /// The module bytes, when the spec names no module handle.
    pub code: Option<Read>,
    /// The passed-capability entries, when the spec passes 1 to 16.
    pub caps: Option<Read>,
}

/// One hypercall with its typed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each field is the ABI argument of the same name (docs/abi.md)
pub enum Call {
    Log {
        ptr: u32,
        len: u32,
        bytes: Read,
    },
    Exit {
        code: i32,
    },
    Yield,
    VcpuId,
    VcpuCount,
    Time,
    Sleep {
        until: i64,
    },
    Random,
    TimerSet {
        period: i64,
    },
    IrqSend {
        vcpu: u32,
        vector: u32,
        arg: i64,
    },
    CapDerive {
        handle: u64,
        rights: u32,
        badge: u64,
    },
    CapRevoke {
        handle: u64,
    },
    CapDrop {
        handle: u64,
    },
    CapInfo {
        handle: u64,
        out: u32,
    },
    CapFind {
        type_code: u32,
        index: u32,
    },
    VhmSpawn {
        ptr: u32,
        len: u32,
        read: Option<SpawnRead>,
    },
    VhmWait {
        handle: u64,
    },
    VhmKill {
        handle: u64,
    },
    PolicySet {
        weight: u32,
        flags: u32,
    },
    IpcChannel {
        capacity: u32,
        out: u32,
    },
    IpcSend {
        endpoint: u64,
        ptr: u32,
        len: u32,
        bytes: Read,
        cap: u64,
        flags: u32,
    },
    IpcRecv {
        endpoint: u64,
        ptr: u32,
        len: u32,
    },
    QInfo {
        container: u64,
        what: u32,
    },
    QSubmit {
        container: u64,
        ptr: u32,
        len: u32,
        text: Read,
        shots: u64,
        vector: u32,
    },
    QWait {
        job: u64,
    },
    QResult {
        job: u64,
        ptr: u32,
        len: u32,
    },
    PhiWindow {
        ptr: u32,
        len: u32,
        spec: Option<Read>,
    },
    PhiExec {
        window: u64,
        ptr: u32,
        len: u32,
        text: Read,
        out: u32,
        out_len: u32,
    },
    PhiFrame {
        window: u64,
        ptr: u32,
        len: u32,
        name: Read,
        out: u32,
    },
    PhiRelease {
        window: u64,
    },
}

/// i32 arguments arrive sign-extended; pointers and lengths are unsigned in wasm32.
fn u32_arg(a: i64) -> u32 {
    a as i32 as u32
}

impl Call {
    /// Decodes the call `call` with raw arguments `args`, reading what it passes in `mem`.
    pub fn decode(call: Hypercall, args: [i64; 5], mem: &dyn GuestVcpu) -> Call {
        Self::decode_with(call, args, &mut |ptr, len, max| {
            mem.read_guest(i64::from(ptr), i64::from(len), max)
        })
    }

    /// Decodes the call when it passes nothing in guest memory (most calls: a pure function of
    /// its arguments); `None` when decoding it would read guest memory.
    pub fn decode_pure(call: Hypercall, args: [i64; 5]) -> Option<Call> {
        let mut reads = false;
        let decoded = Self::decode_with(call, args, &mut |_, _, _| {
            reads = true;
            Err(abi::E_FAULT)
        });
        (!reads).then_some(decoded)
    }

    /// Decodes `call`, reading `(ptr, len, max)` ranges of guest memory with `read`.
    // Long by design: one arm per hypercall of the ABI table, in its order.
    fn decode_with(
        call: Hypercall,
        args: [i64; 5],
        read: &mut dyn FnMut(u32, u32, u32) -> Read,
    ) -> Call {
        let u = |i: usize| u32_arg(args[i]);
        let h = |i: usize| args[i] as u64;
        match call {
            Hypercall::Log => Call::Log {
                ptr: u(0),
                len: u(1),
                bytes: read(u(0), u(1), abi::MAX_LOG_BYTES),
            },
            Hypercall::Exit => Call::Exit {
                code: args[0] as i32,
            },
            Hypercall::Yield => Call::Yield,
            Hypercall::VcpuId => Call::VcpuId,
            Hypercall::VcpuCount => Call::VcpuCount,
            Hypercall::Time => Call::Time,
            Hypercall::Sleep => Call::Sleep { until: args[0] },
            Hypercall::Random => Call::Random,
            Hypercall::TimerSet => Call::TimerSet { period: args[0] },
            Hypercall::IrqSend => Call::IrqSend {
                vcpu: u(0),
                vector: u(1),
                arg: args[2],
            },
            Hypercall::CapDerive => Call::CapDerive {
                handle: h(0),
                rights: u(1),
                badge: h(2),
            },
            Hypercall::CapRevoke => Call::CapRevoke { handle: h(0) },
            Hypercall::CapDrop => Call::CapDrop { handle: h(0) },
            Hypercall::CapInfo => Call::CapInfo {
                handle: h(0),
                out: u(1),
            },
            Hypercall::CapFind => Call::CapFind {
                type_code: u(0),
                index: u(1),
            },
            Hypercall::VhmSpawn => {
                let (ptr, len) = (u(0), u(1));
                let read = (len >= layout::size::<layout::SpawnSpec>())
                    .then(|| spawn_read(ptr, len, read));
                Call::VhmSpawn { ptr, len, read }
            }
            Hypercall::VhmWait => Call::VhmWait { handle: h(0) },
            Hypercall::VhmKill => Call::VhmKill { handle: h(0) },
            Hypercall::PolicySet => Call::PolicySet {
                weight: u(0),
                flags: u(1),
            },
            Hypercall::IpcChannel => Call::IpcChannel {
                capacity: u(0),
                out: u(1),
            },
            Hypercall::IpcSend => Call::IpcSend {
                endpoint: h(0),
                ptr: u(1),
                len: u(2),
                bytes: read(u(1), u(2), MAX_MESSAGE),
                cap: h(3),
                flags: u(4),
            },
            Hypercall::IpcRecv => Call::IpcRecv {
                endpoint: h(0),
                ptr: u(1),
                len: u(2),
            },
            Hypercall::QInfo => Call::QInfo {
                container: h(0),
                what: u(1),
            },
            Hypercall::QSubmit => Call::QSubmit {
                container: h(0),
                ptr: u(1),
                len: u(2),
                text: read(u(1), u(2), abi::MAX_Q_PROGRAM),
                shots: h(3),
                vector: u(4),
            },
            Hypercall::QWait => Call::QWait { job: h(0) },
            Hypercall::QResult => Call::QResult {
                job: h(0),
                ptr: u(1),
                len: u(2),
            },
            Hypercall::PhiWindow => {
                let (ptr, len) = (u(0), u(1));
                Call::PhiWindow {
                    ptr,
                    len,
                    spec: (len == abi::PHI_WINDOW_SPEC_LEN).then(|| read(ptr, len, len)),
                }
            }
            Hypercall::PhiExec => Call::PhiExec {
                window: h(0),
                ptr: u(1),
                len: u(2),
                text: read(u(1), u(2), abi::MAX_PHI_PROGRAM),
                out: u(3),
                out_len: u(4),
            },
            Hypercall::PhiFrame => Call::PhiFrame {
                window: h(0),
                ptr: u(1),
                len: u(2),
                name: read(u(1), u(2), MAX_FRAME_NAME),
                out: u(3),
            },
            Hypercall::PhiRelease => Call::PhiRelease { window: h(0) },
        }
    }

    /// The ABI call.
    pub fn hypercall(&self) -> Hypercall {
        match self {
            Call::Log { .. } => Hypercall::Log,
            Call::Exit { .. } => Hypercall::Exit,
            Call::Yield => Hypercall::Yield,
            Call::VcpuId => Hypercall::VcpuId,
            Call::VcpuCount => Hypercall::VcpuCount,
            Call::Time => Hypercall::Time,
            Call::Sleep { .. } => Hypercall::Sleep,
            Call::Random => Hypercall::Random,
            Call::TimerSet { .. } => Hypercall::TimerSet,
            Call::IrqSend { .. } => Hypercall::IrqSend,
            Call::CapDerive { .. } => Hypercall::CapDerive,
            Call::CapRevoke { .. } => Hypercall::CapRevoke,
            Call::CapDrop { .. } => Hypercall::CapDrop,
            Call::CapInfo { .. } => Hypercall::CapInfo,
            Call::CapFind { .. } => Hypercall::CapFind,
            Call::VhmSpawn { .. } => Hypercall::VhmSpawn,
            Call::VhmWait { .. } => Hypercall::VhmWait,
            Call::VhmKill { .. } => Hypercall::VhmKill,
            Call::PolicySet { .. } => Hypercall::PolicySet,
            Call::IpcChannel { .. } => Hypercall::IpcChannel,
            Call::IpcSend { .. } => Hypercall::IpcSend,
            Call::IpcRecv { .. } => Hypercall::IpcRecv,
            Call::QInfo { .. } => Hypercall::QInfo,
            Call::QSubmit { .. } => Hypercall::QSubmit,
            Call::QWait { .. } => Hypercall::QWait,
            Call::QResult { .. } => Hypercall::QResult,
            Call::PhiWindow { .. } => Hypercall::PhiWindow,
            Call::PhiExec { .. } => Hypercall::PhiExec,
            Call::PhiFrame { .. } => Hypercall::PhiFrame,
            Call::PhiRelease { .. } => Hypercall::PhiRelease,
        }
    }

    /// The trace record of the call as made, before anything it names is resolved: what a
    /// refusal records. (A call that succeeds may record more: the bytes `log` appended, the
    /// child's name, the frame's name.)
    // Long by design: one arm per hypercall of the ABI table, in its order.
    pub fn record(&self) -> HypercallRecord {
        match *self {
            Call::Log { ptr, len, .. } => HypercallRecord::Log {
                ptr,
                len,
                bytes: Vec::new(),
            },
            Call::Exit { code } => HypercallRecord::Exit { code },
            Call::Yield => HypercallRecord::Yield,
            Call::VcpuId => HypercallRecord::VcpuId,
            Call::VcpuCount => HypercallRecord::VcpuCount,
            Call::Time => HypercallRecord::Time,
            Call::Sleep { until } => HypercallRecord::Sleep {
                until_ns: until as u64,
            },
            Call::Random => HypercallRecord::Random,
            Call::TimerSet { period } => HypercallRecord::TimerSet {
                period_ns: period as u64,
            },
            Call::IrqSend { vcpu, vector, arg } => HypercallRecord::IrqSend { vcpu, vector, arg },
            Call::CapDerive {
                handle,
                rights,
                badge,
            } => HypercallRecord::CapDerive {
                handle,
                rights,
                badge,
            },
            Call::CapRevoke { handle } => HypercallRecord::CapRevoke { handle },
            Call::CapDrop { handle } => HypercallRecord::CapDrop { handle },
            Call::CapInfo { handle, .. } => HypercallRecord::CapInfo { handle },
            Call::CapFind { type_code, index } => HypercallRecord::CapFind { type_code, index },
            Call::VhmSpawn { .. } => HypercallRecord::VhmSpawn {
                name: String::new(),
            },
            Call::VhmWait { handle } => HypercallRecord::VhmWait { handle },
            Call::VhmKill { handle } => HypercallRecord::VhmKill { handle },
            Call::PolicySet { weight, flags } => HypercallRecord::PolicySet { weight, flags },
            Call::IpcChannel { capacity, .. } => HypercallRecord::IpcChannel { capacity },
            Call::IpcSend {
                endpoint,
                len,
                cap,
                flags,
                ..
            } => HypercallRecord::IpcSend {
                endpoint,
                len,
                cap,
                flags,
            },
            Call::IpcRecv { endpoint, len, .. } => HypercallRecord::IpcRecv { endpoint, len },
            Call::QInfo { container, what } => HypercallRecord::QInfo { container, what },
            Call::QSubmit {
                container,
                len,
                shots,
                vector,
                ..
            } => HypercallRecord::QSubmit {
                container,
                len,
                shots,
                vector,
            },
            Call::QWait { job } => HypercallRecord::QWait { job },
            Call::QResult { job, len, .. } => HypercallRecord::QResult { job, len },
            Call::PhiWindow { len, .. } => HypercallRecord::PhiWindow { len },
            Call::PhiExec {
                window,
                len,
                out_len,
                ..
            } => HypercallRecord::PhiExec {
                window,
                len,
                out_len,
            },
            Call::PhiFrame { window, .. } => HypercallRecord::PhiFrame {
                window,
                name: String::new(),
            },
            Call::PhiRelease { window } => HypercallRecord::PhiRelease { window },
        }
    }
}

/// Reads a spawn spec and what it points at.
fn spawn_read(ptr: u32, len: u32, read: &mut dyn FnMut(u32, u32, u32) -> Read) -> SpawnRead {
    let full = layout::size::<layout::SpawnSpecQ>();
    let want = if len >= full {
        full
    } else {
        layout::size::<layout::SpawnSpec>()
    };
    let spec = read(ptr, want, want);
    let Ok(bytes) = &spec else {
        return SpawnRead {
            spec,
            name: None,
            code: None,
            caps: None,
        };
    };
    use zerocopy::FromBytes;
    let (s, _) = layout::SpawnSpec::read_from_prefix(bytes).expect("88 bytes were read");
    let name = Some(read(s.name_ptr.get(), s.name_len.get(), MAX_NAME));
    let code = (s.module.get() == 0).then(|| read(s.code_ptr.get(), s.code_len.get(), MAX_CODE));
    let entry = layout::size::<layout::PassedCap>();
    let max = xdv_core::bounds::MAX_PASSED_CAPS as u32;
    let count = s.caps_count.get();
    let caps = (1..=max)
        .contains(&count)
        .then(|| read(s.caps_ptr.get(), count * entry, max * entry));
    SpawnRead {
        spec,
        name,
        code,
        caps,
    }
}
