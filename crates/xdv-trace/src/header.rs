//! The trace header: everything needed to re-run a trace without any other file.

use serde::{Deserialize, Serialize};
use xdv_core::Hash32;

/// A guest module stored in the trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    /// The manifest's name for the module (its path as written).
    pub name: String,
    /// BLAKE3 hash of the module's binary.
    pub hash: Hash32,
}

/// The run's header. Its canonical encoding is the genesis of the event hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// [`xdv_core::TRACE_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// [`xdv_core::EVENT_SCHEMA_VERSION`] of the writer.
    pub event_schema: u32,
    /// Version of the `xdv` that wrote the trace.
    pub xdv_version: String,
    /// Engines and their deterministic settings.
    pub engine: String,
    /// The effective host seed.
    pub seed: u64,
    /// The manifest's file name as given on the command line.
    pub manifest_name: String,
    /// The manifest's full text.
    pub manifest_text: String,
    /// Guest modules in manifest order (duplicates share a hash).
    pub modules: Vec<ModuleEntry>,
}

impl TraceHeader {
    /// The canonical encoding that seeds the hash chain.
    pub fn canonical(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding of the header is infallible")
    }

    pub(crate) fn to_rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("format_version", self.format_version.to_string()),
            ("event_schema", self.event_schema.to_string()),
            ("xdv_version", self.xdv_version.clone()),
            ("engine", self.engine.clone()),
            ("seed", self.seed.to_string()),
            ("manifest_name", self.manifest_name.clone()),
            ("manifest_text", self.manifest_text.clone()),
            (
                "modules",
                serde_json::to_string(
                    &self
                        .modules
                        .iter()
                        .map(|m| (&m.name, m.hash.to_hex()))
                        .collect::<Vec<_>>(),
                )
                .expect("json"),
            ),
        ]
    }

    pub(crate) fn from_rows(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let need = |k: &str| get(k).ok_or_else(|| format!("header key `{k}` missing"));
        let num = |k: &str| -> Result<u64, String> {
            need(k)?
                .parse()
                .map_err(|_| format!("header key `{k}` is not a number"))
        };
        let modules: Vec<(String, String)> = serde_json::from_str(&need("modules")?)
            .map_err(|e| format!("header key `modules`: {e}"))?;
        let modules = modules
            .into_iter()
            .map(|(name, hex)| {
                Hash32::from_hex(&hex)
                    .map(|hash| ModuleEntry { name, hash })
                    .ok_or_else(|| format!("bad module hash {hex:?}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            format_version: num("format_version")? as u32,
            event_schema: num("event_schema")? as u32,
            xdv_version: need("xdv_version")?,
            engine: need("engine")?,
            seed: num("seed")?,
            manifest_name: need("manifest_name")?,
            manifest_text: need("manifest_text")?,
            modules,
        })
    }
}
