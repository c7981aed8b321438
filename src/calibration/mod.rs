//! Calibration: fitting the stack profiles on measured studies, fitting roofline curves
//! on kernel tables, and reproducing the studies.
//!
//! - [`study`]: the measured studies under `calibration/measurements/`;
//! - [`fit`]: the stack-profile fit (`infersim calibrate`);
//! - [`kernel_fit`]: the roofline-curve fit on kernel tables (`infersim kernels fit`);
//! - [`reproduce`]: measured against predicted (`infersim reproduce`);
//! - [`bench_result`]: benchmark result files as one-point studies (`infersim compare`).

pub mod bench_result;
pub mod fit;
pub mod kernel_fit;
pub mod reproduce;
pub mod study;
