//! Ports and coherence windows: allocation and release, O(log n) and deterministic.
//!
//! Windows live in scopes: the host's windows on a port form one scope; the children of a window
//! on its port form another (a child lies inside its parent in time, port and band, and competes
//! only with its siblings). Within a scope two windows may overlap in time only if both carry a
//! share grant and their bands are disjoint. Each scope indexes its windows by start time; a
//! query scans only the starts in `[t0 − longest, t1)`, so with non-overlapping windows it visits
//! O(1) neighbours after an O(log n) descent.

use crate::units::{Freq, Ppm};
use std::collections::BTreeMap;
use std::fmt;

/// A port's index in the host's port list.
pub type PortId = u32;
/// A window's host-wide number (never reused).
pub type WindowId = u32;

/// A Φ port of the host (`[[host.phi.port]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Its name.
    pub name: String,
    /// Time granularity: window bounds and every duration are multiples of it, ns.
    pub granularity_ns: u64,
    /// Frequencies a frame on the port may take, inclusive.
    pub band: (Freq, Freq),
    /// Largest amplitude the port accepts.
    pub max_amp: Ppm,
    /// Coherence limit (T2-style): a window's frames stay coherent at most this long after the
    /// window opens, and dephase stochastically at rate 1/T2 while transforms run, ns.
    pub t2_ns: u64,
}

/// What a window asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    /// The port.
    pub port: PortId,
    /// Start, ns (inclusive).
    pub t0: u64,
    /// End, ns (exclusive).
    pub t1: u64,
    /// The frequency band its frames must stay in, inclusive.
    pub band: (Freq, Freq),
    /// Amplitude cap.
    pub max_amp: Ppm,
    /// Share grant: may overlap in time with other granted windows whose bands are disjoint.
    pub shared: bool,
}

impl WindowSpec {
    /// Duration, ns.
    pub fn len(&self) -> u64 {
        self.t1 - self.t0
    }

    /// `true` for an empty interval (never valid).
    pub fn is_empty(&self) -> bool {
        self.t1 <= self.t0
    }
}

/// An allocated window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// What was granted.
    pub spec: WindowSpec,
    /// The holder (a VHM id).
    pub owner: u32,
    /// The window it was carved from, for a nested one.
    pub parent: Option<WindowId>,
}

/// Why a window was refused; each names the rule that failed. The messages (what the trace
/// records, what a refused `phi_window` reports) mention only the request itself and, for a
/// nested window, its parent: never another holder, its window numbers or its intervals. The
/// fields of a conflict still name the other window, for the operator's tools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The port does not exist.
    #[error("no port {0}")]
    NoPort(PortId),
    /// `t1 ≤ t0`.
    #[error("empty interval [{0}, {1})")]
    Empty(u64, u64),
    /// A bound is not a multiple of the port's granularity.
    #[error("alignment: [{t0}, {t1}) is not on the port's {granularity} ns grid")]
    Alignment {
        /// Start.
        t0: u64,
        /// End.
        t1: u64,
        /// The port's granularity.
        granularity: u64,
    },
    /// The band is empty or leaves the port's (or the parent window's) band.
    #[error("band: [{lo}, {hi}] Hz is not inside [{outer_lo}, {outer_hi}] Hz")]
    Band {
        /// Asked low edge.
        lo: i64,
        /// Asked high edge.
        hi: i64,
        /// Allowed low edge.
        outer_lo: i64,
        /// Allowed high edge.
        outer_hi: i64,
    },
    /// The amplitude cap is above the port's (or the parent window's).
    #[error("amplitude: cap {0} ppm is above the allowed {1} ppm")]
    Amplitude(Ppm, Ppm),
    /// The parent window does not exist.
    #[error("nesting: the parent window is gone")]
    NoWindow(WindowId),
    /// A nested window leaves its parent.
    #[error("nesting: [{t0}, {t1}) on port {port} is not inside the parent window ([{p0}, {p1}) on port {pport})")]
    Outside {
        /// Asked start.
        t0: u64,
        /// Asked end.
        t1: u64,
        /// Asked port.
        port: PortId,
        /// The parent.
        parent: WindowId,
        /// Parent start.
        p0: u64,
        /// Parent end.
        p1: u64,
        /// Parent port.
        pport: PortId,
    },
    /// It overlaps another window without both share grants and disjoint bands. The message
    /// says only that the port is not free throughout the requested interval, and which rule the request
    /// itself could not meet.
    #[error("conflict: port {port} is not free throughout [{t0}, {t1}){why}")]
    Conflict {
        /// The requested port.
        port: PortId,
        /// The requested start.
        t0: u64,
        /// The requested end.
        t1: u64,
        /// The conflicting window (not in the message).
        other: WindowId,
        /// Its start.
        o0: u64,
        /// Its end.
        o1: u64,
        /// Its holder (not in the message).
        owner: u32,
        /// Why sharing does not apply, in terms of the request alone.
        why: &'static str,
    },
}

#[derive(Debug, Clone, Default)]
struct Scope {
    /// (start, id) → end.
    by_start: BTreeMap<(u64, WindowId), u64>,
    /// The longest window ever held in the scope: no window starting earlier than
    /// `t0 − longest` can reach `t0`.
    longest: u64,
}

/// Every window of the host.
#[derive(Debug, Clone, Default)]
pub struct WindowTable {
    ports: Vec<Port>,
    windows: BTreeMap<WindowId, Window>,
    scopes: BTreeMap<(Option<WindowId>, PortId), Scope>,
    children: BTreeMap<WindowId, Vec<WindowId>>,
    next: WindowId,
}

fn bands_disjoint(a: (Freq, Freq), b: (Freq, Freq)) -> bool {
    a.1 < b.0 || b.1 < a.0
}

impl WindowTable {
    /// A table over the host's ports.
    pub fn new(ports: Vec<Port>) -> Self {
        Self {
            ports,
            ..Self::default()
        }
    }

    /// The host's ports.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// A window.
    pub fn get(&self, id: WindowId) -> Option<&Window> {
        self.windows.get(&id)
    }

    /// Live windows, by id.
    pub fn iter(&self) -> impl Iterator<Item = (WindowId, &Window)> {
        self.windows.iter().map(|(k, v)| (*k, v))
    }

    /// Number of live windows.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// `true` when no window is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Checks a request without allocating it.
    pub fn check(&self, spec: &WindowSpec, parent: Option<WindowId>) -> Result<(), WindowError> {
        let port = self
            .ports
            .get(spec.port as usize)
            .ok_or(WindowError::NoPort(spec.port))?;
        if spec.is_empty() {
            return Err(WindowError::Empty(spec.t0, spec.t1));
        }
        let g = port.granularity_ns.max(1);
        if !spec.t0.is_multiple_of(g) || !spec.t1.is_multiple_of(g) {
            return Err(WindowError::Alignment {
                t0: spec.t0,
                t1: spec.t1,
                granularity: g,
            });
        }
        let (outer, cap) = match parent {
            None => (port.band, port.max_amp),
            Some(p) => {
                let pw = self.windows.get(&p).ok_or(WindowError::NoWindow(p))?;
                let ps = pw.spec;
                if ps.port != spec.port || spec.t0 < ps.t0 || spec.t1 > ps.t1 {
                    return Err(WindowError::Outside {
                        t0: spec.t0,
                        t1: spec.t1,
                        port: spec.port,
                        parent: p,
                        p0: ps.t0,
                        p1: ps.t1,
                        pport: ps.port,
                    });
                }
                (ps.band, ps.max_amp)
            }
        };
        if spec.band.0 > spec.band.1 || spec.band.0 < outer.0 || spec.band.1 > outer.1 {
            return Err(WindowError::Band {
                lo: spec.band.0 .0,
                hi: spec.band.1 .0,
                outer_lo: outer.0 .0,
                outer_hi: outer.1 .0,
            });
        }
        if spec.max_amp > cap {
            return Err(WindowError::Amplitude(spec.max_amp, cap));
        }
        if let Some(scope) = self.scopes.get(&(parent, spec.port)) {
            let from = spec.t0.saturating_sub(scope.longest);
            for (&(o0, other), &o1) in scope.by_start.range((from, 0)..(spec.t1, 0)) {
                if o1 <= spec.t0 {
                    continue;
                }
                let ow = &self.windows[&other];
                if spec.shared && ow.spec.shared && bands_disjoint(spec.band, ow.spec.band) {
                    continue;
                }
                // Whether the other window is shared, or where its band lies, is its holder's
                // business: the reason depends on the request only.
                let why = if spec.shared {
                    " for a shared window in this band"
                } else {
                    " (a window without a share grant needs the port to itself)"
                };
                return Err(WindowError::Conflict {
                    port: spec.port,
                    t0: spec.t0,
                    t1: spec.t1,
                    other,
                    o0,
                    o1,
                    owner: ow.owner,
                    why,
                });
            }
        }
        Ok(())
    }

    /// Allocates a window to `owner`, nested in `parent` if given.
    pub fn allocate(
        &mut self,
        owner: u32,
        spec: WindowSpec,
        parent: Option<WindowId>,
    ) -> Result<WindowId, WindowError> {
        self.check(&spec, parent)?;
        let id = self.next;
        self.next += 1;
        let scope = self.scopes.entry((parent, spec.port)).or_default();
        scope.by_start.insert((spec.t0, id), spec.t1);
        scope.longest = scope.longest.max(spec.len());
        if let Some(p) = parent {
            self.children.entry(p).or_default().push(id);
        }
        self.windows.insert(
            id,
            Window {
                spec,
                owner,
                parent,
            },
        );
        Ok(id)
    }

    /// Releases a window and, first, every window nested in it (deepest first); returns the ids
    /// released, in that order. Unknown ids release nothing.
    pub fn release(&mut self, id: WindowId) -> Vec<WindowId> {
        let mut out = Vec::new();
        self.release_into(id, &mut out);
        out
    }

    fn release_into(&mut self, id: WindowId, out: &mut Vec<WindowId>) {
        for child in self
            .children
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .rev()
        {
            self.release_into(child, out);
        }
        let Some(w) = self.windows.remove(&id) else {
            return;
        };
        if let Some(scope) = self.scopes.get_mut(&(w.parent, w.spec.port)) {
            scope.by_start.remove(&(w.spec.t0, id));
        }
        if let Some(p) = w.parent {
            if let Some(c) = self.children.get_mut(&p) {
                c.retain(|&x| x != id);
            }
        }
        out.push(id);
    }

    /// Checks the table's invariant: within every scope, any two windows that overlap in time
    /// both hold share grants and have disjoint bands; nested windows lie inside their parents.
    pub fn check_invariants(&self) -> Result<(), String> {
        for ((parent, port), scope) in &self.scopes {
            let ws: Vec<(&(u64, WindowId), &u64)> = scope.by_start.iter().collect();
            for (i, ((_, a), a1)) in ws.iter().enumerate() {
                for ((b0, b), _) in &ws[i + 1..] {
                    if b0 >= a1 {
                        break;
                    }
                    let (wa, wb) = (&self.windows[a], &self.windows[b]);
                    if !(wa.spec.shared
                        && wb.spec.shared
                        && bands_disjoint(wa.spec.band, wb.spec.band))
                    {
                        return Err(format!(
                            "windows {a} and {b} overlap on port {port} (scope {parent:?})"
                        ));
                    }
                }
            }
        }
        for (id, w) in &self.windows {
            if let Some(p) = w.parent {
                let ps = self.windows[&p].spec;
                if w.spec.t0 < ps.t0 || w.spec.t1 > ps.t1 || w.spec.port != ps.port {
                    return Err(format!("window {id} leaves its parent {p}"));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "port {} [{}, {}) ns, band [{}, {}] Hz, cap {} ppm{}",
            self.port,
            self.t0,
            self.t1,
            self.band.0 .0,
            self.band.1 .0,
            self.max_amp,
            if self.shared { ", shared" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> WindowTable {
        WindowTable::new(vec![Port {
            name: "p0".into(),
            granularity_ns: 4,
            band: (Freq(4_000_000_000), Freq(6_000_000_000)),
            max_amp: 1_000_000,
            t2_ns: 100_000,
        }])
    }

    fn w(t0: u64, t1: u64, lo: i64, hi: i64, shared: bool) -> WindowSpec {
        WindowSpec {
            port: 0,
            t0,
            t1,
            band: (Freq(lo), Freq(hi)),
            max_amp: 500_000,
            shared,
        }
    }

    const LO: i64 = 4_000_000_000;
    const MID: i64 = 5_000_000_000;
    const HI: i64 = 6_000_000_000;

    #[test]
    fn exclusive_windows_time_share_a_port() {
        let mut t = table();
        let a = t.allocate(1, w(0, 100, LO, HI, false), None).unwrap();
        t.allocate(2, w(100, 200, LO, HI, false), None).unwrap();
        let e = t.allocate(3, w(96, 104, LO, HI, false), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "conflict: port 0 is not free throughout [96, 104) (a window without a share grant needs the port to itself)"
        );
        assert!(matches!(
            e,
            WindowError::Conflict {
                other: 0,
                owner: 1,
                ..
            }
        ));
        t.release(a);
        t.allocate(3, w(0, 100, LO, HI, false), None).unwrap();
        t.check_invariants().unwrap();
    }

    #[test]
    fn shared_windows_need_grants_and_disjoint_bands() {
        let mut t = table();
        t.allocate(1, w(0, 100, LO, MID, true), None).unwrap();
        t.allocate(2, w(0, 100, MID + 1, HI, true), None).unwrap();
        let e = t.allocate(3, w(0, 100, MID, MID, true), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "conflict: port 0 is not free throughout [0, 100) for a shared window in this band"
        );
        // An exclusive holder's window reads the same to a shared request.
        t.allocate(4, w(100, 200, LO, HI, false), None).unwrap();
        let e2 = t
            .allocate(3, w(100, 200, MID, MID, true), None)
            .unwrap_err();
        assert_eq!(
            e2.to_string(),
            e.to_string().replace("[0, 100)", "[100, 200)")
        );
        t.check_invariants().unwrap();
    }

    #[test]
    fn requests_are_checked_against_the_port_and_parent() {
        let mut t = table();
        assert!(matches!(
            t.allocate(1, w(1, 100, LO, HI, false), None),
            Err(WindowError::Alignment { .. })
        ));
        assert!(matches!(
            t.allocate(1, w(0, 100, LO - 1, HI, false), None),
            Err(WindowError::Band { .. })
        ));
        let p = t.allocate(1, w(0, 100, LO, HI, false), None).unwrap();
        let c = t.allocate(2, w(20, 40, LO, MID, false), Some(p)).unwrap();
        assert!(matches!(
            t.allocate(2, w(80, 120, LO, MID, false), Some(p)),
            Err(WindowError::Outside { .. })
        ));
        // Siblings compete with each other, not with their parent.
        assert!(t.allocate(3, w(36, 60, LO, MID, false), Some(p)).is_err());
        t.allocate(3, w(40, 60, LO, MID, false), Some(p)).unwrap();
        assert_eq!(t.release(p), vec![2, c, p]);
        assert!(t.is_empty());
    }
}
