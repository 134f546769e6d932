# Every target sets up what it needs: .venv, the package, and (where needed) the data.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every package of the environment, pinned (Python 3.11); `make lock` refreshes it.
LOCK := constraints.txt
FMNIST_DIR := /usr/share/datasets/fashion-mnist
FMNIST_FILE := $(FMNIST_DIR)/t10k-labels-idx1-ubyte.gz
export OMP_NUM_THREADS ?= 2

.PHONY: demo test test-long bench bench-autoattack lint results zoo search beyond data browser report-screenshot lock clean-venv

# PIP_CONSTRAINT pins the build environment of the editable install too.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(LOCK) $(PY) -m pip install --quiet --upgrade pip
	PIP_CONSTRAINT=$(LOCK) $(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Refresh $(LOCK): the newest versions pyproject.toml allows, installed into a fresh venv and
# frozen. Run `make lock test`, then commit constraints.txt with the figures it passed with.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Pinned environment of make demo / make test (Python 3.11). Refresh: make lock"; \
	  .venv-lock/bin/python -m pip freeze --all --exclude-editable; } > $(LOCK)
	rm -rf .venv-lock

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

# Debian's chromium for the browser test of report.html (skipped, with its reason, without it).
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium (for the browser test of report.html) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		|| echo "chromium could not be installed; the browser test will skip"; \
	else echo "No chromium: the browser test will skip (sudo apt-get install -y chromium)"; fi

# docs/img/report-quickstart.png: runs/quickstart/report.html (from `make demo`) in headless
# chromium, by the browser test's own code.
report-screenshot: $(STAMP) browser
	$(PY) experiments/report_screenshot.py runs/quickstart/report.html docs/img/report-quickstart.png

# The quickstart recipe into runs/quickstart; an earlier run there is kept (a new folder is used).
demo: $(STAMP) data
	@out=runs/quickstart; \
	if [ -e $$out ]; then out=runs/quickstart-$$(date +%Y%m%d-%H%M%S); \
		echo "runs/quickstart exists and is kept; this run goes to $$out"; fi; \
	$(VENV)/bin/robust-compress run recipes/quickstart.yaml --out $$out

test: $(STAMP) data browser
	$(PY) -m pytest -q -m "not slow"

test-long: $(STAMP) data browser
	$(PY) -m pytest -q

bench: $(STAMP) data
	$(PY) benchmarks/adversary_overhead.py
	$(PY) benchmarks/export_latency.py
	$(PY) benchmarks/int_files.py
	$(PY) benchmarks/streaming.py
	$(PY) benchmarks/train_step.py

# The audit against AutoAttack standard (torchattacks, FAB-T included) on runs/quickstart's dense
# and final models, 1000 test images (about 30 min on 2 idle cores; needs `make demo` first).
# torchattacks (the `bench` extra) is installed without its dependencies: its metadata pins an
# old requests that conflicts with $(LOCK).
bench-autoattack: $(STAMP) data
	$(PY) -c 'import torchattacks' 2>/dev/null || $(PY) -m pip install --quiet --no-deps 'torchattacks==3.5.1'
	$(PY) benchmarks/audit_vs_autoattack.py --run runs/quickstart --out docs/audit-vs-autoattack.md

# The experiments of recipes/experiments (a few hours of 2 cores; finished runs are reused, and
# copied to experiments/records/ to commit, so a fresh checkout reuses them too):
# writes docs/results.md, docs/results.json and docs/img/claim*.png.
results: $(STAMP) data
	$(PY) experiments/results.py

# torchvision and timm architectures through train, prune, int8 QAT, export and audit on
# generated RGB data (about 20-30 min on 2 cores): runs under runs/zoo, writes docs/zoo.md.
# The script is experiments/zoo.py; timm (the optional extra) is installed if missing.
zoo: $(STAMP)
	$(PY) -c 'import timm' 2>/dev/null || PIP_CONSTRAINT=$(LOCK) $(PY) -m pip install --quiet 'timm>=1.0'
	$(PY) experiments/zoo.py

# Issue 17's comparison on Fashion-MNIST: the budgeted search against uniform pruning at
# 50/70/90%, and distillation at 70%, all from one PGD-trained cnn_small (about an hour on
# 2 cores): runs under runs/search (reused or resumed), writes docs/search-results.md.
search: $(STAMP) data
	$(PY) experiments/search.py

# Issue 19's look beyond the threat ball: the corruption audit (1,000 test images, 8 corruptions
# x 5 severities) and randomized smoothing (sigma 0.12 and 0.25, n 2,000, 200 images) of the
# quickstart's dense model (torch) and its deployed model.int8.onnx (ONNX Runtime), about 10 min
# on 2 cores. Needs runs/quickstart from `make demo`; writes docs/beyond-the-ball.md, its .json
# and docs/img/beyond-the-ball.png (experiments/beyond_the_ball.py).
beyond: $(STAMP) data
	@test -f runs/quickstart/report.json || { echo "runs/quickstart/report.json is missing: run make demo first"; exit 2; }
	$(PY) experiments/beyond_the_ball.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-venv:
	rm -rf $(VENV)
