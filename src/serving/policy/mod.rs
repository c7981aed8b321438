//! Batching policies and schedulers (DESIGN §1): what an instance runs in its next step.
//!
//! Two layers:
//! - the **batching policy** ([`Policy`]: sequential, static, continuous) sets the
//!   instance's limits (running sequences, the step's token budget, chunking), when
//!   admission may happen at all ([`Policy::admission`]) and how KV is reserved;
//! - the **scheduler** ([`Scheduler`]) plans each step within those limits: which
//!   requests to preempt, which prefill chunks and decodes to run, which waiting
//!   requests to admit in which order, when to be asked again. It works on a
//!   [`StepBuilder`], whose operations the instance checks against its limits.
//!
//! Shipped schedulers, one file each, registered in [`SCHEDULERS`]: [`fcfs`] (vLLM's
//! default), [`priority`] (vLLM's `--scheduling-policy priority`), [`sjf`]
//! (shortest-job-first and shortest-remaining with an output-length [`predictor`]) and
//! [`fair_share`] (virtual token counters across tenants, as VTC) and [`lpm`]
//! (SGLang's longest cached prefix first). The preemption
//! victim is a choice of its own ([`victim`]). A new scheduler is one new file plus
//! one line in [`SCHEDULERS`]; one written outside the crate is handed to a scenario
//! as [`SchedulerChoice::Custom`].

pub mod fair_share;
pub mod fcfs;
pub mod lpm;
pub mod predictor;
pub mod priority;
pub mod sjf;
pub mod victim;

pub use crate::serving::instance::builder::{
    Handle, Limits, Phase, Refusal, ReqView, StepBuilder, StepPlan,
};
pub use predictor::Predictor;
pub use victim::Victim;

use crate::time::{Dur, SimTime};
use std::sync::Arc;

/// A checked batching policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// One request at a time, first come first served (a Transformers `generate`
    /// server behind a lock).
    Sequential,
    /// Form a batch of up to `batch_size` waiting requests (or fewer once the oldest
    /// has waited `max_wait`), prefill them together and decode until the longest
    /// finishes; nothing joins mid-batch.
    Static {
        /// Largest batch.
        batch_size: u32,
        /// Longest wait for a full batch.
        max_wait: Dur,
        /// Whether finished sequences keep being computed (padded) until the batch
        /// ends, as `generate` on a padded batch does.
        pad_finished: bool,
    },
    /// vLLM V1 continuous batching: every step, running requests first, then waiting
    /// ones FCFS within `max_num_seqs` and `max_num_batched_tokens`; KV blocks on
    /// demand; preemption by recompute when blocks run out.
    Continuous {
        /// Most sequences in one step.
        max_num_seqs: u32,
        /// Most new tokens in one step.
        max_num_batched_tokens: u32,
        /// Whether prompts may be split across steps.
        chunked_prefill: bool,
        /// Whether computed KV blocks are kept and reused by later requests with the
        /// same prefix, and by preempted requests when they resume (vLLM V1's
        /// automatic prefix caching).
        prefix_caching: bool,
    },
}

/// What the policy allows at a step boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admit waiting requests now, at most `max_new` of them, within `token_budget`
    /// new tokens in total, splitting the last prompt if `chunk` is set.
    Admit {
        /// Most requests to admit.
        max_new: u32,
        /// Token budget left for prefills.
        token_budget: u64,
        /// Whether a prompt may be split.
        chunk: bool,
    },
    /// Admit nothing now; ask again at this time (a batch timer).
    WaitUntil(SimTime),
    /// Admit nothing until something changes (an arrival or a completion).
    No,
}

/// What the policy sees of the instance at a step boundary.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Now.
    pub now: SimTime,
    /// Sequences running (decoding or mid-prefill).
    pub running: u32,
    /// Requests waiting.
    pub waiting: u32,
    /// When the oldest waiting request reached the instance.
    pub oldest_wait_since: Option<SimTime>,
    /// New tokens already planned in this step (decodes and running prefills).
    pub planned_tokens: u64,
    /// Whether a running request was preempted while planning this step.
    pub preempted: bool,
}

impl Policy {
    /// The admission decision at a step boundary.
    pub fn admission(&self, v: &View) -> Admission {
        if v.waiting == 0 {
            return Admission::No;
        }
        match *self {
            Policy::Sequential => {
                if v.running == 0 {
                    Admission::Admit {
                        max_new: 1,
                        token_budget: u64::MAX,
                        chunk: false,
                    }
                } else {
                    Admission::No
                }
            }
            Policy::Static {
                batch_size,
                max_wait,
                ..
            } => {
                if v.running > 0 {
                    return Admission::No;
                }
                let deadline = v.oldest_wait_since.unwrap_or(v.now) + max_wait;
                if v.waiting >= batch_size || v.now >= deadline {
                    Admission::Admit {
                        max_new: batch_size,
                        token_budget: u64::MAX,
                        chunk: false,
                    }
                } else {
                    Admission::WaitUntil(deadline)
                }
            }
            Policy::Continuous {
                max_num_seqs,
                max_num_batched_tokens,
                chunked_prefill,
                ..
            } => {
                // vLLM V1: no new requests in a step that preempted one.
                if v.preempted || v.running >= max_num_seqs {
                    return Admission::No;
                }
                let budget = (max_num_batched_tokens as u64).saturating_sub(v.planned_tokens);
                if budget == 0 {
                    return Admission::No;
                }
                Admission::Admit {
                    max_new: max_num_seqs - v.running,
                    token_budget: budget,
                    chunk: chunked_prefill,
                }
            }
        }
    }

    /// Whether the instance allocates KV for a request's whole length when it admits
    /// it (static batches), rather than on demand (continuous).
    pub fn reserves_whole_batch(&self) -> bool {
        !matches!(self, Policy::Continuous { .. })
    }

    /// Whether finished sequences stay in the batch until it ends.
    pub fn pads_finished(&self) -> bool {
        matches!(
            self,
            Policy::Static {
                pad_finished: true,
                ..
            }
        )
    }

    /// Whether the prefix cache is on.
    pub fn prefix_caching(&self) -> bool {
        matches!(
            self,
            Policy::Continuous {
                prefix_caching: true,
                ..
            }
        )
    }

    /// Short name (`sequential`, `static`, `continuous`).
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Sequential => "sequential",
            Policy::Static { .. } => "static",
            Policy::Continuous { .. } => "continuous",
        }
    }
}

/// A step scheduler: plans each step of an instance (see the module documentation).
///
/// `schedule` is called at every step boundary of the instance (after a step ends, and
/// when a request arrives at an idle instance). A scheduler that does nothing plans
/// an empty step: the instance then idles until something changes.
pub trait Scheduler: std::fmt::Debug + Send {
    /// Name, as in configs and results.
    fn name(&self) -> &str;

    /// Plans the step through `step`'s operations.
    fn schedule(&mut self, step: &mut StepBuilder<'_>);

    /// Whether it reads [`StepBuilder::tenant_output_tokens`] (the instance then counts
    /// tokens per tenant).
    fn tracks_tenants(&self) -> bool {
        false
    }

    /// Whether it may act (preempt, admit) at a step in which the limits alone would
    /// stop any admission: a running set at `max_num_seqs`, a budget spent by decodes.
    /// The instance fast-forwards decode stretches only for schedulers that do not.
    fn acts_while_decoding(&self) -> bool {
        false
    }
}

/// Settings of a shipped scheduler, as an experiment file gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Registered name ([`SCHEDULERS`]).
    pub name: String,
    /// Preemption victim; `None`: the scheduler's own default.
    pub victim: Option<Victim>,
    /// Output-length predictor (schedulers that use one).
    pub predictor: Predictor,
    /// Fair share: weight of a prompt token in a tenant's virtual counter.
    pub input_weight: f64,
    /// Fair share: weight of an output token.
    pub output_weight: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            name: "fcfs".into(),
            victim: None,
            predictor: Predictor::Oracle,
            input_weight: 1.0,
            output_weight: 2.0,
        }
    }
}

/// One shipped scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// Name in configs (`engine.scheduler`).
    pub name: &'static str,
    /// One line for the reference.
    pub doc: &'static str,
    /// Whether it uses `engine.continuous.length_predictor` (the config allows that key
    /// with it; a test holds the two together).
    pub uses_predictor: bool,
    /// Builds one, for a run with this seed.
    pub build: fn(&SchedulerConfig, u64) -> Box<dyn Scheduler>,
}

/// The shipped schedulers.
pub const SCHEDULERS: &[Registration] = &[
    fcfs::REGISTRATION,
    priority::REGISTRATION,
    sjf::SJF,
    sjf::SRPT,
    fair_share::REGISTRATION,
    lpm::REGISTRATION,
];

/// The names in [`SCHEDULERS`], in its order (the allowed values of
/// `engine.continuous.scheduling_policy`).
pub const SCHEDULER_NAMES: [&str; SCHEDULERS.len()] = {
    let mut names = [""; SCHEDULERS.len()];
    let mut i = 0;
    while i < SCHEDULERS.len() {
        names[i] = SCHEDULERS[i].name;
        i += 1;
    }
    names
};

/// The registration of `name`.
pub fn registration(name: &str) -> Option<&'static Registration> {
    SCHEDULERS.iter().find(|r| r.name == name)
}

/// Builds a scheduler factory for a scenario.
pub type SchedulerFactory = dyn Fn(u64) -> Box<dyn Scheduler> + Send + Sync;

/// Which scheduler an instance runs.
#[derive(Clone)]
pub enum SchedulerChoice {
    /// A shipped one.
    Config(SchedulerConfig),
    /// One written against the public trait (outside the crate): a factory called
    /// with the run's seed, once per instance and run.
    Custom {
        /// Name, for results.
        name: String,
        /// The factory.
        build: Arc<SchedulerFactory>,
    },
}

impl Default for SchedulerChoice {
    fn default() -> Self {
        SchedulerChoice::Config(SchedulerConfig::default())
    }
}

impl std::fmt::Debug for SchedulerChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchedulerChoice::Config(c) => c.fmt(f),
            SchedulerChoice::Custom { name, .. } => write!(f, "Custom({name:?})"),
        }
    }
}

impl PartialEq for SchedulerChoice {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SchedulerChoice::Config(a), SchedulerChoice::Config(b)) => a == b,
            (
                SchedulerChoice::Custom { name: a, build: x },
                SchedulerChoice::Custom { name: b, build: y },
            ) => a == b && Arc::ptr_eq(x, y),
            _ => false,
        }
    }
}

impl SchedulerChoice {
    /// Builds the scheduler for a run with `seed`; an unknown name is an error that
    /// lists the shipped ones.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Scheduler>, String> {
        match self {
            SchedulerChoice::Config(c) => match registration(&c.name) {
                Some(r) => Ok((r.build)(c, seed)),
                None => Err(format!(
                    "unknown scheduler {:?}; shipped: {}",
                    c.name,
                    SCHEDULERS
                        .iter()
                        .map(|r| r.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
            SchedulerChoice::Custom { build, .. } => Ok(build(seed)),
        }
    }

    /// Name, for results.
    pub fn name(&self) -> &str {
        match self {
            SchedulerChoice::Config(c) => &c.name,
            SchedulerChoice::Custom { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(running: u32, waiting: u32, now: u64, since: u64) -> View {
        View {
            now: SimTime(now),
            running,
            waiting,
            oldest_wait_since: Some(SimTime(since)),
            planned_tokens: 0,
            preempted: false,
        }
    }

    #[test]
    fn static_waits_for_a_full_batch_or_the_timer() {
        let p = Policy::Static {
            batch_size: 4,
            max_wait: Dur(100),
            pad_finished: false,
        };
        assert_eq!(
            p.admission(&view(0, 2, 50, 10)),
            Admission::WaitUntil(SimTime(110))
        );
        assert!(matches!(
            p.admission(&view(0, 2, 110, 10)),
            Admission::Admit { max_new: 4, .. }
        ));
        assert!(matches!(
            p.admission(&view(0, 4, 20, 10)),
            Admission::Admit { .. }
        ));
        assert_eq!(p.admission(&view(3, 4, 20, 10)), Admission::No);
    }

    #[test]
    fn continuous_respects_seq_cap_budget_and_preemption() {
        let p = Policy::Continuous {
            max_num_seqs: 8,
            max_num_batched_tokens: 100,
            chunked_prefill: true,
            prefix_caching: false,
        };
        let mut v = view(6, 5, 0, 0);
        v.planned_tokens = 6;
        assert_eq!(
            p.admission(&v),
            Admission::Admit {
                max_new: 2,
                token_budget: 94,
                chunk: true
            }
        );
        v.preempted = true;
        assert_eq!(p.admission(&v), Admission::No);
        assert_eq!(p.admission(&view(8, 5, 0, 0)), Admission::No);
    }
}
