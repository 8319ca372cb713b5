# Two entry points; each bootstraps .venv on a fresh machine (scripts/env.sh).
.PHONY: main test
main:
	bash -c 'source scripts/env.sh && python launch/main.py --workdir=workdirs/main'
test:
	bash -c 'source scripts/env.sh && python -m pytest -q tests'
