#!/usr/bin/env bash
# Fetches NVIDIA's ptxas for the offline PTX assembly check (kd check --compile ptx, OfflineCompileTests).
# Usage: scripts/get-ptxas.sh [DIR [DIR12]]   (DIR defaults to .tools/cuda, DIR12 to .tools/cuda12 in the repo root)
# Prints the CUDA 11.8 ptxas' path on stdout (progress goes to stderr), so: export KD_PTXAS=$(scripts/get-ptxas.sh)
#
# Where from: Debian bookworm's non-free nvidia-cuda-toolkit (CUDA 11.8) into DIR, and trixie's (CUDA 12.4) into DIR12.
# Each .deb (about 85 MB) is downloaded, not installed, and only usr/bin/ptxas, and cuobjdump with the nvdisasm it calls
# (for scripts/sass-loops.py), are unpacked: they need nothing but libc. 11.8 assembles the sm_80 PTX ILGPU writes for
# every kernel (the assembler of every register count in bench/NOTES.md); 12.4 the kernels retargeted to sm_90 (GEMM
# v22's bulk copies need PTX ISA 8.0), which kd check finds in .tools/cuda12 or KD_PTXAS_SM90. 12.4 is best effort:
# if it cannot be had, a warning says so and only those kernels go unassembled.
# Needs root and a Debian-like system: it adds an apt source for bookworm's and trixie's contrib/non-free
# (/etc/apt/sources.list.d/nonfree.sources) and runs apt-get update and apt-get download.
# Idempotent: if both ptxas already run, it only prints the path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(realpath -m "${1:-$root/.tools/cuda}")
dir12=$(realpath -m "${2:-$root/.tools/cuda12}")
ptxas=$dir/usr/bin/ptxas
fail() { echo "get-ptxas: $*" >&2; exit 1; }
runs() { "$1/usr/bin/ptxas" --version >/dev/null 2>&1 && "$1/usr/bin/cuobjdump" --version >/dev/null 2>&1 && "$1/usr/bin/nvdisasm" --version >/dev/null 2>&1; }

if runs "$dir" && runs "$dir12"; then
  echo "$ptxas"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "needs root (it uses apt-get); run it as root, or set KD_PTXAS to a ptxas you have"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || fail "needs apt-get and dpkg-deb (a Debian-like system)"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || fail "$keyring is missing (apt-get install debian-archive-keyring)"

sources=/etc/apt/sources.list.d/nonfree.sources
printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm trixie\nComponents: contrib non-free\nSigned-By: %s\n' \
  "$keyring" > "$sources"
echo "get-ptxas: apt-get update (with $sources)" >&2
apt-get update >&2 || fail "apt-get update failed (network? deb.debian.org must be reachable)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# unpack VERSION-PREFIX DIR: downloads the newest nvidia-cuda-toolkit whose version starts so and unpacks its tools.
unpack() {
  local version
  version=$(apt-cache madison nvidia-cuda-toolkit | awk '{print $3}' | grep "^$1" | sort -V | tail -n 1)
  [ -n "$version" ] || { echo "get-ptxas: no nvidia-cuda-toolkit $1* in the apt sources" >&2; return 1; }
  echo "get-ptxas: downloading nvidia-cuda-toolkit $version (about 85 MB)" >&2
  rm -f "$tmp"/*.deb
  (cd "$tmp" && apt-get download "nvidia-cuda-toolkit=$version" >&2) || { echo "get-ptxas: apt-get download failed" >&2; return 1; }
  local debs=("$tmp"/nvidia-cuda-toolkit_*.deb)
  [ -f "${debs[0]}" ] || { echo "get-ptxas: no .deb was downloaded" >&2; return 1; }
  mkdir -p "$2"
  dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "$2" ./usr/bin/ptxas ./usr/bin/cuobjdump ./usr/bin/nvdisasm \
    || { echo "get-ptxas: could not unpack usr/bin/ptxas, cuobjdump and nvdisasm from $(basename "${debs[0]}")" >&2; return 1; }
  "$2/usr/bin/ptxas" --version >&2 || { echo "get-ptxas: $2/usr/bin/ptxas was unpacked but does not run" >&2; return 1; }
}

runs "$dir" || unpack 11.8 "$dir" || fail "could not get CUDA 11.8's ptxas"
runs "$dir12" || unpack 12. "$dir12" \
  || echo "get-ptxas: warning: no CUDA 12 ptxas; the kernels retargeted to sm_90 (GEMM v22) will not be assembled" >&2
echo "$ptxas"
