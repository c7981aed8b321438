//! The output formats of an experiment's results, one [`Exporter`] each: the table
//! printed on stdout ([`table`]), `summary.json` ([`json`]), `summary.csv` ([`csv`])
//! and the SVG plots ([`svg`]). Every exporter reads the typed rows
//! ([`ReportRow`]); a new format is one new file here plus one line in
//! [`exporters`].

pub mod csv;
pub mod json;
pub mod svg;
pub mod table;

use super::row::ReportRow;
use crate::config::Experiment;
use crate::error::Result;

/// Where an exporter's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file of that name in the output folder.
    File(String),
    /// Standard output (unless `--quiet`).
    Stdout,
}

/// One piece of output.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Where it goes.
    pub to: Destination,
    /// Its text.
    pub text: String,
}

impl Artifact {
    /// Text for the file `name` of the output folder.
    pub fn file(name: &str, text: String) -> Self {
        Artifact {
            to: Destination::File(name.to_string()),
            text,
        }
    }
}

/// An output format of an experiment's results.
pub trait Exporter: Send + Sync {
    /// Short name (`json`, `csv`, ...).
    fn name(&self) -> &'static str;
    /// The files it may write into an output folder (so that a folder being reused
    /// for another configuration can be cleared of them).
    fn files(&self) -> &'static [&'static str];
    /// Renders the rows of `exp` (in run order).
    fn export(&self, exp: &Experiment, rows: &[ReportRow]) -> Result<Vec<Artifact>>;
}

/// Every output format, in the order they are written.
pub fn exporters() -> Vec<Box<dyn Exporter>> {
    vec![
        Box::new(json::Json),
        Box::new(csv::Csv),
        Box::new(svg::Plots),
        Box::new(table::Table),
    ]
}

/// Every file some exporter may write.
pub fn exported_files() -> Vec<&'static str> {
    exporters()
        .iter()
        .flat_map(|e| e.files().iter().copied())
        .collect()
}
