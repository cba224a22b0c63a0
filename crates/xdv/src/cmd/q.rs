//! `xdv q run`, `xdv q check`, `xdv q providers`: circuits on the built-in providers.

use crate::{table, Outcome, Provider};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use xdv_q::density::{self, Calibration};
use xdv_q::kernels::Isa;
use xdv_q::statevector::{Options, Precision};
use xdv_q::{qasm, statevector};

/// What `xdv q run` was asked.
pub(crate) struct RunArgs {
    pub(crate) shots: u64,
    pub(crate) seed: u64,
    pub(crate) probabilities: bool,
    pub(crate) provider: Provider,
    pub(crate) fusion: usize,
    pub(crate) top: Option<usize>,
    pub(crate) as_json: bool,
}

pub(crate) fn run(path: &Path, args: &RunArgs) -> Result<Outcome> {
    let RunArgs {
        shots,
        seed,
        probabilities,
        provider,
        fusion,
        top,
        as_json,
    } = *args;
    let circuit = qasm::parse_file(path)?;
    let options = |precision| Options {
        fused: fusion,
        ..Options::new(precision)
    };
    // The fused plan of a statevector run, for `--json`.
    let plan = match provider {
        Provider::Statevector => Some(options(Precision::F64)),
        Provider::StatevectorF32 => Some(options(Precision::F32)),
        Provider::Density => None,
    }
    .filter(|_| as_json)
    .and_then(|o| statevector::Plan::new(&circuit, &o).ok())
    .map(|p| {
        let s = p.stats();
        json!({ "fusion": fusion, "gates": s.gates, "steps": s.steps, "passes": s.passes, "macs_per_amplitude": s.macs_per_amplitude, "isa": Isa::detect().name() })
    });
    let (qubits, clbits) = (circuit.num_qubits(), circuit.num_clbits());
    tracing::info!(circuit = %path.display(), qubits, operations = circuit.ops.len(), "simulating");
    let spinner = crate::progress::spinner(&format!(
        "simulating {} ({qubits} qubits, {} operations)",
        path.display(),
        circuit.ops.len()
    ));
    if probabilities {
        // Amplitudes carry rounding noise around 1e-33; outcomes below 1e-14 are zero.
        let dist = match provider {
            Provider::Statevector => {
                statevector::distribution_with(&circuit, &options(Precision::F64))
            }
            Provider::StatevectorF32 => {
                statevector::distribution_with(&circuit, &options(Precision::F32))
            }
            Provider::Density => density::distribution(&circuit, &Calibration::DEFAULT),
        };
        spinner.finish_and_clear();
        let dist: std::collections::BTreeMap<String, f64> = dist
            .with_context(|| path.display().to_string())?
            .into_iter()
            .filter(|(_, p)| *p > 1e-14)
            .collect();
        if as_json {
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "circuit": path.display().to_string(), "qubits": qubits, "clbits": clbits, "plan": plan, "probabilities": dist })
                )?
            );
        } else {
            let ranked = ranked(dist.iter().map(|(k, p)| (k.clone(), *p)), top);
            let rows: Vec<Vec<String>> = ranked
                .shown
                .iter()
                .map(|(k, p)| with_bar(vec![k.clone(), format!("{p:.12}")], *p, ranked.max))
                .collect();
            outln!(
                "{} ({qubits} qubits, {clbits} bits): exact distribution",
                path.display()
            );
            out!(
                "{}",
                table::render(&headers(&["outcome", "probability"]), &rows)
            );
            ranked.footer(true);
        }
        return Ok(Outcome::Ok);
    }
    let counts = match provider {
        Provider::Statevector => {
            statevector::run_with(&circuit, shots, seed, &options(Precision::F64))
        }
        Provider::StatevectorF32 => {
            statevector::run_with(&circuit, shots, seed, &options(Precision::F32))
        }
        Provider::Density => density::run(&circuit, &Calibration::DEFAULT, shots, seed),
    }
    .with_context(|| path.display().to_string())?;
    spinner.finish_and_clear();
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "circuit": path.display().to_string(), "qubits": qubits, "clbits": clbits, "shots": shots, "seed": seed, "plan": plan, "counts": counts })
            )?
        );
    } else {
        let ranked = ranked(counts.iter().map(|(k, n)| (k.clone(), *n as f64)), top);
        let rows: Vec<Vec<String>> = ranked
            .shown
            .iter()
            .map(|(k, n)| with_bar(vec![k.clone(), format!("{n}")], *n, ranked.max))
            .collect();
        outln!(
            "{} ({qubits} qubits, {clbits} bits): {shots} shots, seed {seed}",
            path.display()
        );
        out!("{}", table::render(&headers(&["outcome", "count"]), &rows));
        ranked.footer(false);
    }
    Ok(Outcome::Ok)
}

pub(crate) fn check(paths: &[PathBuf], as_json: bool) -> Result<Outcome> {
    let mut results = Vec::new();
    let mut any_refused = false;
    for p in paths {
        match qasm::parse_file(p) {
            Ok(c) => results.push(json!({ "circuit": p.display().to_string(), "ok": true, "qubits": c.num_qubits(), "clbits": c.num_clbits(), "ops": c.ops.len(), "terminal_measurements": c.measurements_are_terminal() })),
            Err(e) => {
                any_refused = true;
                results.push(json!({ "circuit": p.display().to_string(), "ok": false, "error": e.to_string() }));
            }
        }
    }
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            if r["ok"] == true {
                outln!(
                    "{}: ok ({} qubits, {} bits, {} operations)",
                    r["circuit"].as_str().unwrap_or(""),
                    r["qubits"],
                    r["clbits"],
                    r["ops"]
                );
            } else {
                outln!("{}", r["error"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(if any_refused {
        Outcome::Problem
    } else {
        Outcome::Ok
    })
}

/// Lists the host's devices: what `[vhm.q] device` names.
pub(crate) fn providers(as_json: bool) -> Result<Outcome> {
    let devices = xdv_q::provider::builtin_devices();
    if as_json {
        let list: Vec<_> = devices
            .iter()
            .map(|d| {
                let k = d.costs();
                json!({
                    "device": d.name,
                    "provider": d.engine.name(),
                    "qubits": d.qubits(),
                    "coupling": d.topology(),
                    "max_qubits_per_job": d.engine.max_qubits(),
                    "native_gates": d.native_gates,
                    "gate_1q_ns": d.timing.gate_1q_ns,
                    "gate_2q_ns": d.timing.gate_2q_ns,
                    "measure_ns": d.timing.measure_ns,
                    "reset_ns": d.timing.reset_ns,
                    "error_1q": d.errors.gate_1q,
                    "error_2q": d.errors.gate_2q,
                    "readout_p01": d.errors.readout_p01,
                    "readout_p10": d.errors.readout_p10,
                    "t1_ns": d.t1_ns,
                    "t2_ns": d.t2_ns,
                    "cost_micro": { "gate_1q": k.gate_1q, "gate_2q": k.gate_2q, "readout": k.readout, "t2_ns": k.t2_ns },
                    "model": d.summary,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        let rows: Vec<Vec<String>> = devices
            .iter()
            .map(|d| {
                vec![
                    d.name.to_string(),
                    d.engine.name().to_string(),
                    format!("{} ({})", d.qubits(), d.topology()),
                    d.engine.max_qubits().to_string(),
                    format!(
                        "{}/{}/{} ns",
                        d.timing.gate_1q_ns, d.timing.gate_2q_ns, d.timing.measure_ns
                    ),
                    format!(
                        "{}/{}/{}",
                        d.errors.gate_1q,
                        d.errors.gate_2q,
                        (d.errors.readout_p01 + d.errors.readout_p10) / 2.0
                    ),
                    format!("{}/{} µs", d.t1_ns / 1000, d.t2_ns / 1000),
                ]
            })
            .collect();
        out!(
            "{}",
            table::render(
                &[
                    "device",
                    "provider",
                    "qubits (coupling)",
                    "per job",
                    "1q/2q/measure",
                    "errors 1q/2q/readout",
                    "T1/T2"
                ],
                &rows
            )
        );
        outln!();
        for d in &devices {
            outln!(
                "{}: {}; native gates {}",
                d.name,
                d.summary,
                d.native_gates.join(", ")
            );
        }
        outln!("\n`xdv q run --provider statevector|statevector-f32|density` runs a circuit standalone; `[vhm.q] device = \"…\"` gives a VHM a container on a device.");
    }
    Ok(Outcome::Ok)
}

/// Outcomes in the order a person reads them: most frequent first (ties by key), cut to `top`.
struct Ranked {
    shown: Vec<(String, f64)>,
    hidden: usize,
    hidden_weight: f64,
    max: f64,
}

fn ranked(items: impl Iterator<Item = (String, f64)>, top: Option<usize>) -> Ranked {
    let mut all: Vec<(String, f64)> = items.collect();
    // Ranking is presentation only: the counts themselves come from the seeded simulation.
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let keep = top.unwrap_or(all.len()).min(all.len());
    let rest = all.split_off(keep);
    Ranked {
        max: all.first().map_or(0.0, |x| x.1),
        hidden: rest.len(),
        hidden_weight: rest.iter().map(|x| x.1).sum(),
        shown: all,
    }
}

impl Ranked {
    /// `... 13 more outcomes (673 shots)`, or `(probability 0.786612)`, when `--top` cut any.
    fn footer(&self, probabilities: bool) {
        if self.hidden > 0 {
            let weight = if probabilities {
                format!("probability {:.6}", self.hidden_weight)
            } else {
                format!("{} shots", self.hidden_weight)
            };
            outln!("... {} more outcomes ({weight})", self.hidden);
        }
    }
}

fn on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

/// The table's headers, with a histogram column on a terminal.
fn headers<'a>(base: &[&'a str]) -> Vec<&'a str> {
    let mut h = base.to_vec();
    if on_terminal() {
        h.push("histogram");
    }
    h
}

/// `row` with, on a terminal only, a bar of up to 40 `#` proportional to `v` / `max` (piped
/// output stays a plain two-column table).
fn with_bar(mut row: Vec<String>, v: f64, max: f64) -> Vec<String> {
    if on_terminal() && max > 0.0 {
        row.push("#".repeat(((v / max) * 40.0).round() as usize));
    }
    row
}
