//! The GPU part of a step's price: measured kernel tables where a GPU has them, and
//! roofline efficiency curves everywhere else (DESIGN §2).
//!
//! Tables live in `calibration/kernels/<gpu>/` (extracted from NVIDIA AIConfigurator's
//! measured data by `calibration/kernels/extract.py`): GEMM latency by (m, n, k) and
//! dtype, prefill ("context") attention by (batch, sequence length, heads, KV heads,
//! head dim) and decode ("generation") attention by (batch, cached keys, heads, ...),
//! one layer each, microseconds. The curves live in `calibration/kernels/curves.toml`
//! (written by `infersim kernels fit`, fitted on those tables only): a shape shared by
//! every GPU and, per architecture, the efficiencies that anchor the shape on a GPU's
//! datasheet peaks.
//!
//! Interpolation: GEMMs are linear in m between grid points (so a sum of GEMMs is
//! the interpolant of the sum, and the interpolant is monotone where the measurements
//! are), and log-bilinear in (n, k) (latency ∝ n·k for large shapes); beyond the
//! largest grid value a table is extended in proportion (work ∝ size), below the
//! smallest it stays at the smallest (a kernel is never faster than its floor).
//!
//! Over 600 lines: loading, checking and interpolating the four kinds of kernel table
//! and the fitted curves share one grid code; it is read as one piece.

use crate::error::CostError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

mod moe_table;
pub use moe_table::{MoeCurve, MoeShape, MoeTable};

/// The directory of the kernel tables and curves: `$INFERSIM_KERNELS` if set, else
/// `calibration/kernels` of the source tree this binary was built from (served from
/// the copies embedded in the binary when that tree is gone: `specs::embedded`).
pub fn kernels_dir() -> PathBuf {
    match std::env::var_os("INFERSIM_KERNELS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/kernels"),
    }
}

/// Piecewise-linear interpolation of `ys` over the sorted grid `xs`: exact on grid
/// points, linear between them, constant below the first point and proportional
/// (y · x / x_last) beyond the last.
pub fn interp_linear(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    Bracket::of(xs, x).interp(xs, ys)
}

/// The number of points of the sorted grid `xs` at or below `x`
/// (`xs.partition_point(|&v| v <= x)`). The measured grids have a few to a few
/// dozen points: there a count of the points at or below (branch-free, and
/// vectorised) beats a binary search, whose every comparison is a branch the
/// processor cannot predict; it is the same count on a sorted grid.
#[inline]
fn points_at_or_below(xs: &[f64], x: f64) -> usize {
    if xs.len() <= 32 {
        xs.iter().map(|&v| usize::from(v <= x)).sum()
    } else {
        xs.partition_point(|&v| v <= x)
    }
}

/// Where `x` falls on a sorted grid for [`interp_linear`]: found once, it
/// interpolates every row measured on that grid with the same arithmetic.
#[derive(Debug, Clone, Copy)]
enum Bracket {
    /// The grid is empty.
    Empty,
    /// At or below the first point.
    Below,
    /// At or beyond the last point, at `x`.
    Beyond(f64),
    /// Between points `i` and `i + 1`, at weight `t` of the upper one.
    Between(usize, f64),
}

impl Bracket {
    #[inline]
    fn of(xs: &[f64], x: f64) -> Bracket {
        let n = xs.len();
        if n == 0 {
            return Bracket::Empty;
        }
        if x <= xs[0] {
            return Bracket::Below;
        }
        if x >= xs[n - 1] {
            return Bracket::Beyond(x);
        }
        let i = points_at_or_below(xs, x) - 1;
        Bracket::Between(i, (x - xs[i]) / (xs[i + 1] - xs[i]))
    }

    #[inline]
    fn interp(self, xs: &[f64], ys: &[f64]) -> f64 {
        match self {
            Bracket::Empty => 0.0,
            Bracket::Below => ys[0],
            Bracket::Beyond(x) => ys[xs.len() - 1] * x / xs[xs.len() - 1],
            Bracket::Between(i, t) => ys[i] + t * (ys[i + 1] - ys[i]),
        }
    }
}

/// Where `x` falls on a sorted grid, for log-space interpolation: the lower index and
/// the weight of the upper one, plus the factor to apply outside the grid
/// (proportional beyond the end, 1 below the start).
fn log_bracket(xs: &[f64], x: f64) -> (usize, f64, f64) {
    let n = xs.len();
    if n == 1 || x <= xs[0] {
        return (0, 0.0, 1.0);
    }
    if x >= xs[n - 1] {
        return (n - 2, 1.0, x / xs[n - 1]);
    }
    let i = xs.partition_point(|&v| v <= x) - 1;
    let t = (x.ln() - xs[i].ln()) / (xs[i + 1].ln() - xs[i].ln());
    (i, t, 1.0)
}

/// Measured GEMM latencies of one dtype on a full (m × n × k) grid.
#[derive(Debug, Clone)]
pub struct GemmTable {
    /// m grid (tokens), ascending.
    pub ms: Vec<f64>,
    /// n grid (output features), ascending.
    pub ns: Vec<f64>,
    /// k grid (input features), ascending.
    pub ks: Vec<f64>,
    /// Latency, µs, indexed `[(mi * ns.len() + ni) * ks.len() + ki]`.
    pub lat_us: Vec<f64>,
}

impl GemmTable {
    fn at(&self, mi: usize, ni: usize, ki: usize) -> f64 {
        self.lat_us[(mi * self.ns.len() + ni) * self.ks.len() + ki]
    }

    /// Latency over the m grid of a GEMM with `n` outputs and `k` inputs:
    /// log-bilinear in (n, k) between grid values, proportional beyond them.
    pub fn m_curve(&self, n: f64, k: f64) -> Vec<f64> {
        let (ni, tn, fnx) = log_bracket(&self.ns, n);
        let (ki, tk, fkx) = log_bracket(&self.ks, k);
        let n1 = (ni + 1).min(self.ns.len() - 1);
        let k1 = (ki + 1).min(self.ks.len() - 1);
        (0..self.ms.len())
            .map(|mi| {
                let l = |a: usize, b: usize| self.at(mi, a, b).max(1e-9).ln();
                let v = (1.0 - tn) * ((1.0 - tk) * l(ni, ki) + tk * l(ni, k1))
                    + tn * ((1.0 - tk) * l(n1, ki) + tk * l(n1, k1));
                v.exp() * fnx * fkx
            })
            .collect()
    }

    /// Latency of one GEMM, µs: linear in m on the m grid of [`GemmTable::m_curve`].
    pub fn latency_us(&self, m: f64, n: f64, k: f64) -> f64 {
        interp_linear(&self.ms, &self.m_curve(n, k), m)
    }
}

/// One attention table for one (heads, KV heads, head dim): latency over a
/// (batch × length) grid, one layer, µs.
#[derive(Debug, Clone)]
pub struct AttnGrid {
    /// Batch grid, ascending.
    pub batches: Vec<f64>,
    /// Length grid (prefill: sequence length; decode: cached keys), ascending.
    pub lens: Vec<f64>,
    /// Latency, µs, indexed `[bi * lens.len() + li]`.
    pub lat_us: Vec<f64>,
}

impl AttnGrid {
    /// Bilinear interpolation (linear in batch and in length), proportional beyond
    /// the largest values, constant below the smallest.
    pub fn latency_us(&self, batch: f64, len: f64) -> f64 {
        let nl = self.lens.len();
        // Both rows are interpolated at the same length: its bracket is found once.
        let at = Bracket::of(&self.lens, len);
        let row =
            |bi: usize| -> f64 { at.interp(&self.lens, &self.lat_us[bi * nl..(bi + 1) * nl]) };
        // interp_linear over the batch axis, evaluating only the two rows it needs.
        let bs = &self.batches;
        let n = bs.len();
        if n == 0 {
            return 0.0;
        }
        if batch <= bs[0] {
            return row(0);
        }
        if batch >= bs[n - 1] {
            return row(n - 1) * batch / bs[n - 1];
        }
        let i = points_at_or_below(bs, batch) - 1;
        let t = (batch - bs[i]) / (bs[i + 1] - bs[i]);
        let (a, b) = (row(i), row(i + 1));
        a + t * (b - a)
    }
}

/// Attention tables keyed by (heads, KV heads, head dim).
#[derive(Debug, Clone, Default)]
pub struct AttnTables {
    grids: Vec<((u32, u32, u64), AttnGrid)>,
}

impl AttnTables {
    /// The grid for a model's attention shape: exact (KV heads, head dim) match, query
    /// heads interpolated linearly between the measured head counts (work ∝ heads),
    /// proportional beyond them. `None` when the table has no such KV-head and
    /// head-dim combination (the caller then prices this group on the roofline).
    pub fn for_shape(&self, heads: u32, kv_heads: u32, head_dim: u64) -> Option<AttnGrid> {
        let mut cands: Vec<&(_, AttnGrid)> = self
            .grids
            .iter()
            .filter(|((_, kv, hd), _)| *kv == kv_heads && *hd == head_dim)
            .collect();
        cands.sort_by_key(|((h, _, _), _)| *h);
        if cands.is_empty() {
            return None;
        }
        if let Some((_, g)) = cands.iter().find(|((h, _, _), _)| *h == heads) {
            return Some(g.clone());
        }
        let hs: Vec<f64> = cands.iter().map(|((h, _, _), _)| *h as f64).collect();
        let h = heads as f64;
        let (lo, hi) = if h < hs[0] {
            (0, 0)
        } else if h > hs[hs.len() - 1] {
            (hs.len() - 1, hs.len() - 1)
        } else {
            let i = hs.partition_point(|&v| v <= h) - 1;
            (i, i + 1)
        };
        let (a, b) = (&cands[lo].1, &cands[hi].1);
        // Different head counts may have been measured on different grids: use the
        // first one's grid and interpolate the other onto it.
        let t = if lo == hi {
            0.0
        } else {
            (h - hs[lo]) / (hs[hi] - hs[lo])
        };
        let scale = if lo == hi { h / hs[lo] } else { 1.0 };
        let mut out = a.clone();
        for (bi, &bv) in a.batches.iter().enumerate() {
            for (li, &lv) in a.lens.iter().enumerate() {
                let va = a.lat_us[bi * a.lens.len() + li];
                let vb = b.latency_us(bv, lv);
                out.lat_us[bi * a.lens.len() + li] = ((1.0 - t) * va + t * vb) * scale;
            }
        }
        Some(out)
    }
}

/// Every measured table of one GPU.
#[derive(Debug, Clone)]
pub struct KernelTables {
    /// GPU name (directory name).
    pub gpu: String,
    /// bf16 GEMMs.
    pub gemm_bf16: GemmTable,
    /// fp8 (W8A8) GEMMs, where measured.
    pub gemm_fp8: Option<GemmTable>,
    /// Prefill attention, bf16 KV, no window.
    pub context_attention: AttnTables,
    /// Decode attention, bf16 KV, no window.
    pub generation_attention: AttnTables,
    /// Shortest measured kernel in the tables (the GPU's small-kernel floor), µs.
    pub min_kernel_us: f64,
    /// bf16 routed experts of a MoE layer (`moe.csv`), where measured.
    pub moe: Option<MoeTable>,
    /// bf16 all-reduce latency over message bytes, by group size (`allreduce.csv`;
    /// empty where the GPU has none).
    pub allreduce: HashMap<u32, AllReduceCurve>,
    /// Where the tables came from (meta.toml's text).
    pub provenance: String,
}

/// Reads a CSV file (header row, `#` comments) into its header and rows of fields.
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = crate::specs::embedded::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| format!("{}: empty file", path.display()))?
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|s| s.trim().to_string()).collect())
        .collect();
    Ok((header, rows))
}

fn col(header: &[String], name: &str, path: &Path) -> Result<usize, String> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        format!(
            "{}: no column {name:?} (columns: {})",
            path.display(),
            header.join(", ")
        )
    })
}

fn num(s: &str, path: &Path, line: usize) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{}: row {line}: {s:?} is not a number", path.display()))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "{}: row {line}: {s:?} is not a finite number >= 0",
            path.display()
        ));
    }
    Ok(v)
}

fn sorted_unique(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

fn index_of(axis: &[f64], v: f64) -> usize {
    axis.partition_point(|&a| a < v)
}

/// Reads `gemm.csv` (columns dtype, m, n, k, latency_us) into one table per dtype.
fn read_gemm(path: &Path) -> Result<HashMap<String, GemmTable>, String> {
    let (h, rows) = read_csv(path)?;
    let (cd, cm, cn, ck, cl) = (
        col(&h, "dtype", path)?,
        col(&h, "m", path)?,
        col(&h, "n", path)?,
        col(&h, "k", path)?,
        col(&h, "latency_us", path)?,
    );
    let mut by: HashMap<String, Vec<[f64; 4]>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let get = |c: usize| r.get(c).map(String::as_str).unwrap_or("");
        by.entry(get(cd).to_string()).or_default().push([
            num(get(cm), path, i + 2)?,
            num(get(cn), path, i + 2)?,
            num(get(ck), path, i + 2)?,
            num(get(cl), path, i + 2)?,
        ]);
    }
    let mut out = HashMap::new();
    for (dtype, pts) in by {
        let ms = sorted_unique(pts.iter().map(|p| p[0]).collect());
        let ns = sorted_unique(pts.iter().map(|p| p[1]).collect());
        let ks = sorted_unique(pts.iter().map(|p| p[2]).collect());
        let mut lat = vec![f64::NAN; ms.len() * ns.len() * ks.len()];
        for p in &pts {
            let idx = (index_of(&ms, p[0]) * ns.len() + index_of(&ns, p[1])) * ks.len()
                + index_of(&ks, p[2]);
            lat[idx] = p[3];
        }
        if lat.iter().any(|v| v.is_nan()) {
            return Err(format!(
                "{}: dtype {dtype}: the (m, n, k) grid has holes ({} of {} points)",
                path.display(),
                pts.len(),
                lat.len()
            ));
        }
        out.insert(
            dtype,
            GemmTable {
                ms,
                ns,
                ks,
                lat_us: lat,
            },
        );
    }
    Ok(out)
}

/// Reads an attention CSV with a length column named `len_col`.
fn read_attn(path: &Path, len_col: &str) -> Result<AttnTables, String> {
    let (h, rows) = read_csv(path)?;
    let c = [
        col(&h, "batch", path)?,
        col(&h, len_col, path)?,
        col(&h, "num_heads", path)?,
        col(&h, "num_kv_heads", path)?,
        col(&h, "head_dim", path)?,
        col(&h, "latency_us", path)?,
    ];
    type Shape = (u32, u32, u64);
    let mut by: Vec<(Shape, Vec<[f64; 3]>)> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mut v = [0.0; 6];
        for (j, &ci) in c.iter().enumerate() {
            v[j] = num(r.get(ci).map(String::as_str).unwrap_or(""), path, i + 2)?;
        }
        let shape = (v[2] as u32, v[3] as u32, v[4] as u64);
        match by.iter_mut().find(|(s, _)| *s == shape) {
            Some((_, pts)) => pts.push([v[0], v[1], v[5]]),
            None => by.push((shape, vec![[v[0], v[1], v[5]]])),
        }
    }
    let mut grids = Vec::new();
    for (shape, pts) in by {
        let batches = sorted_unique(pts.iter().map(|p| p[0]).collect());
        let lens = sorted_unique(pts.iter().map(|p| p[1]).collect());
        let mut lat = vec![f64::NAN; batches.len() * lens.len()];
        for p in &pts {
            lat[index_of(&batches, p[0]) * lens.len() + index_of(&lens, p[1])] = p[2];
        }
        if lat.iter().any(|v| v.is_nan()) {
            return Err(format!(
                "{}: shape {shape:?}: the (batch, {len_col}) grid has holes",
                path.display()
            ));
        }
        grids.push((
            shape,
            AttnGrid {
                batches,
                lens,
                lat_us: lat,
            },
        ));
    }
    grids.sort_by_key(|(s, _)| *s);
    Ok(AttnTables { grids })
}

/// Message sizes (bytes, ascending) and the measured all-reduce latency of each (µs)
/// for one group size.
pub type AllReduceCurve = (Vec<f64>, Vec<f64>);

/// Reads `allreduce.csv` (columns num_gpus, message_bytes, latency_us): per group
/// size, the message sizes ascending and their latencies.
fn read_allreduce(path: &Path) -> Result<HashMap<u32, AllReduceCurve>, String> {
    let (h, rows) = read_csv(path)?;
    let c = [
        col(&h, "num_gpus", path)?,
        col(&h, "message_bytes", path)?,
        col(&h, "latency_us", path)?,
    ];
    let mut by: HashMap<u32, Vec<(f64, f64)>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let mut v = [0.0; 3];
        for (j, &ci) in c.iter().enumerate() {
            v[j] = num(r.get(ci).map(String::as_str).unwrap_or(""), path, i + 2)?;
        }
        if v[0] < 1.0 || v[1] <= 0.0 {
            return Err(format!(
                "{}: row {}: num_gpus must be at least 1 and message_bytes above 0",
                path.display(),
                i + 2
            ));
        }
        by.entry(v[0] as u32).or_default().push((v[1], v[2]));
    }
    let mut out = HashMap::new();
    for (n, mut pts) in by {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(format!(
                "{}: num_gpus {n}: a message size appears twice",
                path.display()
            ));
        }
        out.insert(n, pts.into_iter().unzip());
    }
    Ok(out)
}

/// Interpolation of `ys` over the sorted grid `xs` linear in ln x (all-reduce
/// latency over message size, a grid of powers of two): exact on grid points,
/// constant below the first and proportional (y · x / x_last) beyond the last.
pub fn interp_log(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let (i, t, scale) = log_bracket(xs, x);
    let hi = (i + 1).min(xs.len() - 1);
    ((1.0 - t) * ys[i] + t * ys[hi]) * scale
}

impl KernelTables {
    /// Reads the tables of one GPU from `dir`.
    pub fn read(gpu: &str, dir: &Path) -> Result<KernelTables, CostError> {
        Self::read_inner(gpu, dir).map_err(CostError::KernelData)
    }

    fn read_inner(gpu: &str, dir: &Path) -> Result<KernelTables, String> {
        let mut gemm = read_gemm(&dir.join("gemm.csv"))?;
        let gemm_bf16 = gemm
            .remove("bf16")
            .ok_or_else(|| format!("{}: no bf16 rows", dir.join("gemm.csv").display()))?;
        let gemm_fp8 = gemm.remove("fp8");
        let context_attention = read_attn(&dir.join("context_attention.csv"), "isl")?;
        let generation_attention = read_attn(&dir.join("generation_attention.csv"), "kv_len")?;
        let min_kernel_us = gemm_bf16
            .lat_us
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let provenance =
            crate::specs::embedded::read_to_string(&dir.join("meta.toml")).unwrap_or_default();
        let moe_path = dir.join("moe.csv");
        let moe = match crate::specs::embedded::exists(&moe_path) {
            true => Some(moe_table::read_moe(&moe_path)?),
            false => None,
        };
        let ar = dir.join("allreduce.csv");
        let allreduce = if crate::specs::embedded::exists(&ar) {
            read_allreduce(&ar)?
        } else {
            HashMap::new()
        };
        Ok(KernelTables {
            allreduce,
            gpu: gpu.to_string(),
            gemm_bf16,
            gemm_fp8,
            context_attention,
            generation_attention,
            min_kernel_us,
            moe,
            provenance,
        })
    }
}

/// The measured tables of `gpu`, if `calibration/kernels/<gpu>/` has them; read once
/// per process. An unreadable table is an error (never silently the roofline).
pub fn tables_for(gpu: &str) -> Result<Option<Arc<KernelTables>>, CostError> {
    type Cache = Mutex<HashMap<(PathBuf, String), Option<Arc<KernelTables>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let root = kernels_dir();
    let key = (root.clone(), gpu.to_string());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(t) = cache.lock().expect("kernel cache").get(&key) {
        return Ok(t.clone());
    }
    let dir = root.join(gpu);
    let t = if crate::specs::embedded::exists(&dir.join("gemm.csv")) {
        Some(Arc::new(KernelTables::read(gpu, &dir)?))
    } else {
        None
    };
    cache.lock().expect("kernel cache").insert(key, t.clone());
    Ok(t)
}

/// The shape of the efficiency curves, shared by every GPU (fitted on all measured
/// GPUs together).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveShape {
    /// Sharpness of the GEMM roofline corner: time = (t_c^p + t_m^p)^(1/p); p → ∞ is
    /// the hard max, p = 1 the sum. Below ~4 a GEMM near the ridge sits well below
    /// both roofs, as measured.
    pub gemm_ridge_p: f64,
    /// m at which a GEMM's compute efficiency reaches half its large-m value
    /// (tile and wave quantisation at small m): η(m) = η · m / (m + m_half).
    pub gemm_m_half: f64,
    /// Sequence length at which prefill attention reaches half its large-L efficiency.
    pub attn_l_half: f64,
}

/// Efficiencies that anchor the curves on one GPU's datasheet peaks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveAnchor {
    /// Large-m GEMM efficiency: fraction of the datasheet dense bf16 tensor FLOP/s.
    pub gemm_eta: f64,
    /// Fraction of the datasheet bandwidth a GEMM's operand traffic reaches.
    pub gemm_mem_eta: f64,
    /// A GEMM's fixed time (launch, prologue, epilogue), µs; also the floor of the
    /// streaming kernels (norms, activation, rotary).
    pub gemm_floor_us: f64,
    /// Large-L prefill attention efficiency (fraction of tensor FLOP/s).
    pub attn_eta: f64,
    /// Prefill attention's fixed time per layer, µs.
    pub attn_floor_us: f64,
    /// Fraction of the datasheet bandwidth decode attention reaches reading the KV
    /// cache (also used for other streaming kernels: norms, activations, rotary).
    pub decode_eta: f64,
    /// Decode attention's fixed time per layer, µs.
    pub decode_floor_us: f64,
}

/// The curves of one GPU: the shared shape and its anchor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Curves {
    /// Shared shape.
    pub shape: CurveShape,
    /// This GPU's anchor.
    pub anchor: CurveAnchor,
    /// Datasheet dense bf16 tensor FLOP/s.
    pub peak_flops: f64,
    /// Datasheet bandwidth, bytes/s.
    pub peak_bw: f64,
}

impl Curves {
    /// Roofline time of a bf16 GEMM (m × k by k × n), µs.
    pub fn gemm_us(&self, m: f64, n: f64, k: f64) -> f64 {
        let eta = self.anchor.gemm_eta * m / (m + self.shape.gemm_m_half);
        let tc = 2.0 * m * n * k / (self.peak_flops * eta) * 1e6;
        let tm = 2.0 * (m * k + n * k + m * n) / (self.peak_bw * self.anchor.gemm_mem_eta) * 1e6;
        let p = self.shape.gemm_ridge_p;
        let hi = tc.max(tm);
        let lo = tc.min(tm);
        self.anchor.gemm_floor_us + hi * (1.0 + (lo / hi).powf(p)).powf(1.0 / p)
    }

    /// Roofline time of prefill attention over `pairs` attended (query, key) pairs of
    /// sequences of length about `len`, one layer, µs.
    pub fn prefill_attn_us(&self, flops: f64, len: f64) -> f64 {
        let eta = self.anchor.attn_eta * len / (len + self.shape.attn_l_half);
        self.anchor.attn_floor_us + flops / (self.peak_flops * eta) * 1e6
    }

    /// Roofline time of decode attention reading `bytes` of KV cache and computing
    /// `flops`, one layer, µs.
    pub fn decode_attn_us(&self, bytes: f64, flops: f64) -> f64 {
        let tm = bytes / (self.peak_bw * self.anchor.decode_eta) * 1e6;
        let tc = flops / (self.peak_flops * self.anchor.attn_eta) * 1e6;
        self.anchor.decode_floor_us + tm.max(tc)
    }

    /// Time of a streaming kernel moving `bytes`, µs, never below the fixed time of
    /// the smallest measured kernel class (a GEMM's floor: launch, one wave, epilogue;
    /// decode attention's floor also pays its split-KV reduction, so it is not used).
    pub fn stream_us(&self, bytes: f64) -> f64 {
        (bytes / (self.peak_bw * self.anchor.decode_eta) * 1e6).max(self.anchor.gemm_floor_us)
    }
}

/// `calibration/kernels/curves.toml`: the fitted shape, the anchors per architecture
/// and per measured GPU, and the leave-one-GPU-out errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurvesFile {
    /// How it was made.
    pub source: String,
    /// The shared shape.
    pub shape: CurveShape,
    /// Anchor for an architecture without a measured GPU (median of the
    /// architectures' anchors).
    pub default: CurveAnchor,
    /// Anchor per architecture (mean of its measured GPUs).
    pub arch: std::collections::BTreeMap<String, CurveAnchor>,
    /// Anchor fitted per measured GPU (for the record and for validation).
    pub gpu: std::collections::BTreeMap<String, CurveAnchor>,
    /// Leave-one-GPU-out validation.
    #[serde(default)]
    pub leave_one_out: Vec<toml::Value>,
}

/// The shipped curves, read once per process.
pub fn curves_file() -> Result<Arc<CurvesFile>, CostError> {
    type Cache = Mutex<HashMap<PathBuf, Arc<CurvesFile>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let path = kernels_dir().join("curves.toml");
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = cache.lock().expect("curves cache").get(&path) {
        return Ok(c.clone());
    }
    let text = crate::specs::embedded::read_to_string(&path)
        .map_err(|e| CostError::KernelData(format!("{}: cannot read: {e}", path.display())))?;
    let c: CurvesFile = toml::from_str(&text)
        .map_err(|e| CostError::KernelData(format!("{}: {}", path.display(), e.message())))?;
    let c = Arc::new(c);
    cache.lock().expect("curves cache").insert(path, c.clone());
    Ok(c)
}

impl CurvesFile {
    /// The anchor for an architecture, and whether it is the architecture's own
    /// (`false`: the cross-architecture default).
    pub fn anchor_for(&self, architecture: &str) -> (CurveAnchor, bool) {
        match self.arch.get(architecture) {
            Some(a) => (*a, true),
            None => (self.default, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count of grid points at or below a value is the binary search's
    /// partition point, on short and long grids, with repeated points, between,
    /// on and beyond them.
    #[test]
    fn points_at_or_below_is_the_partition_point() {
        for n in [0usize, 1, 2, 8, 11, 32, 33, 100] {
            let xs: Vec<f64> = (0..n).map(|i| (i / 2 * 2) as f64 * 1.5).collect();
            for k in -2..(2 * n as i64 + 4) {
                let x = k as f64 * 0.75;
                assert_eq!(
                    points_at_or_below(&xs, x),
                    xs.partition_point(|&v| v <= x),
                    "{n} {x}"
                );
            }
            assert_eq!(points_at_or_below(&xs, f64::NAN), 0);
        }
    }

    #[test]
    fn linear_interpolation_by_hand() {
        let xs = [1.0, 2.0, 4.0];
        let ys = [10.0, 20.0, 60.0];
        assert_eq!(interp_linear(&xs, &ys, 1.0), 10.0);
        assert_eq!(interp_linear(&xs, &ys, 2.0), 20.0);
        assert_eq!(interp_linear(&xs, &ys, 4.0), 60.0);
        assert_eq!(interp_linear(&xs, &ys, 3.0), 40.0);
        assert_eq!(interp_linear(&xs, &ys, 1.5), 15.0);
        // Below the grid: the floor; beyond: proportional.
        assert_eq!(interp_linear(&xs, &ys, 0.5), 10.0);
        assert_eq!(interp_linear(&xs, &ys, 8.0), 120.0);
    }

    fn tiny_gemm() -> GemmTable {
        // m ∈ {1, 4}, n ∈ {100, 400}, k ∈ {10}: latency = m · n / 100 + 1.
        let ms = vec![1.0, 4.0];
        let ns = vec![100.0, 400.0];
        let ks = vec![10.0];
        let mut lat = Vec::new();
        for m in &ms {
            for n in &ns {
                lat.push(m * n / 100.0 + 1.0);
            }
        }
        GemmTable {
            ms,
            ns,
            ks,
            lat_us: lat,
        }
    }

    #[test]
    fn gemm_table_is_exact_on_grid_and_monotone_between() {
        let g = tiny_gemm();
        assert_eq!(g.latency_us(1.0, 100.0, 10.0), 2.0);
        assert_eq!(g.latency_us(4.0, 400.0, 10.0), 17.0);
        assert!((g.latency_us(4.0, 100.0, 10.0) - 5.0).abs() < 1e-12);
        // n = 200 lies halfway in log between 100 and 400: at m = 1 the geometric
        // mean of 2 and 5, √10; at m = 4, √(5 · 17).
        assert!((g.latency_us(1.0, 200.0, 10.0) - 10f64.sqrt()).abs() < 1e-12);
        assert!((g.latency_us(4.0, 200.0, 10.0) - 85f64.sqrt()).abs() < 1e-12);
        // m = 2.5 is halfway in m: the mean of the two.
        let mid = g.latency_us(2.5, 200.0, 10.0);
        assert!((mid - (10f64.sqrt() + 85f64.sqrt()) / 2.0).abs() < 1e-12);
        // Monotone in m and in n between grid points.
        let mut last = 0.0;
        for i in 0..=30 {
            let m = 1.0 + 3.0 * i as f64 / 30.0;
            let t = g.latency_us(m, 250.0, 10.0);
            assert!(t >= last, "m {m}: {t} < {last}");
            last = t;
        }
        let mut last = 0.0;
        for i in 0..=30 {
            let n = 100.0 + 300.0 * i as f64 / 30.0;
            let t = g.latency_us(3.0, n, 10.0);
            assert!(t >= last, "n {n}: {t} < {last}");
            last = t;
        }
        // Beyond the n grid: proportional to n (800 = 2 × 400).
        assert!((g.latency_us(4.0, 800.0, 10.0) - 34.0).abs() < 1e-12);
    }

    #[test]
    fn attention_heads_are_interpolated_between_measured_counts() {
        let grid = |h: f64| AttnGrid {
            batches: vec![1.0, 2.0],
            lens: vec![16.0, 32.0],
            lat_us: vec![h, 2.0 * h, 2.0 * h, 4.0 * h],
        };
        let t = AttnTables {
            grids: vec![((8, 8, 128), grid(8.0)), ((32, 8, 128), grid(32.0))],
        };
        let g = t.for_shape(16, 8, 128).unwrap();
        assert_eq!(g.lat_us, vec![16.0, 32.0, 32.0, 64.0]);
        assert_eq!(g.latency_us(1.5, 24.0), 36.0);
        // Beyond the largest head count: proportional.
        let g = t.for_shape(64, 8, 128).unwrap();
        assert_eq!(g.lat_us[0], 64.0);
        assert!(t.for_shape(32, 4, 128).is_none());
    }
}
