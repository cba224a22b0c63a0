//! `xdv compliance TRACE`: the XDV-014 §12 items a trace can show, with evidence.

use crate::Outcome;
use anyhow::{Context, Result};
use std::path::Path;

pub(crate) fn compliance(trace: &Path, key: Option<&Path>, as_json: bool) -> Result<Outcome> {
    let key = key.map(xdv_trace::PublicKey::read).transpose()?;
    let report = xdv_compliance::report(trace, key)
        .with_context(|| format!("checking {}", trace.display()))?;
    let pass = report.compliant();
    let items = &report.items;
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "trace": trace.display().to_string(),
                "compliant": pass,
                "complete": report.complete,
                "signature": report.signature,
                "items": items,
            }))?
        );
    } else {
        for i in items {
            outln!(
                "{} §12.{} {}: {}",
                if i.pass { "PASS" } else { "FAIL" },
                i.number,
                i.requirement,
                i.evidence.join("; ")
            );
        }
        outln!("signature: {}", report.signature.describe());
        outln!(
            "{}: {}",
            trace.display(),
            if pass {
                "compliant on every item a trace can show"
            } else if !report.complete {
                "NOT compliant: the trace was cut short"
            } else {
                "NOT compliant"
            }
        );
    }
    Ok(if pass { Outcome::Ok } else { Outcome::Problem })
}
