#!/usr/bin/env bash
# The last call of 2026-11-27b's H200 session (after gpu-attention-v11.sh and gpu-next.sh), under 6 minutes:
# - kd check on CUDA (GEMM v20's first GPU run: v19 reading a row-major A's fragments, and a row-major B's, by
#   ldmatrix; nothing is timed if a check fails);
# - SGEMM 4096 in three layouts (NN, NT: both operands row-major, TN) at v14 and the tf32 v17, v19, v20, beside PyTorch
#   fp32 and tf32; the convolutions and the fmnist training step on GEMM v19 and v20;
# - Nsight Compute on v19 and v20 at NN and NT, with the per-instruction counters (where v19's 40% excess of shared
#   wavefronts and 42% of L2 sectors come from);
# - every kernel case and step at the defaults beside PyTorch fp32 (attention v11 at 64-channel heads and reduce v4 are
#   new defaults since the session's first call);
# - the training profile (its new "longest" column: is the 7x7 reshape row one long wait or spread over its calls?);
# - adm64's training step beside PyTorch's, given 100 s (50 gave no time in call 1).
# Predictions: bench/NOTES.md, "Tensor cores", GEMM v20.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 420:  bash scripts/gpu-v20.sh "$OUT"
set -u
out=${1:?usage: gpu-v20.sh OUTDIR}
R=/tmp/kd-v20; tarball=v20-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
timeout 60 $K check --device cuda --out "$R/check" > "$R/check.log" 2>&1
stamp "check: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check.log" | tail -1)"
if ! grep -q " 0 failed" "$R/check.log"; then grep -E "FAIL" "$R/check.log" | head -20; stamp "a check failed: nothing is timed"; exit 1; fi
only_gemm() { skip_all_but gemm "$1" "$(seq 1 20)"; }
timeout 60 $K bench --device cuda --no-steps --kernels sgemm.4096 --budget-ms 60 --skip-versions $(only_gemm "14 17 19 20") \
  --out "$R/bench-sgemm" > "$R/bench-sgemm.log" 2>&1
for g in v19 v20; do
  KD_KERNELS=gemm=$g timeout 40 $K bench --device cuda --default-only --no-steps --kernels conv3x3.forward. conv3x3.forward_backward. \
    conv1x1.forward. --budget-ms 40 --out "$R/bench-conv-gemm-$g" > "$R/bench-conv-gemm-$g.log" 2>&1
  KD_KERNELS=gemm=$g timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
    --out "$R/bench-steps-gemm-$g" > "$R/bench-steps-gemm-$g.log" 2>&1
done
stamp "SGEMM layouts, convolutions and steps on v19 and v20 done"
timeout 90 python3 bench/torch_reference.py --device cuda --both --only sgemm.4096,conv3x3.forward.,conv3x3.forward_backward.,conv1x1.forward.,fmnist_unet.train_step \
  --out "$R/torch-tf32.json" > "$R/torch-tf32.log" 2>&1
python3 bench/join.py "$R/bench-sgemm/bench.json" "$R/torch-tf32.json" --out "$R/ratios-sgemm.md" > "$R/join-sgemm.log" 2>&1
stamp "torch tf32 done"
NCU_SOURCE=1 ncu_case gemm-v19-nn 'V19Kernel' 1 sgemm.4096 --skip-versions $(only_gemm "19")
NCU_SOURCE=1 ncu_case gemm-v20-nn 'V20Kernel' 1 sgemm.4096 --skip-versions $(only_gemm "20")
ncu_case gemm-v20-nt 'V20BTKernel' 1 sgemm.4096.nt --skip-versions $(only_gemm "20")
timeout 60 $K bench --device cuda --default-only --budget-ms 60 --out "$R/bench-steps" > "$R/bench-defaults.log" 2>&1
stamp "every case and step at the defaults done"
timeout 120 python3 bench/torch_reference.py --device cuda --out "$R/torch.json" > "$R/torch.log" 2>&1
python3 bench/join.py "$R/bench-steps/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
stamp "torch done"
train_profile
TORCH_ADM64_S=100 adm64_train_step
cat "$R/timeline.txt"; grep -h "passed, .* failed" "$R/check.log" | tail -1
grep -E "^\| sgemm" "$R/ratios-sgemm.md" | cut -d'|' -f2-7
grep -hE "^\| conv" "$R"/bench-conv-gemm-v19/bench.md "$R"/bench-conv-gemm-v20/bench.md | cut -d'|' -f2-5
python3 -c "import json; [print(r['name'], round(r['ms'], 4)) for r in json.load(open('$R/torch-tf32.json'))['results'] if r.get('tf32')]" 2>/dev/null
grep -h "default:" "$R"/bench-steps-gemm-v*.log "$R/bench-defaults.log" "$R/bench-adm64.log" | cut -c1-110; tail -1 "$R/torch-adm64.log"
grep -E "^\|" "$R/ratios.md" | cut -d'|' -f2-7 | head -70
grep -A10 "time and launches" "$R/train-profile.log"; grep "reshape" "$R/train-profile.log" | head -3
for f in gemm-v19-nn gemm-v20-nn gemm-v20-nt; do
  grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Issue Slots Busy|spends .* cycles|excessive" "$R/$f.txt" | cut -c1-120 | head -8
done
head -c 600 "$R/gemm-v19-nn-sass.csv"
