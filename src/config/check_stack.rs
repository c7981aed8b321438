//! Checking what an engine preset (`engine.stack = "<engine>@<version>"`, see
//! `crate::stacks`) changes in `[engine]`: which profile prices the steps (the
//! preset's own when its file exists, else the one it borrows, said in a warning),
//! the `[engine.continuous]` defaults, the scheduler semantics, and that
//! engine-specific keys are used only with an engine that has them.

use super::check::Checker;
use super::raw::{RawContinuous, RawEngine};
use super::schema::STACKS;
use crate::policy::Policy;
use crate::profile::profiles_dir;
use crate::specs::GpuSpec;
use crate::stacks::{self, ContinuousDefaults, EntryPoint, StackSemantics};

impl Checker<'_> {
    /// The profile name a stack resolves to when `engine.profile` is not given: the
    /// plain stack's own, or a preset's own profile if its file exists, else the one
    /// it borrows (with a warning saying so). Also refuses engine-specific keys of
    /// another engine.
    pub(super) fn preset_profile<'s>(&mut self, e: &RawEngine, stack: &'s str) -> &'s str {
        if STACKS.contains(&stack) {
            self.engine_specific_keys(e, stack);
        }
        let Some(p) = stacks::preset(stack) else {
            return stack;
        };
        let own =
            crate::specs::embedded::exists(&profiles_dir().join(format!("{}.toml", p.profile)));
        if e.profile.is_none() {
            let note = format!("engine.stack = {stack:?}: {}", p.profile_note(own));
            if !self.warnings.contains(&note) {
                self.warnings.push(note);
            }
        }
        if own {
            p.profile
        } else {
            p.borrows
        }
    }

    /// An engine-specific `[engine.continuous]` key given with a stack whose engine
    /// does not have it is an error naming the presets that do.
    fn engine_specific_keys(&mut self, e: &RawEngine, stack: &str) {
        let Some(c) = &e.continuous else { return };
        let given = [
            ("num_scheduler_steps", c.num_scheduler_steps.is_some()),
            ("cuda_graph_sizes", c.cuda_graph_sizes.is_some()),
            ("async_scheduling", c.async_scheduling.is_some()),
            (
                "multi_step_stream_outputs",
                c.multi_step_stream_outputs.is_some(),
            ),
            ("chunked_prefill_size", c.chunked_prefill_size.is_some()),
            ("max_running_requests", c.max_running_requests.is_some()),
            ("schedule_policy", c.schedule_policy.is_some()),
            ("disable_radix_cache", c.disable_radix_cache.is_some()),
            ("max_batch_size", c.max_batch_size.is_some()),
            ("max_num_tokens", c.max_num_tokens.is_some()),
        ];
        for (key, set) in given {
            if set && !stacks::accepts(stack, key) {
                let mut owners = stacks::owners_of(key);
                if stacks::accepts("vllm", key) {
                    owners.insert(0, "vllm");
                }
                let owners: Vec<String> = owners.iter().map(|o| format!("{o:?}")).collect();
                self.err(
                    &format!("engine.continuous.{key}"),
                    format!(
                        "is a setting of engine.stack = {}, not of {stack:?}",
                        owners.join(" or ")
                    ),
                );
            }
        }
    }

    /// `c` with the settings given under SGLang's or TensorRT-LLM's names
    /// (`chunked_prefill_size`, `max_running_requests`, `schedule_policy`,
    /// `disable_radix_cache`; `max_batch_size`, `max_num_tokens`) moved to the names
    /// the rest of the checker reads. Which engine may use which name was checked in
    /// [`Checker::preset_profile`]; giving one setting under both names is an error.
    pub(super) fn engine_names(&mut self, mut c: RawContinuous) -> RawContinuous {
        fn take<T>(
            errs: &mut Vec<(String, String)>,
            to: &mut Option<T>,
            to_name: &str,
            from: Option<T>,
            from_name: &str,
        ) {
            let Some(v) = from else { return };
            if to.is_some() {
                errs.push((
                    format!("engine.continuous.{from_name}"),
                    format!(
                        "is the same setting as engine.continuous.{to_name}; give only one of them"
                    ),
                ));
            } else {
                *to = Some(v);
            }
        }
        let mut errs = Vec::new();
        let (seqs, tokens) = (&mut c.max_num_seqs, &mut c.max_num_batched_tokens);
        take(
            &mut errs,
            tokens,
            "max_num_batched_tokens",
            c.chunked_prefill_size.take(),
            "chunked_prefill_size",
        );
        take(
            &mut errs,
            seqs,
            "max_num_seqs",
            c.max_running_requests.take(),
            "max_running_requests",
        );
        take(
            &mut errs,
            seqs,
            "max_num_seqs",
            c.max_batch_size.take(),
            "max_batch_size",
        );
        take(
            &mut errs,
            tokens,
            "max_num_batched_tokens",
            c.max_num_tokens.take(),
            "max_num_tokens",
        );
        let policy = c.schedule_policy.take();
        take(
            &mut errs,
            &mut c.scheduling_policy,
            "scheduling_policy",
            policy,
            "schedule_policy",
        );
        let radix = c.disable_radix_cache.take().map(|d| !d);
        take(
            &mut errs,
            &mut c.enable_prefix_caching,
            "enable_prefix_caching",
            radix,
            "disable_radix_cache",
        );
        for (f, m) in errs {
            self.err(&f, m);
        }
        c
    }

    /// A preset's `[engine.continuous]` defaults on `gpu` (`None` for the plain
    /// stacks, which keep the historical ones).
    pub(super) fn preset_defaults(
        &self,
        c: &RawContinuous,
        gpu: Option<&GpuSpec>,
        stack: &str,
        max_len: Option<u64>,
    ) -> Option<ContinuousDefaults> {
        let p = stacks::preset(stack)?;
        let entry = if self.offline_entry {
            EntryPoint::Offline
        } else {
            EntryPoint::ApiServer
        };
        Some(p.defaults(
            gpu?,
            entry,
            max_len.unwrap_or(2048),
            c.enable_chunked_prefill,
            c.num_scheduler_steps.unwrap_or(p.num_scheduler_steps) > 1,
        ))
    }

    /// The scheduler semantics of the instance: the preset's (the plain stack's for
    /// `vllm` and `transformers`), with the user's `[engine.continuous]` overrides.
    /// Only the continuous policy has them.
    pub(super) fn stack_semantics(
        &self,
        e: &RawEngine,
        stack: &str,
        policy: &Policy,
    ) -> StackSemantics {
        let Policy::Continuous { max_num_seqs, .. } = *policy else {
            return StackSemantics::default();
        };
        let mut s = stacks::preset(stack)
            .map(|p| p.semantics(max_num_seqs))
            .unwrap_or_default();
        if let Some(c) = &e.continuous {
            if let Some(n) = c.num_scheduler_steps {
                s.num_scheduler_steps = n;
            }
            if let Some(sizes) = &c.cuda_graph_sizes {
                let mut v = sizes.clone();
                v.sort_unstable();
                v.dedup();
                s.cuda_graph_sizes = v;
            }
            if let Some(a) = c.async_scheduling {
                s.async_scheduling = a;
            }
            if let Some(m) = c.multi_step_stream_outputs {
                s.multi_step_stream_outputs = m;
            }
        }
        s
    }
}
