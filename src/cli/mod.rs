//! The command-line program. `main` only calls [`main_with_args`]; arguments are
//! parsed by clap, checked, and handed to the library. Exit codes: 0 success,
//! 1 run failure, 2 bad usage or bad input.
//!
//! Over 600 lines: the clap definitions and the run, validate, list, step-time and
//! bench commands; the calibration commands are in `calibration.rs`. The next split is
//! one file per command.

pub mod bench;
pub mod bench_plan;
mod calibration;
mod compare;
mod import_model;
mod list_json;
mod merge;
mod plan;
mod prices;
use calibration::{cmd_calibrate, cmd_kernels, cmd_reproduce, CalibrateArgs, ReproduceArgs};
use import_model::{cmd_import_model, ImportModelArgs};

use crate::config::load_experiment;
use crate::cost::{CostModel, StepShape};
use crate::error::{ConfigError, Error};
use crate::experiment::{
    claim_output, estimate, experiment_hash, guard_problem, human_seconds,
    install_interrupt_handler, run_all_with, stdout_report, write_outputs, RunConfig, RunControl,
};
use crate::profile::{list_profiles, profiles_dir, resolve_profile};
use crate::specs::{load_gpu, load_model, SHIPPED_GPUS, SHIPPED_MODELS};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// infersim: predict LLM serving throughput and latency on GPUs, without a GPU.
#[derive(Debug, Parser)]
#[command(name = "infersim", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment file (every sweep point × replication, in parallel).
    Run(RunArgs),
    /// Check an experiment file without running it; reports every error.
    Validate {
        /// Experiment TOML file.
        file: PathBuf,
    },
    /// List shipped models, GPUs (with where their step costs come from) and stack
    /// profiles.
    List {
        /// Print the list as one JSON object (models, gpus, profiles, stacks,
        /// price_tables).
        #[arg(long)]
        json: bool,
    },
    /// List the engine presets (`engine.stack = "<engine>@<version>"`): what each
    /// sets, the profile it uses or borrows, and the engine source of every value.
    Stacks,
    /// Print the configuration reference: every experiment key with its type, range,
    /// unit, default and when it applies, as a Markdown table.
    Schema {
        /// Rewrite the table between the markers in this file (README.md) instead.
        #[arg(long)]
        readme: Option<PathBuf>,
    },
    /// Price one step of a model on a GPU and show where the time goes.
    StepTime(StepTimeArgs),
    /// Write a model spec TOML from a Hugging Face config.json (dense models).
    ImportModel(ImportModelArgs),
    /// Fit calibration profiles to the measured studies and write them.
    Calibrate(CalibrateArgs),
    /// Replay every measured study with the shipped profiles: predicted vs measured.
    Reproduce(ReproduceArgs),
    /// Replay a benchmark result's requests on an experiment's deployment: measured vs
    /// predicted, as `reproduce` prints them.
    Compare(compare::CompareArgs),
    /// Combine the shard files of `run --shard i/n` into the results of the unsharded
    /// run (byte-identical).
    Merge(merge::MergeArgs),
    /// Search a space of deployments for the cheapest one meeting the SLOs at a
    /// target rate (`[plan]`, `[plan.space]`): table, plan.json, plan.csv, plan.svg.
    Plan(plan::PlanArgs),
    /// Kernel tables and roofline curves: `fit` the curves on the measured tables,
    /// `check` the cost model against the tables (with leave-one-GPU-out).
    Kernels {
        /// `fit` (write calibration/kernels/curves.toml, or --out) or `check`.
        #[arg(value_parser = ["fit", "check"])]
        action: String,
        /// Where `fit` writes the curves (default: the shipped curves.toml).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure simulation speed on standard scenarios.
    Bench {
        /// Print JSON (an array of figures).
        #[arg(long)]
        json: bool,
        /// Scale of the scenarios (1.0: 100,000 requests in the main ones; 100: 10 M).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Only these scenarios (default: all).
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        /// Skip the step-by-step runs.
        #[arg(long)]
        fast_only: bool,
        /// Internal: run one scenario in this process and print its figure as JSON.
        #[arg(long, hide = true, num_args = 3, value_names = ["NAME", "MODE", "CAPACITY"])]
        child: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Experiment TOML file.
    file: PathBuf,
    /// Output folder (default `output/<experiment name>/`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed (overrides the file's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// No progress bar and no table.
    #[arg(long)]
    quiet: bool,
    /// Reuse the runs already saved in the output folder (`points/`) whose config
    /// hash matches; run only the others.
    #[arg(long)]
    resume: bool,
    /// Write into an output folder that holds another configuration's results,
    /// replacing them (its saved runs and request files included).
    #[arg(long)]
    force: bool,
    /// Run even when the estimate says it would take more than an hour or exhaust
    /// memory.
    #[arg(long)]
    no_guard: bool,
    /// Also write every request (arrival, first scheduled, first token, finish,
    /// lengths, instance, user) to `requests/<point>-<replication>.csv`, streamed as
    /// the run goes.
    #[arg(long)]
    requests_csv: bool,
    /// Simulate every step through the event queue (the reference path) instead of
    /// fast-forwarding stretches of steps; results are identical to the nanosecond,
    /// only slower.
    #[arg(long)]
    step_by_step: bool,
    /// Also write every run as a benchmark_serving result JSON
    /// (`vllm-bench/<point>-<replication>.json`, which `infersim compare` reads; each
    /// run is simulated again with its records kept).
    #[arg(long, value_parser = ["vllm-bench"])]
    format: Option<String>,
    /// Run only shard i of n (0-based): the runs k with k mod n = i, written to
    /// `shard-i-of-n.json` in the output folder; `infersim merge` combines the n shards.
    #[arg(long, value_name = "i/n")]
    shard: Option<crate::experiment::Shard>,
}

#[derive(Debug, Args)]
struct StepTimeArgs {
    /// GPU name (see `infersim list`).
    #[arg(long)]
    gpu: String,
    /// Model name (see `infersim list`).
    #[arg(long)]
    model: String,
    /// A decode step of this many sequences.
    #[arg(long, conflicts_with = "prefill")]
    decode_batch: Option<u64>,
    /// Tokens already cached per decoding sequence.
    #[arg(long, default_value_t = 128, requires = "decode_batch")]
    context: u64,
    /// A prefill step of one sequence of this many tokens.
    #[arg(long)]
    prefill: Option<u64>,
    /// Serving stack whose profile to use.
    #[arg(long, default_value = "vllm")]
    stack: String,
    /// Stack profile name or path (default: the stack's shipped profile, `<stack>`).
    #[arg(long)]
    profile: Option<String>,
    /// Price on the roofline curves of the GPU's architecture even where the GPU has
    /// measured kernel tables (to compare the two).
    #[arg(long)]
    roofline: bool,
    /// Weights' quantization method, vLLM's name (default: the checkpoint's own).
    #[arg(long)]
    quantization: Option<String>,
    /// The compressed-tensors scheme (`w8a8-int8`, `w8a8-fp8`, `w4a16`, `w8a16`,
    /// `nvfp4`; default: the checkpoint's own), with `--quantization compressed-tensors`.
    #[arg(long)]
    quantization_scheme: Option<String>,
    /// KV-cache dtype, vLLM's name (`auto`, `fp8`, `fp8_e4m3`, `fp8_e5m2`).
    #[arg(long, default_value = "auto")]
    kv_cache_dtype: String,
    /// Tensor-parallel size: price one rank of a group of this many GPUs, with its
    /// all-reduces.
    #[arg(long, default_value_t = 1)]
    tp: u32,
    /// Pipeline stages (each a tensor-parallel group).
    #[arg(long, default_value_t = 1)]
    pp: u32,
    /// Expert parallelism: a MoE layer's experts spread over tp × dp GPUs, with its
    /// all-to-all (vLLM `--enable-expert-parallel`).
    #[arg(long)]
    ep: bool,
    /// Data-parallel attention ranks with --ep: the step's batch is the union of
    /// theirs, attention priced per rank on batch / dp.
    #[arg(long, default_value_t = 1)]
    dp: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the program on `args` and returns the exit code.
pub fn main_with_args(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let res = match cli.command {
        Command::Run(a) => cmd_run(a, &args),
        Command::Validate { file } => cmd_validate(file),
        Command::List { json: false } => cmd_list(),
        Command::List { json: true } => list_json::cmd_list_json(),
        Command::Stacks => {
            let dir = crate::profile::profiles_dir();
            print!(
                "{}",
                crate::stacks::listing(|name| {
                    crate::specs::embedded::exists(&dir.join(format!("{name}.toml")))
                })
            );
            Ok(())
        }
        Command::Schema { readme } => cmd_schema(readme),
        Command::StepTime(a) => cmd_step_time(a),
        Command::ImportModel(a) => cmd_import_model(a),
        Command::Bench {
            json,
            scale,
            scenarios,
            fast_only,
            child,
        } => cmd_bench(json, scale, &scenarios, fast_only, &child),
        Command::Calibrate(a) => cmd_calibrate(a),
        Command::Reproduce(a) => cmd_reproduce(a),
        Command::Compare(a) => compare::cmd_compare(a),
        Command::Merge(a) => merge::cmd_merge(a),
        Command::Plan(a) => plan::cmd_plan(a),
        Command::Kernels { action, out } => cmd_kernels(&action, out),
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn config_errors(mut errs: Vec<ConfigError>) -> Error {
    if errs.len() == 1 {
        Error::Config(errs.remove(0))
    } else {
        Error::ConfigList(errs)
    }
}

fn cmd_validate(file: PathBuf) -> Result<(), Error> {
    if crate::plan::is_plan_file(&file) {
        return plan::cmd_validate_plan(&file);
    }
    let exp = load_experiment(&file).map_err(config_errors)?;
    for w in &exp.warnings {
        eprintln!("warning: {w}");
    }
    let est = estimate(&exp, rayon::current_num_threads());
    // What `run` would refuse, `validate` refuses too (with how to run it anyway).
    if let Some(why) = guard_problem(&est) {
        return Err(ConfigError::new(file.display().to_string(), "(estimate)", why).into());
    }
    println!(
        "{}: ok ({} sweep point{} × {} replication{}; about {:.2e} simulated tokens, {})",
        file.display(),
        exp.points.len(),
        if exp.points.len() == 1 { "" } else { "s" },
        exp.replications,
        if exp.replications == 1 { "" } else { "s" },
        est.tokens,
        human_seconds(est.seconds)
    );
    Ok(())
}

/// The command line that resumes `argv` (with `--resume` added).
fn resume_command(argv: &[String]) -> String {
    let mut parts: Vec<String> = vec!["infersim".into()];
    for a in argv.iter().skip(1) {
        if a.is_empty() || a.contains([' ', '"', '\'', '$', '\\']) {
            parts.push(format!("'{}'", a.replace('\'', "'\\''")));
        } else {
            parts.push(a.clone());
        }
    }
    if !argv.iter().any(|a| a == "--resume") {
        parts.push("--resume".into());
    }
    parts.join(" ")
}

fn cmd_run(a: RunArgs, argv: &[String]) -> Result<(), Error> {
    if crate::plan::is_plan_file(&a.file) {
        return Err(ConfigError::new(
            a.file.display().to_string(),
            "plan",
            "this is a plan file (it has a top-level [plan]); search it with `infersim plan FILE`, or remove [plan] and [plan.space] to run it as an experiment",
        )
        .into());
    }
    let exp = load_experiment(&a.file).map_err(config_errors)?;
    for w in &exp.warnings {
        eprintln!("warning: {w}");
    }
    let cfg = RunConfig {
        seed: a.seed,
        jobs: a.jobs,
        quiet: a.quiet,
        step_by_step: a.step_by_step,
    };
    if a.jobs > 1024 {
        return Err(ConfigError::new(
            "<command line>",
            "--jobs",
            format!("got {}, allowed: 0 (all cores) to 1024", a.jobs),
        )
        .into());
    }
    if let Some(s) = a.seed {
        if s > crate::validate::MAX_SEED as u64 {
            return Err(ConfigError::new(
                "<command line>",
                "--seed",
                format!(
                    "got {s}, allowed: an integer from 0 to {} (the range of the file's seed)",
                    crate::validate::MAX_SEED
                ),
            )
            .into());
        }
    }
    let seed = cfg.seed.unwrap_or(exp.seed);
    let threads = if a.jobs > 0 {
        a.jobs
    } else {
        rayon::current_num_threads()
    };
    if !a.no_guard {
        if let Some(why) = guard_problem(&estimate(&exp, threads)) {
            return Err(ConfigError::new(a.file.display().to_string(), "(estimate)", why).into());
        }
    }
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("output").join(&exp.name));
    let hash = experiment_hash(&exp, seed);
    if let Some(shard) = a.shard {
        return cmd_run_shard(&a, argv, &exp, &cfg, &dir, &hash, shard);
    }
    claim_output(&dir, &hash, a.resume, a.force)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file = a.file.display().to_string();
    let manifest = |runs: usize, complete: bool| {
        crate::experiment::merge::run_manifest(&exp, &file, seed, &hash, runs, complete, argv)
    };
    // Claim the folder first, so that an interrupted run can be resumed and is not
    // mistaken for another configuration's.
    let mut m = serde_json::to_string_pretty(&manifest(0, false)).expect("serialises");
    m.push('\n');
    crate::experiment::write_atomic(&dir.join("manifest.json"), m.as_bytes())?;
    install_interrupt_handler();
    let ctl = run_control(&a, argv, &dir);
    let rows = run_all_with(&exp, &cfg, &ctl)?;
    let manifest = manifest(rows.len(), true);
    write_outputs(&exp, &rows, &dir, &manifest)?;
    if a.format.is_some() {
        crate::experiment::vllm_bench::write_vllm_bench(&exp, seed, a.step_by_step, &dir)?;
    }
    if !a.quiet {
        print!("{}", stdout_report(&exp, &rows)?);
        let uncal: Vec<String> = exp
            .points
            .iter()
            .filter(|p| !p.meta.calibrated)
            .map(|p| p.meta.profile.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !uncal.is_empty() {
            println!("note: profile {} is not calibrated on measurements; treat absolute numbers as estimates", uncal.join(", "));
        }
        for n in crate::report::run_notes(&rows) {
            println!("note: {n}");
        }
        println!("results: {}", dir.display());
    }
    Ok(())
}

/// How `run` (whole or one shard) saves, resumes and streams its runs in `dir`.
fn run_control(a: &RunArgs, argv: &[String], dir: &std::path::Path) -> RunControl {
    RunControl {
        points_dir: Some(dir.join("points")),
        resume: a.resume,
        // Hidden, for tests: behave as if interrupted after this many runs.
        stop_after: std::env::var("INFERSIM_STOP_AFTER_POINTS")
            .ok()
            .and_then(|v| v.parse().ok()),
        resume_hint: resume_command(argv),
        requests_dir: a.requests_csv.then(|| dir.join("requests")),
    }
}

/// `run --shard i/n`: the shard's runs, saved in `points/` and written to its shard
/// file; no summary and no manifest (`infersim merge` writes them).
fn cmd_run_shard(
    a: &RunArgs,
    argv: &[String],
    exp: &crate::config::Experiment,
    cfg: &RunConfig,
    dir: &std::path::Path,
    hash: &str,
    shard: crate::experiment::Shard,
) -> Result<(), Error> {
    use crate::experiment::merge::{claim_shard_output, write_run_shard};
    if a.format.is_some() {
        return Err(ConfigError::new(
            "<command line>",
            "--format",
            "cannot be combined with --shard; write the vllm-bench results from an unsharded run",
        )
        .into());
    }
    claim_shard_output(dir, hash, a.force)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    install_interrupt_handler();
    let ctl = run_control(a, argv, dir);
    let seed = cfg.seed.unwrap_or(exp.seed);
    let rows = crate::experiment::run_shard_with(exp, cfg, &ctl, shard)?;
    let hashes = crate::experiment::run_hashes(exp, seed);
    let file = a.file.display().to_string();
    let path = write_run_shard(dir, exp, &file, seed, shard, argv, &rows, &hashes)?;
    if !a.quiet {
        println!(
            "shard {shard}: {} of {} runs written to {}; when all {} shards are done: infersim merge {}",
            rows.len(),
            hashes.len(),
            path.display(),
            shard.count,
            dir.display()
        );
    }
    Ok(())
}

fn cmd_schema(readme: Option<PathBuf>) -> Result<(), Error> {
    use crate::config::schema::{reference_table, with_reference_table, README_BEGIN};
    let Some(path) = readme else {
        print!("{}", reference_table());
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let new = with_reference_table(&text).ok_or_else(|| {
        Error::Config(ConfigError::new(
            path.display().to_string(),
            "(file)",
            format!("has no generated-table markers; add {README_BEGIN} and its END line"),
        ))
    })?;
    std::fs::write(&path, new).map_err(|e| Error::io(&path, e))
}

fn cmd_list() -> Result<(), Error> {
    println!("Models (models/llm):");
    for (name, _) in SHIPPED_MODELS {
        let m = load_model(name, None, "models", "model")?;
        println!(
            "  {:<24} {:>6.2} B params  {:>6.2} GB weights  {:>7} KiB KV/token  context {}",
            m.name,
            m.param_count() as f64 / 1e9,
            // In the checkpoint's own format (DeepSeek-V3's fp8, gpt-oss's MXFP4).
            crate::cost::quant::checkpoint_weight_bytes(&m) / 1e9,
            m.kv_bytes_per_token() / 1024,
            m.max_context
        );
    }
    println!("GPUs (models/gpu):");
    for (name, _) in SHIPPED_GPUS {
        let g = load_gpu(name, None, "models", "gpu")?;
        println!(
            "  {:<12} {:>6.0} TFLOP/s  {:>6.0} GB/s  {:>7.2} GiB  ${:.2}/GPU-h  {}",
            g.name,
            g.tensor_tflops,
            g.memory_bandwidth_gbps,
            g.memory_gib,
            g.price_per_gpu_hour_usd,
            g.full_name
        );
        let part = match crate::kernels::tables_for(&g.name) {
            Ok(Some(_)) => format!("measured kernel tables (calibration/kernels/{})", g.name),
            Ok(None) => match crate::kernels::curves_file() {
                Ok(c) if c.arch.contains_key(&g.architecture) => {
                    format!("roofline curves, {} anchor", g.architecture)
                }
                Ok(_) => format!(
                    "roofline curves, cross-architecture default anchor (no measured {} GPU)",
                    g.architecture
                ),
                Err(e) => format!("unavailable: {e}"),
            },
            Err(e) => format!("unreadable tables: {e}"),
        };
        println!("  {:<12} GPU part: {part}", "");
        if !g.mig_profiles.is_empty() {
            let profiles: Vec<String> = g
                .mig_profiles
                .iter()
                .map(|p| format!("{} (up to {})", p.name, p.max_instances))
                .collect();
            println!("  {:<12} MIG: {}", "", profiles.join(", "));
        }
    }
    let from = match crate::specs::embedded::is_embedded(&profiles_dir()) {
        true => " (embedded copies; the build checkout is gone)",
        false => "",
    };
    println!("Profiles ({}{from}):", profiles_dir().display());
    for p in list_profiles() {
        let path = profiles_dir().join(format!("{p}.toml"));
        match crate::profile::read_profile(&path) {
            Ok(prof) => println!("  {:<22} {:<13} {}", p, prof.status, prof.source),
            Err(e) => println!("  {p:<22} unreadable: {e}"),
        }
    }
    prices::print_prices();
    let presets: Vec<&str> = crate::stacks::PRESETS.iter().map(|p| p.name).collect();
    println!(
        "Engine presets (engine.stack; details: infersim stacks): {}",
        presets.join(", ")
    );
    Ok(())
}

fn cmd_step_time(a: StepTimeArgs) -> Result<(), Error> {
    let src = "<command line>";
    let gpu = load_gpu(&a.gpu, None, src, "--gpu")?;
    let model = load_model(&a.model, None, src, "--model")?;
    let profile = resolve_profile(
        a.profile.as_deref(),
        &gpu.name,
        &a.stack,
        None,
        src,
        "--profile",
    )?;
    let shape = match (a.decode_batch, a.prefill) {
        (Some(b), None) if b > 0 => StepShape::decode_only(b, a.context + 1, model.sliding_window),
        (None, Some(p)) if p > 0 => StepShape::prefill_only(p),
        _ => {
            return Err(ConfigError::new(
                src,
                "--decode-batch/--prefill",
                "give exactly one of --decode-batch N (N >= 1) or --prefill N (N >= 1)",
            )
            .into())
        }
    };
    let path = if a.roofline {
        crate::cost::GpuPath::Roofline
    } else {
        crate::cost::GpuPath::Auto
    };
    let quantization = crate::cost::quant::resolve_scheme(
        &model,
        &gpu,
        a.quantization.as_deref(),
        a.quantization_scheme.as_deref(),
    )
    .map_err(|(key, m)| {
        let flag = if key == "quantization" {
            "--quantization"
        } else {
            "--quantization-scheme"
        };
        ConfigError::new(src, flag, m)
    })?;
    let kv_cache_dtype = crate::cost::quant::KvCacheDtype::from_name(&a.kv_cache_dtype)
        .ok_or_else(|| {
            ConfigError::new(
                src,
                "--kv-cache-dtype",
                format!(
                    "got {:?}, allowed: {}",
                    a.kv_cache_dtype,
                    crate::config::reference::quoted_list(crate::cost::quant::KV_CACHE_DTYPES)
                ),
            )
        })?;
    let deploy = crate::cost::Deployment {
        quantization,
        kv_cache_dtype,
        tensor_parallel: a.tp,
        pipeline_parallel: a.pp,
        expert_parallel: a.ep,
        data_parallel: a.dp,
        ..crate::cost::Deployment::default()
    };
    for (field, v) in [("--tp", a.tp), ("--pp", a.pp), ("--dp", a.dp)] {
        if !(1..=64).contains(&v) {
            return Err(ConfigError::new(src, field, format!("got {v}, allowed: 1 to 64")).into());
        }
    }
    if let Some((field, msg)) = crate::cost::parallel::layout_errors(&model, Some(&gpu), &deploy)
        .into_iter()
        .next()
    {
        let flag = if field.contains("pipeline") {
            "--pp"
        } else {
            "--tp"
        };
        return Err(ConfigError::new(src, flag, msg.replace(field, flag)).into());
    }
    if let Some((_, msg)) = crate::cost::expert_parallel::layout_errors(&model, Some(&gpu), &deploy)
        .into_iter()
        .next()
    {
        return Err(ConfigError::new(src, "--ep", msg).into());
    }
    let cm = CostModel::for_deployment(&model, &gpu, &profile, path, &deploy)?;
    let b = cm.explain(&shape);
    if a.json {
        let mut v = serde_json::to_value(&b).expect("serialises");
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("gpu".into(), gpu.name.clone().into());
            m.insert("model".into(), model.name.clone().into());
            m.insert("profile".into(), profile.name.clone().into());
            m.insert("calibrated".into(), profile.is_calibrated().into());
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        println!(
            "{} on {} ({}, profile {}{}): {:.3} ms per step, {}; largest group: {}",
            model.name,
            gpu.name,
            if a.prefill.is_some() {
                format!("prefill {} tokens", a.prefill.unwrap_or(0))
            } else {
                format!(
                    "decode batch {} at context {}",
                    a.decode_batch.unwrap_or(0),
                    a.context
                )
            },
            profile.name,
            if profile.is_calibrated() {
                ""
            } else {
                ", uncalibrated"
            },
            b.seconds * 1e3,
            b.bound,
            b.dominant_group
        );
        println!(
            "  GPU {:.3} ms (compute-bound {:.3}, memory-bound {:.3}, overhead {:.3}), CPU {:.3} ms ({:.3} overlapping the GPU)",
            b.gpu_seconds * 1e3,
            b.compute_bound_seconds * 1e3,
            b.memory_bound_seconds * 1e3,
            b.gpu_overhead_seconds * 1e3,
            b.cpu_seconds * 1e3,
            b.cpu_overlapped_seconds * 1e3
        );
        println!("  GPU part: {}", b.gpu_part);
        if let (Some(t), Some(f)) = (b.allreduce_seconds, b.allreduce_share) {
            println!(
                "  tensor_parallel_size {}, pipeline_parallel_size {}: collectives and transfers {:.3} ms, {:.1} % of the GPU time (one GPU of {})",
                a.tp,
                a.pp,
                t * 1e3,
                f * 100.0,
                a.tp * a.pp
            );
        }
        if let Some(e) = cm.expert_parallel() {
            println!(
                "  expert parallelism over {} GPUs (data_parallel_size {}): {} experts per GPU; the all-to-all is in the allreduce group",
                e.ep, e.dp, e.experts_per_gpu
            );
        }
        println!(
            "  {:<13} {:>10} {:>10} {:>10} {:>9} {:>10} {:>10}  bound",
            "group", "GFLOP", "MB", "ms", "source", "roof c ms", "roof m ms"
        );
        for g in &b.groups {
            println!(
                "  {:<13} {:>10.2} {:>10.2} {:>10.4} {:>9} {:>10.4} {:>10.4}  {}",
                g.name,
                g.flops / 1e9,
                g.bytes / 1e6,
                g.seconds * 1e3,
                g.source,
                g.compute_roof_seconds * 1e3,
                g.memory_roof_seconds * 1e3,
                g.bound
            );
        }
    }
    Ok(())
}

fn cmd_bench(
    json: bool,
    scale: f64,
    only: &[String],
    fast_only: bool,
    child: &[String],
) -> Result<(), Error> {
    use crate::bench::{capacity, scenario, time_run, time_sweep, BenchRow, SCENARIOS};
    let cl = "<command line>";
    if !(scale.is_finite() && scale > 0.0 && scale <= 1000.0) {
        return Err(
            ConfigError::new(cl, "--scale", format!("got {scale}, allowed: (0, 1000]")).into(),
        );
    }
    if let [name, mode, cap] = child {
        let cap: f64 = cap
            .parse()
            .map_err(|_| ConfigError::new(cl, "--child", "bad capacity"))?;
        let p = scenario(name, scale, cap)
            .ok_or_else(|| ConfigError::new(cl, "--child", format!("unknown scenario {name:?}")))?;
        let row = time_run(name, mode == "step-by-step", &p);
        println!("{}", serde_json::to_string(&row).expect("serialises"));
        return Ok(());
    }
    // The planner's scenario runs in this process, after the others (alone when it is
    // the only one asked for).
    let all = only.is_empty();
    let want_plan = all || only.iter().any(|o| o == "plan");
    let only: Vec<String> = only.iter().filter(|o| *o != "plan").cloned().collect();
    if want_plan && !all && only.is_empty() {
        return bench_plan::run_plan_bench(json);
    }
    for o in &only {
        if !SCENARIOS.contains(&o.as_str()) {
            return Err(ConfigError::new(
                cl,
                "--scenario",
                format!(
                    "unknown scenario {o:?}; scenarios: {}, plan",
                    SCENARIOS.join(", ")
                ),
            )
            .into());
        }
    }
    let cap = capacity();
    let exe = std::env::current_exe().map_err(|e| Error::io("infersim", e))?;
    let mut rows: Vec<BenchRow> = Vec::new();
    for name in SCENARIOS
        .iter()
        .filter(|n| all || only.iter().any(|o| o == *n))
    {
        let modes: &[&str] = if fast_only {
            &["fast-forward"]
        } else {
            &["fast-forward", "step-by-step"]
        };
        for mode in modes {
            if !json {
                eprintln!("running {name} ({mode})...");
            }
            let out = std::process::Command::new(&exe)
                .args([
                    "bench",
                    "--scale",
                    &scale.to_string(),
                    "--child",
                    name,
                    mode,
                    &cap.to_string(),
                ])
                .output()
                .map_err(|e| Error::io(&exe, e))?;
            if !out.status.success() {
                return Err(Error::Sim(format!(
                    "bench scenario {name} ({mode}) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            let row: BenchRow = serde_json::from_slice(&out.stdout).map_err(|e| {
                Error::Sim(format!("bench scenario {name}: unreadable result: {e}"))
            })?;
            rows.push(row);
        }
    }
    // Fast-forward and step-by-step must agree exactly.
    for w in rows.windows(2) {
        if w[0].scenario == w[1].scenario && w[0].summary_hash != w[1].summary_hash {
            return Err(Error::Check(format!(
                "{}: fast-forward and step-by-step summaries differ",
                w[0].scenario
            )));
        }
    }
    let threads = rayon::current_num_threads();
    // Best of three for each (the machines are noisy; the best is the least disturbed).
    let best = |jobs: usize| {
        (0..3)
            .map(|_| time_sweep(jobs, scale.min(1.0)))
            .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a })
    };
    let (t1, n1) = best(1);
    let (tn, _) = best(0);
    if json {
        let mut v = serde_json::to_value(&rows).expect("serialises");
        if let serde_json::Value::Array(a) = &mut v {
            a.push(serde_json::json!({
                "scenario": "sweep-64-points", "mode": "fast-forward", "requests": n1,
                "sim_requests_per_s": n1 as f64 / tn, "threads": threads,
                "wall_s_1_thread": t1, "wall_s_all_threads": tn, "speedup": t1 / tn,
            }));
        }
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        println!(
            "{:<26} {:<13} {:>10} {:>8} {:>12} {:>12} {:>12} {:>8} {:>9} {:>8}",
            "scenario",
            "mode",
            "requests",
            "wall s",
            "sim req/s",
            "sim s/s",
            "events/s",
            "RSS MB",
            "steps/req",
            "jumped"
        );
        for r in &rows {
            println!(
                "{:<26} {:<13} {:>10} {:>8.3} {:>12.0} {:>12.0} {:>12.0} {:>8.1} {:>9.2} {:>7.1}%",
                r.scenario,
                r.mode,
                r.requests,
                r.wall_s,
                r.sim_requests_per_s,
                r.sim_seconds_per_s,
                r.events_per_s,
                r.peak_rss_mb,
                r.steps as f64 / r.requests.max(1) as f64,
                100.0 * r.fast_forwarded_steps as f64 / r.steps.max(1) as f64
            );
        }
        for w in rows.windows(2) {
            if w[0].scenario == w[1].scenario {
                println!(
                    "{}: fast-forward is {:.1}x step-by-step, identical summaries",
                    w[0].scenario,
                    w[1].wall_s / w[0].wall_s
                );
            }
        }
        println!("sweep of 64 points ({n1} requests): {t1:.2} s on 1 thread, {tn:.2} s on {threads} threads: speed-up {:.2}x", t1 / tn);
        for line in crate::bench::target_lines(&rows) {
            println!("{line}");
        }
    }
    if want_plan && !json {
        bench_plan::run_plan_bench(false)?;
    }
    Ok(())
}
