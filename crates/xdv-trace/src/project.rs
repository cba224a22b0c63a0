//! A run's events projected onto one VHM: what that VHM observed, independent of the rest of
//! the host. Two runs treat a VHM identically exactly when its projections are equal, which is
//! how non-interference and fault containment are checked.

use std::collections::BTreeMap;
use xdv_core::{Event, EventKind, VhmId};

/// Projects a run's events onto one VHM: its events' times and contents, without the host-wide
/// sequence numbers, and with every VHM id replaced by a stable stand-in derived from the VHM's
/// name. Two runs treat a VHM identically exactly when its projections are equal, which is how
/// non-interference and fault containment are checked.
pub fn project<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    name: &str,
) -> Vec<(u64, EventKind)> {
    let events: Vec<&Event> = events.into_iter().collect();
    let mut by_id: BTreeMap<VhmId, VhmId> = BTreeMap::new();
    for e in &events {
        if let (Some(v), EventKind::VhmCreated { name: n, .. }) = (e.vhm, &e.kind) {
            let h = blake3::hash(n.as_bytes());
            by_id.insert(
                v,
                VhmId(u32::from_le_bytes(
                    h.as_bytes()[..4].try_into().expect("4 bytes"),
                )),
            );
        }
    }
    let id = events.iter().find_map(|e| match &e.kind {
        EventKind::VhmCreated { name: n, .. } if n == name => e.vhm,
        _ => None,
    });
    let map = |v: VhmId| by_id.get(&v).copied().unwrap_or(v);
    events
        .iter()
        .filter(|e| id.is_some() && e.vhm == id)
        .map(|e| (e.time_ns, e.kind.map_vhms(&map)))
        .collect()
}
