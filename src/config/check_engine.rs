//! Checking `[engine]` (and each `[[instance]]`'s engine): the model spec and stack
//! profile must load, the context must fit the model and the KV cache, the policy's
//! batch limits must agree with each other, and the instance must fit in memory.

use super::check::{Checker, Eng};
use super::memory::plan_memory;
use super::raw::RawEngine;
use super::schema::{quoted_list, POLICIES, STACKS};
use crate::cost::parallel::layout_errors;
use crate::cost::quant::KvCacheDtype;
use crate::cost::{Deployment, PipelineSchedule};
use crate::kv::KvGeometry;
use crate::policy::Policy;
use crate::policy::{Predictor, SchedulerChoice, SchedulerConfig, Victim};
use crate::profile::resolve_profile;
use crate::specs::{load_model_all, GpuSpec, GIB};
use crate::time::Dur;

impl Checker<'_> {
    /// `[engine]` on `gpu` (if it loaded) with `per_gpu` instances on each GPU (if
    /// valid): the section, and the longest sequence for the workload's lengths.
    pub(super) fn engine(
        &mut self,
        e: &RawEngine,
        gpu: Option<&GpuSpec>,
        per_gpu: Option<u32>,
    ) -> (Option<Eng>, Option<u64>) {
        let n0 = self.errs.len();
        let model = match load_model_all(&e.model, self.base, self.file, "engine.model") {
            Ok(m) => Some(m),
            Err(errs) => {
                for err in errs {
                    let err = self.spec_error(err, "engine.model", "model");
                    self.errs.push(err);
                }
                None
            }
        };
        let stack = e.stack.as_deref().unwrap_or("vllm");
        let profile_stack = self.preset_profile(e, stack);
        let profile = match gpu {
            Some(g) if STACKS.contains(&stack) => match resolve_profile(
                e.profile.as_deref(),
                &g.name,
                profile_stack,
                self.base,
                self.file,
                "engine.profile",
            ) {
                Ok(p) => Some(p),
                Err(err) => {
                    self.errs.push(err);
                    None
                }
            },
            _ => None,
        };
        let util = e.gpu_memory_utilization.unwrap_or(0.9);
        if let Some(n) = per_gpu {
            if util * n as f64 > 1.0 + 1e-9 {
                self.err("engine.gpu_memory_utilization", format!("{n} instances × {util} = {:.2} of one GPU's memory; the fractions on one GPU must add up to at most 1", util * n as f64));
            }
        }
        let block_size = e.block_size.unwrap_or(16);
        // The schema holds its range; a block is a power of two in every engine.
        if !block_size.is_power_of_two() {
            self.err(
                "engine.block_size",
                format!("got {block_size}, allowed: a power of two from 1 to 1024 (tokens)"),
            );
        }
        let max_len = match &model {
            Some(m) => {
                let v = e.max_model_len.unwrap_or(m.max_context);
                if v < 2 || v > m.max_context {
                    self.err(
                        "engine.max_model_len",
                        format!(
                            "got {v}, allowed: 2 to {} (the context of {})",
                            m.max_context, m.name
                        ),
                    );
                    None
                } else {
                    Some(v)
                }
            }
            None => None,
        };
        let hint = max_len
            .or(e.max_model_len)
            .or(model.as_ref().map(|m| m.max_context));
        let policy = self.policy(e, max_len, block_size, gpu, stack);
        let deploy = self.deployment(e, model.as_ref(), gpu);
        if self.errs.len() > n0 {
            return (None, hint);
        }
        let (Some(model), Some(gpu), Some(profile), Some(max_len), Some((policy, tokens, seqs))) =
            (model, gpu, profile, max_len, policy)
        else {
            return (None, hint);
        };
        let deploy = match crate::cost::quant::resolve_scheme(
            &model,
            gpu,
            e.quantization.as_deref(),
            e.quantization_scheme.as_deref(),
        ) {
            Ok(quantization) => Deployment {
                quantization,
                kv_cache_dtype: e
                    .kv_cache_dtype
                    .as_deref()
                    .and_then(KvCacheDtype::from_name)
                    .unwrap_or_default(),
                ..deploy
            },
            Err((key, msg)) => {
                self.err(&format!("engine.{key}"), msg);
                return (None, hint);
            }
        };
        let mem = match plan_memory(
            &model, gpu, &profile, util, block_size, tokens, seqs, &deploy, self.file,
        ) {
            Ok(m) => m,
            Err(err) => {
                self.errs.push(err);
                return (None, hint);
            }
        };
        let blocks = match e.kv_cache_tokens {
            Some(t) if t < block_size => {
                self.err(
                    "engine.kv_cache_tokens",
                    format!("got {t}, allowed: at least one block ({block_size} tokens)"),
                );
                return (None, hint);
            }
            // More tokens than the memory left after the weights can hold is not a
            // cache any GPU has.
            Some(t) if t as f64 * mem.kv_bytes_per_token > mem.budget - mem.weights => {
                self.err(
                    "engine.kv_cache_tokens",
                    format!(
                        "got {t}, allowed: at most {} tokens ({:.2} GiB left after {:.2} GiB of weights at {} KiB per token{})",
                        ((mem.budget - mem.weights) / mem.kv_bytes_per_token) as u64,
                        (mem.budget - mem.weights) / GIB,
                        mem.weights / GIB,
                        mem.kv_bytes_per_token as u64 / 1024,
                        if deploy.is_sharded() { ", per GPU" } else { "" }
                    ),
                );
                return (None, hint);
            }
            Some(t) => t / block_size,
            None => mem.blocks,
        };
        let geo = KvGeometry::new(&model, block_size);
        if geo.blocks_for(max_len) > blocks.saturating_mul(geo.layers()) {
            self.err("engine.max_model_len", format!("{max_len} tokens need {} KV blocks but the cache holds only {blocks} ({} tokens); lower max_model_len or raise gpu_memory_utilization", max_len.div_ceil(block_size), blocks.saturating_mul(block_size)));
            return (None, hint);
        }
        let Some((policy, blocks)) = self.data_parallel_union(&deploy, policy, blocks) else {
            return (None, hint);
        };
        (
            Some(Eng {
                deploy,
                stack: self.stack_semantics(e, stack, &policy),
                model,
                profile,
                policy,
                scheduler: scheduler(e),
                block_size,
                blocks,
                geo,
            }),
            hint,
        )
    }

    /// `engine.tensor_parallel_size`, `pipeline_parallel_size` and
    /// `pipeline_schedule` (ranges and names checked by the schema), with the layout
    /// rules of vLLM for `model` on `gpu` where they loaded.
    fn deployment(
        &mut self,
        e: &RawEngine,
        model: Option<&crate::specs::ModelSpec>,
        gpu: Option<&GpuSpec>,
    ) -> Deployment {
        let deploy = Deployment {
            tensor_parallel: e.tensor_parallel_size.unwrap_or(1),
            pipeline_parallel: e.pipeline_parallel_size.unwrap_or(1),
            pipeline_schedule: e
                .pipeline_schedule
                .as_deref()
                .and_then(PipelineSchedule::from_name)
                .unwrap_or_default(),
            expert_parallel: e.enable_expert_parallel.unwrap_or(false),
            data_parallel: e.data_parallel_size.unwrap_or(1),
            ..Deployment::default()
        };
        if let Some(m) = model {
            for (field, msg) in layout_errors(m, gpu, &deploy) {
                self.err(field, msg);
            }
            for (field, msg) in crate::cost::expert_parallel::layout_errors(m, gpu, &deploy) {
                self.err(field, msg);
            }
        }
        deploy
    }

    /// With `data_parallel_size` N, the one simulated instance holds the union of
    /// the N ranks: N × each rank's KV blocks, `max_num_seqs` and
    /// `max_num_batched_tokens` (per rank in vLLM: each DP rank is its own engine
    /// core with its own scheduler). Continuous batching only.
    fn data_parallel_union(
        &mut self,
        deploy: &Deployment,
        policy: Policy,
        blocks: u64,
    ) -> Option<(Policy, u64)> {
        let n = deploy.data_parallel.max(1);
        if n == 1 {
            return Some((policy, blocks));
        }
        let mut policy = policy;
        match &mut policy {
            Policy::Continuous {
                max_num_seqs,
                max_num_batched_tokens,
                ..
            } => {
                *max_num_seqs = max_num_seqs.saturating_mul(n);
                *max_num_batched_tokens = max_num_batched_tokens.saturating_mul(n);
                Some((policy, blocks.saturating_mul(n as u64)))
            }
            _ => {
                self.err("engine.data_parallel_size", format!("got {n}, but data-parallel ranks are vLLM engine cores with continuous batching; allowed with policy \"sequential\" or \"static\": 1"));
                None
            }
        }
    }

    /// The batching policy, with the batch it may form: (policy, tokens, sequences).
    /// Its step scheduler comes from [`scheduler`].
    fn policy(
        &mut self,
        e: &RawEngine,
        max_len: Option<u64>,
        block_size: u64,
        gpu: Option<&GpuSpec>,
        stack: &str,
    ) -> Option<(Policy, u64, u64)> {
        let n0 = self.errs.len();
        match e.policy.as_str() {
            "sequential" => max_len.map(|m| (Policy::Sequential, m, 1)),
            "static" => {
                let s = e.static_.clone().unwrap_or_default();
                let b = s.batch_size.unwrap_or(8);
                let w = s.max_wait_ms.unwrap_or(0.0);
                let (Some(m), true) = (max_len, self.errs.len() == n0) else {
                    return None;
                };
                Some((
                    Policy::Static {
                        batch_size: b,
                        max_wait: Dur::from_millis_f64(w),
                        pad_finished: s.pad_finished.unwrap_or(true),
                    },
                    m,
                    b as u64,
                ))
            }
            "continuous" => {
                let c = self.engine_names(e.continuous.clone().unwrap_or_default());
                let preset = self.preset_defaults(&c, gpu, stack, max_len);
                let chunked = c
                    .enable_chunked_prefill
                    .unwrap_or(preset.is_none_or(|d| d.chunked_prefill));
                let seqs = c
                    .max_num_seqs
                    .unwrap_or(preset.map_or(256, |d| d.max_num_seqs));
                let default_tokens = match preset {
                    Some(d) => d.max_num_batched_tokens,
                    None if chunked => 2048.max(seqs),
                    None => max_len.unwrap_or(2048).min(u32::MAX as u64) as u32,
                };
                let tokens = c.max_num_batched_tokens.unwrap_or(default_tokens);
                let f = "engine.continuous.max_num_batched_tokens";
                if tokens < seqs {
                    self.err(f, format!("got {tokens}, smaller than max_num_seqs = {seqs}; vLLM requires max_num_batched_tokens >= max_num_seqs"));
                }
                if (tokens as u64) < block_size {
                    self.err(
                        f,
                        format!("got {tokens}, smaller than one KV block ({block_size} tokens)"),
                    );
                }
                if let Some(m) = max_len {
                    if !chunked && (tokens as u64) < m {
                        self.err(f, format!("got {tokens}, smaller than max_model_len = {m} with chunked prefill off, so long prompts could never be scheduled; raise it, lower max_model_len or enable chunked prefill"));
                    }
                }
                let (Some(_), true) = (max_len, self.errs.len() == n0) else {
                    return None;
                };
                Some((
                    Policy::Continuous {
                        max_num_seqs: seqs,
                        max_num_batched_tokens: tokens,
                        chunked_prefill: chunked,
                        prefix_caching: c
                            .enable_prefix_caching
                            .unwrap_or(preset.is_none_or(|d| d.prefix_caching)),
                    },
                    tokens as u64,
                    seqs as u64,
                ))
            }
            other => {
                self.err(
                    "engine.policy",
                    format!("got {other:?}, allowed: {}", quoted_list(POLICIES)),
                );
                None
            }
        }
    }
}

/// The step scheduler of `[engine.continuous]` (FCFS for the other policies, whose
/// settings the schema refuses there). Names and ranges were checked by the schema.
fn scheduler(e: &RawEngine) -> SchedulerChoice {
    let c = match (e.policy.as_str(), &e.continuous) {
        ("continuous", Some(c)) => c,
        _ => return SchedulerChoice::default(),
    };
    let d = SchedulerConfig::default();
    SchedulerChoice::Config(SchedulerConfig {
        name: c
            .scheduling_policy
            .clone()
            .or_else(|| c.schedule_policy.clone())
            .unwrap_or(d.name),
        victim: c.preemption_victim.as_deref().and_then(Victim::from_name),
        predictor: match c.length_predictor.as_deref() {
            Some("noisy") => Predictor::Noisy {
                sigma: c.length_predictor_error.unwrap_or(0.5),
            },
            Some("bucketed") => Predictor::Bucketed,
            _ => Predictor::Oracle,
        },
        input_weight: c.fair_share_input_weight.unwrap_or(d.input_weight),
        output_weight: c.fair_share_output_weight.unwrap_or(d.output_weight),
    })
}
