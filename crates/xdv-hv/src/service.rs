//! The core's side of `xdv serve`: tenants with root budgets, and service requests as inputs.
//!
//! A service host runs in epochs. The core runs every queued event up to the current horizon,
//! then pauses ([`crate::Effect::Paused`]); at a pause the edge may apply requests
//! ([`crate::Input::Request`]), each recorded as a `request` event at the pause's virtual time,
//! and then moves the horizon on ([`crate::Input::Continue`]). Requests take effect only at
//! pauses, whose times follow from the epoch alone, so a replay that feeds the recorded requests
//! back at the pauses where they were recorded re-executes the service exactly.
//!
//! A tenant's VHMs are carved from its root budget as children are carved from a parent's, and
//! what they held goes back to it when they stop. Their names live in the tenant's namespace
//! (`tenant:name` inside the host), so one tenant's names never collide with, or reveal,
//! another's.

use crate::state::{emit, quota_of, State, CHILD_ENTRY};
use crate::step::{Await, Effect, Effects, LoadRefusal, ModuleFacts};
use crate::HvError;
use std::collections::{BTreeMap, BTreeSet};
use xdv_core::budget::{Budget, CarveError, Quota};
use xdv_core::cap::{rights, Object};
use xdv_core::event::{EventKind, ExitReason, RequestRefusal, ServiceRequest, SpecProblem};
use xdv_core::{Domain, Hash32, VhmId};
use xdv_manifest::{TenantSpec, VhmSpec};

/// Modules one tenant may hold.
pub const MAX_TENANT_MODULES: usize = 64;
/// Largest `[[vhm]]` table a creation may carry, bytes: it is recorded in the trace whether or
/// not the creation succeeds, so it is kept small (the API answers 413 above it).
pub const MAX_SPEC_BYTES: usize = 16 * 1024;
/// VHMs a service host creates over its life, at most (the VHM table never shrinks).
pub const MAX_SERVICE_VHMS: u32 = 1 << 16;
/// Messages each direction of an API channel may hold, at most.
pub const MAX_API_CHANNEL_CAPACITY: u32 = 1024;

/// One tenant: its spec, what is left of its root budget, and what it owns.
#[derive(Clone, Debug)]
pub(crate) struct Tenant {
    pub(crate) spec: TenantSpec,
    /// The root budget: VHM quotas are carved from it; uploaded modules are held in it.
    pub(crate) budget: Budget,
    pub(crate) qubits_used: BTreeMap<String, u32>,
    pub(crate) phi_used: u64,
    pub(crate) modules: BTreeSet<Hash32>,
    /// Every VHM it created, in creation order.
    pub(crate) vhms: Vec<VhmId>,
}

/// The service state of a host: its tenants and where the current epoch ends.
#[derive(Clone, Debug)]
pub(crate) struct Service {
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) epoch_ns: u64,
    /// The core runs queued events up to this virtual time, then pauses.
    pub(crate) horizon: u64,
    /// A `Stop` request was applied.
    pub(crate) stopped: bool,
    /// The tenant whose VHM is being created (read when it is registered).
    pub(crate) creating_for: Option<u32>,
    /// What the last request did.
    pub(crate) last: Option<Result<Option<VhmId>, RequestRefusal>>,
}

impl Service {
    /// The service of a host configured with `tenants` and `epoch_ns`.
    pub(crate) fn new(tenants: &[TenantSpec], epoch_ns: u64) -> Self {
        let tenants = tenants
            .iter()
            .map(|t| Tenant {
                budget: Budget::new(
                    Quota {
                        vcpus: t.vcpus,
                        memory: t.memory,
                        fuel: t.fuel,
                        depth: t.max_level,
                        children: t.max_vhms,
                    },
                    0,
                    0,
                ),
                spec: t.clone(),
                qubits_used: BTreeMap::new(),
                phi_used: 0,
                modules: BTreeSet::new(),
                vhms: Vec::new(),
            })
            .collect();
        Self {
            tenants,
            epoch_ns,
            horizon: 0,
            stopped: false,
            creating_for: None,
            last: None,
        }
    }
}

/// A creation waiting for its module to be compiled and probed at the edge.
#[derive(Debug, Clone)]
pub(crate) struct PendingCreate {
    tenant: u32,
    spec: VhmSpec,
    hash: Hash32,
    quota: Quota,
}

/// What a tenant (or the operator) may see of one VHM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VhmView {
    /// Its name in the tenant's namespace.
    pub name: String,
    /// Its id in the trace (`trace show --vhm`).
    pub id: u32,
    /// The tenant that created it (`None`: a static VHM of the config).
    pub tenant: Option<String>,
    /// `running`, or how it ended (`exit(0)`, `killed`, …).
    pub state: String,
    /// Privilege level.
    pub level: u8,
    /// vCPUs.
    pub vcpus: u32,
    /// Its fuel quota.
    pub fuel_quota: u64,
    /// Fuel its own vCPUs consumed.
    pub fuel_used: u64,
    /// Its memory quota, bytes.
    pub memory_quota: u64,
    /// Virtual time it stopped at; `None` while it runs.
    pub end_ns: Option<u64>,
}

/// What is left of a tenant's root budget.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantView {
    /// Its name.
    pub name: String,
    /// Fuel left (quota − spent − carved).
    pub fuel_left: u64,
    /// Memory left, bytes.
    pub memory_left: u64,
    /// vCPUs left.
    pub vcpus_left: u32,
    /// Live VHMs, and how many it may have.
    pub vhms_live: u32,
    /// Most live VHMs.
    pub max_vhms: u32,
    /// Modules it holds.
    pub modules: usize,
}

/// The host name of VHM `name` in tenant `tenant`'s namespace.
pub fn tenant_vhm_name(tenant: &str, name: &str) -> String {
    format!("{tenant}:{name}")
}

fn over(what: &str, asked: u64, left: u64) -> RequestRefusal {
    RequestRefusal::OverBudget {
        what: what.to_string(),
        asked,
        left,
    }
}

/// Host memory an uploaded module of `size` bytes holds: its bytes and their compiled form.
fn upload_footprint(size: u64) -> u64 {
    size.saturating_mul(crate::modules::MODULE_FOOTPRINT_FACTOR)
}

fn carve_refusal(e: CarveError) -> RequestRefusal {
    match e {
        CarveError::NoChildren => over("depth", 1, 0),
        CarveError::Depth { max, asked } => over("depth", u64::from(asked), u64::from(max)),
        CarveError::Children { live, allowed } => {
            over("vhms", u64::from(live) + 1, u64::from(allowed))
        }
        CarveError::Vcpus { asked, left } => over("vcpus", u64::from(asked), u64::from(left)),
        CarveError::Memory { asked, left } => over("memory", asked, left),
        CarveError::Fuel { asked, left } => over("fuel", asked, left),
    }
}

impl State {
    /// Makes this a service host: it pauses at every multiple of `epoch_ns` (and when idle)
    /// instead of finishing when nothing is queued. The manifest's `[[tenant]]` tables are its
    /// tenants. [`crate::Hypervisor::new`] does this for a manifest with `[serve]`.
    ///
    /// # Errors
    ///
    /// [`HvError::Manifest`] when a tenant names a Q device the host does not have.
    pub fn serve(
        &mut self,
        tenants: &[TenantSpec],
        epoch_ns: u64,
        file: &str,
    ) -> Result<(), HvError> {
        assert!(epoch_ns > 0, "an epoch is at least 1 ns");
        for (i, t) in tenants.iter().enumerate() {
            for device in t.qubits.keys() {
                if self.device_index(device).is_none() {
                    let known: Vec<&str> = self.q_devices.iter().map(|d| d.device().name).collect();
                    return Err(HvError::Manifest(xdv_manifest::ManifestError {
                        file: file.to_string(),
                        line: 1,
                        col: 1,
                        key: format!("tenant[{i}].qubits.{device}"),
                        message: format!("no device {device:?}; the host has {}", known.join(", ")),
                    }));
                }
            }
        }
        self.service = Some(Service::new(tenants, epoch_ns));
        Ok(())
    }

    /// `true` for a service host ([`crate::Hypervisor::serve`]).
    pub fn is_service(&self) -> bool {
        self.service.is_some()
    }

    /// The service's epoch, ns (`None` unless a service host).
    pub fn epoch_ns(&self) -> Option<u64> {
        self.service.as_ref().map(|s| s.epoch_ns)
    }

    /// The pause a service host stands at, for a driver's answer.
    pub fn pause_at(&self, idle: bool) -> crate::driver::Pause {
        crate::driver::Pause {
            now: self.now,
            idle,
            epoch_ns: self.epoch_ns().expect("only a service host pauses"),
            // An event at or past the time limit (a vCPU asleep until the horizon) is never
            // reached by a service: it is not jumped to.
            next_event_ns: self.cds.peek_time().filter(|&t| t < self.time_limit()),
        }
    }

    /// The time limit, or the horizon no clock computes past.
    pub(crate) fn time_limit(&self) -> u64 {
        self.host
            .time_limit_ns
            .map_or(xdv_k::abi::TIME_HORIZON_NS, |l| {
                l.min(xdv_k::abi::TIME_HORIZON_NS)
            })
    }

    /// The current virtual time, ns.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Where the core pauses next (a service host's horizon).
    pub(crate) fn horizon(&self) -> Option<u64> {
        self.service
            .as_ref()
            .filter(|s| !s.stopped)
            .map(|s| s.horizon)
    }

    /// Moves the horizon to `until` (not before now).
    ///
    /// A service without a time limit never reaches the clock's horizon: its horizon stops
    /// just before it, where a host whose every vCPU sleeps past it pauses idle.
    pub(crate) fn continue_to(&mut self, until: u64) -> Result<(), HvError> {
        let now = self.now;
        let cap = self.endless_cap();
        let s = self.service.as_mut().expect("only a service host pauses");
        if until < now {
            return Err(HvError::Input(format!(
                "continue to {until} ns, before the pause at {now} ns"
            )));
        }
        s.horizon = until.min(cap).max(now);
        Ok(())
    }

    /// How far a service's horizon may go: just before the clock's horizon for a service
    /// without a time limit (it never ends by time), unbounded with one (it ends there).
    pub(crate) fn endless_cap(&self) -> u64 {
        match (&self.service, self.host.time_limit_ns) {
            (Some(_), None) => xdv_k::abi::TIME_HORIZON_NS - 1,
            _ => u64::MAX,
        }
    }

    /// `true` for a service without a time limit: events past the clock's horizon are never
    /// reached, and do not end it.
    pub(crate) fn endless(&self) -> bool {
        self.service.is_some() && self.host.time_limit_ns.is_none()
    }

    /// What the last request did: the VHM it created, if any, or its refusal.
    pub fn last_request(&self) -> Option<&Result<Option<VhmId>, RequestRefusal>> {
        self.service.as_ref().and_then(|s| s.last.as_ref())
    }

    /// The tenant whose token hashes to `hash` (hex), by index.
    pub fn tenant_by_token_hash(&self, hash: &str) -> Option<u32> {
        let s = self.service.as_ref()?;
        s.tenants
            .iter()
            .position(|t| t.spec.token_hash == hash)
            .map(|i| i as u32)
    }

    /// The name of tenant `t`.
    pub fn tenant_name(&self, t: u32) -> Option<&str> {
        let s = self.service.as_ref()?;
        s.tenants.get(t as usize).map(|t| t.spec.name.as_str())
    }

    /// What is left of tenant `t`'s budget.
    pub fn tenant_view(&self, t: u32) -> Option<TenantView> {
        let s = self.service.as_ref()?;
        let tn = s.tenants.get(t as usize)?;
        let b = &tn.budget;
        Some(TenantView {
            name: tn.spec.name.clone(),
            fuel_left: b.fuel_left(),
            memory_left: b.memory_left(),
            vcpus_left: b.quota.vcpus - b.carved.vcpus,
            vhms_live: b.carved.children,
            max_vhms: b.quota.children,
            modules: tn.modules.len(),
        })
    }

    /// `true` when tenant `t` holds module `hash` (the operator, `None`, holds every one).
    pub fn tenant_has_module(&self, t: Option<u32>, hash: &Hash32) -> bool {
        match (t, self.service.as_ref()) {
            (None, _) => self.modules.bytes(hash).is_some(),
            (Some(t), Some(s)) => s
                .tenants
                .get(t as usize)
                .is_some_and(|tn| tn.modules.contains(hash)),
            _ => false,
        }
    }

    /// The VHMs `viewer` may see, in creation order: a tenant its own, the operator every
    /// top-level one.
    pub fn vhm_views(&self, viewer: Option<u32>) -> Vec<VhmView> {
        let ids: Vec<VhmId> = match (viewer, self.service.as_ref()) {
            // A tenant's list is its own, in the order it created them.
            (Some(t), Some(s)) => s
                .tenants
                .get(t as usize)
                .map(|tn| tn.vhms.clone())
                .unwrap_or_default(),
            _ => self
                .vhms
                .ids()
                .filter(|&v| self.vhms[v].parent.is_none())
                .collect(),
        };
        ids.into_iter().map(|v| self.vhm_view(v)).collect()
    }

    /// How many VHMs the host has created (ids are `0..count`).
    pub fn vhm_count(&self) -> u32 {
        self.vhms.next_id().0
    }

    /// `true` when VHM `id` exists and is top-level (a tenant's, or a static root).
    pub fn vhm_is_top_level(&self, id: VhmId) -> bool {
        id.0 < self.vhm_count() && self.vhms[id].parent.is_none()
    }

    /// The VHM `viewer` calls `name`, if it may see it.
    pub fn find_vhm(&self, viewer: Option<u32>, name: &str) -> Option<VhmId> {
        let full = match viewer {
            Some(t) => tenant_vhm_name(self.tenant_name(t)?, name),
            None => name.to_string(),
        };
        let id = self.vhms.ids().find(|&v| self.vhms[v].name == full)?;
        let v = &self.vhms[id];
        let visible = match viewer {
            Some(t) => v.tenant == Some(t),
            None => v.parent.is_none(),
        };
        visible.then_some(id)
    }

    /// One VHM as an API client sees it.
    pub fn vhm_view(&self, id: VhmId) -> VhmView {
        let v = &self.vhms[id];
        let tenant = v
            .tenant
            .and_then(|t| self.tenant_name(t))
            .map(str::to_string);
        let name = match &tenant {
            Some(t) => v.name.strip_prefix(&format!("{t}:")).unwrap_or(&v.name),
            None => &v.name,
        };
        VhmView {
            name: name.to_string(),
            id: id.0,
            tenant,
            state: match v.exit {
                None => "running".to_string(),
                Some((reason, _)) => reason.to_string(),
            },
            level: v.level,
            vcpus: v.spec.k.vcpus,
            fuel_quota: v.quota.fuel,
            fuel_used: v.fuel_used,
            memory_quota: v.quota.memory,
            end_ns: v.exit.map(|(_, t)| t),
        }
    }

    /// Applies one request at the current pause. It is recorded first; a refusal is recorded
    /// after it and changes nothing else. `bytes` are an upload's module bytes.
    ///
    /// # Errors
    ///
    /// [`HvError::Input`] for an upload whose bytes do not hash to its id or an unknown tenant
    /// (a driver bug).
    pub(crate) fn request(
        &mut self,
        out: &mut Effects,
        tenant: Option<u32>,
        request: ServiceRequest,
        bytes: Option<Vec<u8>>,
    ) -> Result<(), HvError> {
        let s = self
            .service
            .as_ref()
            .expect("requests reach service hosts only");
        if let Some(t) = tenant {
            if t as usize >= s.tenants.len() {
                return Err(HvError::Input(format!("no tenant {t}")));
            }
        }
        if let ServiceRequest::Create { spec, .. } = &request {
            if spec.len() > MAX_SPEC_BYTES {
                return Err(HvError::Input(format!(
                    "a VHM table of {} bytes, more than MAX_SPEC_BYTES",
                    spec.len()
                )));
            }
        }
        // An upload is decided before anything is recorded, so a refused one's bytes never
        // reach the trace: only what the tenant is charged for is stored.
        let upload = match &request {
            ServiceRequest::Upload { module, size } => {
                let decided = self.upload_fits(tenant, module, *size);
                if let Ok(true) = decided {
                    let ok = bytes
                        .as_ref()
                        .is_some_and(|b| Hash32::of(b) == *module && b.len() as u64 == *size);
                    if !ok {
                        return Err(HvError::Input(
                            "an accepted upload's bytes do not match its id and size".into(),
                        ));
                    }
                    if self.modules.bytes(module).is_none() {
                        out.push(Effect::StoreModule {
                            hash: *module,
                            bytes: bytes.clone().expect("checked"),
                        });
                    }
                }
                Some(decided)
            }
            _ => None,
        };
        emit(
            out,
            &mut self.events,
            self.now,
            None,
            EventKind::Request {
                tenant,
                request: request.clone(),
            },
        );
        let result = match request {
            ServiceRequest::Upload { module, size } => match upload.expect("decided above") {
                Ok(true) => {
                    self.keep_upload(tenant, module, size, bytes.expect("checked"));
                    Ok(None)
                }
                Ok(false) => Ok(None),
                Err(r) => Err(r),
            },
            ServiceRequest::Create { spec, module } => {
                match self.begin_create(tenant, &spec, module) {
                    Ok(pending) => return self.create_or_load(out, pending),
                    Err(r) => Err(r),
                }
            }
            ServiceRequest::Kill { vhm } => self.kill(out, tenant, vhm)?.map(|()| None),
            ServiceRequest::Channel { ends, capacity } => self
                .api_channel(out, tenant, ends, capacity)?
                .map(|()| None),
            ServiceRequest::Stop => {
                self.service.as_mut().expect("service").stopped = true;
                Ok(None)
            }
        };
        self.conclude_request(out, result);
        Ok(())
    }

    /// Records a refusal, and what the request did.
    fn conclude_request(
        &mut self,
        out: &mut Effects,
        result: Result<Option<VhmId>, RequestRefusal>,
    ) {
        if let Err(reason) = &result {
            emit(
                out,
                &mut self.events,
                self.now,
                None,
                EventKind::RequestRefused {
                    reason: reason.clone(),
                },
            );
        }
        self.service.as_mut().expect("service").last = Some(result);
    }

    /// Whether tenant `tenant` may upload `size` bytes as `module`: `Ok(true)` to store it,
    /// `Ok(false)` when it holds it already, or the refusal.
    fn upload_fits(
        &self,
        tenant: Option<u32>,
        module: &Hash32,
        size: u64,
    ) -> Result<bool, RequestRefusal> {
        let Some(t) = tenant else {
            return Err(RequestRefusal::Forbidden);
        };
        let tn = &self.service.as_ref().expect("service").tenants[t as usize];
        if tn.modules.contains(module) {
            return Ok(false);
        }
        if tn.modules.len() >= MAX_TENANT_MODULES {
            return Err(RequestRefusal::HostFull);
        }
        let held = upload_footprint(size);
        let left = tn.budget.memory_left();
        if held > left {
            return Err(over("memory", held, left));
        }
        Ok(true)
    }

    /// Stores an accepted upload: the tenant holds it (its memory pays for the bytes and their
    /// compiled form) and the host keeps the bytes for its life.
    fn keep_upload(&mut self, tenant: Option<u32>, module: Hash32, size: u64, bytes: Vec<u8>) {
        let t = tenant.expect("only tenants upload") as usize;
        let tn = &mut self.service.as_mut().expect("service").tenants[t];
        tn.budget
            .hold(upload_footprint(size))
            .expect("upload_fits checked the memory left");
        tn.modules.insert(module);
        self.modules.keep_uploaded(module, bytes);
    }

    /// Checks a creation: the spec, the module, the name, the tenant's budget and the host's
    /// room for its Q container and Φ windows.
    fn begin_create(
        &mut self,
        tenant: Option<u32>,
        text: &str,
        module: Hash32,
    ) -> Result<PendingCreate, RequestRefusal> {
        let Some(t) = tenant else {
            return Err(RequestRefusal::Forbidden);
        };
        let tn = &self.service.as_ref().expect("service").tenants[t as usize];
        if !tn.modules.contains(&module) {
            return Err(RequestRefusal::NoModule);
        }
        let bad = |key: &str, problem| RequestRefusal::BadSpec {
            key: key.to_string(),
            problem,
        };
        let mut spec = VhmSpec::parse_request(&self.host, text, "request")
            .map_err(|e| bad(&e.key, SpecProblem::Invalid))?;
        if !spec.k.module.eq_ignore_ascii_case(&module.to_hex()) {
            return Err(bad("vhm[0].k.module", SpecProblem::ModuleMismatch));
        }
        if !spec.k.modules.is_empty() {
            return Err(bad("vhm[0].k.modules", SpecProblem::NotOffered));
        }
        if spec.policy.on_fault == xdv_manifest::FaultPolicy::Restart {
            return Err(bad("vhm[0].policy.on_fault", SpecProblem::NotOffered));
        }
        let full = tenant_vhm_name(&tn.spec.name, &spec.name);
        if self.names.contains(&full) {
            return Err(RequestRefusal::NameTaken);
        }
        if spec.k.entry != CHILD_ENTRY {
            return Err(bad("vhm[0].k.entry", SpecProblem::NotOffered));
        }
        if self.vhms.next_id().0 >= MAX_SERVICE_VHMS {
            return Err(RequestRefusal::HostFull);
        }
        let quota = quota_of(&spec);
        tn.budget.can_carve(&quota).map_err(carve_refusal)?;
        if let Some(q) = &spec.q {
            let limit = tn.spec.qubits.get(&q.device.0).copied().unwrap_or(0);
            let used = tn.qubits_used.get(&q.device.0).copied().unwrap_or(0);
            if q.qubits > limit - used {
                return Err(over("qubits", u64::from(q.qubits), u64::from(limit - used)));
            }
            let d = self
                .device_index(&q.device.0)
                .ok_or_else(|| bad("vhm[0].q.device", SpecProblem::Invalid))?;
            let mut alloc = self.q_devices[d].alloc.clone();
            alloc
                .allocate_in(u32::MAX, q.qubits as usize, None)
                .map_err(|_| RequestRefusal::Placement { domain: Domain::Q })?;
        }
        let phi_left = tn.spec.phi_port_time - tn.phi_used;
        if spec.policy.phi_port_time > phi_left {
            return Err(over("phi_port_time", spec.policy.phi_port_time, phi_left));
        }
        if !self.request_windows_fit(&spec) {
            return Err(RequestRefusal::Placement {
                domain: Domain::Phi,
            });
        }
        spec.name = full;
        Ok(PendingCreate {
            tenant: t,
            spec,
            hash: module,
            quota,
        })
    }

    /// Creates the VHM when its module is compiled and probed under its memory limit; has the
    /// edge load it otherwise.
    fn create_or_load(&mut self, out: &mut Effects, p: PendingCreate) -> Result<(), HvError> {
        let limit = p.spec.k.memory_limit;
        let (module, compiled) = self.modules.lookup(&p.hash, CHILD_ENTRY);
        if compiled {
            if let Some(instantiates) = self.modules.instantiates(module, limit) {
                let facts = ModuleFacts {
                    has_irq: self.modules.has_irq(module),
                    instantiates,
                };
                return self.create_loaded(out, module, p, Ok(facts));
            }
        }
        let bytes = self
            .modules
            .bytes(&p.hash)
            .expect("an uploaded module's bytes are kept")
            .to_vec();
        out.push(Effect::LoadModule {
            module,
            bytes,
            entry: CHILD_ENTRY,
            memory_limit: limit,
        });
        self.await_edge(Await::Create {
            module,
            pending: Box::new(p),
        });
        Ok(())
    }

    /// The answer to a creation's [`Effect::LoadModule`]: the VHM created, or the refusal.
    pub(crate) fn create_loaded(
        &mut self,
        out: &mut Effects,
        module: usize,
        p: PendingCreate,
        loaded: Result<ModuleFacts, LoadRefusal>,
    ) -> Result<(), HvError> {
        let facts = match loaded {
            Ok(f) => f,
            Err(LoadRefusal { abi }) => {
                self.conclude_request(out, Err(RequestRefusal::BadModule { abi }));
                return Ok(());
            }
        };
        let bytes = self.modules.bytes(&p.hash).expect("kept").to_vec();
        self.modules
            .compiled(module, &bytes, CHILD_ENTRY, facts.has_irq);
        self.modules
            .probed(module, p.spec.k.memory_limit, facts.instantiates);
        let t = p.tenant;
        let s = self.service.as_mut().expect("service");
        let tn = &mut s.tenants[t as usize];
        tn.budget
            .carve(&p.quota)
            .expect("the quota was checked against the tenant's budget");
        if let Some(q) = &p.spec.q {
            *tn.qubits_used.entry(q.device.0.clone()).or_insert(0) += q.qubits;
        }
        tn.phi_used += p.spec.policy.phi_port_time;
        s.creating_for = Some(t);
        let (id, _) = self.create_vhm(out, p.spec, module, None, p.quota)?;
        let s = self.service.as_mut().expect("service");
        s.creating_for = None;
        s.tenants[t as usize].vhms.push(id);
        self.conclude_request(out, Ok(Some(id)));
        Ok(())
    }

    /// Each tenant's budget carves exactly the quotas of its running VHMs, its qubit and
    /// port-time counts are theirs, and its budget is conserved; the first violation.
    pub(crate) fn check_tenants(&self) -> Result<(), String> {
        let Some(s) = &self.service else {
            return Ok(());
        };
        for (i, t) in s.tenants.iter().enumerate() {
            let mut carved = Quota::default();
            let mut qubits: BTreeMap<&str, u32> = BTreeMap::new();
            let mut phi = 0u64;
            let prefix = format!("{}:", t.spec.name);
            for &id in &t.vhms {
                let v = &self.vhms[id];
                if v.tenant != Some(i as u32) || v.parent.is_some() || !v.name.starts_with(&prefix)
                {
                    return Err(format!(
                        "tenant {} lists vhm{id}, which is not its own",
                        t.spec.name
                    ));
                }
                if !v.running() {
                    continue;
                }
                carved.vcpus += v.quota.vcpus;
                carved.memory += v.quota.memory;
                carved.fuel += v.quota.fuel;
                carved.children += 1;
                if let Some(q) = &v.spec.q {
                    *qubits.entry(q.device.0.as_str()).or_insert(0) += q.qubits;
                }
                phi += v.spec.policy.phi_port_time;
            }
            let b = &t.budget.carved;
            let same = (b.vcpus, b.memory, b.fuel, b.children)
                == (carved.vcpus, carved.memory, carved.fuel, carved.children);
            if !same {
                return Err(format!(
                    "tenant {} has {b:?} carved, its running VHMs hold {carved:?}",
                    t.spec.name
                ));
            }
            let counted: BTreeMap<&str, u32> = t
                .qubits_used
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(d, &n)| (d.as_str(), n))
                .collect();
            if counted != qubits || t.phi_used != phi {
                return Err(format!(
                    "tenant {} counts qubits {counted:?} and port-time {}, its VHMs hold {qubits:?} and {phi}",
                    t.spec.name, t.phi_used
                ));
            }
            if !t.budget.conserved() {
                return Err(format!("tenant {}'s budget is not conserved", t.spec.name));
            }
        }
        Ok(())
    }

    /// A stopped tenant VHM's quota, qubits and port-time go back to its tenant.
    pub(crate) fn give_back_to_tenant(&mut self, vhm: VhmId) {
        let v = &self.vhms[vhm];
        let (Some(t), Some(s)) = (v.tenant, self.service.as_mut()) else {
            return;
        };
        let tn = &mut s.tenants[t as usize];
        tn.budget.give_back(&v.quota, v.budget.fuel_spent);
        if let Some(q) = &v.spec.q {
            let used = tn
                .qubits_used
                .get_mut(&q.device.0)
                .expect("counted at creation");
            *used -= q.qubits;
        }
        tn.phi_used -= v.spec.policy.phi_port_time;
    }

    /// `true` when `viewer` may act on `vhm`: a running top-level VHM of its own (the
    /// operator: any).
    fn may_act_on(&self, viewer: Option<u32>, vhm: VhmId) -> bool {
        vhm.0 < self.vhms.next_id().0 && {
            let v = &self.vhms[vhm];
            v.running() && v.parent.is_none() && (viewer.is_none() || v.tenant == viewer)
        }
    }

    fn kill(
        &mut self,
        out: &mut Effects,
        tenant: Option<u32>,
        vhm: VhmId,
    ) -> Result<Result<(), RequestRefusal>, HvError> {
        if !self.may_act_on(tenant, vhm) {
            return Ok(Err(RequestRefusal::NoVhm));
        }
        self.terminate(out, vhm, ExitReason::Killed)?;
        Ok(Ok(()))
    }

    fn api_channel(
        &mut self,
        out: &mut Effects,
        tenant: Option<u32>,
        ends: [VhmId; 2],
        capacity: u32,
    ) -> Result<Result<(), RequestRefusal>, HvError> {
        if !ends.iter().all(|&e| self.may_act_on(tenant, e)) {
            return Ok(Err(RequestRefusal::NoVhm));
        }
        if ends[0] == ends[1] || !(1..=MAX_API_CHANNEL_CAPACITY).contains(&capacity) {
            return Ok(Err(RequestRefusal::BadSpec {
                key: "capacity".into(),
                problem: SpecProblem::Channel,
            }));
        }
        if ends.iter().any(|&e| !self.caps.has_room(e, 1)) {
            return Ok(Err(RequestRefusal::HostFull));
        }
        let channel = self.new_channel(out, ends[0], capacity, ends)?;
        for (e, &holder) in ends.iter().enumerate() {
            let r =
                rights::INSPECT | rights::DERIVE | rights::TRANSFER | rights::SEND | rights::RECV;
            self.mint(out, holder, Object::Endpoint(channel, e as u8), r, 0)?;
        }
        Ok(Ok(()))
    }
}
