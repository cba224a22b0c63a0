//! End-to-end tests of the `xdv` binary on the examples and on damaged traces.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn xdv() -> Command {
    Command::cargo_bin("xdv").unwrap()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

const EXAMPLES: &[&str] = &[
    "hello.toml",
    "fair-share.toml",
    "interrupts.toml",
    "supervisor.toml",
    "client-server.toml",
    "hostile.toml",
];

fn run_json(manifest: &Path, trace: &Path, extra: &[&str]) -> serde_json::Value {
    let out = xdv()
        .arg("run")
        .arg(manifest)
        .arg("--trace")
        .arg(trace)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_example_runs_verifies_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    for ex in EXAMPLES {
        let trace = dir.path().join(format!("{ex}.xdv"));
        xdv().arg("check").arg(example(ex)).assert().success();
        let out = run_json(&example(ex), &trace, &[]);
        assert!(out["events"].as_u64().unwrap() > 10);
        xdv()
            .args(["trace", "verify"])
            .arg(&trace)
            .assert()
            .success();
        let replay = xdv()
            .arg("replay")
            .arg(&trace)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            replay.status.success(),
            "{ex}: {}",
            String::from_utf8_lossy(&replay.stdout)
        );
        let report: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
        assert_eq!(report["identical"], true);
        assert_eq!(report["report"]["events_matched"], out["events"]);
    }
}

#[test]
fn same_seed_gives_byte_identical_events_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.xdv"),
        dir.path().join("b.xdv"),
        dir.path().join("c.xdv"),
    );
    let ra = run_json(&example("hello.toml"), &a, &[]);
    let rb = run_json(&example("hello.toml"), &b, &[]);
    let rc = run_json(&example("hello.toml"), &c, &["--seed", "99"]);
    assert_eq!(ra["final_hash"], rb["final_hash"]);
    assert_ne!(ra["final_hash"], rc["final_hash"]);
    assert_eq!(rc["seed"], 99);
    let events = |p: &Path| {
        let conn = rusqlite::Connection::open(p).unwrap();
        let mut s = conn
            .prepare("SELECT body, hash FROM events ORDER BY seq")
            .unwrap();
        s.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
    };
    assert_eq!(events(&a), events(&b));
}

/// Flips one byte of the file at the first occurrence of `needle`.
fn flip(path: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "the trace holds exactly one copy of {:?}",
        String::from_utf8_lossy(needle)
    );
    let at = hits[0];
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn one_flipped_byte_fails_verify_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.xdv");
    run_json(&example("hello.toml"), &trace, &[]);
    flip(&trace, b"hello from vcpu 1");
    let out = xdv()
        .args(["trace", "verify"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hash chain broken"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    xdv().arg("replay").arg(&trace).assert().code(1);

    // Tampering with the stored manifest breaks the chain's genesis.
    let trace2 = dir.path().join("t2.xdv");
    run_json(&example("hello.toml"), &trace2, &[]);
    flip(&trace2, b"fuel_quota = 1_000_000");
    xdv()
        .args(["trace", "verify"])
        .arg(&trace2)
        .assert()
        .code(1);
}

#[test]
fn a_killed_run_leaves_a_trace_verified_up_to_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    let text = std::fs::read_to_string(example("fair-share.toml"))
        .unwrap()
        .replace("guests/", &format!("{}/", example("guests").display()));
    std::fs::write(
        &manifest,
        text.replace(
            "time_limit_ns = 40_000_000",
            "time_limit_ns = 40_000_000\n[host.trace]\nbatch_events = 100",
        ),
    )
    .unwrap();
    let trace = dir.path().join("killed.xdv");
    let out = xdv()
        .arg("run")
        .arg(&manifest)
        .arg("--trace")
        .arg(&trace)
        .args(["--crash-after", "1234"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was aborted");
    let out = xdv()
        .args(["trace", "verify", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "intact but incomplete");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intact"], true);
    assert_eq!(v["report"]["complete"], false);
    // Batches of 100: the 1234th event's batch (1201..1300) was never committed.
    assert_eq!(v["report"]["events_verified"], 1200);
    let text = String::from_utf8(
        xdv()
            .args(["trace", "verify"])
            .arg(&trace)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains("cut short"), "{text}");
    // The committed prefix replays exactly, and accounting is derived from it.
    let out = xdv().arg("replay").arg(&trace).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1200 of 1200"));
    let out = xdv()
        .args(["trace", "accounting", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["derived_from_events"], true);
}

#[test]
fn read_outs_show_accounting_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("irq.xdv");
    let run = run_json(&example("interrupts.toml"), &trace, &[]);
    let n = run["events"].as_u64().unwrap();

    let out = xdv()
        .args(["trace", "export", "--format", "jsonl"])
        .arg(&trace)
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, n);
    assert_eq!(lines[0]["kind"], "host_started");
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "irq_delivered" && l["vhm_name"] == "smp"));

    let out = xdv()
        .args(["trace", "show", "--vhm", "smp"])
        .arg(&trace)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("timer tick 6") && !text.contains("host started"));
    xdv()
        .args(["trace", "show", "--vhm", "nobody"])
        .arg(&trace)
        .assert()
        .code(2);

    let out = xdv()
        .args(["trace", "accounting", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["resource_table"].as_array().unwrap();
    assert_eq!(rows.len(), 2 + 4, "fuel, memory and four vCPUs");
    assert_eq!(rows, run["resource_table"].as_array().unwrap());
    assert!(rows
        .iter()
        .all(|r| r["domain"] == "K" && r["duration_ns"].as_u64().is_some()));

    let text = String::from_utf8(
        xdv()
            .arg("run")
            .arg(example("hello.toml"))
            .arg("--trace")
            .arg(dir.path().join("h.xdv"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        text.contains("Resource_Table") && text.contains("halted"),
        "{text}"
    );
}

#[test]
fn the_default_trace_path_is_derived_from_the_manifest_name() {
    let dir = tempfile::tempdir().unwrap();
    xdv()
        .current_dir(dir.path())
        .arg("run")
        .arg(example("hello.toml"))
        .assert()
        .success();
    assert!(dir.path().join("hello.xdv").is_file());
}

#[test]
fn unreadable_inputs_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.xdv");
    std::fs::write(&junk, b"not a database at all, certainly not a trace").unwrap();
    for args in [
        vec!["replay"],
        vec!["trace", "verify"],
        vec!["trace", "show"],
    ] {
        let out = xdv().args(&args).arg(&junk).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("junk.xdv"));
    }
    xdv()
        .arg("run")
        .arg(dir.path().join("missing.toml"))
        .assert()
        .code(2);
}

/// Rewrites one event's body and re-chains every hash after it, as a forger with write access
/// would: the trace then verifies, but replay must catch the lie.
#[test]
fn replay_reports_the_first_divergent_event_of_a_re_chained_forgery() {
    use xdv_core::{EventKind, HypercallRecord};
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("forged.xdv");
    run_json(&example("hello.toml"), &trace, &[]);
    let mut forged_seq = None;
    let mut seq = 0;
    forge(&trace, |event| {
        seq += 1;
        if let EventKind::Hypercall {
            call: HypercallRecord::Log { bytes, .. },
            ..
        } = &mut event.kind
        {
            bytes[0] = b'J';
            forged_seq = Some(seq - 1);
            return true;
        }
        false
    });
    xdv()
        .args(["trace", "verify"])
        .arg(&trace)
        .assert()
        .success();
    let out = xdv()
        .arg("replay")
        .arg(&trace)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["report"]["divergence"];
    assert_eq!(d["seq"].as_i64(), forged_seq);
    assert!(
        d["recorded"].to_string().contains("74") && d["replayed"].to_string().contains("104"),
        "{d}"
    ); // 'J' vs 'h'
    let text = String::from_utf8(xdv().arg("replay").arg(&trace).output().unwrap().stdout).unwrap();
    assert!(
        text.contains("DIVERGED")
            && text.contains("\"jello from vcpu 0\"".replace('j', "J").as_str())
            && text.contains("\"hello from vcpu 0\""),
        "{text}"
    );
}

#[test]
fn the_tree_shows_nesting_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("sup.xdv");
    run_json(&example("supervisor.toml"), &trace, &[]);
    let out = xdv()
        .args(["trace", "show", "--tree"])
        .arg(&trace)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("supervisor (vhm0, L1) exit(0)"), "{text}");
    assert!(
        text.contains("├── supervisor/w2 (vhm2, L2) fault: fuel-exhausted"),
        "{text}"
    );
    assert!(
        text.contains("└── supervisor/w2#2 (vhm3, L2) exit(0)"),
        "{text}"
    );
    let out = xdv()
        .args(["trace", "show", "--tree", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["vhms"][0]["children"].as_array().unwrap().len(), 3);
    let out = xdv()
        .args(["trace", "accounting", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["resource_table"].as_array().unwrap();
    assert!(rows
        .iter()
        .any(|r| r["vhm_name"] == "supervisor/w1" && r["parent_id"] == 0 && r["level"] == 2));
}

#[test]
fn q_run_counts_and_probabilities_follow_qiskit_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bell.qasm");
    std::fs::write(&f, "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n").unwrap();
    let out = xdv()
        .args(["q", "run", "--probabilities", "--json"])
        .arg(&f)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in ["00", "11"] {
        assert!(
            (v["probabilities"][k].as_f64().unwrap() - 0.5).abs() < 1e-12,
            "{v}"
        );
    }
    assert_eq!(v["probabilities"].as_object().unwrap().len(), 2);
    let run = |seed: &str| {
        let out = xdv()
            .args(["q", "run", "--shots", "500", "--seed", seed, "--json"])
            .arg(&f)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["counts"].clone()
    };
    let (a, b) = (run("3"), run("3"));
    assert_eq!(a, b);
    assert_eq!(a["00"].as_u64().unwrap() + a["11"].as_u64().unwrap(), 500);
    let bad = dir.path().join("bad.qasm");
    std::fs::write(&bad, "OPENQASM 2.0;\nopaque g a;\n").unwrap();
    let out = xdv()
        .args(["q", "check"])
        .arg(&f)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("bell.qasm: ok (2 qubits, 2 bits")
            && text.contains("bad.qasm:2:1: opaque gates are not supported"),
        "{text}"
    );
    xdv().args(["q", "run"]).arg(&bad).assert().code(2);

    // --top: the most frequent outcomes first, the rest summed up; piped, no histogram column.
    let top = xdv()
        .args(["q", "run", "--shots", "500", "--seed", "3", "--top", "1"])
        .arg(&f)
        .output()
        .unwrap();
    let text = String::from_utf8(top.stdout).unwrap();
    let (n00, n11) = (a["00"].as_u64().unwrap(), a["11"].as_u64().unwrap());
    let (first, rest) = if n00 >= n11 { ("00", n11) } else { ("11", n00) };
    assert!(text.contains(&format!("{first}  ")), "{text}");
    assert!(
        text.contains(&format!("... 1 more outcomes ({rest} shots)")),
        "{text}"
    );
    assert!(!text.contains("histogram") && !text.contains('#'), "{text}");
}

#[test]
fn q_providers_and_the_density_provider() {
    let out = xdv().args(["q", "providers", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["device"], "ideal-grid");
    assert_eq!(v[0]["provider"], "statevector");
    assert_eq!(v[2]["device"], "noisy-line");
    assert_eq!(v[2]["provider"], "density");
    assert_eq!(v[1]["coupling"], "heavy-hex 3×11");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.qasm");
    std::fs::write(&f, "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\ncreg c[1];\nx q[0];\nmeasure q -> c;\n").unwrap();
    let out = xdv()
        .args([
            "q",
            "run",
            "--provider",
            "density",
            "--probabilities",
            "--json",
        ])
        .arg(&f)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // x decays a little during its 50 ns, then readout flips 1 → 0 with 4 %.
    let p0 = v["probabilities"]["0"].as_f64().unwrap();
    assert!(p0 > 0.04 && p0 < 0.05, "{v}");
    // Counts come from the provider asked for: the noisy one reads some 0s, the exact one none.
    let counts = |provider: &str| {
        let out = xdv()
            .args([
                "q",
                "run",
                "--shots",
                "2000",
                "--json",
                "--provider",
                provider,
            ])
            .arg(&f)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["counts"]["0"].as_u64().unwrap_or(0)
    };
    assert_eq!(counts("statevector"), 0);
    let zeros = counts("density");
    assert!(
        (40..=160).contains(&zeros),
        "about 4.5 % of 2000 shots: {zeros}"
    );
}

#[test]
fn a_run_killed_while_q_jobs_are_in_flight_replays_its_committed_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    let text = std::fs::read_to_string(example("q-ghz.toml"))
        .unwrap()
        .replace("guests/", &format!("{}/", example("guests").display()))
        .replace("[host.q]", "[host.trace]\nbatch_events = 10\n[host.q]");
    std::fs::write(&manifest, text).unwrap();
    let trace = dir.path().join("killed.xdv");
    // The three jobs are admitted by event 50 and complete after it.
    let out = xdv()
        .arg("run")
        .arg(&manifest)
        .arg("--trace")
        .arg(&trace)
        .args(["--crash-after", "55"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was aborted");
    let out = xdv().arg("replay").arg(&trace).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("50 of 50"), "{text}");
    let events = String::from_utf8(
        xdv()
            .args(["trace", "show"])
            .arg(&trace)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(events.contains("q job 0 admitted"), "{events}");
    assert!(!events.contains("q job 0 done"), "{events}");
}

#[test]
fn phi_run_plot_and_perfetto_export() {
    let dir = tempfile::tempdir().unwrap();
    let t = example("transforms/rabi.phi");
    let out = xdv()
        .args(["phi", "run", "--json"])
        .arg(&t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 720 ns at exactly 5 GHz is a whole number of turns: only the π/2 shift remains.
    assert_eq!(v["frames"]["d0"]["phase"], 1u64 << 62);
    assert_eq!(v["end_ns"], 720);
    assert_eq!(v["captures"].as_array().unwrap().len(), 1);
    // A window too short for it: refused with the rule and the place.
    let out = xdv()
        .args(["phi", "run", "--window", "0:500"])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contract: fit at 8:1"), "{err}");
    let svg = dir.path().join("r.svg");
    xdv()
        .args(["phi", "plot"])
        .arg(&t)
        .arg("-o")
        .arg(&svg)
        .assert()
        .success();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("polyline"));
    let trace = dir.path().join("n.xdv");
    run_json(&example("phi-nested.toml"), &trace, &[]);
    let pf = dir.path().join("n.json");
    xdv()
        .args(["trace", "export", "--format", "perfetto"])
        .arg(&trace)
        .arg("-o")
        .arg(&pf)
        .assert()
        .success();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pf).unwrap()).unwrap();
    let names: Vec<&str> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"window 0"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("transform")),
        "{names:?}"
    );
}

/// Kills a run at many points (some twice: the resumed run is killed again) and resumes it:
/// every finished trace equals the uninterrupted run's, event for event (same final hash).
#[test]
fn a_killed_run_resumes_to_the_uninterrupted_trace() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    let text = std::fs::read_to_string(example("faults.toml"))
        .unwrap()
        .replace("guests/", &format!("{}/", example("guests").display()))
        .replace(
            "time_limit_ns = 5_000_000",
            "time_limit_ns = 5_000_000\n[host.trace]\nbatch_events = 16",
        );
    std::fs::write(&manifest, text).unwrap();
    let full = run_json(&manifest, &dir.path().join("full.xdv"), &[]);
    let (events, head) = (full["events"].as_u64().unwrap(), full["final_hash"].clone());
    assert!(events > 100);
    let mut points: Vec<u64> = (1..events).step_by(37).collect();
    points.push(events - 1);
    for (k, n) in points.into_iter().enumerate() {
        let trace = dir.path().join(format!("k{n}.xdv"));
        let out = xdv()
            .arg("run")
            .arg(&manifest)
            .arg("--trace")
            .arg(&trace)
            .args(["--crash-after", &n.to_string()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "the run was aborted at {n}");
        let twice = k % 3 == 0 && n + 40 < events;
        if twice {
            // Kill the resumed run too, further on.
            let out = xdv()
                .args(["run", "--resume"])
                .arg(&trace)
                .args(["--crash-after", &(n + 40).to_string()])
                .output()
                .unwrap();
            assert!(!out.status.success());
        }
        let out = xdv()
            .args(["run", "--json", "--resume"])
            .arg(&trace)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["events"], events, "killed at {n}");
        assert_eq!(v["final_hash"], head, "killed at {n}");
        let resumed = v["resumed_after_events"].as_u64().unwrap();
        assert!(resumed <= if twice { n + 40 } else { n }, "{n}: {resumed}");
    }
}

/// Rewrites the first event `f` changes and re-chains every hash after it (a forgery that
/// `trace verify` cannot see).
fn forge(trace: &Path, mut f: impl FnMut(&mut xdv_core::Event) -> bool) {
    use xdv_core::Event;
    use xdv_trace::{ChainHash, TraceReader};
    let header = TraceReader::open(trace).unwrap().header().unwrap();
    let conn = rusqlite::Connection::open(trace).unwrap();
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT seq, body FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut chain = ChainHash::genesis(&header.canonical());
    let mut done = false;
    for (seq, body) in rows {
        let mut event = Event::decode(&body).unwrap();
        if !done {
            done = f(&mut event);
        }
        let body = event.encode();
        let (_, hash) = chain.link(&body);
        conn.execute(
            "UPDATE events SET body = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![body, &hash.0[..], seq],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE run_status SET value = ?1 WHERE key = 'final_hash'",
        [chain.head().to_hex()],
    )
    .unwrap();
    assert!(done, "nothing to forge");
}

#[test]
fn compliance_passes_real_runs_and_fails_forgeries() {
    use xdv_core::{Domain, EventKind};
    let dir = tempfile::tempdir().unwrap();
    for example_name in [
        "faults.toml",
        "q-ghz.toml",
        "phi-nested.toml",
        "client-server.toml",
    ] {
        let trace = dir.path().join(format!("{example_name}.xdv"));
        run_json(&example(example_name), &trace, &[]);
        let out = xdv()
            .args(["compliance", "--json"])
            .arg(&trace)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example_name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["compliant"], true);
        assert_eq!(v["items"].as_array().unwrap().len(), 5);
    }
    // Fuel accounted in the Q domain: §12.5 and, since a replay disagrees, §12.2 and §12.4 fail.
    let trace = dir.path().join("forged.xdv");
    run_json(&example("hello.toml"), &trace, &[]);
    forge(&trace, |e| match &mut e.kind {
        EventKind::Allocated { domain, .. } if *domain == Domain::K => {
            *domain = Domain::Q;
            true
        }
        _ => false,
    });
    let out = xdv()
        .args(["compliance", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<u64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["pass"] == false)
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, vec![2, 4, 5], "{v}");
}

/// Φ captures are injected from the trace on replay (like Q outcomes, they are measured values):
/// a forged capture passes its own `phi_executed` event and is caught where the guest logs it.
#[test]
fn replay_takes_phi_captures_from_the_trace() {
    use xdv_core::EventKind;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("phi.xdv");
    run_json(&example("phi-timeshare.toml"), &trace, &[]);
    let mut at = None;
    let mut seq = 0u64;
    forge(&trace, |e| {
        seq += 1;
        if let EventKind::PhiExecuted { captures, .. } = &mut e.kind {
            if let Some(c) = captures.first_mut() {
                c.0 += 1;
                at = Some(seq - 1);
                return true;
            }
        }
        false
    });
    let out = xdv()
        .args(["replay", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["report"]["divergence"];
    assert!(d["seq"].as_u64().unwrap() > at.unwrap(), "{d}");
    assert!(d["recorded"].to_string().contains("Log"), "{d}");
}

/// The isolation and nesting items fail on traces that show a breach.
#[test]
fn compliance_isolation_and_nesting_items_can_fail() {
    use xdv_core::{cap::Object, EventKind, VhmId};
    let dir = tempfile::tempdir().unwrap();
    let failed = |trace: &Path| -> Vec<u64> {
        let out = xdv()
            .args(["compliance", "--json"])
            .arg(trace)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["pass"] == false)
            .map(|i| i["number"].as_u64().unwrap())
            .collect()
    };
    // A VHM holding another VHM's budget.
    let trace = dir.path().join("iso.xdv");
    run_json(&example("fair-share.toml"), &trace, &[]);
    forge(&trace, |e| match (&mut e.kind, e.vhm) {
        (
            EventKind::CapCreated {
                object: o @ Object::Budget(_),
                ..
            },
            Some(VhmId(1)),
        ) => {
            *o = Object::Budget(VhmId(0));
            true
        }
        _ => false,
    });
    assert!(failed(&trace).contains(&1));
    // A child two levels below its parent.
    let trace = dir.path().join("nest.xdv");
    run_json(&example("supervisor.toml"), &trace, &[]);
    forge(&trace, |e| match &mut e.kind {
        EventKind::VhmCreated {
            parent: Some(_),
            level,
            ..
        } => {
            *level += 1;
            true
        }
        _ => false,
    });
    assert!(failed(&trace).contains(&3));
}

#[test]
fn run_prints_guest_logs_as_they_happen_and_strict_fails_on_faults() {
    let dir = tempfile::tempdir().unwrap();
    let out = xdv()
        .arg("run")
        .arg(example("hello.toml"))
        .arg("--trace")
        .arg(dir.path().join("h.xdv"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ns] hello.0: hello from vcpu 0")
            && err.contains("ns] hello.1: sum of 1..10000 = 50005000"),
        "{err}"
    );
    let quiet = xdv()
        .arg("run")
        .arg(example("hello.toml"))
        .arg("--trace")
        .arg(dir.path().join("q.xdv"))
        .args(["--logs", "none", "--strict"])
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );

    let faults = example("faults.toml");
    let trace = dir.path().join("f.xdv");
    xdv()
        .arg("run")
        .arg(&faults)
        .arg("--trace")
        .arg(&trace)
        .args(["--logs", "none"])
        .assert()
        .success();
    let strict = xdv()
        .arg("run")
        .arg(&faults)
        .arg("--trace")
        .arg(dir.path().join("f2.xdv"))
        .args(["--logs", "none", "--strict"])
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(1));
    let chaos = xdv()
        .arg("run")
        .arg(&faults)
        .arg("--trace")
        .arg(dir.path().join("f3.xdv"))
        .args(["--logs", "none", "--chaos", "7"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&chaos.stdout);
    assert!(
        text.contains("Injected faults (5):")
            && text.contains("victim: fault 0 (kill): killed the VHM")
            && text.contains("child: fault 4 (q-provider): no effect: the VHM has no Q container"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&strict.stderr).contains("--strict: 4 VHM(s) faulted: phoenix"));
}

#[test]
fn sim_with_no_seeds_is_a_usage_error() {
    xdv().args(["sim", "--seeds", "0"]).assert().code(2);
}

#[test]
fn trace_show_filters_by_kind_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("h.xdv");
    xdv()
        .arg("run")
        .arg(example("hello.toml"))
        .arg("--trace")
        .arg(&trace)
        .args(["--logs", "none"])
        .assert()
        .success();
    let show = |args: &[&str]| {
        let out = xdv()
            .args(["trace", "show"])
            .arg(&trace)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (exits, _) = show(&["--kind", "vhm_exited,vcpu_halted"]);
    let mut lines = exits.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("SEQ") && header.contains("VIRTUAL TIME") && header.contains("EVENT"),
        "{exits}"
    );
    assert_eq!(lines.clone().count(), 3, "{exits}");
    assert!(
        lines.all(|l| l.contains("exited") || l.contains("halted")),
        "{exits}"
    );
    // Sequence numbers bound as well: events 10 to 12, and nothing else.
    let (window, _) = show(&["--since", "seq:10", "--until", "seq:12", "--json"]);
    let seqs: Vec<u64> = window
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [10, 11, 12]);
    xdv()
        .args(["trace", "show", "--since", "ten"])
        .arg(&trace)
        .assert()
        .code(2);
    let (early, _) = show(&["--kind", "hypercall", "--until", "83"]);
    assert!(!early.is_empty() && !early.contains("sum of"), "{early}");
    let (late, _) = show(&["--since", "131000", "--json"]);
    for line in late.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["time_ns"].as_u64().unwrap() >= 131_000);
    }
    let (none, note) = show(&["--kind", "fault"]);
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    assert!(note.contains("no event of kind \"fault\""), "{note}");
}

/// The read-only commands over `trace`, each with the arguments it needs.
fn read_only_commands(out_dir: &Path) -> Vec<Vec<String>> {
    let o = |name: &str| out_dir.join(name).display().to_string();
    [
        vec!["trace", "show"],
        vec!["trace", "show", "--json"],
        vec!["trace", "show", "--tree"],
        vec!["trace", "accounting"],
        vec!["trace", "export", "--format", "jsonl", "-o", &o("e.jsonl")],
        vec![
            "trace",
            "export",
            "--format",
            "perfetto",
            "-o",
            &o("p.json"),
        ],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(String::from).collect())
    .collect()
}

#[test]
fn a_tampered_trace_is_shown_only_with_force_and_always_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.xdv");
    run_json(&example("hello.toml"), &trace, &[]);
    flip(&trace, b"hello from vcpu 1");
    for args in read_only_commands(dir.path()) {
        let out = xdv().args(&args).arg(&trace).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("FAILS verification") && err.contains("hash chain broken"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed altered data");
        let out = xdv()
            .args(&args)
            .arg("--force")
            .arg(&trace)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?} --force: {err}");
        assert!(
            err.contains("FAILS verification"),
            "{args:?} --force: {err}"
        );
    }
    // The altered text is what --force shows.
    let out = xdv()
        .args(["trace", "show", "--force", "--kind", "hypercall"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from vcpu 1"));
}

#[test]
fn read_only_commands_leave_a_cut_short_trace_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    let text = std::fs::read_to_string(example("fair-share.toml"))
        .unwrap()
        .replace("guests/", &format!("{}/", example("guests").display()));
    std::fs::write(
        &manifest,
        text.replace(
            "time_limit_ns = 40_000_000",
            "time_limit_ns = 40_000_000\n[host.trace]\nbatch_events = 100",
        ),
    )
    .unwrap();
    let trace = dir.path().join("killed.xdv");
    let out = xdv()
        .arg("run")
        .arg(&manifest)
        .arg("--trace")
        .arg(&trace)
        .args(["--crash-after", "250"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was aborted");
    // The killed writer left its write-ahead log: a read-write open would fold it into the file.
    let files = || -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("killed")
            })
            .map(|p| {
                let meta = std::fs::metadata(&p).unwrap();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                    meta.modified().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = files();
    assert!(
        before
            .iter()
            .any(|(n, b, _)| n.ends_with("-wal") && !b.is_empty()),
        "the killed run left a WAL: {:?}",
        before.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let mut commands = read_only_commands(out_dir.path());
    commands.push(vec!["trace".into(), "verify".into()]);
    commands.push(vec!["replay".into()]);
    commands.push(vec!["compliance".into()]);
    for args in commands {
        let out = xdv().args(&args).arg(&trace).output().unwrap();
        assert!(
            out.status.code().is_some_and(|c| c != 2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = files();
        assert_eq!(
            before.iter().map(|f| &f.0).collect::<Vec<_>>(),
            after.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{args:?} added or removed a file"
        );
        for (b, a) in before.iter().zip(&after) {
            assert!(b.1 == a.1, "{args:?} changed the bytes of {}", b.0);
            assert_eq!(b.2, a.2, "{args:?} changed the mtime of {}", b.0);
        }
    }
    // It still reads as cut short, with the events its log holds.
    let out = xdv()
        .args(["trace", "verify"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CUT SHORT: 200 events"));
}

#[test]
fn progress_is_absent_off_a_terminal_and_diagnostics_follow_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("h.xdv");
    let bell = dir.path().join("bell.qasm");
    std::fs::write(
        &bell,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n",
    )
    .unwrap();
    let runs: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["sim".into(), "--seeds".into(), "2".into()],
        vec![
            "run".into(),
            example("hello.toml").into(),
            "--trace".into(),
            trace.clone().into(),
            "--logs".into(),
            "none".into(),
        ],
        vec!["replay".into(), trace.clone().into()],
        vec!["trace".into(), "verify".into(), trace.clone().into()],
        vec![
            "trace".into(),
            "export".into(),
            trace.clone().into(),
            "--format".into(),
            "jsonl".into(),
        ],
        vec!["q".into(), "run".into(), bell.into()],
    ];
    for args in &runs {
        let out = xdv().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?} drew on a stderr that is not a terminal: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = xdv().arg("-v").args(&runs[1]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFO") && err.contains("running"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour off a terminal: {err}");
}

#[test]
fn run_follow_prints_every_event_as_trace_show_does() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("h.xdv");
    let out = xdv()
        .arg("run")
        .arg(example("hello.toml"))
        .arg("--trace")
        .arg(&trace)
        .args(["--logs", "none", "--follow"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let followed = String::from_utf8(out.stdout).unwrap();
    let shown = String::from_utf8(
        xdv()
            .args(["trace", "show"])
            .arg(&trace)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // `trace show` has a header line; --follow prints the events alone, then the summary.
    let events: Vec<&str> = shown.lines().skip(1).collect();
    let printed: Vec<&str> = followed.lines().take(events.len()).collect();
    assert_eq!(printed, events);
    assert!(followed.contains("Resource_Table"));
}

/// Exports `manifest`'s run as Perfetto JSON and checks what the JSON importer of
/// `trace_processor` needs and what a person reads: one name per track, slices on a thread that
/// nest, slice lengths that follow fuel, `log` text on its instants.
fn perfetto_of(manifest: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.xdv");
    run_json(&example(manifest), &trace, &[]);
    let out = xdv()
        .args(["trace", "export", "--format", "perfetto"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = v["traceEvents"].as_array().unwrap().clone();
    let mut named = std::collections::BTreeSet::new();
    let mut slices: std::collections::BTreeMap<(u64, u64), Vec<(f64, f64)>> = Default::default();
    for e in &events {
        let track = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap_or(0));
        match e["ph"].as_str().unwrap() {
            "M" => assert!(
                named.insert((e["name"].as_str().unwrap().to_string(), track)),
                "{manifest}: {e} names its track a second time"
            ),
            "X" => slices.entry(track).or_default().push((
                e["ts"].as_f64().unwrap(),
                e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap(),
            )),
            _ => {}
        }
    }
    // Nesting: sorted by start (longest first), each slice ends within the one open around it.
    for (track, mut list) in slices {
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (a, b) in list {
            while open.last().is_some_and(|&end| end <= a + 1e-6) {
                open.pop();
            }
            if let Some(&end) = open.last() {
                assert!(
                    b <= end + 1e-6,
                    "{manifest}: track {track:?}: [{a}, {b}] overlaps a slice ending at {end}"
                );
            }
            open.push(b);
        }
    }
    events
}

#[test]
fn the_perfetto_export_names_each_track_once_and_its_slices_nest() {
    // fair-share: ns_per_fuel 2; heavy (vhm 0) has weight 2, the others 1. A slice lasts
    // fuel × ns_per_fuel / weight, or less where the one before it on its vCPU ended later.
    let k = perfetto_of("fair-share.toml");
    let slices: Vec<&serde_json::Value> = k.iter().filter(|e| e["name"] == "slice").collect();
    assert!(!slices.is_empty());
    let (mut exact, mut longer) = (0, 0);
    for e in &slices {
        let ns = (e["dur"].as_f64().unwrap() * 1000.0).round() as u64;
        let weight = if e["tid"].as_u64().unwrap() / 1000 == 0 {
            2
        } else {
            1
        };
        let bought = e["args"]["fuel"].as_u64().unwrap() * 2 / weight;
        exact += usize::from(ns == bought);
        longer += usize::from(ns > bought);
    }
    assert_eq!(longer, 0, "no slice lasts longer than its fuel buys");
    assert!(
        exact * 10 >= slices.len() * 9,
        "{exact} of {} slices last their fuel",
        slices.len()
    );
    // hello: its log lines are on the instants.
    let h = perfetto_of("hello.toml");
    assert!(h.iter().any(|e| e["name"] == "log"
        && e["args"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("hello from vcpu"))));
    // q-ghz: three containers' jobs under one device process, one thread each.
    let q = perfetto_of("q-ghz.toml");
    let device: Vec<&serde_json::Value> = q
        .iter()
        .filter(|e| {
            e["name"] == "process_name"
                && e["args"]["name"].as_str().unwrap().starts_with("Q device")
        })
        .collect();
    assert_eq!(device.len(), 1, "{device:?}");
    let pid = device[0]["pid"].as_u64().unwrap();
    let threads = q
        .iter()
        .filter(|e| e["name"] == "thread_name" && e["pid"].as_u64() == Some(pid))
        .count();
    assert_eq!(threads, 3);
    assert!(q
        .iter()
        .any(|e| e["ph"] == "X" && e["pid"].as_u64() == Some(pid)));
    // Φ: windows and transforms on port tracks.
    for m in ["phi-timeshare.toml", "phi-fdm.toml", "phi-decoherence.toml"] {
        let p = perfetto_of(m);
        assert!(
            p.iter().any(|e| e["name"] == "process_name"
                && e["args"]["name"].as_str().unwrap().starts_with("Φ port")),
            "{m}"
        );
    }
}

#[test]
fn phi_plot_png_is_an_image_of_the_transform_with_its_axes() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("rabi.png");
    xdv()
        .args(["phi", "plot"])
        .arg(example("transforms/rabi.phi"))
        .arg("-o")
        .arg(&png)
        .assert()
        .success();
    let image = resvg::tiny_skia::Pixmap::decode_png(&std::fs::read(&png).unwrap()).unwrap();
    assert_eq!(image.width(), 1000);
    assert!(
        image.height() >= 300,
        "two lanes and the axis: {}",
        image.height()
    );
    let pixels = image.pixels();
    let ink = pixels
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
        .count();
    assert!(
        ink * 100 > pixels.len(),
        "non-blank: {ink} of {} pixels",
        pixels.len()
    );
    // The I curve is blue, the Q curve red: both are drawn.
    let blue = pixels.iter().any(|p| p.blue() > 150 && p.red() < 80);
    let red = pixels
        .iter()
        .any(|p| p.red() > 150 && p.blue() < 80 && p.green() < 100);
    assert!(blue && red, "blue {blue}, red {red}");
    // The SVG carries the axis values and the capture's I and Q as text.
    let svg = dir.path().join("rabi.svg");
    xdv()
        .args(["phi", "plot"])
        .arg(example("transforms/rabi.phi"))
        .arg("-o")
        .arg(&svg)
        .assert()
        .success();
    let text = std::fs::read_to_string(&svg).unwrap();
    for needle in ["virtual time (ns)", ">700<", ">+0.300<", "I=2167 Q=175046"] {
        assert!(text.contains(needle), "{needle} in the SVG");
    }
}

#[test]
fn trace_plot_draws_what_a_vhm_ran_from_the_texts_the_trace_holds() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("ts.xdv");
    run_json(&example("phi-timeshare.toml"), &trace, &[]);
    // The recorded captures of alice's transforms.
    let out = xdv()
        .args([
            "trace",
            "show",
            "--json",
            "--vhm",
            "alice",
            "--kind",
            "phi_executed",
        ])
        .arg(&trace)
        .output()
        .unwrap();
    let captures: Vec<(i64, i64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["event"]["PhiExecuted"]["captures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c[0].as_i64().unwrap(), c[1].as_i64().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(captures.len(), 2);
    let svg = dir.path().join("alice.svg");
    let out = xdv()
        .args(["trace", "plot", "--vhm", "alice", "-o"])
        .arg(&svg)
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 transform(s) of alice on 1 window(s)"));
    let text = std::fs::read_to_string(&svg).unwrap();
    for (i, q) in captures {
        assert!(
            text.contains(&format!("I={i} Q={q}")),
            "capture ({i}, {q}) drawn"
        );
    }
    assert!(text.contains("w0 d0") && text.contains("polyline"));
    // The trace holds the transforms' texts: the guest's own transform is among them.
    let conn =
        rusqlite::Connection::open_with_flags(&trace, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let texts: Vec<Vec<u8>> = conn
        .prepare("SELECT bytes FROM modules")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|b: &Vec<u8>| b.starts_with(b"frame ") || b.windows(9).any(|w| w == b"newframe("))
        .filter(|b| !b.starts_with(b"\0asm"))
        .collect();
    assert!(!texts.is_empty(), "the transforms' texts are stored");
    // A trace of an earlier release holds no texts: nothing to draw, and it says why.
    let old = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../xdv-trace/tests/fixtures/schema-5-phi-decoherence.xdv");
    let copy = dir.path().join("old.xdv");
    std::fs::copy(old, &copy).unwrap();
    let out = xdv()
        .args(["trace", "plot", "--vhm", "fragile"])
        .arg(&copy)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not hold its text"), "{err}");
}
