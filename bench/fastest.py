#!/usr/bin/env python3
"""Which kernel version is fastest per case, among those whose checks passed: the input for choosing defaults.

    python3 bench/fastest.py BENCH.json CHECK.json [--out fastest.md]

BENCH.json is `kd bench --out DIR`'s DIR/bench.json; CHECK.json is `kd check --out DIR`'s DIR/check.json on the same
device. A version is eligible when no failing kd check case of its family names it among its dotted parts
(gemm.v5.nn for GEMM v5, group_norm.silu.v2.backward for GroupNorm v2, ...). For each case the table lists the
default, the fastest eligible fp32 version and the speed-up, says when it is not the default, and lists the fastest
tf32 version apart (those are opt-in). It changes nothing: the defaults are the Choose functions in kernels/, changed by hand, with
bench/NOTES.md saying why.
"""
import argparse, json, re

# kd bench case-name prefix -> kd check kernel-name prefix of that family
FAMILIES = [("sgemm", "gemm"), ("conv3x3", "conv2d"), ("group_norm", "group_norm"), ("silu", "silu"),
            ("attention", "attention"), ("adamw", "adamw"), ("sampling_step", "sampling")]


def family_of(case):
    for bench_prefix, check_prefix in FAMILIES:
        if case.startswith(bench_prefix):
            return check_prefix
    return None


def version_tag(label):
    """'v7.hoistedtf32' -> 'v7'."""
    m = re.match(r"(v\d+)", label or "")
    return m.group(1) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench")
    ap.add_argument("check")
    ap.add_argument("--out", default="fastest.md")
    a = ap.parse_args()
    bench = json.load(open(a.bench))
    check = json.load(open(a.check))
    failed = [r["Kernel"] for r in check["results"] if not r["Passed"]]

    def passed(case, label):
        """False when a failing kd check case is of this family and names this version as one of its dotted parts
        (gemm.v5.nn for sgemm v5.tf32, group_norm.silu.v2.backward for group_norm_silu v2.grouptree)."""
        fam, tag = family_of(case), version_tag(label)
        if fam is None or tag is None:
            return True
        return not any(k.startswith(fam) and tag in k.split(".") for k in failed)

    def tf32(label):
        return "tf32" in (label or "")

    by_case = {}
    for r in bench["results"]:
        if r.get("ms") is None or r.get("error"):
            continue
        by_case.setdefault(r["name"], []).append(r)
    lines = [f"# Fastest passing version per case ({bench.get('device', '?')})", "",
             f"kd check: {check.get('passed', '?')} passed, {check.get('failed', '?')} failed"
             + (f" (failing: {', '.join(sorted(set(failed)))})" if failed else "") + ".", "",
             "Defaults are chosen among the fp32 versions; the tf32 versions (tensor cores) are opt-in (KD_KERNELS) and "
             "listed apart.", "",
             "| case | default | default ms | fastest passing fp32 | its ms | speed-up | change? | fastest passing tf32 | its ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    changes = 0
    for name, rows in by_case.items():
        default = next((r for r in rows if r.get("default")), None)
        ok = [r for r in rows if passed(name, r.get("version"))]
        fp32 = [r for r in ok if not tf32(r.get("version"))]
        t32 = min((r for r in ok if tf32(r.get("version"))), key=lambda r: r["ms"], default=None)
        tcells = f"{t32['version']} | {t32['ms']}" if t32 else "- | -"
        if not fp32:
            lines.append(f"| {name} | {default['version'] if default else '-'} | - | none passed | - | - | - | {tcells} |")
            continue
        best = min(fp32, key=lambda r: r["ms"])
        dms = default["ms"] if default else None
        speed = f"{dms / best['ms']:.2f}x" if dms else "-"
        change = default is None or best["version"] != default["version"]
        changes += change
        lines.append(f"| {name} | {default['version'] if default else '-'} | {dms if dms is not None else '-'} | {best['version']} | "
                     f"{best['ms']} | {speed} | {'**yes**' if change else 'no'} | {tcells} |")
    lines += ["", f"{changes} of {len(by_case)} cases would run faster with another passing fp32 version."]
    md = "\n".join(lines) + "\n"
    open(a.out, "w").write(md)
    print(md)


if __name__ == "__main__":
    main()
