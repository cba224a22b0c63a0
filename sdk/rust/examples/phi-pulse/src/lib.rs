//! phi-pulse, in Rust: the Φ calls.
//!
//! Runs a transform on the VHM's first window: a frame on its port, a gaussian played and
//! captured back; then shifts the phase by π/2 and does it again (the capture rotates with the
//! frame). Logs each capture and the frame's state. Run: `xdv run examples/sdk/rust-phi.toml`.

#![no_std]

use xdv_guest::cap::{Handle, PhiWindow};
use xdv_guest::phi::{self, Capture};
use xdv_guest::{exit, log};

const FIRST: &str = "frame d0 = newframe(q0, 5.0e9, 0);\nframe m0 = copyframe(d0);\nplay(d0, gaussian(0.4, 400, 80));\ncapture(m0, 400);\n";
const SECOND: &str = "shift_phase(d0, pi/2);\nbarrier d0, m0;\nplay(d0, gaussian(0.4, 400, 80));\ncapture(m0, 400);\n";

fn run(window: Handle<PhiWindow>, k: u32, text: &str) {
    let mut captures = [Capture::default(); 8];
    match phi::exec(window, text, &mut captures) {
        Ok(n) if n > 0 => {
            let _ = log!(
                "phi: transform {} -> {}, first capture I={} Q={} (micro-units)",
                k, n, captures[0].i, captures[0].q
            );
        }
        Ok(n) => {
            let _ = log!("phi: transform {} -> {}", k, n);
        }
        Err(e) => {
            let _ = log!("phi: transform {} -> {}", k, e.code());
        }
    }
}

fn main() {
    let window = Handle::<PhiWindow>::find(0).unwrap_or_else(|_| exit(1));
    run(window, 0, FIRST);
    run(window, 1, SECOND);
    if let Ok(f) = phi::frame(window, "d0") {
        // The phase in 2^-64 turns, shown in millionths of a turn.
        let turns_ppm = ((f.phase as u128 * 1_000_000) >> 64) as u64;
        let _ = log!("phi: frame d0 at {} Hz, phase {} ppm of a turn, clock {} ns", f.freq, turns_ppm, f.clock);
    }
    exit(0)
}

xdv_guest::entry!(main);
