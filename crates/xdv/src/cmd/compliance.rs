//! `xdv compliance TRACE`: the XDV-014 §12 items a trace can show, with evidence.

use crate::Outcome;
use anyhow::{Context, Result};
use std::path::Path;

pub(crate) fn compliance(trace: &Path, as_json: bool) -> Result<Outcome> {
    let items =
        xdv_hv::compliance(trace).with_context(|| format!("checking {}", trace.display()))?;
    let pass = items.iter().all(|i| i.pass);
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "trace": trace.display().to_string(),
                "compliant": pass,
                "items": items,
            }))?
        );
    } else {
        for i in &items {
            outln!(
                "{} §12.{} {}: {}",
                if i.pass { "PASS" } else { "FAIL" },
                i.number,
                i.requirement,
                i.evidence.join("; ")
            );
        }
        outln!(
            "{}: {}",
            trace.display(),
            if pass {
                "compliant on every item a trace can show"
            } else {
                "NOT compliant"
            }
        );
    }
    Ok(if pass { Outcome::Ok } else { Outcome::Problem })
}
