# Every target calls a package CLI (python -m <package> ...); no logic lives here.
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

.PHONY: setup test bench all backbone evaluate export export-check compile inspect fpga-estimate fpga-project bitstream \
        bundle demo deploy fl fl-compare fl-deploy clean

# The embedded default: synthetic data, ResNet-9 strided 16 fm at 32x32, custom_perf, emulator.
NAME     ?= default
ARCH     ?= custom_perf
MHZ      ?= 50
RTL_DIR  ?= build/fpga/rtl_$(ARCH)
PYNQ_DIR ?= PYNQ
BACKEND  ?= emulator
BOARD    ?=

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v tclsh >/dev/null || { echo "installing Debian package tcl (tclsh runs the Vivado stand-in tests)"; \
	  apt-get install -y -q tcl >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q tcl >/dev/null; } || \
	  echo "warning: could not install tcl; the fpga design tests will be skipped"; }
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

# The whole chain on the embedded default, board stand-ins included (no Vivado, no board needed).
all: backbone export compile bundle demo

backbone: $(STAMP)
	$(PY) -m train fit --out build/backbone/$(NAME).pt

evaluate: $(STAMP)
	$(PY) -m train evaluate --checkpoint build/backbone/$(NAME).pt --ways 5 --shots 1 --queries 15 --episodes 2000 --json

export: $(STAMP)
	$(PY) -m export --checkpoint build/backbone/$(NAME).pt --out build/export

export-check: $(STAMP)
	$(PY) -m export check --onnx build/export/$(NAME).onnx

compile: $(STAMP)
	$(PY) -m tensil compile --onnx build/export/$(NAME).onnx --arch $(ARCH) --out build/tensil

inspect: $(STAMP)
	$(PY) -m tensil inspect --tmodel build/tensil/$(NAME)_$(ARCH).tmodel --memory --estimate --mhz 125

fpga-estimate: $(STAMP)
	$(PY) -m fpga estimate --arch $(ARCH)

fpga-project: $(STAMP)
	$(PY) -m fpga project --arch $(ARCH) --mhz $(MHZ) --rtl-dir $(RTL_DIR) --pynq-dir $(PYNQ_DIR) --check

bitstream: $(STAMP)
	$(PY) -m fpga build --arch $(ARCH) --mhz $(MHZ) --rtl-dir $(RTL_DIR) --pynq-dir $(PYNQ_DIR)

bundle: $(STAMP)
	$(PY) -m board bundle --onnx build/export/$(NAME).onnx --tensil build/tensil --arch $(ARCH) \
	  --fpga build/fpga/$(ARCH)_$(MHZ)MHz --out build/bundle/$(NAME)

demo: $(STAMP)
	$(PY) -m train sample-images --dataset synthetic --split novel --classes 5 --per-class 20 \
	  --image-size 96 --seed 0 --out build/demo/samples.npz
	$(PY) -m board video --samples build/demo/samples.npz --out build/demo/input
	$(PY) -m board demo --bundle build/bundle/$(NAME) --backend $(BACKEND) --video build/demo/input --out build/demo

deploy: $(STAMP)
	$(PY) -m board deploy --bundle build/bundle/$(NAME) --board $(BOARD)

fl: $(STAMP)
	$(PY) -m fl_bridge run --out build/fl/default

fl-compare: $(STAMP)
	$(PY) -m fl_bridge compare --out build/fl/compare

fl-deploy: $(STAMP)
	$(PY) -m fl_bridge deploy --run build/fl/default

clean:
	rm -rf build
