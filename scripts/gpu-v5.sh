#!/usr/bin/env bash
# The fourth H100 run's second call (2026-11-27, after its first, bench/results/h100-2026-11-27b/1-next, showed the 1x1
# convolutions' weight gradients at 2.1 ms each and attention at 14x14 at 11 ms of the fmnist step), under 5 minutes: kd
# check on CUDA (attention v5's first GPU run); attention v4 against v5 (and v1, v3) at every attention case; the 1x1
# convolution cases at the direct versions (v15 now their default where a side is 64, and their weight gradients split
# up to 512 ways); the fmnist steps at the new defaults and, as a control, the training step with attention v4; PyTorch
# beside them; Nsight Compute on v5 at 14x14; the training profile; adm64's training step beside PyTorch's.
# A record of that call: attention v5 was removed after it (bench/NOTES.md, "Attention"), so this no longer runs as
# it did then.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 330:  bash scripts/gpu-v5.sh "$OUT"
set -u
out=${1:?usage: gpu-v5.sh OUTDIR}
R=/tmp/kd-v5; tarball=v5-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
check_cuda 45
timeout 75 $K bench --device cuda --no-steps --kernels attention.forward_backward conv1x1. --budget-ms 40 \
  --skip-versions attention=v2 conv=v1 conv=v2 conv=v3 conv=v4 conv=v5 conv=v8 conv=v9 conv=v12 conv=v13 \
  --out "$R/bench-kernels" > "$R/bench-kernels.log" 2>&1
stamp "attention and conv1x1 versions done"
timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist --budget-ms 100 --out "$R/bench-steps" > "$R/bench-steps.log" 2>&1
stamp "fmnist steps done"
KD_KERNELS=attention=v4 timeout 30 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet.train_step --budget-ms 100 \
  --out "$R/bench-steps-v4" > "$R/bench-steps-v4.log" 2>&1
stamp "fmnist training step with attention v4 done"
timeout 60 python3 bench/torch_reference.py --device cuda --only attention.forward_backward,conv1x1.,fmnist_unet.,fmnist_classifier. \
  --out "$R/torch.json" > "$R/torch.log" 2>&1
join_ratios "$R/bench-kernels/bench.json"; stamp "torch done"
ncu_case attention-v5 'Runs|StreamDelta' 4 attention.forward_backward.fmnist_14x14
train_profile
adm64_train_step
cat "$R/timeline.txt"; grep -E "^\| (conv1x1|attention|fmnist)" "$R/ratios.md" 2>/dev/null | head -40
grep -h "default:" "$R"/bench-steps.log "$R"/bench-steps-v4.log "$R"/bench-adm64.log; tail -3 "$R/torch-adm64.log"
grep -A14 "time and launches" "$R/train-profile.log"; grep -A16 "per op and shapes" "$R/train-profile.log"
grep -E "^  [A-Za-z_]+.*\(|Duration|Memory Throughput|Achieved Occupancy|Registers Per|way bank" "$R/attention-v5.txt" | head -30
