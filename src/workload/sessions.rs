//! Multi-turn sessions: a conversation of T turns (T drawn per session), each turn's
//! prompt the conversation so far (every earlier prompt and output, which is the
//! previous turn's prompt + output) plus a new message, the next turn sent a think
//! time after the previous one completes.
//!
//! Sessions start as the workload's arrival process says: open loop (`poisson`,
//! `gamma`, `constant`: `rate_per_s` sessions per second), or closed loop
//! (`closed-loop`: each user runs sessions back to back, the closed loop's think time
//! between sessions and the session's between turns). A run's `num_requests` counts
//! turns. A session ends early when its next turn would not fit `max_model_len`.
//!
//! The [`SessionBook`] holds the live sessions; the engine glue is `sim/sessions.rs`.

use super::{rng, streams, LengthDist, LengthSampler, Think};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// A multi-turn workload's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    /// Turns per session.
    pub turns: LengthDist,
    /// Think time between a turn's completion and the next turn.
    pub think: Think,
}

/// One turn to send: its lengths and how it shares its session's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// Session.
    pub session: u32,
    /// Prompt tokens: the conversation so far plus the new message.
    pub input: u32,
    /// Output tokens.
    pub output: u32,
    /// Tokens of the conversation before this turn (`None` for the first turn: its
    /// whole prompt starts the session's context).
    pub prefix_tokens: Option<u32>,
    /// Whether another turn follows.
    pub more: bool,
}

#[derive(Debug, Clone, Copy)]
struct Live {
    /// Turns still to send.
    left: u64,
    /// Tokens of the conversation so far (the last turn's prompt + output).
    context: u64,
}

/// The live sessions of a run.
#[derive(Debug, Clone)]
pub struct SessionBook {
    spec: Sessions,
    turns_rng: ChaCha8Rng,
    live: HashMap<u32, Live>,
    next_id: u32,
    /// Closed loop: each user's current session.
    of_user: Vec<Option<u32>>,
}

impl SessionBook {
    /// A book for `spec`, drawing turn counts from the run's session stream.
    pub fn new(spec: &Sessions, seed: u64) -> Self {
        SessionBook {
            spec: spec.clone(),
            turns_rng: rng(seed, streams::SESSIONS),
            live: HashMap::new(),
            next_id: 0,
            of_user: Vec::new(),
        }
    }

    /// Think time between turns.
    pub fn think(&self) -> Think {
        self.spec.think
    }

    /// Starts a session (for closed-loop `user`, if any) and returns its id.
    pub fn start(&mut self, user: Option<u32>) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let turns = self.spec.turns.sample(&mut self.turns_rng).max(1);
        self.live.insert(
            id,
            Live {
                left: turns,
                context: 0,
            },
        );
        if let Some(u) = user {
            let u = u as usize;
            if self.of_user.len() <= u {
                self.of_user.resize(u + 1, None);
            }
            self.of_user[u] = Some(id);
        }
        id
    }

    /// The live session of closed-loop `user` (one with turns left), if any.
    pub fn of_user(&self, user: u32) -> Option<u32> {
        self.of_user
            .get(user as usize)
            .copied()
            .flatten()
            .filter(|s| self.live.contains_key(s))
    }

    /// Whether `session` has turns left to send.
    pub fn is_live(&self, session: u32) -> bool {
        self.live.contains_key(&session)
    }

    /// The next turn of `session`, its message and output drawn from `lengths`;
    /// `None` when the session has no turn left or its next turn would not fit the
    /// context (the session then ends). The first turn is clamped to fit, as any
    /// request.
    pub fn next_turn(&mut self, session: u32, lengths: &mut LengthSampler) -> Option<Turn> {
        let live = *self.live.get(&session)?;
        let (msg, out, _) = lengths.draw_unclamped();
        let (input, output) = if live.context == 0 {
            let (i, o) = lengths.clamp(msg, out);
            (i as u64, o as u64)
        } else {
            let input = live.context + msg;
            if input.saturating_add(out) > lengths.max_context() {
                self.live.remove(&session);
                return None;
            }
            (input, out)
        };
        let more = live.left > 1;
        if more {
            self.live.insert(
                session,
                Live {
                    left: live.left - 1,
                    context: input + output,
                },
            );
        } else {
            self.live.remove(&session);
        }
        Some(Turn {
            session,
            input: input as u32,
            output: output as u32,
            prefix_tokens: (live.context > 0).then_some(live.context as u32),
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;
    use crate::workload::{Arrival, SharedContext, Stop, Workload};

    #[test]
    fn each_turn_carries_the_conversation_so_far() {
        let spec = Sessions {
            turns: LengthDist::Fixed { value: 3 },
            think: Think::Constant(Dur::ZERO),
        };
        let w = Workload {
            arrival: Arrival::Poisson { rate: 1.0 },
            input: LengthDist::Fixed { value: 100 },
            output: LengthDist::Fixed { value: 50 },
            stop: Stop::Requests(10),
            max_context: 1000,
            prompt_pool: None,
            identical_outputs: false,
            classes: Vec::new(),
            shared: SharedContext::Sessions(spec.clone()),
        };
        let mut lengths = LengthSampler::new(&w, 0);
        let mut book = SessionBook::new(&spec, 0);
        let s = book.start(None);
        let t: Vec<Turn> = std::iter::from_fn(|| book.next_turn(s, &mut lengths)).collect();
        let got: Vec<(u32, u32, Option<u32>, bool)> = t
            .iter()
            .map(|t| (t.input, t.output, t.prefix_tokens, t.more))
            .collect();
        // 100; 100 + 50 + 100 = 250; 250 + 50 + 100 = 400.
        assert_eq!(
            got,
            [
                (100, 50, None, true),
                (250, 50, Some(150), true),
                (400, 50, Some(300), false)
            ]
        );
        assert!(!book.is_live(s));
        // A conversation that outgrows the context ends.
        let w = Workload {
            max_context: 300,
            ..w
        };
        let mut lengths = LengthSampler::new(&w, 0);
        let s = book.start(None);
        assert!(book.next_turn(s, &mut lengths).is_some());
        assert!(book.next_turn(s, &mut lengths).is_some());
        assert_eq!(book.next_turn(s, &mut lengths), None);
        assert!(!book.is_live(s));
    }
}
