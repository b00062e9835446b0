#!/usr/bin/env bash
# The foundation's proof on the lent GPU machine (no .NET there: a self-contained kd travels in .device/).
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"]:  bash scripts/gpu-check.sh "$OUT"
# Writes at most 7 files under OUT: info.txt, cuda/check.{md,json}, opencl/check.{md,json}, and the two logs.
set -u
out=${1:?usage: gpu-check.sh OUTDIR}
mkdir -p "$out"
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
kd info > "$out/info.txt" 2>&1
rc=0
kd check --device cuda --out "$out/cuda" > "$out/check-cuda.log" 2>&1 || rc=1
kd check --device opencl --out "$out/opencl" > "$out/check-opencl.log" 2>&1 || rc=1
cat "$out/info.txt"
tail -n 3 "$out/check-cuda.log" "$out/check-opencl.log"
exit $rc
