# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-shifted lint typecheck layers deadcode unit bench constraints audit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

# demo/ lives beside the package, as bench/ does; `calendar-sanitizer demo` in a clone runs it too.
demo: $(STAMP)
	$(BIN)/python -m demo

lint: $(STAMP)
	$(BIN)/ruff check

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

deadcode: $(STAMP)
	$(BIN)/vulture

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

# The whole suite a year ahead (and in every process it starts): no test may depend on the date.
test-shifted: $(STAMP)
	TEST_CLOCK_SHIFT_DAYS=365 $(BIN)/pytest -q

test: $(STAMP) lint typecheck layers deadcode
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench

# The exact versions a production install uses (docs/install.md): a fresh venv with every
# production extra, frozen. Run after changing dependencies, and commit the result.
PRODUCTION_EXTRAS := microsoft365,google,metrics,cryptfile
constraints:
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --upgrade pip
	.constraints-venv/bin/pip install --quiet '.[$(PRODUCTION_EXTRAS)]'
	{ echo "# pip install -c constraints.txt '.[EXTRAS]': the versions a production install uses."; \
	  echo "# Made by 'make constraints' with $$(.constraints-venv/bin/python -V)."; \
	  .constraints-venv/bin/pip freeze --exclude calendar-sanitizer; } > constraints.txt
	rm -rf .constraints-venv

# Known vulnerabilities in the pinned production versions. Not part of `make test`: pip-audit
# asks PyPI's JSON API (or OSV) for advisories, which a machine that reaches only the package
# index cannot; run it where those answer, and before every release.
audit: $(STAMP)
	$(BIN)/pip install --quiet pip-audit
	$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --strict

clean:
	rm -rf $(VENV) .constraints-venv .mypy_cache .ruff_cache .pytest_cache .hypothesis
