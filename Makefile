# `make test` and `make demo` each create the virtual environment and install vlmkit first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch is installed first, pinned to the CPU-friendly build this project is tested with; on a GPU machine use e.g.
# `make test TORCH_SPEC="torch torchvision"` to take your platform's build instead.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: setup test demo clean

setup: $(VENV)/.installed

# --no-compile: pip would byte-compile every module of torch and the rest (about 30 s on 2 cores); Python
# compiles the modules a run imports, once, on first import.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile $(TORCH_SPEC)
	$(PY) -m pip install --quiet --no-compile -e ".[dev]"
	# lmms-eval's own scoring functions, for the differential test of the MC rules: without its 80 dependencies
	# (the test reads the two functions from the installed files and needs none of them)
	$(PY) -m pip install --quiet --no-compile --no-deps lmms-eval==0.7.3
	touch $@

# --durations=25: the 25 slowest tests are listed at the end of every run, so a test that grows slow shows.
test: setup
	@$(PY) -m pytest -q --durations=25 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; exit $$rc

# The main job: synthetic videos -> caption pretraining -> instruction tuning -> evaluation, on the CPU.
demo: setup
	$(PY) -m vlmkit.demo --out output/demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
