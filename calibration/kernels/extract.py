#!/usr/bin/env python3
"""Extract compact kernel tables for infersim from NVIDIA AIConfigurator's measured data.

Offline step, not part of the build or the tests. Usage (see README.md here):

    pip download --no-deps aiconfigurator-core==0.12.0 -d /tmp/aic
    unzip -q /tmp/aic/aiconfigurator_core-0.12.0-*.whl -d /tmp/aic/core
    pip install pyarrow pandas
    python3 calibration/kernels/extract.py --src /tmp/aic/core/aiconfigurator_core

Writes calibration/kernels/<gpu>/{gemm,context_attention,generation_attention}.csv and
meta.toml for each GPU below, deterministically (same input, same bytes).
"""
import argparse
import os
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
BACKENDS = ["vllm", "sglang", "trtllm"]
M_GRID = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 512, 768, 1024, 1536, 2048,
          3072, 4096, 8192, 16384, 32768]
HEAD_DIMS = [64, 128, 256]


def vkey(v):
    out = []
    for part in v.replace("rc", ".").replace("post", ".").split("."):
        out.append(int(part) if part.isdigit() else -1)
    return out


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
        # it attends isl + step cached keys.
        d["kv_len"] = d["isl"] + d["step"]
    else:
        d = d[d.step == 0]
    keys = ["num_heads", "num_key_value_heads", "head_dim", "batch_size", lencol]
    d = d.groupby(keys, as_index=False)["latency"].median()
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
    return res, dropped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="unpacked aiconfigurator_core package directory")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
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
            d, dropped = attn_table(df, lencol, kern)
            with open(os.path.join(odir, out_name), "w") as f:
                f.write(f"batch,{lencol},num_heads,num_kv_heads,head_dim,latency_us\n")
                for r in d.itertuples():
                    f.write(f"{r.batch_size},{getattr(r, lencol)},{r.num_heads},{r.num_key_value_heads},{r.head_dim},{fmt(r.latency * 1000.0)}\n")
            meta += ["", "[[table]]", f'file = "{out_name}"', f'backend = "{b}"', f'backend_version = "{v}"',
                     f'kernel_source = "{kern}"', f'kernel_sources_available = {srcs}',
                     f'source = "{os.path.relpath(path, a.src)}"', f'collection_status = "{status(path)}"',
                     'kv_cache_dtype = "bfloat16"', "window_size = 0", f"rows = {len(d)}",
                     f"dropped_shapes = {dropped}"]
            if lencol == "isl":
                one = d[(d.batch_size == 1) & (d.isl == 8192) & (d.num_heads == 32) & (d.num_key_value_heads == 8) & (d.head_dim == 128)]
                if len(one):
                    fl = 4 * 32 * 128 * 8192 * 8193 / 2
                    tf = fl / (one.latency.iloc[0] * 1e-3) / 1e12
                    print(f"{gpu}: prefill attention 8192 tokens, 32/8 heads, hd 128: {tf:.0f} TFLOP/s = {100 * tf / PEAK_TFLOPS[gpu]:.0f} % of peak ({kern})")
        with open(os.path.join(odir, "meta.toml"), "w") as f:
            f.write("# Provenance of the tables in this folder (written by ../extract.py).\n" + "\n".join(meta) + "\n")


if __name__ == "__main__":
    main()
