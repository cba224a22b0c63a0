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

use crate::envelope::{Envelope, Sample};
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

/// The port's grid, ns: its granularity, at least 1.
fn grid(cx: &Context) -> u64 {
    cx.port.granularity_ns.max(1)
}

/// Where the transform's frames start: the later of the caller's clock and the window's start,
/// rounded up to the port's grid.
fn opening(spec: &WindowSpec, cx: &Context) -> u64 {
    align_up(cx.now.max(spec.t0), grid(cx))
}

/// `hz` as a frequency, or a band violation when it is none.
fn freq_of(hz: f64, at: Loc) -> Result<Freq, Violation> {
    Freq::from_hz(hz)
        .ok_or_else(|| violation(Rule::Band, at, format!("{hz} Hz is not a frequency")))
}

/// The static pass: checks the contract and derives the frames the transform must leave behind,
/// with its extent.
fn pre_check(program: &Program, w: &WindowState, cx: &Context) -> Result<Plan, Violation> {
    let mut check = Checker::new(w, cx);
    for (stmt, at) in &program.stmts {
        check.stmt(stmt, *at)?;
    }
    check.finish()
}

/// The pre-check's running state, shared by its per-statement steps: what the window and its
/// context allow, and the frames, extent, coherence limit and work derived so far.
struct Checker<'a> {
    /// The window checked against.
    w: &'a WindowState,
    /// What the transform may see besides its window.
    cx: &'a Context<'a>,
    /// The window's grant.
    spec: WindowSpec,
    /// The port's grid, ns.
    g: u64,
    /// Where the transform's frames start, ns.
    opens: u64,
    /// The frames derived so far.
    frames: Derived,
    /// The earliest start of a timed instruction so far (`u64::MAX` before the first), ns.
    start: u64,
    /// The latest end so far, ns.
    end: u64,
    /// The coherence limit: T2 after the window opened or was re-prepared, ns.
    limit: u64,
    /// Where the coherence clock restarts, once a `set_phase` re-prepares a decohered window.
    restart: Option<u64>,
    /// Samples the plays produce so far.
    samples: u64,
    /// Plays so far.
    plays: u64,
    /// Host work beyond the samples: each capture sums the samples of the plays it overlaps.
    capture_work: u64,
}

/// The latest clock among the frames `names` (all present in `frames`); 0 for none.
fn latest_clock(frames: &Derived, names: &[String]) -> u64 {
    names.iter().map(|n| frames[n].clock).max().unwrap_or(0)
}

impl<'a> Checker<'a> {
    /// A pre-check of a transform on `w`, nothing derived yet.
    fn new(w: &'a WindowState, cx: &'a Context<'a>) -> Self {
        Self {
            w,
            cx,
            spec: w.spec,
            g: grid(cx),
            opens: opening(&w.spec, cx),
            frames: BTreeMap::new(),
            start: u64::MAX,
            end: 0,
            limit: w.coherent_since.saturating_add(cx.port.t2_ns),
            restart: None,
            samples: 0,
            plays: 0,
            capture_work: 0,
        }
    }

    /// Checks one statement and derives its effect on the frames.
    fn stmt(&mut self, stmt: &Stmt, at: Loc) -> Result<(), Violation> {
        match stmt {
            Stmt::NewFrame {
                name,
                port,
                freq,
                phase,
            } => self.new_frame(name, port, *freq, *phase, at),
            Stmt::CopyFrame { name, src } => self.copy_frame(name, src, at),
            Stmt::Play { frame, envelope } => self.play(frame, envelope, at),
            Stmt::Delay {
                duration,
                frames: names,
            } => self.delay(names, *duration, at),
            Stmt::Capture { frame, duration } => self.capture(frame, *duration, at),
            Stmt::Barrier { frames: names } => self.barrier(names, at),
            Stmt::ShiftPhase { frame, by } => {
                let f = self.fetch(frame, at)?;
                f.phase = f.phase.plus(Phase::from_radians(*by));
                Ok(())
            }
            Stmt::SetPhase { frame, to } => self.set_phase(frame, *to, at),
            Stmt::ShiftFrequency { frame, by } => self.shift_frequency(frame, *by, at),
            Stmt::SetFrequency { frame, to } => {
                self.fetch(frame, at)?;
                let nf = freq_of(*to, at)?;
                self.in_band(nf, at)?;
                self.frames.get_mut(frame).expect("fetched").freq = nf;
                Ok(())
            }
        }
    }

    /// Closes the pass: a transform that times nothing has an empty extent at the opening, and
    /// the window must not end up holding too many frames.
    fn finish(self) -> Result<Plan, Violation> {
        let (mut start, mut end) = (self.start, self.end);
        if start == u64::MAX {
            start = self.opens;
            end = self.opens;
        }
        let w = self.w;
        let held = w.frames.len()
            + self
                .frames
                .keys()
                .filter(|n| !w.frames.contains_key(*n))
                .count();
        if held > MAX_FRAMES_PER_WINDOW {
            return Err(violation(
                Rule::Size,
                Loc::default(),
                format!("the window would hold {held} frames, more than {MAX_FRAMES_PER_WINDOW}"),
            ));
        }
        Ok(Plan {
            frames: self.frames,
            start,
            end,
            restart: self.restart,
            work: self.samples.saturating_add(self.capture_work),
        })
    }

    /// The frame `name` as derived so far; the first time the transform names it, it is
    /// fetched from the window and caught up to the opening.
    fn fetch(&mut self, name: &str, at: Loc) -> Result<&mut Frame, Violation> {
        if !self.frames.contains_key(name) {
            let mut f = self.w.frames.get(name).copied().ok_or_else(|| {
                violation(
                    Rule::Ownership,
                    at,
                    format!("no frame `{name}` in this window"),
                )
            })?;
            f.advance_to(self.opens);
            self.frames.insert(name.to_string(), f);
        }
        Ok(self.frames.get_mut(name).expect("fetched"))
    }

    /// `f` must lie in the window's band.
    fn in_band(&self, f: Freq, at: Loc) -> Result<(), Violation> {
        if f >= self.spec.band.0 && f <= self.spec.band.1 {
            Ok(())
        } else {
            Err(band(at, f, &self.spec))
        }
    }

    /// Runs the fetched frame `name` for `d` ns: `d` and its clock on the grid, its end inside
    /// the window and the coherence limit; the extent grows to cover it.
    fn timed(&mut self, name: &str, d: u64, at: Loc) -> Result<(), Violation> {
        let g = self.g;
        if !d.is_multiple_of(g) {
            return Err(violation(
                Rule::Alignment,
                at,
                format!("{d} ns is not a multiple of the port's {g} ns"),
            ));
        }
        let f = self.frames.get_mut(name).expect("fetched");
        if !f.clock.is_multiple_of(g) {
            return Err(violation(
                Rule::Alignment,
                at,
                format!("frame `{name}` is at {} ns, off the {g} ns grid", f.clock),
            ));
        }
        let e = f.clock.saturating_add(d);
        if e > self.spec.t1 {
            return Err(violation(
                Rule::Fit,
                at,
                format!(
                    "`{name}` would run to {e} ns, past the window's end {} ns",
                    self.spec.t1
                ),
            ));
        }
        let limit = self.limit;
        if e > limit {
            return Err(violation(
                Rule::Coherence,
                at,
                format!(
                    "`{name}` would run to {e} ns, past the coherence limit {limit} ns (T2 {} ns after the window opened or was re-prepared)",
                    self.cx.port.t2_ns
                ),
            ));
        }
        self.start = self.start.min(f.clock);
        self.end = self.end.max(e);
        f.advance_to(e);
        Ok(())
    }

    /// `newframe`: on the window's port, its frequency in band; it starts at the opening.
    fn new_frame(
        &mut self,
        name: &str,
        port: &str,
        freq: f64,
        phase: f64,
        at: Loc,
    ) -> Result<(), Violation> {
        if port != self.cx.port.name {
            return Err(violation(
                Rule::Port,
                at,
                format!(
                    "the window is on port `{}`, not `{port}`",
                    self.cx.port.name
                ),
            ));
        }
        let f = freq_of(freq, at)?;
        self.in_band(f, at)?;
        self.frames.insert(
            name.to_string(),
            Frame {
                freq: f,
                phase: Phase::from_radians(phase),
                clock: self.opens,
                defined: true,
            },
        );
        Ok(())
    }

    /// `copyframe`: the source is a frame derived so far, the window's or a visible one; its
    /// frequency must be in band, and the copy is caught up to the opening.
    fn copy_frame(&mut self, name: &str, src: &str, at: Loc) -> Result<(), Violation> {
        let mut f = match self.frames.get(src).or(self.w.frames.get(src)) {
            Some(f) => *f,
            None => *self.cx.visible.get(src).ok_or_else(|| {
                violation(Rule::Ownership, at, format!("no frame `{src}` to copy"))
            })?,
        };
        self.in_band(f.freq, at)?;
        f.advance_to(self.opens);
        self.frames.insert(name.to_string(), f);
        Ok(())
    }

    /// A play or capture of `d` ns on frame `name` (as `f`): its phase must be defined, and it
    /// must stay out of the delegated intervals.
    fn may_act(&self, name: &str, f: Frame, d: u64, at: Loc) -> Result<(), Violation> {
        if !f.defined {
            return Err(undefined(at, name));
        }
        delegated(at, name, f.clock, d, self.cx)
    }

    /// `play`: the frame may act, the samples fit the limits and the budget, the peak is within
    /// the window's cap; then the frame runs for the envelope's duration.
    fn play(&mut self, frame: &str, envelope: &Envelope, at: Loc) -> Result<(), Violation> {
        let f = *self.fetch(frame, at)?;
        self.may_act(frame, f, envelope.duration(), at)?;
        self.count_play(envelope.duration(), at)?;
        amplitude(at, envelope, &self.spec)?;
        self.timed(frame, envelope.duration(), at)
    }

    /// Counts a play of `d` samples: the budget is checked first, unless a hard size limit is
    /// broken too, which then names the refusal.
    fn count_play(&mut self, d: u64, at: Loc) -> Result<(), Violation> {
        self.samples = self.samples.saturating_add(d);
        self.plays += 1;
        let samples = self.samples;
        if samples.saturating_add(self.capture_work) > self.cx.max_samples
            && d <= MAX_PLAY_SAMPLES
            && samples <= MAX_TRANSFORM_SAMPLES
        {
            return Err(violation(
                Rule::Size,
                at,
                format!(
                    "the plays produce {samples} samples so far, more than the {} the VHM's budget pays for",
                    self.cx.max_samples
                ),
            ));
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
        Ok(())
    }

    /// `delay`: each frame in turn runs for `d` ns.
    fn delay(&mut self, names: &[String], d: u64, at: Loc) -> Result<(), Violation> {
        for n in names {
            self.fetch(n, at)?;
            self.timed(n, d, at)?;
        }
        Ok(())
    }

    /// `capture`: the frame may act and runs for `d` ns; the work of summing the overlapped
    /// plays must stay within the budget.
    fn capture(&mut self, frame: &str, d: u64, at: Loc) -> Result<(), Violation> {
        let f = *self.fetch(frame, at)?;
        self.may_act(frame, f, d, at)?;
        self.timed(frame, d, at)?;
        let plays = self.plays;
        self.capture_work = self
            .capture_work
            .saturating_add(plays)
            .saturating_add(plays.saturating_mul(d).min(self.samples));
        if self.samples.saturating_add(self.capture_work) > self.cx.max_samples {
            return Err(violation(
                Rule::Size,
                at,
                format!(
                    "the plays and captures take {} samples of work so far, more than the {} the VHM's budget pays for",
                    self.samples.saturating_add(self.capture_work),
                    self.cx.max_samples
                ),
            ));
        }
        Ok(())
    }

    /// `barrier`: every frame runs to the latest clock among them.
    fn barrier(&mut self, names: &[String], at: Loc) -> Result<(), Violation> {
        for n in names {
            self.fetch(n, at)?;
        }
        let t = latest_clock(&self.frames, names);
        for n in names {
            let d = t - self.frames[n].clock;
            self.timed(n, d, at)?;
        }
        Ok(())
    }

    /// `set_phase`: the phase becomes defined; the first one in a decohered window restarts its
    /// coherence clock.
    fn set_phase(&mut self, frame: &str, to: f64, at: Loc) -> Result<(), Violation> {
        let f = self.fetch(frame, at)?;
        f.phase = Phase::from_radians(to);
        f.defined = true;
        let clock = f.clock;
        if self.w.decohered && self.restart.is_none() {
            // Re-preparing a decohered window restarts its coherence clock.
            self.restart = Some(clock);
            self.limit = clock.saturating_add(self.cx.port.t2_ns);
        }
        Ok(())
    }

    /// `shift_frequency`: the shifted frequency (saturating) must stay in band.
    fn shift_frequency(&mut self, frame: &str, by: f64, at: Loc) -> Result<(), Violation> {
        let old = self.fetch(frame, at)?.freq;
        let by = freq_of(by, at)?;
        let nf = Freq(old.0.saturating_add(by.0));
        self.in_band(nf, at)?;
        self.frames.get_mut(frame).expect("fetched").freq = nf;
        Ok(())
    }
}

/// An envelope's peak must be within the window's amplitude cap.
fn amplitude(at: Loc, envelope: &Envelope, spec: &WindowSpec) -> Result<(), Violation> {
    match envelope.peak_ppm() {
        Some(peak) if peak <= spec.max_amp => Ok(()),
        peak => Err(violation(
            Rule::Amplitude,
            at,
            format!(
                "{} peaks at {}, above the window's cap {} ppm",
                envelope.name(),
                peak.map_or("more than full scale".to_string(), |p| format!("{p} ppm")),
                spec.max_amp
            ),
        )),
    }
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
    let untouched: Vec<(String, Frame)> = w
        .frames
        .iter()
        .filter(|(n, _)| !derived.contains_key(*n))
        .map(|(n, f)| (n.clone(), *f))
        .collect();
    let mut run = Runner::new(w, cx);
    for (stmt, _) in &program.stmts {
        run.stmt(stmt, rng);
    }
    let Runner {
        frames,
        plays,
        captures,
        ..
    } = run;
    post_check(w, frames, &derived, restart, &untouched)?;
    let dephased = dephase(w, cx, start, end, rng);
    Ok(Execution {
        start,
        end,
        plays,
        captures,
        dephased,
        work,
    })
}

/// The execution's running state, shared by its per-statement steps: the frames as executed,
/// and the plays and captures so far. The pre-check has passed, so nothing here can fail.
struct Runner<'a> {
    /// The window, as it was before the transform.
    w: &'a WindowState,
    /// What the transform may see besides its window.
    cx: &'a Context<'a>,
    /// Where the transform's frames start, ns.
    opens: u64,
    /// The frames as executed so far.
    frames: BTreeMap<String, Frame>,
    /// Every play so far, in order.
    plays: Vec<Played>,
    /// Every capture so far, in order, with the frame's name.
    captures: Vec<(String, Captured)>,
}

impl<'a> Runner<'a> {
    /// An execution of a transform on `w`, nothing executed yet.
    fn new(w: &'a WindowState, cx: &'a Context<'a>) -> Self {
        Self {
            w,
            cx,
            opens: opening(&w.spec, cx),
            frames: BTreeMap::new(),
            plays: Vec::new(),
            captures: Vec::new(),
        }
    }

    /// Executes one statement; captures draw their noise from `rng`.
    fn stmt(&mut self, stmt: &Stmt, rng: &mut impl RngCore) {
        match stmt {
            Stmt::NewFrame {
                name, freq, phase, ..
            } => self.new_frame(name, *freq, *phase),
            Stmt::CopyFrame { name, src } => self.copy_frame(name, src),
            Stmt::Play { frame, envelope } => self.play(frame, envelope),
            Stmt::Delay {
                duration,
                frames: names,
            } => {
                for n in names {
                    let f = self.take(n);
                    let e = f.clock + duration;
                    f.advance_to(e);
                }
            }
            Stmt::Barrier { frames: names } => self.barrier(names),
            Stmt::Capture { frame, duration } => self.capture(frame, *duration, rng),
            Stmt::ShiftPhase { frame, by } => {
                let f = self.take(frame);
                f.phase = f.phase.plus(Phase::from_radians(*by));
            }
            Stmt::SetPhase { frame, to } => {
                let f = self.take(frame);
                f.phase = Phase::from_radians(*to);
                f.defined = true;
            }
            Stmt::ShiftFrequency { frame, by } => {
                let f = self.take(frame);
                f.freq = Freq(
                    f.freq
                        .0
                        .saturating_add(Freq::from_hz(*by).expect("checked").0),
                );
            }
            Stmt::SetFrequency { frame, to } => {
                self.take(frame).freq = Freq::from_hz(*to).expect("checked");
            }
        }
    }

    /// The frame `name` as executed so far; the first time the transform names it, it is taken
    /// from the window and caught up to the opening.
    fn take(&mut self, name: &str) -> &mut Frame {
        if !self.frames.contains_key(name) {
            let mut f = self.w.frames[name];
            f.advance_to(self.opens);
            self.frames.insert(name.to_string(), f);
        }
        self.frames.get_mut(name).expect("taken")
    }

    /// `newframe`: a frame at the opening.
    fn new_frame(&mut self, name: &str, freq: f64, phase: f64) {
        self.frames.insert(
            name.to_string(),
            Frame {
                freq: Freq::from_hz(freq).expect("checked"),
                phase: Phase::from_radians(phase),
                clock: self.opens,
                defined: true,
            },
        );
    }

    /// `copyframe`: a copy of a frame executed so far, the window's or a visible one, caught up
    /// to the opening.
    fn copy_frame(&mut self, name: &str, src: &str) {
        let mut f = self
            .frames
            .get(src)
            .or(self.w.frames.get(src))
            .or(self.cx.visible.get(src))
            .copied()
            .expect("checked");
        f.advance_to(self.opens);
        self.frames.insert(name.to_string(), f);
    }

    /// `play`: the envelope's samples rotated by the frame's phase; the frame runs past them.
    fn play(&mut self, frame: &str, envelope: &Envelope) {
        let f = self.take(frame);
        let theta = f.phase.radians();
        let mut samples = Vec::with_capacity(envelope.duration() as usize);
        envelope.samples_into((theta.cos(), theta.sin()), &mut samples);
        let played = Played {
            frame: frame.to_string(),
            start: f.clock,
            phase: f.phase,
            envelope: envelope.name(),
            samples,
        };
        let e = f.clock + envelope.duration();
        f.advance_to(e);
        self.plays.push(played);
    }

    /// `barrier`: every frame runs to the latest clock among them.
    fn barrier(&mut self, names: &[String]) {
        for n in names {
            self.take(n);
        }
        let t = latest_clock(&self.frames, names);
        for n in names {
            self.frames.get_mut(n).expect("taken").advance_to(t);
        }
    }

    /// `capture`: the port's signal over `duration` ns demodulated by the frame's phase and
    /// averaged, plus noise from `rng`; the frame runs past it.
    fn capture(&mut self, frame: &str, duration: u64, rng: &mut impl RngCore) {
        let f = *self.take(frame);
        let (c0, c1) = (f.clock, f.clock + duration);
        let (si, sq) = port_signal(&self.plays, c0, c1);
        // Demodulate by the capturing frame's phase, average over the capture.
        let theta = f.phase.radians();
        let (c, s) = (theta.cos(), theta.sin());
        let n = duration.max(1) as f64;
        let (i, q) = ((si * c + sq * s) / n, (sq * c - si * s) / n);
        self.captures.push((
            frame.to_string(),
            Captured {
                start: c0,
                duration,
                i: (i * 1e6).round() as i64 + noise(rng),
                q: (q * 1e6).round() as i64 + noise(rng),
            },
        ));
        self.frames.get_mut(frame).expect("taken").advance_to(c1);
    }
}

/// The port's own signal summed over `[c0, c1)`: the samples of this transform's plays there,
/// play by play in order.
fn port_signal(plays: &[Played], c0: u64, c1: u64) -> (f64, f64) {
    let (mut si, mut sq) = (0.0, 0.0);
    for p in plays {
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
    (si, sq)
}

/// Post-check: the executed frames must be exactly the derived ones. They then replace the
/// window's (restarting its coherence clock if a `set_phase` re-prepared it), and every frame
/// the transform does not name must be unchanged.
fn post_check(
    w: &mut WindowState,
    frames: BTreeMap<String, Frame>,
    derived: &Derived,
    restart: Option<u64>,
    untouched: &[(String, Frame)],
) -> Result<(), Violation> {
    if frames != *derived {
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
    for (n, f) in untouched {
        if w.frames.get(n) != Some(f) {
            return Err(violation(
                Rule::Accounting,
                Loc::default(),
                format!("frame `{n}` changed although the transform does not name it"),
            ));
        }
    }
    Ok(())
}

/// Stochastic dephasing: strikes with probability (end − start) / T2, in integer ppm, drawn from
/// `rng` only when that is not zero; a strike decoheres `w`. Returns whether it struck.
fn dephase(
    w: &mut WindowState,
    cx: &Context,
    start: u64,
    end: u64,
    rng: &mut impl RngCore,
) -> bool {
    let t2 = cx.port.t2_ns.max(1);
    let p_ppm = (u128::from(end - start) * 1_000_000 / u128::from(t2)).min(1_000_000) as u64;
    let dephased = p_ppm > 0 && rng.next_u64() % 1_000_000 < p_ppm;
    if dephased {
        w.decohere();
    }
    dephased
}

/// The amplitude cap check used for requests: `amp` within `cap`.
pub fn within_cap(amp: f64, cap: u32) -> bool {
    amplitude_ppm(amp).is_some_and(|a| a <= cap)
}
