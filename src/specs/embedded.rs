//! The shipped data files compiled into the binary (kernel tables, fitted curves,
//! stack profiles; listed by `build.rs`), and the file access the loaders use so that
//! a copied or `cargo install`ed binary runs with its checkout gone.
//!
//! Lookup order for a data file the simulator reads from its default place
//! (`<checkout>/calibration/kernels/...` or `<checkout>/calibration/profiles/...`):
//!
//! 1. the folder named by `$INFERSIM_KERNELS` / `$INFERSIM_PROFILES` when set (those
//!    paths are never stood in for: a folder the user names is read as it is);
//! 2. the checkout the binary was built from, when its folder (`calibration/kernels`
//!    or `calibration/profiles`) exists: every file is read from disk, so edits there
//!    take effect without a rebuild and a file removed there is really missing;
//! 3. otherwise the copy embedded at build time.
//!
//! Why embedded text rather than files found beside the binary: one file to copy,
//! nothing to keep in step. The cost is ~5 MB of binary (the kernel CSVs).
//!
//! Any other path (a user's spec, profile or trace file) is read from disk only.

use std::path::{Component, Path};

include!(concat!(env!("OUT_DIR"), "/embedded_files.rs"));

/// The checkout the binary was built from.
const CHECKOUT: &str = env!("CARGO_MANIFEST_DIR");

/// `path` relative to the build checkout as a `/`-joined key, with its data folder
/// (first two components), if `path` lies under the checkout.
fn key_of(path: &Path) -> Option<(String, String)> {
    let rel = path.strip_prefix(CHECKOUT).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().to_string()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let top = parts.get(..2)?.join("/");
    Some((parts.join("/"), top))
}

/// Whether `path` is to be served from the embedded copies: it lies in one of the
/// build checkout's data folders and that folder is gone.
fn embedded_key(path: &Path) -> Option<String> {
    let (key, top) = key_of(path)?;
    let shipped = EMBEDDED
        .iter()
        .any(|(k, _)| k.starts_with(&top) && k.as_bytes().get(top.len()) == Some(&b'/'));
    (shipped && !checkout_has(&top)).then_some(key)
}

/// Whether the build checkout still has the data folder `top`. The hidden
/// `INFERSIM_IGNORE_CHECKOUT` makes the binary act as if it were gone (for
/// `tests/travel.rs`, which cannot remove the checkout it runs from).
fn checkout_has(top: &str) -> bool {
    std::env::var_os("INFERSIM_IGNORE_CHECKOUT").is_none() && Path::new(CHECKOUT).join(top).is_dir()
}

/// The embedded text standing in for `path`, if any (see the module doc).
pub fn stand_in(path: &Path) -> Option<&'static str> {
    let key = embedded_key(path)?;
    EMBEDDED.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

/// Whether the files of `dir` are served from the embedded copies.
pub fn is_embedded(dir: &Path) -> bool {
    embedded_key(&dir.join("_")).is_some()
}

/// Reads a data file: its embedded copy where it stands in, else the file on disk.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    match embedded_key(path) {
        Some(key) => EMBEDDED
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not among the data files embedded in this binary",
                )
            }),
        None => std::fs::read_to_string(path),
    }
}

/// Reads a data file's bytes (for digests), like [`read_to_string`].
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    match embedded_key(path) {
        Some(_) => read_to_string(path).map(String::into_bytes),
        None => std::fs::read(path),
    }
}

/// Whether a data file exists: embedded where the embedded copies stand in, else on
/// disk.
pub fn exists(path: &Path) -> bool {
    match embedded_key(path) {
        Some(key) => EMBEDDED.iter().any(|(k, _)| *k == key),
        None => path.exists(),
    }
}

/// Names of the files directly in `dir`, sorted: embedded where the embedded copies
/// stand in, else on disk (empty when unreadable).
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match embedded_key(&dir.join("_")) {
        Some(key) => {
            let prefix = &key[..key.len() - 1];
            EMBEDDED
                .iter()
                .filter_map(|(k, _)| k.strip_prefix(prefix))
                .filter(|rest| !rest.contains('/'))
                .map(str::to_string)
                .collect()
        }
        None => std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    };
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_table_and_profile_is_embedded() {
        let keys: Vec<&str> = EMBEDDED.iter().map(|(k, _)| *k).collect();
        for k in [
            "calibration/kernels/curves.toml",
            "calibration/kernels/h100-sxm/gemm.csv",
            "calibration/kernels/h100-sxm/meta.toml",
            "calibration/kernels/h100-sxm/moe.csv",
            "calibration/profiles/vllm.toml",
        ] {
            assert!(keys.contains(&k), "{k} not embedded");
        }
        assert!(!keys
            .iter()
            .any(|k| k.ends_with(".py") || k.ends_with(".md")));
        // With the checkout present, the embedded copies equal the files on disk.
        for (k, text) in EMBEDDED {
            let disk = std::fs::read_to_string(Path::new(CHECKOUT).join(k)).expect(k);
            assert_eq!(disk, *text, "{k}");
        }
    }

    #[test]
    fn the_checkout_wins_while_present_and_other_paths_are_never_stood_in_for() {
        let p = Path::new(CHECKOUT).join("calibration/profiles/vllm.toml");
        assert_eq!(stand_in(&p), None);
        assert!(exists(&p));
        assert_eq!(
            stand_in(Path::new("/nonexistent/calibration/profiles/vllm.toml")),
            None
        );
        assert!(!exists(Path::new(
            "/nonexistent/calibration/profiles/vllm.toml"
        )));
        let names = file_names(&Path::new(CHECKOUT).join("calibration/kernels/h100-sxm"));
        assert!(names.contains(&"gemm.csv".to_string()), "{names:?}");
    }
}
