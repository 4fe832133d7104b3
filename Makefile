# Every target calls a package CLI (python -m <package> ...); no logic lives here.
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

.PHONY: setup test bench backbone export compile

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

backbone: $(STAMP)
	$(PY) -m train fit --out build/backbone/default.pt

export: $(STAMP)
	$(PY) -m export --checkpoint build/backbone/default.pt --out build/export

compile: $(STAMP)
	$(PY) -m tensil compile --onnx build/export/default.onnx --arch custom_perf --out build/tensil
