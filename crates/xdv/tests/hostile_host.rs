//! What a hostile guest can make the host spend, through the real binary: every host resource is
//! bounded by the guest's own budgets, so each attack below ends in a recorded refusal or a
//! fault of the attacker, inside a peak-RSS bound measured with GNU time (`/usr/bin/time -v`;
//! Debian package `time`, installed by `.ci/run`).

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn xdv() -> Command {
    let mut c = Command::cargo_bin("xdv").unwrap();
    c.timeout(Duration::from_secs(300));
    c
}

/// Writes `files` into a fresh directory; returns it and the path of the first (the manifest).
fn scenario(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let manifest = dir.path().join(files[0].0);
    (dir, manifest)
}

/// Runs `xdv run MANIFEST --trace DIR/run.xdv` under GNU time; returns the run's exit code,
/// its peak RSS in KiB and the trace path.
fn run_measured(manifest: &Path) -> (i32, u64, PathBuf) {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "the RSS bounds are measured with GNU time: apt-get install time"
    );
    let trace = manifest.with_file_name("run.xdv");
    let out = std::process::Command::new(time)
        .arg("-v")
        .arg(assert_cmd::cargo::cargo_bin("xdv"))
        .arg("run")
        .arg(manifest)
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or_else(|| panic!("no RSS in {stderr}"))
        .parse()
        .unwrap();
    let text = std::fs::read_to_string(manifest).unwrap();
    let first = text.split('"').nth(1).unwrap_or("?");
    eprintln!("scenario {first:?}: peak RSS {rss} KiB");
    // GNU time exits with the command's status.
    (out.status.code().unwrap_or(-1), rss, trace)
}

/// The trace's events as JSON lines.
fn events(trace: &Path) -> Vec<serde_json::Value> {
    let out = xdv()
        .args(["trace", "show", "--json"])
        .arg(trace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn texts(events: &[serde_json::Value], vhm: &str, kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["vhm_name"] == vhm && e["kind"] == kind)
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

/// The documented peak-RSS bound (docs/reliability.md): 32 MiB + 2 × Σ memory_quota + 1 MiB
/// per vCPU, in KiB.
fn bound_kib(memory_quotas: u64, vcpus: u64) -> u64 {
    (32 << 10) + 2 * memory_quotas / 1024 + vcpus * 1024
}

/// Two channels of 4096 messages filled with 32 KiB messages: the memory budget (64 KiB above
/// the vCPU's memory) holds one, and every further send is refused, not queued.
#[test]
fn an_ipc_flood_is_held_in_the_senders_memory_budget() {
    let guest = r#"(module
      (import "xdv" "ipc_channel" (func $channel (param i32 i32) (result i32)))
      (import "xdv" "ipc_send" (func $send (param i64 i32 i32 i64 i32) (result i32)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "main") (local $i i32)
        (drop (call $channel (i32.const 4096) (i32.const 0)))
        (drop (call $channel (i32.const 4096) (i32.const 16)))
        (loop $again
          (drop (call $send (i64.load (i32.const 0)) (i32.const 0) (i32.const 32768) (i64.const 0) (i32.const 0)))
          (drop (call $send (i64.load (i32.const 16)) (i32.const 0) (i32.const 32768) (i64.const 0) (i32.const 0)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 4096))))
        (call $exit (i32.const 0))))"#;
    let manifest =
        "[[vhm]]\nname = \"flood\"\n[vhm.k]\nmodule = \"flood.wat\"\nmemory_limit = \"64 KiB\"\n\
                    [vhm.policy]\nmemory_quota = \"128 KiB\"\ncreate_channels = true\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("flood.wat", guest)]);
    let (code, rss, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let refused = texts(&ev, "flood", "refused");
    assert!(refused.len() > 8000, "{}", refused.len());
    assert!(
        refused[0].contains("memory budget: needs 32832 bytes, 32704 left"),
        "{}",
        refused[0]
    );
    // Before: 512 MiB of queued messages.
    assert!(rss < bound_kib(128 << 10, 1), "peak RSS {rss} KiB");
}

/// A 65-byte module declaring a table of 50 million elements, four vCPUs: refused before
/// anything is allocated, with both numbers.
#[test]
fn a_table_bomb_is_refused_at_instantiation() {
    let guest =
        r#"(module (table 50000000 funcref) (memory (export "memory") 1) (func (export "main")))"#;
    let manifest = "[[vhm]]\nname = \"bomb\"\n[vhm.k]\nmodule = \"bomb.wat\"\nvcpus = 4\nmemory_limit = \"64 KiB\"\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("bomb.wat", guest)]);
    let out = xdv().arg("check").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tables of 50000000 elements exceed the 65536 a vCPU may hold"),
        "{err}"
    );
    let (code, rss, _) = run_measured(&m);
    assert_eq!(code, 2);
    // Before: 774 MiB.
    assert!(rss < bound_kib(4 << 16, 4), "peak RSS {rss} KiB");
}

/// The bytes of `(module (func (export "main")))` with a custom section of `payload` zero bytes
/// first: (prefix up to the payload, suffix after it).
fn module_with_custom_section(payload: usize) -> (Vec<u8>, Vec<u8>) {
    let body = wat::parse_str(r#"(module (func (export "main")))"#).unwrap();
    let leb = |mut n: usize, out: &mut Vec<u8>| loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    };
    let mut prefix = body[..8].to_vec();
    prefix.push(0);
    leb(payload + 2, &mut prefix);
    prefix.extend_from_slice(&[1, b'x']);
    (prefix, body[8..].to_vec())
}

fn wat_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("\\{x:02x}")).collect()
}

/// 32 spawn → wait → drop cycles, each on a module that differs by one byte of a 1 MiB custom
/// section: each module is reclaimed when its child stops, so the host holds about one at a
/// time, and each load is paid for in fuel.
#[test]
fn modules_of_stopped_children_are_reclaimed() {
    const PAYLOAD: usize = 1 << 20;
    let (prefix, suffix) = module_with_custom_section(PAYLOAD);
    let total = prefix.len() + PAYLOAD + suffix.len();
    let code_at = 65_536;
    let payload_at = code_at + prefix.len();
    let suffix_at = payload_at + PAYLOAD;
    let guest = format!(
        r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "cap_drop" (func $cap_drop (param i64) (result i32)))
      (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
      (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 32)
      (data (i32.const 0) "b")
      (data (i32.const {code_at}) "{prefix}")
      (data (i32.const {suffix_at}) "{suffix}")
      (func (export "main") (local $i i32) (local $child i64)
        (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
        (i64.store (i32.const 520) (i64.const 0))
        (i32.store (i32.const 528) (i32.const {code_at}))
        (i32.store (i32.const 532) (i32.const {total}))
        (i32.store (i32.const 536) (i32.const 0))
        (i32.store (i32.const 540) (i32.const 1))
        (i32.store (i32.const 544) (i32.const 1))
        (i32.store (i32.const 548) (i32.const 1))
        (i64.store (i32.const 552) (i64.const 65536))
        (i64.store (i32.const 560) (i64.const 65536))
        (i64.store (i32.const 568) (i64.const 10000))
        (i32.store (i32.const 576) (i32.const 1))
        (loop $again
          (i32.store8 (i32.const {payload_at}) (local.get $i))
          (local.set $child (call $vhm_spawn (i32.const 512) (i32.const 88)))
          (if (i64.lt_s (local.get $child) (i64.const 0)) (then (call $exit (i32.const 1))))
          (drop (call $vhm_wait (local.get $child)))
          (drop (call $cap_drop (local.get $child)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 32))))
        (call $exit (i32.const 0))))"#,
        prefix = wat_bytes(&prefix),
        suffix = wat_bytes(&suffix),
    );
    // 2 MiB + one child above the 2 MiB of linear memory: room for one loaded module at a time
    // (4 × 1 MiB), not for two.
    let manifest = "[[vhm]]\nname = \"loader\"\n[vhm.k]\nmodule = \"loader.wat\"\nmemory_limit = \"2 MiB\"\n\
                    [vhm.policy]\nmax_vcpus = 2\nmemory_quota = \"7 MiB\"\nfuel_quota = 1_000_000_000\nmax_depth = 1\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("loader.wat", &guest)]);
    let (code, rss, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    assert_eq!(texts(&ev, "loader", "module_loaded").len(), 32);
    assert_eq!(ev.iter().filter(|e| e["kind"] == "vhm_exited").count(), 33);
    // Fuel: at least a unit per byte loaded.
    let out = xdv()
        .args(["trace", "accounting", "--json"])
        .arg(&trace)
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let used = rows["resource_table"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vhm_name"] == "loader" && r["resource"] == "fuel")
        .unwrap()["used"]
        .as_u64()
        .unwrap();
    assert!(used >= 32 * PAYLOAD as u64, "{used}");
    // Before: every module kept, compiled, for the life of the host.
    assert!(rss < bound_kib(7 << 20, 2), "peak RSS {rss} KiB");
}

/// A timer no handler takes is refused; one whose ticks are never delivered (the vCPU waits on
/// a message that never comes) fires once and coalesces; one that is taken costs fuel per tick,
/// so a VHM of 20 000 fuel stops after a bounded number of ticks.
#[test]
fn timer_ticks_are_bounded_by_fuel() {
    let no_handler = r#"(module
      (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
      (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
      (memory (export "memory") 1)
      (func (export "main")
        (drop (call $timer_set (i64.const 1)))
        (drop (call $sleep (i64.const 0x7fffffffffffffff)))))"#;
    let parked = r#"(module
      (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
      (import "xdv" "ipc_channel" (func $channel (param i32 i32) (result i32)))
      (import "xdv" "ipc_recv" (func $recv (param i64 i32 i32) (result i64)))
      (memory (export "memory") 1)
      (func (export "xdv_irq") (param i32 i64))
      (func (export "main")
        (drop (call $channel (i32.const 1) (i32.const 0)))
        (drop (call $timer_set (i64.const 1)))
        (drop (call $recv (i64.load (i32.const 8)) (i32.const 64) (i32.const 64)))))"#;
    let taken = r#"(module
      (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
      (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
      (memory (export "memory") 1)
      (func (export "xdv_irq") (param i32 i64))
      (func (export "main")
        (drop (call $timer_set (i64.const 1)))
        (loop $l (drop (call $sleep (i64.const 0x7fffffffffffffff))) (br $l))))"#;
    let manifest = "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"a.wat\"\n[vhm.policy]\nfuel_quota = 20_000\n\
                    [[vhm]]\nname = \"b\"\n[vhm.k]\nmodule = \"b.wat\"\n[vhm.policy]\nfuel_quota = 20_000\ncreate_channels = true\n\
                    [[vhm]]\nname = \"c\"\n[vhm.k]\nmodule = \"c.wat\"\n[vhm.policy]\nfuel_quota = 20_000\n";
    let (_d, m) = scenario(&[
        ("m.toml", manifest),
        ("a.wat", no_handler),
        ("b.wat", parked),
        ("c.wat", taken),
    ]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    assert!(texts(&ev, "a", "refused")[0].contains("a timer needs an xdv_irq export"));
    assert!(texts(&ev, "a", "timer_fired").is_empty());
    assert_eq!(texts(&ev, "b", "timer_fired").len(), 1);
    let ticks = texts(&ev, "c", "timer_fired").len();
    assert!((10..=20_000 / 64).contains(&ticks), "{ticks} ticks");
    let fault = texts(&ev, "c", "fault");
    assert!(fault[0].contains("fuel-exhausted"), "{fault:?}");
    // Before: over 100 000 events in 4 s and no end.
    assert!(ev.len() < 5_000, "{} events", ev.len());
}

/// One 1-shot job of 20 qubits whose nested gates expand to 200 000 CX: its simulation is
/// charged before it runs, so it is refused, and a bystander finishes as it does alone.
#[test]
fn q_simulation_work_is_charged_before_the_job_runs() {
    let mut program =
        String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[20];\ncreg c[20];\n");
    // A ring of six qubits: fusion of at most 5 cannot fold it into one step, so every few
    // gates cost a pass over 2^20 amplitudes (two hundred thousand gates from 1 KiB of text).
    program.push_str("gate g0 a,b,c,d,e,f { cx a,b; cx c,d; cx e,f; cx b,c; cx d,e; cx f,a; }\n");
    for level in 1..=5 {
        let prev = level - 1;
        program.push_str(&format!(
            "gate g{level} a,b,c,d,e,f {{ {} }}\n",
            format!("g{prev} a,b,c,d,e,f;").repeat(8)
        ));
    }
    program.push_str("g5 q[0],q[1],q[2],q[3],q[4],q[5];\nmeasure q -> c;\n");
    assert!(program.len() < 1024);
    let len = program.len();
    let guest = format!(
        r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "q_submit" (func $submit (param i64 i32 i32 i64 i32) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 1024) "{}")
      (func (export "main")
        (call $exit (i32.wrap_i64 (call $submit (call $cap_find (i32.const 6) (i32.const 0))
          (i32.const 1024) (i32.const {len}) (i64.const 1) (i32.const 0))))))"#,
        program.replace('"', "\\\"").replace('\n', "\\n")
    );
    let manifest = "[[vhm]]\nname = \"heavy\"\n[vhm.k]\nmodule = \"heavy.wat\"\n[vhm.policy]\nmemory_quota = \"64 MiB\"\n\
                    [vhm.q]\ndevice = \"ideal-grid\"\nqubits = 20\nbudget = 1e6\n\
                    [[vhm]]\nname = \"bystander\"\n[vhm.k]\nmodule = \"idle.wat\"\n";
    let idle = r#"(module (memory (export "memory") 1) (func (export "main") (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))))"#;
    let (_d, m) = scenario(&[
        ("m.toml", manifest),
        ("heavy.wat", &guest),
        ("idle.wat", idle),
    ]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let refused = texts(&ev, "heavy", "refused");
    assert!(
        refused[0].contains("amplitude updates") && refused[0].contains("fuel left"),
        "{refused:?}"
    );
    assert!(texts(&ev, "heavy", "q_job_submitted").is_empty());
    assert_eq!(texts(&ev, "bystander", "vhm_exited").len(), 1);
}

/// Times past the horizon are refused where they are asked for, a far-future sleep ends at the
/// horizon, and a fault injected into a stopped VHM does not move the end of the run.
#[test]
fn the_virtual_clock_cannot_wrap() {
    let guest = r#"(module
      (import "xdv" "timer_set" (func $timer_set (param i64) (result i32)))
      (import "xdv" "phi_window" (func $phi_window (param i32 i32) (result i64)))
      (import "xdv" "time" (func $time (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "xdv_irq") (param i32 i64))
      (func (export "main")
        (drop (call $timer_set (i64.const 0x7fffffffffffffff)))
        (i64.store (i32.const 8) (i64.const 100))
        (i64.store (i32.const 16) (i64.const -4))
        (i64.store (i32.const 24) (i64.const 4600000000))
        (i64.store (i32.const 32) (i64.const 5400000000))
        (i32.store (i32.const 40) (i32.const 1000000))
        (drop (call $phi_window (i32.const 0) (i32.const 48)))
        (call $exit (i32.wrap_i64 (call $time)))))"#;
    let manifest = "[host]\nseed = 1\n[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\nmax_amplitude = 1.0\nt2_ns = 100_000\n\
                    [[vhm]]\nname = \"far\"\n[vhm.k]\nmodule = \"far.wat\"\n\
                    [[vhm.phi.window]]\nport = \"q0\"\nstart_ns = 0\nend_ns = 1000\n\
                    [[fault]]\nvhm = \"far\"\nclass = \"kill\"\nat_ns = 1_000_000_000_000_000\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("far.wat", guest)]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let refused = texts(&ev, "far", "refused");
    assert!(refused[0].contains("past the time horizon"), "{refused:?}");
    assert!(refused[1].contains("past the time horizon"), "{refused:?}");
    let last = ev.last().unwrap();
    assert_eq!(last["kind"], "host_finished");
    assert!(last["time_ns"].as_u64().unwrap() < 1_000_000, "{last}");
    assert_eq!(texts(&ev, "far", "fault_injected").len(), 1);
}

/// A VHM with no Φ configuration asks for a port for all of time: refused, and the port stays
/// free for the VHM that holds port-time on it.
#[test]
fn phi_windows_need_port_time() {
    let taker = r#"(module
      (import "xdv" "phi_window" (func $phi_window (param i32 i32) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "main")
        (i64.store (i32.const 8) (i64.const 100))
        (i64.store (i32.const 16) (i64.const 0x3ffffffffffffff0))
        (i64.store (i32.const 24) (i64.const 4600000000))
        (i64.store (i32.const 32) (i64.const 5400000000))
        (i32.store (i32.const 40) (i32.const 1000000))
        (call $exit (i32.wrap_i64 (call $phi_window (i32.const 0) (i32.const 48))))))"#;
    let owner = r#"(module
      (import "xdv" "phi_window" (func $phi_window (param i32 i32) (result i64)))
      (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "main")
        (drop (call $sleep (i64.const 1000)))
        (i64.store (i32.const 8) (i64.const 10000))
        (i64.store (i32.const 16) (i64.const 20000))
        (i64.store (i32.const 24) (i64.const 4600000000))
        (i64.store (i32.const 32) (i64.const 5400000000))
        (i32.store (i32.const 40) (i32.const 1000000))
        (call $exit (i32.wrap_i64 (i64.shr_u (call $phi_window (i32.const 0) (i32.const 48)) (i64.const 63))))))"#;
    let manifest = "[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\nmax_amplitude = 1.0\nt2_ns = 100_000\n\
                    [[vhm]]\nname = \"taker\"\n[vhm.k]\nmodule = \"taker.wat\"\n\
                    [[vhm]]\nname = \"owner\"\n[vhm.k]\nmodule = \"owner.wat\"\n[vhm.policy]\nphi_port_time = 10000\n";
    let (_d, m) = scenario(&[
        ("m.toml", manifest),
        ("taker.wat", taker),
        ("owner.wat", owner),
    ]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let refused = texts(&ev, "taker", "refused");
    assert!(refused[0].contains("Φ port-time"), "{refused:?}");
    assert!(texts(&ev, "owner", "refused").is_empty());
    assert_eq!(texts(&ev, "owner", "phi_window_granted").len(), 1);
}

/// Badges are 0 … 2⁶³−1, as documented.
#[test]
fn badges_over_the_documented_range_are_refused() {
    let guest = r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "main")
        (drop (call $cap_derive (call $cap_find (i32.const 3) (i32.const 0)) (i32.const 1) (i64.const 0x8000000000000000)))
        (drop (call $cap_derive (call $cap_find (i32.const 3) (i32.const 0)) (i32.const 1) (i64.const -1)))
        (call $exit (i32.wrap_i64 (i64.shr_u (call $cap_derive (call $cap_find (i32.const 3) (i32.const 0)) (i32.const 1) (i64.const 0x7fffffffffffffff)) (i64.const 63))))))"#;
    let manifest = "[[vhm]]\nname = \"b\"\n[vhm.k]\nmodule = \"b.wat\"\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("b.wat", guest)]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let refused = texts(&ev, "b", "refused");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|r| r.contains("is over the largest")));
    assert!(texts(&ev, "b", "vhm_exited")[0].starts_with("exited: exit(0)"));
}

/// A derive loop: the capability table grows only while the memory budget holds it (128
/// capabilities free, then 1096 bytes each), so a VHM with 64 KiB of headroom is refused
/// after about 180 copies, not after 65 536.
#[test]
fn capability_tables_are_held_in_the_memory_budget() {
    let guest = r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "cap_derive" (func $cap_derive (param i64 i32 i64) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "main") (local $i i32) (local $ok i32)
        (loop $l
          (if (i64.ge_s (call $cap_derive (call $cap_find (i32.const 3) (i32.const 0)) (i32.const 1) (i64.const 0)) (i64.const 0))
            (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
        (call $exit (local.get $ok))))"#;
    let manifest =
        "[[vhm]]\nname = \"d\"\n[vhm.k]\nmodule = \"d.wat\"\nmemory_limit = \"64 KiB\"\n\
                    [vhm.policy]\nmemory_quota = \"128 KiB\"\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("d.wat", guest)]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let exit = &texts(&ev, "d", "vhm_exited")[0];
    let derived: u64 = exit
        .strip_prefix("exited: exit(")
        .and_then(|s| s.split(')').next())
        .unwrap()
        .parse()
        .unwrap();
    // The VHM starts with 3 capabilities: 125 free, then 65 536 / 1096 = 59 charged.
    assert_eq!(derived, 125 + 59, "{exit}");
    let refused = texts(&ev, "d", "refused");
    assert!(
        refused[0].contains("memory budget: the capability table needs 1096 more bytes"),
        "{refused:?}"
    );
}

/// Φ samples are host memory and work: a 200 µs play (200 000 samples) by a VHM whose memory
/// quota holds 81 920 is refused before any is generated; a short one is charged its fuel.
#[test]
fn phi_samples_are_charged_to_memory_and_fuel() {
    let guest = r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "phi_exec" (func $phi_exec (param i64 i32 i32 i32 i32) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 0) "frame d = newframe(q0, 5e9, 0); play(d, constant(0.25, 200000));")
      (data (i32.const 100) "frame d = newframe(q0, 5e9, 0); play(d, constant(0.25, 3200));")
      (func (export "main")
        (drop (call $phi_exec (call $cap_find (i32.const 8) (i32.const 0)) (i32.const 0) (i32.const 64) (i32.const 0) (i32.const 0)))
        (drop (call $phi_exec (call $cap_find (i32.const 8) (i32.const 0)) (i32.const 100) (i32.const 62) (i32.const 0) (i32.const 0)))
        (call $exit (i32.const 0))))"#;
    let manifest = "[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\nmax_amplitude = 1.0\nt2_ns = 10_000_000\n\
                    [[vhm]]\nname = \"p\"\n[vhm.k]\nmodule = \"p.wat\"\nmemory_limit = \"64 KiB\"\n\
                    [vhm.policy]\nmemory_quota = \"1280 KiB\"\n\
                    [[vhm.phi.window]]\nport = \"q0\"\nstart_ns = 0\nend_ns = 1_000_000\nband = [4.9e9, 5.1e9]\nmax_amplitude = 0.5\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("p.wat", guest)]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    let refused = texts(&ev, "p", "refused");
    assert!(
        refused[0].ends_with("phi_exec: contract: size at 1:33"),
        "{refused:?}"
    );
    assert_eq!(
        texts(&ev, "p", "host_work"),
        vec!["phi transform 0 samples: 3200 samples, 200 fuel".to_string()]
    );
}

/// An element segment past its table's end is an instantiation error in words, not the
/// engine's internal debug text.
#[test]
fn a_failing_element_segment_reads_as_words() {
    let guest = r#"(module (table 1 funcref) (func $f) (elem (i32.const 5) $f)
      (memory (export "memory") 1) (func (export "main")))"#;
    let manifest = "[[vhm]]\nname = \"e\"\n[vhm.k]\nmodule = \"e.wat\"\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("e.wat", guest)]);
    let out = xdv().arg("check").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("an element segment does not fit its table"),
        "{err}"
    );
    assert!(!err.contains("Stored"), "{err}");
}

/// The fuel and memory a module load costs must fit beside the child's quota: a spawn whose
/// child takes almost all the fuel left, from a 64 KiB module, is refused (not carved short),
/// and a smaller quota then fits.
#[test]
fn a_module_load_is_paid_beside_the_childs_quota() {
    const PAYLOAD: usize = 1 << 16;
    let (prefix, suffix) = module_with_custom_section(PAYLOAD);
    let total = prefix.len() + PAYLOAD + suffix.len();
    let code_at = 4096;
    let suffix_at = code_at + prefix.len() + PAYLOAD;
    let guest = format!(
        r#"(module
      (import "xdv" "cap_find" (func $cap_find (param i32 i32) (result i64)))
      (import "xdv" "vhm_spawn" (func $vhm_spawn (param i32 i32) (result i64)))
      (import "xdv" "vhm_wait" (func $vhm_wait (param i64) (result i64)))
      (import "xdv" "exit" (func $exit (param i32)))
      (memory (export "memory") 2)
      (data (i32.const 0) "b")
      (data (i32.const {code_at}) "{prefix}")
      (data (i32.const {suffix_at}) "{suffix}")
      (func (export "main") (local $q i64) (local $h i64)
        (i64.store (i32.const 512) (call $cap_find (i32.const 2) (i32.const 0)))
        (i32.store (i32.const 528) (i32.const {code_at}))
        (i32.store (i32.const 532) (i32.const {total}))
        (i32.store (i32.const 540) (i32.const 1))
        (i32.store (i32.const 544) (i32.const 1))
        (i32.store (i32.const 548) (i32.const 1))
        (i64.store (i32.const 552) (i64.const 65536))
        (i64.store (i32.const 560) (i64.const 65536))
        (i32.store (i32.const 576) (i32.const 1))
        (local.set $q (i64.const 999000))
        (loop $l
          (i64.store (i32.const 568) (local.get $q))
          (local.set $h (call $vhm_spawn (i32.const 512) (i32.const 88)))
          (if (i64.ge_s (local.get $h) (i64.const 0))
            (then (drop (call $vhm_wait (local.get $h))) (call $exit (i32.const 0))))
          (local.set $q (i64.sub (local.get $q) (i64.const 100)))
          (br_if $l (i64.gt_s (local.get $q) (i64.const 0))))
        (call $exit (i32.const 1))))"#,
        prefix = wat_bytes(&prefix),
        suffix = wat_bytes(&suffix),
    );
    let manifest = "[[vhm]]\nname = \"p\"\n[vhm.k]\nmodule = \"p.wat\"\nmemory_limit = \"128 KiB\"\n\
                    [vhm.policy]\nmax_vcpus = 2\nmemory_quota = \"1 MiB\"\nfuel_quota = 1_000_000\nmax_depth = 1\n";
    let (_d, m) = scenario(&[("m.toml", manifest), ("p.wat", &guest)]);
    let (code, _, trace) = run_measured(&m);
    assert_eq!(code, 0);
    let ev = events(&trace);
    assert!(texts(&ev, "p", "refused")
        .iter()
        .any(|r| r.contains("takes 65") && r.contains("left beside the child's fuel_quota")));
    assert_eq!(
        texts(&ev, "p", "vhm_exited")[0].split(',').next(),
        Some("exited: exit(0)")
    );
}
