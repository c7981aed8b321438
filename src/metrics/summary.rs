//! The typed result of one run: [`Summary`] (with its [`Latency`] statistics and the
//! per-instance and per-GPU rows), serialised once, by serde, into the keys of
//! `summary.json`.
//!
//! The serialised form is the contract: key names, their order (the field order
//! below), which keys appear only sometimes, and number formatting (floats as
//! shortest round-trip decimals, non-finite floats as `null`). Everything that
//! shows results (table, CSV, JSON, plots, `reproduce`) reads the fields; only code
//! that looks a metric up by a name coming from data (a study's measured metrics, a
//! calibration target) goes through [`Summary::metric`], which reads the same
//! serialised form.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::slo::{CostSummary, SloSummary};

/// Deserialises a float written by [`Summary`]: `null` (a non-finite value) reads
/// back as NaN.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The statistics of one latency metric, in milliseconds: mean, median, population
/// standard deviation and the 50th, 90th, 95th and 99th percentiles. Serialised as
/// `mean_<name>`, `median_<name>`, `std_<name>`, `p50_<name>`, `p90_<name>`,
/// `p95_<name>`, `p99_<name>`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Mean.
    pub mean: f64,
    /// Median (equal to `p50`; both are written, as `benchmark_serving` does).
    pub median: f64,
    /// Population standard deviation.
    pub std: f64,
    /// 50th percentile.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Stats {
    /// The (prefix, value) pairs, in serialisation order.
    fn entries(&self) -> [(&'static str, f64); 7] {
        [
            ("mean", self.mean),
            ("median", self.median),
            ("std", self.std),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p95", self.p95),
            ("p99", self.p99),
        ]
    }

    fn write<M: SerializeMap>(&self, name: &str, m: &mut M) -> Result<(), M::Error> {
        for (prefix, v) in self.entries() {
            m.serialize_entry(&format!("{prefix}_{name}"), &v)?;
        }
        Ok(())
    }

    /// Reads the statistics of `name` back from serialised keys; `None` when none
    /// of them is there.
    fn read(name: &str, m: &Map<String, Value>) -> Result<Option<Stats>, String> {
        let mut s = Stats::default();
        let mut found = 0;
        let slots: [&mut f64; 7] = [
            &mut s.mean,
            &mut s.median,
            &mut s.std,
            &mut s.p50,
            &mut s.p90,
            &mut s.p95,
            &mut s.p99,
        ];
        for (prefix, slot) in ["mean", "median", "std", "p50", "p90", "p95", "p99"]
            .into_iter()
            .zip(slots)
        {
            let key = format!("{prefix}_{name}");
            match m.get(&key) {
                None => {}
                Some(Value::Null) => {
                    *slot = f64::NAN;
                    found += 1;
                }
                Some(v) => {
                    *slot = v.as_f64().ok_or_else(|| format!("{key} is not a number"))?;
                    found += 1;
                }
            }
        }
        match found {
            0 => Ok(None),
            7 => Ok(Some(s)),
            _ => Err(format!("some {name} statistics are missing")),
        }
    }
}

/// Request latency statistics, in milliseconds (definitions in [`crate::metrics`]).
/// The same block serves a whole run and (later) each workload class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// Time to first token (`*_ttft_ms`).
    pub ttft: Stats,
    /// Time per output token (`*_tpot_ms`).
    pub tpot: Stats,
    /// End-to-end latency (`*_e2el_ms`).
    pub e2el: Stats,
    /// Inter-token latency (`*_itl_ms`).
    pub itl: Stats,
    /// Latency of offline batches (`*_batch_latency_ms`), written only when the run
    /// had batches.
    pub batch: Option<Stats>,
}

impl Latency {
    /// The (name, statistics) pairs present, in serialisation order.
    pub fn named(&self) -> Vec<(&'static str, &Stats)> {
        let mut v = vec![
            ("ttft_ms", &self.ttft),
            ("tpot_ms", &self.tpot),
            ("e2el_ms", &self.e2el),
            ("itl_ms", &self.itl),
        ];
        if let Some(b) = &self.batch {
            v.push(("batch_latency_ms", b));
        }
        v
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (name, st) in self.named() {
            st.write(name, &mut m)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        let need = |name: &str| -> Result<Stats, D::Error> {
            Stats::read(name, &m)
                .map_err(D::Error::custom)?
                .ok_or_else(|| D::Error::custom(format!("missing {name} statistics")))
        };
        Ok(Latency {
            ttft: need("ttft_ms")?,
            tpot: need("tpot_ms")?,
            e2el: need("e2el_ms")?,
            itl: need("itl_ms")?,
            batch: Stats::read("batch_latency_ms", &m).map_err(D::Error::custom)?,
        })
    }
}

/// One class of a workload made of several: its requests' throughput and latency
/// (the inter-token latency is measured over all classes only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassRow {
    /// Class index (order in the workload).
    pub class: u64,
    /// Class name.
    pub name: String,
    /// Scheduling priority of its requests.
    pub priority: i64,
    /// Tenant of its requests.
    pub tenant: u64,
    /// Its requests completed in the measurement window.
    pub completed: u64,
    /// Their output tokens.
    pub total_output_tokens: u64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Output tokens per second.
    pub output_throughput: f64,
    /// Time to first token, ms.
    pub ttft: Stats,
    /// Time per output token, ms.
    pub tpot: Stats,
    /// End-to-end latency, ms.
    pub e2el: Stats,
}

impl Serialize for ClassRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("class", &self.class)?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("priority", &self.priority)?;
        m.serialize_entry("tenant", &self.tenant)?;
        m.serialize_entry("completed", &self.completed)?;
        m.serialize_entry("total_output_tokens", &self.total_output_tokens)?;
        m.serialize_entry("request_throughput", &self.request_throughput)?;
        m.serialize_entry("output_throughput", &self.output_throughput)?;
        self.ttft.write("ttft_ms", &mut m)?;
        self.tpot.write("tpot_ms", &mut m)?;
        self.e2el.write("e2el_ms", &mut m)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for ClassRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::<String, Value>::deserialize(d)?;
        let stats = |name: &str| -> Result<Stats, D::Error> {
            Stats::read(name, &m)
                .map_err(D::Error::custom)?
                .ok_or_else(|| D::Error::custom(format!("missing {name} statistics")))
        };
        let int = |k: &str| -> Result<i64, D::Error> {
            m.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| D::Error::custom(format!("per_class: {k} is not an integer")))
        };
        let float = |k: &str| -> f64 { m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN) };
        Ok(ClassRow {
            class: int("class")? as u64,
            name: m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            priority: int("priority")?,
            tenant: int("tenant")? as u64,
            completed: int("completed")? as u64,
            total_output_tokens: int("total_output_tokens")? as u64,
            request_throughput: float("request_throughput"),
            output_throughput: float("output_throughput"),
            ttft: stats("ttft_ms")?,
            tpot: stats("tpot_ms")?,
            e2el: stats("e2el_ms")?,
        })
    }
}

/// One instance of a deployment with more than one instance or GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRow {
    /// Instance index.
    pub instance: u64,
    /// GPU it runs on.
    pub gpu: u64,
    /// Model served.
    pub model: String,
    /// Batching policy.
    pub policy: String,
    /// Requests it completed.
    pub requests_served: u64,
    /// Fraction of the run it had a step in flight.
    #[serde(deserialize_with = "nan_if_null")]
    pub busy_fraction: f64,
    /// Peak KV pool use, fraction of its capacity.
    #[serde(deserialize_with = "nan_if_null")]
    pub kv_cache_peak_fraction: f64,
    /// Preemptions.
    pub preemptions: u64,
}

/// One GPU of a deployment with more than one instance or GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuRow {
    /// GPU index.
    pub gpu: u64,
    /// Instances on it.
    pub instances: u64,
    /// Requests its instances completed.
    pub requests_served: u64,
    /// Fraction of the run it was busy.
    #[serde(deserialize_with = "nan_if_null")]
    pub busy_fraction: f64,
    /// Highest KV peak fraction of its instances.
    #[serde(deserialize_with = "nan_if_null")]
    pub kv_cache_peak_fraction: f64,
}

/// Requests the client sent and how they ended, as Locust and `vllm bench serve`
/// report them. The latency and throughput keys are over the successful requests
/// only (`completed`), as `benchmark_serving` computes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientSummary {
    /// Requests the client sent (rejected ones included).
    pub sent: u64,
    /// Requests that failed: timed out or rejected.
    pub failed: u64,
    /// Requests the client abandoned at its timeout.
    pub timed_out: u64,
    /// Requests the rate limiter rejected (HTTP 429).
    pub rejected: u64,
    /// Completed / sent.
    #[serde(deserialize_with = "nan_if_null")]
    pub success_rate: f64,
    /// Output tokens the engines computed for requests their client had abandoned
    /// (the server's wasted work).
    pub wasted_output_tokens: u64,
}

/// The API servers of a front end modelled as a queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrontEndSummary {
    /// API-server processes.
    pub api_server_count: u64,
    /// Fraction of the run each API server was busy (ingress and streaming).
    pub api_server_busy_fraction: Vec<f64>,
    /// Mean wait of a request in its API server's queue before its ingress work
    /// starts, ms.
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_api_queue_wait_ms: f64,
}

/// What one run measured: `benchmark_serving`'s keys plus the engine's, in a stable
/// order (the field order). Floats that are not finite serialise as `null`.
///
/// Request-side fields come from [`crate::metrics::Recorder::take_summary`]; the engine
/// counters and per-instance/per-GPU rows are filled in by the simulator at the end
/// of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Requests completed inside the measurement window.
    pub completed: u64,
    /// Denominator of the throughputs, seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub duration: f64,
    /// Prompt tokens of the completed requests.
    pub total_input_tokens: u64,
    /// Output tokens of the completed requests.
    pub total_output_tokens: u64,
    /// Completed requests per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub request_throughput: f64,
    /// Output tokens per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub output_throughput: f64,
    /// Prompt and output tokens per second.
    #[serde(deserialize_with = "nan_if_null")]
    pub total_token_throughput: f64,
    /// TTFT, TPOT, E2E, ITL (and batch latency) statistics.
    #[serde(flatten)]
    pub latency: Latency,
    /// Mean fraction of the run the GPUs were busy.
    #[serde(deserialize_with = "nan_if_null")]
    pub gpu_busy_fraction: f64,
    /// Highest KV peak fraction of any instance.
    #[serde(deserialize_with = "nan_if_null")]
    pub kv_cache_peak_fraction: f64,
    /// Preemptions, all instances.
    pub preemptions: u64,
    /// Longest waiting queue of any instance.
    pub max_queue_len: u64,
    /// Steps run, all instances.
    pub steps: u64,
    /// Decode sequences per step, on average.
    #[serde(deserialize_with = "nan_if_null")]
    pub mean_decode_batch: f64,
    /// Prompt tokens computed (prefix-cache hits excluded).
    pub prefill_tokens_computed: u64,
    /// Prompt tokens served from the prefix cache.
    pub prefix_cache_hit_tokens: u64,
    /// Share of the prompt tokens the engine processed that came from the prefix
    /// cache: hits / (hits + prefill tokens computed). Written only when the workload
    /// shares prefixes of its own (shared-prefix groups, sessions, a trace naming
    /// them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Seconds from the last admission of a request (its first scheduling) to the
    /// end of `duration`: the tail of the run in which nothing new entered the batch
    /// and the engine only finished what it held, with ever fewer sequences. Written
    /// for runs that stop after a number of requests (whose `duration` ends with the
    /// last completion; not for offline batches, which drain by design); a long
    /// drain makes `request_throughput` under-report the deployment's sustained
    /// capacity ([`Summary::drain_note`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_s: Option<f64>,
    /// What the client saw fail, written only when the run has client behaviour
    /// (`[client]`) or a rate limit.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientSummary>,
    /// The API servers, written only when the front end is modelled as a queue.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub front_end: Option<FrontEndSummary>,
    /// What the deployment costs per hour and per million tokens, written in every
    /// summary of `infersim run` (see [`CostSummary`]).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSummary>,
    /// Goodput and SLO attainment, written only when the experiment has `[slo]`
    /// (see [`crate::metrics::slo`]).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloSummary>,
    /// One row per instance, written only with more than one instance or GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_instance: Vec<InstanceRow>,
    /// One row per GPU, written only with more than one instance or GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_gpu: Vec<GpuRow>,
    /// One row per workload class, written only when the workload has several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassRow>,
}

impl Summary {
    /// The serialised summary, as a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => unreachable!("a summary serialises to an object"),
        }
    }

    /// A warning when the drain ([`Summary::drain_s`]) takes more than a tenth of
    /// `duration`: `request_throughput` then mixes the loaded part of the run with
    /// a tail in which the load fell away, so it under-reports what the deployment
    /// sustains. (A tenth is where the under-report starts to matter next to the
    /// run-to-run spread of a few percent; the figure says how much it is.)
    pub fn drain_note(&self) -> Option<String> {
        let d = self.drain_s?;
        let frac = d / self.duration;
        (frac > 0.1).then(|| {
            format!(
                "the last {d:.1} s of the {:.1} s run ({:.0} %) came after the last request was admitted, while the batch emptied: request_throughput ({:.3} req/s) under-reports the sustained capacity; measure it with a timed run (workload.duration_s with warmup_s) or more requests",
                self.duration,
                100.0 * frac,
                self.request_throughput
            )
        })
    }

    /// The value of the metric serialised as `name` (for names that come from data,
    /// such as a study's measured metrics), if it is a number in this summary.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.to_json().get(name).and_then(Value::as_f64)
    }
}

/// The names of every metric a summary can hold (the numeric keys it serialises,
/// offline batch latency and the client's and front end's keys included), in
/// serialisation order.
pub fn metric_names() -> Vec<String> {
    let s = Summary {
        latency: Latency {
            batch: Some(Stats::default()),
            ..Latency::default()
        },
        client: Some(ClientSummary::default()),
        front_end: Some(FrontEndSummary::default()),
        ..Summary::default()
    };
    s.to_json()
        .into_iter()
        .filter(|(_, v)| v.is_number())
        .map(|(k, _)| k)
        .collect()
}

/// Summaries are equal when they serialise equally (so a `null`, a non-finite
/// value, equals another, as the JSON does).
impl PartialEq for Summary {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(x: f64) -> Stats {
        Stats {
            mean: x,
            median: x + 1.0,
            std: x + 2.0,
            p50: x + 1.0,
            p90: x + 3.0,
            p95: x + 4.0,
            p99: x + 5.0,
        }
    }

    #[test]
    fn keys_in_order_and_optional_blocks_skipped() {
        let s = Summary {
            latency: Latency {
                ttft: stats(1.0),
                tpot: stats(2.0),
                e2el: stats(3.0),
                itl: stats(4.0),
                batch: None,
            },
            ..Summary::default()
        };
        let keys: Vec<String> = s.to_json().keys().cloned().collect();
        assert_eq!(keys.len(), 7 + 7 * 4 + 8);
        assert_eq!(
            keys[..8],
            [
                "completed",
                "duration",
                "total_input_tokens",
                "total_output_tokens",
                "request_throughput",
                "output_throughput",
                "total_token_throughput",
                "mean_ttft_ms"
            ]
        );
        assert_eq!(keys[13], "p99_ttft_ms");
        assert_eq!(keys[34], "p99_itl_ms");
        assert_eq!(keys[35], "gpu_busy_fraction");
        assert_eq!(keys.last().unwrap(), "prefix_cache_hit_tokens");
        assert_eq!(s.metric("p90_tpot_ms"), Some(5.0));
        assert_eq!(s.metric("mean_batch_latency_ms"), None);
    }

    #[test]
    fn client_and_front_end_keys_come_after_the_engine_counters_and_read_back() {
        let s = Summary {
            client: Some(ClientSummary {
                sent: 50,
                failed: 28,
                timed_out: 28,
                rejected: 0,
                success_rate: 0.44,
                wasted_output_tokens: 7,
            }),
            front_end: Some(FrontEndSummary {
                api_server_count: 2,
                api_server_busy_fraction: vec![0.5, 0.25],
                mean_api_queue_wait_ms: 1.5,
            }),
            ..Summary::default()
        };
        let keys: Vec<String> = s.to_json().keys().cloned().collect();
        let at = keys
            .iter()
            .position(|k| k == "prefix_cache_hit_tokens")
            .unwrap();
        assert_eq!(
            keys[at + 1..],
            [
                "sent",
                "failed",
                "timed_out",
                "rejected",
                "success_rate",
                "wasted_output_tokens",
                "api_server_count",
                "api_server_busy_fraction",
                "mean_api_queue_wait_ms"
            ]
        );
        let text = serde_json::to_string(&s).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back.client, s.client);
        assert_eq!(back.front_end, s.front_end);
        // Without them, none of their keys.
        let plain: Summary =
            serde_json::from_str(&serde_json::to_string(&Summary::default()).unwrap()).unwrap();
        assert!(plain.client.is_none() && plain.front_end.is_none());
        assert!(metric_names().contains(&"success_rate".to_string()));
    }

    #[test]
    fn round_trips_with_nulls_and_rows() {
        let s = Summary {
            duration: f64::NAN,
            request_throughput: 0.1 + 0.2,
            latency: Latency {
                batch: Some(stats(9.0)),
                ..Latency::default()
            },
            per_gpu: vec![GpuRow {
                gpu: 0,
                instances: 2,
                requests_served: 3,
                busy_fraction: 0.5,
                kv_cache_peak_fraction: f64::INFINITY,
            }],
            ..Summary::default()
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"duration\":null"), "{text}");
        assert!(
            text.contains("\"request_throughput\":0.30000000000000004"),
            "{text}"
        );
        assert!(
            text.contains("\"p99_batch_latency_ms\":14.0,\"gpu_busy_fraction\""),
            "{text}"
        );
        assert!(
            text.ends_with("\"kv_cache_peak_fraction\":null}]}"),
            "{text}"
        );
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert!(back.duration.is_nan());
        assert_eq!(back, s);
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}
