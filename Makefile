# The two commands: `make demo` and `make test`. Each sets everything up first.
.PHONY: setup demo test bench lint clean

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/fleetlens demo

test: setup
	.venv/bin/python -m pytest -n 2 --dist loadfile -q

bench: setup
	.venv/bin/python bench/parse.py
	.venv/bin/python bench/rollup.py --rows 10000000

lint: setup
	.venv/bin/ruff check .

clean:
	rm -rf .venv build *.egg-info .pytest_cache demo-data
