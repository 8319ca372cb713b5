#!/usr/bin/env bash
# Extracts opencv-doc's examples/data (82 real photos, the Middlebury
# Aloe stereo pair with ground-truth disparity, flow frames) into a cache
# folder for the flow benchmark (benchmarks/repro/flow_repro.py) and,
# optionally, as extra textures of the flow generator
# (config.input.texture_dirs). Debian package only (opencv-doc); the
# library and the tests do not need it. Bootstrap only: nothing at training or test time downloads.
# Idempotent. Prints the folder.
#   usage: bash scripts/fetch_flow_data.sh [DIR]
#   default DIR: <repo>/.cache/opencv_data
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/.cache/opencv_data}"
data="$dir/examples/data"
if [ ! -s "$data/aloeGT.png" ]; then
  mkdir -p "$dir"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if [ -d /usr/share/doc/opencv-doc/examples/data ]; then
    cp -r /usr/share/doc/opencv-doc/examples "$dir/"
  else
    (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1) || {
      apt-get update -qq >/dev/null 2>&1 || true
      (cd "$tmp" && apt-get download opencv-doc >/dev/null)
    }
    dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb |
      tar -x -C "$tmp" --wildcards './usr/share/doc/opencv-doc/examples/data/*'
    mkdir -p "$dir/examples"
    rm -rf "$data"
    mv "$tmp/usr/share/doc/opencv-doc/examples/data" "$data"
  fi
fi
[ -s "$data/aloeGT.png" ] || { echo "fetch_flow_data: $data/aloeGT.png missing" >&2; exit 1; }
echo "$data"
