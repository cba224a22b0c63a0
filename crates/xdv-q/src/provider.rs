//! Providers and the devices they describe (DESIGN §6).
//!
//! A provider executes circuits on one device. The device is the provider's description: qubit
//! count and coupling map, native gates, gate and measurement durations, gate and readout errors,
//! T1/T2. From those figures the device derives, once, the integer cost table
//! ([`Costs`]) that decoherence budgets are charged from, so admission never depends on float
//! arithmetic at run time.
//!
//! Built in: `statevector` devices (exact, noiseless simulation; their error figures describe the
//! hardware they model and drive only the budget), `ideal-grid-f32` (the same in single
//! precision) and the `density` devices (thermal relaxation
//! and readout error simulated, after qiskit-aer's models).

use crate::circuit::Circuit;
use crate::density::{self, Calibration};
use crate::device::Coupling;
use crate::statevector::{self, Options, Precision, SimError};
use xdv_core::refusal::QUnsupported;

/// Which simulator executes a device's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Exact state vector, noiseless, in f64.
    Statevector,
    /// Exact state vector, noiseless, in f32: half the memory per amplitude.
    StatevectorF32,
    /// Density matrix with thermal relaxation and readout error.
    Density,
}

impl Engine {
    /// The provider's name.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Statevector => "statevector",
            Engine::StatevectorF32 => "statevector-f32",
            Engine::Density => "density",
        }
    }

    /// The most qubits one job may use.
    pub fn max_qubits(&self) -> usize {
        match self {
            Engine::Statevector => statevector::MAX_QUBITS,
            Engine::StatevectorF32 => statevector::MAX_QUBITS_F32,
            Engine::Density => density::MAX_QUBITS,
        }
    }
}

/// Durations of the device's operations, in ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// One-qubit gate.
    pub gate_1q_ns: u64,
    /// Two-qubit gate (one CX).
    pub gate_2q_ns: u64,
    /// Measurement.
    pub measure_ns: u64,
    /// Reset.
    pub reset_ns: u64,
}

/// Error figures of the device (probabilities).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Errors {
    /// Error per one-qubit gate.
    pub gate_1q: f64,
    /// Error per two-qubit gate.
    pub gate_2q: f64,
    /// P(read 1 | prepared 0).
    pub readout_p01: f64,
    /// P(read 0 | prepared 1).
    pub readout_p10: f64,
}

/// The device's decoherence costs in integer micro-units of log-fidelity (DESIGN §6:
/// L = Σ −ln(1−ε_gate) + Σ −ln(1−ε_readout) + Σ_q t_q/T2_q).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// −ln(1 − ε₁) × 10⁶, rounded.
    pub gate_1q: u64,
    /// −ln(1 − ε₂) × 10⁶, rounded.
    pub gate_2q: u64,
    /// −ln(1 − ε_readout) × 10⁶ with ε_readout the mean of the two readout errors, rounded.
    pub readout: u64,
    /// T2 in ns: a qubit held for t ns costs ⌊t × 10⁶ / T2⌋.
    pub t2_ns: u64,
}

/// A device: what a provider describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Its name (`[vhm.q] device`).
    pub name: &'static str,
    /// The simulator behind it.
    pub engine: Engine,
    /// Its coupling map.
    pub coupling: Coupling,
    /// Native gates: what a job is compiled to (U and CX; cp, cz and swap decompose to CX).
    pub native_gates: &'static [&'static str],
    /// Operation durations.
    pub timing: Timing,
    /// Error figures.
    pub errors: Errors,
    /// Energy relaxation time T1, ns.
    pub t1_ns: u64,
    /// Dephasing time T2, ns.
    pub t2_ns: u64,
    /// One line for `xdv q providers`.
    pub summary: &'static str,
}

/// −ln(1 − ε) in micro-units, rounded. Computed once per device.
fn log_cost(e: f64) -> u64 {
    (-(1.0 - e).ln() * 1e6).round() as u64
}

impl Device {
    /// Its qubit count.
    pub fn qubits(&self) -> usize {
        self.coupling.graph().0
    }

    /// The integer cost table decoherence budgets are charged from.
    pub fn costs(&self) -> Costs {
        Costs {
            gate_1q: log_cost(self.errors.gate_1q),
            gate_2q: log_cost(self.errors.gate_2q),
            readout: log_cost((self.errors.readout_p01 + self.errors.readout_p10) / 2.0),
            t2_ns: self.t2_ns.max(1),
        }
    }

    /// The noise model the density engine simulates for this device.
    pub fn calibration(&self) -> Calibration {
        Calibration {
            gate_1q_ns: self.timing.gate_1q_ns as f64,
            gate_2q_ns: self.timing.gate_2q_ns as f64,
            t1_ns: self.t1_ns as f64,
            t2_ns: self.t2_ns as f64,
            readout_p01: self.errors.readout_p01,
            readout_p10: self.errors.readout_p10,
        }
    }

    /// Describes the coupling map: `grid 6×6`, `heavy-hex 3×11`, ….
    pub fn topology(&self) -> String {
        match self.coupling {
            Coupling::Line(n) => format!("line {n}"),
            Coupling::Ring(n) => format!("ring {n}"),
            Coupling::Grid(r, c) => format!("grid {r}×{c}"),
            Coupling::HeavyHex { rows, width } => format!("heavy-hex {rows}×{width}"),
        }
    }
}

/// How a job's simulation work is counted. A trace re-executes under the model of its event
/// schema, so a trace recorded before the fused kernels replays as it was charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkModel {
    /// Event schemas up to 7: one pass over the state per operation.
    PerOperation,
    /// Event schema 8 on: the fused plan's passes and multiply-adds
    /// ([`statevector::PlanStats::work`]).
    #[default]
    Fused,
}

impl WorkModel {
    /// The model of traces of event schema `schema`.
    pub fn of_schema(schema: u32) -> WorkModel {
        if schema >= 8 {
            WorkModel::Fused
        } else {
            WorkModel::PerOperation
        }
    }
}

/// Executes jobs on one device.
pub trait Provider: Send + Sync {
    /// The device it drives.
    fn device(&self) -> &Device;

    /// Whether the provider runs `circuit` at all, decided from the circuit alone (so a replay,
    /// which runs no provider, takes the same decision); the reason when not. A circuit it
    /// accepts never fails in [`Provider::execute`].
    fn accepts(&self, circuit: &Circuit) -> Result<(), QUnsupported>;

    /// The host work of [`Provider::execute`] on `circuit` for `shots` shots, in amplitude
    /// updates, decided from the circuit alone (admission charges it before the job runs, and a
    /// replay decides alike) under the trace's `model`. Saturates at `u64::MAX`. Once the work
    /// is known to exceed `limit` (what the VHM can pay), the provider may stop counting and
    /// return any value above `limit`.
    fn work(&self, circuit: &Circuit, shots: u64, model: WorkModel, limit: u64) -> u64;

    /// The bytes of simulation state [`Provider::execute`] holds while it runs `circuit`.
    /// Saturates at `u64::MAX`.
    fn state_bytes(&self, circuit: &Circuit) -> u64;

    /// Runs `shots` shots of `circuit` (on the job's logical qubits, from |0…0⟩) and hands each
    /// shot's classical bits to `each`, in shot order. Shot `i` draws only from the stream
    /// seeded by `(seed, i)`.
    fn execute(
        &self,
        circuit: &Circuit,
        shots: u64,
        seed: u64,
        each: &mut dyn FnMut(&[bool]),
    ) -> Result<(), SimError>;
}

/// A provider backed by one of the built-in simulators.
#[derive(Debug, Clone)]
pub struct Simulator {
    device: Device,
}

impl Simulator {
    /// A simulator for `device`.
    pub fn new(device: Device) -> Self {
        Self { device }
    }
}

impl Provider for Simulator {
    fn device(&self) -> &Device {
        &self.device
    }

    fn accepts(&self, circuit: &Circuit) -> Result<(), QUnsupported> {
        let max = self.device.engine.max_qubits();
        if circuit.num_qubits() > max {
            return Err(QUnsupported::ProviderQubits {
                declared: u32::try_from(circuit.num_qubits()).unwrap_or(u32::MAX),
                max: u32::try_from(max).unwrap_or(u32::MAX),
            });
        }
        if self.device.engine == Engine::Density && !circuit.measurements_are_terminal() {
            return Err(QUnsupported::NeedsTerminalMeasurement);
        }
        Ok(())
    }

    fn work(&self, circuit: &Circuit, shots: u64, model: WorkModel, limit: u64) -> u64 {
        let n = circuit.num_qubits() as u32;
        let ops = circuit.ops.len() as u64;
        let pow = |base: u64, e: u32| base.checked_pow(e).unwrap_or(u64::MAX);
        let terminal = circuit.measurements_are_terminal();
        let precision = match self.device.engine {
            Engine::Statevector => Precision::F64,
            Engine::StatevectorF32 => Precision::F32,
            Engine::Density => {
                // 4ⁿ matrix entries per operation and noise channel; each shot scans the
                // distribution of up to 2ⁿ outcomes. The fused density plan is charged as the
                // unfused one: its per-operation passes bound it.
                return ops
                    .saturating_add(1)
                    .saturating_mul(2)
                    .saturating_mul(pow(4, n))
                    .saturating_add(shots.saturating_mul(pow(2, n)));
            }
        };
        // The state passes: one per operation (event schemas up to 7), or the fused plan's.
        let passes = match model {
            WorkModel::PerOperation => ops.saturating_add(1).saturating_mul(pow(2, n)),
            WorkModel::Fused => {
                // Planning stops once the part planned costs more than the limit allows (per
                // shot when every shot re-runs the circuit).
                let per_run = if terminal {
                    limit
                } else {
                    limit / shots.max(1)
                };
                statevector::Plan::work_within(circuit, &Options::new(precision), per_run)
                    // Refused by `accepts` before it is charged.
                    .unwrap_or(u64::MAX)
            }
        };
        // Then each shot samples the distribution (a binary search), or, with mid-circuit
        // measurement, re-runs the circuit.
        if terminal {
            passes.saturating_add(shots.saturating_mul(u64::from(n) + 1))
        } else {
            shots.saturating_mul(passes)
        }
    }

    fn state_bytes(&self, circuit: &Circuit) -> u64 {
        let n = circuit.num_qubits() as u32;
        // One complex f64 (16 bytes) or f32 (8 bytes) per amplitude or matrix entry.
        let (entries, bytes) = match self.device.engine {
            Engine::Statevector => (2u64.checked_pow(n), 16),
            Engine::StatevectorF32 => (2u64.checked_pow(n), 8),
            Engine::Density => (4u64.checked_pow(n), 16),
        };
        entries.map_or(u64::MAX, |e| e.saturating_mul(bytes))
    }

    fn execute(
        &self,
        circuit: &Circuit,
        shots: u64,
        seed: u64,
        each: &mut dyn FnMut(&[bool]),
    ) -> Result<(), SimError> {
        match self.device.engine {
            Engine::Statevector => statevector::sample(circuit, shots, seed, each),
            Engine::StatevectorF32 => {
                statevector::sample_with(circuit, shots, seed, &Options::new(Precision::F32), each)
            }
            Engine::Density => {
                density::sample(circuit, &self.device.calibration(), shots, seed, each)
            }
        }
    }
}

const NATIVE: &[&str] = &["u", "cx", "measure", "reset", "barrier"];

/// The built-in devices, in `xdv q providers` order.
// Long by design: a table: each built-in device's calibration, written out.
pub fn builtin_devices() -> Vec<Device> {
    let mut devices = vec![
        Device {
            name: "ideal-grid",
            engine: Engine::Statevector,
            coupling: Coupling::Grid(6, 6),
            native_gates: NATIVE,
            timing: Timing {
                gate_1q_ns: 35,
                gate_2q_ns: 300,
                measure_ns: 1_000,
                reset_ns: 1_000,
            },
            errors: Errors {
                gate_1q: 2e-4,
                gate_2q: 5e-3,
                readout_p01: 0.01,
                readout_p10: 0.02,
            },
            t1_ns: 100_000,
            t2_ns: 120_000,
            summary: "exact state vector on a 6×6 grid; error figures drive the budget only",
        },
        Device {
            name: "heavy-hex",
            engine: Engine::Statevector,
            coupling: Coupling::HeavyHex { rows: 3, width: 11 },
            native_gates: NATIVE,
            timing: Timing {
                gate_1q_ns: 35,
                gate_2q_ns: 400,
                measure_ns: 1_500,
                reset_ns: 1_500,
            },
            errors: Errors {
                gate_1q: 3e-4,
                gate_2q: 8e-3,
                readout_p01: 0.015,
                readout_p10: 0.025,
            },
            t1_ns: 120_000,
            t2_ns: 90_000,
            summary: "exact state vector on an IBM-style heavy-hex lattice; error figures drive the budget only",
        },
        Device {
            name: "noisy-line",
            engine: Engine::Density,
            coupling: Coupling::Line(12),
            native_gates: NATIVE,
            timing: Timing {
                gate_1q_ns: 50,
                gate_2q_ns: 300,
                measure_ns: 1_000,
                reset_ns: 1_000,
            },
            errors: Errors {
                gate_1q: 1e-3,
                gate_2q: 1e-2,
                readout_p01: 0.02,
                readout_p10: 0.04,
            },
            t1_ns: 50_000,
            t2_ns: 70_000,
            summary: "density matrix with T1/T2 thermal relaxation and readout error simulated",
        },
        Device {
            name: "noisy-ring",
            engine: Engine::Density,
            coupling: Coupling::Ring(10),
            native_gates: NATIVE,
            timing: Timing {
                gate_1q_ns: 40,
                gate_2q_ns: 250,
                measure_ns: 800,
                reset_ns: 800,
            },
            errors: Errors {
                gate_1q: 5e-4,
                gate_2q: 7e-3,
                readout_p01: 0.015,
                readout_p10: 0.03,
            },
            t1_ns: 80_000,
            t2_ns: 100_000,
            summary: "density matrix on a ring of 10 with T1/T2 thermal relaxation and readout error simulated",
        },
    ];
    // Appended last, so the indices of the devices before it never change.
    let f32_grid = Device {
        name: "ideal-grid-f32",
        engine: Engine::StatevectorF32,
        summary: "ideal-grid in single precision: half the host memory per job, distributions within 1e-5 of f64",
        ..devices
            .iter()
            .find(|d| d.name == "ideal-grid")
            .expect("ideal-grid is built in")
            .clone()
    };
    devices.push(f32_grid);
    devices
}

/// The built-in device called `name`.
pub fn find_device(name: &str) -> Option<Device> {
    builtin_devices().into_iter().find(|d| d.name == name)
}

/// The seed of a job's shot streams: a hash of the Q seed, the owning VHM's name and the job's
/// number, so a job's outcomes depend on nothing else (not on neighbours, not on timing).
pub fn job_seed(q_seed: u64, vhm: &str, job: u32) -> u64 {
    let mut m = b"xdv-q-job".to_vec();
    m.extend_from_slice(&q_seed.to_le_bytes());
    m.extend_from_slice(&(vhm.len() as u64).to_le_bytes());
    m.extend_from_slice(vhm.as_bytes());
    m.extend_from_slice(&job.to_le_bytes());
    u64::from_le_bytes(
        blake3::hash(&m).as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_devices_have_consistent_figures() {
        for d in builtin_devices() {
            assert!(d.qubits() > 0, "{}", d.name);
            assert!(d.t2_ns <= 2 * d.t1_ns, "{}: T2 ≤ 2·T1", d.name);
            let c = d.costs();
            assert!(c.gate_2q > c.gate_1q, "{}", d.name);
            assert_eq!(find_device(d.name).as_ref(), Some(&d));
        }
        // −ln(1 − 0.005) = 0.0050125…
        assert_eq!(find_device("ideal-grid").unwrap().costs().gate_2q, 5013);
    }

    #[test]
    fn job_seeds_separate_vhms_and_jobs() {
        let a = job_seed(1, "a", 0);
        assert_ne!(a, job_seed(1, "a", 1));
        assert_ne!(a, job_seed(1, "b", 0));
        assert_ne!(a, job_seed(2, "a", 0));
        assert_eq!(a, job_seed(1, "a", 0));
    }
}
