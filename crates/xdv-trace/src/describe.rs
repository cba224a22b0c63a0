//! The words a person reads for an event: `xdv trace show`, divergence reports, exports.
//!
//! Only here, at display time, do events become prose; the canonical bytes carry codes and
//! numbers (event schema 6), so rewording a line below changes no trace hash.

use xdv_core::cap::rights;
use xdv_core::event::{Event, EventKind, HypercallRecord, WorkKind};
use xdv_core::CapId;

/// A one-line human-readable rendering of an event.
pub trait Describe {
    /// The rendering: `xdv trace show`'s text column.
    // Long by design: one arm per event kind, each its own sentence: the table reads best whole.
    fn describe(&self) -> String;
}

impl Describe for Event {
    fn describe(&self) -> String {
        use EventKind::*;
        match &self.kind {
            HostStarted { seed, vhms } => format!("host started: seed {seed}, {vhms} VHMs"),
            VhmCreated {
                name,
                parent,
                level,
                weight,
                module,
            } => format!(
                "created {name:?} level {level}{} weight {weight} module {}",
                parent.map(|p| format!(" parent {p}")).unwrap_or_default(),
                module.short()
            ),
            Allocated {
                domain,
                resource,
                cap,
            } => format!("allocated {domain} {resource} as {cap}"),
            VcpuStarted { vcpu } => format!("vcpu {vcpu} started"),
            SliceEnded { vcpu, fuel } => format!("vcpu {vcpu} slice ended after {fuel} fuel"),
            Hypercall { vcpu, call, ret } => {
                let args = match call {
                    HypercallRecord::Log { ptr, len, bytes } => {
                        format!("({ptr:#x}, {len}) {:?}", String::from_utf8_lossy(bytes))
                    }
                    HypercallRecord::Exit { code } => format!("({code})"),
                    HypercallRecord::Sleep { until_ns } => format!("({until_ns})"),
                    HypercallRecord::TimerSet { period_ns } => format!("({period_ns})"),
                    HypercallRecord::IrqSend { vcpu, vector, arg } => {
                        format!("({vcpu}, {vector}, {arg})")
                    }
                    HypercallRecord::Yield
                    | HypercallRecord::VcpuId
                    | HypercallRecord::VcpuCount
                    | HypercallRecord::Time
                    | HypercallRecord::Random => "()".to_string(),
                    other => {
                        let mut d = format!("{other:?}");
                        // Handles read as the capability they name, as everywhere else.
                        for (field, raw) in other.handle_args() {
                            d = d.replace(
                                &format!("{field}: {raw}"),
                                &format!("{field}: {}", handle_text(raw)),
                            );
                        }
                        format!(" {}", &d[d.find('{').unwrap_or(0)..])
                    }
                };
                let ret = if call.returns_handle() && *ret > 0 {
                    CapId(*ret as u64).to_string()
                } else {
                    ret.to_string()
                };
                format!("vcpu {vcpu} {}{args} -> {ret}", call.name())
            }
            IrqRaised { vcpu, vector, arg } => {
                format!("irq {vector} raised on vcpu {vcpu} (arg {arg})")
            }
            IrqDelivered { vcpu, vector, arg } => {
                format!("irq {vector} delivered to vcpu {vcpu} (arg {arg})")
            }
            IrqDropped { vcpu, vector } => {
                format!("irq {vector} dropped on vcpu {vcpu} (no handler)")
            }
            IrqReturned { vcpu } => format!("vcpu {vcpu} returned from irq handler"),
            TimerFired { tick } => format!("timer tick {tick}"),
            VcpuWoken {
                vcpu,
                interrupted,
                ret,
            } => {
                format!(
                    "vcpu {vcpu} woken{} -> {ret}",
                    if *interrupted { " by interrupt" } else { "" }
                )
            }
            VcpuHalted { vcpu } => format!("vcpu {vcpu} halted"),
            Fault {
                class,
                vcpu,
                detail,
            } => format!(
                "FAULT {class}{}: {detail}",
                vcpu.map(|v| format!(" on vcpu {v}")).unwrap_or_default()
            ),
            LegacyFault {
                class,
                vcpu,
                detail,
            } => format!(
                "FAULT {class}{}: {detail}",
                vcpu.map(|v| format!(" on vcpu {v}")).unwrap_or_default()
            ),
            Released {
                domain,
                resource,
                cap,
                used,
            } => format!(
                "released {domain} {resource} ({cap}){}",
                used.map(|u| format!(", used {u}")).unwrap_or_default()
            ),
            VhmExited { reason, fuel_used } => format!("exited: {reason}, fuel used {fuel_used}"),
            HostFinished { stopped } => {
                format!("host finished ({stopped} VHMs stopped by time limit)")
            }
            CapCreated {
                cap,
                object,
                rights: r,
                badge,
                from,
            } => format!(
                "{cap} = {object} [{}]{}{}",
                rights::describe(*r),
                if *badge != 0 {
                    format!(" badge {badge}")
                } else {
                    String::new()
                },
                from.map(|(v, c)| format!(" derived from {c} of {v}"))
                    .unwrap_or_else(|| " minted".into())
            ),
            CapRemoved { cause, removed } => format!(
                "{cause:?}: removed {}",
                removed
                    .iter()
                    .map(|(v, c)| format!("{c} of {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Refused { vcpu, call, reason } => format!("REFUSED vcpu {vcpu} {call}: {reason}"),
            LegacyRefused { vcpu, call, reason } => {
                format!("REFUSED vcpu {vcpu} {call}: {reason}")
            }
            Carved { child, quota } => format!(
                "carved for {child}: {} vcpus, {} B, {} fuel, depth {}, {} children",
                quota.vcpus, quota.memory, quota.fuel, quota.depth, quota.children
            ),
            GivenBack {
                child,
                quota,
                fuel_used,
            } => {
                format!(
                    "given back by {child}: {fuel_used} fuel used of {}",
                    quota.fuel
                )
            }
            ModuleLoaded { hash, size } => format!("module {} loaded ({size} B)", hash.short()),
            ChannelCreated { channel, capacity } => {
                format!("channel {channel} created (capacity {capacity})")
            }
            IpcSent {
                vcpu,
                channel,
                to_end,
                len,
                badge,
                with_cap,
            } => format!(
                "vcpu {vcpu} sent {len} B on channel {channel} to end {to_end} (badge {badge}){}",
                if *with_cap { " with a capability" } else { "" }
            ),
            IpcDelivered {
                vcpu,
                channel,
                end,
                len,
                badge,
                cap,
            } => format!(
                "vcpu {vcpu} received {len} B on channel {channel} end {end} (badge {badge}){}",
                cap.map(|c| format!(", capability {c}")).unwrap_or_default()
            ),
            IpcDropped {
                channel,
                end,
                messages,
            } => {
                format!("{messages} message(s) dropped at channel {channel} end {end}")
            }
            IpcClosed { channel, end } => format!("channel {channel} end {end} closed"),
            QContainerPlaced {
                device,
                physical,
                from_parent,
            } => format!(
                "q container on {device}{}: physical qubits {physical:?}",
                if *from_parent {
                    " (from the parent's)"
                } else {
                    ""
                }
            ),
            QJobSubmitted {
                vcpu,
                job,
                program,
                qubits,
                clbits,
                shots,
                cost,
                budget_left,
                queued_ns,
                duration_ns,
            } => format!(
                "vcpu {vcpu} q job {job} admitted: program {}, {qubits} qubits, {clbits} bits, \
                 {shots} shots, cost {cost} µ (left {budget_left}), {duration_ns} ns{}",
                program.short(),
                if *queued_ns > 0 {
                    format!(" after {queued_ns} ns queued")
                } else {
                    String::new()
                }
            ),
            QJobDone { job, outcomes } => {
                let shown: Vec<String> = outcomes.iter().take(8).map(|o| o.to_string()).collect();
                format!(
                    "q job {job} done: {} shots [{}{}]",
                    outcomes.len(),
                    shown.join(", "),
                    if outcomes.len() > 8 { ", …" } else { "" }
                )
            }
            QReturned {
                child,
                qubits,
                budget,
                used,
            } => format!(
                "q container of {child} returned: {qubits} qubits, {used} µ used of {budget}"
            ),
            PhiWindowGranted {
                window,
                port,
                t0,
                t1,
                band,
                max_amp,
                shared,
                parent,
            } => format!(
                "phi window {window} on {port} [{t0}, {t1}) ns, band [{}, {}] Hz, cap {max_amp} ppm{}{}",
                band.0,
                band.1,
                if *shared { ", shared" } else { "" },
                parent.map(|p| format!(", inside window {p}")).unwrap_or_default()
            ),
            PhiExecuted {
                vcpu,
                window,
                program,
                start,
                end,
                frames,
                plays,
                captures,
            } => format!(
                "vcpu {vcpu} phi transform {} on window {window} [{start}, {end}) ns: {plays} plays, frames {}, captures {captures:?}",
                program.short(),
                frames
                    .iter()
                    .map(|(n, f, p, c, d)| if *d {
                        format!("{n}@{c}ns {f}Hz {:.6}rad", *p as f64 / 18_446_744_073_709_551_616.0 * std::f64::consts::TAU)
                    } else {
                        format!("{n}@{c}ns {f}Hz phase undefined")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            PhiDecohered { window, cause } => format!("phi window {window} DECOHERED: {cause}"),
            LegacyPhiDecohered { window, cause } => {
                format!("phi window {window} DECOHERED: {cause}")
            }
            HostWork { work, units, fuel } => match work {
                WorkKind::QSimulation { job } => {
                    format!("q job {job} simulation: {units} amplitude updates, {fuel} fuel")
                }
                WorkKind::PhiSamples { transform } => {
                    format!("phi transform {transform} samples: {units} samples, {fuel} fuel")
                }
            },
            PhiBarrier { window, at_ns } => {
                format!("phi window {window} frames barriered to {at_ns} ns")
            }
            FaultInjected {
                index,
                class,
                stopped,
            } => format!(
                "INJECTED fault {index}: {class}{}",
                if *stopped {
                    " (the VHM had stopped: no effect)"
                } else {
                    ""
                }
            ),
            LegacyFaultInjected { index, class } => format!("INJECTED fault {index}: {class}"),
            Restarting { attempt, name } => format!("restarting as {name:?} (restart {attempt})"),
            RestartRefused { reason } => format!("restart refused: {reason}"),
            LegacyRestartRefused { reason } => format!("restart refused: {reason}"),
            QScrubbed { device, physical } => {
                format!("q container scrubbed on {device}: physical qubits {physical:?}")
            }
            Request { tenant, request } => match tenant {
                Some(t) => format!("REQUEST from tenant {t}: {request}"),
                None => format!("REQUEST from the operator: {request}"),
            },
            RequestRefused { reason } => format!("request refused: {reason}"),
        }
    }
}

/// One stored event as JSON: its place, its VHM's name (from `names`), a readable line and the
/// structured kind. `xdv trace show --json` prints these, and `xdv serve` streams them.
pub fn event_json(
    s: &crate::StoredEvent,
    names: &std::collections::BTreeMap<xdv_core::VhmId, String>,
) -> serde_json::Value {
    let e = &s.event;
    let mut event = serde_json::to_value(&e.kind).unwrap_or(serde_json::Value::Null);
    render_handles(&e.kind, &mut event);
    serde_json::json!({
        "seq": s.seq,
        "time_ns": e.time_ns,
        "vhm": e.vhm.map(|v| v.0),
        "vhm_name": e.vhm.and_then(|v| names.get(&v)),
        "kind": e.kind.name(),
        "text": e.describe(),
        "event": event,
        "hash": s.hash.to_hex(),
    })
}

/// How a handle a guest passed reads: the capability it would name (`cap:1.1`), or `none` for 0.
fn handle_text(raw: u64) -> String {
    if raw == 0 {
        "none".into()
    } else {
        CapId(raw).to_string()
    }
}

/// Renders the capability handles of an event's JSON (`kind`'s serde form) as the text does,
/// `"cap": "cap:1.1"`, with the raw value beside it as `"cap_raw"`; a hypercall that returned a
/// handle gets `"ret_cap"` beside its numeric `ret`.
fn render_handles(kind: &EventKind, v: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let Some(fields) = v
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let replace = |fields: &mut serde_json::Map<String, Value>, key: &str| {
        if let Some(raw) = fields.get(key).and_then(Value::as_u64) {
            fields.insert(format!("{key}_raw"), json!(raw));
            fields.insert(key.into(), json!(CapId(raw).to_string()));
        }
    };
    match kind {
        EventKind::Allocated { .. }
        | EventKind::Released { .. }
        | EventKind::CapCreated { .. }
        | EventKind::IpcDelivered { .. } => {
            replace(fields, "cap");
            if let Some(Value::Array(pair)) = fields.get("from").cloned() {
                if let Some(raw) = pair.get(1).and_then(Value::as_u64) {
                    fields.insert("from_raw".into(), Value::Array(pair.clone()));
                    fields.insert(
                        "from".into(),
                        json!([pair[0].clone(), CapId(raw).to_string()]),
                    );
                }
            }
        }
        EventKind::CapRemoved { removed, .. } => {
            if let Some(old) = fields.insert(
                "removed".into(),
                removed
                    .iter()
                    .map(|(vhm, cap)| json!([vhm.0, cap.to_string()]))
                    .collect(),
            ) {
                fields.insert("removed_raw".into(), old);
            }
        }
        EventKind::Hypercall { call, ret, .. } => {
            if call.returns_handle() && *ret > 0 {
                fields.insert("ret_cap".into(), json!(CapId(*ret as u64).to_string()));
            }
            let Some(args) = fields
                .get_mut("call")
                .and_then(Value::as_object_mut)
                .and_then(|o| o.values_mut().next())
                .and_then(Value::as_object_mut)
            else {
                return;
            };
            for (field, raw) in call.handle_args() {
                args.insert(format!("{field}_raw"), json!(raw));
                args.insert(field.into(), json!(handle_text(raw)));
            }
        }
        _ => {}
    }
}
