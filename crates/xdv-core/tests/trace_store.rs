//! The trace store on its own: round trip, truncation, tampering.

use xdv_core::trace::{TraceHeader, TraceReader, TraceWriter};
use xdv_core::{Event, EventKind, EventSink, Hash32, VhmId};

fn header() -> TraceHeader {
    TraceHeader {
        format_version: xdv_core::TRACE_FORMAT_VERSION,
        event_schema: xdv_core::EVENT_SCHEMA_VERSION,
        xdv_version: "test".into(),
        engine: "test".into(),
        seed: 3,
        manifest_name: "m.toml".into(),
        manifest_text: "[[vhm]]".into(),
        modules: vec![xdv_core::trace::ModuleEntry {
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
