//! Exact units: phases as `u64` fractions of a turn, frequencies as integer hertz with an exact
//! per-nanosecond phase increment, amplitudes in parts per million.
//!
//! Every quantity a contract checks is an integer, so phase accounting is exact and replays bit
//! for bit. Text forms (radians, `5.1e9`) are converted once, when a transform is read.

use std::fmt;

/// One turn (2π) is 2⁶⁴ units.
const TURN: f64 = 18_446_744_073_709_551_616.0;

/// A phase: `2π · k / 2⁶⁴`, wrapping. Addition is exact modular arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Phase(pub u64);

impl Phase {
    /// The phase nearest to `rad` radians (any real; reduced modulo 2π).
    pub fn from_radians(rad: f64) -> Phase {
        let turns = (rad / std::f64::consts::TAU).rem_euclid(1.0);
        // `turns` is in [0, 1): the product is below 2⁶⁴ except when it rounds up to it.
        let k = (turns * TURN).round();
        Phase(if k >= TURN { 0 } else { k as u64 })
    }

    /// The phase in radians, in [0, 2π).
    pub fn radians(self) -> f64 {
        self.0 as f64 / TURN * std::f64::consts::TAU
    }

    /// `self + other`, wrapping.
    pub fn plus(self, other: Phase) -> Phase {
        Phase(self.0.wrapping_add(other.0))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9} rad", self.radians())
    }
}

/// A frequency in whole hertz (negative: below the carrier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Freq(pub i64);

impl Freq {
    /// The nearest whole hertz to `hz`; `None` for values out of ±9.2·10¹⁸ or not finite.
    pub fn from_hz(hz: f64) -> Option<Freq> {
        let r = hz.round();
        (r.is_finite() && r.abs() < 9.2e18).then_some(Freq(r as i64))
    }

    /// The phase a frame at this frequency gains per nanosecond: `f · 2⁶⁴ / 10⁹` units, rounded
    /// to the nearest unit, modulo one turn. This increment is the frame's frequency as far as
    /// phase accounting is concerned: `Δθ = increment × Δt` holds exactly.
    pub fn increment(self) -> u64 {
        let num = i128::from(self.0) << 64;
        let q = num.div_euclid(1_000_000_000);
        let r = num.rem_euclid(1_000_000_000);
        let rounded = if r * 2 >= 1_000_000_000 { q + 1 } else { q };
        rounded as u64 // modulo 2⁶⁴: whole turns per nanosecond do not change the phase
    }

    /// The phase gained over `ns` nanoseconds.
    pub fn advance(self, ns: u64) -> Phase {
        Phase(self.increment().wrapping_mul(ns))
    }
}

impl fmt::Display for Freq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

/// An amplitude magnitude in parts per million of full scale (1.0 = 1 000 000).
pub type Ppm = u32;

/// `|amp|` in parts per million, rounded; `None` above 1.0 or not finite.
pub fn amplitude_ppm(amp: f64) -> Option<Ppm> {
    let v = (amp.abs() * 1e6).round();
    (v.is_finite() && v <= 1e6).then_some(v as Ppm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_wrap_exactly() {
        let half = Phase::from_radians(std::f64::consts::PI);
        assert_eq!(half, Phase(1 << 63));
        assert_eq!(half.plus(half), Phase(0));
        assert_eq!(
            Phase::from_radians(-std::f64::consts::FRAC_PI_2),
            Phase(3 << 62)
        );
        assert_eq!(Phase::from_radians(0.0), Phase(0));
    }

    #[test]
    fn frequency_increments_are_exact_where_they_can_be() {
        // 250 MHz = a quarter turn per ns.
        assert_eq!(Freq(250_000_000).increment(), 1 << 62);
        // 1 GHz = one whole turn per ns: no phase change.
        assert_eq!(Freq(1_000_000_000).increment(), 0);
        assert_eq!(Freq(-250_000_000).increment(), 3 << 62);
        // 4 ns at 250 MHz is one turn.
        assert_eq!(Freq(250_000_000).advance(4), Phase(0));
    }

    #[test]
    fn amplitudes_are_checked_in_ppm() {
        assert_eq!(amplitude_ppm(0.5), Some(500_000));
        assert_eq!(amplitude_ppm(-1.0), Some(1_000_000));
        assert_eq!(amplitude_ppm(1.01), None);
        assert_eq!(amplitude_ppm(f64::NAN), None);
    }
}
