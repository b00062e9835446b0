#!/usr/bin/env bash
# The second call of 2026-11-27's H200 session, at the defaults its first call chose (attention v8 wherever it runs,
# conv v17 at 1x1 convolutions), under 7 minutes:
# - kd check on CUDA (attention v10's first GPU run: v8 with its own dQ kernel in place of the batched GEMM);
# - attention v6, v8 and v10 at every attention case, beside SDPA;
# - the fmnist training step and adm64's with attention=v10;
# - every kernel case and step at the defaults beside PyTorch fp32 in the same call: the targets are set on the
#   H200, and this is the first whole table on one;
# - conv3x3 forward + backward with Winograd's GEMMs on the tf32 GEMMs v17 and v18 (v16's were timed in call 1);
# - Nsight Compute on v10's dQ kernel at fmnist's 14x14 (the GEMM it replaces: 348 us in call 1) and on v8's forward and
#   key side at adm64's 32x32 (64-channel heads, where v8 is 1.76x SDPA);
# - the fmnist training profile at the new defaults.
# Predictions: bench/NOTES.md, "Attention", v10.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 480:  bash scripts/gpu-h200.sh "$OUT"
set -u
out=${1:?usage: gpu-h200.sh OUTDIR}
R=/tmp/kd-h200; tarball=h200-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_cuda 60
timeout 45 $K bench --device cuda --no-steps --kernels attention. --budget-ms 40 --skip-versions attention=v1 attention=v2 \
  attention=v3 attention=v4 attention=v7 attention=v9 --out "$R/bench-attention" > "$R/bench-attention.log" 2>&1
stamp "attention v6, v8 and v10 done"
KD_KERNELS=attention=v10 timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
  --out "$R/bench-steps-attention-v10" > "$R/bench-steps-attention-v10.log" 2>&1
KD_KERNELS=attention=v10 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64_unet.train_step --budget-ms 100 \
  --out "$R/bench-adm64-attention-v10" > "$R/bench-adm64-attention-v10.log" 2>&1
stamp "steps with attention=v10 done"
timeout 120 $K bench --device cuda --default-only --budget-ms 60 --out "$R/bench-steps" > "$R/bench-defaults.log" 2>&1
stamp "every case and step at the defaults done"
timeout 170 python3 bench/torch_reference.py --device cuda --out "$R/torch.json" > "$R/torch.log" 2>&1
python3 bench/join.py "$R/bench-steps/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
python3 bench/join.py "$R/bench-attention/bench.json" "$R/torch.json" --out "$R/ratios-attention.md" > "$R/join-attention.log" 2>&1
stamp "torch done"
for g in v17 v18; do
  KD_KERNELS=gemm=$g timeout 30 $K bench --device cuda --default-only --no-steps --kernels conv3x3.forward_backward. --budget-ms 40 \
    --out "$R/bench-conv-gemm-$g" > "$R/bench-conv-gemm-$g.log" 2>&1
done
stamp "conv3x3 forward + backward on the tf32 GEMMs done"
ncu_case attention-v10 'QueryGrad' 1 attention.forward_backward.fmnist_14x14 --skip-versions attention=v1 attention=v2 attention=v3 \
  attention=v4 attention=v6 attention=v7 attention=v9
ncu_case attention-v8-adm64 'WarpRows' 2 attention.forward_backward.adm64_32x32
train_profile
cat "$R/timeline.txt"; grep -h "passed, .* failed" "$R/check.log" | tail -1; grep -E "FAIL" "$R/check.log" | head -10
grep -E "^\| attention" "$R/ratios-attention.md" | cut -d'|' -f2-7
grep -h "default:" "$R"/bench-steps-attention-v10.log "$R"/bench-adm64-attention-v10.log "$R"/bench-defaults.log
grep -E "^\|" "$R/ratios.md" | grep -v attention | cut -d'|' -f2-8 | head -60
grep -hE "^\| conv" "$R"/bench-conv-gemm-v1[78]/bench.md | cut -d'|' -f2-5
grep -A16 "time and launches" "$R/train-profile.log"
for f in attention-v10 attention-v8-adm64; do
  grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Executed Ipc Active|Achieved Occupancy|Registers Per|spends .* cycles" "$R/$f.txt" | head -24
done
