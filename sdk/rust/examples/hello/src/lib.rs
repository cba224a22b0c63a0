//! hello, in Rust: the lifecycle, timer and interrupt calls.
//!
//! Every vCPU greets with its index and virtual time, sums 1..=10 000 and logs a seeded random
//! draw. vCPU 0 then arms its timer and sleeps through three ticks, and vCPU 1 raises vector 2
//! on vCPU 0; the handler logs each interrupt. Run: `xdv run examples/sdk/rust-hello.toml`.

#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};
use xdv_guest::{log, time, Interrupt};

/// Timer ticks seen by this vCPU (each vCPU has its own instance, so its own counter).
static TICKS: AtomicU32 = AtomicU32::new(0);

fn main() {
    let me = xdv_guest::vcpu_id();
    let _ = log!("hello from vcpu {} at {} ns", me, time::now());
    let sum: u64 = (1..=10_000u64).sum();
    let _ = log!("sum of 1..10000 = {}", sum);
    let _ = log!("a seeded random draw: {}", xdv_guest::random() >> 1);
    if me == 0 {
        time::set_timer(20_000).expect("timer");
        while TICKS.load(Ordering::Relaxed) < 3 {
            let _ = time::sleep(100_000);
        }
        time::set_timer(0).expect("disarm");
        let _ = log!("vcpu 0: three ticks by {} ns", time::now());
    } else {
        xdv_guest::irq_send(0, 2, 42).expect("irq_send");
    }
}

fn on_irq(irq: Interrupt) {
    if irq.vector == xdv_guest::sys::TIMER_VECTOR as u32 {
        let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = log!("tick {} at {} ns", n, time::now());
    } else {
        let _ = log!("irq {} (arg {}) on vcpu {}", irq.vector, irq.arg, xdv_guest::vcpu_id());
    }
}

xdv_guest::entry!(main);
xdv_guest::irq_handler!(on_irq);
