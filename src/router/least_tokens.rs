//! `least-tokens`: the instance with the fewest outstanding tokens.

use super::{argmin, InstanceLoad, Router};
use crate::workload::Request;

/// Fewest outstanding tokens (prompt + output of its outstanding requests); ties go
/// to the lowest index.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastTokens;

impl Router for LeastTokens {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        argmin(loads, |l| l.outstanding_tokens)
    }
}
