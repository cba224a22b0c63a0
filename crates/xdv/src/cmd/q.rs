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

pub(crate) fn providers(as_json: bool) -> Result<Outcome> {
    let c = Calibration::DEFAULT;
    let list = json!([
        { "name": "statevector", "kind": "exact state vector (complex128), noiseless", "max_qubits": statevector::MAX_QUBITS,
          "native": ["U", "CX", "CPhase", "Swap"], "coupling": "all-to-all" },
        { "name": "density", "kind": "density matrix with thermal relaxation and readout error", "max_qubits": density::MAX_QUBITS,
          "native": ["U", "CX", "CPhase", "Swap"], "coupling": "all-to-all",
          "gate_1q_ns": c.gate_1q_ns, "gate_2q_ns": c.gate_2q_ns, "t1_ns": c.t1_ns, "t2_ns": c.t2_ns,
          "readout_p01": c.readout_p01, "readout_p10": c.readout_p10 },
    ]);
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        let rows = vec![
            vec![
                "statevector".into(),
                statevector::MAX_QUBITS.to_string(),
                "exact, noiseless".into(),
            ],
            vec![
                "density".into(),
                density::MAX_QUBITS.to_string(),
                format!(
                    "1q {} ns, 2q {} ns, T1 {} µs, T2 {} µs, readout {}/{}",
                    c.gate_1q_ns,
                    c.gate_2q_ns,
                    c.t1_ns / 1000.0,
                    c.t2_ns / 1000.0,
                    c.readout_p01,
                    c.readout_p10
                ),
            ],
        ];
        out!(
            "{}",
            table::render(&["provider", "max qubits", "model"], &rows)
        );
    }
    Ok(Outcome::Ok)
}
