//! Range checks of the measured inputs a trace records: Q job outcomes and Φ captures.
//!
//! Replay injects these values instead of running providers, so a recorded value is taken on
//! trust unless it is checked against what the trace says about its job. [`InputCheck`] follows
//! the events in order and checks every `q_job_done` against the `q_job_submitted` event of the
//! same VHM and job: one outcome per shot, every outcome word below 2^clbits. `phi_executed`
//! captures are integers (µ of full scale), always finite; their count is checked by replay
//! against the transform itself.

use std::collections::BTreeMap;
use xdv_core::event::{Event, EventKind};

/// Follows a run's events and checks each recorded job outcome against its job.
#[derive(Debug, Default, Clone)]
pub struct InputCheck {
    /// (VHM, job) → (shots, classical bits), from `q_job_submitted`.
    jobs: BTreeMap<(u32, u32), (u64, u32)>,
}

impl InputCheck {
    /// Takes in one event; returns why its recorded inputs do not fit their job, if they do not.
    /// Call it on every event in order.
    ///
    /// # Errors
    ///
    /// A sentence naming the VHM, the job and the first bad shot when a `q_job_done` has no
    /// admitted job, a different number of outcomes than the job's shots, or an outcome word
    /// with bits beyond the circuit's classical bits.
    pub fn observe(&mut self, e: &Event) -> Result<(), String> {
        let Some(v) = e.vhm else { return Ok(()) };
        match &e.kind {
            EventKind::QJobSubmitted {
                job, shots, clbits, ..
            } => {
                self.jobs.insert((v.0, *job), (*shots, *clbits));
            }
            EventKind::QJobDone { job, outcomes } => {
                let Some((shots, clbits)) = self.jobs.remove(&(v.0, *job)) else {
                    return Err(format!(
                        "q job {job} of {v} is done but was never admitted (no q_job_submitted)"
                    ));
                };
                if outcomes.len() as u64 != shots {
                    return Err(format!(
                        "q job {job} of {v} records {} outcomes for {shots} shots",
                        outcomes.len()
                    ));
                }
                if let Some((shot, w)) = outcomes
                    .iter()
                    .enumerate()
                    .find(|(_, &w)| clbits < 64 && w >> clbits != 0)
                {
                    return Err(format!(
                        "q job {job} of {v}: shot {shot} records outcome {w}, impossible for a circuit of {clbits} classical bits (outcomes < {})",
                        1u128 << clbits
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
