//! Service-level objectives and goodput: the `[slo]` bounds ([`Slo`]), the counts a
//! run accumulates as its requests complete ([`SloCounter`], so per-request records
//! need not be kept), and the summary keys they give ([`SloSummary`]).
//!
//! An SLO is a percentile of one latency metric with a bound, `p99_ttft_ms = 2000`:
//! the same names as the summary's own statistics. Following DistServe (Zhong et al.,
//! "DistServe: Disaggregating Prefill and Decoding for Goodput-optimized Large
//! Language Model Serving", OSDI 2024), a bound is judged per request: a request
//! *attains* it when its own latency is within the bound, the bound's *attainment*
//! is the fraction of completed requests that attain it, and a pXX SLO holds when
//! that attainment is at least XX %. *Goodput* is the completed requests per second
//! that attain every bound given (as `vllm bench serve --goodput` counts it); with
//! two percentiles of one metric a request must be within the tighter bound to count.
//! `slo_attainment` is the fraction of completed requests that attain every bound.
//!
//! Per request: TTFT and E2E are the request's own; TPOT is `(E2E − TTFT) / (output
//! tokens − 1)` and, like `benchmark_serving`'s, exists only for requests of more
//! than one output token (a one-token request attains any TPOT or ITL bound). A
//! request's ITL is judged by its own mean inter-token gap, which equals its TPOT
//! (the gaps sum to E2E − TTFT): the engine reports gaps in batches (a fast-forwarded
//! stretch emits many at once) without the request they belong to, so a request's
//! worst gap is not known. The ITL SLO itself (whether it holds) is judged the way
//! `benchmark_serving` pools inter-token latencies: over every token gap in the
//! measurement window, so `p99_itl_ms = 100` holds when at least 99 % of the gaps
//! are within 100 ms. Latencies and attainment are over the completed requests, as
//! the summary's latency statistics are; requests that failed (timed out, rejected)
//! are counted in `failed` and `success_rate`, and add nothing to goodput.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The latency metrics an SLO can bound, by their summary names.
pub const SLO_METRICS: [&str; 4] = ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"];
/// The percentiles an SLO can name.
pub const SLO_PERCENTILES: [u32; 4] = [50, 90, 95, 99];

/// The SLO bounds of a run, in ms: `bounds[metric][percentile]` in the order of
/// [`SLO_METRICS`] and [`SLO_PERCENTILES`], `None` where none is given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Slo {
    /// Bounds, ms.
    pub bounds: [[Option<f64>; 4]; 4],
}

const TTFT: usize = 0;
const TPOT: usize = 1;
const ITL: usize = 2;
const E2EL: usize = 3;

impl Slo {
    /// The `[slo]` key of metric `m` and percentile `p` (indices), e.g. `p99_ttft_ms`.
    pub fn key(m: usize, p: usize) -> String {
        format!("p{}_{}", SLO_PERCENTILES[p], SLO_METRICS[m])
    }

    /// Every `[slo]` key, metric by metric.
    pub fn keys() -> Vec<String> {
        (0..4)
            .flat_map(|m| (0..4).map(move |p| Self::key(m, p)))
            .collect()
    }

    /// Sets the bound named `key` (one of [`Slo::keys`]); false for another name.
    pub fn set(&mut self, key: &str, bound_ms: f64) -> bool {
        for m in 0..4 {
            for p in 0..4 {
                if Self::key(m, p) == key {
                    self.bounds[m][p] = Some(bound_ms);
                    return true;
                }
            }
        }
        false
    }

    /// Whether any bound is given.
    pub fn is_empty(&self) -> bool {
        self.bounds.iter().flatten().all(Option::is_none)
    }

    /// The given bounds as (metric, percentile, bound) indices, in key order.
    fn given(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        (0..4).flat_map(move |m| (0..4).filter_map(move |p| self.bounds[m][p].map(|b| (m, p, b))))
    }
}

/// What a run counts for its SLOs as requests complete.
#[derive(Debug, Clone, Default)]
pub struct SloCounter {
    slo: Slo,
    /// Per given bound (in [`Slo::given`] order): requests (or, for ITL, token gaps)
    /// within it.
    within: Vec<u64>,
    /// Token gaps counted (the denominator of ITL attainment).
    gaps: u64,
    /// Requests within every bound.
    good: u64,
    /// Requests judged.
    requests: u64,
    /// Per given bound: requests still in flight at the end that had already missed
    /// it ([`SloCounter::unfinished`]).
    late: Vec<u64>,
    /// Requests still in flight at the end that had already missed some bound.
    late_any: u64,
}

impl SloCounter {
    /// A counter for these bounds.
    pub fn new(slo: Slo) -> Self {
        SloCounter {
            slo,
            within: vec![0; slo.given().count()],
            late: vec![0; slo.given().count()],
            ..SloCounter::default()
        }
    }

    /// A completed request with these latencies, ms (`tpot` `None` for a request
    /// of one output token).
    pub fn request(&mut self, ttft: f64, tpot: Option<f64>, e2el: f64) {
        self.requests += 1;
        let mut all = true;
        for (i, (m, _, bound)) in self.slo.given().enumerate() {
            let ok = match m {
                TTFT => ttft <= bound,
                E2EL => e2el <= bound,
                // ITL per request: its own mean gap, which is its TPOT.
                TPOT | ITL => tpot.is_none_or(|t| t <= bound),
                _ => unreachable!("four metrics"),
            };
            all &= ok;
            if ok && m != ITL {
                self.within[i] += 1;
            }
        }
        if all {
            self.good += 1;
        }
    }

    /// `weight` token gaps of `gap_ms` each (inside the measurement window).
    pub fn gaps(&mut self, gap_ms: f64, weight: u64) {
        self.gaps += weight;
        for (i, (m, _, bound)) in self.slo.given().enumerate() {
            if m == ITL && gap_ms <= bound {
                self.within[i] += weight;
            }
        }
    }

    /// A request still in flight when a timed run ends, sent `waited_ms` before the
    /// end, with its TTFT if its first token came: the bounds it has already missed
    /// (a TTFT over the bound, or no first token after longer than it; in flight
    /// longer than the E2E bound) count as missed; the others are not judged (see
    /// the module documentation).
    pub fn unfinished(&mut self, waited_ms: f64, ttft_ms: Option<f64>) {
        let mut any = false;
        for (i, (m, _, bound)) in self.slo.given().enumerate() {
            let missed = match m {
                TTFT => ttft_ms.unwrap_or(waited_ms) > bound,
                E2EL => waited_ms > bound,
                _ => false,
            };
            if missed {
                self.late[i] += 1;
                any = true;
            }
        }
        self.late_any += any as u64;
    }

    /// The summary keys, with `duration_s` the denominator of goodput (that of the
    /// throughputs).
    pub fn summarize(&self, duration_s: f64) -> SloSummary {
        let frac = |x: u64, n: u64| if n > 0 { x as f64 / n as f64 } else { 1.0 };
        // No request judged, completed or late: no evidence that any SLO holds.
        let judged = self.requests + self.late_any > 0;
        let rows: Vec<SloRow> = self
            .slo
            .given()
            .zip(self.within.iter().zip(&self.late))
            .map(|((m, p, bound), (&within, &late))| {
                let n = if m == ITL {
                    self.gaps
                } else {
                    self.requests + late
                };
                let attainment = if judged { frac(within, n) } else { 0.0 };
                SloRow {
                    name: Slo::key(m, p),
                    bound_ms: bound,
                    attainment,
                    met: judged && attainment >= SLO_PERCENTILES[p] as f64 / 100.0,
                }
            })
            .collect();
        SloSummary {
            goodput: if duration_s > 0.0 {
                self.good as f64 / duration_s
            } else {
                0.0
            },
            slo_attainment: if judged {
                frac(self.good, self.requests + self.late_any)
            } else {
                0.0
            },
            slo_met: rows.iter().all(|r| r.met),
            unfinished_late: self.late_any,
            rows,
        }
    }
}

/// One SLO of a run: its bound's attainment and whether the SLO holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SloRow {
    /// The `[slo]` key, e.g. `p99_ttft_ms`.
    pub name: String,
    /// The bound, ms (not serialised: it is in the experiment).
    pub bound_ms: f64,
    /// Fraction of completed requests (ITL: of token gaps) within the bound.
    pub attainment: f64,
    /// Whether the attainment reaches the percentile.
    pub met: bool,
}

/// The SLO keys of a summary, written only when the experiment has `[slo]`:
/// `goodput`, `slo_attainment`, `slo_met`, then `slo_<key>_attainment` and
/// `slo_<key>_met` for each bound given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SloSummary {
    /// Completed requests per second that attain every bound.
    pub goodput: f64,
    /// Fraction of completed requests that attain every bound.
    pub slo_attainment: f64,
    /// Whether every SLO holds.
    pub slo_met: bool,
    /// Requests still in flight at the end of a timed run that had already missed a
    /// bound (counted as missing it).
    pub unfinished_late: u64,
    /// Each SLO.
    pub rows: Vec<SloRow>,
}

impl Serialize for SloSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("goodput", &self.goodput)?;
        m.serialize_entry("slo_attainment", &self.slo_attainment)?;
        m.serialize_entry("slo_met", &self.slo_met)?;
        m.serialize_entry("slo_unfinished_late", &self.unfinished_late)?;
        for r in &self.rows {
            m.serialize_entry(&format!("slo_{}_attainment", r.name), &r.attainment)?;
            m.serialize_entry(&format!("slo_{}_met", r.name), &r.met)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for SloSummary {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        let Some(goodput) = m.get("goodput") else {
            return Err(D::Error::custom("no goodput"));
        };
        let float = |v: Option<&Value>| v.and_then(Value::as_f64).unwrap_or(f64::NAN);
        let rows = Slo::keys()
            .into_iter()
            .filter_map(|k| {
                let a = m.get(&format!("slo_{k}_attainment"))?;
                Some(SloRow {
                    bound_ms: f64::NAN,
                    attainment: float(Some(a)),
                    met: m
                        .get(&format!("slo_{k}_met"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    name: k,
                })
            })
            .collect();
        Ok(SloSummary {
            goodput: float(Some(goodput)),
            slo_attainment: float(m.get("slo_attainment")),
            slo_met: m.get("slo_met").and_then(Value::as_bool).unwrap_or(false),
            unfinished_late: m
                .get("slo_unfinished_late")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            rows,
        })
    }
}

/// What a deployment costs and what its tokens cost at the measured throughput.
/// Written in every summary of `infersim run`; `null` where the GPU has no known
/// price or the run produced no tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CostSummary {
    /// Physical GPUs × price per GPU-hour (MIG slices and MPS or time-sliced pods
    /// count the GPUs they run on), US dollars per hour.
    #[serde(deserialize_with = "nan_if_null")]
    pub cost_per_hour_usd: f64,
    /// Dollars per million output tokens at the run's output throughput.
    #[serde(deserialize_with = "nan_if_null")]
    pub usd_per_million_output_tokens: f64,
    /// Dollars per million tokens (prompt and output) at the run's total token
    /// throughput.
    #[serde(deserialize_with = "nan_if_null")]
    pub usd_per_million_tokens: f64,
}

fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl CostSummary {
    /// The figures of `gpus` physical GPUs at `usd_per_gpu_hour` (NaN: unknown)
    /// producing these token throughputs (per second).
    pub fn new(
        gpus: u32,
        usd_per_gpu_hour: f64,
        output_per_s: f64,
        total_tokens_per_s: f64,
    ) -> Self {
        let per_hour = gpus as f64 * usd_per_gpu_hour;
        let per_million = |tokens_per_s: f64| {
            if tokens_per_s > 0.0 {
                per_hour / (tokens_per_s * 3600.0) * 1e6
            } else {
                f64::NAN
            }
        };
        CostSummary {
            cost_per_hour_usd: per_hour,
            usd_per_million_output_tokens: per_million(output_per_s),
            usd_per_million_tokens: per_million(total_tokens_per_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_slos_hold_at_their_attainment() {
        let mut slo = Slo::default();
        assert!(slo.set("p90_ttft_ms", 100.0));
        assert!(slo.set("p50_e2el_ms", 1000.0));
        assert!(!slo.set("p80_ttft_ms", 1.0));
        let mut c = SloCounter::new(slo);
        // Ten requests, TTFT 10, 20, ..., 100 ms; E2E 200 ms for the first five,
        // 2000 ms for the rest.
        for i in 1..=10 {
            let e2e = if i <= 5 { 200.0 } else { 2000.0 };
            c.request(10.0 * i as f64, Some(1.0), e2e);
        }
        let s = c.summarize(2.0);
        assert_eq!(s.rows[0].name, "p90_ttft_ms");
        assert_eq!(s.rows[0].attainment, 1.0);
        assert!(s.rows[0].met);
        assert_eq!(s.rows[1].name, "p50_e2el_ms");
        assert_eq!(s.rows[1].attainment, 0.5);
        assert!(s.rows[1].met, "50 % within at p50 holds");
        // Goodput: 5 requests within both, over 2 s.
        assert_eq!(s.goodput, 2.5);
        assert_eq!(s.slo_attainment, 0.5);
        assert!(s.slo_met);
    }

    #[test]
    fn itl_slo_counts_gaps_and_goodput_uses_the_mean_gap() {
        let mut slo = Slo::default();
        slo.set("p99_itl_ms", 50.0);
        let mut c = SloCounter::new(slo);
        c.gaps(10.0, 98);
        c.gaps(60.0, 2);
        c.request(5.0, Some(40.0), 100.0);
        c.request(5.0, Some(55.0), 100.0);
        c.request(5.0, None, 5.0);
        let s = c.summarize(1.0);
        assert_eq!(s.rows[0].attainment, 0.98);
        assert!(!s.rows[0].met);
        assert_eq!(s.goodput, 2.0);
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            "{\"goodput\":2.0,\"slo_attainment\":0.6666666666666666,\"slo_met\":false,\"slo_unfinished_late\":0,\"slo_p99_itl_ms_attainment\":0.98,\"slo_p99_itl_ms_met\":false}"
        );
        let back: SloSummary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.rows[0].attainment, 0.98);
        assert_eq!(back.goodput, 2.0);
    }

    /// Requests still in flight at the end count against the bounds they have
    /// already missed, and only those; a run that judged nothing meets no SLO.
    #[test]
    fn unfinished_requests_count_against_bounds_already_missed() {
        let mut slo = Slo::default();
        slo.set("p90_ttft_ms", 100.0);
        slo.set("p50_e2el_ms", 1000.0);
        let mut c = SloCounter::new(slo);
        // Nothing judged: no SLO holds (it used to hold vacuously).
        let s = c.summarize(1.0);
        assert!(!s.slo_met && !s.rows[0].met && !s.rows[1].met);
        assert_eq!(s.slo_attainment, 0.0);
        // Nine completed requests within both bounds.
        for _ in 0..9 {
            c.request(50.0, Some(1.0), 500.0);
        }
        // In flight at the end: one without a first token after 150 ms (missed
        // TTFT only), one with a 20 ms TTFT after 1500 ms (missed E2E only), one
        // without a first token after 50 ms and one with a 30 ms TTFT after 40 ms
        // (missed nothing yet: not judged).
        c.unfinished(150.0, None);
        c.unfinished(1500.0, Some(20.0));
        c.unfinished(50.0, None);
        c.unfinished(40.0, Some(30.0));
        let s = c.summarize(1.0);
        // TTFT: 9 within of 9 + 1 = 0.9, which meets p90; E2E: 9 of 10.
        assert_eq!(s.rows[0].attainment, 0.9);
        assert!(s.rows[0].met);
        assert_eq!(s.rows[1].attainment, 0.9);
        // Every bound: 9 good of 9 completed + 2 late.
        assert_eq!(s.slo_attainment, 9.0 / 11.0);
        assert_eq!(s.unfinished_late, 2);
        assert_eq!(s.goodput, 9.0, "goodput counts completed requests only");
        // One more, its first token at 101 ms: TTFT 9 of 11 < 90 %.
        c.unfinished(300.0, Some(101.0));
        assert!(!c.summarize(1.0).rows[0].met);
    }

    #[test]
    fn cost_figures_by_hand() {
        // 2 GPUs at $3/h = $6/h; 1000 output tokens/s = 3.6 M/h -> $6 / 3.6 = $1.666.../M.
        let c = CostSummary::new(2, 3.0, 1000.0, 4000.0);
        assert_eq!(c.cost_per_hour_usd, 6.0);
        assert!((c.usd_per_million_output_tokens - 6.0 / 3.6).abs() < 1e-12);
        assert!((c.usd_per_million_tokens - 6.0 / 14.4).abs() < 1e-12);
        assert!(CostSummary::new(1, 1.0, 0.0, 0.0)
            .usd_per_million_tokens
            .is_nan());
    }
}
