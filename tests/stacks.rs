//! Engine presets and the scheduler semantics they set (src/serving/stacks.rs):
//! hand-worked timelines of multi-step scheduling on the tiny model (a flat roofline on
//! a GPU where one FLOP or one byte takes a microsecond), CUDA-graph padding priced
//! exactly as the padded batch, async scheduling's overlap, fast-forward = step by step
//! with every semantics, and every preset resolving from an experiment file.

mod common;

use common::blocks::*;
use common::*;
use infersim::cost::{PrefillChunk, StepShape};
use infersim::instance::Instance;
use infersim::kv::KvGeometry;
use infersim::metrics::Recorder;
use infersim::policy::Policy;
use infersim::sim::{run, RunOptions};
use infersim::stacks::{self, StackSemantics};
use infersim::time::SimTime;
use infersim::workload::{Arrival, LengthDist, Request, Stop, Workload};

/// Multi-step, n = 4, by hand. Step prices on the tiny model (µs): a prefill of 4 tokens
/// is dense 4096 + LM head 512 + attention 320 + sampler 128 = 5056 GPU; a decode of one
/// sequence attending L keys is 1056 + 512 + 32 L + 128 = 1696 + 32 L. Every scheduler
/// call costs 1000 µs of CPU before the GPU.
///
/// r0 (4 in, 6 out) arrives at 0: its prefill is a step of its own (6056 µs); then a
/// block of 4 decode steps: the first pays the CPU (1000 + 1856 → 8912), the other three
/// only their GPU (1888, 1920, 1952 → 10800, 12720, 14672). r1 (4 in, 2 out) arrives at
/// 6057 µs, inside the block, and waits for its end: scheduled at 14672, not 8912. The
/// next step prefills r1 beside r0's sixth token (5 tokens: dense 5120 + head 1024 +
/// attention 320 + 288 + sampler 256 = 7008, + 1000 CPU → 22680): r0 finishes, r1 emits
/// its first token. r1 then decodes alone (a new block, first step 1000 + 1856 →
/// 25536) and finishes: the block ends early, nobody is left in it.
#[test]
fn multi_step_an_arrival_waits_for_the_block() {
    let t1 = 6056;
    let rows = [(0.0, 4, 6), ((t1 + 1) as f64 * 1e-6, 4, 2)];
    let recs = timeline(&rows, multi_step(4));
    let (r0, r1) = (&recs[0], &recs[1]);
    assert_eq!(at_us(r0.first_token_s), t1);
    assert_eq!(at_us(r1.arrival_s), t1 + 1);
    assert_eq!(at_us(r1.scheduled_s), 14672);
    assert_eq!(at_us(r0.finish_s), 22680);
    assert_eq!(at_us(r1.first_token_s), 22680);
    assert_eq!(at_us(r1.finish_s), 25536);

    // The same prices from the cost model itself.
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    let first = ns(&cost.price(&StepShape::prefill_only(4)).times);
    let block_start = ns(&cost.price(&StepShape::decode_only(1, 5, 0)).times);
    let later: u64 = (6..=8)
        .map(|l| {
            let mut c = cost.price(&StepShape::decode_only(1, l, 0));
            c.times.cpu_s = 0.0;
            c.times.cpu_overlap = 1.0;
            ns(&c.times)
        })
        .sum();
    assert_eq!(first, t1 * US);
    assert_eq!(first + block_start + later, 14672 * US);

    // Single-step scheduling admits r1 at the end of the first decode step, and every
    // step pays the CPU.
    let recs = timeline(&rows, multi_step(1));
    assert_eq!(at_us(recs[1].scheduled_s), 8912);
}

/// n = 4; r0 (3 out) and r1 (8 out) prefill together, then decode in a block. r0's last
/// token comes out in the block's second step: it completes there, but its slot stays
/// in the batch (computed, not emitting) for the block's last two steps, and its KV is
/// released only when the block ends.
#[test]
fn a_sequence_finishing_inside_the_block_keeps_its_slot_until_the_block_ends() {
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    let mut inst = instance(cost.clone(), multi_step(4), &[(4, 3), (4, 8)]);
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    step(&mut inst, &mut t, &mut rec).unwrap(); // both prefills
    step(&mut inst, &mut t, &mut rec).unwrap(); // block step 1: second tokens
    step(&mut inst, &mut t, &mut rec).unwrap(); // block step 2: r0's third, last
    assert_eq!(inst.stats.served, 1);
    let kv_with_r0 = inst.kv.used;
    let c = step(&mut inst, &mut t, &mut rec).unwrap(); // block step 3: r0 padding
    assert_eq!(inst.last_plan().decodes, 2);
    // Two sequences computed (r1 attends 4 + 3 = 7 keys, r0's slot 7 too), one emits;
    // no CPU step part inside the block.
    let mut expect = cost
        .price(&StepShape {
            prefills: Vec::new(),
            decodes: 2,
            decode_ctx_full: 14,
            decode_ctx_window: 0,
            emitting: 1,
        })
        .times;
    expect.cpu_s = 0.0;
    expect.cpu_overlap = 1.0;
    assert_eq!(c, expect);
    assert!(inst.kv.used > kv_with_r0, "both slots grow");
    step(&mut inst, &mut t, &mut rec).unwrap(); // block step 4, the last
    assert_eq!(inst.last_plan().decodes, 2);
    // The block is over: r0's slot is gone, r1 alone opens the next block.
    step(&mut inst, &mut t, &mut rec).unwrap();
    assert_eq!(inst.last_plan().decodes, 1);
    assert_eq!(inst.running_len(), 1);
}

/// Capture sizes [1, 2, 4, 8]: a decode step of B = 5 sequences (each attending 5 keys)
/// runs the graph of 8: priced as 8 decodes whose 3 padding rows attend one key each,
/// with the LM head, the sampler and the CPU's per-sequence work for the 5 real ones.
/// B = 9 is larger than the largest size and runs eager, unpadded.
#[test]
fn cuda_graph_padding_prices_the_padded_batch() {
    let mut p = profile(100.0, 1000.0, 0.25);
    p.cpu_seq_overhead_us = 10.0;
    p.gpu_seq_overhead_us = 3.0;
    let cost = tiny_cost(&p);
    let padded = StackSemantics {
        cuda_graph_sizes: vec![1, 2, 4, 8],
        ..StackSemantics::default()
    };
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;

    let mut inst = instance(cost.clone(), padded.clone(), &[(4, 10); 5]);
    let prefill = step(&mut inst, &mut t, &mut rec).unwrap();
    // The prefill step runs eager (V0 graphs cover decodes only).
    let shape = StepShape {
        prefills: vec![PrefillChunk { cached: 0, new: 4 }; 5],
        emitting: 5,
        ..StepShape::default()
    };
    assert_eq!(prefill, cost.price(&shape).times);
    let c = step(&mut inst, &mut t, &mut rec).unwrap();
    let mut expect = cost
        .price(&StepShape {
            prefills: Vec::new(),
            decodes: 8,
            decode_ctx_full: 5 * 5 + 3,
            decode_ctx_window: 0,
            emitting: 5,
        })
        .times;
    expect.cpu_s = (1000.0 + 10.0 * 5.0) * 1e-6;
    assert_eq!(c, expect);
    assert_eq!(c.cpu_s, cost.cpu_s_for(5));
    // It costs more than the unpadded step, by the padded rows' dense and per-row work.
    assert!(c.gpu_s() > cost.price(&StepShape::decode_only(5, 5, 0)).times.gpu_s());

    let mut inst = instance(cost.clone(), padded, &[(4, 10); 9]);
    step(&mut inst, &mut t, &mut rec).unwrap();
    let c = step(&mut inst, &mut t, &mut rec).unwrap();
    assert_eq!(c, cost.price(&StepShape::decode_only(9, 5, 0)).times);
}

/// vLLM V1 capture list [1, 2, 4, 8, 16, ...]: a batch of 17 pads to 24.
#[test]
fn the_v1_capture_list_pads_to_the_next_multiple_of_eight() {
    let s = stacks::preset("vllm@0.9").unwrap().semantics(1024);
    assert_eq!(s.padded_size(17), Some(24));
    assert_eq!(s.padded_size(3), Some(4));
    assert_eq!(s.padded_size(512), Some(512));
    assert_eq!(s.padded_size(513), None);
    // V0 captures no batch larger than max_num_seqs (and at most 256).
    let v0 = stacks::preset("vllm@0.6").unwrap().semantics(64);
    assert_eq!(v0.cuda_graph_sizes.last(), Some(&64));
    assert!(!v0.pad_mixed_steps);
}

/// Async scheduling: the scheduler's CPU work for the next step runs under this step's
/// GPU work, so a step lasts max(GPU, CPU) instead of CPU + GPU.
#[test]
fn async_scheduling_overlaps_the_cpu_with_the_gpu() {
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    let on = StackSemantics {
        async_scheduling: true,
        ..StackSemantics::default()
    };
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    let mut inst = instance(cost.clone(), on, &[(4, 10)]);
    step(&mut inst, &mut t, &mut rec).unwrap();
    let c = step(&mut inst, &mut t, &mut rec).unwrap();
    let serial = cost.price(&StepShape::decode_only(1, 5, 0));
    assert_eq!(c.cpu_overlap, 1.0);
    // 1000 µs of CPU under 1856 µs of GPU: the step takes 1856, not 2856.
    assert_eq!(ns(&c), 1856 * US);
    assert_eq!(ns(&serial.times), 2856 * US);
    assert_eq!(c.wall_s(), c.gpu_s().max(c.cpu_s));
}

/// Every semantics, on Poisson load that builds queues and preemptions (a small KV
/// pool): the fast path and the step-by-step reference agree to the nanosecond, every
/// request finishes once and the KV pool empties.
#[test]
fn fast_forward_equals_step_by_step_with_every_semantics() {
    let cost = tiny_cost(&profile(300.0, 200.0, 0.5));
    let semantics = [
        StackSemantics::default(),
        multi_step(4),
        multi_step(10),
        StackSemantics {
            cuda_graph_sizes: vec![1, 2, 4, 8],
            ..StackSemantics::default()
        },
        StackSemantics {
            cuda_graph_sizes: stacks::vllm_capture_list(16),
            pad_mixed_steps: true,
            async_scheduling: true,
            ..StackSemantics::default()
        },
        StackSemantics {
            num_scheduler_steps: 3,
            cuda_graph_sizes: vec![2, 4],
            pad_mixed_steps: false,
            async_scheduling: true,
            multi_step_stream_outputs: true,
        },
        StackSemantics {
            multi_step_stream_outputs: false,
            ..multi_step(4)
        },
        StackSemantics {
            num_scheduler_steps: 10,
            multi_step_stream_outputs: false,
            cuda_graph_sizes: vec![1, 2, 4, 8],
            pad_mixed_steps: false,
            async_scheduling: false,
        },
    ];
    for (i, stack) in semantics.iter().enumerate() {
        for (chunked, kv_blocks) in [(false, 4096), (true, 160)] {
            let policy = Policy::Continuous {
                max_num_seqs: 6,
                max_num_batched_tokens: 64,
                chunked_prefill: chunked,
                prefix_caching: false,
            };
            let workload = Workload {
                arrival: Arrival::Poisson { rate: 40.0 },
                input: LengthDist::Uniform {
                    mean: 24,
                    range_ratio: 0.5,
                },
                output: LengthDist::Uniform {
                    mean: 30,
                    range_ratio: 0.9,
                },
                stop: Stop::Requests(120),
                max_context: 64,
                prompt_pool: None,
                identical_outputs: false,
                classes: Vec::new(),
                shared: infersim::workload::SharedContext::None,
            };
            let mut sc = single(policy, cost.clone(), 4, kv_blocks, workload);
            sc.instances[0].stack = stack.clone();
            let what = format!("semantics {i}, chunked {chunked}");
            let opts = RunOptions {
                keep_records: true,
                check_invariants: true,
                step_by_step: false,
            };
            let fast = run(&sc, 7, opts).expect(&what);
            let reference = run(
                &sc,
                7,
                RunOptions {
                    step_by_step: true,
                    ..opts
                },
            )
            .unwrap();
            assert_eq!(fast.summary, reference.summary, "{what}");
            assert_eq!(fast.records, reference.records, "{what}");
            let recs = fast.records.unwrap();
            assert_eq!(recs.len(), 120, "{what}");
            let out: u64 = recs.iter().map(|r| r.output_tokens as u64).sum();
            assert_eq!(fast.tokens_emitted, out, "{what}");
            assert!(fast.kv_in_use_at_end.iter().all(|&u| u == 0), "{what}");
        }
    }
}

// ---- Presets from experiment files -------------------------------------------------

fn experiment(stack: &str, gpu: &str, arrival: &str, continuous: &str) -> String {
    let arrival = match arrival {
        "offline" => "arrival = \"offline\"\nbatch_size = 100\n",
        _ => "arrival = \"poisson\"\nrate_per_s = 5.0\n",
    };
    format!(
        "name = \"t\"\n[hardware]\ngpu = \"{gpu}\"\n[engine]\nmodel = \"llama-3.1-8b\"\npolicy = \"continuous\"\nstack = \"{stack}\"\nmax_model_len = 4096\n[engine.continuous]\n{continuous}\n[workload]\n{arrival}num_requests = 100\ninput_tokens = {{ dist = \"fixed\", value = 256 }}\noutput_tokens = {{ dist = \"fixed\", value = 64 }}\n"
    )
}

fn load(text: &str) -> infersim::config::Experiment {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.toml");
    std::fs::write(&path, text).unwrap();
    infersim::config::load_experiment(&path).unwrap_or_else(|e| panic!("{e:?}"))
}

fn limits(exp: &infersim::config::Experiment) -> (u32, u32, bool, bool) {
    match exp.points[0].scenario.instances[0].policy {
        Policy::Continuous {
            max_num_seqs,
            max_num_batched_tokens,
            chunked_prefill,
            prefix_caching,
        } => (
            max_num_seqs,
            max_num_batched_tokens,
            chunked_prefill,
            prefix_caching,
        ),
        _ => panic!("continuous"),
    }
}

/// Each preset resolves on an H100 and an A100: every default present, its own
/// shipped profile loaded or else the borrowed one, with a warning saying which.
#[test]
fn every_preset_resolves_with_its_engines_defaults() {
    for p in stacks::PRESETS {
        for gpu in ["h100-sxm", "a100-80gb", "l4"] {
            let exp = load(&experiment(p.name, gpu, "poisson", ""));
            let point = &exp.points[0];
            // A preset with a shipped profile of its own (vllm@0.6, fitted on the Lambda
            // study) uses it; the others borrow and say so.
            let own = infersim::profile::profiles_dir()
                .join(format!("{}.toml", p.profile))
                .is_file();
            let borrows = exp
                .warnings
                .iter()
                .any(|w| w.contains("borrows") && w.contains(p.name));
            if own {
                assert_eq!(point.meta.profile, p.profile, "{} on {gpu}", p.name);
                assert!(!borrows, "{:?}", exp.warnings);
            } else {
                assert_eq!(point.meta.profile, p.borrows, "{} on {gpu}", p.name);
                assert!(borrows, "{:?}", exp.warnings);
            }
            let (seqs, tokens, chunked, prefix) = limits(&exp);
            assert!(seqs >= 1 && tokens >= seqs, "{}", p.name);
            assert_eq!(chunked, p.chunked_prefill);
            assert_eq!(prefix, p.prefix_caching);
            let s = &point.scenario.instances[0].stack;
            assert_eq!(s.num_scheduler_steps, p.num_scheduler_steps);
            assert_eq!(s.async_scheduling, p.async_scheduling);
            assert_eq!(s.cuda_graph_sizes.is_empty(), p.cuda_graph_max == 0);
        }
    }
    // vLLM V1 on an H100 (80 GiB, not an A100): 8192 tokens behind the API server,
    // 16384 offline, 1024 sequences; on the A100-80GB (excluded by PR #17885) and the
    // L4: 2048 / 8192 and 256.
    let v1 = |gpu, arrival| limits(&load(&experiment("vllm@0.9", gpu, arrival, "")));
    assert_eq!(v1("h100-sxm", "poisson"), (1024, 8192, true, true));
    assert_eq!(v1("h100-sxm", "offline"), (1024, 16384, true, true));
    assert_eq!(v1("a100-80gb", "poisson"), (256, 2048, true, true));
    assert_eq!(v1("l4", "offline"), (256, 8192, true, true));
    // vLLM 0.6 (V0): 256 sequences, max(max_model_len, 2048) tokens without chunking,
    // 512 with; capture sizes up to 256.
    let v0 = load(&experiment("vllm@0.6", "h100-sxm", "poisson", ""));
    assert_eq!(limits(&v0), (256, 4096, false, false));
    let s = &v0.points[0].scenario.instances[0].stack;
    assert_eq!(s.cuda_graph_sizes, stacks::vllm_capture_list(256));
    let v0c = load(&experiment(
        "vllm@0.6",
        "h100-sxm",
        "poisson",
        "enable_chunked_prefill = true",
    ));
    assert_eq!(limits(&v0c), (256, 512, true, false));
    // TensorRT-LLM: max_batch_size 2048, max_num_tokens 8192, chunked context off.
    let trt = load(&experiment("trtllm@1.0", "h100-sxm", "poisson", ""));
    assert_eq!(limits(&trt), (2048, 8192, false, true));
    // SGLang on an 80 GiB GPU: chunked_prefill_size 8192; on the L4 (24 GiB) 2048.
    let sg = |gpu| limits(&load(&experiment("sglang@0.5", gpu, "poisson", "")));
    assert_eq!(sg("h100-sxm").1, 8192);
    assert_eq!(sg("l4").1, 2048);
}

/// The user's settings override the preset's, and the plain stack keeps the
/// historical defaults (no semantics at all).
#[test]
fn user_settings_override_the_preset() {
    let exp = load(&experiment(
        "vllm@0.6",
        "h100-sxm",
        "poisson",
        "num_scheduler_steps = 10\ncuda_graph_sizes = [8, 1, 4, 2, 4]\nmax_num_seqs = 64",
    ));
    let s = &exp.points[0].scenario.instances[0].stack;
    assert_eq!(s.num_scheduler_steps, 10);
    assert_eq!(s.cuda_graph_sizes, vec![1, 2, 4, 8]);
    assert_eq!(limits(&exp).0, 64);
    let plain = load(&experiment("vllm", "h100-sxm", "poisson", ""));
    assert!(plain.points[0].scenario.instances[0].stack.is_plain());
    assert_eq!(limits(&plain), (256, 2048, true, true));
    assert!(plain.warnings.is_empty());
    let padded = load(&experiment(
        "vllm",
        "h100-sxm",
        "poisson",
        "cuda_graph_sizes = [1, 2, 4]",
    ));
    assert_eq!(
        padded.points[0].scenario.instances[0]
            .stack
            .cuda_graph_sizes,
        vec![1, 2, 4]
    );
}

/// SGLang's and TensorRT-LLM's names for the batch limits, the scheduler and the
/// prefix cache set exactly what the generic names set.
#[test]
fn engine_names_set_the_same_settings() {
    let named = load(&experiment(
        "sglang@0.5",
        "h100-sxm",
        "poisson",
        "chunked_prefill_size = 4096\nmax_running_requests = 64\nschedule_policy = \"lpm\"\ndisable_radix_cache = true",
    ));
    let generic = load(&experiment(
        "sglang@0.5",
        "h100-sxm",
        "poisson",
        "max_num_batched_tokens = 4096\nmax_num_seqs = 64\nscheduling_policy = \"lpm\"\nenable_prefix_caching = false",
    ));
    assert_eq!(limits(&named), (64, 4096, true, false));
    assert_eq!(limits(&named), limits(&generic));
    let sched =
        |e: &infersim::config::Experiment| match &e.points[0].scenario.instances[0].scheduler {
            infersim::policy::SchedulerChoice::Config(c) => c.name.clone(),
            _ => panic!("a configured scheduler"),
        };
    assert_eq!(sched(&named), "lpm");
    assert_eq!(sched(&generic), "lpm");
    let trt = load(&experiment(
        "trtllm@1.0",
        "h100-sxm",
        "poisson",
        "max_batch_size = 128\nmax_num_tokens = 4096",
    ));
    assert_eq!(limits(&trt).0, 128);
    assert_eq!(limits(&trt).1, 4096);
}

/// A preset's own profile is used once its file exists (here in a copy of the shipped
/// profiles with `vllm@0.6.toml` replaced), and the warning about borrowing goes away;
/// without the file it borrows.
#[test]
fn a_presets_own_profile_is_used_when_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles");
    for e in std::fs::read_dir(&shipped).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let vllm = std::fs::read_to_string(shipped.join("vllm.toml")).unwrap();
    let own = vllm
        .replacen("name = \"vllm\"", "name = \"vllm@0.6\"", 1)
        .replacen("stack = \"vllm\"", "stack = \"vllm@0.6\"", 1);
    assert_ne!(own, vllm);
    std::fs::write(dir.path().join("vllm@0.6.toml"), own).unwrap();
    let exp_dir = tempfile::tempdir().unwrap();
    let f = exp_dir.path().join("exp.toml");
    std::fs::write(&f, experiment("vllm@0.6", "h100-sxm", "poisson", "")).unwrap();
    let profiles = dir.path().display().to_string();
    let env = [("INFERSIM_PROFILES", profiles.as_str())];
    let (code, out, err) = infersim_bin(&["validate", f.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("own profile vllm@0.6.toml"), "{err}");
    assert!(!err.contains("borrows"), "{err}");
    // Without the file (profiles copied but `vllm@0.6.toml` left out) it borrows.
    let bare = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&shipped).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "vllm@0.6.toml" {
            std::fs::copy(e.path(), bare.path().join(e.file_name())).unwrap();
        }
    }
    let profiles = bare.path().display().to_string();
    let env = [("INFERSIM_PROFILES", profiles.as_str())];
    let (code, out, err) = infersim_bin(&["validate", f.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("borrows the `vllm` profile"), "{err}");
}

/// SGLang's longest prefix match: with one free slot, a later request whose prompt
/// prefix is cached goes before an earlier one whose prefix is not; FCFS takes the
/// earlier one.
#[test]
fn lpm_admits_the_request_with_the_longest_cached_prefix_first() {
    use infersim::policy::{SchedulerChoice, SchedulerConfig};
    let admitted_first = |scheduler: &str| {
        let geo = KvGeometry::new(&tiny_model(), 1);
        let policy = Policy::Continuous {
            max_num_seqs: 1,
            max_num_batched_tokens: 64,
            chunked_prefill: false,
            prefix_caching: true,
        };
        let cost = tiny_cost(&profile(0.0, 0.0, 0.0));
        let mut inst = Instance::new(0, policy, cost, geo, 4096, 4096);
        let choice = SchedulerChoice::Config(SchedulerConfig {
            name: scheduler.into(),
            ..SchedulerConfig::default()
        });
        inst.set_scheduler(choice.build(0).unwrap());
        let mut rec = Recorder::new(SimTime::ZERO, false);
        let mut t = 0;
        let with_prefix = |id: u64, prefix: u32| {
            let mut r = Request::new(id, SimTime::ZERO, 8, 2);
            r.prefix = Some(prefix);
            r
        };
        // Request 0 (prompt 0) runs alone and leaves its prompt cached.
        let r0 = with_prefix(0, 0);
        inst.note_routed(&r0);
        inst.enqueue(r0, SimTime::ZERO);
        while step(&mut inst, &mut t, &mut rec).is_some() {}
        assert!(inst.cached_prefix_blocks(0) > 0);
        assert_eq!(inst.cached_prefix_blocks(1), 0);
        // Request 1 (prompt 1) waits before request 2 (prompt 0, cached).
        for r in [with_prefix(1, 1), with_prefix(2, 0)] {
            inst.note_routed(&r);
            inst.enqueue(r, SimTime(t));
        }
        step(&mut inst, &mut t, &mut rec).unwrap();
        inst.last_plan().admitted.clone()
    };
    assert_eq!(admitted_first("lpm"), vec![2]);
    assert_eq!(admitted_first("fcfs"), vec![1]);
}

/// Multi-step with chunked prefill (vLLM 0.6.3+): the prompt is computed whole in the
/// block's first step and decodes in its other steps, so a request arriving after
/// that first step waits n − 1 steps. vLLM 0.6 then budgets max(max_model_len, 2048)
/// tokens per step, not 512.
#[test]
fn multi_step_with_chunked_prefill_opens_the_block_at_the_prefill() {
    let cost = tiny_cost(&profile(0.0, 1000.0, 0.0));
    let geo = KvGeometry::new(&tiny_model(), 1);
    let chunked = Policy::Continuous {
        max_num_seqs: 16,
        max_num_batched_tokens: 64,
        chunked_prefill: true,
        prefix_caching: false,
    };
    let mut inst = Instance::new(0, chunked, cost, geo, 4096, 4096);
    inst.set_stack_semantics(multi_step(4));
    let mut rec = Recorder::new(SimTime::ZERO, false);
    let mut t = 0;
    let r0 = Request::new(0, SimTime::ZERO, 4, 20);
    inst.note_routed(&r0);
    inst.enqueue(r0, SimTime::ZERO);
    step(&mut inst, &mut t, &mut rec).unwrap();
    assert_eq!(inst.last_plan().admitted, vec![0]);
    let r1 = Request::new(1, SimTime(t), 4, 20);
    inst.note_routed(&r1);
    inst.enqueue(r1, SimTime(t));
    for _ in 0..3 {
        step(&mut inst, &mut t, &mut rec).unwrap();
        assert!(inst.last_plan().admitted.is_empty());
        assert_eq!(inst.last_plan().decodes, 1);
    }
    step(&mut inst, &mut t, &mut rec).unwrap();
    assert_eq!(inst.last_plan().admitted, vec![1]);

    let exp = load(&experiment(
        "vllm@0.6",
        "h100-sxm",
        "poisson",
        "enable_chunked_prefill = true\nnum_scheduler_steps = 10",
    ));
    assert_eq!(limits(&exp), (256, 4096, true, false));
}

/// `infersim stacks` lists every preset with the profile it borrows and the source of
/// its values.
#[test]
fn infersim_stacks_lists_every_preset_and_its_sources() {
    let (code, out, err) = infersim_bin(&["stacks"], &[]);
    assert_eq!(code, 0, "{err}");
    for p in stacks::PRESETS {
        assert!(out.contains(&format!("{} — ", p.name)), "{out}");
        for (_, src) in p.sources {
            assert!(out.contains(src), "{src}");
        }
    }
    assert!(out.contains("borrows the `vllm` profile"));
    assert!(out.contains("vllm-project/vllm vllm/sequence.py"));
}
