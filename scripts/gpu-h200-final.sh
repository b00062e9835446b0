#!/usr/bin/env bash
# The third call of 2026-11-27's H200 session, under 4 minutes: attention v10 with its dQ kernel at six groups a
# multiprocessor (80 registers; four, at 128, in call 2) and the default that call 2 chose (v10 at heads of up to 32
# channels, v8 at 64):
# - kd check's attention cases on CUDA (nothing is timed if one fails);
# - v8 and v10 at every attention case, beside SDPA;
# - the fmnist steps at the defaults, the training step with attention=v8 as the control, beside PyTorch;
# - the training step with the garbage collector's server mode and with a 256 MB gen0 budget (kd bench's step note now
#   gives the GC's pauses while the host issues a step: is the profile's 'reshape' idle a collection?);
# - the training step on the tf32 GEMM v17 (Winograd's GEMMs and the 1x1 convolutions; call 3 timed v18: 62.2 ms against
#   PyTorch tf32's 50.8), beside PyTorch tf32;
# - Nsight Compute on v10's dQ kernel at fmnist's 14x14 (call 2: 262 us, 24% occupancy);
# - the fmnist training profile.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 250:  bash scripts/gpu-h200-final.sh "$OUT"
set -u
out=${1:?usage: gpu-h200-final.sh OUTDIR}
R=/tmp/kd-h200-final; tarball=h200-final-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_or_stop 60 attention
timeout 40 $K bench --device cuda --no-steps --kernels attention. --budget-ms 40 --skip-versions attention=v1 attention=v2 \
  attention=v3 attention=v4 attention=v6 attention=v7 attention=v9 --out "$R/bench-attention" > "$R/bench-attention.log" 2>&1
stamp "attention v8 and v10 done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
KD_KERNELS=attention=v8 timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
  --out "$R/bench-steps-attention-v8" > "$R/bench-steps-attention-v8.log" 2>&1
for gc in DOTNET_gcServer=1 DOTNET_GCgen0size=0x10000000; do
  env $gc timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
    --out "$R/bench-steps-${gc%%=*}" > "$R/bench-steps-${gc%%=*}.log" 2>&1
done
KD_KERNELS=gemm=v17 timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
  --out "$R/bench-steps-gemm-v17" > "$R/bench-steps-gemm-v17.log" 2>&1
stamp "fmnist steps done"
timeout 30 python3 bench/torch_reference.py --device cuda --tf32 --only fmnist_unet.train_step --out "$R/torch-tf32.json" \
  > "$R/torch-tf32.log" 2>&1
timeout 50 python3 bench/torch_reference.py --device cuda --only attention.,fmnist_unet.,fmnist_classifier. --out "$R/torch.json" \
  > "$R/torch.log" 2>&1
join_ratios "$R/bench-attention/bench.json"; stamp "torch done"
ncu_case attention-v10 'QueryGrad' 1 attention.forward_backward.fmnist_14x14
train_profile
cat "$R/timeline.txt"; grep -E "^\| (attention|fmnist)" "$R/ratios.md" | cut -d'|' -f2-7
grep -h "default:" "$R"/bench-steps*.log; tail -2 "$R/torch-tf32.log"; grep -A14 "time and launches" "$R/train-profile.log"
grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Executed Ipc Active|Achieved Occupancy|Registers Per|spends .* cycles" \
  "$R/attention-v10.txt" | head -12
