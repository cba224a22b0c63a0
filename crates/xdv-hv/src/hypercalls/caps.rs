//! The capabilities group: derive, revoke, drop, inspect, find.

use super::Outcome;
use crate::state::State;
use crate::step::Effects;
use crate::HvError;
use xdv_core::cap::{CapError, Rights};
use xdv_core::event::RemoveCause;
use xdv_core::refusal::{HandleRole, Refusal};
use xdv_core::VhmId;
use xdv_k::abi;
use xdv_k::layout;
use xdv_k::Call;
use zerocopy::IntoBytes;

/// The ABI error code of a capability refusal.
pub(crate) fn cap_code(e: CapError) -> i64 {
    match e {
        CapError::BadHandle => abi::E_BADHANDLE,
        CapError::Rights | CapError::Badge => abi::E_PERM,
        CapError::WrongType => abi::E_TYPE,
        CapError::TableFull => abi::E_QUOTA,
    }
}

/// The code and refusal for `handle`, in `role`, refused by the capability space with `e`.
pub(crate) fn handle_refusal(role: HandleRole, handle: u64, e: CapError) -> (i64, Refusal) {
    let reason = Refusal::Handle {
        role,
        handle,
        error: e,
    };
    (cap_code(e), reason)
}

/// A refusal naming the call's target handle.
pub(crate) fn cap_refusal(record: xdv_core::HypercallRecord, handle: u64, e: CapError) -> Outcome {
    let (code, reason) = handle_refusal(HandleRole::Target, handle, e);
    Outcome::refused(record, code, reason)
}

impl State {
    /// The number inside one of the caller's own objects that `handle` names with `right`:
    /// `pick` gives it for an object of the wanted type belonging to the caller, `None` else.
    pub(super) fn own_number(
        &self,
        vhm: VhmId,
        handle: u64,
        right: xdv_core::cap::Rights,
        pick: impl Fn(&xdv_core::cap::Object, VhmId) -> Option<u32>,
    ) -> Result<u32, CapError> {
        let me = vhm;
        let n = self
            .caps
            .require(me, handle, right, |o| pick(o, me).is_some())?;
        Ok(pick(&n.object, me).expect("checked by require"))
    }

    // Long by design: one arm per capability hypercall, each the checks of docs/abi.md in their order.
    pub(super) fn cap_call(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let record = call.record();
        Ok(match call {
            Call::CapDerive {
                handle,
                rights,
                badge,
            } => {
                if badge > abi::MAX_BADGE {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::BadgeTooLarge { badge },
                    ));
                }
                if let Err(reason) = self.cap_room(vhm, 1, 0) {
                    return Ok(Outcome::refused(record, abi::E_QUOTA, reason));
                }
                match self
                    .caps
                    .derive(me, handle, Rights::from_bits_retain(rights), badge, me)
                {
                    Ok(cap) => {
                        self.record_cap(sink, vhm, cap, Some((me, xdv_core::CapId(handle))))?;
                        Outcome::ok(record, cap.0 as i64)
                    }
                    Err(e) => cap_refusal(record, handle, e),
                }
            }
            Call::CapRevoke { handle } => match self.caps.revoke(me, handle) {
                Ok(removed) => {
                    let n = removed.len() as i64;
                    self.record_removed(sink, vhm, RemoveCause::Revoke, removed)?;
                    Outcome::ok(record, n)
                }
                Err(e) => cap_refusal(record, handle, e),
            },
            Call::CapDrop { handle } => match self.caps.delete(me, handle) {
                Ok(()) => {
                    self.record_removed(
                        sink,
                        vhm,
                        RemoveCause::Drop,
                        vec![(me, xdv_core::CapId(handle))],
                    )?;
                    Outcome::ok(record, abi::OK)
                }
                Err(e) => cap_refusal(record, handle, e),
            },
            Call::CapInfo { handle, out } => {
                match self
                    .caps
                    .require(me, handle, xdv_core::cap::rights::INSPECT, |_| true)
                {
                    Ok(n) => {
                        let info = layout::CapInfo {
                            object_type: n.object.type_code().into(),
                            rights: n.rights.bits().into(),
                            badge: n.badge.into(),
                            number: self.caps.info_number(n).into(),
                        };
                        match self.write_guest(sink, vhm, vcpu, out, info.as_bytes()) {
                            Ok(()) => Outcome::ok(record, abi::OK),
                            Err((code, reason)) => Outcome::refused(record, code, reason),
                        }
                    }
                    Err(e) => cap_refusal(record, handle, e),
                }
            }
            Call::CapFind { type_code, index } => match self.caps.find(me, type_code, index) {
                Some(cap) => Outcome::ok(record, cap.0 as i64),
                // Not a bad call: enumeration ends here.
                None => Outcome::ok(record, abi::E_NOENT),
            },
            other => unreachable!("{:?} is not a capability call", other.hypercall()),
        })
    }
}
