//! panic, in Rust: what the SDK's panic handler does. The guest indexes past the end of an
//! array; the handler logs `panic: ` with the message and location, then exits with
//! `xdv_guest::PANIC_EXIT_CODE` (101). Run: `xdv run examples/sdk/rust-panic.toml`.

#![no_std]

fn main() {
    let readings = [3u32, 5];
    // A seeded draw of 2 or more: out of bounds, whichever the seed.
    let i = (xdv_guest::random() % 5) as usize + 2;
    let _ = xdv_guest::log!("reading {}", readings[i]);
}

xdv_guest::entry!(main);
