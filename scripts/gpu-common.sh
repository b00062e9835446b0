# Sourced by the GPU scripts (gpu-bench.sh, gpu-defaults.sh) after they set out (the $OUT folder), R (a work folder)
# and tarball (the name of the archive under $out).
# The work folder starts empty, so a script run twice on one warm machine returns only its second run's files.
rm -rf "$R"; mkdir -p "$R" "$out"
begin=$(date +%s)
# stamp TEXT: a line in the timeline, and everything so far packed into $out, so a run cut short still returns it.
stamp() { echo "$(( $(date +%s) - begin )) s: $*" | tee -a "$R/timeline.txt"; tar czf "$out/$tarball" -C "$R" .; }
# K: the packed kd as a command (timeout runs it; a shell function it cannot); kd: the same as a function.
K="bash .device/run KernelDiffusion.Cli"
kd() { $K "$@"; }
# check_cuda SECONDS: kd check on CUDA into $R/check, its count in the timeline.
check_cuda() {
  timeout "$1" $K check --device cuda --out "$R/check" > "$R/check.log" 2>&1
  stamp "check: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check.log" | tail -1)"
}
# check_or_stop SECONDS FILTER: kd check on CUDA for the cases whose names contain FILTER, into $R/check; if one fails,
# lists the failures and ends the script: nothing is timed after a failed check.
check_or_stop() {
  timeout "$1" $K check --device cuda --filter "$2" --out "$R/check" > "$R/check.log" 2>&1
  stamp "check ($2): $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check.log" | tail -1)"
  if ! grep -q " 0 failed" "$R/check.log"; then
    grep -E "FAIL" "$R/check.log" | head -20; stamp "a check failed: nothing is timed"; exit 1
  fi
}
# skip_all_but FAMILY "KEEP" "ALL": kd bench's --skip-versions arguments for FAMILY's versions in ALL (they must exist)
# but not in KEEP; a case's default is never left out.
skip_all_but() { local v skip=(); for v in $3; do [[ " $2 " == *" $v "* ]] || skip+=("$1=v$v"); done; echo "${skip[@]}"; }
# join_ratios KERNELS.json: the steps ($R/bench-steps) and a kernel-case run, made apart, as one ratio table beside
# PyTorch's ($R/torch.json).
join_ratios() {
  python3 bench/merge.py "$R/bench-all.json" "$R/bench-steps/bench.json" "$1" > /dev/null 2>&1
  python3 bench/join.py "$R/bench-all.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
}
kd info > "$R/info.txt" 2>&1
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv >> "$R/info.txt" 2>&1
# ncu_case NAME KERNEL-REGEX LAUNCHES CASE [BENCH-ARGS...]: Nsight Compute (`--set full`) on the first LAUNCHES launches
# matching the regex while kd bench times CASE at its default (or with BENCH-ARGS instead of --default-only, e.g.
# --skip-versions to keep one version); the details as text in $R/NAME.txt (the 3-6 MB report is not kept), and with
# NCU_SOURCE=1 the per-instruction counters as CSV in $R/NAME-sass.csv.
ncu_case() {
  local ncu name=$1 regex=$2 launches=$3 case=$4; shift 4
  local pick=("$@"); [ ${#pick[@]} -gt 0 ] || pick=(--default-only)
  ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
  timeout 50 "$ncu" --target-processes all --set full -k "regex:$regex" --launch-count "$launches" -f -o "$R/$name" \
    $K bench --device cuda "${pick[@]}" --no-steps --kernels "$case" --budget-ms 5 \
    --out "$R/ncu-bench-$name" > "$R/$name.log" 2>&1
  "$ncu" -i "$R/$name.ncu-rep" --page details > "$R/$name.txt" 2>&1
  # NCU_SOURCE=1: also the per-instruction counters (SASS), where an excess of sectors or wavefronts comes from.
  [ "${NCU_SOURCE:-0}" = 1 ] && "$ncu" -i "$R/$name.ncu-rep" --page source --csv --print-source sass > "$R/$name-sass.csv" 2>&1
  rm -f "$R/$name.ncu-rep"
  stamp "ncu $name: $(grep -c 'Section: GPU Speed Of Light Throughput' "$R/$name.txt") kernels"
}
# train_profile: kd train --profile, 6 fmnist_unet steps at batch 256 on the fixture (/tmp/fx), into $R/train-profile.log.
train_profile() {
  rm -rf /tmp/tr; timeout 45 $K train --config configs/fmnist_unet.json --data idx:/tmp/fx --steps 6 \
    --batch 256 --profile --out /tmp/tr --device cuda > "$R/train-profile.log" 2>&1
  stamp "training profile done"
}
# adm64_train_step: adm64's training step at the defaults ($R/bench-adm64) and PyTorch's ($R/torch-adm64.json; TORCH_ADM64_S
# seconds for it, 50 unless set: the 2026-11-27b run's took longer and gave no time).
adm64_train_step() {
  timeout 40 $K bench --device cuda --default-only --no-kernels --kernels adm64_unet.train_step \
    --budget-ms 100 --out "$R/bench-adm64" > "$R/bench-adm64.log" 2>&1
  stamp "adm64 step done"
  timeout "${TORCH_ADM64_S:-50}" python3 bench/torch_reference.py --device cuda --only adm64_unet.train_step --out "$R/torch-adm64.json" > "$R/torch-adm64.log" 2>&1
  stamp "torch adm64 done"
}
