//! The trace store on its own: round trip, truncation, tampering.

use xdv_core::{Event, EventKind, EventSink, Hash32, VhmId};
use xdv_trace::{TraceHeader, TraceReader, TraceWriter};

fn header() -> TraceHeader {
    TraceHeader {
        format_version: xdv_core::TRACE_FORMAT_VERSION,
        event_schema: xdv_core::EVENT_SCHEMA_VERSION,
        xdv_version: "test".into(),
        engine: "test".into(),
        seed: 3,
        manifest_name: "m.toml".into(),
        manifest_text: "[[vhm]]".into(),
        modules: vec![xdv_trace::ModuleEntry {
            name: "g.wasm".into(),
            hash: Hash32::of(b"module"),
        }],
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            time_ns: i,
            vhm: Some(VhmId(1)),
            kind: EventKind::SliceEnded { vcpu: 0, fuel: i },
        })
        .collect()
}

fn write(path: &std::path::Path, n: u64, batch: u32, finish: bool) {
    let mut w = TraceWriter::create(
        path,
        &header(),
        &[(Hash32::of(b"module"), b"module")],
        batch,
    )
    .unwrap();
    for e in events(n) {
        w.emit(&e).unwrap();
    }
    if finish {
        w.finish(&[]).unwrap();
    }
}

#[test]
fn round_trip_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.xdv");
    write(&p, 1000, 64, true);
    let r = TraceReader::open(&p).unwrap();
    assert_eq!(r.header().unwrap(), header());
    assert_eq!(r.events().unwrap(), events(1000));
    assert_eq!(
        r.module(&Hash32::of(b"module")).unwrap().as_deref(),
        Some(&b"module"[..])
    );
    let v = r.verify().unwrap();
    assert!(v.intact() && v.complete, "{v:?}");
    assert_eq!(v.events_verified, 1000);
    assert_eq!(Some(v.head), r.final_hash().unwrap().map(|h| h.to_hex()));
}

#[test]
fn a_writer_dropped_without_finishing_commits_what_it_was_handed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.xdv");
    write(&p, 1000, 64, false);
    let v = TraceReader::open(&p).unwrap().verify().unwrap();
    assert!(v.intact() && !v.complete);
    assert_eq!(v.events_verified, 1000);
}

#[test]
fn deleted_reordered_or_edited_rows_fail_verification() {
    let dir = tempfile::tempdir().unwrap();
    let edits = [
        "DELETE FROM events WHERE seq = 500",
        "UPDATE events SET time_ns = 7 WHERE seq = 3",
        "UPDATE events SET seq = 2000 WHERE seq = 999",
        "UPDATE header SET value = '4' WHERE key = 'seed'",
        "UPDATE modules SET bytes = x'00'",
        "UPDATE run_status SET value = '999' WHERE key = 'event_count'",
        "INSERT INTO resource_table VALUES (0, 1, 'x', NULL, 1, 'K', 'fuel', 1, NULL, 0, NULL, NULL, 1)",
    ];
    for sql in edits {
        let p = dir.path().join("t.xdv");
        write(&p, 1000, 64, true);
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let v = TraceReader::open(&p).unwrap().verify().unwrap();
        assert!(!v.intact(), "{sql} went unnoticed");
    }
}

#[test]
fn plain_edits_outside_the_events_fail_verification_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let edits = [
        ("UPDATE modules SET size = 7", "`size` says 7 bytes"),
        ("DELETE FROM run_status WHERE key = 'status'", "no `status`"),
        (
            "INSERT INTO run_status VALUES ('note', 'x')",
            "unknown key `note`",
        ),
        (
            "INSERT INTO header VALUES ('note', 'x')",
            "unknown key `note`",
        ),
        (
            "UPDATE run_status SET value = 'running' WHERE key = 'status'",
            "holds `event_count`",
        ),
        (
            "UPDATE modules SET hash = upper(hash)",
            "not a lower-case BLAKE3 hash",
        ),
        ("DELETE FROM modules", "is missing"),
        (
            "INSERT INTO run_status VALUES ('signed_by', 'ab')",
            "only one of `signature` and `signed_by`",
        ),
    ];
    for (sql, reason) in edits {
        let p = dir.path().join("t.xdv");
        write(&p, 100, 64, true);
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let v = TraceReader::open(&p).unwrap().verify().unwrap();
        let problem = v.problem.unwrap_or_else(|| panic!("{sql} went unnoticed"));
        assert!(problem.contains(reason), "{sql}: {problem}");
    }
    // A trace cut short holds no Resource_Table and no final status.
    let p = dir.path().join("cut.xdv");
    write(&p, 100, 64, false);
    rusqlite::Connection::open(&p)
        .unwrap()
        .execute_batch("INSERT INTO resource_table VALUES (0, 1, 'x', NULL, 1, 'K', 'fuel', 1, NULL, 0, NULL, NULL, 1)")
        .unwrap();
    let v = TraceReader::open(&p).unwrap().verify().unwrap();
    assert!(v.problem.unwrap().contains("marked `running`"));
}

#[test]
fn recorded_outcomes_must_fit_their_job() {
    use xdv_trace::InputCheck;
    let at = |kind| Event {
        time_ns: 0,
        vhm: Some(VhmId(0)),
        kind,
    };
    let submitted = at(EventKind::QJobSubmitted {
        vcpu: 0,
        job: 0,
        program: Hash32::of(b"p"),
        qubits: 2,
        clbits: 2,
        shots: 3,
        cost: 1,
        budget_left: 0,
        queued_ns: 0,
        duration_ns: 1,
    });
    let done = |outcomes: Vec<u64>| at(EventKind::QJobDone { job: 0, outcomes });
    let check = |outcomes: Vec<u64>| {
        let mut c = InputCheck::default();
        c.observe(&submitted).unwrap();
        c.observe(&done(outcomes))
    };
    assert!(check(vec![0, 3, 1]).is_ok());
    assert!(check(vec![0, 4, 1])
        .unwrap_err()
        .contains("shot 1 records outcome 4"));
    assert!(check(vec![0, 1])
        .unwrap_err()
        .contains("2 outcomes for 3 shots"));
    assert!(InputCheck::default()
        .observe(&done(vec![0]))
        .unwrap_err()
        .contains("never admitted"));
}

#[test]
fn a_signature_covers_the_finished_trace_and_names_its_key() {
    use xdv_trace::{sign_trace, PublicKey, SecretKey, SignatureStatus, VerifyOptions};
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed([1; 32]);
    let other = SecretKey::from_seed([2; 32]);
    let need = |k: &SecretKey| VerifyOptions {
        engine: Some("test".into()),
        key: Some(k.public()),
    };
    let p = dir.path().join("t.xdv");
    write(&p, 100, 64, true);
    let r = TraceReader::open(&p).unwrap();
    assert_eq!(r.verify().unwrap().signature, SignatureStatus::Unsigned);
    assert!(r
        .verify_with(&need(&key))
        .unwrap()
        .problem
        .unwrap()
        .contains("not signed"));
    drop(r);
    assert_eq!(sign_trace(&p, &key).unwrap(), key.public());
    let r = TraceReader::open(&p).unwrap();
    let v = r.verify_with(&need(&key)).unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!(
        v.signature,
        SignatureStatus::Valid {
            public_key: key.public().to_hex()
        }
    );
    assert!(r
        .verify_with(&need(&other))
        .unwrap()
        .problem
        .unwrap()
        .contains("another key"));
    let wrong_engine = VerifyOptions {
        engine: Some("other".into()),
        key: None,
    };
    assert!(r
        .verify_with(&wrong_engine)
        .unwrap()
        .problem
        .unwrap()
        .contains("engine"));
    drop(r);
    // A trace cut short is not signed.
    let cut = dir.path().join("cut.xdv");
    write(&cut, 100, 64, false);
    assert!(sign_trace(&cut, &key).is_err());

    // Every edit after signing that the chain cannot see breaks the signature.
    for sql in [
        "INSERT INTO run_status VALUES ('resumed_at', '0')",
        "UPDATE events SET kind = kind",
        "UPDATE modules SET size = size",
        "UPDATE run_status SET value = (SELECT value FROM run_status WHERE key = 'signed_by') WHERE key = 'signed_by'",
    ] {
        let p = dir.path().join("s.xdv");
        write(&p, 100, 64, true);
        sign_trace(&p, &key).unwrap();
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let v = TraceReader::open(&p).unwrap().verify().unwrap();
        if !sql.contains("resumed_at") {
            assert!(v.intact(), "a no-op edit keeps the signature");
        } else {
            assert!(
                matches!(v.signature, SignatureStatus::Invalid { .. }),
                "{sql}: {v:?}"
            );
        }
    }

    // Key files: the pair round-trips, each kind refuses the other.
    let kp = dir.path().join("host.key");
    let public = key.write_pair(&kp).unwrap();
    assert_eq!(SecretKey::read(&kp).unwrap().public(), key.public());
    assert_eq!(PublicKey::read(&public).unwrap(), key.public());
    assert!(PublicKey::read(&kp).is_err());
    assert!(SecretKey::read(&public).is_err());
    assert!(key.write_pair(&kp).is_err(), "never replaces a key");
    std::fs::write(
        dir.path().join("bare"),
        format!("{}\n", key.public().to_hex()),
    )
    .unwrap();
    assert_eq!(
        PublicKey::read(&dir.path().join("bare")).unwrap(),
        key.public()
    );
}

/// Traces written by the format-1 writer before signatures and the stricter checks still open,
/// verify and read back (the binary's `trace show` and `accounting` are tested in
/// `crates/xdv/tests/forgery.rs`).
#[test]
fn older_schema_fixtures_still_read_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (name, events, schema) in [
        ("format-1-hello.xdv", 65, 4),
        ("format-1-q-ghz.xdv", 95, 4),
        ("format-1-phi-nested.xdv", 67, 4),
        ("schema-5-faults.xdv", 129, 5),
        ("schema-5-hostile.xdv", 69, 5),
        ("schema-5-phi-decoherence.xdv", 69, 5),
    ] {
        let p = dir.path().join(name);
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
            &p,
        )
        .unwrap();
        let r = TraceReader::open(&p).unwrap();
        let h = r.header().unwrap();
        assert_eq!((h.format_version, h.event_schema), (1, schema));
        let v = r.verify().unwrap();
        assert!(v.intact() && v.complete, "{name}: {v:?}");
        assert_eq!(v.events_verified, events);
        let all = r.events().unwrap();
        assert_eq!(all.len() as u64, events);
        // Older schemas wrote words where schema 6 writes codes: those events decode as their
        // legacy forms, never as the typed ones.
        assert!(all.iter().all(|e| !matches!(
            e.kind,
            EventKind::Refused { .. }
                | EventKind::Fault { .. }
                | EventKind::RestartRefused { .. }
                | EventKind::PhiDecohered { .. }
                | EventKind::FaultInjected { .. }
        )));
        if name == "schema-5-faults.xdv" {
            assert!(all
                .iter()
                .any(|e| matches!(&e.kind, EventKind::LegacyRestartRefused { reason } if reason.contains("max_restarts"))));
            assert!(all
                .iter()
                .any(|e| matches!(e.kind, EventKind::LegacyFault { .. })));
        }
        let (table, derived) = r.resource_table().unwrap();
        assert!(!derived && !table.is_empty());
    }
}

/// Storage failures the simulator injects: the write that fails is an error (never a panic),
/// and what was committed before it verifies, cut short at its last commit.
#[test]
fn a_failed_commit_or_a_full_disk_leaves_a_verified_prefix() {
    use xdv_trace::StorageFault;
    let dir = tempfile::tempdir().unwrap();
    for (name, fault, batch) in [
        (
            "commit.xdv",
            StorageFault::FailedCommit { after_events: 250 },
            100,
        ),
        ("full.xdv", StorageFault::DiskFull { pages: 8 }, 64),
    ] {
        let p = dir.path().join(name);
        let mut w =
            TraceWriter::create(&p, &header(), &[(Hash32::of(b"module"), b"module")], batch)
                .unwrap();
        w.inject(fault).unwrap();
        let failed = events(200_000)
            .iter()
            .position(|e| w.emit(e).is_err())
            .unwrap_or_else(|| panic!("{fault:?}: every write succeeded"));
        drop(w);
        let r = TraceReader::open(&p).unwrap();
        let v = r.verify().unwrap();
        assert!(v.intact() && !v.complete, "{fault:?}: {v:?}");
        assert!(v.events_verified <= failed as u64, "{fault:?}: {v:?}");
        assert_eq!(
            v.events_verified % u64::from(batch),
            0,
            "{fault:?}: whole batches only"
        );
        if let StorageFault::FailedCommit { .. } = fault {
            assert_eq!(
                v.events_verified, 200,
                "the batch whose commit failed is lost"
            );
        }
    }
}
