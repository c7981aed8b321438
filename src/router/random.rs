//! `random`: an instance uniformly at random.

use super::{InstanceLoad, Router};
use crate::workload::Request;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Uniformly at random, one draw per request.
#[derive(Debug, Clone)]
pub struct Random {
    rng: ChaCha8Rng,
}

impl Random {
    /// Drawing from `rng`.
    pub fn new(rng: ChaCha8Rng) -> Self {
        Random { rng }
    }
}

impl Router for Random {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        self.rng.gen_range(0..loads.len())
    }
}
