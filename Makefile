# Every target sets up what it needs: .venv, the package, and (where needed) the data.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist
FMNIST_FILE := $(FMNIST_DIR)/t10k-labels-idx1-ubyte.gz
export OMP_NUM_THREADS ?= 2

.PHONY: demo test test-long bench lint results data clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's dataset-fashion-mnist puts the four IDX files under $(FMNIST_DIR).
data:
	@if [ -f $(FMNIST_FILE) ] || [ -n "$$RC_FASHION_MNIST" ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's dataset-fashion-mnist ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "Fashion-MNIST is missing. Run: sudo apt-get install -y dataset-fashion-mnist"; \
		echo "(or set RC_FASHION_MNIST=/path/to/idx-files)"; exit 2; \
	fi

# The quickstart recipe into runs/quickstart; an earlier run there is kept (a new folder is used).
demo: $(STAMP) data
	@out=runs/quickstart; \
	if [ -e $$out ]; then out=runs/quickstart-$$(date +%Y%m%d-%H%M%S); \
		echo "runs/quickstart exists and is kept; this run goes to $$out"; fi; \
	$(VENV)/bin/robust-compress run recipes/quickstart.yaml --out $$out

test: $(STAMP) data
	$(PY) -m pytest -q -m "not slow"

test-long: $(STAMP) data
	$(PY) -m pytest -q

bench: $(STAMP) data
	$(PY) benchmarks/adversary_overhead.py
	$(PY) benchmarks/export_latency.py

# The experiments of recipes/experiments (a few hours of 2 cores; finished runs are reused):
# writes docs/results.md, docs/results.json and docs/img/claim*.png.
results: $(STAMP) data
	$(PY) experiments/results.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
