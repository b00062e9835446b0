#!/usr/bin/env bash
# Issue 7's measurement on the lent GPU machine, about 6 minutes: kd check on CUDA, then kd bench (every kernel version
# and the whole-model steps) and bench/torch_reference.py on the same card in the same run, joined into bench ratios.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"]:  bash scripts/gpu-bench.sh "$OUT"     ($OUT gets bench-results.tgz)
set -u
out=${1:?usage: gpu-bench.sh OUTDIR}
R=/tmp/kd-bench; mkdir -p "$R" "$out"
begin=$(date +%s); stamp() { echo "$(( $(date +%s) - begin )) s: $*" | tee -a "$R/timeline.txt"; tar czf "$out/bench-results.tgz" -C "$R" .; }
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
kd info > "$R/info.txt" 2>&1
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv >> "$R/info.txt" 2>&1
timeout 60 bash .device/run KernelDiffusion.Cli check --device cuda --out "$R/check" > "$R/check.log" 2>&1
stamp "check: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check.log" | tail -1)"
# The CPU-minded versions are skipped: the last run measured gemm v3 at 5.3 s and conv v3 at 0.4-1 s per run, gemm v1
# and conv v1 at 6-30x v2 (bench/results/h100-2026-11-26).
timeout 240 bash .device/run KernelDiffusion.Cli bench --device cuda --budget-ms 100 --skip-versions gemm=v1 gemm=v3 conv=v1 conv=v3 \
  --out "$R/bench" > "$R/bench.log" 2>&1
stamp "kd bench done"
# --both: the fp32 cases, then GEMM, conv, attention and the steps again with TF32 (the tensor-core versions' yardstick).
timeout 150 python3 bench/torch_reference.py --device cuda --both --out "$R/torch.json" > "$R/torch.log" 2>&1
stamp "torch done"
python3 bench/join.py "$R/bench/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
stamp "joined"
cat "$R/timeline.txt"; cat "$R/ratios.md" 2>/dev/null | head -60
