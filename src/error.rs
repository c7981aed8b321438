//! Error types of the library.
//!
//! Every error a user can cause names the file, the field and what is allowed, so a
//! person can act on it. The binary maps [`Error::Config`] to exit code 2 and
//! everything else to exit code 1. The library's parts return their own error
//! enums ([`SimError`] from a simulation, [`CostError`] from building a cost model,
//! [`ConfigError`] from reading input), which convert into [`Error`]; callers match
//! variants, never message text.

use crate::time::SimTime;
use std::path::PathBuf;

/// Why a simulation could not complete.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// An event was scheduled before the current time (a bug).
    #[error("time went back from {from} to {to}")]
    TimeWentBack {
        /// Time reached.
        from: SimTime,
        /// The earlier event's time.
        to: SimTime,
    },
    /// A run that stops after its requests ended with some still held (a bug).
    #[error("instance {instance} still holds {requests} requests when the run ended")]
    Unfinished {
        /// The instance.
        instance: usize,
        /// Requests it still held.
        requests: u64,
    },
    /// The per-request CSV could not be written.
    #[error("writing the per-request CSV: {0}")]
    RequestsCsv(String),
    /// An instance invariant failed (checked only with
    /// [`crate::sim::RunOptions::check_invariants`]): a bug, described.
    #[error("{0}")]
    Invariant(String),
    /// A scenario names a scheduler that is not registered.
    #[error("{0}")]
    UnknownScheduler(String),
    /// A scheduler made an invalid plan (an operation on a request in the wrong
    /// state, or a step over the instance's limits): a bug in the policy.
    #[error("instance {instance}: scheduler {scheduler:?} made an invalid plan: {what}")]
    InvalidPlan {
        /// The instance.
        instance: usize,
        /// The scheduler's name.
        scheduler: String,
        /// The first invalid operation.
        what: String,
    },
}

/// Why a cost model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// A kernel table or the kernel curves file is unreadable or malformed; the
    /// message names the file.
    #[error("{0}")]
    KernelData(String),
    /// The model or deployment uses something the cost model does not price.
    #[error("{0}")]
    Unsupported(String),
}

impl From<CostError> for String {
    fn from(e: CostError) -> String {
        e.to_string()
    }
}

impl From<SimError> for String {
    fn from(e: SimError) -> String {
        e.to_string()
    }
}

/// Why replaying a point with another profile failed: its cost model or its run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// The cost model could not be built.
    #[error("{0}")]
    Cost(#[from] CostError),
    /// The simulation failed.
    #[error("{0}")]
    Sim(#[from] SimError),
}

impl From<ReplayError> for String {
    fn from(e: ReplayError) -> String {
        e.to_string()
    }
}

/// Errors returned by the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input is wrong: a file, field or value. Exit code 2.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Reading or writing a file the command needed failed (an unwritable output
    /// folder, a full disk). Exit code 1.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A simulation could not complete. Exit code 1.
    #[error("simulation failed: {0}")]
    Run(#[from] SimError),
    /// A cost model could not be built (kernel data unreadable). Exit code 1.
    #[error("simulation failed: {0}")]
    Cost(#[from] CostError),
    /// Something else a command needed failed (a worker pool, a child process, a
    /// plot). Exit code 1.
    #[error("simulation failed: {0}")]
    Sim(String),
    /// A check on the results failed (for example a reproduction target missed).
    /// Exit code 1.
    #[error("{0}")]
    Check(String),
    /// Several bad input values (every one a file can be checked for). Exit code 2.
    #[error("{}", list_errors(.0))]
    ConfigList(Vec<ConfigError>),
    /// The run was stopped (Ctrl-C) after saving the runs that had finished; the
    /// message says how to resume. Exit code 130.
    #[error("{0}")]
    Interrupted(String),
}

/// One error per line, each after the first prefixed `error: ` as the binary
/// prefixes the first, then the count.
fn list_errors(errs: &[ConfigError]) -> String {
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    format!("{}\n({} errors)", lines.join("\nerror: "), errs.len())
}

/// A bad input value, with where it came from. Printed as
/// `file:line:column: field: message` when the location in the file is known, else
/// `file: field: message`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigError {
    /// The file (or `<command line>`) the value came from.
    pub file: String,
    /// The dotted field path, for example `workload.rate_per_s`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
    /// Line in `file` (from 1), when known.
    pub line: Option<usize>,
    /// Column in that line (from 1, in characters), when known.
    pub column: Option<usize>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// Builds an error for `field` of `file`.
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            field: field.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// The same error located at `line` and `column` (both from 1; column 0: unknown).
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = (column > 0).then_some(column);
        self
    }

    /// The same error located at byte offset `offset` of `text` (the file's contents).
    pub fn at_offset(self, text: &str, offset: usize) -> Self {
        let (line, column) = line_col(text, offset);
        self.at(line, column)
    }
}

/// Line and column (both from 1; the column counts characters) of byte `offset` in
/// `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[start..].chars().count() + 1)
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code this error maps to (2: bad input, 1: a run that failed,
    /// an output that could not be written).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::ConfigList(_) => 2,
            Error::Io { .. } => 1,
            Error::Run(_) | Error::Cost(_) | Error::Sim(_) | Error::Check(_) => 1,
            Error::Interrupted(_) => 130,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
