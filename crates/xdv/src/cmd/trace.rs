//! `xdv trace verify | show | accounting | export`.

use crate::Outcome;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use xdv_core::VhmId;
use xdv_trace::Describe;
use xdv_trace::{PublicKey, SecretKey, SignatureStatus, TraceReader, VerifyOptions};

/// The verify options of this xdv: its engine, and the key asked for.
pub(crate) fn verify_options(key: Option<&Path>) -> Result<VerifyOptions> {
    Ok(VerifyOptions {
        engine: Some(xdv_k::ENGINE_ID.to_string()),
        key: key.map(PublicKey::read).transpose()?,
    })
}

pub(crate) fn verify(trace: &Path, key: Option<&Path>, as_json: bool) -> Result<Outcome> {
    let opts = verify_options(key)?;
    let reader = TraceReader::open(trace)?;
    let spinner = crate::progress::spinner(&format!(
        "verifying {} ({} events)",
        trace.display(),
        reader.event_count()?
    ));
    let report = reader.verify_with(&opts)?;
    spinner.finish_and_clear();
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "trace": trace.display().to_string(),
                "intact": report.intact(),
                "complete": report.complete,
                "signature": report.signature,
                "report": report,
            }))?
        );
    } else if let Some(p) = &report.problem {
        outln!(
            "{}: TAMPERED or corrupt: {p} ({} events verified before it)",
            trace.display(),
            report.events_verified
        );
    } else if report.complete {
        outln!(
            "{}: ok: {} events, hash chain intact, final hash {}; {}",
            trace.display(),
            report.events_verified,
            report.head,
            match &report.signature {
                SignatureStatus::Valid { public_key } =>
                    format!("signed by {public_key}, signature valid"),
                _ => "UNSIGNED: the chain shows the trace is consistent, not that its holder did not edit it and recompute the chain".into(),
            }
        );
    } else {
        outln!(
            "{}: CUT SHORT: {} events verified up to the last commit, but the run was cut short (its writer stopped before finishing, or its end was removed): the trace has no final status and no signature, so nothing proves that no events were removed from its end (`xdv run --resume` finishes a run whose writer was killed)",
            trace.display(),
            report.events_verified
        );
    }
    Ok(if !report.intact() {
        Outcome::Problem
    } else if !report.complete {
        Outcome::Incomplete
    } else {
        Outcome::Ok
    })
}

/// Opens a trace for a read-only command (`show`, `accounting`, `export`) and verifies its hash
/// chain before anything is printed. A trace that fails gets a warning on stderr naming the
/// problem; without `force` the command then stops with [`Outcome::Problem`] (`None` here), so
/// altered data is never printed as if it were the run's.
pub(crate) fn open_checked(trace: &Path, force: bool) -> Result<Option<TraceReader>> {
    let reader = TraceReader::open(trace)?;
    let spinner = crate::progress::spinner(&format!("verifying {}", trace.display()));
    let report = reader.verify_with(&VerifyOptions::default())?;
    spinner.finish_and_clear();
    if let Some(p) = &report.problem {
        eprintln!(
            "warning: {}: this trace FAILS verification: {p} ({} events verified before it); what it holds may have been altered{}",
            trace.display(),
            report.events_verified,
            if force { "" } else { " (--force shows it anyway)" }
        );
        if !force {
            return Ok(None);
        }
    }
    Ok(Some(reader))
}

/// `xdv trace keygen OUT`: a new Ed25519 key pair from the operating system's random source.
pub(crate) fn keygen(out: &Path) -> Result<Outcome> {
    use rand_core::RngCore;
    let mut seed = [0u8; 32];
    rand_core::OsRng.try_fill_bytes(&mut seed).map_err(|e| {
        anyhow::anyhow!("drawing a key from the operating system's random source: {e}")
    })?;
    let key = SecretKey::from_seed(seed);
    let public = key.write_pair(out)?;
    outln!(
        "secret key: {} (keep it private: whoever holds it can sign traces)",
        out.display()
    );
    outln!("public key: {} ({})", public.display(), key.public());
    Ok(Outcome::Ok)
}

use xdv_trace::event_json;

/// The id of the VHM named `name` in `trace`, or an error that lists the names it has.
pub(crate) fn vhm_by_name(
    trace: &Path,
    names: &BTreeMap<VhmId, String>,
    name: &str,
) -> Result<VhmId> {
    match names.iter().find(|(_, n)| n.as_str() == name) {
        Some((id, _)) => Ok(*id),
        None => bail!(
            "{}: no VHM named {name:?} (VHMs: {})",
            trace.display(),
            names.values().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Which events `trace show` prints: all of these must hold.
pub(crate) struct ShowFilter<'a> {
    /// The VHM's name.
    pub(crate) vhm: Option<&'a str>,
    /// Event kinds (`EventKind::name`); empty: every kind.
    pub(crate) kinds: &'a [String],
    /// At or after this point.
    pub(crate) since: Option<Bound>,
    /// At or before this point.
    pub(crate) until: Option<Bound>,
}

/// A point of a trace that `--since`/`--until` name: a virtual time (`NS`) or an event's
/// sequence number (`seq:N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Virtual time, ns.
    Time(u64),
    /// Sequence number.
    Seq(u64),
}

impl std::str::FromStr for Bound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let number = |n: &str| {
            n.replace('_', "").parse::<u64>().map_err(|_| {
                format!(
                    "{s:?} is neither a virtual time in ns (12000) nor a sequence number (seq:40)"
                )
            })
        };
        match s.strip_prefix("seq:") {
            Some(n) => number(n).map(Bound::Seq),
            None => number(s).map(Bound::Time),
        }
    }
}

impl Bound {
    /// The event's position on this bound's scale.
    fn of(self, seq: u64, time_ns: u64) -> (u64, u64) {
        match self {
            Bound::Time(t) => (time_ns, t),
            Bound::Seq(n) => (seq, n),
        }
    }
}

pub(crate) fn show(
    trace: &Path,
    f: &ShowFilter<'_>,
    as_json: bool,
    force: bool,
) -> Result<Outcome> {
    let vhm = f.vhm;
    let Some(reader) = open_checked(trace, force)? else {
        return Ok(Outcome::Problem);
    };
    let names: BTreeMap<VhmId, String> = reader.vhm_names()?.into_iter().collect();
    let filter = vhm.map(|n| vhm_by_name(trace, &names, n)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut io_err = None;
    let mut seen_kinds = std::collections::BTreeSet::new();
    if !as_json {
        writeln!(
            out,
            "{:>8} {:>17}  {:<12} EVENT",
            "SEQ", "VIRTUAL TIME", "VHM"
        )?;
    }
    reader.for_each_event(|s| {
        let kind = s.event.kind.name();
        if !f.kinds.is_empty() {
            seen_kinds.insert(kind);
        }
        if (filter.is_some() && s.event.vhm != filter)
            || (!f.kinds.is_empty() && !f.kinds.iter().any(|k| k == kind))
            || f.since.is_some_and(|b| {
                let (at, from) = b.of(s.seq, s.event.time_ns);
                at < from
            })
            || f.until.is_some_and(|b| {
                let (at, to) = b.of(s.seq, s.event.time_ns);
                at > to
            })
        {
            return Ok(true);
        }
        let line = if as_json {
            event_json(&s, &names).to_string()
        } else {
            let who = s.event.vhm.map_or("host".to_string(), |v| {
                names.get(&v).cloned().unwrap_or_else(|| v.to_string())
            });
            format!(
                "{:>8} {:>14} ns  {:<12} {}",
                s.seq,
                s.event.time_ns,
                who,
                s.event.describe()
            )
        };
        if let Err(e) = writeln!(out, "{line}") {
            io_err = Some(e);
            return Ok(false);
        }
        Ok(true)
    })?;
    if !as_json && !reader.is_complete()? {
        writeln!(out, "(trace cut short: the run did not finish)").ok();
    }
    for k in f.kinds.iter().filter(|k| !seen_kinds.contains(k.as_str())) {
        eprintln!(
            "note: {}: no event of kind {k:?} (kinds in this trace: {})",
            trace.display(),
            seen_kinds.iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    match io_err {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Some(e) => return Err(e.into()),
        None => {}
    }
    Ok(Outcome::Ok)
}

pub(crate) fn accounting(trace: &Path, as_json: bool, force: bool) -> Result<Outcome> {
    let Some(reader) = open_checked(trace, force)? else {
        return Ok(Outcome::Problem);
    };
    let (rows, derived) = reader.resource_table()?;
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "trace": trace.display().to_string(), "derived_from_events": derived, "resource_table": rows })
            )?
        );
    } else {
        out!("{}", super::resource_table_text(&rows));
        if derived {
            outln!("(trace cut short: table derived from the committed events; open allocations have no end)");
        }
    }
    Ok(Outcome::Ok)
}

pub(crate) fn export_jsonl(trace: &Path, output: Option<&Path>, force: bool) -> Result<Outcome> {
    let Some(reader) = open_checked(trace, force)? else {
        return Ok(Outcome::Problem);
    };
    let names: BTreeMap<VhmId, String> = reader.vhm_names()?.into_iter().collect();
    let sink: Box<dyn Write> = match output {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(sink);
    let mut io_err = None;
    let bar = crate::progress::bar(reader.event_count()?, "exporting", "events");
    reader.for_each_event(|s| {
        bar.inc(1);
        if let Err(e) = writeln!(out, "{}", event_json(&s, &names)) {
            io_err = Some(e);
            return Ok(false);
        }
        Ok(true)
    })?;
    bar.finish_and_clear();
    out.flush().ok();
    match io_err {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Some(e) => return Err(e.into()),
        None => {}
    }
    Ok(Outcome::Ok)
}

/// One node of the VHM tree.
#[derive(serde::Serialize)]
struct TreeNode {
    id: u32,
    name: String,
    level: u8,
    created_ns: u64,
    exit: Option<String>,
    end_ns: Option<u64>,
    fuel_used: Option<u64>,
    children: Vec<TreeNode>,
}

pub(crate) fn tree(trace: &Path, as_json: bool, force: bool) -> Result<Outcome> {
    use xdv_core::EventKind;
    let Some(reader) = open_checked(trace, force)? else {
        return Ok(Outcome::Problem);
    };
    let mut nodes: BTreeMap<u32, (Option<u32>, TreeNode)> = BTreeMap::new();
    reader.for_each_event(|s| {
        let Some(v) = s.event.vhm else {
            return Ok(true);
        };
        match &s.event.kind {
            EventKind::VhmCreated {
                name,
                parent,
                level,
                ..
            } => {
                let node = TreeNode {
                    id: v.0,
                    name: name.clone(),
                    level: *level,
                    created_ns: s.event.time_ns,
                    exit: None,
                    end_ns: None,
                    fuel_used: None,
                    children: Vec::new(),
                };
                nodes.insert(v.0, (parent.map(|p| p.0), node));
            }
            EventKind::VhmExited { reason, fuel_used } => {
                if let Some((_, n)) = nodes.get_mut(&v.0) {
                    n.exit = Some(reason.to_string());
                    n.end_ns = Some(s.event.time_ns);
                    n.fuel_used = Some(*fuel_used);
                }
            }
            _ => {}
        }
        Ok(true)
    })?;
    // Children were created after their parents: attach from the last id down.
    let ids: Vec<u32> = nodes.keys().rev().copied().collect();
    for id in ids {
        if let Some(Some(p)) = nodes.get(&id).map(|(p, _)| *p) {
            let (_, node) = nodes.remove(&id).expect("present");
            if let Some((_, parent)) = nodes.get_mut(&p) {
                parent.children.insert(0, node);
            }
        }
    }
    let roots: Vec<TreeNode> = nodes.into_values().map(|(_, n)| n).collect();
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "trace": trace.display().to_string(), "vhms": roots })
            )?
        );
        return Ok(Outcome::Ok);
    }
    fn draw(n: &TreeNode, prefix: &str, last: bool, root: bool, out: &mut String) {
        let branch = if root {
            ""
        } else if last {
            "└── "
        } else {
            "├── "
        };
        let exit = n.exit.as_deref().unwrap_or("running (trace cut short)");
        let end = n.end_ns.map(|e| format!(" at {e} ns")).unwrap_or_default();
        out.push_str(&format!(
            "{prefix}{branch}{} (vhm{}, L{}) {exit}{end}\n",
            n.name, n.id, n.level
        ));
        let child_prefix = if root {
            String::new()
        } else {
            format!("{prefix}{}", if last { "    " } else { "│   " })
        };
        for (i, c) in n.children.iter().enumerate() {
            draw(c, &child_prefix, i + 1 == n.children.len(), false, out);
        }
    }
    let mut out = String::new();
    for r in &roots {
        draw(r, "", true, true, &mut out);
    }
    out!("{out}");
    Ok(Outcome::Ok)
}
