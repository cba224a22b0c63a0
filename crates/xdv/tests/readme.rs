//! The README cannot drift: its quick start runs, line by line and in order, in a scratch
//! directory, and every line exits as the README says; its exit-code table holds.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The README's text from `start` up to the next heading of the same or a higher level.
fn section<'a>(text: &'a str, start: &str) -> &'a str {
    let at = text
        .find(start)
        .unwrap_or_else(|| panic!("the README has {start:?}"));
    let rest = &text[at + start.len()..];
    let level = start.chars().take_while(|c| *c == '#').count();
    // Headings outside code blocks (a shell comment is not one).
    let end = rest
        .lines()
        .scan((0usize, false), |(pos, fenced), l| {
            let here = *pos;
            *pos += l.len() + 1;
            if l.starts_with("```") {
                *fenced = !*fenced;
            }
            Some((here, *fenced, l))
        })
        .find(|(_, fenced, l)| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            !fenced && hashes > 0 && hashes <= level && l.chars().nth(hashes) == Some(' ')
        })
        .map_or(rest.len(), |(p, _, _)| p);
    &rest[..end]
}

/// One `cargo run --release -- ARGS  # comment` line: its arguments and the exit it documents.
struct Line {
    text: String,
    args: Vec<String>,
    exit: i32,
}

fn quick_start() -> Vec<Line> {
    let text = readme();
    let quick = section(&text, "## Quick start").to_string();
    let quick = &quick[..quick.find("\n### ").unwrap_or(quick.len())];
    let mut lines = Vec::new();
    let mut in_sh = false;
    for l in quick.lines() {
        if l.starts_with("```") {
            in_sh = l == "```sh";
            continue;
        }
        let Some(cmd) = l.strip_prefix("cargo run --release -- ").filter(|_| in_sh) else {
            continue;
        };
        let (cmd, comment) = cmd.split_once(" #").unwrap_or((cmd, ""));
        let exit = comment
            .split_once("exits ")
            .and_then(|(_, n)| n.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        lines.push(Line {
            text: l.to_string(),
            args: cmd.split_whitespace().map(String::from).collect(),
            exit,
        });
    }
    lines
}

#[test]
fn readme_quick_start_runs_in_order_and_exits_as_documented() {
    let lines = quick_start();
    assert!(
        lines.len() >= 30,
        "the quick start's commands were found: {}",
        lines.len()
    );
    // A scratch copy of the layout the README assumes: the repository's examples (read-only
    // links) in the working directory and the shared corpus beside it.
    let scratch = tempfile::tempdir().unwrap();
    let repo = scratch.path().join("xdv");
    std::fs::create_dir(&repo).unwrap();
    std::os::unix::fs::symlink(root().join("examples"), repo.join("examples")).unwrap();
    let shared = root().join("../shared");
    let have_corpus = shared.join("corpus").is_dir();
    if have_corpus {
        std::os::unix::fs::symlink(&shared, scratch.path().join("shared")).unwrap();
    }
    let examples_before = listing(&root().join("examples"));
    for line in &lines {
        if !have_corpus && line.text.contains("../shared") {
            eprintln!("skipped (no corpus here): {}", line.text);
            continue;
        }
        let out = Command::cargo_bin("xdv")
            .unwrap()
            .current_dir(&repo)
            .args(&line.args)
            .output()
            .unwrap();
        assert_eq!(
            // A process ended by a signal (the crash test's abort) reads as the shell's 128 + N.
            out.status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
            }),
            line.exit,
            "{}\nstdout: {}\nstderr: {}",
            line.text,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the lines write stays in the working directory, none of it in the repository.
    assert_eq!(listing(&root().join("examples")), examples_before);
    for made in [
        "hello.xdv",
        "rabi.svg",
        "phi.json",
        "killed.xdv",
        "host.key.pub",
    ] {
        assert!(
            repo.join(made).is_file(),
            "{made} was written where the README says"
        );
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_exit_code_table_holds() {
    let text = readme();
    let table = section(&text, "### Exit codes");
    let codes: Vec<i32> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        codes,
        [0, 1, 2, 3],
        "the table lists each code once, in order"
    );
    let dir = tempfile::tempdir().unwrap();
    let xdv = |args: &[&str]| {
        Command::cargo_bin("xdv")
            .unwrap()
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    let ex = |name: &str| root().join("examples").join(name).display().to_string();
    // 0: a run that reached its end although its guests faulted, and its identical replay.
    assert_eq!(xdv(&["run", &ex("faults.toml"), "--logs", "none"]), Some(0));
    assert_eq!(xdv(&["replay", "faults.xdv"]), Some(0));
    // 1: the same run under --strict; a trace that fails verification, for each reader.
    assert_eq!(
        xdv(&["run", &ex("faults.toml"), "--logs", "none", "--strict"]),
        Some(1)
    );
    let trace = dir.path().join("faults.xdv");
    let mut bytes = std::fs::read(&trace).unwrap();
    let at = bytes
        .windows(b"restart".len())
        .rposition(|w| w == b"restart")
        .expect("the manifest in the trace names its policy");
    bytes[at] ^= 0x20;
    std::fs::write(&trace, bytes).unwrap();
    for args in [
        &["trace", "verify", "faults.xdv"][..],
        &["trace", "show", "faults.xdv"],
        &["trace", "accounting", "faults.xdv"],
        &["trace", "export", "faults.xdv", "--format", "jsonl"],
        &["replay", "faults.xdv"],
        &["compliance", "faults.xdv"],
    ] {
        assert_eq!(xdv(args), Some(1), "{args:?}");
    }
    // 2: usage and input errors.
    assert_eq!(xdv(&["sim", "--seeds", "0"]), Some(2));
    assert_eq!(xdv(&["trace", "show", "no-such.xdv"]), Some(2));
    assert_eq!(
        xdv(&["run", "--resume", "hello.xdv"]),
        Some(2),
        "no such trace"
    );
    assert_eq!(xdv(&["run", &ex("hello.toml"), "--logs", "none"]), Some(0));
    assert_eq!(
        xdv(&["run", "--resume", "hello.xdv"]),
        Some(2),
        "a finished trace"
    );
    // 3: intact but cut short (the crash test aborts the process: a signal, no exit code).
    let killed = xdv(&[
        "run",
        &ex("hello.toml"),
        "--trace",
        "k.xdv",
        "--crash-after",
        "5",
    ]);
    assert!(killed.is_none() || killed == Some(134), "{killed:?}");
    assert_eq!(xdv(&["trace", "verify", "k.xdv"]), Some(3));
}
