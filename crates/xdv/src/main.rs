//! `xdv`: the command line of the xdv domain hypervisor.
//!
//! Exit codes (the README's table): 0 success; 1 the command ran and found a problem (replay
//! divergence, a trace that fails verification, a faulted VHM under `run --strict`); 2 usage or
//! input error (bad manifest, unreadable trace); 3 `trace verify` on a trace that is intact but
//! cut short.

/// `print!` that ends the process quietly when standard output is a closed pipe (`| head`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// `println!` that ends the process quietly when standard output is a closed pipe.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod cmd;
mod plot;
mod progress;
mod table;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// xdv — a deterministic domain hypervisor for Virtual Hybrid Machines (XDV-014).
#[derive(Parser)]
#[command(name = "xdv", version, about, long_about = None)]
struct Cli {
    /// No progress on stderr (it is drawn only on a terminal anyway).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Diagnostics on stderr: -v info, -vv debug (`RUST_LOG` overrides).
    #[arg(long, short, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ServeCommand {
    /// Print a fresh token and the `token_hash = "…"` line to paste into a config.
    Token,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// The host's version, virtual time and health.
    Host,
    /// Guest modules.
    Module {
        #[command(subcommand)]
        command: CtlModule,
    },
    /// VHMs.
    Vhm {
        #[command(subcommand)]
        command: CtlVhm,
    },
    /// Stream a VHM's events as they are committed.
    Events {
        /// The VHM.
        name: String,
        /// From this trace sequence number.
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Create a channel between two of your VHMs.
    Channel {
        /// End 0.
        a: String,
        /// End 1.
        b: String,
        /// Messages each direction holds.
        #[arg(long, default_value_t = 16)]
        capacity: u32,
    },
    /// Your Resource_Table rows and what is left of your budget.
    Accounting,
}

#[derive(Subcommand)]
enum CtlModule {
    /// Upload a .wasm or .wat file.
    Upload {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum CtlVhm {
    /// Create a VHM from a TOML file holding one [[vhm]] table (a `k.module` file is uploaded).
    Create {
        /// The spec.
        spec: PathBuf,
    },
    /// List your VHMs.
    List,
    /// One VHM.
    Get {
        /// Its name.
        name: String,
    },
    /// Kill a VHM.
    Kill {
        /// Its name.
        name: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run a manifest and record its trace.
    Run {
        /// The manifest (TOML).
        #[arg(required_unless_present = "resume")]
        manifest: Option<PathBuf>,
        /// Continue the run recorded in this trace, cut short when its writer was killed: the
        /// committed events are re-derived and checked, the rest is appended.
        #[arg(long, conflicts_with_all = ["manifest", "trace", "seed", "chaos"])]
        resume: Option<PathBuf>,
        /// Sign the trace when the run finishes with this secret key file (`xdv trace keygen`):
        /// the signature and the public key are stored in the trace.
        #[arg(long, value_name = "KEY")]
        sign_key: Option<PathBuf>,
        /// Inject random faults drawn from this seed (see `[[fault]]` in docs/manifest.md).
        #[arg(long)]
        chaos: Option<u64>,
        /// Where to write the trace (default: <manifest name>.xdv in the current directory).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Seed overriding the manifest's `host.seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Abort the process after N events, as if killed (crash-tolerance tests).
        #[arg(long, hide = true)]
        crash_after: Option<u64>,
        /// Where the guests' `log` lines go as they happen: `stderr` (each prefixed with the
        /// virtual time, the VHM and the vCPU) or `none`.
        #[arg(long, value_enum, default_value_t = cmd::run::Logs::Stderr)]
        logs: cmd::run::Logs,
        /// Exit 1 when any VHM faulted (the run itself exits 0 whenever the host ran to its end).
        #[arg(long)]
        strict: bool,
        /// Print every event on stdout as the host records it (the `trace show` line), before
        /// the summary.
        #[arg(long, conflicts_with = "json")]
        follow: bool,
    },
    /// Validate a manifest and its guest modules without running them.
    Check {
        /// The manifest (TOML).
        manifest: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-execute a trace from the trace alone and compare every event.
    Replay {
        /// The trace file.
        trace: PathBuf,
        /// Run the Q providers and the Φ executor from the trace's seeds instead of injecting
        /// the recorded outcomes and captures, and compare them with the recorded ones.
        #[arg(long)]
        rederive: bool,
        /// With --rederive: accept Φ captures within this many µ of the recorded ones (default
        /// 0: exactly equal).
        #[arg(long, value_name = "MICRO", default_value_t = 0, requires = "rederive")]
        phi_tolerance: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect a trace.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Run and check quantum circuits (OpenQASM 2.0) on the built-in providers.
    Q {
        #[command(subcommand)]
        command: QCommand,
    },
    /// Check a trace against the XDV-014 §12 compliance items it can show (isolation,
    /// deterministic virtualization by replay, nested invariants, replay of the decisions' order,
    /// domains kept apart), with evidence.
    Compliance {
        /// The trace file.
        trace: PathBuf,
        /// Require a valid signature by this public key file.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deterministic simulation testing: random hosts, VHM trees, guests, faults and crashes,
    /// invariants checked after every event, replay, resume and non-interference compared.
    Sim {
        /// How many seeds (at least 1).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the hypervisor as a multi-tenant service with an HTTP/JSON API (docs/serve.md).
    #[command(args_conflicts_with_subcommands = true)]
    Serve {
        #[command(subcommand)]
        command: Option<ServeCommand>,
        /// The service config: a manifest with a [serve] table and [[tenant]] tables.
        #[arg(required_unless_present = "resume")]
        config: Option<PathBuf>,
        /// Listen on this address (default: the config's `[serve] listen`, loopback).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Listen on this Unix socket instead of TCP.
        #[arg(long, value_name = "PATH", conflicts_with = "listen")]
        unix: Option<PathBuf>,
        /// Where to write the trace (default: <config name>.xdv in the current directory).
        #[arg(long, conflicts_with = "resume")]
        trace: Option<PathBuf>,
        /// Continue the service recorded in this trace after a crash (kill -9): its committed
        /// events are re-executed and checked, then it serves on. The config is the one the
        /// trace holds; a CONFIG given too must be that same text.
        #[arg(long, value_name = "TRACE")]
        resume: Option<PathBuf>,
    },
    /// A client of `xdv serve` (XDV_SERVER and XDV_TOKEN set the server and the token).
    Ctl {
        /// The server's base URL.
        #[arg(long, env = "XDV_SERVER", default_value = "http://127.0.0.1:7914")]
        server: String,
        /// The bearer token.
        #[arg(long, env = "XDV_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the answers as JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: CtlCommand,
    },
    /// Run and plot Φ transforms standalone.
    Phi {
        #[command(subcommand)]
        command: PhiCommand,
    },
    /// Print the hypercall ABI table, or generate the SDKs' ABI layers from it.
    Abi {
        /// Print as JSON.
        #[arg(long, conflicts_with_all = ["c_header", "rust"])]
        json: bool,
        /// Print the C header of the ABI (what sdk/c/xdv_abi.h holds).
        #[arg(long, conflicts_with = "rust")]
        c_header: bool,
        /// Print the Rust SDK's raw `sys` module (what sdk/rust/xdv-guest/src/sys.rs holds).
        #[arg(long)]
        rust: bool,
    },
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Check the hash chain and the trace's integrity (and its signature).
    Verify {
        /// The trace file.
        trace: PathBuf,
        /// Require a valid signature by this public key file (`xdv trace keygen` writes it):
        /// exit 1 when the trace is unsigned, cut short, or signed otherwise.
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the events.
    Show {
        /// The trace file.
        trace: PathBuf,
        /// Only the events of this VHM.
        #[arg(long)]
        vhm: Option<String>,
        /// Only events of these kinds, comma-separated (the `kind` of `--json`: `hypercall`,
        /// `fault`, `ipc_delivered`, …).
        #[arg(long, value_delimiter = ',', value_name = "KIND[,KIND]")]
        kind: Vec<String>,
        /// Only events at or after this point: a virtual time in ns (`12000`) or a sequence
        /// number (`seq:40`).
        #[arg(long, value_name = "NS|seq:N")]
        since: Option<cmd::trace::Bound>,
        /// Only events at or before this point: a virtual time in ns or `seq:N`.
        #[arg(long, value_name = "NS|seq:N")]
        until: Option<cmd::trace::Bound>,
        /// Draw the VHM tree (nesting, levels, how each VHM ended) instead of the events.
        #[arg(long, conflicts_with_all = ["vhm", "kind", "since", "until"])]
        tree: bool,
        /// Print JSON Lines (with --tree: one JSON document).
        #[arg(long)]
        json: bool,
        /// Print it even when the trace fails verification (after the warning); without it the
        /// command exits 1 on such a trace and prints nothing of it.
        #[arg(long)]
        force: bool,
    },
    /// Print the Resource_Table.
    Accounting {
        /// The trace file.
        trace: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// Print it even when the trace fails verification (after the warning); without it the
        /// command exits 1 on such a trace and prints nothing of it.
        #[arg(long)]
        force: bool,
    },
    /// Make an Ed25519 key pair for signing traces: the secret key in OUT, the public key in
    /// OUT.pub (neither may exist).
    Keygen {
        /// The secret key file to write.
        out: PathBuf,
    },
    /// Draw what a VHM ran on its Φ windows (its transforms executed again from the texts the
    /// trace holds, with the recorded captures), as SVG or PNG.
    Plot {
        /// The trace file.
        trace: PathBuf,
        /// The VHM.
        #[arg(long)]
        vhm: String,
        /// Output file (default: NAME.svg, or NAME.png with --png, in the current directory).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write a PNG instead of an SVG; also chosen by an output name ending in .png.
        #[arg(long)]
        png: bool,
        /// Draw it even when the trace fails verification (after the warning).
        #[arg(long)]
        force: bool,
    },
    /// Export the events.
    Export {
        /// The trace file.
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Print it even when the trace fails verification (after the warning); without it the
        /// command exits 1 on such a trace and prints nothing of it.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum PhiCommand {
    /// Execute one transform on a window under its contract; print frames, plays and captures.
    Run {
        /// The transform (text form; see docs/phi.md).
        transform: PathBuf,
        #[command(flatten)]
        window: cmd::phi::WindowArgs,
        /// Include every play's samples in the JSON output.
        #[arg(long)]
        samples: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw a transform's envelopes (I and Q per frame), phases and captures, as SVG or PNG.
    Plot {
        /// The transform.
        transform: PathBuf,
        #[command(flatten)]
        window: cmd::phi::WindowArgs,
        /// Output file (default: the transform's path with .svg, or .png with --png).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Write a PNG (rendered from the SVG) instead of an SVG; also chosen by an output
        /// name ending in .png.
        #[arg(long)]
        png: bool,
    },
}

#[derive(Subcommand)]
enum QCommand {
    /// Run a circuit and print the counts of its classical outcomes.
    Run {
        /// The circuit (OpenQASM 2.0).
        circuit: PathBuf,
        /// Shots.
        #[arg(long, default_value_t = 1024)]
        shots: u64,
        /// Seed of the measurement streams.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the exact distribution over the classical bits instead of sampling (circuits
        /// whose measurements are all terminal).
        #[arg(long)]
        probabilities: bool,
        /// The provider: `statevector` (exact, noiseless, f64), `statevector-f32` (the same in
        /// single precision: half the memory, one more qubit) or `density` (thermal relaxation
        /// and readout error of the built-in device; terminal measurements, at most 12 qubits).
        #[arg(long, value_enum, default_value_t = Provider::Statevector)]
        provider: Provider,
        /// Fuse gates into steps of at most K qubits (1 to 5). Results are the same up to
        /// rounding; the default was chosen by measurement.
        #[arg(long, value_name = "K", default_value_t = xdv_q::statevector::DEFAULT_FUSED as u8,
              value_parser = clap::value_parser!(u8).range(1..=5))]
        fusion: u8,
        /// Show only the N most frequent (most probable) outcomes in the text output; `--json`
        /// always has them all.
        #[arg(long, value_name = "N")]
        top: Option<usize>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the built-in providers and their devices.
    Providers {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Parse circuits and report, per file, whether it reads and its size, or the error.
    Check {
        /// The circuits.
        circuits: Vec<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Q providers.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Provider {
    /// Exact state vector, f64.
    Statevector,
    /// Exact state vector, f32.
    #[value(name = "statevector-f32")]
    StatevectorF32,
    /// Density matrix with thermal relaxation and readout error.
    Density,
}

/// Export formats.
#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// One JSON object per event per line.
    Jsonl,
    /// Chrome/Perfetto trace JSON: vCPU runs, Q jobs and Φ windows and transforms on timelines
    /// (open in ui.perfetto.dev).
    Perfetto,
}

/// How a command ended, mapped to the documented exit codes.
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: the command ran and found a problem.
    Problem,
    /// Exit 3: `trace verify` on a trace that is intact but cut short.
    Incomplete,
}

// Long by design: one arm per subcommand, each a call into cmd/.
fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::init(cli.quiet, cli.verbose);
    tracing::debug!(version = env!("CARGO_PKG_VERSION"), "xdv started");
    let result = match cli.command {
        Command::Run {
            resume: Some(trace),
            json,
            crash_after,
            sign_key,
            ..
        } => cmd::run::resume(&trace, json, crash_after, sign_key.as_deref()),
        Command::Run {
            manifest,
            trace,
            seed,
            chaos,
            json,
            crash_after,
            sign_key,
            logs,
            strict,
            follow,
            ..
        } => cmd::run::run(
            &manifest.expect("clap requires a manifest without --resume"),
            trace,
            &cmd::run::RunFlags {
                seed,
                chaos,
                json,
                crash_after,
                logs,
                strict,
                follow,
            },
            sign_key.as_deref(),
        ),
        Command::Check { manifest, json } => cmd::run::check(&manifest, json),
        Command::Replay {
            trace,
            rederive,
            phi_tolerance,
            json,
        } => cmd::run::replay(&trace, rederive, phi_tolerance, json),
        Command::Abi {
            json,
            c_header,
            rust,
        } => cmd::abi::print(json, c_header, rust),
        Command::Q { command } => match command {
            QCommand::Run {
                circuit,
                shots,
                seed,
                probabilities,
                provider,
                fusion,
                top,
                json,
            } => cmd::q::run(
                &circuit,
                &cmd::q::RunArgs {
                    shots,
                    seed,
                    probabilities,
                    provider,
                    fusion: usize::from(fusion),
                    top,
                    as_json: json,
                },
            ),
            QCommand::Providers { json } => cmd::q::providers(json),
            QCommand::Check { circuits, json } => cmd::q::check(&circuits, json),
        },
        Command::Trace { command } => match command {
            TraceCommand::Verify { trace, key, json } => {
                cmd::trace::verify(&trace, key.as_deref(), json)
            }
            TraceCommand::Keygen { out } => cmd::trace::keygen(&out),
            TraceCommand::Show {
                trace,
                tree: true,
                json,
                force,
                ..
            } => cmd::trace::tree(&trace, json, force),
            TraceCommand::Show {
                trace,
                vhm,
                kind,
                since,
                until,
                json,
                force,
                ..
            } => cmd::trace::show(
                &trace,
                &cmd::trace::ShowFilter {
                    vhm: vhm.as_deref(),
                    kinds: &kind,
                    since,
                    until,
                },
                json,
                force,
            ),
            TraceCommand::Accounting { trace, json, force } => {
                cmd::trace::accounting(&trace, json, force)
            }
            TraceCommand::Plot {
                trace,
                vhm,
                output,
                png,
                force,
            } => cmd::trace_plot::plot(&trace, &vhm, output, png, force),
            TraceCommand::Export {
                trace,
                format: ExportFormat::Jsonl,
                output,
                force,
            } => cmd::trace::export_jsonl(&trace, output.as_deref(), force),
            TraceCommand::Export {
                trace,
                format: ExportFormat::Perfetto,
                output,
                force,
            } => cmd::perfetto::export(&trace, output.as_deref(), force),
        },
        Command::Sim { seeds, from, json } => cmd::sim::sim(from, seeds, json),
        Command::Compliance { trace, key, json } => {
            cmd::compliance::compliance(&trace, key.as_deref(), json)
        }
        Command::Serve {
            command: Some(ServeCommand::Token),
            ..
        } => cmd::serve::token(),
        Command::Serve {
            config,
            listen,
            unix,
            trace,
            resume,
            ..
        } => match (&config, &resume) {
            (Some(c), None) => cmd::serve::serve(c, (listen, unix), trace),
            (c, Some(r)) => cmd::serve::serve_resume(r, c.as_deref(), (listen, unix)),
            (None, None) => unreachable!("clap requires a config without --resume"),
        },
        Command::Ctl {
            server,
            token,
            json,
            command,
        } => {
            let c = cmd::ctl::Client::new(server, token);
            match command {
                CtlCommand::Host => cmd::ctl::host(&c, json),
                CtlCommand::Module {
                    command: CtlModule::Upload { file },
                } => cmd::ctl::upload(&c, &file, json),
                CtlCommand::Vhm { command } => match command {
                    CtlVhm::Create { spec } => cmd::ctl::create(&c, &spec, json),
                    CtlVhm::List => cmd::ctl::list(&c, json),
                    CtlVhm::Get { name } => cmd::ctl::get(&c, &name, json),
                    CtlVhm::Kill { name } => cmd::ctl::kill(&c, &name, json),
                },
                CtlCommand::Events { name, since } => cmd::ctl::events(&c, &name, since, json),
                CtlCommand::Channel { a, b, capacity } => {
                    cmd::ctl::channel(&c, &a, &b, capacity, json)
                }
                CtlCommand::Accounting => cmd::ctl::accounting(&c, json),
            }
        }
        Command::Phi { command } => match command {
            PhiCommand::Run {
                transform,
                window,
                samples,
                json,
            } => cmd::phi::run(&transform, &window, samples, json),
            PhiCommand::Plot {
                transform,
                window,
                output,
                png,
            } => cmd::phi::plot(&transform, &window, output, png),
        },
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Problem) => ExitCode::from(1),
        Ok(Outcome::Incomplete) => ExitCode::from(3),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
