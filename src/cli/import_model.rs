//! `infersim import-model CONFIG.json`: a model spec TOML from a Hugging Face
//! `config.json`, each derived number with a comment saying where it came from (the
//! importer is `crate::specs::hf_import`).

use crate::error::{ConfigError, Error};
use crate::specs::hf_import;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `import-model`.
#[derive(Debug, Args)]
pub struct ImportModelArgs {
    /// The Hugging Face config.json.
    config: PathBuf,
    /// Spec name (default: the file stem, or the folder's name for `config.json`).
    #[arg(long)]
    name: Option<String>,
    /// Write the spec here instead of to standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Imports, checks and writes the spec.
pub fn cmd_import_model(a: ImportModelArgs) -> Result<(), Error> {
    let file = a.config.display().to_string();
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| ConfigError::new(&file, "(file)", format!("cannot read: {e}")))?;
    let name = a.name.unwrap_or_else(|| hf_import::default_name(&a.config));
    let imported = hf_import::import(&text, &file, &name)?;
    let errs = imported.spec.check_all(&file);
    if !errs.is_empty() {
        return Err(super::config_errors(errs));
    }
    let toml = hf_import::to_toml(&imported, &file);
    match a.out {
        Some(path) => std::fs::write(&path, toml).map_err(|source| Error::Io { path, source }),
        None => {
            print!("{toml}");
            Ok(())
        }
    }
}
