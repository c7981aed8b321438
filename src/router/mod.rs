//! Routers: which instance gets a request (DESIGN §1).

use crate::instance::Instance;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Routing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// Instances in turn.
    RoundRobin,
    /// Uniformly at random.
    Random,
    /// Fewest outstanding requests (ties: lowest index).
    LeastRequests,
    /// Fewest outstanding tokens (prompt + output of outstanding requests).
    LeastTokens,
    /// Two instances at random, the one with fewer outstanding requests.
    PowerOfTwo,
    /// A closed-loop user keeps the instance chosen at random for its first request
    /// (a Locust user's connection pinned by a Kubernetes Service); other requests
    /// go round-robin.
    Sticky,
}

impl RouterKind {
    /// The kebab-case name used in configs and results.
    pub fn name(&self) -> &'static str {
        match self {
            RouterKind::RoundRobin => "round-robin",
            RouterKind::Random => "random",
            RouterKind::LeastRequests => "least-requests",
            RouterKind::LeastTokens => "least-tokens",
            RouterKind::PowerOfTwo => "power-of-two",
            RouterKind::Sticky => "sticky",
        }
    }
}

/// Router state.
#[derive(Debug, Clone)]
pub struct Router {
    kind: RouterKind,
    next: usize,
    rng: ChaCha8Rng,
    pinned: Vec<Option<u32>>,
}

impl Router {
    /// A router drawing from `rng`.
    pub fn new(kind: RouterKind, rng: ChaCha8Rng) -> Self {
        Router {
            kind,
            next: 0,
            rng,
            pinned: Vec::new(),
        }
    }

    /// The instance for a request from `user` (closed loop) or none (open loop).
    pub fn pick(&mut self, instances: &[Instance], user: Option<u32>) -> usize {
        let n = instances.len();
        if n == 1 {
            return 0;
        }
        match self.kind {
            RouterKind::RoundRobin => self.round_robin(n),
            RouterKind::Random => self.rng.gen_range(0..n),
            RouterKind::LeastRequests => argmin(instances, |i| i.outstanding),
            RouterKind::LeastTokens => argmin(instances, |i| i.outstanding_tokens),
            RouterKind::PowerOfTwo => {
                let a = self.rng.gen_range(0..n);
                let mut b = self.rng.gen_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                if instances[b].outstanding < instances[a].outstanding {
                    b
                } else {
                    a
                }
            }
            RouterKind::Sticky => match user {
                Some(u) => {
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
                None => self.round_robin(n),
            },
        }
    }

    fn round_robin(&mut self, n: usize) -> usize {
        let i = self.next % n;
        self.next = (self.next + 1) % n;
        i
    }
}

fn argmin(instances: &[Instance], key: impl Fn(&Instance) -> u64) -> usize {
    let mut best = 0;
    for (i, inst) in instances.iter().enumerate() {
        if key(inst) < key(&instances[best]) {
            best = i;
        }
    }
    best
}
