#!/usr/bin/env bash
# The next lent-GPU run (written 2026-11-27 after the fourth H100 run), under 4 minutes: kd check on CUDA (conv v17's
# first GPU run, attention v8's and the tf32 GEMMs'); conv v14, v16 and v17 at the fmnist 1x1 cases beside PyTorch;
# the fmnist steps at the defaults, and the training step with conv=v17 (v17 covers only 1x1 convolutions; the others
# run their defaults); the training profile; adm64's training step beside PyTorch's. The attention versions, v8 among
# them, and their Nsight Compute details moved to gpu-attention-v8.sh, the second call.
# Added in the session after: GEMM v16-v18 (tf32) at 4096
# beside v5 and v14 (and Nsight Compute on v17 and v18), and the convolutions on GEMMs (Winograd v12/v13, 1x1 v16/v17)
# with their GEMMs on v16 (the 3x3 forward cases on v17 and v18 too), beside PyTorch at fp32 and tf32. Predictions:
# bench/NOTES.md, "The next GPU run".
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 540 (about 6.5 minutes):  bash scripts/gpu-next.sh "$OUT"
set -u
out=${1:?usage: gpu-next.sh OUTDIR}
R=/tmp/kd-next; tarball=next-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_cuda 60
timeout 40 $K bench --device cuda --no-steps --kernels sgemm.4096 --budget-ms 60 --skip-versions gemm=v1 gemm=v2 gemm=v3 \
  gemm=v4 gemm=v6 gemm=v7 gemm=v8 gemm=v9 gemm=v10 gemm=v11 gemm=v12 gemm=v13 gemm=v15 --out "$R/bench-sgemm" > "$R/bench-sgemm.log" 2>&1
KD_KERNELS=gemm=v16 timeout 60 $K bench --device cuda --no-steps --kernels conv3x3.forward. conv3x3.forward_backward.fmnist \
  conv1x1.forward. --budget-ms 40 --skip-versions conv=v1 conv=v2 conv=v3 conv=v4 conv=v5 conv=v8 conv=v9 conv=v10 conv=v11 \
  conv=v14 conv=v15 --out "$R/bench-conv-gemm-v16" > "$R/bench-conv-gemm-v16.log" 2>&1
for g in v17 v18; do
  KD_KERNELS=gemm=$g timeout 40 $K bench --device cuda --no-steps --kernels conv3x3.forward. --budget-ms 40 --skip-versions conv=v1 \
    conv=v2 conv=v3 conv=v4 conv=v5 conv=v6 conv=v7 conv=v8 conv=v9 conv=v10 conv=v11 conv=v14 conv=v15 conv=v16 conv=v17 \
    --out "$R/bench-conv-gemm-$g" > "$R/bench-conv-gemm-$g.log" 2>&1
done
stamp "tf32 GEMM and convolutions done"
timeout 60 python3 bench/torch_reference.py --device cuda --both --only sgemm.4096,conv3x3.forward.,conv3x3.forward_backward.fmnist,conv1x1.forward. \
  --out "$R/torch-tf32.json" > "$R/torch-tf32.log" 2>&1
python3 bench/join.py "$R/bench-sgemm/bench.json" "$R/torch-tf32.json" --out "$R/ratios-sgemm.md" > "$R/join-sgemm.log" 2>&1
stamp "torch tf32 done"
timeout 60 $K bench --device cuda --no-steps --kernels conv1x1. --budget-ms 40 \
  --skip-versions conv=v1 conv=v2 conv=v3 conv=v4 conv=v5 conv=v6 conv=v7 conv=v8 \
  conv=v9 conv=v10 conv=v11 conv=v12 conv=v13 conv=v15 --out "$R/bench-kernels" > "$R/bench-kernels.log" 2>&1
stamp "conv1x1 versions done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
for k in conv=v17; do
  KD_KERNELS=$k timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
    --out "$R/bench-steps-${k/=/-}" > "$R/bench-steps-${k/=/-}.log" 2>&1
done
stamp "fmnist steps done"
timeout 60 python3 bench/torch_reference.py --device cuda --only conv1x1.,fmnist_unet.,fmnist_classifier. \
  --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels/bench.json"; stamp "torch done"
ncu_case gemm-v17-v18 'V1[78]Kernel' 2 sgemm.4096 --skip-versions gemm=v1 gemm=v2 gemm=v3 gemm=v4 gemm=v5 gemm=v6 gemm=v7 \
  gemm=v8 gemm=v9 gemm=v10 gemm=v11 gemm=v12 gemm=v13 gemm=v14 gemm=v15 gemm=v16
train_profile
adm64_train_step
cat "$R/timeline.txt"; grep -E "^\| (conv1x1|fmnist)" "$R/ratios.md" 2>/dev/null | head -30
cat "$R/ratios-sgemm.md" 2>/dev/null | head -12; grep -hE "^\| conv" "$R"/bench-conv-gemm-v1[678]/*.md 2>/dev/null | head -44
python3 -c "import json; [print(r['name'], r['ms']) for r in json.load(open('$R/torch-tf32.json'))['results']]" 2>/dev/null
grep -h "default:" "$R"/bench-steps*.log "$R"/bench-adm64.log; tail -2 "$R/torch-adm64.log"
grep -A14 "time and launches" "$R/train-profile.log"; grep -A12 "per op and shapes" "$R/train-profile.log"
for f in gemm-v17-v18; do
  grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Executed Ipc Active|Achieved Occupancy|Registers Per|spends .* cycles" "$R/$f.txt" | head -40
done
