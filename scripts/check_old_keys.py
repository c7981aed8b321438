#!/usr/bin/env python3
"""Compares a worktree's shipped-experiment results with a baseline, key by key.

Usage: scripts/check_old_keys.py BASELINE_DIR WORKTREE

Runs every experiments/*.toml with WORKTREE/target/release/infersim and checks, for
summary.json and summary.csv, that every key (column) the baseline has is present with
the byte-identical value (JSON: the serialised value text; CSV: the cell text), row by
row and in the same order of rows. Keys the baseline lacks are listed as new, not
compared. Exit status 0 when every old key matches.
"""
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def compare(name, old_rows, new_rows, what):
    ok = True
    if len(old_rows) != len(new_rows):
        print(f"{name}/{what}: {len(old_rows)} rows before, {len(new_rows)} now")
        return False, set()
    new_keys = set()
    for i, (a, b) in enumerate(zip(old_rows, new_rows)):
        new_keys |= set(b) - set(a)
        for k, v in a.items():
            if k not in b:
                print(f"{name}/{what}: row {i} lost key {k}")
                ok = False
            elif v != b[k]:
                print(f"{name}/{what}: row {i} key {k}: {v!r} -> {b[k]!r}")
                ok = False
    return ok, new_keys


def json_rows(path):
    # Keep each value's serialised text, so that 1.0 and 1 differ as bytes would.
    rows = json.loads(path.read_text(), object_pairs_hook=lambda kv: kv)
    return [{k: json.dumps(v) for k, v in row} for row in rows]


def csv_rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def main():
    base, wt = Path(sys.argv[1]), Path(sys.argv[2])
    binary = wt / "target/release/infersim"
    rc = 0
    with tempfile.TemporaryDirectory() as tmp:
        for exp in sorted((wt / "experiments").glob("*.toml")):
            name = exp.stem
            out = Path(tmp) / name
            r = subprocess.run([str(binary), "run", str(exp), "--out", str(out), "--quiet"],
                               cwd=wt, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{name}: run failed: {r.stderr.strip()}")
                rc = 1
                continue
            for what, read in (("summary.json", json_rows), ("summary.csv", csv_rows)):
                ok, new = compare(name, read(base / name / what), read(out / what), what)
                print(f"{name}/{what}: old keys {'identical' if ok else 'DIFFER'}; new keys: "
                      f"{', '.join(sorted(new)) or 'none'}")
                rc |= 0 if ok else 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
