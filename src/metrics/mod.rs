//! Metrics: per-request records in, `benchmark_serving`-style summary out.
//!
//! Definitions follow vLLM's `benchmark_serving.py` so predictions compare one to one
//! with its result JSON (a timed run counts the requests that complete inside its
//! measurement window, as a load generator does): TTFT = first token − arrival; TPOT = (E2E − TTFT) /
//! (output tokens − 1) over requests with more than one output token; ITL = every gap
//! between consecutive tokens of a request; E2E = last token − arrival; throughput =
//! completed / duration, where a finite run's duration spans from the first arrival
//! (t = 0) to the last completion and a timed run's spans its measurement window.
//! Percentiles interpolate linearly between order statistics (numpy's default) and
//! the standard deviation is the population one (`np.std`).

mod deferred;
pub mod slo;
pub mod summary;

pub use deferred::ClientClock;
use deferred::Deferred;

pub use slo::{CostSummary, Slo, SloSummary};
pub use summary::{
    ClassRow, ClientSummary, FrontEndSummary, GpuRow, InstanceRow, Latency, Stats, Summary,
};

use crate::time::{Dur, SimTime};
use crate::workload::Request;
use serde::Serialize;

/// One completed request (kept only when per-request output is asked for).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Request id.
    pub id: u64,
    /// Arrival, seconds.
    pub arrival_s: f64,
    /// First scheduled, seconds.
    pub scheduled_s: f64,
    /// First token, seconds.
    pub first_token_s: f64,
    /// Last token, seconds.
    pub finish_s: f64,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Instance that served it.
    pub instance: u32,
    /// Closed-loop user that sent it, if any.
    pub user: Option<u32>,
    /// Workload class.
    pub class: u16,
    /// Scheduling priority.
    pub priority: i32,
    /// Tenant.
    pub tenant: u32,
}

/// Collects what a run produces.
pub struct Recorder {
    window_start: SimTime,
    requests: RequestSketches,
    itl: Sketch,
    batch_latency: Sketch,
    /// Completed requests inside the measurement window.
    pub completed: u64,
    /// Prompt tokens of those requests.
    pub input_tokens: u64,
    /// Output tokens of those requests.
    pub output_tokens: u64,
    /// Every token emitted (including outside the window), for conservation checks.
    pub tokens_emitted: u64,
    /// Latest completion counted.
    pub last_finish: SimTime,
    /// Latest first admission (scheduling) of a counted request.
    pub last_scheduled: SimTime,
    /// Per-request records, if asked for.
    pub records: Option<Vec<RequestRecord>>,
    csv: Option<Box<dyn std::io::Write + Send>>,
    csv_error: Option<String>,
    /// Per workload class, when the workload has several.
    classes: Vec<ClassRecorder>,
    /// Completed requests and token gaps held until the client's view of them is
    /// known ([`Recorder::defer`], [`Recorder::flush`]).
    deferred: Deferred,
    /// SLO counts, when the run has `[slo]`.
    slo: Option<slo::SloCounter>,
}

/// What [`Recorder`] keeps per workload class.
#[derive(Debug, Clone, Default)]
struct ClassRecorder {
    name: String,
    priority: i32,
    tenant: u32,
    requests: RequestSketches,
    completed: u64,
    output_tokens: u64,
}

/// The per-request latency sketches (TTFT, TPOT, E2E), of a run or of one class.
#[derive(Debug, Clone, Default)]
struct RequestSketches {
    ttft: Sketch,
    tpot: Sketch,
    e2el: Sketch,
}

impl RequestSketches {
    /// Room for `n` requests in each sketch ([`Sketch::reserve`]).
    fn reserve(&mut self, n: usize) {
        self.ttft.reserve(n);
        self.tpot.reserve(n);
        self.e2el.reserve(n);
    }

    /// A completed request of `output_tokens` with these TTFT and E2E (ms); TPOT as
    /// `benchmark_serving` defines it, for requests of more than one output token.
    fn add(&mut self, ttft: f64, e2el: f64, output_tokens: u32) {
        self.ttft.add(ttft, 1);
        self.e2el.add(e2el, 1);
        if output_tokens > 1 {
            self.tpot.add((e2el - ttft) / (output_tokens - 1) as f64, 1);
        }
    }
}

/// Header of the per-request CSV (`--requests-csv`): times in seconds.
pub const REQUESTS_CSV_HEADER: &str =
    "id,arrival_s,scheduled_s,first_token_s,finish_s,input_tokens,output_tokens,instance,user";

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("completed", &self.completed)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder that counts requests completing at or after `window_start`.
    pub fn new(window_start: SimTime, keep_records: bool) -> Self {
        Recorder {
            window_start,
            requests: RequestSketches::default(),
            itl: Sketch::default(),
            batch_latency: Sketch::default(),
            completed: 0,
            input_tokens: 0,
            output_tokens: 0,
            tokens_emitted: 0,
            last_finish: SimTime::ZERO,
            last_scheduled: SimTime::ZERO,
            records: keep_records.then(Vec::new),
            csv: None,
            csv_error: None,
            classes: Vec::new(),
            deferred: Deferred::default(),
            slo: None,
        }
    }

    /// Expects about `n` counted requests (a run of a known number of requests):
    /// the per-request sketches make room for them now rather than grow while they
    /// fill (never more than [`EXACT_LIMIT`] + 1 entries each). Only the run's own
    /// sketches: how the requests split among the classes is not known beforehand.
    pub fn expect_requests(&mut self, n: u64) {
        self.requests
            .reserve(usize::try_from(n).unwrap_or(usize::MAX));
    }

    /// Judges every counted request (and token gap) against these SLOs.
    pub fn set_slo(&mut self, slo: &Slo) {
        self.slo = Some(slo::SloCounter::new(*slo));
    }

    /// A request still in flight when a timed run ends at `end` (sent at its
    /// `arrival`), with its first token's time if it came: it counts against the SLO
    /// bounds it has already missed ([`slo::SloCounter::unfinished`]).
    pub fn unfinished(&mut self, req: &Request, first_token: Option<SimTime>, end: SimTime) {
        if let Some(c) = &mut self.slo {
            let ttft = first_token.map(|t| (t - req.arrival).as_millis_f64());
            c.unfinished((end - req.arrival).as_millis_f64(), ttft);
        }
    }

    /// `weight` tokens each came `gap` after the previous token of their request.
    pub fn itl(&mut self, now: SimTime, gap: Dur, weight: u64) {
        if self.deferred.itl {
            self.deferred.pending_itl.push((now, gap, weight));
            return;
        }
        self.add_itl(now, gap, weight);
    }

    fn add_itl(&mut self, now: SimTime, gap: Dur, weight: u64) {
        if now >= self.window_start && weight > 0 {
            self.itl.add(gap.as_millis_f64(), weight);
            if let Some(c) = &mut self.slo {
                c.gaps(gap.as_millis_f64(), weight);
            }
        }
    }

    /// Keeps per-class statistics for a workload made of these classes (none for
    /// fewer than two).
    pub fn set_classes(&mut self, classes: &[crate::workload::WorkloadClass]) {
        self.classes = if classes.len() < 2 {
            Vec::new()
        } else {
            classes
                .iter()
                .map(|c| ClassRecorder {
                    name: c.name.clone(),
                    priority: c.priority,
                    tenant: c.tenant,
                    ..ClassRecorder::default()
                })
                .collect()
        };
    }

    /// `n` tokens were emitted.
    pub fn tokens(&mut self, n: u64) {
        self.tokens_emitted += n;
    }

    /// A request completed.
    pub fn request(
        &mut self,
        req: &Request,
        instance: usize,
        scheduled: SimTime,
        first: SimTime,
        finish: SimTime,
    ) {
        if self.deferred.requests {
            self.deferred
                .pending
                .push((*req, instance, scheduled, first, finish));
            return;
        }
        self.add_request(req, instance, scheduled, first, finish);
    }

    fn add_request(
        &mut self,
        req: &Request,
        instance: usize,
        scheduled: SimTime,
        first: SimTime,
        finish: SimTime,
    ) {
        if finish < self.window_start {
            return;
        }
        let ttft = (first - req.arrival).as_millis_f64();
        let e2el = (finish - req.arrival).as_millis_f64();
        self.requests.add(ttft, e2el, req.output_tokens);
        if let Some(c) = &mut self.slo {
            let tpot =
                (req.output_tokens > 1).then(|| (e2el - ttft) / (req.output_tokens - 1) as f64);
            c.request(ttft, tpot, e2el);
        }
        if let Some(c) = self.classes.get_mut(req.class as usize) {
            c.requests.add(ttft, e2el, req.output_tokens);
            c.completed += 1;
            c.output_tokens += req.output_tokens as u64;
        }
        self.completed += 1;
        self.input_tokens += req.input_tokens as u64;
        self.output_tokens += req.output_tokens as u64;
        self.last_finish = self.last_finish.max(finish);
        self.last_scheduled = self.last_scheduled.max(scheduled);
        if self.records.is_none() && self.csv.is_none() {
            return;
        }
        let rec = RequestRecord {
            id: req.id,
            arrival_s: req.arrival.as_secs_f64(),
            scheduled_s: scheduled.as_secs_f64(),
            first_token_s: first.as_secs_f64(),
            finish_s: finish.as_secs_f64(),
            input_tokens: req.input_tokens,
            output_tokens: req.output_tokens,
            instance: instance as u32,
            user: req.user,
            class: req.class,
            priority: req.priority,
            tenant: req.tenant,
        };
        if let Some(r) = &mut self.records {
            r.push(rec);
        }
        if let Some(w) = &mut self.csv {
            use std::io::Write;
            let user = rec.user.map(|u| u.to_string()).unwrap_or_default();
            let line = writeln!(
                w,
                "{},{:.9},{:.9},{:.9},{:.9},{},{},{},{}",
                rec.id,
                rec.arrival_s,
                rec.scheduled_s,
                rec.first_token_s,
                rec.finish_s,
                rec.input_tokens,
                rec.output_tokens,
                rec.instance,
                user
            );
            if let Err(e) = line {
                self.csv_error.get_or_insert(e.to_string());
            }
        }
    }

    /// Streams every counted request to `w` as CSV (header written now).
    pub fn stream_csv(&mut self, mut w: Box<dyn std::io::Write + Send>) -> std::io::Result<()> {
        writeln!(w, "{REQUESTS_CSV_HEADER}")?;
        self.csv = Some(w);
        Ok(())
    }

    /// Flushes the per-request CSV; the first write error, if any.
    pub fn finish_csv(&mut self) -> Result<(), crate::error::SimError> {
        if let Some(w) = &mut self.csv {
            if let Err(e) = w.flush() {
                self.csv_error.get_or_insert(e.to_string());
            }
        }
        self.csv = None;
        match self.csv_error.take() {
            Some(e) => Err(crate::error::SimError::RequestsCsv(e)),
            None => Ok(()),
        }
    }

    /// An offline batch took `latency` from submission to its last completion.
    pub fn batch(&mut self, latency: Dur) {
        self.batch_latency.add(latency.as_millis_f64(), 1);
    }

    /// The request-side summary (counts, throughputs, latency statistics);
    /// `duration_s` is the denominator of the throughputs. The engine counters are
    /// left at zero for the simulator to fill in.
    pub fn summarize(&mut self, duration_s: f64) -> Summary {
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        let sc = &mut SortScratch::default();
        Summary {
            completed: self.completed,
            duration: duration_s,
            total_input_tokens: self.input_tokens,
            total_output_tokens: self.output_tokens,
            request_throughput: per_s(self.completed as f64),
            output_throughput: per_s(self.output_tokens as f64),
            total_token_throughput: per_s((self.input_tokens + self.output_tokens) as f64),
            latency: Latency {
                ttft: self.requests.ttft.stats_in(sc),
                tpot: self.requests.tpot.stats_in(sc),
                e2el: self.requests.e2el.stats_in(sc),
                itl: self.itl.stats_in(sc),
                batch: (self.batch_latency.count() > 0).then(|| self.batch_latency.stats_in(sc)),
            },
            per_class: self
                .classes
                .iter_mut()
                .enumerate()
                .map(|(i, c)| ClassRow {
                    class: i as u64,
                    name: c.name.clone(),
                    priority: c.priority as i64,
                    tenant: c.tenant as u64,
                    completed: c.completed,
                    total_output_tokens: c.output_tokens,
                    request_throughput: per_s(c.completed as f64),
                    output_throughput: per_s(c.output_tokens as f64),
                    ttft: c.requests.ttft.stats_in(sc),
                    tpot: c.requests.tpot.stats_in(sc),
                    e2el: c.requests.e2el.stats_in(sc),
                })
                .collect(),
            slo: self.slo.as_ref().map(|c| c.summarize(duration_s)),
            ..Summary::default()
        }
    }
}

/// A JSON number (non-finite values become null, as serde_json writes them).
pub fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// Samples kept exactly while they are few: up to this many distinct entries.
pub const EXACT_LIMIT: usize = 100_000;
/// Relative accuracy of quantiles once samples are bucketed: a bucket spans a relative
/// width of at most 2^-9 and reports its middle, so any value in it is within
/// 2^-10 < 0.1 % of what is reported.
pub const BUCKET_ACCURACY: f64 = 0.001;
/// Buckets per power of two (HDR-histogram style): 2^SUB_BITS equal-width buckets.
const SUB_BITS: u32 = 9;
const BUCKET_MIN: f64 = 1e-3;

/// Weighted samples of one metric with bounded memory. Exact (numpy-identical
/// quantiles, mean and standard deviation) while it holds at most [`EXACT_LIMIT`]
/// distinct entries; beyond that, values go into buckets in the way of an HDR
/// histogram (each power of two cut into 512 equal buckets, indexed straight from the
/// bits of the value) whose quantiles are within [`BUCKET_ACCURACY`] relative error,
/// and the mean and standard deviation come from running sums. Memory is then a few
/// thousand counters whatever the number of samples.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    /// The exact samples' values, in the order they were added.
    values: Vec<f64>,
    /// Their weights, in step with `values` from the first weight that is not 1 on
    /// (the ones before it filled in then); empty while every weight is 1, as for the
    /// per-request metrics, which then take 8 bytes a sample instead of 16.
    weights: Vec<u64>,
    bucketed: bool,
    buckets: Vec<u64>,
    n: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Sketch {
    /// The bucket of `v`: 0 for values up to [`BUCKET_MIN`], then one per
    /// `2^-SUB_BITS`-wide slice of each power of two (for positive floats, the bits
    /// above the top `SUB_BITS` of the mantissa order them as the values).
    fn bucket(v: f64) -> usize {
        if v <= BUCKET_MIN {
            0
        } else {
            let shift = f64::MANTISSA_DIGITS - 1 - SUB_BITS;
            1 + ((v.to_bits() >> shift) - (BUCKET_MIN.to_bits() >> shift)) as usize
        }
    }

    fn bucket_value(i: usize) -> f64 {
        if i == 0 {
            BUCKET_MIN
        } else {
            let shift = f64::MANTISSA_DIGITS - 1 - SUB_BITS;
            let key = (BUCKET_MIN.to_bits() >> shift) + i as u64 - 1;
            let lo = f64::from_bits(key << shift);
            let hi = f64::from_bits((key + 1) << shift);
            0.5 * (lo + hi)
        }
    }

    /// Adds `weight` samples of value `v` (non-finite values are ignored).
    ///
    /// While the samples are kept exactly, only they are stored: the running sums,
    /// minimum and maximum the bucketed statistics need are worked out when the
    /// sketch switches to buckets, by replaying the stored samples in the order they
    /// were added (the same operations in the same order as keeping them up to date
    /// here, so the same bits).
    #[inline]
    pub fn add(&mut self, v: f64, weight: u64) {
        if !v.is_finite() || weight == 0 {
            return;
        }
        self.n += weight;
        if self.bucketed {
            self.add_bucketed(v, weight);
        } else {
            self.values.push(v);
            if weight != 1 || !self.weights.is_empty() {
                self.push_weight(weight);
            }
            if self.values.len() > EXACT_LIMIT {
                self.switch_to_buckets();
            }
        }
    }

    /// Records the weight of the sample just pushed, first giving the samples before
    /// it their weight of 1 if this is the first that is not 1.
    #[inline(never)]
    fn push_weight(&mut self, weight: u64) {
        self.weights.resize(self.values.len() - 1, 1);
        self.weights.push(weight);
    }

    /// [`Sketch::add`] once the samples are bucketed. Kept out of line so that `add`
    /// itself stays small for the common case of exact samples (a push): with the
    /// bucket arithmetic inlined, every call saved and restored a full set of
    /// registers, which cost as much as the push.
    #[inline(never)]
    fn add_bucketed(&mut self, v: f64, weight: u64) {
        self.accumulate(v, weight);
        self.put(v, weight);
    }

    /// Makes room for `n` more exact samples (at most as many as are ever kept
    /// exactly), so that a sketch whose number of samples is known beforehand does
    /// not grow its storage by doubling (a reallocation and a copy each time) while
    /// it fills. Nothing once the samples are bucketed.
    pub fn reserve(&mut self, n: usize) {
        if !self.bucketed {
            let room = (EXACT_LIMIT + 1).saturating_sub(self.values.len());
            self.values.reserve_exact(n.min(room));
        }
    }

    /// Moves the exact samples into buckets, working out the running sums, minimum
    /// and maximum from them in the order they were added.
    #[cold]
    fn switch_to_buckets(&mut self) {
        self.bucketed = true;
        let values = std::mem::take(&mut self.values);
        let weights = std::mem::take(&mut self.weights);
        let w = |k: usize| weights.get(k).copied().unwrap_or(1);
        for (k, &v) in values.iter().enumerate() {
            if k == 0 {
                self.min = v;
                self.max = v;
            }
            self.accumulate(v, w(k));
        }
        for (k, &v) in values.iter().enumerate() {
            self.put(v, w(k));
        }
    }

    /// Adds `weight` samples of `v` to the running sums, minimum and maximum.
    fn accumulate(&mut self, v: f64, weight: u64) {
        self.sum += v * weight as f64;
        self.sum_sq += v * v * weight as f64;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn put(&mut self, v: f64, w: u64) {
        let i = Self::bucket(v);
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, 0);
        }
        self.buckets[i] += w;
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean, median, standard deviation and percentiles of the samples.
    pub fn stats(&self) -> Stats {
        self.stats_in(&mut SortScratch::default())
    }

    /// [`Sketch::stats`], sorting in `scratch`'s buffers (a summary of several
    /// sketches reuses them: fresh memory costs a page fault per 4 KiB).
    pub fn stats_in(&self, scratch: &mut SortScratch) -> Stats {
        if !self.bucketed {
            return exact_stats_in(&self.values, &self.weights, scratch);
        }
        let n = self.n as f64;
        let mean = self.sum / n;
        Stats {
            mean,
            median: self.quantile(50.0),
            std: (self.sum_sq / n - mean * mean).max(0.0).sqrt(),
            p50: self.quantile(50.0),
            p90: self.quantile(90.0),
            p95: self.quantile(95.0),
            p99: self.quantile(99.0),
        }
    }

    fn order_stat(&self, idx: u64) -> f64 {
        let mut acc = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            acc += c;
            if idx < acc {
                return Self::bucket_value(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    fn quantile(&self, p: f64) -> f64 {
        let rank = p / 100.0 * (self.n - 1) as f64;
        let lo = rank.floor() as u64;
        let frac = rank - lo as f64;
        let a = self.order_stat(lo);
        if frac == 0.0 {
            a
        } else {
            a + frac * (self.order_stat(lo + 1) - a)
        }
    }
}

/// [`exact_stats_in`] of (value, count) pairs, for the tests.
#[cfg(test)]
fn exact_stats(w: &[(f64, u64)]) -> Stats {
    let values: Vec<f64> = w.iter().map(|x| x.0).collect();
    let weights: Vec<u64> = w.iter().map(|x| x.1).collect();
    exact_stats_in(&values, &weights, &mut SortScratch::default())
}

/// Buffers the exact statistics sort in, kept from one sketch to the next.
#[derive(Debug, Default)]
pub struct SortScratch {
    keys: Vec<u64>,
    sorted_keys: Vec<u64>,
    pairs: Vec<(u64, u64)>,
    sorted_pairs: Vec<(u64, u64)>,
    ends: Vec<u32>,
}

/// Statistics of samples `values` with `weights` (empty: all 1), left as they are
/// (the sort works on a copy of their bits in `scratch`).
///
/// The result is bit for bit that of sorting the samples stably by
/// [`f64::total_cmp`] and then taking [`moments`] and [`percentile`] of them: the
/// sort gives the same order (equal values keep the order they were added in, which
/// matters for the sums of weighted samples), the sums add the same terms in the
/// same order, and the percentiles read the same order statistics.
fn exact_stats_in(values: &[f64], weights: &[u64], scratch: &mut SortScratch) -> Stats {
    let sc = scratch;
    if weights.iter().all(|&c| c == 1) {
        // With every weight 1 (the per-request metrics) equal values are
        // indistinguishable, so the bare keys are sorted (8 bytes an entry instead of
        // 16), and the k-th order statistic is the k-th key: no scan for it.
        sc.keys.clear();
        sc.keys.extend(values.iter().map(|v| v.to_bits()));
        if sort_samples_into(&mut sc.keys, &mut sc.sorted_keys, &mut sc.ends) {
            unit_stats(&sc.sorted_keys, f64::from_bits)
        } else {
            unit_stats(&sc.sorted_keys, from_total_order_key)
        }
    } else {
        sc.pairs.clear();
        sc.pairs
            .extend(values.iter().zip(weights).map(|(v, &c)| (v.to_bits(), c)));
        if sort_samples_into(&mut sc.pairs, &mut sc.sorted_pairs, &mut sc.ends) {
            weighted_stats(&sc.sorted_pairs, f64::from_bits)
        } else {
            weighted_stats(&sc.sorted_pairs, from_total_order_key)
        }
    }
}

/// [`sort_samples_into`] in place, for the tests.
#[cfg(test)]
fn sort_samples<T: Keyed>(v: &mut [T]) -> bool {
    let mut sorted = Vec::new();
    let bits = sort_samples_into(v, &mut sorted, &mut Vec::new());
    v.copy_from_slice(&sorted);
    bits
}

/// Sorts entries `v` whose keys are the bits of samples stably by
/// [`f64::total_cmp`] of the samples, into `sorted` (`v` is left as scratch; `ends`
/// is the bucket counts' buffer), and says how to read a sample back from its key:
/// `true` when the keys are still the bits (no sample has its sign bit set: the bits
/// of +0.0 up to +inf are ordered as the values, so neither way needs a conversion;
/// the common case, latencies), `false` when they had to become
/// [`total_order_key`]s.
fn sort_samples_into<T: Keyed>(v: &mut [T], sorted: &mut Vec<T>, ends: &mut Vec<u32>) -> bool {
    if v.is_empty() {
        sorted.clear();
        return true;
    }
    let (mut min, mut max) = key_range(v);
    // A sign bit set (a negative value, -0.0 included) makes the largest key
    // at least 2^63.
    let bits = max < 1 << 63;
    if !bits {
        for x in v.iter_mut() {
            x.set_key(total_order_key(f64::from_bits(x.key())));
        }
        (min, max) = key_range(v);
    }
    // `bucket_sort` writes every entry of `sorted`, so only its length matters: the
    // buffer a previous sort left is reused as it is (no copy).
    sorted.truncate(v.len());
    let have = sorted.len();
    sorted.extend_from_slice(&v[have..]);
    bucket_sort(v, sorted, min, max, ends);
    bits
}

/// [`exact_stats_in`] of unit-weight samples sorted as keys that `value` reads.
fn unit_stats(keys: &[u64], value: impl Fn(u64) -> f64 + Copy) -> Stats {
    let (n, mean, std) = moments(keys.iter().map(|&k| (value(k), 1)));
    let last = keys.len().saturating_sub(1);
    stats_from(mean, std, |p| {
        interpolate(n, p, |idx| value(keys[(idx as usize).min(last)]))
    })
}

/// [`exact_stats_in`] of weighted samples sorted as (key, weight) with keys that
/// `value` reads.
fn weighted_stats(pairs: &[(u64, u64)], value: impl Fn(u64) -> f64 + Copy) -> Stats {
    let (n, mean, std) = moments(pairs.iter().map(|&(k, c)| (value(k), c)));
    let mut cursor = OrderStats {
        sorted: pairs,
        pos: 0,
        before: 0,
    };
    stats_from(mean, std, |p| {
        interpolate(n, p, |idx| value(cursor.at(idx)))
    })
}

/// [`Stats`] with this mean and standard deviation and the percentiles `pct` gives,
/// asked for in increasing order (the median is the 50th percentile).
fn stats_from(mean: f64, std: f64, mut pct: impl FnMut(f64) -> f64) -> Stats {
    let p50 = pct(50.0);
    Stats {
        mean,
        median: p50,
        std,
        p50,
        p90: pct(90.0),
        p95: pct(95.0),
        p99: pct(99.0),
    }
}

/// Count, mean and standard deviation of weighted samples (summed in their order;
/// zeros when empty).
fn moments<I: Iterator<Item = (f64, u64)> + Clone>(w: I) -> (u64, f64, f64) {
    let n: u64 = w.clone().map(|x| x.1).sum();
    if n == 0 {
        return (0, 0.0, 0.0);
    }
    let mean = w.clone().map(|(v, c)| v * c as f64).sum::<f64>() / n as f64;
    let var = w
        .map(|(v, c)| (v - mean) * (v - mean) * c as f64)
        .sum::<f64>()
        / n as f64;
    (n, mean, var.sqrt())
}

/// numpy's default (linear) percentile `p` of `n` samples whose order statistic of
/// index `idx` is `at(idx)`; 0 when empty.
fn interpolate(n: u64, p: f64, mut at: impl FnMut(u64) -> f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as u64;
    let frac = rank - lo as f64;
    let a = at(lo);
    if frac == 0.0 {
        a
    } else {
        a + frac * (at(lo + 1) - a)
    }
}

/// The order statistics of weighted samples sorted by key, found as [`percentile`]
/// finds them (the first entry whose running count passes the index; the last entry
/// past the end) but with a cursor that carries on from the previous index: the
/// percentiles are asked for in increasing order, so one walk finds them all instead
/// of one walk from the start each.
struct OrderStats<'a> {
    sorted: &'a [(u64, u64)],
    /// The entry the cursor is at.
    pos: usize,
    /// Total weight of the entries before `pos`.
    before: u64,
}

impl OrderStats<'_> {
    /// The key of the order statistic of index `idx` (of samples of positive total
    /// weight: never empty).
    fn at(&mut self, idx: u64) -> u64 {
        if idx < self.before {
            // An index behind the cursor (neighbouring percentiles of few samples
            // can share an order statistic): walk again from the start.
            self.pos = 0;
            self.before = 0;
        }
        while let Some(&(k, c)) = self.sorted.get(self.pos) {
            if idx < self.before + c {
                return k;
            }
            self.before += c;
            self.pos += 1;
        }
        self.sorted[self.sorted.len() - 1].0
    }
}

/// The unsigned integer whose order is [`f64::total_cmp`]'s order of `v`:
/// `total_cmp` flips every bit but the sign of a negative value and compares as a
/// signed integer; flipping the sign bit too makes that an unsigned comparison.
fn total_order_key(v: f64) -> u64 {
    let b = v.to_bits();
    b ^ ((((b as i64) >> 63) as u64) >> 1) ^ (1 << 63)
}

/// The inverse of [`total_order_key`].
fn from_total_order_key(k: u64) -> f64 {
    let b = k ^ (1 << 63);
    f64::from_bits(b ^ ((((b as i64) >> 63) as u64) >> 1))
}

/// An entry sorted by a `u64` key: a bare key (unit weights, where entries with the
/// same key are interchangeable) or a (key, weight) pair.
trait Keyed: Copy {
    fn key(&self) -> u64;
    fn set_key(&mut self, k: u64);
}

impl Keyed for u64 {
    fn key(&self) -> u64 {
        *self
    }
    fn set_key(&mut self, k: u64) {
        *self = k;
    }
}

impl Keyed for (u64, u64) {
    fn key(&self) -> u64 {
        self.0
    }
    fn set_key(&mut self, k: u64) {
        self.0 = k;
    }
}

/// Buckets of at most this many entries are finished by insertion sort (a bucket
/// pass over them would cost more than the few moves it saves).
const INSERTION_MAX: usize = 24;
/// At most 2^this buckets per pass of [`bucket_sort`] (the counts of a pass stay
/// within a few hundred kilobytes). About one bucket per entry, and no more, was
/// the cheapest on 100,000 latency samples: twice as many buckets cost more to
/// count and clear than they save in the insertion sort, half as many the other
/// way round.
const MAX_BUCKET_BITS: u32 = 16;

/// The smallest and largest key of `v` (not empty).
fn key_range<T: Keyed>(v: &[T]) -> (u64, u64) {
    v.iter().fold((u64::MAX, 0), |(lo, hi), x| {
        (lo.min(x.key()), hi.max(x.key()))
    })
}

/// Stable insertion sort by key: an entry moves only past larger keys. An entry
/// already in place (most of them, after [`bucket_sort`]'s scatter) costs one
/// comparison and no store.
fn insertion_sort<T: Keyed>(v: &mut [T]) {
    for i in 1..v.len() {
        let x = v[i];
        if v[i - 1].key() <= x.key() {
            continue;
        }
        let mut j = i;
        while j > 0 && v[j - 1].key() > x.key() {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Writes `src` (keys from `min` to `max`) into `dst` sorted by key, stably; `src`
/// is left as scratch.
///
/// A most-significant-digit bucket pass that adapts to the keys: keys minus `min`
/// are bucketed by their top bits, with the shift chosen from `max - min` so that
/// the range splits into about as many buckets as there are entries (at most
/// 2^[`MAX_BUCKET_BITS`]). Latency samples then spread thinly over the buckets: the
/// keys of positive floats grow with the exponent and then the mantissa, so
/// equal-width key buckets span about equal relative widths of value (within a
/// factor of two), finer where the values are small. One counting pass and one stable scatter; then the buckets of more than
/// [`INSERTION_MAX`] entries (skewed samples that crowd into a few buckets) are
/// sorted by the same pass over their own key range (a bucket of equal keys is
/// already in order), and one insertion sort over the whole finishes the small
/// buckets: every key of a bucket is below every key of the next, so an entry never
/// moves out of its bucket, and the big buckets, already sorted, cost it one
/// comparison an entry. Every step keeps the entries of a bucket in their order, so
/// the whole is the stable sort.
fn bucket_sort<T: Keyed>(src: &mut [T], dst: &mut [T], min: u64, max: u64, ends: &mut Vec<u32>) {
    let n = src.len();
    if min == max || n <= INSERTION_MAX {
        dst.copy_from_slice(src);
        if min != max {
            insertion_sort(dst);
        }
        return;
    }
    let range_bits = u64::BITS - (max - min).leading_zeros();
    let bucket_bits = (usize::BITS - 1 - n.leading_zeros()).min(MAX_BUCKET_BITS);
    let shift = range_bits.saturating_sub(bucket_bits);
    let bucket = |x: &T| ((x.key() - min) >> shift) as usize;
    // (Counts fit in 32 bits: at most EXACT_LIMIT + 1 entries are sorted.)
    ends.clear();
    ends.resize(((max - min) >> shift) as usize + 1, 0);
    for x in src.iter() {
        ends[bucket(x)] += 1;
    }
    // Each bucket's start; the big buckets noted on the way.
    let mut big = Vec::new();
    let mut at = 0;
    for e in ends.iter_mut() {
        let count = *e as usize;
        *e = at as u32;
        if count > INSERTION_MAX {
            big.push(at..at + count);
        }
        at += count;
    }
    for x in src.iter() {
        let e = &mut ends[bucket(x)];
        dst[*e as usize] = *x;
        *e += 1;
    }
    if shift == 0 {
        // A bucket per key: nothing left to order.
        return;
    }
    for r in big {
        let (s, d) = (&mut src[r.clone()], &mut dst[r]);
        s.copy_from_slice(d);
        let (lo, hi) = key_range(s);
        bucket_sort(s, d, lo, hi, ends);
    }
    insertion_sort(dst);
}

/// numpy's default (linear) percentile of sorted weighted samples; 0 when empty.
pub fn percentile(sorted: &[(f64, u64)], n: u64, p: f64) -> f64 {
    interpolate(n, p, |idx| {
        let mut acc = 0;
        for &(v, c) in sorted {
            acc += c;
            if idx < acc {
                return v;
            }
        }
        sorted.last().map(|x| x.0).unwrap_or(0.0)
    })
}

#[cfg(test)]
mod tests;
