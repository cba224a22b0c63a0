//! `xdv q run`, `xdv q check`, `xdv q providers`: circuits on the built-in providers.

use crate::{table, Outcome, Provider};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use xdv_q::density::{self, Calibration};
use xdv_q::{qasm, statevector};

pub(crate) fn run(
    path: &Path,
    shots: u64,
    seed: u64,
    probabilities: bool,
    provider: Provider,
    as_json: bool,
) -> Result<Outcome> {
    let circuit = qasm::parse_file(path)?;
    let (qubits, clbits) = (circuit.num_qubits(), circuit.num_clbits());
    if probabilities {
        // Amplitudes carry rounding noise around 1e-33; outcomes below 1e-14 are zero.
        let dist = match provider {
            Provider::Statevector => statevector::distribution(&circuit),
            Provider::Density => density::distribution(&circuit, &Calibration::DEFAULT),
        };
        let dist: std::collections::BTreeMap<String, f64> = dist
            .with_context(|| path.display().to_string())?
            .into_iter()
            .filter(|(_, p)| *p > 1e-14)
            .collect();
        if as_json {
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "circuit": path.display().to_string(), "qubits": qubits, "clbits": clbits, "probabilities": dist })
                )?
            );
        } else {
            let rows: Vec<Vec<String>> = dist
                .iter()
                .map(|(k, p)| vec![k.clone(), format!("{p:.12}")])
                .collect();
            outln!(
                "{} ({qubits} qubits, {clbits} bits): exact distribution",
                path.display()
            );
            out!("{}", table::render(&["outcome", "probability"], &rows));
        }
        return Ok(Outcome::Ok);
    }
    let counts =
        statevector::run(&circuit, shots, seed).with_context(|| path.display().to_string())?;
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "circuit": path.display().to_string(), "qubits": qubits, "clbits": clbits, "shots": shots, "seed": seed, "counts": counts })
            )?
        );
    } else {
        let rows: Vec<Vec<String>> = counts
            .iter()
            .map(|(k, n)| vec![k.clone(), n.to_string()])
            .collect();
        outln!(
            "{} ({qubits} qubits, {clbits} bits): {shots} shots, seed {seed}",
            path.display()
        );
        out!("{}", table::render(&["outcome", "count"], &rows));
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
        outln!("\n`xdv q run --provider statevector|density` runs a circuit standalone; `[vhm.q] device = \"…\"` gives a VHM a container on a device.");
    }
    Ok(Outcome::Ok)
}
