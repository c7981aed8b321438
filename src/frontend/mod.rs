//! The API front end and the benchmark client: what stands between a user and the
//! engines.
//!
//! **The front end as a resource** (`[frontend] mode = "queue"`). vLLM's OpenAI server
//! is a CPU process (or `--api-server-count` of them) through which every request and
//! every streamed token passes: it parses the HTTP request, applies the chat template
//! and tokenises the prompt before the engine sees it, and detokenises and writes an
//! SSE chunk for every output token (vllm/entrypoints/openai/serving_completion.py,
//! vllm/v1/engine/async_llm.py `output_handler`, vllm/v1/engine/output_processor.py).
//! Each API server is modelled as one FCFS single server ([`ApiServer`]) whose work
//! arrives in time order:
//!
//! - *ingress*, when a request is sent: `api_request_us` + `api_prompt_token_us` ×
//!   prompt tokens; the engine sees the request when it is done (plus the pure delay
//!   `api_latency_us`, network and hand-off);
//! - *egress*, when an engine step ends: `api_seq_overhead_us` per streamed chunk
//!   (one per output token). AsyncLLM's `output_handler` pulls the engine's
//!   outputs of a step (one `EngineCoreOutputs`) and detokenises them in slices of
//!   `VLLM_V1_OUTPUT_PROC_CHUNK_SIZE` (128) before yielding the event loop
//!   (`await asyncio.sleep(0)`) to the requests' SSE writers
//!   (vllm/v1/engine/async_llm.py), so a step's tokens reach their clients
//!   together, when the server has worked through that batch
//!   ([`ApiServer::serve`]); slices of a step of more than 128 streams are
//!   delivered together here, a little later than the first slice would be.
//!
//! Requests are assigned to API servers round-robin in the order they are sent. vLLM
//! with several API servers shares one listening socket among them and the kernel
//! spreads the connections; round-robin is the even spread that model has on average,
//! and it is deterministic. A step's chunks are split evenly over the servers (each
//! holds a `1/api_server_count` share of the streams under round-robin; exact for one
//! server). The engines (instances) behind the front end share its servers.
//!
//! `mode = "fixed"` (the default) keeps the behaviour the shipped profiles were fitted
//! with: `api_latency_us` as a fixed delay per request and `api_seq_overhead_us` as a
//! lower bound on a step's length (`StepCost::api_s`). The two cannot coincide: a
//! per-chunk queue delays what the client sees without slowing the engine, a step
//! bound slows the engine and delays nothing else; so the queue is opt-in.
//!
//! **The client** ([`ClientSetup`]): `max_concurrency` (the semaphore of `vllm bench
//! serve`: an arrival beyond it waits in the client, and its latency counts from when
//! it is sent), `timeout_s` (a request not complete by then is abandoned and counted
//! as failed; the server keeps computing it or aborts it), and a token-bucket rate
//! limiter in front of the server ([`RateLimiter`]: requests over the limit are
//! rejected with HTTP 429, or dropped unanswered until the client's timeout, and
//! counted as failed). The client's event handling lives
//! in `sim/client.rs`.

use crate::profile::Profile;
use crate::time::{Dur, SimTime};

/// How the API front end is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrontEndMode {
    /// A fixed delay per request and a per-chunk bound on the step (as fitted).
    #[default]
    Fixed,
    /// `api_server_count` FCFS CPU servers through which requests and chunks pass.
    Queue,
}

/// Allowed values of `frontend.mode`.
pub const MODES: &[&str] = &["fixed", "queue"];

impl FrontEndMode {
    /// From its name in the experiment file.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fixed" => Some(FrontEndMode::Fixed),
            "queue" => Some(FrontEndMode::Queue),
            _ => None,
        }
    }
}

/// A token bucket: `per_s` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests admitted per second, sustained.
    pub per_s: f64,
    /// Bucket size: requests admitted back to back after an idle spell.
    pub burst: f64,
    /// What happens to a request over the limit.
    pub over: OverLimit,
}

/// What the rate limiter does with a request over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverLimit {
    /// Answers HTTP 429 at once: the client counts it as rejected.
    #[default]
    Reject,
    /// Never answers it (a limiter that drops it, or a server whose only worker is
    /// blocked): the client waits for its timeout and counts a timeout.
    Drop,
}

/// Allowed values of `frontend.rate_limit_action`.
pub const OVER_LIMIT: &[&str] = &["reject", "drop"];

impl OverLimit {
    /// From its name in the experiment file.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reject" => Some(OverLimit::Reject),
            "drop" => Some(OverLimit::Drop),
            _ => None,
        }
    }
}

/// The front end of a scenario.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrontEndSetup {
    /// How it is modelled.
    pub mode: FrontEndMode,
    /// API-server processes (queue mode; at least 1).
    pub api_servers: u32,
    /// Ingress work per request, seconds (`api_request_us`).
    pub request_s: f64,
    /// Ingress work per prompt token, seconds (`api_prompt_token_us`).
    pub prompt_token_s: f64,
    /// Egress work per streamed chunk, seconds (`api_seq_overhead_us`).
    pub chunk_s: f64,
    /// Rate limiter in front of the servers, if any (either mode).
    pub rate_limit: Option<RateLimit>,
}

impl FrontEndSetup {
    /// The front end of `mode` with `servers` API servers, its costs from `profile`.
    pub fn from_profile(
        mode: FrontEndMode,
        servers: u32,
        profile: &Profile,
        rate_limit: Option<RateLimit>,
    ) -> Self {
        FrontEndSetup {
            mode,
            api_servers: servers.max(1),
            request_s: profile.api_request_us * 1e-6,
            prompt_token_s: profile.api_prompt_token_us * 1e-6,
            chunk_s: profile.api_seq_overhead_us * 1e-6,
            rate_limit,
        }
    }

    /// Whether the API servers are modelled as queues.
    pub fn is_queue(&self) -> bool {
        self.mode == FrontEndMode::Queue
    }

    /// Ingress work of a request with `input_tokens` prompt tokens.
    pub fn ingress_work(&self, input_tokens: u32) -> Dur {
        Dur::from_secs_f64(self.request_s + self.prompt_token_s * input_tokens as f64)
    }
}

/// What the server does with a request whose client timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// Keeps computing it to the end (the work is wasted): a server that never
    /// notices the closed connection, as one stuck in a blocking call (the T4 API
    /// server of the t4 study) or behind a proxy that keeps the upstream connection.
    Continue,
    /// Drops it at the next step boundary and frees its KV cache. The default, as
    /// vLLM's OpenAI server does: a client that times out closes its connection, the
    /// server's next write to the stream fails and cancels the request's generator,
    /// and `AsyncLLM.generate` answers the cancellation (`asyncio.CancelledError`,
    /// `GeneratorExit`) with `abort(request_id)` (vllm/v1/engine/async_llm.py); the
    /// EngineCore drops the request when it next schedules.
    #[default]
    Abort,
}

/// Allowed values of `client.on_timeout`.
pub const ON_TIMEOUT: &[&str] = &["abort", "continue"];

impl OnTimeout {
    /// From its name in the experiment file.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "continue" => Some(OnTimeout::Continue),
            "abort" => Some(OnTimeout::Abort),
            _ => None,
        }
    }
}

/// The benchmark client's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClientSetup {
    /// Requests in flight at most (`vllm bench serve --max-concurrency`).
    pub max_concurrency: Option<u32>,
    /// Time after sending at which the client gives up on a request.
    pub timeout: Option<Dur>,
    /// What the server does with a timed-out request.
    pub on_timeout: OnTimeout,
    /// The latency bounds the client judges each request by (`[slo]`; as
    /// `vllm bench serve --goodput` does), if any. Changes no behaviour: it adds the
    /// goodput and SLO keys to the summary.
    pub slo: Option<crate::metrics::Slo>,
}

impl ClientSetup {
    /// Whether the client does anything beyond sending each request when it arrives.
    pub fn is_active(&self) -> bool {
        self.max_concurrency.is_some() || self.timeout.is_some()
    }
}

/// One API-server process: an FCFS single server.
#[derive(Debug, Clone, Default)]
pub struct ApiServer {
    /// When the work queued so far is done.
    free_at: SimTime,
    /// Work done, in all.
    busy: Dur,
    /// Per instance: (engine step end, when that step's chunks were through this
    /// server), in time order: the client sees a token the instance emitted at the
    /// step end at the second time.
    delivered: Vec<Vec<(SimTime, SimTime)>>,
    /// Ingress jobs served and their summed waits before service.
    ingress_jobs: u64,
    ingress_wait: Dur,
}

impl ApiServer {
    /// Work of `work` arriving at `now`: when it is done (FCFS, work-conserving).
    pub fn serve(&mut self, now: SimTime, work: Dur) -> SimTime {
        let start = self.free_at.max(now);
        self.free_at = start + work;
        self.busy = self.busy + work;
        self.free_at
    }

    /// Work done so far.
    pub fn busy(&self) -> Dur {
        self.busy
    }
}

/// The API servers of a run in queue mode.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    setup: FrontEndSetup,
    servers: Vec<ApiServer>,
    next: usize,
}

impl FrontEnd {
    /// Idle servers.
    pub fn new(setup: &FrontEndSetup) -> Self {
        FrontEnd {
            setup: setup.clone(),
            servers: vec![ApiServer::default(); setup.api_servers.max(1) as usize],
            next: 0,
        }
    }

    /// A request with `input_tokens` prompt tokens is sent at `now`: (its server,
    /// when the server has parsed and tokenised it).
    pub fn ingress(&mut self, now: SimTime, input_tokens: u32) -> (u16, SimTime) {
        let s = self.next;
        self.next = (self.next + 1) % self.servers.len();
        let work = self.setup.ingress_work(input_tokens);
        let srv = &mut self.servers[s];
        srv.ingress_jobs += 1;
        srv.ingress_wait = srv.ingress_wait + (srv.free_at.max(now) - now);
        (s as u16, srv.serve(now, work))
    }

    /// A step of `instance` ended at `now` with `chunks` streamed tokens: each server
    /// takes its share of the chunks' work.
    pub fn egress(&mut self, now: SimTime, instance: usize, chunks: u64) {
        if chunks == 0 {
            return;
        }
        let k = self.servers.len() as f64;
        let work = Dur::from_secs_f64(self.setup.chunk_s * chunks as f64 / k);
        for srv in &mut self.servers {
            let done = srv.serve(now, work);
            if srv.delivered.len() <= instance {
                srv.delivered.resize(instance + 1, Vec::new());
            }
            srv.delivered[instance].push((now, done));
        }
    }

    /// When the client of a request on `server` sees a token `instance` emitted at
    /// step end `t` (`t` itself if no chunks were recorded then).
    pub fn delivered(&self, server: u16, instance: usize, t: SimTime) -> SimTime {
        let Some(d) = self.servers[server as usize].delivered.get(instance) else {
            return t;
        };
        match d.binary_search_by(|e| e.0.cmp(&t)) {
            Ok(i) => d[i].1,
            Err(_) => t,
        }
    }

    /// Servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are no servers (never: at least one is built).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Fraction of `elapsed` each server was busy.
    pub fn busy_fractions(&self, elapsed: Dur) -> Vec<f64> {
        self.servers
            .iter()
            .map(|s| {
                if elapsed.0 > 0 {
                    s.busy.as_secs_f64() / elapsed.as_secs_f64()
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Mean wait of a request in the servers' queues before its ingress work
    /// starts, ms.
    pub fn mean_ingress_wait_ms(&self) -> f64 {
        let n: u64 = self.servers.iter().map(|s| s.ingress_jobs).sum();
        let w: f64 = self
            .servers
            .iter()
            .map(|s| s.ingress_wait.as_millis_f64())
            .sum();
        if n > 0 {
            w / n as f64
        } else {
            0.0
        }
    }
}

/// A token bucket, refilled continuously.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    tokens: f64,
    at: SimTime,
}

impl RateLimiter {
    /// A full bucket at time 0.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            tokens: limit.burst,
            at: SimTime::ZERO,
        }
    }

    /// What it does with a request over the limit.
    pub fn over(&self) -> OverLimit {
        self.limit.over
    }

    /// Whether a request arriving at `now` is admitted (it takes a token) or
    /// rejected (HTTP 429).
    pub fn admit(&mut self, now: SimTime) -> bool {
        let dt = (now - self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.limit.per_s).min(self.limit.burst);
        // A hair of slack so that a bucket refilled to exactly one token (in floating
        // point) admits.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> SimTime {
        SimTime::from_secs_f64(x * 1e-3)
    }

    #[test]
    fn a_server_is_fcfs_and_work_conserving() {
        let mut s = ApiServer::default();
        let d = |x: f64| Dur::from_secs_f64(x * 1e-3);
        assert_eq!(s.serve(ms(0.0), d(2.0)), ms(2.0));
        // Arrives while busy: waits.
        assert_eq!(s.serve(ms(1.0), d(2.0)), ms(4.0));
        // Arrives after an idle spell: starts at once.
        assert_eq!(s.serve(ms(10.0), d(1.0)), ms(11.0));
        assert_eq!(s.busy(), d(5.0));
    }

    #[test]
    fn requests_go_round_robin_and_chunks_split_evenly() {
        let setup = FrontEndSetup {
            mode: FrontEndMode::Queue,
            api_servers: 2,
            request_s: 1e-3,
            prompt_token_s: 1e-5,
            chunk_s: 2e-3,
            rate_limit: None,
        };
        let mut fe = FrontEnd::new(&setup);
        // 100 prompt tokens: 1 ms + 1 ms of work.
        assert_eq!(fe.ingress(ms(0.0), 100), (0, ms(2.0)));
        assert_eq!(fe.ingress(ms(0.0), 100), (1, ms(2.0)));
        assert_eq!(fe.ingress(ms(0.0), 0), (0, ms(3.0)));
        // 3 chunks at 2 ms over 2 servers: 3 ms each.
        fe.egress(ms(1.0), 0, 3);
        assert_eq!(fe.delivered(0, 0, ms(1.0)), ms(6.0));
        assert_eq!(fe.delivered(1, 0, ms(1.0)), ms(5.0));
        // No chunks recorded at that time, or for that instance: seen at once.
        assert_eq!(fe.delivered(1, 0, ms(0.5)), ms(0.5));
        assert_eq!(fe.delivered(1, 1, ms(1.0)), ms(1.0));
        assert_eq!(
            fe.busy_fractions(Dur::from_secs_f64(0.012)),
            [0.5, 5.0 / 12.0]
        );
        // Waits before ingress: 0, 0, 2 ms.
        assert!((fe.mean_ingress_wait_ms() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn the_bucket_admits_its_burst_then_its_rate() {
        let mut rl = RateLimiter::new(RateLimit {
            per_s: 2.0,
            burst: 2.0,
            over: OverLimit::Reject,
        });
        assert!(rl.admit(ms(0.0)));
        assert!(rl.admit(ms(0.0)));
        assert!(!rl.admit(ms(0.0)));
        // Half a second refills one token.
        assert!(!rl.admit(ms(400.0)));
        assert!(rl.admit(ms(500.0)));
        assert!(!rl.admit(ms(600.0)));
    }
}
