//! First come, first served: vLLM V1's default scheduler (`--scheduling-policy fcfs`).
//!
//! Each step: the decodes get their new KV blocks, preempting the victim (the newest
//! running request) until they fit; running prefills continue in order of admission
//! within the token budget, preempting likewise when their blocks run out; then, if
//! the batching policy allows admission, waiting requests are admitted from the head
//! of the queue (preempted ones first) until one does not fit: head-of-line order, no
//! skipping.

use super::{Admission, Handle, Registration, ReqView, Scheduler, StepBuilder, Victim};

/// The registration.
pub const REGISTRATION: Registration = Registration {
    name: "fcfs",
    doc: "first come, first served, head-of-line (vLLM's default)",
    uses_predictor: false,
    build: |c, _| {
        Box::new(Fcfs {
            victim: c.victim.unwrap_or(Victim::Newest),
        })
    },
};

/// FCFS with a choice of preemption victim.
#[derive(Debug, Clone)]
pub struct Fcfs {
    /// Preemption victim.
    pub victim: Victim,
}

/// Gives the decodes their blocks, then continues the running prefills, preempting
/// the request `victim` picks whenever blocks run out (vLLM V1's running loop).
pub fn schedule_running(
    s: &mut StepBuilder<'_>,
    mut victim: impl FnMut(&mut StepBuilder<'_>) -> Option<ReqView>,
) {
    while !s.grow_decodes() {
        match victim(s) {
            Some(v) => {
                let _ = s.preempt(v.handle);
            }
            None => break,
        }
    }
    let mut i = 0;
    while let Some(h) = s.prefilling_handle(i) {
        match s.continue_prefill(h) {
            Ok(0) => break,
            Ok(_) => i += 1,
            Err(_) => match victim(s) {
                Some(v) => {
                    let _ = s.preempt(v.handle);
                    if v.handle == h {
                        break;
                    }
                }
                None => break,
            },
        }
    }
}

/// Admits waiting requests while the policy allows, each time the one `next` picks,
/// stopping at the first that does not fit.
pub fn admit_while(
    s: &mut StepBuilder<'_>,
    mut next: impl FnMut(&mut StepBuilder<'_>) -> Option<Handle>,
) {
    match s.admission() {
        Admission::Admit {
            max_new,
            token_budget,
            chunk,
        } => {
            let (mut n, mut budget) = (0, token_budget);
            while n < max_new && budget > 0 {
                let Some(h) = next(s) else { break };
                match s.admit(h, budget, chunk) {
                    Ok(t) => {
                        budget -= t;
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        Admission::WaitUntil(t) => s.wake_at(t),
        Admission::No => {}
    }
}

impl Scheduler for Fcfs {
    fn name(&self) -> &str {
        "fcfs"
    }

    fn schedule(&mut self, s: &mut StepBuilder<'_>) {
        let v = self.victim;
        schedule_running(s, |s| v.pick(s));
        admit_while(s, |s| s.front_handle());
    }
}
