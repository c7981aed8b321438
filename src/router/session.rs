//! `session`: session affinity. Every request of a session goes to the instance its
//! first request went to, chosen as the one with the fewest outstanding requests;
//! requests without a session go to the instance with the fewest outstanding
//! requests (ties: lowest index).

use super::{argmin, InstanceLoad, Router};
use crate::workload::Request;
use std::collections::HashMap;

/// Pins by session.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pinned: HashMap<u32, usize>,
}

impl Router for Session {
    fn pick(&mut self, req: &Request, loads: &[InstanceLoad]) -> usize {
        let least = || argmin(loads, |l| l.outstanding);
        match req.session {
            Some(s) => *self.pinned.entry(s).or_insert_with(least),
            None => least(),
        }
    }
}
