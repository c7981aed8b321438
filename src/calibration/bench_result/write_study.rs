//! `infersim compare --write-study DIR`: a benchmark result and the experiment it
//! was compared against, written as a study folder in the layout of
//! `calibration/measurements/` (see its SCHEMA.md): `raw/` holding the result file
//! byte for byte, `requests.csv` (the replayed requests as a trace), `experiment.toml`
//! (the experiment with its `[workload]` replaced by that trace), `study.toml` with
//! one point whose `[point.measured]` are the file's figures, and a README.md to
//! complete. The folder is written beside DIR and renamed into place once the
//! written study loads, so it is never left half-written.

use super::BenchResult;
use crate::error::{ConfigError, Error};
use crate::report::write_atomic;
use crate::study::{load_study, StudyPoint};
use std::fmt::Write as _;
use std::path::Path;

/// The targets a written study starts with, where the result measured the metric.
const TARGETS: [(&str, f64); 5] = [
    ("request_throughput", 0.05),
    ("output_throughput", 0.05),
    ("median_ttft_ms", 0.15),
    ("median_tpot_ms", 0.15),
    ("median_itl_ms", 0.15),
];

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The experiment TOML at `experiment` with `[workload]` replaying `requests.csv`.
fn experiment_toml(experiment: &Path, csv: &str) -> Result<String, Error> {
    let file = experiment.display().to_string();
    let text = std::fs::read_to_string(experiment).map_err(|e| Error::io(experiment, e))?;
    let mut t: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError::new(&file, "(file)", e.message().to_string()))?;
    for k in ["sweep", "variant"] {
        if t.contains_key(k) {
            return Err(ConfigError::new(
                &file,
                k,
                "--write-study needs an experiment without [sweep] or [[variant]] (the one deployment the result was measured on, written out)",
            )
            .into());
        }
    }
    let mut w = toml::Table::new();
    w.insert("arrival".into(), "trace".into());
    w.insert("trace".into(), csv.into());
    t.insert("workload".into(), toml::Value::Table(w));
    let body = toml::to_string(&t).map_err(|e| ConfigError::new(&file, "(file)", e.to_string()))?;
    Ok(format!(
        "# Written by `infersim compare --write-study` from {file}: the same deployment, with\n# [workload] replaced by the requests of the result ({csv}, one row per request, in send\n# order). Comments of the original are not kept.\n{body}"
    ))
}

/// Writes the study folder `dir` (which must not exist) for `result`, read from
/// `result_path`, replayed as `sp` on `experiment`.
pub fn write_study(
    dir: &Path,
    result_path: &Path,
    result: &BenchResult,
    sp: &StudyPoint,
    experiment: &Path,
) -> Result<(), Error> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .ok_or_else(|| {
            ConfigError::new(
                "<command line>",
                "--write-study",
                "allowed: a folder path whose last component names the study",
            )
        })?;
    if dir.exists() {
        return Err(ConfigError::new(
            "<command line>",
            "--write-study",
            format!("{} exists; allowed: a new folder", dir.display()),
        )
        .into());
    }
    let raw_name = result_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "result.json".into());
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("raw")).map_err(|e| Error::io(&tmp, e))?;
    let written = (|| -> Result<(), Error> {
        let bytes = std::fs::read(result_path).map_err(|e| Error::io(result_path, e))?;
        write_atomic(&tmp.join("raw").join(&raw_name), &bytes)?;
        // AIPerf's aggregate JSON was replayed with the requests of the JSONL beside
        // it: that is kept too.
        let aggregate = serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| super::aiperf::is_aiperf_aggregate(&v));
        if aggregate {
            let jsonl = result_path.with_file_name("profile_export.jsonl");
            let b = std::fs::read(&jsonl).map_err(|e| Error::io(&jsonl, e))?;
            write_atomic(&tmp.join("raw/profile_export.jsonl"), &b)?;
        }
        let mut csv = String::from("arrival_s,input_tokens,output_tokens\n");
        for (t, i, o) in &result.requests {
            let _ = writeln!(
                csv,
                "{}.{:09},{i},{o}",
                t.0 / 1_000_000_000,
                t.0 % 1_000_000_000
            );
        }
        write_atomic(&tmp.join("requests.csv"), csv.as_bytes())?;
        let exp = experiment_toml(experiment, "requests.csv")?;
        write_atomic(&tmp.join("experiment.toml"), exp.as_bytes())?;
        let m = &sp.point.meta;
        let mut s = String::new();
        let _ = writeln!(s, "name = {}", quoted(&name));
        let _ = writeln!(s, "gpu = {}", quoted(&m.gpu));
        let _ = writeln!(s, "model = {}", quoted(&m.model));
        let _ = writeln!(s, "stack = {}", quoted(&m.profile));
        let _ = writeln!(
            s,
            "trust = \"high\"    # say why in README.md; \"low\" if the set-up is not known"
        );
        let _ = writeln!(s, "calibrate = true");
        let _ = writeln!(
            s,
            "source = {}",
            quoted(&format!("infersim compare --write-study of raw/{raw_name}"))
        );
        let _ = writeln!(s, "experiment = \"experiment.toml\"\n\n[[point]]");
        let _ = writeln!(s, "label = {}", quoted(&raw_name));
        let _ = writeln!(s, "file = {}", quoted(&format!("raw/{raw_name}")));
        let _ = writeln!(s, "params = {{}}\n[point.measured]");
        for (k, v) in &result.measured {
            let _ = writeln!(s, "{k} = {v:?}");
        }
        // Starting targets (those of the committed vLLM studies) for the figures the
        // result has, so `infersim calibrate` fits them; tighten or loosen in the file.
        let mut first = true;
        for (metric, rel) in TARGETS {
            if result.measured.contains_key(metric) {
                if first {
                    s.push_str("\n# Starting targets (edit to the accuracy this study must be reproduced with).\n");
                    first = false;
                }
                let _ = writeln!(s, "[[target]]\nmetric = \"{metric}\"\nrel = {rel:?}\n");
            }
        }
        write_atomic(&tmp.join("study.toml"), s.as_bytes())?;
        let readme = format!(
            "# {name}\n\nWritten by `infersim compare {raw_name} --experiment {} --write-study {name}`.\n\n- `raw/{raw_name}`: the benchmark result, byte for byte.\n- `requests.csv`: its requests as replayed (send offset, prompt and output tokens; an\n  empty answer is replayed as one token).\n- `experiment.toml`: the deployment, with `[workload]` replaced by `requests.csv`.\n- `study.toml`: one point; `[point.measured]` are the result's figures.\n\nTo complete (see ../SCHEMA.md): who measured, when and where; hardware, engine and\nversion with every setting; model and dtype; the trust level and why.\n",
            experiment.display()
        );
        write_atomic(&tmp.join("README.md"), readme.as_bytes())?;
        load_study(&tmp).map_err(|mut e| {
            if e.len() == 1 {
                Error::Config(e.remove(0))
            } else {
                Error::ConfigList(e)
            }
        })?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
}
