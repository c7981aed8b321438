//! `least-requests`: the instance with the fewest outstanding requests.

use super::{argmin, InstanceLoad, Router};
use crate::workload::Request;

/// Fewest outstanding requests; ties go to the lowest index.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastRequests;

impl Router for LeastRequests {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        argmin(loads, |l| l.outstanding)
    }
}
