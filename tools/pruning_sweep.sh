#!/usr/bin/env bash
# Runs the pruning recipes from the cached G2P baseline and compares them.
# Trains the baseline first if it is not cached (about 25 min on 2 cores);
# the 50% and 2:4 recipes then fine-tune for 4 epochs (about 8 min each),
# the 80% one for 8 (about 26 min).
set -euo pipefail
cd "$(dirname "$0")/.."
tfaccel="${TFACCEL:-.venv/bin/tfaccel}"
python="${PYTHON:-.venv/bin/python}"
for recipe in g2p-prune50 g2p-prune80 g2p-prune-2of4; do
  "$tfaccel" run "recipes/$recipe.yaml"
done
"$python" tools/compare_runs.py savedmodels/baseline-g2p-small \
  savedmodels/g2p-prune50 savedmodels/g2p-prune80 savedmodels/g2p-prune-2of4
