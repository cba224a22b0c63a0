//! Transform execution under its contract (DESIGN §7).
//!
//! [`execute`] runs in three steps:
//!
//! 1. **Pre-check**, a static pass over integer bookkeeping only: every frame named is owned by
//!    the window (or created by the transform; `copyframe` may read a frame the window can see,
//!    such as its parent's); every duration and start is on the port's grid; every frame ends
//!    inside the window; every envelope's peak is within the window's cap; every frequency stays
//!    in the window's band; the transform ends within the coherence limit (port T2 from the
//!    window's start); no frame with an undefined phase (after decoherence) is played or
//!    captured before a `set_phase`. The pass also derives what the transform must leave behind:
//!    each frame's clock and its phase θ₀ + Σ f·Δt + Σ shifts, exactly.
//! 2. **Execution**: samples of every play (rotated by the frame's phase), captures (the port's
//!    own signal integrated over the capture, demodulated by the capturing frame, plus noise from
//!    the VHM's stream), frames advanced instruction by instruction.
//! 3. **Post-check**: every frame's phase, frequency and clock equal what the pre-check derived,
//!    bit for bit, and every frame the transform does not name is unchanged.
//!
//! A violation of step 1 refuses the transform before anything changes; the error names the
//! rule and the instruction. Afterwards a stochastic dephasing event may strike, drawn from the
//! VHM's stream with probability duration / T2 (integer parts per million): the window's frames
//! then have undefined phases until `set_phase`.

use crate::envelope::Sample;
use crate::program::{Loc, Program, Stmt};
use crate::units::{amplitude_ppm, Freq, Phase};
use crate::window::{Port, WindowSpec};
use rand_core::RngCore;
use std::collections::BTreeMap;

/// Most samples one play may produce (one per ns: about 1 ms of signal, 16 MiB).
pub const MAX_PLAY_SAMPLES: u64 = 1 << 20;
/// Most samples one transform may produce in all (64 MiB).
pub const MAX_TRANSFORM_SAMPLES: u64 = 1 << 22;

/// A frame: a port, a frequency, an exact phase and a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Frequency.
    pub freq: Freq,
    /// Phase at `clock`.
    pub phase: Phase,
    /// The frame's time, ns.
    pub clock: u64,
    /// `false` after decoherence, until `set_phase`.
    pub defined: bool,
}

impl Frame {
    /// Moves the clock to `t` (not backwards), the phase advancing with the frequency.
    fn advance_to(&mut self, t: u64) {
        if t > self.clock {
            self.phase = self.phase.plus(self.freq.advance(t - self.clock));
            self.clock = t;
        }
    }
}

/// The Φ state of one window: its frames by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    /// What the window was granted.
    pub spec: WindowSpec,
    /// Its frames.
    pub frames: BTreeMap<String, Frame>,
    /// Set by a coherence failure; cleared when a `set_phase` re-prepares the window.
    pub decohered: bool,
    /// Where the coherence limit counts from: the window's start, or the `set_phase` that
    /// re-prepared it after a coherence failure, ns.
    pub coherent_since: u64,
}

impl WindowState {
    /// A window with no frames.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            frames: BTreeMap::new(),
            decohered: false,
            coherent_since: spec.t0,
        }
    }

    /// Marks the window decohered: every frame's phase becomes undefined.
    pub fn decohere(&mut self) {
        self.decohered = true;
        for f in self.frames.values_mut() {
            f.defined = false;
        }
    }

    /// Moves every frame's clock to at least `t` (a child window ended there).
    pub fn barrier_to(&mut self, t: u64) {
        for f in self.frames.values_mut() {
            f.advance_to(t);
        }
    }

    /// The latest clock of the window's frames (its start when it has none).
    pub fn clock(&self) -> u64 {
        self.frames
            .values()
            .map(|f| f.clock)
            .max()
            .unwrap_or(self.spec.t0)
    }
}

/// The rules of the contract: the same codes a trace records for a refused transform
/// (`xdv_core::refusal::PhiRule`), so the executor and the trace name a rule alike.
pub use xdv_core::refusal::PhiRule as Rule;

/// A contract violation: the rule, the instruction, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contract: {rule} at {at}: {detail}")]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// The instruction.
    pub at: Loc,
    /// Details.
    pub detail: String,
}

/// One play: its frame, start and baseband samples (one per ns).
#[derive(Debug, Clone, PartialEq)]
pub struct Played {
    /// The frame.
    pub frame: String,
    /// Start, ns.
    pub start: u64,
    /// The frame's phase at the start (the samples are rotated by it).
    pub phase: Phase,
    /// The envelope's name.
    pub envelope: &'static str,
    /// Samples, rotated by the frame's phase at the start.
    pub samples: Vec<Sample>,
}

/// One capture: integrated I and Q in micro-units of full scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    /// Start, ns.
    pub start: u64,
    /// Duration, ns.
    pub duration: u64,
    /// In-phase, µ.
    pub i: i64,
    /// Quadrature, µ.
    pub q: i64,
}

/// What a transform did.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The earliest start of an instruction, ns.
    pub start: u64,
    /// The latest end, ns: the transform's declared extent is `[start, end)`.
    pub end: u64,
    /// Every play, in order.
    pub plays: Vec<Played>,
    /// Every capture, in order, with the frame's name.
    pub captures: Vec<(String, Captured)>,
    /// Whether a dephasing event struck the window afterwards.
    pub dephased: bool,
    /// The host work it took, in samples: those its plays produced, and those its captures
    /// summed (bounded statically, before it ran).
    pub work: u64,
}

/// What the transform may see besides its window.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The window's port.
    pub port: &'a Port,
    /// Frames `copyframe` may read (the parent window's), by name.
    pub visible: &'a BTreeMap<String, Frame>,
    /// Frames do not start before this time (the caller's clock), ns.
    pub now: u64,
    /// Intervals delegated to windows nested in this one: nothing plays or captures there.
    pub delegated: &'a [(u64, u64)],
    /// Most samples the transform's plays may produce in all: what the caller can pay for (the
    /// hypervisor: the VHM's memory and fuel), at most [`MAX_TRANSFORM_SAMPLES`].
    pub max_samples: u64,
}

fn align_up(t: u64, g: u64) -> u64 {
    t.div_ceil(g) * g
}

fn violation(rule: Rule, at: Loc, detail: impl Into<String>) -> Violation {
    Violation {
        rule,
        at,
        detail: detail.into(),
    }
}

/// Frames as the pre-check derives them.
type Derived = BTreeMap<String, Frame>;

/// What the pre-check derives: the frames left behind, the extent, and where the coherence
/// clock restarts if a `set_phase` re-prepares a decohered window.
struct Plan {
    frames: Derived,
    start: u64,
    end: u64,
    restart: Option<u64>,
    work: u64,
}

/// Most frames a window holds (its own and those transforms added): each is host memory.
pub const MAX_FRAMES_PER_WINDOW: usize = 256;

/// The static pass: checks the contract and derives the frames the transform must leave behind,
/// with its extent.
fn pre_check(program: &Program, w: &WindowState, cx: &Context) -> Result<Plan, Violation> {
    let spec = w.spec;
    let g = cx.port.granularity_ns.max(1);
    let opens = align_up(cx.now.max(spec.t0), g);
    let mut frames: Derived = BTreeMap::new();
    let mut start = u64::MAX;
    let mut end = 0u64;
    let in_band = |f: Freq| f >= spec.band.0 && f <= spec.band.1;
    let freq_of = |hz: f64, at: Loc| {
        Freq::from_hz(hz)
            .ok_or_else(|| violation(Rule::Band, at, format!("{hz} Hz is not a frequency")))
    };
    let mut limit = w.coherent_since.saturating_add(cx.port.t2_ns);
    let mut restart = None;
    let mut samples = 0u64;
    // Host work beyond the samples: each capture sums the samples of the plays it overlaps.
    let (mut plays, mut capture_work) = (0u64, 0u64);
    let over_budget = |at: Loc, total: u64| {
        violation(
            Rule::Size,
            at,
            format!(
                "the plays produce {total} samples so far, more than the {} the VHM's budget pays for",
                cx.max_samples
            ),
        )
    };
    for (stmt, at) in &program.stmts {
        let at = *at;
        // Fetch (or catch up) the frames the statement names.
        let get = |name: &str, frames: &mut Derived| -> Result<(), Violation> {
            if frames.contains_key(name) {
                return Ok(());
            }
            let f = w.frames.get(name).copied().ok_or_else(|| {
                violation(
                    Rule::Ownership,
                    at,
                    format!("no frame `{name}` in this window"),
                )
            })?;
            let mut f = f;
            f.advance_to(opens);
            frames.insert(name.to_string(), f);
            Ok(())
        };
        let mut timed = |name: &str, d: u64, frames: &mut Derived| -> Result<(), Violation> {
            if d % g != 0 {
                return Err(violation(
                    Rule::Alignment,
                    at,
                    format!("{d} ns is not a multiple of the port's {g} ns"),
                ));
            }
            let f = frames.get_mut(name).expect("fetched");
            if f.clock % g != 0 {
                return Err(violation(
                    Rule::Alignment,
                    at,
                    format!("frame `{name}` is at {} ns, off the {g} ns grid", f.clock),
                ));
            }
            let e = f.clock.saturating_add(d);
            if e > spec.t1 {
                return Err(violation(
                    Rule::Fit,
                    at,
                    format!(
                        "`{name}` would run to {e} ns, past the window's end {} ns",
                        spec.t1
                    ),
                ));
            }
            if e > limit {
                return Err(violation(
                    Rule::Coherence,
                    at,
                    format!(
                        "`{name}` would run to {e} ns, past the coherence limit {limit} ns (T2 {} ns after the window opened or was re-prepared)",
                        cx.port.t2_ns
                    ),
                ));
            }
            start = start.min(f.clock);
            end = end.max(e);
            f.advance_to(e);
            Ok(())
        };
        match stmt {
            Stmt::NewFrame {
                name,
                port,
                freq,
                phase,
            } => {
                if *port != cx.port.name {
                    return Err(violation(
                        Rule::Port,
                        at,
                        format!("the window is on port `{}`, not `{port}`", cx.port.name),
                    ));
                }
                let f = freq_of(*freq, at)?;
                if !in_band(f) {
                    return Err(band(at, f, &spec));
                }
                frames.insert(
                    name.clone(),
                    Frame {
                        freq: f,
                        phase: Phase::from_radians(*phase),
                        clock: opens,
                        defined: true,
                    },
                );
            }
            Stmt::CopyFrame { name, src } => {
                let mut f = match frames.get(src).or(w.frames.get(src)) {
                    Some(f) => *f,
                    None => *cx.visible.get(src).ok_or_else(|| {
                        violation(Rule::Ownership, at, format!("no frame `{src}` to copy"))
                    })?,
                };
                if !in_band(f.freq) {
                    return Err(band(at, f.freq, &spec));
                }
                f.advance_to(opens);
                frames.insert(name.clone(), f);
            }
            Stmt::Play { frame, envelope } => {
                get(frame, &mut frames)?;
                if !frames[frame].defined {
                    return Err(undefined(at, frame));
                }
                delegated(at, frame, frames[frame].clock, envelope.duration(), cx)?;
                let d = envelope.duration();
                samples = samples.saturating_add(d);
                plays += 1;
                if samples.saturating_add(capture_work) > cx.max_samples
                    && d <= MAX_PLAY_SAMPLES
                    && samples <= MAX_TRANSFORM_SAMPLES
                {
                    return Err(over_budget(at, samples));
                }
                if d > MAX_PLAY_SAMPLES || samples > MAX_TRANSFORM_SAMPLES {
                    return Err(violation(
                        Rule::Size,
                        at,
                        format!(
                            "plays produce one sample per ns: at most {MAX_PLAY_SAMPLES} per play and {MAX_TRANSFORM_SAMPLES} per transform (this play {d}, the transform {samples} so far)"
                        ),
                    ));
                }
                match envelope.peak_ppm() {
                    Some(peak) if peak <= spec.max_amp => {}
                    peak => {
                        return Err(violation(
                            Rule::Amplitude,
                            at,
                            format!(
                                "{} peaks at {}, above the window's cap {} ppm",
                                envelope.name(),
                                peak.map_or("more than full scale".to_string(), |p| format!(
                                    "{p} ppm"
                                )),
                                spec.max_amp
                            ),
                        ));
                    }
                }
                timed(frame, envelope.duration(), &mut frames)?;
            }
            Stmt::Delay {
                duration,
                frames: names,
            } => {
                for n in names {
                    get(n, &mut frames)?;
                    timed(n, *duration, &mut frames)?;
                }
            }
            Stmt::Capture { frame, duration } => {
                get(frame, &mut frames)?;
                if !frames[frame].defined {
                    return Err(undefined(at, frame));
                }
                delegated(at, frame, frames[frame].clock, *duration, cx)?;
                timed(frame, *duration, &mut frames)?;
                capture_work = capture_work
                    .saturating_add(plays)
                    .saturating_add(plays.saturating_mul(*duration).min(samples));
                if samples.saturating_add(capture_work) > cx.max_samples {
                    return Err(violation(
                        Rule::Size,
                        at,
                        format!(
                            "the plays and captures take {} samples of work so far, more than the {} the VHM's budget pays for",
                            samples.saturating_add(capture_work),
                            cx.max_samples
                        ),
                    ));
                }
            }
            Stmt::Barrier { frames: names } => {
                for n in names {
                    get(n, &mut frames)?;
                }
                let t = names.iter().map(|n| frames[n].clock).max().unwrap_or(0);
                for n in names {
                    let d = t - frames[n].clock;
                    timed(n, d, &mut frames)?;
                }
            }
            Stmt::ShiftPhase { frame, by } => {
                get(frame, &mut frames)?;
                let f = frames.get_mut(frame).expect("fetched");
                f.phase = f.phase.plus(Phase::from_radians(*by));
            }
            Stmt::SetPhase { frame, to } => {
                get(frame, &mut frames)?;
                let f = frames.get_mut(frame).expect("fetched");
                f.phase = Phase::from_radians(*to);
                f.defined = true;
                if w.decohered && restart.is_none() {
                    // Re-preparing a decohered window restarts its coherence clock.
                    restart = Some(f.clock);
                    limit = f.clock.saturating_add(cx.port.t2_ns);
                }
            }
            Stmt::ShiftFrequency { frame, by } => {
                get(frame, &mut frames)?;
                let by = freq_of(*by, at)?;
                let f = frames.get_mut(frame).expect("fetched");
                let nf = Freq(f.freq.0.saturating_add(by.0));
                if !in_band(nf) {
                    return Err(band(at, nf, &spec));
                }
                f.freq = nf;
            }
            Stmt::SetFrequency { frame, to } => {
                get(frame, &mut frames)?;
                let nf = freq_of(*to, at)?;
                if !in_band(nf) {
                    return Err(band(at, nf, &spec));
                }
                frames.get_mut(frame).expect("fetched").freq = nf;
            }
        }
    }
    if start == u64::MAX {
        start = opens;
        end = opens;
    }
    let held = w.frames.len() + frames.keys().filter(|n| !w.frames.contains_key(*n)).count();
    if held > MAX_FRAMES_PER_WINDOW {
        return Err(violation(
            Rule::Size,
            Loc::default(),
            format!("the window would hold {held} frames, more than {MAX_FRAMES_PER_WINDOW}"),
        ));
    }
    Ok(Plan {
        frames,
        start,
        end,
        restart,
        work: samples.saturating_add(capture_work),
    })
}

fn band(at: Loc, f: Freq, spec: &WindowSpec) -> Violation {
    violation(
        Rule::Band,
        at,
        format!(
            "{} Hz is outside the window's band [{}, {}] Hz",
            f.0, spec.band.0 .0, spec.band.1 .0
        ),
    )
}

/// A play or capture on `[t, t + d)` must stay out of the intervals delegated to nested windows.
fn delegated(at: Loc, frame: &str, t: u64, d: u64, cx: &Context) -> Result<(), Violation> {
    match cx.delegated.iter().find(|(a, b)| t < *b && *a < t.saturating_add(d)) {
        Some((a, b)) => Err(violation(
            Rule::Delegated,
            at,
            format!(
                "`{frame}` would act on [{t}, {}) ns, inside [{a}, {b}) ns delegated to a nested window",
                t.saturating_add(d)
            ),
        )),
        None => Ok(()),
    }
}

fn undefined(at: Loc, frame: &str) -> Violation {
    violation(
        Rule::Decohered,
        at,
        format!("`{frame}` has no defined phase since its window decohered; set_phase it first"),
    )
}

/// A noise sample in micro-units: the sum of 12 uniform draws in [−1000, 1000] (variance 4·10⁶,
/// close to normal), integer arithmetic only.
fn noise(rng: &mut impl RngCore) -> i64 {
    (0..12).map(|_| (rng.next_u64() % 2001) as i64 - 1000).sum()
}

/// What runs transforms under the contract: the seam where another pulse back end plugs in.
/// The hypervisor holds one and asks it for each `phi_exec`; the built-in one is [`Builtin`]
/// ([`execute`]: exact phase accounting, envelopes sampled and captures integrated on the host).
/// An executor must be deterministic: the same program, window state, context and random
/// stream give the same execution, except for the captures, which the driver may replace with
/// measured ones.
pub trait Executor: Send + Sync {
    /// Executes `program` on the window whose state is `w`, as [`execute`] does.
    ///
    /// # Errors
    ///
    /// The contract's [`Violation`] when the program breaks it.
    fn execute(
        &self,
        program: &Program,
        w: &mut WindowState,
        cx: &Context,
        rng: &mut dyn RngCore,
    ) -> Result<Execution, Violation>;
}

/// The built-in executor: [`execute`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl Executor for Builtin {
    fn execute(
        &self,
        program: &Program,
        w: &mut WindowState,
        cx: &Context,
        mut rng: &mut dyn RngCore,
    ) -> Result<Execution, Violation> {
        execute(program, w, cx, &mut rng)
    }
}

/// Checks, executes and post-checks `program` on window `w`. On a violation nothing changes.
pub fn execute(
    program: &Program,
    w: &mut WindowState,
    cx: &Context,
    rng: &mut impl RngCore,
) -> Result<Execution, Violation> {
    let Plan {
        frames: derived,
        start,
        end,
        restart,
        work,
    } = pre_check(program, w, cx)?;
    let g = cx.port.granularity_ns.max(1);
    let opens = align_up(cx.now.max(w.spec.t0), g);
    let untouched: Vec<(String, Frame)> = w
        .frames
        .iter()
        .filter(|(n, _)| !derived.contains_key(*n))
        .map(|(n, f)| (n.clone(), *f))
        .collect();
    let mut frames: BTreeMap<String, Frame> = BTreeMap::new();
    let mut plays = Vec::new();
    let mut captures = Vec::new();
    let take = |name: &str, frames: &mut BTreeMap<String, Frame>| {
        if !frames.contains_key(name) {
            let mut f = w.frames[name];
            f.advance_to(opens);
            frames.insert(name.to_string(), f);
        }
    };
    for (stmt, _) in &program.stmts {
        match stmt {
            Stmt::NewFrame {
                name, freq, phase, ..
            } => {
                frames.insert(
                    name.clone(),
                    Frame {
                        freq: Freq::from_hz(*freq).expect("checked"),
                        phase: Phase::from_radians(*phase),
                        clock: opens,
                        defined: true,
                    },
                );
            }
            Stmt::CopyFrame { name, src } => {
                let mut f = frames
                    .get(src)
                    .or(w.frames.get(src))
                    .or(cx.visible.get(src))
                    .copied()
                    .expect("checked");
                f.advance_to(opens);
                frames.insert(name.clone(), f);
            }
            Stmt::Play { frame, envelope } => {
                take(frame, &mut frames);
                let f = frames.get_mut(frame).expect("taken");
                let theta = f.phase.radians();
                let mut samples = Vec::with_capacity(envelope.duration() as usize);
                envelope.samples_into((theta.cos(), theta.sin()), &mut samples);
                plays.push(Played {
                    frame: frame.clone(),
                    start: f.clock,
                    phase: f.phase,
                    envelope: envelope.name(),
                    samples,
                });
                let e = f.clock + envelope.duration();
                f.advance_to(e);
            }
            Stmt::Delay {
                duration,
                frames: names,
            } => {
                for n in names {
                    take(n, &mut frames);
                    let f = frames.get_mut(n).expect("taken");
                    let e = f.clock + duration;
                    f.advance_to(e);
                }
            }
            Stmt::Barrier { frames: names } => {
                for n in names {
                    take(n, &mut frames);
                }
                let t = names.iter().map(|n| frames[n].clock).max().unwrap_or(0);
                for n in names {
                    frames.get_mut(n).expect("taken").advance_to(t);
                }
            }
            Stmt::Capture { frame, duration } => {
                take(frame, &mut frames);
                let f = frames.get_mut(frame).expect("taken");
                let (c0, c1) = (f.clock, f.clock + duration);
                // The port's own signal over the capture: this transform's plays.
                let (mut si, mut sq) = (0.0, 0.0);
                for p in &plays {
                    let p1 = p.start + p.samples.len() as u64;
                    let (a, b) = (p.start.max(c0), p1.min(c1));
                    for s in p
                        .samples
                        .iter()
                        .take((b.saturating_sub(p.start)) as usize)
                        .skip(a.saturating_sub(p.start) as usize)
                    {
                        si += s.0;
                        sq += s.1;
                    }
                }
                // Demodulate by the capturing frame's phase, average over the capture.
                let theta = f.phase.radians();
                let (c, s) = (theta.cos(), theta.sin());
                let n = (*duration).max(1) as f64;
                let (i, q) = ((si * c + sq * s) / n, (sq * c - si * s) / n);
                captures.push((
                    frame.clone(),
                    Captured {
                        start: c0,
                        duration: *duration,
                        i: (i * 1e6).round() as i64 + noise(rng),
                        q: (q * 1e6).round() as i64 + noise(rng),
                    },
                ));
                f.advance_to(c1);
            }
            Stmt::ShiftPhase { frame, by } => {
                take(frame, &mut frames);
                let f = frames.get_mut(frame).expect("taken");
                f.phase = f.phase.plus(Phase::from_radians(*by));
            }
            Stmt::SetPhase { frame, to } => {
                take(frame, &mut frames);
                let f = frames.get_mut(frame).expect("taken");
                f.phase = Phase::from_radians(*to);
                f.defined = true;
            }
            Stmt::ShiftFrequency { frame, by } => {
                take(frame, &mut frames);
                let f = frames.get_mut(frame).expect("taken");
                f.freq = Freq(
                    f.freq
                        .0
                        .saturating_add(Freq::from_hz(*by).expect("checked").0),
                );
            }
            Stmt::SetFrequency { frame, to } => {
                take(frame, &mut frames);
                frames.get_mut(frame).expect("taken").freq = Freq::from_hz(*to).expect("checked");
            }
        }
    }
    // Post-check: the executed frames are exactly the derived ones.
    if frames != derived {
        let name = derived
            .keys()
            .find(|k| frames.get(*k) != derived.get(*k))
            .cloned()
            .unwrap_or_default();
        return Err(violation(
            Rule::Accounting,
            Loc::default(),
            format!(
                "frame `{name}`: executed {:?}, declared {:?}",
                frames.get(&name),
                derived.get(&name)
            ),
        ));
    }
    w.frames.extend(frames);
    if let Some(t) = restart {
        w.coherent_since = t;
        w.decohered = w.frames.values().any(|f| !f.defined);
    }
    for (n, f) in &untouched {
        if w.frames.get(n) != Some(f) {
            return Err(violation(
                Rule::Accounting,
                Loc::default(),
                format!("frame `{n}` changed although the transform does not name it"),
            ));
        }
    }
    // Stochastic dephasing: probability duration / T2, in integer ppm.
    let t2 = cx.port.t2_ns.max(1);
    let p_ppm = (u128::from(end - start) * 1_000_000 / u128::from(t2)).min(1_000_000) as u64;
    let dephased = p_ppm > 0 && rng.next_u64() % 1_000_000 < p_ppm;
    if dephased {
        w.decohere();
    }
    Ok(Execution {
        start,
        end,
        plays,
        captures,
        dephased,
        work,
    })
}

/// The amplitude cap check used for requests: `amp` within `cap`.
pub fn within_cap(amp: f64, cap: u32) -> bool {
    amplitude_ppm(amp).is_some_and(|a| a <= cap)
}
