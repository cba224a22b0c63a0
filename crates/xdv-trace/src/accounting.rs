//! The spec's Resource_Table (§5), derived from events.
//!
//! The table is a pure function of the event stream, so a replay that reproduces the events
//! reproduces the table, and a trace cut short still yields the table up to its last commit
//! (with open allocations shown as such).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xdv_core::event::{Event, EventKind, Resource};
use xdv_core::ids::{CapId, Domain, VhmId};

/// One row of the Resource_Table: one allocation over its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRow {
    /// VHM_ID.
    pub vhm_id: u32,
    /// The VHM's name, for readers.
    pub vhm_name: String,
    /// The VHM's parent (nested execution mapping), `None` for manifest (L1) VHMs.
    pub parent_id: Option<u32>,
    /// The VHM's privilege level (1 for manifest VHMs).
    pub level: u8,
    /// Domain.
    pub domain: Domain,
    /// Allocated_Resource: the kind of resource (`vcpu`, `memory`, `fuel`, `qubits`,
    /// `decoherence`, or `window pN [t0, t1)` with the window's port and interval).
    pub resource: String,
    /// Amount allocated: vCPU index, bytes, fuel units, logical qubits, decoherence budget in
    /// micro-units of log-fidelity, or a window's duration in ns.
    pub amount: u64,
    /// Amount consumed, for consumable resources (fuel, decoherence budget).
    pub used: Option<u64>,
    /// Virtual time of the allocation.
    pub start_ns: u64,
    /// Virtual time of the release, `None` while still held (trace cut short).
    pub end_ns: Option<u64>,
    /// Duration = end − start, `None` while still held.
    pub duration_ns: Option<u64>,
    /// Capability_ID: the handle the allocation is held under.
    pub capability_id: u64,
}

/// The row's resource name and amount. A window's name carries its port and interval
/// (`window p0 [1000, 3000)`); its amount is its duration.
fn split(resource: &Resource) -> (String, u64) {
    match *resource {
        Resource::Vcpu(i) => ("vcpu".into(), u64::from(i)),
        Resource::Memory(b) => ("memory".into(), b),
        Resource::Fuel(q) => ("fuel".into(), q),
        Resource::Qubits(n) => ("qubits".into(), u64::from(n)),
        Resource::Decoherence(b) => ("decoherence".into(), b),
        Resource::Window { port, t0, t1 } => (format!("window p{port} [{t0}, {t1})"), t1 - t0),
    }
}

/// Builds the Resource_Table incrementally, one event at a time (the writer feeds it during a run,
/// so the table costs no second pass and no copy of the events).
#[derive(Debug, Default, Clone)]
pub struct TableBuilder {
    names: BTreeMap<VhmId, (String, Option<u32>, u8)>,
    open: BTreeMap<(VhmId, Domain, CapId, String), usize>,
    rows: Vec<ResourceRow>,
}

impl TableBuilder {
    /// Applies one event.
    pub fn observe(&mut self, e: &Event) {
        let Some(vhm) = e.vhm else { return };
        match &e.kind {
            EventKind::VhmCreated {
                name,
                parent,
                level,
                ..
            } => {
                self.names
                    .insert(vhm, (name.clone(), parent.map(|p| p.0), *level));
            }
            EventKind::Allocated {
                domain,
                resource,
                cap,
            } => {
                let (kind, amount) = split(resource);
                self.open
                    .insert((vhm, *domain, *cap, kind.clone()), self.rows.len());
                let (vhm_name, parent_id, level) =
                    self.names.get(&vhm).cloned().unwrap_or_default();
                self.rows.push(ResourceRow {
                    vhm_id: vhm.0,
                    vhm_name,
                    parent_id,
                    level,
                    domain: *domain,
                    resource: kind,
                    amount,
                    used: None,
                    start_ns: e.time_ns,
                    end_ns: None,
                    duration_ns: None,
                    capability_id: cap.0,
                });
            }
            EventKind::Released {
                domain,
                cap,
                used,
                resource,
            } => {
                if let Some(i) = self.open.remove(&(vhm, *domain, *cap, split(resource).0)) {
                    let row = &mut self.rows[i];
                    row.used = *used;
                    row.end_ns = Some(e.time_ns);
                    row.duration_ns = Some(e.time_ns.saturating_sub(row.start_ns));
                }
            }
            _ => {}
        }
    }

    /// The table, rows in allocation order.
    pub fn finish(self) -> Vec<ResourceRow> {
        self.rows
    }
}

/// Derives the Resource_Table from events, rows in allocation order.
pub fn derive_resource_table<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<ResourceRow> {
    let mut b = TableBuilder::default();
    for e in events {
        b.observe(e);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdv_core::Hash32;

    #[test]
    fn rows_follow_allocation_and_release() {
        let v = Some(VhmId(0));
        let cap = CapId::new(1, 0, 1);
        let events = vec![
            Event {
                time_ns: 0,
                vhm: v,
                kind: EventKind::VhmCreated {
                    name: "a".into(),
                    parent: None,
                    level: 1,
                    weight: 1,
                    module: Hash32::of(b""),
                },
            },
            Event {
                time_ns: 0,
                vhm: v,
                kind: EventKind::Allocated {
                    domain: Domain::K,
                    resource: Resource::Fuel(100),
                    cap,
                },
            },
            Event {
                time_ns: 70,
                vhm: v,
                kind: EventKind::Released {
                    domain: Domain::K,
                    resource: Resource::Fuel(100),
                    cap,
                    used: Some(60),
                },
            },
        ];
        let rows = derive_resource_table(&events);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].vhm_name.as_str(),
                rows[0].amount,
                rows[0].used,
                rows[0].duration_ns
            ),
            ("a", 100, Some(60), Some(70))
        );
    }
}
