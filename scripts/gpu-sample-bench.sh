#!/usr/bin/env bash
# Sampling speed on the lent GPU machine (issue 5's figures), with freshly initialised fmnist weights (speed does not
# depend on training): a CFG sampling step at batch 20 (10 classes x 2, one forward of 40), to set beside PyTorch's
# fmnist_unet forward at batch 20 (11.9 ms on an H200 in ../shared/device/README.md), and a classifier-guided step at
# batch 256 (UNet forward + classifier forward and backward), beside PyTorch's 17.1 ms guidance gradient. Rerun PyTorch
# in the same run before quoting a ratio.
# Here: ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj; there: bash scripts/gpu-sample-bench.sh "$OUT"
set -u
out=${1:?usage: gpu-sample-bench.sh OUTDIR}
mkdir -p "$out"
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
rc=0
kd init --device cuda --config configs/fmnist_unet.json --out /tmp/kd-unet.safetensors --randomize-zero-layers > /dev/null || rc=1
kd init --device cuda --config configs/fmnist_classifier.json --out /tmp/kd-clf.safetensors --randomize-zero-layers > /dev/null || rc=1
# Timed without the per-op profiler (it synchronises after every op), then once more with it for the table.
kd sample --device cuda --checkpoint /tmp/kd-unet.safetensors --per-class 2 --steps 50 --no-profile --out "$out/cfg-b20.png" \
  > "$out/sample-cfg-b20.log" 2>&1 || rc=1
kd sample --device cuda --checkpoint /tmp/kd-unet.safetensors --per-class 2 --steps 10 --out "$out/cfg-b20-profiled.png" \
  > "$out/sample-cfg-b20-profile.log" 2>&1 || rc=1
kd sample --device cuda --checkpoint /tmp/kd-unet.safetensors --classifier /tmp/kd-clf.safetensors --guidance classifier --sampler ddpm \
  --steps 20 --per-class 26 --batch 256 --no-profile --out "$out/classifier-b256.png" > "$out/sample-classifier-b256.log" 2>&1 || rc=1
kd sample --device cuda --checkpoint /tmp/kd-unet.safetensors --classifier /tmp/kd-clf.safetensors --guidance classifier --sampler ddpm \
  --steps 5 --per-class 26 --batch 256 --out "$out/classifier-b256-profiled.png" > "$out/sample-classifier-b256-profile.log" 2>&1 || rc=1
grep -h "per step" "$out"/sample-*.log
exit $rc
