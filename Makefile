# The two commands of the quick start. Each sets up .venv on first use (and again when
# pyproject.toml or constraints.txt changes: the exact versions CI tests), then runs its job.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# pip byte-compiles every module it installs (some 13,000 files, half of a 100 s install here);
# Python compiles just the ones imported, once, when it may write them back. It may not under
# PYTHONDONTWRITEBYTECODE, which would make every process compile them again: there, pip compiles.
NO_COMPILE := $(if $(PYTHONDONTWRITEBYTECODE),,--no-compile)

.PHONY: book test portable clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(NO_COMPILE) -c constraints.txt -e ".[book]"
	touch $@

# Execute every chapter and render the book into _build/html (fails on any warning or cell error).
book: $(VENV)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

# Unit tests, the book rendered and opened in headless Chromium (tests/test_book.py), and every
# notebook re-executed and compared with its stored outputs. Both at once: the chapters (two thirds
# of the time, most of it training on every core) at normal priority; the unit tests beside them at
# the lowest priority and on one thread, so that they run in the CPU time the chapters leave idle
# (kernels starting, figures, Python between steps). Their report follows the chapters'. `pytest
# --nbval` runs the same tests in one process, one after the other, on every core. The thread count
# is set once, for every process, through the environment: tests compare a run in the test process
# with one in a subprocess to the last bit, and torch.set_num_threads in one process does not give
# the last bits of the environment's setting in the other.
# The lowest priority must hold against the chapters' Jupyter kernels, each in a session of its own:
# where Linux shares CPU time between sessions first (autogroup), a plain `nice` counts only inside
# its session (scripts/idle.sh). While the chapters train, the unit tests hardly run: their time
# limits are stretched (REID_TEST_TIME_SCALE, tests/limits.py). They keep their own numba and pytest
# caches: two processes adding to one numba cache at once can mix up its entries.
test: $(VENV)/.installed
	@log=$$(mktemp); \
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 REID_TEST_TIME_SCALE=5 NUMBA_CACHE_DIR="$$log.numba" \
	  scripts/idle.sh $(BIN)/python -m pytest -o cache_dir=.pytest_cache/unit-tests tests >"$$log" 2>&1 & \
	units=$$!; \
	trap 'kill -TERM $$units 2>/dev/null; rm -rf "$$log" "$$log.numba"; exit 130' INT TERM HUP; \
	echo "the unit tests run beside the chapters; their report follows the chapters' (meanwhile: $$log)"; \
	$(BIN)/python -m pytest --nbval notebooks; chapters=$$?; \
	wait $$units; unit_tests=$$?; \
	echo "==== the unit tests, run beside the chapters (exit $$unit_tests) ===="; cat "$$log"; \
	rm -rf "$$log" "$$log.numba"; \
	test $$chapters -eq 0 && test $$unit_tests -eq 0

# The tests and every chapter again under perturbed floating point (one thread; another CPU's
# kernels), with fresh data and runs: do the stored outputs hold on other machines? ~25 min.
portable: $(VENV)/.installed
	$(BIN)/python scripts/portability.py

clean:
	rm -rf _build $(VENV)
