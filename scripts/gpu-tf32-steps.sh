#!/usr/bin/env bash
# A second lent-GPU call, if time is left after gpu-next.sh (written 2026-11-27 without a GPU), under 2 minutes: the
# fmnist training step with every GEMM on the tf32 GEMMs v16-v18 (with conv=v12, Winograd F(2x2, 3x3), whose error stays
# tf32's own; and at the conv default, v13, whose error is about bf16's), beside PyTorch's training step at tf32.
# gpu-bench.sh measured the first tf32 path (gemm=v5,conv=v7) at 329 ms against 140 ms with the fp32 defaults.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 180:  bash scripts/gpu-tf32-steps.sh "$OUT"
set -u
out=${1:?usage: gpu-tf32-steps.sh OUTDIR}
R=/tmp/kd-tf32-steps; tarball=tf32-steps-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
for k in gemm=v16,conv=v12 gemm=v17,conv=v12 gemm=v18,conv=v12 gemm=v18; do
  KD_KERNELS=$k timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
    --out "$R/bench-${k//[=,]/-}" > "$R/bench-${k//[=,]/-}.log" 2>&1
  stamp "training step with $k done"
done
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
  --out "$R/bench-fp32" > "$R/bench-fp32.log" 2>&1
stamp "fp32 training step done"
timeout 60 python3 bench/torch_reference.py --device cuda --both --only fmnist_unet.train_step --out "$R/torch.json" > "$R/torch.log" 2>&1
stamp "torch done"
cat "$R/timeline.txt"; grep -h "default:" "$R"/bench-*.log
python3 -c "import json; [print(r['name'], r['ms']) for r in json.load(open('$R/torch.json'))['results']]" 2>/dev/null
