//! Routers: which instance gets a request (DESIGN §1).
//!
//! A router is a [`Router`]: given the request and the [`InstanceLoad`] of every
//! instance (the load signals real routers use), it picks one. Each router is one
//! file here, and is named in configs through [`REGISTRY`]: a new router is a new file
//! and one registration line. [`RouterKind`] is a router's name, checked against the
//! registry, and builds it; a router written outside the crate is handed to a
//! scenario as [`RouterKind::custom`].

mod least_requests;
mod least_tokens;
mod power_of_two;
mod prefix_aware;
mod random;
mod round_robin;
mod session;
mod sticky;

pub use least_requests::LeastRequests;
pub use least_tokens::LeastTokens;
pub use power_of_two::PowerOfTwo;
pub use prefix_aware::PrefixAware;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use session::Session;
pub use sticky::Sticky;

use crate::instance::Instance;
use crate::workload::Request;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a router sees of one instance when a request arrives.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InstanceLoad {
    /// Requests routed here and not finished (including those in transit).
    pub outstanding: u64,
    /// Prompt + output tokens of those requests.
    pub outstanding_tokens: u64,
    /// Requests waiting in its queue.
    pub waiting: u64,
    /// Sequences in its running set.
    pub running: u64,
    /// Fraction of its KV pool in use.
    pub kv_used_fraction: f64,
    /// Full KV blocks of the request's prompt found in its prefix cache
    /// ([`Instance::cached_prefix_blocks`]); 0 for a request without a pooled prompt.
    pub cached_prefix_blocks: u64,
}

impl InstanceLoad {
    /// `inst`'s load as seen by a request with prompt `prefix`.
    pub fn of(inst: &Instance, prefix: Option<u32>) -> Self {
        InstanceLoad {
            outstanding: inst.outstanding,
            outstanding_tokens: inst.outstanding_tokens,
            waiting: inst.waiting_len() as u64,
            running: inst.running_len() as u64,
            kv_used_fraction: inst.kv_used_fraction(),
            cached_prefix_blocks: prefix.map_or(0, |p| inst.cached_prefix_blocks(p)),
        }
    }
}

/// A routing rule.
pub trait Router: std::fmt::Debug + Send {
    /// The index into `loads` (at least two instances) of the instance for `req`.
    fn pick(&mut self, req: &Request, loads: &[InstanceLoad]) -> usize;
}

/// The index of the instance with the smallest `key`, the lowest index among equals.
pub fn argmin<K: Ord>(loads: &[InstanceLoad], key: impl Fn(&InstanceLoad) -> K) -> usize {
    let mut best = 0;
    let mut best_key = None;
    for (i, l) in loads.iter().enumerate() {
        let k = key(l);
        if best_key.as_ref().is_none_or(|b| k < *b) {
            best = i;
            best_key = Some(k);
        }
    }
    best
}

/// A router's entry in the registry: its config name and how to build it from the
/// run's router random stream.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The kebab-case name used in configs and results.
    pub name: &'static str,
    /// Builds the router.
    pub build: fn(ChaCha8Rng) -> Box<dyn Router>,
}

/// Every router, by config name. One line per router.
#[rustfmt::skip]
pub const REGISTRY: &[Entry] = &[
    Entry { name: "round-robin", build: |_| Box::new(RoundRobin::default()) },
    Entry { name: "random", build: |rng| Box::new(Random::new(rng)) },
    Entry { name: "least-requests", build: |_| Box::new(LeastRequests) },
    Entry { name: "least-tokens", build: |_| Box::new(LeastTokens) },
    Entry { name: "power-of-two", build: |rng| Box::new(PowerOfTwo::new(rng)) },
    Entry { name: "sticky", build: |rng| Box::new(Sticky::new(rng)) },
    Entry { name: "prefix-aware", build: |_| Box::new(PrefixAware) },
    Entry { name: "session", build: |_| Box::new(Session::default()) },
];

/// The names in [`REGISTRY`], in its order (the allowed values of `hardware.router`).
pub const NAMES: [&str; REGISTRY.len()] = {
    let mut names = [""; REGISTRY.len()];
    let mut i = 0;
    while i < REGISTRY.len() {
        names[i] = REGISTRY[i].name;
        i += 1;
    }
    names
};

/// Builds a router from the run's router random stream.
pub type RouterBuild = fn(ChaCha8Rng) -> Box<dyn Router>;

/// A router by its registered name, or one written outside the crate
/// ([`RouterKind::custom`]).
#[derive(Clone, Copy)]
pub struct RouterKind(&'static str, Option<RouterBuild>);

/// Same name, both registered or both custom (function pointers are not compared:
/// their addresses are not reliable).
impl PartialEq for RouterKind {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1.is_some() == other.1.is_some()
    }
}

impl Eq for RouterKind {}

/// The routers shipped before the registry, as constants for existing callers;
/// other routers are reached by name ([`RouterKind::from_name`]).
#[allow(non_upper_case_globals)]
impl RouterKind {
    /// Instances in turn.
    pub const RoundRobin: RouterKind = RouterKind("round-robin", None);
    /// Uniformly at random.
    pub const Random: RouterKind = RouterKind("random", None);
    /// Fewest outstanding requests (ties: lowest index).
    pub const LeastRequests: RouterKind = RouterKind("least-requests", None);
    /// Fewest outstanding tokens (prompt + output of outstanding requests).
    pub const LeastTokens: RouterKind = RouterKind("least-tokens", None);
    /// Two instances at random, the one with fewer outstanding requests.
    pub const PowerOfTwo: RouterKind = RouterKind("power-of-two", None);
    /// A closed-loop user keeps the instance chosen at random for its first request;
    /// other requests go round-robin.
    pub const Sticky: RouterKind = RouterKind("sticky", None);
}

impl RouterKind {
    /// The registered router called `name`, if any.
    pub fn from_name(name: &str) -> Option<RouterKind> {
        REGISTRY
            .iter()
            .find(|e| e.name == name)
            .map(|e| RouterKind(e.name, None))
    }

    /// A router written against [`Router`] outside the crate, called `name` in
    /// results, built by `build` for each run from the run's router random stream.
    /// Not reachable from config files (those name [`REGISTRY`] entries).
    pub const fn custom(name: &'static str, build: RouterBuild) -> RouterKind {
        RouterKind(name, Some(build))
    }

    /// The kebab-case name used in configs and results.
    pub fn name(&self) -> &'static str {
        self.0
    }

    /// A fresh router of this kind drawing from `rng`.
    pub fn build(&self, rng: ChaCha8Rng) -> Box<dyn Router> {
        if let Some(build) = self.1 {
            return build(rng);
        }
        let e = REGISTRY
            .iter()
            .find(|e| e.name == self.0)
            .expect("a RouterKind names a registered router");
        (e.build)(rng)
    }
}

/// As the enum it replaced printed: the name in CamelCase (`RoundRobin`), so the
/// scenario's Debug string, which the run hash reads, does not change. A custom
/// router prints as `Custom("name")`.
impl std::fmt::Debug for RouterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1.is_some() {
            return write!(f, "Custom({:?})", self.0);
        }
        for part in self.0.split('-') {
            let mut c = part.chars();
            if let Some(first) = c.next() {
                write!(f, "{}{}", first.to_ascii_uppercase(), c.as_str())?;
            }
        }
        Ok(())
    }
}

impl Serialize for RouterKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for RouterKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        RouterKind::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown router \"{name}\"; expected one of {}",
                NAMES.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests;
