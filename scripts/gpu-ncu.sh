#!/usr/bin/env bash
# Where fmnist's convolutions lose to cuDNN, and the attention rule at adm64's shapes, under 5 minutes on the lent GPU:
# attention v1 and v4 at adm64's three resolutions beside PyTorch; adm64's steps at the defaults and with attention v4
# everywhere; then Nsight Compute (`ncu --set full`) on one run of each Winograd pass at fmnist's 64 channels of 28x28
# (its transforms and GEMM v13) and on SGEMM 4096 (GEMM v12), as text (ncu --page details).
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 330:  bash scripts/gpu-ncu.sh "$OUT"
set -u
out=${1:?usage: gpu-ncu.sh OUTDIR}
R=/tmp/kd-ncu; tarball=ncu-results.tgz
. scripts/gpu-common.sh
timeout 40 $K bench --device cuda --no-steps --kernels attention.forward_backward.adm64 --skip-versions attention=v2 attention=v3 \
  --budget-ms 60 --out "$R/bench-attention" > "$R/bench-attention.log" 2>&1
timeout 40 python3 bench/torch_reference.py --device cuda --only attention.forward_backward.adm64 --out "$R/torch.json" > "$R/torch.log" 2>&1
python3 bench/join.py "$R/bench-attention/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
stamp "attention at adm64's shapes done"
timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64 --budget-ms 100 --out "$R/bench-adm64" > "$R/bench-adm64.log" 2>&1
KD_KERNELS=attention=v4 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64 --budget-ms 100 \
  --out "$R/bench-adm64-v4" > "$R/bench-adm64-v4.log" 2>&1
stamp "adm64 steps done"
ncu_case conv-forward 'V13Kernel|F43Kernel' 4 conv3x3.forward.fmnist_N256_C64_28x28
ncu_case conv-input-grad 'V13Kernel|F43Kernel' 4 conv3x3.input_grad.fmnist_N256_C64_28x28
ncu_case conv-weight-grad 'V13Kernel|F43Kernel' 4 conv3x3.weight_grad.fmnist_N256_C64_28x28
ncu_case sgemm 'V12Kernel' 1 sgemm.4096
cat "$R/timeline.txt"; grep -E "^\| attention" "$R/ratios.md"; grep -h "default:" "$R"/bench-adm64*.log
for f in "$R"/conv-*.txt "$R"/sgemm.txt; do echo "== $f"; grep -E "^  [A-Za-z_]+.*\(|Duration|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy" "$f" | head -40; done
