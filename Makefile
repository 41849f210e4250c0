# `make test` and `make demo` each create the virtual environment and install vlmkit first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch is installed first, pinned to the release this project is tested with. From PyPI on Linux x86_64 that is the
# CUDA build (a 6.3 GB .venv, 4.1 GB of it GPU libraries and triton). TORCH_INDEX names a wheel index to take torch
# and torchvision from instead, for that one pip command only (everything else still comes from PyPI), e.g. PyTorch's
# CPU-only build, about 1.8 GB in all (README, "Two commands"); on an existing .venv run `make clean` first:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
# `make test TORCH_SPEC="torch torchvision"` takes your platform's newest build instead of the pinned one.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: setup browser test demo clean

setup: $(VENV)/.installed

# --no-compile: pip would byte-compile every module of torch and the rest (about 30 s on 2 cores); Python
# compiles the modules a run imports, once, on first import.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-compile $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	$(PY) -m pip install --quiet --no-compile -e ".[dev]"
	# lmms-eval without its 80 dependencies: the differential test of the MC rules reads two of its scoring functions
	# from the installed files; the lmms-eval plug-in's test runs its CLI with the dev extra's lmms_eval pieces
	$(PY) -m pip install --quiet --no-compile --no-deps lmms-eval==0.7.3
	touch $@

# The web chat's test drives a real Chromium (tests/inference/test_webchat_browser.py): installed here with apt-get
# when missing and possible (root on Debian, as CI runs); elsewhere that test is skipped and says why.
browser:
	@if command -v chromedriver >/dev/null 2>&1 && { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1; \
	then :; elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (apt-get) for the web chat's browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
	    || echo "could not install chromium / chromium-driver: the browser test will be skipped" >&2; \
	else echo "no chromium / chromedriver, and no apt-get as root to install them: the browser test will be skipped" >&2; fi

# --durations=25: the 25 slowest tests are listed at the end of every run, so a test that grows slow shows.
test: setup browser
	@$(PY) -m pytest -q --durations=25 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the suite is broken" >&2; exit 1; fi; exit $$rc

# The main job: synthetic videos -> caption pretraining -> instruction tuning -> evaluation, on the CPU.
demo: setup
	$(PY) -m vlmkit.demo --out output/demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
