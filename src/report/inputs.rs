//! The run hash: what makes two runs give the same results, from stable
//! serialisations only (never a `Debug` string). A run's hash covers the program
//! version, the point's resolved configuration (the settings `config.resolved.toml`
//! shows, canonicalised: keys sorted, the free-text `description` left out), the seed,
//! and the content of every data file the point reads: its model and GPU specs
//! (the shipped text or the file), its profiles, its trace, the kernel tables of its
//! GPU and the kernel curves.
//!
//! Files are found the way the configuration finds them: specs by shipped name or
//! `.toml` path relative to the experiment's folder, profiles by explicit name or
//! path else `<stack>.toml` in the profiles folder, kernel tables in
//! `<kernels>/<gpu name>/`. Each file is named in the hash as the configuration
//! names it (never by its absolute path), so the hash is the same in any checkout.

use super::row::toml_to_json;
use crate::config::{Experiment, Point};
use crate::kernels::kernels_dir;
use crate::profile::profiles_dir;
use crate::specs::{SHIPPED_GPUS, SHIPPED_MODELS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// FNV-1a, 64 bits: a small hash that is the same on every platform and version.
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHasher {
    /// Feeds bytes, then a separator so that ("ab", "c") and ("a", "bc") differ.
    pub fn feed(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes.iter().chain(&[0xff]) {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The hash of some bytes.
fn digest(bytes: &[u8]) -> String {
    StableHasher::default().feed(bytes).hex()
}

/// A JSON value with every object's keys sorted, recursively.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let b: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(b.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The point's resolved configuration, canonicalised: its TOML value as compact JSON
/// with sorted keys, without `description`.
pub fn canonical_config(p: &Point) -> String {
    let mut v = match toml::Value::try_from(&p.raw) {
        Ok(t) => toml_to_json(&t),
        Err(e) => Value::String(format!("unserialisable configuration: {e}")),
    };
    if let Value::Object(m) = &mut v {
        m.shift_remove("description");
    }
    sorted(v).to_string()
}

/// Digests of the data files of an experiment's points, each file read once.
#[derive(Debug, Default)]
pub struct InputDigests {
    files: BTreeMap<PathBuf, String>,
}

impl InputDigests {
    /// The digest of a file's content (`missing` when it cannot be read, which the
    /// configuration would already have refused unless the file is optional).
    fn file(&mut self, path: &Path) -> String {
        self.files
            .entry(path.to_path_buf())
            .or_insert_with(|| match crate::specs::embedded::read(path) {
                Ok(b) => digest(&b),
                Err(_) => "missing".into(),
            })
            .clone()
    }

    /// The digests of every file directly in `dir`, by name, sorted.
    fn folder(&mut self, dir: &Path, out: &mut Vec<(String, String)>) {
        let names: Vec<PathBuf> = crate::specs::embedded::file_names(dir)
            .into_iter()
            .map(|n| dir.join(n))
            .collect();
        for p in names {
            let d = self.file(&p);
            let name = p.file_name().map(|n| n.to_string_lossy().to_string());
            out.push((name.unwrap_or_default(), d));
        }
    }

    /// A spec named in the configuration: its shipped text, or its file.
    fn spec(
        &mut self,
        list: &[(&str, &str)],
        kind: &str,
        name: &str,
        base: Option<&Path>,
        out: &mut Vec<(String, String)>,
    ) {
        if name.ends_with(".toml") || (kind == "model" && name.ends_with(".json")) {
            let path = base.map(|b| b.join(name)).unwrap_or_else(|| name.into());
            let d = self.file(&path);
            out.push((format!("{kind} {name}"), d));
        } else if let Some((_, text)) = list.iter().find(|(n, _)| *n == name) {
            out.push((format!("{kind} {name} (shipped)"), digest(text.as_bytes())));
        }
    }

    /// Every data file `p` (of an experiment in `base`) reads, as (what, digest)
    /// pairs in a stable order.
    pub fn point_files(&mut self, p: &Point, base: Option<&Path>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let raw = &p.raw;
        self.spec(SHIPPED_GPUS, "gpu", &raw.hardware.gpu, base, &mut out);
        // The engine, then each instance with its overrides.
        let text = |t: &toml::Table, k: &str| t.get(k).and_then(|v| v.as_str()).map(String::from);
        let mut engines = vec![(
            raw.engine.model.clone(),
            raw.engine.stack.clone(),
            raw.engine.profile.clone(),
        )];
        for t in &raw.instance {
            engines.push((
                text(t, "model").unwrap_or_else(|| raw.engine.model.clone()),
                text(t, "stack").or_else(|| raw.engine.stack.clone()),
                text(t, "profile").or_else(|| raw.engine.profile.clone()),
            ));
        }
        let profiles = profiles_dir();
        for (model, stack, profile) in engines {
            self.spec(SHIPPED_MODELS, "model", &model, base, &mut out);
            let (name, path) = match profile {
                Some(name) if name.ends_with(".toml") => {
                    let path = base
                        .map(|b| b.join(&name))
                        .unwrap_or_else(|| (&name).into());
                    (name, path)
                }
                Some(name) => {
                    let path = profiles.join(format!("{name}.toml"));
                    (name, path)
                }
                None => {
                    let name = format!("{}.toml", stack.as_deref().unwrap_or("vllm"));
                    let path = profiles.join(&name);
                    (name, path)
                }
            };
            let d = self.file(&path);
            out.push((format!("profile {name}"), d));
        }
        if let Some(trace) = &raw.workload.trace {
            let path = base.map(|b| b.join(trace)).unwrap_or_else(|| trace.into());
            let d = self.file(&path);
            out.push((format!("trace {trace}"), d));
        }
        // The price table, when one is named (the default, the GPU file's price, is
        // in the GPU spec's digest).
        if let Some(f) = &raw.hardware.price_file {
            let path = base.map(|b| b.join(f)).unwrap_or_else(|| f.into());
            let d = self.file(&path);
            out.push((format!("price file {f}"), d));
        } else if let Some((name, text)) = raw.hardware.price_provider.as_deref().and_then(|n| {
            crate::config::prices::SHIPPED_PRICES
                .iter()
                .find(|(p, _)| *p == n)
        }) {
            out.push((format!("prices {name} (shipped)"), digest(text.as_bytes())));
        }
        let kernels = kernels_dir();
        let d = self.file(&kernels.join("curves.toml"));
        out.push(("kernel curves".into(), d));
        self.folder(&kernels.join(&p.gpu.name), &mut out);
        out
    }
}

/// The config hash of one run of `p` (a point of `exp`) with `seed`. Equal hashes
/// mean equal results.
pub fn run_hash_with(digests: &mut InputDigests, exp: &Experiment, p: &Point, seed: u64) -> String {
    let mut h = StableHasher::default();
    h.feed(env!("CARGO_PKG_VERSION").as_bytes())
        .feed(canonical_config(p).as_bytes());
    for (what, d) in digests.point_files(p, exp.path.parent()) {
        h.feed(what.as_bytes()).feed(d.as_bytes());
    }
    h.feed(&seed.to_le_bytes());
    h.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_orders_keys_at_every_depth() {
        let v: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": [{"z": 0, "y": 1}], "c": 2}}"#).unwrap();
        assert_eq!(
            sorted(v).to_string(),
            r#"{"a":{"c":2,"d":[{"y":1,"z":0}]},"b":1}"#
        );
    }
}
