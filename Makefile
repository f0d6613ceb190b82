# One entry point for tooling. Each target creates .venv if missing and installs the package into
# it with the pinned constraints (torch==2.13.0 CPU among them).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# one worker per core; an idle worker takes tests queued for the other (a few long files would
# otherwise leave one worker alone at the end); each worker runs torch and XLA single-threaded
# (tests/conftest.py)
PYTEST_WORKERS ?= auto
PYTEST := MPLBACKEND=Agg $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: install test test-fast demo lint format benchmark clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/bayesvae vae --data digits --epochs 200 --latent-dim 2 --out runs/demo
	@echo "run folder written to runs/demo"

lint: $(STAMP)
	$(BIN)/ruff check bayesvae tests examples benchmarks

format: $(STAMP)
	$(BIN)/ruff format bayesvae tests examples benchmarks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/vae_mnist.py
	$(BIN)/python benchmarks/vae_variants.py
	$(BIN)/python benchmarks/augment.py
	$(BIN)/python benchmarks/vae_anomaly.py
	$(BIN)/python benchmarks/abtest.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/anomaly.py
	$(BIN)/python benchmarks/prodlda.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/text_vae.py

clean:
	rm -rf $(VENV) runs .pytest_cache
