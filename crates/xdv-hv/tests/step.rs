//! The core driven directly: `State::step` with scripted inputs, no engine, no WAT and no files.
//! The modules are stand-ins whose compile and instantiate results a fake loader declares, and
//! every vCPU stop is an input the test writes.

use proptest::prelude::*;
use xdv_core::event::{Event, EventKind, ExitReason, FaultClass};
use xdv_core::refusal::Refusal;
use xdv_core::{CapId, VhmId};
use xdv_hv::{Effect, HvError, Input, State};
use xdv_k::abi::{self, Hypercall};
use xdv_k::{Call, Request, Stop};
use xdv_manifest::{LoadedModule, Manifest};

mod common;
use common::Fake;

/// A host of `vhms` (`(name, vcpus, weight, fuel_quota)`) running the stand-in module.
fn host(vhms: &[(&str, u32, u32, u64)], slice: u64, time_limit: Option<u64>) -> State {
    let mut text = format!("[host]\nseed = 7\nns_per_fuel = 1\nslice_fuel = {slice}\n");
    if let Some(t) = time_limit {
        text += &format!("time_limit_ns = {t}\n");
    }
    for (name, vcpus, weight, fuel) in vhms {
        text += &format!(
            "[[vhm]]\nname = \"{name}\"\n[vhm.k]\nvcpus = {vcpus}\nmemory_limit = \"64 KiB\"\n\
             module = \"guest.wasm\"\nentry = \"main\"\n[vhm.policy]\nweight = {weight}\n\
             fuel_quota = {fuel}\nmemory_quota = \"128 KiB\"\n"
        );
    }
    let manifest = Manifest::parse(&text, "step.toml").expect("the test manifest is valid");
    let modules = [LoadedModule {
        name: "guest.wasm".into(),
        bytes: b"\0asm stand-in".to_vec(),
    }];
    State::new(&manifest, &modules, 7, &mut Fake).expect("the host builds")
}

/// Steps `state` from `input`, answering each awaited effect with `answer`, until the run is
/// over or `answer` gives up (`None`); returns every effect in order.
fn drive(
    state: &mut State,
    mut input: Input,
    mut answer: impl FnMut(&Effect) -> Option<Input>,
) -> Result<Vec<Effect>, HvError> {
    let mut all = Vec::new();
    loop {
        let effects = state.step(input)?.into_vec();
        let next = match effects.last() {
            Some(Effect::Finished) | None => None,
            Some(last) => answer(last),
        };
        all.extend(effects);
        match next {
            Some(i) => input = i,
            None => return Ok(all),
        }
    }
}

/// Answers every run with all its fuel used and a preemption.
fn preempt(e: &Effect) -> Option<Input> {
    match e {
        Effect::RunVcpu {
            vhm, vcpu, fuel, ..
        } => Some(stopped(*vhm, *vcpu, *fuel, Stop::Preempted)),
        _ => None,
    }
}

fn stopped(vhm: VhmId, vcpu: u32, fuel_used: u64, stop: Stop) -> Input {
    Input::VcpuStopped {
        vhm,
        vcpu,
        fuel_used,
        stop,
        memory: Some(65536),
        min_fuel: 1,
    }
}

fn events(effects: &[Effect]) -> Vec<&Event> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

fn exit_of(effects: &[Effect], vhm: u32) -> Option<ExitReason> {
    events(effects).into_iter().find_map(|e| match e.kind {
        EventKind::VhmExited { reason, .. } if e.vhm == Some(VhmId(vhm)) => Some(reason),
        _ => None,
    })
}

#[test]
fn the_start_creates_the_manifest_vhms_and_runs_the_first_vcpu() {
    let mut s = host(&[("a", 2, 1, 1_000_000)], 1000, None);
    let effects = s.step(Input::Start).unwrap().into_vec();
    assert!(matches!(
        effects.first(),
        Some(Effect::Emit(Event {
            kind: EventKind::HostStarted { vhms: 1, .. },
            ..
        }))
    ));
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Instantiate {
            vhm: VhmId(0),
            vcpus: 2,
            ..
        }
    )));
    // The step ends at the first run: vCPU 0, answering nothing, with one slice of fuel.
    assert!(matches!(
        effects.last(),
        Some(Effect::RunVcpu {
            vhm: VhmId(0),
            vcpu: 0,
            answer: None,
            irq: None,
            fuel: 1000,
        })
    ));
    assert!(!s.finished());
}

#[test]
fn slices_follow_the_virtual_clock_and_the_weights() {
    // In T ns a VHM of weight w runs T·w fuel (1 ns per fuel at weight 1), within one slice.
    let t = 30_000;
    let mut s = host(
        &[("light", 1, 1, u64::MAX / 4), ("heavy", 1, 3, u64::MAX / 4)],
        1000,
        Some(t),
    );
    let effects = drive(&mut s, Input::Start, preempt).unwrap();
    assert!(matches!(effects.last(), Some(Effect::Finished)));
    let summary = s.summary();
    for (v, w) in [(0usize, 1u64), (1, 3)] {
        let fuel = summary.vhms[v].fuel_used;
        assert!(
            fuel.abs_diff(t * w) <= 1000,
            "{}: {fuel} fuel in {t} ns at weight {w}",
            summary.vhms[v].name
        );
        assert_eq!(exit_of(&effects, v as u32), Some(ExitReason::TimeLimit));
    }
}

#[test]
fn a_vhm_whose_vcpus_all_return_halts() {
    let mut s = host(&[("a", 2, 1, 1_000_000)], 1000, None);
    let effects = drive(&mut s, Input::Start, |e| match e {
        Effect::RunVcpu { vhm, vcpu, .. } => {
            Some(stopped(*vhm, *vcpu, 10, Stop::Returned { from_irq: false }))
        }
        _ => None,
    })
    .unwrap();
    let halted = events(&effects)
        .iter()
        .filter(|e| matches!(e.kind, EventKind::VcpuHalted { .. }))
        .count();
    assert_eq!(halted, 2);
    assert_eq!(exit_of(&effects, 0), Some(ExitReason::Halted));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::DropVcpus { vhm: VhmId(0) })));
    assert!(matches!(effects.last(), Some(Effect::Finished)));
    assert_eq!(s.summary().vhms[0].fuel_used, 20);
}

#[test]
fn a_hypercall_is_decoded_at_the_edge_only_when_it_passes_guest_memory() {
    let mut s = host(&[("a", 1, 1, 1_000_000)], 1000, None);
    let mut step = 0;
    let effects = drive(&mut s, Input::Start, |e| {
        step += 1;
        match (step, e) {
            // `vcpu_id` is its arguments alone: the core decodes it and answers on the next run.
            (1, Effect::RunVcpu { vhm, vcpu, .. }) => {
                Some(stopped(*vhm, *vcpu, 5, hc(Hypercall::VcpuId, 0)))
            }
            // `log` passes its text in guest memory: the edge reads it.
            (
                2,
                Effect::RunVcpu {
                    answer, vhm, vcpu, ..
                },
            ) => {
                assert_eq!(*answer, Some(0), "vcpu_id of vCPU 0");
                let log = Stop::Hypercall(Request {
                    call: Hypercall::Log,
                    args: [64, 2, 0, 0, 0],
                });
                Some(stopped(*vhm, *vcpu, 5, log))
            }
            (3, Effect::DecodeHypercall { vhm, vcpu, request }) => {
                assert_eq!(request.call, Hypercall::Log);
                Some(Input::Hypercall {
                    vhm: *vhm,
                    vcpu: *vcpu,
                    call: Box::new(Call::Log {
                        ptr: 64,
                        len: 2,
                        bytes: Ok(b"hi".to_vec()),
                    }),
                })
            }
            (
                4,
                Effect::RunVcpu {
                    answer, vhm, vcpu, ..
                },
            ) => {
                assert_eq!(*answer, Some(0), "log returns 0");
                Some(stopped(*vhm, *vcpu, 5, hc(Hypercall::Exit, 7)))
            }
            (n, e) => panic!("unexpected effect {n}: {e:?}"),
        }
    })
    .unwrap();
    assert_eq!(step, 4);
    assert_eq!(exit_of(&effects, 0), Some(ExitReason::Exit(7)));
    assert!(matches!(effects.last(), Some(Effect::Finished)));
}

#[test]
fn the_fuel_quota_bounds_the_run() {
    let mut s = host(&[("a", 1, 1, 5000)], 1000, None);
    let mut runs = 0;
    let effects = drive(&mut s, Input::Start, |e| {
        if matches!(e, Effect::RunVcpu { .. }) {
            runs += 1;
        }
        preempt(e)
    })
    .unwrap();
    assert_eq!(runs, 5, "five slices of 1000 fuel pay for the 5000 quota");
    assert_eq!(
        exit_of(&effects, 0),
        Some(ExitReason::Fault(FaultClass::FuelExhausted))
    );
    assert!(s.summary().vhms[0].fuel_used <= 5000);
}

/// The budget capability the core gave VHM 0, from its `Allocated` events.
fn budget_cap(effects: &[Effect]) -> CapId {
    events(effects)
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Allocated { cap, .. } if e.vhm == Some(VhmId(0)) => Some(cap),
            _ => None,
        })
        .expect("the VHM's budget is allocated")
}

/// Runs `cap_info` on the VHM's budget into `out` with the guest's memory reported as `memory`;
/// the effects of the call's step.
fn cap_info(memory: Option<u64>, out: u32) -> Vec<Effect> {
    let mut s = host(&[("a", 1, 1, 1_000_000)], 1000, None);
    let start = s.step(Input::Start).unwrap().into_vec();
    let cap = budget_cap(&start);
    let stop = Input::VcpuStopped {
        vhm: VhmId(0),
        vcpu: 0,
        fuel_used: 5,
        stop: Stop::Hypercall(Request {
            call: Hypercall::CapInfo,
            args: [cap.0 as i64, i64::from(out), 0, 0, 0],
        }),
        memory,
        min_fuel: 1,
    };
    // `cap_info` passes nothing in guest memory: the core decodes it and answers at once.
    s.step(stop).unwrap().into_vec()
}

fn refused_code(effects: &[Effect]) -> Option<i64> {
    events(effects).into_iter().find_map(|e| match &e.kind {
        EventKind::Refused {
            reason: Refusal::GuestMemory {
                write: true, code, ..
            },
            ..
        } => Some(*code),
        _ => None,
    })
}

#[test]
fn a_guest_write_is_checked_against_the_memory_its_last_run_reported() {
    let fits = cap_info(Some(65536), 64);
    assert!(fits.iter().any(|e| matches!(
        e,
        Effect::WriteGuest { vhm: VhmId(0), vcpu: 0, ptr: 64, bytes } if bytes.len() == 24
    )));
    assert_eq!(refused_code(&fits), None);

    let past_the_end = cap_info(Some(65536), 65536 - 8);
    assert!(!past_the_end
        .iter()
        .any(|e| matches!(e, Effect::WriteGuest { .. })));
    assert_eq!(refused_code(&past_the_end), Some(abi::E_FAULT));

    let no_memory = cap_info(None, 0);
    assert_eq!(refused_code(&no_memory), Some(abi::E_NOMEM));
}

#[test]
fn an_input_the_core_does_not_await_is_refused() {
    let mut s = host(&[("a", 1, 1, 1_000_000)], 1000, None);
    s.step(Input::Start).unwrap();
    let wrong = s.step(Input::QJobFinished {
        vhm: VhmId(0),
        job: 0,
        outcomes: vec![],
    });
    assert!(matches!(wrong, Err(HvError::Input(_))), "{wrong:?}");
    // A run's stop for another vCPU than the one running is refused too.
    let mut s = host(&[("a", 2, 1, 1_000_000)], 1000, None);
    s.step(Input::Start).unwrap();
    let other = s.step(stopped(VhmId(0), 1, 1, Stop::Preempted));
    assert!(matches!(other, Err(HvError::Input(_))), "{other:?}");
    // So is more fuel used than given.
    let mut s = host(&[("a", 1, 1, 1_000_000)], 1000, None);
    s.step(Input::Start).unwrap();
    let greedy = s.step(stopped(VhmId(0), 0, 1001, Stop::Preempted));
    assert!(matches!(greedy, Err(HvError::Input(_))), "{greedy:?}");
    // And a preemption that made no progress although the run had the fuel it needed: obeyed,
    // it would run the vCPU again at the same time, forever.
    let mut s = host(&[("a", 1, 1, 1_000_000)], 1000, None);
    s.step(Input::Start).unwrap();
    let stalled = s.step(stopped(VhmId(0), 0, 0, Stop::Preempted));
    assert!(matches!(stalled, Err(HvError::Input(_))), "{stalled:?}");
    // Unless the next instruction needs more than the run had: it runs again with enough.
    let mut s = host(&[("a", 1, 1, 1_000_000)], 1000, None);
    s.step(Input::Start).unwrap();
    let short = s.step(Input::VcpuStopped {
        vhm: VhmId(0),
        vcpu: 0,
        fuel_used: 0,
        stop: Stop::Preempted,
        memory: Some(65536),
        min_fuel: 1500,
    });
    let effects = short.unwrap().into_vec();
    assert!(
        matches!(effects.last(), Some(Effect::RunVcpu { fuel: 1500, .. })),
        "{effects:?}"
    );
}

/// A scripted stop: what the test answers a run with.
#[derive(Debug, Clone, Copy)]
enum Scripted {
    /// Preempted after using this share (of 256) of the fuel given.
    Preempt(u8),
    Yield,
    Time,
    Sleep(u16),
    Return,
}

fn scripted() -> impl Strategy<Value = Scripted> {
    prop_oneof![
        4 => any::<u8>().prop_map(Scripted::Preempt),
        2 => Just(Scripted::Yield),
        1 => Just(Scripted::Time),
        1 => any::<u16>().prop_map(Scripted::Sleep),
        1 => Just(Scripted::Return),
    ]
}

/// What a scripted run did: its effects, its summary, and the fuel its runs reported, in total
/// and for each vCPU's last run, by VHM.
struct Ran {
    effects: Vec<Effect>,
    summary: xdv_hv::RunSummary,
    reported: [u64; 2],
    last: std::collections::BTreeMap<(u32, u32), u64>,
}

/// Drives a two-VHM host through `script` (cycled), checking every invariant after every
/// event.
fn run_script(script: &[Scripted], mut s: State) -> Ran {
    s.check_every_step(true);
    let mut i = 0;
    let mut reported = [0u64; 2];
    let mut last = std::collections::BTreeMap::new();
    let effects = drive(&mut s, Input::Start, |e| match e {
        Effect::RunVcpu {
            vhm, vcpu, fuel, ..
        } => {
            let step = script[i % script.len()];
            i += 1;
            // These calls pass nothing in guest memory: the core decodes them itself.
            let (used, stop) = match step {
                // An engine preempts only once the next instruction does not fit: at least one
                // fuel was used.
                Scripted::Preempt(share) => {
                    ((fuel * u64::from(share) / 256).max(1), Stop::Preempted)
                }
                Scripted::Yield => (3, hc(Hypercall::Yield, 0)),
                Scripted::Time => (3, hc(Hypercall::Time, 0)),
                Scripted::Sleep(d) => (3, hc(Hypercall::Sleep, i64::from(d) * 10)),
                Scripted::Return => (1, Stop::Returned { from_irq: false }),
            };
            let used = used.min(*fuel);
            reported[vhm.0 as usize] += used;
            last.insert((vhm.0, *vcpu), used);
            Some(stopped(*vhm, *vcpu, used, stop))
        }
        _ => None,
    })
    .expect("the scripted run keeps every invariant");
    Ran {
        effects,
        summary: s.summary(),
        reported,
        last,
    }
}

fn hc(call: Hypercall, arg: i64) -> Stop {
    Stop::Hypercall(Request {
        call,
        args: [arg, 0, 0, 0, 0],
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any script keeps every invariant at every event and ends. Each VHM is charged the fuel
    /// its runs reported (the oracle: the scripted inputs summed by VHM), less at most each
    /// vCPU's last run (one that ran ahead of the clock past the VHM's end is never observed,
    /// so never charged), and within its quota. A clone of the state taken before the start
    /// runs the same script to the same effects.
    #[test]
    fn scripted_runs_keep_the_invariants_and_account_every_fuel(
        script in proptest::collection::vec(scripted(), 1..40),
    ) {
        let quotas = [200_000u64, 100_000];
        let s = host(&[("a", 2, 1, quotas[0]), ("b", 1, 2, quotas[1])], 1000, Some(2_000_000));
        let fork = s.clone();
        let ran = run_script(&script, s);
        prop_assert!(matches!(ran.effects.last(), Some(Effect::Finished)));
        for v in 0..2u32 {
            let charged = ran.summary.vhms[v as usize].fuel_used;
            let reported = ran.reported[v as usize];
            let ahead: u64 = ran.last.iter().filter(|((h, _), _)| *h == v).map(|(_, f)| f).sum();
            prop_assert!(charged <= reported, "vhm{v}: charged {charged} of {reported} reported");
            prop_assert!(reported - charged <= ahead, "vhm{v}: {reported} reported, {charged} charged, {ahead} ahead");
            prop_assert!(charged <= quotas[v as usize]);
        }
        let again = run_script(&script, fork);
        prop_assert_eq!(format!("{:?}", ran.effects), format!("{:?}", again.effects));
    }
}
