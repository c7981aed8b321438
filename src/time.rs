//! Simulated time: integer nanoseconds.
//!
//! All simulation state is timestamped with [`SimTime`]; floating point appears only
//! inside the cost model (which returns a duration in seconds that is rounded once to
//! nanoseconds here) and at the edges (config, reports).

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// A point in simulated time, in nanoseconds since the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

/// A span of simulated time, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub u64);

impl SimTime {
    /// Time zero: the start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable time (used as "never").
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// Converts seconds (finite, non-negative) to the nearest nanosecond.
    pub fn from_secs_f64(s: f64) -> SimTime {
        SimTime(Dur::from_secs_f64(s).0)
    }

    /// This time in seconds.
    pub fn as_secs_f64(self) -> f64 {
        to_f64(self.0) * 1e-9
    }

    /// Time elapsed since `earlier` (saturating at zero).
    pub fn since(self, earlier: SimTime) -> Dur {
        Dur(self.0.saturating_sub(earlier.0))
    }
}

impl Dur {
    /// Zero length.
    pub const ZERO: Dur = Dur(0);

    /// Converts seconds to the nearest nanosecond; negative or NaN becomes zero,
    /// huge values saturate.
    pub fn from_secs_f64(s: f64) -> Dur {
        if s.is_nan() || s <= 0.0 {
            Dur(0)
        } else if s >= 1.8e10 {
            Dur(u64::MAX / 2)
        } else {
            Dur(round_half_away(s * 1e9))
        }
    }

    /// Converts milliseconds to nanoseconds.
    pub fn from_millis_f64(ms: f64) -> Dur {
        Dur::from_secs_f64(ms * 1e-3)
    }

    /// This span in seconds.
    pub fn as_secs_f64(self) -> f64 {
        to_f64(self.0) * 1e-9
    }

    /// This span in milliseconds.
    pub fn as_millis_f64(self) -> f64 {
        to_f64(self.0) * 1e-6
    }
}

impl Add<Dur> for SimTime {
    type Output = SimTime;
    fn add(self, d: Dur) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}

impl AddAssign<Dur> for SimTime {
    fn add_assign(&mut self, d: Dur) {
        self.0 = self.0.saturating_add(d.0);
    }
}

impl Sub for SimTime {
    type Output = Dur;
    fn sub(self, rhs: SimTime) -> Dur {
        self.since(rhs)
    }
}

impl Add for Dur {
    type Output = Dur;
    fn add(self, d: Dur) -> Dur {
        Dur(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.9}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_nanoseconds() {
        assert_eq!(Dur::from_secs_f64(1.5e-9).0, 2);
        assert_eq!(Dur::from_secs_f64(0.027).0, 27_000_000);
        assert_eq!(Dur::from_secs_f64(-1.0).0, 0);
        assert_eq!(Dur::from_secs_f64(f64::NAN).0, 0);
        assert_eq!(Dur::from_millis_f64(2.5).0, 2_500_000);
        assert_eq!((SimTime(10) + Dur(5)).0, 15);
        assert_eq!((SimTime(3) - SimTime(10)).0, 0);
    }
}

/// `x.round() as u64` for `0 <= x < 2^64`, without the library call `round` becomes
/// on targets without a rounding instruction: the integer part, plus one when the
/// fraction (exact: `x - trunc(x)` loses nothing) is at least one half.
///
/// Below 2^63 (every duration a run meets) it converts through `i64`: x86-64 has
/// single instructions for the signed conversions only, and both ways give the same
/// values there.
fn round_half_away(x: f64) -> u64 {
    if x < TWO_63 {
        let i = x as i64;
        return if x - i as f64 >= 0.5 { i + 1 } else { i } as u64;
    }
    let i = x as u64;
    if x - i as f64 >= 0.5 {
        i + 1
    } else {
        i
    }
}

/// 2^63 as a float: below it a float converts to `i64` and back exactly as to `u64`.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// `v as f64`, through `i64` below 2^63 (one instruction on x86-64, same value).
#[inline]
fn to_f64(v: u64) -> f64 {
    match i64::try_from(v) {
        Ok(i) => i as f64,
        Err(_) => v as f64,
    }
}

#[cfg(test)]
mod rounding_tests {
    use super::{round_half_away, to_f64, TWO_63};

    #[test]
    fn matches_round_on_edges_and_a_sweep() {
        let edges = [
            0.0,
            0.49999999999999994,
            0.5,
            1.5,
            2.5,
            4503599627370495.5,
            4503599627370496.0,
            9007199254740993.0,
            1.7e19,
            TWO_63,
            f64::from_bits(TWO_63.to_bits() - 1),
            f64::from_bits(TWO_63.to_bits() + 1),
        ];
        for x in edges {
            assert_eq!(round_half_away(x), x.round() as u64, "{x}");
        }
        let mut x: f64 = 1e-3;
        while x < 1e19 {
            for y in [x, x + 0.5, f64::from_bits(x.to_bits() + 1)] {
                assert_eq!(round_half_away(y), y.round() as u64, "{y}");
            }
            x *= 1.37;
        }
    }

    #[test]
    fn to_f64_is_the_plain_conversion() {
        for v in [
            0,
            1,
            1 << 53,
            (1 << 53) + 1,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ] {
            assert_eq!(to_f64(v).to_bits(), (v as f64).to_bits(), "{v}");
        }
    }
}
