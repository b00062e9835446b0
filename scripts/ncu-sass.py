#!/usr/bin/env python3
"""Summarises Nsight Compute's per-instruction counters (the CSV that `ncu -i REPORT --page source --csv --print-source
sass` writes; scripts/gpu-common.sh's ncu_case writes it as NAME-sass.csv with NCU_SOURCE=1).

For each instruction that has any: the shared-memory wavefronts against the ideal, the L2 sectors against the ideal,
and the warp-stall samples; then the totals by opcode, so a kernel's excess can be traced to the instructions that
cause it. Usage: scripts/ncu-sass.py FILE.csv [--top N] [--kernel I]
A report of several kernels (attention v15's three) has a section each: --kernel I reads the I-th (from 0).
"""
import argparse, csv, sys
from collections import defaultdict

COLUMNS = {
    "exec": "Instructions Executed",
    "wf": "L1 Wavefronts Shared",
    "wf_ideal": "L1 Wavefronts Shared Ideal",
    "sec": "L2 Theoretical Sectors Global",
    "sec_ideal": "L2 Theoretical Sectors Global Ideal",
    "stalls": "Warp Stall Sampling (All Samples)",
}


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def read(path, kernel=0):
    """The kernel's name and the rows of the file's kernel section `kernel`, as (source, {column: value})."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    starts = [i for i, r in enumerate(rows) if r and r[0] == "Address"]
    if not starts:
        sys.exit(f"{path}: no 'Address' header row: not a --page source --csv export")
    if kernel >= len(starts):
        sys.exit(f"{path}: no kernel {kernel}: the file has {len(starts)}")
    names = [r[1] for r in rows[:starts[kernel]] if len(r) > 1 and r[0] == "Kernel Name"]
    header = rows[starts[kernel]]
    missing = [c for c in COLUMNS.values() if c not in header]
    if missing:
        sys.exit(f"{path}: columns missing: {', '.join(missing)}")
    at = {k: header.index(c) for k, c in COLUMNS.items()}
    source = header.index("Source")
    end = starts[kernel + 1] if kernel + 1 < len(starts) else len(rows)
    out = []
    for r in rows[starts[kernel] + 1:end]:
        if len(r) == len(header) and r[0] != "Kernel Name":
            out.append((r[source].strip(), {k: number(r[i]) for k, i in at.items()}))
    return (names[-1] if names else "?"), out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv")
    p.add_argument("--top", type=int, default=12, help="instructions to list, by excess wavefronts, then stalls")
    p.add_argument("--kernel", type=int, default=0, help="which kernel section of the file (0: the first)")
    a = p.parse_args()
    name, rows = read(a.csv, a.kernel)
    total = defaultdict(float)
    by_op = defaultdict(lambda: defaultdict(float))
    for src, v in rows:
        op = src.split()[0] if src else "?"
        if op.startswith("@"):   # a predicate: the opcode follows
            op = src.split()[1] if len(src.split()) > 1 else op
        for k, x in v.items():
            total[k] += x
            by_op[op][k] += x
    print(f"{a.csv}, kernel {a.kernel} ({name}): {len(rows)} instructions")
    print(f"shared wavefronts {total['wf']:.4g} (ideal {total['wf_ideal']:.4g}, excess {total['wf'] - total['wf_ideal']:.4g}); "
          f"L2 sectors {total['sec']:.4g} (ideal {total['sec_ideal']:.4g}); stall samples {total['stalls']:.4g}")
    print(f"\n{'opcode':<22} {'executed':>12} {'wavefronts':>12} {'ideal':>12} {'per instr':>10} {'sectors':>12} {'ideal':>12} {'stalls':>8}")
    for op, v in sorted(by_op.items(), key=lambda kv: -(kv[1]["wf"] + kv[1]["stalls"])):
        if v["wf"] == 0 and v["sec"] == 0 and v["stalls"] < 0.01 * total["stalls"]:
            continue
        per = v["wf"] / v["exec"] if v["exec"] else 0
        print(f"{op:<22} {v['exec']:>12.4g} {v['wf']:>12.4g} {v['wf_ideal']:>12.4g} {per:>10.2f} {v['sec']:>12.4g} {v['sec_ideal']:>12.4g} {v['stalls']:>8.0f}")
    print(f"\nthe {a.top} instructions with the most excess wavefronts, then stall samples:")
    ranked = sorted(rows, key=lambda r: (-(r[1]["wf"] - r[1]["wf_ideal"]), -r[1]["stalls"]))
    for src, v in ranked[:a.top]:
        print(f"  {src[:64]:<64} wavefronts {v['wf']:.4g} / ideal {v['wf_ideal']:.4g}, sectors {v['sec']:.4g} / {v['sec_ideal']:.4g}, stalls {v['stalls']:.0f}")


if __name__ == "__main__":
    main()
