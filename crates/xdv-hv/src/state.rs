//! The hypervisor state and its event loop.

use crate::cds::{Cds, Class, Target};
use crate::ipc::Channel;
use crate::modules::Loader;
use crate::phi::PhiHost;
use crate::q::QDevice;
use crate::step::{Await, Effect, Effects};
use crate::versioned::Versioned;
use crate::vhm::{Next, VcpuSlot, VcpuState, Vhm, Vhms, Wait};
use crate::HvError;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::Serialize;
use xdv_core::budget::{Budget, Quota};
use xdv_core::cap::{rights, CapSpace, Object};
use xdv_core::event::{Event, EventKind, ExitReason, FaultClass, RemoveCause};
use xdv_core::refusal::FaultDetail;
use xdv_core::{CapId, Domain, Hash32, Resource, VhmId};
use xdv_k::Stop;
use xdv_manifest::{HostSpec, LoadedModule, Manifest, VhmSpec};

/// How one VHM ended, for `xdv run`'s summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VhmSummary {
    /// VHM name.
    pub name: String,
    /// Parent VHM's name, for nested VHMs.
    pub parent: Option<String>,
    /// Privilege level.
    pub level: u8,
    /// Why it stopped.
    pub exit: String,
    /// Exit code: the `exit` argument, 0 when halted, -1 otherwise.
    pub code: i32,
    /// Fuel its own vCPUs consumed.
    pub fuel_used: u64,
    /// Virtual time at which it stopped.
    pub end_ns: u64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Per-VHM results in creation order.
    pub vhms: Vec<VhmSummary>,
    /// Events emitted.
    pub events: u64,
    /// Virtual time when the run ended.
    pub end_ns: u64,
}

/// The core's state: the host's VHMs, their capabilities, budgets and channels, Q containers and
/// jobs, Φ windows, the CDS queue and the clock, and what the core awaits from the edge. It holds
/// no engine and does no I/O: [`State::step`] is its one way forward. Cloning it forks the host.
#[derive(Clone)]
pub struct State {
    pub(crate) host: HostSpec,
    pub(crate) seed: u64,
    /// Guest modules: bytes by hash, compiled per (hash, entry), reference-counted.
    pub(crate) modules: crate::modules::Modules,
    /// Manifest VHMs with their module index, and extra module indices per VHM.
    pub(crate) specs: Vec<(VhmSpec, usize, Vec<usize>)>,
    pub(crate) manifest_channels: Vec<xdv_manifest::ChannelSpec>,
    pub(crate) vhms: Vhms,
    /// Names of every VHM created (names are never reused: a restarted child gets `name#2`).
    pub(crate) names: std::collections::BTreeSet<String>,
    /// The next `#n` suffix to try for each base name of a spawned child.
    pub(crate) next_suffix: std::collections::BTreeMap<String, u32>,
    /// Versioned, so the per-event check can skip it while no event changed it.
    pub(crate) caps: Versioned<CapSpace>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) cds: Cds,
    pub(crate) now: u64,
    pub(crate) events: u64,
    /// The host's Q devices (the built-in ones), in `xdv q providers` order.
    pub(crate) q_devices: Vec<QDevice>,
    /// How Q jobs' simulation work is charged: by the event schema the trace records.
    pub(crate) q_work: xdv_q::provider::WorkModel,
    /// Seed of measurement sampling.
    pub(crate) q_seed: u64,
    /// The host's Φ ports and windows.
    pub(crate) phi: PhiHost,
    /// What runs Φ transforms under the contract (the built-in executor today).
    pub(crate) phi_executor: std::sync::Arc<dyn xdv_phi::Executor>,
    /// Faults to inject, whether each has fired, and the VHM each targets.
    pub(crate) faults: Vec<xdv_manifest::FaultSpec>,
    pub(crate) fired: Vec<bool>,
    /// The smallest event count an unfired count-triggered fault waits for.
    pub(crate) next_counted_fault: u64,
    pub(crate) fault_targets: Vec<VhmId>,
    /// Check every invariant after every step (simulation testing).
    pub(crate) check_each_step: bool,
    /// The capability space's version when its check last passed.
    pub(crate) caps_passed: Option<u64>,
    /// Transforms each VHM has run, numbering them for `HostWork` records.
    pub(crate) phi_execs: std::collections::BTreeMap<VhmId, u64>,
    /// The answer the core waits for from the edge, if any.
    pub(crate) awaiting: Option<Await>,
    /// `Input::Start` was applied.
    pub(crate) started: bool,
    /// A queued event is being applied (the faults due at its count fire once it is done).
    pub(crate) in_event: bool,
    /// The run is over.
    pub(crate) done: bool,
    /// Tenants and the epoch of a service host (`xdv serve`); `None` for a run.
    pub(crate) service: Option<crate::service::Service>,
    /// Q programs and Φ transforms whose texts were handed to the trace, by hash: each distinct
    /// text is stored once.
    pub(crate) stored_texts: std::collections::BTreeSet<xdv_core::Hash32>,
}

/// A module error placed at the manifest line that names the module.
pub(crate) fn module_error(
    file: &str,
    key: &str,
    at: xdv_manifest::Location,
    module: &str,
    vhm: &str,
    e: xdv_k::KError,
) -> HvError {
    HvError::Module {
        place: format!("{file}:{}:{}: {key}", at.line, at.col),
        module: module.to_string(),
        vhm: vhm.to_string(),
        message: e.to_string(),
    }
}

/// Emits one event at the hypervisor's current time, counting it. Events are effects: the
/// sink's own failure (a full disk, a replay's divergence) reaches the driver that carries it.
pub(crate) fn emit(
    sink: &mut Effects,
    events: &mut u64,
    time_ns: u64,
    vhm: Option<VhmId>,
    kind: EventKind,
) {
    *events += 1;
    sink.push(Effect::Emit(Event { time_ns, vhm, kind }));
}

impl State {
    /// Hands the text of an admitted Q program or Φ transform to the trace, ahead of the event
    /// that names it by hash, the first time that text runs: the trace then holds what every VHM
    /// ran, for audit and `xdv trace plot`. It is stored beside the modules, by its hash.
    pub(crate) fn store_text(&mut self, sink: &mut Effects, hash: xdv_core::Hash32, text: &str) {
        assert_eq!(
            xdv_core::Hash32::of(text.as_bytes()),
            hash,
            "a text is stored under its hash"
        );
        if self.stored_texts.insert(hash) {
            sink.push(Effect::StoreModule {
                hash,
                bytes: text.as_bytes().to_vec(),
            });
        }
    }
}

/// The entry export of children spawned from a module capability or from bytes.
pub(crate) const CHILD_ENTRY: &str = "main";

impl State {
    /// The state of a host about to run `manifest`: its modules (those
    /// [`Manifest::load_modules`] returns) compiled by `loader` (each distinct module and entry
    /// once) and checked against the ABI, and instantiated once under each manifest VHM's memory
    /// limit, so that the core knows what creating those VHMs will do.
    ///
    /// # Errors
    ///
    /// [`HvError::Module`] for a module that is not given, does not compile or does not fit the
    /// ABI; [`HvError::Manifest`] for Q or Φ placements the host cannot make.
    // Long by design: one initialiser per field of the state, then the manifest's modules.
    pub fn new(
        manifest: &Manifest,
        modules: &[LoadedModule],
        seed: u64,
        loader: &mut dyn Loader,
    ) -> Result<Self, HvError> {
        let mut hv = Self {
            host: manifest.host.clone(),
            seed,
            modules: crate::modules::Modules::with_bytes(modules.iter().map(|m| m.bytes.clone())),
            specs: Vec::with_capacity(manifest.vhms.len()),
            manifest_channels: manifest.channels.clone(),
            vhms: Vhms::default(),
            names: Default::default(),
            next_suffix: Default::default(),
            caps: Versioned::default(),
            channels: Vec::new(),
            cds: Cds::default(),
            now: 0,
            events: 0,
            q_work: xdv_q::provider::WorkModel::default(),
            q_devices: xdv_q::provider::builtin_devices()
                .into_iter()
                .map(QDevice::new)
                .collect(),
            q_seed: manifest.host.q_seed.unwrap_or(seed),
            phi: PhiHost {
                table: xdv_phi::WindowTable::new(crate::phi::ports(&manifest.host.phi_ports)),
                held: Default::default(),
            },
            phi_executor: std::sync::Arc::new(xdv_phi::Builtin),
            faults: manifest.faults.clone(),
            fired: vec![false; manifest.faults.len()],
            next_counted_fault: 0,
            fault_targets: Vec::new(),
            check_each_step: false,
            caps_passed: None,
            phi_execs: Default::default(),
            awaiting: None,
            started: false,
            in_event: false,
            done: false,
            service: None,
            stored_texts: Default::default(),
        };
        let bytes_of = |name: &str| {
            modules
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.bytes.as_slice())
        };
        for (i, spec) in manifest.vhms.iter().enumerate() {
            let own = bytes_of(&spec.k.module).ok_or_else(|| HvError::Module {
                place: format!("{}: vhm[{i}].k.module", manifest.file),
                module: spec.k.module.clone(),
                vhm: spec.name.clone(),
                message: "module not loaded".into(),
            })?;
            let m = hv.compile(loader, own, &spec.k.entry).map_err(|e| {
                module_error(
                    &manifest.file,
                    &format!("vhm[{i}].k.module"),
                    spec.k.module_at,
                    &spec.k.module,
                    &spec.name,
                    e,
                )
            })?;
            let mut extra = Vec::new();
            for (j, (name, at)) in spec.k.modules.iter().enumerate() {
                let key = format!("vhm[{i}].k.modules[{j}]");
                let bytes = bytes_of(name).ok_or_else(|| HvError::Module {
                    place: format!("{}: {key}", manifest.file),
                    module: name.clone(),
                    vhm: spec.name.clone(),
                    message: "module not loaded".into(),
                })?;
                extra.push(
                    hv.compile(loader, bytes, CHILD_ENTRY).map_err(|e| {
                        module_error(&manifest.file, &key, *at, name, &spec.name, e)
                    })?,
                );
            }
            if hv.modules.instantiates(m, spec.k.memory_limit).is_none() {
                let result = loader.probe(m, spec.k.memory_limit);
                hv.modules.probed(m, spec.k.memory_limit, result);
            }
            // A restart may need a manifest module at any time: never reclaimed.
            hv.modules.pin(m);
            extra.iter().for_each(|&e| hv.modules.pin(e));
            hv.specs.push((spec.clone(), m, extra));
        }
        hv.check_q_placement(manifest)?;
        hv.check_phi_placement(manifest)?;
        Ok(hv)
    }

    /// Places every manifest VHM's Q container on a copy of the devices, in creation order (all
    /// manifest VHMs are created at time 0, so this is exactly what the run will do), and reports
    /// the first that does not fit at its place in the manifest.
    fn check_q_placement(&self, manifest: &Manifest) -> Result<(), HvError> {
        let mut allocs: Vec<_> = self.q_devices.iter().map(|d| d.alloc.clone()).collect();
        for (i, spec) in manifest.vhms.iter().enumerate() {
            let Some(q) = &spec.q else { continue };
            let (name, at) = &q.device;
            let err = |at: xdv_manifest::Location, key: &str, message: String| {
                HvError::Manifest(manifest.error_at(at, format!("vhm[{i}].q.{key}"), message))
            };
            let Some(d) = self.device_index(name) else {
                let known: Vec<&str> = self.q_devices.iter().map(|d| d.device().name).collect();
                return Err(err(
                    *at,
                    "device",
                    format!("no device {name:?}; the host has {}", known.join(", ")),
                ));
            };
            let pool = spec.parent.map(|p| p as u32);
            allocs[d]
                .allocate_in(i as u32, q.qubits as usize, pool)
                .map_err(|m| {
                    err(
                        q.qubits_at,
                        "qubits",
                        format!("{} qubits on {name}: {m}", q.qubits),
                    )
                })?;
        }
        Ok(())
    }

    /// The index of the device called `name`.
    pub(crate) fn device_index(&self, name: &str) -> Option<usize> {
        self.q_devices.iter().position(|d| d.device().name == name)
    }

    /// Checks every invariant ([`State::check_invariants`]) after every step; the run stops
    /// with [`HvError::Invariant`] at the first violation.
    pub fn check_every_step(&mut self, on: bool) {
        self.check_each_step = on;
    }

    /// Compiles a module once per (hash, entry) with `loader`; returns its index.
    fn compile(
        &mut self,
        loader: &mut dyn Loader,
        bytes: &[u8],
        entry: &str,
    ) -> Result<usize, xdv_k::KError> {
        let (i, compiled) = self.modules.lookup(&Hash32::of(bytes), entry);
        if !compiled {
            let has_irq = loader.compile(i, bytes, entry)?;
            self.modules.compiled(i, bytes, entry, has_irq);
        }
        Ok(i)
    }

    /// The manifest VHMs, with their module index.
    pub(crate) fn manifest_vhms(&self) -> impl Iterator<Item = (&VhmSpec, usize)> {
        self.specs.iter().map(|(s, m, _)| (s, *m))
    }

    /// Creates every manifest VHM at time 0 in manifest order (statically nested ones under
    /// their parents), then the manifest's channels, and queues the injected faults.
    pub(crate) fn start(&mut self, sink: &mut Effects) -> Result<(), HvError> {
        let roots = self
            .specs
            .iter()
            .filter(|(s, _, _)| s.parent.is_none())
            .count() as u32;
        emit(
            sink,
            &mut self.events,
            0,
            None,
            EventKind::HostStarted {
                seed: self.seed,
                vhms: roots,
            },
        );
        let mut ids = Vec::with_capacity(self.specs.len());
        for i in 0..self.specs.len() {
            let (spec, m, extra) = self.specs[i].clone();
            let quota = quota_of(&spec);
            let parent = spec.parent.map(|p| ids[p]);
            let (id, _) = self.create_vhm(sink, spec, m, parent, quota)?;
            // A VHM that failed to instantiate (only when `check_instantiation` was skipped)
            // has stopped, and a stopped VHM's table takes nothing.
            let extra = if self.vhms[id].running() {
                extra
            } else {
                Vec::new()
            };
            for e in extra {
                self.mint_module_cap(sink, id, e)?;
            }
            ids.push(id);
        }
        for c in self.manifest_channels.clone() {
            let ends = [ids[c.ends[0]], ids[c.ends[1]]];
            let channel = self.new_channel(sink, ends[0], c.capacity, ends)?;
            for (e, &holder) in ends.iter().enumerate() {
                if !self.vhms[holder].running() {
                    self.channels[channel as usize].ends[e].closed = true;
                    continue;
                }
                let r = rights::INSPECT
                    | rights::DERIVE
                    | rights::TRANSFER
                    | rights::SEND
                    | rights::RECV;
                self.mint(
                    sink,
                    holder,
                    Object::Endpoint(channel, e as u8),
                    r,
                    c.badges[e],
                )?;
            }
        }
        self.queue_injected_faults(&ids);
        self.fire_counted_faults(sink)?;
        Ok(())
    }

    /// Ends the run: every top-level VHM still running stops at the time limit.
    pub(crate) fn finish(&mut self, sink: &mut Effects) -> Result<(), HvError> {
        let mut stopped = 0;
        for v in self.vhms.ids() {
            if self.vhms[v].running() && self.vhms[v].parent.is_none() {
                stopped += 1;
                self.terminate(sink, v, ExitReason::TimeLimit)?;
            }
        }
        emit(
            sink,
            &mut self.events,
            self.now,
            None,
            EventKind::HostFinished { stopped },
        );
        Ok(())
    }

    /// How the run ended (so far), for `xdv run`'s summary.
    pub fn summary(&self) -> RunSummary {
        let vhms = self
            .vhms
            .iter()
            .map(|v| {
                let (reason, end) = v.exit.unwrap_or((ExitReason::TimeLimit, self.now));
                let code = match reason {
                    ExitReason::Exit(c) => c,
                    ExitReason::Halted => 0,
                    _ => -1,
                };
                VhmSummary {
                    name: v.name.clone(),
                    parent: v.parent.map(|p| self.vhms[p].name.clone()),
                    level: v.level,
                    exit: reason.to_string(),
                    code,
                    fuel_used: v.fuel_used,
                    end_ns: end,
                }
            })
            .collect();
        RunSummary {
            vhms,
            events: self.events,
            end_ns: self.now,
        }
    }

    /// Checks the hypervisor's invariants: the capability space's (no amplified rights, nothing
    /// dangling after revoke, tables consistent), every budget conserved, and every running VHM's
    /// carved quota equal to the sum of its live children's quotas. Returns the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.caps.check()?;
        self.check_beside_caps()
    }

    /// [`State::check_invariants`] after an event: the capability space's check, which depends
    /// on the space alone and is most of the cost, runs only when the space changed since it
    /// last passed.
    pub(crate) fn check_after_event(&mut self) -> Result<(), String> {
        let version = self.caps.version();
        if self.caps_passed != Some(version) {
            self.caps.check()?;
            self.caps_passed = Some(version);
        }
        self.check_beside_caps()
    }

    /// Every invariant but the capability space's own.
    fn check_beside_caps(&self) -> Result<(), String> {
        self.phi.table.check_invariants()?;
        for (w, h) in &self.phi.held {
            let v = &self.vhms[h.owner];
            if !v.running() || !v.windows.contains(w) {
                return Err(format!(
                    "window {w} is held by vhm{} which does not list it",
                    h.owner
                ));
            }
        }
        self.modules.check(
            self.vhms.iter().filter(|v| v.running()).map(|v| v.module),
            |hash| {
                self.vhms
                    .iter()
                    .any(|v| v.running() && v.loaded.contains_key(hash))
            },
        )?;
        self.check_footprint()?;
        self.check_tenants()?;
        for (id, v) in self.vhms.with_ids() {
            self.check_vhm(id, v)?;
        }
        Ok(())
    }

    /// The host footprint: what each running VHM's budget holds is exactly its queued (or
    /// parked) messages and the modules it loaded, and no stopped VHM still pays for a message.
    fn check_footprint(&self) -> Result<(), String> {
        let mut queued: std::collections::BTreeMap<VhmId, u64> = Default::default();
        for ch in &self.channels {
            for m in ch.ends.iter().flat_map(|e| &e.queue) {
                *queued.entry(m.sender).or_default() += m.cost();
            }
        }
        for v in self.vhms.iter() {
            for s in &v.vcpus {
                if let Some(Wait::Send { msg, .. }) = &s.wait {
                    *queued.entry(msg.sender).or_default() += msg.cost();
                }
            }
        }
        for (id, v) in self.vhms.with_ids() {
            if v.running() {
                let want = queued.get(&id).copied().unwrap_or(0) + v.loaded.values().sum::<u64>();
                let charge = self.cap_charge(id) + self.job_charge(id);
                if charge > v.budget.memory_left() {
                    return Err(format!(
                        "{id} ({}): its capability table and Q jobs hold {charge} charged bytes, over the {} its memory budget has left",
                        v.name,
                        v.budget.memory_left()
                    ));
                }
                if v.budget.held != want {
                    return Err(format!(
                        "{id} ({}): holds {} host bytes, but its messages and modules take {want}",
                        v.name, v.budget.held
                    ));
                }
            } else if queued.contains_key(&id) {
                return Err(format!(
                    "{id} ({}) stopped with messages still charged to it",
                    v.name
                ));
            }
        }
        Ok(())
    }

    /// One VHM's budget conserved; for a running one, its carved quota equal to its live
    /// children's, its Q container's decoherence budget and qubits, and its parent's link.
    fn check_vhm(&self, id: VhmId, v: &Vhm) -> Result<(), String> {
        if !v.budget.conserved() {
            return Err(format!(
                "{id} ({}): budget not conserved: {:?}",
                v.name, v.budget
            ));
        }
        if !v.running() {
            return Ok(());
        }
        let mut sum = Quota::default();
        for &c in &v.children {
            let q = self.vhms[c].quota;
            sum.vcpus += q.vcpus;
            sum.memory += q.memory;
            sum.fuel += q.fuel;
            sum.children += 1;
        }
        let carved = v.budget.carved;
        if (sum.vcpus, sum.memory, sum.fuel, sum.children)
            != (carved.vcpus, carved.memory, carved.fuel, carved.children)
        {
            return Err(format!(
                "{id} ({}): carved {carved:?} but its live children hold {sum:?}",
                v.name
            ));
        }
        if let Some(c) = &v.q {
            if !c.conserved() {
                return Err(format!(
                    "{id} ({}): decoherence budget not conserved: {} spent + {} lent > {}",
                    v.name, c.spent, c.carved, c.budget
                ));
            }
            let lent: u64 = v
                .children
                .iter()
                .filter_map(|&k| self.vhms[k].q.as_ref())
                .map(|k| k.budget)
                .sum();
            if lent != c.carved {
                return Err(format!(
                    "{id} ({}): {} µ lent but its live children hold {lent} µ",
                    v.name, c.carved
                ));
            }
            let alloc = &self.q_devices[c.device].alloc;
            for (l, &p) in c.physical.iter().enumerate() {
                let owner = alloc.owner_of(p).map(VhmId);
                let lent_to_child =
                    owner.is_some_and(|o| v.children.contains(&o) || self.descends(o, id));
                if owner != Some(id) && !lent_to_child {
                    return Err(format!(
                        "{id} ({}): logical qubit {l} (physical {p}) is held by {owner:?}",
                        v.name
                    ));
                }
            }
        }
        if let Some(p) = v.parent {
            if !self.vhms[p].children.contains(&(id)) {
                return Err(format!(
                    "{id} ({}) is missing from its parent's children",
                    v.name
                ));
            }
        }

        Ok(())
    }

    /// `true` when `vhm` is a descendant of `ancestor`.
    pub(crate) fn descends(&self, vhm: VhmId, ancestor: VhmId) -> bool {
        let mut at = self.vhms[vhm].parent;
        while let Some(p) = at {
            if p == ancestor {
                return true;
            }
            at = self.vhms[p].parent;
        }
        false
    }

    /// Puts a new root capability in `holder`'s table and records it.
    pub(crate) fn mint(
        &mut self,
        sink: &mut Effects,
        holder: VhmId,
        object: Object,
        r: xdv_core::cap::Rights,
        badge: u64,
    ) -> Result<CapId, HvError> {
        let cap = self.caps.mint(holder, object, r, badge);
        self.record_cap(sink, holder, cap, None)?;
        Ok(cap)
    }

    /// Records a capability just put in `holder`'s table (`from`: the source of a derivation).
    pub(crate) fn record_cap(
        &mut self,
        sink: &mut Effects,
        holder: VhmId,
        cap: CapId,
        from: Option<(VhmId, CapId)>,
    ) -> Result<(), HvError> {
        let n = self.caps.node(
            self.caps
                .resolve(holder, cap.0)
                .expect("the capability was just created"),
        );
        let (object, rights, badge) = (n.object, n.rights.bits(), n.badge);
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(holder),
            EventKind::CapCreated {
                cap,
                object,
                rights,
                badge,
                from,
            },
        );
        Ok(())
    }

    /// Records capabilities removed from any table, in `vhm`'s events (nothing when none were).
    pub(crate) fn record_removed(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        cause: RemoveCause,
        removed: Vec<(VhmId, CapId)>,
    ) -> Result<(), HvError> {
        if !removed.is_empty() {
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(vhm),
                EventKind::CapRemoved { cause, removed },
            );
        }
        Ok(())
    }

    /// Creates a channel anchored at `anchors` and records it in `creator`'s events.
    pub(crate) fn new_channel(
        &mut self,
        sink: &mut Effects,
        creator: VhmId,
        capacity: u32,
        anchors: [VhmId; 2],
    ) -> Result<u32, HvError> {
        let channel = self.channels.len() as u32;
        self.channels.push(Channel::new(capacity, anchors));
        // Each anchor numbers the channel in its own table, for cap_info and IPC interrupts.
        for (end, a) in anchors.into_iter().enumerate() {
            if self.vhms[a].running() {
                self.caps.anchor(a, channel);
                self.vhms[a].anchored_ends.push((channel, end as u8));
            }
        }
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(creator),
            EventKind::ChannelCreated { channel, capacity },
        );
        Ok(channel)
    }

    /// Creates a VHM at the current time: records it, carves its quota from its parent (if any),
    /// mints its budget, vCPU and module capabilities, allocates its K resources under them,
    /// instantiates each vCPU and queues its start. An instantiation failure faults the new VHM
    /// only. The caller has checked that the quota fits the parent's budget. Returns the new id and,
    /// for a child, the parent's handle on it.
    pub fn create_vhm(
        &mut self,
        sink: &mut Effects,
        mut spec: VhmSpec,
        module: usize,
        parent: Option<VhmId>,
        quota: Quota,
    ) -> Result<(VhmId, Option<CapId>), HvError> {
        let id = self.vhms.next_id();
        if let Some(p) = parent {
            self.carve_for(sink, p, id, &mut spec, &quota);
        }
        self.register_vhm(sink, spec, module, parent, quota);
        let mut parent_cap = None;
        if let Some(p) = parent {
            self.vhms[p].children.push(id);
            let r =
                rights::INSPECT | rights::DERIVE | rights::TRANSFER | rights::WAIT | rights::KILL;
            parent_cap = Some(self.mint(sink, p, Object::Vhm(id), r, 0)?);
        }
        self.allocate_k(sink, id, module)?;
        if let Some(q) = self.vhms[id].spec.q.clone() {
            self.place_container(sink, id, &q)?;
        }
        if !self.vhms[id].spec.phi.is_empty() {
            self.grant_spec_windows(sink, id)?;
        }
        self.start_vcpus(sink, id, module)?;
        Ok((id, parent_cap))
    }

    /// The child `id`'s effective policy (parent ∩ child) and its quota carved from parent `p`.
    fn carve_for(
        &mut self,
        sink: &mut Effects,
        p: VhmId,
        id: VhmId,
        spec: &mut VhmSpec,
        quota: &Quota,
    ) {
        let pp = &self.vhms[p].spec.policy;
        spec.policy.weight = spec.policy.weight.min(pp.weight);
        if pp.on_bad_hypercall == xdv_manifest::BadHypercallPolicy::Fault {
            spec.policy.on_bad_hypercall = xdv_manifest::BadHypercallPolicy::Fault;
        }
        spec.policy.create_channels &= pp.create_channels;
        self.vhms[p]
            .budget
            .carve(quota)
            .expect("the caller checked that the child's quota fits");
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(p),
            EventKind::Carved {
                child: id,
                quota: *quota,
            },
        );
    }

    /// Records the new VHM (`vhm_created`) and adds it to the table, its name and its
    /// capability space: no capability, resource or vCPU yet.
    fn register_vhm(
        &mut self,
        sink: &mut Effects,
        spec: VhmSpec,
        module: usize,
        parent: Option<VhmId>,
        quota: Quota,
    ) {
        let id = self.vhms.next_id();
        let level = parent.map_or(1, |p| self.vhms[p].level + 1);
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(id),
            EventKind::VhmCreated {
                name: spec.name.clone(),
                parent,
                level,
                weight: spec.policy.weight,
                module: self.modules.hash(module),
            },
        );
        self.names.insert(spec.name.clone());
        self.caps.register(id, &spec.name);
        let mut seed_material = Vec::with_capacity(16 + spec.name.len());
        seed_material.extend_from_slice(b"xdv-vhm-random");
        seed_material.extend_from_slice(&self.seed.to_le_bytes());
        seed_material.extend_from_slice(spec.name.as_bytes());
        self.vhms.push(Vhm {
            name: spec.name.clone(),
            parent,
            level,
            children: Vec::new(),
            quota,
            budget: Budget::new(quota, spec.k.vcpus, spec.k.memory_limit),
            vcpus: Vec::with_capacity(spec.k.vcpus as usize),
            allocations: Vec::with_capacity(2 + spec.k.vcpus as usize),
            fuel_used: 0,
            timer: None,
            timer_generation: 0,
            rng: ChaCha20Rng::from_seed(*blake3::hash(&seed_material).as_bytes()),
            exit: None,
            exit_waiters: Vec::new(),
            q: None,
            windows: Vec::new(),
            restarts: 0,
            loaded: Default::default(),
            anchored_ends: Vec::new(),
            sent_to: Default::default(),
            module,
            tenant: self.service.as_ref().and_then(|s| s.creating_for),
            spec,
        });
        self.modules.acquire(module);
    }

    /// Mints the VHM's budget, vCPU and module capabilities and allocates its K resources (fuel,
    /// memory, vCPUs) under them.
    fn allocate_k(&mut self, sink: &mut Effects, id: VhmId, module: usize) -> Result<(), HvError> {
        let now = self.now;
        let v = &self.vhms[id];
        let mut budget_rights = rights::INSPECT | rights::DERIVE;
        if v.quota.depth > 0 && v.quota.children > 0 && v.level < xdv_k::abi::MAX_LEVEL {
            budget_rights |= rights::SPAWN;
        }
        if v.spec.policy.create_channels {
            budget_rights |= rights::CHANNEL;
        }
        let (vcpus, memory_quota, fuel_quota) = (
            v.spec.k.vcpus,
            v.spec.policy.memory_quota,
            v.spec.policy.fuel_quota,
        );
        let budget_cap = self.mint(sink, id, Object::Budget(id), budget_rights, 0)?;
        let mut allocations = vec![
            (Resource::Fuel(fuel_quota), budget_cap),
            (Resource::Memory(memory_quota), budget_cap),
        ];
        for i in 0..vcpus {
            allocations.push((
                Resource::Vcpu(i),
                self.mint(sink, id, Object::Vcpu(id, i), rights::INSPECT, 0)?,
            ));
        }
        self.mint_module_cap(sink, id, module)?;
        for (resource, cap) in &allocations {
            emit(
                sink,
                &mut self.events,
                now,
                Some(id),
                EventKind::Allocated {
                    domain: Domain::K,
                    resource: *resource,
                    cap: *cap,
                },
            );
        }
        self.vhms[id].allocations = allocations;
        Ok(())
    }

    /// Gives `holder` a capability on module `module`: to inspect, derive, pass and spawn from.
    fn mint_module_cap(
        &mut self,
        sink: &mut Effects,
        holder: VhmId,
        module: usize,
    ) -> Result<CapId, HvError> {
        let hash = self.modules.hash(module);
        let r = rights::INSPECT | rights::DERIVE | rights::TRANSFER | rights::SPAWN;
        self.mint(sink, holder, Object::Module(hash), r, 0)
    }

    /// Has the edge instantiate the VHM's vCPUs and queues their start, or faults the VHM when
    /// its module does not instantiate under its memory limit.
    fn start_vcpus(&mut self, sink: &mut Effects, id: VhmId, module: usize) -> Result<(), HvError> {
        let now = self.now;
        let vcpus = self.vhms[id].spec.k.vcpus;
        let memory_limit = self.vhms[id].spec.k.memory_limit;
        let failure = match self.modules.instantiates(module, memory_limit) {
            Some(Ok(())) => {
                let v = &mut self.vhms[id];
                let has_irq = self.modules.has_irq(module);
                for _ in 0..vcpus {
                    v.vcpus.push(VcpuSlot {
                        has_irq,
                        in_irq: false,
                        memory: None,
                        min_fuel: 1,
                        answer: None,
                        state: VcpuState::Pending(Next::Start),
                        wait: None,
                        generation: 0,
                        anchor_time: now,
                        anchor_fuel: 0,
                        fuel: 0,
                        slice_used: 0,
                        ahead: 0,
                        irq_pending: 0,
                        irq_args: vec![0; v.spec.k.irq_vectors as usize],
                    });
                }
                sink.push(Effect::Instantiate {
                    vhm: id,
                    module,
                    memory_limit,
                    vcpus,
                });
                None
            }
            Some(Err(code)) => Some(code),
            None => panic!(
                "module {module} was never instantiated under {memory_limit} bytes: the builder \
                 and the spawn path probe every (module, limit) a VHM is created with"
            ),
        };
        if let Some(code) = failure {
            self.fault(
                sink,
                id,
                None,
                FaultClass::Trap,
                FaultDetail::Instantiation(code),
            )?;
        } else {
            for i in 0..vcpus {
                self.cds.push(
                    now,
                    Class::Start,
                    Target::Vcpu {
                        vhm: id,
                        vcpu: i,
                        generation: 0,
                    },
                );
            }
        }
        Ok(())
    }

    /// `true` when a queued event still applies: its VHM runs and nothing superseded it.
    pub(crate) fn is_live(&self, target: Target) -> bool {
        match target {
            Target::Timer { vhm, generation } => {
                let v = &self.vhms[vhm];
                v.running() && v.timer_generation == generation && v.timer.is_some()
            }
            Target::Inject { index, .. } => !self.fired[index as usize],
            Target::QJob { vhm, job } => {
                let v = &self.vhms[vhm];
                v.running()
                    && v.q
                        .as_ref()
                        .and_then(|c| c.jobs.get(&job))
                        .is_some_and(|j| !j.done)
            }
            Target::Vcpu {
                vhm,
                vcpu,
                generation,
            } => {
                let v = &self.vhms[vhm];
                v.running() && {
                    let s = &v.vcpus[vcpu as usize];
                    s.generation == generation
                        && matches!(s.state, VcpuState::Pending(_) | VcpuState::Parked)
                }
            }
        }
    }

    /// Applies one live queued event.
    pub(crate) fn apply(&mut self, sink: &mut Effects, target: Target) -> Result<(), HvError> {
        match target {
            Target::Timer { vhm, generation } => {
                let v = &mut self.vhms[vhm];
                let Some(t) = v.timer.as_mut() else {
                    return Ok(());
                };
                let slot = &v.vcpus[t.vcpu as usize];
                if slot.state == VcpuState::Halted {
                    // The timer belongs to the vCPU that armed it and stops when that vCPU halts.
                    v.timer = None;
                    return Ok(());
                }
                if slot.irq_pending & (1 << xdv_k::abi::TIMER_VECTOR) != 0 {
                    // The last tick is not delivered yet: coalesce, and re-arm at its delivery,
                    // so a guest that never takes its ticks costs the host nothing more.
                    t.suspended = true;
                    return Ok(());
                }
                let vcpu = t.vcpu;
                if let Err(e) = v.charge_host_work(xdv_k::abi::TIMER_TICK_FUEL) {
                    v.timer = None;
                    let detail = FaultDetail::TimerTick(e);
                    return self.fault(sink, vhm, Some(vcpu), FaultClass::FuelExhausted, detail);
                }
                let t = v.timer.as_mut().expect("checked above");
                t.ticks += 1;
                let (tick, last) = (t.ticks, t.next);
                self.arm_timer_after(vhm, generation, last);
                emit(
                    sink,
                    &mut self.events,
                    self.now,
                    Some(vhm),
                    EventKind::TimerFired { tick },
                );
                self.raise_irq(sink, vhm, vcpu, xdv_k::abi::TIMER_VECTOR, tick as i64)?;
            }
            Target::QJob { vhm, job } => self.complete_job(sink, vhm, job),
            Target::Inject { index, .. } => self.inject(sink, index as usize)?,
            Target::Vcpu { vhm, vcpu, .. } => {
                let slot = &mut self.vhms[vhm].vcpus[vcpu as usize];
                slot.ahead = 0;
                let next = match std::mem::replace(&mut slot.state, VcpuState::Running) {
                    VcpuState::Pending(next) => next,
                    // A parked vCPU's own queued event is its sleep deadline.
                    VcpuState::Parked => Next::Wake,
                    VcpuState::Halted | VcpuState::Running => {
                        unreachable!("is_live admits only pending or parked vCPUs")
                    }
                };
                self.handle(sink, vhm, vcpu, next)?;
            }
        }
        Ok(())
    }

    fn handle(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        next: Next,
    ) -> Result<(), HvError> {
        let now = self.now;
        match next {
            Next::Start => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::VcpuStarted { vcpu },
                );
                self.dispatch(sink, vhm, vcpu)
            }
            Next::Wake => self.wake(sink, vhm, vcpu),
            Next::FuelOut => {
                let quota = self.vhms[vhm].spec.policy.fuel_quota;
                let b = self.vhms[vhm].budget;
                let detail = FaultDetail::FuelUsedUp {
                    quota,
                    spent: b.fuel_spent,
                    carved: b.carved.fuel,
                };
                self.fault(sink, vhm, Some(vcpu), FaultClass::FuelExhausted, detail)
            }
            Next::Stopped(Stop::Preempted) => self.end_slice(sink, vhm, vcpu),
            Next::Stopped(Stop::Returned { from_irq: true }) => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::IrqReturned { vcpu },
                );
                self.dispatch(sink, vhm, vcpu)
            }
            Next::Stopped(Stop::Returned { from_irq: false }) => {
                emit(
                    sink,
                    &mut self.events,
                    now,
                    Some(vhm),
                    EventKind::VcpuHalted { vcpu },
                );
                let v = &mut self.vhms[vhm];
                v.vcpus[vcpu as usize].state = VcpuState::Halted;
                if v.vcpus.iter().all(|s| s.state == VcpuState::Halted) {
                    self.terminate(sink, vhm, ExitReason::Halted)?;
                }
                Ok(())
            }
            Next::Stopped(Stop::Trap(code)) => self.fault(
                sink,
                vhm,
                Some(vcpu),
                FaultClass::Trap,
                FaultDetail::Trap(code),
            ),
            Next::Stopped(Stop::Hypercall(request)) => {
                match xdv_k::Call::decode_pure(request.call, request.args) {
                    // Most calls are their arguments alone.
                    Some(call) => self.hypercall(sink, vhm, vcpu, call),
                    None => {
                        // What it passes in guest memory is read at the edge.
                        sink.push(Effect::DecodeHypercall { vhm, vcpu, request });
                        self.await_edge(Await::Call { vhm, vcpu });
                        Ok(())
                    }
                }
            }
        }
    }

    /// Parks a vCPU on `wait`. Sleeps queue their deadline; other waits are woken by whatever
    /// they wait for.
    pub(crate) fn park(&mut self, vhm: VhmId, vcpu: u32, wait: Wait) {
        let slot = &mut self.vhms[vhm].vcpus[vcpu as usize];
        slot.generation += 1;
        if let Wait::Sleep { until, .. } | Wait::Until { until, .. } = wait {
            self.cds.push(
                until,
                Class::Wake,
                Target::Vcpu {
                    vhm,
                    vcpu,
                    generation: slot.generation,
                },
            );
        }
        slot.state = VcpuState::Parked;
        slot.wait = Some(wait);
    }

    /// Queues the wake of a parked vCPU at the current time (what it waited for happened).
    pub(crate) fn wake_now(&mut self, vhm: VhmId, vcpu: u32) {
        let v = &mut self.vhms[vhm];
        if !v.running() {
            return;
        }
        let slot = &mut v.vcpus[vcpu as usize];
        if slot.state != VcpuState::Parked {
            return;
        }
        slot.generation += 1;
        slot.state = VcpuState::Pending(Next::Wake);
        self.cds.push(
            self.now,
            Class::Wake,
            Target::Vcpu {
                vhm,
                vcpu,
                generation: slot.generation,
            },
        );
    }

    /// Completes the wait of a woken vCPU, or parks it again if what it waits for is not there
    /// (another receiver took the message first).
    fn wake(&mut self, sink: &mut Effects, vhm: VhmId, vcpu: u32) -> Result<(), HvError> {
        let now = self.now;
        let slot = &mut self.vhms[vhm].vcpus[vcpu as usize];
        slot.anchor_time = now.max(slot.anchor_time);
        slot.anchor_fuel = slot.fuel;
        let wait = slot.wait.take().expect("a woken vCPU was waiting");
        let mut interrupted = false;
        let ret = match wait {
            Wait::Sleep { interrupted: i, .. } => {
                interrupted = i;
                i64::from(i)
            }
            Wait::QJob(_) => xdv_k::abi::OK,
            Wait::Until { ret, .. } => ret,
            Wait::Child(child) => {
                let (reason, _) = self.vhms[child].exit.expect("woken when the child stopped");
                reason.wait_value()
            }
            Wait::Recv(at) => match self.try_receive(sink, vhm, vcpu, at)? {
                Some(ret) => ret,
                None => {
                    self.register_waiter((vhm, vcpu), at.channel, at.end, false);
                    self.park(vhm, vcpu, Wait::Recv(at));
                    return Ok(());
                }
            },
            Wait::Send {
                channel,
                to_end,
                msg,
            } => match self.try_send(sink, vhm, vcpu, channel, to_end, msg)? {
                Ok(ret) => ret,
                Err(msg) => {
                    self.register_waiter((vhm, vcpu), channel, to_end, true);
                    let wait = Wait::Send {
                        channel,
                        to_end,
                        msg,
                    };
                    self.park(vhm, vcpu, wait);
                    return Ok(());
                }
            },
        };
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::VcpuWoken {
                vcpu,
                interrupted,
                ret,
            },
        );
        self.vhms[vhm].vcpus[vcpu as usize].answer = Some(ret);
        self.dispatch(sink, vhm, vcpu)
    }

    /// Ends the vCPU's slice (preemption or `yield`): records it and starts the next one.
    pub(crate) fn end_slice(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
    ) -> Result<(), HvError> {
        let fuel = std::mem::take(&mut self.vhms[vhm].vcpus[vcpu as usize].slice_used);
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::SliceEnded { vcpu, fuel },
        );
        self.dispatch(sink, vhm, vcpu)
    }

    /// The vCPU's clock, from its fuel total since the anchor and its VHM's weight.
    pub(crate) fn clock(&self, vhm: VhmId, vcpu: u32) -> u64 {
        let v = &self.vhms[vhm];
        let s = &v.vcpus[vcpu as usize];
        let ns = u128::from(s.fuel - s.anchor_fuel) * u128::from(self.host.ns_per_fuel)
            / u128::from(v.spec.policy.weight);
        // Saturates past the horizon: the run loop stops there.
        s.anchor_time
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
            .min(xdv_k::abi::TIME_HORIZON_NS + 1)
    }

    /// Runs a vCPU from the current time until its next stop ([`Effect::RunVcpu`]; the stop
    /// comes back to [`State::ran`]), or queues its fault when its budget cannot pay for the
    /// least it needs. Pending interrupts are delivered first (a deterministic point). Always the
    /// last thing a handler does: nothing happens between a run and its stop.
    pub(crate) fn dispatch(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
    ) -> Result<(), HvError> {
        let now = self.now;
        let v = &mut self.vhms[vhm];
        let slot = &mut v.vcpus[vcpu as usize];
        let mut irq = None;
        if slot.irq_pending != 0 && !slot.in_irq {
            let vector = slot.irq_pending.trailing_zeros();
            slot.irq_pending &= !(1 << vector);
            let arg = slot.irq_args[vector as usize];
            // A vector is raised only on a vCPU with a handler (`raise_irq`).
            assert!(slot.has_irq, "an interrupt is pending without a handler");
            slot.in_irq = true;
            // A fresh activation: its first instruction needs no more than one fuel.
            slot.min_fuel = 1;
            irq = Some((vector, arg));
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::IrqDelivered { vcpu, vector, arg },
            );
            if vector == xdv_k::abi::TIMER_VECTOR {
                self.rearm_timer(vhm);
            }
        }
        let v = &mut self.vhms[vhm];
        let fuel_left = v.budget.fuel_left();
        let slot = &mut v.vcpus[vcpu as usize];
        let slice_left = self.host.slice_fuel.saturating_sub(slot.slice_used).max(1);
        let need = slot.min_fuel;
        let budget = slice_left.max(need).min(fuel_left);
        if budget < need {
            // The VHM faults at its clock; its instance is never run again.
            self.queue_stop(vhm, vcpu, Next::FuelOut);
            return Ok(());
        }
        sink.push(Effect::RunVcpu {
            vhm,
            vcpu,
            answer: slot.answer.take(),
            irq,
            fuel: budget,
        });
        self.await_edge(Await::Run {
            vhm,
            vcpu,
            fuel: budget,
        });
        Ok(())
    }

    /// The vCPU that [`State::dispatch`] ran stopped after `used` fuel: it is charged, and its
    /// stop is queued at its new clock.
    pub(crate) fn ran(
        &mut self,
        vhm: VhmId,
        vcpu: u32,
        used: u64,
        stop: Stop,
        memory: Option<u64>,
        min_fuel: u64,
    ) {
        let v = &mut self.vhms[vhm];
        let slot = &mut v.vcpus[vcpu as usize];
        slot.memory = memory;
        slot.min_fuel = min_fuel;
        if matches!(stop, Stop::Returned { from_irq: true }) {
            slot.in_irq = false;
        }
        slot.fuel += used;
        slot.slice_used += used;
        slot.ahead = used;
        v.fuel_used += used;
        v.budget.spend(used);
        let next = match stop {
            Stop::Preempted if v.budget.fuel_left() == 0 => Next::FuelOut,
            stop => Next::Stopped(stop),
        };
        self.queue_stop(vhm, vcpu, next);
    }

    /// Queues what a vCPU does next at its clock.
    fn queue_stop(&mut self, vhm: VhmId, vcpu: u32, next: Next) {
        let class = match &next {
            Next::Start => Class::Start,
            Next::Wake => Class::Wake,
            Next::FuelOut | Next::Stopped(Stop::Trap(_)) => Class::Fault,
            Next::Stopped(Stop::Hypercall(_)) => Class::Hypercall,
            Next::Stopped(Stop::Returned { .. }) => Class::Returned,
            Next::Stopped(Stop::Preempted) => Class::SliceEnd,
        };
        let slot = &mut self.vhms[vhm].vcpus[vcpu as usize];
        let generation = slot.generation;
        slot.state = VcpuState::Pending(next);
        let at = self.clock(vhm, vcpu);
        self.cds.push(
            at,
            class,
            Target::Vcpu {
                vhm,
                vcpu,
                generation,
            },
        );
    }

    /// Re-arms a timer whose ticks were coalesced while one was pending, one period after now.
    fn rearm_timer(&mut self, vhm: VhmId) {
        let v = &mut self.vhms[vhm];
        let generation = v.timer_generation;
        let Some(t) = v.timer.as_mut().filter(|t| t.suspended) else {
            return;
        };
        t.suspended = false;
        self.arm_timer_after(vhm, generation, self.now);
    }

    /// Queues the VHM's next timer tick one period after `from`; a tick past the horizon is
    /// never queued, and the timer then ends.
    fn arm_timer_after(&mut self, vhm: VhmId, generation: u64, from: u64) {
        let v = &mut self.vhms[vhm];
        let Some(t) = v.timer.as_mut() else {
            return;
        };
        match from.checked_add(t.period) {
            Some(next) if next <= xdv_k::abi::TIME_HORIZON_NS => {
                t.next = next;
                self.cds
                    .push(next, Class::Timer, Target::Timer { vhm, generation });
            }
            _ => v.timer = None,
        }
    }

    /// Makes `vector` pending on a vCPU and cuts its sleep short. Dropped (and recorded) when the
    /// guest has no interrupt handler.
    pub(crate) fn raise_irq(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        vector: u32,
        arg: i64,
    ) -> Result<(), HvError> {
        let now = self.now;
        let v = &mut self.vhms[vhm];
        if !v.running() {
            return Ok(());
        }
        let slot = &mut v.vcpus[vcpu as usize];
        if slot.state == VcpuState::Halted {
            return Ok(());
        }
        if !slot.has_irq {
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::IrqDropped { vcpu, vector },
            );
            return Ok(());
        }
        slot.irq_pending |= 1 << vector;
        slot.irq_args[vector as usize] = arg;
        emit(
            sink,
            &mut self.events,
            now,
            Some(vhm),
            EventKind::IrqRaised { vcpu, vector, arg },
        );
        if let Some(Wait::Sleep { interrupted, .. }) = slot.wait.as_mut() {
            if slot.state == VcpuState::Parked {
                *interrupted = true;
                self.wake_now(vhm, vcpu);
            }
        }
        Ok(())
    }

    /// Records a fault and stops the VHM and its subtree.
    pub(crate) fn fault(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: Option<u32>,
        class: FaultClass,
        detail: FaultDetail,
    ) -> Result<(), HvError> {
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::Fault {
                class,
                vcpu,
                detail,
            },
        );
        self.terminate(sink, vhm, ExitReason::Fault(class))?;
        self.after_fault(sink, vhm, ExitReason::Fault(class))
    }

    /// Stops a VHM. In order: its children (reverse creation order, each with its own subtree);
    /// its vCPUs and timer; its resources (reverse allocation order); every capability it holds
    /// and every capability naming its objects; the channel ends anchored at it (queues dropped,
    /// waiters woken); its exit record; its quota back to its parent; vCPUs waiting on it woken.
    /// Nothing of any other VHM is touched except through those links.
    pub(crate) fn terminate(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        reason: ExitReason,
    ) -> Result<(), HvError> {
        debug_assert!(self.vhms[vhm].running(), "a VHM terminates once");
        for child in self.vhms[vhm].children.clone().into_iter().rev() {
            if self.vhms[child].running() {
                self.terminate(sink, child, ExitReason::Killed)?;
            }
        }
        let fuel_used = self.halt(sink, vhm, reason);
        self.release_container(sink, vhm)?;
        for w in self.vhms[vhm].windows.clone().into_iter().rev() {
            self.release_window(sink, w)?;
        }
        self.drop_holdings(sink, vhm)?;
        // Drop the instances: a stopped VHM keeps only its record.
        self.vhms[vhm].vcpus = Vec::new();
        sink.push(Effect::DropVcpus { vhm });
        self.release_module(sink, vhm)?;
        emit(
            sink,
            &mut self.events,
            self.now,
            Some(vhm),
            EventKind::VhmExited { reason, fuel_used },
        );
        self.give_back(sink, vhm);
        for (w, c) in self.vhms[vhm].exit_waiters.clone() {
            self.wake_now(w, c);
        }
        Ok(())
    }

    /// Stops the VHM's vCPUs and timer (fuel run ahead of the clock is not charged), records its
    /// exit and releases its K allocations in reverse order. Returns the fuel it used.
    fn halt(&mut self, sink: &mut Effects, vhm: VhmId, reason: ExitReason) -> u64 {
        let now = self.now;
        let v = &mut self.vhms[vhm];
        for s in &mut v.vcpus {
            s.state = VcpuState::Halted;
            s.generation += 1;
            s.wait = None;
            let ahead = std::mem::take(&mut s.ahead);
            v.fuel_used -= ahead;
            v.budget.refund(ahead);
        }
        v.timer = None;
        v.timer_generation += 1;
        v.exit = Some((reason, now));
        let fuel_used = v.fuel_used;
        let allocations = std::mem::take(&mut v.allocations);
        for (resource, cap) in allocations.iter().rev() {
            let used = matches!(resource, Resource::Fuel(_)).then_some(fuel_used);
            emit(
                sink,
                &mut self.events,
                now,
                Some(vhm),
                EventKind::Released {
                    domain: Domain::K,
                    resource: *resource,
                    cap: *cap,
                    used,
                },
            );
        }
        fuel_used
    }

    /// Removes every capability the VHM holds and every one naming its objects, closes the
    /// channel ends anchored at it, and lets go of every host byte held for it.
    fn drop_holdings(&mut self, sink: &mut Effects, vhm: VhmId) -> Result<(), HvError> {
        let me = vhm;
        // The VHM's own list, not a scan of every channel: stopping costs what it created.
        let anchored: Vec<(u32, u8)> = std::mem::take(&mut self.vhms[vhm].anchored_ends)
            .into_iter()
            .filter(|&(c, e)| !self.channels[c as usize].ends[e as usize].closed)
            .collect();
        // Handles on the VHM itself stay, so its parent can still wait for it (and learn how
        // it ended) until it drops them.
        let mut dead: Vec<Object> = vec![Object::Budget(me), Object::QContainer(me)];
        dead.extend((0..self.vhms[vhm].spec.k.vcpus).map(|i| Object::Vcpu(me, i)));
        dead.extend(anchored.iter().map(|&(c, e)| Object::Endpoint(c, e)));
        let removed = self.caps.purge(me, &dead);
        // Nothing is ever put in a stopped VHM's table: give its slots back.
        self.caps.unregister(me);
        self.record_removed(sink, vhm, RemoveCause::Stop, removed)?;
        for (channel, end) in anchored {
            self.close_end(sink, vhm, channel, end)?;
        }
        self.hand_over_sent(sink, vhm)?;
        // Everything the host held for the VHM is let go: its queued messages went to their
        // receivers or were dropped, a parked send's message went with its vCPU.
        let v = &mut self.vhms[vhm];
        v.budget.unhold(v.budget.held);
        v.loaded.clear();
        Ok(())
    }

    /// A module loaded at run time lives while a VHM runs it: when the last one stops, its
    /// code and bytes go, every capability naming it is destroyed, and the VHMs that loaded it
    /// stop paying for it.
    fn release_module(&mut self, sink: &mut Effects, vhm: VhmId) -> Result<(), HvError> {
        let module = self.vhms[vhm].module;
        self.modules.release(module);
        let hash = self.modules.hash(module);
        if !self.modules.unused(&hash) {
            return Ok(());
        }
        for module in self.modules.retire(&hash) {
            sink.push(Effect::RetireModule { module });
        }
        let removed = self.caps.destroy(&Object::Module(hash));
        self.record_removed(sink, vhm, RemoveCause::Stop, removed)?;
        for v in self.vhms.iter_mut().filter(|v| v.running()) {
            if let Some(footprint) = v.loaded.remove(&hash) {
                v.budget.unhold(footprint);
            }
        }
        Ok(())
    }

    /// The stopped VHM's quota goes back to its parent, if the parent still runs.
    fn give_back(&mut self, sink: &mut Effects, vhm: VhmId) {
        let v = &self.vhms[vhm];
        let (parent, quota, spent) = (v.parent, v.quota, v.budget.fuel_spent);
        let Some(p) = parent else {
            self.give_back_to_tenant(vhm);
            return;
        };
        let pv = &mut self.vhms[p];
        pv.children.retain(|&c| c != vhm);
        if pv.running() {
            pv.budget.give_back(&quota, spent);
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(p),
                EventKind::GivenBack {
                    child: vhm,
                    quota,
                    fuel_used: spent,
                },
            );
        }
    }
}

/// The quota of a manifest VHM, from its policy.
pub(crate) fn quota_of(spec: &VhmSpec) -> Quota {
    Quota {
        vcpus: spec.policy.max_vcpus,
        memory: spec.policy.memory_quota,
        fuel: spec.policy.fuel_quota,
        depth: spec.policy.max_depth,
        children: spec.policy.max_children,
    }
}
