//! Checking `[frontend]` and `[client]` and applying them to the scenario: the front
//! end's mode and API servers (their costs come from the stack profile), the rate
//! limiter, and the client's concurrency limit and timeouts. Offline workloads call
//! the engine in-process (`LLM.generate`): neither applies to them.

use super::check::Checker;
use super::raw::RawExperiment;
use crate::frontend::{ClientSetup, FrontEndMode, OnTimeout, OverLimit, RateLimit};
use crate::sim::Scenario;
use crate::time::Dur;
use crate::workload::{Arrival, Stop, Think};

impl Checker<'_> {
    /// Applies `[frontend]` and `[client]` to `sc` (whose front end already carries
    /// the profile's costs).
    pub(super) fn front_and_client(&mut self, raw: &RawExperiment, sc: &mut Scenario) {
        let offline = matches!(sc.workload.arrival, Arrival::Offline { .. });
        if let Some(f) = &raw.frontend {
            let mode = match f.mode.as_deref() {
                None => FrontEndMode::Fixed,
                // The schema has checked the name.
                Some(m) => FrontEndMode::parse(m).unwrap_or_default(),
            };
            if offline && (mode == FrontEndMode::Queue || f.rate_limit_per_s.is_some()) {
                self.err(
                    "frontend",
                    "does not apply to arrival = \"offline\" (LLM.generate calls the engine in-process, with no API server); remove it or use an open- or closed-loop arrival",
                );
                return;
            }
            if f.rate_limit_burst.is_some() && f.rate_limit_per_s.is_none() {
                self.err(
                    "frontend.rate_limit_burst",
                    "needs frontend.rate_limit_per_s (the rate the bucket refills at)",
                );
            }
            let spins = matches!(
                sc.workload.arrival,
                Arrival::ClosedLoop {
                    think: Think::Constant(Dur(0)),
                    ..
                }
            ) && matches!(sc.workload.stop, Stop::Timed { .. });
            let rejects = f.rate_limit_action.as_deref().unwrap_or("reject") == "reject";
            if spins && rejects && f.rate_limit_per_s.is_some() {
                // A rejected user would send again at the same instant, forever.
                self.err(
                    "frontend.rate_limit_per_s",
                    "a closed loop with no think time and no request count resends each rejected request at the same instant, without end; give workload.think_time_s, workload.num_requests or rate_limit_action = \"drop\"",
                );
            }
            sc.front_end.mode = mode;
            sc.front_end.api_servers = f.api_server_count.unwrap_or(1);
            sc.front_end.rate_limit = f.rate_limit_per_s.map(|per_s| RateLimit {
                per_s,
                burst: f.rate_limit_burst.unwrap_or(1) as f64,
                over: f
                    .rate_limit_action
                    .as_deref()
                    .and_then(OverLimit::parse)
                    .unwrap_or_default(),
            });
            if f.rate_limit_action.is_some() && f.rate_limit_per_s.is_none() {
                self.err(
                    "frontend.rate_limit_action",
                    "needs frontend.rate_limit_per_s (without a limit no request is over it)",
                );
            }
            let timeout = raw.client.as_ref().and_then(|c| c.timeout_s);
            if f.rate_limit_action.as_deref() == Some("drop") && timeout.is_none() {
                self.err(
                    "frontend.rate_limit_action",
                    "\"drop\" leaves requests unanswered until the client gives up: it needs client.timeout_s",
                );
            }
            if mode == FrontEndMode::Queue {
                // The chunks' work goes to the API servers' queues instead of
                // bounding each step.
                for i in &mut sc.instances {
                    i.cost.set_front_end(false);
                }
            }
        }
        if let Some(c) = &raw.client {
            if offline {
                self.err(
                    "client",
                    "does not apply to arrival = \"offline\" (an offline batch has no client: LLM.generate runs in-process); remove it or use an open- or closed-loop arrival",
                );
                return;
            }
            sc.client = ClientSetup {
                max_concurrency: c.max_concurrency,
                timeout: c.timeout_s.map(Dur::from_secs_f64),
                on_timeout: c
                    .on_timeout
                    .as_deref()
                    .and_then(OnTimeout::parse)
                    .unwrap_or_default(),
                slo: sc.client.slo,
            };
            if c.on_timeout.is_some() && c.timeout_s.is_none() {
                self.err(
                    "client.on_timeout",
                    "needs client.timeout_s (without a timeout no request is abandoned)",
                );
            }
        }
    }
}
