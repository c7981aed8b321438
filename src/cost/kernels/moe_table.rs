//! The measured MoE table of a GPU (`calibration/kernels/<gpu>/moe.csv`): latency of
//! one layer's routed experts per (hidden, expert width, top-k, experts) shape over
//! the step's tokens; how it is used is in `src/cost/moe.rs`.

use super::{col, num, read_csv};
use std::path::Path;

/// Measured latency of the routed experts of one MoE layer (vLLM's fused MoE
/// kernels: gate and up GEMM, activation, down GEMM, top-k sum), bf16, one GPU,
/// tokens spread evenly over the experts, per (hidden, expert width, top-k,
/// experts) shape over the step's tokens.
#[derive(Debug, Clone, Default)]
pub struct MoeTable {
    /// One curve per measured shape.
    pub shapes: Vec<MoeCurve>,
}

/// The measured latency of one MoE shape over the step's tokens.
#[derive(Debug, Clone, Default)]
pub struct MoeCurve {
    /// (hidden, expert width, top-k, experts).
    pub shape: MoeShape,
    /// Token grid.
    pub tokens: Vec<f64>,
    /// Latency over it, µs (one layer).
    pub lat_us: Vec<f64>,
}

/// The MoE shape key: (hidden, expert width, top-k, experts).
pub type MoeShape = (u64, u64, u32, u32);

impl MoeTable {
    /// The token grid and latencies (µs) of one shape, if measured.
    pub fn for_shape(&self, shape: MoeShape) -> Option<(&[f64], &[f64])> {
        self.shapes
            .iter()
            .find(|c| c.shape == shape)
            .map(|c| (c.tokens.as_slice(), c.lat_us.as_slice()))
    }
}

/// Reads `moe.csv` (columns num_tokens, hidden_size, inter_size, topk, num_experts,
/// latency_us).
pub(super) fn read_moe(path: &Path) -> Result<MoeTable, String> {
    let (h, rows) = read_csv(path)?;
    let c = [
        col(&h, "num_tokens", path)?,
        col(&h, "hidden_size", path)?,
        col(&h, "inter_size", path)?,
        col(&h, "topk", path)?,
        col(&h, "num_experts", path)?,
        col(&h, "latency_us", path)?,
    ];
    let mut by: Vec<(MoeShape, Vec<(f64, f64)>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mut v = [0.0; 6];
        for (j, &ci) in c.iter().enumerate() {
            v[j] = num(r.get(ci).map(String::as_str).unwrap_or(""), path, i + 2)?;
        }
        let shape = (v[1] as u64, v[2] as u64, v[3] as u32, v[4] as u32);
        match by.iter_mut().find(|(s, _)| *s == shape) {
            Some((_, pts)) => pts.push((v[0], v[5])),
            None => by.push((shape, vec![(v[0], v[5])])),
        }
    }
    let mut shapes = Vec::new();
    for (shape, mut pts) in by {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(format!(
                "{}: shape {shape:?}: repeated num_tokens",
                path.display()
            ));
        }
        shapes.push(MoeCurve {
            shape,
            tokens: pts.iter().map(|p| p.0).collect(),
            lat_us: pts.iter().map(|p| p.1).collect(),
        });
    }
    shapes.sort_by_key(|c| c.shape);
    Ok(MoeTable { shapes })
}
