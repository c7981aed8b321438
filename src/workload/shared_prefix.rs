//! Shared-prefix workloads, after inference-perf's `shared_prefix` data generator
//! (kubernetes-sigs/inference-perf, `inference_perf/datagen/shared_prefix_datagen.py`,
//! config keys `num_groups`, `num_prompts_per_group`, `system_prompt_len`,
//! `question_len`): `num_groups` groups of `num_prompts_per_group` prompts, every
//! prompt of a group starting with the group's `system_prompt_len`-token system
//! prompt, followed by a question of its own whose length is drawn once per prompt.
//! As there, the prompts are shuffled once and requests use them in that order,
//! cycling.
//!
//! What the prefix cache can reuse is the group's system prompt; a prompt used again
//! (after `num_groups × num_prompts_per_group` requests) counts only its system
//! prompt as shared, not its question (a run of at most that many requests, as
//! inference-perf's usual use, is exact).

use super::LengthDist;
use rand::seq::SliceRandom;
use rand::Rng;

/// A shared-prefix workload's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedPrefix {
    /// Groups, each with its own system prompt.
    pub num_groups: u32,
    /// Prompts (users) per group.
    pub num_prompts_per_group: u32,
    /// Tokens of each group's system prompt.
    pub system_prompt_len: u32,
    /// Tokens of each prompt's question (drawn once per prompt).
    pub question_len: LengthDist,
}

/// The prompts of a shared-prefix workload, in the order requests use them.
#[derive(Debug, Clone)]
pub(crate) struct PrefixPrompts {
    /// Question tokens of prompt `g · per_group + p`.
    questions: Vec<u64>,
    /// Prompts in the order requests use them (shuffled once).
    order: Vec<u32>,
    next: usize,
    per_group: u32,
    system: u32,
}

impl PrefixPrompts {
    /// The prompts of `sp`: question lengths drawn from `lengths` in prompt order,
    /// the order shuffled with `shuffle`.
    pub(crate) fn new<R: Rng, S: Rng>(sp: &SharedPrefix, lengths: &mut R, shuffle: &mut S) -> Self {
        let n = sp.num_groups as u64 * sp.num_prompts_per_group as u64;
        let questions = (0..n).map(|_| sp.question_len.sample(lengths)).collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(shuffle);
        PrefixPrompts {
            questions,
            order,
            next: 0,
            per_group: sp.num_prompts_per_group.max(1),
            system: sp.system_prompt_len,
        }
    }

    /// The next request's (prompt tokens, group).
    pub(crate) fn next_prompt(&mut self) -> (u64, u32) {
        let k = self.order[self.next];
        self.next = (self.next + 1) % self.order.len();
        (
            self.system as u64 + self.questions[k as usize],
            k / self.per_group,
        )
    }

    /// Tokens of the shared system prompt.
    pub(crate) fn system_tokens(&self) -> u32 {
        self.system
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::rng;

    #[test]
    fn every_prompt_once_per_cycle_with_its_group() {
        let sp = SharedPrefix {
            num_groups: 3,
            num_prompts_per_group: 4,
            system_prompt_len: 100,
            question_len: LengthDist::Uniform {
                mean: 20,
                range_ratio: 0.5,
            },
        };
        let mut p = PrefixPrompts::new(&sp, &mut rng(1, 2), &mut rng(1, 6));
        let first: Vec<(u64, u32)> = (0..12).map(|_| p.next_prompt()).collect();
        let mut per_group = [0; 3];
        for &(len, g) in &first {
            assert!((110..=130).contains(&len), "{len}");
            per_group[g as usize] += 1;
        }
        assert_eq!(per_group, [4, 4, 4]);
        // The second cycle repeats the first.
        let second: Vec<(u64, u32)> = (0..12).map(|_| p.next_prompt()).collect();
        assert_eq!(first, second);
    }
}
