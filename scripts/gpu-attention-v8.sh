#!/usr/bin/env bash
# Attention v8 (warp rows; written 2026-11-27 in a session without a GPU), its first GPU run, under 4 minutes: kd check on
# CUDA for the attention cases (v8 must pass there before it is timed); every attention case (forward and forward +
# backward, fmnist's and adm64's shapes) at v1, v4, v6, v7, v8 and v9 (v8's forward, v6's backward) beside PyTorch's
# SDPA; the fmnist steps at the defaults and with attention=v8, the training step with attention=v9; adm64's training
# step with attention=v8 (gpu-next.sh times it at the defaults and PyTorch's); Nsight Compute on v8's three kernels and
# the dQ GEMM at fmnist's 14x14. Predictions: bench/NOTES.md, "Attention", v8.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 300:  bash scripts/gpu-attention-v8.sh "$OUT"
set -u
out=${1:?usage: gpu-attention-v8.sh OUTDIR}
R=/tmp/kd-attention-v8; tarball=attention-v8-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_or_stop 60 attention
timeout 70 $K bench --device cuda --no-steps --kernels attention. --budget-ms 40 --skip-versions attention=v2 attention=v3 \
  --out "$R/bench-kernels" > "$R/bench-kernels.log" 2>&1
stamp "attention versions done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
KD_KERNELS=attention=v8 timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 \
  --out "$R/bench-steps-attention-v8" > "$R/bench-steps-attention-v8.log" 2>&1
KD_KERNELS=attention=v9 timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
  --out "$R/bench-steps-attention-v9" > "$R/bench-steps-attention-v9.log" 2>&1
stamp "fmnist steps done"
timeout 50 python3 bench/torch_reference.py --device cuda --only attention.,fmnist_unet.,fmnist_classifier. \
  --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels/bench.json"; stamp "torch done"
ncu_case attention-v8 'WarpRows|StreamDelta|V1[45]Kernel' 4 attention.forward_backward.fmnist_14x14 --skip-versions \
  attention=v1 attention=v2 attention=v3 attention=v4 attention=v6 attention=v7 attention=v9
KD_KERNELS=attention=v8 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64_unet.train_step \
  --budget-ms 100 --out "$R/bench-adm64-attention-v8" > "$R/bench-adm64-attention-v8.log" 2>&1
stamp "adm64 step with attention=v8 done"
cat "$R/timeline.txt"; grep -E "^\| (attention|fmnist)" "$R/ratios.md" 2>/dev/null | head -40
grep -h "default:" "$R"/bench-steps*.log "$R"/bench-adm64*.log
grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Executed Ipc Active|Achieved Occupancy|Registers Per|spends .* cycles" \
  "$R/attention-v8.txt" | head -40
