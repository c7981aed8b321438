//! Records held back until the client's view of them is known: with a client or a
//! queueing front end modelled (`crate::frontend`), a completed request counts only if
//! its client was still waiting for it, and its token times are those the client saw
//! through the front end. The engine records as usual; [`Recorder::flush`], called
//! after each step, maps what it held through a [`ClientClock`].

use super::Recorder;
use crate::time::{Dur, SimTime};
use crate::workload::Request;

/// What the client sees of the engine's output: when tokens reach it through the
/// front end, and whether it was still waiting for a request when it completed.
pub trait ClientClock {
    /// The client-side (first token, last token) times of a request the engine
    /// completed with these engine-side times, or `None` if the client had given up
    /// on it (it is then not counted).
    fn request_times(
        &self,
        req: &Request,
        instance: usize,
        first: SimTime,
        finish: SimTime,
    ) -> Option<(SimTime, SimTime)>;
    /// Client-side gaps of `weight` tokens `instance` emitted at `now`, `gap` after
    /// their request's previous token: `out(time seen, gap seen, weight)` for each
    /// share.
    fn itl(
        &self,
        instance: usize,
        now: SimTime,
        gap: Dur,
        weight: u64,
        out: &mut dyn FnMut(SimTime, Dur, u64),
    );
}

/// Records held for [`Recorder::flush`].
#[derive(Debug, Default)]
pub(super) struct Deferred {
    pub(super) requests: bool,
    pub(super) itl: bool,
    pub(super) pending: Vec<(Request, usize, SimTime, SimTime, SimTime)>,
    pub(super) pending_itl: Vec<(SimTime, Dur, u64)>,
}

impl Recorder {
    /// Holds completed requests (`requests`) and token gaps (`itl`) until
    /// [`Recorder::flush`] maps them to what the client saw.
    pub fn defer(&mut self, requests: bool, itl: bool) {
        self.deferred.requests = requests;
        self.deferred.itl = itl;
    }

    /// Records what was held since the last flush, all of it from one step of
    /// `instance`, as `clock` says the client saw it, in the order it came.
    pub fn flush(&mut self, clock: &dyn ClientClock, instance: usize) {
        let mut itl = std::mem::take(&mut self.deferred.pending_itl);
        for &(now, gap, w) in &itl {
            clock.itl(instance, now, gap, w, &mut |t, g, w| self.add_itl(t, g, w));
        }
        itl.clear();
        self.deferred.pending_itl = itl;
        let mut reqs = std::mem::take(&mut self.deferred.pending);
        for &(req, instance, scheduled, first, finish) in &reqs {
            if let Some((first, finish)) = clock.request_times(&req, instance, first, finish) {
                self.add_request(&req, instance, scheduled, first, finish);
            }
        }
        reqs.clear();
        self.deferred.pending = reqs;
    }
}
