# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run demo test lint setup browser dist

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/.installed

# The browser tests (tests/e2e) drive Debian's chromium, never a downloaded browser: installed here if missing.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei; \
	  else \
	    echo "tests/e2e need Debian's chromium at /usr/bin/chromium: run 'make browser' as root" \
	         "(or 'sudo apt-get install chromium fonts-wqy-microhei')" >&2; exit 1; \
	  fi; \
	fi

run: setup
	$(BIN)/python server.py

# For a look around: the demo company (logins printed; admin / admin123), then the service on it.
demo: setup
	$(BIN)/python server.py demo
	$(BIN)/python server.py

test: setup browser
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .
	$(BIN)/mypy

# ruff, and mypy on the service's code (mypy.ini says what and how strictly)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# One executable file for servers without Python: dist/zhugeleida (see tools/build_dist.sh).
$(BIN)/.installed-dist: $(BIN)/.installed requirements-dist.txt
	$(BIN)/pip install --quiet -r requirements-dist.txt
	touch $@

dist: $(BIN)/.installed-dist
	bash tools/build_dist.sh
