//! The edge between the hypervisor and the world that drives it.
//!
//! A run emits events and needs two kinds of measured input it cannot compute itself: the
//! outcomes of Q jobs (a provider samples them) and the captures of Φ transforms (floating-point
//! integrals, which another platform's maths library may round differently). A [`Driver`]
//! receives the events and supplies those inputs. The hypervisor holds no mode flag: a live run,
//! a replay and a resume are different drivers of the same hypervisor.
//!
//! - [`Live`]: every event goes to a sink; providers run, computed captures are kept.
//! - The replay checker (`replay.rs`) and the resume sink (`run.rs`) read both inputs from the
//!   recorded event that is about to be compared, so they stream the trace instead of holding it.
//!
//! Each input is asked for at the moment the event that records it is emitted (`q_job_done`
//! at the job's completion, `phi_executed` right after the transform): the core's
//! `ExecuteQJob` and `MeasurePhi` effects are carried out after every earlier effect of their
//! step ([`crate::Hypervisor::run_driven`]), so a recorded input is always the next recorded
//! event: no lookahead, no buffer.

use xdv_core::event::{Event, EventSink, SinkError};
use xdv_core::{Hash32, VhmId};
use xdv_q::provider::Provider;
use xdv_q::Circuit;

/// A Q job whose outcomes are asked for, with what a provider needs to run it.
pub struct QJobRun<'a> {
    /// The submitting VHM.
    pub vhm: VhmId,
    /// The VHM's job number.
    pub job: u32,
    /// Shots: the outcomes must be one word per shot.
    pub shots: u64,
    pub(crate) provider: &'a dyn Provider,
    pub(crate) circuit: &'a Circuit,
    pub(crate) seed: u64,
}

impl QJobRun<'_> {
    /// Runs the job on its provider: one outcome word per shot, bit `c` is classical bit `c`.
    /// Outcomes depend only on the circuit, the shots and the job's seed.
    pub fn execute(&self) -> Vec<u64> {
        let mut words = Vec::with_capacity(usize::try_from(self.shots).unwrap_or(0));
        self.provider
            .execute(self.circuit, self.shots, self.seed, &mut |bits| {
                words.push(crate::q::pack(bits));
            })
            .expect("admission checked that the provider accepts the circuit");
        words
    }
}

/// A service host's pause, as [`Driver::at_pause`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// The virtual time it paused at (a multiple of the epoch).
    pub now: u64,
    /// Nothing is queued.
    pub idle: bool,
    /// The service's epoch, ns.
    pub epoch_ns: u64,
    /// When the first queued event is due, if any (it may be one that no longer applies).
    pub next_event_ns: Option<u64>,
}

impl Pause {
    /// What an unattended service does here: the next epoch, or, once idle, the operator's
    /// `Stop` (nobody is there to send a request).
    pub fn unattended(&self) -> crate::Input {
        if self.idle {
            return crate::Input::Request(Box::new(crate::Requested {
                tenant: None,
                request: xdv_core::ServiceRequest::Stop,
                bytes: None,
            }));
        }
        self.next_epoch()
    }

    /// The input that runs the host on to its next pause where something can happen: one
    /// epoch on, or, when the first queued event is due later, the last pause before it. The
    /// pauses in between would be empty, so skipping them changes no event; a request that
    /// arrives meanwhile is applied at the pause it finds.
    pub fn next_epoch(&self) -> crate::Input {
        crate::Input::Continue {
            until_ns: self.next_horizon(),
        }
    }

    /// The horizon [`Pause::next_epoch`] moves to.
    pub fn next_horizon(&self) -> u64 {
        let one = self.now.saturating_add(self.epoch_ns);
        let before_next = self
            .next_event_ns
            .map_or(0, |t| t - t % self.epoch_ns.max(1));
        one.max(before_next)
    }
}

/// What drives a run: it receives every event and supplies the run's measured inputs.
///
/// The default methods are those of a live run.
pub trait Driver: EventSink {
    /// The outcomes of a Q job, asked for at its completion, just before its `q_job_done` is
    /// emitted. They must hold one word per shot; the hypervisor checks it.
    ///
    /// # Errors
    ///
    /// [`SinkError`] stops the run.
    fn q_outcomes(&mut self, job: &QJobRun<'_>) -> Result<Vec<u64>, SinkError> {
        Ok(job.execute())
    }

    /// The captures of a Φ transform of `vhm`, asked for just before its `phi_executed` is
    /// emitted: `computed` are those the executor integrated. A replacement of another length
    /// is ignored.
    ///
    /// # Errors
    ///
    /// [`SinkError`] stops the run.
    fn phi_captures(
        &mut self,
        vhm: VhmId,
        computed: Vec<(i64, i64)>,
    ) -> Result<Vec<(i64, i64)>, SinkError> {
        let _ = vhm;
        Ok(computed)
    }

    /// What a service host does at a pause: a request, the next horizon, or nothing (the run
    /// returns). A live run with no service edge (`xdv run` of a service config) runs epoch
    /// after epoch and stops the service, as the operator, once it is idle.
    ///
    /// # Errors
    ///
    /// [`SinkError`] stops the run.
    fn at_pause(&mut self, pause: &Pause) -> Result<Option<crate::Input>, SinkError> {
        Ok(Some(pause.unattended()))
    }
}

/// A live run's driver: events go to the sink, providers run, computed captures stay.
pub struct Live<'s, S: EventSink>(pub &'s mut S);

impl<S: EventSink> EventSink for Live<'_, S> {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), SinkError> {
        self.0.module(hash, bytes)
    }

    fn emit(&mut self, event: &Event) -> Result<(), SinkError> {
        self.0.emit(event)
    }
}

impl<S: EventSink> Driver for Live<'_, S> {}

/// The recorded outcomes of `job` when `next` (the recorded event about to be compared) is its
/// `q_job_done` with one word per shot; `None` otherwise.
pub(crate) fn recorded_outcomes(next: Option<&Event>, job: &QJobRun<'_>) -> Option<Vec<u64>> {
    let next = next?;
    match &next.kind {
        xdv_core::EventKind::QJobDone { job: j, outcomes }
            if next.vhm == Some(job.vhm) && *j == job.job && outcomes.len() as u64 == job.shots =>
        {
            Some(outcomes.clone())
        }
        _ => None,
    }
}

/// The recorded captures of a transform of `vhm` when `next` is its `phi_executed` with as many
/// captures as `computed`; `computed` otherwise.
pub(crate) fn recorded_captures(
    next: Option<&Event>,
    vhm: VhmId,
    computed: Vec<(i64, i64)>,
) -> Vec<(i64, i64)> {
    match next.map(|e| (e.vhm, &e.kind)) {
        Some((Some(v), xdv_core::EventKind::PhiExecuted { captures, .. }))
            if v == vhm && captures.len() == computed.len() =>
        {
            captures.clone()
        }
        _ => computed,
    }
}

/// What a replay or a resume does at a service host's pause, from `next`, the recorded event
/// about to be compared: the recorded request when it was applied at this pause (an upload's
/// bytes from `module`); when the host is idle, the horizon moved to that request (nothing
/// happens in between); else the next epoch. `None` when the recording ends here, or when an
/// idle host has nothing recorded it could reach.
pub(crate) fn recorded_pause(
    next: Option<&Event>,
    pause: &Pause,
    module: impl Fn(&Hash32) -> Option<Vec<u8>>,
) -> Option<crate::Input> {
    let next = next?;
    if let xdv_core::EventKind::Request { tenant, request } = &next.kind {
        if next.time_ns == pause.now {
            let bytes = match request {
                xdv_core::ServiceRequest::Upload { module: hash, .. } => module(hash),
                _ => None,
            };
            return Some(crate::Input::Request(Box::new(crate::Requested {
                tenant: *tenant,
                request: request.clone(),
                bytes,
            })));
        }
        if pause.idle && next.time_ns > pause.now {
            return Some(crate::Input::Continue {
                until_ns: next.time_ns,
            });
        }
        // Not beyond the recorded request's pause, whichever empty pauses the run skipped.
        if next.time_ns > pause.now {
            return Some(crate::Input::Continue {
                until_ns: pause.next_horizon().min(next.time_ns),
            });
        }
    }
    // An idle host produces nothing but requests: anything else recorded is out of its reach.
    if pause.idle {
        return None;
    }
    Some(pause.next_epoch())
}
