//! Hostile program text and module files through the real binary: every one is an error with
//! its place (exit 2) or, from a guest, a recorded refusal (the run exits 0) — never a stack
//! overflow (exit 134), an allocation without end, or a hang.

use assert_cmd::Command;
use std::path::Path;
use std::time::Duration;

/// Nesting far past every limit (each limit is 64 levels).
const DEEP: usize = 30_000;

fn xdv() -> Command {
    let mut c = Command::cargo_bin("xdv").unwrap();
    // A blocked read would hang the test; fail it instead.
    c.timeout(Duration::from_secs(120));
    c
}

/// A one-qubit program whose `rz` angle is `DEEP` parentheses deep (about 60 KB).
fn deep_qasm() -> String {
    format!(
        "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[1]; rz({}1{}) q[0];\n",
        "(".repeat(DEEP),
        ")".repeat(DEEP)
    )
}

/// A transform whose phase is `DEEP` parentheses deep (about 60 KB).
fn deep_phi() -> String {
    format!(
        "frame d0 = newframe(q0, 5.0e9, 0);\nshift_phase(d0, {}1{});\n",
        "(".repeat(DEEP),
        ")".repeat(DEEP)
    )
}

/// Runs `xdv ARGS` and returns (exit code, stdout, stderr).
fn run(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = xdv().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn q_run_refuses_a_deep_angle_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, col) in [
        ("deep.qasm", deep_qasm(), 115),
        (
            "neg.qasm",
            format!(
                "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[1]; rz({}1) q[0];\n",
                "-".repeat(DEEP)
            ),
            115,
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(&["q".as_ref(), "run".as_ref(), path.as_os_str()]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "{name}:1:{col}: expression nested deeper than 64 levels"
            )),
            "{err}"
        );
    }
}

#[test]
fn phi_run_refuses_a_deep_phase_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("deep.phi", deep_phi()),
        (
            "neg.phi",
            format!(
                "frame d0 = newframe(q0, 5.0e9, 0);\nshift_phase(d0, {}1);\n",
                "-".repeat(DEEP)
            ),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, _, err) = run(&["phi".as_ref(), "run".as_ref(), path.as_os_str()]);
        assert_eq!(code, Some(2), "{err}");
        // `shift_phase(d0, ` is 16 columns; the 65th level is 64 further on.
        assert!(
            err.contains(&format!(
                "{name}:2:81: expression nested deeper than 64 levels"
            )),
            "{err}"
        );
    }
}

/// A manifest of one VHM whose module is `module`.
#[test]
fn q_run_and_phi_run_read_only_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for file in [Path::new("/dev/zero"), fifo.as_path()] {
        for cmd in [
            &["q", "run"][..],
            &["q", "check"],
            &["phi", "run"],
            &["phi", "plot"],
        ] {
            let mut args: Vec<&std::ffi::OsStr> = cmd.iter().map(|a| a.as_ref()).collect();
            args.push(file.as_os_str());
            let (code, out, err) = run(&args);
            assert!(
                matches!(code, Some(1) | Some(2)),
                "{cmd:?} {file:?}: {code:?} {err}"
            );
            assert!(
                err.contains("not a regular file") || out.contains("not a regular file"),
                "{cmd:?} {file:?}: {out}{err}"
            );
        }
    }
}

fn manifest_with(dir: &Path, module: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("m.toml");
    std::fs::write(
        &path,
        format!("[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"{module}\"\n{extra}"),
    )
    .unwrap();
    path
}

#[cfg(unix)]
#[test]
fn check_refuses_a_device_or_a_fifo_as_a_module_promptly() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.wasm")).unwrap();
    let fifo = dir.path().join("pipe.wasm");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (module, kind) in [("zero.wasm", "a character device"), ("pipe.wasm", "a FIFO")] {
        let m = manifest_with(dir.path(), module, "");
        let (code, _, err) = run(&["check".as_ref(), m.as_os_str()]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("m.toml:4:10: vhm[0].k.module: cannot read ")
                && err.contains(&format!("{module}: not a regular file ({kind})")),
            "{err}"
        );
    }
    // The manifest itself may not be a FIFO either.
    let pipe = dir.path().join("pipe.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap()
        .success());
    let (code, _, err) = run(&["check".as_ref(), pipe.as_os_str()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("pipe.toml:1:1: cannot read manifest: not a regular file (a FIFO)"),
        "{err}"
    );
}

/// WAT for a guest that passes `text` (a data segment at 0) to `call`, then exits 0.
fn guest(imports: &str, call: &str, text: &str) -> String {
    let mut data = String::new();
    for b in text.bytes() {
        match b {
            b'"' | b'\\' | b'\n' => data += &format!("\\{b:02x}"),
            _ => data.push(b as char),
        }
    }
    format!(
        "(module\n  (import \"xdv\" \"exit\" (func $exit (param i32)))\n  \
         (import \"xdv\" \"cap_find\" (func $cap_find (param i32 i32) (result i64)))\n  {imports}\n  \
         (memory (export \"memory\") 2)\n  (data (i32.const 0) \"{data}\")\n  \
         (func (export \"main\")\n    (drop {call})\n    (call $exit (i32.const 0))))\n",
    )
}

/// Runs `manifest` with a trace, expects exit 0, and returns `xdv trace show`.
fn run_and_show(dir: &Path, manifest: &Path) -> String {
    let trace = dir.join("t.xdv");
    let (code, out, err) = run(&[
        "run".as_ref(),
        manifest.as_os_str(),
        "--trace".as_ref(),
        trace.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, show, err) = run(&["trace".as_ref(), "show".as_ref(), trace.as_os_str()]);
    assert_eq!(code, Some(0), "{err}");
    show
}

#[test]
fn a_guest_submitting_a_deep_program_is_refused_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let text = deep_qasm();
    assert!(text.len() > 60_000);
    std::fs::write(
        dir.path().join("g.wat"),
        guest(
            "(import \"xdv\" \"q_submit\" (func $q_submit (param i64 i32 i32 i64 i32) (result i64)))",
            &format!(
                "(call $q_submit (call $cap_find (i32.const 6) (i32.const 0)) (i32.const 0) (i32.const {}) (i64.const 10) (i32.const 0))",
                text.len()
            ),
            &text,
        ),
    )
    .unwrap();
    let m = manifest_with(
        dir.path(),
        "g.wat",
        "[vhm.q]\ndevice = \"noisy-line\"\nqubits = 1\nbudget = 1000\n",
    );
    let show = run_and_show(dir.path(), &m);
    assert!(
        show.contains("REFUSED vcpu 0 q_submit: the program does not parse at line 1, column 115"),
        "{show}"
    );
    assert!(show.contains("exited: exit"), "{show}");
}

#[test]
fn a_guest_executing_a_deep_transform_is_refused_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let text = deep_phi();
    assert!(text.len() > 60_000);
    std::fs::write(
        dir.path().join("g.wat"),
        guest(
            "(import \"xdv\" \"phi_exec\" (func $phi_exec (param i64 i32 i32 i32 i32) (result i64)))",
            &format!(
                "(call $phi_exec (call $cap_find (i32.const 8) (i32.const 0)) (i32.const 0) (i32.const {}) (i32.const 65536) (i32.const 1024))",
                text.len()
            ),
            &text,
        ),
    )
    .unwrap();
    let m = dir.path().join("m.toml");
    std::fs::write(
        &m,
        "[[host.phi.port]]\nname = \"q0\"\ngranularity_ns = 4\nband = [4.5e9, 5.5e9]\n\
         max_amplitude = 1.0\nt2_ns = 100_000\n\n[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"g.wat\"\n\
         [[vhm.phi.window]]\nport = \"q0\"\nstart_ns = 0\nend_ns = 20_000\n",
    )
    .unwrap();
    let show = run_and_show(dir.path(), &m);
    let refusal = show
        .lines()
        .find(|l| l.contains("REFUSED vcpu 0 phi_exec: "))
        .unwrap_or_else(|| panic!("no refusal in\n{show}"));
    assert!(
        refusal
            .ends_with("the transform does not parse at line 2, column 81 (xdv phi run tells why)"),
        "{refusal}"
    );
    assert!(show.contains("exited: exit"), "{show}");
}
