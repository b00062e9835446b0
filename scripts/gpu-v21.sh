#!/usr/bin/env bash
# GEMM v21's-v24's and attention v13's-v15's first GPU run (written 2026-11-27c, d and e, sessions without a
# GPU), about 9.5 minutes:
# - kd check on CUDA (v21's eight cases against float64 on the fp32 operands at the fp32 tolerance, v13's and v14's
#   seven each, beside every other case; v15's six in a process of their own after v22's, as its 16-byte cp.async copies
#   could fault; nothing is timed if a check fails), then v22's eight and v24's two in a process of their own
#   (a fault in its sm_90 PTX cannot stop the others; its mbarrier waits give up after 65536 tries instead of hanging);
# - SGEMM 4096 in three layouts at v14 (the fp32 default), v20 (tf32), v21 (fp32 by three tf32 mma), v22 (tf32, v20
#   staged by sm_90 bulk copies) and v23 (tf32, v20 whose copies inside a tile drop the zero-fill operand; v22 and v23
#   added 2026-11-27d, their first GPU run too) and v24 (v22 with 32 values of k a stage; at TN it runs v22) beside
#   PyTorch fp32 (cuBLAS SGEMM, TF32 off) and tf32;
# - the convolutions and both models' training and CFG steps with every GEMM on v21 (KD_KERNELS=gemm=v21: Winograd's
#   batched GEMMs, the 1x1 convolutions, attention's dQ, the linears) beside the defaults and PyTorch fp32;
# - attention v13's-v15's first GPU run (v13: the forward by 3xTF32 mma; v14: the key side too; v15: v14 with its tiles
#   copied by cp.async under the products) beside v10 and v11 at every attention case, and the GEMM-built versions (v1,
#   v6, v7, v11, v14, v15) at adm64's shapes with their GEMMs on v21;
# - 30 fmnist training steps from one seed at the defaults and on v21, losses side by side (same results to rounding?);
# - Nsight Compute on v21 at NN with the per-instruction counters (is the tensor pipe the bound now?), and on v15's
#   three kernels at adm64's 32x32 (last: the run's timeout may cut them);
# - reduce v5's first GPU run (v4's strided runs read by a warp's lanes side by side) at the four sum cases, time allowing;
# - adm64's training step at the defaults, on v21, and on v21 with attention v15 (PyTorch's took 520 ms in the second
#   H200 run, call 3); the Nsight Compute reports last, each only while the run is still under 480 s (v21), 500 s
#   (attention v15), 520 s (v22) and 540 s (v23).
# Predictions: bench/NOTES.md, "Tensor cores", GEMM v21-v24; "Attention", v13-v15.
# Here:  ../shared/device/pack src/KernelDiffusion.Cli/KernelDiffusion.Cli.csproj
# There: run with carry [".device"] and timeout_s 600:  bash scripts/gpu-v21.sh "$OUT" (about 600 s, an estimate: 550 s
# before v22 and v23 were added, about 30 s more for v22's own kd check process, their SGEMM timings and PyTorch tf32,
# about 35 s more for attention v15's check process and timings; each step's files come back as it ends, and the Nsight
# Compute reports, last, are left out when time runs short);
# SHORT=1 bash scripts/gpu-v21.sh "$OUT" leaves out the 30 training steps, Nsight Compute and adm64's step (about 380 s).
# A device session has 900 s, start-up included: the full script fits once, with no room to rerun it; SHORT=1 leaves
# room for a second try.
set -u
out=${1:?usage: gpu-v21.sh OUTDIR}
R=/tmp/kd-v21; tarball=v21-results.tgz
. scripts/gpu-common.sh
bash scripts/fixture-data.sh /tmp/fx
timeout 90 $K check --device cuda --exclude .bulk --exclude .cp_async --out "$R/check" > "$R/check.log" 2>&1
stamp "check: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check.log" | tail -1)"
# GEMM v22's and v24's cases (".bulk") in a process of their own: their sm_90 PTX (bulk copies, mbarriers) runs here for
# the first time, and a fault would stop every case queued after it in the same process.
timeout 50 $K check --device cuda --filter .bulk --out "$R/check-bulk" > "$R/check-bulk.log" 2>&1
stamp "check of v22 and v24: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check-bulk.log" | tail -1)"
# Attention v15's cases (".cp_async") in a process of their own too: their 16-byte cp.async copies run here for the
# first time, and a misaligned one would fault the context.
timeout 40 $K check --device cuda --filter .cp_async --out "$R/check-cp-async" > "$R/check-cp-async.log" 2>&1
stamp "check of attention v15: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check-cp-async.log" | tail -1)"
# A failed case of the new kernels (GEMM v21, attention v13-v15) leaves only those out of the timings; any other
# failure, or no check table, stops the script: nothing is timed that kd check did not pass on this card.
[ -f "$R/check/check.md" ] || { stamp "no check table: nothing is timed"; exit 1; }
failed=$(awk -F'|' '$6 ~ /FAIL/ {gsub(/ /, "", $2); print $2}' "$R/check/check.md")
if echo "$failed" | grep -vE '^$|^gemm\.v2[1234]|^attention\..*v1[345]' | grep -q .; then
  grep -E "FAIL" "$R/check.log" | head -20; stamp "a check of a kernel that is not new failed: nothing is timed"; exit 1
fi
V21=1; echo "$failed" | grep -q '^gemm\.v21' && { V21=0; stamp "GEMM v21 failed kd check: not timed"; }
V22=1; { [ -f "$R/check-bulk/check.md" ] && ! grep -E '^\| gemm\.v22' "$R/check-bulk/check.md" | grep -q FAIL; } || { V22=0; stamp "GEMM v22 failed kd check (or it did not finish): not timed"; }
V24=1; { [ -f "$R/check-bulk/check.md" ] && grep -qE '^\| gemm\.v24' "$R/check-bulk/check.md" && ! grep -E '^\| gemm\.v24' "$R/check-bulk/check.md" | grep -q FAIL; } \
  || { V24=0; stamp "GEMM v24 failed kd check (or it did not finish): not timed"; }
V23=1; echo "$failed" | grep -q '^gemm\.v23' && { V23=0; stamp "GEMM v23 failed kd check: not timed"; }
# v15 shares v13's forward body and v14's key-side bodies: a failure of v13 or v14 leaves all three out, one of v15 only v15.
NEW_ATT="13 14 15"; echo "$failed" | grep -qE '^attention\..*v1[34]' && { NEW_ATT=""; stamp "attention v13 or v14 failed kd check: v13-v15 not timed"; }
{ [ -f "$R/check-cp-async/check.md" ] && grep -qE '^\| attention' "$R/check-cp-async/check.md" && ! grep -E '^\| attention' "$R/check-cp-async/check.md" | grep -q FAIL; } \
  || { NEW_ATT=${NEW_ATT% 15}; stamp "attention v15 failed kd check (or it did not finish): not timed"; }
# timed N: whether attention vN passed its checks (it is in NEW_ATT).
timed() { [[ " $NEW_ATT " == *" $1 "* ]]; }
# on21 CMD...: CMD with every GEMM on v21, where v21 passed its checks.
on21() { [ "$V21" = 1 ] && env KD_KERNELS=gemm=v21 "$@"; }
only_gemm() { skip_all_but gemm "$1" "$(seq 1 24)"; }
timeout 75 $K bench --device cuda --no-steps --kernels sgemm.4096 --budget-ms 60 \
  --skip-versions $(only_gemm "14 20 $([ "$V21" = 1 ] && echo 21) $([ "$V22" = 1 ] && echo 22) $([ "$V23" = 1 ] && echo 23) $([ "$V24" = 1 ] && echo 24)") \
  --out "$R/bench-sgemm" > "$R/bench-sgemm.log" 2>&1
stamp "SGEMM layouts done"
on21 timeout 50 $K bench --device cuda --default-only --no-steps --kernels conv3x3. conv1x1. --budget-ms 40 \
  --out "$R/bench-conv-v21" > "$R/bench-conv-v21.log" 2>&1
on21 timeout 60 $K bench --device cuda --default-only --no-kernels --kernels fmnist_unet. --budget-ms 100 \
  --out "$R/bench-steps-v21" > "$R/bench-steps-v21.log" 2>&1
timeout 60 $K bench --device cuda --default-only --kernels conv3x3. conv1x1. fmnist_unet. --budget-ms 40 \
  --out "$R/bench-steps" > "$R/bench-defaults.log" 2>&1
stamp "convolutions and fmnist steps$([ "$V21" = 1 ] && echo " on v21 and") at the defaults done"
# Attention v13 (its forward on the tensor cores by 3xTF32, v11's backward), v14 (its key side on them too) and v15 (v14
# with cp.async tiles) beside v10 and v11 at every attention case; then the versions built on GEMMs (v1: scores and weights stored; v6, v7: dQ, and dK,
# by GEMM; v11, v14, v15: dQ by GEMM) with those GEMMs on v21 at adm64's shapes: does 3xTF32 bring a path under SDPA there?
att_all="1 2 3 4 6 7 8 9 10 11 12 13 14 15"
timeout 60 $K bench --device cuda --no-steps --kernels attention. --budget-ms 40 --skip-versions $(skip_all_but attention "10 11 $NEW_ATT" "$att_all") \
  --out "$R/bench-attention" > "$R/bench-attention.log" 2>&1
on21 timeout 60 $K bench --device cuda --no-steps --kernels attention.forward_backward.adm64 attention.forward.adm64 \
  --budget-ms 40 --skip-versions $(skip_all_but attention "1 6 7 11 ${NEW_ATT#13 }" "$att_all") --out "$R/bench-attention-v21" > "$R/bench-attention-v21.log" 2>&1
stamp "attention v13, and attention on v21's GEMMs, done"
timeout 90 python3 bench/torch_reference.py --device cuda --only sgemm.4096,conv3x3.,conv1x1.,attention.,fmnist_unet.,sum. \
  --out "$R/torch.json" > "$R/torch.log" 2>&1
# PyTorch tf32 at SGEMM 4096 too: the tf32 versions (v20, v22) are judged against it.
timeout 30 python3 bench/torch_reference.py --device cuda --tf32 --only sgemm.4096 --out "$R/torch-tf32.json" > "$R/torch-tf32.log" 2>&1
stamp "torch done"
# train30 NAME [KD_KERNELS]: 30 fmnist training steps from seed 7 (batch 64, the fixture), the losses into $R/loss-NAME.csv.
train30() {
  rm -rf "/tmp/tr-$1"; env ${2:+KD_KERNELS=$2} timeout 60 $K train --config configs/fmnist_unet.json --data idx:/tmp/fx --steps 30 \
    --batch 64 --seed 7 --out "/tmp/tr-$1" --device cuda > "$R/train-$1.log" 2>&1
  cp "/tmp/tr-$1/loss.csv" "$R/loss-$1.csv" 2>/dev/null
}
[ "${SHORT:-0}" = 1 ] || [ "$V21" = 0 ] || { train30 default; train30 v21 gemm=v21; stamp "30 training steps at the defaults and on v21 done"; }
python3 bench/join.py "$R/bench-steps/bench.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
python3 bench/join.py "$R/bench-sgemm/bench.json" "$R/torch.json" "$R/torch-tf32.json" --out "$R/ratios-sgemm.md" > "$R/join-sgemm.log" 2>&1
python3 bench/join.py "$R/bench-attention/bench.json" "$R/torch.json" --out "$R/ratios-attention.md" > "$R/join-attention.log" 2>&1
python3 bench/merge.py "$R/bench-v21.json" "$R/bench-conv-v21/bench.json" "$R/bench-steps-v21/bench.json" "$R/bench-attention-v21/bench.json" > /dev/null 2>&1
python3 bench/join.py "$R/bench-v21.json" "$R/torch.json" --out "$R/ratios-v21.md" > "$R/join-v21.log" 2>&1
stamp "ratios joined"
# Reduce v5 (a warp's lanes side by side on v4's runs; written 2026-11-27e) beside v1-v4 at the four sum cases, time allowing.
if [ "$SECONDS" -lt 470 ]; then
  timeout 30 $K bench --device cuda --no-steps --kernels sum. --budget-ms 20 --out "$R/bench-sum" > "$R/bench-sum.log" 2>&1
  python3 bench/join.py "$R/bench-sum/bench.json" "$R/torch.json" --out "$R/ratios-sum.md" > "$R/join-sum.log" 2>&1
  stamp "sum cases done"
fi
if [ "${SHORT:-0}" != 1 ]; then
# adm64's training step at the defaults, with every GEMM on v21, and with attention v15 as well (both new paths).
# Each only if it can end (40 s at most) inside the run's 600 s.
[ "$SECONDS" -lt 555 ] && timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64_unet.train_step \
  --budget-ms 100 --out "$R/bench-adm64" > "$R/bench-adm64.log" 2>&1
[ "$SECONDS" -lt 555 ] && on21 timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64_unet.train_step \
  --budget-ms 100 --out "$R/bench-adm64-v21" > "$R/bench-adm64-v21.log" 2>&1
[ "$SECONDS" -lt 555 ] && [ "$V21" = 1 ] && timed 15 && KD_KERNELS=gemm=v21,attention=v15 timeout 40 $K bench --device cuda --default-only --no-kernels \
  --kernels adm64_unet.train_step --budget-ms 100 --out "$R/bench-adm64-v21-v15" > "$R/bench-adm64-v21-v15.log" 2>&1
stamp "adm64's training step timed:$(cd "$R" && ls bench-adm64*.log 2>/dev/null | sed 's/^bench-adm64/ default/; s/\.log$//; s/^ default-/ /' | tr '\n' ' ')"
# The Nsight Compute reports only while time is left (each takes 20-50 s): the run's 600 s would cut one mid-way.
[ "$V21" = 1 ] && [ "$SECONDS" -lt 480 ] && NCU_SOURCE=1 ncu_case gemm-v21-nn 'V21Kernel' 1 sgemm.4096 --skip-versions $(only_gemm "21")
# v15 with its per-instruction counters: where its warps stall (the splits' ALU, the fragment loads, the HMMA) tests
# ptxas's reading that it is issue-bound (bench/NOTES.md, attention v15, "Splitting each tile once per group").
timed 15 && [ "$SECONDS" -lt 500 ] && NCU_SOURCE=1 ncu_case attention-v15 'Tf32x3' 3 attention.forward_backward.adm64_32x32 \
  --skip-versions $(skip_all_but attention "15" "$att_all")
# v22 (bulk copies): are the shared wavefronts of v20's cp.async copies gone, and what binds now? Only with time left.
[ "$V22" = 1 ] && [ "$SECONDS" -lt 520 ] && NCU_SOURCE=1 ncu_case gemm-v22-nn 'V22Kernel' 1 sgemm.4096 --skip-versions $(only_gemm "22")
[ "$V23" = 1 ] && [ "$SECONDS" -lt 540 ] && NCU_SOURCE=1 ncu_case gemm-v23-nn 'V23Kernel' 1 sgemm.4096 --skip-versions $(only_gemm "23")
fi
cat "$R/timeline.txt"; grep -h "passed, .* failed" "$R/check.log" "$R/check-bulk.log" "$R/check-cp-async.log" | tail -3; grep -hE "gemm.v2[1234]|v13|v15" "$R/check/check.md" "$R/check-bulk/check.md" "$R/check-cp-async/check.md" | cut -c1-160
grep -E "^\| sgemm" "$R/ratios-sgemm.md" | cut -d'|' -f2-7
grep -hE "^\| attention" "$R/bench-attention/bench.md" "$R/bench-attention-v21/bench.md" | cut -d'|' -f2-5
grep -E "^\| attention" "$R/ratios-attention.md" | cut -d'|' -f2-7
grep -E "^\| sum" "$R/ratios-sum.md" | cut -d'|' -f2-7
grep -E "^\|" "$R/ratios-v21.md" | cut -d'|' -f2-7 | head -60
grep -h "default:" "$R"/bench-steps-v21.log "$R/bench-defaults.log" "$R"/bench-adm64*.log | cut -c1-110
grep -E "^\|" "$R/ratios.md" | cut -d'|' -f2-7 | head -40
paste -d, "$R/loss-default.csv" "$R/loss-v21.csv" | sed -n '1p;2p;11p;21p;31p'; tail -2 "$R/train-v21.log"
grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Issue Slots Busy|spends .* cycles|excessive|Tensor" "$R/gemm-v21-nn.txt" | cut -c1-120 | head -12
python3 scripts/ncu-sass.py "$R/gemm-v21-nn-sass.csv" 2>&1 | head -20
[ -f "$R/gemm-v22-nn-sass.csv" ] && python3 scripts/ncu-sass.py "$R/gemm-v22-nn-sass.csv" 2>&1 | head -20
[ -f "$R/gemm-v23-nn-sass.csv" ] && python3 scripts/ncu-sass.py "$R/gemm-v23-nn-sass.csv" 2>&1 | head -20
grep -E "^  [A-Za-z_]+.*\(|Duration|Executed Instructions  |Issue Slots Busy|spends .* cycles|Achieved Occupancy|Registers Per" "$R/attention-v15.txt" | cut -c1-120 | head -30
if [ -f "$R/attention-v15-sass.csv" ]; then
  for k in 0 1 2; do python3 scripts/ncu-sass.py "$R/attention-v15-sass.csv" --kernel $k --top 3 2>&1 | head -12; done
fi
