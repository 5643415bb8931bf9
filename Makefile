# The two entry points of the README. Both install first (idempotent).
.PHONY: setup run test

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/detect demo

test: setup
	.venv/bin/python -m pytest -n 2 --timeout 900
