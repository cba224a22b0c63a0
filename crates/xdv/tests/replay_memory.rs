//! Replay streams its trace: its peak memory does not grow with the trace's length (issue #11).
//! Measured with GNU time (`/usr/bin/time`, which `.ci/run` installs).

use std::path::Path;

/// Records the replay benchmark's manifest with a time limit of `limit_ns` (one event a slice)
/// and returns (events, peak RSS of `xdv replay` in KiB).
fn replay_rss(dir: &Path, limit_ns: u64) -> (u64, u64) {
    let long = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/replay/long.toml");
    let compute = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/guests/compute.wat");
    let text = std::fs::read_to_string(long)
        .unwrap()
        .replace(
            "time_limit_ns = 820_000_000",
            &format!("time_limit_ns = {limit_ns}"),
        )
        .replace(
            "../../examples/guests/compute.wat",
            compute.to_str().unwrap(),
        );
    let manifest = dir.join(format!("long-{limit_ns}.toml"));
    std::fs::write(&manifest, text).unwrap();
    let trace = manifest.with_extension("xdv");
    let xdv = assert_cmd::cargo::cargo_bin("xdv");
    let out = std::process::Command::new(&xdv)
        .args(["run", "--json"])
        .arg(&manifest)
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = summary["events"].as_u64().unwrap();
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "peak RSS is measured with GNU time: apt-get install time"
    );
    let out = std::process::Command::new(time)
        .args(["-f", "%M"])
        .arg(&xdv)
        .arg("replay")
        .arg(&trace)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss = stderr.lines().last().unwrap().trim().parse().unwrap();
    (events, rss)
}

#[test]
fn replay_memory_does_not_grow_with_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (small, small_rss) = replay_rss(dir.path(), 8_000_000);
    let (large, large_rss) = replay_rss(dir.path(), 80_000_000);
    assert!(large >= 9 * small, "{small} and {large} events");
    // Holding the events would take about 190 bytes each: 20 MiB more for the larger trace.
    // Streaming leaves only SQLite's bounded page caches to fill.
    assert!(
        large_rss <= small_rss + 12 * 1024,
        "replay of {small} events peaked at {small_rss} KiB, of {large} events at {large_rss} KiB"
    );
}
