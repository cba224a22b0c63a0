//! The Φ group: windows asked for at run time, transforms under their contract, frame read-outs.
//!
//! A transform is checked completely before it runs (`xdv_phi::exec`); a violation is a
//! recorded refusal naming the rule and the instruction, and changes nothing. A transform that
//! runs parks the caller until the transform's end on the virtual clock, so a guest never reads
//! captures of signals that have not happened yet.

use super::caps::cap_refusal;
use super::Pending;
use super::{bytes_of, read_refusal, text_of, Outcome};
use crate::state::{emit, State};
use crate::step::{Effect, Effects};
use crate::vhm::Wait;
use crate::HvError;
use std::collections::BTreeMap;
use xdv_core::cap::{rights, Object};
use xdv_core::event::{EventKind, HypercallRecord, WorkKind};
use xdv_core::refusal::{Buffer, Deadline, DecoherenceCause, Need, Refusal, Struct, Text};
use xdv_core::VhmId;
use xdv_k::abi::{self, PHI_WINDOW_SPEC_LEN};
use xdv_k::call::Read;
use xdv_k::layout;
use xdv_k::Call;
use zerocopy::{FromBytes, IntoBytes};

/// Bytes `phi_exec` writes per capture.
const CAPTURE_BYTES: u32 = layout::size::<layout::Capture>();
use xdv_phi::{Context, Freq, Program, WindowError, WindowSpec};

/// A `phi_exec` call's arguments.
struct Exec {
    window: u64,
    ptr: u32,
    len: u32,
    text: Read,
    out: u32,
    out_len: u32,
}

impl State {
    // Long by design: one arm per Φ hypercall, each the checks of docs/abi.md in their order.
    pub(super) fn phi_call(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let record = call.record();
        Ok(match call {
            Call::PhiWindow { ptr, len, spec } => {
                let Some(spec) = spec.filter(|_| len == PHI_WINDOW_SPEC_LEN) else {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::StructSize {
                            what: Struct::WindowSpec,
                            got: len,
                        },
                    ));
                };
                let b = match bytes_of(spec, ptr, len) {
                    Ok(b) => b,
                    Err((code, reason)) => return Ok(Outcome::refused(record, code, reason)),
                };
                let raw =
                    layout::WindowSpec::read_from_bytes(&b).expect("the spec's bytes were read");
                let (port, flags) = (raw.port.get(), raw.flags.get());
                if flags & !1 != 0 {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::UnknownFlags {
                            flags: u64::from(flags),
                        },
                    ));
                }
                if raw.reserved.get() != 0 {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::Reserved {
                            offset: std::mem::offset_of!(layout::WindowSpec, reserved) as u32,
                            value: u64::from(raw.reserved.get()),
                        },
                    ));
                }
                let spec = WindowSpec {
                    port,
                    t0: raw.t0.get(),
                    t1: raw.t1.get(),
                    band: (Freq(raw.band_lo.get()), Freq(raw.band_hi.get())),
                    max_amp: raw.max_amp.get(),
                    shared: flags & 1 != 0,
                };
                if !self.caps.has_room(me, 1) {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_QUOTA,
                        Refusal::CapTableFull,
                    ));
                }
                if let Err(reason) = self.cap_room(vhm, 1, 0) {
                    return Ok(Outcome::refused(record, abi::E_QUOTA, reason));
                }
                // A nested VHM's windows lie inside one of its parent's.
                let parent = match self.vhms[vhm].parent {
                    None => None,
                    Some(p) => {
                        let inside = crate::phi::containing(
                            &self.phi.table,
                            &self.vhms[p].windows,
                            spec.port,
                            spec.t0,
                            spec.t1,
                        );
                        match inside {
                            Some(w) => Some(w),
                            None => {
                                return Ok(Outcome::refused(
                                    record,
                                    abi::E_INVAL,
                                    Refusal::NoParentWindow {
                                        port: spec.port,
                                        t0: spec.t0,
                                        t1: spec.t1,
                                    },
                                ))
                            }
                        }
                    }
                };
                if spec.t1 > abi::TIME_HORIZON_NS {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::PastHorizon {
                            what: Deadline::WindowEnd,
                            at: spec.t1,
                        },
                    ));
                }
                // A top-level VHM's authority over the host's ports is its port-time quota; a
                // nested VHM's is the parent window it lies in (checked above).
                if parent.is_none() {
                    let v = &self.vhms[vhm];
                    let held: u64 = v
                        .windows
                        .iter()
                        .filter_map(|w| self.phi.table.get(*w))
                        .filter(|w| w.parent.is_none())
                        .fold(0u64, |sum, w| sum.saturating_add(w.spec.t1 - w.spec.t0));
                    let quota = v.spec.policy.phi_port_time;
                    let want = spec.t1.saturating_sub(spec.t0);
                    if want > quota.saturating_sub(held) {
                        return Ok(Outcome::refused(
                            record,
                            abi::E_PERM,
                            Refusal::Short {
                                need_for: Need::PortTime,
                                need: want,
                                left: quota.saturating_sub(held),
                            },
                        ));
                    }
                }
                if spec.t0 < self.now {
                    return Ok(Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::InThePast {
                            t0: spec.t0,
                            now: self.now,
                        },
                    ));
                }
                match self.grant_window(sink, vhm, spec, parent)? {
                    Ok(cap) => Outcome::ok(record, cap.0 as i64),
                    Err(e) => {
                        let code = match e {
                            WindowError::Conflict { .. } => abi::E_BUSY,
                            _ => abi::E_INVAL,
                        };
                        let reason = crate::phi::window_refusal(&e, spec.shared);
                        Outcome::refused(record, code, Refusal::Window(reason))
                    }
                }
            }
            Call::PhiExec {
                window,
                ptr,
                len,
                text,
                out,
                out_len,
            } => {
                let exec = Exec {
                    window,
                    ptr,
                    len,
                    text,
                    out,
                    out_len,
                };
                self.phi_exec(sink, vhm, vcpu, record, exec)?
            }
            Call::PhiFrame {
                window: handle,
                ptr,
                len,
                name,
                out,
            } => {
                let w = match self.window_of(vhm, handle, rights::INSPECT) {
                    Ok(w) => w,
                    Err(e) => return Ok(cap_refusal(record, handle, e)),
                };
                let name = match bytes_of(name, ptr, len) {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err((code, reason)) => return Ok(Outcome::refused(record, code, reason)),
                };
                let record = HypercallRecord::PhiFrame {
                    window: handle,
                    name: name.clone(),
                };
                let Some(f) = self.phi.held[&w].state.frames.get(&name).copied() else {
                    // Not a refusal: asking whether a frame exists is legitimate.
                    return Ok(Outcome::ok(record, abi::E_NOENT));
                };
                let info = layout::FrameInfo {
                    freq: f.freq.0.into(),
                    phase: f.phase.0.into(),
                    clock: f.clock.into(),
                    defined: u64::from(f.defined).into(),
                };
                if let Err((code, reason)) = self.write_guest(sink, vhm, vcpu, out, info.as_bytes())
                {
                    return Ok(Outcome::refused(record, code, reason));
                }
                Outcome::ok(record, abi::OK)
            }
            Call::PhiRelease { window: handle } => {
                let w = match self.window_of(vhm, handle, rights::SUBMIT) {
                    Ok(w) => w,
                    Err(e) => return Ok(cap_refusal(record, handle, e)),
                };
                self.release_window(sink, w)?;
                Outcome::ok(record, abi::OK)
            }
            other => unreachable!("{:?} is not in the Φ group", other.hypercall()),
        })
    }

    /// The window a handle of the caller names, with `right`.
    fn window_of(
        &self,
        vhm: VhmId,
        handle: u64,
        right: xdv_core::cap::Rights,
    ) -> Result<u32, xdv_core::cap::CapError> {
        self.own_number(vhm, handle, right, |o, me| match *o {
            Object::PhiWindow(v, w) if v == me => Some(w),
            _ => None,
        })
    }

    fn phi_exec(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        record: HypercallRecord,
        exec: Exec,
    ) -> Result<Outcome, HvError> {
        let Exec {
            window: handle,
            ptr,
            len,
            text,
            out,
            out_len,
        } = exec;
        let (w, program_hash, source, program, captures) =
            match self.exec_checks(vhm, vcpu, &record, (handle, ptr, len, text), (out, out_len)) {
                Ok(checked) => checked,
                Err(refused) => return Ok(*refused),
            };
        let now = self.now;
        let port = self.decohere_past_limit(sink, vhm, w);
        let (visible, delegated, max_samples) = self.exec_surroundings(vhm, w);
        let cx = Context {
            port: &port,
            visible: &visible,
            now,
            delegated: &delegated,
            max_samples,
        };
        let executor = std::sync::Arc::clone(&self.phi_executor);
        let v = &mut self.vhms[vhm];
        let state = &mut self.phi.held.get_mut(&w).expect("held").state;
        let exec = match executor.execute(&program, state, &cx, &mut v.rng) {
            Ok(e) => e,
            Err(violation) => {
                return Ok(Outcome::refused(
                    record,
                    abi::E_INVAL,
                    crate::phi::contract_refusal(&violation),
                ))
            }
        };
        let frames = touched_frames(&program, state);
        let caps: Vec<(i64, i64)> = exec.captures.iter().map(|(_, c)| (c.i, c.q)).collect();
        let n = self.phi_execs.entry(vhm).or_insert(0);
        let number = *n;
        *n += 1;
        let samples = exec.work;
        let sample_fuel = samples.div_ceil(abi::PHI_SAMPLES_PER_FUEL);
        // Captures are the transform's measured input: the driver may take them from a
        // recording (or a device), but only as many as the transform makes.
        self.store_text(sink, program_hash, &source);
        sink.push(Effect::MeasurePhi {
            vhm,
            computed: caps.clone(),
        });
        let pending = PhiPending {
            record: record.clone(),
            window: w,
            program: program_hash,
            start: exec.start,
            end: exec.end,
            frames,
            plays: exec.plays.len() as u32,
            computed: caps,
            samples,
            sample_fuel,
            number,
            dephased: exec.dephased,
            out,
            captures,
        };
        Ok(Outcome::awaiting(record, Pending::Phi(pending)))
    }
    /// What a transform in window `w` of `vhm` runs beside: the frames of the parent's window
    /// it may see, the intervals it delegated to children's windows, and the most samples it
    /// may generate.
    fn exec_surroundings(
        &self,
        vhm: VhmId,
        w: xdv_phi::WindowId,
    ) -> (BTreeMap<String, xdv_phi::Frame>, Vec<(u64, u64)>, u64) {
        let parent = self.phi.table.get(w).and_then(|x| x.parent);
        let visible: BTreeMap<String, xdv_phi::Frame> = parent
            .and_then(|p| self.phi.held.get(&p))
            .map(|h| h.state.frames.clone())
            .unwrap_or_default();
        let delegated: Vec<(u64, u64)> = self
            .phi
            .table
            .iter()
            .filter(|(_, x)| x.parent == Some(w))
            .map(|(_, x)| (x.spec.t0, x.spec.t1))
            .collect();
        // The samples the plays produce are host memory and work: at most what the VHM's
        // memory quota holds (16 bytes a sample) and its fuel pays for, checked before anything
        // is generated, and charged after.
        let v = &self.vhms[vhm];
        let max_samples = (v.quota.memory / abi::PHI_SAMPLE_BYTES)
            .min(
                v.budget
                    .fuel_left()
                    .saturating_mul(abi::PHI_SAMPLES_PER_FUEL),
            )
            .min(xdv_phi::exec::MAX_TRANSFORM_SAMPLES);
        (visible, delegated, max_samples)
    }

    /// `phi_exec`'s checks before anything runs: the window handle, the program text and its
    /// parse, the capture buffer's size and range. The window, the program's hash, the program
    /// and its number of captures, or the refusal.
    fn exec_checks(
        &self,
        vhm: VhmId,
        vcpu: u32,
        record: &HypercallRecord,
        (handle, ptr, len, text): (u64, u32, u32, Read),
        (out, out_len): (u32, u32),
    ) -> Result<(xdv_phi::WindowId, xdv_core::Hash32, String, Program, u32), Box<Outcome>> {
        let record = record.clone();
        let w = match self.window_of(vhm, handle, rights::SUBMIT) {
            Ok(w) => w,
            Err(e) => return Err(Box::new(cap_refusal(record, handle, e))),
        };
        let (program_hash, source) = match text_of(text, ptr, len, Text::Transform) {
            Ok(t) => t,
            Err((code, reason)) => return Err(Box::new(Outcome::refused(record, code, reason))),
        };
        // The label names no host-wide number: refusal reasons are the guest's to read.
        let program = match Program::parse(&source, "transform.phi") {
            Ok(p) => p,
            Err(e) => {
                let reason = Refusal::PhiProgram {
                    line: u32::try_from(e.line).unwrap_or(u32::MAX),
                    col: u32::try_from(e.col).unwrap_or(u32::MAX),
                };
                return Err(Box::new(Outcome::refused(record, abi::E_INVAL, reason)));
            }
        };
        let captures = program
            .stmts
            .iter()
            .filter(|(s, _)| matches!(s, xdv_phi::program::Stmt::Capture { .. }))
            .count() as u32;
        if u64::from(out_len) < u64::from(captures) * u64::from(CAPTURE_BYTES) {
            return Err(Box::new(Outcome::refused(
                record,
                abi::E_TOOBIG,
                Refusal::BufferTooSmall {
                    what: Buffer::Captures,
                    need: u64::from(captures) * u64::from(CAPTURE_BYTES),
                    have: u64::from(out_len),
                },
            )));
        }
        // Check the output range before anything runs (reading it changes nothing).
        if captures > 0 {
            let n = captures * CAPTURE_BYTES;
            let checked = self.check_guest(vhm, vcpu, out, n, out_len);
            if let Err(code) = checked {
                let (code, reason) = read_refusal(code, out, n);
                return Err(Box::new(Outcome::refused(record, code, reason)));
            }
        }
        Ok((w, program_hash, source, program, captures))
    }

    /// Past its port's coherence limit a window's frames lose their phases (recorded once).
    /// Returns the window's port.
    fn decohere_past_limit(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        w: xdv_phi::WindowId,
    ) -> xdv_phi::Port {
        let now = self.now;
        let held = &self.phi.held[&w];
        let (spec, since, decohered) = (
            held.state.spec,
            held.state.coherent_since,
            held.state.decohered,
        );
        let port = self.phi.table.ports()[spec.port as usize].clone();
        // Past the coherence limit the window's frames lose their phases.
        if now > since.saturating_add(port.t2_ns) && !decohered {
            self.phi.held.get_mut(&w).expect("held").state.decohere();
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::PhiDecohered {
                    window: w,
                    cause: DecoherenceCause::Limit {
                        elapsed: now - since,
                        t2: port.t2_ns,
                    },
                },
            );
        }
        port
    }

    /// Finishes `phi_exec` once its captures are measured (`given`; another length than the
    /// computed one is ignored): records the transform, charges its samples, writes the
    /// captures and returns their number (parked until the transform's end on the clock).
    pub(super) fn phi_measured(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        p: PhiPending,
        given: Vec<(i64, i64)>,
    ) -> Outcome {
        let now = self.now;
        let caps = if given.len() == p.computed.len() {
            given
        } else {
            p.computed
        };
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::PhiExecuted {
                vcpu,
                window: p.window,
                program: p.program,
                start: p.start,
                end: p.end,
                frames: p.frames,
                plays: p.plays,
                captures: caps.clone(),
            },
        );
        if p.samples > 0 {
            self.vhms[vhm]
                .charge_host_work(p.sample_fuel)
                .expect("the contract admitted only samples the fuel pays for");
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::HostWork {
                    work: WorkKind::PhiSamples {
                        transform: p.number,
                    },
                    units: p.samples,
                    fuel: p.sample_fuel,
                },
            );
        }
        if p.dephased {
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::PhiDecohered {
                    window: p.window,
                    cause: DecoherenceCause::Dephasing,
                },
            );
        }
        let out_captures: Vec<layout::Capture> = caps
            .iter()
            .map(|&(i, q)| layout::Capture {
                i: i.into(),
                q: q.into(),
            })
            .collect();
        self.write_guest(sink, vhm, vcpu, p.out, out_captures.as_bytes())
            .expect("range checked before the transform ran");
        let ret = i64::from(p.captures);
        if p.end > now {
            Outcome::park(p.record, Wait::Until { until: p.end, ret })
        } else {
            Outcome::ok(p.record, ret)
        }
    }
}

/// A `phi_exec` whose captures are being measured: what it records and returns once they are.
#[derive(Clone, Debug)]
pub(crate) struct PhiPending {
    record: HypercallRecord,
    window: xdv_phi::WindowId,
    program: xdv_core::Hash32,
    start: u64,
    end: u64,
    frames: Vec<(String, i64, u64, u64, bool)>,
    plays: u32,
    computed: Vec<(i64, i64)>,
    samples: u64,
    sample_fuel: u64,
    number: u64,
    dephased: bool,
    out: u32,
    captures: u32,
}

/// The frames a statement names.
fn frames_named(s: &xdv_phi::program::Stmt) -> Vec<&String> {
    use xdv_phi::program::Stmt::*;
    match s {
        NewFrame { name, .. } | CopyFrame { name, .. } => vec![name],
        Play { frame, .. }
        | Capture { frame, .. }
        | ShiftPhase { frame, .. }
        | SetPhase { frame, .. }
        | ShiftFrequency { frame, .. }
        | SetFrequency { frame, .. } => vec![frame],
        Delay { frames, .. } | Barrier { frames } => frames.iter().collect(),
    }
}

/// The frames `program` names, in name order, as the window's state holds them after it ran:
/// (name, frequency, phase, clock, defined).
fn touched_frames(
    program: &Program,
    state: &xdv_phi::WindowState,
) -> Vec<(String, i64, u64, u64, bool)> {
    let mut names: Vec<&String> = program
        .stmts
        .iter()
        .flat_map(|(s, _)| frames_named(s))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            state
                .frames
                .get(n)
                .map(|f| (n.clone(), f.freq.0, f.phase.0, f.clock, f.defined))
        })
        .collect()
}
