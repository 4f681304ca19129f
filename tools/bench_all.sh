#!/usr/bin/env bash
# The README's results tables in one command: every tfaccel pipeline and every
# peer, timed in one process per model size with the same pinned threads.
#
# G2P small (trained):
# 1. Runs the pipelines' recipes (training the cached 12-epoch G2P baseline
#    first when it is missing).
# 2. Runs tools/peers.py on that baseline, with the pipelines' deployable
#    files (`--tfaccel`) in the same timing rotation and scoring as the peers.
# base preset (timing only, untrained weights):
# 3. Runs recipes/g2p-base-shrink-int8.yaml (its baseline is the untrained
#    base model), then tools/peers.py on that baseline with the shrunk int8
#    file in the rotation, without scoring and without the tfmot peers.
# 4. Merges each into $OUT/results-small.md and $OUT/results-base.md (for
#    the README), with a plot of WER against latency for small.
#
# On 2 CPU cores: baseline ~30 min, the three recipes ~60 min, the small
# peers ~30 min (tfmot training included), base ~20 min.
# Settings, from the environment (defaults shown):
#   THREADS=1 WARMUP=5 REPEATS=30 TFMOT_EPOCHS=4 OUT=results
#   BASE_REPEATS=10  repeats for the base preset (its naive peer is slow)
#   REUSE=1          keep run folders that already have metrics.json
#   BENCH_RUNS=1     also run `tfaccel bench` on each run folder (per-runtime
#                    processes: peak RSS, p90/p99 at batch 16)
#   DRY_RUN=1        print the commands instead of running them
set -euo pipefail
cd "$(dirname "$0")/.."
tfaccel="${TFACCEL:-.venv/bin/tfaccel}"
python="${PYTHON:-.venv/bin/python}"
threads="${THREADS:-1}"
warmup="${WARMUP:-5}"
repeats="${REPEATS:-30}"
base_repeats="${BASE_REPEATS:-10}"
out="${OUT:-results}"
# The 4 + 2 epochs of g2p-prune50-qat-int8: tfmot gets the same budget.
tfmot_epochs="${TFMOT_EPOCHS:-4}"
baseline=savedmodels/baseline-g2p-small/model.keras
base_recipe=recipes/g2p-base-shrink-int8.yaml
# Each pipeline and the files of it to time against the peers.
recipes=(
  recipes/g2p-prune50-qat-int8.yaml
  recipes/g2p-prune-cluster-qat.yaml
  recipes/g2p-shrink-distill-int8.yaml
)
declare -A files=(
  [recipes/g2p-prune50-qat-int8.yaml]="model_int8.tflite onnx_int8"
  [recipes/g2p-prune-cluster-qat.yaml]="model_int8.tflite"
  [recipes/g2p-shrink-distill-int8.yaml]="model_int8.tflite"
  [$base_recipe]="model_int8.tflite"
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

run_recipe() {  # runs a recipe unless REUSE keeps its folder; prints the folder
  local dir
  dir="$(run_dir "$1")"
  if [[ -n "${REUSE:-}" && -f "$dir/metrics.json" ]]; then
    echo "Reusing $dir (REUSE is set)" >&2
  else
    # Exit code 1: an `assert` limit was missed; the run folder is written.
    step "$tfaccel" run "$1" >&2 || [[ $? -eq 1 ]]
  fi
  if [[ -n "${BENCH_RUNS:-}" ]]; then
    step "$tfaccel" bench "$dir" --threads "$threads" --warmup "$warmup" \
      --repeats "$repeats" --batch-sizes 1,16 >&2
  fi
  echo "$dir"
}

for recipe in "${recipes[@]}" "$base_recipe"; do
  [[ -f "$recipe" ]] || { echo "bench_all.sh: missing $recipe" >&2; exit 2; }
done

# === G2P small ===
artifacts=()
for recipe in "${recipes[@]}"; do
  dir="$(run_recipe "$recipe")"
  for file in ${files[$recipe]}; do artifacts+=("$dir/$file"); done
done
step "$python" tools/peers.py --baseline "$baseline" --out savedmodels/peers \
  --threads "$threads" --warmup "$warmup" --repeats "$repeats" \
  --batch-sizes 1,16 --tfmot-epochs "$tfmot_epochs" --tfaccel "${artifacts[@]}"
step "$python" tools/results_table.py --peers savedmodels/peers/peers.json \
  --max-loss 1.5 --out "$out/results-small.md" --plot "$out/wer_latency.png"

# === base preset, timing only ===
dir="$(run_recipe "$base_recipe")"
base_baseline="$(dirname "$dir")/baseline-g2p-base/model.keras"
step "$python" tools/peers.py --baseline "$base_baseline" --timing-only \
  --skip tfmot --out savedmodels/peers-base --threads "$threads" \
  --warmup 2 --repeats "$base_repeats" --batch-sizes 1,16 \
  --tfaccel "$dir/${files[$base_recipe]}"
step "$python" tools/results_table.py --peers savedmodels/peers-base/peers.json \
  --out "$out/results-base.md"
