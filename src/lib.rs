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
//! Use it as a library: describe a scenario in the experiment format, check it, run
//! it, read `benchmark_serving`-style metrics.
//!
//! ```
//! use infersim::config::parse_experiment;
//! use infersim::sim::{run, RunOptions};
//!
//! let text = r#"
//! name = "doc"
//! [hardware]
//! gpu = "l4"
//! [engine]
//! model = "llama-3.2-1b"
//! policy = "continuous"
//! max_model_len = 4096
//! [workload]
//! arrival = "poisson"
//! rate_per_s = 2.0
//! num_requests = 200
//! input_tokens = { dist = "fixed", value = 256 }
//! output_tokens = { dist = "fixed", value = 64 }
//! "#;
//! let exp = parse_experiment(text, "doc.toml".as_ref()).expect("a valid experiment");
//! let result = run(&exp.points[0].scenario, 1, RunOptions::default()).unwrap();
//! assert_eq!(result.summary.completed, 200);
//! // Far below saturation, requests complete at the offered rate (within noise).
//! let rps = result.summary.request_throughput;
//! assert!((rps - 2.0).abs() < 0.3, "{rps}");
//! // A decode step of a 1.2B model on an L4 reads its 2.5 GB of weights: ≥ 8 ms.
//! assert!(result.summary.latency.tpot.median > 8.0);
//! ```
//!
//! Modules, in the order a request meets them: [`workload`], [`router`], [`instance`]
//! (with [`policy`] and [`kv`]), [`gpu`] (sharing) and [`cost`] (the roofline cost of
//! a step, with [`profile`] and [`specs`]), [`metrics`]; [`sim`] runs the event loop,
//! [`config`] reads experiment files and [`experiment`] runs sweeps and writes reports.

pub mod calibration;
pub mod cli;
pub mod config;
pub mod cost;
pub mod error;
pub mod frontend;
pub mod gpu;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod router;
pub mod serving;
pub mod sim;
pub mod specs;
pub mod time;
pub mod workload;

// Short paths to the modules inside the seams (the paths before the layout by seam).
pub use calibration::{fit as calibrate, kernel_fit, reproduce, study};
pub use cli::bench;
pub use config::validate;
pub use cost::{kernels, profile};
pub use report as experiment;
pub use report::plot;
pub use serving::{instance, kv, policy, stacks};

pub use error::{ConfigError, Error, Result};
