# Two entry points; each bootstraps .venv on a fresh machine (scripts/env.sh).
# `make main` installs the core only; `make test` adds the `hf` extra (torch
# CPU and transformers), which tests/hf needs. `make quick` is the edit-loop
# tier: the suite without the tests marked slow (pytest.ini). The tests run
# on two pytest-xdist workers (tests/conftest.py says how they are shared
# out); `make test XDIST=` runs them in one process.
XDIST = -n 2 --dist loadgroup
.PHONY: main test quick
main:
	bash -c 'source scripts/env.sh && python launch/main.py --workdir=workdirs/main'
test:
	bash -c 'source scripts/env.sh hf && python -m pytest -q $(XDIST) tests'
quick:
	bash -c 'source scripts/env.sh hf && python -m pytest -q $(XDIST) -m "not slow" tests'
