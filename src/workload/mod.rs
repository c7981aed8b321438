//! Workloads: when requests arrive and how long they are (DESIGN §1).
//!
//! Open loop (Poisson, gamma with burstiness, constant rate, trace replay), closed loop
//! (N users with think time and a spawn rate, as Locust) and offline batches (groups of
//! B at t = 0, the next group when the last one finishes, as `LLM.generate` in a loop).
//! Arrivals are generated lazily, one ahead, so memory does not grow with the run.
//! What requests share comes from the workload too: a prompt pool, groups with a
//! shared system prompt (`shared_prefix.rs`), multi-turn sessions (`sessions.rs`), or
//! a trace's prefix-group and session columns (`trace.rs`).

use crate::error::ConfigError;
use crate::time::{Dur, SimTime};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma, LogNormal, Normal};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub mod classes;
pub mod sessions;
pub mod shared_prefix;
pub mod trace;
pub use classes::{ClassMix, WorkloadClass};
pub use sessions::{SessionBook, Sessions, Turn};
pub use shared_prefix::SharedPrefix;
pub use trace::{parse_trace, read_trace, RowPrefix, Trace};

/// Named RNG streams: each purpose draws from its own stream of the run's seed, so
/// changing the arrival rate does not change the drawn lengths.
pub mod streams {
    /// Inter-arrival times.
    pub const ARRIVALS: u64 = 1;
    /// Prompt lengths.
    pub const INPUT_LEN: u64 = 2;
    /// Output lengths.
    pub const OUTPUT_LEN: u64 = 3;
    /// Think times of closed-loop users.
    pub const THINK: u64 = 4;
    /// Router decisions.
    pub const ROUTER: u64 = 5;
    /// Which prompt of a prompt pool a request uses (the order of a shared-prefix
    /// workload's prompts).
    pub const PROMPT: u64 = 6;
    /// Turns per multi-turn session.
    pub const SESSIONS: u64 = 7;
}

/// A named, seeded random stream.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A request as the workload emits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Sequence number in order of arrival, from 0.
    pub id: u64,
    /// Arrival time.
    pub arrival: SimTime,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens to generate (the request stops after exactly this many).
    pub output_tokens: u32,
    /// Closed-loop user that sent it, if any.
    pub user: Option<u32>,
    /// Offline batch it belongs to, if any.
    pub group: Option<u32>,
    /// Prompt of the workload's prompt pool it uses (requests with the same prompt
    /// share it as a cacheable prefix), if the workload has a pool.
    pub prefix: Option<u32>,
    /// Workload class it belongs to (index into the workload's classes; 0 when the
    /// workload has one class).
    pub class: u16,
    /// Scheduling priority, as vLLM's `priority` field: lower values are served first.
    pub priority: i32,
    /// Tenant (client) it is served for, for fair-share scheduling.
    pub tenant: u32,
    /// Conversation it belongs to, for session-affinity routing: the closed-loop user
    /// that sent it, or the multi-turn session it is a turn of, if any.
    pub session: Option<u32>,
    /// Tokens at the start of its prompt shared with the other requests of `prefix`
    /// (a system prompt, or a session's conversation so far); `None`: the whole
    /// prompt (a prompt of the workload's pool).
    pub prefix_tokens: Option<u32>,
    /// Whether its context (prompt and output) stays in the prefix cache as the new
    /// shared prefix of `prefix` when it finishes: a session turn with a turn after it.
    pub keep_context: bool,
}

impl Request {
    /// Request `id` arriving at `arrival` with these lengths, from no user, batch,
    /// prompt pool or session, in class 0 with priority 0 for tenant 0.
    pub fn new(id: u64, arrival: SimTime, input_tokens: u32, output_tokens: u32) -> Self {
        Request {
            id,
            arrival,
            input_tokens,
            output_tokens,
            user: None,
            group: None,
            prefix: None,
            class: 0,
            priority: 0,
            tenant: 0,
            session: None,
            prefix_tokens: None,
            keep_context: false,
        }
    }

    /// Tokens at the start of its prompt shared with its prefix group (all of it
    /// unless `prefix_tokens` says fewer).
    pub fn shared_tokens(&self) -> u32 {
        self.prefix_tokens
            .map_or(self.input_tokens, |p| p.min(self.input_tokens))
    }
}

/// A distribution of token counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum LengthDist {
    /// Always `value`.
    Fixed {
        /// Tokens.
        value: u64,
    },
    /// Integers uniform in [mean·(1−range_ratio), mean·(1+range_ratio)], as
    /// `benchmark_serving`'s random dataset.
    Uniform {
        /// Centre of the range.
        mean: u64,
        /// Half-width as a fraction of the mean, in [0, 1).
        range_ratio: f64,
    },
    /// Normal, rounded.
    Normal {
        /// Mean tokens.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// Log-normal with the given mean and standard deviation of the lengths themselves.
    Lognormal {
        /// Mean tokens.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
}

impl LengthDist {
    /// Checks the parameters; `field` is the config path for messages.
    pub fn check(&self, file: &str, field: &str) -> Result<(), ConfigError> {
        use crate::validate::fmt_num;
        let bad = |msg: String| Err(ConfigError::new(file, field, msg));
        match *self {
            LengthDist::Fixed { value: 0 } => bad("value: got 0, allowed: an integer >= 1".into()),
            LengthDist::Uniform { mean: 0, .. } => {
                bad("mean: got 0, allowed: an integer >= 1".into())
            }
            LengthDist::Uniform { range_ratio, .. }
                if !(range_ratio.is_finite() && (0.0..1.0).contains(&range_ratio)) =>
            {
                bad(format!(
                    "range_ratio: got {}, allowed: a number in [0, 1)",
                    fmt_num(range_ratio)
                ))
            }
            LengthDist::Normal { mean, std } | LengthDist::Lognormal { mean, std }
                if !(mean.is_finite()
                    && (1.0..=1e9).contains(&mean)
                    && std.is_finite()
                    && (0.0..=1e12).contains(&std)) =>
            {
                bad(format!(
                    "got mean {}, std {}, allowed: mean from 1 to 1e9 and std from 0 to 1e12 (tokens)",
                    fmt_num(mean),
                    fmt_num(std)
                ))
            }
            _ => Ok(()),
        }
    }

    /// The mean of the distribution before clamping (for estimates).
    pub fn mean(&self) -> f64 {
        match *self {
            LengthDist::Fixed { value } => value as f64,
            LengthDist::Uniform { mean, .. } => mean as f64,
            LengthDist::Normal { mean, .. } | LengthDist::Lognormal { mean, .. } => mean,
        }
    }

    /// Draws one length (at least 1; the caller clamps to the context).
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u64 {
        let v = match *self {
            LengthDist::Fixed { value } => value as f64,
            LengthDist::Uniform { mean, range_ratio } => {
                let lo = (mean as f64 * (1.0 - range_ratio)) as u64;
                let hi = (mean as f64 * (1.0 + range_ratio)) as u64;
                rng.gen_range(lo..=hi) as f64
            }
            LengthDist::Normal { mean, std } => {
                if std == 0.0 {
                    mean
                } else {
                    Normal::new(mean, std)
                        .map(|d| d.sample(rng))
                        .unwrap_or(mean)
                }
            }
            LengthDist::Lognormal { mean, std } => {
                if std == 0.0 {
                    mean
                } else {
                    let s2 = (1.0 + (std / mean).powi(2)).ln();
                    let mu = mean.ln() - s2 / 2.0;
                    LogNormal::new(mu, s2.sqrt())
                        .map(|d| d.sample(rng))
                        .unwrap_or(mean)
                }
            }
        };
        tokens(v)
    }

    /// The length every draw gives, if the distribution is [`LengthDist::Fixed`]
    /// (which draws no random number): what [`LengthDist::sample`] returns for it.
    pub fn fixed(&self) -> Option<u64> {
        match *self {
            LengthDist::Fixed { value } => Some(tokens(value as f64)),
            _ => None,
        }
    }
}

/// A drawn length as a token count: rounded, at least 1, at most 10^12.
fn tokens(v: f64) -> u64 {
    if v.is_finite() && v >= 1.0 {
        v.round().min(1e12) as u64
    } else {
        1
    }
}

/// How requests arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Exponential inter-arrival times at `rate` per second.
    Poisson {
        /// Requests per second.
        rate: f64,
    },
    /// Gamma inter-arrival times with mean 1/rate and shape `burstiness`
    /// (`benchmark_serving`: 1 is Poisson, below 1 burstier, above 1 smoother).
    Gamma {
        /// Requests per second.
        rate: f64,
        /// Gamma shape.
        burstiness: f64,
    },
    /// Evenly spaced at `rate` per second.
    Constant {
        /// Requests per second.
        rate: f64,
    },
    /// Replays recorded arrivals (and lengths) from a trace.
    Trace(Arc<Trace>),
    /// `users` users, each sending its next request `think` after the last returns;
    /// users start `1/spawn_rate` apart.
    ClosedLoop {
        /// Number of users.
        users: u32,
        /// Users started per second.
        spawn_rate: f64,
        /// Think time between a response and the next request.
        think: Think,
    },
    /// Groups of `batch_size` requests at once; the next group when the last finishes.
    Offline {
        /// Requests per group.
        batch_size: u32,
    },
}

/// Think time of closed-loop users.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Think {
    /// Always this long.
    Constant(Dur),
    /// Uniform between two bounds (Locust's `between`).
    Between(Dur, Dur),
    /// Exponential with this mean.
    Exponential(Dur),
}

impl Think {
    /// Draws one think time.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Dur {
        match *self {
            Think::Constant(d) => d,
            Think::Between(a, b) => {
                if b.0 <= a.0 {
                    a
                } else {
                    Dur(rng.gen_range(a.0..=b.0))
                }
            }
            Think::Exponential(m) => {
                if m.0 == 0 {
                    Dur(0)
                } else {
                    let e: f64 = Exp::new(1.0).map(|d| d.sample(rng)).unwrap_or(1.0);
                    Dur::from_secs_f64(e * m.as_secs_f64())
                }
            }
        }
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many requests have been issued and all have completed.
    Requests(u64),
    /// At `duration` of simulated time; statistics exclude the first `warmup`.
    Timed {
        /// Length of the run.
        duration: Dur,
        /// Start of the measurement window.
        warmup: Dur,
    },
}

/// A checked workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Arrival process.
    pub arrival: Arrival,
    /// Prompt lengths (ignored for traces, which carry their own).
    pub input: LengthDist,
    /// Output lengths (ignored for traces).
    pub output: LengthDist,
    /// When the run ends.
    pub stop: Stop,
    /// Longest prompt + output the engine accepts; lengths are clamped to it.
    pub max_context: u64,
    /// Number of distinct prompts: each request uses one at random, with the prompt
    /// length drawn once per prompt (as a benchmark replaying a prompt file). `None`:
    /// every prompt is unique.
    pub prompt_pool: Option<u32>,
    /// Whether requests with the same prompt produce the same tokens (greedy
    /// sampling): the prefix cache then also serves a resumed request's generated
    /// tokens from a sibling's blocks.
    pub identical_outputs: bool,
    /// Classes superposed (open loop only), each with its own arrivals, lengths,
    /// priority and tenant; empty: one class, the fields above (priority 0, tenant 0).
    pub classes: Vec<WorkloadClass>,
    /// Context the requests share beyond a prompt pool: groups with a shared system
    /// prompt, or multi-turn sessions.
    pub shared: SharedContext,
}

/// Context shared between requests, from which the prefix cache's hits come.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SharedContext {
    /// None beyond `prompt_pool`.
    #[default]
    None,
    /// Groups of prompts with a shared system prompt (`[workload.shared_prefix]`).
    Prefix(SharedPrefix),
    /// Multi-turn sessions (`[workload.sessions]`).
    Sessions(Sessions),
}

/// Draws request lengths from the workload's streams.
#[derive(Debug, Clone)]
pub struct LengthSampler {
    input: LengthDist,
    output: LengthDist,
    in_rng: ChaCha8Rng,
    out_rng: ChaCha8Rng,
    prompt_rng: ChaCha8Rng,
    /// Lengths of the prompts of the pool, if any.
    pool: Vec<u64>,
    /// The prompts of a shared-prefix workload, if it is one.
    shared: Option<shared_prefix::PrefixPrompts>,
    max_context: u64,
    /// [`LengthDist::fixed`] of the prompt and output lengths, drawn once.
    fixed_input: Option<u64>,
    fixed_output: Option<u64>,
    /// What every [`LengthSampler::draw`] returns, when that is always the same:
    /// fixed prompt and output lengths, no prompt pool and no shared prefix.
    constant: Option<(u32, u32)>,
}

impl LengthSampler {
    /// A sampler on the run's seed.
    pub fn new(w: &Workload, seed: u64) -> Self {
        Self::with_streams(
            w,
            rng(seed, streams::INPUT_LEN),
            rng(seed, streams::OUTPUT_LEN),
            rng(seed, streams::PROMPT),
        )
    }

    /// A sampler drawing prompt lengths, output lengths and prompts of the pool from
    /// the given streams.
    pub fn with_streams(
        w: &Workload,
        mut in_rng: ChaCha8Rng,
        out_rng: ChaCha8Rng,
        prompt_rng: ChaCha8Rng,
    ) -> Self {
        let pool = (0..w.prompt_pool.unwrap_or(0))
            .map(|_| w.input.sample(&mut in_rng))
            .collect();
        let mut prompt_rng = prompt_rng;
        let shared = match &w.shared {
            SharedContext::Prefix(sp) => Some(shared_prefix::PrefixPrompts::new(
                sp,
                &mut in_rng,
                &mut prompt_rng,
            )),
            _ => None,
        };
        let mut s = LengthSampler {
            input: w.input.clone(),
            output: w.output.clone(),
            in_rng,
            out_rng,
            prompt_rng,
            pool,
            shared,
            max_context: w.max_context.max(2),
            fixed_input: w.input.fixed(),
            fixed_output: w.output.fixed(),
            constant: None,
        };
        if let (Some(i), Some(o), None, true) =
            (s.fixed_input, s.fixed_output, &s.shared, s.pool.is_empty())
        {
            s.constant = Some(s.clamp(i, o));
        }
        s
    }

    /// Longest prompt + output.
    pub fn max_context(&self) -> u64 {
        self.max_context
    }

    /// Tokens of a drawn request's prompt shared with its prefix group: a
    /// shared-prefix workload's system prompt; `None` (the whole prompt) otherwise.
    pub fn prefix_tokens(&self) -> Option<u32> {
        self.shared.as_ref().map(|s| s.system_tokens())
    }

    /// Clamps (input, output) so that input >= 1, output >= 1 and the sum fits the
    /// context.
    pub fn clamp(&self, input: u64, output: u64) -> (u32, u32) {
        let i = input.clamp(1, self.max_context - 1);
        let o = output.clamp(1, self.max_context - i);
        (i.min(u32::MAX as u64) as u32, o.min(u32::MAX as u64) as u32)
    }

    /// Draws the next (input, output, prompt of the pool), clamped to the context.
    pub fn draw(&mut self) -> (u32, u32, Option<u32>) {
        if let Some((i, o)) = self.constant {
            return (i, o, None);
        }
        let (i, o, prefix) = self.draw_unclamped();
        let (i, o) = self.clamp(i, o);
        (i, o, prefix)
    }

    /// Draws the next (input, output, prompt of the pool) as the distributions give
    /// them, before [`LengthSampler::clamp`] (the experiment check counts the requests
    /// that would not fit).
    pub fn draw_unclamped(&mut self) -> (u64, u64, Option<u32>) {
        let (i, prefix) = if let Some(sp) = &mut self.shared {
            let (i, g) = sp.next_prompt();
            (i, Some(g))
        } else if self.pool.is_empty() {
            let i = match self.fixed_input {
                Some(i) => i,
                None => self.input.sample(&mut self.in_rng),
            };
            (i, None)
        } else {
            let k = self.prompt_rng.gen_range(0..self.pool.len());
            (self.pool[k], Some(k as u32))
        };
        let o = match self.fixed_output {
            Some(o) => o,
            None => self.output.sample(&mut self.out_rng),
        };
        (i, o, prefix)
    }
}

/// The inter-arrival gap of an open loop, in seconds. The distributions are built
/// once, with the parameters every draw would build them with, so they draw the same
/// numbers; parameters the config checks keep valid, were they not, give the mean
/// gap (a zero gap would issue requests at one instant forever).
#[derive(Debug, Clone, Copy)]
enum Gap {
    Exp(Exp<f64>),
    Gamma(Gamma<f64>),
    /// Always this many seconds (a constant rate, a distribution that could not be
    /// built, or a trace's 0).
    Fixed(f64),
}

impl Gap {
    fn of(a: &Arrival) -> Gap {
        match *a {
            Arrival::Poisson { rate } => Exp::new(rate).map_or(Gap::Fixed(1.0 / rate), Gap::Exp),
            Arrival::Gamma { rate, burstiness } => {
                Gamma::new(burstiness, 1.0 / (rate * burstiness))
                    .map_or(Gap::Fixed(1.0 / rate), Gap::Gamma)
            }
            Arrival::Constant { rate } => Gap::Fixed(1.0 / rate),
            _ => Gap::Fixed(0.0),
        }
    }
}

/// An arrival: time, index, and the lengths a trace recorded (if any).
pub type NextArrival = (SimTime, u64, Option<(u32, u32)>);

/// Generates open-loop arrivals one at a time.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    arrival: Arrival,
    /// The inter-arrival distribution, built once from `arrival`.
    gap: Gap,
    rng: ChaCha8Rng,
    next_time: SimTime,
    next_index: u64,
    limit: Option<u64>,
    end: SimTime,
}

impl OpenLoop {
    /// The generator for an open-loop workload (`arrival` must be Poisson, Gamma,
    /// Constant or Trace).
    pub fn new(w: &Workload, seed: u64) -> Self {
        let (limit, end) = match w.stop {
            // Sessions are started until the run has issued its requests (turns).
            Stop::Requests(_) if matches!(w.shared, SharedContext::Sessions(_)) => {
                (None, SimTime::MAX)
            }
            Stop::Requests(n) => (Some(n), SimTime::MAX),
            Stop::Timed { duration, .. } => (None, SimTime::ZERO + duration),
        };
        let limit = match &w.arrival {
            Arrival::Trace(t) => Some(limit.unwrap_or(u64::MAX).min(t.rows.len() as u64)),
            _ => limit,
        };
        OpenLoop {
            arrival: w.arrival.clone(),
            gap: Gap::of(&w.arrival),
            rng: rng(seed, streams::ARRIVALS),
            next_time: SimTime::ZERO,
            next_index: 0,
            limit,
            end,
        }
    }

    /// Replaces the inter-arrival stream (classes draw from streams of their own).
    pub fn set_rng(&mut self, r: ChaCha8Rng) {
        self.rng = r;
    }

    /// The time of the next arrival without consuming it.
    pub fn peek_time(&self) -> Option<SimTime> {
        if self.limit.is_some_and(|l| self.next_index >= l) {
            return None;
        }
        let t = match &self.arrival {
            Arrival::Trace(tr) => SimTime::ZERO + tr.rows[self.next_index as usize].0,
            _ => self.next_time,
        };
        (t < self.end).then_some(t)
    }

    /// The next arrival (time, request index), or `None` when the workload is done.
    /// As in `benchmark_serving`, the first request goes out at t = 0 and each gap is
    /// drawn after the request it follows.
    pub fn next_arrival(&mut self) -> Option<NextArrival> {
        if self.limit.is_some_and(|l| self.next_index >= l) {
            return None;
        }
        let i = self.next_index;
        let (t, lengths) = match &self.arrival {
            Arrival::Trace(tr) => {
                let (off, a, b) = tr.rows[i as usize];
                (SimTime::ZERO + off, Some((a, b)))
            }
            _ => (self.next_time, None),
        };
        if t >= self.end {
            return None;
        }
        let gap_s = match &self.gap {
            Gap::Exp(d) => d.sample(&mut self.rng),
            Gap::Gamma(d) => d.sample(&mut self.rng),
            Gap::Fixed(s) => *s,
        };
        self.next_time = t + Dur::from_secs_f64(gap_s);
        self.next_index += 1;
        Some((t, i, lengths))
    }
}

#[cfg(test)]
mod tests;
