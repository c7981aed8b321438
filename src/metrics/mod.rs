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
        Summary {
            completed: self.completed,
            duration: duration_s,
            total_input_tokens: self.input_tokens,
            total_output_tokens: self.output_tokens,
            request_throughput: per_s(self.completed as f64),
            output_throughput: per_s(self.output_tokens as f64),
            total_token_throughput: per_s((self.input_tokens + self.output_tokens) as f64),
            latency: Latency {
                ttft: self.requests.ttft.stats(),
                tpot: self.requests.tpot.stats(),
                e2el: self.requests.e2el.stats(),
                itl: self.itl.stats(),
                batch: (self.batch_latency.count() > 0).then(|| self.batch_latency.stats()),
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
                    ttft: c.requests.ttft.stats(),
                    tpot: c.requests.tpot.stats(),
                    e2el: c.requests.e2el.stats(),
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
    exact: Vec<(f64, u64)>,
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
            self.exact.push((v, weight));
            if self.exact.len() > EXACT_LIMIT {
                self.switch_to_buckets();
            }
        }
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
            let room = (EXACT_LIMIT + 1).saturating_sub(self.exact.len());
            self.exact.reserve_exact(n.min(room));
        }
    }

    /// Moves the exact samples into buckets, working out the running sums, minimum
    /// and maximum from them in the order they were added.
    #[cold]
    fn switch_to_buckets(&mut self) {
        self.bucketed = true;
        let exact = std::mem::take(&mut self.exact);
        for (k, &(v, w)) in exact.iter().enumerate() {
            if k == 0 {
                self.min = v;
                self.max = v;
            }
            self.accumulate(v, w);
        }
        for (v, w) in exact {
            self.put(v, w);
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
    pub fn stats(&mut self) -> Stats {
        if !self.bucketed {
            return exact_stats(&mut self.exact);
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

/// Statistics of weighted samples: (value, count). Sorts in place.
fn exact_stats(w: &mut [(f64, u64)]) -> Stats {
    sort_by_total_order(w);
    let (n, mean, std) = moments(w);
    // With every weight 1 (the per-request metrics), the k-th order statistic is
    // the k-th entry: no scan for it.
    let unit = w.iter().all(|x| x.1 == 1);
    let pct = |p: f64| {
        if unit {
            unit_percentile(w, p)
        } else {
            percentile(w, n, p)
        }
    };
    Stats {
        mean,
        median: pct(50.0),
        std,
        p50: pct(50.0),
        p90: pct(90.0),
        p95: pct(95.0),
        p99: pct(99.0),
    }
}

/// Count, mean and standard deviation of weighted samples (summed in their order;
/// zeros when empty).
fn moments(w: &[(f64, u64)]) -> (u64, f64, f64) {
    let n: u64 = w.iter().map(|x| x.1).sum();
    if n == 0 {
        return (0, 0.0, 0.0);
    }
    let mean = w.iter().map(|&(v, c)| v * c as f64).sum::<f64>() / n as f64;
    let var = w
        .iter()
        .map(|&(v, c)| (v - mean) * (v - mean) * c as f64)
        .sum::<f64>()
        / n as f64;
    (n, mean, var.sqrt())
}

/// [`percentile`] of sorted samples that all have weight 1: the same arithmetic on
/// the same order statistics, read by index.
fn unit_percentile(sorted: &[(f64, u64)], p: f64) -> f64 {
    let n = sorted.len() as u64;
    if n == 0 {
        return 0.0;
    }
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as u64;
    let frac = rank - lo as f64;
    let at = |idx: u64| {
        sorted
            .get(idx as usize)
            .map_or(sorted[sorted.len() - 1].0, |x| x.0)
    };
    let a = at(lo);
    if frac == 0.0 {
        a
    } else {
        a + frac * (at(lo + 1) - a)
    }
}

/// Below this many samples the comparison sort is used (the radix sort's counting
/// passes cost more than they save).
const RADIX_MIN: usize = 256;
/// Bits of the key sorted per pass of the radix sort (six passes cover 64 bits).
const RADIX_BITS: u32 = 11;

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

/// Sorts `w` by value in [`f64::total_cmp`] order, stably: exactly the permutation
/// of `w.sort_by(|a, b| a.0.total_cmp(&b.0))`. A least-significant-digit radix sort
/// on [`total_order_key`] (each counting pass is stable, so the result is the stable
/// sort by the whole key; equal keys are equal values and keep their order), in
/// passes of [`RADIX_BITS`] bits, skipping a pass in which every key has the same
/// digit.
fn sort_by_total_order(w: &mut [(f64, u64)]) {
    if w.len() < RADIX_MIN {
        w.sort_by(|a, b| a.0.total_cmp(&b.0));
        return;
    }
    const BUCKETS: usize = 1 << RADIX_BITS;
    const PASSES: usize = 64usize.div_ceil(RADIX_BITS as usize);
    let mask = (BUCKETS - 1) as u64;
    let mut src: Vec<(u64, u64)> = w.iter().map(|&(v, c)| (total_order_key(v), c)).collect();
    let mut counts = vec![[0usize; BUCKETS]; PASSES];
    for &(k, _) in &src {
        for (p, c) in counts.iter_mut().enumerate() {
            c[((k >> (p as u32 * RADIX_BITS)) & mask) as usize] += 1;
        }
    }
    let mut dst = vec![(0u64, 0u64); src.len()];
    let n = src.len();
    for (p, c) in counts.iter_mut().enumerate() {
        let shift = p as u32 * RADIX_BITS;
        if c[((src[0].0 >> shift) & mask) as usize] == n {
            continue;
        }
        let mut at = 0;
        for x in c.iter_mut() {
            let k = *x;
            *x = at;
            at += k;
        }
        for &e in &src {
            let d = ((e.0 >> shift) & mask) as usize;
            dst[c[d]] = e;
            c[d] += 1;
        }
        std::mem::swap(&mut src, &mut dst);
    }
    for (x, &(k, c)) in w.iter_mut().zip(&src) {
        *x = (from_total_order_key(k), c);
    }
}

/// numpy's default (linear) percentile of sorted weighted samples; 0 when empty.
pub fn percentile(sorted: &[(f64, u64)], n: u64, p: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank.floor() as u64;
    let frac = rank - lo as f64;
    let at = |idx: u64| -> f64 {
        let mut acc = 0;
        for &(v, c) in sorted {
            acc += c;
            if idx < acc {
                return v;
            }
        }
        sorted.last().map(|x| x.0).unwrap_or(0.0)
    };
    let a = at(lo);
    if frac == 0.0 {
        a
    } else {
        a + frac * (at(lo + 1) - a)
    }
}

#[cfg(test)]
mod tests;
