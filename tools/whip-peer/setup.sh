#!/usr/bin/env bash
# Installs the independent WebRTC peer of the WHIP test (server/tests/it/whip.rs):
# a Python venv with aiortc 1.16.0 (and its PyAV wheels) from PyPI, in
# $WHIP_PEER_DIR (default ~/.cache/onair/whip-peer, outside the clone, so it is
# reused between clones and CI runs). Quiet when it is there.
set -euo pipefail
DIR=${ONAIR_WHIP_PEER_DIR:-$HOME/.cache/onair/whip-peer}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -x venv/bin/python ] || ! venv/bin/python -c 'import aiortc, av' 2>/dev/null; then
  echo "installing the WHIP test peer (aiortc 1.16.0) into $DIR/venv"
  python3 -m venv venv
  venv/bin/pip install --quiet --disable-pip-version-check aiortc==1.16.0
fi
