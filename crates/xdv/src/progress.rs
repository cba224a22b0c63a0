//! What a person sees while a command works: `indicatif` progress and `tracing` diagnostics,
//! both on stderr so that stdout stays the command's output.
//!
//! Progress is drawn only when stderr is a terminal and `--quiet` was not given; otherwise every
//! bar here is hidden and costs nothing. Diagnostics follow `RUST_LOG` (`RUST_LOG=xdv=debug`),
//! or `-v` (info) and `-vv` (debug) when it is unset.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static SHOWN: AtomicBool = AtomicBool::new(false);

/// Sets up progress and diagnostics once, from the global flags.
pub(crate) fn init(quiet: bool, verbose: u8) {
    SHOWN.store(!quiet && std::io::stderr().is_terminal(), Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(true)
        .without_time()
        .init();
}

/// `true` when progress is drawn.
pub(crate) fn shown() -> bool {
    SHOWN.load(Ordering::Relaxed)
}

/// A bar of `len` steps, each a `unit` (`seeds`, `events`).
pub(crate) fn bar(len: u64, what: &str, unit: &str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{elapsed}}, {{eta}} left) {{msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A spinner for work of unknown length, with its elapsed time and a message.
pub(crate) fn spinner(what: &str) -> ProgressBar {
    if !shown() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what} ({{elapsed}}) {{msg}}"))
            .expect("a valid template"),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
