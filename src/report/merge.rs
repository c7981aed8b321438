//! Shard outputs and `infersim merge`. `infersim run FILE --shard i/n` runs only the
//! runs (sweep point × replication, in [`super::plan_runs`] order) that shard `i` of
//! `n` owns and writes them to `shard-i-of-n.json` ([`shard_file_name`]): every run's
//! summary with its run hash, the experiment hash, the seed, the experiment file and
//! the command line. [`merge`] reads all `n` shard files, checks that each shard is
//! there exactly once, complete, and from the same experiment, seed and program, loads
//! the experiment again (refusing it when its hash no longer matches), rebuilds every
//! row as `--resume` does from saved runs, and writes the outputs of an unsharded run:
//! `summary.json`, `summary.csv`, the plots, `config.resolved.toml` and
//! `manifest.json`, byte-identical to `infersim run FILE --out DIR` (the manifest's
//! command line is the shards' with `--shard` removed).
//!
//! Every shard file has a `kind`: `"run"` (written here) or `"plan"` (the planner's
//! candidates); [`merge`] dispatches on it and refuses kinds it does not know.

use super::row::ReportRow;
use super::shard::Shard;
use super::{experiment_hash, plan_runs, run_hashes, write_atomic, write_outputs};
use crate::config::Experiment;
use crate::error::{ConfigError, Error, Result};
use crate::metrics::Summary;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The version of the shard file layout.
pub const SHARD_FORMAT: u64 = 1;

/// The shard file kinds [`merge`] knows.
pub const SHARD_KINDS: &[&str] = &["run", "plan"];

/// The file name of a shard's output: `shard-<i>-of-<n>.json`.
pub fn shard_file_name(shard: Shard) -> String {
    format!("shard-{}-of-{}.json", shard.index, shard.count)
}

/// The `manifest.json` of a run of `exp` from `file` with `seed` (experiment hash
/// `hash`), `runs` runs finished, as `argv` asked. `infersim run` and `infersim merge`
/// both write it with this function, so the two agree byte for byte.
pub fn run_manifest(
    exp: &Experiment,
    file: &str,
    seed: u64,
    hash: &str,
    runs: usize,
    complete: bool,
    argv: &[String],
) -> Value {
    serde_json::json!({
        "infersim_version": env!("CARGO_PKG_VERSION"),
        "experiment": exp.name,
        "file": file,
        "seed": seed,
        "replications": exp.replications,
        "points": exp.points.len(),
        "runs": runs,
        "experiment_hash": hash,
        "complete": complete,
        "command_line": argv,
        "profiles_dir": crate::profile::profiles_dir().display().to_string(),
    })
}

/// The command line without its `--shard i/n` (or `--shard=i/n`): the unsharded
/// command that gives the same results.
pub fn unsharded_command(argv: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in argv {
        if skip {
            skip = false;
        } else if a == "--shard" {
            skip = true;
        } else if !a.starts_with("--shard=") {
            out.push(a.clone());
        }
    }
    out
}

/// The error for a problem with the folder given as `--out`.
fn out_error(msg: String) -> Error {
    ConfigError::new("<command line>", "--out", msg).into()
}

/// The experiment hash in `dir/manifest.json`, if there is a readable one
/// (`Some(None)`: a manifest without a hash).
fn manifest_hash(dir: &Path) -> Option<Option<String>> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(
        v.get("experiment_hash")
            .and_then(Value::as_str)
            .map(String::from),
    )
}

/// Checks that shards or a merge of experiment hash `hash` may write into `dir`: a
/// new folder, or one without a `manifest.json` (shards share one folder, so others'
/// shard files and saved runs are expected there), or one whose manifest has the same
/// hash. Another configuration's results are refused unless `force`; nothing is
/// removed (shards run at the same time in the folder).
pub fn claim_shard_output(dir: &Path, hash: &str, force: bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(out_error(format!(
            "{} exists and is not a folder; choose another --out",
            dir.display()
        )));
    }
    match manifest_hash(dir) {
        Some(Some(h)) if h == hash => Ok(()),
        Some(old) if !force => {
            let old = old
                .map(|h| format!("experiment hash {h}"))
                .unwrap_or_else(|| "written without an experiment hash".into());
            Err(out_error(format!(
                "{} holds the results of another configuration ({old}; this one has experiment hash {hash}); pass --force to write over them, or choose another --out",
                dir.display()
            )))
        }
        _ => Ok(()),
    }
}

/// One run in a shard file.
#[derive(Debug, serde::Deserialize)]
struct ShardRun {
    /// Its index in [`plan_runs`] order.
    run: usize,
    /// Its run hash.
    hash: String,
    /// Its summary (the row's other fields are rebuilt from the point).
    row: Summary,
}

/// A shard file of kind `"run"`.
#[derive(Debug, serde::Deserialize)]
struct RunShard {
    format: u64,
    infersim_version: String,
    file: String,
    seed: u64,
    experiment_hash: String,
    shard: usize,
    shards: usize,
    runs_total: usize,
    command_line: Vec<String>,
    runs: Vec<ShardRun>,
}

/// Writes the shard file of `shard` into `dir`: its `rows` (index in [`plan_runs`]
/// order, row) with their run hashes `hashes` (of every run), and what [`merge`] checks.
#[allow(clippy::too_many_arguments)]
pub fn write_run_shard(
    dir: &Path,
    exp: &Experiment,
    file: &str,
    seed: u64,
    shard: Shard,
    argv: &[String],
    rows: &[(usize, ReportRow)],
    hashes: &[String],
) -> Result<PathBuf> {
    let runs: Vec<Value> = rows
        .iter()
        .map(|(k, row)| {
            serde_json::json!({
                "run": k,
                "point": row.point,
                "replication": row.replication,
                "seed": row.seed,
                "hash": hashes[*k],
                "row": row,
            })
        })
        .collect();
    let v = serde_json::json!({
        "kind": "run",
        "format": SHARD_FORMAT,
        "infersim_version": env!("CARGO_PKG_VERSION"),
        "experiment": exp.name,
        "file": file,
        "seed": seed,
        "experiment_hash": experiment_hash(exp, seed),
        "shard": shard.index,
        "shards": shard.count,
        "runs_total": hashes.len(),
        "command_line": argv,
        "runs": runs,
    });
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(shard_file_name(shard));
    let mut text = serde_json::to_string_pretty(&v).expect("serialises");
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Options of `infersim merge`.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Where to write the results (default: the folder of the first shard).
    pub out: Option<PathBuf>,
    /// The experiment file to load (default: the one the shards name).
    pub experiment: Option<PathBuf>,
    /// Write over another configuration's results in the output folder.
    pub force: bool,
}

/// What [`merge`] wrote.
#[derive(Debug)]
pub struct Merged {
    /// The kind of the shards merged.
    pub kind: String,
    /// How many shards.
    pub shards: usize,
    /// The output folder.
    pub dir: PathBuf,
    /// The files written.
    pub written: Vec<PathBuf>,
    /// For run shards, the experiment and its rows (for the table).
    pub run: Option<(Experiment, Vec<ReportRow>)>,
    /// For plan shards, the merged plan report (for the table).
    pub plan: Option<crate::plan::PlanReport>,
}

/// The shard files named by `inputs`: a file as given, a folder's
/// `shard-<i>-of-<n>.json` files (sorted by name).
pub fn shard_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with("shard-") && n.ends_with(".json") && n.contains("-of-")
                        })
                })
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(ConfigError::new(
                    p.display().to_string(),
                    "(folder)",
                    "holds no shard file shard-<i>-of-<n>.json (`infersim run FILE --shard i/n --out` this folder writes them)",
                )
                .into());
            }
            files.extend(found);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            return Err(ConfigError::new(
                p.display().to_string(),
                "(file)",
                "does not exist; give shard files (shard-<i>-of-<n>.json) or the folder holding them",
            )
            .into());
        }
    }
    Ok(files)
}

/// An error about a shard file's field.
fn bad(file: &Path, field: &str, msg: impl Into<String>) -> Error {
    ConfigError::new(file.display().to_string(), field, msg).into()
}

/// Merges the shard files named by `inputs` (files or folders) into the results of
/// the unsharded job, dispatching on their `kind`.
pub fn merge(inputs: &[PathBuf], opts: &MergeOptions) -> Result<Merged> {
    let files = shard_files(inputs)?;
    let mut docs = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            bad(
                f,
                "(file)",
                format!("is not a shard file (invalid JSON: {e})"),
            )
        })?;
        let kind = match v.get("kind") {
            Some(Value::String(k)) => k.clone(),
            _ => {
                return Err(bad(
                    f,
                    "kind",
                    format!(
                        "missing or not a string; allowed: {}",
                        crate::config::reference::quoted_list(SHARD_KINDS)
                    ),
                ))
            }
        };
        docs.push((f.clone(), kind, v));
    }
    let (first, kind, _) = &docs[0];
    if let Some((f, k, _)) = docs.iter().find(|(_, k, _)| k != kind) {
        return Err(bad(
            f,
            "kind",
            format!(
                "is {k:?} but {} is {kind:?}; merge shards of one job at a time",
                first.display()
            ),
        ));
    }
    let default_dir = match inputs.first() {
        Some(p) if p.is_dir() => p.clone(),
        _ => first
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let dir = opts.out.clone().unwrap_or(default_dir);
    match kind.as_str() {
        "run" => merge_run_shards(&docs, &dir, opts),
        "plan" => merge_plan(&docs, &dir, opts.experiment.as_deref()),
        other => Err(bad(
            first,
            "kind",
            format!(
                "unknown shard kind {other:?}; allowed: {}",
                crate::config::reference::quoted_list(SHARD_KINDS)
            ),
        )),
    }
}

/// Merges shard files of kind `"run"`.
fn merge_run_shards(
    docs: &[(PathBuf, String, Value)],
    dir: &Path,
    opts: &MergeOptions,
) -> Result<Merged> {
    let mut shards: Vec<(PathBuf, RunShard)> = Vec::new();
    for (f, _, v) in docs {
        let s: RunShard = serde_json::from_value(v.clone()).map_err(|e| {
            bad(
                f,
                "(file)",
                format!("is not a complete run shard file: {e}"),
            )
        })?;
        if s.format != SHARD_FORMAT {
            return Err(bad(
                f,
                "format",
                format!("is {}; this infersim reads format {SHARD_FORMAT}", s.format),
            ));
        }
        if s.infersim_version != env!("CARGO_PKG_VERSION") {
            return Err(bad(
                f,
                "infersim_version",
                format!(
                    "was written by infersim {}; this is {}: run the shards and the merge with one version",
                    s.infersim_version,
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        shards.push((f.clone(), s));
    }
    let (f0, s0) = &shards[0];
    let n = s0.shards;
    // One job: the same experiment hash, seed, and shard count everywhere.
    for (f, s) in &shards[1..] {
        if s.experiment_hash != s0.experiment_hash || s.seed != s0.seed {
            return Err(bad(
                f,
                "experiment_hash",
                format!(
                    "is from another experiment (experiment hash {}, seed {}, file {}) than {} (experiment hash {}, seed {}, file {}); merge the shards of one run",
                    s.experiment_hash, s.seed, s.file, f0.display(), s0.experiment_hash, s0.seed, s0.file
                ),
            ));
        }
        if s.shards != n {
            return Err(bad(
                f,
                "shards",
                format!(
                    "is shard {}/{} but {} is shard {}/{n}; every shard of a job has the same n",
                    s.shard,
                    s.shards,
                    f0.display(),
                    s0.shard
                ),
            ));
        }
    }
    // Each of 0..n exactly once.
    let mut by_index: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    for (f, s) in &shards {
        if s.shard >= n {
            return Err(bad(
                f,
                "shard",
                format!("is {}, allowed: 0 to {} (of {n})", s.shard, n - 1),
            ));
        }
        if let Some(other) = by_index.insert(s.shard, f) {
            return Err(bad(
                f,
                "shard",
                format!(
                    "shard {}/{n} is given twice: {} and {}; give each shard once",
                    s.shard,
                    other.display(),
                    f.display()
                ),
            ));
        }
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(bad(
            f0,
            "shards",
            format!(
                "shard{} {} of this job {} missing (expected {}); run {} with `infersim run {} --shard {} --out {}`",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" },
                (0..n)
                    .filter(|i| !by_index.contains_key(i))
                    .map(|i| shard_file_name(Shard { index: i, count: n }))
                    .collect::<Vec<_>>()
                    .join(", "),
                if missing.len() == 1 { "it" } else { "each" },
                s0.file,
                if missing.len() == 1 { missing[0].clone() } else { format!("i/{n}") },
                f0.parent().map(|p| p.display().to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| ".".into())
            ),
        ));
    }
    // The experiment as it is now must be the one the shards ran.
    let exp_file = opts
        .experiment
        .clone()
        .unwrap_or_else(|| PathBuf::from(&s0.file));
    if opts.experiment.is_none() && !exp_file.is_file() {
        return Err(bad(
            f0,
            "file",
            format!(
                "the shards ran {}, which is not a file from here; run the merge in the shards' working folder or pass --experiment FILE",
                s0.file
            ),
        ));
    }
    let exp = crate::config::load_experiment(&exp_file).map_err(|mut errs| {
        if errs.len() == 1 {
            Error::Config(errs.remove(0))
        } else {
            Error::ConfigList(errs)
        }
    })?;
    let seed = s0.seed;
    let hash = experiment_hash(&exp, seed);
    if hash != s0.experiment_hash {
        return Err(bad(
            f0,
            "experiment_hash",
            format!(
                "the shards ran experiment hash {} but {} now gives {hash} with seed {seed} (the file, a data file it reads, or the program changed); run the shards again",
                s0.experiment_hash,
                exp_file.display()
            ),
        ));
    }
    let runs = plan_runs(&exp, seed);
    let hashes = run_hashes(&exp, seed);
    let mut summaries: Vec<Option<Summary>> = vec![None; runs.len()];
    for (f, s) in &shards {
        let shard = Shard {
            index: s.shard,
            count: n,
        };
        let owned: Vec<usize> = shard.indices(runs.len()).collect();
        let got: Vec<usize> = s.runs.iter().map(|r| r.run).collect();
        if s.runs_total != runs.len() || got != owned {
            return Err(bad(
                f,
                "runs",
                format!(
                    "holds {} of the {} runs shard {shard} owns (of {} in all); an interrupted shard finishes with `infersim run {} --shard {shard} --resume`",
                    got.iter().filter(|k| owned.contains(k)).count(),
                    owned.len(),
                    runs.len(),
                    s.file
                ),
            ));
        }
        for r in &s.runs {
            if r.hash != hashes[r.run] {
                return Err(bad(
                    f,
                    "runs",
                    format!(
                        "run {} has run hash {} but the experiment gives {}; run the shard again",
                        r.run, r.hash, hashes[r.run]
                    ),
                ));
            }
            summaries[r.run] = Some(r.row.clone());
        }
    }
    let rows: Vec<ReportRow> = runs
        .iter()
        .zip(summaries)
        .map(|(spec, summary)| {
            ReportRow::new(
                &exp.name,
                &exp.points[spec.point],
                spec.seed,
                spec.replication,
                summary.expect("every run checked present"),
            )
        })
        .collect();
    claim_shard_output(dir, &hash, opts.force)?;
    let argv = unsharded_command(&s0.command_line);
    let manifest = run_manifest(&exp, &s0.file, seed, &hash, rows.len(), true, &argv);
    let written = write_outputs(&exp, &rows, dir, &manifest)?;
    Ok(Merged {
        kind: "run".into(),
        shards: n,
        dir: dir.to_path_buf(),
        written,
        run: Some((exp, rows)),
        plan: None,
    })
}

/// Merges the shard files of `infersim plan --shard i/n` ([`crate::plan::merge_plan_shards`]
/// checks them and re-runs the winner and the next cheaper with the plan the shards
/// name, or `plan`) and writes the unsharded plan's outputs into `dir`.
fn merge_plan(
    docs: &[(PathBuf, String, Value)],
    dir: &Path,
    plan: Option<&Path>,
) -> Result<Merged> {
    let paths: Vec<PathBuf> = docs.iter().map(|(p, _, _)| p.clone()).collect();
    let report = crate::plan::merge_plan_shards(&paths, plan)?;
    let written = crate::plan::write_outputs(&report, dir)?;
    Ok(Merged {
        kind: "plan".into(),
        shards: paths.len(),
        dir: dir.to_path_buf(),
        written,
        run: None,
        plan: Some(report),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsharded_command_drops_only_the_shard() {
        let argv: Vec<String> = ["infersim", "run", "a.toml", "--shard", "1/3", "--out", "d"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            unsharded_command(&argv),
            ["infersim", "run", "a.toml", "--out", "d"]
        );
        let argv: Vec<String> = ["infersim", "run", "--shard=0/2", "a.toml"]
            .map(String::from)
            .to_vec();
        assert_eq!(unsharded_command(&argv), ["infersim", "run", "a.toml"]);
        assert_eq!(
            shard_file_name(Shard { index: 2, count: 5 }),
            "shard-2-of-5.json"
        );
    }
}
