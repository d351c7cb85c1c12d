# Set-up, tests and the demo. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A torch/torchvision pair that imports together; override for another CUDA build.
TORCH_PACKAGES ?= torch==2.14.1 torchvision==0.29.1
# detectron2 to install instead of the v0.6 sdist: a checkout folder or a pip requirement.
DETECTRON2 ?=
# The newest detectron2 code on PyPI (upstream commit a59f056 of 2024-04-17, re-published):
# a cp310 wheel of which only the Python files are used, put first on PYTHONPATH.
D2_RECENT ?= sal-detectron2==0.7.2
D2_RECENT_DIR := $(CURDIR)/.d2-recent
STAMP := $(VENV)/.sar_lora_dino-setup

.PHONY: setup test test-d2-recent demo lint clean-venv wheelhouse

setup: $(STAMP)

ifneq ($(DETECTRON2),)
.PHONY: $(STAMP)  # a chosen detectron2 is installed every time it is named
endif

$(STAMP): setup.py Makefile tools/install_detectron2.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PACKAGES)
	$(PY) -m pip install -q setuptools wheel
	$(PY) tools/install_detectron2.py $(if $(DETECTRON2),--source "$(DETECTRON2)")
	$(PY) -m pip install -q --no-build-isolation -e ".[dev]"
	$(PY) -c "import sar_lora_dino"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

# The suite again, against recent detectron2 code shadowing the installed one.
test-d2-recent: setup
	$(PY) tools/install_detectron2.py --source "$(D2_RECENT)" --python-files-into $(D2_RECENT_DIR) \
	  --download-arg=--python-version=3.10 --download-arg=--only-binary=:all:
	PYTHONPATH=$(D2_RECENT_DIR):$(CURDIR) $(PY) -c "import detectron2, sys; \
	  sys.exit(0 if detectron2.__file__.startswith('$(D2_RECENT_DIR)/') else \
	  'detectron2 imported from ' + detectron2.__file__)"
	PYTHONPATH=$(D2_RECENT_DIR):$(CURDIR) $(PY) -m pytest -q tests

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
