//! `infersim plan FILE`: the cheapest deployment meeting the SLOs at a target rate
//! (see [`crate::plan`]); `--shard i/n` searches one share of the candidates and
//! writes a shard file that `crate::plan::merge_plan_shards` combines.

use super::*;
use crate::plan::{
    add_verification, finalize, load_plan, run_plan, write_outputs, write_shard, PlanOptions,
};
use crate::report::Shard;

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// Plan TOML file (an experiment with [plan] and [plan.space]).
    file: PathBuf,
    /// Output folder (default `output/<plan name>/`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// No progress bar and no table.
    #[arg(long)]
    quiet: bool,
    /// Search only shard i of n of the candidates (i from 0) and write
    /// `shard-<i>-of-<n>.json` (`infersim merge` combines them) into the output folder.
    #[arg(long)]
    shard: Option<String>,
}

pub(super) fn cmd_plan(a: PlanArgs) -> Result<(), Error> {
    let cl = "<command line>";
    if a.jobs > 1024 {
        return Err(ConfigError::new(
            cl,
            "--jobs",
            format!("got {}, allowed: 0 (all cores) to 1024", a.jobs),
        )
        .into());
    }
    let shard: Option<Shard> = match &a.shard {
        Some(s) => Some(
            s.parse()
                .map_err(|e: String| ConfigError::new(cl, "--shard", e))?,
        ),
        None => None,
    };
    let plan = load_plan(&a.file)?;
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("output").join(&plan.name));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.jobs)
        .build()
        .map_err(|e| Error::Sim(format!("worker pool: {e}")))?;
    let opts = PlanOptions {
        quiet: a.quiet,
        shard,
    };
    let raw = pool.install(|| run_plan(&plan, &opts))?;
    if let Some(sh) = shard {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let p = dir.join(format!("shard-{}-of-{}.json", sh.index, sh.count));
        write_shard(&raw, &p)?;
        if !a.quiet {
            let searched = raw.results.iter().filter(|r| r.pruned.is_none()).count();
            println!(
                "shard {sh}: {} of {} candidates, {searched} searched; wrote {}",
                raw.results.len(),
                raw.candidates_total,
                p.display()
            );
        }
        return Ok(());
    }
    let mut report = finalize(raw);
    pool.install(|| add_verification(&plan, &mut report))?;
    write_outputs(&report, &dir)?;
    if a.quiet {
        return Ok(());
    }
    print!("{}", report.table());
    for line in report.verification_lines() {
        println!("{line}");
    }
    println!("wrote {}", dir.display());
    Ok(())
}

/// `infersim validate PLAN`: the plan's keys and its experiment part checked, and
/// how many candidates its space holds.
pub(super) fn cmd_validate_plan(file: &std::path::Path) -> Result<(), Error> {
    let plan = load_plan(file)?;
    let n = crate::plan::candidate::enumerate(&plan).len();
    println!(
        "{}: ok (plan: {n} candidate{}, {} replication{} per rate)",
        file.display(),
        if n == 1 { "" } else { "s" },
        plan.settings.replications,
        if plan.settings.replications == 1 {
            ""
        } else {
            "s"
        }
    );
    Ok(())
}
