//! Invariants: the aggregate bookkeeping recounted over every sequence (tests and
//! `check_invariants` runs).

use super::{Instance, Seq, State, NO_SLOT, REC};

impl Instance {
    /// Checks that every loan of blocks links two running sequences of the same
    /// prompt, both ways, and lends no more than the lender's own full blocks.
    pub(super) fn check_loans(&self) -> Result<(), String> {
        let live = |s: &Seq| matches!(s.state, State::Decoding | State::Padded | State::Prefilling);
        let mut loans = 0;
        for (slot, s) in self.seqs.iter().enumerate() {
            if s.lender == NO_SLOT {
                if s.borrowed != 0 {
                    return Err(format!(
                        "sequence {slot} borrows {} without a lender",
                        s.borrowed
                    ));
                }
                continue;
            }
            loans += 1;
            let l = &self.seqs[s.lender as usize];
            let listed = self
                .lent_to
                .get(&s.lender)
                .is_some_and(|v| v.contains(&(slot as u32)));
            if !live(s) || !live(l) || l.lender != NO_SLOT || !listed {
                return Err(format!("sequence {slot}: broken loan from {}", s.lender));
            }
            if !(s.attached && l.attached && s.req.prefix == l.req.prefix) {
                return Err(format!(
                    "sequence {slot} borrows from another prompt's sequence"
                ));
            }
            let group = self.groups[l.req.prefix.unwrap_or(0) as usize].blocks;
            let own_full =
                (self.context(l) / self.geo.block_size).saturating_sub(group) * self.geo.layers();
            if s.borrowed > own_full {
                return Err(format!(
                    "sequence {slot} borrows {} layer-blocks, its lender has {own_full}",
                    s.borrowed
                ));
            }
        }
        let listed: usize = self.lent_to.values().map(Vec::len).sum();
        if listed != loans {
            return Err(format!("{listed} loans listed, {loans} held"));
        }
        Ok(())
    }

    /// Checks the aggregate bookkeeping against a recount over every sequence
    /// (O(sequences); for tests and debug builds).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut held = 0;
        let mut n_dec = 0;
        let mut running = 0;
        for (slot, s) in self.seqs.iter().enumerate() {
            match s.state {
                State::Decoding | State::Padded => {
                    held += if self.policy.reserves_whole_batch() {
                        s.held
                    } else {
                        self.geo.blocks_for(self.context(s)) - self.shared_lb(slot as u32)
                    };
                    n_dec += 1;
                    running += 1;
                }
                State::Prefilling => {
                    held += s.held;
                    running += 1;
                }
                _ => {}
            }
        }
        let mut refs = vec![0u32; self.groups.len()];
        for s in &self.seqs {
            if s.attached && matches!(s.state, State::Decoding | State::Padded | State::Prefilling)
            {
                refs[s.req.prefix.unwrap_or(0) as usize] += 1;
            }
        }
        for (g, grp) in self.groups.iter().enumerate() {
            if grp.held {
                held += grp.blocks * self.geo.layers();
            }
            if grp.refs != refs[g] || grp.held != (grp.refs > 0) {
                return Err(format!(
                    "prompt {g}: {} references counted, {} held",
                    grp.refs, refs[g]
                ));
            }
        }
        self.check_loans()?;
        if held != self.kv.used {
            return Err(format!(
                "KV in use {} but sequences hold {held}",
                self.kv.used
            ));
        }
        if self.kv.used > self.kv.capacity {
            return Err(format!(
                "KV {} over capacity {}",
                self.kv.used, self.kv.capacity
            ));
        }
        // The step limits (running cap, token budget) are checked when each step is
        // planned; a breach is recorded as the policy error.
        if let Some(e) = &self.policy_error {
            return Err(format!("scheduler error: {e}"));
        }
        if n_dec != self.dec.n {
            return Err(format!("decode set {} but {n_dec} decoding", self.dec.n));
        }
        // The queue holds exactly the live records and the waiting sequences.
        let live = self.recs.iter().filter(|w| w.live()).count();
        let waiting_seqs = self
            .seqs
            .iter()
            .filter(|s| s.state == State::Waiting)
            .count();
        let queued_recs = self.waiting.iter().filter(|&&e| e & REC != 0).count();
        let all_live = self.waiting.iter().all(|&e| {
            if e & REC != 0 {
                self.recs[(e & !REC) as usize].live()
            } else {
                self.seqs[e as usize].state == State::Waiting
            }
        });
        if !all_live || queued_recs != live || self.waiting.len() != live + waiting_seqs {
            return Err(format!(
                "waiting queue of {} entries ({queued_recs} records), {live} live records, \
                 {waiting_seqs} waiting sequences",
                self.waiting.len()
            ));
        }
        if running != self.running_count as u64 {
            return Err(format!(
                "running {} but {running} counted",
                self.running_count
            ));
        }
        Ok(())
    }
}
