//! Hypercall handling.
//!
//! Each call is decoded from raw arguments, validated (a hostile guest may pass anything),
//! applied, and recorded as one `Hypercall` event carrying the value returned. A call refused for
//! bad arguments (a forged handle, missing rights, a pointer outside memory, over budget) is
//! preceded by a `Refused` event naming the reason, returns an ABI error code, and faults the VHM
//! when its policy says `on_bad_hypercall = "fault"`. One module per group of the ABI.

mod caps;
mod ipc;
mod lifecycle;
mod nesting;
mod phi;
mod q;

use crate::state::{emit, State};
use crate::step::{Await, Effect, Effects, Input};
use crate::vhm::Wait;
use crate::HvError;
use xdv_core::event::{EventKind, ExitReason, FaultClass, HypercallRecord};
use xdv_core::refusal::{FaultDetail, Refusal, Text};
use xdv_core::VhmId;
use xdv_k::abi;
use xdv_k::call::Read;
use xdv_k::Call;
use xdv_manifest::BadHypercallPolicy;

/// What the hypervisor does after recording the call.
pub(crate) enum After {
    /// Return `ret` to the guest and keep running.
    Resume,
    /// End the slice, then continue (yield).
    EndSlice,
    /// Park the vCPU; the return value comes when it wakes.
    Park(Wait),
    /// The VHM exits.
    Exit(i32),
    /// The handler needs an answer from the edge to finish (its effect is already out); the
    /// call is concluded when it comes ([`State::resume_call`]).
    Await(Box<Pending>),
}

/// A call waiting for the edge, with what its handler needs to finish.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    /// `phi_exec`: its captures, measured.
    Phi(phi::PhiPending),
    /// `vhm_spawn`: its module, compiled and probed.
    Spawn(Box<nesting::SpawnPending>),
}

/// The result of handling one call.
pub(crate) struct Outcome {
    pub(crate) record: HypercallRecord,
    pub(crate) ret: i64,
    /// Why the call was refused as bad, if it was.
    pub(crate) refusal: Option<Refusal>,
    pub(crate) after: After,
}

impl Outcome {
    /// A call that returns `ret`.
    pub(crate) fn ok(record: HypercallRecord, ret: i64) -> Self {
        Self {
            record,
            ret,
            refusal: None,
            after: After::Resume,
        }
    }
    /// A call refused with `code` for `reason`.
    pub(crate) fn refused(record: HypercallRecord, code: i64, reason: Refusal) -> Self {
        assert!(code < 0, "refusals return error codes");
        Self {
            record,
            ret: code,
            refusal: Some(reason),
            after: After::Resume,
        }
    }
    /// A call that waits for the edge's answer to `pending`.
    pub(crate) fn awaiting(record: HypercallRecord, pending: Pending) -> Self {
        Self {
            record,
            ret: abi::OK,
            refusal: None,
            after: After::Await(Box::new(pending)),
        }
    }
    /// A call that parks the vCPU.
    pub(crate) fn park(record: HypercallRecord, wait: Wait) -> Self {
        Self {
            record,
            ret: abi::OK,
            refusal: None,
            after: After::Park(wait),
        }
    }
}

impl State {
    pub(crate) fn hypercall(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<(), HvError> {
        let id = call.hypercall();
        let desc = id.desc();
        let level = self.vhms[vhm].level;
        let out = if level > desc.max_level {
            Outcome::refused(
                call.record(),
                abi::E_QUOTA,
                Refusal::Privilege {
                    level,
                    deepest: desc.max_level,
                },
            )
        } else {
            match desc.group {
                abi::Group::Lifecycle => self.lifecycle(sink, vhm, vcpu, call)?,
                abi::Group::Capabilities => self.cap_call(sink, vhm, vcpu, call)?,
                abi::Group::Nesting => self.nesting_call(sink, vhm, vcpu, call)?,
                abi::Group::Ipc => self.ipc_call(sink, vhm, vcpu, call)?,
                abi::Group::Q => self.q_call(sink, vhm, vcpu, call)?,
                abi::Group::Phi => self.phi_call(sink, vhm, vcpu, call)?,
            }
        };
        self.conclude(sink, vhm, vcpu, id, out)
    }

    /// Finishes a call that waited for the edge: `input` is the answer to its `pending`.
    pub(crate) fn resume_call(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        pending: Pending,
        input: Input,
    ) -> Result<Outcome, HvError> {
        match (pending, input) {
            (Pending::Phi(p), Input::PhiCaptured { vhm: v, captures }) if v == vhm => {
                Ok(self.phi_measured(sink, vhm, vcpu, p, captures))
            }
            (Pending::Spawn(p), Input::ModuleLoaded { module, result }) if module == p.module => {
                self.spawn_loaded(sink, vhm, *p, result)
            }
            (pending, input) => Err(HvError::Input(format!(
                "a call waits for the answer to {pending:?} and was given {input:?}"
            ))),
        }
    }

    /// Records a handled call (its refusal, if any, then the call and its value) and does what
    /// follows it: the policy's fault for a bad call, the exit, the park, or the next run.
    pub(crate) fn conclude(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        id: abi::Hypercall,
        out: Outcome,
    ) -> Result<(), HvError> {
        let now = self.now;
        let desc = id.desc();
        if let After::Await(pending) = out.after {
            assert!(out.refusal.is_none(), "a refused call waits for nothing");
            self.await_edge(Await::Resume {
                vhm,
                vcpu,
                call: id,
                pending,
            });
            return Ok(());
        }
        if let Some(reason) = &out.refusal {
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::Refused {
                    vcpu,
                    call: desc.name.to_string(),
                    reason: reason.clone(),
                },
            );
        }
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::Hypercall {
                vcpu,
                call: out.record,
                ret: out.ret,
            },
        );
        // The call may have stopped the caller (killing an ancestor through a transferred handle).
        if !self.vhms[vhm].running() {
            return Ok(());
        }
        if out.refusal.is_some()
            && self.vhms[vhm].spec.policy.on_bad_hypercall == BadHypercallPolicy::Fault
        {
            let detail = FaultDetail::BadHypercall {
                call: desc.name.to_string(),
                code: out.ret,
            };
            return self.fault(sink, vhm, Some(vcpu), FaultClass::BadHypercall, detail);
        }
        match out.after {
            After::Exit(code) => self.terminate(sink, vhm, ExitReason::Exit(code)),
            After::Park(wait) => {
                self.park(vhm, vcpu, wait);
                Ok(())
            }
            After::EndSlice => {
                self.vhms[vhm].vcpus[vcpu as usize].answer = Some(out.ret);
                self.end_slice(sink, vhm, vcpu)
            }
            After::Resume => {
                self.vhms[vhm].vcpus[vcpu as usize].answer = Some(out.ret);
                self.dispatch(sink, vhm, vcpu)
            }
            After::Await(_) => unreachable!("answered above"),
        }
    }

    /// Writes into the caller's memory ([`Effect::WriteGuest`]), or the refusal to return.
    /// The range is checked here against the memory the caller's last run left, as
    /// `GuestVcpu::write_guest` would: `E_NOMEM` without an exported memory, `E_FAULT` past
    /// its end.
    pub(crate) fn write_guest(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        ptr: u32,
        bytes: impl Into<Vec<u8>> + AsRef<[u8]>,
    ) -> Result<(), (i64, Refusal)> {
        let memory = self.vhms[vhm].vcpus[vcpu as usize].memory;
        let code = match memory {
            None => Some(abi::E_NOMEM),
            Some(size) if u64::from(ptr) + bytes.as_ref().len() as u64 > size => Some(abi::E_FAULT),
            Some(_) => None,
        };
        if let Some(code) = code {
            let reason = Refusal::GuestMemory {
                write: true,
                addr: ptr,
                len: u32::try_from(bytes.as_ref().len()).unwrap_or(u32::MAX),
                code,
            };
            return Err((code, reason));
        }
        sink.push(Effect::WriteGuest {
            vhm,
            vcpu,
            ptr,
            bytes: bytes.into(),
        });
        Ok(())
    }

    /// Checks `[ptr, ptr + len)` of the caller's memory for a later write, as
    /// `GuestVcpu::check_guest` would: `E_NOMEM` without an exported memory, `E_TOOBIG` over
    /// `max`, `E_FAULT` past its end.
    pub(crate) fn check_guest(
        &self,
        vhm: VhmId,
        vcpu: u32,
        ptr: u32,
        len: u32,
        max: u32,
    ) -> Result<(), i64> {
        let Some(size) = self.vhms[vhm].vcpus[vcpu as usize].memory else {
            return Err(abi::E_NOMEM);
        };
        if len > max {
            return Err(abi::E_TOOBIG);
        }
        if u64::from(ptr) + u64::from(len) > size {
            return Err(abi::E_FAULT);
        }
        Ok(())
    }
}

/// The refusal of a call whose read of `len` bytes at `ptr` failed with `code`.
pub(crate) fn read_refusal(code: i64, ptr: u32, len: u32) -> (i64, Refusal) {
    (
        code,
        Refusal::GuestMemory {
            write: false,
            addr: ptr,
            len,
            code,
        },
    )
}

/// What a call read at `ptr`, or the refusal to return.
pub(crate) fn bytes_of(read: Read, ptr: u32, len: u32) -> Result<Vec<u8>, (i64, Refusal)> {
    read.map_err(|code| read_refusal(code, ptr, len))
}

/// A program text a call read: its BLAKE3 hash (what the trace records) and the text, or the
/// refusal to return.
pub(crate) fn text_of(
    read: Read,
    ptr: u32,
    len: u32,
    what: Text,
) -> Result<(xdv_core::Hash32, String), (i64, Refusal)> {
    let bytes = bytes_of(read, ptr, len)?;
    let hash = xdv_core::Hash32::of(&bytes);
    String::from_utf8(bytes)
        .map(|text| (hash, text))
        .map_err(|_| (abi::E_INVAL, Refusal::NotUtf8 { what }))
}
