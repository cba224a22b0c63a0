//! Nesting: spawn child VHMs from a module capability, wait for them, kill them, and tighten
//! the VHM's own policy.
//!
//! ```no_run
//! use xdv_guest::cap::{Budget, Handle, Module};
//! use xdv_guest::vhm::Spawn;
//! let budget = Handle::<Budget>::find(0).unwrap();
//! let worker = Handle::<Module>::find(1).unwrap();
//! let child = Spawn::new(budget, worker, "w1").fuel(200_000).memory(65_536, 65_536).spawn().unwrap();
//! let status = child.wait().unwrap();
//! ```

use crate::cap::{Budget, Handle, Module, PassedCapability, Vhm};
use crate::{check, sys, Result};

/// A child VHM to create: a builder over the `vhm_spawn` spec. Defaults: one vCPU, 64 KiB of
/// memory, weight 1, no nesting below it, no capabilities passed, no Q qubits.
#[derive(Debug, Clone, Copy)]
pub struct Spawn<'a> {
    spec: sys::SpawnSpecQ,
    name: &'a str,
    code: Option<&'a [u8]>,
    caps: &'a [PassedCapability],
}

impl<'a> Spawn<'a> {
    /// A child named `name` (the hypervisor names it `parent/name`), carved from `budget` and
    /// running `module`.
    pub fn new(budget: Handle<Budget>, module: Handle<Module>, name: &'a str) -> Self {
        let spec = sys::SpawnSpecQ {
            spec: sys::SpawnSpec {
                budget: budget.raw(),
                module: module.raw(),
                vcpus: 1,
                vcpu_quota: 1,
                memory_limit: 65_536,
                memory_quota: 65_536,
                weight: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        Spawn {
            spec,
            name,
            code: None,
            caps: &[],
        }
    }

    /// Runs the WebAssembly binary `code` (in this guest's memory) instead of a module
    /// capability.
    pub fn code(mut self, code: &'a [u8]) -> Self {
        self.spec.spec.module = 0;
        self.code = Some(code);
        self
    }

    /// The child's fuel quota (for it and its descendants).
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.spec.spec.fuel_quota = fuel;
        self
    }

    /// Linear memory per vCPU, and memory of the child and its descendants, in bytes.
    pub fn memory(mut self, per_vcpu: u64, quota: u64) -> Self {
        self.spec.spec.memory_limit = per_vcpu;
        self.spec.spec.memory_quota = quota;
        self
    }

    /// vCPUs of the child, and of the child and its descendants.
    pub fn vcpus(mut self, vcpus: u32, quota: u32) -> Self {
        self.spec.spec.vcpus = vcpus;
        self.spec.spec.vcpu_quota = quota;
        self
    }

    /// Scheduling weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.spec.spec.weight = weight;
        self
    }

    /// Levels of nesting below the child, and its live children at a time.
    pub fn nesting(mut self, max_depth: u32, max_children: u32) -> Self {
        self.spec.spec.max_depth = max_depth;
        self.spec.spec.max_children = max_children;
        self
    }

    /// Policy flags: [`sys::SPAWN_FAULT_ON_BAD_HYPERCALL`], [`sys::SPAWN_CREATE_CHANNELS`].
    pub fn flags(mut self, flags: u32) -> Self {
        self.spec.spec.flags = flags;
        self
    }

    /// Capabilities to pass, in the order the child's table gets them.
    pub fn pass(mut self, caps: &'a [PassedCapability]) -> Self {
        self.caps = caps;
        self
    }

    /// Logical qubits and decoherence budget (µ) carved from this VHM's Q container.
    pub fn qubits(mut self, qubits: u32, budget: u64) -> Self {
        self.spec.q_qubits = qubits;
        self.spec.q_budget = budget;
        self
    }

    /// Creates the child.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Perm`] without `spawn` rights, [`crate::Error::Quota`] over the budget,
    /// depth or child count, [`crate::Error::Inval`] for a module that fails its checks.
    pub fn spawn(mut self) -> Result<Child> {
        let s = &mut self.spec.spec;
        s.name_ptr = self.name.as_ptr() as u32;
        s.name_len = self.name.len() as u32;
        if let Some(code) = self.code {
            s.code_ptr = code.as_ptr() as u32;
            s.code_len = code.len() as u32;
        }
        s.caps_ptr = self.caps.as_ptr() as u32;
        s.caps_count = self.caps.len() as u32;
        let len = if self.spec.q_qubits == 0 {
            core::mem::size_of::<sys::SpawnSpec>()
        } else {
            core::mem::size_of::<sys::SpawnSpecQ>()
        };
        // SAFETY: the spec, name, code and capability table all live for the call, and `len`
        // is at most the size of `self.spec`.
        let h = check(unsafe {
            sys::vhm_spawn((&self.spec as *const sys::SpawnSpecQ).cast(), len as i32)
        })?;
        Ok(Child(Handle::from_raw(h as u64)))
    }
}

/// How a child stopped: what [`Child::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// Every vCPU returned from its entry.
    Halted,
    /// It faulted: class 0 trap, 1 fuel exhausted, 2 bad hypercall.
    Faulted(u32),
    /// It was killed.
    Killed,
    /// It stopped at the time limit.
    TimeLimit,
}

impl ExitStatus {
    /// The status of a `vhm_wait` value.
    pub fn from_wait(v: i64) -> ExitStatus {
        let (kind, low) = (v >> 32, v as u32);
        match kind {
            sys::WAIT_EXIT => ExitStatus::Exited(low as i32),
            sys::WAIT_HALTED => ExitStatus::Halted,
            sys::WAIT_FAULT => ExitStatus::Faulted(low),
            sys::WAIT_KILLED => ExitStatus::Killed,
            _ => ExitStatus::TimeLimit,
        }
    }

    /// `true` for [`ExitStatus::Faulted`].
    pub fn is_fault(self) -> bool {
        matches!(self, ExitStatus::Faulted(_))
    }
}

/// A handle on a child VHM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child(pub Handle<Vhm>);

impl Child {
    /// Parks until the child stops.
    ///
    /// # Errors
    ///
    /// [`crate::Error::BadHandle`], [`crate::Error::Perm`] without `wait`.
    pub fn wait(self) -> Result<ExitStatus> {
        // SAFETY: no memory is passed.
        check(unsafe { sys::vhm_wait(self.0.raw() as i64) }).map(ExitStatus::from_wait)
    }

    /// Stops the child and its subtree; its budget comes back.
    ///
    /// # Errors
    ///
    /// [`crate::Error::BadHandle`], [`crate::Error::Perm`] without `kill`.
    pub fn kill(self) -> Result<()> {
        // SAFETY: no memory is passed.
        check(i64::from(unsafe { sys::vhm_kill(self.0.raw() as i64) })).map(drop)
    }
}

/// Lowers this VHM's weight and tightens its flags (bit 0: fault on bad hypercalls).
///
/// # Errors
///
/// [`crate::Error::Busy`] while it has children, [`crate::Error::Inval`] for a raise.
pub fn set_policy(weight: u32, flags: u32) -> Result<()> {
    // SAFETY: no memory is passed.
    check(i64::from(unsafe { sys::policy_set(weight as i32, flags as i32) })).map(drop)
}
