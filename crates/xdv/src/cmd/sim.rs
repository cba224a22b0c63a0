//! `xdv sim`: deterministic simulation testing over many seeds.

use crate::Outcome;
use anyhow::Result;
use serde_json::json;
use std::time::Instant;

/// Runs seeds `from .. from + seeds` on every core and names the lowest failing seed.
pub(crate) fn sim(from: u64, seeds: u64, as_json: bool) -> Result<Outcome> {
    // Wall-clock time is measured for the report only; nothing simulated depends on it.
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    tracing::info!(from, seeds, threads, "simulating");
    let bar = crate::progress::bar(seeds, "xdv sim", "seeds");
    let failed = std::sync::atomic::AtomicU64::new(0);
    let (reports, failure) = xdv_sim::simulate_many_observed(from, seeds, threads, &|r| {
        if let Err(f) = r {
            let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed (seed {} …)", f.seed));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    let done = reports.len() as u64;
    let events: u64 = reports.iter().map(|r| r.events).sum();
    let compared: u64 = reports.iter().map(|r| r.events_compared).sum();
    let faults: u64 = reports.iter().map(|r| u64::from(r.faults)).sum();
    let vhms: u64 = reports.iter().map(|r| u64::from(r.vhms)).sum();
    let fuel: u64 = reports.iter().map(|r| r.fuel_used).sum();
    // Events per unit of fuel the VHMs spent: what a bounded budget bounds (reliability.md).
    let most_per_fuel = reports
        .iter()
        .map(|r| r.events as f64 / r.fuel_used.max(1) as f64)
        .fold(0.0, f64::max);
    // Storage failures by kind: (seeds, of which the trace was cut short and resumed).
    let mut storage = std::collections::BTreeMap::<&str, (u64, u64)>::new();
    for r in &reports {
        let e = storage.entry(r.storage_fault).or_default();
        e.0 += 1;
        e.1 += u64::from(r.committed < r.events);
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "from": from, "seeds": seeds, "passed": done, "threads": threads, "vhms": vhms, "faults_injected": faults,
                "events_checked": events, "events_compared": compared,
                "fuel_used": fuel, "most_events_per_fuel": most_per_fuel,
                "seconds": secs, "events_checked_per_second": events as f64 / secs,
                "storage_faults": storage.iter().map(|(k, (n, cut))| (k.to_string(), json!({"seeds": n, "cut_short_and_resumed": cut}))).collect::<serde_json::Map<_, _>>(),
                "failure": failure,
            }))?
        );
    } else {
        outln!(
            "xdv sim: {done} of {seeds} seeds from {from} passed on {threads} threads: {vhms} VHMs, {faults} injected faults, {events} events each followed by a full invariant check ({:.0} events/s), {compared} more compared by replay, resume and non-interference ({:.0} events/s in all)",
            events as f64 / secs,
            (events + compared) as f64 / secs
        );
        let list: Vec<String> = storage
            .iter()
            .map(|(k, (n, cut))| format!("{k} {n} ({cut} cut short and resumed)"))
            .collect();
        if !list.is_empty() {
            outln!("  storage failures: {}", list.join(", "));
        }
        if let Some(f) = &failure {
            outln!("FAILED {f}");
            outln!("reproduce: xdv sim --from {} --seeds 1", f.seed);
        }
    }
    Ok(if failure.is_some() {
        Outcome::Problem
    } else {
        Outcome::Ok
    })
}
