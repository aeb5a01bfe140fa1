# The two commands: `make demo` and `make test`. Each sets everything up first.
.PHONY: setup demo test bench lint lock clean

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
	.venv/bin/lint-imports
	.venv/bin/deptry .

# Re-pins requirements.lock from pyproject.toml ([project] dependencies + the dev extra, plus pip and
# the build backend that set-up installs fleetlens with), keeping the current pins that still fit;
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release. uv is needed here only.
LOCK_FLAGS ?=
lock:
	@test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/python -m pip install -q --disable-pip-version-check 'uv>=0.5'
	printf 'pip\nsetuptools>=77\n' | .venv/bin/uv pip compile pyproject.toml - --extra dev \
		--python-version 3.11 --generate-hashes --custom-compile-command 'make lock' \
		$(LOCK_FLAGS) -o requirements.lock

clean:
	rm -rf .venv build *.egg-info .pytest_cache demo-data
