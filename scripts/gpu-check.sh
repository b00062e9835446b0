#!/usr/bin/env bash
# Correctness on the lent GPU machine (no .NET there: a self-contained kd travels in .device/).
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"]:  bash scripts/gpu-check.sh "$OUT"
# Writes 8 files under OUT: info.txt, cuda.md, cuda.json, opencl.md, trace-compare.txt, python.txt and two logs.
set -u
out=${1:?usage: gpu-check.sh OUTDIR}
mkdir -p "$out" /tmp/kd-work
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
rc=0
kd info > "$out/info.txt" 2>&1

# Every kernel, plus the fmnist classifier against a float64 replay of its graph (fmnist_unet's replay ran past
# 150 s on the H100's host and was cut off in the 2026-11-26 run: the trace comparison below covers that model).
timeout 240 bash .device/run KernelDiffusion.Cli check --device cuda --out /tmp/kd-work/cuda --model configs/fmnist_classifier.json \
  > "$out/check-cuda.log" 2>&1 || rc=1
cp /tmp/kd-work/cuda/check.md "$out/cuda.md"; cp /tmp/kd-work/cuda/check.json "$out/cuda.json"
kd check --device opencl --out /tmp/kd-work/opencl > "$out/check-opencl.log" 2>&1 || rc=1
cp /tmp/kd-work/opencl/check.md "$out/opencl.md"

# The same fmnist_unet trace (with gradients) on CUDA and on the CPU accelerator must agree to 1e-4.
w=/tmp/kd-work
kd init --config configs/fmnist_unet.json --out $w/m.safetensors --seed 3 --randomize-zero-layers > /dev/null &&
kd trace-inputs --checkpoint $w/m.safetensors --batch 2 --out $w/in.safetensors > /dev/null &&
kd trace --device cuda --checkpoint $w/m.safetensors --input $w/in.safetensors --output $w/cuda.safetensors --grad > "$out/trace-compare.txt" 2>&1 &&
kd trace --device cpu --checkpoint $w/m.safetensors --input $w/in.safetensors --output $w/cpu.safetensors --grad >> "$out/trace-compare.txt" 2>&1 &&
kd compare $w/cuda.safetensors $w/cpu.safetensors --tolerance 1e-4 >> "$out/trace-compare.txt" 2>&1 || rc=1

# Python's safetensors reads what we write, and we read what it writes.
python3 - "$w" > "$out/python.txt" 2>&1 <<'PY' || rc=1
import sys, json, numpy as np
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
w = sys.argv[1]
t = load_file(f"{w}/m.safetensors")
with safe_open(f"{w}/m.safetensors", "np") as f:
    cfg = json.loads(f.metadata()["config"])
print(f"python read {len(t)} tensors, {sum(v.size for v in t.values())} parameters, model_channels {cfg['model_channels']}")
save_file({"x": np.arange(6, dtype=np.float32).reshape(2, 3), "t": np.array([3, 7], dtype=np.int64)}, f"{w}/py.safetensors", metadata={"k": "v"})
PY
kd compare $w/py.safetensors $w/py.safetensors >> "$out/python.txt" 2>&1 || rc=1

cat "$out/info.txt"; tail -n 3 "$out/check-cuda.log" "$out/check-opencl.log"; tail -n 2 "$out/trace-compare.txt"; cat "$out/python.txt"
exit $rc
