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
    /// left at zero for the simulator to fill in. Takes the latency samples (each
    /// sketch's [`Sketch::take_stats`]): a run is summarised once, at its end.
    pub fn take_summary(&mut self, duration_s: f64) -> Summary {
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
                ttft: self.requests.ttft.take_stats(),
                tpot: self.requests.tpot.take_stats(),
                e2el: self.requests.e2el.take_stats(),
                itl: self.itl.take_stats(),
                batch: (self.batch_latency.count() > 0).then(|| self.batch_latency.take_stats()),
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
                    ttft: c.requests.ttft.take_stats(),
                    tpot: c.requests.tpot.take_stats(),
                    e2el: c.requests.e2el.take_stats(),
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
/// quantiles; mean and standard deviation summed over the samples in the order they
/// came) while it holds at most [`EXACT_LIMIT`] distinct entries; beyond that, values
/// go into buckets in the way of an HDR histogram (each power of two cut into 512
/// equal buckets, indexed straight from the bits of the value) whose quantiles are
/// within [`BUCKET_ACCURACY`] relative error, and the mean and standard deviation
/// come from running sums. Memory is then a few thousand counters whatever the number
/// of samples.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    /// The exact samples' values as their bits ([`f64::to_bits`]), in the order they
    /// were added, while every weight is 1 (as for the per-request metrics: 8 bytes a
    /// sample).
    units: Vec<u64>,
    /// The exact samples as (value bits, weight), in the order they were added, from
    /// the first weight that is not 1 on (the unit samples before it moved in then,
    /// with weight 1): 16 bytes a sample.
    pairs: Vec<(u64, u64)>,
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
            if weight == 1 && self.pairs.is_empty() {
                self.units.push(v.to_bits());
            } else {
                self.push_pair(v, weight);
            }
            if self.units.len() + self.pairs.len() > EXACT_LIMIT {
                self.switch_to_buckets();
            }
        }
    }

    /// Keeps a sample with its weight, first moving the unit samples before it into
    /// the pairs with their weight of 1 if it is the first that is not 1.
    #[inline(never)]
    fn push_pair(&mut self, v: f64, weight: u64) {
        if !self.units.is_empty() {
            let units = std::mem::take(&mut self.units);
            self.pairs.reserve(units.len() + 1);
            self.pairs.extend(units.into_iter().map(|b| (b, 1)));
        }
        self.pairs.push((v.to_bits(), weight));
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
        if !self.bucketed && self.pairs.is_empty() {
            let room = (EXACT_LIMIT + 1).saturating_sub(self.units.len());
            self.units.reserve_exact(n.min(room));
        }
    }

    /// Moves the exact samples into buckets, working out the running sums, minimum
    /// and maximum from them in the order they were added.
    #[cold]
    fn switch_to_buckets(&mut self) {
        self.bucketed = true;
        let units = std::mem::take(&mut self.units);
        let pairs = std::mem::take(&mut self.pairs);
        let samples = || {
            units
                .iter()
                .map(|&b| (f64::from_bits(b), 1))
                .chain(pairs.iter().map(|&(b, c)| (f64::from_bits(b), c)))
        };
        for (k, (v, w)) in samples().enumerate() {
            if k == 0 {
                self.min = v;
                self.max = v;
            }
            self.accumulate(v, w);
        }
        for (v, w) in samples() {
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

    /// Mean, median, standard deviation and percentiles of the samples, which are
    /// left as they are (the exact ones: [`Sketch::take_stats`] of a copy).
    pub fn stats(&self) -> Stats {
        if self.bucketed {
            self.bucketed_stats()
        } else {
            self.clone().take_stats()
        }
    }

    /// [`Sketch::stats`], taking the samples: the sketch is left empty. The exact
    /// samples' order statistics are selected in their own storage, reordering it,
    /// rather than in a copy (a copy's fresh memory costs a page fault per 4 KiB,
    /// which was much of the price of a summary).
    pub fn take_stats(&mut self) -> Stats {
        let mut s = std::mem::take(self);
        if s.bucketed {
            s.bucketed_stats()
        } else if s.pairs.is_empty() {
            exact_stats(&mut s.units)
        } else {
            exact_stats(&mut s.pairs)
        }
    }

    /// The statistics of bucketed samples: the running sums' mean and standard
    /// deviation, and the buckets' quantiles.
    fn bucketed_stats(&self) -> Stats {
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

/// [`exact_stats`] of (value, count) pairs, for the tests.
#[cfg(test)]
fn exact_stats_of(w: &[(f64, u64)]) -> Stats {
    let mut pairs: Vec<(u64, u64)> = w.iter().map(|&(v, c)| (v.to_bits(), c)).collect();
    exact_stats(&mut pairs)
}

/// Statistics of exact samples `entries` (the bits of their values, with their
/// weights if not all 1), which are reordered.
///
/// The mean and standard deviation are summed over the samples in the order they
/// were added (as a bucketed sketch's running sums are). The percentiles are
/// numpy's of the samples sorted by [`f64::total_cmp`], to the bit, but without a
/// sort: a percentile needs only one or two order statistics, and those are found by
/// selection (quickselect), in increasing order, each among the entries from the
/// previous one's place on.
fn exact_stats<T: Keyed>(entries: &mut [T]) -> Stats {
    let (n, mean, std) = moments(
        entries
            .iter()
            .map(|x| (f64::from_bits(x.key()), x.weight())),
    );
    // A sign bit set (a negative value, -0.0 included) makes the largest bits at
    // least 2^63, and needs the total-order keys; otherwise the bits of +0.0 up to
    // +inf are ordered as the values.
    let signed = entries.iter().any(|x| x.key() >> 63 != 0);
    if signed {
        for x in entries.iter_mut() {
            x.set_key(total_order_key(f64::from_bits(x.key())));
        }
    }
    let value = |k: u64| {
        if signed {
            from_total_order_key(k)
        } else {
            f64::from_bits(k)
        }
    };
    let mut sel = Selection::new(entries);
    stats_from(mean, std, |p| interpolate(n, p, |idx| value(sel.at(idx))))
}

/// An entry selected by a `u64` key: a bare key (unit weight) or a (key, weight)
/// pair.
trait Keyed: Copy {
    /// Every entry weighs 1 (its order statistic of index `k` is the `k`-th key).
    const UNIT: bool;
    fn key(&self) -> u64;
    fn set_key(&mut self, k: u64);
    fn weight(&self) -> u64;
}

impl Keyed for u64 {
    const UNIT: bool = true;
    fn key(&self) -> u64 {
        *self
    }
    fn set_key(&mut self, k: u64) {
        *self = k;
    }
    fn weight(&self) -> u64 {
        1
    }
}

impl Keyed for (u64, u64) {
    const UNIT: bool = false;
    fn key(&self) -> u64 {
        self.0
    }
    fn set_key(&mut self, k: u64) {
        self.0 = k;
    }
    fn weight(&self) -> u64 {
        self.1
    }
}

/// Ranges of at most this many entries are sorted and walked rather than split again.
const SELECT_SORT_MAX: usize = 16;

/// The order statistics of entries (not empty) by key, where the order statistic of
/// index `idx` is the key of the first entry in key order whose running weight passes
/// `idx` (the last entry's past the end), as a walk over the stably sorted entries
/// finds it; equal keys are interchangeable, so the entries' order among them does not
/// matter. Asked for in increasing order of index, each is selected among the entries
/// from the previous one's place on: `entries[..from]` come first in key order (every
/// key there is at most every key from `from` on) and weigh `before` together.
struct Selection<'a, T> {
    entries: &'a mut [T],
    from: usize,
    before: u64,
    /// `entries[from]` is the previous order statistic's entry.
    found: bool,
}

impl<'a, T: Keyed> Selection<'a, T> {
    fn new(entries: &'a mut [T]) -> Self {
        Selection {
            entries,
            from: 0,
            before: 0,
            found: false,
        }
    }

    /// The key of the order statistic of index `idx`.
    fn at(&mut self, idx: u64) -> u64 {
        if idx < self.before {
            // Behind the previous one (not how percentiles ask): start again.
            (self.from, self.before, self.found) = (0, 0, false);
        }
        let (mut lo, mut hi, mut base) = (self.from, self.entries.len(), self.before);
        if self.found && idx < base + self.entries[lo].weight() {
            // In the previous one's entry (the next index often is, when weights are
            // large): nothing to select.
            return self.entries[lo].key();
        }
        if T::UNIT {
            // The entry of index `idx`, or the last.
            let i = (idx as usize).min(hi - 1);
            let (_, x, _) = self.entries[lo..].select_nth_unstable_by_key(i - lo, Keyed::key);
            let k = x.key();
            (self.from, self.before, self.found) = (i, i as u64, true);
            return k;
        }
        loop {
            let part = &mut self.entries[lo..hi];
            if part.len() <= SELECT_SORT_MAX {
                part.sort_unstable_by_key(Keyed::key);
                for (j, x) in part.iter().enumerate() {
                    if idx < base + x.weight() {
                        (self.from, self.before, self.found) = (lo + j, base, true);
                        return x.key();
                    }
                    base += x.weight();
                }
                // Past the end (only when `hi` is the end: the key is the largest).
                // The range is never empty: it starts at an entry, and a split keeps
                // at least one on the side it goes to.
                self.found = false;
                return part[part.len() - 1].key();
            }
            let mid = part.len() / 2;
            let (left, x, _) = part.select_nth_unstable_by_key(mid, Keyed::key);
            let (left_w, w, k) = (
                left.iter().map(Keyed::weight).sum::<u64>(),
                x.weight(),
                x.key(),
            );
            if idx < base + left_w {
                hi = lo + mid;
            } else if idx < base + left_w + w {
                (self.from, self.before, self.found) = (lo + mid, base + left_w, true);
                return k;
            } else {
                base += left_w + w;
                lo += mid + 1;
            }
        }
    }
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
