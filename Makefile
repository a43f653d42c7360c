# The two commands a newcomer needs: `make demo` (set up, run the tiny pipeline) and `make test`.
# Both create .venv if missing: torch 2.13.0 first (the CPU build), then chowa with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chowa-installed
RUN ?= runs/demo

.PHONY: setup demo test lint clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev,serve,ja-eval,lora,lm-eval,track,deepspeed]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/chowa pipeline --config configs/tiny/pipeline.yaml --out $(RUN)

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -rs

# The report's browser test renders report.html in headless Chromium with a Japanese font. On Debian as root (CI)
# they are installed here; elsewhere the test says it was skipped and why.
browser:
	@command -v chromium >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
		apt-get install -y -q chromium fonts-ipafont-gothic >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-ipafont-gothic >/dev/null) || \
		echo "make: could not install Chromium; the browser test will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check src tests tools benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
