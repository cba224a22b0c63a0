//! The OpenQASM front end on arbitrary text; what parses is also planned on a device (the
//! admission path of `q_submit`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // q_submit's operation limit (xdv_k::abi::MAX_Q_OPS), which also bounds the inlining work.
        if let Ok(c) = xdv_q::qasm::parse_limited(text, "fuzz.qasm", 1_000_000) {
            let d = xdv_q::provider::find_device("ideal-grid").expect("built in");
            let _ = xdv_q::plan::plan(&c, &d, &d.costs(), 36);
            let _ = c.measurements_are_terminal();
        }
    }
});
