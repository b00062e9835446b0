#!/usr/bin/env bash
# After the GPU defaults change (the Choose functions): the defaults alone on the lent GPU machine, under 8 minutes:
# kd check on CUDA, whole-model gradients against a float64 replay, the whole steps and the conv cases at the default
# versions beside PyTorch in the same run, and the fmnist training step tuned per shape (KD_KERNELS=auto) for comparison.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 480:  bash scripts/gpu-defaults.sh "$OUT"
set -u
out=${1:?usage: gpu-defaults.sh OUTDIR}
R=/tmp/kd-defaults; tarball=defaults-results.tgz
. scripts/gpu-common.sh
check_cuda 60
timeout 45 bash .device/run KernelDiffusion.Cli check --device cuda --filter none --model configs/fmnist14_unet.json \
  --model configs/fmnist14_classifier.json --out "$R/check-models" > "$R/check-models.log" 2>&1
stamp "whole-model check: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check-models.log" | tail -1)"
timeout 120 bash .device/run KernelDiffusion.Cli bench --device cuda --default-only --no-kernels --budget-ms 100 --out "$R/bench-steps" \
  > "$R/bench-steps.log" 2>&1
stamp "steps at the defaults done"
timeout 110 python3 bench/torch_reference.py --device cuda --both --only step,guidance,conv3x3 --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-conv/bench.json"; stamp "torch done"
timeout 50 bash .device/run KernelDiffusion.Cli bench --device cuda --default-only --no-steps --kernels conv3x3 --budget-ms 60 \
  --out "$R/bench-conv" > "$R/bench-conv.log" 2>&1
join_ratios "$R/bench-conv/bench.json"; stamp "conv cases at the defaults done"
# Where a sampling step's time goes at the defaults: kd sample's per-op table (shipped CFG model, batch 40, 20 steps).
timeout 35 bash .device/run KernelDiffusion.Cli sample --device cuda --steps 20 --out "$R/sample.png" > "$R/sample.log" 2>&1
stamp "kd sample profiled"
KD_KERNELS=auto timeout 50 bash .device/run KernelDiffusion.Cli bench --device cuda --no-kernels --kernels fmnist_unet.train_step \
  --budget-ms 100 --out "$R/bench-auto" > "$R/bench-auto.log" 2>&1
stamp "tuned fmnist training step done"
cat "$R/timeline.txt"; grep -E "^\| (fmnist|adm64|conv3x3)" "$R/ratios.md" 2>/dev/null | head -30; grep "fmnist" "$R/bench-auto/bench.md" 2>/dev/null | head -3; tail -25 "$R/sample.log"
