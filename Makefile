# The two commands: `make test` and `make book`. Each creates .venv if it is missing and installs
# the pinned toolchain (constraints.txt) and the package into it; nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# One BLAS thread per process for the tests and the book: the tests run two processes at once
# on the two cores, and the chapters' small matrices gain nothing from threads (on a busy
# machine threaded BLAS made one chapter 20 times slower). `make bench` keeps the default.
SINGLE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: test book install export lab bench clean

test: $(STAMP)
	$(SINGLE_THREAD) $(BIN)/python -m pytest -n 2 tests

book: $(STAMP)
	$(BIN)/nbdev_export
	$(SINGLE_THREAD) $(BIN)/jupyter-book build --all --warningiserror --nitpick --keep-going .
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_site.py

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# write mlpbook/ from nbs/ after editing a chapter
export: $(STAMP)
	$(BIN)/nbdev_export

# open the chapters in Jupyter (JupyterLab is installed on first use)
lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt jupyterlab
	$(BIN)/jupyter lab nbs

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf _build .pytest_cache .hypothesis
