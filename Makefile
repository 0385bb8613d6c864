# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extras to install; CI (.ci/run) adds the optional ones (onnx, mpi, parity, bench).
EXTRAS ?= dev,plot

.PHONY: install demo test parity bench bench-distributed lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) (a virtual environment for graphnn)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> installing graphnn and its dependencies with extras [$(EXTRAS)] into $(VENV);"
	@echo "    the first time this downloads numpy, networkx, graphviz, matplotlib, pytest, ..."
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[$(EXTRAS)]'
	@echo '$(EXTRAS)' > $(STAMP) && echo "==> installed; $(PY) is ready"

demo: $(STAMP)
	$(VENV)/bin/graphnn demo

test: $(STAMP)
	$(PY) -m pytest -q

# Numerical parity with PyTorch (float64, tolerance 1e-7): needs the parity extra,
# e.g. `EXTRAS=dev,plot,parity make parity`; without torch the module skips with the reason.
parity: $(STAMP)
	$(PY) -m pytest -q tests/parity

bench: $(STAMP)
	$(PY) -c 'import torch, threadpoolctl' 2>/dev/null || \
		$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(PY) benchmarks/run.py

# Needs the mpi extra (EXTRAS=dev,plot,mpi): K = 1 vs 2 ranks, docs/distributed.md
bench-distributed: $(STAMP)
	$(VENV)/bin/mpiexec -n 2 $(PY) benchmarks/distributed.py

lint: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check ruff
	$(VENV)/bin/ruff check graphnn compiler runtime tests examples benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info
