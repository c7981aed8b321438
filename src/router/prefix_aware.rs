//! `prefix-aware`: the instance holding the longest cached prefix of the request's
//! prompt, so its prefill reuses the most KV; among equals (and when no instance
//! holds any of it) the least loaded by outstanding tokens, then the lowest index.

use super::{argmin, InstanceLoad, Router};
use crate::workload::Request;
use std::cmp::Reverse;

/// Most cached prompt blocks, then fewest outstanding tokens, then lowest index.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrefixAware;

impl Router for PrefixAware {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        argmin(loads, |l| {
            (Reverse(l.cached_prefix_blocks), l.outstanding_tokens)
        })
    }
}
