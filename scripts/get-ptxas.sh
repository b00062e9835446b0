#!/usr/bin/env bash
# Fetches NVIDIA's ptxas for the offline PTX assembly check (kd check --compile ptx, OfflineCompileTests).
# Usage: scripts/get-ptxas.sh [DIR]      (DIR defaults to .tools/cuda in the repo root)
# Prints ptxas' path on stdout (progress goes to stderr), so: export KD_PTXAS=$(scripts/get-ptxas.sh)
#
# Where from: Debian bookworm's non-free nvidia-cuda-toolkit (CUDA 11.8). Its .deb (about 84 MB) is downloaded, not
# installed, and only usr/bin/ptxas, and cuobjdump with the nvdisasm it calls (for scripts/sass-loops.py), are unpacked
# into DIR: they need nothing but libc.
# Needs root and a Debian-like system: it adds an apt source for bookworm contrib/non-free
# (/etc/apt/sources.list.d/nonfree.sources) and runs apt-get update and apt-get download.
# Idempotent: if DIR/usr/bin/ptxas already runs, it only prints the path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(realpath -m "${1:-$root/.tools/cuda}")
ptxas=$dir/usr/bin/ptxas
fail() { echo "get-ptxas: $*" >&2; exit 1; }

if "$ptxas" --version >/dev/null 2>&1 && "$dir/usr/bin/cuobjdump" --version >/dev/null 2>&1 && "$dir/usr/bin/nvdisasm" --version >/dev/null 2>&1; then
  echo "$ptxas"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "needs root (it uses apt-get); run it as root, or set KD_PTXAS to a ptxas you have"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || fail "needs apt-get and dpkg-deb (a Debian-like system)"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || fail "$keyring is missing (apt-get install debian-archive-keyring)"

sources=/etc/apt/sources.list.d/nonfree.sources
printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: contrib non-free\nSigned-By: %s\n' \
  "$keyring" > "$sources"
echo "get-ptxas: apt-get update (with $sources)" >&2
apt-get update >&2 || fail "apt-get update failed (network? deb.debian.org must be reachable)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "get-ptxas: downloading nvidia-cuda-toolkit (about 84 MB)" >&2
(cd "$tmp" && apt-get download nvidia-cuda-toolkit >&2) || fail "apt-get download nvidia-cuda-toolkit failed"
debs=("$tmp"/nvidia-cuda-toolkit_*.deb)
deb=${debs[0]}
[ -f "$deb" ] || fail "no nvidia-cuda-toolkit .deb was downloaded"

mkdir -p "$dir"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" ./usr/bin/ptxas ./usr/bin/cuobjdump ./usr/bin/nvdisasm \
  || fail "could not unpack usr/bin/ptxas, cuobjdump and nvdisasm from $(basename "$deb")"
"$ptxas" --version >&2 || fail "$ptxas was unpacked but does not run"
echo "$ptxas"
