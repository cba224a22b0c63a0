//! Guests as their authors meet them: the module checks' messages, and the SDK examples
//! (Rust and C) run through the real binary, replayed and checked for compliance.
//!
//! The SDK examples are built by `sdk/build-examples.sh`, which needs the wasm32 Rust target
//! and clang. Without the built modules their test says so and passes, unless
//! `XDV_REQUIRE_SDK_EXAMPLES=1` (which `.ci/run` sets after building them) makes it fail.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn xdv() -> Command {
    Command::cargo_bin("xdv").unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// `xdv check` and `xdv run` on a one-VHM manifest around `wat`: the error text of both.
fn refusal(wat: &str, k_extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("g.wat"), wat).unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        format!("[[vhm]]\nname = \"g\"\n[vhm.k]\nmodule = \"g.wat\"\n{k_extra}"),
    )
    .unwrap();
    let check = xdv().arg("check").arg(&m).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    let run = xdv()
        .arg("run")
        .arg(&m)
        .arg("--trace")
        .arg(dir.path().join("t.xdv"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let (c, r) = (
        String::from_utf8_lossy(&check.stderr).to_string(),
        String::from_utf8_lossy(&run.stderr).to_string(),
    );
    assert_eq!(c, r, "check and run refuse alike");
    c
}

#[test]
fn a_guest_built_for_another_abi_version_is_refused_naming_both() {
    let wat = r#"(module (@custom "xdv.abi" "\63\00\00\00") (memory (export "memory") 1) (func (export "main")))"#;
    let e = refusal(wat, "");
    assert!(
        e.contains("the module was built for xdv ABI version 99; this host implements version 4"),
        "{e}"
    );
    let short = r#"(module (@custom "xdv.abi" "\04") (func (export "main")))"#;
    assert!(refusal(short, "").contains("must hold one little-endian u32"));
}

#[test]
fn a_guest_for_this_abi_version_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(module (@custom "xdv.abi" "\04\00\00\00") (func (export "main")))"#;
    std::fs::write(dir.path().join("g.wat"), wat).unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(&m, "[[vhm]]\nname = \"g\"\n[vhm.k]\nmodule = \"g.wat\"\n").unwrap();
    xdv().arg("check").arg(&m).assert().success();
}

#[test]
fn module_errors_give_what_an_author_can_act_on() {
    let big = r#"(module (memory (export "memory") 17) (func (export "main")))"#;
    let e = refusal(big, "");
    assert!(
        e.contains("module declares 17 pages (1 114 112 B); vhm[0].k.memory_limit is 1 048 576 B"),
        "{e}"
    );

    let no_memory = r#"(module (import "xdv" "log" (func (param i32 i32) (result i32))) (func (export "main")))"#;
    assert!(refusal(no_memory, "").contains(
        "import xdv.log: the call takes a pointer into guest memory, but the module exports no memory named \"memory\""
    ));

    let memset = r#"(module (import "env" "memset" (func (param i32 i32 i32) (result i32))) (memory (export "memory") 1) (func (export "main")))"#;
    let e = refusal(memset, "");
    assert!(e.contains("the compiler emitted a call to memset"), "{e}");
    assert!(e.contains("XDV_IMPLEMENTATION"), "{e}");

    let simd = r#"(module (func (export "main") (drop (i32x4.splat (i32.const 1)))))"#;
    let e = refusal(simd, "");
    assert!(
        e.contains("uses the WebAssembly feature \"simd128\", which xdv does not accept"),
        "{e}"
    );
}

#[test]
fn abi_prints_the_accepted_features_and_the_sdk_layers() {
    let out = xdv().arg("abi").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("bulk-memory") && text.contains("relaxed-simd"));
    assert!(text.contains("log(ptr: i32, len: i32)") || text.contains("(ptr: i32, len: i32)"));
    let header = xdv().args(["abi", "--c-header"]).output().unwrap();
    assert!(String::from_utf8_lossy(&header.stdout).contains("import_name(\"vhm_spawn\")"));
    let rust = xdv().args(["abi", "--rust"]).output().unwrap();
    assert!(String::from_utf8_lossy(&rust.stdout).contains("pub fn vhm_spawn("));
}

/// Each SDK example, and the log lines its run must record.
const SDK_EXAMPLES: &[(&str, &[&str])] = &[
    (
        "c-hello.toml",
        &[
            "hello from vcpu 0 at ",
            "hello from vcpu 1 at ",
            "sum of 1..10000 = 50005000",
            "irq 2 (arg 42) on vcpu 0",
            "tick 3 at ",
            "vcpu 0: three ticks by ",
        ],
    ),
    (
        "c-supervisor.toml",
        &[
            "worker: done (5742 Collatz steps)",
            "supervisor: w1 finished",
            "supervisor: w2 faulted, restarting it",
            "supervisor: w2 finished after the restart",
        ],
    ),
    (
        "c-client-server.toml",
        &[
            "server: got a request with a reply capability (badge 1)",
            "client: reply: pong: hello server",
            "server: bye",
        ],
    ),
    (
        "c-vqe.toml",
        &[
            "vqe: theta = 8*pi/64, energy <Z0+Z1> x 1000 = ",
            "vqe: converged at theta = 64",
        ],
    ),
    (
        "c-phi.toml",
        &[
            "phi: transform 0 -> 1, first capture I=",
            "phi: transform 1 -> 1, first capture I=",
            "phi: frame d0 at 5000000000 Hz, phase 250000 ppm of a turn",
        ],
    ),
    (
        "rust-hello.toml",
        &[
            "hello from vcpu 0 at ",
            "hello from vcpu 1 at ",
            "sum of 1..10000 = 50005000",
            "irq 2 (arg 42) on vcpu 0",
            "tick 3 at ",
            "vcpu 0: three ticks by ",
        ],
    ),
    (
        "rust-supervisor.toml",
        &[
            "worker: started",
            "supervisor: w1 finished",
            "supervisor: w2 faulted, restarting it",
            "supervisor: w2 finished after the restart",
        ],
    ),
    (
        "rust-client-server.toml",
        &[
            "server: got a request with a reply capability (badge 1)",
            "client: reply: pong: hello server",
            "server: bye",
        ],
    ),
    (
        "rust-vqe.toml",
        &[
            "vqe: theta = 0.392699 rad, energy <Z0+Z1> = ",
            "vqe: converged at theta = 3.141593 rad (64*pi/64), energy -2.000",
        ],
    ),
    (
        "rust-panic.toml",
        &[
            "panic: panicked at ",
            "index out of bounds: the len is 2 but the index is ",
        ],
    ),
    (
        "rust-phi.toml",
        &[
            "phi: transform 0 -> 1, first capture I=",
            "phi: transform 1 -> 1, first capture I=",
            "phi: frame d0 at 5000000000 Hz, phase 250000 ppm of a turn",
        ],
    ),
];

/// The `.wasm` files a manifest names, relative to it.
fn modules_of(manifest: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let dir = manifest.parent().unwrap();
    text.lines()
        .flat_map(|l| l.split('"').skip(1).step_by(2).collect::<Vec<_>>())
        .filter(|s| s.ends_with(".wasm"))
        .map(|s| dir.join(s))
        .collect()
}

#[test]
fn sdk_examples_run_replay_and_pass_compliance() {
    let required = std::env::var("XDV_REQUIRE_SDK_EXAMPLES").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (name, lines) in SDK_EXAMPLES {
        let manifest = examples().join("sdk").join(name);
        let missing: Vec<_> = modules_of(&manifest)
            .into_iter()
            .filter(|m| !m.exists())
            .collect();
        if !missing.is_empty() {
            assert!(
                !required,
                "{name}: {missing:?} not built (run sdk/build-examples.sh)"
            );
            eprintln!("skipping {name}: not built (sdk/build-examples.sh builds it)");
            continue;
        }
        let trace = dir.path().join(format!("{name}.xdv"));
        xdv().arg("check").arg(&manifest).assert().success();
        xdv()
            .arg("run")
            .arg(&manifest)
            .arg("--trace")
            .arg(&trace)
            .assert()
            .success();
        let shown = xdv().args(["trace", "show"]).arg(&trace).output().unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        for line in *lines {
            assert!(
                shown.contains(line),
                "{name}: no log line {line:?} in\n{shown}"
            );
        }
        if *name == "rust-panic.toml" {
            assert!(shown.contains("exited: exit(101)"), "{shown}");
        } else {
            assert!(!shown.contains("panic: "), "{name} panicked:\n{shown}");
        }
        xdv().arg("replay").arg(&trace).assert().success();
        xdv().arg("compliance").arg(&trace).assert().success();
        ran += 1;
    }
    if required {
        assert_eq!(ran, SDK_EXAMPLES.len());
    }
}
