//! Calibration profiles: the fitted physical parameters of one GPU and serving stack.
//!
//! A profile turns counted work into time (see [`crate::cost`]). Profiles live in
//! `calibration/profiles/<gpu>-<stack>.toml`; `default-<stack>.toml` serves GPUs that
//! have no measurements, and every result that uses it is marked `uncalibrated`.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Physical parameters of one GPU + serving stack.
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
    /// Achieved fraction of the datasheet tensor FLOP/s in large matmuls.
    pub eta_compute: f64,
    /// Achieved fraction of the datasheet memory bandwidth in streaming kernels.
    pub eta_bandwidth: f64,
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

    /// Checks every value is physically meaningful.
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, v: f64, allowed: &str| {
            Err(ConfigError::new(
                file,
                field,
                format!("got {v}, allowed: {allowed}"),
            ))
        };
        for (field, v) in [
            ("eta_compute", self.eta_compute),
            ("eta_bandwidth", self.eta_bandwidth),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return bad(field, v, "a fraction in (0, 1]");
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
            ("non_torch_memory_gib", self.non_torch_memory_gib),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, v, "a finite number >= 0");
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
/// `calibration/profiles` of the source tree this binary was built from.
pub fn profiles_dir() -> PathBuf {
    match std::env::var_os("INFERSIM_PROFILES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles"),
    }
}

/// Reads and checks one profile file.
pub fn read_profile(path: &Path) -> Result<Profile, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&file, "(file)", format!("cannot read: {e}")))?;
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
    Ok(p)
}

/// Names of the profiles in [`profiles_dir`], sorted.
pub fn list_profiles() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(profiles_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_suffix(".toml").map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Finds the profile for a GPU and stack: an explicit name or path if given, else
/// `<gpu>-<stack>`, else `default-<stack>` (which the caller reports as
/// uncalibrated).
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
        if !path.exists() {
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
    for candidate in [format!("{gpu}-{stack}"), format!("default-{stack}")] {
        let path = dir.join(format!("{candidate}.toml"));
        if path.exists() {
            return read_profile(&path);
        }
    }
    Err(ConfigError::new(
        file,
        field,
        format!(
            "no profile for GPU {gpu:?} and stack {stack:?} in {} (expected {gpu}-{stack}.toml or default-{stack}.toml)",
            dir.display()
        ),
    ))
}
