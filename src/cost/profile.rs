//! Serving-stack profiles: the engine's own costs, which belong to the engine and its
//! version, not to the GPU.
//!
//! A step's price has two parts (see [`crate::cost`]). The GPU part (how long the
//! kernels take) comes from the GPU's measured kernel tables or from roofline curves
//! anchored on its datasheet ([`crate::kernels`]); it is never fitted on serving
//! studies. The stack part is this profile: the engine's CPU work per step and per
//! running sequence, how much of it overlaps the GPU, GPU-side launch gaps, and the
//! API front end's latency. One profile per stack, `calibration/profiles/<stack>.toml`,
//! fitted jointly on every study of that stack and used on every GPU. Each fitted
//! parameter has a plausibility band ([`BANDS`]) with its source; a profile outside a
//! band is refused.
//!
//! A profile may instead set `eta_compute` and `eta_bandwidth` itself: a *flat*
//! roofline with one efficiency per roof, for hand-made GPUs and worked examples.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Physical parameters of one serving stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (file stem).
    pub name: String,
    /// Serving stack: `vllm` or `transformers`.
    pub stack: String,
    /// `calibrated` (fitted on measurements), `default` (hand-set prior) or
    /// `uncalibrated` (derived from another GPU's profile and the datasheet).
    pub status: String,
    /// Flat roofline only: achieved fraction of the datasheet tensor FLOP/s in every
    /// kernel. Shipped profiles leave it out (the GPU part then comes from kernel
    /// tables or curves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_compute: Option<f64>,
    /// Flat roofline only: achieved fraction of the datasheet memory bandwidth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_bandwidth: Option<f64>,
    /// GPU-side time per step that does not depend on the batch (kernel launches and
    /// gaps between kernels), microseconds. Occupies the GPU.
    pub gpu_step_overhead_us: f64,
    /// GPU-side time per sequence in the batch (sampler, small per-sequence kernels),
    /// microseconds. Occupies the GPU.
    pub gpu_seq_overhead_us: f64,
    /// CPU-side time per step (scheduler, input preparation), microseconds. Occupies
    /// only the instance's own process.
    pub cpu_step_overhead_us: f64,
    /// CPU-side time per sequence per step (detokenising, output handling, streaming),
    /// microseconds.
    pub cpu_seq_overhead_us: f64,
    /// Fraction of the CPU-side time that overlaps the instance's own GPU work
    /// (0: fully serial as in HF Transformers or vLLM V0; 1: fully overlapped).
    pub cpu_overlap: f64,
    /// Latency between a client sending a request to the API server and the engine
    /// seeing it (HTTP, chat template, tokenisation, hand-off to the engine), plus
    /// the delivery of the first streamed chunk, microseconds. Applies to requests
    /// sent to a server (open and closed loop), not to offline batches, which call
    /// the engine in-process.
    #[serde(default)]
    pub api_latency_us: f64,
    /// API-server CPU time per streamed sequence per step (incremental detokenising,
    /// one SSE chunk), microseconds. It runs in the API process, beside the engine:
    /// a step lasts at least this times the sequences that emit a token, but it does
    /// not add to the engine's own time. Not applied to offline batches.
    #[serde(default)]
    pub api_seq_overhead_us: f64,
    /// API-server CPU time per request before the engine sees it (HTTP parsing,
    /// request validation, chat template, hand-off), microseconds. Used only when the
    /// front end is modelled as a queue (`[frontend] mode = "queue"`); band in
    /// [`FRONT_END_BANDS`]. Shipped profiles leave it at 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub api_request_us: f64,
    /// API-server CPU time per prompt token to tokenise it, microseconds (queue mode
    /// only, as `api_request_us`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub api_prompt_token_us: f64,
    /// Passes over the fp32 logits (batch × vocabulary) the sampler makes.
    pub logits_passes: f64,
    /// Memory outside weights, KV cache and activations (CUDA context, cuBLAS
    /// workspace, CUDA graphs), GiB.
    pub non_torch_memory_gib: f64,
    /// Provenance: how the numbers were obtained.
    #[serde(default)]
    pub source: String,
    /// Fit record written by `infersim calibrate` (studies, residuals, date, seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<toml::Value>,
}

impl Profile {
    /// Whether results using this profile should be marked as not calibrated.
    pub fn is_calibrated(&self) -> bool {
        self.status == "calibrated"
    }

    /// Whether the profile sets a flat roofline of its own (`eta_compute` and
    /// `eta_bandwidth`) instead of the GPU's kernel tables and curves.
    pub fn is_flat(&self) -> bool {
        self.eta_compute.is_some() && self.eta_bandwidth.is_some()
    }

    /// Checks every value is physically meaningful.
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, v: f64, allowed: &str| {
            Err(ConfigError::new(
                file,
                field,
                format!("got {v}, allowed: {allowed}"),
            ))
        };
        if self.eta_compute.is_some() != self.eta_bandwidth.is_some() {
            return Err(ConfigError::new(
                file,
                if self.eta_compute.is_some() {
                    "eta_bandwidth"
                } else {
                    "eta_compute"
                },
                "a flat roofline needs both eta_compute and eta_bandwidth (or neither: the GPU's kernel tables and curves)",
            ));
        }
        for (field, v) in [
            ("eta_compute", self.eta_compute),
            ("eta_bandwidth", self.eta_bandwidth),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                    return bad(field, v, "a fraction in (0, 1]");
                }
            }
        }
        if !(self.cpu_overlap.is_finite() && (0.0..=1.0).contains(&self.cpu_overlap)) {
            return bad("cpu_overlap", self.cpu_overlap, "a fraction in [0, 1]");
        }
        for (field, v) in [
            ("gpu_step_overhead_us", self.gpu_step_overhead_us),
            ("gpu_seq_overhead_us", self.gpu_seq_overhead_us),
            ("cpu_step_overhead_us", self.cpu_step_overhead_us),
            ("cpu_seq_overhead_us", self.cpu_seq_overhead_us),
            ("logits_passes", self.logits_passes),
            ("api_latency_us", self.api_latency_us),
            ("api_seq_overhead_us", self.api_seq_overhead_us),
            ("api_request_us", self.api_request_us),
            ("api_prompt_token_us", self.api_prompt_token_us),
            ("non_torch_memory_gib", self.non_torch_memory_gib),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, v, "a finite number >= 0");
            }
        }
        if !self.is_flat() {
            for b in bands_for(&self.stack) {
                let v = b.param.get(self);
                if !(b.lo..=b.hi).contains(&v) {
                    return Err(ConfigError::new(
                        file,
                        b.param.name(),
                        format!(
                            "got {v}, outside its plausibility band [{}, {}] {} ({})",
                            b.lo, b.hi, b.unit, b.why
                        ),
                    ));
                }
            }
        }
        for b in FRONT_END_BANDS {
            let v = (b.get)(self);
            if !(b.lo..=b.hi).contains(&v) {
                return Err(ConfigError::new(
                    file,
                    b.field,
                    format!(
                        "got {v}, outside its plausibility band [{}, {}] {} ({})",
                        b.lo, b.hi, b.unit, b.why
                    ),
                ));
            }
        }
        if !["calibrated", "default", "uncalibrated"].contains(&self.status.as_str()) {
            return Err(ConfigError::new(
                file,
                "status",
                format!(
                    "got {:?}, allowed: \"calibrated\", \"default\", \"uncalibrated\"",
                    self.status
                ),
            ));
        }
        Ok(())
    }
}

/// The directory holding shipped profiles: `$INFERSIM_PROFILES` if set, else
/// `calibration/profiles` of the source tree this binary was built from (served from
/// the copies embedded in the binary when that tree is gone: `specs::embedded`).
pub fn profiles_dir() -> PathBuf {
    match std::env::var_os("INFERSIM_PROFILES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles"),
    }
}

/// Reads and checks one profile file.
pub fn read_profile(path: &Path) -> Result<Profile, ConfigError> {
    type Cache = std::sync::Mutex<std::collections::HashMap<PathBuf, (String, Profile)>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let file = path.display().to_string();
    let text = crate::specs::embedded::read_to_string(path)
        .map_err(|e| ConfigError::new(&file, "(file)", format!("cannot read: {e}")))?;
    // A calibrated profile carries its fit record (hundreds of residual tables), and a
    // sweep resolves it once per point: parse each file's text once per process.
    let cache = CACHE.get_or_init(Default::default);
    if let Some((t, p)) = cache.lock().expect("profile cache").get(path) {
        if *t == text {
            return Ok(p.clone());
        }
    }
    let p: Profile = toml::from_str(&text).map_err(|e| {
        let msg = e
            .message()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ");
        let err = ConfigError::new(&file, "(profile)", msg);
        match e.span() {
            Some(span) => err.at_offset(&text, span.start),
            None => err,
        }
    })?;
    p.check(&file)?;
    cache
        .lock()
        .expect("profile cache")
        .insert(path.to_path_buf(), (text, p.clone()));
    Ok(p)
}

/// Names of the profiles in [`profiles_dir`], sorted.
pub fn list_profiles() -> Vec<String> {
    crate::specs::embedded::file_names(&profiles_dir())
        .into_iter()
        .filter_map(|name| name.strip_suffix(".toml").map(str::to_string))
        .collect()
}

/// Finds the stack profile: an explicit name or path if given, else the stack's
/// shipped profile `<stack>.toml`, the same on every GPU (`gpu` only names the GPU in
/// errors).
pub fn resolve_profile(
    explicit: Option<&str>,
    gpu: &str,
    stack: &str,
    base: Option<&Path>,
    file: &str,
    field: &str,
) -> Result<Profile, ConfigError> {
    let dir = profiles_dir();
    if let Some(name) = explicit {
        let path = if name.ends_with(".toml") {
            base.map(|b| b.join(name)).unwrap_or_else(|| name.into())
        } else {
            dir.join(format!("{name}.toml"))
        };
        if !crate::specs::embedded::exists(&path) {
            return Err(ConfigError::new(
                file,
                field,
                format!(
                    "profile {name:?} not found (looked for {}); shipped profiles: {}",
                    path.display(),
                    list_profiles().join(", ")
                ),
            ));
        }
        return read_profile(&path);
    }
    let path = dir.join(format!("{stack}.toml"));
    if crate::specs::embedded::exists(&path) {
        return read_profile(&path);
    }
    Err(ConfigError::new(
        file,
        field,
        format!(
            "no profile for stack {stack:?} (GPU {gpu:?}) in {} (expected {stack}.toml)",
            dir.display()
        ),
    ))
}

/// A fitted stack parameter's plausibility band: the physical range it may take, the
/// centre of its prior, and where the range comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// The parameter.
    pub param: crate::calibrate::Param,
    /// Lowest plausible value.
    pub lo: f64,
    /// Highest plausible value.
    pub hi: f64,
    /// Centre of the prior (the fit is pulled towards it).
    pub prior: f64,
    /// Unit.
    pub unit: &'static str,
    /// Why this range, and which process does the work.
    pub why: &'static str,
}

/// The plausibility bands of the stack parameters. The processes are vLLM V1's: an
/// API server process (HTTP, chat template, tokenising, incremental detokenising,
/// streaming) and an EngineCore process (scheduling, input preparation, launching
/// the forward pass, updating requests from its output), which talk over ZeroMQ
/// (vllm/v1/engine/core.py, vllm/v1/engine/output_processor.py).
pub const BANDS: &[Band] = &[
    Band {
        param: crate::calibrate::Param::GpuStep,
        lo: 0.0,
        hi: 2000.0,
        prior: 100.0,
        unit: "µs",
        why: "GPU idle gaps per step between the priced kernels: a CUDA-graph decode step of a few hundred kernels leaves ~1 µs gaps each (≤ 0.5 ms); an eager prefill step launches each kernel from Python, ≤ 2 ms",
    },
    Band {
        param: crate::calibrate::Param::GpuSeq,
        lo: 0.0,
        hi: 20.0,
        prior: 2.0,
        unit: "µs",
        why: "GPU work per sequence outside the priced kernels (input-id, position and slot-mapping copies, penalties): a few small copies, each ≤ a few µs",
    },
    Band {
        param: crate::calibrate::Param::CpuStep,
        lo: 50.0,
        hi: 3000.0,
        prior: 500.0,
        unit: "µs",
        why: "EngineCore Python per step: Scheduler.schedule(), preparing the input batch and attention metadata, update_from_output(), one ZeroMQ round: 0.1–1 ms in vLLM's own profiles, up to 3 ms on a slow host CPU",
    },
    Band {
        param: crate::calibrate::Param::CpuSeq,
        lo: 0.0,
        hi: 60.0,
        prior: 15.0,
        unit: "µs",
        why: "EngineCore per running sequence per step, serial with the GPU: scheduler bookkeeping (token budget, KV block allocation), the input-batch update and update_from_output (append the token, check stops, build the output), each a few Python calls of 1–10 µs",
    },
    Band {
        param: crate::calibrate::Param::ApiSeq,
        lo: 0.0,
        hi: 250.0,
        prior: 50.0,
        unit: "µs",
        why: "API server per streamed sequence per step, beside the engine: deserialising the engine's output, incremental detokenising, building the OpenAI chunk JSON and writing one SSE event from asyncio: tens to a couple of hundred µs of Python per chunk",
    },
    Band {
        param: crate::calibrate::Param::CpuOverlap,
        lo: 0.0,
        hi: 1.0,
        prior: 0.5,
        unit: "",
        why: "share of the CPU work per step that runs while the GPU computes (V0: none; V1 with its separate API process and async output handling: part; async scheduling: most)",
    },
    Band {
        param: crate::calibrate::Param::ApiLatency,
        lo: 0.0,
        hi: 50000.0,
        prior: 5000.0,
        unit: "µs",
        why: "API server per request before the engine sees it plus the first streamed chunk: HTTP parsing, chat template, tokenising the prompt, ZeroMQ hand-off, SSE: milliseconds, tens of ms on a loaded Python event loop",
    },
];

/// Where Hugging Face Transformers' eager `generate` differs from [`BANDS`]: every
/// kernel is launched from Python (no CUDA graphs) and the loop runs logits processors
/// and stopping criteria per step.
pub const TRANSFORMERS_BANDS: &[Band] = &[
    Band {
        param: crate::calibrate::Param::GpuStep,
        lo: 0.0,
        hi: 6000.0,
        prior: 3000.0,
        unit: "µs",
        why: "eager launches: about 10 kernels per layer at 5–20 µs of launch gap each; a 28-layer model: 1.5–6 ms",
    },
    Band {
        param: crate::calibrate::Param::CpuSeq,
        lo: 0.0,
        hi: 200.0,
        prior: 50.0,
        unit: "µs",
        why: "generate's per-sequence logits processors and stopping criteria in Python",
    },
];

/// The bands that apply to a stack: [`BANDS`], with [`TRANSFORMERS_BANDS`] replacing
/// theirs for `transformers`.
pub fn bands_for(stack: &str) -> Vec<Band> {
    BANDS
        .iter()
        .map(|b| {
            let over = if stack == "transformers" {
                TRANSFORMERS_BANDS.iter().find(|o| o.param == b.param)
            } else {
                None
            };
            *over.unwrap_or(b)
        })
        .collect()
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// The plausibility band of a front-end parameter that the calibration does not fit
/// (it has no study of a saturated front end yet): set by hand in a profile or a
/// preset, checked against its physical range.
#[derive(Debug, Clone, Copy)]
pub struct FieldBand {
    /// Field name in the profile.
    pub field: &'static str,
    /// Reads it.
    pub get: fn(&Profile) -> f64,
    /// Lowest plausible value.
    pub lo: f64,
    /// Highest plausible value.
    pub hi: f64,
    /// Unit.
    pub unit: &'static str,
    /// Its physical meaning and where the range comes from.
    pub why: &'static str,
}

/// The bands of the queue-mode front-end costs (`[frontend] mode = "queue"`, see
/// [`crate::frontend`]). The per-chunk cost is `api_seq_overhead_us`, banded in
/// [`BANDS`].
pub const FRONT_END_BANDS: &[FieldBand] = &[
    FieldBand {
        field: "api_request_us",
        get: |p| p.api_request_us,
        lo: 0.0,
        hi: 50000.0,
        unit: "µs",
        why: "API server per request, one Python process: FastAPI/uvicorn HTTP parsing and pydantic validation of the OpenAI request, the chat template (Jinja), building the engine request and its ZeroMQ send (vllm/entrypoints/openai/serving_chat.py): hundreds of µs to a few ms of Python; a published Qwen3-14B run at 128 in / 4 out saturating at 44 req/s on one API server implies about 22 ms per request, so up to 50 ms",
    },
    FieldBand {
        field: "api_prompt_token_us",
        get: |p| p.api_prompt_token_us,
        lo: 0.0,
        hi: 20.0,
        unit: "µs",
        why: "tokenising the prompt in the API process: Hugging Face fast (Rust) tokenizers encode of the order of a million tokens a second on one core (≈1 µs a token), slow Python tokenizers up to tens of µs",
    },
];
