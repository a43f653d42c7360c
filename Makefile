# The two commands a newcomer needs: `make demo` (set up, run the tiny pipeline) and `make test`.
# Both create .venv if missing: torch 2.13.0 first (the CPU build), then chowa with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chowa-installed
RUN ?= runs/demo

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,serve,ja-eval,lora,lm-eval,track]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chowa pipeline --config configs/tiny/pipeline.yaml --out $(RUN)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests tools benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
