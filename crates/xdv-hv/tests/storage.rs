//! A run whose trace storage fails: it stops with a store error (never a panic), the trace left
//! behind verifies as cut short at its last commit, and resumed it ends in the uninterrupted
//! run's final hash. (`xdv sim` covers the file a failure leaves on random hosts, but writes it
//! from a run kept in memory; this is the path of a run that the failure stops.)

mod common;

use common::*;
use xdv_hv::{resume_trace, run_to_trace, HvError, RunOptions};
use xdv_trace::{StorageFault, TraceReader};

/// Two spinning VHMs sharing the clock with small slices and batches: many commits.
fn host() -> xdv_hv::Prepared {
    let m = format!(
        "[host]\nseed = 3\nslice_fuel = 1000\ntime_limit_ns = 400_000\n[host.trace]\nbatch_events = 16\n{}{}",
        vhm("a", "spin.wat", 1, 10_000_000),
        vhm("b", "spin.wat", 2, 10_000_000)
    );
    prepare_inline(&m, &[("spin.wat", SPIN)]).1
}

/// Runs `p` to a trace in `dir` under `opts`, expecting the storage to stop it; returns how
/// many events the trace kept and the final hash of resuming it.
fn cut_and_resume(p: &xdv_hv::Prepared, dir: &std::path::Path, opts: &RunOptions) -> (u64, String) {
    let trace = dir.join("cut.xdv");
    match run_to_trace(p, &trace, opts) {
        Err(HvError::Sink(_) | HvError::Trace(_)) => {}
        other => panic!(
            "the storage failure did not stop the run: {:?}",
            other.map(|r| r.2)
        ),
    }
    let verified = TraceReader::open(&trace).unwrap().verify().unwrap();
    assert!(verified.problem.is_none(), "{verified:?}");
    assert!(!verified.complete, "the trace reads as finished");
    let resumed = resume_trace(&trace, None).unwrap();
    assert_eq!(resumed.committed, verified.events_verified);
    (verified.events_verified, resumed.head.to_hex())
}

#[test]
fn every_storage_failure_stops_the_run_and_the_trace_resumes_to_the_uninterrupted_hash() {
    let p = host();
    let dir = tempfile::tempdir().unwrap();
    let (summary, _, head) =
        run_to_trace(&p, &dir.path().join("whole.xdv"), &RunOptions::default()).unwrap();
    assert!(summary.events > 200, "{} events", summary.events);
    let failures = [
        RunOptions {
            stop_after: Some(101),
            ..RunOptions::default()
        },
        RunOptions {
            storage_fault: Some(StorageFault::FailedCommit { after_events: 70 }),
            ..RunOptions::default()
        },
        RunOptions {
            storage_fault: Some(StorageFault::DiskFull { pages: 2 }),
            ..RunOptions::default()
        },
    ];
    for opts in &failures {
        let (kept, resumed) = cut_and_resume(&p, dir.path(), opts);
        assert_eq!(resumed, head.to_hex(), "{opts:?}");
        match opts {
            // A crash keeps every event handed to the writer.
            RunOptions {
                stop_after: Some(n),
                ..
            } => assert_eq!(kept, *n),
            // The failed commit loses its batch: what is kept ends at an earlier commit.
            RunOptions {
                storage_fault: Some(StorageFault::FailedCommit { after_events }),
                ..
            } => assert!(kept < *after_events && kept % 16 == 0, "{kept}"),
            _ => assert!(kept < summary.events, "{kept}"),
        }
    }
}
