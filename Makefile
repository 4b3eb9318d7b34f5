# Two entry points (see README.md): `make demo` and `make test`. Each creates ./.venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo-output

.PHONY: install demo test lint docs clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	# the CPU build of torch first, so no later requirement can pull a CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# torchattacks declares torchvision but never imports it: install it without dependencies
	$(PY) -m pip install -q --no-deps "torchattacks==3.5.1"
	$(PY) -c "import torch, sys; v = torch.__version__; print('torch', v); sys.exit(0 if v.startswith('2.13.0') else 1)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/amd demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check art_manifold_defenses tests bench examples
	$(VENV)/bin/ruff format --check art_manifold_defenses
	$(VENV)/bin/mypy art_manifold_defenses

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

clean:
	rm -rf $(VENV) $(DEMO_OUT)
