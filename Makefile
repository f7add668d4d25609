# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint setup dist

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/.installed

run: setup
	$(BIN)/python server.py

test: setup
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: setup
	$(BIN)/ruff check .

# One executable file for servers without Python: dist/zhugeleida (see tools/build_dist.sh).
$(BIN)/.installed-dist: $(BIN)/.installed requirements-dist.txt
	$(BIN)/pip install --quiet -r requirements-dist.txt
	touch $@

dist: $(BIN)/.installed-dist
	bash tools/build_dist.sh
