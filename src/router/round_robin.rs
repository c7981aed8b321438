//! `round-robin`: instances in turn.

use super::{InstanceLoad, Router};
use crate::workload::Request;

/// Instances in turn, from instance 0.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// The next of `n` instances.
    pub fn next_of(&mut self, n: usize) -> usize {
        let i = self.next % n;
        self.next = (self.next + 1) % n;
        i
    }
}

impl Router for RoundRobin {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        self.next_of(loads.len())
    }
}
