//! # infersim
//!
//! A discrete-event simulator of LLM inference serving on GPUs. It predicts throughput
//! and latency (TTFT, TPOT, ITL, E2E) of a model served by a batching engine on one or
//! more GPUs, alone or shared, under a workload, in seconds and without a GPU.
//!
//! ```text
//! workload ──► router ──► instance (batching policy + KV cache) ──► GPU (sharing mode)
//!                                        │
//!                                        ▼
//!                                  metrics ──► report
//! ```
//!
//! Modules, in the order a request meets them: [`workload`], [`router`], [`instance`]
//! (with [`policy`] and [`kv`]), [`gpu`] (sharing) and [`cost`] (the roofline cost of
//! a step, with [`profile`] and [`specs`]), [`metrics`]; [`sim`] runs the event loop,
//! [`config`] reads experiment files and [`experiment`] runs sweeps and writes reports.

pub mod bench;
pub mod calibrate;
pub mod cli;
pub mod config;
pub mod cost;
pub mod error;
pub mod experiment;
pub mod gpu;
pub mod instance;
pub mod kv;
pub mod metrics;
pub mod plot;
pub mod policy;
pub mod profile;
pub mod reproduce;
pub mod router;
pub mod sim;
pub mod specs;
pub mod study;
pub mod time;
pub mod workload;

pub use error::{ConfigError, Error, Result};
