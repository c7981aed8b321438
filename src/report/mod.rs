//! Running experiments: every sweep point × replication in parallel (rayon), results
//! collected in a stable order as typed rows ([`row`]), saved per run and reused on
//! `--resume` by run hash ([`inputs`]), then the report: every output format of
//! [`export`] (a table on stdout and, in the output folder, `summary.json`,
//! `summary.csv` and SVG plots), `config.resolved.toml`, `report.html` ([`html`])
//! and `manifest.json`. Files
//! are written whole (temporary file, then rename). The pre-run estimate and guard
//! are in [`guard`].

pub mod export;
pub mod guard;
pub mod html;
pub mod inputs;
pub mod merge;
pub mod plot;
pub mod row;
pub mod shard;
pub mod vllm_bench;

pub use export::csv::{csv_field, summary_csv};
pub use export::json::summary_json;
pub use export::svg::plots;
pub use export::table::table;
pub use export::{exporters, Artifact, Destination, Exporter};
pub use guard::{
    estimate, guard_problem, human_seconds, Estimate, GUARD_BYTES_PER_REQUEST, GUARD_MAX_RUNS,
    GUARD_MAX_SECONDS, GUARD_TOKENS_PER_S,
};
pub use inputs::{run_hash_with, InputDigests, StableHasher};
pub use row::{run_notes, toml_to_json, Params, ReportRow};
pub use shard::Shard;

use crate::config::{Experiment, Point};
use crate::error::{Error, Result};
use crate::metrics::Summary;
use crate::sim::{run, RunOptions};
use rayon::prelude::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Options of `infersim run`.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Seed override (else the file's seed).
    pub seed: Option<u64>,
    /// Worker threads (0: all cores).
    pub jobs: usize,
    /// No progress bar, no table.
    pub quiet: bool,
    /// Simulate every step through the event queue (the reference path) instead of
    /// fast-forwarding; results are identical, only slower.
    pub step_by_step: bool,
}

/// One simulation to run.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// Sweep point.
    pub point: usize,
    /// Replication.
    pub replication: u32,
    /// Seed.
    pub seed: u64,
}

/// The runs of an experiment, in output order: points in sweep order, replications
/// within each point.
pub fn plan_runs(exp: &Experiment, seed: u64) -> Vec<RunSpec> {
    let mut v = Vec::new();
    for p in 0..exp.points.len() {
        for r in 0..exp.replications {
            v.push(RunSpec {
                point: p,
                replication: r,
                seed: seed.wrapping_add(r as u64),
            });
        }
    }
    v
}

/// Runs one point with one seed and returns its summary row.
pub fn run_row(exp_name: &str, p: &Point, spec: RunSpec) -> Result<ReportRow> {
    run_row_csv(exp_name, p, spec, None, RunOptions::default())
}

/// Like [`run_row`], streaming every request to `requests_dir/<point>-<replication>.csv`
/// when a folder is given (written to a temporary file, renamed when complete).
pub fn run_row_csv(
    exp_name: &str,
    p: &Point,
    spec: RunSpec,
    requests_dir: Option<&Path>,
    opts: RunOptions,
) -> Result<ReportRow> {
    let res = match requests_dir {
        None => run(&p.scenario, spec.seed, opts)?,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let path = dir.join(format!("{}-{}.csv", p.index, spec.replication));
            let tmp = dir.join(format!(
                ".{}-{}.csv.tmp-{}",
                p.index,
                spec.replication,
                std::process::id()
            ));
            let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let w = Box::new(std::io::BufWriter::with_capacity(1 << 16, f));
            let res = crate::sim::run_with_csv(&p.scenario, spec.seed, opts, w)?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            res
        }
    };
    let mut summary = res.summary;
    summary.cost = Some(p.meta.cost(&summary));
    Ok(ReportRow::new(
        exp_name,
        p,
        spec.seed,
        spec.replication,
        summary,
    ))
}

/// Runs every point and replication; rows come back in [`plan_runs`] order.
pub fn run_all(exp: &Experiment, cfg: &RunConfig) -> Result<Vec<ReportRow>> {
    run_all_with(exp, cfg, &RunControl::default())
}

/// Set by Ctrl-C (see [`install_interrupt_handler`]): no new run starts once it is set.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C stop scheduling new runs (the runs in progress finish and are saved);
/// a second Ctrl-C quits at once. Uses the `ctrlc` crate, which installs the handler
/// portably (a signal handler on Unix, a console handler on Windows) and runs it on
/// its own thread, where it can safely print.
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: quitting now");
            std::process::exit(130);
        }
        eprintln!("interrupted: finishing the runs in progress (Ctrl-C again to quit now)");
    });
}

/// How [`run_all_with`] saves and reuses results.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Where to write `<point>-<replication>.json` as each run ends (none: don't).
    pub points_dir: Option<PathBuf>,
    /// Reuse the point files of `points_dir` whose config hash matches.
    pub resume: bool,
    /// Stop scheduling new runs after this many have finished in this process, as
    /// Ctrl-C does (set from the hidden `INFERSIM_STOP_AFTER_POINTS`, for tests).
    pub stop_after: Option<usize>,
    /// The command to suggest for resuming, in the message of an interrupted run.
    pub resume_hint: String,
    /// Where to stream per-request CSVs (`--requests-csv`), if anywhere.
    pub requests_dir: Option<PathBuf>,
}

/// The config hash of one run of `p`, a point of `exp`, with `seed` (see
/// [`inputs`]): equal hashes mean equal results.
pub fn run_hash(exp: &Experiment, p: &Point, seed: u64) -> String {
    run_hash_with(&mut InputDigests::default(), exp, p, seed)
}

/// Every run's hash, in [`plan_runs`] order (each data file read once).
pub fn run_hashes(exp: &Experiment, seed: u64) -> Vec<String> {
    let mut d = InputDigests::default();
    plan_runs(exp, seed)
        .into_iter()
        .map(|s| run_hash_with(&mut d, exp, &exp.points[s.point], s.seed))
        .collect()
}

/// The hash of a whole experiment run with `seed`: every run's hash, in order.
pub fn experiment_hash(exp: &Experiment, seed: u64) -> String {
    let mut h = StableHasher::default();
    for r in run_hashes(exp, seed) {
        h.feed(r.as_bytes());
    }
    h.hex()
}

/// The file a run's row is saved in, under the points folder.
pub fn point_file(dir: &Path, spec: RunSpec) -> PathBuf {
    dir.join(format!("{}-{}.json", spec.point, spec.replication))
}

/// A run's saved file under the points folder.
#[derive(serde::Deserialize)]
struct SavedRun {
    hash: String,
    row: Summary,
}

/// The saved summary of a run, if its file exists and holds `hash`. Equal hashes
/// mean an identical point and seed, so the rest of the row is rebuilt from the
/// point itself.
fn saved_summary(dir: &Path, spec: RunSpec, hash: &str) -> Option<Summary> {
    let text = std::fs::read_to_string(point_file(dir, spec)).ok()?;
    let saved: SavedRun = serde_json::from_str(&text).ok()?;
    (saved.hash == hash).then_some(saved.row)
}

/// Runs every point and replication; rows come back in [`plan_runs`] order. With a
/// points folder, each run's row is written there (whole) as the run ends, and with
/// `resume` the rows already there for the same config hash are reused. Ctrl-C (or
/// `stop_after`) stops scheduling new runs: the finished ones stay saved and the
/// result is [`Error::Interrupted`] with a message saying how to resume.
pub fn run_all_with(exp: &Experiment, cfg: &RunConfig, ctl: &RunControl) -> Result<Vec<ReportRow>> {
    Ok(run_shard_with(exp, cfg, ctl, Shard::WHOLE)?
        .into_iter()
        .map(|(_, row)| row)
        .collect())
}

/// Like [`run_all_with`], for only the runs `shard` owns (run `k` of [`plan_runs`]
/// with `k mod n = i`): their rows with their index `k`, in order. Resuming, saving
/// and interruption work as there, counted over the shard's runs.
pub fn run_shard_with(
    exp: &Experiment,
    cfg: &RunConfig,
    ctl: &RunControl,
    shard: Shard,
) -> Result<Vec<(usize, ReportRow)>> {
    let seed = cfg.seed.unwrap_or(exp.seed);
    let runs = plan_runs(exp, seed);
    if let Some(d) = &ctl.points_dir {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let hashes = run_hashes(exp, seed);
    let mut rows: Vec<Option<ReportRow>> = match (&ctl.points_dir, ctl.resume) {
        (Some(d), true) => runs
            .iter()
            .zip(&hashes)
            .enumerate()
            .map(|(k, (&s, h))| {
                if !shard.owns(k) {
                    return None;
                }
                let summary = saved_summary(d, s, h)?;
                Some(ReportRow::new(
                    &exp.name,
                    &exp.points[s.point],
                    s.seed,
                    s.replication,
                    summary,
                ))
            })
            .collect(),
        _ => vec![None; runs.len()],
    };
    let todo: Vec<usize> = shard
        .indices(runs.len())
        .filter(|&i| rows[i].is_none())
        .collect();
    let owned = shard.indices(runs.len()).count();
    let reused = owned - todo.len();
    let bar = if cfg.quiet || todo.len() < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(todo.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} runs  {elapsed} (eta {eta})",
            )
            .expect("valid template"),
        );
        b
    };
    let finished = AtomicUsize::new(0);
    let stop = || {
        INTERRUPTED.load(Ordering::SeqCst)
            || ctl
                .stop_after
                .is_some_and(|n| finished.load(Ordering::SeqCst) >= n)
    };
    let work = || {
        todo.par_iter()
            .map(|&i| {
                if stop() {
                    return Ok(None);
                }
                let spec = runs[i];
                let row = run_row_csv(
                    &exp.name,
                    &exp.points[spec.point],
                    spec,
                    ctl.requests_dir.as_deref(),
                    RunOptions {
                        step_by_step: cfg.step_by_step,
                        ..RunOptions::default()
                    },
                )?;
                if let Some(d) = &ctl.points_dir {
                    let file = serde_json::json!({
                        "experiment": exp.name,
                        "point": spec.point,
                        "replication": spec.replication,
                        "seed": spec.seed,
                        "hash": hashes[i],
                        "row": row,
                    });
                    let mut text = serde_json::to_string_pretty(&file).expect("serialises");
                    text.push('\n');
                    write_atomic(&point_file(d, spec), text.as_bytes())?;
                }
                finished.fetch_add(1, Ordering::SeqCst);
                bar.inc(1);
                Ok(Some((i, row)))
            })
            .collect::<Vec<Result<Option<(usize, ReportRow)>>>>()
    };
    let results = if cfg.jobs > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.jobs)
            .build()
            .map_err(|e| Error::Sim(format!("cannot start {} threads: {e}", cfg.jobs)))?
            .install(work)
    } else {
        work()
    };
    bar.finish_and_clear();
    for r in results {
        if let Some((i, row)) = r? {
            rows[i] = Some(row);
        }
    }
    let done = rows.iter().filter(|r| r.is_some()).count();
    if done < owned {
        let saved = match &ctl.points_dir {
            Some(d) => format!("saved in {}", d.display()),
            None => "not saved (no output folder)".into(),
        };
        let hint = if ctl.resume_hint.is_empty() {
            "run again with --resume".to_string()
        } else {
            format!("run `{}`", ctl.resume_hint)
        };
        return Err(Error::Interrupted(format!(
            "interrupted: {done} of {owned} runs finished ({reused} reused, {} new) and {saved}; to finish the other {}, {hint}",
            done - reused,
            owned - done
        )));
    }
    Ok(rows
        .into_iter()
        .enumerate()
        .filter_map(|(k, r)| r.map(|r| (k, r)))
        .collect())
}

/// Writes `bytes` to `path` whole: a temporary file in the same folder, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Writes every output file into `dir`.
pub fn write_outputs(
    exp: &Experiment,
    rows: &[ReportRow],
    dir: &Path,
    manifest: &Value,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        let p = dir.join(name);
        write_atomic(&p, bytes)?;
        written.push(p);
        Ok(())
    };
    let mut svgs = Vec::new();
    for ex in exporters() {
        for a in ex.export(exp, rows)? {
            if let Destination::File(name) = &a.to {
                put(name, a.text.as_bytes())?;
                if name.ends_with(".svg") {
                    svgs.push((name.clone(), a.text));
                }
            }
        }
    }
    put("config.resolved.toml", resolved_config(exp).as_bytes())?;
    let seed = manifest
        .get("seed")
        .and_then(Value::as_u64)
        .unwrap_or(exp.seed);
    let hash = match manifest.get("experiment_hash").and_then(Value::as_str) {
        Some(h) => h.to_string(),
        None => experiment_hash(exp, seed),
    };
    put(
        html::REPORT_FILE,
        html::run::run_report(exp, rows, &svgs, seed, &hash).as_bytes(),
    )?;
    // The manifest last: it says the results are complete.
    let mut m = serde_json::to_string_pretty(manifest).expect("manifest serialises");
    m.push('\n');
    put("manifest.json", m.as_bytes())?;
    Ok(written)
}

/// What the exporters print on standard output (the table), concatenated.
pub fn stdout_report(exp: &Experiment, rows: &[ReportRow]) -> Result<String> {
    let mut out = String::new();
    for ex in exporters() {
        for a in ex.export(exp, rows)? {
            if a.to == Destination::Stdout {
                out.push_str(&a.text);
            }
        }
    }
    Ok(out)
}

/// Every point's fully resolved configuration, as TOML (`[[point]]` tables).
pub fn resolved_config(exp: &Experiment) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        point: Vec<&'a crate::config::RawExperiment>,
    }
    let doc = Doc {
        point: exp.points.iter().map(|p| &p.raw).collect(),
    };
    format!(
        "# Resolved configuration of every sweep point of {}, as run.\n{}",
        exp.path.display(),
        toml::to_string(&doc).unwrap_or_else(|e| format!("# could not serialise: {e}\n"))
    )
}

/// Output files this program writes into an experiment's folder (besides
/// `manifest.json` and `points/`): `config.resolved.toml` and every exporter's.
pub fn output_files() -> Vec<&'static str> {
    let mut v = vec!["config.resolved.toml", html::REPORT_FILE];
    v.extend(export::exported_files());
    v
}

/// Removes the files `<point>-<replication>.<ext>` that runs wrote in `dir` (if it
/// exists), and nothing else.
fn remove_run_files(dir: &Path, ext: &str) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let ours = p.extension().is_some_and(|x| x == ext)
            && p.file_stem().and_then(|s| s.to_str()).is_some_and(|s| {
                s.split_once('-').is_some_and(|(a, b)| {
                    [a, b]
                        .iter()
                        .all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
                })
            });
        if ours && p.is_file() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Checks that `dir` may receive the results of an experiment whose hash is `hash`:
/// a new or empty folder, or one whose `manifest.json` has the same hash. A folder
/// holding another configuration's results is refused unless `resume` (reuse what
/// matches) or `force` (replace); then its old summary files are removed at once, so
/// that an interrupted run never leaves another configuration's summary behind, and
/// with `force` alone its saved runs and request files as well.
pub fn claim_output(dir: &Path, hash: &str, resume: bool, force: bool) -> Result<()> {
    let cl = "<command line>";
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(crate::ConfigError::new(
            cl,
            "--out",
            format!(
                "{} exists and is not a folder; choose another --out",
                dir.display()
            ),
        )
        .into());
    }
    let manifest = dir.join("manifest.json");
    let old: Option<String> = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|v| {
            v.get("experiment_hash")
                .and_then(Value::as_str)
                .map(|h| format!("experiment hash {h}"))
                .unwrap_or_else(|| "written without an experiment hash".into())
        });
    match old {
        Some(h) if h == format!("experiment hash {hash}") => Ok(()),
        Some(h) => {
            if !(resume || force) {
                return Err(crate::ConfigError::new(
                    cl,
                    "--out",
                    format!(
                        "{} holds the results of another configuration ({h}; this one has experiment hash {hash}); pass --resume to reuse the runs that match, --force to replace them, or choose another --out",
                        dir.display()
                    ),
                )
                .into());
            }
            for f in output_files() {
                let p = dir.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
            if !resume {
                // Replacing: the old configuration's saved runs and request files go
                // too, so none of them is left beside the new results.
                remove_run_files(&dir.join("points"), "json")?;
                remove_run_files(&dir.join("requests"), "csv")?;
            }
            Ok(())
        }
        None => {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, e))?
                .next()
                .is_none();
            if empty || force {
                Ok(())
            } else {
                Err(crate::ConfigError::new(
                    cl,
                    "--out",
                    format!(
                        "{} is not empty and holds no manifest.json of an infersim run; pass --force to write into it anyway, or choose another --out",
                        dir.display()
                    ),
                )
                .into())
            }
        }
    }
}
