# The two commands: `make run` and `make test`. Everything else is what they stand on.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app:create_app
# `make run` is the embedded set-up: it may make its own secret key and load the demo logins.
EMBEDDED := RESERVKORT_EMBEDDED=1
PORT ?= 5000
AXE := tests/axe/node_modules/axe-core/axe.min.js
SYSTEM_PACKAGES := pcscd vsmartcard-vpcd swig libpcsclite-dev chromium

.PHONY: run test venv deps dev-deps system-deps translations migrate lint bench clean

run: deps translations migrate  ## serve the back office with the jobs running in-process
	$(EMBEDDED) $(BIN)/python run.py

test: dev-deps translations  ## install what the tests need and run the whole suite
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python

deps: venv
	$(BIN)/pip install --quiet -r requirements.txt

dev-deps: venv system-deps $(AXE)
	$(BIN)/pip install --quiet -r requirements-dev.txt

# axe-core for the browser accessibility test, from the npm package pinned in tests/axe.
$(AXE): tests/axe/package.json tests/axe/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing npm"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	  else echo "ERROR: npm is missing (apt-get install npm)"; exit 1; fi; }
	cd tests/axe && npm ci --no-audit --no-fund --silent
	touch $@

# The reader-bridge tests need a real PC/SC stack and the browser tests Debian's Chromium.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "ERROR: missing system packages:$$missing (install them as root: apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

translations: venv
	$(BIN)/python -m app.translations.build >/dev/null

migrate: deps
	$(EMBEDDED) $(FLASK) db upgrade
	$(EMBEDDED) $(FLASK) reservkort init
	$(EMBEDDED) $(FLASK) reservkort demo

lint: dev-deps
	$(BIN)/ruff check .

bench: dev-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
