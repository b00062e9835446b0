#!/usr/bin/env bash
# Training throughput on the lent GPU machine: fmnist_unet and fmnist_classifier at batch 256 (to set beside
# PyTorch's 84.9 ms per fmnist_unet step on an H200 in ../shared/device/README.md; rerun PyTorch in the same run
# before quoting a ratio). The machine has no Fashion-MNIST package: the committed 300-image fixture stands in.
# Here: ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj; there: bash scripts/gpu-train-bench.sh "$OUT"
set -u
out=${1:?usage: gpu-train-bench.sh OUTDIR}
mkdir -p "$out"
bash scripts/fixture-data.sh /tmp/kd-data
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
rc=0
kd train --device cuda --data idx:/tmp/kd-data --config configs/fmnist_unet.json --batch 256 --steps 20 --save-every 0 \
  --out /tmp/kd-run-unet > "$out/train-unet.log" 2>&1 || rc=1
kd train-classifier --device cuda --data idx:/tmp/kd-data --config configs/fmnist_classifier.json --batch 256 --steps 20 --save-every 0 \
  --out /tmp/kd-run-clf > "$out/train-classifier.log" 2>&1 || rc=1
cp /tmp/kd-run-unet/loss.csv "$out/loss-unet.csv"; cp /tmp/kd-run-clf/loss.csv "$out/loss-classifier.csv"
tail -n 2 "$out"/train-*.log
exit $rc
