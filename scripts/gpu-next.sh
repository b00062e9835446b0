#!/usr/bin/env bash
# The next lent-GPU run (written 2026-11-27 without a GPU), under 9 minutes: kd check on CUDA (the first run there of
# attention v4, its shared memory past 48 KB, GEMM v12 and v13, reduce v3 and GroupNorm v5); every attention version,
# SGEMM 4096, Winograd's batched GEMMs, the Conv1x1 / Linear GEMM cases, the bias-gradient reductions and GroupNorm,
# beside PyTorch; the fmnist steps at the defaults, with attention v4 forced (KD_KERNELS=attention=v4), the training
# step with reduce v3 alone (the bias gradients: about 15 ms of a profiled step), and the steps with attention v4,
# GroupNorm v5 and reduce v3, beside PyTorch's; the corrected per-op profile of the fmnist training step; the adm64
# steps at the defaults, and PyTorch's beside them.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 530:  bash scripts/gpu-next.sh "$OUT"
set -u
out=${1:?usage: gpu-next.sh OUTDIR}
R=/tmp/kd-next; tarball=next-results.tgz
. scripts/gpu-common.sh
K="bash .device/run KernelDiffusion.Cli"
bash scripts/fixture-data.sh /tmp/fx
check_cuda 45
timeout 55 $K bench --device cuda --no-steps --kernels attention. sgemm. gemm.batched gemm.conv1x1 gemm.linear sum. group_norm \
  --budget-ms 60 --out "$R/bench-kernels" > "$R/bench-kernels.log" 2>&1
stamp "attention and GEMM cases done"
timeout 40 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 \
  --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
stamp "fmnist steps at the defaults done"
KD_KERNELS=attention=v4 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels fmnist \
  --budget-ms 100 --out "$R/bench-steps-v4" > "$R/bench-steps-v4.log" 2>&1
stamp "fmnist steps with attention v4 done"
KD_KERNELS=reduce=v3 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train \
  --budget-ms 100 --out "$R/bench-steps-reduce3" > "$R/bench-steps-reduce3.log" 2>&1
stamp "fmnist training step with reduce v3 done"
KD_KERNELS=attention=v4,groupnorm=v5,reduce=v3 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels fmnist \
  --budget-ms 100 --out "$R/bench-steps-new" > "$R/bench-steps-new.log" 2>&1
stamp "fmnist steps with attention v4, GroupNorm v5 and reduce v3 done"
timeout 70 python3 bench/torch_reference.py --device cuda --only attention.,sgemm.,gemm.batched,gemm.conv1x1,gemm.linear,sum.,group_norm,fmnist_unet.,fmnist_classifier. --out "$R/torch.json" \
  > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels/bench.json"; stamp "torch done"
rm -rf /tmp/tr; timeout 45 $K train --config configs/fmnist_unet.json --data idx:/tmp/fx --steps 6 \
  --batch 256 --profile --out /tmp/tr --device cuda > "$R/train-profile.log" 2>&1
stamp "training profile done"
# adm64 (attention at 32x32, 16x16 and 8x8: T = 1024, 256, 64) at the defaults, then PyTorch's adm64 steps in the same
# call (they ran past 50 s before: 90 here).
timeout 45 $K bench --device cuda --default-only --no-kernels --kernels adm64 --budget-ms 100 --out "$R/bench-adm64" \
  > "$R/bench-adm64.log" 2>&1
stamp "adm64 steps at the defaults done"
timeout 90 python3 bench/torch_reference.py --device cuda --only adm64 --out "$R/torch-adm64.json" > "$R/torch-adm64.log" 2>&1
stamp "torch adm64 done"
cat "$R/timeline.txt"; grep -E "^\| (attention|gemm|sum|group_norm|fmnist)" "$R/ratios.md" 2>/dev/null | head -30
grep -h "default:" "$R"/bench-steps*.log "$R"/bench-adm64*.log; grep -A30 "time and launches" "$R/train-profile.log"
