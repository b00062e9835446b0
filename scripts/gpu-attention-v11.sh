#!/usr/bin/env bash
# The first call of the next lent-GPU run (written 2026-11-27, a session without a GPU), under 4 minutes: attention v11
# and v12 (lean warp rows: v8 and v10 in at most 56 KB a group, so four groups fit a multiprocessor at 64-channel heads).
# - kd check on CUDA, the attention cases first (v11's and v12's first GPU run), then the rest;
# - v8, v10, v11 and v12 at every attention case, beside SDPA;
# - adm64's training step at the defaults and with attention=v11, beside PyTorch's;
# - Nsight Compute on v11's forward and key side at adm64's 32x32 (v8's: 3.07 and 7.75 ms, 18% and 12% occupancy), and
#   on v12's dQ kernel at fmnist's 14x14 (v10's: 262 us);
# Predictions: bench/NOTES.md, "Attention", v11.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 300:  bash scripts/gpu-attention-v11.sh "$OUT"
set -u
out=${1:?usage: gpu-attention-v11.sh OUTDIR}
R=/tmp/kd-attention-v11; tarball=attention-v11-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_or_stop 60 attention
only_attention() { skip_all_but attention "$1" "1 2 3 4 6 7 8 9 10 11 12"; }
timeout 60 $K bench --device cuda --no-steps --kernels attention. --budget-ms 40 --skip-versions $(only_attention "8 10 11 12") \
  --out "$R/bench-attention" > "$R/bench-attention.log" 2>&1
stamp "attention v8, v10, v11 and v12 done"
timeout 40 python3 bench/torch_reference.py --device cuda --only attention. --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-attention/bench.json"; stamp "torch attention done"
adm64_train_step
KD_KERNELS=attention=v11 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64_unet.train_step \
  --budget-ms 100 --out "$R/bench-adm64-v11" > "$R/bench-adm64-v11.log" 2>&1
stamp "adm64 step with v11 done"
ncu_case attention-v11 'Lean' 2 attention.forward_backward.adm64_32x32 --skip-versions $(only_attention "11")
ncu_case attention-v12-dq 'LeanQueryGrad' 1 attention.forward_backward.fmnist_14x14 --skip-versions $(only_attention "12")
check_cuda 90
cat "$R/timeline.txt"; grep -h "passed, .* failed" "$R"/check*.log | tail -2; grep -h "FAIL" "$R"/check*.log | head -10
grep -E "^\| attention" "$R/ratios.md" | cut -d'|' -f2-7
grep -h "default:" "$R"/bench-adm64*.log; tail -2 "$R/torch-adm64.log"
grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Executed Ipc Active|Achieved Occupancy|Registers Per|Block Limit Shared|spends .* cycles" \
  "$R/attention-v11.txt" "$R/attention-v12-dq.txt" | head -36
