# The README's two commands: `make demo` (the main job) and `make test`. Both create the environment first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ocr2-installed

.PHONY: demo test env clean

# torch==2.13.0 first: a looser requirement resolved by pip would fetch a multi-GB CUDA build on CPU machines.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(PY) -m eval.demo

# Two workers, each taking whole test files (module fixtures such as trained runs are built once per file).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

clean:
	rm -rf $(VENV) outputs multirun runs
