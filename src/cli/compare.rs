//! `infersim compare RESULT --experiment FILE [--write-study DIR]`: a benchmark result's
//! (vLLM, GuideLLM or AIPerf) requests
//! replayed on the experiment's deployment, measured against predicted in
//! `infersim reproduce`'s table (see [`crate::calibration::bench_result`]).

use super::*;

#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    /// Result file: `vllm bench serve` / benchmark_serving.py JSON (--save-result),
    /// a GuideLLM report JSON, or AIPerf's profile_export.jsonl.
    result: PathBuf,
    /// The result file's format (default: told from its content).
    #[arg(long, value_name = "vllm|guidellm|aiperf")]
    format: Option<crate::calibration::bench_result::BenchFormat>,
    /// Which benchmark of a GuideLLM report holding several (from 0).
    #[arg(long)]
    benchmark: Option<usize>,
    /// Experiment TOML describing the deployment ([hardware], [engine]); its
    /// [workload] is replaced by the result's requests.
    #[arg(long)]
    experiment: PathBuf,
    /// Print a JSON array of {study, point, metric, measured, predicted, rel_error}.
    #[arg(long)]
    json: bool,
    /// Also write the result and the experiment as a study folder DIR (the layout
    /// of calibration/measurements/*, named by DIR's last component), for
    /// `infersim calibrate` / `reproduce`.
    #[arg(long, value_name = "DIR")]
    write_study: Option<PathBuf>,
    /// Seed of the replay.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(super) fn cmd_compare(a: CompareArgs) -> Result<(), Error> {
    use crate::calibration::bench_result::{one_point_study, read_result, replay_point};
    let result = read_result(&a.result, a.format, a.benchmark)?;
    let label = a
        .result
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sp = replay_point(&result, &a.experiment, &label).map_err(config_errors)?;
    if let Some(dir) = &a.write_study {
        crate::calibration::bench_result::write_study::write_study(
            dir,
            &a.result,
            &result,
            &sp,
            &a.experiment,
        )?;
    }
    let report = crate::reproduce::reproduce(&[one_point_study(sp)], a.seed)?;
    super::calibration::print_report(&report, a.json);
    if let Some(dir) = &a.write_study {
        eprintln!("wrote study {}", dir.display());
    }
    Ok(())
}
