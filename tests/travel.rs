//! A binary that travels (issue 16 part 7): a copy of the built binary, run from a
//! folder with no checkout around and with the data-folder variables unset, must give
//! the same results as the binary run inside its checkout, byte for byte; and
//! `infersim list --json` parses and names the shipped models, GPUs and profiles.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A small experiment on a GPU with measured kernel tables (h100-sxm, moe and
/// all-reduce tables included) and a named stack profile.
const EXPERIMENT: &str = r#"
name = "travel"
seed = 7
replications = 1

[hardware]
gpu = "h100-sxm"

[engine]
model = "llama-3.1-8b"
policy = "continuous"
profile = "vllm"

[workload]
arrival = "poisson"
rate_per_s = 8.0
num_requests = 150
input_tokens = { dist = "uniform", mean = 400, range_ratio = 0.5 }
output_tokens = { dist = "uniform", mean = 60, range_ratio = 0.5 }

[sweep]
"workload.rate_per_s" = [4.0, 12.0]
"#;

/// The variables that point the binary at data folders; unset for the travelling run.
const DATA_VARS: &[&str] = &[
    "INFERSIM_KERNELS",
    "INFERSIM_PROFILES",
    "INFERSIM_MEASUREMENTS",
];

fn infersim(bin: &Path, cwd: &Path, away: bool) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(cwd);
    for v in DATA_VARS {
        c.env_remove(v);
    }
    c.env_remove("INFERSIM_IGNORE_CHECKOUT");
    if away {
        c.env("INFERSIM_IGNORE_CHECKOUT", "1");
    }
    c
}

/// Runs the experiment, returns (summary.json bytes, manifest's experiment_hash).
fn run(bin: &Path, cwd: &Path, exp: &Path, out: &Path, away: bool) -> (Vec<u8>, String) {
    let o = infersim(bin, cwd, away)
        .args([
            "run",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .output()
        .expect("runs");
    assert!(
        o.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = std::fs::read(out.join("summary.json")).expect("summary.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest"))
            .expect("manifest parses");
    let hash = manifest["experiment_hash"]
        .as_str()
        .expect("hash")
        .to_string();
    (summary, hash)
}

/// A copy of the built binary in a fresh folder (like `cargo install` or `scp`).
fn copied_binary(dir: &Path) -> PathBuf {
    let to = dir.join("infersim");
    std::fs::copy(env!("CARGO_BIN_EXE_infersim"), &to).expect("copy binary");
    to
}

#[test]
fn a_copied_binary_away_from_the_checkout_gives_the_same_results() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let exp = tmp.path().join("travel.toml");
    std::fs::write(&exp, EXPERIMENT).expect("write experiment");
    let (home, hash_home) = run(
        Path::new(env!("CARGO_BIN_EXE_infersim")),
        checkout,
        &exp,
        &tmp.path().join("home"),
        false,
    );
    let bin_dir = tmp.path().join("bin");
    let cwd = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let bin = copied_binary(&bin_dir);
    let (away, hash_away) = run(&bin, &cwd, &exp, &tmp.path().join("away"), true);
    assert!(!home.is_empty());
    assert!(home == away, "summary.json differs away from the checkout");
    // The inputs' digests (kernel tables, curves, profile) are the same too.
    assert_eq!(hash_home, hash_away);
}

#[test]
fn away_from_the_checkout_a_missing_profile_is_still_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exp = tmp.path().join("bad.toml");
    std::fs::write(
        &exp,
        EXPERIMENT.replace("profile = \"vllm\"", "profile = \"no-such\""),
    )
    .unwrap();
    let bin = copied_binary(tmp.path());
    let o = infersim(&bin, tmp.path(), true)
        .args(["run", exp.to_str().unwrap(), "--out", "out", "--quiet"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such") && err.contains("vllm"), "{err}");
}

fn list_json(away: bool) -> serde_json::Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = copied_binary(tmp.path());
    let o = infersim(&bin, tmp.path(), away)
        .args(["list", "--json"])
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("list --json is JSON")
}

fn named<'a>(v: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no list {list}"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

#[test]
fn list_json_names_the_shipped_inventory_in_and_away_from_the_checkout() {
    let home = list_json(false);
    let away = list_json(true);
    assert_eq!(home["data_embedded"], false);
    assert_eq!(away["data_embedded"], true);
    for v in [&home, &away] {
        let m = named(v, "models", "llama-3.1-8b");
        // Llama-3.1-8B: 8.03 B parameters (model card), 128 Ki context, 32 layers ×
        // 8 KV heads × 128 dims × 2 (K, V) × 2 bytes = 128 KiB of KV per token.
        let params = m["params"].as_u64().unwrap();
        assert!((7.9e9..8.2e9).contains(&(params as f64)), "{params}");
        assert_eq!(m["kv_bytes_per_token"], 131072);
        assert_eq!(m["max_context"], 131072);
        let h100 = named(v, "gpus", "h100-sxm");
        assert_eq!(h100["gpu_part"]["source"], "tables");
        assert_eq!(named(v, "gpus", "t4")["gpu_part"]["source"], "curves");
        assert_eq!(named(v, "profiles", "vllm")["status"], "calibrated");
        named(v, "stacks", "vllm@0.6");
        assert!(v["price_tables"].as_array().is_some_and(|p| !p.is_empty()));
    }
    // The inventory does not depend on where the data came from.
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("data_embedded");
        v
    };
    assert_eq!(strip(&home), strip(&away));
}
