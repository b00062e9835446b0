#!/usr/bin/env bash
# The fourth H100 run's last call (2026-11-27), under 4 minutes: kd check on CUDA (the first GPU run of attention v6
# and v7 and of conv v16); attention v1, v3, v4, v6 and v7 at the five attention cases and conv v11, v14 and v16 at the
# fmnist 1x1 convolution cases, beside PyTorch; the fmnist steps at the new defaults (attention v6, conv v16 at 1x1),
# and the training step with attention v4 and with v7 as controls; the training profile; adm64's training step beside
# PyTorch's.
# A record of that call: attention v5 was removed after it (bench/NOTES.md, "Attention"), so this no longer runs as
# it did then.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 290:  bash scripts/gpu-v6.sh "$OUT"
set -u
out=${1:?usage: gpu-v6.sh OUTDIR}
R=/tmp/kd-v6; tarball=v6-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_cuda 45
timeout 75 $K bench --device cuda --no-steps --kernels attention.forward_backward conv1x1. --budget-ms 40 \
  --skip-versions attention=v2 conv=v1 conv=v2 conv=v3 conv=v4 conv=v5 conv=v6 conv=v7 conv=v8 conv=v9 conv=v10 \
  conv=v12 conv=v13 conv=v15 --out "$R/bench-kernels" > "$R/bench-kernels.log" 2>&1
stamp "attention and conv1x1 versions done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
stamp "fmnist steps done"
for v in 4 7; do
  KD_KERNELS=attention=v$v timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
    --out "$R/bench-steps-v$v" > "$R/bench-steps-v$v.log" 2>&1
done
stamp "fmnist training step with attention v4 and v7 done"
timeout 60 python3 bench/torch_reference.py --device cuda --only attention.forward_backward,conv1x1.,fmnist_unet.,fmnist_classifier. \
  --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels/bench.json"; stamp "torch done"
train_profile
adm64_train_step
cat "$R/timeline.txt"; grep -E "^\| (conv1x1|attention|fmnist)" "$R/ratios.md" 2>/dev/null | head -40
grep -h "default:" "$R"/bench-steps.log "$R"/bench-steps-v4.log "$R"/bench-steps-v7.log "$R"/bench-adm64.log; tail -2 "$R/torch-adm64.log"
grep -A14 "time and launches" "$R/train-profile.log"; grep -A12 "per op and shapes" "$R/train-profile.log"
