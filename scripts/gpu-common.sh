# Sourced by the GPU scripts (gpu-bench.sh, gpu-defaults.sh) after they set out (the $OUT folder), R (a work folder)
# and tarball (the name of the archive under $out).
mkdir -p "$R" "$out"
begin=$(date +%s)
# stamp TEXT: a line in the timeline, and everything so far packed into $out, so a run cut short still returns it.
stamp() { echo "$(( $(date +%s) - begin )) s: $*" | tee -a "$R/timeline.txt"; tar czf "$out/$tarball" -C "$R" .; }
kd() { bash .device/run KernelDiffusion.Cli "$@"; }
# check_cuda SECONDS: kd check on CUDA into $R/check, its count in the timeline.
check_cuda() {
  timeout "$1" bash .device/run KernelDiffusion.Cli check --device cuda --out "$R/check" > "$R/check.log" 2>&1
  stamp "check: $(grep -ho '[0-9]* passed, [0-9]* failed' "$R/check.log" | tail -1)"
}
# join_ratios KERNELS.json: the steps ($R/bench-steps) and a kernel-case run, made apart, as one ratio table beside
# PyTorch's ($R/torch.json).
join_ratios() {
  python3 bench/merge.py "$R/bench-all.json" "$R/bench-steps/bench.json" "$1" > /dev/null 2>&1
  python3 bench/join.py "$R/bench-all.json" "$R/torch.json" --out "$R/ratios.md" > "$R/join.log" 2>&1
}
kd info > "$R/info.txt" 2>&1
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv >> "$R/info.txt" 2>&1
