//! The calibration status of what a run priced its steps with: every stack profile
//! (fitted on measurements, a hand-set default, or derived; borrowed by an engine
//! preset that has none of its own) and every GPU's part (measured kernel tables or
//! roofline curves), as `infersim list` describes them.

use crate::config::Point;
use crate::profile::{profiles_dir, read_profile};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where a GPU's step costs come from.
pub fn gpu_source(name: &str, architecture: &str) -> String {
    match crate::kernels::tables_for(name) {
        Ok(Some(_)) => format!("measured kernel tables (calibration/kernels/{name})"),
        Ok(None) => match crate::kernels::curves_file() {
            Ok(c) if c.arch.contains_key(architecture) => {
                format!("roofline curves only, {architecture} anchor (no kernel tables)")
            }
            Ok(_) => format!(
                "roofline curves only, cross-architecture default anchor (no measured {architecture} GPU)"
            ),
            Err(e) => format!("roofline curves unavailable: {e}"),
        },
        Err(e) => format!("kernel tables unreadable: {e}"),
    }
}

/// The file of profile `name` (a name in the profiles folder, or a path).
fn profile_path(name: &str) -> PathBuf {
    if name.ends_with(".toml") || name.contains('/') {
        PathBuf::from(name)
    } else {
        profiles_dir().join(format!("{name}.toml"))
    }
}

/// Rows (what, name, status, source) of every profile, engine preset and GPU the
/// points use, each once, in first-use order.
pub fn calibration_rows<'a>(points: impl IntoIterator<Item = &'a Point>) -> Vec<[String; 4]> {
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for p in points {
        let m = &p.meta;
        if seen.insert(("profile", m.profile.clone())) {
            let (status, source) = match read_profile(&profile_path(&m.profile)) {
                Ok(prof) => (
                    if prof.status == "calibrated" {
                        "fitted (calibrated on measurements)".to_string()
                    } else {
                        prof.status.clone()
                    },
                    prof.source.clone(),
                ),
                Err(e) => ("unreadable".into(), e.to_string()),
            };
            rows.push(["stack profile".into(), m.profile.clone(), status, source]);
        }
        if let Some(stack) = &m.stack {
            if seen.insert(("stack", stack.clone())) {
                if let Some(pre) = crate::stacks::preset(stack) {
                    let (status, source) = if pre.profile == m.profile {
                        (
                            "own profile".to_string(),
                            format!("{} {}", pre.engine, pre.version),
                        )
                    } else {
                        (
                            format!("borrowed (the `{}` profile)", m.profile),
                            pre.borrow_note.to_string(),
                        )
                    };
                    rows.push(["engine preset".into(), stack.clone(), status, source]);
                }
            }
        }
        if seen.insert(("gpu", p.gpu.name.clone())) {
            let src = gpu_source(&p.gpu.name, &p.gpu.architecture);
            let status = if src.starts_with("measured") {
                "fitted (kernel tables)"
            } else {
                "roofline only"
            };
            rows.push(["GPU part".into(), p.gpu.name.clone(), status.into(), src]);
        }
    }
    rows
}
