#!/usr/bin/env bash
# One run on the lent GPU machine (issues 7 and 8), about 9 minutes:
#  1. in parallel: kd check on CUDA (kernels), and training of the shipped weights on Fashion-MNIST
#     (the small class-conditional UNet with p_uncond 0.1, the noise-aware classifier, then the clean evaluation classifier),
#  2. a guidance sweep (FID, IS, precision, recall, accuracy) and sample grids from the new weights,
#  3. kd bench and bench/torch_reference.py on the same card, joined into a ratio table.
# The machine has no Fashion-MNIST: the idx files travel in .device/data (see below). Here:
#   ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
#   mkdir -p .device/data && cp /usr/share/datasets/fashion-mnist/*.gz .device/data/
# then run with carry [".device"]:  bash scripts/gpu-weights-and-bench.sh "$OUT"
# $OUT gets the three weight files and results.tgz (logs, check, sweep, grids, bench, torch, ratios).
set -u
out=${1:?usage: gpu-weights-and-bench.sh OUTDIR}
R=/tmp/kd-results; W=/tmp/kd-weights; mkdir -p "$R" "$W" "$out"
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
data=fashion-mnist; export KD_FASHION_MNIST_DIR=$PWD/.device/data
# KD_SMOKE=1: the same steps on the CPU accelerator with tiny sizes, to try the script here before spending GPU time.
if [ "${KD_SMOKE:-0}" = 1 ]; then dev=cpu; m1=0.05; m2=0.03; m3=0.02; per=2; quick=--quick; steps=2; b1=8; b2=8; else dev=cuda; m1=3.0; m2=2.0; m3=1.2; per=100; quick=; steps=25; b1=128; b2=256; fi
# Each stage ends with a fresh results.tgz, so a run cut short still brings back what it finished.
begin=$(date +%s); stamp() { echo "$(( $(date +%s) - begin )) s: $*" | tee -a "$R/timeline.txt"; tar czf "$out/results.tgz" -C "$R" .; }
kd info > "$R/info.txt" 2>&1
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv >> "$R/info.txt" 2>&1

stamp "start: check and training in parallel"
timeout 200 bash .device/run KernelDiffusion.Cli check --device $dev --out $R/check > "$R/check.log" 2>&1 &
check_pid=$!
timeout 240 bash .device/run KernelDiffusion.Cli train --device $dev --data $data --config configs/fmnist_small_unet.json --batch $b1 --steps 20000 \
  --lr 1e-3 --warmup 200 --ema 0.999,0.9999 --p-uncond 0.1 --seed 1 --save-every 500 --max-minutes $m1 --out $W/unet > "$R/train-unet.log" 2>&1 &
unet_pid=$!
( timeout 140 bash .device/run KernelDiffusion.Cli train-classifier --device $dev --data $data --config configs/fmnist_classifier.json --batch $b2 --steps 20000 \
    --lr 1e-3 --warmup 100 --ema 0.999 --seed 2 --save-every 500 --max-minutes $m2 --out $W/classifier > "$R/train-classifier.log" 2>&1
  timeout 90 bash .device/run KernelDiffusion.Cli train-classifier --device $dev --data $data --config configs/fmnist_classifier.json --clean --batch $b2 --steps 20000 \
    --lr 1e-3 --warmup 100 --ema 0.999 --seed 3 --save-every 500 --max-minutes $m3 --out $W/clean > "$R/train-clean.log" 2>&1 ) &
clf_pid=$!
wait $unet_pid $clf_pid $check_pid
stamp "training and check done"
for k in unet classifier clean; do cp $W/$k/loss.csv "$R/loss-$k.csv" 2>/dev/null; done
cp $W/unet/model.safetensors "$out/fmnist-cfg-unet.safetensors"
cp $W/classifier/model.safetensors "$out/fmnist-classifier.safetensors"
cp $W/clean/model.safetensors "$out/fmnist-eval-classifier.safetensors"

for k in classifier clean; do
  timeout 40 bash .device/run KernelDiffusion.Cli eval-classifier --device $dev --classifier $W/$k/model.safetensors --data $data --limit $((per * 100)) \
    --out "$R/accuracy-$k.md" > "$R/accuracy-$k.log" 2>&1
done
stamp "classifier accuracy done"

# The default job of the README, timed on this card; then grids at several scales and the sweep.
( time kd sample --device $dev --checkpoint $W/unet/model.safetensors --steps $steps --no-profile --out "$R/default.png" ) > "$R/sample-default.log" 2>&1
for s in 0 1 3; do
  timeout 30 bash .device/run KernelDiffusion.Cli sample --device $dev --checkpoint $W/unet/model.safetensors --scale $s --steps $steps --per-class ${per/100/8} --no-profile --out $R/grid-w$s.png > "$R/grid-w$s.log" 2>&1
done
timeout 30 bash .device/run KernelDiffusion.Cli sample --device $dev --checkpoint $W/unet/model.safetensors --classifier $W/classifier/model.safetensors --guidance classifier \
  --classifier-scale 2 --sampler ddpm --steps $((steps * 4)) --per-class ${per/100/8} --no-profile --out $R/grid-classifier-s2.png > "$R/grid-classifier.log" 2>&1
stamp "grids done"
timeout 90 bash .device/run KernelDiffusion.Cli sweep --device $dev --checkpoint $W/unet/model.safetensors --guidance cfg --scales 0,0.5,1,2,4 --per-class $per --steps $steps \
  --batch $((b1 * 8)) --seed 1 --feature-net $W/clean/model.safetensors --data $data --reference test --out $W/sweep > "$R/sweep.log" 2>&1
cp $W/sweep/table.md $W/sweep/table.csv $W/sweep/plot.png "$R/" 2>/dev/null
stamp "sweep done"

timeout 100 bash .device/run KernelDiffusion.Cli bench --device $dev --budget-ms 100 $quick --out $R/bench > "$R/bench.log" 2>&1
stamp "kd bench done"
if [ -f bench/torch_reference.py ]; then
  timeout 80 python3 bench/torch_reference.py --device $dev $quick --out "$R/torch.json" > "$R/torch.log" 2>&1
  stamp "torch done"
  python3 bench/join.py "$R/bench/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
fi
stamp "all done"
cat "$R/timeline.txt"; grep -h "passed\|FAIL" "$R/check.log" | tail -5; grep -h "stopped at\|done at" "$R"/train-*.log
cat "$R/table.md" 2>/dev/null; tail -3 "$R/sample-default.log"; cat "$R/ratios.md" 2>/dev/null | head -40
