# Two commands do everything on a fresh machine: `make demo` and `make test` (both create .venv first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch 2.14.1 / torchvision 0.29.1 are the builds this project is tested with (served locally on our machines).
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: demo test venv clean
venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,onnx,distributed,app,browser,video]'
	touch $@

demo: venv
	$(VENV)/bin/colourgan demo

test: venv
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
