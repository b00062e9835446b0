#!/usr/bin/env bash
# GEMM v14 and v15 (v12 and v13 with padded shared rows and 16-byte stores of C) as the GPU defaults, under 5 minutes:
# kd check on CUDA; GEMM v10-v15 at SGEMM 4096, Winograd's, the Conv1x1 and the Linear cases; the conv3x3 cases and the
# fmnist steps at the defaults, beside PyTorch; Nsight Compute on the Winograd forward and weight gradient at fmnist's
# 64 channels of 28x28 (bank conflicts and store efficiency of GEMM v15 against gpu-ncu.sh's v13).
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 280:  bash scripts/gpu-padded.sh "$OUT"
set -u
out=${1:?usage: gpu-padded.sh OUTDIR}
R=/tmp/kd-padded; tarball=padded-results.tgz
. scripts/gpu-common.sh
check_cuda 45
timeout 45 $K bench --device cuda --no-steps --kernels sgemm. gemm.batched gemm.conv1x1 gemm.linear --budget-ms 60 --out "$R/bench-gemm" \
  --skip-versions gemm=v1 gemm=v2 gemm=v3 gemm=v4 gemm=v5 gemm=v6 gemm=v7 gemm=v8 gemm=v9 > "$R/bench-gemm.log" 2>&1
stamp "GEMM cases done"
timeout 30 $K bench --device cuda --default-only --no-steps --kernels conv3x3 --budget-ms 60 --out "$R/bench-conv" > "$R/bench-conv.log" 2>&1
stamp "conv cases done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
stamp "fmnist steps done"
timeout 60 python3 bench/torch_reference.py --device cuda --only sgemm.,gemm.,conv3x3,fmnist_unet.,fmnist_classifier. --out "$R/torch.json" \
  > "$R/torch.log" 2>&1
python3 bench/merge.py "$R/bench-kernels.json" "$R/bench-gemm/bench.json" "$R/bench-conv/bench.json" > /dev/null 2>&1
join_ratios "$R/bench-kernels.json"; stamp "torch done"
ncu_case conv-forward 'V15Kernel' 1 conv3x3.forward.fmnist_N256_C64_28x28
ncu_case conv-weight-grad 'V15Kernel' 1 conv3x3.weight_grad.fmnist_N256_C64_28x28
cat "$R/timeline.txt"; grep -E "^\| (sgemm|gemm|conv3x3|fmnist)" "$R/ratios.md" 2>/dev/null | grep -E "v1[0-5]|default|winograd" | head -60
grep -h "default:" "$R"/bench-steps.log
for f in "$R"/conv-*.txt; do echo "== $f"; grep -E "^  [A-Za-z_]+.*\(|Duration|Memory Throughput|way bank|bytes transmitted|excessive" "$f" | head -20; done
