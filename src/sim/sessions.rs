//! The engine's side of multi-turn sessions and of traces that name prefixes:
//! starting sessions (open-loop arrivals or closed-loop users), sending each turn
//! with its session's context as its prefix, and the next turn a think time after
//! the previous one completes. The sessions themselves are
//! [`crate::workload::SessionBook`]'s.

use super::{Engine, Ev, Phase};
use crate::instance::Finished;
use crate::metrics::Summary;
use crate::time::SimTime;
use crate::workload::{Arrival, Request, SessionBook, SharedContext, Workload};

/// The session book of `w`, if it has sessions.
pub(super) fn book(w: &Workload, seed: u64) -> Option<SessionBook> {
    match &w.shared {
        SharedContext::Sessions(s) => Some(SessionBook::new(s, seed)),
        _ => None,
    }
}

/// The prefix cache's hit rate, hits / (hits + prefill tokens computed), when the
/// workload shares prefixes of its own (not for a prompt pool, whose summaries stay
/// as they were).
pub(super) fn hit_rate(w: &Workload, s: &Summary) -> Option<f64> {
    let named = match &w.arrival {
        Arrival::Trace(t) => !t.prefixes.is_empty(),
        _ => false,
    };
    if w.shared == SharedContext::None && !named {
        return None;
    }
    let all = s.prefix_cache_hit_tokens + s.prefill_tokens_computed;
    Some(if all == 0 {
        0.0
    } else {
        s.prefix_cache_hit_tokens as f64 / all as f64
    })
}

impl Engine<'_> {
    fn book(&mut self) -> &mut SessionBook {
        self.sessions.as_mut().expect("a multi-turn workload")
    }

    /// An open-loop arrival starts a session; the next arrival is scheduled while the
    /// run may still issue requests.
    pub(super) fn session_arrival(&mut self, now: SimTime) {
        let g = self.open.as_mut().expect("open-loop generator");
        if g.next_arrival().is_some() && self.may_issue() && now < self.end {
            let s = self.book().start(None);
            self.send_turn(now, s, None);
        }
        let g = self.open.as_ref().expect("open-loop generator");
        if let Some(t) = g.peek_time().filter(|_| self.may_issue()) {
            self.q.push_arrival(t, Ev::OpenArrival);
        }
    }

    /// A closed-loop user sends its session's next turn, or starts a new session.
    pub(super) fn user_turn(&mut self, now: SimTime, u: u32) {
        if !(self.may_issue() && now < self.end) {
            return;
        }
        let s = match self.book().of_user(u) {
            Some(s) => s,
            None => self.book().start(Some(u)),
        };
        if !self.send_turn(now, s, Some(u)) {
            // The session ended (its next turn would not fit): the user starts
            // another at once.
            let s = self.book().start(Some(u));
            self.send_turn(now, s, Some(u));
        }
    }

    /// An open-loop session's next turn is due.
    pub(super) fn session_turn(&mut self, now: SimTime, s: u32) {
        if self.may_issue() && now < self.end {
            self.send_turn(now, s, None);
        }
    }

    /// Sends `session`'s next turn; false if it has none (it ended).
    fn send_turn(&mut self, now: SimTime, session: u32, user: Option<u32>) -> bool {
        let Some(t) = self
            .sessions
            .as_mut()
            .expect("a multi-turn workload")
            .next_turn(session, &mut self.lengths)
        else {
            return false;
        };
        let r = Request {
            user,
            session: Some(session),
            prefix: Some(session),
            prefix_tokens: t.prefix_tokens,
            keep_context: t.more,
            ..Request::new(self.next_id, now, t.input, t.output)
        };
        self.next_id += 1;
        self.issued += 1;
        self.send(now, r);
        true
    }

    /// A turn completed: its session's next turn follows a think time later; a
    /// closed-loop user whose session is over thinks (the closed loop's think time)
    /// and starts another.
    pub(super) fn session_finished(&mut self, now: SimTime, f: &Finished) {
        let Some(s) = f.req.session else { return };
        let live = self.book().is_live(s);
        let think = match (&self.sc.workload.arrival, live) {
            (_, true) => self.book().think(),
            (Arrival::ClosedLoop { think, .. }, false) => *think,
            _ => return,
        };
        let t = now + think.sample(&mut self.think_rng);
        if t < self.end && self.may_issue() {
            let ev = match f.req.user {
                Some(u) => Ev::UserSend(u),
                None => Ev::SessionTurn(s),
            };
            self.q.push(t, Phase::Arrive, ev);
        }
    }

    /// A trace row's prefix group or session, if the trace names them.
    pub(super) fn trace_prefix(&self, r: &mut Request, row: u64) {
        let Arrival::Trace(tr) = &self.sc.workload.arrival else {
            return;
        };
        if let Some(p) = tr.prefixes.get(row as usize) {
            r.prefix = p.prefix;
            r.prefix_tokens = p.prefix_tokens;
            r.keep_context = p.keep_context;
            if p.session.is_some() {
                r.session = p.session;
            }
        }
    }
}
