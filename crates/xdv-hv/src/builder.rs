//! Building a host, apart from running it (Firecracker keeps `builder.rs` apart from the VMM).
//!
//! [`HostBuilder`] takes a manifest's text and its guest modules held in memory and checks
//! everything that can be checked without running: the manifest, the modules against the ABI,
//! and each VHM's instantiation under its memory limit. Nothing is read from a file, so tests and
//! a service can build hosts from bytes; [`crate::prepare`] is the same path for files.

use crate::hypervisor::Hypervisor;
use crate::run::{chaos_faults, Prepared};
use crate::HvError;
use std::collections::BTreeMap;
use xdv_manifest::{LoadedModule, Manifest};

/// A host being described: a manifest and its modules by the names the manifest gives them.
pub struct HostBuilder {
    text: String,
    label: String,
    modules: BTreeMap<String, Vec<u8>>,
    chaos: Option<u64>,
}

impl HostBuilder {
    /// A host from the manifest `text`; `label` names it in errors (`label:line:col: …`).
    pub fn new(text: &str, label: &str) -> Self {
        Self {
            text: text.to_string(),
            label: label.to_string(),
            modules: BTreeMap::new(),
            chaos: None,
        }
    }

    /// The module the manifest calls `name`: WebAssembly bytes, or WAT text when `name` ends in
    /// `.wat`.
    pub fn module(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.modules.insert(name.to_string(), bytes.into());
        self
    }

    /// Appends the random `[[fault]]` tables `--chaos seed` adds ([`chaos_faults`]).
    pub fn chaos(mut self, seed: Option<u64>) -> Self {
        self.chaos = seed;
        self
    }

    /// Checks the manifest and its modules, and instantiates every manifest vCPU once without
    /// running it.
    ///
    /// # Errors
    ///
    /// [`HvError::Manifest`] for the manifest or a module it names that was not given;
    /// [`HvError::Module`] for a module that does not compile, fit the ABI or instantiate.
    pub fn prepare(self) -> Result<Prepared, HvError> {
        let manifest = Manifest::parse(&self.text, &self.label)?;
        let modules = &self.modules;
        prepared(manifest, self.chaos, |m| {
            m.load_modules_with(|name| {
                modules
                    .get(name)
                    .map(|b| (b.clone(), name.to_string()))
                    .ok_or_else(|| format!("no module {name:?} was given to the builder"))
            })
        })
    }
}

/// The checks [`HostBuilder::prepare`] and [`crate::prepare`] share: chaos faults appended, the
/// modules loaded by `load`, compiled and instantiated once.
pub(crate) fn prepared(
    mut manifest: Manifest,
    chaos: Option<u64>,
    load: impl FnOnce(&Manifest) -> Result<Vec<LoadedModule>, xdv_manifest::ManifestError>,
) -> Result<Prepared, HvError> {
    if let Some(seed) = chaos {
        let text = format!("{}{}", manifest.text, chaos_faults(&manifest, seed));
        manifest = Manifest::parse(&text, &manifest.file)?;
    }
    let modules = load(&manifest)?;
    let hv = Hypervisor::new(&manifest, &modules, manifest.host.seed)?;
    hv.check_instantiation(&manifest.file)?;
    Ok(Prepared { manifest, modules })
}
