//! The service part of a manifest: `[serve]` (how `xdv serve` listens, paces and limits) and
//! `[[tenant]]` (who may use the host, with what root budget). Documented in `docs/serve.md`.

use crate::raw::{Ctx, S};
use crate::size::ByteSize;
use crate::ManifestError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How virtual time moves in `xdv serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// As fast as the host can run; an idle host waits for the next request.
    FreeRun,
    /// Virtual time follows wall time × `factor`; an idle host sleeps.
    Paced {
        /// Virtual nanoseconds per wall nanosecond (at least 1).
        factor: u64,
    },
}

/// `[serve]`: the service's settings. Only `epoch_ns` affects what the host does (requests
/// take effect at its multiples); the rest shapes the network side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSpec {
    /// Default listen address (`--listen` overrides it).
    pub listen: String,
    /// Free-run or paced.
    pub mode: ServeMode,
    /// Virtual time between two request points, ns.
    pub epoch_ns: u64,
    /// BLAKE3 (hex) of the operator's token.
    pub operator_token_hash: Option<String>,
    /// Largest request body, bytes (413 above).
    pub max_body_bytes: u64,
    /// Requests per second each tenant may make, sustained (429 above).
    pub requests_per_s: u32,
    /// Requests a tenant may make at once.
    pub request_burst: u32,
    /// VHM creations per second each tenant may make, sustained (429 above).
    pub creates_per_s: u32,
    /// VHM creations a tenant may make at once.
    pub create_burst: u32,
    /// Open event streams per tenant (429 above).
    pub max_streams: u32,
    /// Time a client has to send a request's headers, ms.
    pub header_timeout_ms: u64,
    /// Time a request may take before it is answered 408, ms (event streams excepted).
    pub request_timeout_ms: u64,
    /// Threads the HTTP side runs on; the hypervisor has its own.
    pub api_threads: u32,
}

/// Defaults of `[serve]`, documented in `docs/serve.md`.
pub mod serve_defaults {
    /// Loopback only.
    pub const LISTEN: &str = "127.0.0.1:7914";
    /// 1 ms of virtual time between request points.
    pub const EPOCH_NS: u64 = 1_000_000;
    /// 4 MiB: room for a guest module.
    pub const MAX_BODY_BYTES: u64 = 4 << 20;
    /// Sustained requests per second per tenant.
    pub const REQUESTS_PER_S: u32 = 200;
    /// Burst of requests per tenant.
    pub const REQUEST_BURST: u32 = 400;
    /// Sustained VHM creations per second per tenant.
    pub const CREATES_PER_S: u32 = 50;
    /// Burst of VHM creations per tenant.
    pub const CREATE_BURST: u32 = 100;
    /// Open event streams per tenant.
    pub const MAX_STREAMS: u32 = 16;
    /// Header timeout, ms.
    pub const HEADER_TIMEOUT_MS: u64 = 5_000;
    /// Request timeout, ms.
    pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
    /// One API thread: on a small machine the hypervisor thread keeps a CPU to itself.
    pub const API_THREADS: u32 = 1;
}

/// A tenant (`[[tenant]]`): a name, the hash of its token and its root budget. Its VHMs are
/// carved from that budget as children are carved from a parent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    /// Unique name.
    pub name: String,
    /// BLAKE3 (hex) of its bearer token.
    pub token_hash: String,
    /// Fuel all its VHMs may consume, together, ever.
    pub fuel: u64,
    /// Memory quotas its live VHMs may hold together, bytes.
    pub memory: u64,
    /// vCPUs its live VHMs (and their descendants) may hold together.
    pub vcpus: u32,
    /// Live VHMs it may have at once.
    pub max_vhms: u32,
    /// Deepest privilege level its VHMs' descendants may reach (its own VHMs are level 1).
    pub max_level: u32,
    /// Logical qubits per device its live VHMs may hold together.
    pub qubits: BTreeMap<String, u32>,
    /// Φ port-time its live VHMs may hold together, ns.
    pub phi_port_time: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServe {
    listen: Option<S<String>>,
    mode: Option<S<String>>,
    pace: Option<S<u64>>,
    epoch_ns: Option<S<u64>>,
    operator_token_hash: Option<S<String>>,
    max_body_bytes: Option<S<ByteSize>>,
    requests_per_s: Option<S<u64>>,
    request_burst: Option<S<u64>>,
    creates_per_s: Option<S<u64>>,
    create_burst: Option<S<u64>>,
    max_streams: Option<S<u64>>,
    header_timeout_ms: Option<S<u64>>,
    request_timeout_ms: Option<S<u64>>,
    api_threads: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    name: S<String>,
    token_hash: S<String>,
    fuel: Option<S<u64>>,
    memory: Option<S<ByteSize>>,
    vcpus: Option<S<u64>>,
    max_vhms: Option<S<u64>>,
    max_level: Option<S<u64>>,
    qubits: Option<BTreeMap<String, S<u64>>>,
    phi_port_time: Option<S<u64>>,
}

/// A token hash: 64 lowercase hex digits.
fn token_hash(cx: &Ctx<'_>, s: &S<String>, key: &str) -> Result<String, ManifestError> {
    let h = s.get_ref();
    if h.len() == 64
        && h.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    {
        return Ok(h.clone());
    }
    Err(cx.err(
        s.span(),
        key,
        "a token hash is 64 lowercase hex digits, as `xdv serve token` prints",
    ))
}

/// Validates `[serve]`.
pub(crate) fn serve_spec(cx: &Ctx<'_>, r: &RawServe) -> Result<ServeSpec, ManifestError> {
    use serve_defaults as d;
    let pace = cx.ranged(&r.pace, "serve.pace", 1, 1, 1_000_000_000)?;
    let mode = match &r.mode {
        None => ServeMode::FreeRun,
        Some(s) => match s.get_ref().as_str() {
            "free-run" => ServeMode::FreeRun,
            "paced" => ServeMode::Paced { factor: pace },
            other => {
                return Err(cx.err(
                    s.span(),
                    "serve.mode",
                    format!("{other:?}: expected \"free-run\" or \"paced\""),
                ))
            }
        },
    };
    let small = |v: &Option<S<u64>>, key: &str, default: u32| -> Result<u32, ManifestError> {
        Ok(cx.ranged(v, key, u64::from(default), 1, 1_000_000)? as u32)
    };
    let max_body_bytes = match &r.max_body_bytes {
        None => d::MAX_BODY_BYTES,
        Some(s) if (1024..=(64 << 20)).contains(&s.get_ref().0) => s.get_ref().0,
        Some(s) => {
            return Err(cx.err(
                s.span(),
                "serve.max_body_bytes",
                "must be between 1 KiB and 64 MiB",
            ))
        }
    };
    Ok(ServeSpec {
        listen: r
            .listen
            .as_ref()
            .map_or(d::LISTEN.to_string(), |s| s.get_ref().clone()),
        mode,
        epoch_ns: cx.ranged(&r.epoch_ns, "serve.epoch_ns", d::EPOCH_NS, 1_000, 1 << 40)?,
        operator_token_hash: r
            .operator_token_hash
            .as_ref()
            .map(|s| token_hash(cx, s, "serve.operator_token_hash"))
            .transpose()?,
        max_body_bytes,
        requests_per_s: small(&r.requests_per_s, "serve.requests_per_s", d::REQUESTS_PER_S)?,
        request_burst: small(&r.request_burst, "serve.request_burst", d::REQUEST_BURST)?,
        creates_per_s: small(&r.creates_per_s, "serve.creates_per_s", d::CREATES_PER_S)?,
        create_burst: small(&r.create_burst, "serve.create_burst", d::CREATE_BURST)?,
        max_streams: small(&r.max_streams, "serve.max_streams", d::MAX_STREAMS)?,
        header_timeout_ms: cx.ranged(
            &r.header_timeout_ms,
            "serve.header_timeout_ms",
            d::HEADER_TIMEOUT_MS,
            10,
            600_000,
        )?,
        request_timeout_ms: cx.ranged(
            &r.request_timeout_ms,
            "serve.request_timeout_ms",
            d::REQUEST_TIMEOUT_MS,
            10,
            3_600_000,
        )?,
        api_threads: cx.ranged(
            &r.api_threads,
            "serve.api_threads",
            u64::from(d::API_THREADS),
            1,
            64,
        )? as u32,
    })
}

/// Validates the `[[tenant]]` tables (the host checks the Q device names, which it knows).
pub(crate) fn tenant_specs(
    cx: &Ctx<'_>,
    raw: &[S<RawTenant>],
) -> Result<Vec<TenantSpec>, ManifestError> {
    let mut out: Vec<TenantSpec> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let t = t.get_ref();
        let key = |k: &str| format!("tenant[{i}].{k}");
        let name = t.name.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !ok || out.iter().any(|o| o.name == *name) {
            return Err(cx.err(
                t.name.span(),
                key("name"),
                format!("{name:?}: tenant names are unique, 1 to 32 of A-Z a-z 0-9 _ -"),
            ));
        }
        let token_hash = token_hash(cx, &t.token_hash, &key("token_hash"))?;
        if out.iter().any(|o| o.token_hash == token_hash) {
            return Err(cx.err(
                t.token_hash.span(),
                key("token_hash"),
                "another tenant has this token",
            ));
        }
        let mut qubits = BTreeMap::new();
        for (device, n) in t.qubits.iter().flatten() {
            let n = cx.ranged(
                &Some(n.clone()),
                &key(&format!("qubits.{device}")),
                0,
                0,
                4096,
            )?;
            qubits.insert(device.clone(), n as u32);
        }
        out.push(TenantSpec {
            name: name.clone(),
            token_hash,
            fuel: cx.ranged(&t.fuel, &key("fuel"), 1_000_000_000, 1, u64::MAX / 4)?,
            memory: match &t.memory {
                None => 64 << 20,
                Some(m) => m.get_ref().0,
            },
            vcpus: cx.ranged(&t.vcpus, &key("vcpus"), 16, 1, 4096)? as u32,
            max_vhms: cx.ranged(&t.max_vhms, &key("max_vhms"), 16, 1, 4096)? as u32,
            max_level: cx.ranged(&t.max_level, &key("max_level"), 1, 1, 8)? as u32,
            qubits,
            phi_port_time: cx.ranged(&t.phi_port_time, &key("phi_port_time"), 0, 0, 1 << 62)?,
        });
    }
    Ok(out)
}
