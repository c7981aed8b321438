//! Serving: one engine instance, what it holds and how it schedules (DESIGN §1).
//!
//! - [`instance`]: an instance's queues, its decode set (tracked in aggregate), its
//!   prefix cache and the mechanics of a step (admission, preemption, fast-forward);
//! - [`policy`]: the batching policies, which decide what the next step runs;
//! - [`kv`]: the paged KV-cache pool and its block geometry;
//! - [`stacks`]: engine-and-version presets (`vllm@0.6`, ...) and the scheduler
//!   semantics they set (multi-step, CUDA-graph padding, async scheduling).

pub mod instance;
pub mod kv;
pub mod policy;
pub mod stacks;
