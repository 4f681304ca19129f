#!/usr/bin/env bash
# Sets tfaccel up on a fresh Debian/Ubuntu machine. Safe to run again.
#   - Debian's SWORD Bible modules, for the translation task (KJV, RV1909),
#     and word lists (wamerican, wbritish), the unlabelled words that the
#     distillation recipes have the teacher label;
#   - a virtualenv in .venv with tfaccel installed (editable) with its dev
#     extras, tfmot (the Keras 2 peer that tests compare schedules with) and
#     CTranslate2 (the ctranslate2 export formats, and the fastest peer) and
#     OpenVINO with NNCF (a benchmark peer).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in sword-text-kjv sword-text-sparv wamerican wbritish; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: the translation task and distillation on unlabelled words need: sudo apt-get install ${missing[*]}" >&2
  fi
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,tfmot,ctranslate2,openvino]"
echo "tfaccel is set up in .venv ($(.venv/bin/python --version))"
