//! The host's guest modules as the core sees them: their bytes by hash, whether each (hash,
//! entry) is compiled at the edge (the compiled code itself lives there, in `Guests`), what
//! instantiating it showed, and how many running VHMs use it.
//!
//! Manifest modules are pinned: a restart may need them at any time. A module loaded at run time
//! (`vhm_spawn` from bytes, or from a capability on such a module) is compiled once per (hash,
//! entry) when a spawn from it succeeds, and kept while a VHM runs it; the VHMs that spawned from
//! it pay for it meanwhile (`Vhm::loaded`). When the last VHM running it stops, its compiled code
//! and bytes are dropped, the hypervisor destroys the capabilities naming it, and its loaders
//! stop paying. So a spawn → wait → drop loop holds one module at a time, not every module it
//! ever loaded.

use std::collections::BTreeMap;
use xdv_core::refusal::TrapCode;
use xdv_core::Hash32;
use xdv_k::KError;

/// Host bytes one loaded module costs the VHM that loads it, per byte of its code: the bytes
/// themselves and an allowance of three bytes per byte for wasmi's compiled form of them.
pub const MODULE_FOOTPRINT_FACTOR: u64 = 4;
/// Fuel a VHM pays per byte of code it loads (validation and eager compilation are host work).
pub const MODULE_LOAD_FUEL_PER_BYTE: u64 = 1;

/// What compiles and instantiates modules while a host is built: the K edge (`Guests` with the
/// wasmi engine), or a test's stand-in that knows what its modules would do.
pub trait Loader {
    /// Compiles `bytes` with `entry` as module `index`; whether it exports `xdv_irq`.
    ///
    /// # Errors
    ///
    /// The engine's refusal: not WebAssembly, or not fitting the ABI.
    fn compile(&mut self, index: usize, bytes: &[u8], entry: &str) -> Result<bool, KError>;

    /// Instantiates the compiled module `index` once under `memory_limit`, keeping nothing.
    ///
    /// # Errors
    ///
    /// The trap code instantiating it fails with.
    fn probe(&mut self, index: usize, memory_limit: u64) -> Result<(), TrapCode>;
}

#[derive(Clone)]
struct Entry {
    hash: Hash32,
    entry: String,
    /// The edge holds its compiled form.
    compiled: bool,
    has_irq: bool,
    /// Running VHMs whose vCPUs run this module.
    users: u32,
    pinned: bool,
}

/// The module table. Indices are stable for the life of the host.
#[derive(Default, Clone)]
pub(crate) struct Modules {
    entries: Vec<Entry>,
    bytes: BTreeMap<Hash32, Vec<u8>>,
    /// What instantiating (module, memory limit) does: it depends on nothing else.
    instantiates: BTreeMap<(usize, u64), Result<(), TrapCode>>,
    /// Modules uploaded to a service host: kept, like manifest modules, for the host's life
    /// (their tenant's budget holds them).
    uploaded: std::collections::BTreeSet<Hash32>,
}

impl Modules {
    /// A table holding the manifest's modules' bytes (pinned once compiled with [`Modules::pin`]).
    pub(crate) fn with_bytes(bytes: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self {
            entries: Vec::new(),
            bytes: bytes.into_iter().map(|b| (Hash32::of(&b), b)).collect(),
            instantiates: BTreeMap::new(),
            uploaded: Default::default(),
        }
    }

    /// Keeps the bytes of a module uploaded to a service host for the host's life.
    pub(crate) fn keep_uploaded(&mut self, hash: Hash32, bytes: Vec<u8>) {
        debug_assert_eq!(Hash32::of(&bytes), hash);
        self.bytes.entry(hash).or_insert(bytes);
        self.uploaded.insert(hash);
    }

    /// The index of `(hash, entry)` (the next free one when it has none yet) and whether it is
    /// compiled.
    pub(crate) fn lookup(&self, hash: &Hash32, entry: &str) -> (usize, bool) {
        match self
            .entries
            .iter()
            .position(|e| e.hash == *hash && e.entry == entry)
        {
            Some(i) => (i, self.entries[i].compiled),
            None => (self.entries.len(), false),
        }
    }

    /// Module `i` (from [`Modules::lookup`]) was compiled at the edge from `bytes`. The bytes
    /// are kept (the trace and later spawns need them).
    pub(crate) fn compiled(&mut self, i: usize, bytes: &[u8], entry: &str, has_irq: bool) {
        let hash = Hash32::of(bytes);
        self.bytes.entry(hash).or_insert_with(|| bytes.to_vec());
        if i == self.entries.len() {
            self.entries.push(Entry {
                hash,
                entry: entry.to_string(),
                compiled: true,
                has_irq,
                users: 0,
                pinned: false,
            });
        }
        let e = &mut self.entries[i];
        assert!(
            e.hash == hash && e.entry == entry,
            "module {i} compiled under another index"
        );
        e.compiled = true;
        e.has_irq = has_irq;
    }

    /// What instantiating module `i` under `memory_limit` does, when known.
    pub(crate) fn instantiates(&self, i: usize, memory_limit: u64) -> Option<Result<(), TrapCode>> {
        self.instantiates.get(&(i, memory_limit)).copied()
    }

    /// Records what instantiating module `i` under `memory_limit` did.
    pub(crate) fn probed(&mut self, i: usize, memory_limit: u64, result: Result<(), TrapCode>) {
        self.instantiates.insert((i, memory_limit), result);
    }

    /// `true` when module `i` exports the interrupt handler.
    pub(crate) fn has_irq(&self, i: usize) -> bool {
        self.entries[i].has_irq
    }

    /// Keeps module `i` compiled for the life of the host (a manifest module).
    pub(crate) fn pin(&mut self, i: usize) {
        self.entries[i].pinned = true;
    }

    /// The bytes of `hash`, if kept.
    pub(crate) fn bytes(&self, hash: &Hash32) -> Option<&[u8]> {
        self.bytes.get(hash).map(Vec::as_slice)
    }

    /// The hash of module `i`.
    pub(crate) fn hash(&self, i: usize) -> Hash32 {
        self.entries[i].hash
    }

    /// A VHM running module `i` was created.
    pub(crate) fn acquire(&mut self, i: usize) {
        assert!(
            self.entries[i].compiled,
            "module {i} runs only while compiled"
        );
        self.entries[i].users += 1;
    }

    /// A VHM running module `i` stopped.
    pub(crate) fn release(&mut self, i: usize) {
        let e = &mut self.entries[i];
        assert!(e.users > 0, "module {i} released more often than acquired");
        e.users -= 1;
    }

    /// `true` when a manifest module has `hash`: it is kept for the life of the host.
    pub(crate) fn pinned(&self, hash: &Hash32) -> bool {
        self.uploaded.contains(hash) || self.entries.iter().any(|e| e.hash == *hash && e.pinned)
    }

    /// `true` when `hash` is a run-time module no running VHM runs.
    pub(crate) fn unused(&self, hash: &Hash32) -> bool {
        !self.pinned(hash)
            && self
                .entries
                .iter()
                .filter(|e| e.hash == *hash)
                .all(|e| e.users == 0)
    }

    /// Forgets the compiled forms and the bytes of the run-time module `hash`: the last VHM
    /// that ran it stopped. Returns the indices whose compiled forms the edge must drop.
    ///
    /// # Panics
    ///
    /// When a VHM still runs it.
    pub(crate) fn retire(&mut self, hash: &Hash32) -> Vec<usize> {
        if self.pinned(hash) {
            return Vec::new();
        }
        let mut retired = Vec::new();
        for (i, e) in self.entries.iter_mut().enumerate() {
            if e.hash != *hash || !e.compiled {
                continue;
            }
            assert!(
                e.users == 0,
                "module {} retired while it runs",
                hash.short()
            );
            e.compiled = false;
            retired.push(i);
        }
        self.bytes.remove(hash);
        retired
    }

    /// Checks that every module counts as users exactly the running VHMs that run it, and that
    /// every run-time module the host keeps is paid for by a running VHM that loaded it
    /// (`paid`); returns the first violation.
    pub(crate) fn check(
        &self,
        running: impl Iterator<Item = usize>,
        paid: impl Fn(&Hash32) -> bool,
    ) -> Result<(), String> {
        let mut users = vec![0u32; self.entries.len()];
        for m in running {
            users[m] += 1;
        }
        for (i, (e, &n)) in self.entries.iter().zip(&users).enumerate() {
            if e.users != n {
                return Err(format!(
                    "module {i} ({}) counts {} users, {n} running VHMs use it",
                    e.hash.short(),
                    e.users
                ));
            }
            if n > 0 && !e.compiled {
                return Err(format!("module {i} is used but was reclaimed"));
            }
            if !self.pinned(&e.hash) && e.compiled && !paid(&e.hash) {
                return Err(format!(
                    "module {i} ({}) is compiled, but no running VHM that loaded it pays for it",
                    e.hash.short()
                ));
            }
        }
        for hash in self.bytes.keys() {
            if !self.pinned(hash) && !paid(hash) {
                return Err(format!(
                    "the bytes of module {} are kept, but no running VHM that loaded it pays for them",
                    hash.short()
                ));
            }
        }
        Ok(())
    }
}
