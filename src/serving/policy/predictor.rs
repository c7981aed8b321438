//! Output-length predictors for length-aware schedulers.
//!
//! A real server does not know how many tokens a request will generate; schedulers
//! that order by length (shortest-job-first, shortest-remaining) use a prediction.
//! Three are modelled:
//! - **oracle**: the true length (an upper bound on what prediction can give);
//! - **noisy**: the true length times `exp(σ·z)`, `z` standard normal, drawn once per
//!   request from the run's seed: `σ` is the stated error (the standard deviation of
//!   the log ratio; 0.5 puts two thirds of the predictions within a factor 1.65);
//! - **bucketed**: only the power-of-two bucket `[2^b, 2^(b+1))` the length falls in
//!   is known, predicted as the bucket's middle (as classifiers that predict a length
//!   range, e.g. S³ (Jin et al., 2023), report).

use super::ReqView;

/// An output-length predictor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Predictor {
    /// The true length.
    Oracle,
    /// The true length with a log-normal error of this standard deviation (of the log).
    Noisy {
        /// σ of ln(predicted / true).
        sigma: f64,
    },
    /// The middle of the power-of-two bucket of the true length.
    Bucketed,
}

impl Predictor {
    /// Config names.
    pub const NAMES: &'static [&'static str] = &["oracle", "noisy", "bucketed"];

    /// Config name.
    pub fn name(&self) -> &'static str {
        match self {
            Predictor::Oracle => "oracle",
            Predictor::Noisy { .. } => "noisy",
            Predictor::Bucketed => "bucketed",
        }
    }

    /// Predicted output tokens of `r` (at least 1), for a run with `seed`. The same
    /// request gets the same prediction every time it is asked.
    pub fn predict(&self, r: &ReqView, seed: u64) -> u64 {
        let truth = r.output_tokens.max(1) as u64;
        match *self {
            Predictor::Oracle => truth,
            Predictor::Noisy { sigma } => {
                let z = standard_normal(seed, r.id);
                ((truth as f64) * (sigma * z).exp()).round().max(1.0) as u64
            }
            Predictor::Bucketed => {
                let lo = 1u64 << (63 - truth.leading_zeros());
                // Middle of [lo, 2·lo): 1.5·lo, rounded down.
                lo + lo / 2
            }
        }
    }
}

/// SplitMix64: a well-mixed 64-bit value of `x` (Steele, Lea and Flood, 2014).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A standard normal value for request `id` under `seed` (Box–Muller on two uniforms
/// derived by hashing), so predictions do not depend on the order requests are seen.
fn standard_normal(seed: u64, id: u64) -> f64 {
    let a = mix(seed ^ mix(id.wrapping_mul(2).wrapping_add(0x5eed)));
    let b = mix(a ^ 0x6a09_e667_f3bc_c909);
    // Uniforms in (0, 1]: 53 random bits, offset by one ulp so ln never sees 0.
    let u1 = ((a >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (b >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Handle, Phase};
    use crate::time::SimTime;

    fn req(id: u64, out: u32) -> ReqView {
        ReqView {
            handle: Handle(0),
            id,
            arrival: SimTime::ZERO,
            enqueued: SimTime::ZERO,
            prompt_tokens: 10,
            output_tokens: out,
            generated: 0,
            computed: 0,
            priority: 0,
            tenant: 0,
            class: 0,
            phase: Phase::Waiting,
            blocks_held: 0,
            admitted: 0,
        }
    }

    #[test]
    fn buckets_are_powers_of_two_predicted_at_their_middle() {
        let p = Predictor::Bucketed;
        assert_eq!(p.predict(&req(0, 1), 0), 1);
        assert_eq!(p.predict(&req(0, 64), 0), 96);
        assert_eq!(p.predict(&req(0, 127), 0), 96);
        assert_eq!(p.predict(&req(0, 128), 0), 192);
    }

    #[test]
    fn noisy_error_has_the_stated_spread_and_is_stable() {
        let p = Predictor::Noisy { sigma: 0.5 };
        let n = 20_000;
        let logs: Vec<f64> = (0..n)
            .map(|id| (p.predict(&req(id, 1000), 7) as f64 / 1000.0).ln())
            .collect();
        let mean = logs.iter().sum::<f64>() / n as f64;
        let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        // Standard error of the mean 0.5/√20000 ≈ 0.0035; of the sd ≈ 0.0025.
        assert!(mean.abs() < 0.015, "mean log ratio {mean}");
        assert!((sd - 0.5).abs() < 0.015, "sd of the log ratio {sd}");
        assert_eq!(p.predict(&req(5, 1000), 7), p.predict(&req(5, 1000), 7));
        assert_ne!(p.predict(&req(5, 1000), 7), p.predict(&req(5, 1000), 8));
        assert_eq!(Predictor::Oracle.predict(&req(5, 1000), 7), 1000);
    }
}
