//! Module and manifest files are read only when regular and only up to their limits; deep TOML
//! nesting is refused by the TOML parser with a place, not by overflowing the stack.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use xdv_manifest::{Manifest, ManifestError, MAX_MANIFEST_BYTES, MAX_MODULE_BYTES};

const MANIFEST: &str = "[[vhm]]\nname = \"a\"\n[vhm.k]\nmodule = \"guest.wasm\"\n";

fn manifest() -> Manifest {
    Manifest::parse(MANIFEST, "m.toml").unwrap()
}

/// Runs `f` on its own thread and fails the test, rather than hanging it, if `f` blocks.
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("blocked: the file should have been refused before it was opened")
}

fn load(dir: &Path) -> Result<(), ManifestError> {
    let dir = dir.to_path_buf();
    promptly(move || manifest().load_modules(&dir).map(|_| ()))
}

fn assert_module_error(e: ManifestError, want: &str) {
    let e = e.to_string();
    assert!(
        e.starts_with("m.toml:4:10: vhm[0].k.module: cannot read ") && e.ends_with(want),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn a_module_that_is_a_device_or_a_fifo_is_refused_promptly() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("guest.wasm")).unwrap();
    assert_module_error(
        load(dir.path()).unwrap_err(),
        "guest.wasm: not a regular file (a character device)",
    );
    std::fs::remove_file(dir.path().join("guest.wasm")).unwrap();
    let fifo = dir.path().join("guest.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert_module_error(
        load(dir.path()).unwrap_err(),
        "guest.wasm: not a regular file (a FIFO)",
    );
}

#[test]
fn a_module_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("guest.wasm")).unwrap();
    assert_module_error(
        load(dir.path()).unwrap_err(),
        "guest.wasm: not a regular file (a directory)",
    );
}

#[test]
fn a_module_over_the_limit_is_refused_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("guest.wasm")).unwrap();
    // Sparse: nothing is written, and nothing should be read.
    f.set_len(MAX_MODULE_BYTES + 1).unwrap();
    assert_module_error(
        load(dir.path()).unwrap_err(),
        &format!(
            "guest.wasm: larger than {MAX_MODULE_BYTES} bytes, the most a module may be (MAX_MODULE_BYTES)"
        ),
    );
    // At the limit it is read (and then refused for what it holds).
    f.set_len(MAX_MODULE_BYTES).unwrap();
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(
        e.ends_with("is not a WebAssembly module (.wasm binary or .wat text)"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn a_manifest_that_is_not_a_regular_file_is_refused_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("m.toml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for path in [fifo, "/dev/zero".into()] {
        let p = path.clone();
        let e = promptly(move || Manifest::from_file(&p)).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.message
                .starts_with("cannot read manifest: not a regular file"),
            "{e}"
        );
    }
}

#[test]
fn a_manifest_over_the_limit_is_refused() {
    let big = format!(
        "{MANIFEST}{}",
        "# padding\n".repeat(MAX_MANIFEST_BYTES as usize / 10)
    );
    let e = Manifest::parse(&big, "big.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "big.toml:1:1: the manifest is {} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may be (MAX_MANIFEST_BYTES)",
            big.len()
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    std::fs::write(&path, &big).unwrap();
    let e = Manifest::from_file(&path).unwrap_err();
    assert!(e.message.contains("larger than 1048576 bytes"), "{e}");
}

/// 100 000 levels of arrays, inline tables, dotted keys or table headers: the TOML parser's own
/// recursion limit refuses them (on a test thread's 2 MiB stack), and the error has a line.
#[test]
fn deep_toml_is_refused_not_overflowed() {
    let n = 100_000;
    for tail in [
        format!("a = {}{}", "[".repeat(n), "]".repeat(n)),
        format!("a = {}1{}", "{b=".repeat(n), "}".repeat(n)),
        format!("{} = 1", vec!["a"; n].join(".")),
        format!("[{}]", vec!["a"; n].join(".")),
    ] {
        let text = format!("{MANIFEST}[x]\n{tail}\n");
        assert!((text.len() as u64) < MAX_MANIFEST_BYTES);
        let e = Manifest::parse(&text, "deep.toml").unwrap_err();
        assert!(e.line >= 1 && e.message.contains("recurs"), "{e}");
    }
}
