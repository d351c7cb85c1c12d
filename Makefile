# Set-up, tests and the demo. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A torch/torchvision pair that imports together; override for another CUDA build.
TORCH_PACKAGES ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.sar_lora_dino-setup

.PHONY: setup test demo lint clean-venv wheelhouse

setup: $(STAMP)

$(STAMP): setup.py Makefile tools/install_detectron2.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PACKAGES)
	$(PY) -m pip install -q setuptools wheel
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install -q --no-build-isolation -e ".[dev]"
	$(PY) -c "import sar_lora_dino"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

demo: setup
	bash tools/demo.sh

# ruff's formatter is black-compatible (line length 100); ruff also sorts imports.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Wheels for a machine without a package registry that has torch/torchvision/timm/opencv
# (tools/gpu_machine_packages.txt): `make wheelhouse PY=3.12` (PY: the target's Python version),
# then there: pip install --no-index --find-links wheelhouse sar_lora_dino pb1-detectron2.
WHEEL_PY := $(if $(filter 3.%,$(PY)),$(PY),3.12)
wheelhouse:
	$(MAKE) setup PY=$(VENV)/bin/python
	$(VENV)/bin/python tools/build_wheelhouse.py --python-version $(WHEEL_PY) --dest wheelhouse

clean-venv:
	rm -rf $(VENV)
