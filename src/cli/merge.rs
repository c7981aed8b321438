//! `infersim merge DIR_OR_FILES... [--out DIR]`: the shard files of a job run with
//! `--shard i/n` combined into the results of the unsharded job (see
//! [`crate::experiment::merge`]).

use super::*;

#[derive(Debug, Args)]
pub(super) struct MergeArgs {
    /// Shard files (`shard-<i>-of-<n>.json`) or folders holding them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (default: the folder of the first shard).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The experiment file (default: the file the shards name, as they were run); for
    /// plan shards, the plan file (its winner and next cheaper are re-run with it).
    #[arg(long)]
    experiment: Option<PathBuf>,
    /// Write into an output folder that holds another configuration's results.
    #[arg(long)]
    force: bool,
    /// No table.
    #[arg(long)]
    quiet: bool,
}

pub(super) fn cmd_merge(a: MergeArgs) -> Result<(), Error> {
    use crate::experiment::merge::{merge, MergeOptions};
    let m = merge(
        &a.inputs,
        &MergeOptions {
            out: a.out,
            experiment: a.experiment,
            force: a.force,
        },
    )?;
    if !a.quiet {
        if let Some((exp, rows)) = &m.run {
            print!("{}", stdout_report(exp, rows)?);
        }
        if let Some(report) = &m.plan {
            print!("{}", report.table());
            for line in report.verification_lines() {
                println!("{line}");
            }
        }
    }
    println!(
        "merged {} {} shard{} into {} ({} files)",
        m.shards,
        m.kind,
        if m.shards == 1 { "" } else { "s" },
        m.dir.display(),
        m.written.len()
    );
    Ok(())
}
