#!/usr/bin/env bash
# The next lent-GPU run (written 2026-11-27 after the first H200 run), under 5 minutes:
# - kd check on CUDA (GEMM v19's first GPU run: v17 with 16-byte cp.async copies);
# - SGEMM 4096 at v14 and the tf32 v17 and v19 beside PyTorch fp32 and tf32, Nsight Compute on v19;
# - the convolutions on the tf32 GEMMs v17 and v19 (Winograd v13's forward and forward + backward cases, the 1x1
#   forwards) beside PyTorch tf32 in the same call;
# - the fmnist training step on gemm=v17 and gemm=v19 beside PyTorch tf32's;
# - the GroupNorm forward-only cases at the defaults (their rows were lost in the H200 run's call 2), the sum cases at
#   every reduce version (v4: v1's sums as strided runs, without its digit carries), and the fmnist steps at the
#   defaults, beside PyTorch fp32;
# - the training profile.
# Predictions: bench/NOTES.md, "Tensor cores", GEMM v19.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 420:  bash scripts/gpu-next.sh "$OUT"
set -u
out=${1:?usage: gpu-next.sh OUTDIR}
R=/tmp/kd-next; tarball=next-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_cuda 60
only_gemm() { skip_all_but gemm "$1" "$(seq 1 19)"; }
timeout 40 $K bench --device cuda --no-steps --kernels sgemm.4096 --budget-ms 60 --skip-versions $(only_gemm "14 17 19") \
  --out "$R/bench-sgemm" > "$R/bench-sgemm.log" 2>&1
for g in v17 v19; do
  KD_KERNELS=gemm=$g timeout 40 $K bench --device cuda --default-only --no-steps --kernels conv3x3.forward. conv3x3.forward_backward. \
    conv1x1.forward. --budget-ms 40 --out "$R/bench-conv-gemm-$g" > "$R/bench-conv-gemm-$g.log" 2>&1
  KD_KERNELS=gemm=$g timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
    --out "$R/bench-steps-gemm-$g" > "$R/bench-steps-gemm-$g.log" 2>&1
done
stamp "tf32 GEMMs, convolutions and steps done"
timeout 80 python3 bench/torch_reference.py --device cuda --both --only sgemm.4096,conv3x3.forward.,conv3x3.forward_backward.,conv1x1.forward.,fmnist_unet.train_step \
  --out "$R/torch-tf32.json" > "$R/torch-tf32.log" 2>&1
python3 bench/join.py "$R/bench-sgemm/bench.json" "$R/torch-tf32.json" --out "$R/ratios-sgemm.md" > "$R/join-sgemm.log" 2>&1
stamp "torch tf32 done"
timeout 30 $K bench --device cuda --default-only --no-steps --kernels group_norm --budget-ms 60 --out "$R/bench-gn" > "$R/bench-gn.log" 2>&1
timeout 30 $K bench --device cuda --no-steps --kernels sum. --budget-ms 40 --out "$R/bench-sum" > "$R/bench-sum.log" 2>&1
python3 bench/merge.py "$R/bench-kernels.json" "$R/bench-gn/bench.json" "$R/bench-sum/bench.json" > /dev/null 2>&1
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
timeout 60 python3 bench/torch_reference.py --device cuda --only group_norm,sum.,fmnist_unet.,fmnist_classifier. --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels.json"; stamp "GroupNorm, sums and fmnist steps beside torch done"
ncu_case gemm-v19 'V19Kernel' 1 sgemm.4096 --skip-versions $(only_gemm "19")
train_profile
cat "$R/timeline.txt"; grep -h "passed, .* failed" "$R/check.log" | tail -1; grep -E "FAIL" "$R/check.log" | head -10
cat "$R/ratios-sgemm.md" 2>/dev/null | grep -E "^\| sgemm"
grep -hE "^\| conv" "$R"/bench-conv-gemm-v1[79]/bench.md | cut -d'|' -f2-5
python3 -c "import json; [print(r['name'], r['ms']) for r in json.load(open('$R/torch-tf32.json'))['results']]" 2>/dev/null
grep -h "default:" "$R"/bench-steps*.log; grep -E "^\| (group_norm|sum|fmnist)" "$R/ratios.md" | cut -d'|' -f2-7
grep -A14 "time and launches" "$R/train-profile.log"
grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Executed Ipc Active|Achieved Occupancy|Registers Per|spends .* cycles" "$R/gemm-v19.txt" | head -12
