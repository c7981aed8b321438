//! The calibration commands: `kernels fit|check`, `calibrate` and `reproduce`.

use super::*;

#[derive(Debug, Args)]
pub(super) struct CalibrateArgs {
    /// Fit only on these studies (default: every study in calibration/measurements).
    #[arg(long = "study")]
    studies: Vec<String>,
    /// Seed of the replays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Objective evaluations per profile.
    #[arg(long, default_value_t = 1500)]
    max_evals: usize,
    /// Date recorded in the profiles (default: today, UTC).
    #[arg(long)]
    date: Option<String>,
    /// Where to write profiles (default: `output/calibration/profiles/`; the shipped
    /// profiles change only with `--replace-shipped`).
    #[arg(long, conflicts_with = "replace_shipped")]
    out: Option<PathBuf>,
    /// Write the fitted profiles over the shipped ones in `calibration/profiles/`.
    #[arg(long)]
    replace_shipped: bool,
    /// Also search from the calibrated profile already in the output folder (the
    /// objective has several minima; the profile records where the search started)
    #[arg(long)]
    warm: bool,
}

#[derive(Debug, Args)]
pub(super) struct ReproduceArgs {
    /// Only this study (default: all).
    study: Option<String>,
    /// Print a JSON array of {study, point, metric, measured, predicted, rel_error}.
    #[arg(long)]
    json: bool,
    /// Output folder (default output/reproduce).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the replays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(super) fn cmd_kernels(action: &str, out: Option<PathBuf>) -> Result<(), Error> {
    use crate::kernel_fit::{fit_curves, measured_gpus, serving_models, validate};
    let measured = measured_gpus().map_err(Error::Sim)?;
    let models = serving_models().map_err(Error::Sim)?;
    if measured.is_empty() {
        return Err(Error::Sim(format!(
            "no measured kernel tables under {}",
            crate::kernels::kernels_dir().display()
        )));
    }
    match action {
        "fit" => {
            let file = fit_curves(&measured, &models);
            let path = out.unwrap_or_else(|| crate::kernels::kernels_dir().join("curves.toml"));
            let text = format!(
                "# Roofline curves fitted on the measured kernel tables only. Do not edit by hand; rerun\n# `infersim kernels fit`. `infersim kernels check` validates them (leave one GPU out).\n{}",
                toml::to_string(&file).map_err(|e| Error::Sim(e.to_string()))?
            );
            crate::experiment::write_atomic(&path, text.as_bytes())?;
            println!(
                "wrote {} (shape: ridge p {}, m_half {}, attention L_half {}; anchors for {})",
                path.display(),
                file.shape.gemm_ridge_p,
                file.shape.gemm_m_half,
                file.shape.attn_l_half,
                file.arch.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        _ => {
            let stack = resolve_profile(None, "-", "vllm", None, "<kernels check>", "stack")?;
            let rows = validate(&measured, &models, &stack).map_err(Error::Sim)?;
            println!(
                "GPU time of the table-covered groups (GEMMs, LM head, attention) against the measured kernel sums,\nover prefill 1-8192 tokens and decode batch 1-256 x context 512-2048, for {} models: |error| median / worst",
                models.len()
            );
            println!(
                "  {:<14} {:>17} {:>17} {:>17}  left-out anchor",
                "gpu", "tables path", "roofline (arch)", "leave-one-out"
            );
            let pct = |(a, b): (f64, f64)| format!("{:>6.1}% / {:>6.1}%", a * 100.0, b * 100.0);
            for r in &rows {
                println!(
                    "  {:<14} {:>17} {:>17} {:>17}  {}",
                    r.gpu,
                    pct(r.table),
                    pct(r.roofline),
                    pct(r.leave_one_out),
                    r.loo_anchor
                );
            }
            let loo: Vec<f64> = rows.iter().map(|r| r.leave_one_out.0).collect();
            let mut sorted = loo.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "  median over GPUs of the leave-one-out median error: {:.1}%",
                crate::kernel_fit::summarise(&sorted).0 * 100.0
            );
        }
    }
    Ok(())
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let z = secs.div_euclid(86400) + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(super) fn cmd_calibrate(a: CalibrateArgs) -> Result<(), Error> {
    use crate::calibrate::{band_edge, calibrate_all, fit_record, profile_text, STACK_PARAMS};
    let studies = crate::study::load_studies(&a.studies).map_err(config_errors)?;
    let dir = match (&a.out, a.replace_shipped) {
        (Some(d), _) => d.clone(),
        (None, true) => profiles_dir(),
        (None, false) => PathBuf::from("output/calibration/profiles"),
    };
    let date = a.date.clone().unwrap_or_else(today);
    // The prior: the shipped stack profile (its fitted parameters restart at their
    // bands' priors).
    // A preset without a profile of its own yet starts from the one it borrows.
    let prior_for = |stack: &str| -> Result<crate::profile::Profile, String> {
        let name = crate::stacks::profile_name(stack, |n| {
            crate::specs::embedded::exists(&profiles_dir().join(format!("{n}.toml")))
        });
        let mut p = crate::profile::read_profile(&profiles_dir().join(format!("{name}.toml")))
            .map_err(|e| e.to_string())?;
        p.stack = stack.to_string();
        Ok(p)
    };
    let warm_for = |stack: &str| {
        a.warm
            .then(|| crate::profile::read_profile(&dir.join(format!("{stack}.toml"))).ok())
            .flatten()
            .filter(|p| p.is_calibrated())
    };
    let fitted =
        calibrate_all(&studies, &prior_for, &warm_for, a.seed, a.max_evals).map_err(Error::Sim)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for c in &fitted {
        let mut p = c.result.profile.clone();
        p.fit = Some(fit_record(
            &date,
            a.seed,
            &c.studies,
            &c.result,
            &c.residuals,
        ));
        let mut header = format!(
            "Stack profile of {}, the same on every GPU: fitted by `infersim calibrate` jointly on {} ({} evaluations),\nwith each GPU's part fixed by the kernel tables and curves. Do not edit by hand; rerun `infersim calibrate`.\nPlausibility bands (src/profile.rs, BANDS):",
            c.stack,
            c.studies.join(", "),
            c.result.evals
        );
        let bands = crate::profile::bands_for(&c.stack);
        for b in &bands {
            let v = b.param.get(&p);
            header.push_str(&format!(
                "\n  {} = {} in [{}, {}] {}{}: {}",
                b.param.name(),
                v,
                b.lo,
                b.hi,
                b.unit,
                band_edge(b, v)
                    .map(|e| format!(" (AT THE {} EDGE)", e.to_uppercase()))
                    .unwrap_or_default(),
                b.why
            ));
        }
        let path = dir.join(format!("{}.toml", p.name));
        crate::experiment::write_atomic(&path, profile_text(&p, &header).as_bytes())?;
        println!(
            "{}: objective {:.5} after {} evaluations -> {}",
            p.name,
            c.result.objective,
            c.result.evals,
            path.display()
        );
        for &param in STACK_PARAMS {
            let v = param.get(&p);
            let edge = bands
                .iter()
                .find(|b| b.param == param)
                .and_then(|b| {
                    band_edge(b, v)
                        .map(|e| format!("  at the {e} edge of its band [{}, {}]", b.lo, b.hi))
                })
                .unwrap_or_default();
            println!("  {:<22} {:>12.6}{edge}", param.name(), v);
        }
        println!(
            "  {:<26} {:<22} {:>12} {:>12} {:>9}",
            "point", "metric", "measured", "predicted", "error"
        );
        for r in &c.residuals {
            println!(
                "  {:<26} {:<22} {:>12.3} {:>12.3} {:>+8.1}%",
                r.point,
                r.metric,
                r.measured,
                r.predicted,
                r.rel_error() * 100.0
            );
        }
    }
    Ok(())
}

pub(super) fn cmd_reproduce(a: ReproduceArgs) -> Result<(), Error> {
    let only: Vec<String> = a.study.iter().cloned().collect();
    let studies = crate::study::load_studies(&only).map_err(config_errors)?;
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("output/reproduce"));
    let report = crate::reproduce::reproduce(&studies, a.seed)?;
    crate::reproduce::write_report(&report, &studies, &dir, a.seed)?;
    print_report(&report, a.json);
    if !a.json {
        println!("results: {}", dir.display());
    }
    // Known misses are reported (the table and the study say why) but do not fail.
    let missed = report.missed_unexplained();
    if missed > 0 {
        return Err(Error::Check(format!(
            "{missed} calibration-set target(s) missed (see the table)"
        )));
    }
    Ok(())
}

/// Prints a reproduce report: its JSON rows, or its table (`reproduce`, `compare`).
pub(super) fn print_report(report: &crate::reproduce::Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json()).expect("serialises")
        );
    } else {
        print!("{}", report.table());
    }
}
