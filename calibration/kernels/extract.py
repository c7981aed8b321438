#!/usr/bin/env python3
"""Extract compact kernel tables for infersim from NVIDIA AIConfigurator's measured data.

Offline step, not part of the build or the tests. Usage (see README.md here):

    pip download --no-deps aiconfigurator-core==0.12.0 -d /tmp/aic
    unzip -q /tmp/aic/aiconfigurator_core-0.12.0-*.whl -d /tmp/aic/core
    pip install pyarrow pandas
    python3 calibration/kernels/extract.py --src /tmp/aic/core/aiconfigurator_core

Writes calibration/kernels/<gpu>/{gemm,context_attention,generation_attention,allreduce,moe}.csv
and meta.toml for each GPU below, deterministically (same input, same bytes), and prints
the plausibility checks of README.md (achieved % of peak, monotonicity).
"""
import argparse
import math
import os
import re
import sys

import pandas as pd
import pyarrow.parquet as pq

PACKAGE = "aiconfigurator-core 0.12.0"
# infersim GPU name -> AIConfigurator system directory
GPUS = {
    "a100-80gb": "a100_sxm",
    "h100-sxm": "h100_sxm",
    "h200": "h200_sxm",
    "l40s": "l40s",
    "b200": "b200_sxm",
    "gb200": "gb200",
    "rtx-pro-6000": "rtx_pro_6000_server",
}
# Datasheet dense bf16 tensor TFLOP/s, for the plausibility figures only.
PEAK_TFLOPS = {
    "a100-80gb": 312.0,
    "h100-sxm": 989.0,
    "h200": 989.0,
    "l40s": 362.0,
    "b200": 2250.0,
    "gb200": 2500.0,
    "rtx-pro-6000": 503.8,
}
# Datasheet memory bandwidth, GB/s, for the decode-attention plausibility figure only.
PEAK_GBS = {
    "a100-80gb": 2039.0,
    "h100-sxm": 3350.0,
    "h200": 4800.0,
    "l40s": 864.0,
    "b200": 8000.0,
    "gb200": 8000.0,
    "rtx-pro-6000": 1792.0,
}
BACKENDS = ["vllm", "sglang", "trtllm"]
M_GRID = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 512, 768, 1024, 1536, 2048,
          3072, 4096, 8192, 16384, 32768]
HEAD_DIMS = [64, 128, 256]


_VERSION = re.compile(r"^(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev(\d+))?$")


def vkey(v):
    """Numeric version order: X.devN < X.aN < X.bN < X.rcN < X < X.postN."""
    m = _VERSION.match(v)
    if not m:
        return ((-1,), (-2, 0), -1, 0)
    rel = tuple(int(x) for x in m.group(1).split("."))
    phase, pnum, post, dev = m.group(2), m.group(3), m.group(4), m.group(5)
    if phase:
        pre = ({"a": 0, "b": 1, "rc": 2}[phase], int(pnum))
    elif dev and not post:
        pre = (-1, 0)
    else:
        pre = (3, 0)
    return (rel, pre, int(post) if post else -1, int(dev) if dev else math.inf)


def pick(sysdir, op, fname):
    """(backend, version, path) of the newest table of the first backend that has it."""
    for b in BACKENDS:
        d = os.path.join(sysdir, op, b)
        if not os.path.isdir(d):
            continue
        versions = [v for v in os.listdir(d) if os.path.exists(os.path.join(d, v, fname))]
        normal = [v for v in versions if "dev" not in v]
        versions = normal or versions
        if versions:
            v = max(versions, key=vkey)
            return b, v, os.path.join(d, v, fname)
    return None


def status(path):
    meta = os.path.join(os.path.dirname(path), "collection_meta.yaml")
    try:
        for line in open(meta):
            if line.strip().startswith("status:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def fmt(x):
    return f"{x:.4g}"


def gemm_table(df, dtype, kernel):
    d = df[(df.gemm_dtype == dtype) & (df.kernel_source == kernel)]
    d = d.groupby(["m", "n", "k"], as_index=False)["latency"].median()
    ms = [m for m in M_GRID if m in set(d.m)]
    ns = sorted(v for v in set(d.n) if v >= 128)
    ks = sorted(v for v in set(d.k) if v >= 128)
    d = d[d.m.isin(ms) & d.n.isin(ns) & d.k.isin(ks)]
    dropped = []
    # Drop axis values until the grid is full.
    while True:
        have = set(zip(d.m, d.n, d.k))
        missing = [(m, n, k) for m in ms for n in ns for k in ks if (m, n, k) not in have]
        if not missing:
            break
        counts = {}
        for m, n, k in missing:
            for ax, v in (("m", m), ("n", n), ("k", k)):
                counts[(ax, v)] = counts.get((ax, v), 0) + 1
        (ax, v), _ = max(counts.items(), key=lambda kv: (kv[1], kv[0][0], kv[0][1]))
        dropped.append(f"{ax}={v}")
        {"m": ms, "n": ns, "k": ks}[ax].remove(v)
        d = d[d[ax] != v]
    d = d.sort_values(["m", "n", "k"])
    return d, ms, ns, ks, dropped


def attn_table(df, lencol, kernel):
    window = df.window_size if "window_size" in df else 0
    d = df[(df.kv_cache_dtype == "bfloat16") & (window == 0) & (df.kernel_source == kernel)
           & df.head_dim.isin(HEAD_DIMS)].copy()
    if lencol == "kv_len":
        # One decoded token on a prompt of `isl` tokens after `step` generated ones:
        # it attends isl + step cached keys (AIConfigurator's own key for these rows;
        # its vLLM collector ran the kernel on `step` keys, see README.md).
        d["kv_len"] = d["isl"] + d["step"]
    else:
        d = d[d.step == 0]
    keys = ["num_heads", "num_key_value_heads", "head_dim", "batch_size", lencol]
    d = d.groupby(keys, as_index=False)["latency"].median()
    measured = len(d)
    out, dropped = [], []
    for (h, kv, hd), g in d.groupby(["num_heads", "num_key_value_heads", "head_dim"]):
        bs = sorted(set(g.batch_size))
        ls = sorted(set(g[lencol]))
        have = set(zip(g.batch_size, g[lencol]))
        # Keep the largest full rectangle: drop batches, then lengths, with holes.
        while bs and ls:
            miss = [(b, l) for b in bs for l in ls if (b, l) not in have]
            if not miss:
                break
            cb = {}
            for b, l in miss:
                cb[("b", b)] = cb.get(("b", b), 0) + 1
                cb[("l", l)] = cb.get(("l", l), 0) + 1
            (ax, v), _ = max(cb.items(), key=lambda kv: (kv[1], kv[0][0], kv[0][1]))
            (bs if ax == "b" else ls).remove(v)
        if len(bs) < 2 or len(ls) < 2:
            dropped.append(f"({h},{kv},{hd})")
            continue
        out.append(g[g.batch_size.isin(bs) & g[lencol].isin(ls)])
    res = pd.concat(out).sort_values(keys)
    return res, dropped, measured


def allreduce_table(df):
    """bf16 all-reduce latency by (num_gpus, message_size), CUDA-graph mode where the
    table has both graph and eager rows (AIConfigurator's own loader keeps graph only)."""
    d = df[df.allreduce_dtype == "bfloat16"]
    graph = d[d.kernel_source.str.endswith("_graph")]
    if len(graph):
        d = graph
    kern = sorted(d.kernel_source.unique())
    impl = sorted(d.backend.unique()) if "backend" in d else []
    d = d.groupby(["num_gpus", "message_size"], as_index=False)["latency"].median()
    return d.sort_values(["num_gpus", "message_size"]), kern, impl


MOE_SHAPE = ["hidden_size", "inter_size", "topk", "num_experts"]


def moe_table(df):
    """bf16 routed experts on one GPU (no TP, no EP), tokens spread evenly ("balanced"):
    per (hidden, inter, topk, experts) shape, the kernel with the most rows (ties: the
    first by name), full num_tokens grids only, the median of repeated points."""
    d = df[(df.moe_dtype == "bfloat16") & (df.moe_tp_size == 1) & (df.moe_ep_size == 1)
           & (df.distribution == "balanced")]
    if d.empty:
        return None
    grid = sorted(d.num_tokens.unique())
    parts, kernels, dropped = [], {}, []
    for shape, g in d.groupby(MOE_SHAPE):
        kern = sorted(g.kernel_source.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        g = g[g.kernel_source == kern].groupby("num_tokens", as_index=False).latency.median()
        name = "x".join(str(int(x)) for x in shape)
        if sorted(g.num_tokens) != grid:
            dropped.append(name)
            continue
        for c, x in zip(MOE_SHAPE, shape):
            g[c] = int(x)
        kernels.setdefault(kern, []).append(name)
        parts.append(g)
    out = pd.concat(parts).sort_values(MOE_SHAPE + ["num_tokens"])
    return out, grid, kernels, dropped


def monotonic(d, group, axis, small=None):
    """(pairs, decreases, decreases by more than 5 %, of those at axis <= small) of latency
    along `axis` at fixed `group`."""
    pairs = dec = big = big_small = 0
    for _, g in d.groupby(group):
        g = g.sort_values(axis)
        lat, ax = g.latency.tolist(), g[axis].tolist()
        for a, b, x in zip(lat, lat[1:], ax[1:]):
            pairs += 1
            if b < a:
                dec += 1
                if b < 0.95 * a:
                    big += 1
                    big_small += small is not None and x <= small
    return pairs, dec, big, big_small


def mono_words(name, res, small=None):
    pairs, dec, big, big_small = res
    tail = f", {big_small} of those at {small}" if small else ""
    return f"{name}: {dec} of {pairs} neighbour pairs decrease ({big} by more than 5 %{tail})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", help="unpacked aiconfigurator_core package directory (default: the "
                    "installed aiconfigurator_core package)")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    if a.src is None:
        try:
            import aiconfigurator_core
        except ImportError:
            sys.exit("give --src (aiconfigurator_core is not installed)")
        a.src = os.path.dirname(os.path.abspath(aiconfigurator_core.__file__))
    if os.path.isdir(os.path.join(a.src, "aiconfigurator_core")):
        a.src = os.path.join(a.src, "aiconfigurator_core")
    data = os.path.join(a.src, "systems", "data")
    if not os.path.isdir(data):
        sys.exit(f"{data}: not found (give --src the aiconfigurator_core directory)")
    for gpu, sysname in GPUS.items():
        sysdir = os.path.join(data, sysname)
        odir = os.path.join(a.out, gpu)
        os.makedirs(odir, exist_ok=True)
        meta = [f'gpu = "{gpu}"', f'system = "{sysname}"', f'package = "{PACKAGE}"',
                'licence = "Apache-2.0 (NVIDIA CORPORATION & AFFILIATES); see ../LICENSE-aiconfigurator"']
        # GEMM
        b, v, path = pick(sysdir, "gemm", "gemm_perf.parquet")
        df = pq.read_table(path).to_pandas()
        device = df.device.iloc[0]
        meta.insert(2, f'device = "{device}"')
        rows = []
        info = []
        for dtype, out_name, kernels in (("bfloat16", "bf16", ["torch.nn.functional.linear", "vllm_default"]),
                                         ("fp8", "fp8", ["CutlassFP8ScaledMMLinearKernel"])):
            kern = next((k for k in kernels if ((df.kernel_source == k) & (df.gemm_dtype == dtype)).any()), None)
            if kern is None:
                continue
            d, ms, ns, ks, dropped = gemm_table(df, dtype, kern)
            for r in d.itertuples():
                rows.append(f"{out_name},{r.m},{r.n},{r.k},{fmt(r.latency * 1000.0)}")
            info.append((out_name, kern, len(d), ms, ns, ks, dropped))
            print(f"{gpu}: " + mono_words(f"{out_name} GEMM latency along m at fixed (n, k)",
                                          monotonic(d, ["n", "k"], "m", 256), "m <= 256"))
            if out_name == "bf16":
                big = d[(d.m == 8192) & (d.n == 8192) & (d.k == 8192)]
                if len(big):
                    tflops = 2 * 8192**3 / (big.latency.iloc[0] * 1e-3) / 1e12
                    print(f"{gpu}: bf16 GEMM 8192^3: {tflops:.0f} TFLOP/s = {100 * tflops / PEAK_TFLOPS[gpu]:.0f} % of peak")
        with open(os.path.join(odir, "gemm.csv"), "w") as f:
            f.write("dtype,m,n,k,latency_us\n" + "\n".join(rows) + "\n")
        for out_name, kern, n, ms, ns, ks, dropped in info:
            meta += ["", "[[table]]", 'file = "gemm.csv"', f'dtype = "{out_name}"', f'backend = "{b}"',
                     f'backend_version = "{v}"', f'kernel_source = "{kern}"',
                     f'device = "{device}"',
                     f'source = "{os.path.relpath(path, a.src)}"', f'collection_status = "{status(path)}"',
                     f"rows = {n}", f"m = {ms}", f"n = {ns}", f"k = {ks}", f"dropped = {dropped}"]
        # Attention
        for fname, out_name, lencol in (("context_attention_perf.parquet", "context_attention.csv", "isl"),
                                         ("generation_attention_perf.parquet", "generation_attention.csv", "kv_len")):
            b, v, path = pick(sysdir, "attention", fname)
            df = pq.read_table(path).to_pandas()
            srcs = sorted(df.kernel_source.unique())
            # FlashAttention 3 where vLLM uses it (Hopper); else the kernel with the most
            # bf16-KV rows (the one vLLM's default backend runs on that GPU).
            bf = df[df.kv_cache_dtype == "bfloat16"].kernel_source.value_counts()
            kern = "vllm_flash_attn_fa3" if "vllm_flash_attn_fa3" in srcs else sorted(bf.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            d, dropped, measured = attn_table(df, lencol, kern)
            group = ["num_heads", "num_key_value_heads", "head_dim"]
            print(f"{gpu}: " + mono_words(f"{out_name} along {lencol} at fixed batch",
                                          monotonic(d, group + ["batch_size"], lencol))
                  + "; " + mono_words("along batch at fixed length", monotonic(d, group + [lencol], "batch_size")))
            with open(os.path.join(odir, out_name), "w") as f:
                f.write(f"batch,{lencol},num_heads,num_kv_heads,head_dim,latency_us\n")
                for r in d.itertuples():
                    f.write(f"{r.batch_size},{getattr(r, lencol)},{r.num_heads},{r.num_key_value_heads},{r.head_dim},{fmt(r.latency * 1000.0)}\n")
            meta += ["", "[[table]]", f'file = "{out_name}"', f'backend = "{b}"', f'backend_version = "{v}"',
                     f'kernel_source = "{kern}"', f'kernel_sources_available = {srcs}',
                     f'device = "{df.device.iloc[0]}"',
                     f'source = "{os.path.relpath(path, a.src)}"', f'collection_status = "{status(path)}"',
                     'kv_cache_dtype = "bfloat16"', "window_size = 0", f"rows = {len(d)}",
                     f"measured_points = {measured}  # before the per-shape rectangles (batch x length)",
                     f"dropped_shapes = {dropped}"]
            if lencol == "isl":
                one = d[(d.batch_size == 1) & (d.isl == 8192) & (d.num_heads == 32) & (d.num_key_value_heads == 8) & (d.head_dim == 128)]
                if len(one):
                    fl = 4 * 32 * 128 * 8192 * 8193 / 2
                    tf = fl / (one.latency.iloc[0] * 1e-3) / 1e12
                    print(f"{gpu}: prefill attention 8192 tokens, 32/8 heads, hd 128: {tf:.0f} TFLOP/s = {100 * tf / PEAK_TFLOPS[gpu]:.0f} % of peak ({kern})")
            else:
                # KV bytes read by the largest kept decode point of 32/8 heads, head dim 128.
                g = d[(d.num_heads == 32) & (d.num_key_value_heads == 8) & (d.head_dim == 128)]
                if len(g):
                    r = g.loc[(g.batch_size * g.kv_len).idxmax()]
                    gbs = 2 * 2 * r.batch_size * r.kv_len * 8 * 128 / (r.latency * 1e-3) / 1e9
                    print(f"{gpu}: decode attention batch {int(r.batch_size)} x {int(r.kv_len)} keys, 32/8 heads, hd 128: "
                          f"{gbs:.0f} GB/s of KV = {100 * gbs / PEAK_GBS[gpu]:.0f} % of HBM ({kern})")
        # All-reduce (bf16), from the comm tables.
        pk = pick(sysdir, "comm", "custom_allreduce_perf.parquet")
        if pk is not None:
            b, v, path = pk
            df = pq.read_table(path).to_pandas()
            d, kern, impl = allreduce_table(df)
            with open(os.path.join(odir, "allreduce.csv"), "w") as f:
                f.write("num_gpus,message_bytes,latency_us\n")
                for r in d.itertuples():
                    # message_size counts bf16 elements (AIConfigurator's CustomAllReduce op
                    # takes tokens x hidden elements); 2 bytes each.
                    f.write(f"{r.num_gpus},{2 * r.message_size},{fmt(r.latency * 1000.0)}\n")
            meta += ["", "[[table]]", 'file = "allreduce.csv"', 'dtype = "bf16"', f'backend = "{b}"',
                     f'backend_version = "{v}"', f"kernel_source = {kern}", f"implementation = {impl}",
                     f'device = "{df.device.iloc[0]}"',
                     f'source = "{os.path.relpath(path, a.src)}"', f'collection_status = "{status(path)}"',
                     'message_bytes = "2 x the parquet message_size (bf16 elements)"',
                     f"rows = {len(d)}", f"num_gpus = {sorted(int(x) for x in d.num_gpus.unique())}"]
            top = d[d.num_gpus == d.num_gpus.max()].sort_values("message_size").iloc[-1]
            n = int(top.num_gpus)
            algbw = 2 * top.message_size / (top.latency * 1e-3) / 1e9
            print(f"{gpu}: all-reduce {n} GPUs, {2 * int(top.message_size) >> 20} MiB: {top.latency * 1000:.0f} us, "
                  f"bus bandwidth {algbw * 2 * (n - 1) / n:.0f} GB/s ({b} {v}, {', '.join(kern)})")
        # MoE routed experts (bf16), from the moe tables.
        pk = pick(sysdir, "moe", "moe_perf.parquet")
        res = moe_table(pq.read_table(pk[2]).to_pandas()) if pk is not None else None
        if res is None:
            print(f"{gpu}: no bf16 balanced single-GPU MoE rows; MoE layers priced on the curves")
        else:
            b, v, path = pk
            d, grid, kernels, dropped = res
            with open(os.path.join(odir, "moe.csv"), "w") as f:
                f.write("num_tokens,hidden_size,inter_size,topk,num_experts,latency_us\n")
                for r in d.itertuples():
                    f.write(f"{r.num_tokens},{r.hidden_size},{r.inter_size},{r.topk},{r.num_experts},{fmt(r.latency * 1000.0)}\n")
            meta += ["", "[[table]]", 'file = "moe.csv"', 'dtype = "bf16"', f'backend = "{b}"',
                     f'backend_version = "{v}"', f"kernel_source = {sorted(kernels)}",
                     f'source = "{os.path.relpath(path, a.src)}"', f'collection_status = "{status(path)}"',
                     'distribution = "balanced"', "moe_tp_size = 1", "moe_ep_size = 1",
                     f"rows = {len(d)}", f"num_tokens = {[int(x) for x in grid]}",
                     f"shapes = {sum(len(x) for x in kernels.values())}  # hidden x inter x topk x experts",
                     f"dropped_shapes = {dropped}"]
            for kern, names in sorted(kernels.items()):
                meta.append(f'# {kern}: {", ".join(names)}')
            print(f"{gpu}: MoE {len(d)} rows, {sum(len(x) for x in kernels.values())} shapes ({b} {v}); "
                  + mono_words("latency along num_tokens", monotonic(d, MOE_SHAPE, "num_tokens")))
        with open(os.path.join(odir, "meta.toml"), "w") as f:
            f.write("# Provenance of the tables in this folder (written by ../extract.py).\n" + "\n".join(meta) + "\n")


if __name__ == "__main__":
    main()
