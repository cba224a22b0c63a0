//! The host's guest modules: their bytes by hash and their compiled forms, reference-counted
//! by the running VHMs that use them.
//!
//! Manifest modules are pinned: a restart may need them at any time. A module loaded at run time
//! (`vhm_spawn` from bytes, or from a capability on such a module) is compiled once per (hash,
//! entry) when a spawn from it succeeds, and kept while a VHM runs it; the VHMs that spawned from
//! it pay for it meanwhile (`Vhm::loaded`). When the last VHM running it stops, its compiled code
//! and bytes are dropped, the hypervisor destroys the capabilities naming it, and its loaders
//! stop paying. So a spawn → wait → drop loop holds one module at a time, not every module it
//! ever loaded.

use std::collections::BTreeMap;
use std::sync::Arc;
use xdv_core::Hash32;
use xdv_k::{Engine, KError, Module};

/// Host bytes one loaded module costs the VHM that loads it, per byte of its code: the bytes
/// themselves and an allowance of three bytes per byte for wasmi's compiled form of them.
pub const MODULE_FOOTPRINT_FACTOR: u64 = 4;
/// Fuel a VHM pays per byte of code it loads (validation and eager compilation are host work).
pub const MODULE_LOAD_FUEL_PER_BYTE: u64 = 1;

struct Entry {
    hash: Hash32,
    entry: String,
    compiled: Option<Arc<dyn Module>>,
    /// Running VHMs whose vCPUs run this module.
    users: u32,
    pinned: bool,
}

/// The module table. Indices are stable for the life of the host.
#[derive(Default)]
pub(crate) struct Modules {
    entries: Vec<Entry>,
    bytes: BTreeMap<Hash32, Vec<u8>>,
}

impl Modules {
    /// A table holding the manifest's modules' bytes (pinned once compiled with [`Modules::pin`]).
    pub(crate) fn with_bytes(bytes: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self {
            entries: Vec::new(),
            bytes: bytes.into_iter().map(|b| (Hash32::of(&b), b)).collect(),
        }
    }

    /// The index of `(hash of bytes, entry)`, compiling it when it has no compiled form. The
    /// bytes are kept (the trace and later spawns need them).
    pub(crate) fn compile(
        &mut self,
        engine: &dyn Engine,
        bytes: &[u8],
        entry: &str,
    ) -> Result<usize, KError> {
        let hash = Hash32::of(bytes);
        let at = self
            .entries
            .iter()
            .position(|e| e.hash == hash && e.entry == entry);
        if let Some(i) = at {
            if self.entries[i].compiled.is_some() {
                return Ok(i);
            }
        }
        let compiled = engine.compile(bytes, entry)?;
        self.bytes.entry(hash).or_insert_with(|| bytes.to_vec());
        Ok(match at {
            Some(i) => {
                self.entries[i].compiled = Some(compiled);
                i
            }
            None => {
                self.entries.push(Entry {
                    hash,
                    entry: entry.to_string(),
                    compiled: Some(compiled),
                    users: 0,
                    pinned: false,
                });
                self.entries.len() - 1
            }
        })
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

    /// The compiled module `i`.
    ///
    /// # Panics
    ///
    /// When module `i` was reclaimed: only a module with a running user, a pinned one or one
    /// just compiled is ever instantiated.
    pub(crate) fn get(&self, i: usize) -> &dyn Module {
        self.entries[i]
            .compiled
            .as_deref()
            .expect("an instantiated module is compiled")
    }

    /// A VHM running module `i` was created.
    pub(crate) fn acquire(&mut self, i: usize) {
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
        self.entries.iter().any(|e| e.hash == *hash && e.pinned)
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

    /// Drops the compiled forms and the bytes of the run-time module `hash`: the last VHM that
    /// ran it stopped.
    ///
    /// # Panics
    ///
    /// When a VHM still runs it.
    pub(crate) fn retire(&mut self, hash: &Hash32) {
        if self.pinned(hash) {
            return;
        }
        for e in self.entries.iter_mut().filter(|e| e.hash == *hash) {
            assert!(
                e.users == 0,
                "module {} retired while it runs",
                hash.short()
            );
            e.compiled = None;
        }
        self.bytes.remove(hash);
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
            if n > 0 && e.compiled.is_none() {
                return Err(format!("module {i} is used but was reclaimed"));
            }
            if !self.pinned(&e.hash) && e.compiled.is_some() && !paid(&e.hash) {
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
