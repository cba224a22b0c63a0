//! The manifest as written (with source spans), and its validation into [`crate::Manifest`].

use crate::size::ByteSize;
use crate::{
    BadHypercallPolicy, ChannelSpec, FaultPolicy, FaultSpec, FaultTrigger, HostSpec, InjectedFault,
    KSpec, Location, Manifest, ManifestError, PolicySpec, PortSpec, QSpec, VhmSpec, WindowReq,
};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::ops::Range;
use toml::Spanned;
use xdv_core::bounds;

pub(crate) type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    host: Option<S<RawHost>>,
    #[serde(default)]
    vhm: Vec<S<RawVhm>>,
    #[serde(default)]
    channel: Vec<S<RawChannel>>,
    #[serde(default)]
    fault: Vec<S<RawFault>>,
    serve: Option<S<crate::serve::RawServe>>,
    #[serde(default)]
    tenant: Vec<S<crate::serve::RawTenant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    vhm: S<String>,
    at_ns: Option<S<u64>>,
    after_events: Option<S<u64>>,
    class: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    ends: S<Vec<S<String>>>,
    capacity: Option<S<u64>>,
    badges: Option<S<Vec<u64>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHost {
    seed: Option<S<u64>>,
    ns_per_fuel: Option<S<u64>>,
    slice_fuel: Option<S<u64>>,
    time_limit_ns: Option<S<u64>>,
    memory: Option<S<ByteSize>>,
    trace: Option<RawTrace>,
    q: Option<RawHostQ>,
    phi: Option<RawHostPhi>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHostPhi {
    #[serde(default)]
    port: Vec<S<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: S<String>,
    granularity_ns: Option<S<u64>>,
    band: S<Vec<Number>>,
    max_amplitude: Option<S<Number>>,
    t2_ns: S<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVhmPhi {
    #[serde(default)]
    window: Vec<S<RawWindow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    port: S<String>,
    start_ns: S<u64>,
    end_ns: S<u64>,
    band: Option<S<Vec<Number>>>,
    max_amplitude: Option<S<Number>>,
    share: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHostQ {
    seed: Option<S<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQ {
    device: Option<S<String>>,
    qubits: S<u64>,
    budget: Option<S<Number>>,
}

/// A TOML number: decoherence budgets are written in units of log-fidelity, `2` or `0.5`.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    batch_events: Option<S<u64>>,
    durable: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVhm {
    name: S<String>,
    parent: Option<S<String>>,
    k: S<RawK>,
    q: Option<S<RawQ>>,
    phi: Option<RawVhmPhi>,
    policy: Option<S<RawPolicy>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawK {
    vcpus: Option<S<u64>>,
    memory_limit: Option<S<ByteSize>>,
    module: S<String>,
    entry: Option<S<String>>,
    irq_vectors: Option<S<u64>>,
    ipc_vector: Option<S<u64>>,
    fault_vector: Option<S<u64>>,
    modules: Option<Vec<S<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    weight: Option<S<u64>>,
    fuel_quota: Option<S<u64>>,
    memory_quota: Option<S<ByteSize>>,
    on_bad_hypercall: Option<S<String>>,
    max_vcpus: Option<S<u64>>,
    max_depth: Option<S<u64>>,
    max_children: Option<S<u64>>,
    create_channels: Option<bool>,
    on_fault: Option<S<String>>,
    max_restarts: Option<S<u64>>,
    phi_port_time: Option<S<u64>>,
}

/// Default values of optional keys (documented in docs/manifest.md).
pub(crate) mod defaults {
    pub const SEED: u64 = 0;
    pub const NS_PER_FUEL: u64 = 1;
    pub const SLICE_FUEL: u64 = 1_000_000;
    pub const BATCH_EVENTS: u64 = 4096;
    pub const VCPUS: u64 = 1;
    pub const MEMORY_LIMIT: u64 = 1 << 20;
    pub const ENTRY: &str = "main";
    pub const IRQ_VECTORS: u64 = 8;
    pub const WEIGHT: u64 = 1;
    pub const FUEL_QUOTA: u64 = 100_000_000;
    pub const CHILDREN_WHEN_NESTING: u64 = 16;
    pub const CHANNEL_CAPACITY: u64 = 16;
    /// Decoherence budget, micro-units (10 units of log-fidelity).
    pub const Q_BUDGET: u64 = 10_000_000;
}

pub(crate) struct Ctx<'a> {
    pub(crate) text: &'a str,
    pub(crate) file: &'a str,
    /// `k.module` is a module id (a service request), not a file.
    pub(crate) module_ids: bool,
}

impl Ctx<'_> {
    /// The text as written, or its TOML error placed at the key it is in.
    fn raw(&self) -> Result<Raw, ManifestError> {
        toml::from_str(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            self.err(
                span.clone(),
                key_at(self.text, span.start),
                e.message().trim().to_string(),
            )
        })
    }

    /// An interrupt vector the VHM handles: 1 to `irq_vectors − 1` (0 is the timer's).
    fn vector(
        &self,
        v: &Option<S<u64>>,
        key: &str,
        irq_vectors: u32,
    ) -> Result<Option<u32>, ManifestError> {
        match v {
            None => Ok(None),
            Some(s) if *s.get_ref() == 0 => Err(self.err(
                s.span(),
                key,
                "vector 0 is the virtual timer; use 1 or above",
            )),
            Some(s) if *s.get_ref() < u64::from(irq_vectors) => Ok(Some(*s.get_ref() as u32)),
            Some(s) => Err(self.err(
                s.span(),
                key,
                format!(
                    "vector {} does not exist: irq_vectors is {irq_vectors}",
                    s.get_ref()
                ),
            )),
        }
    }

    /// A `[low, high]` band in Hz (whole hertz, low ≤ high).
    fn band(&self, b: &S<Vec<Number>>, key: &str) -> Result<(i64, i64), ManifestError> {
        let v: Vec<f64> = b
            .get_ref()
            .iter()
            .map(|n| match *n {
                Number::Int(i) => i as f64,
                Number::Float(f) => f,
            })
            .collect();
        match v.as_slice() {
            [lo, hi]
                if lo.is_finite()
                    && hi.is_finite()
                    && lo <= hi
                    && lo.abs() < 9e18
                    && hi.abs() < 9e18 =>
            {
                Ok((lo.round() as i64, hi.round() as i64))
            }
            _ => Err(self.err(
                b.span(),
                key,
                "a band is [low, high] in Hz with low ≤ high, e.g. [4.9e9, 5.1e9]",
            )),
        }
    }

    /// An amplitude between 0 and 1, in ppm.
    fn amplitude(&self, a: &S<Number>, key: &str) -> Result<u32, ManifestError> {
        let x = match *a.get_ref() {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        };
        if !(0.0..=1.0).contains(&x) {
            return Err(self.err(
                a.span(),
                key,
                format!("an amplitude is between 0 and 1 (full scale), got {x}"),
            ));
        }
        Ok((x * 1e6).round() as u32)
    }

    fn loc(&self, span: Range<usize>) -> Location {
        let upto = &self.text[..span.start.min(self.text.len())];
        let line = upto.matches('\n').count() + 1;
        let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location { line, col }
    }
    pub(crate) fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        let Location { line, col } = self.loc(span);
        ManifestError {
            file: self.file.to_string(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        }
    }
    /// Checks `lo <= v <= hi` for an optional spanned value, returning the default when absent.
    pub(crate) fn ranged(
        &self,
        v: &Option<S<u64>>,
        key: &str,
        default: u64,
        lo: u64,
        hi: u64,
    ) -> Result<u64, ManifestError> {
        match v {
            None => Ok(default),
            Some(s) if (lo..=hi).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                s.span(),
                key,
                format!("must be between {lo} and {hi}, got {}", s.get_ref()),
            )),
        }
    }
}

/// The dotted key written at byte `at`, qualified by the table header above it: `host.seed` for
/// a value on a `seed = …` line under `[host]`. Empty when `at` is not inside a key/value line.
fn key_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[line_start..line_end];
    let Some(eq) = line.find('=') else {
        return String::new();
    };
    let key = line[..eq].trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return String::new();
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            // `[host]  # comment` and `[[vhm]]` both name their table between the brackets.
            let inner = l.trim_start_matches('[');
            inner[..inner.find(']').unwrap_or(inner.len())]
                .trim()
                .to_string()
        });
    match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    }
}

pub(crate) fn parse(text: &str, file: &str) -> Result<Manifest, ManifestError> {
    let cx = Ctx {
        text,
        file,
        module_ids: false,
    };
    let raw = cx.raw()?;

    let host_raw = raw.host.map(|h| h.into_inner()).unwrap_or_default();
    let host = host_spec(&cx, &host_raw)?;

    let serve = raw
        .serve
        .as_ref()
        .map(|s| crate::serve::serve_spec(&cx, s.get_ref()))
        .transpose()?;
    let tenants = crate::serve::tenant_specs(&cx, &raw.tenant)?;
    if let (None, Some(t)) = (&serve, raw.tenant.first()) {
        return Err(cx.err(
            t.span(),
            "tenant",
            "[[tenant]] tables need a [serve] table: tenants exist only in xdv serve",
        ));
    }
    // A service may start empty: its tenants create the VHMs.
    if raw.vhm.is_empty() && serve.is_none() {
        return Err(cx.err(
            0..0,
            "vhm",
            "the manifest declares no VHM: add at least one [[vhm]] table",
        ));
    }
    let mut names = BTreeSet::new();
    let mut vhms = Vec::with_capacity(raw.vhm.len());
    let mut memory_total: u64 = 0;
    for (i, v) in raw.vhm.iter().enumerate() {
        let v = v.get_ref();
        let key = |k: &str| format!("vhm[{i}].{k}");
        let spec = vhm_spec(&cx, i, v, &host, &vhms, &mut names)?;
        let (parent, name, memory_quota) = (spec.parent, &spec.name, spec.policy.memory_quota);
        if let (Some(pi), Some(pn)) = (parent, &v.parent) {
            check_fits_parent(&vhms, pi, &spec).map_err(|m| cx.err(pn.span(), key("parent"), m))?;
        } else {
            memory_total = memory_total.saturating_add(memory_quota);
        }
        if let (Some(host_mem), Some(hm)) = (host.memory, host_raw.memory.as_ref()) {
            if memory_total > host_mem {
                return Err(cx.err(
                    v.name.span(),
                    key("policy.memory_quota"),
                    format!(
                        "over quota: VHM memory quotas up to {name:?} sum to {}, more than host.memory {} (declared at line {})",
                        ByteSize(memory_total),
                        ByteSize(host_mem),
                        cx.loc(hm.span()).line
                    ),
                ));
            }
        }
        vhms.push(spec);
    }
    let mut channels = Vec::with_capacity(raw.channel.len());
    for (i, c) in raw.channel.iter().enumerate() {
        channels.push(channel_spec(&cx, i, c.get_ref(), &vhms)?);
    }
    let mut faults = Vec::with_capacity(raw.fault.len());
    for (i, table) in raw.fault.iter().enumerate() {
        faults.push(fault_spec(&cx, i, table, &vhms)?);
    }
    Ok(Manifest {
        file: file.to_string(),
        text: text.to_string(),
        host,
        vhms,
        channels,
        faults,
        serve,
        tenants,
    })
}

/// One `[[vhm]]` table sent to `xdv serve` (the only table in `text`), checked as a top-level
/// VHM of a host with `host`'s settings.
pub(crate) fn request_vhm(
    host: &HostSpec,
    text: &str,
    file: &str,
) -> Result<VhmSpec, ManifestError> {
    let cx = Ctx {
        text,
        file,
        module_ids: true,
    };
    let raw = cx.raw()?;
    let extra = raw.host.is_some()
        || !raw.channel.is_empty()
        || !raw.fault.is_empty()
        || raw.serve.is_some()
        || !raw.tenant.is_empty();
    let [v] = raw.vhm.as_slice() else {
        return Err(cx.err(0..0, "vhm", "exactly one VHM is expected"));
    };
    if extra {
        return Err(cx.err(0..0, "vhm", "only a [[vhm]] table is expected"));
    }
    if let Some(p) = &v.get_ref().parent {
        return Err(cx.err(
            p.span(),
            "vhm[0].parent",
            "a VHM created through the API is top-level: children are spawned by their parent",
        ));
    }
    let mut names = BTreeSet::new();
    vhm_spec(&cx, 0, v.get_ref(), host, &[], &mut names)
}

/// One `[[channel]]` table, between VHMs of `vhms`.
fn channel_spec(
    cx: &Ctx<'_>,
    i: usize,
    c: &RawChannel,
    vhms: &[VhmSpec],
) -> Result<ChannelSpec, ManifestError> {
    let key = |k: &str| format!("channel[{i}].{k}");
    let names = c.ends.get_ref();
    if names.len() != 2 {
        return Err(cx.err(
            c.ends.span(),
            key("ends"),
            format!("a channel has exactly two ends, got {}", names.len()),
        ));
    }
    let mut ends = [0usize; 2];
    for (e, n) in names.iter().enumerate() {
        ends[e] = vhms
            .iter()
            .position(|x| x.name == *n.get_ref())
            .ok_or_else(|| {
                cx.err(
                    n.span(),
                    key(&format!("ends[{e}]")),
                    format!("no VHM named {:?}", n.get_ref()),
                )
            })?;
    }
    let capacity = cx.ranged(
        &c.capacity,
        &key("capacity"),
        defaults::CHANNEL_CAPACITY,
        *bounds::CHANNEL_CAPACITY.start(),
        *bounds::CHANNEL_CAPACITY.end(),
    )? as u32;
    let badges = match &c.badges {
        None => [0, 0],
        Some(b) if b.get_ref().len() == 2 => [b.get_ref()[0], b.get_ref()[1]],
        Some(b) => {
            return Err(cx.err(
                b.span(),
                key("badges"),
                "give one badge per end, e.g. [1, 2]",
            ))
        }
    };
    Ok(ChannelSpec {
        ends,
        capacity,
        badges,
    })
}

/// One `[[fault]]` table, into a VHM of `vhms`.
fn fault_spec(
    cx: &Ctx<'_>,
    i: usize,
    table: &S<RawFault>,
    vhms: &[VhmSpec],
) -> Result<FaultSpec, ManifestError> {
    let f = table.get_ref();
    let key = |k: &str| format!("fault[{i}].{k}");
    let vhm = vhms
        .iter()
        .position(|x| x.name == *f.vhm.get_ref())
        .ok_or_else(|| {
            cx.err(
                f.vhm.span(),
                key("vhm"),
                format!("no VHM named {:?}", f.vhm.get_ref()),
            )
        })?;
    let trigger = match (&f.at_ns, &f.after_events) {
        (Some(t), None) => FaultTrigger::AtNs(*t.get_ref()),
        (None, Some(n)) => FaultTrigger::AfterEvents(*n.get_ref()),
        // Both given: point at the second; neither: at the table.
        (Some(_), Some(n)) => {
            return Err(cx.err(
                n.span(),
                key("after_events"),
                "give exactly one of at_ns (virtual time) and after_events (event count)",
            ))
        }
        (None, None) => {
            return Err(cx.err(
                table.span(),
                key("at_ns"),
                "give exactly one of at_ns (virtual time) and after_events (event count)",
            ))
        }
    };
    let Some(&class) = InjectedFault::ALL
        .iter()
        .find(|c| c.name() == f.class.get_ref())
    else {
        let names: Vec<&str> = InjectedFault::ALL.iter().map(|c| c.name()).collect();
        let (last, rest) = names.split_last().expect("classes exist");
        return Err(cx.err(
            f.class.span(),
            key("class"),
            format!(
                "{:?}: expected {} or {last}",
                f.class.get_ref(),
                rest.join(", ")
            ),
        ));
    };
    Ok(FaultSpec {
        vhm,
        trigger,
        class,
    })
}

/// `[host]` and its `[[host.phi.port]]` tables.
// Long by design: one key of the `[host]` table after another, each with its bound and place.
fn host_spec(cx: &Ctx<'_>, host_raw: &RawHost) -> Result<HostSpec, ManifestError> {
    let default_trace = RawTrace::default();
    let trace = host_raw.trace.as_ref().unwrap_or(&default_trace);
    let host = HostSpec {
        seed: host_raw
            .seed
            .as_ref()
            .map_or(defaults::SEED, |s| *s.get_ref()),
        ns_per_fuel: cx.ranged(
            &host_raw.ns_per_fuel,
            "host.ns_per_fuel",
            defaults::NS_PER_FUEL,
            1,
            1_000_000,
        )?,
        slice_fuel: cx.ranged(
            &host_raw.slice_fuel,
            "host.slice_fuel",
            defaults::SLICE_FUEL,
            1,
            1 << 40,
        )?,
        time_limit_ns: match &host_raw.time_limit_ns {
            None => None,
            Some(_) => Some(cx.ranged(
                &host_raw.time_limit_ns,
                "host.time_limit_ns",
                0,
                1,
                u64::MAX / 2,
            )?),
        },
        memory: host_raw.memory.as_ref().map(|m| m.get_ref().0),
        trace_batch_events: cx.ranged(
            &trace.batch_events,
            "host.trace.batch_events",
            defaults::BATCH_EVENTS,
            1,
            1 << 20,
        )? as u32,
        trace_durable: trace.durable.unwrap_or(false),
        q_seed: host_raw
            .q
            .as_ref()
            .and_then(|q| q.seed.as_ref())
            .map(|s| *s.get_ref()),
        phi_ports: Vec::new(),
    };
    let mut host = host;
    for (i, p) in host_raw.phi.iter().flat_map(|h| h.port.iter()).enumerate() {
        let p = p.get_ref();
        let key = |k: &str| format!("host.phi.port[{i}].{k}");
        let name = p.name.get_ref().clone();
        if name.is_empty() || host.phi_ports.iter().any(|x: &PortSpec| x.name == name) {
            return Err(cx.err(
                p.name.span(),
                key("name"),
                format!("{name:?}: port names must be unique and not empty"),
            ));
        }
        let band = cx.band(&p.band, &key("band"))?;
        let max_amp_ppm = match &p.max_amplitude {
            None => 1_000_000,
            Some(a) => cx.amplitude(a, &key("max_amplitude"))?,
        };
        host.phi_ports.push(PortSpec {
            name,
            granularity_ns: cx.ranged(
                &p.granularity_ns,
                &key("granularity_ns"),
                1,
                1,
                1_000_000,
            )?,
            band,
            max_amp_ppm,
            t2_ns: cx.ranged(&Some(p.t2_ns.clone()), &key("t2_ns"), 0, 1, u64::MAX / 4)?,
        });
    }
    Ok(host)
}

/// One `[[vhm]]` table, checked against the host and the VHMs declared above it (`vhms`);
/// `names` collects the names declared so far.
// Long by design: one key of the `[[vhm]]` table after another, each with its bound and place.
fn vhm_spec(
    cx: &Ctx<'_>,
    i: usize,
    v: &RawVhm,
    host: &HostSpec,
    vhms: &[VhmSpec],
    names: &mut BTreeSet<String>,
) -> Result<VhmSpec, ManifestError> {
    let key = |k: &str| format!("vhm[{i}].{k}");
    let name = v.name.get_ref();
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !name_ok {
        return Err(cx.err(
            v.name.span(),
            key("name"),
            format!("{name:?} is not a valid name (1 to 64 of A-Z a-z 0-9 _ - .)"),
        ));
    }
    if !names.insert(name.clone()) {
        return Err(cx.err(
            v.name.span(),
            key("name"),
            format!("duplicate VHM name {name:?}"),
        ));
    }
    let k = k_spec(cx, i, v.k.get_ref())?;
    let empty = RawPolicy::default();
    let p = v.policy.as_ref().map_or(&empty, |p| p.get_ref());
    let parent = match &v.parent {
        None => None,
        Some(pn) => {
            let Some(pi) = vhms.iter().position(|x: &VhmSpec| x.name == *pn.get_ref()) else {
                return Err(cx.err(
                    pn.span(),
                    key("parent"),
                    format!("{:?} is not a VHM declared above this one", pn.get_ref()),
                ));
            };
            Some(pi)
        }
    };
    let q = q_spec(cx, i, v, parent, vhms)?;
    let phi = phi_windows(cx, i, v, host)?;
    let policy = policy_spec(cx, i, p, &k, v.parent.is_some(), &phi)?;
    let spec = VhmSpec {
        name: name.clone(),
        parent,
        k,
        policy,
        q,
        phi,
    };
    if spec.policy.on_fault == FaultPolicy::NotifyParent {
        let at = p.on_fault.as_ref().expect("set").span();
        match parent {
            None => {
                return Err(cx.err(
                    at,
                    key("policy.on_fault"),
                    "notify-parent needs a parent: this VHM is not nested",
                ))
            }
            Some(pi) if vhms[pi].k.fault_vector.is_none() => {
                return Err(cx.err(
                    at,
                    key("policy.on_fault"),
                    format!(
                    "notify-parent: the parent {:?} declares no k.fault_vector to be notified on",
                    vhms[pi].name
                ),
                ))
            }
            _ => {}
        }
    }
    Ok(spec)
}

/// The `[vhm.k]` table of VHM `i`.
fn k_spec(cx: &Ctx<'_>, i: usize, k: &RawK) -> Result<KSpec, ManifestError> {
    let key = |s: &str| format!("vhm[{i}].{s}");
    let vcpus = match &k.vcpus {
        Some(s) if *s.get_ref() == 0 => {
            return Err(cx.err(s.span(), key("k.vcpus"), "a VHM needs at least one vCPU"))
        }
        other => cx.ranged(
            other,
            &key("k.vcpus"),
            defaults::VCPUS,
            *bounds::VCPUS.start(),
            *bounds::VCPUS.end(),
        )?,
    };
    let memory_limit = match &k.memory_limit {
        None => defaults::MEMORY_LIMIT,
        Some(s) => {
            let b = s.get_ref().0;
            if !bounds::memory_limit_ok(b) {
                return Err(cx.err(s.span(), key("k.memory_limit"), format!("must be a whole number of 64 KiB pages between 64 KiB and 4 GiB, got {b} bytes")));
            }
            b
        }
    };
    let module = k.module.get_ref();
    let lower = module.to_ascii_lowercase();
    let is_id = module.len() == 64 && module.chars().all(|c| c.is_ascii_hexdigit());
    if cx.module_ids && !is_id {
        return Err(cx.err(
            k.module.span(),
            key("k.module"),
            format!("{module:?}: the id of an uploaded module (64 hex digits) is expected"),
        ));
    }
    if !(cx.module_ids || lower.ends_with(".wat") || lower.ends_with(".wasm")) {
        return Err(cx.err(
            k.module.span(),
            key("k.module"),
            format!("{module:?}: a guest module must be a .wat or .wasm file"),
        ));
    }
    let entry = match &k.entry {
        None => defaults::ENTRY.to_string(),
        Some(s) if s.get_ref().is_empty() => {
            return Err(cx.err(s.span(), key("k.entry"), "the entry export name is empty"))
        }
        Some(s) => s.get_ref().clone(),
    };
    let irq_vectors = cx.ranged(
        &k.irq_vectors,
        &key("k.irq_vectors"),
        defaults::IRQ_VECTORS,
        1,
        64,
    )? as u32;

    let fault_vector = cx.vector(&k.fault_vector, &key("k.fault_vector"), irq_vectors)?;
    let ipc_vector = match &k.ipc_vector {
        None => (irq_vectors > 1).then_some(1),
        given => cx.vector(given, &key("k.ipc_vector"), irq_vectors)?,
    };
    let mut modules = Vec::new();
    for (j, m) in k.modules.iter().flatten().enumerate() {
        let lower = m.get_ref().to_ascii_lowercase();
        if !(lower.ends_with(".wat") || lower.ends_with(".wasm")) {
            return Err(cx.err(
                m.span(),
                key(&format!("k.modules[{j}]")),
                format!(
                    "{:?}: a guest module must be a .wat or .wasm file",
                    m.get_ref()
                ),
            ));
        }
        modules.push((m.get_ref().clone(), cx.loc(m.span())));
    }
    Ok(KSpec {
        vcpus: vcpus as u32,
        memory_limit,
        module: module.clone(),
        module_at: cx.loc(k.module.span()),
        entry,
        irq_vectors,
        ipc_vector,
        fault_vector,
        modules,
    })
}

/// The `[vhm.policy]` table of VHM `i`, whose K part is `k` (`nested`: it has a parent; `phi`:
/// its static windows, which its port-time must cover).
///
/// Longer than most: one check per key, in the order `docs/manifest.md` lists them, each with
/// its own message; splitting them apart would only scatter the table.
// Long by design: one key of the `[vhm.policy]` table after another, each with its bound and place.
fn policy_spec(
    cx: &Ctx<'_>,
    i: usize,
    p: &RawPolicy,
    k: &KSpec,
    nested: bool,
    phi: &[WindowReq],
) -> Result<PolicySpec, ManifestError> {
    let key = |s: &str| format!("vhm[{i}].{s}");
    let (vcpus, memory_limit) = (u64::from(k.vcpus), k.memory_limit);
    let weight = cx.ranged(
        &p.weight,
        &key("policy.weight"),
        defaults::WEIGHT,
        *bounds::WEIGHT.start(),
        *bounds::WEIGHT.end(),
    )? as u32;
    let fuel_quota = cx.ranged(
        &p.fuel_quota,
        &key("policy.fuel_quota"),
        defaults::FUEL_QUOTA,
        1,
        u64::MAX / 4,
    )?;
    let need = vcpus * memory_limit;
    let memory_quota = match &p.memory_quota {
        // A top-level VHM gets headroom for what the host holds for it; a static child's
        // default is exactly what its vCPUs need, so it fits a parent sized for them.
        None if !nested => need + crate::DEFAULT_MEMORY_HEADROOM,
        None => need,
        Some(s) => {
            let q = s.get_ref().0;
            if need > q {
                return Err(cx.err(
                    s.span(),
                    key("policy.memory_quota"),
                    format!(
                        "over quota: {vcpus} vCPU(s) × memory_limit {} = {} exceeds memory_quota {}",
                        ByteSize(memory_limit),
                        ByteSize(need),
                        ByteSize(q)
                    ),
                ));
            }
            q
        }
    };
    let on_bad_hypercall = match &p.on_bad_hypercall {
        None => BadHypercallPolicy::default(),
        Some(s) => match s.get_ref().as_str() {
            "error" => BadHypercallPolicy::Error,
            "fault" => BadHypercallPolicy::Fault,
            other => {
                return Err(cx.err(
                    s.span(),
                    key("policy.on_bad_hypercall"),
                    format!("{other:?}: expected \"error\" or \"fault\""),
                ))
            }
        },
    };
    let max_vcpus = cx.ranged(&p.max_vcpus, &key("policy.max_vcpus"), vcpus, vcpus, 4096)? as u32;
    let max_depth = cx.ranged(&p.max_depth, &key("policy.max_depth"), 0, 0, 7)? as u32;
    let max_children = cx.ranged(
        &p.max_children,
        &key("policy.max_children"),
        if max_depth > 0 {
            defaults::CHILDREN_WHEN_NESTING
        } else {
            0
        },
        0,
        4096,
    )? as u32;
    let on_fault = match &p.on_fault {
        None => FaultPolicy::Kill,
        Some(s) => match s.get_ref().as_str() {
            "kill" => FaultPolicy::Kill,
            "restart" => FaultPolicy::Restart,
            "notify-parent" => FaultPolicy::NotifyParent,
            other => {
                return Err(cx.err(
                    s.span(),
                    key("policy.on_fault"),
                    format!("{other:?}: expected \"kill\", \"restart\" or \"notify-parent\""),
                ))
            }
        },
    };
    let max_restarts = cx.ranged(
        &p.max_restarts,
        &key("policy.max_restarts"),
        if on_fault == FaultPolicy::Restart {
            3
        } else {
            0
        },
        0,
        1000,
    )? as u32;
    // Port-time: Φ windows a top-level VHM may hold at once, ns summed over its windows.
    let static_port_time = phi
        .iter()
        .fold(0u64, |sum, w: &WindowReq| sum.saturating_add(w.t1 - w.t0));
    let phi_port_time = match &p.phi_port_time {
        None => static_port_time,
        Some(s) if *s.get_ref() < static_port_time => {
            return Err(cx.err(
                s.span(),
                key("policy.phi_port_time"),
                format!(
                    "over quota: the VHM's [[vhm.phi.window]] tables hold {static_port_time} ns, more than phi_port_time {}",
                    s.get_ref()
                ),
            ))
        }
        Some(s) => *s.get_ref(),
    };
    Ok(PolicySpec {
        weight,
        fuel_quota,
        memory_quota,
        on_bad_hypercall,
        max_vcpus,
        max_depth,
        max_children,
        create_channels: p.create_channels.unwrap_or(false),
        on_fault,
        max_restarts,
        phi_port_time,
    })
}

/// The `[vhm.q]` table of VHM `i`, whose parent is `parent` among `vhms`.
fn q_spec(
    cx: &Ctx<'_>,
    i: usize,
    v: &RawVhm,
    parent: Option<usize>,
    vhms: &[VhmSpec],
) -> Result<Option<QSpec>, ManifestError> {
    let key = |s: &str| format!("vhm[{i}].{s}");
    Ok(match &v.q {
        None => None,
        Some(rq) => {
            let rq = rq.get_ref();
            let qubits = *rq.qubits.get_ref();
            if !bounds::Q_QUBITS.contains(&qubits) {
                return Err(cx.err(
                    rq.qubits.span(),
                    key("q.qubits"),
                    format!(
                        "must be between {} and {}, got {qubits}",
                        bounds::Q_QUBITS.start(),
                        bounds::Q_QUBITS.end()
                    ),
                ));
            }
            let budget = match &rq.budget {
                None => defaults::Q_BUDGET,
                Some(b) => {
                    let units = match *b.get_ref() {
                        Number::Int(i) => i as f64,
                        Number::Float(f) => f,
                    };
                    if !(1e-6..=1e6).contains(&units) {
                        return Err(cx.err(
                            b.span(),
                            key("q.budget"),
                            format!("a decoherence budget is a number of log-fidelity units from 0.000001 to 1000000, got {units}"),
                        ));
                    }
                    (units * 1e6).round() as u64
                }
            };
            let device = match (&rq.device, parent) {
                (Some(d), _) => (d.get_ref().clone(), cx.loc(d.span())),
                (None, Some(pi)) => match &vhms[pi].q {
                    Some(pq) => pq.device.clone(),
                    None => {
                        return Err(cx.err(
                            v.q.as_ref().expect("present").span(),
                            key("q"),
                            format!(
                                "{:?} has no Q container to carve a child's qubits from (add [vhm.q] to it)",
                                vhms[pi].name
                            ),
                        ))
                    }
                },
                (None, None) => {
                    return Err(cx.err(
                        v.q.as_ref().expect("present").span(),
                        key("q.device"),
                        "a Q container needs a device (see `xdv q providers`); only a nested VHM inherits its parent's",
                    ))
                }
            };
            Some(QSpec {
                device,
                qubits: qubits as u32,
                qubits_at: cx.loc(rq.qubits.span()),
                budget,
            })
        }
    })
}

/// The `[[vhm.phi.window]]` tables of VHM `i`, on the host's ports.
fn phi_windows(
    cx: &Ctx<'_>,
    i: usize,
    v: &RawVhm,
    host: &HostSpec,
) -> Result<Vec<WindowReq>, ManifestError> {
    let key = |s: &str| format!("vhm[{i}].{s}");
    let mut phi = Vec::new();
    for (j, w) in v.phi.iter().flat_map(|p| p.window.iter()).enumerate() {
        let w = w.get_ref();
        let wkey = |k: &str| key(&format!("phi.window[{j}].{k}"));
        let port = host
            .phi_ports
            .iter()
            .position(|p| p.name == *w.port.get_ref())
            .ok_or_else(|| {
                cx.err(
                    w.port.span(),
                    wkey("port"),
                    format!("no port {:?} in [[host.phi.port]]", w.port.get_ref()),
                )
            })?;
        let (t0, t1) = (*w.start_ns.get_ref(), *w.end_ns.get_ref());
        if t1 <= t0 {
            return Err(cx.err(
                w.end_ns.span(),
                wkey("end_ns"),
                format!("the window [{t0}, {t1}) is empty: end_ns must be after start_ns"),
            ));
        }
        if t1 > crate::TIME_HORIZON_NS {
            return Err(cx.err(
                w.end_ns.span(),
                wkey("end_ns"),
                format!(
                    "{t1} is past the time horizon ({} ns)",
                    crate::TIME_HORIZON_NS
                ),
            ));
        }
        let band = match &w.band {
            None => None,
            Some(b) => Some(cx.band(b, &wkey("band"))?),
        };
        let max_amp_ppm = match &w.max_amplitude {
            None => None,
            Some(a) => Some(cx.amplitude(a, &wkey("max_amplitude"))?),
        };
        phi.push(WindowReq {
            port,
            t0,
            t1,
            band,
            max_amp_ppm,
            shared: w.share.unwrap_or(false),
            at: cx.loc(w.start_ns.span()),
        });
    }
    Ok(phi)
}

/// Checks that a statically nested VHM fits what its parent has left after its earlier children:
/// the same rules `vhm_spawn` applies at run time.
fn check_fits_parent(vhms: &[VhmSpec], parent: usize, child: &VhmSpec) -> Result<(), String> {
    let p = &vhms[parent];
    let siblings: Vec<&VhmSpec> = vhms.iter().filter(|v| v.parent == Some(parent)).collect();
    if p.policy.max_depth == 0 {
        return Err(format!(
            "{:?} may not have children (its policy.max_depth is 0)",
            p.name
        ));
    }
    if child.policy.max_depth >= p.policy.max_depth {
        return Err(format!(
            "nesting depth: a child of {:?} may nest at most {} level(s) below it",
            p.name,
            p.policy.max_depth - 1
        ));
    }
    if siblings.len() as u32 >= p.policy.max_children {
        return Err(format!(
            "child count: {:?} allows {} children",
            p.name, p.policy.max_children
        ));
    }
    let used_vcpus: u32 = p.k.vcpus + siblings.iter().map(|s| s.policy.max_vcpus).sum::<u32>();
    if used_vcpus + child.policy.max_vcpus > p.policy.max_vcpus {
        return Err(format!(
            "over quota: vcpus: {:?} has {} of policy.max_vcpus {} left",
            p.name,
            p.policy.max_vcpus - used_vcpus,
            p.policy.max_vcpus
        ));
    }
    let used_mem: u64 = u64::from(p.k.vcpus) * p.k.memory_limit
        + siblings.iter().map(|s| s.policy.memory_quota).sum::<u64>();
    if used_mem + child.policy.memory_quota > p.policy.memory_quota {
        return Err(format!(
            "over quota: memory: {:?} has {} of policy.memory_quota left",
            p.name,
            ByteSize(p.policy.memory_quota - used_mem)
        ));
    }
    if let Some(cq) = &child.q {
        let Some(pq) = &p.q else {
            return Err(format!(
                "{:?} has no Q container to carve a child's qubits from (add [vhm.q] to it)",
                p.name
            ));
        };
        let (d, pd) = (&cq.device.0, &pq.device.0);
        if d != pd {
            return Err(format!(
                "a child's qubits come from its parent's container on {pd:?}, not {d:?}"
            ));
        }
        let used_q: u32 = siblings
            .iter()
            .filter_map(|s| s.q.as_ref())
            .map(|q| q.qubits)
            .sum();
        if used_q + cq.qubits > pq.qubits {
            return Err(format!(
                "over quota: qubits: {:?} has {} of its {} qubits left",
                p.name,
                pq.qubits - used_q,
                pq.qubits
            ));
        }
        let used_b: u64 = siblings
            .iter()
            .filter_map(|s| s.q.as_ref())
            .map(|q| q.budget)
            .sum();
        if used_b + cq.budget > pq.budget {
            return Err(format!(
                "over quota: decoherence budget: {:?} has {} of its {} µ left",
                p.name,
                pq.budget - used_b,
                pq.budget
            ));
        }
    }
    let used_fuel: u64 = siblings.iter().map(|s| s.policy.fuel_quota).sum();
    if used_fuel + child.policy.fuel_quota > p.policy.fuel_quota {
        return Err(format!(
            "over quota: fuel: {:?} has {} of policy.fuel_quota left",
            p.name,
            p.policy.fuel_quota - used_fuel
        ));
    }
    Ok(())
}
