#!/usr/bin/env bash
# The fourth H100 run's third call (2026-11-27): the steps at the defaults that followed its second (attention v4 again
# where v5 had been made the default; conv v14 at the 1x1 convolutions; weight gradients split up to 512 ways), beside
# PyTorch in the same call, under 3 minutes: the fmnist steps, adm64's training step, and the training profile.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 240:  bash scripts/gpu-final.sh "$OUT"
set -u
out=${1:?usage: gpu-final.sh OUTDIR}
R=/tmp/kd-final; tarball=final-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
stamp "fmnist steps done"
timeout 50 python3 bench/torch_reference.py --device cuda --only fmnist_unet.,fmnist_classifier. --out "$R/torch.json" > "$R/torch.log" 2>&1
python3 bench/join.py "$R/bench-steps/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1; stamp "torch done"
adm64_train_step
train_profile
cat "$R/timeline.txt"; grep -E "^\| fmnist" "$R/ratios.md"; grep -h "default:" "$R"/bench-steps.log "$R"/bench-adm64.log
tail -2 "$R/torch-adm64.log"; grep -A12 "time and launches" "$R/train-profile.log"; grep -A12 "per op and shapes" "$R/train-profile.log"
