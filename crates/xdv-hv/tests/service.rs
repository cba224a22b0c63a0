//! A service host's core driven directly: requests at a pause, no engine, no files, no network.
//! An independent model of the tenant's root budget decides which creations must be refused.

use proptest::prelude::*;
use std::collections::BTreeSet;
use xdv_core::event::{EventKind, RequestRefusal, ServiceRequest};
use xdv_core::{Hash32, VhmId};
use xdv_hv::step::ModuleFacts;
use xdv_hv::{Effect, Input, Requested, State};
use xdv_manifest::Manifest;

mod common;
use common::Fake;

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
        ServiceRequest::Upload {
            module: id,
            size: MODULE.len() as u64,
        },
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
        request(&mut s, ServiceRequest::Upload {
            module: id,
            size: MODULE.len() as u64,
        }, Some(MODULE.to_vec()));
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

// ---- whole service sessions on the real engine, recorded and replayed ----

/// Guests a simulated tenant uploads: one that halts, one that computes until its fuel runs
/// out, one that sleeps and wakes.
fn guests() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/guests");
    let sleeper = r#"(module
      (import "xdv" "sleep" (func $sleep (param i64) (result i32)))
      (import "xdv" "time" (func $time (result i64)))
      (memory (export "memory") 1)
      (func (export "main") (local $n i32)
        (loop $l (drop (call $sleep (i64.add (call $time) (i64.const 300000))))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $n) (i32.const 5))))))"#;
    vec![
        wat::parse_file(dir.join("hello.wat")).unwrap(),
        wat::parse_file(dir.join("compute.wat")).unwrap(),
        wat::parse_str(sleeper).unwrap(),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Create { guest: usize, vcpus: u32, fuel: u64 },
    Kill { which: u8 },
    Continue { epochs: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..3, 1u32..3, 10_000u64..3_000_000)
            .prop_map(|(guest, vcpus, fuel)| Step::Create { guest, vcpus, fuel }),
        1 => (0u8..8).prop_map(|which| Step::Kill { which }),
        3 => (1u64..5).prop_map(|epochs| Step::Continue { epochs }),
    ]
}

/// Runs a session of `steps` on a service host with the real engine, recording it to `trace`;
/// the trace's final chain hash.
fn session(steps: &[Step], trace: &std::path::Path) -> Hash32 {
    let text = format!(
        "[host]\nseed = 11\nslice_fuel = 20000\n[serve]\nepoch_ns = 200000\n[[tenant]]\n\
         name = \"t\"\ntoken_hash = \"{}\"\nfuel = 20_000_000\nmemory = \"8 MiB\"\nvcpus = 6\n\
         max_vhms = 4\n",
        "0".repeat(64)
    );
    let p = xdv_hv::HostBuilder::new(&text, "session.toml")
        .prepare()
        .unwrap();
    let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, 11).unwrap();
    hv.check_every_step(true);
    let mut writer = xdv_hv::trace_writer(&p, 11, trace).unwrap();
    let mut table = xdv_trace::TableBuilder::default();
    let mut tee = Tee(&mut writer, &mut table);
    let mut live = xdv_hv::driver::Live(&mut tee);
    let req = |hv: &mut xdv_hv::Hypervisor,
               live: &mut xdv_hv::driver::Live<'_, Tee<'_>>,
               request,
               bytes| {
        let r = Requested {
            tenant: Some(0),
            request,
            bytes,
        };
        hv.drive(live, Input::Request(Box::new(r))).unwrap()
    };
    hv.drive(&mut live, Input::Start).unwrap();
    let ids: Vec<Hash32> = guests()
        .into_iter()
        .map(|g| {
            let id = Hash32::of(&g);
            let size = g.len() as u64;
            req(
                &mut hv,
                &mut live,
                ServiceRequest::Upload { module: id, size },
                Some(g),
            );
            id
        })
        .collect();
    for (n, s) in steps.iter().enumerate() {
        match s {
            Step::Create { guest, vcpus, fuel } => {
                let spec = format!(
                    "[[vhm]]\nname = \"v{n}\"\n[vhm.k]\nvcpus = {vcpus}\nmemory_limit = \"64 KiB\"\n\
                     module = \"{}\"\n[vhm.policy]\nfuel_quota = {fuel}\n",
                    ids[*guest].to_hex()
                );
                req(
                    &mut hv,
                    &mut live,
                    ServiceRequest::Create {
                        spec,
                        module: ids[*guest],
                    },
                    None,
                );
            }
            Step::Kill { which } => {
                let views = hv.state().vhm_views(Some(0));
                let vhm = views
                    .get(*which as usize % views.len().max(1))
                    .map_or(VhmId(u32::MAX), |v| VhmId(v.id));
                req(&mut hv, &mut live, ServiceRequest::Kill { vhm }, None);
            }
            Step::Continue { epochs } => {
                let until = hv.state().now() + epochs * 200_000;
                hv.drive(&mut live, Input::Continue { until_ns: until })
                    .unwrap();
            }
        }
        hv.check_invariants().unwrap();
    }
    let served = req(&mut hv, &mut live, ServiceRequest::Stop, None);
    assert_eq!(served, xdv_hv::Served::Finished);
    let rows = table.finish();
    writer.finish(&rows).unwrap()
}

/// Events to the trace and the Resource_Table.
struct Tee<'a>(
    &'a mut xdv_trace::TraceWriter,
    &'a mut xdv_trace::TableBuilder,
);

impl xdv_core::EventSink for Tee<'_> {
    fn module(&mut self, hash: &Hash32, bytes: &[u8]) -> Result<(), xdv_core::SinkError> {
        self.0.module(hash, bytes)
    }
    fn emit(&mut self, event: &xdv_core::Event) -> Result<(), xdv_core::SinkError> {
        self.1.observe(event);
        self.0.emit(event)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A service session, whatever its requests and their interleaving with the run, records
    /// the same trace twice, and its trace replays identically from the trace alone.
    #[test]
    fn a_service_session_is_deterministic_and_replays(steps in proptest::collection::vec(step(), 1..14)) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.xdv"), dir.path().join("b.xdv"));
        let head = session(&steps, &a);
        prop_assert_eq!(head, session(&steps, &b));
        let report = xdv_hv::replay_trace(&a).unwrap();
        prop_assert!(report.identical(), "{:?}", report.divergence);
        prop_assert_eq!(report.events_matched, report.events_recorded);
        // The start, three uploads, a request per create or kill step, the stop, the finish.
        let requests = steps.iter().filter(|s| !matches!(s, Step::Continue { .. })).count();
        prop_assert!(report.events_recorded >= 6 + requests as u64);
    }
}

/// A refused upload is decided before it is recorded: its bytes never reach the trace (nothing
/// is stored that the tenant is not charged for), and it is replayed without them.
#[test]
fn a_refused_upload_stores_no_bytes() {
    let mut s = service();
    until_pause(&mut s, Input::Start);
    let big = vec![7u8; (TENANT_MEMORY / 2) as usize];
    let id = Hash32::of(&big);
    let r = Requested {
        tenant: Some(0),
        request: ServiceRequest::Upload {
            module: id,
            size: big.len() as u64,
        },
        bytes: Some(big),
    };
    let effects = s.step(Input::Request(Box::new(r))).unwrap().into_vec();
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::StoreModule { .. })));
    assert!(matches!(
        s.last_request(),
        Some(Err(RequestRefusal::OverBudget { what, .. })) if what == "memory"
    ));
    // A replay feeds the recorded request back without bytes: it is refused the same way.
    let mut again = service();
    until_pause(&mut again, Input::Start);
    let r = Requested {
        tenant: Some(0),
        request: ServiceRequest::Upload {
            module: id,
            size: TENANT_MEMORY / 2,
        },
        bytes: None,
    };
    until_pause(&mut again, Input::Request(Box::new(r)));
    assert_eq!(again.last_request(), s.last_request());
}
