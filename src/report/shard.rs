//! `--shard i/n`: which share of a job's work units one process runs. Units (a run's
//! sweep point × replication, a plan's candidates) are dealt round-robin: shard `i`
//! of `n` owns every unit `k` with `k mod n = i`, so shards are balanced whatever the
//! order of cost in the list. `i` counts from 0, as Slurm's `SLURM_ARRAY_TASK_ID`
//! with `--array=0-(n-1)` and Kubernetes' `JOB_COMPLETION_INDEX` do.

use std::fmt;
use std::str::FromStr;

/// One shard of `count`: the units `k` with `k mod count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// This shard, `0 ≤ index < count`.
    pub index: usize,
    /// How many shards share the work (≥ 1).
    pub count: usize,
}

impl Shard {
    /// The whole job in one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether unit `k` (in the job's stable order) belongs to this shard.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// The indices out of `0..len` this shard owns, in order.
    pub fn indices(&self, len: usize) -> impl Iterator<Item = usize> + '_ {
        (self.index..len).step_by(self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// Parses `i/n` with `0 ≤ i < n`; the message says what is allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "--shard expects i/n with whole numbers 0 ≤ i < n (for example 0/4 … 3/4), got `{s}`"
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_deals_round_robin() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { index: 1, count: 3 });
        assert_eq!(s.indices(8).collect::<Vec<_>>(), vec![1, 4, 7]);
        assert!(s.owns(4) && !s.owns(5));
        assert_eq!(s.to_string(), "1/3");
        // Every unit is owned by exactly one shard.
        for k in 0..20 {
            let owners = (0..3).filter(|&i| Shard { index: i, count: 3 }.owns(k));
            assert_eq!(owners.count(), 1);
        }
    }

    #[test]
    fn refuses_what_is_not_i_of_n() {
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2", "1/2/3", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("0 ≤ i < n"), "{bad}: {e}");
        }
    }
}
