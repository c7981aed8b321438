//! `sticky`: a closed-loop user keeps the instance chosen at random for its first
//! request (a Locust user's connection pinned by a Kubernetes Service); requests
//! without a user go round-robin.

use super::{InstanceLoad, RoundRobin, Router};
use crate::workload::Request;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Per-user pins, drawn at random on a user's first request.
#[derive(Debug, Clone)]
pub struct Sticky {
    rng: ChaCha8Rng,
    pinned: Vec<Option<u32>>,
    others: RoundRobin,
}

impl Sticky {
    /// Drawing from `rng`.
    pub fn new(rng: ChaCha8Rng) -> Self {
        Sticky {
            rng,
            pinned: Vec::new(),
            others: RoundRobin::default(),
        }
    }
}

impl Router for Sticky {
    fn pick(&mut self, req: &Request, loads: &[InstanceLoad]) -> usize {
        let n = loads.len();
        let Some(u) = req.user else {
            return self.others.next_of(n);
        };
        let u = u as usize;
        if self.pinned.len() <= u {
            self.pinned.resize(u + 1, None);
        }
        match self.pinned[u] {
            Some(i) => i as usize,
            None => {
                let i = self.rng.gen_range(0..n);
                self.pinned[u] = Some(i as u32);
                i
            }
        }
    }
}
