//! worker, in Rust: a child VHM for the supervisor. Logs that it started, computes (the Collatz
//! steps of 1..=150, about 60 000 fuel), logs the total and exits 0. Given too little fuel it
//! faults with fuel-exhausted before it gets there.

#![no_std]

use xdv_guest::{exit, log, log_str};

fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n != 1 {
        n = if n & 1 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

fn main() {
    let _ = log_str("worker: started");
    let total: u64 = (1..=150).map(collatz_steps).sum();
    let _ = log!("worker: done ({} Collatz steps)", total);
    exit(0)
}

xdv_guest::entry!(main);
