//! Forged traces through the real binary: edits re-chained from end to end (so the hash chain
//! holds), plain edits of the tables outside the events, truncation, and signatures.
//!
//! The forgery helpers generalise `forge` of `tests/cli.rs`: edit events (keeping the `time_ns`,
//! `vhm` and `kind` columns in step with the body), the header or the tables, then recompute
//! every chain hash, `final_hash` and `event_count`, as a forger with write access would.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use xdv_core::{Event, EventKind};
use xdv_trace::ChainHash;
use xdv_trace::TraceReader;

fn xdv() -> Command {
    Command::cargo_bin("xdv").unwrap()
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../xdv-trace/tests/fixtures")
        .join(name)
}

fn run(manifest: &Path, trace: &Path, extra: &[&str]) {
    let out = xdv()
        .arg("run")
        .arg(manifest)
        .arg("--trace")
        .arg(trace)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `args` on `trace`; returns the exit code and standard output.
fn xdv_on(args: &[&str], trace: &Path) -> (i32, String) {
    let out = xdv().args(args).arg(trace).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn json_of(args: &[&str], trace: &Path) -> (i32, serde_json::Value) {
    let (code, text) = xdv_on(args, trace);
    (
        code,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn sql(trace: &Path, statements: &str) {
    rusqlite::Connection::open(trace)
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

/// Recomputes every chain hash from the stored header and bodies, and `final_hash` and
/// `event_count` where the run status has them.
fn rechain(trace: &Path) {
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
    for (seq, body) in &rows {
        let (_, hash) = chain.link(body);
        conn.execute(
            "UPDATE events SET hash = ?1 WHERE seq = ?2",
            rusqlite::params![&hash.0[..], seq],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE run_status SET value = ?1 WHERE key = 'final_hash'",
        [chain.head().to_hex()],
    )
    .unwrap();
    conn.execute(
        "UPDATE run_status SET value = ?1 WHERE key = 'event_count'",
        [rows.len().to_string()],
    )
    .unwrap();
}

/// Rewrites the first event `f` changes (it gets the sequence number and returns `true` once
/// it changed one), then re-chains. Returns the forged event's sequence number.
fn forge(trace: &Path, mut f: impl FnMut(u64, &mut Event) -> bool) -> u64 {
    let conn = rusqlite::Connection::open(trace).unwrap();
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT seq, body FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut forged = None;
    for (seq, body) in rows {
        let mut event = Event::decode(&body).unwrap();
        if f(seq as u64, &mut event) {
            conn.execute(
                "UPDATE events SET body = ?1, time_ns = ?2, vhm = ?3, kind = ?4 WHERE seq = ?5",
                rusqlite::params![
                    event.encode(),
                    event.time_ns as i64,
                    event.vhm.map(|v| v.0),
                    event.kind.name(),
                    seq
                ],
            )
            .unwrap();
            forged = Some(seq as u64);
            break;
        }
    }
    drop(conn);
    rechain(trace);
    forged.expect("nothing to forge")
}

/// Swaps two shots of different outcome in the first `q_job_done`.
fn swap_shots(trace: &Path) -> u64 {
    forge(trace, |_, e| match &mut e.kind {
        EventKind::QJobDone { outcomes, .. } => {
            let Some(j) = outcomes.iter().position(|&w| w != outcomes[0]) else {
                return false;
            };
            outcomes.swap(0, j);
            true
        }
        _ => false,
    })
}

fn set_first_outcome(trace: &Path, word: u64) -> u64 {
    forge(trace, |_, e| match &mut e.kind {
        EventKind::QJobDone { outcomes, .. } if !outcomes.is_empty() => {
            outcomes[0] = word;
            true
        }
        _ => false,
    })
}

fn nudge_first_capture(trace: &Path, by: i64) -> u64 {
    forge(trace, |_, e| match &mut e.kind {
        EventKind::PhiExecuted { captures, .. } if !captures.is_empty() => {
            captures[0].0 += by;
            true
        }
        _ => false,
    })
}

fn forge_engine(trace: &Path) {
    sql(
        trace,
        "UPDATE header SET value = 'wasmi 2.0.0 (eager compilation, deterministic, fuel metering, audited)' WHERE key = 'engine'",
    );
    rechain(trace);
}

/// Deletes the last `n` events and marks the run as still running, as a killed run leaves it.
fn truncate_as_running(trace: &Path, n: u64) {
    sql(
        trace,
        &format!(
            "DELETE FROM events WHERE seq >= (SELECT count(*) FROM events) - {n};
             DELETE FROM run_status WHERE key <> 'status';
             UPDATE run_status SET value = 'running' WHERE key = 'status';
             DELETE FROM resource_table;"
        ),
    );
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(name);
    xdv().args(["trace", "keygen"]).arg(&key).assert().success();
    let public = dir.join(format!("{name}.pub"));
    assert!(public.is_file());
    (key, public)
}

fn failed_items(trace: &Path, extra: &[&str]) -> (i32, Vec<u64>, serde_json::Value) {
    let mut args = vec!["compliance", "--json"];
    args.extend_from_slice(extra);
    let (code, v) = json_of(&args, trace);
    let failed = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["pass"] == false)
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    (code, failed, v)
}

// ---- Q outcomes ----

#[test]
fn swapped_q_shots_are_caught_by_rederiving_replay_and_by_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("q.xdv");
    run(&example("q-ghz.toml"), &trace, &[]);
    let (code, v) = json_of(&["replay", "--rederive", "--json"], &trace);
    assert_eq!(code, 0, "{v}");
    assert!(v["report"]["q_jobs_checked"].as_u64().unwrap() >= 3, "{v}");
    assert!(v["report"]["provider_runs"].as_u64().unwrap() >= 3, "{v}");

    let seq = swap_shots(&trace);
    // The chain holds and plain replay injects the recorded outcomes: neither can see it.
    assert_eq!(xdv_on(&["trace", "verify"], &trace).0, 0);
    let (code, v) = json_of(&["replay", "--rederive", "--json"], &trace);
    assert_eq!(code, 1, "{v}");
    let d = &v["report"]["divergence"];
    assert_eq!(d["seq"].as_u64(), Some(seq), "{d}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("q job 0 of VHM \"alice\" (vhm0), shot 0"),
        "{reason}"
    );
    let (code, text) = xdv_on(&["replay", "--rederive"], &trace);
    assert_eq!(code, 1);
    assert!(
        text.contains("re-derivation DIVERGED") && text.contains("shot 0"),
        "{text}"
    );
    let (code, failed, v) = failed_items(&trace, &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(failed, vec![2], "{v}");
    assert!(v.to_string().contains("re-deriving"), "{v}");
}

#[test]
fn an_impossible_outcome_fails_verify_replay_resume_and_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("q.xdv");
    run(&example("q-ghz.toml"), &trace, &[]);
    let seq = set_first_outcome(&trace, 60);
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("event {seq} (q_job_done)"))
            && text.contains(
                "shot 0 records outcome 60, impossible for a circuit of 3 classical bits"
            ),
        "{text}"
    );
    assert_eq!(xdv_on(&["replay"], &trace).0, 1);
    assert_eq!(xdv_on(&["compliance"], &trace).0, 1);

    // The replay checks it too, on its own (not only behind `trace verify`), and names it.
    let r = xdv_hv::replay_trace(&trace).unwrap();
    let d = r.divergence.expect("diverges");
    assert_eq!(d.seq, seq);
    assert!(d.reason.unwrap().contains("outcome 60"));

    // A cut-short trace with the forged outcome in its committed prefix cannot be resumed.
    let manifest = dir.path().join("q.toml");
    let text = std::fs::read_to_string(example("q-ghz.toml"))
        .unwrap()
        .replace("guests/", &format!("{}/", example("guests").display()));
    std::fs::write(
        &manifest,
        format!("{text}\n[host.trace]\nbatch_events = 8\n"),
    )
    .unwrap();
    let cut = dir.path().join("cut.xdv");
    let total = TraceReader::open(&trace).unwrap().events().unwrap().len() as u64;
    let out = xdv()
        .arg("run")
        .arg(&manifest)
        .arg("--trace")
        .arg(&cut)
        .args(["--crash-after", &(total - 1).to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    set_first_outcome(&cut, 60);
    let out = xdv().args(["run", "--resume"]).arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outcome 60"), "{err}");
}

#[test]
fn outcomes_of_the_wrong_count_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("q.xdv");
    run(&example("q-ghz.toml"), &trace, &[]);
    let seq = forge(&trace, |_, e| match &mut e.kind {
        EventKind::QJobDone { outcomes, .. } => outcomes.pop().is_some(),
        _ => false,
    });
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(code, 1);
    assert!(
        text.contains("records 999 outcomes for 1000 shots"),
        "{text}"
    );
    let d = xdv_hv::replay_trace(&trace).unwrap().divergence.unwrap();
    assert_eq!(d.seq, seq);
}

// ---- Φ captures ----

#[test]
fn a_changed_phi_capture_is_caught_by_rederiving_replay_and_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("phi.xdv");
    run(&example("phi-nested.toml"), &trace, &[]);
    let (code, v) = json_of(&["replay", "--rederive", "--json"], &trace);
    assert_eq!(code, 0, "{v}");
    assert!(v["report"]["phi_transforms_checked"].as_u64().unwrap() >= 1);

    let seq = nudge_first_capture(&trace, 1);
    assert_eq!(xdv_on(&["trace", "verify"], &trace).0, 0);
    let (code, v) = json_of(&["replay", "--rederive", "--json"], &trace);
    assert_eq!(code, 1, "{v}");
    let d = &v["report"]["divergence"];
    assert_eq!(d["seq"].as_u64(), Some(seq), "{d}");
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("Φ transform 0 of VHM")
            && d["reason"].as_str().unwrap().contains("capture 0"),
        "{d}"
    );
    let (code, failed, v) = failed_items(&trace, &[]);
    assert_eq!(code, 1, "{v}");
    assert!(failed.contains(&2), "{v}");

    // A documented tolerance accepts it, and says where.
    let (code, v) = json_of(
        &["replay", "--rederive", "--phi-tolerance", "1", "--json"],
        &trace,
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["report"]["phi_within_tolerance"][0].as_u64(), Some(seq));
}

#[test]
fn phi_captures_of_the_wrong_count_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("phi.xdv");
    run(&example("phi-nested.toml"), &trace, &[]);
    let seq = forge(&trace, |_, e| match &mut e.kind {
        EventKind::PhiExecuted { captures, .. } if !captures.is_empty() => {
            captures.push(captures[0]);
            true
        }
        _ => false,
    });
    let (code, v) = json_of(&["replay", "--json"], &trace);
    assert_eq!(code, 1, "{v}");
    let d = &v["report"]["divergence"];
    assert_eq!(d["seq"].as_u64(), Some(seq));
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .contains("2 captures recorded, the transform makes 1"),
        "{d}"
    );
}

// ---- the header and the tables ----

#[test]
fn a_forged_engine_fails_verify_replay_and_compliance() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("h.xdv");
    run(&example("hello.toml"), &trace, &[]);
    forge_engine(&trace);
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("engine") && text.contains("audited"),
        "{text}"
    );
    assert_eq!(xdv_on(&["replay"], &trace).0, 1);
    let (code, failed, v) = failed_items(&trace, &[]);
    assert_eq!(code, 1);
    assert!(failed.contains(&2), "{v}");
    // The replay refuses on its own too.
    let r = xdv_hv::replay_trace(&trace).unwrap();
    assert!(!r.identical() && r.problem.unwrap().contains("audited"));
}

#[test]
fn the_engine_is_under_the_chain() {
    // A header edit that is not re-chained breaks the chain's genesis at event 0.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("h.xdv");
    run(&example("hello.toml"), &trace, &[]);
    sql(&trace, "UPDATE header SET value = 'x' WHERE key = 'engine'");
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(code, 1);
    assert!(text.contains("event 0: hash chain broken"), "{text}");
}

#[test]
fn plain_edits_of_the_tables_fail_verify_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("UPDATE modules SET size = size + 1", "`size` says"),
        (
            "DELETE FROM run_status WHERE key = 'status'",
            "run_status has no `status`",
        ),
        (
            "UPDATE run_status SET value = 'done' WHERE key = 'status'",
            "not `running` or `complete`",
        ),
        (
            "INSERT INTO run_status VALUES ('audited', 'yes')",
            "unknown key `audited`",
        ),
        (
            "INSERT INTO header VALUES ('operator', 'alice')",
            "header has an unknown key `operator`",
        ),
        (
            "UPDATE resource_table SET amount = amount + 1 WHERE row = 0",
            "resource_table does not match",
        ),
        (
            "UPDATE resource_table SET domain = 'X' WHERE row = 0",
            "unknown domain",
        ),
        (
            "INSERT INTO modules VALUES ('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262', 0, x'')",
            "neither the header nor any event names it",
        ),
        (
            "UPDATE run_status SET value = 'running' WHERE key = 'status'",
            "holds `event_count`",
        ),
        (
            "INSERT INTO run_status VALUES ('resumed_at', '999')",
            "`resumed_at`",
        ),
    ];
    for (statements, reason) in cases {
        let trace = dir.path().join("t.xdv");
        run(&example("hello.toml"), &trace, &[]);
        sql(&trace, statements);
        let (code, text) = xdv_on(&["trace", "verify"], &trace);
        assert_eq!(code, 1, "{statements}: {text}");
        assert!(text.contains(reason), "{statements}: {text}");
        assert_eq!(xdv_on(&["compliance"], &trace).0, 1, "{statements}");
        assert_eq!(xdv_on(&["replay"], &trace).0, 1, "{statements}");
    }
}

#[test]
fn a_module_the_events_name_must_be_stored() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("s.xdv");
    run(&example("supervisor.toml"), &trace, &[]);
    // The worker module is named by the header and by the events; drop it from the header's
    // list (re-chained) and from the table.
    let header = TraceReader::open(&trace).unwrap().header().unwrap();
    let worker = header
        .modules
        .iter()
        .find(|m| m.name.contains("worker"))
        .unwrap()
        .clone();
    let kept: Vec<(String, String)> = header
        .modules
        .iter()
        .filter(|m| m.hash != worker.hash)
        .map(|m| (m.name.clone(), m.hash.to_hex()))
        .collect();
    let conn = rusqlite::Connection::open(&trace).unwrap();
    conn.execute(
        "UPDATE header SET value = ?1 WHERE key = 'modules'",
        [serde_json::to_string(&kept).unwrap()],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM modules WHERE hash = ?1",
        [worker.hash.to_hex()],
    )
    .unwrap();
    drop(conn);
    rechain(&trace);
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("module {} is missing", worker.hash.short())),
        "{text}"
    );
}

// ---- truncation ----

#[test]
fn a_trace_truncated_and_marked_running_is_reported_cut_short_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "k");
    let trace = dir.path().join("h.xdv");
    run(
        &example("hello.toml"),
        &trace,
        &["--sign-key", key.to_str().unwrap()],
    );
    truncate_as_running(&trace, 12);
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(
        code, 3,
        "a cut-short trace is intact but incomplete: exit 3"
    );
    assert!(
        text.contains("CUT SHORT: 53 events") && text.contains("no signature"),
        "{text}"
    );
    let (code, text) = xdv_on(
        &["trace", "verify", "--key", public.to_str().unwrap()],
        &trace,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("cut short"), "{text}");
    let (code, text) = xdv_on(&["replay"], &trace);
    assert_eq!(code, 0);
    assert!(text.contains("CUT SHORT"), "{text}");
    let (code, failed, v) = failed_items(&trace, &[]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(failed, vec![4], "{v}");
    assert_eq!(v["complete"], false);
    assert_eq!(v["compliant"], false);
    let (_, text) = xdv_on(&["compliance"], &trace);
    assert!(
        text.contains("CUT SHORT after 53 events")
            && text.contains("NOT compliant: the trace was cut short")
            && !text.contains("compliant on every item"),
        "{text}"
    );

    // Leaving the resource table or the final status behind does not pass either.
    let trace = dir.path().join("h2.xdv");
    run(&example("hello.toml"), &trace, &[]);
    sql(
        &trace,
        "DELETE FROM events WHERE seq >= 53; UPDATE run_status SET value = 'running' WHERE key = 'status'; DELETE FROM run_status WHERE key <> 'status'",
    );
    let (code, text) = xdv_on(&["trace", "verify"], &trace);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("resource_table holds"), "{text}");
}

// ---- signatures ----

#[test]
fn a_signed_trace_verifies_with_its_key_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "host");
    let (_, other) = keygen(dir.path(), "other");
    let pk = std::fs::read_to_string(&public).unwrap();
    let pk_hex = pk.trim().rsplit(' ').next().unwrap().to_string();
    assert_eq!(pk_hex.len(), 64);
    // keygen never replaces a key.
    xdv().args(["trace", "keygen"]).arg(&key).assert().code(2);

    let signed = dir.path().join("signed.xdv");
    let out = xdv()
        .arg("run")
        .arg(example("q-ghz.toml"))
        .arg("--trace")
        .arg(&signed)
        .args(["--json", "--sign-key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signed_by"], pk_hex.as_str());

    fn with(k: &Path) -> Vec<&str> {
        vec!["trace", "verify", "--key", k.to_str().unwrap()]
    }
    let (code, text) = xdv_on(&with(&public), &signed);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("signed by {pk_hex}, signature valid")),
        "{text}"
    );
    let (code, text) = xdv_on(&with(&other), &signed);
    assert_eq!(code, 1);
    assert!(text.contains("signed by another key"), "{text}");

    let unsigned = dir.path().join("unsigned.xdv");
    run(&example("q-ghz.toml"), &unsigned, &[]);
    let (code, text) = xdv_on(&with(&public), &unsigned);
    assert_eq!(code, 1);
    assert!(text.contains("not signed"), "{text}");
    let (code, text) = xdv_on(&["trace", "verify"], &unsigned);
    assert_eq!(code, 0);
    assert!(text.contains("UNSIGNED"), "{text}");

    // The secret key is not a public key.
    let (code, text) = xdv_on(&with(&key), &signed);
    assert_eq!(code, 2);
    assert!(text.contains("holds a secret key"), "{text}");

    // Compliance names the signer, and requires it when asked.
    let (code, v) = json_of(&["compliance", "--json"], &signed);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["signature"]["state"], "valid");
    assert_eq!(v["signature"]["public_key"], pk_hex.as_str());
    let (_, text) = xdv_on(&["compliance"], &signed);
    assert!(
        text.contains(&format!("signature: signed by {pk_hex}")),
        "{text}"
    );
    let (_, text) = xdv_on(&["compliance"], &unsigned);
    assert!(text.contains("signature: UNSIGNED"), "{text}");
    let (code, _, _) = failed_items(&signed, &["--key", other.to_str().unwrap()]);
    assert_eq!(code, 1);
    let (code, _, _) = failed_items(&unsigned, &["--key", public.to_str().unwrap()]);
    assert_eq!(code, 1);
}

#[test]
fn every_forgery_of_a_signed_trace_fails_verification_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "host");
    let (forger_key, _) = keygen(dir.path(), "forger");
    type Forgery = fn(&Path);
    let forgeries: &[(&str, &str, Forgery)] = &[
        ("q-ghz.toml", "swapped shots", |t| {
            swap_shots(t);
        }),
        ("q-ghz.toml", "impossible outcome", |t| {
            set_first_outcome(t, 60);
        }),
        ("phi-nested.toml", "changed capture", |t| {
            nudge_first_capture(t, 1);
        }),
        ("hello.toml", "forged engine", forge_engine),
        ("hello.toml", "truncated", |t| truncate_as_running(t, 12)),
        ("hello.toml", "module size", |t| {
            sql(t, "UPDATE modules SET size = size + 1")
        }),
        ("hello.toml", "status deleted", |t| {
            sql(t, "DELETE FROM run_status WHERE key = 'status'")
        }),
        ("hello.toml", "resume record added", |t| {
            sql(t, "INSERT INTO run_status VALUES ('resumed_at', '0')")
        }),
        ("hello.toml", "log line", |t| {
            forge(t, |_, e| match &mut e.kind {
                EventKind::Hypercall {
                    call: xdv_core::HypercallRecord::Log { bytes, .. },
                    ..
                } => {
                    bytes[0] = b'J';
                    true
                }
                _ => false,
            });
        }),
    ];
    for (manifest, name, f) in forgeries {
        let trace = dir.path().join("t.xdv");
        run(
            &example(manifest),
            &trace,
            &["--sign-key", key.to_str().unwrap()],
        );
        f(&trace);
        let (code, text) = xdv_on(
            &["trace", "verify", "--key", public.to_str().unwrap()],
            &trace,
        );
        assert_eq!(code, 1, "{name}: {text}");
        assert_eq!(xdv_on(&["compliance"], &trace).0, 1, "{name}");
    }
    // A forger who signs again with their own key is told apart by the key.
    let trace = dir.path().join("t.xdv");
    run(
        &example("q-ghz.toml"),
        &trace,
        &["--sign-key", key.to_str().unwrap()],
    );
    swap_shots(&trace);
    // The old signature no longer verifies, and a trace that does not verify is not signed:
    // the forger removes it first.
    assert!(
        xdv_trace::sign_trace(&trace, &xdv_trace::SecretKey::read(&forger_key).unwrap(),).is_err()
    );
    sql(
        &trace,
        "DELETE FROM run_status WHERE key IN ('signature', 'signed_by')",
    );
    xdv_trace::sign_trace(&trace, &xdv_trace::SecretKey::read(&forger_key).unwrap()).unwrap();
    let (code, text) = xdv_on(
        &["trace", "verify", "--key", public.to_str().unwrap()],
        &trace,
    );
    assert_eq!(code, 1);
    assert!(text.contains("signed by another key"), "{text}");
}

#[test]
fn a_resumed_run_is_signed_once_its_prefix_re_derives() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "host");
    let manifest = dir.path().join("q.toml");
    let text = std::fs::read_to_string(example("q-ghz.toml"))
        .unwrap()
        .replace("guests/", &format!("{}/", example("guests").display()));
    std::fs::write(
        &manifest,
        format!("{text}\n[host.trace]\nbatch_events = 8\n"),
    )
    .unwrap();
    let whole = dir.path().join("whole.xdv");
    run(&manifest, &whole, &[]);
    let total = TraceReader::open(&whole).unwrap().events().unwrap().len() as u64;
    let cut = |name: &str| {
        let t = dir.path().join(name);
        let out = xdv()
            .arg("run")
            .arg(&manifest)
            .arg("--trace")
            .arg(&t)
            .args(["--crash-after", &(total - 2).to_string()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        t
    };
    let honest = cut("honest.xdv");
    let out = xdv()
        .args(["run", "--resume"])
        .arg(&honest)
        .arg("--sign-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, text) = xdv_on(
        &["trace", "verify", "--key", public.to_str().unwrap()],
        &honest,
    );
    assert_eq!(code, 0, "{text}");

    // Swapped shots in the committed prefix are injected by the resume, but not signed for.
    let forged = cut("forged.xdv");
    swap_shots(&forged);
    let out = xdv()
        .args(["run", "--resume"])
        .arg(&forged)
        .arg("--sign-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NOT signed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        xdv_on(
            &["trace", "verify", "--key", public.to_str().unwrap()],
            &forged
        )
        .0,
        1
    );
}

// ---- property: every event is covered ----

/// Forging any one event of a signed trace (here: its virtual time, kept in step with the
/// `time_ns` column, re-chained) fails verification with the key, and a re-deriving replay
/// diverges at exactly that event.
#[test]
fn forging_any_event_of_a_signed_trace_is_caught_at_that_event() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "host");
    let public = xdv_trace::PublicKey::read(&public).unwrap();
    let original = dir.path().join("orig.xdv");
    run(
        &example("q-ghz.toml"),
        &original,
        &["--sign-key", key.to_str().unwrap()],
    );
    let total = TraceReader::open(&original)
        .unwrap()
        .events()
        .unwrap()
        .len() as u64;
    let opts = xdv_trace::VerifyOptions {
        engine: None,
        key: Some(public),
    };
    let rederive = xdv_hv::replay::ReplayOptions {
        rederive: true,
        phi_tolerance: 0,
    };
    for target in (0..total).step_by(5).chain([total - 1]) {
        let trace = dir.path().join(format!("t{target}.xdv"));
        std::fs::copy(&original, &trace).unwrap();
        forge(&trace, |seq, e| {
            if seq == target {
                e.time_ns += 1;
            }
            seq == target
        });
        let v = TraceReader::open(&trace)
            .unwrap()
            .verify_with(&opts)
            .unwrap();
        assert!(!v.intact(), "event {target}: {v:?}");
        let r = xdv_hv::replay::replay_trace_with(&trace, &rederive).unwrap();
        assert_eq!(r.divergence.map(|d| d.seq), Some(target), "event {target}");
        std::fs::remove_file(&trace).unwrap();
    }
}

// ---- older traces ----

/// Schema 7 only appended the service's request events: traces written by schema 6 replay as
/// they are.
#[test]
fn schema_6_fixtures_replay_identically() {
    let dir = tempfile::tempdir().unwrap();
    for (name, events) in [("schema-6-hello.xdv", 65u64), ("schema-6-faults.xdv", 129)] {
        let trace = dir.path().join(name);
        std::fs::copy(fixture(name), &trace).unwrap();
        let (code, v) = json_of(&["replay", "--json"], &trace);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(v["report"]["events_matched"], events, "{name}: {v}");
        assert_eq!(v["report"]["event_schema"], 6);
    }
}

/// Schema 8 changed how a Q job's simulation work is charged (the fused plan instead of one pass
/// per operation). Traces recorded by schema 7 re-execute under the model they were charged
/// by: they replay identically, while a fresh run of the same example charges the fused plan.
#[test]
fn schema_7_q_fixtures_replay_under_the_work_model_they_were_charged_by() {
    let dir = tempfile::tempdir().unwrap();
    for (name, events) in [
        ("schema-7-q-vqe.xdv", 208u64),
        ("schema-7-q-budget.xdv", 103),
    ] {
        let trace = dir.path().join(name);
        std::fs::copy(fixture(name), &trace).unwrap();
        let (code, v) = json_of(&["replay", "--json"], &trace);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(v["report"]["events_matched"], events, "{name}: {v}");
        assert_eq!(v["report"]["event_schema"], 7);
    }
    // The recorded charge: (4 operations + 1) × 2² + 1000 shots × 3.
    let old = dir.path().join("schema-7-q-vqe.xdv");
    let (_, shown) = xdv_on(&["trace", "show"], &old);
    assert!(
        shown.contains("q job 0 simulation: 3020 amplitude updates"),
        "{shown}"
    );
    let new = dir.path().join("q-vqe.xdv");
    run(&example("q-vqe.toml"), &new, &[]);
    let (_, shown) = xdv_on(&["trace", "show"], &new);
    let line = shown
        .lines()
        .find(|l| l.contains("q job 0 simulation:"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(!line.contains(" 3020 amplitude updates"), "{line}");
}

/// Traces written before signatures and the stricter checks (format 1, event schema 4) still
/// verify, show and account; replay says when the event schema is older.
#[test]
fn older_schema_fixtures_still_verify_show_and_account() {
    let dir = tempfile::tempdir().unwrap();
    // (fixture, events, event schema, a line `trace show` must print: the words older schemas
    // wrote for refusals, faults, restarts and decoherence)
    for (name, events, schema, shown) in [
        ("format-1-hello.xdv", 65u64, 4, "host finished"),
        ("format-1-q-ghz.xdv", 95, 4, "q job 0 done"),
        ("format-1-phi-nested.xdv", 67, 4, "host finished"),
        (
            "schema-5-faults.xdv",
            129,
            5,
            "restart refused: max_restarts (2) reached",
        ),
        (
            "schema-5-hostile.xdv",
            69,
            5,
            "REFUSED vcpu 0 cap_info: handle 0x123456789abcdef: no such capability",
        ),
        (
            "schema-5-phi-decoherence.xdv",
            69,
            5,
            "contract: decohered at 1:1: `d0` has no defined phase since its window decohered",
        ),
    ] {
        // A copy, so that a failure leaves the fixture as it was.
        let trace = dir.path().join(name);
        std::fs::copy(fixture(name), &trace).unwrap();
        let (code, v) = json_of(&["trace", "verify", "--json"], &trace);
        assert_eq!(code, 0, "{name}: {v}");
        assert_eq!(v["complete"], true);
        assert_eq!(v["report"]["events_verified"], events);
        assert_eq!(v["report"]["format_version"], 1);
        assert_eq!(v["report"]["event_schema"], schema);
        assert_eq!(v["signature"]["state"], "unsigned");
        let (code, text) = xdv_on(&["trace", "show"], &trace);
        assert_eq!(code, 0);
        assert_eq!(
            text.lines().count() as u64,
            events + 1,
            "{name}: a header and the events"
        );
        assert!(text.contains(shown), "{name}: {text}");
        let (code, v) = json_of(&["trace", "accounting", "--json"], &trace);
        assert_eq!(code, 0);
        assert_eq!(v["derived_from_events"], false);
        assert!(!v["resource_table"].as_array().unwrap().is_empty());
        let (code, text) = xdv_on(&["trace", "export", "--format", "jsonl"], &trace);
        assert_eq!(code, 0);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["kind"], "host_started");
        assert_eq!(text.lines().count() as u64, events, "{name}");
        // Replay re-executes the current schema only, and says so naming both versions.
        let (code, v) = json_of(&["replay", "--json"], &trace);
        assert_ne!(code, 0, "{name}: {v}");
        let problem = v["report"]["problem"].as_str().unwrap_or_default();
        assert!(
            problem.contains(&format!("recorded with event schema {schema}"))
                && problem.contains(&format!(
                    "re-executes event schemas 6 to {} only",
                    xdv_core::EVENT_SCHEMA_VERSION
                )),
            "{name}: {v}"
        );
    }
}
