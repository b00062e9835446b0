#!/usr/bin/env bash
# The whole-model steps at the default versions on the lent GPU machine, under 4.5 minutes: every step's time, launches
# and device memory; PyTorch's adm64 steps in the same run; a per-op profile of the fmnist training step at batch 256
# (on the committed 300-image fixture); the same step tuned per shape (KD_KERNELS=auto), whose bench.md lists each
# shape's trials.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 275:  bash scripts/gpu-steps.sh "$OUT"
set -u
O=${1:?usage: gpu-steps.sh OUTDIR}; mkdir -p "$O"
K="bash .device/run KernelDiffusion.Cli"
bash scripts/fixture-data.sh /tmp/fx
timeout 90 $K bench --device cuda --default-only --no-kernels --budget-ms 100 --out /tmp/steps > "$O/steps.log" 2>&1
cp /tmp/steps/bench.json "$O/steps.json"
timeout 50 python3 bench/torch_reference.py --device cuda --only adm64 --out "$O/torch-adm64.json" > "$O/torch.log" 2>&1
rm -rf /tmp/tr; timeout 45 $K train --config configs/fmnist_unet.json --data idx:/tmp/fx --steps 6 --batch 256 --profile --out /tmp/tr \
  --device cuda > "$O/train-profile.log" 2>&1
KD_KERNELS=auto timeout 75 $K bench --device cuda --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 --out /tmp/auto > "$O/auto.log" 2>&1
cp /tmp/auto/bench.md "$O/auto.md" 2>/dev/null
grep -E "default:|error" "$O/steps.log"; grep -A30 "time and launches" "$O/train-profile.log"; grep -E "train_step" "$O/auto.log" | tail -2
