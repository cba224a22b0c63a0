//! Drawings of Φ transforms: what `xdv phi plot` writes, as SVG or (rendered by `resvg`) PNG.
//!
//! A figure has one lane per frame. A lane's vertical scale follows the largest amplitude
//! played on it, with that amplitude, 0 and its negative marked on the lane's axis; the time
//! axis below carries round values in ns. Each capture is its own outlined mark with its I and
//! Q printed beside it, so back-to-back captures stay apart and the values survive in a PNG.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// One play on a lane: samples (I, Q), one per ns from `start`.
pub(crate) struct Trace<'a> {
    pub(crate) start: u64,
    pub(crate) samples: &'a [(f64, f64)],
    /// Shown at the play's start (envelope and phase).
    pub(crate) label: String,
}

/// One capture on a lane.
pub(crate) struct Mark {
    pub(crate) start: u64,
    pub(crate) duration: u64,
    pub(crate) i: i64,
    pub(crate) q: i64,
}

/// A frame's lane.
pub(crate) struct Lane<'a> {
    pub(crate) name: String,
    pub(crate) plays: Vec<Trace<'a>>,
    pub(crate) captures: Vec<Mark>,
}

/// A figure: lanes over the time span `[start, end)` ns.
pub(crate) struct Figure<'a> {
    pub(crate) title: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) lanes: Vec<Lane<'a>>,
}

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 40.0;
const LANE: f64 = 150.0;
const BOTTOM: f64 = 70.0;

/// At most this many points per polyline keep the file small.
const MAX_POINTS: usize = 2000;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Round tick values covering `[lo, hi]`: steps of 1, 2 or 5 × 10^k, about `n` of them.
pub(crate) fn ticks(lo: u64, hi: u64, n: u64) -> Vec<u64> {
    let span = hi.saturating_sub(lo).max(1);
    let raw = (span / n.max(1)).max(1);
    let mut step = 1u64;
    while step.saturating_mul(10) <= raw {
        step *= 10;
    }
    let step = [1, 2, 5, 10]
        .into_iter()
        .map(|m| step.saturating_mul(m))
        .find(|s| span / s <= n)
        .unwrap_or(step * 10);
    let first = lo.div_ceil(step) * step;
    (0..)
        .map(|k| first + k * step)
        .take_while(|t| *t <= hi)
        .collect()
}

impl Figure<'_> {
    /// The figure as an SVG document.
    pub(crate) fn svg(&self) -> String {
        let lanes = self.lanes.len().max(1) as f64;
        let height = TOP + LANE * lanes + BOTTOM;
        let span = (self.end - self.start).max(1) as f64;
        let x = |t: f64| LEFT + (t - self.start as f64) / span * (WIDTH - LEFT - RIGHT);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="DejaVu Sans Mono, monospace" font-size="11">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="22" font-size="13">{}</text>"#,
            xml(&self.title)
        );
        // The time axis: gridlines through every lane, values below.
        let axis_y = TOP + LANE * lanes;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="#333"/>"##,
            WIDTH - RIGHT
        );
        for t in ticks(self.start, self.end, 8) {
            let tx = x(t as f64);
            let _ = writeln!(
                s,
                r##"<line x1="{tx:.2}" y1="{TOP}" x2="{tx:.2}" y2="{axis_y}" stroke="#e4e4e4"/><line x1="{tx:.2}" y1="{axis_y}" x2="{tx:.2}" y2="{}" stroke="#333"/><text x="{tx:.2}" y="{}" text-anchor="middle">{t}</text>"##,
                axis_y + 5.0,
                axis_y + 18.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">virtual time (ns)</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            axis_y + 36.0
        );
        for (k, lane) in self.lanes.iter().enumerate() {
            self.lane(&mut s, lane, TOP + LANE * k as f64, &x);
        }
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="{}">I solid (blue), Q dashed (red), amplitude as a fraction of full scale; outlined: captures, with I and Q in µ of full scale</text>"##,
            height - 10.0
        );
        s.push_str("</svg>\n");
        s
    }

    fn lane(&self, s: &mut String, lane: &Lane<'_>, y0: f64, x: &dyn Fn(f64) -> f64) {
        let mid = y0 + LANE / 2.0;
        let peak = lane
            .plays
            .iter()
            .flat_map(|p| p.samples.iter())
            .map(|(i, q)| i.abs().max(q.abs()))
            .fold(0.0f64, f64::max);
        let peak = if peak > 0.0 { peak } else { 1.0 };
        // The peak reaches 40 % of the lane's height above and below its middle.
        let scale = LANE * 0.4 / peak;
        let _ = writeln!(
            s,
            r#"<text x="6" y="{:.2}" font-size="12" font-weight="bold">{}</text>"#,
            mid + 4.0,
            xml(&lane.name)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{:.2}" x2="{LEFT}" y2="{:.2}" stroke="#333"/>"##,
            y0 + 6.0,
            y0 + LANE - 6.0
        );
        for (v, label) in [
            (peak, format!("{peak:+.3}")),
            (0.0, "0".into()),
            (-peak, format!("{:+.3}", -peak)),
        ] {
            let y = mid - v * scale;
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{y:.2}" x2="{LEFT}" y2="{y:.2}" stroke="#333"/><line x1="{LEFT}" y1="{y:.2}" x2="{}" y2="{y:.2}" stroke="{}"/><text x="{}" y="{:.2}" text-anchor="end">{label}</text>"##,
                LEFT - 4.0,
                WIDTH - RIGHT,
                if v == 0.0 { "#bbb" } else { "#f0f0f0" },
                LEFT - 6.0,
                y + 4.0
            );
        }
        for (n, c) in lane.captures.iter().enumerate() {
            // Inset by a pixel each side, so captures back to back show as separate marks.
            let (a, b) = (x(c.start as f64), x((c.start + c.duration) as f64));
            let w = (b - a - 2.0).max(1.0);
            let _ = writeln!(
                s,
                r##"<rect x="{:.2}" y="{:.2}" width="{w:.2}" height="{:.2}" fill="#fd8" fill-opacity="0.35" stroke="#b8860b"><title>capture I={} Q={} µ</title></rect>"##,
                a + 1.0,
                y0 + 22.0,
                LANE - 28.0,
                c.i,
                c.q
            );
            // Alternate rows keep the values of neighbouring captures from overprinting.
            let _ = writeln!(
                s,
                r##"<text x="{:.2}" y="{:.2}" fill="#7a5a00">I={} Q={}</text>"##,
                a + 2.0,
                y0 + LANE - 8.0 - 12.0 * (n % 2) as f64,
                c.i,
                c.q
            );
        }
        for p in &lane.plays {
            let step = (p.samples.len() / MAX_POINTS).max(1);
            for (part, dash, color) in [
                (0usize, "", "#1f5fbf"),
                (1, r#" stroke-dasharray="4 3""#, "#c0392b"),
            ] {
                let pts: Vec<String> = p
                    .samples
                    .iter()
                    .enumerate()
                    .step_by(step)
                    .map(|(i, v)| {
                        let v = if part == 0 { v.0 } else { v.1 };
                        format!(
                            "{:.2},{:.2}",
                            x((p.start + i as u64) as f64),
                            mid - v * scale
                        )
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{}"/>"#,
                    pts.join(" ")
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{:.2}">{}</text>"#,
                x(p.start as f64) + 2.0,
                y0 + 14.0,
                xml(&p.label)
            );
        }
    }

    /// Writes the figure to `out`: a PNG when `png`, an SVG otherwise.
    ///
    /// # Errors
    ///
    /// When the file cannot be written, or the SVG cannot be rendered.
    pub(crate) fn write(&self, out: &Path, png: bool) -> Result<()> {
        let svg = self.svg();
        if !png {
            return std::fs::write(out, svg).with_context(|| format!("writing {}", out.display()));
        }
        use resvg::{tiny_skia, usvg};
        let mut opt = usvg::Options::default();
        // Text needs a font: the system's, when it has one (the curves and marks need none).
        opt.fontdb_mut().load_system_fonts();
        let tree = usvg::Tree::from_str(&svg, &opt).context("rendering the plot")?;
        let size = tree.size().to_int_size();
        let mut pixmap =
            tiny_skia::Pixmap::new(size.width(), size.height()).context("allocating the image")?;
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        let bytes = pixmap.encode_png().context("encoding the PNG")?;
        std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::ticks;

    #[test]
    fn ticks_are_round_and_cover_the_span() {
        assert_eq!(ticks(0, 720, 8), vec![0, 100, 200, 300, 400, 500, 600, 700]);
        assert_eq!(
            ticks(52, 452, 8),
            vec![100, 150, 200, 250, 300, 350, 400, 450]
        );
        assert_eq!(ticks(0, 5, 8), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(ticks(7, 7, 8), vec![7]);
        for (lo, hi) in [(0, 1), (3, 100_003), (999, 1_000_001), (0, u64::MAX / 4)] {
            let t = ticks(lo, hi, 8);
            assert!(!t.is_empty() && t.len() <= 9, "{lo}..{hi}: {t:?}");
            assert!(t.iter().all(|v| (lo..=hi).contains(v)));
        }
    }
}
