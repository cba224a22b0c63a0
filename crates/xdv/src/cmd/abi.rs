//! `xdv abi`: the hypercall table, from the same source the engine links.

use crate::{table, Outcome};
use anyhow::Result;
use serde_json::json;
use xdv_k::abi::{ABI_VERSION, ERROR_CODES, HYPERCALLS};

fn ty(t: &xdv_k::abi::ValType) -> String {
    format!("{t:?}").to_lowercase()
}

pub(crate) fn print(as_json: bool, c_header: bool, rust: bool) -> Result<Outcome> {
    if c_header {
        out!("{}", xdv_k::bindings::c_header());
        return Ok(Outcome::Ok);
    }
    if rust {
        out!("{}", xdv_k::bindings::rust_sys());
        return Ok(Outcome::Ok);
    }
    if as_json {
        let calls: Vec<_> = HYPERCALLS
            .iter()
            .map(|d| {
                json!({
                    "name": d.name, "group": format!("{:?}", d.group).to_lowercase(),
                    "params": d.params.iter().map(ty).collect::<Vec<_>>(), "names": d.names, "result": d.result.as_ref().map(ty),
                    "max_level": d.max_level, "rights": d.rights, "doc": d.doc,
                })
            })
            .collect();
        let errors: Vec<_> = ERROR_CODES
            .iter()
            .map(|(c, n, d)| json!({ "code": c, "name": n, "meaning": d }))
            .collect();
        let features: Vec<_> = xdv_k::features::FEATURES
            .iter()
            .map(|f| json!({ "name": f.name, "accepted": f.accepted, "note": f.note }))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "abi_version": ABI_VERSION, "oldest_abi_version": xdv_k::abi::OLDEST_ABI_VERSION, "hypercalls": calls, "errors": errors, "wasm_features": features })
            )?
        );
        return Ok(Outcome::Ok);
    }
    outln!("xdv guest ABI version {ABI_VERSION} (import module \"xdv\")\n");
    let rows: Vec<Vec<String>> = HYPERCALLS
        .iter()
        .map(|d| {
            let params = d
                .params
                .iter()
                .zip(d.names)
                .map(|(t, n)| format!("{n}: {}", ty(t)))
                .collect::<Vec<_>>()
                .join(", ");
            let result = d.result.as_ref().map_or("-".into(), ty);
            let level = if d.max_level == u8::MAX {
                "any".to_string()
            } else {
                format!("<= L{}", d.max_level)
            };
            vec![
                d.name.to_string(),
                format!("({params}) -> {result}"),
                format!("{:?}", d.group).to_lowercase(),
                level,
                d.rights.to_string(),
                d.doc.to_string(),
            ]
        })
        .collect();
    out!(
        "{}",
        table::render(
            &["call", "signature", "group", "level", "rights", "meaning"],
            &rows
        )
    );
    outln!();
    let rows: Vec<Vec<String>> = ERROR_CODES
        .iter()
        .map(|(c, n, d)| vec![c.to_string(), n.to_string(), d.to_string()])
        .collect();
    out!("{}", table::render(&["code", "name", "meaning"], &rows));
    outln!();
    let rows: Vec<Vec<String>> = xdv_k::features::FEATURES
        .iter()
        .map(|f| {
            let yes = if f.accepted { "yes" } else { "no" };
            vec![f.name.to_string(), yes.to_string(), f.note.to_string()]
        })
        .collect();
    out!(
        "{}",
        table::render(&["WebAssembly feature", "accepted", "note"], &rows)
    );
    Ok(Outcome::Ok)
}
