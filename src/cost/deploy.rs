//! How one instance's model is laid out on its GPUs and stored: the parallelism and
//! number formats of a deployment, under vLLM's names (`tensor_parallel_size`,
//! `pipeline_parallel_size`, `enable_expert_parallel`, `quantization`,
//! `kv_cache_dtype`), and how a pipeline's micro-batches are scheduled.
//!
//! The default is one GPU holding the whole model in its spec's dtype, which is what
//! every experiment without these keys runs.

/// How the micro-batches of a pipeline-parallel step flow through its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PipelineSchedule {
    /// vLLM's: one virtual engine per stage, each with its own batch, keeps the
    /// pipeline full; a step of k micro-batches takes max(k, pp) stage times (a
    /// bubble only when there are fewer micro-batches than stages).
    #[default]
    Steady,
    /// GPipe's textbook fill and drain: (k + pp − 1) stage times, bubble fraction
    /// (pp − 1) / (k + pp − 1).
    Flush,
}

impl PipelineSchedule {
    /// `steady` or `flush` (the `engine.pipeline_schedule` value).
    pub fn name(&self) -> &'static str {
        match self {
            PipelineSchedule::Steady => "steady",
            PipelineSchedule::Flush => "flush",
        }
    }

    /// The schedule named `name`, if any.
    pub fn from_name(name: &str) -> Option<PipelineSchedule> {
        match name {
            "steady" => Some(PipelineSchedule::Steady),
            "flush" => Some(PipelineSchedule::Flush),
            _ => None,
        }
    }

    /// Stage times a step of `k` micro-batches takes through `pp` stages.
    pub fn stage_times(&self, k: u64, pp: u64) -> u64 {
        match self {
            PipelineSchedule::Steady => k.max(pp),
            PipelineSchedule::Flush => k + pp - 1,
        }
    }
}

/// The layout and formats of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// GPUs a tensor-parallel group splits each layer over (1: none).
    pub tensor_parallel: u32,
    /// Pipeline stages, each a tensor-parallel group holding a share of the layers
    /// (1: none).
    pub pipeline_parallel: u32,
    /// Whether a MoE layer's experts are spread over the GPUs of the instance
    /// (expert parallelism) instead of each expert being split by tensor parallelism.
    pub expert_parallel: bool,
    /// The weights' `quantization` method (`None`: the model's own dtype).
    pub quantization: Option<super::quant::Quantization>,
    /// The KV cache's element type (`kv_cache_dtype`).
    pub kv_cache_dtype: super::quant::KvCacheDtype,
    /// How a pipeline's micro-batches are scheduled (no effect with one stage).
    pub pipeline_schedule: PipelineSchedule,
    /// Attention data-parallel ranks (vLLM `--data-parallel-size`), each a
    /// tensor-parallel group with its own batch and KV cache, whose MoE layers run
    /// expert-parallel over all of them (1: none; only with `expert_parallel`).
    pub data_parallel: u32,
}

impl Default for Deployment {
    fn default() -> Deployment {
        Deployment {
            tensor_parallel: 1,
            pipeline_parallel: 1,
            expert_parallel: false,
            quantization: None,
            kv_cache_dtype: super::quant::KvCacheDtype::Auto,
            pipeline_schedule: PipelineSchedule::Steady,
            data_parallel: 1,
        }
    }
}

impl Deployment {
    /// GPUs one instance occupies: tensor-parallel size × pipeline stages ×
    /// data-parallel ranks.
    pub fn gpus(&self) -> u32 {
        self.tensor_parallel * self.pipeline_parallel * self.data_parallel.max(1)
    }

    /// GPUs of the expert-parallel group (vLLM: EP size = TP × DP); 1 without
    /// expert parallelism.
    pub fn ep_size(&self) -> u32 {
        if self.expert_parallel {
            self.tensor_parallel * self.data_parallel.max(1)
        } else {
            1
        }
    }

    /// Whether it runs on one GPU without expert parallelism (its number formats
    /// aside).
    pub fn is_single_gpu(&self) -> bool {
        self.gpus() == 1 && !self.expert_parallel
    }

    /// Whether this is the single-GPU, spec-dtype default.
    pub fn is_default(&self) -> bool {
        *self == Deployment::default()
    }

    /// Whether the model is split over more than one GPU (tensor or pipeline
    /// parallelism).
    pub fn is_sharded(&self) -> bool {
        self.gpus() > 1
    }
}
