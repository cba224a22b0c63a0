//! The K side of the host, kept apart from the hypervisor's state: the engine and every running
//! vCPU's instance. The state records what it decides about a vCPU (its scheduling, its waits,
//! its pending interrupts, whether its module has an interrupt handler); only running it,
//! answering its hypercalls and touching its memory go through here.

use xdv_k::{Engine, GuestVcpu};

/// The engine and the instances of every running vCPU, by VHM id and vCPU index.
pub(crate) struct Guests {
    /// The K engine (wasmi today): compiles modules; their vCPUs run behind `GuestVcpu`.
    pub(crate) engine: Box<dyn Engine>,
    /// The instances of each VHM's vCPUs, by VHM id; empty once the VHM stopped.
    vcpus: Vec<Vec<Box<dyn GuestVcpu>>>,
}

impl Guests {
    /// No vCPU yet.
    pub(crate) fn new(engine: Box<dyn Engine>) -> Self {
        Self {
            engine,
            vcpus: Vec::new(),
        }
    }

    /// Adds the next vCPU instance of VHM `vhm` (its vCPUs are added in index order).
    pub(crate) fn add(&mut self, vhm: u32, vcpu: Box<dyn GuestVcpu>) {
        let i = vhm as usize;
        if self.vcpus.len() <= i {
            self.vcpus.resize_with(i + 1, Vec::new);
        }
        self.vcpus[i].push(vcpu);
    }

    /// The instance of vCPU `vcpu` of `vhm`.
    pub(crate) fn get(&self, vhm: u32, vcpu: u32) -> &dyn GuestVcpu {
        self.vcpus[vhm as usize][vcpu as usize].as_ref()
    }

    /// The instance of vCPU `vcpu` of `vhm`, to run or answer.
    pub(crate) fn get_mut(&mut self, vhm: u32, vcpu: u32) -> &mut dyn GuestVcpu {
        self.vcpus[vhm as usize][vcpu as usize].as_mut()
    }

    /// Drops the instances of a stopped VHM.
    pub(crate) fn drop_vhm(&mut self, vhm: u32) {
        if let Some(v) = self.vcpus.get_mut(vhm as usize) {
            *v = Vec::new();
        }
    }
}
