# The two commands of the README:
#   make book   build the book, executing every chapter on the embedded mini dataset
#   make test   run the whole test suite
.PHONY: setup book test experiment clean

setup:
	bash scripts/setup_venv.sh

book: setup
	.venv/bin/python scripts/execute_book.py
	.venv/bin/jupyter-book build . --toc book/_toc.yml --config _config.yml -W --keep-going
	@echo "Book built: open _build/html/index.html"

test: setup
	bash scripts/run_tests.sh

experiment: setup
	.venv/bin/python -m fsrlib experiment --dataset mini

clean:
	rm -rf _build
