# Every target calls a package CLI (python -m <package> ...); no logic lives here.
# The chain's targets are files: a stage runs again only when an input file or its configuration
# (the make variables it uses, recorded under build/.config/) changed; `make all` twice does the work once.
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed

.PHONY: setup test bench all backbone evaluate export export-check compile inspect fpga-estimate fpga-project bitstream \
        bundle demo deploy doctor fl fl-compare fl-deploy fl-precision dse clean

# The embedded default: synthetic data, ResNet-9 strided 16 fm at 32x32, custom_perf, emulator.
# DATASET / DATA_ROOT / IMAGE_SIZE choose the images (README, "Your own data"): they reach training,
# export's parity check and the demo's video (the novel classes of the same dataset). Every dataset
# trains at 32x32 by default: PEFSL's accelerator is real-time only at 32x32 (84x84 networks need
# more than 2000 KCycles a frame), and a network must be trained at the size it runs at.
DATASET    ?= synthetic
DATA_ROOT  ?=
IMAGE_SIZE ?= 32
# A real dataset gets its own artifact name, so switching back and forth never clashes.
NAME     ?= $(if $(filter synthetic,$(DATASET)),default,$(DATASET))
ARCH     ?= custom_perf
MHZ      ?= 50
RTL_DIR  ?= build/fpga/rtl_$(ARCH)
PYNQ_DIR ?= PYNQ
BACKEND  ?= emulator
BOARD    ?=
FORCE    ?=
# Extra `train fit` flags. Fashion-MNIST's 30,000 base images take about 4 minutes an epoch on a
# 2-core CPU, so its default is a short 2-epoch schedule (one cosine cycle); 12 epochs (train fit's
# default, every other dataset) would take most of an hour there.
TRAIN_FLAGS_fashionmnist := --epochs 2 --cycle-epochs 2
TRAIN_FLAGS  ?= $(TRAIN_FLAGS_$(DATASET))
EXPORT_FLAGS ?=
ROOT_FLAG   = $(if $(DATA_ROOT),--data-root $(DATA_ROOT))
DATA_FLAGS  = --dataset $(DATASET) $(ROOT_FLAG)
# The demo's pictures: the synthetic classes are rendered at 96 px; a real dataset's novel images
# are taken at the training size, from the images training already decoded.
SAMPLE_SIZE = $(if $(filter synthetic,$(DATASET)),96,$(IMAGE_SIZE))

CFG     := build/.config
CKPT    := build/backbone/$(NAME).pt
ONNX    := build/export/$(NAME).onnx
TMODEL  := build/tensil/$(NAME)_$(ARCH).tmodel
FPGA_DIR := build/fpga/$(ARCH)_$(MHZ)MHz
BUNDLE  := build/bundle/$(NAME)/model.json
SAMPLES := build/demo/samples.npz
VIDEO   := build/demo/input/video.avi
DEMO_LOG := build/demo/log.json

# $(call config,NAME,TEXT): build/.config/NAME holds TEXT, rewritten (new mtime) only when TEXT changes.
config = @mkdir -p $(dir $(CFG)/$(1)) && printf '%s\n' '$(2)' | cmp -s - $(CFG)/$(1) || printf '%s\n' '$(2)' > $(CFG)/$(1)

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

backbone: $(CKPT)
export: $(ONNX)
compile: $(TMODEL)
bundle: $(BUNDLE)
demo: $(DEMO_LOG)

# The model stages keep one stamp per NAME (build/.config/NAME/STAGE), so models of several names
# live side by side; the demo's stamps (build/.config/STAGE) follow the last `make demo`.
$(CFG)/%: FORCE_CONFIG
	$(call config,$*,$(CONFIG_$(notdir $*)))
.PHONY: FORCE_CONFIG
FORCE_CONFIG:
CONFIG_backbone = $(DATA_FLAGS) --image-size $(IMAGE_SIZE) $(TRAIN_FLAGS)
CONFIG_export   = $(ROOT_FLAG) $(EXPORT_FLAGS)
CONFIG_samples  = $(DATA_FLAGS) --image-size $(SAMPLE_SIZE)
CONFIG_compile  = $(ARCH)
CONFIG_bundle   = $(ARCH) $(MHZ) $(wildcard $(FPGA_DIR)/design.bit)
CONFIG_demo     = $(NAME) $(BACKEND)

# train fit says "nothing to do" (exit 0) for a finished checkpoint of the same configuration and
# refuses to replace one of another configuration unless FORCE=1; touch records the check.
$(CKPT): $(CFG)/$(NAME)/backbone | $(STAMP)
	$(PY) -m train fit --out $@ $(CONFIG_backbone) $(if $(FORCE),--force) && touch $@

$(ONNX): $(CKPT) $(CFG)/$(NAME)/export | $(STAMP)
	$(PY) -m export --checkpoint $(CKPT) --out $(dir $@) $(CONFIG_export)

$(TMODEL): $(ONNX) $(CFG)/$(NAME)/compile | $(STAMP)
	$(PY) -m tensil compile --onnx $(ONNX) --arch $(ARCH) --out $(dir $@)

$(BUNDLE): $(ONNX) $(TMODEL) $(wildcard $(FPGA_DIR)/design.bit $(FPGA_DIR)/design.hwh) $(CFG)/$(NAME)/bundle | $(STAMP)
	$(PY) -m board bundle --onnx $(ONNX) --tensil $(dir $(TMODEL)) --arch $(ARCH) \
	  --fpga $(FPGA_DIR) --out $(dir $@)

$(SAMPLES): $(CFG)/samples | $(STAMP)
	$(PY) -m train sample-images $(CONFIG_samples) --split novel --classes 5 --per-class 20 --seed 0 --out $@

$(VIDEO): $(SAMPLES) | $(STAMP)
	$(PY) -m board video --samples $(SAMPLES) --out $(dir $@)

$(DEMO_LOG): $(BUNDLE) $(VIDEO) $(CFG)/demo | $(STAMP)
	$(PY) -m board demo --bundle $(dir $(BUNDLE)) --backend $(BACKEND) --video $(dir $(VIDEO)) --out $(dir $@)

evaluate: $(STAMP)
	$(PY) -m train evaluate --checkpoint $(CKPT) $(ROOT_FLAG) --ways 5 --shots 1 --queries 15 --episodes 2000
	$(PY) -m train evaluate --checkpoint $(CKPT) $(ROOT_FLAG) --ways 5 --shots 5 --queries 15 --episodes 2000

export-check: $(STAMP)
	$(PY) -m export check --onnx build/export/$(NAME).onnx

inspect: $(STAMP)
	$(PY) -m tensil inspect --tmodel build/tensil/$(NAME)_$(ARCH).tmodel --memory --estimate --mhz 125

fpga-estimate: $(STAMP)
	$(PY) -m fpga estimate --arch $(ARCH)

fpga-project: $(STAMP)
	$(PY) -m fpga project --arch $(ARCH) --mhz $(MHZ) --rtl-dir $(RTL_DIR) --pynq-dir $(PYNQ_DIR) --check

bitstream: $(STAMP)
	$(PY) -m fpga build --arch $(ARCH) --mhz $(MHZ) --rtl-dir $(RTL_DIR) --pynq-dir $(PYNQ_DIR)

deploy: $(STAMP)
	$(PY) -m board deploy --bundle build/bundle/$(NAME) --board $(BOARD)

# What a bitstream and a board need, what is here, and the next command (never contacts the board).
doctor: $(STAMP)
	$(PY) -m fpga doctor --arch $(ARCH) --mhz $(MHZ) --rtl-dir $(RTL_DIR) --pynq-dir $(PYNQ_DIR) --bundle build/bundle/$(NAME)

FL_OUT   ?= build/fl/default
FL_FLAGS ?=
CONFIG_fl = $(FL_FLAGS)

# A run folder of the same settings resumes (or, finished, only rewrites its checkpoint).
fl: $(FL_OUT)/backbone.pt
$(FL_OUT)/backbone.pt: $(CFG)/fl | $(STAMP)
	$(PY) -m fl_bridge run --out $(FL_OUT) $(FL_FLAGS)

fl-compare: $(STAMP)
	$(PY) -m fl_bridge compare --out build/fl/compare

fl-deploy: $(STAMP)
	$(PY) -m fl_bridge deploy --run build/fl/default

# Q-FedUpdate vs Q-FedAvg vs FP32 FedAvg over clients per round (table + PNG, fl_bridge/README.md).
fl-precision: $(STAMP)
	$(PY) -m fl_bridge precision-sweep --eta 1 --out build/fl/precision

# HaLo-FL: energy/latency/area clients (surrogate and FPGA cost models) vs fixed 8-8-8 and 2-4-4 (fl_bridge/README.md).
HALO_FLAGS := --method halo-fl --image-size 16 --clients 10 --per-round 3 --samples-per-client 64 --rounds 9 \
              --eval-every 9 --halo-energy 4 --halo-latency 3 --halo-area 3
HALO_FIXED := --halo-energy 0 --halo-latency 0 --halo-area 0 --halo-unconstrained 10
.PHONY: fl-halo
fl-halo: $(STAMP)
	$(PY) -m fl_bridge run $(HALO_FLAGS) --out build/fl/halo/surrogate
	$(PY) -m fl_bridge run $(HALO_FLAGS) --halo-cost-model fpga --out build/fl/halo/fpga
	$(PY) -m fl_bridge run $(HALO_FLAGS) $(HALO_FIXED) --halo-start 8-8-8 --out build/fl/halo/fixed_888
	$(PY) -m fl_bridge run $(HALO_FLAGS) $(HALO_FIXED) --halo-start 2-4-4 --out build/fl/halo/fixed_244
	$(PY) -m fl_bridge.halo.report build/fl/halo/fixed_888 build/fl/halo/fixed_244 build/fl/halo/surrogate build/fl/halo/fpga

# FedMPQ: per-layer weight bits under per-client budgets vs fixed precision per client (AQFL) and FPQ8
# (fl_bridge/README.md).
FEDMPQ_FLAGS := --image-size 16 --clients 8 --per-round 4 --samples-per-client 48 --rounds 8 --epochs 2 \
                --eval-every 8 --episodes 300
.PHONY: fl-fedmpq
fl-fedmpq: $(STAMP)
	$(PY) -m fl_bridge fedmpq-compare $(FEDMPQ_FLAGS) --variants fedmpq fedmpq-strict fedmpq-offset aqfl fpq8 \
		--out build/fl/fedmpq

# Design-space exploration: the sweep of dse/sweeps/default.toml (accuracy vs FPGA latency).
DSE_SWEEP   ?= dse/sweeps/default.toml
DSE_WORKERS ?= 2

dse: $(STAMP)
	$(PY) -m dse run --sweep $(DSE_SWEEP) --workers $(DSE_WORKERS)
	$(PY) -m dse pick --sweep $(DSE_SWEEP) --fps 30

clean:
	rm -rf build
