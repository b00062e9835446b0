#!/usr/bin/env bash
# The next lent-GPU run (written 2026-11-27 after the third H100 run), under 8 minutes: kd check on CUDA (the first GPU
# run of Winograd's output transforms storing whole tile rows); the conv3x3 cases at the defaults beside PyTorch (the
# input gradient at fmnist's 28x28 is the conv case still above 1.5); Nsight Compute on attention v4 forward + backward
# at fmnist's 14x14 (2.9 ms against a predicted 0.9-1.4: why) and on the Winograd input gradient there (the output
# transform's stores); the training profile at the defaults; the fmnist steps beside PyTorch; the adm64 steps beside
# PyTorch's (90 s).
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 480:  bash scripts/gpu-next.sh "$OUT"
set -u
out=${1:?usage: gpu-next.sh OUTDIR}
R=/tmp/kd-next; tarball=next-results.tgz
. scripts/gpu-common.sh
K="bash .device/run KernelDiffusion.Cli"
bash scripts/fixture-data.sh /tmp/fx
check_cuda 45
timeout 30 $K bench --device cuda --default-only --no-steps --kernels conv3x3 attention.forward_backward.fmnist --budget-ms 60 \
  --out "$R/bench-kernels" > "$R/bench-kernels.log" 2>&1
stamp "conv and attention cases done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
stamp "fmnist steps done"
timeout 60 python3 bench/torch_reference.py --device cuda --only conv3x3,attention.forward_backward.fmnist,fmnist_unet.,fmnist_classifier. \
  --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels/bench.json"; stamp "torch done"
ncu_case attention 'Tiled|StreamDelta' 4 attention.forward_backward.fmnist_14x14
ncu_case conv-input-grad 'F43Kernel|V15Kernel' 4 conv3x3.input_grad.fmnist_N256_C64_28x28
rm -rf /tmp/tr; timeout 45 $K train --config configs/fmnist_unet.json --data idx:/tmp/fx --steps 6 \
  --batch 256 --profile --out /tmp/tr --device cuda > "$R/train-profile.log" 2>&1
stamp "training profile done"
timeout 45 $K bench --device cuda --default-only --no-kernels --kernels adm64 --budget-ms 100 --out "$R/bench-adm64" \
  > "$R/bench-adm64.log" 2>&1
stamp "adm64 steps done"
timeout 90 python3 bench/torch_reference.py --device cuda --only adm64 --out "$R/torch-adm64.json" > "$R/torch-adm64.log" 2>&1
stamp "torch adm64 done"
cat "$R/timeline.txt"; grep -E "^\| (conv3x3|attention|fmnist)" "$R/ratios.md" 2>/dev/null | head -20
grep -h "default:" "$R"/bench-steps.log "$R"/bench-adm64.log; tail -4 "$R/torch-adm64.log"
grep -A30 "time and launches" "$R/train-profile.log"; grep -A32 "per op and shapes" "$R/train-profile.log"
for f in "$R"/attention.txt "$R"/conv-input-grad.txt; do echo "== $f"
  grep -E "^  [A-Za-z_]+.*\(|Duration|Memory Throughput|Achieved Occupancy|Registers Per|way bank|bytes transmitted" "$f" | head -40; done
