//! One module per group of subcommands.

pub(crate) mod abi;
pub(crate) mod compliance;
pub(crate) mod ctl;
pub(crate) mod perfetto;
pub(crate) mod phi;
pub(crate) mod q;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod sim;
pub(crate) mod trace;
pub(crate) mod trace_plot;

use crate::table;
use xdv_trace::ResourceRow;

/// The Resource_Table as text.
pub(crate) fn resource_table_text(rows: &[ResourceRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.vhm_id.to_string(),
                r.vhm_name.clone(),
                r.parent_id
                    .map_or_else(|| "-".to_string(), |p| p.to_string()),
                format!("L{}", r.level),
                r.domain.to_string(),
                r.resource.clone(),
                r.amount.to_string(),
                table::opt(r.used),
                r.start_ns.to_string(),
                table::opt(r.end_ns),
                table::opt(r.duration_ns),
                xdv_core::CapId(r.capability_id).to_string(),
            ]
        })
        .collect();
    table::render(
        &[
            "VHM_ID",
            "name",
            "parent",
            "level",
            "Domain",
            "Allocated_Resource",
            "amount",
            "used",
            "start_ns",
            "end_ns",
            "Duration_ns",
            "Capability_ID",
        ],
        &body,
    )
}
