//! A service host's core driven directly: requests at a pause, no engine, no files, no network.
//! An independent model of the tenant's root budget decides which creations must be refused.

use proptest::prelude::*;
use std::collections::BTreeSet;
use xdv_core::event::{EventKind, RequestRefusal, ServiceRequest};
use xdv_core::{Hash32, VhmId};
use xdv_hv::modules::Loader;
use xdv_hv::step::ModuleFacts;
use xdv_hv::{Effect, Input, Requested, State};
use xdv_manifest::Manifest;

/// Compiles anything; every module instantiates and has no interrupt handler.
struct Fake;

impl Loader for Fake {
    fn compile(&mut self, _: usize, _: &[u8], _: &str) -> Result<bool, xdv_k::KError> {
        Ok(false)
    }
    fn probe(&mut self, _: usize, _: u64) -> Result<(), xdv_core::refusal::TrapCode> {
        Ok(())
    }
}

const MODULE: &[u8] = b"\0asm stand-in";
const TENANT_FUEL: u64 = 10_000;
const TENANT_MEMORY: u64 = 4 << 20;
const TENANT_VCPUS: u32 = 6;
const TENANT_VHMS: u32 = 3;

/// A service host with one tenant, `t`, and no static VHM.
fn service() -> State {
    let text = format!(
        "[host]\nseed = 3\n[serve]\nepoch_ns = 1000\n[[tenant]]\nname = \"t\"\n\
         token_hash = \"{}\"\nfuel = {TENANT_FUEL}\nmemory = {TENANT_MEMORY}\n\
         vcpus = {TENANT_VCPUS}\nmax_vhms = {TENANT_VHMS}\n",
        "0".repeat(64)
    );
    let manifest = Manifest::parse(&text, "service.toml").expect("valid");
    let mut state = State::new(&manifest, &[], 3, &mut Fake).expect("builds");
    state
        .serve(&manifest.tenants, 1000, "service.toml")
        .expect("serves");
    state.check_every_step(true);
    state
}

/// Feeds `input`, answering module loads, until the core pauses; the events emitted.
fn until_pause(state: &mut State, input: Input) -> Vec<EventKind> {
    let mut input = input;
    let mut events = Vec::new();
    loop {
        let effects = state.step(input).expect("the core accepts it").into_vec();
        let mut next = None;
        for e in effects {
            match e {
                Effect::Emit(ev) => events.push(ev.kind),
                Effect::LoadModule { module, .. } => {
                    next = Some(Input::ModuleLoaded {
                        module,
                        result: Ok(ModuleFacts {
                            has_irq: false,
                            instantiates: Ok(()),
                        }),
                    })
                }
                Effect::Paused { .. } => return events,
                Effect::Finished => panic!("the service finished"),
                _ => {}
            }
        }
        input = next.expect("a step ends paused or awaiting a load");
    }
}

fn request(state: &mut State, request: ServiceRequest, bytes: Option<Vec<u8>>) -> Vec<EventKind> {
    let r = Requested {
        tenant: Some(0),
        request,
        bytes,
    };
    until_pause(state, Input::Request(Box::new(r)))
}

fn spec(name: &str, vcpus: u32, memory_kib: u64, fuel: u64) -> String {
    format!(
        "[[vhm]]\nname = \"{name}\"\n[vhm.k]\nvcpus = {vcpus}\nmemory_limit = \"64 KiB\"\n\
         module = \"{}\"\n[vhm.policy]\nfuel_quota = {fuel}\nmemory_quota = \"{memory_kib} KiB\"\n",
        Hash32::of(MODULE).to_hex()
    )
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        name: u8,
        vcpus: u32,
        extra_kib: u64,
        fuel: u64,
    },
    Kill {
        which: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, 1u32..4, 0u64..1024, 1u64..6000).prop_map(|(name, vcpus, extra_kib, fuel)| {
            Op::Create { name, vcpus, extra_kib, fuel }
        }),
        1 => (0u8..6).prop_map(|which| Op::Kill { which }),
    ]
}

/// The model: what the tenant's VHMs hold, by name.
#[derive(Default)]
struct Model {
    live: Vec<(String, u32, u64, u64)>,
    used_names: BTreeSet<String>,
    held: u64,
}

impl Model {
    fn refusal(&self, name: &str, vcpus: u32, memory: u64, fuel: u64) -> Option<&'static str> {
        if self.used_names.contains(name) {
            return Some("name_taken");
        }
        let (v, m, f) = self
            .live
            .iter()
            .fold((0, 0, 0), |a, l| (a.0 + l.1, a.1 + l.2, a.2 + l.3));
        let fits = self.live.len() < TENANT_VHMS as usize
            && v + vcpus <= TENANT_VCPUS
            && m + memory <= TENANT_MEMORY - self.held
            && f + fuel <= TENANT_FUEL;
        (!fits).then_some("over_budget")
    }
}

#[test]
fn an_upload_and_a_creation_are_recorded_then_what_they_caused() {
    let mut s = service();
    let start = until_pause(&mut s, Input::Start);
    assert!(matches!(start[0], EventKind::HostStarted { vhms: 0, .. }));
    let id = Hash32::of(MODULE);
    let events = request(
        &mut s,
        ServiceRequest::Upload { module: id },
        Some(MODULE.to_vec()),
    );
    assert!(matches!(
        &events[..],
        [EventKind::Request {
            tenant: Some(0),
            ..
        }]
    ));
    let events = request(
        &mut s,
        ServiceRequest::Create {
            spec: spec("w", 1, 192, 100),
            module: id,
        },
        None,
    );
    assert!(matches!(events[0], EventKind::Request { .. }));
    assert!(events
        .iter()
        .any(|e| matches!(e, EventKind::VhmCreated { name, .. } if name == "t:w")));
    assert_eq!(s.last_request(), Some(&Ok(Some(VhmId(0)))));
    assert_eq!(s.find_vhm(Some(0), "w"), Some(VhmId(0)));
    assert_eq!(s.vhm_views(Some(0))[0].name, "w");
    // An unknown module is refused, recorded after the request.
    let other = Hash32::of(b"other");
    let events = request(
        &mut s,
        ServiceRequest::Create {
            spec: spec("x", 1, 192, 100),
            module: other,
        },
        None,
    );
    assert!(matches!(
        &events[..],
        [
            EventKind::Request { .. },
            EventKind::RequestRefused {
                reason: RequestRefusal::NoModule
            }
        ]
    ));
    s.check_invariants().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a tenant asks, a creation is refused exactly when the model says it does not
    /// fit the root budget, and the invariants (tenant budgets included) hold after each one.
    #[test]
    fn creations_fit_the_tenant_budget_exactly(ops in proptest::collection::vec(op(), 1..24)) {
        let mut s = service();
        until_pause(&mut s, Input::Start);
        let id = Hash32::of(MODULE);
        request(&mut s, ServiceRequest::Upload { module: id }, Some(MODULE.to_vec()));
        let mut model = Model {
            held: MODULE.len() as u64 * xdv_hv::modules::MODULE_FOOTPRINT_FACTOR,
            ..Model::default()
        };
        for op in ops {
            match op {
                Op::Create { name, vcpus, extra_kib, fuel } => {
                    let name = format!("v{name}");
                    let memory = u64::from(vcpus) * 64 * 1024 + extra_kib * 1024;
                    let expected = model.refusal(&name, vcpus, memory, fuel);
                    request(&mut s, ServiceRequest::Create { spec: spec(&name, vcpus, memory / 1024, fuel), module: id }, None);
                    let got = s.last_request().cloned().unwrap();
                    match (expected, &got) {
                        (None, Ok(Some(_))) => {
                            model.used_names.insert(name.clone());
                            model.live.push((name, vcpus, memory, fuel));
                        }
                        (Some(code), Err(r)) => prop_assert_eq!(code, r.code()),
                        _ => prop_assert!(false, "model says {:?}, the core {:?}", expected, got),
                    }
                }
                Op::Kill { which } => {
                    let name = format!("v{which}");
                    let live = model.live.iter().position(|l| l.0 == name);
                    let vhm = s.find_vhm(Some(0), &name).unwrap_or(VhmId(u32::MAX));
                    request(&mut s, ServiceRequest::Kill { vhm }, None);
                    let got = s.last_request().cloned().unwrap();
                    match live {
                        Some(i) => {
                            prop_assert_eq!(got, Ok(None));
                            model.live.remove(i);
                        }
                        None => prop_assert_eq!(got, Err(RequestRefusal::NoVhm)),
                    }
                }
            }
            prop_assert_eq!(s.check_invariants(), Ok(()));
            let view = s.tenant_view(0).unwrap();
            prop_assert_eq!(view.vhms_live as usize, model.live.len());
        }
    }
}
