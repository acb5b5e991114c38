# The two commands of the README:
#   make book   build the book, executing every chapter on the embedded mini dataset
#   make test   run the whole test suite (nbval re-executes every chapter but those in book/conftest.py's EXPENSIVE)
#   make test-all   the same, re-executing every chapter
#   make rerun PARAMS="-p device cuda -p backbone vgg16_fc7" OUT=runs/gpu
#               rerun every chapter with papermill parameters into OUT; the committed chapters are not touched
.PHONY: setup book test test-all experiment rerun clean

# The shared development subsets (INRIA Holidays, Paris6k) beside the checkout, used by the book and the tests when
# present; override with `make book FSRLIB_DEV_DATA=/path/to/data` (a folder holding holidays-subset/ and
# paris6k-subset/), or set it empty to run everything on the embedded mini dataset only.
FSRLIB_DEV_DATA ?= $(abspath ../shared/data)
export FSRLIB_DEV_DATA

setup:
	bash scripts/setup_venv.sh

book: setup
	.venv/bin/python scripts/execute_book.py
	.venv/bin/jupyter-book build . --toc book/_toc.yml --config _config.yml -W --keep-going
	@echo "Book built: open _build/html/index.html"

test: setup
	bash scripts/run_tests.sh

test-all: setup
	FSRLIB_TEST_ALL=1 bash scripts/run_tests.sh

OUT ?= runs/rerun
PARAMS ?=
rerun: setup
	.venv/bin/python scripts/rerun_book.py --out $(OUT) $(PARAMS) $(if $(CHAPTERS),--chapters $(CHAPTERS))

experiment: setup
	.venv/bin/python -m fsrlib experiment --dataset mini

clean:
	rm -rf _build
