//! The hypercall ABI from a hostile guest: the input is a program of hypercalls (each a call
//! number and five arguments) that a generated guest issues in order, on a host with a Q
//! container, a Φ window and a channel. Every call that cannot park forever is drawn from
//! (`sleep`, `vhm_wait`, `ipc_recv` and `q_wait` are left out, and `vcpu_id`/`vcpu_count` have
//! nothing to get wrong). The hypervisor must refuse what is bad, keep every invariant after
//! every event, and never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xdv_hv::prepare;

fuzz_target!(|data: &[u8]| {
    let calls = xdv_k_calls();
    let mut body = String::new();
    for chunk in data.chunks(21).take(64) {
        if chunk.len() < 21 {
            break;
        }
        let (name, params) = &calls[chunk[0] as usize % calls.len()];
        let mut args = Vec::new();
        for (i, p) in params.iter().enumerate() {
            let raw = u32::from_le_bytes(chunk[1 + 4 * i..5 + 4 * i].try_into().unwrap());
            // Small values reach real handles, pointers and vectors more often.
            let v = if raw & 0x8000_0000 == 0 { raw % 4096 } else { raw };
            args.push(if *p == "i64" { format!("(i64.const {v})") } else { format!("(i32.const {v})") });
        }
        let call = format!("(call ${name} {})", args.join(" "));
        let has_result = !matches!(*name, "exit" | "yield");
        body += &if has_result { format!("(drop {call})\n") } else { format!("{call}\n") };
    }
    let imports: String = calls
        .iter()
        .map(|(n, p)| {
            let ps = if p.is_empty() { String::new() } else { format!("(param {})", p.join(" ")) };
            let r = match *n {
                "exit" | "yield" => "",
                "time" | "random" | "cap_derive" | "cap_find" | "vhm_spawn" | "vhm_wait" | "ipc_recv" | "q_info" | "q_submit" | "q_result" | "phi_window" | "phi_exec" => "(result i64)",
                _ => "(result i32)",
            };
            format!("(import \"xdv\" \"{n}\" (func ${n} {ps} {r}))\n")
        })
        .collect();
    let wat = format!("(module\n{imports}(memory (export \"memory\") 1)\n(func (export \"main\")\n{body}))");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("g.wat"), wat).expect("write");
    let manifest = "[host]\ntime_limit_ns = 2_000_000\n[[host.phi.port]]\nname = \"q0\"\nband = [4e9, 6e9]\nt2_ns = 100_000\n\
        [[vhm]]\nname = \"g\"\n[vhm.k]\nmodule = \"g.wat\"\nirq_vectors = 4\n[vhm.q]\ndevice = \"noisy-line\"\nqubits = 2\n\
        [[vhm.phi.window]]\nport = \"q0\"\nstart_ns = 0\nend_ns = 100_000\n\
        [vhm.policy]\nmax_depth = 2\nmax_vcpus = 4\nmemory_quota = \"4 MiB\"\ncreate_channels = true\n\
        [[vhm]]\nname = \"peer\"\n[vhm.k]\nmodule = \"g.wat\"\n[[channel]]\nends = [\"g\", \"peer\"]\n";
    std::fs::write(dir.path().join("m.toml"), manifest).expect("write");
    let Ok(p) = prepare(&dir.path().join("m.toml")) else { return };
    let mut hv = xdv_hv::Hypervisor::new(&p.manifest, &p.modules, 1).expect("prepared");
    hv.check_every_step(true);
    let mut sink = xdv_core::MemorySink::default();
    match hv.run(&mut sink) {
        Ok(_) => {}
        Err(xdv_hv::HvError::Invariant { message, .. }) => panic!("invariant: {message}"),
        Err(e) => panic!("{e}"),
    }
});

/// Every hypercall's import name and parameter types.
fn xdv_k_calls() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("log", vec!["i32", "i32"]),
        ("exit", vec!["i32"]),
        ("yield", vec![]),
        ("time", vec![]),
        ("random", vec![]),
        ("timer_set", vec!["i64"]),
        ("irq_send", vec!["i32", "i32", "i64"]),
        ("cap_derive", vec!["i64", "i32", "i64"]),
        ("cap_revoke", vec!["i64"]),
        ("cap_drop", vec!["i64"]),
        ("cap_info", vec!["i64", "i32"]),
        ("cap_find", vec!["i32", "i32"]),
        ("vhm_spawn", vec!["i32", "i32"]),
        ("vhm_kill", vec!["i64"]),
        ("policy_set", vec!["i32", "i32"]),
        ("ipc_channel", vec!["i32", "i32"]),
        ("ipc_send", vec!["i64", "i32", "i32", "i64", "i32"]),
        ("q_info", vec!["i64", "i32"]),
        ("q_submit", vec!["i64", "i32", "i32", "i64", "i32"]),
        ("q_result", vec!["i64", "i32", "i32"]),
        ("phi_window", vec!["i32", "i32"]),
        ("phi_exec", vec!["i64", "i32", "i32", "i32", "i32"]),
        ("phi_frame", vec!["i64", "i32", "i32", "i32"]),
        ("phi_release", vec!["i64"]),
    ]
}
