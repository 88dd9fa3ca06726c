# Syrinx developer commands. `make test` installs everything from this repo's own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU installs pin torch to a CPU build; an unpinned torch pulls ~3 GB of CUDA libraries.
CONSTRAINTS ?= constraints/cpu.txt
STAMP := $(VENV)/.installed

.PHONY: install test run bench-engine clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# Until the gRPC service lands, `make run` speaks through the engine with the bundled voice.
TEXT ?= Hello from Syrinx. This audio was streamed from our own torch implementation of a Piper voice.
run: $(STAMP)
	$(PY) -m syrinx.server.engine "$(TEXT)" -o out.wav

ROUNDS ?= 5
bench-engine: $(STAMP)
	$(PY) -m bench.engine_bench --rounds $(ROUNDS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
