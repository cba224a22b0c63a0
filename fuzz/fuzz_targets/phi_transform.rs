//! The Φ transform parser and the contract executor on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use xdv_phi::{execute, Context, Freq, Port, Program, WindowSpec, WindowState};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(program) = Program::parse(text, "fuzz.phi") else { return };
    let port = Port {
        name: "q0".into(),
        granularity_ns: 4,
        band: (Freq(4_000_000_000), Freq(6_000_000_000)),
        max_amp: 1_000_000,
        t2_ns: 100_000,
    };
    let mut w = WindowState::new(WindowSpec {
        port: 0,
        t0: 0,
        t1: 50_000,
        band: (Freq(4_500_000_000), Freq(5_500_000_000)),
        max_amp: 500_000,
        shared: false,
    });
    let visible = BTreeMap::new();
    let cx = Context { port: &port, visible: &visible, now: 0, delegated: &[(20_000, 30_000)] };
    struct Counter(u64);
    impl rand_core::RngCore for Counter {
        fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
        fn next_u64(&mut self) -> u64 { self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); self.0 }
        fn fill_bytes(&mut self, d: &mut [u8]) { for b in d { *b = self.next_u64() as u8 } }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }
    // Samples are bounded by the window: at most 50 000 per transform.
    let _ = execute(&program, &mut w, &cx, &mut Counter(1));
});
