#!/usr/bin/env bash
# The README's results table in one command: every tfaccel pipeline and every
# peer, measured on this machine with the same pinned threads.
#
# 1. Runs the pipelines' recipes (training the cached G2P baseline, and the
#    24-epoch teacher that g2p-shrink-distill starts from, when missing), then
#    times every runtime of each run with `tfaccel bench` (a fresh process per
#    runtime, THREADS threads each).
# 2. Runs tools/peers.py on the baseline (THREADS threads for every runtime).
# 3. Merges both with tools/results_table.py into $OUT/results.md (for the
#    README to include) and $OUT/wer_latency.png.
#
# Hours on 2 CPU cores: baseline ~25 min, teacher ~60 min, each recipe 15-30
# min, the peers (tfmot training included) and timings about an hour.
# Settings, from the environment (defaults shown):
#   THREADS=1 WARMUP=5 REPEATS=30 TFMOT_EPOCHS=4 OUT=results PEERS_OUT=savedmodels/peers
#   REUSE=1      keep run folders that already have metrics.json (default: rerun)
#   DRY_RUN=1    print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."
tfaccel="${TFACCEL:-.venv/bin/tfaccel}"
python="${PYTHON:-.venv/bin/python}"
threads="${THREADS:-1}"
warmup="${WARMUP:-5}"
repeats="${REPEATS:-30}"
out="${OUT:-results}"
peers_out="${PEERS_OUT:-savedmodels/peers}"
# The 4 + 2 epochs of g2p-prune50-qat-int8: tfmot gets the same budget.
tfmot_epochs="${TFMOT_EPOCHS:-4}"
baseline=savedmodels/baseline-g2p-small/model.keras
teacher=savedmodels/teacher24/baseline-g2p-small/model.keras
recipes=(
  recipes/g2p-prune50-qat-int8.yaml
  recipes/g2p-prune-cluster-qat.yaml
  recipes/g2p-shrink-distill.yaml
)

step() {
  echo "+ $*" >&2
  if [[ -z "${DRY_RUN:-}" ]]; then "$@"; fi
}

run_dir() {  # the folder `tfaccel run` writes for a recipe
  "$python" -c 'import sys, yaml
r = yaml.safe_load(open(sys.argv[1]))
print(r.get("output_dir", "savedmodels") + "/" + r["name"])' "$1"
}

for recipe in "${recipes[@]}"; do
  [[ -f "$recipe" ]] || { echo "bench_all.sh: missing $recipe" >&2; exit 2; }
done

# === 1. tfaccel pipelines ===
if [[ ! -f "$teacher" ]]; then
  step "$tfaccel" baseline --task g2p --preset small --epochs 24 \
    --output-root savedmodels/teacher24
fi
runs=()
for recipe in "${recipes[@]}"; do
  dir="$(run_dir "$recipe")"
  runs+=("$dir")
  if [[ -n "${REUSE:-}" && -f "$dir/metrics.json" ]]; then
    echo "Reusing $dir (REUSE is set)" >&2
  else
    # Exit code 1: an `assert` limit was missed; the run folder is written.
    step "$tfaccel" run "$recipe" || [[ $? -eq 1 ]]
  fi
  step "$tfaccel" bench "$dir" --threads "$threads" --warmup "$warmup" \
    --repeats "$repeats" --batch-sizes 1,16
done

# === 2. Peers, from the baseline the first two recipes started from ===
step "$python" tools/peers.py --baseline "$baseline" --out "$peers_out" \
  --threads "$threads" --warmup "$warmup" --repeats "$repeats" \
  --batch-sizes 1,16 --tfmot-epochs "$tfmot_epochs"

# === 3. One table and one plot ===
step "$python" tools/results_table.py --peers "$peers_out/peers.json" \
  --runs "${runs[@]}" --out "$out/results.md" --plot "$out/wer_latency.png"
