#!/usr/bin/env bash
# Issue 7's measurement on the lent GPU machine, about 9 minutes: kd check on CUDA, then kd bench (every kernel version
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
# and conv v1 at 6-30x v2 (bench/results/h100-2026-11-26); gemm v9 is written for the CPU. Conv v12 and v13 (Winograd)
# are timed below, with their GEMMs tuned.
timeout 240 bash .device/run KernelDiffusion.Cli bench --device cuda --budget-ms 100 --skip-versions gemm=v1 gemm=v3 gemm=v9 conv=v1 conv=v3 conv=v12 conv=v13 \
  --out "$R/bench" > "$R/bench.log" 2>&1
stamp "kd bench done"
# --both: the fp32 cases, then GEMM, conv, attention and the steps again with TF32 (the tensor-core versions' yardstick).
timeout 150 python3 bench/torch_reference.py --device cuda --both --out "$R/torch.json" > "$R/torch.log" 2>&1
stamp "torch done"
python3 bench/join.py "$R/bench/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
python3 bench/fastest.py "$R/bench/bench.json" "$R/check/check.json" --out "$R/fastest.md" > "$R/fastest.log" 2>&1
stamp "joined; fastest passing versions in fastest.md"
# Per-shape tuning on whole models (KD_KERNELS=auto): the fmnist steps with each conv pass and GEMM shape at the fastest
# fp32 version that matches the default's output; bench.md lists every shape's trials. Tuning runs in the warm-up step.
KD_KERNELS=auto timeout 120 bash .device/run KernelDiffusion.Cli bench --device cuda --no-kernels --kernels fmnist \
  --budget-ms 100 --out "$R/bench-auto" > "$R/bench-auto.log" 2>&1
stamp "tuned fmnist steps done"
# Conv v12 and v13 (Winograd) against the default with their batched GEMMs tuned per shape (the main kd bench ran them on GEMM's
# default, v2).
KD_KERNELS=gemm=auto timeout 75 bash .device/run KernelDiffusion.Cli bench --device cuda --no-steps --kernels conv3x3 --budget-ms 50 \
  --skip-versions conv=v1 conv=v3 conv=v4 conv=v5 conv=v6 conv=v7 conv=v8 conv=v9 conv=v10 conv=v11 conv=v14 conv=v15 --out "$R/bench-winograd" > "$R/bench-winograd.log" 2>&1
stamp "Winograd with tuned GEMMs done"
# The tensor-core path on whole models: the fmnist steps with tf32 GEMM and conv (against torch's @tf32 steps), and how
# far a tf32 forward lands from the fp32 one (kd compare of two traces of the same inputs).
KD_KERNELS=gemm=v5,conv=v7 timeout 60 bash .device/run KernelDiffusion.Cli bench --device cuda --no-kernels --kernels fmnist \
  --budget-ms 100 --out "$R/bench-tf32" > "$R/bench-tf32.log" 2>&1
kd init --config configs/fmnist_unet.json --out "$R/m.safetensors" --randomize-zero-layers > "$R/tf32-trace.log" 2>&1
kd trace-inputs --checkpoint "$R/m.safetensors" --batch 8 --seed 1 --out "$R/in.safetensors" >> "$R/tf32-trace.log" 2>&1
kd trace --device cuda --checkpoint "$R/m.safetensors" --input "$R/in.safetensors" --output "$R/fp32.safetensors" >> "$R/tf32-trace.log" 2>&1
KD_KERNELS=gemm=v5,conv=v7 timeout 30 bash .device/run KernelDiffusion.Cli trace --device cuda --checkpoint "$R/m.safetensors" \
  --input "$R/in.safetensors" --output "$R/tf32.safetensors" >> "$R/tf32-trace.log" 2>&1
kd compare "$R/fp32.safetensors" "$R/tf32.safetensors" --tolerance 1e-2 > "$R/tf32-compare.log" 2>&1
rm -f "$R"/*.safetensors
stamp "tf32 steps and trace comparison done"
cat "$R/timeline.txt"; cat "$R/ratios.md" 2>/dev/null | head -60; cat "$R/fastest.md" 2>/dev/null; tail -5 "$R/tf32-compare.log" 2>/dev/null
grep "v1[23]" "$R/bench-winograd/bench.md" 2>/dev/null; grep "fmnist" "$R/bench-auto/bench.md" 2>/dev/null | head -4; grep -c "^- " "$R/bench-auto/bench.md" 2>/dev/null
