//! Error types of the library.
//!
//! Every error a user can cause names the file, the field and what is allowed, so a
//! person can act on it. The binary maps [`Error::Config`] to exit code 2 and
//! everything else to exit code 1.

use std::path::PathBuf;

/// Errors returned by the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user's input is wrong: a file, field or value. Exit code 2.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The simulation could not complete (for example a request that can never fit
    /// in the KV cache). Exit code 1.
    #[error("simulation failed: {0}")]
    Sim(String),
    /// A check on the results failed (for example a reproduction target missed).
    /// Exit code 1.
    #[error("{0}")]
    Check(String),
}

/// A bad input value, with where it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ConfigError {
    /// The file (or `<command line>`) the value came from.
    pub file: String,
    /// The dotted field path, for example `workload.rate_per_s`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

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
        }
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code this error maps to (2: bad input, 1: run failure).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            Error::Io { .. } => 2,
            Error::Sim(_) | Error::Check(_) => 1,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
