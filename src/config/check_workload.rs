//! Checking `[workload]`: what each arrival process needs (a rate, users, a trace
//! file, a group size), the length distributions, and when the run stops.

use super::check::Checker;
use super::raw::RawWorkload;
use super::schema::{quoted_list, ARRIVALS, CLASS_ARRIVALS, THINKS};
use crate::error::ConfigError;
use crate::time::Dur;
use crate::workload::{
    parse_trace, Arrival, LengthDist, LengthSampler, Stop, Think, Trace, Workload, WorkloadClass,
};
use crate::workload::{SharedContext, SharedPrefix};

/// How many requests' lengths are drawn to count those that do not fit.
pub const FIT_DRAWS: u64 = 20_000;
use std::sync::Arc;

impl Checker<'_> {
    /// A trace, read once per experiment.
    fn trace(&mut self, p: &str, scale: f64) -> Option<Arc<Trace>> {
        let path = self.base.map(|b| b.join(p)).unwrap_or_else(|| p.into());
        let key = (path.clone(), scale.to_bits());
        if !self.traces.contains_key(&key) {
            let read = match std::fs::read_to_string(&path) {
                Ok(text) => {
                    parse_trace(&text, scale, &path.display().to_string(), "workload.trace")
                        .map(Arc::new)
                }
                Err(e) => Err(ConfigError::new(
                    self.file,
                    "workload.trace",
                    format!("cannot read trace file {}: {e}", path.display()),
                )),
            };
            self.traces.insert(key.clone(), read);
        }
        match &self.traces[&key] {
            Ok(t) => Some(t.clone()),
            Err(e) => {
                self.errs.push(e.clone());
                None
            }
        }
    }

    /// `[workload]`: the arrival process with what it needs, the lengths and when the
    /// run stops.
    pub(super) fn workload(&mut self, w: &RawWorkload, max_model_len: u64) -> Option<Workload> {
        let n0 = self.errs.len();
        let f = |name: &str| format!("workload.{name}");
        let kind = w.arrival.as_str();
        let rate = |c: &mut Self| match w.rate_per_s {
            None => {
                c.err(
                    &f("rate_per_s"),
                    format!("is missing; arrival = {kind:?} needs a rate in requests per second"),
                );
                None
            }
            Some(r) => Some(r),
        };
        let mut classes: Option<Vec<WorkloadClass>> = None;
        let arrival = match kind {
            "poisson" => rate(self).map(|rate| Arrival::Poisson { rate }),
            "constant" => rate(self).map(|rate| Arrival::Constant { rate }),
            "gamma" => rate(self).map(|rate| Arrival::Gamma {
                rate,
                burstiness: w.burstiness.unwrap_or(1.0),
            }),
            "trace" => match &w.trace {
                None => {
                    self.err(
                        &f("trace"),
                        "is missing; arrival = \"trace\" needs trace = \"path/to/trace.csv\"",
                    );
                    None
                }
                Some(p) => self
                    .trace(p, w.time_scale.unwrap_or(1.0))
                    .map(Arrival::Trace),
            },
            "closed-loop" => self.closed_loop(w),
            "classes" => {
                classes = self.classes(w);
                classes.as_ref().map(|c| c[0].arrival.clone())
            }
            "offline" => match w.batch_size {
                None => {
                    self.err(
                        &f("batch_size"),
                        "is missing; arrival = \"offline\" needs batch_size (requests per group)",
                    );
                    None
                }
                Some(b) => Some(Arrival::Offline { batch_size: b }),
            },
            other => {
                self.err(
                    &f("arrival"),
                    format!("got {other:?}, allowed: {}", quoted_list(ARRIVALS)),
                );
                None
            }
        };
        let is_trace = kind == "trace";
        let lengths = |c: &mut Self, name: &str, d: &Option<LengthDist>| match d {
            Some(d) => match d.check(c.file, &f(name)) {
                Ok(()) => Some(d.clone()),
                Err(e) => {
                    c.errs.push(e);
                    None
                }
            },
            None if is_trace || kind == "classes" => Some(LengthDist::Fixed { value: 1 }),
            // A shared-prefix workload's prompts are its system prompt + question.
            None if name == "input_tokens" && w.shared_prefix.is_some() => {
                Some(LengthDist::Fixed { value: 1 })
            }
            None => {
                c.err(
                    &f(name),
                    "is missing; give a length distribution, for example { dist = \"fixed\", value = 128 }",
                );
                None
            }
        };
        let input = lengths(self, "input_tokens", &w.input_tokens);
        let output = lengths(self, "output_tokens", &w.output_tokens);
        let identical_outputs = w.sampling.as_deref() == Some("greedy");
        let stop = match (w.num_requests, w.duration_s) {
            (Some(_), Some(_)) => {
                self.err(
                    &f("duration_s"),
                    "give either num_requests (a finite run) or duration_s (a timed run), not both",
                );
                None
            }
            (Some(n), None) => {
                if w.warmup_s.is_some() {
                    self.err(
                        &f("warmup_s"),
                        "does not apply to finite runs (num_requests); warm-up applies to timed runs; remove it",
                    );
                }
                Some(Stop::Requests(n))
            }
            (None, Some(d)) => {
                let wu = w.warmup_s.unwrap_or(0.0);
                if wu >= d {
                    self.err(
                        &f("warmup_s"),
                        format!("got {wu}, which is not shorter than duration_s = {d}"),
                    );
                    None
                } else {
                    Some(Stop::Timed {
                        duration: Dur::from_secs_f64(d),
                        warmup: Dur::from_secs_f64(wu),
                    })
                }
            }
            (None, None) if is_trace => Some(Stop::Requests(u64::MAX)),
            // A bad one of them is the schema's error; nothing is missing.
            (None, None)
                if self.is_faulted("workload.num_requests")
                    || self.is_faulted("workload.duration_s") =>
            {
                None
            }
            (None, None) => {
                self.err(
                    &f("num_requests"),
                    "is missing; give num_requests (a finite run) or duration_s (a timed run)",
                );
                None
            }
        };
        let shared = self.shared_context(w);
        if self.errs.len() > n0 {
            return None;
        }
        let classes = classes.unwrap_or_default();
        let workload = Workload {
            arrival: arrival?,
            input: input?,
            output: output?,
            stop: stop?,
            max_context: max_model_len,
            prompt_pool: w.prompt_pool,
            identical_outputs,
            classes,
            shared: shared?,
        };
        let truncate = w.truncate.unwrap_or(false);
        if workload.classes.is_empty() {
            self.lengths_fit(&workload, truncate, None)?;
        } else {
            for (i, c) in workload.classes.iter().enumerate() {
                let one = Workload {
                    arrival: c.arrival.clone(),
                    input: c.input.clone(),
                    output: c.output.clone(),
                    classes: Vec::new(),
                    ..workload.clone()
                };
                self.lengths_fit(
                    &one,
                    truncate,
                    Some(format!("workload.classes[{i}].input_tokens")),
                )?;
            }
        }
        Some(workload)
    }

    /// Requests whose prompt + output would not fit `max_model_len` are an error,
    /// or with `truncate = true` a warning that counts them: the simulator then cuts
    /// the prompt to `max_model_len - 1` and the output to what is left. A trace's
    /// rows are counted exactly; lengths from a distribution are drawn with the
    /// experiment's seed (the first [`FIT_DRAWS`] requests, or all of a shorter
    /// finite run), and a bounded distribution (fixed, uniform) whose longest lengths
    /// do not fit is an error even if no draw hit them.
    fn lengths_fit(&mut self, w: &Workload, truncate: bool, field: Option<String>) -> Option<()> {
        let max = w.max_context;
        let cut = |i: u64, o: u64| i >= max || i.saturating_add(o) > max;
        let fit_rule = format!(
            "allowed: a prompt shorter than max_model_len = {max} and prompt + output at most max_model_len"
        );
        let what = match &w.arrival {
            Arrival::Trace(t) => {
                let rows = t.rows.iter().map(|r| (r.1 as u64, r.2 as u64));
                let count = rows.clone().filter(|&(i, o)| cut(i, o)).count();
                let longest = rows.map(|(i, o)| i + o).max().unwrap_or(0);
                if count == 0 {
                    return Some(());
                }
                format!(
                    "{count} of {} rows of the trace do not fit (the longest is {longest} tokens of prompt + output); {fit_rule}",
                    t.rows.len()
                )
            }
            _ => {
                let bound = |d: &LengthDist| match *d {
                    LengthDist::Fixed { value } => Some(value),
                    LengthDist::Uniform { mean, range_ratio } => {
                        Some((mean as f64 * (1.0 + range_ratio)) as u64)
                    }
                    _ => None,
                };
                let bounds = bound(&w.input).zip(bound(&w.output));
                if let Some((i, o)) = bounds {
                    if !cut(i, o) {
                        // Nothing these distributions draw can be too long.
                        return Some(());
                    }
                }
                let n = match w.stop {
                    Stop::Requests(n) => n.min(FIT_DRAWS),
                    Stop::Timed { .. } => FIT_DRAWS,
                };
                let mut sampler = LengthSampler::new(w, self.seed);
                let (mut count, mut longest) = (0u64, 0u64);
                for _ in 0..n {
                    let (i, o, _) = sampler.draw_unclamped();
                    count += u64::from(cut(i, o));
                    longest = longest.max(i.saturating_add(o));
                }
                match bounds {
                    _ if count > 0 => format!(
                        "{count} of {n} requests drawn with seed {} do not fit (the longest is {longest} tokens of prompt + output); {fit_rule}",
                        self.seed
                    ),
                    // Unbounded lengths none of whose draws is too long.
                    None => return Some(()),
                    Some((i, o)) => format!(
                        "prompts of up to {i} and outputs of up to {o} tokens may not fit (none of the {n} requests drawn with seed {} did; other seeds' may); {fit_rule}",
                        self.seed
                    ),
                }
            }
        };
        let field = field.unwrap_or_else(|| {
            if matches!(w.arrival, Arrival::Trace(_)) {
                "workload.trace".into()
            } else {
                "workload.input_tokens".into()
            }
        });
        let field = field.as_str();
        if truncate {
            self.warnings.push(format!(
                "{}: {field}: {what}; cut to fit (workload.truncate = true)",
                self.file
            ));
            Some(())
        } else {
            self.err(
                field,
                format!("{what}; shorten them, raise engine.max_model_len, or set workload.truncate = true to cut them to fit"),
            );
            None
        }
    }

    /// `arrival = "classes"`: the `[[workload.classes]]`, each an open-loop stream.
    fn classes(&mut self, w: &RawWorkload) -> Option<Vec<WorkloadClass>> {
        let Some(raw) = w.classes.as_ref().filter(|c| !c.is_empty()) else {
            self.err(
                "workload.classes",
                "is missing; arrival = \"classes\" needs one or more [[workload.classes]] tables (name, arrival, rate_per_s, input_tokens, output_tokens)",
            );
            return None;
        };
        let n0 = self.errs.len();
        let mut out = Vec::new();
        for (i, c) in raw.iter().enumerate() {
            let f = |k: &str| format!("workload.classes[{i}].{k}");
            if raw[..i].iter().any(|o| o.name == c.name) {
                self.err(
                    &f("name"),
                    format!("got {:?} again; class names must differ", c.name),
                );
            }
            let arrival = match c.arrival.as_str() {
                "poisson" => Arrival::Poisson { rate: c.rate_per_s },
                "constant" => Arrival::Constant { rate: c.rate_per_s },
                "gamma" => Arrival::Gamma {
                    rate: c.rate_per_s,
                    burstiness: c.burstiness.unwrap_or(1.0),
                },
                other => {
                    self.err(
                        &f("arrival"),
                        format!("got {other:?}, allowed: {}", quoted_list(CLASS_ARRIVALS)),
                    );
                    continue;
                }
            };
            for (k, d) in [
                ("input_tokens", &c.input_tokens),
                ("output_tokens", &c.output_tokens),
            ] {
                if let Err(e) = d.check(self.file, &f(k)) {
                    self.errs.push(e);
                }
            }
            out.push(WorkloadClass {
                name: c.name.clone(),
                arrival,
                input: c.input_tokens.clone(),
                output: c.output_tokens.clone(),
                priority: c.priority.unwrap_or(0),
                tenant: c.tenant.unwrap_or(0),
            });
        }
        (self.errs.len() == n0).then_some(out)
    }

    /// `[workload.shared_prefix]` or `[workload.sessions]` (at most one of them, and
    /// neither with a prompt pool or greedy sampling, which share whole prompts).
    fn shared_context(&mut self, w: &RawWorkload) -> Option<SharedContext> {
        let n0 = self.errs.len();
        let which = match (&w.shared_prefix, &w.sessions) {
            (Some(_), Some(_)) => {
                self.err(
                    "workload.sessions",
                    "give either [workload.shared_prefix] or [workload.sessions], not both",
                );
                return None;
            }
            (Some(_), None) => "workload.shared_prefix",
            (None, Some(_)) => "workload.sessions",
            (None, None) => return Some(SharedContext::None),
        };
        if w.prompt_pool.is_some() {
            self.err(
                "workload.prompt_pool",
                format!("does not apply with [{which}], whose requests share prefixes of their own; remove one"),
            );
        }
        if w.sampling.as_deref() == Some("greedy") {
            self.err(
                "workload.sampling",
                format!("\"greedy\" (requests with the same whole prompt produce the same tokens) does not apply with [{which}]; remove it"),
            );
        }
        if let Some(sp) = &w.shared_prefix {
            if w.input_tokens.is_some() {
                self.err(
                    "workload.input_tokens",
                    "does not apply with [workload.shared_prefix], whose prompts are system_prompt_len + question_len tokens; remove it",
                );
            }
            let prompts = sp.num_groups as u64 * sp.num_prompts_per_group as u64;
            if prompts > 10_000_000 {
                self.err(
                    "workload.shared_prefix.num_prompts_per_group",
                    format!("num_groups × num_prompts_per_group = {prompts}, allowed: at most 10000000 prompts"),
                );
            }
            if let Err(e) = sp
                .question_len
                .check(self.file, "workload.shared_prefix.question_len")
            {
                self.errs.push(e);
            }
            return (self.errs.len() == n0).then(|| {
                SharedContext::Prefix(SharedPrefix {
                    num_groups: sp.num_groups,
                    num_prompts_per_group: sp.num_prompts_per_group,
                    system_prompt_len: sp.system_prompt_len,
                    question_len: sp.question_len.clone(),
                })
            });
        }
        let ss = w.sessions.as_ref()?;
        if let Err(e) = ss.turns.check(self.file, "workload.sessions.turns") {
            self.errs.push(e);
        }
        let t = Dur::from_secs_f64(ss.think_time_s.unwrap_or(0.0));
        let think = match ss.think.as_deref().unwrap_or("constant") {
            "exponential" => Think::Exponential(t),
            _ => Think::Constant(t),
        };
        (self.errs.len() == n0).then(|| {
            SharedContext::Sessions(crate::workload::Sessions {
                turns: ss.turns.clone(),
                think,
            })
        })
    }

    fn closed_loop(&mut self, w: &RawWorkload) -> Option<Arrival> {
        let f = |name: &str| format!("workload.{name}");
        let Some(users) = w.users else {
            self.err(
                &f("users"),
                "is missing; arrival = \"closed-loop\" needs users (an integer >= 1)",
            );
            return None;
        };
        let spawn_rate = w.spawn_rate_per_s.unwrap_or(f64::INFINITY);
        let think_kind = w.think.as_deref().unwrap_or("constant");
        let think = match think_kind {
            "constant" => Think::Constant(Dur::from_secs_f64(w.think_time_s.unwrap_or(0.0))),
            "exponential" => Think::Exponential(Dur::from_secs_f64(w.think_time_s.unwrap_or(0.0))),
            "between" => {
                let (a, b) = (w.think_min_s.unwrap_or(0.0), w.think_max_s.unwrap_or(0.0));
                if b < a {
                    self.err(
                        &f("think_max_s"),
                        format!("got {b}, which is below think_min_s = {a}"),
                    );
                    return None;
                }
                Think::Between(Dur::from_secs_f64(a), Dur::from_secs_f64(b))
            }
            other => {
                self.err(
                    &f("think"),
                    format!("got {other:?}, allowed: {}", quoted_list(THINKS)),
                );
                return None;
            }
        };
        Some(Arrival::ClosedLoop {
            users,
            spawn_rate,
            think,
        })
    }
}
