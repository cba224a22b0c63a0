//! The nesting group: spawn, wait, kill, policy.

use super::caps::{cap_refusal, handle_refusal};
use super::{bytes_of, read_refusal, Outcome, Pending};
use crate::modules::{MODULE_FOOTPRINT_FACTOR, MODULE_LOAD_FUEL_PER_BYTE};
use crate::state::{emit, State, CHILD_ENTRY};
use crate::step::{Effect, Effects, LoadRefusal, ModuleFacts};
use crate::vhm::Wait;
use crate::HvError;
use xdv_core::bounds;
use xdv_core::budget::Quota;
use xdv_core::cap::{rights, Object, Rights};
use xdv_core::event::{EventKind, ExitReason, HypercallRecord};
use xdv_core::refusal::{Arg, HandleRole, Need, QCarve, Refusal, SpawnPart, SpecRule, Struct};
use xdv_core::{Hash32, VhmId};
use xdv_k::abi;
use xdv_k::call::SpawnRead;
use xdv_k::layout;
use xdv_k::Call;
use xdv_manifest::{BadHypercallPolicy, KSpec, Location, PolicySpec, VhmSpec};
use zerocopy::FromBytes;

/// Size of the `vhm_spawn` spec (see docs/abi.md).
pub(crate) const SPAWN_SPEC_LEN: u32 = layout::size::<layout::SpawnSpec>();
/// Size of the spec with its Q part.
pub(crate) const SPAWN_SPEC_Q_LEN: u32 = layout::size::<layout::SpawnSpecQ>();
/// Most capabilities passed at spawn.
const MAX_PASSED_CAPS: u32 = bounds::MAX_PASSED_CAPS as u32;

/// The decoded `vhm_spawn` spec.
/// A spawn whose module is being compiled and probed at the edge: every check before it passed
/// and its fuel is paid.
#[derive(Clone, Debug)]
pub(crate) struct SpawnPending {
    record: HypercallRecord,
    /// The module's index (compiled under it once loaded).
    pub(super) module: usize,
    hash: Hash32,
    bytes: Vec<u8>,
    /// The module came as code (not a capability): its bytes go into the trace.
    from_code: bool,
    passed: Vec<Passed>,
    quota: Quota,
    /// Host bytes the module holds in the caller's budget.
    footprint: u64,
    child: VhmSpec,
}

struct SpawnSpec {
    budget: u64,
    module: u64,
    code: (u32, u32),
    name: (u32, u32),
    vcpus: u32,
    vcpu_quota: u32,
    memory_limit: u64,
    memory_quota: u64,
    fuel_quota: u64,
    weight: u32,
    flags: u32,
    max_depth: u32,
    max_children: u32,
    caps: (u32, u32),
    /// Qubits carved from the parent's container (0: no Q container) and their budget, µ.
    q: (u32, u32, u64),
}

/// A capability to pass at spawn: the caller's handle, the child's rights and badge.
type Passed = (u64, u32, u64);

/// A refusal to return: the ABI error code and why.
type Rejected = (i64, Refusal);

/// The child VHM a VHM capability names.
fn vhm_of(o: &Object) -> Option<VhmId> {
    match *o {
        Object::Vhm(v) => Some(v),
        _ => None,
    }
}

/// A refusal of one part of a spawn request.
fn part(part: SpawnPart, why: Refusal) -> Refusal {
    Refusal::Spawn {
        part,
        why: Box::new(why),
    }
}

impl SpawnSpec {
    /// Decodes the 88 or 104 bytes read (104 when the guest passed at least that many).
    fn decode(b: &[u8]) -> Self {
        let (s, q) = match layout::SpawnSpecQ::read_from_bytes(b) {
            Ok(full) => (
                full.spec,
                (
                    full.q_qubits.get(),
                    full.reserved.get(),
                    full.q_budget.get(),
                ),
            ),
            Err(_) => (
                layout::SpawnSpec::read_from_bytes(b).expect("the spec's 88 bytes were read"),
                (0, 0, 0),
            ),
        };
        Self {
            budget: s.budget.get(),
            module: s.module.get(),
            code: (s.code_ptr.get(), s.code_len.get()),
            name: (s.name_ptr.get(), s.name_len.get()),
            vcpus: s.vcpus.get(),
            vcpu_quota: s.vcpu_quota.get(),
            memory_limit: s.memory_limit.get(),
            memory_quota: s.memory_quota.get(),
            fuel_quota: s.fuel_quota.get(),
            weight: s.weight.get(),
            flags: s.flags.get(),
            max_depth: s.max_depth.get(),
            max_children: s.max_children.get(),
            caps: (s.caps_count.get(), s.caps_ptr.get()),
            q,
        }
    }

    /// Checks the numbers that do not depend on the parent.
    fn validate(&self) -> Result<(), Refusal> {
        let range = |arg, value: u64, min: i64, max: i64| {
            let v = i64::try_from(value).unwrap_or(i64::MAX);
            if v < min || v > max {
                Err(Refusal::OutOfRange {
                    arg,
                    value: v,
                    min,
                    max,
                })
            } else {
                Ok(())
            }
        };
        let bound = |r: &std::ops::RangeInclusive<u64>| (*r.start() as i64, *r.end() as i64);
        let (lo, hi) = bound(&bounds::VCPUS);
        range(Arg::Vcpus, u64::from(self.vcpus), lo, hi)?;
        if self.vcpu_quota < self.vcpus {
            return Err(Refusal::Spec(SpecRule::VcpuQuota {
                vcpu_quota: self.vcpu_quota,
                vcpus: self.vcpus,
            }));
        }
        let (lo, hi) = bound(&bounds::MEMORY_LIMIT_PAGES);
        if !bounds::memory_limit_ok(self.memory_limit) {
            // Not a whole number of pages counts as 0 pages.
            let pages = if self.memory_limit.is_multiple_of(bounds::WASM_PAGE) {
                self.memory_limit / bounds::WASM_PAGE
            } else {
                0
            };
            range(Arg::MemoryLimit, pages, lo, hi)?;
        }
        if self.memory_quota < u64::from(self.vcpus) * self.memory_limit {
            return Err(Refusal::Spec(SpecRule::MemoryQuota {
                memory_quota: self.memory_quota,
            }));
        }
        range(Arg::FuelQuota, self.fuel_quota, 1, i64::MAX)?;
        let (lo, hi) = bound(&bounds::WEIGHT);
        range(Arg::Weight, u64::from(self.weight), lo, hi)?;
        if self.flags & !0b11 != 0 {
            return Err(Refusal::UnknownFlags {
                flags: u64::from(self.flags),
            });
        }
        if self.q.1 != 0 {
            return Err(Refusal::Reserved {
                offset: 92,
                value: u64::from(self.q.1),
            });
        }
        range(
            Arg::QQubits,
            u64::from(self.q.0),
            0,
            *bounds::Q_QUBITS.end() as i64,
        )?;
        if self.q.0 > 0 && self.q.2 == 0 {
            return Err(Refusal::QCarve(QCarve::NoBudget));
        }
        range(
            Arg::PassedCaps,
            u64::from(self.caps.0),
            0,
            i64::from(MAX_PASSED_CAPS),
        )
    }

    fn quota(&self) -> Quota {
        Quota {
            vcpus: self.vcpu_quota,
            memory: self.memory_quota,
            fuel: self.fuel_quota,
            depth: self.max_depth,
            children: self.max_children,
        }
    }
}

impl State {
    // Long by design: one arm per nesting hypercall, each the checks of docs/abi.md in their order.
    pub(super) fn nesting_call(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        vcpu: u32,
        call: Call,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let record = call.record();
        Ok(match call {
            Call::VhmSpawn { ptr, len, read } => self.spawn(sink, vhm, (ptr, len), read)?,
            Call::VhmWait { handle } => {
                match self.caps.require_as(me, handle, rights::WAIT, vhm_of) {
                    Ok((child, _)) => match self.vhms[child].exit {
                        Some((reason, _)) => Outcome::ok(record, reason.wait_value()),
                        None => {
                            self.vhms[child].exit_waiters.push((vhm, vcpu));
                            Outcome::park(record, Wait::Child(child))
                        }
                    },
                    Err(e) => cap_refusal(record, handle, e),
                }
            }
            Call::VhmKill { handle } => {
                match self.caps.require_as(me, handle, rights::KILL, vhm_of) {
                    Ok((child, _)) => {
                        if self.vhms[child].running() {
                            self.terminate(sink, child, ExitReason::Killed)?;
                        }
                        Outcome::ok(record, abi::OK)
                    }
                    Err(e) => cap_refusal(record, handle, e),
                }
            }
            Call::PolicySet { weight, flags } => {
                let v = &self.vhms[vhm];
                if !v.children.is_empty() {
                    Outcome::refused(
                        record,
                        abi::E_BUSY,
                        Refusal::PolicyWithChildren {
                            children: v.children.len() as u32,
                        },
                    )
                } else if flags & !1 != 0 {
                    Outcome::refused(
                        record,
                        abi::E_INVAL,
                        Refusal::UnknownFlags {
                            flags: u64::from(flags),
                        },
                    )
                } else if weight > v.spec.policy.weight {
                    Outcome::refused(
                        record,
                        abi::E_PERM,
                        Refusal::PolicyLoosens {
                            weight,
                            current: v.spec.policy.weight,
                        },
                    )
                } else {
                    if weight > 0 && weight != v.spec.policy.weight {
                        // Re-anchor every vCPU at its clock under the old weight, so queued stops
                        // keep their times and later fuel counts at the new rate.
                        for i in 0..self.vhms[vhm].vcpus.len() as u32 {
                            let t = self.clock(vhm, i);
                            let s = &mut self.vhms[vhm].vcpus[i as usize];
                            s.anchor_time = t;
                            s.anchor_fuel = s.fuel;
                        }
                        self.vhms[vhm].spec.policy.weight = weight;
                    }
                    if flags & 1 != 0 {
                        self.vhms[vhm].spec.policy.on_bad_hypercall = BadHypercallPolicy::Fault;
                    }
                    Outcome::ok(record, abi::OK)
                }
            }
            other => unreachable!("{:?} is not a nesting call", other.hypercall()),
        })
    }

    /// `vhm_spawn`: the checks of `docs/abi.md` in their order, each phase a helper that gives
    /// the refusal to return; the child is created only once every check passed.
    fn spawn(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        (ptr, len): (u32, u32),
        read: Option<SpawnRead>,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let record = HypercallRecord::VhmSpawn {
            name: String::new(),
        };
        let refuse = |record: HypercallRecord, (code, reason): (i64, Refusal)| {
            Ok(Outcome::refused(record, code, reason))
        };
        let Some(read) = read.filter(|_| len >= SPAWN_SPEC_LEN) else {
            let reason = Refusal::StructSize {
                what: Struct::SpawnSpec,
                got: len,
            };
            return refuse(record, (abi::E_INVAL, reason));
        };
        let spec = match self.spawn_spec(me, ptr, len, read.spec) {
            Ok(s) => s,
            Err(r) => return refuse(record, r),
        };
        let name_read = read.name.expect("a spec that was read has its name read");
        let name = match self.child_name(vhm, &spec, name_read) {
            Ok(n) => n,
            Err(r) => return refuse(record, r),
        };
        let record = HypercallRecord::VhmSpawn { name: name.clone() };
        let (hash, bytes, from_code) = match self.spawn_module(me, &spec, read.code) {
            Ok(m) => m,
            Err(r) => return refuse(record, r),
        };
        let passed = match self.passed_caps(me, &spec, read.caps) {
            Ok(p) => p,
            Err(r) => return refuse(record, r),
        };
        let quota = spec.quota();
        if let Err(r) = self.spawn_room(vhm, &spec, &quota) {
            return refuse(record, r);
        }
        let footprint = match self.charge_module(vhm, &hash, &bytes, &quota) {
            Ok(f) => f,
            Err(r) => return refuse(record, r),
        };
        let (module, compiled) = self.modules.lookup(&hash, CHILD_ENTRY);
        let child = self.child_spec(vhm, &spec, name, &hash);
        let memory_limit = child.k.memory_limit;
        let pending = SpawnPending {
            record,
            module,
            hash,
            bytes,
            from_code,
            passed,
            quota,
            footprint,
            child,
        };
        if compiled {
            if let Some(instantiates) = self.modules.instantiates(module, memory_limit) {
                let has_irq = self.modules.has_irq(module);
                let facts = ModuleFacts {
                    has_irq,
                    instantiates,
                };
                return self.spawn_loaded(sink, vhm, pending, Ok(facts));
            }
        }
        // Compiling and instantiating happen at the edge; the fuel for them is already paid.
        sink.push(Effect::LoadModule {
            module,
            bytes: pending.bytes.clone(),
            entry: CHILD_ENTRY,
            memory_limit,
        });
        let record = pending.record.clone();
        Ok(Outcome::awaiting(record, Pending::Spawn(Box::new(pending))))
    }

    /// Step 9 onwards, once the module is compiled and probed (`loaded`): the refusal of a
    /// module that does not compile, else the child created and the passed capabilities moved.
    pub(super) fn spawn_loaded(
        &mut self,
        sink: &mut Effects,
        vhm: VhmId,
        p: SpawnPending,
        loaded: Result<ModuleFacts, LoadRefusal>,
    ) -> Result<Outcome, HvError> {
        let me = vhm;
        let facts = match loaded {
            Ok(f) => f,
            Err(LoadRefusal { abi }) => {
                let reason = part(SpawnPart::Code, Refusal::Module { abi });
                return Ok(Outcome::refused(p.record, abi::E_INVAL, reason));
            }
        };
        let module = p.module;
        self.modules
            .compiled(module, &p.bytes, CHILD_ENTRY, facts.has_irq);
        self.modules
            .probed(module, p.child.k.memory_limit, facts.instantiates);
        if p.footprint > 0 {
            let v = &mut self.vhms[vhm];
            v.budget
                .hold(p.footprint)
                .expect("checked by charge_module");
            v.loaded.insert(p.hash, p.footprint);
        }
        if p.from_code {
            sink.push(Effect::StoreModule {
                hash: p.hash,
                bytes: p.bytes.clone(),
            });
            emit(
                sink,
                &mut self.events,
                self.now,
                Some(vhm),
                EventKind::ModuleLoaded {
                    hash: p.hash,
                    size: p.bytes.len() as u64,
                },
            );
        }
        let (id, handle) = self.create_vhm(sink, p.child, module, Some(vhm), p.quota)?;
        let handle = handle.expect("create_vhm mints the parent's handle");
        for (h, r, badge) in p.passed {
            if !self.vhms[id].running() {
                break;
            }
            let cap = self
                .caps
                .transfer(me, h, Rights::from_bits_retain(r), badge, id)
                .expect("checked before the child was created");
            self.record_cap(sink, id, cap, Some((me, xdv_core::CapId(h))))?;
        }
        Ok(Outcome::ok(p.record, handle.0 as i64))
    }

    /// Steps 1–3: the spec read, its numbers, and the caller's own budget with `spawn`.
    fn spawn_spec(
        &self,
        me: VhmId,
        ptr: u32,
        len: u32,
        read: xdv_k::call::Read,
    ) -> Result<SpawnSpec, (i64, Refusal)> {
        let want = if len >= SPAWN_SPEC_Q_LEN {
            SPAWN_SPEC_Q_LEN
        } else {
            SPAWN_SPEC_LEN
        };
        let raw = read.map_err(|code| read_refusal(code, ptr, want))?;
        let spec = SpawnSpec::decode(&raw);
        spec.validate().map_err(|reason| (abi::E_INVAL, reason))?;
        self.caps
            .require(me, spec.budget, rights::SPAWN, |o| *o == Object::Budget(me))
            .map_err(|e| handle_refusal(HandleRole::Budget, spec.budget, e))?;
        Ok(spec)
    }

    /// Step 4: the child's short name, read and checked; its full, unique name.
    fn child_name(
        &mut self,
        vhm: VhmId,
        spec: &SpawnSpec,
        read: xdv_k::call::Read,
    ) -> Result<String, (i64, Refusal)> {
        let (code_of, reason_of) = match bytes_of(read, spec.name.0, spec.name.1) {
            Ok(b) => {
                let short = String::from_utf8(b).unwrap_or_default();
                let valid = !short.is_empty()
                    && short
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !valid {
                    return Err((abi::E_INVAL, Refusal::BadName));
                }
                return Ok(self.unique_name(&format!("{}/{short}", self.vhms[vhm].name)));
            }
            Err(r) => r,
        };
        Err((code_of, part(SpawnPart::Name, reason_of)))
    }

    /// Step 5: the module, by capability or as bytes from the caller's memory: its hash, its
    /// bytes and whether it came as bytes.
    fn spawn_module(
        &self,
        me: VhmId,
        spec: &SpawnSpec,
        code: Option<xdv_k::call::Read>,
    ) -> Result<(Hash32, Vec<u8>, bool), (i64, Refusal)> {
        if spec.module == 0 {
            let code = code.expect("a spec without a module handle has its code read");
            let bytes = bytes_of(code, spec.code.0, spec.code.1)
                .map_err(|(c, r)| (c, part(SpawnPart::Code, r)))?;
            return Ok((Hash32::of(&bytes), bytes, true));
        }
        let module_of = |o: &Object| match *o {
            Object::Module(h) => Some(h),
            _ => None,
        };
        let (hash, _) = self
            .caps
            .require_as(me, spec.module, rights::SPAWN, module_of)
            .map_err(|e| handle_refusal(HandleRole::Module, spec.module, e))?;
        let bytes = self
            .modules
            .bytes(&hash)
            .expect("every module capability names stored bytes")
            .to_vec();
        Ok((hash, bytes, false))
    }

    /// Step 6: the capabilities to pass, each held with `transfer` and asked rights ⊆ held.
    fn passed_caps(
        &self,
        me: VhmId,
        spec: &SpawnSpec,
        caps: Option<xdv_k::call::Read>,
    ) -> Result<Vec<Passed>, Rejected> {
        let mut passed = Vec::with_capacity(spec.caps.0 as usize);
        if spec.caps.0 == 0 {
            return Ok(passed);
        }
        let caps = caps.expect("a spec passing 1 to 16 capabilities has them read");
        let size = spec.caps.0 * layout::size::<layout::PassedCap>();
        let table =
            bytes_of(caps, spec.caps.1, size).map_err(|(c, r)| (c, part(SpawnPart::Caps, r)))?;
        let entries = <[layout::PassedCap]>::ref_from_bytes(&table)
            .expect("the table read is a whole number of entries");
        for (i, c) in (0u32..).zip(entries) {
            let (h, r, badge) = (c.handle.get(), c.rights.get(), c.badge.get());
            if badge > abi::MAX_BADGE {
                return Err((abi::E_INVAL, Refusal::PassedBadge { index: i, badge }));
            }
            let asked = Rights::from_bits_retain(r);
            if let Err(e) = self
                .caps
                .can_derive(me, h, asked, badge, me, rights::TRANSFER)
            {
                return Err(handle_refusal(HandleRole::Passed(i), h, e));
            }
            passed.push((h, r, badge));
        }
        Ok(passed)
    }

    /// Step 7: room for the child: a privilege level below, a capability slot and its bytes,
    /// the child's memory beside what the host holds, its quota carved, its Q container.
    fn spawn_room(
        &self,
        vhm: VhmId,
        spec: &SpawnSpec,
        quota: &Quota,
    ) -> Result<(), (i64, Refusal)> {
        let me = vhm;
        if level_after(self.vhms[vhm].level) > xdv_k::abi::MAX_LEVEL {
            return Err((abi::E_QUOTA, Refusal::DeepestLevel));
        }
        if !self.caps.has_room(me, 1) {
            return Err((abi::E_QUOTA, Refusal::CapTableFull));
        }
        self.cap_room(vhm, 1, 0).map_err(|r| (abi::E_QUOTA, r))?;
        // The child's memory comes out of what is left once the parent's handle on it is held.
        let free = self
            .memory_free(vhm)
            .saturating_sub(self.cap_growth(vhm, 1, 0));
        if quota.memory > free {
            let reason = Refusal::Short {
                need_for: Need::ChildMemory,
                need: quota.memory,
                left: free,
            };
            return Err((abi::E_QUOTA, reason));
        }
        self.vhms[vhm]
            .budget
            .can_carve(quota)
            .map_err(|e| (abi::E_QUOTA, Refusal::Carve(e)))?;
        if spec.q.0 > 0 {
            self.q_fits(vhm, spec.q.0, spec.q.2).map_err(|reason| {
                let why = part(
                    SpawnPart::QContainer { qubits: spec.q.0 },
                    Refusal::QCarve(reason),
                );
                (abi::E_QUOTA, why)
            })?;
        }
        Ok(())
    }

    /// Step 8, before compiling, so that a refused spawn compiles nothing. A module loaded at run
    /// time is host work and host memory, charged to the caller before it is compiled: fuel for
    /// validating and compiling it, on every spawn from it (whatever other VHMs did), and its
    /// footprint held in the caller's memory budget once per distinct module, while a VHM runs
    /// it. Both must fit beside the child's quota, which is carved right after. Manifest
    /// modules are the host's. Charges the fuel; returns the footprint to hold.
    fn charge_module(
        &mut self,
        vhm: VhmId,
        hash: &Hash32,
        bytes: &[u8],
        quota: &Quota,
    ) -> Result<u64, (i64, Refusal)> {
        if self.modules.pinned(hash) {
            return Ok(0);
        }
        let v = &self.vhms[vhm];
        let footprint = if v.loaded.contains_key(hash) {
            0
        } else {
            bytes.len() as u64 * MODULE_FOOTPRINT_FACTOR
        };
        let fuel = bytes.len() as u64 * MODULE_LOAD_FUEL_PER_BYTE;
        let fuel_left = v.budget.fuel_left().saturating_sub(quota.fuel);
        if fuel > fuel_left {
            let reason = Refusal::Short {
                need_for: Need::ModuleLoad,
                need: fuel,
                left: fuel_left,
            };
            return Err((abi::E_QUOTA, reason));
        }
        let free = self
            .memory_free(vhm)
            .saturating_sub(self.cap_growth(vhm, 1, 0))
            .saturating_sub(quota.memory);
        if footprint > free {
            let reason = Refusal::Short {
                need_for: Need::ModuleFootprint,
                need: footprint,
                left: free,
            };
            return Err((abi::E_QUOTA, reason));
        }
        self.vhms[vhm]
            .charge_host_work(fuel)
            .expect("the fuel was checked above");
        Ok(footprint)
    }

    /// The spec of the child: the parent's interrupt vectors and Q device, the spawn spec's
    /// numbers and flags; a spawned child is supervised by its parent, has no restarts and no
    /// port-time of its own.
    fn child_spec(&self, vhm: VhmId, spec: &SpawnSpec, name: String, module: &Hash32) -> VhmSpec {
        let parent = &self.vhms[vhm].spec;
        VhmSpec {
            name,
            parent: None,
            k: KSpec {
                vcpus: spec.vcpus,
                memory_limit: spec.memory_limit,
                module: module.to_hex(),
                module_at: Location::default(),
                entry: CHILD_ENTRY.into(),
                irq_vectors: parent.k.irq_vectors,
                ipc_vector: parent.k.ipc_vector,
                fault_vector: parent.k.fault_vector,
                modules: Vec::new(),
            },
            policy: PolicySpec {
                weight: spec.weight,
                fuel_quota: spec.fuel_quota,
                memory_quota: spec.memory_quota,
                on_bad_hypercall: if spec.flags & 1 != 0 {
                    BadHypercallPolicy::Fault
                } else {
                    BadHypercallPolicy::Error
                },
                max_vcpus: spec.vcpu_quota,
                max_depth: spec.max_depth,
                max_children: spec.max_children,
                create_channels: spec.flags & 2 != 0,
                // A spawning parent supervises its children itself (vhm_wait, respawn).
                on_fault: xdv_manifest::FaultPolicy::Kill,
                max_restarts: 0,
                // A spawned child's windows lie in its parent's: it needs no port-time.
                phi_port_time: 0,
            },
            q: match (&parent.q, spec.q.0) {
                (Some(pq), n) if n > 0 => Some(xdv_manifest::QSpec {
                    device: pq.device.clone(),
                    qubits: n,
                    qubits_at: Location::default(),
                    budget: spec.q.2,
                }),
                _ => None,
            },
            // Spawned children ask for windows at run time (`phi_window`).
            phi: Vec::new(),
        }
    }

    /// `name`, or `name#2`, `name#3`… if a VHM of that name existed before (a restarted child).
    pub(crate) fn unique_name(&mut self, name: &str) -> String {
        if !self.names.contains(name) {
            return name.to_string();
        }
        let next = self.next_suffix.entry(name.to_string()).or_insert(2);
        loop {
            let candidate = format!("{name}#{next}");
            *next += 1;
            if !self.names.contains(&candidate) {
                return candidate;
            }
        }
    }
}

fn level_after(level: u8) -> u8 {
    level.saturating_add(1)
}
