//! Bad manifests and the exact message each must produce (`xdv check`, exit code 2).

use assert_cmd::Command;

/// (manifest text, expected message after the file name)
const CASES: &[(&str, &str)] = &[
    // Syntax and types.
    ("[[vhm]\nname = \"a\"", ":1:"),
    ("[host]\nseed = \"seven\"\n", ":2:8: host.seed: invalid type: string \"seven\", expected u64"),
    ("[host]\nsead = 1\n", ":2:1: host.sead: unknown field `sead`"),
    ("[host]  # the host\nseed = -3\n", ":2:8: host.seed: invalid value: integer `-3`, expected u64"),
    ("[[vhm]]\nname = \"a\"\ncolour = \"red\"\n[vhm.k]\nmodule = \"g.wat\"\n", ":3:1: vhm.colour: unknown field `colour`"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nvcpus = -1\n", ":5:9: vhm.k.vcpus: invalid value: integer `-1`, expected u64"),
    ("[[vhm]]\nname = \"a\"\n", "missing field `k`"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nvcpus = 1\n", "missing field `module`"),
    // Values.
    ("", ":1:1: vhm: the manifest declares no VHM"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nvcpus = 0\n", ":5:9: vhm[0].k.vcpus: a VHM needs at least one vCPU"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nvcpus = 65\n", ":5:9: vhm[0].k.vcpus: must be between 1 and 64, got 65"),
    ("[[vhm]]\nname = \"a b\"\n[vhm.k]\nmodule = \"g.wat\"\n", ":2:8: vhm[0].name: \"a b\" is not a valid name"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n", ":6:8: vhm[1].name: duplicate VHM name \"a\""),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nmemory_limit = \"100 KiB\"\n", ":5:16: vhm[0].k.memory_limit: must be a whole number of 64 KiB pages"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nmemory_limit = \"1 TB\"\n", "unknown unit \"TB\""),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.py\"\n", ":4:10: vhm[0].k.module: \"g.py\": a guest module must be a .wat or .wasm file"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"missing.wat\"\n", ":4:10: vhm[0].k.module: cannot read"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.policy]\nweight = 0\n", ":6:10: vhm[0].policy.weight: must be between 1 and 1000, got 0"),
    (
        "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nvcpus = 2\nmemory_limit = \"1 MiB\"\n[vhm.policy]\nmemory_quota = \"1 MiB\"\n",
        ":8:16: vhm[0].policy.memory_quota: over quota: 2 vCPU(s) × memory_limit 1 MiB = 2 MiB exceeds memory_quota 1 MiB",
    ),
    (
        "[host]\nmemory = \"2 MiB\"\n[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[[vhm]]\nname = \"b\"\n[vhm.k]\nmodule = \"g.wat\"\n",
        ":8:8: vhm[1].policy.memory_quota: over quota: VHM memory quotas up to \"b\" sum to 2560 KiB, more than host.memory 2 MiB",
    ),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n[vhm.policy]\non_bad_hypercall = \"ignore\"\n", ":6:20: vhm[0].policy.on_bad_hypercall: \"ignore\": expected \"error\" or \"fault\""),
    ("[host]\nslice_fuel = 0\n[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n", ":2:14: host.slice_fuel: must be between 1"),
    ("[host.trace]\nbatch_events = 0\n[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n", ":2:16: host.trace.batch_events: must be between 1"),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nentry = \"\"\n", ":5:9: vhm[0].k.entry: the entry export name is empty"),
    // Guest modules.
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\nentry = \"start\"\n", ":4:10: vhm[0].k.module: g.wat (VHM \"a\"): the module exports no function \"start\""),
    ("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"bad.wat\"\n", ":4:10: vhm[0].k.module: invalid WAT:"),
];

#[test]
fn each_bad_manifest_gets_its_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("g.wat"),
        r#"(module (func (export "main")))"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.wat"),
        "(module (func (export \"main\")",
    )
    .unwrap();
    for (i, (text, expected)) in CASES.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::cargo_bin("xdv")
            .unwrap()
            .arg("check")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "case {i} was accepted: {text:?}"
        );
        let want = format!("case{i}.toml{expected}");
        let want = if expected.starts_with(':') {
            want
        } else {
            expected.to_string()
        };
        assert!(
            err.contains(&want),
            "case {i}: {text:?}\n  got:  {err}\n  want: {want}"
        );
        assert!(
            err.contains(&format!("case{i}.toml")),
            "case {i} names the file: {err}"
        );
    }
}

#[test]
fn good_manifests_check_clean() {
    for ex in [
        "hello.toml",
        "fair-share.toml",
        "interrupts.toml",
        "supervisor.toml",
        "client-server.toml",
        "hostile.toml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(ex);
        Command::cargo_bin("xdv")
            .unwrap()
            .arg("check")
            .arg(path)
            .assert()
            .success();
    }
}
