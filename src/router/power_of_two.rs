//! `power-of-two`: two distinct instances at random, the less loaded of them.

use super::{InstanceLoad, Router};
use crate::workload::Request;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Draws `a` uniformly, then `b` uniformly among the others; sends to `b` if it has
/// fewer outstanding requests than `a`, else to `a`.
#[derive(Debug, Clone)]
pub struct PowerOfTwo {
    rng: ChaCha8Rng,
}

impl PowerOfTwo {
    /// Drawing from `rng`.
    pub fn new(rng: ChaCha8Rng) -> Self {
        PowerOfTwo { rng }
    }
}

impl Router for PowerOfTwo {
    fn pick(&mut self, _req: &Request, loads: &[InstanceLoad]) -> usize {
        let n = loads.len();
        let a = self.rng.gen_range(0..n);
        let mut b = self.rng.gen_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        if loads[b].outstanding < loads[a].outstanding {
            b
        } else {
            a
        }
    }
}
