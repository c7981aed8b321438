//! Calibration: fit a profile's physical parameters to measured studies by replaying
//! them in the simulator inside a derivative-free optimiser (Nelder–Mead) on the
//! squared log error of the reported metrics, with the hand-set prior as a weak
//! penalty (DESIGN §3). Deterministic: same inputs, same profile bytes.
//!
//! Over 600 lines: the optimiser (quasi-random search, Nelder–Mead), the band-logit
//! parameter space and the profile writer are one fit, read together; splitting the
//! optimiser out is the next step when the file grows.

use crate::profile::Profile;
use crate::study::{replay, StudyPoint};
use serde_json::{Map, Value};

/// A fitted parameter of [`Profile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Achieved fraction of peak FLOP/s.
    EtaCompute,
    /// Achieved fraction of peak bandwidth.
    EtaBandwidth,
    /// GPU overhead per step.
    GpuStep,
    /// GPU overhead per sequence.
    GpuSeq,
    /// CPU overhead per step.
    CpuStep,
    /// CPU overhead per sequence.
    CpuSeq,
    /// CPU/GPU overlap fraction.
    CpuOverlap,
    /// API front-end latency per request.
    ApiLatency,
    /// API-server work per streamed sequence per step.
    ApiSeq,
}

/// Every fittable parameter.
pub const ALL_PARAMS: [Param; 9] = [
    Param::EtaCompute,
    Param::EtaBandwidth,
    Param::GpuStep,
    Param::GpuSeq,
    Param::CpuStep,
    Param::CpuSeq,
    Param::CpuOverlap,
    Param::ApiLatency,
    Param::ApiSeq,
];

impl Param {
    /// Field name in the profile.
    pub fn name(&self) -> &'static str {
        match self {
            Param::EtaCompute => "eta_compute",
            Param::EtaBandwidth => "eta_bandwidth",
            Param::GpuStep => "gpu_step_overhead_us",
            Param::GpuSeq => "gpu_seq_overhead_us",
            Param::CpuStep => "cpu_step_overhead_us",
            Param::CpuSeq => "cpu_seq_overhead_us",
            Param::CpuOverlap => "cpu_overlap",
            Param::ApiLatency => "api_latency_us",
            Param::ApiSeq => "api_seq_overhead_us",
        }
    }

    fn is_fraction(&self) -> bool {
        matches!(
            self,
            Param::EtaCompute | Param::EtaBandwidth | Param::CpuOverlap
        )
    }

    /// Prior width in the unconstrained space (logit for fractions, log(1 + µs) for
    /// overheads).
    fn prior_sigma(&self) -> f64 {
        match self {
            Param::EtaCompute | Param::EtaBandwidth => 1.0,
            Param::CpuOverlap => 2.0,
            _ => 2.0,
        }
    }

    /// Distance of `v` from the prior value `v0` in prior widths: fractions in their
    /// own units (width 0.25 for efficiencies, 0.5 for the overlap), overheads in
    /// log(1 + µs) (width 2, a factor of about 7).
    pub fn prior_z(&self, v: f64, v0: f64) -> f64 {
        match self {
            Param::EtaCompute | Param::EtaBandwidth => (v - v0) / 0.25,
            Param::CpuOverlap => (v - v0) / 0.5,
            _ => ((1.0 + v.max(0.0)).ln() - (1.0 + v0.max(0.0)).ln()) / 2.0,
        }
    }

    /// Reads the parameter from a profile.
    pub fn get(&self, p: &Profile) -> f64 {
        match self {
            Param::EtaCompute => p.eta_compute.unwrap_or(1.0),
            Param::EtaBandwidth => p.eta_bandwidth.unwrap_or(1.0),
            Param::GpuStep => p.gpu_step_overhead_us,
            Param::GpuSeq => p.gpu_seq_overhead_us,
            Param::CpuStep => p.cpu_step_overhead_us,
            Param::CpuSeq => p.cpu_seq_overhead_us,
            Param::CpuOverlap => p.cpu_overlap,
            Param::ApiLatency => p.api_latency_us,
            Param::ApiSeq => p.api_seq_overhead_us,
        }
    }

    /// Writes the parameter into a profile.
    pub fn set(&self, p: &mut Profile, v: f64) {
        match self {
            Param::EtaCompute => p.eta_compute = Some(v),
            Param::EtaBandwidth => p.eta_bandwidth = Some(v),
            Param::GpuStep => p.gpu_step_overhead_us = v,
            Param::GpuSeq => p.gpu_seq_overhead_us = v,
            Param::CpuStep => p.cpu_step_overhead_us = v,
            Param::CpuSeq => p.cpu_seq_overhead_us = v,
            Param::CpuOverlap => p.cpu_overlap = v,
            Param::ApiLatency => p.api_latency_us = v,
            Param::ApiSeq => p.api_seq_overhead_us = v,
        }
    }

    /// To the unconstrained space.
    pub fn to_free(&self, v: f64) -> f64 {
        if self.is_fraction() {
            let v = v.clamp(1e-6, 1.0 - 1e-6);
            (v / (1.0 - v)).ln()
        } else {
            (1.0 + v.max(0.0)).ln()
        }
    }

    /// From the unconstrained space.
    pub fn from_free(&self, x: f64) -> f64 {
        if self.is_fraction() {
            let v = 1.0 / (1.0 + (-x).exp());
            v.clamp(1e-6, 1.0 - 1e-6)
        } else {
            (x.exp() - 1.0).max(0.0)
        }
    }
}

/// How a metric's error counts in the objective.
pub fn metric_weight(metric: &str) -> f64 {
    if metric.contains("ttft") {
        0.3
    } else {
        1.0
    }
}

/// One compared number.
#[derive(Debug, Clone, PartialEq)]
pub struct Residual {
    /// Study.
    pub study: String,
    /// Point label.
    pub point: String,
    /// Metric.
    pub metric: String,
    /// Measured value.
    pub measured: f64,
    /// Simulated value.
    pub predicted: f64,
}

impl Residual {
    /// (predicted − measured) / measured.
    pub fn rel_error(&self) -> f64 {
        (self.predicted - self.measured) / self.measured
    }
}

/// Replays `points` with `profile` and compares every measured metric.
pub fn residuals(
    points: &[StudyPoint],
    profile: Option<&Profile>,
    seed: u64,
) -> Result<Vec<Residual>, String> {
    let mut out = Vec::new();
    for sp in points {
        let sim = replay(sp, profile, seed)?;
        for (metric, measured) in &sp.measured {
            let predicted = sim.metric(metric).ok_or_else(|| {
                format!(
                    "{}: {}: the simulator has no metric {metric:?}",
                    sp.study, sp.label
                )
            })?;
            out.push(Residual {
                study: sp.study.clone(),
                point: sp.label.clone(),
                metric: metric.clone(),
                measured: *measured,
                predicted,
            });
        }
    }
    Ok(out)
}

/// What to fit.
#[derive(Debug, Clone)]
pub struct FitSpec {
    /// Starting point and prior; parameters not in `free` stay as they are.
    pub prior: Profile,
    /// A previous fit to search from as well (`calibrate --warm`); the prior stays
    /// the prior.
    pub warm: Option<Profile>,
    /// Parameters to fit.
    pub free: Vec<Param>,
    /// Weight of the prior penalty.
    pub prior_weight: f64,
    /// Only these metrics enter the objective (all measured ones when empty).
    pub metrics: Vec<String>,
    /// Seed of the replays.
    pub seed: u64,
    /// Objective evaluations allowed.
    pub max_evals: usize,
}

/// A fit's outcome.
#[derive(Debug, Clone)]
pub struct FitResult {
    /// The fitted profile.
    pub profile: Profile,
    /// Final objective.
    pub objective: f64,
    /// Evaluations used.
    pub evals: usize,
    /// With a warm start: the objective of the previous fit it started from.
    pub warm_from: Option<f64>,
}

/// The plausibility band of each free parameter, where the prior is not a flat
/// profile (flat profiles are worked examples and have no bands).
fn bounds(spec: &FitSpec) -> Vec<Option<(f64, f64)>> {
    let bands = crate::profile::bands_for(&spec.prior.stack);
    spec.free
        .iter()
        .map(|p| {
            if spec.prior.is_flat() {
                None
            } else {
                bands.iter().find(|b| b.param == *p).map(|b| (b.lo, b.hi))
            }
        })
        .collect()
}

/// To the unconstrained space: the logit of the position in the band, or the
/// parameter's own transform where it has no band.
fn to_free_in(p: Param, v: f64, b: Option<(f64, f64)>) -> f64 {
    match b {
        Some((lo, hi)) => {
            let u = ((v - lo) / (hi - lo)).clamp(1e-6, 1.0 - 1e-6);
            (u / (1.0 - u)).ln()
        }
        None => p.to_free(v),
    }
}

/// From the unconstrained space (inside the band where there is one).
fn from_free_in(p: Param, x: f64, b: Option<(f64, f64)>) -> f64 {
    match b {
        Some((lo, hi)) => lo + (hi - lo) / (1.0 + (-x).exp()),
        None => p.from_free(x),
    }
}

fn objective(spec: &FitSpec, points: &[StudyPoint], x: &[f64]) -> f64 {
    let mut p = spec.prior.clone();
    let mut penalty = 0.0;
    for ((param, xi), b) in spec.free.iter().zip(x).zip(bounds(spec)) {
        let v = from_free_in(*param, *xi, b);
        param.set(&mut p, v);
        let z = match b {
            // One unit of logit from the prior (the band's centre for shipped
            // stacks): moving to 88 % of the way to an edge costs z = 2.
            Some(_) => xi - to_free_in(*param, param.get(&spec.prior), b),
            None => param.prior_z(v, param.get(&spec.prior)),
        };
        penalty += z * z;
    }
    let mut sse = 0.0;
    for sp in points {
        let Ok(sim) = replay(sp, Some(&p), spec.seed) else {
            return f64::INFINITY;
        };
        for (metric, measured) in &sp.measured {
            if !spec.metrics.is_empty() && !spec.metrics.contains(metric) {
                continue;
            }
            let Some(pred) = sim.metric(metric) else {
                return f64::INFINITY;
            };
            if pred <= 0.0 || *measured <= 0.0 {
                continue;
            }
            let e = (pred / measured).ln();
            sse += metric_weight(metric) * e * e;
        }
    }
    sse + spec.prior_weight * penalty
}

/// Nelder–Mead minimisation from `x0` with initial step `step`; deterministic.
pub fn nelder_mead(
    f: &mut dyn FnMut(&[f64]) -> f64,
    x0: &[f64],
    step: f64,
    max_evals: usize,
) -> (Vec<f64>, f64, usize) {
    let n = x0.len();
    let mut evals = 0;
    let mut eval = |x: &[f64], evals: &mut usize| {
        *evals += 1;
        f(x)
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    let v0 = eval(x0, &mut evals);
    simplex.push((x0.to_vec(), v0));
    for i in 0..n {
        let mut x = x0.to_vec();
        x[i] += step;
        let v = eval(&x, &mut evals);
        simplex.push((x, v));
    }
    while evals < max_evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let best = simplex[0].1;
        let worst = simplex[n].1;
        if (worst - best).abs() <= 1e-10 * (1.0 + best.abs()) {
            let spread = (0..n)
                .map(|j| {
                    simplex
                        .iter()
                        .map(|s| s.0[j])
                        .fold(f64::NEG_INFINITY, f64::max)
                        - simplex.iter().map(|s| s.0[j]).fold(f64::INFINITY, f64::min)
                })
                .fold(0.0, f64::max);
            if spread < 1e-7 {
                break;
            }
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|s| s.0[j]).sum::<f64>() / n as f64)
            .collect();
        let towards = |t: f64, x: &[f64]| -> Vec<f64> {
            centroid
                .iter()
                .zip(x)
                .map(|(c, xi)| c + t * (xi - c))
                .collect()
        };
        let xr = towards(-1.0, &simplex[n].0);
        let fr = eval(&xr, &mut evals);
        if fr < simplex[0].1 {
            let xe = towards(-2.0, &simplex[n].0);
            let fe = eval(&xe, &mut evals);
            simplex[n] = if fe < fr { (xe, fe) } else { (xr, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (xr, fr);
        } else {
            let (xc, fc) = if fr < simplex[n].1 {
                let xc = towards(-0.5, &simplex[n].0);
                let fc = eval(&xc, &mut evals);
                (xc, fc)
            } else {
                let xc = towards(0.5, &simplex[n].0);
                let fc = eval(&xc, &mut evals);
                (xc, fc)
            };
            if fc < simplex[n].1.min(fr) {
                simplex[n] = (xc, fc);
            } else {
                let x0 = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    s.0 = x0
                        .iter()
                        .zip(&s.0)
                        .map(|(a, b)| a + 0.5 * (b - a))
                        .collect();
                    s.1 = eval(&s.0, &mut evals);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (x, v) = simplex.swap_remove(0);
    (x, v, evals)
}

const PRIMES: [u64; 8] = [2, 3, 5, 7, 11, 13, 17, 19];

/// The k-th element of the van der Corput sequence in base `b` (a Halton coordinate).
fn halton(mut k: usize, b: u64) -> f64 {
    let (mut f, mut r) = (1.0, 0.0);
    while k > 0 {
        f /= b as f64;
        r += f * (k as u64 % b) as f64;
        k /= b as usize;
    }
    r
}

/// Fits `spec.free` on `points`: a quasi-random global look, Nelder–Mead from the
/// best starts, then restarts from the best point with a shrinking step until it
/// stops improving. Deterministic.
pub fn fit(spec: &FitSpec, points: &[StudyPoint]) -> FitResult {
    let bnds = bounds(spec);
    let x0: Vec<f64> = spec
        .free
        .iter()
        .zip(&bnds)
        .map(|(p, b)| to_free_in(*p, p.get(&spec.prior), *b))
        .collect();
    let mut f = |x: &[f64]| objective(spec, points, x);
    // Global look: a Halton sequence over the box of ±2 prior widths (a third of the
    // budget), then Nelder–Mead from the prior and from the best three samples.
    let n_samples = spec.max_evals / 3;
    let mut evals = 0;
    let mut sampled: Vec<(f64, Vec<f64>)> = Vec::with_capacity(n_samples);
    for k in 1..=n_samples {
        let s: Vec<f64> = spec
            .free
            .iter()
            .enumerate()
            .map(|(i, p)| {
                x0[i] + (2.0 * halton(k, PRIMES[i % PRIMES.len()]) - 1.0) * 2.0 * p.prior_sigma()
            })
            .collect();
        sampled.push((f(&s), s));
        evals += 1;
    }
    sampled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut starts = vec![x0.clone()];
    let mut warm_from = None;
    if let Some(w) = &spec.warm {
        let xw: Vec<f64> = spec
            .free
            .iter()
            .zip(&bnds)
            .map(|(p, b)| to_free_in(*p, p.get(w), *b))
            .collect();
        warm_from = Some(f(&xw));
        evals += 1;
        starts.push(xw);
    }
    starts.extend(sampled.iter().take(3).map(|s| s.1.clone()));
    let per_start = (spec.max_evals / 3 / starts.len()).max(2 * x0.len() + 4);
    let mut x = x0.clone();
    let mut best = f64::INFINITY;
    for s in &starts {
        if evals + per_start > spec.max_evals {
            break;
        }
        let (xn, v, e) = nelder_mead(&mut f, s, 0.5, per_start);
        evals += e;
        if v < best {
            best = v;
            x = xn;
        }
    }
    let mut step = 0.3;
    for _ in 0..6 {
        let budget = spec.max_evals.saturating_sub(evals);
        if budget < 2 * x.len() + 2 {
            break;
        }
        let (xn, v, e) = nelder_mead(&mut f, &x, step, budget);
        evals += e;
        let improved = v < best - 1e-9 * (1.0 + best.abs());
        if v <= best {
            x = xn;
            best = v;
        }
        if !improved && step < 0.2 {
            break;
        }
        step *= 0.5;
    }
    let mut p = spec.prior.clone();
    for ((param, xi), b) in spec.free.iter().zip(&x).zip(&bnds) {
        param.set(&mut p, from_free_in(*param, *xi, *b));
    }
    FitResult {
        profile: p,
        objective: best,
        evals,
        warm_from,
    }
}

/// The fit record written into a calibrated profile (`[fit]`).
pub fn fit_record(
    date: &str,
    seed: u64,
    studies: &[String],
    result: &FitResult,
    res: &[Residual],
) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("date".into(), date.into());
    t.insert("seed".into(), (seed as i64).into());
    t.insert(
        "studies".into(),
        toml::Value::Array(studies.iter().map(|s| s.clone().into()).collect()),
    );
    t.insert("objective".into(), round6(result.objective).into());
    t.insert("evaluations".into(), (result.evals as i64).into());
    if let Some(w) = &result.warm_from {
        t.insert("warm_start_objective".into(), round6(*w).into());
    }
    let rows = res
        .iter()
        .map(|r| {
            let mut m = toml::Table::new();
            m.insert("study".into(), r.study.clone().into());
            m.insert("point".into(), r.point.clone().into());
            m.insert("metric".into(), r.metric.clone().into());
            m.insert("measured".into(), r.measured.into());
            m.insert("predicted".into(), round6(r.predicted).into());
            m.insert("rel_error".into(), round6(r.rel_error()).into());
            toml::Value::Table(m)
        })
        .collect();
    t.insert("residual".into(), toml::Value::Array(rows));
    toml::Value::Table(t)
}

/// Rounds to 6 significant digits (profiles are read by people).
pub fn round6(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - mag);
    (v * scale).round() / scale
}

/// A profile as TOML text with a header comment.
pub fn profile_text(p: &Profile, header: &str) -> String {
    let mut s = String::new();
    for l in header.lines() {
        s.push_str("# ");
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(&toml::to_string(p).expect("profile serialises"));
    s
}

/// JSON rows `{study, point, metric, measured, predicted, rel_error}`.
pub fn residual_json(res: &[Residual]) -> Vec<Value> {
    res.iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("study".into(), r.study.clone().into());
            m.insert("point".into(), r.point.clone().into());
            m.insert("metric".into(), r.metric.clone().into());
            m.insert("measured".into(), crate::metrics::num(r.measured));
            m.insert("predicted".into(), crate::metrics::num(r.predicted));
            m.insert("rel_error".into(), crate::metrics::num(r.rel_error()));
            Value::Object(m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nelder_mead_finds_a_quadratic_minimum() {
        let mut f = |x: &[f64]| (x[0] - 1.0).powi(2) + 10.0 * (x[1] + 2.0).powi(2);
        let (x, v, _) = nelder_mead(&mut f, &[0.0, 0.0], 0.5, 2000);
        assert!(
            (x[0] - 1.0).abs() < 1e-4 && (x[1] + 2.0).abs() < 1e-4,
            "{x:?}"
        );
        assert!(v < 1e-8);
    }

    #[test]
    fn transforms_round_trip() {
        for p in ALL_PARAMS {
            for v in [0.01, 0.3, 0.9] {
                let back = p.from_free(p.to_free(v));
                assert!((back - v).abs() < 1e-9, "{p:?} {v} {back}");
            }
        }
        assert_eq!(round6(1234.56789), 1234.57);
    }
}

/// One fitted profile with what it was fitted on.
#[derive(Debug, Clone)]
pub struct Calibrated {
    /// GPU.
    pub gpu: String,
    /// Stack.
    pub stack: String,
    /// Fit.
    pub result: FitResult,
    /// Studies used.
    pub studies: Vec<String>,
    /// Residuals of the calibration points with the fitted profile.
    pub residuals: Vec<Residual>,
}

/// The stack parameters a calibration fits (the GPU part is fixed by the kernel
/// tables and curves).
pub const STACK_PARAMS: &[Param] = ALL_PARAMS.split_at(2).1;

/// Fits one stack profile per serving stack, jointly on the calibration points of
/// every study of that stack (on whatever GPU), with each GPU's part fixed.
/// `prior_for(stack)` gives the starting profile; its fitted parameters start at
/// their bands' priors. `warm_for(stack)` is a previous fit to search from as well.
pub fn calibrate_all(
    studies: &[crate::study::Study],
    prior_for: &dyn Fn(&str) -> Result<Profile, String>,
    warm_for: &dyn Fn(&str) -> Option<Profile>,
    seed: u64,
    max_evals: usize,
) -> Result<Vec<Calibrated>, String> {
    // (stack, calibration points, study names)
    type Group = (String, Vec<StudyPoint>, Vec<String>);
    let mut groups: Vec<Group> = Vec::new();
    for s in studies {
        let pts: Vec<StudyPoint> = s.points.iter().filter(|p| p.calibrate).cloned().collect();
        if pts.is_empty() {
            continue;
        }
        let key = s.file.stack.clone();
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => {
                g.1.extend(pts);
                g.2.push(s.file.name.clone());
            }
            None => groups.push((key, pts, vec![s.file.name.clone()])),
        }
    }
    let metrics = crate::reproduce::target_metrics();
    let mut out = Vec::new();
    for (stack, points, names) in groups {
        let mut prior = prior_for(&stack)?;
        prior.name = stack.clone();
        prior.status = "calibrated".into();
        for b in crate::profile::bands_for(&stack) {
            b.param.set(&mut prior, b.prior);
        }
        let spec = FitSpec {
            prior,
            warm: warm_for(&stack),
            free: STACK_PARAMS.to_vec(),
            prior_weight: 0.02,
            metrics: metrics.clone(),
            seed,
            max_evals,
        };
        let mut result = fit(&spec, &points);
        result.profile.source = format!(
            "fitted by `infersim calibrate` jointly on {} (GPU part fixed by the kernel tables and curves)",
            names.join(", ")
        );
        for &p in STACK_PARAMS {
            let v = p.get(&result.profile);
            p.set(&mut result.profile, round6(v));
        }
        let residuals = residuals(&points, Some(&result.profile), seed)?;
        out.push(Calibrated {
            gpu: String::new(),
            stack,
            result,
            studies: names,
            residuals,
        });
    }
    Ok(out)
}

/// Where a fitted value sits in its band: `None` inside, or which edge it is within
/// 2 % of the band's width of.
pub fn band_edge(b: &crate::profile::Band, v: f64) -> Option<&'static str> {
    let w = b.hi - b.lo;
    if v <= b.lo + 0.02 * w {
        Some("lower")
    } else if v >= b.hi - 0.02 * w {
        Some("upper")
    } else {
        None
    }
}
