//! The trace reader on arbitrary files: open, header, events, verify — errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.xdv");
    std::fs::write(&path, data).expect("write");
    if let Ok(r) = xdv_core::trace::TraceReader::open(&path) {
        let _ = r.header();
        let _ = r.events();
        let _ = r.verify();
        let _ = r.resource_table();
    }
});
