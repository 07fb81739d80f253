# The two commands of the quick start. Each sets up .venv on first use (and again when
# pyproject.toml or constraints.txt changes: the exact versions CI tests), then runs its job.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test portable clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[book]"
	touch $@

# Execute every chapter and render the book into _build/html (fails on any warning or cell error).
book: $(VENV)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

# Unit tests, the book rendered and opened in headless Chromium (tests/test_book.py), then every
# notebook re-executed and compared with its stored outputs.
test: $(VENV)/.installed
	$(BIN)/python -m pytest --nbval

# The tests and every chapter again under perturbed floating point (one thread; another CPU's
# kernels), with fresh data and runs: do the stored outputs hold on other machines? ~25 min.
portable: $(VENV)/.installed
	$(BIN)/python scripts/portability.py

clean:
	rm -rf _build $(VENV)
