//! supervisor, in Rust: the nesting calls.
//!
//! Spawns two workers from the worker module it holds a capability to, waits for each, and
//! restarts the one that faulted, once, with a bigger fuel quota. w1 gets 200 000 fuel and
//! finishes; w2 gets 20 000 and runs out, so it is spawned again with 200 000.
//! Run: `xdv run examples/sdk/rust-supervisor.toml`.

#![no_std]

use xdv_guest::cap::{Budget, Handle, Module};
use xdv_guest::vhm::{Child, ExitStatus, Spawn};
use xdv_guest::{exit, log_str};

fn spawn(name: &str, fuel: u64) -> Child {
    let budget = Handle::<Budget>::find(0).expect("own budget");
    // Module 0 is our own image; 1 is the manifest's `modules` entry.
    let worker = Handle::<Module>::find(1).expect("worker module");
    match Spawn::new(budget, worker, name).fuel(fuel).spawn() {
        Ok(child) => child,
        Err(_) => {
            let _ = log_str("supervisor: spawn refused");
            exit(1)
        }
    }
}

fn main() {
    let w1 = spawn("w1", 200_000);
    let w2 = spawn("w2", 20_000);
    if let Ok(ExitStatus::Exited(_)) = w1.wait() {
        let _ = log_str("supervisor: w1 finished");
    }
    if matches!(w2.wait(), Ok(ExitStatus::Faulted(_))) {
        let _ = log_str("supervisor: w2 faulted, restarting it");
        let again = spawn("w2", 200_000);
        if let Ok(ExitStatus::Exited(_)) = again.wait() {
            let _ = log_str("supervisor: w2 finished after the restart");
        }
    }
    exit(0)
}

xdv_guest::entry!(main);
