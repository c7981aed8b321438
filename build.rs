//! Build script: lists the shipped data files read at run time (the measured kernel
//! tables and curves under `calibration/kernels/`, the stack profiles under
//! `calibration/profiles/`) into `$OUT_DIR/embedded_files.rs`, one `include_str!` each,
//! so that a copied or installed binary carries them (`src/specs/embedded.rs` serves
//! them). A build script rather than a hand-kept list: the kernel folder has one
//! sub-folder per measured GPU and a GPU may or may not have `moe.csv`/`allreduce.csv`,
//! so a hand list would silently miss a table added later.
//!
//! Model, GPU and price specs are not listed here: they are already embedded through
//! the named lists in `src/specs.rs` and `src/config/prices.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Data files directly in `dir` ending in one of `exts`, sorted (scripts, READMEs and
/// licences are documentation for the checkout, not read by the simulator).
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| exts.contains(&e))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let kernels = root.join("calibration/kernels");
    let profiles = root.join("calibration/profiles");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", kernels.display());
    println!("cargo:rerun-if-changed={}", profiles.display());
    let mut all = files(&kernels, &["toml"]);
    let mut gpus: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    gpus.sort();
    for g in gpus {
        all.extend(files(&g, &["csv", "toml"]));
    }
    all.extend(files(&profiles, &["toml"]));
    let mut out = String::from("/// Shipped data files: (path relative to the checkout, text).\n");
    out.push_str("pub static EMBEDDED: &[(&str, &str)] = &[\n");
    for p in &all {
        let rel: Vec<String> = p
            .strip_prefix(&root)
            .expect("under the checkout")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let abs = p.to_string_lossy().to_string();
        writeln!(out, "    ({:?}, include_str!({:?})),", rel.join("/"), abs).expect("string");
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded_files.rs");
    std::fs::write(&dest, out).expect("write embedded_files.rs");
}
