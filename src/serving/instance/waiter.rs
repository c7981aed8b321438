//! Requests that have never been admitted, waiting as compact records (issue 16,
//! part 8).
//!
//! An overloaded instance holds far more waiting requests than running ones, and a
//! request that has never been admitted has no serving state yet: no generated
//! tokens, no KV blocks, no place in the decode set. So it waits as a [`Waiter`], the
//! [`Request`] and its enqueue time packed into 60 bytes, instead of a whole sequence
//! slot (`Seq`, 240 bytes); the sequence is built when it is admitted. A preempted
//! request, which carries serving state, waits as its sequence, as before.
//!
//! The packing is lossless: the `Option<u32>` fields keep their `Some`/`None` in a
//! flags byte (no sentinel value is taken from their range), the 64-bit times are
//! split into 32-bit halves (so the record needs only 4-byte alignment), and the id
//! keeps 40 bits. A request whose id does not fit 40 bits (a run of over 10¹²
//! requests) is not packed ([`Waiter::pack`] returns `None`) and waits as a
//! sequence instead: nothing is ever rounded.
//!
//! Records live in `Instance::recs`, indexed by the request's *rank*: the slot number
//! the instance gave requests before this layout (taken when the request is enqueued
//! from a last-in first-out list of free numbers, given back when it completes or is
//! aborted). The rank is kept in the sequence built at admission, and the instance
//! breaks ties between sequences by rank exactly as it did by slot number, so results
//! are unchanged.

use crate::time::SimTime;
use crate::workload::Request;

/// Queue-entry and handle bit marking a waiting record (the rest is its rank); an
/// entry without it is a sequence slot.
pub(super) const REC: u32 = 1 << 31;

/// Flag bits of [`Waiter::flags`].
const USER: u8 = 1;
const GROUP: u8 = 1 << 1;
const PREFIX: u8 = 1 << 2;
const SESSION: u8 = 1 << 3;
const PREFIX_TOKENS: u8 = 1 << 4;
const KEEP_CONTEXT: u8 = 1 << 5;
/// The record holds a request waiting in the queue (cleared when it is admitted or
/// aborted, and in unused records).
const LIVE: u8 = 1 << 6;

/// Largest id a record holds (40 bits).
const MAX_ID: u64 = (1 << 40) - 1;

/// A request that has never been admitted, with when it reached the instance, in 60
/// bytes (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiter {
    id_lo: u32,
    arrival: [u32; 2],
    enqueued: [u32; 2],
    input_tokens: u32,
    output_tokens: u32,
    user: u32,
    group: u32,
    prefix: u32,
    session: u32,
    prefix_tokens: u32,
    priority: i32,
    tenant: u32,
    class: u16,
    id_hi: u8,
    flags: u8,
}

fn split(t: u64) -> [u32; 2] {
    [t as u32, (t >> 32) as u32]
}

fn join(h: [u32; 2]) -> u64 {
    h[0] as u64 | (h[1] as u64) << 32
}

/// The value of an `Option<u32>` field and its flag bit.
fn opt(v: Option<u32>, bit: u8) -> (u32, u8) {
    match v {
        Some(x) => (x, bit),
        None => (0, 0),
    }
}

impl Waiter {
    /// `req`, enqueued at `enqueued`, as a live record; `None` if its id does not fit
    /// 40 bits (it then waits as a sequence).
    pub fn pack(req: &Request, enqueued: SimTime) -> Option<Waiter> {
        if req.id > MAX_ID {
            return None;
        }
        let (user, f_user) = opt(req.user, USER);
        let (group, f_group) = opt(req.group, GROUP);
        let (prefix, f_prefix) = opt(req.prefix, PREFIX);
        let (session, f_session) = opt(req.session, SESSION);
        let (prefix_tokens, f_pt) = opt(req.prefix_tokens, PREFIX_TOKENS);
        let keep = if req.keep_context { KEEP_CONTEXT } else { 0 };
        Some(Waiter {
            id_lo: req.id as u32,
            arrival: split(req.arrival.0),
            enqueued: split(enqueued.0),
            input_tokens: req.input_tokens,
            output_tokens: req.output_tokens,
            user,
            group,
            prefix,
            session,
            prefix_tokens,
            priority: req.priority,
            tenant: req.tenant,
            class: req.class,
            id_hi: (req.id >> 32) as u8,
            flags: f_user | f_group | f_prefix | f_session | f_pt | keep | LIVE,
        })
    }

    /// The request and its enqueue time, exactly as packed.
    pub fn unpack(&self) -> (Request, SimTime) {
        let get = |v: u32, bit: u8| (self.flags & bit != 0).then_some(v);
        let req = Request {
            id: self.id(),
            arrival: self.arrival(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            user: get(self.user, USER),
            group: get(self.group, GROUP),
            prefix: self.prefix(),
            class: self.class,
            priority: self.priority,
            tenant: self.tenant,
            session: get(self.session, SESSION),
            prefix_tokens: get(self.prefix_tokens, PREFIX_TOKENS),
            keep_context: self.flags & KEEP_CONTEXT != 0,
        };
        (req, self.enqueued())
    }

    /// Whether it holds a request waiting in the queue.
    pub fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    /// Marks it as no longer waiting (admitted or aborted).
    pub fn retire(&mut self) {
        self.flags &= !LIVE;
    }

    /// Request id.
    pub fn id(&self) -> u64 {
        self.id_lo as u64 | (self.id_hi as u64) << 32
    }

    /// When the workload issued it.
    pub fn arrival(&self) -> SimTime {
        SimTime(join(self.arrival))
    }

    /// When it reached the instance.
    pub fn enqueued(&self) -> SimTime {
        SimTime(join(self.enqueued))
    }

    /// Prompt tokens.
    pub fn input_tokens(&self) -> u32 {
        self.input_tokens
    }

    /// Output tokens it will generate.
    pub fn output_tokens(&self) -> u32 {
        self.output_tokens
    }

    /// Prompt of the workload's prompt pool (its prefix group), if any.
    pub fn prefix(&self) -> Option<u32> {
        (self.flags & PREFIX != 0).then_some(self.prefix)
    }

    /// Scheduling priority.
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// Tenant.
    pub fn tenant(&self) -> u32 {
        self.tenant
    }

    /// Workload class.
    pub fn class(&self) -> u16 {
        self.class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(id: u64, v: u32) -> Request {
        Request {
            id,
            arrival: SimTime(u64::MAX - 1),
            input_tokens: v,
            output_tokens: v.wrapping_sub(1),
            user: Some(v),
            group: Some(u32::MAX - 1),
            prefix: Some(v),
            class: u16::MAX,
            priority: i32::MIN,
            tenant: v,
            session: Some(0),
            prefix_tokens: Some(u32::MAX),
            keep_context: true,
        }
    }

    #[test]
    fn the_record_and_its_queue_entry_fit_64_bytes() {
        assert!(std::mem::size_of::<Waiter>() <= 60);
        assert_eq!(std::mem::align_of::<Waiter>(), 4);
        assert!(super::super::Instance::bytes_per_waiting_request() <= 64);
    }

    #[test]
    fn a_request_round_trips_through_its_record() {
        let mut cases = vec![
            Request::new(0, SimTime::ZERO, 0, 0),
            Request::new(MAX_ID, SimTime(u64::MAX), u32::MAX, u32::MAX),
            Request::new(u32::MAX as u64 + 1, SimTime(1 << 32), 1, 2),
        ];
        for v in [0, 1, u32::MAX - 1, u32::MAX, 1 << 31] {
            cases.push(full(v as u64, v));
            cases.push(full(MAX_ID - v as u64, v));
            // Every combination of the optional fields being absent.
            for mask in 0..32u32 {
                let mut r = full(v as u64 * 7, v);
                let keep = |bit: u32, x: Option<u32>| if mask & bit != 0 { x } else { None };
                r.user = keep(1, r.user);
                r.group = keep(2, r.group);
                r.prefix = keep(4, r.prefix);
                r.session = keep(8, r.session);
                r.prefix_tokens = keep(16, r.prefix_tokens);
                r.keep_context = mask % 3 == 0;
                r.priority = i32::MAX - mask as i32;
                cases.push(r);
            }
        }
        for (i, r) in cases.iter().enumerate() {
            let t = SimTime(u64::MAX - i as u64);
            let w = Waiter::pack(r, t).expect("fits");
            assert!(w.live());
            let (back, enq) = w.unpack();
            assert_eq!(back, *r);
            assert_eq!(enq, t);
            assert_eq!(
                (w.id(), w.arrival(), w.enqueued(), w.prefix()),
                (r.id, r.arrival, t, r.prefix)
            );
            assert_eq!(
                (w.input_tokens(), w.output_tokens(), w.priority()),
                (r.input_tokens, r.output_tokens, r.priority)
            );
            assert_eq!((w.tenant(), w.class()), (r.tenant, r.class));
        }
    }

    #[test]
    fn an_id_beyond_40_bits_is_not_packed() {
        assert!(Waiter::pack(&Request::new(MAX_ID, SimTime::ZERO, 1, 1), SimTime::ZERO).is_some());
        assert!(Waiter::pack(
            &Request::new(MAX_ID + 1, SimTime::ZERO, 1, 1),
            SimTime::ZERO
        )
        .is_none());
    }

    #[test]
    fn retiring_a_record_keeps_its_request() {
        let r = full(5, 9);
        let mut w = Waiter::pack(&r, SimTime(3)).unwrap();
        w.retire();
        assert!(!w.live());
        assert_eq!(w.unpack().0, r);
    }
}
