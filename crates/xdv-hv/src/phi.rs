//! The Φ domain inside the hypervisor: the host's ports and windows, each window's frames,
//! granting windows to VHMs and taking them back.

use crate::state::{emit, State};
use crate::step::Effects;
use crate::HvError;
use std::collections::BTreeMap;
use xdv_core::cap::{rights, Object};
use xdv_core::event::EventKind;
use xdv_core::refusal::{Refusal, ShareRule, WindowRefusal};
use xdv_core::{CapId, Domain, Resource, VhmId};
use xdv_manifest::{Manifest, PortSpec, WindowReq};
use xdv_phi::{Freq, Port, WindowError, WindowId, WindowSpec, WindowState, WindowTable};

/// A granted window: its holder, its frames and the capability it is held under.
#[derive(Clone)]
pub(crate) struct Held {
    pub(crate) owner: VhmId,
    pub(crate) cap: CapId,
    pub(crate) state: WindowState,
}

/// The host's Φ state.
#[derive(Default, Clone)]
pub(crate) struct PhiHost {
    pub(crate) table: WindowTable,
    pub(crate) held: BTreeMap<WindowId, Held>,
}

/// The host's ports, from the manifest.
/// A window refusal as the trace records it: the request's own terms only (`shared`: whether
/// the request asked for a share grant).
pub(crate) fn window_refusal(e: &WindowError, shared: bool) -> WindowRefusal {
    match *e {
        WindowError::NoPort(port) => WindowRefusal::NoPort { port },
        WindowError::Empty(t0, t1) => WindowRefusal::Empty { t0, t1 },
        WindowError::Alignment {
            t0,
            t1,
            granularity,
        } => WindowRefusal::Alignment {
            t0,
            t1,
            granularity,
        },
        WindowError::Band {
            lo,
            hi,
            outer_lo,
            outer_hi,
        } => WindowRefusal::Band {
            lo,
            hi,
            outer_lo,
            outer_hi,
        },
        WindowError::Amplitude(asked, allowed) => WindowRefusal::Amplitude { asked, allowed },
        WindowError::NoWindow(_) => WindowRefusal::ParentGone,
        WindowError::Outside { t0, t1, .. } => WindowRefusal::Outside { t0, t1 },
        WindowError::Conflict { port, t0, t1, .. } => WindowRefusal::Conflict {
            port,
            t0,
            t1,
            share: if shared {
                ShareRule::BandOverlap
            } else {
                ShareRule::NotShared
            },
        },
    }
}

/// A contract violation as the trace records it: the rule and the instruction's place.
pub(crate) fn contract_refusal(v: &xdv_phi::exec::Violation) -> Refusal {
    Refusal::PhiContract {
        rule: v.rule,
        line: u32::try_from(v.at.line).unwrap_or(u32::MAX),
        col: u32::try_from(v.at.col).unwrap_or(u32::MAX),
    }
}

/// The host's Φ ports, as the manifest's `host.phi_ports` describe them.
pub fn ports(specs: &[PortSpec]) -> Vec<Port> {
    specs
        .iter()
        .map(|p| Port {
            name: p.name.clone(),
            granularity_ns: p.granularity_ns,
            band: (Freq(p.band.0), Freq(p.band.1)),
            max_amp: p.max_amp_ppm,
            t2_ns: p.t2_ns,
        })
        .collect()
}

/// The first of `windows` on `port` whose interval contains `[t0, t1)`: the window a nested
/// VHM's request lies in.
pub(crate) fn containing(
    table: &WindowTable,
    windows: &[WindowId],
    port: u32,
    t0: u64,
    t1: u64,
) -> Option<WindowId> {
    windows.iter().copied().find(|&w| {
        table
            .get(w)
            .is_some_and(|w| w.spec.port == port && w.spec.t0 <= t0 && t1 <= w.spec.t1)
    })
}

/// The window spec a request asks for, inheriting band and cap from the parent window (or the
/// port) where it leaves them out; and the parent window: the first window of the parent VHM on
/// the same port that contains the interval.
pub(crate) fn resolve(
    table: &WindowTable,
    req: &WindowReq,
    parent_windows: &[WindowId],
) -> (WindowSpec, Option<WindowId>) {
    let port = req.port as u32;
    let parent = containing(table, parent_windows, port, req.t0, req.t1);
    let (band, cap) = match parent.and_then(|p| table.get(p)) {
        Some(w) => (w.spec.band, w.spec.max_amp),
        None => {
            let p = &table.ports()[req.port];
            (p.band, p.max_amp)
        }
    };
    let spec = WindowSpec {
        port,
        t0: req.t0,
        t1: req.t1,
        band: req
            .band
            .map(|(lo, hi)| (Freq(lo), Freq(hi)))
            .unwrap_or(band),
        max_amp: req.max_amp_ppm.unwrap_or(cap),
        shared: req.shared,
    };
    (spec, parent)
}

impl State {
    /// Grants every manifest VHM's windows on a copy of the table, in creation order, and
    /// reports the first refusal at its place in the manifest.
    pub(crate) fn check_phi_placement(&self, manifest: &Manifest) -> Result<(), HvError> {
        let mut table = self.phi.table.clone();
        let mut granted: Vec<Vec<WindowId>> = Vec::new();
        for (i, spec) in manifest.vhms.iter().enumerate() {
            let mut mine = Vec::new();
            for (j, req) in spec.phi.iter().enumerate() {
                let parent_windows = spec.parent.map(|p| granted[p].as_slice()).unwrap_or(&[]);
                let (ws, parent) = resolve(&table, req, parent_windows);
                if let (Some(pi), None) = (spec.parent, parent) {
                    return Err(HvError::Manifest(manifest.error_at(
                        req.at,
                        format!("vhm[{i}].phi.window[{j}]"),
                        format!(
                            "nesting: no window of the parent {:?} contains [{}, {}) on port {:?}",
                            manifest.vhms[pi].name,
                            req.t0,
                            req.t1,
                            table.ports()[req.port].name
                        ),
                    )));
                }
                let id = table.allocate(i as u32, ws, parent).map_err(|e| {
                    HvError::Manifest(manifest.error_at(
                        req.at,
                        format!("vhm[{i}].phi.window[{j}]"),
                        describe(&e, manifest),
                    ))
                })?;
                mine.push(id);
            }
            granted.push(mine);
        }
        Ok(())
    }

    /// Grants a window to `vhm` (nested in `parent` if given) and records it.
    pub(crate) fn grant_window(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        spec: WindowSpec,
        parent: Option<WindowId>,
    ) -> Result<Result<CapId, WindowError>, HvError> {
        let id = match self.phi.table.allocate(vhm.0, spec, parent) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::PhiWindowGranted {
                window: id,
                port: self.phi.table.ports()[spec.port as usize].name.clone(),
                t0: spec.t0,
                t1: spec.t1,
                band: (spec.band.0 .0, spec.band.1 .0),
                max_amp: spec.max_amp,
                shared: spec.shared,
                parent,
            },
        );
        let cap = self.mint(
            sink,
            vhm,
            Object::PhiWindow(vhm, id),
            rights::INSPECT | rights::DERIVE | rights::SUBMIT,
            0,
        )?;
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::Allocated {
                domain: Domain::Phi,
                resource: Resource::Window {
                    port: spec.port,
                    t0: spec.t0,
                    t1: spec.t1,
                },
                cap,
            },
        );
        self.phi.held.insert(
            id,
            Held {
                owner: vhm,
                cap,
                state: WindowState::new(spec),
            },
        );
        self.vhms[vhm].windows.push(id);
        Ok(Ok(cap))
    }

    /// `true` when the windows a service request's top-level VHM asks for can be granted now
    /// (tried on a copy of the window table).
    pub(crate) fn request_windows_fit(&self, spec: &xdv_manifest::VhmSpec) -> bool {
        if spec.phi.is_empty() {
            return true;
        }
        let mut table = self.phi.table.clone();
        spec.phi.iter().all(|req| {
            let (ws, _) = resolve(&table, req, &[]);
            table.allocate(u32::MAX, ws, None).is_ok()
        })
    }

    /// Grants a new VHM the windows its spec asks for (checked beforehand).
    pub(crate) fn grant_spec_windows(
        &mut self,
        sink: &mut Effects,
        id: VhmId,
    ) -> Result<(), HvError> {
        let reqs = self.vhms[id].spec.phi.clone();
        let parent_windows = self.vhms[id]
            .parent
            .map(|p| self.vhms[p].windows.clone())
            .unwrap_or_default();
        for req in &reqs {
            let (spec, parent) = resolve(&self.phi.table, req, &parent_windows);
            self.grant_window(sink, id, spec, parent)?
                .expect("manifest windows were checked before the run");
        }
        Ok(())
    }

    /// Takes a window back with the windows nested in it (deepest first): each is recorded as
    /// released; a parent window's frames are barriered to the end of its closing child.
    pub(crate) fn release_window(
        &mut self,
        sink: &mut Effects,
        id: WindowId,
    ) -> Result<(), HvError> {
        let parents: BTreeMap<WindowId, Option<WindowId>> =
            self.phi.table.iter().map(|(k, w)| (k, w.parent)).collect();
        for w in self.phi.table.release(id) {
            let Some(h) = self.phi.held.remove(&w) else {
                continue;
            };
            let spec = h.state.spec;
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(h.owner),
                EventKind::Released {
                    domain: Domain::Phi,
                    resource: Resource::Window {
                        port: spec.port,
                        t0: spec.t0,
                        t1: spec.t1,
                    },
                    cap: h.cap,
                    used: None,
                },
            );
            self.vhms[h.owner].windows.retain(|&x| x != w);
            let removed = self.caps.destroy(&Object::PhiWindow(h.owner, w));
            self.record_removed(sink, h.owner, xdv_core::event::RemoveCause::Stop, removed)?;
            let end = h.state.clock();
            if let Some(p) = parents.get(&w).copied().flatten() {
                if let Some(ph) = self.phi.held.get_mut(&p) {
                    if ph.state.clock() < end && !ph.state.frames.is_empty() {
                        ph.state.barrier_to(end);
                        let owner = ph.owner;
                        emit(
                            sink,
                            &mut self.events,
                            self.now,
                            Some(owner),
                            EventKind::PhiBarrier {
                                window: p,
                                at_ns: end,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// A window refusal in manifest terms (port names instead of indices).
fn describe(e: &WindowError, manifest: &Manifest) -> String {
    let s = e.to_string();
    match e {
        // Operators write the manifest and see all of it: name the other window's holder.
        WindowError::Conflict { owner, o0, o1, .. } => {
            let name = manifest
                .vhms
                .get(*owner as usize)
                .map(|v| v.name.as_str())
                .unwrap_or("?");
            format!("{s}: it overlaps [{o0}, {o1}) of {name:?}")
        }
        _ => s,
    }
}
